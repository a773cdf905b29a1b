//! `tirage verify-log`: re-compute the audit log's hash chain from a downloaded copy.
//!
//! The file holds one or more JSON documents, one after the other (as written by
//! saving each page of `GET /api/v1/audit/events` in turn): pages (objects with
//! `events` and `head`), arrays of events, single events (one per line, for example),
//! or heads (`GET /api/v1/audit/head`). The events must start at the first and follow
//! each other; every head met, in the file or given with `--head`, must match.

use std::process::ExitCode;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{EXIT_MISMATCH, EXIT_OK, malformed, read_input};
use crate::attest::chain::{AuditHead, ChainEvent, ChainVerifier};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when every event is in place and unchanged, 1 when an \
event was edited, removed, reordered or cut off (or a head does not match), 2 when the \
input cannot be read or is malformed."
)]
pub struct VerifyLogArgs {
    /// The log: pages of `GET /api/v1/audit/events` saved one after the other, a JSON
    /// array of events, or one event per line; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// A head saved earlier (`GET /api/v1/audit/head`, as a file): the log must hold
    /// it unchanged. May be given several times.
    #[arg(long, value_name = "HEAD_FILE")]
    pub head: Vec<String>,
    /// Print a machine-readable JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A page of `GET /api/v1/audit/events`, or an export in that shape.
#[derive(Deserialize)]
struct Page {
    events: Vec<ChainEvent>,
    #[serde(default)]
    head: Option<AuditHead>,
}

/// The events and heads of a log file, in the order they come.
#[derive(Default)]
struct Log {
    events: Vec<ChainEvent>,
    heads: Vec<AuditHead>,
}

impl Log {
    /// Reads every JSON document of `data`; the error names the document and the field.
    fn parse(data: &[u8]) -> Result<Self, String> {
        let mut log = Self::default();
        let documents = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
        for (n, document) in documents.enumerate() {
            let place = format!("document {}", n + 1);
            let document = document.map_err(|e| format!("{place}: not JSON: {e}"))?;
            log.add(document).map_err(|e| format!("{place}: {e}"))?;
        }
        if log.events.is_empty() && log.heads.is_empty() {
            return Err("no events in the file".into());
        }
        Ok(log)
    }

    fn add(&mut self, document: Value) -> Result<(), String> {
        let event = |value: Value, place: String| {
            ChainEvent::deserialize(value).map_err(|e| format!("{place}: not an audit event: {e}"))
        };
        match document {
            Value::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    self.events.push(event(item, format!("[{i}]"))?);
                }
            }
            Value::Object(ref map) if map.contains_key("events") => {
                let page = Page::deserialize(document)
                    .map_err(|e| format!("not a page of audit events: {e}"))?;
                self.events.extend(page.events);
                self.heads.extend(page.head);
            }
            Value::Object(ref map) if map.contains_key("seq") => {
                self.events.push(event(document, "the event".into())?);
            }
            Value::Object(ref map) if map.contains_key("count") => {
                self.heads.push(
                    AuditHead::deserialize(document)
                        .map_err(|e| format!("not an audit head: {e}"))?,
                );
            }
            _ => {
                return Err(
                    "expected a page ({\"events\": [...]}), an array of events, an event or \
                     a head"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

fn load_head(path: &str) -> Result<AuditHead, String> {
    let data = read_input(path)?;
    serde_json::from_slice(&data).map_err(|e| format!("{path} is not an audit head: {e}"))
}

pub fn run(args: VerifyLogArgs) -> ExitCode {
    let log = match read_input(&args.file).and_then(|data| {
        Log::parse(&data).map_err(|e| format!("{} is not an audit log: {e}", args.file))
    }) {
        Ok(log) => log,
        Err(e) => return malformed(e),
    };
    let mut heads = log.heads;
    for path in &args.head {
        match load_head(path) {
            Ok(head) => heads.push(head),
            Err(e) => return malformed(e),
        }
    }
    let mut verifier = ChainVerifier::new();
    let mut outcome = heads.iter().try_for_each(|head| verifier.expect_head(head));
    if outcome.is_ok() {
        outcome = log.events.iter().try_for_each(|event| verifier.push(event));
    }
    let checked = verifier.count();
    let head = verifier.head();
    if outcome.is_ok() {
        outcome = verifier.finish().map(drop);
    }
    let newest_head = heads.iter().map(|h| h.count).max();
    if args.json {
        let problem = outcome.as_ref().err().map(|e| {
            let mut value = serde_json::to_value(e).unwrap_or_default();
            value["seq"] = e.seq().into();
            value["message"] = e.to_string().into();
            value
        });
        let report = json!({
            "ok": outcome.is_ok(),
            "checked": checked,
            "head": head,
            "heads_checked": heads.len(),
            "problem": problem,
        });
        println!("{report:#}");
    } else {
        match &outcome {
            Ok(()) => {
                println!("OK    events 1 to {checked}: each in place, linked and unchanged");
                match newest_head {
                    Some(count) => println!(
                        "OK    {} head(s) matched, the latest at event {count}",
                        heads.len()
                    ),
                    None => println!(
                        "note  no head to compare with: events cut off the end cannot be seen \
                         (give --head with a head saved earlier)"
                    ),
                }
                println!("head: {} events, last hash {}", head.count, head.hash);
                println!("the audit log is intact");
            }
            Err(error) => {
                println!("FAIL  {error}");
                println!(
                    "the audit log is NOT intact: events 1 to {checked} check out, the problem \
                     starts at event {}",
                    error.seq()
                );
            }
        }
    }
    ExitCode::from(if outcome.is_ok() {
        EXIT_OK
    } else {
        EXIT_MISMATCH
    })
}
