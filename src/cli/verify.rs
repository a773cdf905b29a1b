//! `tirage verify`: re-compute a published bundle, or check an inclusion proof.

use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{EXIT_MISMATCH, EXIT_OK, malformed, read_input};
use crate::draw::merkle::{leaf_hash, verify_inclusion};
use crate::draw::types::parse_lower_hex;
use crate::draw::verify::{Report, check_bundle};
use crate::draw::{Bundle, Digest, Entry, EntryId};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when every published value matches, 1 when one \
differs (or the --entry is not in the draw, or the proof fails), 2 when the input cannot \
be read or is malformed."
)]
pub struct VerifyArgs {
    /// The bundle (JSON) to re-compute, or `-` to read it from standard input.
    #[arg(required_unless_present = "proof", value_name = "BUNDLE")]
    pub bundle: Option<String>,
    /// Print a machine-readable JSON report instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also report this entry's weight, rank and slot.
    #[arg(long, value_name = "ENTRY_ID")]
    pub entry: Option<String>,
    /// Check an inclusion proof from a receipt (a JSON file with entry_id, weight,
    /// leaf_index, tree_size, audit_path and entries_root; `-` for stdin). With a
    /// BUNDLE too, also check that the proof's root and size are that bundle's.
    #[arg(long, value_name = "PROOF", conflicts_with = "entry")]
    pub proof: Option<String>,
}

pub fn run(args: VerifyArgs) -> ExitCode {
    match (&args.proof, &args.bundle) {
        (Some(proof), bundle) => run_proof(proof, bundle.as_deref(), args.json),
        (None, Some(bundle)) => run_bundle(bundle, args.json, args.entry.as_deref()),
        (None, None) => malformed("give a BUNDLE file, `-`, or --proof FILE"),
    }
}

/// Reads and re-computes a bundle; the error is the message for a malformed one.
fn load_report(path: &str) -> Result<Report, String> {
    let data = read_input(path)?;
    let invalid =
        |e: &dyn std::fmt::Display| format!("{path} is not a valid tirage-draw-v1 bundle: {e}");
    let bundle: Bundle = serde_json::from_slice(&data).map_err(|e| invalid(&e))?;
    drop(data);
    check_bundle(bundle).map_err(|e| invalid(&e))
}

fn run_bundle(path: &str, as_json: bool, entry: Option<&str>) -> ExitCode {
    let entry = match entry.map(EntryId::parse_hex).transpose() {
        Ok(entry) => entry,
        Err(why) => return malformed(format!("--entry {why}")),
    };
    let report = match load_report(path) {
        Ok(report) => report,
        Err(e) => return malformed(e),
    };
    let found = entry.map(|id| EntryOutcome::find(&report, id));
    if as_json {
        let doc = json!({
            "ok": report.is_ok() && found.as_ref().is_none_or(|f| f.in_draw),
            "window_id": report.window_id,
            "n_entries": report.entries.len(),
            "n_slots": report.slots.len(),
            "checks": report.checks,
            "entry": found,
        });
        println!("{doc:#}");
    } else {
        print_report(&report, found.as_ref());
    }
    let entry_ok = found.as_ref().is_none_or(|f| f.in_draw);
    ExitCode::from(if report.is_ok() && entry_ok {
        EXIT_OK
    } else {
        EXIT_MISMATCH
    })
}

fn print_report(report: &Report, entry: Option<&EntryOutcome>) {
    println!(
        "window {}: {} entries, {} slots",
        report.window_id,
        report.entries.len(),
        report.slots.len()
    );
    for check in &report.checks {
        if check.ok {
            println!("OK    {:<16} {}", check.name, check.expected);
        } else if let Some(rank) = check.first_rank {
            println!(
                "FAIL  {:<16} first difference at rank {rank}: expected {}, found {}",
                check.name, check.expected, check.found
            );
        } else {
            println!(
                "FAIL  {:<16} expected {}, found {}",
                check.name, check.expected, check.found
            );
        }
    }
    let failed = report.checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        println!(
            "all {} published values match: this draw re-computes exactly",
            report.checks.len()
        );
    } else {
        println!(
            "{failed} of {} published values differ: this bundle is NOT a correct draw",
            report.checks.len()
        );
    }
    if let Some(entry) = entry {
        println!("{}", entry.describe());
    }
}

/// What happened to one entry, for `--entry`.
#[derive(Debug, Serialize)]
struct EntryOutcome {
    id: EntryId,
    in_draw: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rank: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<SlotView>,
    /// Position on the waiting list (1 = first to be offered a cancelled slot).
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_position: Option<u64>,
}

#[derive(Debug, Serialize)]
struct SlotView {
    id: String,
    starts_at: String,
    counter: String,
}

impl EntryOutcome {
    fn find(report: &Report, id: EntryId) -> Self {
        let weight = report
            .entries
            .binary_search_by_key(&id, |e: &Entry| e.id)
            .ok()
            .map(|i| report.entries[i].weight);
        let row = report.results.iter().find(|r| r.id == id);
        let selected = report.results.iter().filter(|r| r.slot.is_some()).count() as u64;
        let slot = row.and_then(|r| r.slot.as_ref()).and_then(|slot_id| {
            report
                .slots
                .iter()
                .find(|s| &s.id == slot_id)
                .map(|s| SlotView {
                    id: s.id.clone(),
                    starts_at: s.starts_at.clone(),
                    counter: s.counter.clone(),
                })
        });
        let waiting_position = row
            .filter(|r| r.slot.is_none())
            .map(|r| r.rank.saturating_sub(selected));
        Self {
            id,
            in_draw: weight.is_some(),
            weight,
            rank: row.map(|r| r.rank),
            slot,
            waiting_position,
        }
    }

    fn describe(&self) -> String {
        match (self.weight, self.rank) {
            (Some(weight), Some(rank)) => match (&self.slot, self.waiting_position) {
                (Some(slot), _) => format!(
                    "entry {}: weight {weight}, rank {rank}, slot {} at {} counter {}",
                    self.id, slot.id, slot.starts_at, slot.counter
                ),
                (None, Some(position)) => format!(
                    "entry {}: weight {weight}, rank {rank}, no slot: waiting list position {position}",
                    self.id
                ),
                (None, None) => format!("entry {}: weight {weight}, rank {rank}", self.id),
            },
            _ => format!("FAIL  entry {} is not in this draw", self.id),
        }
    }
}

/// An applicant's inclusion proof, as given with their receipt.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Proof {
    entry_id: EntryId,
    weight: u32,
    leaf_index: u64,
    tree_size: u64,
    audit_path: Vec<String>,
    entries_root: String,
}

fn run_proof(path: &str, bundle: Option<&str>, as_json: bool) -> ExitCode {
    let data = match read_input(path) {
        Ok(data) => data,
        Err(e) => return malformed(e),
    };
    let proof: Proof = match serde_json::from_slice(&data) {
        Ok(proof) => proof,
        Err(e) => return malformed(format!("{path} is not a valid inclusion proof: {e}")),
    };
    let digest = |text: &str, field: &str| -> Result<Digest, String> {
        parse_lower_hex(text, 32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{field} must be 64 lowercase hexadecimal characters"))
    };
    let parsed = digest(&proof.entries_root, "entries_root").and_then(|root| {
        let path = proof
            .audit_path
            .iter()
            .enumerate()
            .map(|(i, p)| digest(p, &format!("audit_path[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((root, path))
    });
    let (root, audit_path) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return malformed(format!("{path} is not a valid inclusion proof: {e}")),
    };
    let leaf = leaf_hash(&Entry {
        id: proof.entry_id,
        weight: proof.weight,
    });
    let ok = verify_inclusion(&leaf, proof.leaf_index, proof.tree_size, &audit_path, &root);
    // With the bundle: the proof must be about this bundle's entries.
    let report = match bundle.map(load_report).transpose() {
        Ok(report) => report,
        Err(e) => return malformed(e),
    };
    let root_check = report.as_ref().map(|report| {
        let published = report.checks.iter().find(|c| c.name == "entries_root");
        let expected = published.map(|c| c.expected.clone()).unwrap_or_default();
        let n = report.entries.len() as u64;
        (
            expected == proof.entries_root && n == proof.tree_size,
            format!("{expected} ({n} entries)"),
            format!("{} ({} entries)", proof.entries_root, proof.tree_size),
        )
    });
    let all_ok = ok
        && root_check.as_ref().is_none_or(|(same, _, _)| *same)
        && report.as_ref().is_none_or(Report::is_ok);
    if as_json {
        let bundle_checks = report.as_ref().map(|r| &r.checks);
        println!(
            "{:#}",
            json!({"ok": all_ok, "proof_ok": ok, "entry_id": proof.entry_id, "weight": proof.weight,
                   "leaf_index": proof.leaf_index, "tree_size": proof.tree_size,
                   "entries_root": proof.entries_root,
                   "proof_root": root_check.as_ref().map(|(same, expected, found)|
                        json!({"ok": same, "expected": expected, "found": found})),
                   "checks": bundle_checks})
        );
        return ExitCode::from(if all_ok { EXIT_OK } else { EXIT_MISMATCH });
    }
    if let Some(report) = &report {
        print_report(report, None);
    }
    if let Some((same, expected, found)) = &root_check {
        if *same {
            println!("OK    proof_root       {found}");
        } else {
            println!("FAIL  proof_root       expected {expected}, found {found}");
        }
    }
    if ok {
        println!(
            "OK    entry {} with weight {} is leaf {} of {} under entries_root {}",
            proof.entry_id, proof.weight, proof.leaf_index, proof.tree_size, proof.entries_root
        );
    } else {
        println!(
            "FAIL  entry {} with weight {} is NOT proven to be leaf {} of {} under entries_root {}",
            proof.entry_id, proof.weight, proof.leaf_index, proof.tree_size, proof.entries_root
        );
    }
    ExitCode::from(if all_ok { EXIT_OK } else { EXIT_MISMATCH })
}
