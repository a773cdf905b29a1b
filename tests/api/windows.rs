//! Staff configure windows: create, read, list, edit while in draft, open, cancel.

use serde_json::{Value, json};
use tirage::domain::codes::seed_commitment;

use crate::helpers::{ADMIN_TOKEN, TestApp, at, window_body};

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["field"].as_str().unwrap(),
                e["code"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_minimal_body_creates_a_draft() {
    let app = TestApp::spawn().await;
    let answer = app
        .post("/api/v1/windows", Some(ADMIN_TOKEN), &window_body())
        .await;
    let window = answer.assert_status(201);
    assert_eq!(window["id"].as_str().unwrap().len(), 16);
    assert_eq!(window["state"], "draft");
    assert_eq!(window["site"], "34");
    assert_eq!(window["beacon"], "none");
    assert_eq!(window["seed_commitment"], Value::Null);
    assert_eq!(window["slots"]["count"], 1);
    assert_eq!(window["slots"]["first_starts_at"], "2027-01-04T08:30:00Z");
    assert_eq!(
        window["policy"]["tiers"][0],
        json!({"max_days_left": 30, "weight": 8})
    );
    assert_eq!(window["policy"]["max_bonus"], 4);
}

#[tokio::test]
async fn drafts_are_visible_to_staff_only() {
    let app = TestApp::spawn().await;
    let id = app.create_window(&window_body()).await;
    let uri = format!("/api/v1/windows/{id}");
    app.get(&uri, None).await.assert_problem(404, "not-found");
    app.get(&format!("{uri}/slots"), None)
        .await
        .assert_problem(404, "not-found");
    let auditor = app.token("auditor").await;
    assert_eq!(
        app.get(&uri, Some(&auditor)).await.assert_status(200)["state"],
        "draft"
    );

    let public = app.get("/api/v1/windows", None).await;
    assert_eq!(
        public.assert_status(200)["windows"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let staff_view = app.get("/api/v1/windows", Some(&auditor)).await;
    assert_eq!(
        staff_view.assert_status(200)["windows"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    app.post_empty(&format!("{uri}/open"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    let public = app.get("/api/v1/windows", None).await;
    assert_eq!(public.assert_status(200)["windows"][0]["id"], id.as_str());
    assert_eq!(
        app.get(&uri, None).await.assert_status(200)["state"],
        "open"
    );
}

#[tokio::test]
async fn slots_can_come_from_a_template() {
    let app = TestApp::spawn().await;
    let mut body = window_body();
    body.as_object_mut().unwrap().remove("slots");
    body["slot_template"] = json!({
        "first_day": "2027-01-04", "last_day": "2027-01-10",
        "closed_days": ["2027-01-06"],
        "opening_hours": [{"from": "08:30", "to": "12:00"}, {"from": "13:30", "to": "16:00"}],
        "counters": ["G1", "G2", "G3"],
        "minutes_per_appointment": 30
    });
    let id = app.create_window(&body).await;
    // Mon, Tue, Thu, Fri (Wed closed, weekend off) x (7 + 5 times) x 3 counters
    let slots = app
        .get(&format!("/api/v1/windows/{id}/slots"), Some(ADMIN_TOKEN))
        .await;
    let slots = slots.assert_status(200)["slots"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(slots.len(), 4 * 12 * 3);
    // Paris is UTC+1 in January; slots are published in UTC, ordered by time then counter.
    assert_eq!(
        slots[0],
        json!({"id": "2027-01-04T0730-G1", "starts_at": "2027-01-04T07:30:00Z", "counter": "G1"})
    );
    assert_eq!(slots[1]["counter"], "G2");
    assert_eq!(slots.last().unwrap()["starts_at"], "2027-01-08T14:30:00Z");
}

#[tokio::test]
async fn huge_templates_are_refused() {
    let app = TestApp::spawn().await;
    let mut body = window_body();
    body.as_object_mut().unwrap().remove("slots");
    body["slot_template"] = json!({
        "first_day": "2027-01-01", "last_day": "2027-12-31", "weekdays": ["mon","tue","wed","thu","fri","sat","sun"],
        "opening_hours": [{"from": "00:00", "to": "23:55"}],
        "counters": ["A", "B"], "minutes_per_appointment": 5
    });
    let answer = app.post("/api/v1/windows", Some(ADMIN_TOKEN), &body).await;
    assert_eq!(
        fields(answer.assert_problem(422, "validation")),
        ["slot_template:too_many_slots"]
    );
    assert_eq!(app.count("windows").await, 0);
}

#[tokio::test]
async fn invalid_windows_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let body = json!({
        "site": "", "procedure": "renewal",
        "registration_opens_at": "2026-12-15T18:00:00Z",
        "registration_closes_at": "2026-12-01T08:00:00Z",
        "draw_at": "tomorrow",
        "beacon": "none",
        "policy": {"tiers": [{"max_days_left": 30, "weight": 0}]},
        "slots": [{"starts_at": "2027-01-04T08:30:00Z", "counter": ""}]
    });
    let answer = app.post("/api/v1/windows", Some(ADMIN_TOKEN), &body).await;
    assert_eq!(
        fields(answer.assert_problem(422, "validation")),
        [
            "site:required",
            "draw_at:invalid_datetime",
            "policy.tiers[0].weight:out_of_range",
            "slots[0].counter:required",
            "registration_closes_at:not_after_opening",
        ]
    );
    assert_eq!(app.count("windows").await + app.count("slots").await, 0);
}

#[tokio::test]
async fn drafts_can_be_edited() {
    let app = TestApp::spawn().await;
    let id = app.create_window(&window_body()).await;
    let uri = format!("/api/v1/windows/{id}");
    let edit = json!({
        "site": "13",
        "beacon": "drand:quicknet:round=123456",
        "policy": {"tiers": [{"max_days_left": 15, "weight": 20}], "max_bonus": 2},
        "slots": [
            {"starts_at": "2027-01-05T09:00:00+01:00", "counter": "B"},
            {"id": "S1", "starts_at": "2027-01-05T08:00:00Z", "counter": "A"}
        ]
    });
    let edited = app.patch(&uri, Some(ADMIN_TOKEN), &edit).await;
    let edited = edited.assert_status(200);
    assert_eq!(
        (edited["site"].as_str(), edited["procedure"].as_str()),
        (Some("13"), Some("renewal"))
    );
    assert_eq!(edited["beacon"], "drand:quicknet:round=123456");
    assert_eq!(
        edited["policy"]["tiers"],
        json!([{"max_days_left": 15, "weight": 20}])
    );
    let slots = app.get(&format!("{uri}/slots"), Some(ADMIN_TOKEN)).await;
    assert_eq!(
        slots.assert_status(200)["slots"],
        json!([
            {"id": "S1", "starts_at": "2027-01-05T08:00:00Z", "counter": "A"},
            {"id": "2027-01-05T0800-B", "starts_at": "2027-01-05T08:00:00Z", "counter": "B"}
        ])
    );

    // An edit that leaves the window inconsistent is refused whole.
    let bad = app
        .patch(
            &uri,
            Some(ADMIN_TOKEN),
            &json!({"site": "13", "draw_at": "2027-02-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        fields(bad.assert_problem(422, "validation")),
        ["slots:before_draw"]
    );
    app.patch(
        "/api/v1/windows/ffffffffffffffff",
        Some(ADMIN_TOKEN),
        &json!({"site": "1"}),
    )
    .await
    .assert_problem(404, "not-found");
}

#[tokio::test]
async fn opening_publishes_the_seed_commitment_and_freezes_the_window() {
    let app = TestApp::spawn().await;
    let id = app.create_window(&window_body()).await;
    let uri = format!("/api/v1/windows/{id}");
    let opened = app
        .post_empty(&format!("{uri}/open"), Some(ADMIN_TOKEN))
        .await;
    let opened = opened.assert_status(200).clone();
    assert_eq!(opened["state"], "open");
    let commitment = opened["seed_commitment"].as_str().unwrap();
    let secret = app
        .store()
        .window_secret(&id)
        .await
        .unwrap()
        .expect("an open window has a secret");
    assert_eq!(commitment, seed_commitment(&secret));
    assert!(!opened.to_string().contains(&hex::encode(secret)));

    // Opening twice, editing slots or policy, anything else: refused with the state.
    let again = app
        .post_empty(&format!("{uri}/open"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(again.assert_problem(409, "wrong-state")["state"], "open");
    for edit in [
        json!({"slots": [{"starts_at": "2027-01-04T09:00:00Z", "counter": "G1"}]}),
        json!({"policy": {"tiers": []}}),
        json!({"registration_closes_at": "2026-12-31T00:00:00Z"}),
    ] {
        let refused = app.patch(&uri, Some(ADMIN_TOKEN), &edit).await;
        assert_eq!(refused.assert_problem(409, "wrong-state")["state"], "open");
    }
    let slots = app.get(&format!("{uri}/slots"), None).await;
    assert_eq!(
        slots.assert_status(200)["slots"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        app.store().window_secret(&id).await.unwrap(),
        Some(secret),
        "the secret never changes"
    );
}

#[tokio::test]
async fn a_window_whose_period_is_over_cannot_open() {
    let app = TestApp::spawn().await;
    let id = app.create_window(&window_body()).await;
    app.clock.set(at("2026-12-15T18:00:00Z"));
    let refused = app
        .post_empty(&format!("/api/v1/windows/{id}/open"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(refused.assert_problem(409, "wrong-state")["state"], "draft");
    assert_eq!(app.store().window_secret(&id).await.unwrap(), None);
}

#[tokio::test]
async fn windows_can_be_cancelled_once() {
    let app = TestApp::spawn().await;
    let id = app.open_window().await;
    let uri = format!("/api/v1/windows/{id}/cancel");
    let cancelled = app.post_empty(&uri, Some(ADMIN_TOKEN)).await;
    assert_eq!(cancelled.assert_status(200)["state"], "cancelled");
    let again = app.post_empty(&uri, Some(ADMIN_TOKEN)).await;
    assert_eq!(
        again.assert_problem(409, "wrong-state")["state"],
        "cancelled"
    );
    let trail = app
        .get(&format!("/api/v1/windows/{id}/events"), Some(ADMIN_TOKEN))
        .await;
    let actions: Vec<&str> = trail.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["window.created", "window.open", "window.cancelled"]
    );
}

#[tokio::test]
async fn the_audit_trail_is_append_only() {
    let app = TestApp::spawn().await;
    app.create_window(&window_body()).await;
    let before = app.count("audit_events").await;
    assert!(
        before >= 2,
        "the admin token seeding and the window creation"
    );
    assert!(
        app.execute("update audit_events set action = 'x'")
            .await
            .is_err()
    );
    assert!(app.execute("delete from audit_events").await.is_err());
    assert_eq!(app.count("audit_events").await, before);
}

#[tokio::test]
async fn long_slot_lists_are_accepted() {
    let app = TestApp::spawn().await;
    let mut body = window_body();
    let slots: Vec<Value> = (0..3000)
        .map(|i| {
            json!({
                "starts_at": format!("2027-01-{:02}T{:02}:{:02}:00Z", 4 + i / 600, 6 + (i / 60) % 10, i % 60),
                "counter": "Guichet principal du rez-de-chaussée"
            })
        })
        .collect();
    body["slots"] = json!(slots);
    assert!(serde_json::to_vec(&body).unwrap().len() > 64 * 1024);
    let id = app.create_window(&body).await;
    let window = app
        .get(&format!("/api/v1/windows/{id}"), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(window.json["slots"]["count"], 3000);
}

#[tokio::test]
async fn windows_can_be_listed_by_site_procedure_and_state() {
    let app = TestApp::spawn().await;
    let open = app.open_window().await;
    let mut other = window_body();
    other["site"] = json!("13");
    let draft = app.create_window(&other).await;

    let ids = |answer: &crate::helpers::Answer| -> Vec<String> {
        answer.json["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&app.get("/api/v1/windows?site=34", None).await),
        [open.as_str()]
    );
    assert!(
        ids(&app.get("/api/v1/windows?site=13", None).await).is_empty(),
        "drafts stay hidden"
    );
    assert_eq!(
        ids(&app.get("/api/v1/windows?site=13", Some(ADMIN_TOKEN)).await),
        [draft.as_str()]
    );
    assert_eq!(
        ids(&app
            .get("/api/v1/windows?state=draft", Some(ADMIN_TOKEN))
            .await),
        [draft]
    );
    assert_eq!(
        ids(&app
            .get("/api/v1/windows?procedure=renewal&state=open", None)
            .await),
        [open]
    );
    app.get("/api/v1/windows?state=sleeping", None)
        .await
        .assert_problem(400, "bad-request");
}
