//! Per-client rate limits: `429` with `Retry-After`, a problem document on the API and a
//! page in the reader's language on the forms; budgets per client and per class, that
//! refill with time (the test clock), and the client address from a trusted proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, header};
use chrono::Duration;
use serde_json::Value;
use tirage::app::Application;
use tirage::config::ServeArgs;
use tirage::http::limits::{RateLimits, RateSetting, limited_routes};
use tirage::jobs::clock::SystemClock;

use crate::helpers::{Answer, TestApp, applicant};

/// A request from `client`, as if it came over a connection from that address.
fn from(
    client: &str,
    method: Method,
    uri: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let address: SocketAddr = format!("{client}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(address));
    request
}

async fn register_from(app: &TestApp, client: &str, window_id: &str, n: u32) -> Answer {
    app.send_request(from(
        client,
        Method::POST,
        &format!("/api/v1/windows/{window_id}/entries"),
        Some(&applicant(n)),
        &[],
    ))
    .await
}

#[tokio::test]
async fn registrations_are_limited_per_client_and_the_budget_refills() {
    // Arrange: two registrations per hour and per address
    let app = TestApp::spawn_with(|c: &mut ServeArgs| {
        c.rate_registration = RateSetting::per(2, Duration::hours(1));
    })
    .await;
    let window_id = app.open_window().await;
    register_from(&app, "198.51.100.1", &window_id, 1)
        .await
        .assert_status(201);
    register_from(&app, "198.51.100.1", &window_id, 2)
        .await
        .assert_status(201);

    // Act: a third one from the same address
    let refused = register_from(&app, "198.51.100.1", &window_id, 3).await;

    // Assert: 429, a problem with how long to wait, the same in Retry-After; nothing stored
    let problem = refused.assert_problem(429, "too-many-requests");
    assert_eq!(problem["retry_after"], 1800);
    assert_eq!(refused.headers[header::RETRY_AFTER], "1800");
    assert_eq!(app.count("entries").await, 2);
    // another address has its own budget
    register_from(&app, "198.51.100.2", &window_id, 4)
        .await
        .assert_status(201);
    // half an hour later, one more is allowed, and only one
    app.clock.advance(Duration::minutes(30));
    register_from(&app, "198.51.100.1", &window_id, 5)
        .await
        .assert_status(201);
    register_from(&app, "198.51.100.1", &window_id, 6)
        .await
        .assert_problem(429, "too-many-requests");
    assert_eq!(app.count("entries").await, 4);
    // refusals are counted in the metrics, by class
    let metrics = app.get("/metrics", None).await.text;
    assert!(
        metrics.contains(r#"tirage_rate_limited_total{class="registration"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_limited_route_refuses_the_request_over_budget() {
    // Arrange: one request per hour in every class
    let limited = TestApp::spawn_with(|c: &mut ServeArgs| {
        c.set_rate_limits(RateLimits::all(RateSetting::per(1, Duration::hours(1))));
    })
    .await;
    let window_id = limited.open_window().await;
    let entry_id = "0123456789abcdef0123456789abcdef";
    let access = "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF";
    let bearer = format!("Bearer {access}");

    for (i, (method, template, class, page)) in limited_routes().iter().enumerate() {
        let uri = template
            .replace("{id}", &window_id)
            .replace("{entry_id}", entry_id);
        let client = format!("203.0.113.{}", i + 1);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let send = || {
            limited.send_request(from(
                &client,
                method.clone(),
                &uri,
                None,
                &[("authorization", &bearer), ("cookie", "tirage_lang=en")],
            ))
        };

        // Act: the first request is answered (whatever its answer), the second refused
        let first = send().await;
        let second = send().await;

        // Assert
        assert_ne!(first.status, 429, "{method} {template}: {}", first.text);
        assert_eq!(
            second.status, 429,
            "{method} {template} ({class:?}): {}",
            second.text
        );
        assert_eq!(second.headers[header::RETRY_AFTER], "3600", "{template}");
        if *page {
            assert!(second.content_type().starts_with("text/html"), "{template}");
            assert!(
                second.text.contains("Please wait a little"),
                "{}",
                second.text
            );
            assert!(second.text.contains("60 minute(s)"), "{}", second.text);
        } else {
            second.assert_problem(429, "too-many-requests");
            let spec: Value = serde_json::from_str(&tirage::http::openapi_json()).unwrap();
            let documented =
                &spec["paths"][template][method.as_str().to_ascii_lowercase()]["responses"]["429"];
            assert!(documented.is_object(), "{template} does not document 429");
        }
    }
}

#[tokio::test]
async fn the_form_page_speaks_the_readers_language() {
    let app = TestApp::spawn_with(|c: &mut ServeArgs| {
        c.rate_status = RateSetting::per(1, Duration::minutes(10));
    })
    .await;
    let lookup = |cookie: &'static str| {
        app.send_request(from(
            "192.0.2.9",
            Method::POST,
            "/entry",
            None,
            &[("cookie", cookie)],
        ))
    };
    assert_ne!(lookup("").await.status, 429);

    let french = lookup("").await;
    let arabic = lookup("tirage_lang=ar").await;

    assert_eq!(french.status, 429);
    assert!(
        french.text.contains("Merci de patienter"),
        "{}",
        french.text
    );
    assert!(french.text.contains("10 minute(s)"), "{}", french.text);
    assert!(french.text.contains(r#"lang="fr""#));
    assert_eq!(arabic.status, 429);
    assert!(arabic.text.contains(r#"dir="rtl""#));
    assert!(arabic.text.contains("يُرجى الانتظار قليلًا"), "{}", arabic.text);
    assert_eq!(arabic.headers[header::RETRY_AFTER], "600");
}

#[tokio::test]
async fn a_trusted_proxy_header_names_the_client_only_when_configured() {
    let status_twice = |app: &TestApp, first: &'static str, second: &'static str| {
        let router = app.router.clone();
        async move {
            let mut statuses = Vec::new();
            for forwarded in [first, second] {
                let request = from(
                    "10.0.0.1",
                    Method::GET,
                    "/api/v1/entries/0123456789abcdef0123456789abcdef",
                    None,
                    &[
                        ("authorization", "Bearer x"),
                        ("x-forwarded-for", forwarded),
                    ],
                );
                statuses.push(
                    crate::helpers::call(router.clone(), request)
                        .await
                        .status
                        .as_u16(),
                );
            }
            statuses
        }
    };
    let one_per_hour = RateSetting::per(1, Duration::hours(1));

    // without the setting, the header is ignored: both come from the proxy's address
    let direct = TestApp::spawn_with(|c: &mut ServeArgs| c.rate_status = one_per_hour).await;
    assert_eq!(
        status_twice(&direct, "203.0.113.1", "203.0.113.2").await,
        [404, 429]
    );

    // behind a trusted proxy: the address it added (the last one) is the client
    let proxied = TestApp::spawn_with(|c: &mut ServeArgs| {
        c.rate_status = one_per_hour;
        c.client_ip_header = Some("x-forwarded-for".parse().unwrap());
    })
    .await;
    assert_eq!(
        status_twice(&proxied, "6.6.6.6, 203.0.113.1", "6.6.6.6, 203.0.113.2").await,
        [404, 404]
    );
    assert_eq!(
        status_twice(&proxied, "1.1.1.1, 203.0.113.3", "2.2.2.2, 203.0.113.3").await,
        [404, 429]
    );
}

#[tokio::test]
async fn limits_apply_over_a_real_connection() {
    // the service reads the client address from the TCP connection
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("rl.db").display());
    let mut config = ServeArgs::new(url, "127.0.0.1:0".parse().unwrap());
    config.rate_status = RateSetting::per(1, Duration::hours(1));
    let app = Application::build_with_clock(config, Arc::new(SystemClock))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let lookup = || {
        client
            .get(format!(
                "{base}/api/v1/entries/0123456789abcdef0123456789abcdef"
            ))
            .bearer_auth("AAAA-BBBB")
            .send()
    };

    let first = lookup().await.unwrap();
    let second = lookup().await.unwrap();

    assert_eq!(first.status(), 404);
    assert_eq!(second.status(), 429);
    let retry_after: i64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    stop.shutdown();
    server.await.unwrap().unwrap();
}
