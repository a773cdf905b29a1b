//! The hash-chained audit log: every change is chained, the head is public, the events
//! are for auditors, and an edited, deleted or cut-off event is detected, by the
//! server's check and by `tirage verify-log` on a downloaded copy.

use std::io::Write as _;
use std::process::Command;

use serde_json::{Value, json};
use tirage::attest::chain::{ChainEvent, GENESIS_HASH, event_hash};

use crate::helpers::{
    ADMIN_TOKEN, TestApp, applicant, call, post_request, registered_and_verified,
};

/// Every event, page by page, as an auditor downloads them; with the pages themselves.
async fn download(app: &TestApp, token: &str, limit: u32) -> (Vec<Value>, Vec<Value>) {
    let mut pages = Vec::new();
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .get(
                &format!("/api/v1/audit/events?after={after}&limit={limit}"),
                Some(token),
            )
            .await;
        let page = page.assert_status(200).clone();
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        let next = page["next_after"].as_u64();
        pages.push(page);
        match next {
            Some(next) => after = next,
            None => return (pages, events),
        }
    }
}

/// A window, two applicants (one verified), a withdrawal: a few kinds of events.
async fn some_activity(app: &TestApp) -> String {
    let window_id = app.open_window().await;
    registered_and_verified(app, &window_id, 1, 0).await;
    let receipt = app.register(&window_id, &applicant(2)).await;
    let receipt = receipt.assert_status(201);
    let (entry, access) = (
        receipt["entry_id"].as_str().unwrap(),
        receipt["access_code"].as_str().unwrap(),
    );
    app.post_empty(&format!("/api/v1/entries/{entry}/withdraw"), Some(access))
        .await
        .assert_status(200);
    window_id
}

/// Runs raw SQL on the database, around the service (as an intruder would).
async fn raw(app: &TestApp, sql: &str) {
    app.execute(sql).await.unwrap();
}

/// Drops the append-only triggers, as someone with access to the database file could.
async fn drop_triggers(app: &TestApp) {
    app.drop_trigger("audit_events", "audit_events_no_update")
        .await;
    app.drop_trigger("audit_events", "audit_events_no_delete")
        .await;
}

/// The server's own check (as admin: creating an auditor token would be one more event).
async fn server_check(app: &TestApp) -> Value {
    app.get("/api/v1/audit/verify", Some(ADMIN_TOKEN))
        .await
        .assert_status(200)
        .clone()
}

fn verify_log(pages: &[Value], extra: &[&str]) -> (Option<i32>, String) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for page in pages {
        // Saved one after the other, as `curl ... >> log.json` would.
        writeln!(file, "{page}").unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .arg("verify-log")
        .arg(file.path())
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn every_change_is_chained_and_the_head_is_public() {
    let app = TestApp::spawn().await;
    let window_id = some_activity(&app).await;

    let head = app.get("/api/v1/audit/head", None).await;
    let head = head.assert_status(200);
    let auditor = app.token("auditor").await;
    let (_, events) = download(&app, &auditor, 1000).await;
    // Creating the auditor's token is one more event, after the head read above.
    assert_eq!(events.len() as u64, head["count"].as_u64().unwrap() + 1);
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "staff_token.seeded",
            "signing_key.created",
            "window.created",
            "window.open",
            "entry.registered",
            "entry.verified",
            "entry.registered",
            "entry.withdrawn",
            "staff_token.created",
        ]
    );
    let mut prev = GENESIS_HASH.to_owned();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as u64 + 1);
        assert_eq!(event["prev_hash"], prev.as_str());
        let parsed: ChainEvent = serde_json::from_value(event.clone()).unwrap();
        assert_eq!(
            event_hash(&parsed.content(), &parsed.prev_hash).unwrap(),
            parsed.hash
        );
        prev = parsed.hash;
    }
    assert_eq!(head["hash"], events[7]["hash"]);
    assert_eq!(head["at"], events[7]["at"]);
    assert_eq!(events[3]["window_id"], window_id.as_str());

    let check = server_check(&app).await;
    assert_eq!(check["ok"], true, "{check}");
    assert!(check["problem"].is_null());
    assert_eq!(check["computed_head"], check["head"]);
}

#[tokio::test]
async fn events_are_for_auditors_and_carry_no_personal_data() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    app.get("/api/v1/audit/events", None)
        .await
        .assert_problem(401, "unauthorized");
    app.get("/api/v1/audit/verify", None)
        .await
        .assert_problem(401, "unauthorized");
    let auditor = app.token("auditor").await;
    let page = app.get("/api/v1/audit/events", Some(&auditor)).await;
    let text = page.text.to_lowercase();
    let person = applicant(1);
    for value in [
        person["family_name"].as_str().unwrap(),
        person["email"].as_str().unwrap(),
        person["phone"].as_str().unwrap(),
        person["document"]["number"].as_str().unwrap(),
        "1991-03-14",
        "aminata",
    ] {
        assert!(!text.contains(&value.to_lowercase()), "{value} in {text}");
    }
}

#[tokio::test]
async fn pages_follow_each_other() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    let auditor = app.token("auditor").await;
    let (pages, events) = download(&app, &auditor, 3).await;
    let (_, all) = download(&app, &auditor, 10_000).await;
    assert_eq!(events, all);
    assert_eq!(pages.len(), 3, "9 events, 3 per page");
    assert_eq!(pages[0]["next_after"], 3);
    assert!(pages[2]["next_after"].is_null());
}

#[tokio::test]
async fn bad_paging_is_refused_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("after=-1", "after"),
        ("after=x", "after"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=1.5", "limit"),
    ] {
        let answer = app
            .get(&format!("/api/v1/audit/events?{query}"), Some(ADMIN_TOKEN))
            .await;
        let problem = answer.assert_problem(422, "validation");
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn a_downloaded_log_verifies_offline_and_pins_the_history() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    let auditor = app.token("auditor").await;
    let (pages, _) = download(&app, &auditor, 4).await;
    let (code, text) = verify_log(&pages, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the audit log is intact"), "{text}");

    // The head saved today pins the history: a copy downloaded later must extend it.
    let head = app.get("/api/v1/audit/head", None).await.json;
    let mut saved = tempfile::NamedTempFile::new().unwrap();
    write!(saved, "{head}").unwrap();
    let saved = saved.path().to_str().unwrap().to_owned();
    let (later, _) = download(&app, &auditor, 100).await;
    let (code, text) = verify_log(&later, &["--head", &saved]);
    assert_eq!(code, Some(0), "{text}");

    // A copy missing the last events does not reach the saved head.
    let mut cut = later[0].clone();
    cut["events"].as_array_mut().unwrap().truncate(5);
    cut.as_object_mut().unwrap().remove("head");
    let (code, text) = verify_log(&[cut], &["--head", &saved]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("the last events are missing"), "{text}");
}

#[tokio::test]
async fn an_edited_event_is_detected() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    drop_triggers(&app).await;
    // Someone rewrites who withdrew the entry.
    raw(
        &app,
        "update audit_events set actor = 'staff:0000000000000000' where seq = 8",
    )
    .await;
    let check = server_check(&app).await;
    assert_eq!(check["ok"], false);
    assert_eq!(check["problem"]["kind"], "edited");
    assert_eq!(check["problem"]["seq"], 8);
    assert_eq!(check["checked"], 7);
    assert!(
        check["problem"]["message"]
            .as_str()
            .unwrap()
            .contains("event 8 was changed")
    );

    let auditor = app.token("auditor").await;
    let (pages, _) = download(&app, &auditor, 1000).await;
    let (code, text) = verify_log(&pages, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  event 8 was changed"), "{text}");
}

#[tokio::test]
async fn an_edited_event_with_its_hash_recomputed_is_detected() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    let auditor = app.token("auditor").await;
    let (_, events) = download(&app, &auditor, 1000).await;
    let mut forged: ChainEvent = serde_json::from_value(events[4].clone()).unwrap();
    forged.detail = json!({"weight": 1000000});
    let hash = event_hash(&forged.content(), &forged.prev_hash).unwrap();
    drop_triggers(&app).await;
    raw(
        &app,
        &format!(
            "update audit_events set detail = '{{\"weight\":1000000}}', hash = '{hash}' \
             where seq = 5"
        ),
    )
    .await;
    let check = server_check(&app).await;
    assert_eq!(check["problem"]["kind"], "broken_link", "{check}");
    assert_eq!(check["problem"]["seq"], 6);
    assert!(
        check["problem"]["message"]
            .as_str()
            .unwrap()
            .contains("event 5 was changed")
    );
}

#[tokio::test]
async fn a_deleted_event_is_detected() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    drop_triggers(&app).await;
    raw(&app, "delete from audit_events where seq = 4").await;
    let check = server_check(&app).await;
    assert_eq!(check["ok"], false);
    assert_eq!(check["problem"]["kind"], "missing", "{check}");
    assert_eq!(check["problem"]["seq"], 4);

    let auditor = app.token("auditor").await;
    let (pages, _) = download(&app, &auditor, 1000).await;
    let (code, text) = verify_log(&pages, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("event 4 is missing"), "{text}");
}

#[tokio::test]
async fn events_cut_off_the_end_are_detected_against_the_head() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    drop_triggers(&app).await;
    raw(&app, "delete from audit_events where seq >= 7").await;
    let check = server_check(&app).await;
    assert_eq!(check["problem"]["kind"], "truncated", "{check}");
}

#[tokio::test]
async fn the_triggers_refuse_changes_through_the_database() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    for sql in [
        "update audit_events set detail = '{}' where seq = 3",
        "update audit_events set hash = null where seq = 3",
        "delete from audit_events where seq = 3",
        "update audit_head set count = count - 1",
        "update audit_head set count = count + 2",
        "delete from audit_head",
    ] {
        let error = app.execute(sql).await.unwrap_err();
        assert!(error.to_string().contains("audit"), "{sql}: {error}");
    }
    assert_eq!(server_check(&app).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_keep_one_chain() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let mut set = tokio::task::JoinSet::new();
    for n in 10..40 {
        let router = app.router.clone();
        let uri = format!("/api/v1/windows/{window_id}/entries");
        set.spawn(async move { call(router, post_request(&uri, &applicant(n))).await });
    }
    while let Some(answer) = set.join_next().await {
        answer.unwrap().assert_status(201);
    }
    let check = server_check(&app).await;
    assert_eq!(check["ok"], true, "{check}");
    // seeded token, key, window created and opened, 30 registrations
    assert_eq!(check["head"]["count"], 34);
}

#[tokio::test]
async fn events_recorded_before_the_chain_are_chained_at_start() {
    let app = TestApp::spawn().await;
    some_activity(&app).await;
    // Events as an older version wrote them: no seq, no hashes.
    app.drop_trigger("audit_events", "audit_events_no_update")
        .await;
    raw(
        &app,
        "insert into audit_events (at, actor, action, window_id, entry_id, detail)
         values ('2026-12-05T10:00:00.123456789+00:00', 'system', 'legacy.one', null, null, '{}'),
                ('2026-12-05T10:00:01+00:00', 'applicant', 'legacy.two', 'w1', 'e1', '{\"b\":1,\"a\":2}')",
    )
    .await;
    assert_eq!(server_check(&app).await["problem"]["kind"], "unchained");
    assert_eq!(app.store().seal_audit_log().await.unwrap(), 2);
    assert_eq!(app.store().seal_audit_log().await.unwrap(), 0);
    let check = server_check(&app).await;
    assert_eq!(check["ok"], true, "{check}");
    let auditor = app.token("auditor").await;
    let (_, events) = download(&app, &auditor, 1000).await;
    let legacy: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("legacy"))
        .collect();
    // SQLite kept the nanoseconds the old version wrote and sealing truncates them;
    // PostgreSQL rounded them to microseconds when the row was written.
    let at = match app.store().db() {
        tirage::store::Db::Sqlite(_) => "2026-12-05T10:00:00.123456Z",
        tirage::store::Db::Postgres(_) => "2026-12-05T10:00:00.123457Z",
    };
    assert_eq!(legacy[0]["at"], at);
    assert_eq!(legacy[1]["detail"], json!({"a": 2, "b": 1}));
    // After the 8 events of the activity.
    assert_eq!(
        (legacy[0]["seq"].as_u64(), legacy[1]["seq"].as_u64()),
        (Some(9), Some(10))
    );
}
