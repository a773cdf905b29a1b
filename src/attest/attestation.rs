//! The attestation an applicant downloads, format `tirage-attestation-v1`: that they
//! registered in a window on a given day, the window's commitment, and what the draw
//! gave them, signed with the service's Ed25519 key.
//!
//! The signature is Ed25519 (RFC 8032, no pre-hash, no context) over this text, UTF-8,
//! every line ended by a line feed, each value written exactly as in the JSON form
//! (integers in base 10, a `null` as nothing after the `=`):
//!
//! ```text
//! tirage-attestation-v1
//! window_id=<window_id>
//! site=<site>
//! procedure=<procedure>
//! entry_id=<entry_id>
//! registered_at=<YYYY-MM-DD>
//! holder.family_name=<family_name>
//! holder.given_names=<given_names>
//! commitment=<commitment>
//! outcome.status=<status>
//! outcome.rank=<rank>
//! outcome.n_entries=<n_entries>
//! outcome.n_slots=<n_slots>
//! outcome.slot.id=<slot id>
//! outcome.slot.starts_at=<slot starts_at>
//! outcome.slot.counter=<slot counter>
//! issued_at=<YYYY-MM-DDTHH:MM:SSZ>
//! key_id=<key_id>
//! ```
//!
//! No text value may be empty or hold a line feed, so the text has one reading only.

use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::keys::{ServiceKey, key_id};
use crate::draw::InputError;

/// The `format` of every attestation, and the first line of the signed text.
pub const FORMAT: &str = "tirage-attestation-v1";

/// What the service attests about one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Attestation {
    /// Always `tirage-attestation-v1`.
    #[cfg_attr(feature = "server", schema(example = "tirage-attestation-v1"))]
    pub format: String,
    pub window_id: String,
    pub site: String,
    pub procedure: String,
    pub entry_id: String,
    /// The day of registration (UTC), `YYYY-MM-DD`.
    #[cfg_attr(feature = "server", schema(example = "2026-12-05"))]
    pub registered_at: String,
    /// The person the entry belongs to, as registered.
    pub holder: Holder,
    /// The window's commitment (hex), once registration has closed.
    pub commitment: Option<String>,
    pub outcome: Outcome,
    /// When the attestation was issued, `YYYY-MM-DDTHH:MM:SSZ`.
    #[cfg_attr(feature = "server", schema(example = "2026-12-20T09:15:00Z"))]
    pub issued_at: String,
    /// The id of the key that signed it (see `GET /api/v1/keys`).
    pub key_id: String,
}

/// The holder's names, as they will be printed on the convocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Holder {
    pub family_name: String,
    pub given_names: String,
}

/// Where the entry stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct Outcome {
    /// `pending_verification`, `eligible`, `withdrawn`, `excluded`, `selected`,
    /// `waiting`, `not_selected` or `cancelled`.
    #[cfg_attr(feature = "server", schema(example = "selected"))]
    pub status: String,
    /// The entry's rank in the draw, once drawn.
    pub rank: Option<u64>,
    /// How many entries were committed to the draw, once registration has closed.
    pub n_entries: Option<u64>,
    /// How many slots the draw had to give, once registration has closed.
    pub n_slots: Option<u64>,
    /// The appointment the entry holds, if any.
    pub slot: Option<AttestedSlot>,
}

/// An appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AttestedSlot {
    pub id: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub starts_at: String,
    pub counter: String,
}

/// An attestation and its signature: the JSON document applicants download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct SignedAttestation {
    pub attestation: Attestation,
    /// Ed25519 over the attestation's signed text, 128 hex characters.
    pub signature: String,
}

/// Why an attestation does not check out. `Malformed` means it cannot be read as an
/// attestation at all; the others mean it is not what the key signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    #[error("malformed attestation: {0}")]
    Malformed(InputError),
    #[error("the attestation names key {signed_with}, not the given key {given}")]
    WrongKey { signed_with: String, given: String },
    #[error("the signature does not match: a field was changed, or key {key_id} did not sign it")]
    BadSignature { key_id: String },
}

fn malformed(field: &str, reason: impl Into<String>) -> AttestationError {
    AttestationError::Malformed(InputError::new(field, reason))
}

impl Attestation {
    /// The exact text that is signed (see the module documentation), after checking
    /// that every value can be written in it.
    pub fn signed_text(&self) -> Result<String, AttestationError> {
        if self.format != FORMAT {
            return Err(malformed("attestation.format", format!("must be {FORMAT}")));
        }
        if self.key_id.len() != 16
            || !self
                .key_id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(malformed(
                "attestation.key_id",
                "must be 16 lowercase hex characters",
            ));
        }
        let number = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let slot = self.outcome.slot.as_ref();
        let lines: [(&str, Option<String>); 17] = [
            ("window_id", Some(self.window_id.clone())),
            ("site", Some(self.site.clone())),
            ("procedure", Some(self.procedure.clone())),
            ("entry_id", Some(self.entry_id.clone())),
            ("registered_at", Some(self.registered_at.clone())),
            ("holder.family_name", Some(self.holder.family_name.clone())),
            ("holder.given_names", Some(self.holder.given_names.clone())),
            ("commitment", self.commitment.clone()),
            ("outcome.status", Some(self.outcome.status.clone())),
            ("outcome.rank", Some(number(self.outcome.rank))),
            ("outcome.n_entries", Some(number(self.outcome.n_entries))),
            ("outcome.n_slots", Some(number(self.outcome.n_slots))),
            ("outcome.slot.id", slot.map(|s| s.id.clone())),
            ("outcome.slot.starts_at", slot.map(|s| s.starts_at.clone())),
            ("outcome.slot.counter", slot.map(|s| s.counter.clone())),
            ("issued_at", Some(self.issued_at.clone())),
            ("key_id", Some(self.key_id.clone())),
        ];
        let mut text = format!("{FORMAT}\n");
        for (name, value) in lines {
            let is_number = matches!(
                name,
                "outcome.rank" | "outcome.n_entries" | "outcome.n_slots"
            );
            match value.as_deref() {
                Some("") if !is_number => {
                    return Err(malformed(&format!("attestation.{name}"), "is empty"));
                }
                Some(v) if v.contains('\n') => {
                    return Err(malformed(
                        &format!("attestation.{name}"),
                        "holds a line feed",
                    ));
                }
                _ => {}
            }
            text.push_str(name);
            text.push('=');
            text.push_str(value.as_deref().unwrap_or_default());
            text.push('\n');
        }
        Ok(text)
    }

    /// Signs with the service's key; `key_id` is set to that key's id.
    pub fn sign(mut self, key: &ServiceKey) -> Result<SignedAttestation, AttestationError> {
        key.id().clone_into(&mut self.key_id);
        let signature = key.signing_key().sign(self.signed_text()?.as_bytes());
        Ok(SignedAttestation {
            attestation: self,
            signature: crate::draw::hex(signature.to_bytes()),
        })
    }
}

impl SignedAttestation {
    /// Checks the signature with `key`, which must be the key the attestation names.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), AttestationError> {
        let text = self.attestation.signed_text()?;
        let signature: [u8; 64] = (self.signature.len() == 128)
            .then(|| hex::decode(&self.signature).ok())
            .flatten()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| malformed("signature", "must be 128 hex characters"))?;
        let given = key_id(key.as_bytes());
        if given != self.attestation.key_id {
            return Err(AttestationError::WrongKey {
                signed_with: self.attestation.key_id.clone(),
                given,
            });
        }
        key.verify_strict(text.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| AttestationError::BadSignature { key_id: given })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::keys::{parse_public_key, parse_signing_key};

    /// RFC 8032 section 7.1, TEST 1.
    const RFC_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn selected() -> Attestation {
        Attestation {
            format: FORMAT.into(),
            window_id: "a1b2c3d4e5f60718".into(),
            site: "34".into(),
            procedure: "renewal".into(),
            entry_id: "3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910".into(),
            registered_at: "2026-12-05".into(),
            holder: Holder {
                family_name: "El Amrani".into(),
                given_names: "Fatima Zahra".into(),
            },
            commitment: Some("ab".repeat(32)),
            outcome: Outcome {
                status: "selected".into(),
                rank: Some(3),
                n_entries: Some(120),
                n_slots: Some(40),
                slot: Some(AttestedSlot {
                    id: "2027-01-04T0830-G1".into(),
                    starts_at: "2027-01-04T08:30:00Z".into(),
                    counter: "G1".into(),
                }),
            },
            issued_at: "2026-12-20T09:15:00Z".into(),
            key_id: "0000000000000000".into(),
        }
    }

    fn rfc_key() -> ServiceKey {
        ServiceKey::new(parse_signing_key(RFC_SECRET).unwrap())
    }

    #[test]
    fn the_signed_text_is_the_documented_one() {
        let mut pending = selected();
        pending.commitment = None;
        pending.outcome = Outcome {
            status: "pending_verification".into(),
            rank: None,
            n_entries: None,
            n_slots: None,
            slot: None,
        };
        pending.key_id = "21fe31dfa154a261".into();
        assert_eq!(
            pending.signed_text().unwrap(),
            "tirage-attestation-v1\nwindow_id=a1b2c3d4e5f60718\nsite=34\nprocedure=renewal\n\
             entry_id=3f6c0a9e1b2d4c5f8a7e6d5c4b3a2910\nregistered_at=2026-12-05\n\
             holder.family_name=El Amrani\nholder.given_names=Fatima Zahra\ncommitment=\n\
             outcome.status=pending_verification\noutcome.rank=\noutcome.n_entries=\n\
             outcome.n_slots=\noutcome.slot.id=\noutcome.slot.starts_at=\n\
             outcome.slot.counter=\nissued_at=2026-12-20T09:15:00Z\nkey_id=21fe31dfa154a261\n"
        );
    }

    #[test]
    fn a_known_answer_signed_by_openssl() {
        // The signed text of `selected()` with the RFC 8032 key, signed with
        // `openssl pkeyutl -sign -rawin -inkey rfc8032-test1.pem -in text`.
        let signed = selected().sign(&rfc_key()).unwrap();
        assert_eq!(signed.attestation.key_id, "21fe31dfa154a261");
        assert_eq!(
            signed.signature,
            "7714f50180584db34238560ffa918a9d523966fa6007e256648642719d1863f0826edd7243bbeb227fd5562af6cf4931ae70d9b5c70ab03eafce998f5a9b4606"
        );
        signed
            .verify(&parse_public_key(RFC_PUBLIC).unwrap())
            .unwrap();
    }

    #[test]
    fn a_valid_attestation_survives_json() {
        let key = rfc_key();
        let signed = selected().sign(&key).unwrap();
        let json = serde_json::to_string(&signed).unwrap();
        let back: SignedAttestation = serde_json::from_str(&json).unwrap();
        back.verify(&key.signing_key().verifying_key()).unwrap();
    }

    #[test]
    fn a_changed_field_fails() {
        let key = rfc_key();
        let public = key.signing_key().verifying_key();
        let signed = selected().sign(&key).unwrap();
        let changes: [fn(&mut Attestation); 6] = [
            |a| a.holder.family_name = "El Amrane".into(),
            |a| a.outcome.rank = Some(2),
            |a| a.outcome.status = "waiting".into(),
            |a| a.outcome.slot = None,
            |a| a.commitment = None,
            |a| a.registered_at = "2026-12-04".into(),
        ];
        for change in changes {
            let mut forged = signed.clone();
            change(&mut forged.attestation);
            assert_eq!(
                forged.verify(&public),
                Err(AttestationError::BadSignature {
                    key_id: "21fe31dfa154a261".into()
                })
            );
        }
    }

    #[test]
    fn another_key_fails() {
        let other = ServiceKey::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        let signed = selected().sign(&other).unwrap();
        let rfc_public = rfc_key().signing_key().verifying_key();
        assert!(matches!(
            signed.verify(&rfc_public),
            Err(AttestationError::WrongKey { .. })
        ));
        // Claiming the right key id does not help.
        let mut claimed = signed;
        claimed.attestation.key_id = "21fe31dfa154a261".into();
        assert!(matches!(
            claimed.verify(&rfc_public),
            Err(AttestationError::BadSignature { .. })
        ));
    }

    #[test]
    fn unwritable_values_are_malformed_and_named() {
        let key = rfc_key();
        let mut a = selected();
        a.holder.given_names = "Fatima\nZahra".into();
        let Err(AttestationError::Malformed(error)) = a.sign(&key) else {
            panic!("expected malformed");
        };
        assert_eq!(error.field, "attestation.holder.given_names");
        let mut a = selected();
        a.site = String::new();
        assert!(a.sign(&key).is_err());
        let mut a = selected();
        a.format = "tirage-attestation-v2".into();
        assert!(a.sign(&key).is_err());

        let mut signed = selected().sign(&key).unwrap();
        signed.signature.truncate(100);
        let Err(AttestationError::Malformed(error)) =
            signed.verify(&key.signing_key().verifying_key())
        else {
            panic!("expected malformed");
        };
        assert_eq!(error.field, "signature");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let signed = selected().sign(&rfc_key()).unwrap();
        let mut json = serde_json::to_value(&signed).unwrap();
        json["attestation"]["note"] = "also selected elsewhere".into();
        assert!(serde_json::from_value::<SignedAttestation>(json).is_err());
    }
}
