//! The staff pages' role walk: every `/staff` page route (read from the pages' router
//! source, so a new one cannot be forgotten) sends a visitor without a session to the
//! sign-in page, refuses a signed-in person whose role is too low, and lets the needed
//! role through.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, header};
use tirage::store::Role;

use crate::helpers::{ADMIN_TOKEN, Answer, TestApp};

/// The role each staff page route needs. Sign-in and sign-out are open to all.
const PAGE_ROLES: &[(&str, &str, Role)] = &[
    ("GET", "/staff", Role::Auditor),
    ("GET", "/staff/accounts", Role::Admin),
    ("POST", "/staff/accounts", Role::Admin),
    ("GET", "/staff/windows/new", Role::Staff),
    ("POST", "/staff/windows/new", Role::Staff),
    ("GET", "/staff/windows/{id}", Role::Auditor),
    ("GET", "/staff/windows/{id}/edit", Role::Staff),
    ("POST", "/staff/windows/{id}/edit", Role::Staff),
    ("POST", "/staff/windows/{id}/open", Role::Staff),
    ("POST", "/staff/windows/{id}/cancel", Role::Staff),
    ("POST", "/staff/windows/{id}/close", Role::Staff),
    ("POST", "/staff/windows/{id}/draw", Role::Staff),
    ("GET", "/staff/windows/{id}/counter", Role::Staff),
    ("POST", "/staff/windows/{id}/counter", Role::Staff),
    ("GET", "/staff/windows/{id}/events", Role::Auditor),
    ("GET", "/staff/checkin", Role::Staff),
    ("POST", "/staff/checkin", Role::Staff),
];
const OPEN: &[(&str, &str)] = &[
    ("GET", "/staff/sign-in"),
    ("POST", "/staff/sign-in"),
    ("POST", "/staff/sign-out"),
];

const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Every (method, path) routed under `/staff` by the pages' source files.
fn routed_staff_pages() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/pages");
    let mut routes = Vec::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        for call in text.split(".route(").skip(1) {
            let call = call.trim_start();
            let Some(rest) = call.strip_prefix('"') else {
                continue;
            };
            let (path, handlers) = rest.split_once('"').unwrap();
            if !path.starts_with("/staff") {
                continue;
            }
            // up to the end of this `.route(...)`: the first `)` that closes it
            let mut depth = 1;
            let end = handlers
                .char_indices()
                .find(|&(_, c)| {
                    depth += i32::from(c == '(') - i32::from(c == ')');
                    depth == 0
                })
                .map_or(handlers.len(), |(i, _)| i);
            // `get(a)`, `post(b)` or `get(a).post(b)`
            let handlers = handlers[..end].trim_start_matches([',', ' ', '\n']);
            for (method, marker) in [("GET", "get("), ("POST", "post(")] {
                if handlers.starts_with(marker) || handlers.contains(&format!(".{marker}")) {
                    routes.push((method.to_owned(), path.to_owned()));
                }
            }
        }
    }
    routes.sort();
    routes
}

async fn page(app: &TestApp, method: &str, uri: &str, session: Option<&str>) -> Answer {
    let mut cookie = format!("tirage_csrf={CSRF}");
    if let Some(session) = session {
        cookie.push_str(&format!("; tirage_staff={session}"));
    }
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    let body = if method == "POST" {
        Body::from(format!("csrf={CSRF}"))
    } else {
        Body::empty()
    };
    app.send_request(request.body(body).unwrap()).await
}

/// Signs in with `token` on the sign-in page; returns the session cookie's value.
async fn session(app: &TestApp, token: &str) -> String {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/staff/sign-in")
        .header(header::COOKIE, format!("tirage_csrf={CSRF}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={CSRF}&token={token}&next=/staff")))
        .unwrap();
    let answer = app.send_request(request).await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("tirage_staff="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned()
}

fn below(role: Role) -> Vec<Role> {
    [Role::Auditor, Role::Staff]
        .into_iter()
        .filter(|r| *r < role)
        .collect()
}

#[tokio::test]
async fn every_staff_page_needs_a_session_with_its_role() {
    // Arrange: a session of each role and a draft window for the paths
    let app = TestApp::spawn().await;
    let window_id = app.create_window(&crate::helpers::window_body()).await;
    let mut sessions = BTreeMap::new();
    sessions.insert(Role::Admin, session(&app, ADMIN_TOKEN).await);
    for role in [Role::Staff, Role::Auditor] {
        let token = app.token(role.as_str()).await;
        sessions.insert(role, session(&app, &token).await);
    }

    // the table covers exactly the routes the pages serve
    let mut declared: Vec<(String, String)> = PAGE_ROLES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .chain(OPEN.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())))
        .collect();
    declared.sort();
    assert_eq!(routed_staff_pages(), declared);

    for (method, path, needed) in PAGE_ROLES {
        let uri = path.replace("{id}", &window_id);
        let what = format!("{method} {path}");

        // Act and assert: no session, the sign-in page
        let anonymous = page(&app, method, &uri, None).await;
        assert_eq!(anonymous.status, 303, "{what}: {}", anonymous.text);
        let location = anonymous.headers[header::LOCATION].to_str().unwrap();
        assert!(
            location.starts_with("/staff/sign-in?next="),
            "{what}: {location}"
        );

        // a role too low: refused
        for lower in below(*needed) {
            let refused = page(&app, method, &uri, Some(&sessions[&lower])).await;
            assert_eq!(refused.status, 403, "{what} as {lower:?}: {}", refused.text);
        }

        // the role needed: let through (whatever the page then says of the empty form)
        let allowed = page(&app, method, &uri, Some(&sessions[needed])).await;
        assert_ne!(allowed.status, 403, "{what}: {}", allowed.text);
        assert!(
            allowed
                .headers
                .get(header::LOCATION)
                .is_none_or(|l| !l.to_str().unwrap().starts_with("/staff/sign-in")),
            "{what} sent a signed-in {needed:?} to sign in"
        );
    }
}
