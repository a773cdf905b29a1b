//! Several instances of the service on one PostgreSQL database, as a national
//! deployment runs them behind a load balancer: two real `tirage serve` processes,
//! started at the same instant on a new database. Registrations go through both; the
//! same person registering on both at once passes once; the scheduler of each closes
//! and draws, and each timed transition happens once; two `/draw` calls sent to the two
//! instances at once make one draw.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tirage::draw::Bundle;
use tirage::draw::verify::check_bundle;

use crate::helpers::{ADMIN_TOKEN, applicant, new_database_url, postgres_server};

/// A `tirage serve` process and what it logged.
struct Instance {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(url: &str, dir: &std::path::Path, name: &str) -> Instance {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .arg("serve")
        .current_dir(dir)
        .env("TIRAGE_DATABASE_URL", url)
        .env("TIRAGE_DATABASE_MAX_CONNECTIONS", "4")
        .env("TIRAGE_LISTEN", "127.0.0.1:0")
        .env("TIRAGE_LOG_FORMAT", "json")
        .env("TIRAGE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TIRAGE_MAIL", format!("file:./mail-{name}"))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let kept = logs.clone();
    // Reads the logs to the end, so that the process never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["message"] == "listening"
            {
                let _ = address_tx.send(event["address"].as_str().unwrap_or_default().to_owned());
            }
            kept.lock().unwrap().push(line);
        }
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("instance {name} did not start: {:?}", logs.lock().unwrap()));
    Instance {
        child,
        base: format!("http://{address}"),
        logs,
    }
}

fn rfc3339(offset: chrono::Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A window whose registration closes `closes_in` from now and draws a second later.
fn window(beacon: &str, closes_in: i64) -> Value {
    let day = rfc3339(chrono::Duration::days(30));
    json!({
        "site": "75",
        "procedure": "renewal",
        "registration_opens_at": rfc3339(chrono::Duration::hours(-1)),
        "registration_closes_at": rfc3339(chrono::Duration::seconds(closes_in)),
        "draw_at": rfc3339(chrono::Duration::seconds(closes_in + 1)),
        "beacon": beacon,
        "slots": [
            {"starts_at": day, "counter": "G1"},
            {"starts_at": day, "counter": "G2"},
            {"starts_at": day, "counter": "G3"}
        ]
    })
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> (u16, Value) {
    let answer = client
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn state(client: &reqwest::Client, base: &str, id: &str) -> String {
    let window: Value = client
        .get(format!("{base}/api/v1/windows/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    window["state"].as_str().unwrap().to_owned()
}

/// How many audit events of each action a window has.
async fn actions(db: &mut PgConnection, window_id: &str, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from audit_events where window_id = $1 and action = $2")
        .bind(window_id)
        .bind(action)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_postgresql_database() {
    if postgres_server().is_none() {
        eprintln!(
            "skipped: no PostgreSQL server (set TIRAGE_TEST_POSTGRES_URL; scripts/test.sh starts one)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = new_database_url(dir.path()).await;
    // Both start at once on the new database: migrations, the admin token, the signing
    // key and the check-code key are each made once.
    let (a, b) = {
        let (url_a, url_b) = (url.clone(), url.clone());
        let (dir_a, dir_b) = (dir.path().to_owned(), dir.path().to_owned());
        let a = std::thread::spawn(move || start(&url_a, &dir_a, "a"));
        let b = std::thread::spawn(move || start(&url_b, &dir_b, "b"));
        (a.join().unwrap(), b.join().unwrap())
    };
    let mut db = PgConnection::connect(&url).await.unwrap();
    let (tokens, keys): (i64, i64) = sqlx::query_as(
        "select (select count(*) from staff_tokens), (select count(*) from signing_keys)",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((tokens, keys), (1, 1));
    let client = reqwest::Client::new();

    // Window 1 closes and draws by itself (beacon none); window 2 waits for its numbers.
    let (status, created) = post(
        &client,
        format!("{}/api/v1/windows", a.base),
        &window("none", 8),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let timed = created["id"].as_str().unwrap().to_owned();
    let (status, created) = post(
        &client,
        format!("{}/api/v1/windows", b.base),
        &window("rfc3797:lottery of the day", 8),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let manual = created["id"].as_str().unwrap().to_owned();
    for (instance, id) in [(&b, &timed), (&a, &manual)] {
        let (status, body) = post(
            &client,
            format!("{}/api/v1/windows/{id}/open", instance.base),
            &json!({}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    // Registrations through both instances; each person once in each window, except
    // that every one of them is sent to both instances at the same instant.
    let mut accepted = [0, 0];
    for n in 1..=24 {
        for (w, id) in [&timed, &manual].into_iter().enumerate() {
            let body = applicant(n);
            let (one, two) = tokio::join!(
                post(
                    &client,
                    format!("{}/api/v1/windows/{id}/counter-entries", a.base),
                    &body
                ),
                post(
                    &client,
                    format!("{}/api/v1/windows/{id}/counter-entries", b.base),
                    &body
                ),
            );
            let mut statuses = [one.0, two.0];
            statuses.sort_unstable();
            assert_eq!(statuses, [201, 409], "person {n}: {} / {}", one.1, two.1);
            accepted[w] += 1;
        }
    }
    let entries: Vec<(String, i64)> = sqlx::query_as(
        "select window_id, count(*) from entries group by window_id order by window_id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        entries.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [24, 24]
    );
    assert_eq!(accepted, [24, 24]);

    // Both schedulers see the close and draw times pass.
    let mut drawn = false;
    for _ in 0..300 {
        if state(&client, &a.base, &timed).await == "drawn"
            && state(&client, &b.base, &manual).await == "closed"
        {
            drawn = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(drawn, "the scheduler did not close and draw in time");
    // Two more scheduler ticks on each instance: nothing happens twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (id, action, n) in [
        (&timed, "window.closed", 1),
        (&timed, "window.drawn", 1),
        (&timed, "window.holders_recorded", 1),
        (&manual, "window.closed", 1),
        (&manual, "window.drawn", 0),
    ] {
        assert_eq!(actions(&mut db, id, action).await, n, "{action} of {id}");
    }

    // Two /draw calls at once, to the two instances: one draw.
    let numbers = json!({"rfc3797_values": "9319 / 2 5 12 8 10 / 9 18 26 34 41 45"});
    let (one, two) = tokio::join!(
        post(
            &client,
            format!("{}/api/v1/windows/{manual}/draw", a.base),
            &numbers
        ),
        post(
            &client,
            format!("{}/api/v1/windows/{manual}/draw", b.base),
            &numbers
        ),
    );
    let mut statuses = [one.0, two.0];
    statuses.sort_unstable();
    assert!(
        statuses == [200, 409] || statuses == [200, 200],
        "{} / {}",
        one.1,
        two.1
    );
    let hashes: Vec<&Value> = [&one, &two]
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| &body["results_hash"])
        .collect();
    assert!(hashes.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(actions(&mut db, &manual, "window.drawn").await, 1);
    let draws: i64 = sqlx::query_scalar("select count(*) from draws")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(draws, 2);

    // Each bundle, fetched from the other instance, verifies and holds all 24 entries.
    for (instance, id) in [(&b, &timed), (&a, &manual)] {
        let text = client
            .get(format!("{}/api/v1/windows/{id}/bundle", instance.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let bundle: Bundle = serde_json::from_str(&text).unwrap();
        let report = check_bundle(bundle).unwrap();
        assert!(report.is_ok(), "{:?}", report.checks);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["entries"].as_array().unwrap().len(), 24);
    }
    // The audit chain written by both instances is one unbroken chain.
    let check: Value = client
        .get(format!("{}/api/v1/audit/verify", a.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["ok"], true, "{check}");
    let errors: Vec<String> = [&a, &b]
        .iter()
        .flat_map(|i| i.logs.lock().unwrap().clone())
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
