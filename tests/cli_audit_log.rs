//! `tirage verify-log` as an auditor runs it on a downloaded audit log: the real binary,
//! its output and its exit codes (0 intact, 1 edited or incomplete, 2 unreadable). The
//! logs are made with the library, in the shapes the service publishes.

use std::io::Write as _;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tirage::attest::chain::{AuditHead, ChainEvent, chain_next, event_hash};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().into()
}

/// A correct log of `n` events.
fn log(n: u64) -> Vec<ChainEvent> {
    let mut head = AuditHead::genesis();
    (0..n)
        .map(|i| {
            let event = chain_next(
                &head,
                at("2026-12-05T10:00:00Z") + Duration::milliseconds(1500 * i as i64),
                if i == 0 {
                    "system"
                } else {
                    "staff:00aa11bb22cc33dd"
                },
                "window.opened",
                Some("a1b2c3d4e5f60718"),
                None,
                json!({ "n": i }),
            )
            .unwrap();
            head = AuditHead {
                count: event.seq,
                hash: event.hash.clone(),
                at: Some(event.at),
            };
            event
        })
        .collect()
}

fn head_of(events: &[ChainEvent]) -> AuditHead {
    let last = events.last().unwrap();
    AuditHead {
        count: last.seq,
        hash: last.hash.clone(),
        at: Some(last.at),
    }
}

/// The pages `GET /api/v1/audit/events` would give, `per_page` events each, one JSON
/// document after the other.
fn pages(events: &[ChainEvent], per_page: usize) -> String {
    let head = head_of(events);
    events
        .chunks(per_page)
        .map(|chunk| {
            let last = chunk.last().unwrap().seq;
            json!({
                "events": chunk,
                "next_after": (last < head.count).then_some(last),
                "head": head,
            })
            .to_string()
                + "\n"
        })
        .collect()
}

fn run(content: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(content.as_bytes()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .arg("verify-log")
        .arg(file.path())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn an_intact_log_verifies_in_every_shape() {
    let events = log(7);
    let as_array = serde_json::to_string(&events).unwrap();
    let as_lines: String = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    for content in [pages(&events, 3), pages(&events, 100), as_array, as_lines] {
        let (code, text) = run(&content, &[]);
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("OK    events 1 to 7"), "{text}");
        assert!(
            text.contains(&format!("last hash {}", events[6].hash)),
            "{text}"
        );
    }
}

#[test]
fn an_edited_event_is_named() {
    let mut events = log(7);
    events[3].detail = json!({ "n": 99 });
    let (code, text) = run(&pages(&events, 3), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL  event 4 was changed after it was recorded"),
        "{text}"
    );
    assert!(text.contains("events 1 to 3 check out"), "{text}");
}

#[test]
fn an_edited_event_with_a_recomputed_hash_is_named_by_the_next_link() {
    let mut events = log(7);
    events[3].actor = "system".into();
    events[3].hash = event_hash(&events[3].content(), &events[3].prev_hash).unwrap();
    let (code, text) = run(&serde_json::to_string(&events).unwrap(), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("event 5 does not follow event 4"), "{text}");
}

#[test]
fn missing_and_reordered_events_are_named() {
    let mut deleted = log(7);
    deleted.remove(2);
    let (code, text) = run(&serde_json::to_string(&deleted).unwrap(), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("event 3 is missing"), "{text}");

    let mut reordered = log(7);
    reordered.swap(4, 5);
    let (code, text) = run(&serde_json::to_string(&reordered).unwrap(), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("event 5 is missing"), "{text}");

    let mut repeated = log(7);
    repeated.insert(3, repeated[2].clone());
    let (code, text) = run(&serde_json::to_string(&repeated).unwrap(), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("event 3 comes after event 3"), "{text}");
}

#[test]
fn a_saved_head_pins_the_history() {
    let events = log(7);
    let mut saved = tempfile::NamedTempFile::new().unwrap();
    write!(
        saved,
        "{}",
        serde_json::to_string(&head_of(&events[..5])).unwrap()
    )
    .unwrap();
    let saved = saved.path().to_str().unwrap().to_owned();
    let array = serde_json::to_string(&events).unwrap();
    let (code, text) = run(&array, &["--head", &saved]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("1 head(s) matched, the latest at event 5"),
        "{text}"
    );

    // Cut off before the saved head.
    let cut = serde_json::to_string(&events[..4]).unwrap();
    let (code, text) = run(&cut, &["--head", &saved]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the log stops at event 4 but the head counts 5"),
        "{text}"
    );

    // Rewritten from the start, hashes and all.
    let mut rewritten = log(7);
    rewritten[0].detail = json!({ "n": "rewritten" });
    let mut prev = AuditHead::genesis().hash;
    for event in &mut rewritten {
        event.prev_hash = prev;
        event.hash = event_hash(&event.content(), &event.prev_hash).unwrap();
        prev = event.hash.clone();
    }
    let (code, text) = run(&serde_json::to_string(&rewritten).unwrap(), &[]);
    assert_eq!(
        code,
        Some(0),
        "without a head, a full rewrite is consistent: {text}"
    );
    assert!(text.contains("no head to compare with"), "{text}");
    let (code, text) = run(
        &serde_json::to_string(&rewritten).unwrap(),
        &["--head", &saved],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("the log was rewritten"), "{text}");
}

#[test]
fn the_last_page_must_reach_its_head() {
    let events = log(7);
    let all = pages(&events, 3);
    let first_two: String = all.lines().take(2).map(|l| format!("{l}\n")).collect();
    let (code, text) = run(&first_two, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the log stops at event 6 but the head counts 7"),
        "{text}"
    );
}

#[test]
fn unreadable_input_exits_with_2() {
    let mut missing_hash = serde_json::to_value(log(2)).unwrap();
    missing_hash[1].as_object_mut().unwrap().remove("hash");
    for (content, why) in [
        ("".to_owned(), "no events in the file"),
        ("{\"events\": [".to_owned(), "document 1: not JSON"),
        ("[1, 2]".to_owned(), "[0]: not an audit event"),
        ("{\"hello\": 1}".to_owned(), "expected a page"),
        (
            missing_hash.to_string(),
            "[1]: not an audit event: missing field `hash`",
        ),
    ] {
        let (code, text) = run(&content, &[]);
        assert_eq!(code, Some(2), "{why}: {text}");
        assert!(text.contains(why), "{why}: {text}");
    }
    let (code, text) = run("[]", &["--head", "/nonexistent/head.json"]);
    assert_eq!(code, Some(2), "{text}");
}

#[test]
fn a_json_report_for_scripts() {
    let mut events = log(4);
    events[1].action = "window.cancelled".into();
    let out = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .args(["verify-log", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(serde_json::to_string(&events).unwrap().as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["checked"], 1);
    assert_eq!(report["problem"]["kind"], "edited");
    assert_eq!(report["problem"]["seq"], 2);
}
