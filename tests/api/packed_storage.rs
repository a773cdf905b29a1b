//! The packed storage of a close and a draw (migration 0018): entries and ranking kept
//! a few thousand per row. Entries at the edges of those rows, a count that is not a
//! multiple of their size, and windows closed or drawn by an earlier version (a row
//! per entry) must all read back as the bundle says.

use serde_json::{Value, json};
use tirage::domain::codes::{access_code, hash_access_code};
use tirage::draw::bundle::{commit, draw};
use tirage::draw::commit::sort_slots;
use tirage::draw::merkle::{leaf_hash, verify_inclusion};
use tirage::draw::{Digest, Entry, EntryId, Slot};
use tirage::store::packed::{ENTRY_CHUNK, RANK_CHUNK};

use crate::helpers::{ADMIN_TOKEN, TestApp, at};

const CLOSES: &str = "2026-12-15T18:00:00Z";
const DRAW_AT: &str = "2026-12-16T10:00:01Z";

fn window() -> Value {
    json!({
        "site": "13",
        "procedure": "renewal",
        "registration_opens_at": "2026-12-01T08:00:00Z",
        "registration_closes_at": CLOSES,
        "draw_at": "2026-12-16T10:00:00Z",
        "beacon": "none",
        "slots": [
            {"starts_at": "2027-01-04T08:30:00Z", "counter": "G1"},
            {"starts_at": "2027-01-04T08:30:00Z", "counter": "G2"},
            {"starts_at": "2027-01-05T09:00:00Z", "counter": "G1"}
        ]
    })
}

/// The one access code of every entry loaded by [`load`].
fn code() -> String {
    access_code([7; 15])
}

/// A deterministic entry id for `i`.
fn id_of(i: usize) -> String {
    hex::encode(tirage::draw::sha256(format!("packed {i}").as_bytes()))[..32].to_owned()
}

/// Loads entries straight into the database (registering thousands through the API
/// would only slow the test): `eligible` ones with weights 1 to 4, and `pending` ones
/// that never verified. All share the access code [`code`].
async fn load(app: &TestApp, window_id: &str, ids: &[(String, &str)]) {
    let now = at("2026-12-02T08:00:00Z");
    for (chunk_index, chunk) in ids.chunks(500).enumerate() {
        with_pool!(app, |pool| {
            let mut query = sqlx::QueryBuilder::new(
                "insert into entries (id, window_id, status, channel, access_code_hash,
                     family_name, given_names, birth_date, nationality, document_kind,
                     document_number, document_country, language, weight, document_key,
                     person_key, created_at, verified_at) ",
            );
            query.push_values(chunk.iter().enumerate(), |mut row, (i, (id, status))| {
                let n = chunk_index * 500 + i;
                row.push_bind(id.clone())
                    .push_bind(window_id)
                    .push_bind(*status)
                    .push_bind("counter")
                    .push_bind(hash_access_code(&code()))
                    .push_bind("Packed")
                    .push_bind("Applicant")
                    .push_bind(chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap())
                    .push_bind("FRA")
                    .push_bind("passport")
                    .push_bind(format!("P{n:09}"))
                    .push_bind("FRA")
                    .push_bind("fr")
                    .push_bind(1 + (n % 4) as i64)
                    .push_bind(format!("document {n}"))
                    .push_bind(format!("person {n}"))
                    .push_bind(now)
                    .push_bind((*status == "eligible").then_some(now));
            });
            query.build().execute(pool).await.unwrap();
        });
    }
}

async fn open(app: &TestApp) -> String {
    open_with(app, &window()).await
}

/// Creates the window `body` describes and opens it.
async fn open_with(app: &TestApp, body: &Value) -> String {
    let window_id = app.create_window(body).await;
    app.clock.set(at("2026-12-01T09:00:00Z"));
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/open"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    window_id
}

/// Checks an entry's view against the bundle: leaf, weight, inclusion proof, rank and
/// slot.
async fn check_entry(app: &TestApp, bundle: &Value, leaf: usize) {
    let entry = &bundle["entries"][leaf];
    let id = entry["id"].as_str().unwrap();
    let view = app
        .get(&format!("/api/v1/entries/{id}"), Some(&code()))
        .await;
    let view = view.assert_status(200);
    let proof = &view["proof"];
    assert_eq!(proof["leaf_index"], leaf, "{id}");
    assert_eq!(proof["weight"], entry["weight"], "{id}");
    let n = bundle["entries"].as_array().unwrap().len();
    assert_eq!(proof["tree_size"], n);
    let digest = |v: &Value| -> Digest {
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let path: Vec<Digest> = proof["audit_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(digest)
        .collect();
    let leaf_digest = leaf_hash(&Entry {
        id: EntryId::parse_hex(id).unwrap(),
        weight: u32::try_from(entry["weight"].as_u64().unwrap()).unwrap(),
    });
    assert!(verify_inclusion(
        &leaf_digest,
        leaf as u64,
        n as u64,
        &path,
        &digest(&bundle["entries_root"])
    ));
    let position = bundle["results"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["id"] == id)
        .unwrap();
    let result = &bundle["results"][position];
    assert_eq!(view["draw"]["rank"], result["rank"], "{id}");
    assert_eq!(view["draw"]["slot"]["id"], result["slot"], "{id}");
}

#[tokio::test]
async fn entries_at_the_edges_of_the_packed_rows_read_back_as_the_bundle_says() {
    let app = TestApp::spawn().await;
    let window_id = open(&app).await;
    // Two full rows of entries and five more, plus entries that never verified mixed
    // among them (they are not frozen, and must not be found).
    let n = 2 * ENTRY_CHUNK + 5;
    let mut ids: Vec<(String, &str)> = (0..n).map(|i| (id_of(i), "eligible")).collect();
    let pending: Vec<String> = (n..n + 3).map(id_of).collect();
    ids.extend(
        pending
            .iter()
            .map(|id| (id.clone(), "pending_verification")),
    );
    load(&app, &window_id, &ids).await;

    let bundle = drawn_bundle(&app, &window_id).await;
    assert_eq!(app.count("draw_entry_chunks").await, 3);
    // rank -> leaf in one row (65,536 ranks a row), leaf -> rank in three (4,096)
    assert_eq!(app.count("draw_rank_chunks").await, 4);
    assert_eq!(bundle["entries"].as_array().unwrap().len(), n);

    // The frozen entries read back whole, in leaf order.
    let frozen = app.store().frozen_entries(&window_id).await.unwrap();
    let frozen: Vec<Value> = frozen
        .iter()
        .map(|e| json!({"id": e.id.to_hex(), "weight": e.weight}))
        .collect();
    assert_eq!(Value::from(frozen), bundle["entries"]);

    // First and last of each row, and the last entry of the partial row.
    let last = ENTRY_CHUNK - 1;
    for leaf in [0, 1, last, last + 1, 2 * last + 1, 2 * ENTRY_CHUNK, n - 1] {
        check_entry(&app, &bundle, leaf).await;
    }
    // The selected ones (their slots come from another table).
    for result in bundle["results"].as_array().unwrap().iter().take(3) {
        let leaf = bundle["entries"]
            .as_array()
            .unwrap()
            .iter()
            .position(|e| e["id"] == result["id"])
            .unwrap();
        check_entry(&app, &bundle, leaf).await;
    }
    // Entries that did not verify are not in the draw.
    for id in &pending {
        let view = app
            .get(&format!("/api/v1/entries/{id}"), Some(&code()))
            .await;
        let view = view.assert_status(200);
        assert_eq!(view["status"], "excluded", "{id}");
        assert!(view["proof"].is_null());
    }

    // The published results are the bundle's, before and after the follow-up wrote
    // a row per entry, and those rows say the same.
    let expected = expected_results(&bundle);
    assert_eq!(published(&app, &window_id).await, expected);
    app.finish_draw_followup(&window_id).await;
    assert_eq!(published(&app, &window_id).await, expected);
    assert_eq!(result_rows(&app).await, expected);
    assert_eq!(app.count("slot_assignments").await, 3);
}

/// Does what a close of an earlier version did: a `draw_entries` row per entry, and
/// no packed rows. Returns the frozen entries, the slots and the commitment.
async fn close_the_old_way(app: &TestApp, window_id: &str) -> (Vec<Entry>, Vec<Slot>, Digest) {
    let now = at(DRAW_AT);
    let (beacon, seed_commitment): (String, String) = with_pool!(app, |pool| sqlx::query_as(
        "select beacon, seed_commitment from windows where id = $1"
    )
    .bind(window_id)
    .fetch_one(pool)
    .await
    .unwrap());
    let rows: Vec<(String, i64)> = with_pool!(app, |pool| sqlx::query_as(
        "select id, weight from entries where window_id = $1 and status = 'eligible'"
    )
    .bind(window_id)
    .fetch_all(pool)
    .await
    .unwrap());
    let mut entries: Vec<Entry> = rows
        .iter()
        .map(|(id, weight)| Entry {
            id: EntryId::parse_hex(id).unwrap(),
            weight: u32::try_from(*weight).unwrap(),
        })
        .collect();
    entries.sort_unstable_by_key(|e| e.id);
    let slot_rows: Vec<(String, String, String)> = with_pool!(app, |pool| sqlx::query_as(
        "select id, starts_at, counter from slots where window_id = $1"
    )
    .bind(window_id)
    .fetch_all(pool)
    .await
    .unwrap());
    let mut slots: Vec<Slot> = slot_rows
        .into_iter()
        .map(|(id, starts_at, counter)| Slot {
            id,
            starts_at,
            counter,
        })
        .collect();
    sort_slots(&mut slots);
    let committed = commit(window_id, &beacon, &seed_commitment, &entries, &slots);
    with_pool!(app, |pool| {
        sqlx::query(
            "insert into commitments (window_id, n_entries, entries_root, n_slots, slots_hash,
                 seed_commitment, beacon, commitment, committed_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(window_id)
        .bind(entries.len() as i64)
        .bind(hex::encode(committed.entries_root))
        .bind(slots.len() as i64)
        .bind(hex::encode(committed.slots_hash))
        .bind(&seed_commitment)
        .bind(&beacon)
        .bind(hex::encode(committed.commitment))
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        for (leaf, entry) in entries.iter().enumerate() {
            sqlx::query(
                "insert into draw_entries (window_id, leaf_index, entry_id, weight)
                 values ($1, $2, $3, $4)",
            )
            .bind(window_id)
            .bind(leaf as i64)
            .bind(entry.id.to_hex())
            .bind(i64::from(entry.weight))
            .execute(pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "update windows set state = 'closed', commitment = $2, closed_at = $3, updated_at = $3
             where id = $1",
        )
        .bind(window_id)
        .bind(hex::encode(committed.commitment))
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    });
    assert_eq!(app.count("draw_entry_chunks").await, 0);
    (entries, slots, committed.commitment)
}

async fn old_window(app: &TestApp, n: usize) -> String {
    let window_id = open(app).await;
    let ids: Vec<(String, &str)> = (0..n).map(|i| (id_of(i), "eligible")).collect();
    load(app, &window_id, &ids).await;
    app.clock.set(at(DRAW_AT));
    window_id
}

#[tokio::test]
async fn a_window_closed_by_an_earlier_version_is_drawn_and_read_from_its_rows() {
    let app = TestApp::spawn().await;
    let window_id = old_window(&app, 7).await;
    close_the_old_way(&app, &window_id).await;

    // The draw reads the rows; the bundle verifies; each entry reads back.
    app.post_empty(
        &format!("/api/v1/windows/{window_id}/draw"),
        Some(ADMIN_TOKEN),
    )
    .await
    .assert_status(200);
    let bundle = app
        .get(&format!("/api/v1/windows/{window_id}/bundle"), None)
        .await;
    let bundle = bundle.assert_status(200).clone();
    let parsed: tirage::draw::Bundle = serde_json::from_value(bundle.clone()).unwrap();
    assert!(tirage::draw::verify::check_bundle(parsed).unwrap().is_ok());
    for leaf in 0..7 {
        check_entry(&app, &bundle, leaf).await;
    }
    app.finish_draw_followup(&window_id).await;
    assert_eq!(app.count("draw_results").await, 7);
    assert_eq!(app.count("slot_assignments").await, 3);
}

#[tokio::test]
async fn a_window_drawn_by_an_earlier_version_reads_its_ranks_from_its_rows() {
    let app = TestApp::spawn().await;
    let window_id = old_window(&app, 6).await;
    let (entries, slots, commitment) = close_the_old_way(&app, &window_id).await;
    // What a draw of an earlier version stored: the draw and a row per entry, and no
    // packed ranking.
    let secret = app
        .store()
        .window_secret(&window_id)
        .await
        .unwrap()
        .unwrap();
    let outcome = draw(&commitment, &secret, &[], &entries, &slots);
    let rows = outcome.rows(&entries, &slots);
    with_pool!(app, |pool| {
        sqlx::query(
            "insert into draws (window_id, beacon_value, seed, results_hash, n_selected,
                 statistics, drawn_at)
             values ($1, '', $2, $3, 3, '{}', $4)",
        )
        .bind(&window_id)
        .bind(hex::encode(outcome.seed))
        .bind(hex::encode(outcome.results_hash))
        .bind(at(DRAW_AT))
        .execute(pool)
        .await
        .unwrap();
        for row in &rows {
            sqlx::query(
                "insert into draw_results (window_id, rank, entry_id, slot_id)
                 values ($1, $2, $3, $4)",
            )
            .bind(&window_id)
            .bind(row.rank as i64)
            .bind(row.id.to_hex())
            .bind(row.slot.clone())
            .execute(pool)
            .await
            .unwrap();
        }
        sqlx::query("update windows set state = 'drawn', drawn_at = $2 where id = $1")
            .bind(&window_id)
            .bind(at(DRAW_AT))
            .execute(pool)
            .await
            .unwrap();
    });
    assert_eq!(app.count("draw_rank_chunks").await, 0);

    let results = app.store().results(&window_id).await.unwrap();
    assert_eq!(results.len(), 6);
    for (line, row) in results.iter().zip(&rows) {
        assert_eq!(line.rank, row.rank as i64);
        assert_eq!(line.entry_id, row.id.to_hex());
        assert_eq!(line.slot_id, row.slot);
    }
    for row in &rows {
        let id = row.id.to_hex();
        let view = app
            .get(&format!("/api/v1/entries/{id}"), Some(&code()))
            .await;
        let view = view.assert_status(200);
        let leaf = entries.iter().position(|e| e.id == row.id).unwrap();
        assert_eq!(view["proof"]["leaf_index"], leaf);
        assert_eq!(view["draw"]["rank"], row.rank);
        assert_eq!(view["draw"]["slot"]["id"].as_str(), row.slot.as_deref());
    }
}

/// The leaf (position in the bundle's entries) of the entry at `rank`.
fn leaf_at_rank(bundle: &Value, rank: usize) -> usize {
    let id = &bundle["results"][rank - 1]["id"];
    bundle["entries"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| &e["id"] == id)
        .unwrap()
}

/// The results as the store publishes them, as `[rank, id, slot]` values.
async fn published(app: &TestApp, window_id: &str) -> Vec<Value> {
    let lines = app.store().results(window_id).await.unwrap();
    lines
        .into_iter()
        .map(|l| json!([l.rank, l.entry_id, l.slot_id]))
        .collect()
}

/// The rows of `draw_results`, as `[rank, id, slot]` values.
async fn result_rows(app: &TestApp) -> Vec<Value> {
    let rows: Vec<(i64, String, Option<String>)> = with_pool!(app, |pool| sqlx::query_as(
        "select rank, entry_id, slot_id from draw_results order by rank"
    )
    .fetch_all(pool)
    .await
    .unwrap());
    rows.into_iter()
        .map(|(rank, id, slot)| json!([rank, id, slot]))
        .collect()
}

/// Closes and draws an open window at its draw time; returns the served bundle.
async fn drawn_bundle(app: &TestApp, window_id: &str) -> Value {
    app.clock.set(at(DRAW_AT));
    app.close_and_draw(window_id).await;
    let bundle = app
        .get(&format!("/api/v1/windows/{window_id}/bundle"), None)
        .await;
    bundle.assert_status(200).clone()
}

/// The bundle's results as `[rank, id, slot]` values.
fn expected_results(bundle: &Value) -> Vec<Value> {
    bundle["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["rank"], r["id"], r["slot"]]))
        .collect()
}

/// A window of `RANK_CHUNK + 4` slots (a template: one counter, 20 a day) and 50
/// entries more, closed and drawn.
async fn drawn_with_two_rows_of_slots(app: &TestApp) -> (String, Value) {
    let n_slots = RANK_CHUNK + 4;
    let days = n_slots / 20;
    assert_eq!(days * 20, n_slots);
    let mut body = window();
    body.as_object_mut().unwrap().remove("slots");
    body["slot_template"] = json!({
        "first_day": "2027-01-04",
        "last_day": (at("2027-01-04T00:00:00Z") + chrono::Duration::days(days as i64 - 1))
            .format("%Y-%m-%d")
            .to_string(),
        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "opening_hours": [{"from": "08:00", "to": "18:00"}],
        "counters": ["A"],
        "minutes_per_appointment": 30
    });
    let window_id = open_with(app, &body).await;
    let ids: Vec<(String, &str)> = (0..n_slots + 50).map(|i| (id_of(i), "eligible")).collect();
    load(app, &window_id, &ids).await;
    let bundle = drawn_bundle(app, &window_id).await;
    assert!(bundle["results"][n_slots - 1]["slot"].is_string());
    assert!(bundle["results"][n_slots]["slot"].is_null());
    (window_id, bundle)
}

#[tokio::test]
async fn the_slots_of_a_draw_are_packed_and_read_before_any_result_row_is_written() {
    let app = TestApp::spawn().await;
    // The follow-up cannot write a single row of `draw_results`: the draw itself
    // writes none, so it succeeds, and everything reads from the packed rows.
    app.fail_inserts("draw_results", "true", "disk gone").await;
    let (window_id, bundle) = drawn_with_two_rows_of_slots(&app).await;
    assert_eq!(app.count("draw_results").await, 0);
    assert_eq!(app.count("draw_slot_chunks").await, 2);

    let expected = expected_results(&bundle);
    assert_eq!(published(&app, &window_id).await, expected);
    // Both sides of the edge between the two rows of slots, the last selected rank
    // and the first on the waiting list.
    for rank in [
        1,
        RANK_CHUNK,
        RANK_CHUNK + 1,
        RANK_CHUNK + 4,
        RANK_CHUNK + 5,
    ] {
        check_entry(&app, &bundle, leaf_at_rank(&bundle, rank)).await;
    }

    // Once the follow-up can write, its rows say what the bundle says, slots included.
    app.heal_inserts("draw_results").await;
    app.finish_draw_followup(&window_id).await;
    assert_eq!(result_rows(&app).await, expected);
    assert_eq!(published(&app, &window_id).await, expected);
    assert_eq!(app.count("slot_assignments").await, (RANK_CHUNK + 4) as i64);
    assert!(app.execute("delete from draw_slot_chunks").await.is_err());
}

#[tokio::test]
async fn a_window_drawn_before_the_slots_were_packed_reads_them_from_its_rows() {
    let app = TestApp::spawn().await;
    let (window_id, bundle) = drawn_with_two_rows_of_slots(&app).await;
    app.finish_draw_followup(&window_id).await;
    // What a draw of an earlier version left while its follow-up was still to run:
    // the selected ranks' rows (with their slots), the cursor after them, no packed
    // slots.
    app.drop_trigger("draw_slot_chunks", "draw_slot_chunks_no_delete")
        .await;
    app.drop_trigger("draw_results", "draw_results_no_delete")
        .await;
    app.execute("delete from draw_slot_chunks").await.unwrap();
    let selected = (RANK_CHUNK + 4) as i64;
    app.execute(&format!("delete from draw_results where rank > {selected}"))
        .await
        .unwrap();
    app.execute(&format!(
        "update draw_results_fill set filled_rank = {selected}, done_at = null"
    ))
    .await
    .unwrap();

    let expected = expected_results(&bundle);
    assert_eq!(published(&app, &window_id).await, expected);
    for rank in [1, RANK_CHUNK + 1, RANK_CHUNK + 4, RANK_CHUNK + 5] {
        check_entry(&app, &bundle, leaf_at_rank(&bundle, rank)).await;
    }
    // The follow-up writes the waiting ranks only, after the rows that are there.
    app.store()
        .finish_draw_results(&window_id, at(DRAW_AT))
        .await
        .unwrap();
    assert_eq!(app.count("draw_results").await, selected + 50);
    assert_eq!(published(&app, &window_id).await, expected);
}
