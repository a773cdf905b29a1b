//! One test over a real socket: the service answers on its port and stops gracefully.

use std::sync::Arc;
use std::time::Duration;

use tirage::app::Application;
use tirage::config::ServeArgs;
use tirage::jobs::clock::SystemClock;

use crate::helpers::{ADMIN_TOKEN, window_body};

#[tokio::test]
async fn serves_on_a_real_port_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::new_database_url(dir.path()).await;
    let mut config = ServeArgs::new(url.clone(), "127.0.0.1:0".parse().unwrap());
    config.admin_token = Some(ADMIN_TOKEN.into());
    let app = Application::build_with_clock(config, Arc::new(SystemClock))
        .await
        .unwrap();
    let port = app.port();
    assert_ne!(port, 0);
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let created = client
        .post(format!("{base}/api/v1/windows"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&window_body())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let problem = client
        .post(format!("{base}/api/v1/windows"))
        .json(&window_body())
        .send()
        .await
        .unwrap();
    assert_eq!(problem.status(), 401);
    assert_eq!(
        problem.headers()["content-type"],
        "application/problem+json"
    );

    stop.shutdown();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops within 10 s")
        .unwrap()
        .unwrap();
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "nothing listens any more"
    );
    // The data stays and the database opens again.
    if crate::helpers::postgres_server().is_none() {
        assert!(dir.path().join("tirage.db").exists());
    }
    let store = tirage::store::Store::connect(&url).await.unwrap();
    let windows = store
        .windows(true, &tirage::store::WindowFilter::default())
        .await
        .unwrap();
    assert_eq!(windows.len(), 1);
}

/// The `tirage serve` command, configured by environment variables, stops on SIGTERM.
#[cfg(unix)]
#[tokio::test]
async fn the_serve_command_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tirage"))
        .arg("serve")
        .current_dir(dir.path())
        .env("TIRAGE_LISTEN", "127.0.0.1:0")
        .env("TIRAGE_LOG_FORMAT", "json")
        .env("TIRAGE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("TIRAGE_MAIL", "file:./mail")
        .env("RUST_LOG", "info")
        .env_remove("TIRAGE_DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = logs
            .next()
            .expect("the service logs where it listens")
            .unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "listening" {
            break event["address"].as_str().unwrap().to_owned();
        }
    };
    let health = reqwest::get(format!("http://{address}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // The default database is a file in the working directory, created at start.
    assert!(dir.path().join("tirage.db").exists());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = logs.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("stop signal received")),
        "{rest:?}"
    );
}
