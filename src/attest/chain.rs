//! The audit log's hash chain, format `tirage-audit-v1`.
//!
//! Every event carries the hash of the event before it (`prev_hash`; the first event
//! chains from 64 zeros) and its own `hash`, a SHA-256 over this text (UTF-8, each
//! line ended by a line feed):
//!
//! ```text
//! tirage-audit-v1
//! <seq>                  1, 2, 3, ... without gaps
//! <at>                   UTC, exactly YYYY-MM-DDTHH:MM:SS.ffffffZ (microseconds)
//! <actor>                staff:<token id>, applicant or system
//! <action>               such as window.opened
//! <window_id>            empty line when the event has none
//! <entry_id>             empty line when the event has none
//! <detail>               the detail object as canonical JSON (see canonical_json)
//! <prev_hash>            64 lowercase hex
//! ```
//!
//! `hash = hex(SHA-256(text))`. No field may hold a line feed, and a present
//! `window_id` or `entry_id` is never empty, so the text has one reading only.
//! Editing an event changes its hash; recomputing that hash breaks the next event's
//! `prev_hash`; deleting an event leaves a gap in `seq`; cutting events off the end is
//! seen against a head (count and hash of the last event) saved earlier.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::canonical_json;
use crate::draw::sha256;

/// The first line of every hashed event.
pub const FORMAT: &str = "tirage-audit-v1";

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event's time as the chain keeps it: UTC, truncated to the microsecond (what
/// PostgreSQL stores, and what [`format_time`] writes).
pub fn event_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the form an event's time is hashed and published in.
pub fn format_time(at: DateTime<Utc>) -> String {
    event_time(at).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Serde for event times: written as [`format_time`] does, read from any RFC 3339 time.
pub mod time_format {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {e}")))
    }

    /// The same for an optional time.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            at: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(at)| at))
        }
    }
}

/// What an event says, without its hashes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventContent<'a> {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    pub window_id: Option<&'a str>,
    pub entry_id: Option<&'a str>,
    pub detail: &'a Value,
}

/// An event of the log as published: its content and its two hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainEvent {
    pub seq: u64,
    #[serde(with = "time_format")]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub window_id: Option<String>,
    pub entry_id: Option<String>,
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl ChainEvent {
    pub fn content(&self) -> EventContent<'_> {
        EventContent {
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            window_id: self.window_id.as_deref(),
            entry_id: self.entry_id.as_deref(),
            detail: &self.detail,
        }
    }
}

/// Where the log stands: how many events it holds and the hash of the last one
/// ([`GENESIS_HASH`] when empty). Saved by auditors, it pins the log's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct AuditHead {
    /// How many events the log holds: the `seq` of the last one.
    pub count: u64,
    /// The `hash` of the last event, hex; 64 zeros for an empty log.
    #[serde(alias = "head_hash")]
    pub hash: String,
    /// The time of the last event, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    #[serde(with = "time_format::option", default)]
    #[cfg_attr(
        feature = "server",
        schema(value_type = Option<String>, format = DateTime, example = "2026-12-05T10:00:00.000000Z")
    )]
    pub at: Option<DateTime<Utc>>,
}

impl AuditHead {
    /// The head of an empty log.
    pub fn genesis() -> Self {
        Self {
            count: 0,
            hash: GENESIS_HASH.to_owned(),
            at: None,
        }
    }
}

/// The first thing wrong with a log, one variant per reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainError {
    #[error("event {seq}: {field} {reason}, so the event has no hash")]
    Unhashable {
        seq: u64,
        field: &'static str,
        reason: &'static str,
    },
    #[error("{}", missing_message(*.from, *.to))]
    Missing { from: u64, to: u64 },
    #[error("event {found} comes after event {previous}: events are reordered or repeated")]
    OutOfOrder { previous: u64, found: u64 },
    #[error("{}", broken_link_message(*.seq, .expected, .found))]
    BrokenLink {
        seq: u64,
        expected: String,
        found: String,
    },
    #[error(
        "event {seq} was changed after it was recorded: its content hashes to {computed}, \
         not to its recorded hash {recorded}"
    )]
    Edited {
        seq: u64,
        recorded: String,
        computed: String,
    },
    #[error(
        "the head says event {count} hashes to {expected}, but this log gives {found}: \
         the log was rewritten"
    )]
    HeadMismatch {
        count: u64,
        expected: String,
        found: String,
    },
    #[error(
        "the log stops at event {last} but the head counts {head_count} events: the last \
         events are missing"
    )]
    Truncated { last: u64, head_count: u64 },
}

fn missing_message(from: u64, to: u64) -> String {
    if from == to {
        format!("event {from} is missing: deleted, or left out of this log")
    } else {
        format!("events {from} to {to} are missing: deleted, or left out of this log")
    }
}

fn broken_link_message(seq: u64, expected: &str, found: &str) -> String {
    if seq == 1 {
        format!("event 1 does not start the chain: its prev_hash is {found}, not 64 zeros")
    } else {
        let before = seq - 1;
        format!(
            "event {seq} does not follow event {before}: its prev_hash is {found}, but event \
             {before} hashes to {expected}; event {before} was changed (and its hash \
             recomputed), or an event was removed or inserted here"
        )
    }
}

impl ChainError {
    /// The first event the problem concerns.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Unhashable { seq, .. }
            | Self::BrokenLink { seq, .. }
            | Self::Edited { seq, .. } => *seq,
            Self::Missing { from, .. } => *from,
            Self::OutOfOrder { found, .. } => *found,
            Self::HeadMismatch { count, .. } => *count,
            Self::Truncated { last, .. } => last + 1,
        }
    }
}

/// The exact text that is hashed for an event (see the module documentation).
pub fn preimage(event: &EventContent<'_>, prev_hash: &str) -> Result<String, ChainError> {
    let unhashable = |field, reason| ChainError::Unhashable {
        seq: event.seq,
        field,
        reason,
    };
    for (field, value) in [
        ("actor", Some(event.actor)),
        ("action", Some(event.action)),
        ("window_id", event.window_id),
        ("entry_id", event.entry_id),
        ("prev_hash", Some(prev_hash)),
    ] {
        match value {
            Some("") => return Err(unhashable(field, "is empty")),
            Some(v) if v.contains('\n') => return Err(unhashable(field, "holds a line feed")),
            _ => {}
        }
    }
    Ok(format!(
        "{FORMAT}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        event.seq,
        format_time(event.at),
        event.actor,
        event.action,
        event.window_id.unwrap_or_default(),
        event.entry_id.unwrap_or_default(),
        canonical_json(event.detail),
        prev_hash,
    ))
}

/// `hex(SHA-256(preimage))`: the hash of an event chained after `prev_hash`.
pub fn event_hash(event: &EventContent<'_>, prev_hash: &str) -> Result<String, ChainError> {
    Ok(crate::draw::hex(sha256(
        preimage(event, prev_hash)?.as_bytes(),
    )))
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Checks a log event by event, in order, without holding it in memory.
///
/// Give it the heads saved earlier ([`ChainVerifier::expect_head`]) before the
/// events; each is checked when its event goes by, and [`ChainVerifier::finish`]
/// reports a head beyond the last event as events cut off the end.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    count: u64,
    hash: String,
    at: Option<DateTime<Utc>>,
    heads: BTreeMap<u64, String>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self {
            count: 0,
            hash: GENESIS_HASH.to_owned(),
            at: None,
            heads: BTreeMap::new(),
        }
    }

    /// Also checks the log against this head. Two heads for the same count must agree.
    pub fn expect_head(&mut self, head: &AuditHead) -> Result<(), ChainError> {
        if head.count == 0 && !same(&head.hash, GENESIS_HASH) {
            return Err(ChainError::HeadMismatch {
                count: 0,
                expected: head.hash.clone(),
                found: GENESIS_HASH.to_owned(),
            });
        }
        match self.heads.get(&head.count) {
            Some(known) if !same(known, &head.hash) => Err(ChainError::HeadMismatch {
                count: head.count,
                expected: known.clone(),
                found: head.hash.clone(),
            }),
            _ => {
                self.heads.insert(head.count, head.hash.clone());
                Ok(())
            }
        }
    }

    /// Checks the next event: its place, its link to the one before, its own hash.
    pub fn push(&mut self, event: &ChainEvent) -> Result<(), ChainError> {
        let expected_seq = self.count + 1;
        if event.seq < expected_seq {
            return Err(ChainError::OutOfOrder {
                previous: self.count,
                found: event.seq,
            });
        }
        if event.seq > expected_seq {
            return Err(ChainError::Missing {
                from: expected_seq,
                to: event.seq - 1,
            });
        }
        if !same(&event.prev_hash, &self.hash) {
            return Err(ChainError::BrokenLink {
                seq: event.seq,
                expected: self.hash.clone(),
                found: event.prev_hash.clone(),
            });
        }
        let computed = event_hash(&event.content(), &event.prev_hash)?;
        if !same(&computed, &event.hash) {
            return Err(ChainError::Edited {
                seq: event.seq,
                recorded: event.hash.clone(),
                computed,
            });
        }
        if let Some(expected) = self.heads.get(&event.seq)
            && !same(expected, &computed)
        {
            return Err(ChainError::HeadMismatch {
                count: event.seq,
                expected: expected.clone(),
                found: computed,
            });
        }
        self.count = event.seq;
        self.hash = computed;
        self.at = Some(event.at);
        Ok(())
    }

    /// Events checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The head of the events checked so far.
    pub fn head(&self) -> AuditHead {
        AuditHead {
            count: self.count,
            hash: self.hash.clone(),
            at: self.at,
        }
    }

    /// The end of the log: every head given must have been reached.
    pub fn finish(self) -> Result<AuditHead, ChainError> {
        if let Some((&head_count, _)) = self.heads.range(self.count + 1..).next_back() {
            return Err(ChainError::Truncated {
                last: self.count,
                head_count,
            });
        }
        Ok(self.head())
    }
}

/// Builds the event that follows `prev` (the service's append, and tests).
pub fn chain_next(
    prev: &AuditHead,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    window_id: Option<&str>,
    entry_id: Option<&str>,
    detail: Value,
) -> Result<ChainEvent, ChainError> {
    let content = EventContent {
        seq: prev.count + 1,
        at: event_time(at),
        actor,
        action,
        window_id,
        entry_id,
        detail: &detail,
    };
    let hash = event_hash(&content, &prev.hash)?;
    Ok(ChainEvent {
        seq: content.seq,
        at: content.at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        window_id: window_id.map(str::to_owned),
        entry_id: entry_id.map(str::to_owned),
        detail,
        prev_hash: prev.hash.clone(),
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().into()
    }

    /// A log of `n` events, correctly chained.
    fn log(n: u64) -> Vec<ChainEvent> {
        let mut head = AuditHead::genesis();
        let mut events = Vec::new();
        for i in 0..n {
            let event = chain_next(
                &head,
                at("2026-12-05T10:00:00.123456789Z") + chrono::Duration::seconds(i as i64),
                "staff:0011223344556677",
                if i % 2 == 0 {
                    "window.opened"
                } else {
                    "entry.registered"
                },
                Some("a1b2c3d4e5f60718"),
                (i % 2 == 1).then_some("00112233445566778899aabbccddeeff"),
                json!({ "n": i, "state": "open" }),
            )
            .unwrap();
            head = AuditHead {
                count: event.seq,
                hash: event.hash.clone(),
                at: Some(event.at),
            };
            events.push(event);
        }
        events
    }

    fn check(events: &[ChainEvent], heads: &[AuditHead]) -> Result<AuditHead, ChainError> {
        let mut verifier = ChainVerifier::new();
        for head in heads {
            verifier.expect_head(head)?;
        }
        for event in events {
            verifier.push(event)?;
        }
        verifier.finish()
    }

    #[test]
    fn the_hashed_text_is_the_documented_one() {
        let detail = json!({"to": "open", "from": "draft"});
        let event = EventContent {
            seq: 7,
            at: at("2026-12-05T10:00:00.5Z"),
            actor: "system",
            action: "window.opened",
            window_id: Some("a1b2"),
            entry_id: None,
            detail: &detail,
        };
        let text = preimage(&event, GENESIS_HASH).unwrap();
        assert_eq!(
            text,
            format!(
                "tirage-audit-v1\n7\n2026-12-05T10:00:00.500000Z\nsystem\nwindow.opened\na1b2\n\n\
                 {{\"from\":\"draft\",\"to\":\"open\"}}\n{GENESIS_HASH}\n"
            )
        );
        assert_eq!(
            event_hash(&event, GENESIS_HASH).unwrap(),
            hex::encode(sha256(text.as_bytes()))
        );
    }

    #[test]
    fn a_known_answer() {
        // Computed independently with:
        // printf 'tirage-audit-v1\n1\n2026-01-01T00:00:00.000000Z\nsystem\nstaff_token.seeded\n\n\n{"token":"00"}\n%064d\n' 0 | sha256sum
        let detail = json!({"token": "00"});
        let event = EventContent {
            seq: 1,
            at: at("2026-01-01T00:00:00Z"),
            actor: "system",
            action: "staff_token.seeded",
            window_id: None,
            entry_id: None,
            detail: &detail,
        };
        assert_eq!(
            event_hash(&event, GENESIS_HASH).unwrap(),
            "6fd4dc3d73c00abb1786e229e0ba8fe47bc163e8f56c17543ecbb292c1b04544"
        );
    }

    #[test]
    fn a_correct_log_verifies_and_gives_its_head() {
        let events = log(5);
        let head = check(&events, &[]).unwrap();
        assert_eq!(head.count, 5);
        assert_eq!(head.hash, events[4].hash);
        assert_eq!(check(&[], &[]).unwrap(), AuditHead::genesis());
        // Its own head, and an earlier one, agree with it.
        let earlier = AuditHead {
            count: 2,
            hash: events[1].hash.clone(),
            at: None,
        };
        check(&events, &[head, earlier]).unwrap();
    }

    #[test]
    fn times_are_kept_to_the_microsecond() {
        let events = log(1);
        assert_eq!(format_time(events[0].at), "2026-12-05T10:00:00.123456Z");
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["at"], "2026-12-05T10:00:00.123456Z");
        let back: ChainEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, events[0]);
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut events = log(4);
        events[2].detail = json!({ "n": 99, "state": "open" });
        assert!(matches!(
            check(&events, &[]),
            Err(ChainError::Edited { seq: 3, .. })
        ));
    }

    #[test]
    fn an_edited_event_with_a_recomputed_hash_breaks_the_next_link() {
        let mut events = log(4);
        events[1].actor = "staff:ffffffffffffffff".into();
        events[1].hash = event_hash(&events[1].content(), &events[1].prev_hash).unwrap();
        let error = check(&events, &[]).unwrap_err();
        assert!(
            matches!(error, ChainError::BrokenLink { seq: 3, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("event 2 was changed"), "{error}");
    }

    #[test]
    fn a_deleted_event_is_a_gap() {
        let mut events = log(5);
        events.remove(2);
        assert_eq!(
            check(&events, &[]),
            Err(ChainError::Missing { from: 3, to: 3 })
        );
        let error = check(&log(5)[2..], &[]).unwrap_err();
        assert_eq!(error, ChainError::Missing { from: 1, to: 2 });
        assert_eq!(
            error.to_string(),
            "events 1 to 2 are missing: deleted, or left out of this log"
        );
    }

    #[test]
    fn a_deleted_event_with_renumbering_breaks_the_link() {
        let mut events = log(5);
        events.remove(2);
        for event in &mut events[2..] {
            event.seq -= 1;
        }
        assert!(matches!(
            check(&events, &[]),
            Err(ChainError::BrokenLink { seq: 3, .. })
        ));
    }

    #[test]
    fn reordered_or_repeated_events_are_named() {
        let mut events = log(4);
        events.swap(1, 2);
        assert_eq!(
            check(&events, &[]),
            Err(ChainError::Missing { from: 2, to: 2 })
        );
        let mut events = log(4);
        events.insert(2, events[1].clone());
        assert_eq!(
            check(&events, &[]),
            Err(ChainError::OutOfOrder {
                previous: 2,
                found: 2
            })
        );
    }

    #[test]
    fn events_cut_off_the_end_are_seen_against_a_saved_head() {
        let events = log(5);
        let head = check(&events, &[]).unwrap();
        assert_eq!(
            check(&events[..3], std::slice::from_ref(&head)),
            Err(ChainError::Truncated {
                last: 3,
                head_count: 5
            })
        );
        // A rewritten history is seen against an older head.
        let mut rewritten = log(5);
        rewritten[0].detail = json!({});
        let mut prev = AuditHead::genesis();
        for event in &mut rewritten {
            event.prev_hash = prev.hash.clone();
            event.hash = event_hash(&event.content(), &event.prev_hash).unwrap();
            prev.hash = event.hash.clone();
        }
        assert!(matches!(
            check(&rewritten, &[head]),
            Err(ChainError::HeadMismatch { count: 5, .. })
        ));
    }

    #[test]
    fn a_wrong_first_link_is_named() {
        let mut events = log(1);
        events[0].prev_hash = "11".repeat(32);
        let error = check(&events, &[]).unwrap_err();
        assert!(error.to_string().contains("not 64 zeros"), "{error}");
    }

    #[test]
    fn line_feeds_and_empty_ids_cannot_be_hashed() {
        let head = AuditHead::genesis();
        let t = at("2026-01-01T00:00:00Z");
        let error = chain_next(&head, t, "system", "a\nb", None, None, json!({})).unwrap_err();
        assert_eq!(
            error,
            ChainError::Unhashable {
                seq: 1,
                field: "action",
                reason: "holds a line feed"
            }
        );
        assert!(chain_next(&head, t, "system", "x", Some(""), None, json!({})).is_err());
        // A line feed inside the detail is escaped by JSON: fine.
        chain_next(&head, t, "system", "x", None, None, json!({"k": "a\nb"})).unwrap();
    }
}
