//! Entries drawn without a slot continue into the next window of the same site and
//! procedure, with one more lost draw counted: visible in the next bundle's weights.

use serde_json::{Value, json};
use tirage::draw::Bundle;
use tirage::draw::verify::check_bundle;

use crate::helpers::{ADMIN_TOKEN, TestApp, applicant, at, code_in};

fn window(opens: &str, closes: &str, draw: &str, slot: &str, procedure: &str) -> Value {
    json!({
        "site": "34",
        "procedure": procedure,
        "registration_opens_at": opens,
        "registration_closes_at": closes,
        "draw_at": draw,
        "beacon": "none",
        "slots": [{"starts_at": slot, "counter": "G1"}]
    })
}

async fn open(app: &TestApp, body: &Value) -> String {
    let id = app.create_window(body).await;
    app.post_empty(&format!("/api/v1/windows/{id}/open"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    id
}

async fn close_and_draw(app: &TestApp, id: &str, draw_time: &str) -> Bundle {
    app.clock.set(at(draw_time));
    app.post_empty(&format!("/api/v1/windows/{id}/close"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    app.post_empty(&format!("/api/v1/windows/{id}/draw"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    let bundle = app.get(&format!("/api/v1/windows/{id}/bundle"), None).await;
    serde_json::from_str(&bundle.text).unwrap()
}

#[tokio::test]
async fn unsuccessful_entries_are_carried_with_their_bonus() {
    let app = TestApp::spawn().await;
    let first = open(
        &app,
        &window(
            "2026-12-01T08:00:00Z",
            "2026-12-15T18:00:00Z",
            "2026-12-16T10:00:00Z",
            "2027-01-04T08:30:00Z",
            "renewal",
        ),
    )
    .await;
    // Four people at the counter, two of them with an e-mail address.
    let mut receipts = Vec::new();
    for n in 1..=4u32 {
        let mut body = applicant(n);
        if n > 2 {
            body.as_object_mut().unwrap().remove("email");
        }
        let answer = app
            .post(
                &format!("/api/v1/windows/{first}/counter-entries"),
                Some(ADMIN_TOKEN),
                &body,
            )
            .await;
        receipts.push(answer.assert_status(201).clone());
    }
    // A window of another procedure opened later must not receive them.
    let first_bundle = close_and_draw(&app, &first, "2026-12-16T10:00:00Z").await;
    let selected = first_bundle.results[0].id.to_hex();
    // The last on the waiting list gives up their place: they are not carried.
    let gave_up = first_bundle.results[3].id.to_hex();
    let access = |id: &str| {
        receipts.iter().find(|r| r["entry_id"] == id).unwrap()["access_code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    app.post_empty(
        &format!("/api/v1/entries/{gave_up}/cancel"),
        Some(&access(&gave_up)),
    )
    .await
    .assert_status(200);
    let waiting: Vec<String> = first_bundle.results[1..3]
        .iter()
        .map(|r| r.id.to_hex())
        .collect();

    app.clock.set(at("2026-12-20T09:00:00Z"));
    let other = open(
        &app,
        &window(
            "2026-12-20T08:00:00Z",
            "2027-01-10T18:00:00Z",
            "2027-01-11T10:00:00Z",
            "2027-02-01T08:30:00Z",
            "first_permit",
        ),
    )
    .await;
    let other_view = app.get(&format!("/api/v1/windows/{other}"), None).await;
    assert_eq!(other_view.json["entries"]["eligible"], 0);
    assert_eq!(other_view.json["entries"]["pending_verification"], 0);

    let second = open(
        &app,
        &window(
            "2026-12-20T08:00:00Z",
            "2027-01-10T18:00:00Z",
            "2027-01-11T10:00:00Z",
            "2027-02-01T08:30:00Z",
            "renewal",
        ),
    )
    .await;

    // The two still waiting are carried; the selected one and the one who gave up are not.
    let carried: Vec<(String, String, String, i64, i64)> = with_pool!(app, |pool| {
        sqlx::query_as(
            "select id, carried_from, status, unsuccessful_draws, weight from entries
             where window_id = $1 order by carried_from",
        )
        .bind(&second)
        .fetch_all(pool)
        .await
        .unwrap()
    });
    assert_eq!(carried.len(), 2);
    let mut from: Vec<String> = carried.iter().map(|c| c.1.clone()).collect();
    from.sort();
    let mut expected_from = waiting.clone();
    expected_from.sort();
    assert_eq!(from, expected_from);
    assert!(!from.contains(&selected) && !from.contains(&gave_up));

    // Carried entries have left the first window's waiting list: a slot given back
    // there now finds nobody to offer it to.
    app.post_empty(
        &format!("/api/v1/entries/{selected}/cancel"),
        Some(&access(&selected)),
    )
    .await
    .assert_status(200);
    let chain = app
        .get(&format!("/api/v1/windows/{first}/reassignments"), None)
        .await;
    assert!(
        chain
            .assert_status(200)
            .to_string()
            .contains("no_one_waiting"),
        "{}",
        chain.text
    );
    for (id, old, status, draws, weight) in &carried {
        assert_eq!(*draws, 1);
        let old_weight = first_bundle
            .entries
            .iter()
            .find(|e| e.id.to_hex() == *old)
            .unwrap()
            .weight;
        // same permit, later first slot: the urgency tier can only fall, the bonus adds 1
        assert!(
            *weight >= 2 && *weight <= i64::from(old_weight) + 1,
            "{id}: {weight} after {old_weight}"
        );
        let had_email = receipts
            .iter()
            .position(|r| r["entry_id"] == old.as_str())
            .is_some_and(|i| i < 2);
        assert_eq!(
            status,
            if had_email {
                "pending_verification"
            } else {
                "eligible"
            }
        );
    }

    // Those with an address confirm with the mailed code and their usual access code.
    // (the mailbox also holds the first draw's result mails and the cancellations)
    let expected_mails = carried
        .iter()
        .filter(|c| c.2 == "pending_verification")
        .count();
    let mut mails = Vec::new();
    for _ in 0..200 {
        mails = app
            .mails(1)
            .await
            .into_iter()
            .filter(|m| m.contains("prochain tirage") || m.contains("next draw"))
            .collect::<Vec<String>>();
        if mails.len() >= expected_mails {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(mails.len(), expected_mails);
    for mail in &mails {
        let (new_id, old_id) = carried
            .iter()
            .find(|c| mail.contains(&c.0))
            .map(|c| (c.0.clone(), c.1.clone()))
            .expect("the mail names the new entry id");
        let access = receipts
            .iter()
            .find(|r| r["entry_id"] == old_id.as_str())
            .unwrap()["access_code"]
            .as_str()
            .unwrap()
            .to_owned();
        let verified = app
            .post(
                &format!("/api/v1/entries/{new_id}/verify"),
                Some(&access),
                &json!({"code": code_in(mail)}),
            )
            .await;
        assert_eq!(verified.assert_status(200)["status"], "eligible");
        assert_eq!(
            verified.json["weight"]["value"],
            carried.iter().find(|c| c.0 == new_id).unwrap().4
        );
    }

    // The next bundle carries the bonus weights, and verifies.
    let second_bundle = close_and_draw(&app, &second, "2027-01-11T10:00:00Z").await;
    assert_eq!(second_bundle.entries.len(), 2);
    for (id, _, _, _, weight) in &carried {
        let entry = second_bundle
            .entries
            .iter()
            .find(|e| e.id.to_hex() == *id)
            .unwrap();
        assert_eq!(i64::from(entry.weight), *weight);
    }
    assert!(check_bundle(second_bundle.clone()).unwrap().is_ok());

    // A third window carries the second's unsuccessful entries, never the first's again.
    app.clock.set(at("2027-01-15T09:00:00Z"));
    let third = open(
        &app,
        &window(
            "2027-01-15T08:00:00Z",
            "2027-02-10T18:00:00Z",
            "2027-02-11T10:00:00Z",
            "2027-03-01T08:30:00Z",
            "renewal",
        ),
    )
    .await;
    let third_entries: Vec<(String, i64)> = with_pool!(app, |pool| sqlx::query_as(
        "select carried_from, unsuccessful_draws from entries where window_id = $1"
    )
    .bind(&third)
    .fetch_all(pool)
    .await
    .unwrap());
    assert_eq!(third_entries.len(), 1, "2 entries, 1 slot");
    for (from, draws) in third_entries {
        assert!(second_bundle.entries.iter().any(|e| e.id.to_hex() == from));
        assert_eq!(draws, 2);
    }
}
