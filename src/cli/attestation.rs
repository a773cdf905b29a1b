//! `tirage verify-attestation`: check an applicant's attestation against the service's
//! published key.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde_json::json;

use super::{EXIT_MISMATCH, EXIT_OK, malformed, read_input};
use crate::attest::attestation::{AttestationError, SignedAttestation};
use crate::attest::keys::{KeyList, key_id, parse_public_key};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when the signature is valid, 1 when it is not (a field \
was changed, another key signed it, the key is not in the list, or the key was not in \
use when the attestation was issued), 2 when the input cannot be read or is malformed."
)]
pub struct VerifyAttestationArgs {
    /// The attestation (JSON, from `GET /api/v1/entries/{entry_id}/attestation`), or
    /// `-` to read it from standard input.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// The service's public key: 64 hex characters, or base64.
    #[arg(
        long,
        value_name = "PUBKEY",
        conflicts_with = "keys",
        required_unless_present = "keys"
    )]
    pub key: Option<String>,
    /// The service's key list (`GET /api/v1/keys`, saved as a file): the attestation's
    /// key must be in it, and in use when the attestation was issued.
    #[arg(long, value_name = "KEYS_JSON")]
    pub keys: Option<String>,
    /// Print a machine-readable JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Why the attestation is not what the key signed, for exit code 1.
struct Mismatch(String);

pub fn run(args: VerifyAttestationArgs) -> ExitCode {
    let signed: SignedAttestation = match read_input(&args.file).and_then(|data| {
        serde_json::from_slice(&data)
            .map_err(|e| format!("{} is not a tirage attestation: {e}", args.file))
    }) {
        Ok(signed) => signed,
        Err(e) => return malformed(e),
    };
    let key = match choose_key(&args, &signed) {
        Ok(Ok(key)) => key,
        Ok(Err(mismatch)) => return report(&args, &signed, None, Err(mismatch)),
        Err(e) => return malformed(e),
    };
    let result = match signed.verify(&key) {
        Ok(()) => Ok(()),
        Err(AttestationError::Malformed(e)) => {
            return malformed(format!("{} is not a valid attestation: {e}", args.file));
        }
        Err(e) => Err(Mismatch(e.to_string())),
    };
    report(&args, &signed, Some(key_id(key.as_bytes())), result)
}

/// The key to check with; `Err` for an unusable input, `Ok(Err)` when the published
/// keys do not allow this attestation.
fn choose_key(
    args: &VerifyAttestationArgs,
    signed: &SignedAttestation,
) -> Result<Result<VerifyingKey, Mismatch>, String> {
    if let Some(text) = &args.key {
        return parse_public_key(text)
            .map(Ok)
            .map_err(|e| format!("--key: {}", e.reason));
    }
    let path = args.keys.as_deref().unwrap_or("-");
    let data = read_input(path)?;
    let list: KeyList = serde_json::from_slice(&data)
        .map_err(|e| format!("{path} is not a key list (GET /api/v1/keys): {e}"))?;
    let wanted = &signed.attestation.key_id;
    let Some(published) = list.find(wanted) else {
        return Ok(Err(Mismatch(format!(
            "the attestation names key {wanted}, which is not in {path}"
        ))));
    };
    let key = published
        .verifying_key()
        .map_err(|e| format!("{path}: {e}"))?;
    let issued_at = DateTime::parse_from_rfc3339(&signed.attestation.issued_at)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "{}: attestation.issued_at must be a time written YYYY-MM-DDTHH:MM:SSZ",
                args.file
            )
        })?;
    if issued_at < published.created_at {
        return Ok(Err(Mismatch(format!(
            "the attestation was issued at {}, before key {wanted} was created ({})",
            signed.attestation.issued_at, published.created_at
        ))));
    }
    if let Some(retired_at) = published.retired_at
        && issued_at > retired_at
    {
        return Ok(Err(Mismatch(format!(
            "the attestation was issued at {}, after key {wanted} was retired ({retired_at})",
            signed.attestation.issued_at
        ))));
    }
    Ok(Ok(key))
}

fn report(
    args: &VerifyAttestationArgs,
    signed: &SignedAttestation,
    checked_with: Option<String>,
    result: Result<(), Mismatch>,
) -> ExitCode {
    let a = &signed.attestation;
    let o = &a.outcome;
    if args.json {
        let doc = json!({
            "ok": result.is_ok(),
            "key_id": a.key_id,
            "checked_with": checked_with,
            "problem": result.as_ref().err().map(|m| &m.0),
            "attestation": a,
        });
        println!("{doc:#}");
    } else {
        match &result {
            Ok(()) => println!("OK    signature by key {} (ed25519)", a.key_id),
            Err(Mismatch(why)) => println!("FAIL  {why}"),
        }
        let number = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        println!("  format       {}", a.format);
        println!(
            "  window       {} (site {}, procedure {})",
            a.window_id, a.site, a.procedure
        );
        println!("  entry        {}", a.entry_id);
        println!("  registered   {}", a.registered_at);
        println!(
            "  holder       {}, {}",
            a.holder.family_name, a.holder.given_names
        );
        println!("  commitment   {}", a.commitment.as_deref().unwrap_or("-"));
        println!(
            "  outcome      {}: rank {} of {} entries for {} slots",
            o.status,
            number(o.rank),
            number(o.n_entries),
            number(o.n_slots)
        );
        if let Some(slot) = &o.slot {
            println!(
                "  slot         {} at {}, counter {}",
                slot.id, slot.starts_at, slot.counter
            );
        }
        println!("  issued at    {}", a.issued_at);
        match result {
            Ok(()) => println!(
                "the attestation is authentic: key {} signed exactly these values",
                a.key_id
            ),
            Err(_) => println!("the attestation is NOT authentic: do not rely on these values"),
        }
    }
    ExitCode::from(if result.is_ok() {
        EXIT_OK
    } else {
        EXIT_MISMATCH
    })
}
