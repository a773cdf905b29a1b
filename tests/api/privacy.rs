//! Public views never show personal data or the window's secret.

use std::sync::{Arc, Mutex};

use axum::http::Method;
use serde_json::json;
use unicode_normalization::UnicodeNormalization;

use crate::helpers::{ADMIN_TOKEN, TestApp, applicant, at};

#[tokio::test]
async fn public_responses_hold_no_personal_data_and_no_secret() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let applicant = json!({
        "family_name": "Zyxwvutsrq",
        "given_names": "Qponmlkjih",
        "birth_date": "1987-06-29",
        "nationality": "ZZZ",
        "document": {"kind": "passport", "number": "XQ9876543", "country": "ZZZ"},
        "email": "recognisable.person@example.net",
        "phone": "+447700900123",
        "permit_expires_on": "2027-02-11"
    });
    let receipt = app.register(&window_id, &applicant).await.json;
    let code = app.code_from_mail(1).await;
    let access = receipt["access_code"].as_str().unwrap();
    let staff = app.token("staff").await;
    let counter = json!({
        "family_name": "Counterperson", "given_names": "Walkin", "birth_date": "1970-01-02",
        "nationality": "YYY", "document": {"kind": "foreigner_number", "number": "9912345678", "country": "FRA"}
    });
    app.post(
        &format!("/api/v1/windows/{window_id}/counter-entries"),
        Some(&staff),
        &counter,
    )
    .await
    .assert_status(201);

    let secret = hex::encode(
        app.store()
            .window_secret(&window_id)
            .await
            .unwrap()
            .unwrap(),
    );
    let recognisable = [
        "Zyxwvutsrq",
        "Qponmlkjih",
        "1987-06-29",
        "ZZZ",
        "XQ9876543",
        "recognisable",
        "447700900123",
        "2027-02-11",
        "Counterperson",
        "Walkin",
        "9912345678",
        access,
        &code,
        &secret,
    ];
    let public = [
        "/api/v1/windows".to_owned(),
        format!("/api/v1/windows/{window_id}"),
        format!("/api/v1/windows/{window_id}/slots"),
        "/api/openapi.json".to_owned(),
        "/healthz".to_owned(),
    ];
    for uri in &public {
        let answer = app.get(uri, None).await;
        answer.assert_status(200);
        for value in recognisable {
            assert!(!answer.text.contains(value), "{uri} shows {value}");
        }
    }
    // Staff views of the window are no different, and the audit trail holds ids only.
    for uri in [
        format!("/api/v1/windows/{window_id}"),
        format!("/api/v1/windows/{window_id}/events"),
    ] {
        let answer = app.get(&uri, Some(ADMIN_TOKEN)).await;
        answer.assert_status(200);
        for value in recognisable {
            assert!(!answer.text.contains(value), "{uri} shows {value}");
        }
    }
    let window = app
        .get(&format!("/api/v1/windows/{window_id}"), None)
        .await
        .json;
    assert_eq!(
        window["entries"],
        json!({"pending_verification": 1, "eligible": 1, "withdrawn": 0})
    );
    assert!(window.get("secret").is_none());
}

/// Log lines written while a test runs, captured by a subscriber of its own.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every form a value could take in a response or a log line, lowercased (haystacks
/// are lowercased too): as given, with accents folded, JSON-escaped, percent-encoded,
/// HTML-escaped, and for dates and phones their other usual spellings.
fn spellings(value: &str) -> Vec<String> {
    let lower = value.to_lowercase();
    let folded: String = lower
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect();
    let json_escaped = value
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("\\u{:04x}", c as u32)
            }
        })
        .collect::<String>()
        .to_lowercase();
    let percent: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b.to_ascii_lowercase()).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect();
    let html: String = value
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("&#{};", c as u32)
            }
        })
        .collect::<String>()
        .to_lowercase();
    let mut forms = vec![lower, folded, json_escaped, percent, html];
    // a date as the pages and the mails write it
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        forms.push(date.format("%d/%m/%Y").to_string());
        forms.push(date.format("%Y%m%d").to_string());
        forms.push(date.format("%d.%m.%Y").to_string());
    }
    // a phone number without its country code, spaced or not
    if let Some(international) = value.strip_prefix("+44") {
        forms.push(international.to_owned());
        forms.push(format!("0{international}"));
        forms.push(format!("0{} {}", &international[..4], &international[4..]));
    }
    forms.sort();
    forms.dedup();
    forms
}

/// Fails naming the place and the value if `text` holds any spelling of any value.
#[track_caller]
fn assert_clean(place: &str, text: &str, values: &[&str]) {
    let text = text.to_lowercase();
    for value in values {
        for form in spellings(value) {
            assert!(
                !text.contains(&form),
                "{place} shows {value:?} (as {form:?})"
            );
        }
    }
}

#[test]
fn the_scan_finds_a_value_in_any_of_its_spellings() {
    let forms = spellings("Zébulonne");
    for form in [
        "zébulonne",
        "zebulonne",
        "z\\u00e9bulonne",
        "z%c3%a9bulonne",
        "z&#233;bulonne",
    ] {
        assert!(
            forms.contains(&form.to_owned()),
            "{form} missing from {forms:?}"
        );
    }
    assert!(spellings("1987-06-29").contains(&"29/06/1987".to_owned()));
    assert!(spellings("+447700900123").contains(&"07700 900123".to_owned()));
    for leak in [
        "a log line: name=ZEBULONNE",
        r#"{"given_names":"Z\u00e9bulonne"}"#,
        "/entry?name=Z%C3%A9bulonne",
        "born 29/06/1987",
    ] {
        let caught = std::panic::catch_unwind(|| {
            assert_clean("text", leak, &["Zébulonne", "1987-06-29"]);
        });
        assert!(caught.is_err(), "{leak} not caught");
    }
    assert_clean("text", "nothing to see", &["Zébulonne", "1987-06-29"]);
}

#[tokio::test]
async fn nothing_public_and_no_log_line_shows_personal_data_through_a_whole_window() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Every task of this test runs on its thread (a current-thread runtime).
    let _logging = tracing::subscriber::set_default(subscriber);

    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let person = json!({
        "family_name": "Vénérable-Quixotesqué",
        "given_names": "Æthelwynn Zébulonne",
        "birth_date": "1987-06-29",
        "nationality": "GBR",
        "document": {"kind": "passport", "number": "XQ9876543", "country": "GBR"},
        "email": "Recognisable.Person@Example.net",
        "phone": "+447700900123",
        "permit_expires_on": "2027-02-11",
        "language": "en"
    });
    let receipt = app.register(&window_id, &person).await;
    let receipt = receipt.assert_status(201).clone();
    let entry_id = receipt["entry_id"].as_str().unwrap().to_owned();
    let access = receipt["access_code"].as_str().unwrap().to_owned();
    let code = app.code_from_mail(1).await;
    app.post(
        &format!("/api/v1/entries/{entry_id}/verify"),
        Some(&access),
        &json!({ "code": code }),
    )
    .await
    .assert_status(200);
    // Others, so that there is a waiting list, and a correction of a name by staff.
    let mut everyone = vec![(entry_id.clone(), access.clone())];
    for n in 1..=3 {
        everyone.push(app.counter_entry(&window_id, &applicant(n)).await);
    }
    let staff = app.token("staff").await;
    app.post(
        &format!("/api/v1/entries/{entry_id}/corrections"),
        Some(&staff),
        &json!({"given_names": "Æthelwynn Zébulonnette", "reason": "as on the passport"}),
    )
    .await
    .assert_status(201);

    // The window runs to its end: close, draw, results, the holder gives the slot back
    // and it is offered down the waiting list.
    app.clock.set(at("2026-12-16T10:00:00Z"));
    app.close_and_draw(&window_id).await;
    let results = app
        .get(&format!("/api/v1/windows/{window_id}/results"), None)
        .await;
    results.assert_status(200);
    // Whoever holds the one slot gives it back; it is offered to the next in line.
    let mut holders = 0;
    for (id, code) in &everyone {
        let view = app.get(&format!("/api/v1/entries/{id}"), Some(code)).await;
        if view.assert_status(200)["draw"]["slot"].is_object() {
            app.post_empty(&format!("/api/v1/entries/{id}/cancel"), Some(code))
                .await
                .assert_status(200);
            holders += 1;
        }
    }
    assert_eq!(holders, 1, "one slot, one holder");
    let offered = app
        .get(&format!("/api/v1/windows/{window_id}/reassignments"), None)
        .await;
    offered.assert_status(200);
    assert_eq!(app.count("offers").await, 1, "the freed slot was offered");
    tirage::jobs::scheduler::tick(app.store(), &app.clock).await;

    let values = [
        "Vénérable-Quixotesqué",
        "Quixotesqué",
        "Æthelwynn",
        "Zébulonne",
        "1987-06-29",
        "XQ9876543",
        "Recognisable.Person@Example.net",
        "Recognisable.Person",
        "+447700900123",
    ];

    // Every GET operation of the API, called as the public calls it (no credential).
    let spec = app.get("/api/openapi.json", None).await;
    let mut fetched = 0;
    for (path, operations) in spec.json["paths"].as_object().unwrap() {
        if operations.get("get").is_none() {
            continue;
        }
        let uri = path
            .replace("{id}", &window_id)
            .replace("{entry_id}", &entry_id)
            .replace("{slot_id}", "s1");
        let answer = app.get(&uri, None).await;
        assert!(answer.status.as_u16() < 500, "{uri}: {}", answer.text);
        assert_clean(&uri, &answer.text, &values);
        fetched += 1;
    }
    assert!(fetched >= 15, "only {fetched} GET operations found");
    // The metrics are among them, public unless a metrics token is configured.
    let metrics = app.get("/metrics", None).await;
    metrics.assert_status(200);
    assert!(metrics.text.contains("# TYPE"), "{}", metrics.text);
    assert_clean("/metrics", &metrics.text, &values);
    // The bundle is among them too; check it was really there to read.
    let bundle = app
        .get(&format!("/api/v1/windows/{window_id}/bundle"), None)
        .await;
    assert_eq!(bundle.assert_status(200)["window_id"], window_id.as_str());

    // Every public page, in each language.
    for page in [
        "/".to_owned(),
        "/windows".to_owned(),
        format!("/windows/{window_id}"),
        format!("/windows/{window_id}/register"),
        "/entry".to_owned(),
        "/staff/sign-in".to_owned(),
        "/static/tirage.css".to_owned(),
        "/api/docs/".to_owned(),
    ] {
        for lang in ["fr", "en", "ar"] {
            let answer = app
                .send(
                    Method::GET,
                    &page,
                    None,
                    None,
                    &[("cookie", &format!("tirage_lang={lang}"))],
                )
                .await;
            assert!(answer.status.as_u16() < 500, "{page}: {}", answer.text);
            assert_clean(&format!("{page} ({lang})"), &answer.text, &values);
        }
    }

    // And nothing the service logged, at any level, while all this happened.
    let logged = logs.text();
    assert!(
        logged.contains("registration") || logged.contains("entry"),
        "the logs were captured: {logged}"
    );
    assert_clean("the logs", &logged, &values);
}
