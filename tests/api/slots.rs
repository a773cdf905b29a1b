//! Named slots after the draw: convocations and check codes, check-in, no-shows, staff
//! corrections of a name, cancellations going down the waiting list, and the mails
//! they send.

use std::collections::HashMap;

use serde_json::{Value, json};
use tirage::jobs::scheduler;

use crate::helpers::{ADMIN_TOKEN, TestApp, applicant, at, quoted_printable};

/// A window with three slots: two on Monday 4 January 2027 at 09:30 Paris time, one on
/// Tuesday 5 January at 10:00.
fn three_slots() -> Value {
    json!({
        "site": "34",
        "procedure": "renewal",
        "registration_opens_at": "2026-12-01T08:00:00Z",
        "registration_closes_at": "2026-12-15T18:00:00Z",
        "draw_at": "2026-12-16T10:00:00Z",
        "beacon": "none",
        "slots": [
            {"starts_at": "2027-01-04T08:30:00Z", "counter": "G1"},
            {"starts_at": "2027-01-04T08:30:00Z", "counter": "G2"},
            {"starts_at": "2027-01-05T09:00:00Z", "counter": "G1"}
        ]
    })
}

const DRAW_TIME: &str = "2026-12-16T10:00:00Z";

/// An entry of a drawn window.
#[derive(Debug, Clone)]
struct Drawn {
    id: String,
    access: String,
    /// The applicant number given to [`applicant`].
    n: u32,
    rank: i64,
    slot: Option<String>,
}

impl Drawn {
    fn uri(&self, tail: &str) -> String {
        format!("/api/v1/entries/{}{tail}", self.id)
    }

    fn email(&self) -> String {
        format!("aminata{}@example.org", self.n)
    }
}

/// Registers `n` applicants at the counter (with e-mail addresses; those in `english`
/// in English), closes and draws the window. Returns the window id and the entries in
/// rank order.
async fn drawn_window(app: &TestApp, n: u32, english: &[u32]) -> (String, Vec<Drawn>) {
    let window_id = app.open_window_with(&three_slots()).await;
    let mut entries = HashMap::new();
    for i in 1..=n {
        let mut body = applicant(i);
        if english.contains(&i) {
            body["language"] = json!("en");
        }
        let (entry_id, access_code) = app.counter_entry(&window_id, &body).await;
        entries.insert(entry_id, (access_code, i));
    }
    draw(app, &window_id).await;
    let results = app
        .get(&format!("/api/v1/windows/{window_id}/results"), None)
        .await;
    let drawn = results.assert_status(200)["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            let id = line["entry_id"].as_str().unwrap().to_owned();
            let (access, n) = entries[&id].clone();
            Drawn {
                id,
                access,
                n,
                rank: line["rank"].as_i64().unwrap(),
                slot: line["slot"]["id"].as_str().map(str::to_owned),
            }
        })
        .collect();
    (window_id, drawn)
}

/// Closes and draws the window, then waits for the draw's follow-up (holders, mails).
async fn draw(app: &TestApp, window_id: &str) {
    app.clock.set(at(DRAW_TIME));
    app.close_and_draw(window_id).await;
    app.finish_draw_followup(window_id).await;
}

/// The check code of an entry's convocation.
async fn check_code(app: &TestApp, entry: &Drawn) -> String {
    let convocation = app
        .get(&entry.uri("/convocation"), Some(&entry.access))
        .await;
    convocation.assert_status(200)["check_code"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn check_in(app: &TestApp, token: &str, code: &Value) -> crate::helpers::Answer {
    app.post("/api/v1/checkins", Some(token), code).await
}

/// The delivered mails of one kind: (recipient, decoded body), waiting for `n` of them.
async fn mails_of(app: &TestApp, kind: &str, n: usize) -> Vec<(String, String)> {
    for _ in 0..250 {
        app.app.state().outbox.deliver_due().await;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&app.mail_dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(&format!("-{kind}.eml")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let (headers, body) = text.split_once("\r\n\r\n").unwrap();
            let to = headers
                .lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap()
                .to_owned();
            found.push((name, to, quoted_printable(body)));
        }
        if found.len() >= n {
            found.sort();
            return found.into_iter().map(|(_, to, body)| (to, body)).collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("expected {n} {kind} mail(s)");
}

fn mail_to<'a>(mails: &'a [(String, String)], entry: &Drawn) -> &'a str {
    let email = entry.email();
    &mails
        .iter()
        .find(|(to, _)| *to == email)
        .unwrap_or_else(|| panic!("no mail to {email}"))
        .1
}

async fn live_holders_per_slot(app: &TestApp) -> Vec<(String, i64)> {
    with_pool!(app, |pool| sqlx::query_as(
        "select slot_id, count(*) from slot_assignments where released_at is null
         group by slot_id order by slot_id",
    )
    .fetch_all(pool)
    .await
    .unwrap())
}

#[tokio::test]
async fn a_selected_entry_gets_a_named_convocation_and_others_do_not() {
    let app = TestApp::spawn().await;
    let (window_id, drawn) = drawn_window(&app, 5, &[]).await;
    let selected = &drawn[0];

    let answer = app
        .get(&selected.uri("/convocation"), Some(&selected.access))
        .await;
    let convocation = answer.assert_status(200);
    let person = applicant(selected.n);
    assert_eq!(convocation["entry_id"], selected.id.as_str());
    assert_eq!(convocation["family_name"], person["family_name"]);
    assert_eq!(convocation["given_names"], "Aminata");
    assert_eq!(convocation["window"]["id"], window_id.as_str());
    assert_eq!(convocation["window"]["site"], "34");
    assert_eq!(convocation["window"]["procedure"], "renewal");
    assert_eq!(convocation["slot"]["id"], selected.slot.as_deref().unwrap());
    assert_eq!(convocation["slot"]["time_zone"], "Europe/Paris");
    let local = convocation["slot"]["starts_at_local"].as_str().unwrap();
    assert!(local.ends_with("+01:00"), "{local}");
    assert_eq!(convocation["granted_by"], "draw");
    let code = convocation["check_code"].as_str().unwrap();
    assert_eq!(code.len(), 11);
    assert_eq!(&code[5..6], "-");
    assert!(
        code.chars()
            .filter(|c| *c != '-')
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    // Stable: the same code on every read.
    assert_eq!(check_code(&app, selected).await, code);
    // Each holder has their own code.
    assert_ne!(check_code(&app, &drawn[1]).await, code);

    let page = app
        .get(&selected.uri("/convocation.html"), Some(&selected.access))
        .await;
    page.assert_status(200);
    assert!(page.content_type().starts_with("text/html"));
    assert_eq!(page.headers["cache-control"], "no-store");
    let family = person["family_name"].as_str().unwrap();
    for text in [family, code, "Guichet", "Counter", "à 09:30", "at 09:30"] {
        assert!(page.text.contains(text), "{text} not in the page");
    }
    for external in ["http://", "https://", "<script", "<img", "<link"] {
        assert!(!page.text.contains(external), "{external} in the page");
    }

    // Without a slot, no convocation: 409 with the entry's status.
    let waiting = &drawn[3];
    for tail in ["/convocation", "/convocation.html"] {
        let refused = app.get(&waiting.uri(tail), Some(&waiting.access)).await;
        assert_eq!(
            refused.assert_problem(409, "entry-state")["entry_status"],
            "waiting"
        );
    }
    // Someone else's access code finds nothing.
    app.get(&selected.uri("/convocation"), Some(&waiting.access))
        .await
        .assert_problem(404, "not-found");
    app.get(&selected.uri("/convocation"), None)
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn staff_check_a_person_in_once_with_the_right_code_and_role() {
    let app = TestApp::spawn().await;
    let (window_id, drawn) = drawn_window(&app, 4, &[]).await;
    let monday = drawn
        .iter()
        .find(|d| d.slot.as_deref() == Some("2027-01-04T0830-G1"))
        .unwrap();
    let tuesday = drawn
        .iter()
        .find(|d| d.slot.as_deref() == Some("2027-01-05T0900-G1"))
        .unwrap();
    let code = check_code(&app, monday).await;
    let staff = app.token("staff").await;
    let auditor = app.token("auditor").await;
    app.clock.set(at("2027-01-04T08:10:00Z"));

    check_in(&app, &auditor, &json!({ "check_code": code }))
        .await
        .assert_problem(403, "forbidden");
    check_in(&app, "tirage_unknown", &json!({ "check_code": code }))
        .await
        .assert_problem(401, "unauthorized");
    // Bad input names the field and changes nothing.
    for body in [
        json!({}),
        json!({ "check_code": "" }),
        json!({ "check_code": "ABC" }),
        json!({ "check_code": "ABCDE-FGHIU" }),
    ] {
        let refused = check_in(&app, &staff, &body).await;
        assert_eq!(
            refused.assert_problem(422, "validation")["errors"][0]["field"],
            "check_code",
            "{body}"
        );
    }
    let unknown = check_in(&app, &staff, &json!({ "check_code": "00000-00000" })).await;
    let problem = unknown.assert_problem(404, "not-found");
    assert!(problem.get("entry_status").is_none() && problem.get("errors").is_none());
    assert_eq!(app.count("checkins").await, 0);

    // Typed loosely: lower case, spaces for the hyphen.
    let typed = code.to_lowercase().replace('-', " ");
    let answer = check_in(&app, &staff, &json!({ "check_code": typed })).await;
    let checked = answer.assert_status(201).clone();
    let person = applicant(monday.n);
    assert_eq!(checked["entry_id"], monday.id.as_str());
    assert_eq!(checked["person"]["family_name"], person["family_name"]);
    assert_eq!(checked["person"]["birth_date"], "1991-03-14");
    assert_eq!(
        checked["person"]["document"]["number"],
        person["document"]["number"]
    );
    assert_eq!(checked["person"]["document"]["kind"], "foreigner_number");
    assert_eq!(checked["slot"]["id"], "2027-01-04T0830-G1");
    assert_eq!(checked["slot"]["counter"], "G1");
    assert_eq!(checked["window"]["id"], window_id.as_str());
    assert_eq!(checked["checked_in_at"], "2027-01-04T08:10:00Z");

    // The second time, the code is refused and says when it was used.
    app.clock.set(at("2027-01-04T08:40:00Z"));
    let again = check_in(&app, &staff, &json!({ "check_code": code })).await;
    assert_eq!(
        again.assert_problem(409, "already-checked-in")["checked_in_at"],
        "2027-01-04T08:10:00Z"
    );
    assert_eq!(app.count("checkins").await, 1);
    let convocation = app
        .get(&monday.uri("/convocation"), Some(&monday.access))
        .await;
    assert_eq!(
        convocation.assert_status(200)["checked_in_at"],
        "2027-01-04T08:10:00Z"
    );
    // A checked-in holder cannot cancel any more.
    app.post_empty(&monday.uri("/cancel"), Some(&monday.access))
        .await
        .assert_problem(409, "slot-state");

    // Tuesday's convocation is not used on Monday.
    let tuesday_code = check_code(&app, tuesday).await;
    check_in(&app, &staff, &json!({ "check_code": tuesday_code }))
        .await
        .assert_problem(409, "slot-state");
    assert_eq!(app.count("checkins").await, 1);

    let events = app
        .get(
            &format!("/api/v1/windows/{window_id}/events"),
            Some(ADMIN_TOKEN),
        )
        .await;
    let checked_in: Vec<&Value> = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "slot.checked_in")
        .collect();
    assert_eq!(checked_in.len(), 1);
    assert!(
        !events
            .text
            .contains(person["document"]["number"].as_str().unwrap())
    );
}

#[tokio::test]
async fn a_staff_correction_changes_the_check_code_and_is_logged() {
    let app = TestApp::spawn().await;
    let (window_id, drawn) = drawn_window(&app, 4, &[]).await;
    let holder = &drawn[0];
    let old_code = check_code(&app, holder).await;
    let staff = app.token("staff").await;
    let auditor = app.token("auditor").await;
    let uri = holder.uri("/corrections");
    let correction = json!({
        "family_name": "Diallo-Sow",
        "reason": "spelling checked against the passport"
    });

    app.post(&uri, Some(&auditor), &correction)
        .await
        .assert_problem(403, "forbidden");
    // Bad input: each field named, nothing changed.
    let refused = [
        (
            json!({ "reason": "no name given" }),
            "family_name",
            "required",
        ),
        (json!({ "family_name": "Diallo-Sow" }), "reason", "required"),
        (
            json!({ "family_name": "Diallo-Sow", "reason": "  " }),
            "reason",
            "required",
        ),
        (
            json!({ "family_name": "Diallo-Sow", "reason": "x".repeat(501) }),
            "reason",
            "too_long",
        ),
        (
            json!({ "given_names": "Ami1", "reason": "typo" }),
            "given_names",
            "invalid_characters",
        ),
        (
            json!({ "family_name": applicant(holder.n)["family_name"], "reason": "same" }),
            "family_name",
            "unchanged",
        ),
        (
            json!({ "family_name": "Diallo-Sow", "reason": "typo", "birth_date": "1990-01-01" }),
            "birth_date",
            "unknown_field",
        ),
    ];
    for (body, field, code) in refused {
        let answer = app.post(&uri, Some(&staff), &body).await;
        let errors = &answer.assert_problem(422, "validation")["errors"];
        assert_eq!(errors[0]["field"], field, "{body}");
        assert_eq!(errors[0]["code"], code, "{body}");
    }
    app.post(
        "/api/v1/entries/00000000000000000000000000000000/corrections",
        Some(&staff),
        &correction,
    )
    .await
    .assert_problem(404, "not-found");
    assert_eq!(app.count("entry_corrections").await, 0);
    assert_eq!(check_code(&app, holder).await, old_code);

    let answer = app.post(&uri, Some(&staff), &correction).await;
    let corrected = answer.assert_status(201);
    assert_eq!(corrected["fields"], json!(["family_name"]));
    assert_eq!(corrected["family_name"], "Diallo-Sow");
    assert_eq!(corrected["check_code_changed"], true);
    assert_eq!(app.count("entry_corrections").await, 1);

    // The convocation carries the new name and a new code; the old one is refused.
    let convocation = app
        .get(&holder.uri("/convocation"), Some(&holder.access))
        .await;
    let convocation = convocation.assert_status(200);
    assert_eq!(convocation["family_name"], "Diallo-Sow");
    let new_code = convocation["check_code"].as_str().unwrap().to_owned();
    assert_ne!(new_code, old_code);
    let view = app.get(&holder.uri(""), Some(&holder.access)).await;
    assert_eq!(view.assert_status(200)["family_name"], "Diallo-Sow");

    app.clock.set(at("2027-01-04T08:00:00Z"));
    check_in(&app, &staff, &json!({ "check_code": old_code }))
        .await
        .assert_problem(404, "not-found");
    let checked = check_in(&app, &staff, &json!({ "check_code": new_code })).await;
    assert_eq!(
        checked.assert_status(201)["person"]["family_name"],
        "Diallo-Sow"
    );

    // The audit trail says which field changed, without the names or the reason.
    let events = app
        .get(
            &format!("/api/v1/windows/{window_id}/events"),
            Some(ADMIN_TOKEN),
        )
        .await;
    let event = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "entry.corrected")
        .unwrap()
        .clone();
    assert_eq!(event["entry_id"], holder.id.as_str());
    assert_eq!(event["detail"]["fields"], json!(["family_name"]));
    assert!(event["actor"].as_str().unwrap().starts_with("staff:"));
    let text = event.to_string();
    for private in [
        "Diallo-Sow",
        "passport",
        applicant(holder.n)["family_name"].as_str().unwrap(),
    ] {
        assert!(!text.contains(private), "{private} in {text}");
    }
}

#[tokio::test]
async fn a_cancelled_slot_goes_down_the_waiting_list_and_the_chain_is_public() {
    let app = TestApp::spawn().await;
    // Every other applicant writes in English: each mail follows its reader.
    let english = [2, 4, 6];
    let (window_id, drawn) = drawn_window(&app, 7, &english).await;
    let says = |entry: &Drawn, mail: &str, fr: &str, en: &str| {
        let text = if english.contains(&entry.n) { en } else { fr };
        assert!(mail.contains(text), "{text} not in {mail}");
    };
    let (holder, first, second, third) = (&drawn[0], &drawn[3], &drawn[4], &drawn[5]);
    let freed = holder.slot.clone().unwrap();
    app.clock.set(at("2026-12-16T11:00:00Z"));

    // The holder cancels: the slot is offered to the best-ranked waiting entry.
    let cancelled = app
        .post_empty(&holder.uri("/cancel"), Some(&holder.access))
        .await;
    let cancelled = cancelled.assert_status(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["draw"]["slot"], Value::Null);
    app.get(&holder.uri("/convocation"), Some(&holder.access))
        .await
        .assert_problem(409, "entry-state");
    let again = app
        .post_empty(&holder.uri("/cancel"), Some(&holder.access))
        .await;
    assert_eq!(
        again.assert_problem(409, "entry-state")["entry_status"],
        "cancelled"
    );
    let confirmation = mails_of(&app, "cancellation", 1).await;
    assert_eq!(confirmation[0].0, holder.email());
    says(
        holder,
        &confirmation[0].1,
        "Votre rendez-vous est annulé",
        "Your appointment is cancelled",
    );

    // Rank 4 is offered the slot, with a 48-hour deadline, and declines it.
    let view = app.get(&first.uri(""), Some(&first.access)).await;
    let view = view.assert_status(200);
    assert_eq!(view["status"], "waiting");
    assert_eq!(view["draw"]["offer"]["state"], "open");
    assert_eq!(view["draw"]["offer"]["slot"]["id"], freed.as_str());
    assert_eq!(view["draw"]["offer"]["expires_at"], "2026-12-18T11:00:00Z");
    let offer_mails = mails_of(&app, "slot_offer", 1).await;
    let mail = mail_to(&offer_mails, first);
    assert!(mail.contains(&format!("/api/v1/entries/{}/offer/accept", first.id)));
    says(
        first,
        mail,
        "vendredi 18 décembre 2026 à 12:00 (heure de Paris)",
        "Friday 18 December 2026 at 12:00 (Paris time)",
    );
    // Nobody else holds an offer meanwhile.
    let view = app.get(&second.uri(""), Some(&second.access)).await;
    assert_eq!(view.assert_status(200)["draw"]["offer"], Value::Null);

    let declined = app
        .post_empty(&first.uri("/offer/decline"), Some(&first.access))
        .await;
    let declined = declined.assert_status(200);
    assert_eq!(declined["status"], "not_selected");
    assert_eq!(declined["draw"]["offer"]["state"], "declined");
    app.post_empty(&first.uri("/offer/accept"), Some(&first.access))
        .await
        .assert_problem(409, "offer-state");

    // Rank 5 lets the offer expire; the scheduler passes it on.
    let offer_mails = mail_to(&mails_of(&app, "slot_offer", 2).await, second).to_owned();
    says(
        second,
        &offer_mails,
        "Il vous est proposé",
        "It is offered to you",
    );
    app.clock.set(at("2026-12-18T12:00:00Z"));
    scheduler::tick(app.store(), &app.clock).await;
    let late = app
        .post_empty(&second.uri("/offer/accept"), Some(&second.access))
        .await;
    assert_eq!(
        late.assert_problem(409, "offer-state")["offer_state"],
        "expired"
    );
    let view = app.get(&second.uri(""), Some(&second.access)).await;
    let view = view.assert_status(200);
    assert_eq!(view["status"], "not_selected");
    assert_eq!(view["draw"]["offer"]["state"], "expired");

    // Rank 6 accepts: the slot is named for them.
    let view = app.get(&third.uri(""), Some(&third.access)).await;
    assert_eq!(
        view.assert_status(200)["draw"]["offer"]["expires_at"],
        "2026-12-20T12:00:00Z"
    );
    let accepted = app
        .post_empty(&third.uri("/offer/accept"), Some(&third.access))
        .await;
    let accepted = accepted.assert_status(200);
    assert_eq!(accepted["status"], "selected");
    assert_eq!(accepted["draw"]["slot"]["id"], freed.as_str());
    assert_eq!(accepted["draw"]["waiting_position"], Value::Null);
    let convocation = app
        .get(&third.uri("/convocation"), Some(&third.access))
        .await;
    let convocation = convocation.assert_status(200);
    assert_eq!(convocation["granted_by"], "offer");
    assert_eq!(convocation["slot"]["id"], freed.as_str());
    assert_eq!(
        convocation["family_name"],
        applicant(third.n)["family_name"]
    );
    // Rank 7 still waits; the slot has exactly one holder.
    let view = app.get(&drawn[6].uri(""), Some(&drawn[6].access)).await;
    assert_eq!(view.assert_status(200)["status"], "waiting");
    assert!(
        live_holders_per_slot(&app)
            .await
            .iter()
            .all(|(_, n)| *n == 1)
    );
    assert_eq!(live_holders_per_slot(&app).await.len(), 3);

    // The public chain: ranks and times, no personal data.
    let chain = app
        .get(&format!("/api/v1/windows/{window_id}/reassignments"), None)
        .await;
    let chain = chain.assert_status(200).clone();
    let releases = chain["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 1);
    let release = &releases[0];
    assert_eq!(release["slot_id"], freed.as_str());
    assert_eq!(release["released_by_rank"], 1);
    assert_eq!(release["reason"], "cancelled");
    assert_eq!(release["released_at"], "2026-12-16T11:00:00Z");
    assert_eq!(release["outcome"], "accepted");
    assert_eq!(release["held_by_rank"], 6);
    let offers: Vec<(i64, &str)> = release["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["offered_to_rank"].as_i64().unwrap(),
                o["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(offers, [(4, "declined"), (5, "expired"), (6, "accepted")]);
    assert_eq!(release["offers"][1]["answered_at"], "2026-12-18T11:00:00Z");
    let text = chain.to_string();
    for entry in &drawn {
        assert!(!text.contains(&entry.id), "an entry id in the chain");
        let person = applicant(entry.n);
        assert!(!text.contains(person["family_name"].as_str().unwrap()));
        assert!(!text.contains(person["email"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn concurrent_accepts_never_give_one_slot_twice() {
    let app = TestApp::spawn().await;
    let (_, drawn) = drawn_window(&app, 6, &[]).await;
    app.clock.set(at("2026-12-16T11:00:00Z"));
    for holder in &drawn[..2] {
        app.post_empty(&holder.uri("/cancel"), Some(&holder.access))
            .await
            .assert_status(200);
    }
    // Two freed slots, offered to ranks 4 and 5, accepted at the same moment.
    let (a, b) = (&drawn[3], &drawn[4]);
    let (uri_a, uri_b) = (a.uri("/offer/accept"), b.uri("/offer/accept"));
    let (first, second) = tokio::join!(
        app.post_empty(&uri_a, Some(&a.access)),
        app.post_empty(&uri_b, Some(&b.access)),
    );
    let slot_a = first.assert_status(200)["draw"]["slot"]["id"].clone();
    let slot_b = second.assert_status(200)["draw"]["slot"]["id"].clone();
    assert_ne!(slot_a, slot_b);
    let freed: Vec<Value> = drawn[..2]
        .iter()
        .map(|d| json!(d.slot.clone().unwrap()))
        .collect();
    assert!(freed.contains(&slot_a) && freed.contains(&slot_b));

    // The same acceptance sent twice at once: one wins, one finds no open offer.
    app.post_empty(&drawn[2].uri("/cancel"), Some(&drawn[2].access))
        .await
        .assert_status(200);
    let c = &drawn[5];
    let uri_c = c.uri("/offer/accept");
    let (once, twice) = tokio::join!(
        app.post_empty(&uri_c, Some(&c.access)),
        app.post_empty(&uri_c, Some(&c.access)),
    );
    let mut codes = [once.status.as_u16(), twice.status.as_u16()];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409], "{} / {}", once.text, twice.text);

    let holders = live_holders_per_slot(&app).await;
    assert_eq!(holders.len(), 3);
    assert!(holders.iter().all(|(_, n)| *n == 1), "{holders:?}");
    // And the database itself refuses a second live holder of a slot.
    let twice = app
        .execute(&format!(
            "insert into slot_assignments
                 (window_id, slot_id, entry_id, rank, reason, since, check_digest)
             select window_id, slot_id, '{}', 99, 'offer', since, 'x' from slot_assignments
             where released_at is null limit 1",
            drawn[0].id
        ))
        .await;
    assert!(twice.is_err());
}

#[tokio::test]
async fn a_no_show_is_recorded_after_the_slot_time_once() {
    let app = TestApp::spawn().await;
    let (window_id, drawn) = drawn_window(&app, 3, &[]).await;
    let holder = drawn
        .iter()
        .find(|d| d.slot.as_deref() == Some("2027-01-04T0830-G2"))
        .unwrap();
    let code = check_code(&app, holder).await;
    let staff = app.token("staff").await;
    let auditor = app.token("auditor").await;
    let uri = format!("/api/v1/windows/{window_id}/slots/2027-01-04T0830-G2/no-show");

    app.clock.set(at("2027-01-04T08:29:59Z"));
    app.post_empty(&uri, Some(&staff))
        .await
        .assert_problem(409, "slot-state");
    app.clock.set(at("2027-01-04T09:15:00Z"));
    app.post_empty(&uri, Some(&auditor))
        .await
        .assert_problem(403, "forbidden");
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/slots/no-such-slot/no-show"),
        Some(&staff),
    )
    .await
    .assert_problem(404, "not-found");
    assert_eq!(app.count("no_shows").await, 0);

    // Too late to give the slot back: it is not offered to anyone any more.
    app.post_empty(&holder.uri("/cancel"), Some(&holder.access))
        .await
        .assert_problem(409, "slot-state");

    let answer = app.post_empty(&uri, Some(&staff)).await;
    let recorded = answer.assert_status(201);
    assert_eq!(recorded["slot_id"], "2027-01-04T0830-G2");
    assert_eq!(recorded["entry_id"], holder.id.as_str());
    assert_eq!(recorded["rank"], holder.rank);
    assert_eq!(app.count("no_shows").await, 1);
    app.post_empty(&uri, Some(&staff))
        .await
        .assert_problem(409, "slot-state");
    // A late arrival with the convocation is told.
    check_in(&app, &staff, &json!({ "check_code": code }))
        .await
        .assert_problem(409, "slot-state");
    assert_eq!(app.count("no_shows").await, 1);
    assert_eq!(app.count("slot_releases").await, 0);
    assert_eq!(app.count("offers").await, 0);
}

#[tokio::test]
async fn after_the_draw_every_participant_gets_the_result_in_their_language() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window_with(&three_slots()).await;
    // Five verified at the counter (two in English, one in Arabic), one online never
    // verified (English).
    let language = |n: u32| match n {
        2 | 4 => "en",
        5 => "ar",
        _ => "fr",
    };
    let mut ids = HashMap::new();
    for i in 1..=5 {
        let mut body = applicant(i);
        body["language"] = json!(language(i));
        ids.insert(app.counter_entry(&window_id, &body).await.0, i);
    }
    let mut late = applicant(9);
    late["language"] = json!("en");
    let unverified = app.register(&window_id, &late).await;
    let unverified_id = unverified.assert_status(201)["entry_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let _verification = mails_of(&app, "verification_code", 1).await;
    draw(&app, &window_id).await;
    assert_eq!(app.count("draw_followups").await, 1);
    assert_eq!(app.count("slot_assignments").await, 3);

    let mails = mails_of(&app, "draw_result", 6).await;
    assert_eq!(mails.len(), 6, "one result mail per participant");
    let results = app
        .get(&format!("/api/v1/windows/{window_id}/results"), None)
        .await;
    for line in results.json["results"].as_array().unwrap() {
        let n = ids[line["entry_id"].as_str().unwrap()];
        let id = line["entry_id"].as_str().unwrap();
        let body = &mails
            .iter()
            .find(|(to, _)| *to == format!("aminata{n}@example.org"))
            .unwrap()
            .1;
        assert!(body.contains(id));
        match (line["slot"]["id"].as_str(), language(n)) {
            (Some(slot), "fr") => {
                assert!(body.contains("Votre rendez-vous"), "{body}");
                assert!(body.contains("guichet"), "{body}");
                assert!(body.contains(&format!("/api/v1/entries/{id}/convocation.html")));
                assert!(body.contains(if slot.starts_with("2027-01-04") {
                    "lundi 4 janvier 2027 à 09:30"
                } else {
                    "mardi 5 janvier 2027 à 10:00"
                }));
            }
            (Some(_), "en") => {
                assert!(body.contains("Your appointment"), "{body}");
                assert!(body.contains("(Paris time)"), "{body}");
            }
            (Some(slot), _) => {
                assert!(body.contains("موعدك:"), "{body}");
                assert!(body.contains("الشباك G"), "{body}");
                assert!(body.contains(&format!("/api/v1/entries/{id}/convocation.html")));
                assert!(body.contains(if slot.starts_with("2027-01-04") {
                    "الاثنين 4 يناير 2027، الساعة 09:30 (بتوقيت باريس)"
                } else {
                    "الثلاثاء 5 يناير 2027، الساعة 10:00 (بتوقيت باريس)"
                }));
            }
            (None, language) => {
                let position = line["rank"].as_i64().unwrap() - 3;
                let text = match language {
                    "en" => "It is on the waiting list",
                    "ar" => "وهو في قائمة الانتظار، في المرتبة:",
                    _ => "Elle est sur la liste d'attente",
                };
                assert!(body.contains(text), "{body}");
                assert!(
                    body.lines().any(|l| l.trim() == position.to_string()),
                    "{body}"
                );
            }
        }
    }
    let excluded = &mails
        .iter()
        .find(|(to, _)| to == "aminata9@example.org")
        .unwrap()
        .1;
    assert!(excluded.contains(&unverified_id));
    assert!(excluded.contains("was not confirmed"), "{excluded}");

    // Recording holders and mails happens once, whatever the scheduler does after.
    scheduler::tick(app.store(), &app.clock).await;
    assert_eq!(app.count("draw_followups").await, 1);
    assert_eq!(app.count("slot_assignments").await, 3);
    let queued: i64 = with_pool!(app, |pool| sqlx::query_scalar(
        "select count(*) from outbox where kind = 'draw_result'"
    )
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(queued, 6);
}

#[tokio::test]
async fn result_mails_cut_short_by_a_failure_are_queued_once_by_the_scheduler() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window_with(&three_slots()).await;
    for i in 1..=5 {
        app.post(
            &format!("/api/v1/windows/{window_id}/counter-entries"),
            Some(ADMIN_TOKEN),
            &applicant(i),
        )
        .await
        .assert_status(201);
    }
    // The outbox fails while the draw's results are mailed, as a full disk would.
    app.fail_inserts("outbox", "new.kind = 'draw_result'", "disk full")
        .await;
    draw(&app, &window_id).await;
    let queued = || async {
        let n: i64 = with_pool!(app, |pool| sqlx::query_scalar(
            "select count(*) from outbox where kind = 'draw_result'"
        )
        .fetch_one(pool)
        .await
        .unwrap());
        n
    };
    assert_eq!(queued().await, 0);
    // The draw stands and its holders are recorded: convocations work already.
    assert_eq!(app.count("slot_assignments").await, 3);
    let results = app
        .get(&format!("/api/v1/windows/{window_id}/results"), None)
        .await;
    assert_eq!(
        results.assert_status(200)["results"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    app.heal_inserts("outbox").await;
    scheduler::tick(app.store(), &app.clock).await;
    assert_eq!(queued().await, 5);
    scheduler::tick(app.store(), &app.clock).await;
    assert_eq!(queued().await, 5, "each participant gets one result mail");
    let (mails, done): (i64, Option<chrono::DateTime<chrono::Utc>>) =
        with_pool!(app, |pool| sqlx::query_as(
            "select mails, mails_done_at from draw_followups"
        )
        .fetch_one(pool)
        .await
        .unwrap());
    assert_eq!(mails, 5);
    assert!(done.is_some());
    assert_eq!(app.count("slot_assignments").await, 3);
}

#[tokio::test]
async fn a_waiting_entry_can_leave_the_list_and_nobody_left_means_unused() {
    let app = TestApp::spawn().await;
    let (window_id, drawn) = drawn_window(&app, 4, &[]).await;
    app.clock.set(at("2026-12-16T11:00:00Z"));
    // Before the draw there is nothing to cancel; after it, only the waiting one may leave.
    let waiting = &drawn[3];
    let left = app
        .post_empty(&waiting.uri("/cancel"), Some(&waiting.access))
        .await;
    assert_eq!(left.assert_status(200)["status"], "cancelled");
    assert!(
        mails_of(&app, "cancellation", 1).await[0]
            .1
            .contains("liste d'attente")
    );
    // A freed slot with nobody left on the waiting list stays unused.
    app.post_empty(&drawn[0].uri("/cancel"), Some(&drawn[0].access))
        .await
        .assert_status(200);
    let chain = app
        .get(&format!("/api/v1/windows/{window_id}/reassignments"), None)
        .await;
    let release = &chain.assert_status(200)["releases"][0];
    assert_eq!(release["outcome"], "unused");
    assert_eq!(release["unused_reason"], "no_one_waiting");
    assert_eq!(release["offers"], json!([]));
    assert_eq!(app.count("offers").await, 0);
}

#[tokio::test]
async fn nothing_to_cancel_before_the_draw_and_no_chain_to_read() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window_with(&three_slots()).await;
    let receipt = app
        .post(
            &format!("/api/v1/windows/{window_id}/counter-entries"),
            Some(ADMIN_TOKEN),
            &applicant(1),
        )
        .await;
    let receipt = receipt.assert_status(201);
    let uri = format!("/api/v1/entries/{}", receipt["entry_id"].as_str().unwrap());
    let access = receipt["access_code"].as_str().unwrap();
    let refused = app.post_empty(&format!("{uri}/cancel"), Some(access)).await;
    assert_eq!(
        refused.assert_problem(409, "entry-state")["entry_status"],
        "eligible"
    );
    app.post_empty(&format!("{uri}/offer/accept"), Some(access))
        .await
        .assert_problem(409, "offer-state");
    app.get(&format!("{uri}/convocation"), Some(access))
        .await
        .assert_problem(409, "entry-state");
    app.get(&format!("/api/v1/windows/{window_id}/reassignments"), None)
        .await
        .assert_problem(409, "wrong-state");
    assert_eq!(app.count("cancellations").await, 0);
}

/// How many result mails each of `recipients` has in the outbox.
async fn result_mails_to(app: &TestApp, recipients: &[String]) -> Vec<i64> {
    let mut counts = Vec::new();
    for recipient in recipients {
        let n: i64 = with_pool!(app, |pool| sqlx::query_scalar(
            "select count(*) from outbox where kind = 'draw_result' and recipient = $1"
        )
        .bind(recipient)
        .fetch_one(pool)
        .await
        .unwrap());
        counts.push(n);
    }
    counts
}

/// Takes back the result mails to the entries left pending and puts the follow-up's
/// cursor for them at `cursor` (id, time of registration), as a follow-up cut short
/// there would have left it.
async fn rewind_pending_mails(
    app: &TestApp,
    window_id: &str,
    recipients: &[String],
    cursor: (&str, Option<chrono::DateTime<chrono::Utc>>),
) {
    for recipient in recipients {
        with_pool!(app, |pool| {
            sqlx::query("delete from outbox where kind = 'draw_result' and recipient = $1")
                .bind(recipient)
                .execute(pool)
                .await
                .unwrap();
        });
    }
    with_pool!(app, |pool| sqlx::query(
        "update draw_followups set mails_done_at = null, mailed_excluded = $2,
             mailed_excluded_at = $3
         where window_id = $1"
    )
    .bind(window_id)
    .bind(cursor.0)
    .bind(cursor.1)
    .execute(pool)
    .await
    .map(|_| ())
    .unwrap());
}

/// Queues the rest of the result mails two entries at a time.
async fn queue_in_chunks_of_two(app: &TestApp, window_id: &str) {
    let mut chunks = 0;
    while app
        .store()
        .queue_result_mails(
            window_id,
            &tirage::jobs::offers::Mails,
            2,
            tirage::jobs::clock::Clock::now(&app.clock),
        )
        .await
        .unwrap()
        .is_some()
    {
        chunks += 1;
        assert!(chunks < 50, "the follow-up never ends");
    }
}

#[tokio::test]
async fn entries_left_pending_get_one_result_mail_each_in_chunks_from_any_cursor() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window_with(&three_slots()).await;
    for i in 1..=2 {
        app.counter_entry(&window_id, &applicant(i)).await;
    }
    // Seven registrations never confirmed: three at one instant (their order is their
    // ids'), two at another, two at a third; the mails page through them by time of
    // registration, then id.
    let mut pending = Vec::new();
    for (i, time) in [
        (10, "2026-12-03T09:00:00Z"),
        (11, "2026-12-03T09:00:00Z"),
        (12, "2026-12-03T09:00:00Z"),
        (13, "2026-12-02T15:30:00Z"),
        (14, "2026-12-02T15:30:00Z"),
        (15, "2026-12-05T11:00:00.250Z"),
        (16, "2026-12-05T11:00:00.250Z"),
    ] {
        app.clock.set(at(time));
        let id = app
            .register(&window_id, &applicant(i))
            .await
            .assert_status(201)["entry_id"]
            .as_str()
            .unwrap()
            .to_owned();
        pending.push((at(time), id, format!("aminata{i}@example.org")));
    }
    pending.sort();
    let recipients: Vec<String> = pending.iter().map(|(_, _, to)| to.clone()).collect();
    draw(&app, &window_id).await;
    assert_eq!(result_mails_to(&app, &recipients).await, vec![1; 7]);

    // Again from the start, two at a time: each once.
    rewind_pending_mails(&app, &window_id, &recipients, ("", None)).await;
    queue_in_chunks_of_two(&app, &window_id).await;
    assert_eq!(result_mails_to(&app, &recipients).await, vec![1; 7]);

    // Cut short after the fourth (the first of a pair registered at the same instant
    // as the fifth): the three after it, once each.
    let (time, id, _) = &pending[3];
    assert_eq!(pending[3].0, pending[4].0);
    rewind_pending_mails(&app, &window_id, &recipients[4..], (id, Some(*time))).await;
    queue_in_chunks_of_two(&app, &window_id).await;
    assert_eq!(result_mails_to(&app, &recipients).await, vec![1; 7]);

    // A follow-up begun by a version that paged by id alone goes on by id: every
    // entry whose id comes after its cursor, once.
    let mut by_id = pending.clone();
    by_id.sort_by(|a, b| a.1.cmp(&b.1));
    let later: Vec<String> = by_id[3..].iter().map(|(_, _, to)| to.clone()).collect();
    rewind_pending_mails(&app, &window_id, &later, (&by_id[2].1, None)).await;
    queue_in_chunks_of_two(&app, &window_id).await;
    assert_eq!(result_mails_to(&app, &recipients).await, vec![1; 7]);
    let cursor: (String, Option<chrono::DateTime<chrono::Utc>>) = with_pool!(app, |pool| {
        sqlx::query_as(
            "select mailed_excluded, mailed_excluded_at from draw_followups where window_id = $1",
        )
        .bind(&window_id)
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(cursor, (by_id[6].1.clone(), None));
}
