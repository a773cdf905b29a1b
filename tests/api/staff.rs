//! Staff authentication and roles: 401 without a valid token, 403 without the role.

use serde_json::json;
use tirage::app::{Application, StartupError};

use crate::helpers::{ADMIN_TOKEN, TestApp, window_body};

#[tokio::test]
async fn staff_routes_need_a_token() {
    let app = TestApp::spawn().await;
    let answer = app.post("/api/v1/windows", None, &window_body()).await;
    answer.assert_problem(401, "unauthorized");
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    app.post(
        "/api/v1/windows",
        Some("tirage_not-a-real-token"),
        &window_body(),
    )
    .await
    .assert_problem(401, "unauthorized");
    app.get("/api/v1/staff-tokens", None)
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(app.count("windows").await, 0);
}

#[tokio::test]
async fn each_role_gets_what_it_may_do() {
    let app = TestApp::spawn().await;
    let auditor = app.token("auditor").await;
    let staff = app.token("staff").await;

    // Creating windows: staff and admin, not auditors.
    app.post("/api/v1/windows", Some(&auditor), &window_body())
        .await
        .assert_problem(403, "forbidden");
    let created = app
        .post("/api/v1/windows", Some(&staff), &window_body())
        .await;
    let id = created.assert_status(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Opening and editing: staff, not auditors.
    let open = format!("/api/v1/windows/{id}/open");
    app.post_empty(&open, Some(&auditor))
        .await
        .assert_problem(403, "forbidden");
    app.patch(
        &format!("/api/v1/windows/{id}"),
        Some(&auditor),
        &json!({"site": "13"}),
    )
    .await
    .assert_problem(403, "forbidden");

    // Reading the audit trail: every role; never anonymous.
    let events = format!("/api/v1/windows/{id}/events");
    let trail = app.get(&events, Some(&auditor)).await;
    assert_eq!(
        trail.assert_status(200)["events"][0]["action"],
        "window.created"
    );
    app.get(&events, None)
        .await
        .assert_problem(401, "unauthorized");

    // Managing tokens: admin only.
    let body = json!({"name": "someone", "role": "staff"});
    app.post("/api/v1/staff-tokens", Some(&staff), &body)
        .await
        .assert_problem(403, "forbidden");
    app.get("/api/v1/staff-tokens", Some(&auditor))
        .await
        .assert_problem(403, "forbidden");

    // Counter registration: staff, not auditors.
    app.post_empty(&open, Some(&staff)).await.assert_status(200);
    let counter = format!("/api/v1/windows/{id}/counter-entries");
    app.post(&counter, Some(&auditor), &crate::helpers::applicant(1))
        .await
        .assert_problem(403, "forbidden");
    app.post(&counter, None, &crate::helpers::applicant(1))
        .await
        .assert_problem(401, "unauthorized");
    assert_eq!(app.count("entries").await, 0);
}

#[tokio::test]
async fn admins_create_list_and_revoke_tokens() {
    let app = TestApp::spawn().await;
    let created = app
        .post(
            "/api/v1/staff-tokens",
            Some(ADMIN_TOKEN),
            &json!({"name": "Guichet 2", "role": "staff"}),
        )
        .await;
    let created = created.assert_status(201).clone();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("tirage_"));
    assert_eq!(created["role"], "staff");

    let me = app.get("/api/v1/staff/me", Some(token)).await;
    assert_eq!(me.assert_status(200)["name"], "Guichet 2");

    let list = app.get("/api/v1/staff-tokens", Some(ADMIN_TOKEN)).await;
    let list = list.assert_status(200).to_string();
    assert!(list.contains("Guichet 2") && list.contains("bootstrap admin"));
    assert!(!list.contains(token), "a token is shown only once");

    let id = created["id"].as_str().unwrap();
    let revoked = app
        .post_empty(
            &format!("/api/v1/staff-tokens/{id}/revoke"),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert!(revoked.assert_status(200)["revoked_at"].is_string());
    app.get("/api/v1/staff/me", Some(token))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn token_requests_are_validated() {
    let app = TestApp::spawn().await;
    let answer = app
        .post(
            "/api/v1/staff-tokens",
            Some(ADMIN_TOKEN),
            &json!({"name": " ", "role": "king"}),
        )
        .await;
    let problem = answer.assert_problem(422, "validation");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "role"]);
}

#[tokio::test]
async fn the_admin_token_is_seeded_once_and_must_be_long() {
    let app = TestApp::spawn().await;
    let url = app.url.clone();
    // A second start on the same database with the same token adds nothing.
    let mut config = tirage::config::ServeArgs::new(url.clone(), "127.0.0.1:0".parse().unwrap());
    config.admin_token = Some(ADMIN_TOKEN.into());
    drop(Application::build(config).await.unwrap());
    assert_eq!(app.count("staff_tokens").await, 1);

    let mut config = tirage::config::ServeArgs::new(url, "127.0.0.1:0".parse().unwrap());
    config.admin_token = Some("short".into());
    assert!(matches!(
        Application::build(config).await,
        Err(StartupError::Config(_))
    ));
}

/// Signs in on the staff pages with the admin token; returns the session cookie.
async fn staff_session(router: axum::Router) -> String {
    use axum::body::Body;
    use axum::http::{Request, header};
    let csrf = "c".repeat(64);
    let request = Request::builder()
        .method("POST")
        .uri("/staff/sign-in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("tirage_csrf={csrf}"))
        .body(Body::from(format!(
            "csrf={csrf}&token={ADMIN_TOKEN}&next=/staff"
        )))
        .unwrap();
    let answer = crate::helpers::call(router, request).await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("tirage_staff="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn staff_page(router: axum::Router, cookie: &str) -> u16 {
    use axum::body::Body;
    use axum::http::{Request, header};
    let request = Request::builder()
        .uri("/staff")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    crate::helpers::call(router, request).await.status.as_u16()
}

#[tokio::test]
async fn a_staff_session_is_good_on_every_instance_of_the_database() {
    let app = TestApp::spawn().await;
    let session = staff_session(app.router.clone()).await;
    assert_eq!(staff_page(app.router.clone(), &session).await, 200);
    // Without a session, or with a forged one, the staff pages send to the sign-in form.
    assert_eq!(staff_page(app.router.clone(), "tirage_staff=x").await, 303);
    let forged = session.replacen('.', "0.", 1);
    assert_eq!(staff_page(app.router.clone(), &forged).await, 303);

    // A second instance on the same database (another process behind the load
    // balancer, or this one after a restart) accepts the session.
    let other = Application::build_with_clock(
        tirage::config::ServeArgs::new(app.url.clone(), "127.0.0.1:0".parse().unwrap()),
        std::sync::Arc::new(app.clock.clone()),
    )
    .await
    .unwrap();
    assert_eq!(staff_page(other.router(), &session).await, 200);
}
