//! The role walk: every operation of the OpenAPI description is called without a
//! credential and with one that is not enough, and must refuse; every operation that
//! declares no credential must not ask for one. A new route therefore cannot escape:
//! either it declares its security (and is walked as such), or it answers without a
//! token (and is checked to be really public).

use axum::http::{Method, header};
use serde_json::Value;
use tirage::http::roles::required_role;
use tirage::store::Role;

use crate::helpers::{ADMIN_TOKEN, Answer, TestApp, applicant};

/// The role just below `role`, if there is one.
fn below(role: Role) -> Option<Role> {
    match role {
        Role::Admin => Some(Role::Staff),
        Role::Staff => Some(Role::Auditor),
        Role::Auditor => None,
    }
}

fn role_name(role: Role) -> &'static str {
    role.as_str()
}

#[tokio::test]
async fn every_operation_refuses_a_missing_or_insufficient_credential() {
    // Arrange: a token of each role, a window, an entry and a slot to fill the paths
    let app = TestApp::spawn().await;
    let mut tokens = std::collections::BTreeMap::new();
    tokens.insert(Role::Admin, ADMIN_TOKEN.to_owned());
    for role in [Role::Staff, Role::Auditor] {
        tokens.insert(role, app.token(role_name(role)).await);
    }
    let window_id = app.open_window().await;
    let receipt = app.register(&window_id, &applicant(1)).await;
    let receipt = receipt.assert_status(201);
    let entry_id = receipt["entry_id"].as_str().unwrap().to_owned();
    let access = receipt["access_code"].as_str().unwrap().to_owned();
    let slots = app
        .get(&format!("/api/v1/windows/{window_id}/slots"), None)
        .await;
    let slot_id = slots.json["slots"][0]["id"]
        .as_str()
        .or_else(|| slots.json[0]["id"].as_str())
        .unwrap_or("0")
        .to_owned();
    let spec: Value = serde_json::from_str(&tirage::http::openapi_json()).unwrap();

    let (mut staff_ops, mut code_ops, mut public_ops) = (0, 0, 0);
    for (path, operations) in spec["paths"].as_object().unwrap() {
        let uri = path
            .replace("{id}", &window_id)
            .replace("{entry_id}", &entry_id)
            .replace("{slot_id}", &slot_id);
        for (method, operation) in operations.as_object().unwrap() {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let call = |bearer: Option<String>| {
                let (method, uri) = (method.clone(), uri.clone());
                let app = &app;
                async move { app.send(method, &uri, bearer.as_deref(), None, &[]).await }
            };
            let what = format!("{method} {path}");
            let requirements = operation["security"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let open = requirements.is_empty()
                || requirements
                    .iter()
                    .any(|r| r.as_object().is_some_and(|r| r.is_empty()));
            let schemes: Vec<&str> = requirements
                .iter()
                .filter_map(|r| r.as_object())
                .flat_map(|r| r.keys().map(String::as_str))
                .collect();

            if open {
                // public: answers without a token
                public_ops += 1;
                let answer = call(None).await;
                assert_not_refused(&answer, &what);
                if schemes.contains(&"staff_token") {
                    // an unknown token is refused, not taken for anonymous
                    call(Some("tirage_unknown".into()))
                        .await
                        .assert_problem(401, "unauthorized");
                }
            } else if schemes == ["staff_token"] {
                staff_ops += 1;
                let needed = required_role(operation)
                    .unwrap_or_else(|| panic!("{what} declares a staff token without a role"));
                let documented = &operation["responses"];
                assert!(
                    documented.get("401").is_some(),
                    "{what} does not document 401"
                );
                assert!(
                    below(needed).is_none() || documented.get("403").is_some(),
                    "{what} does not document 403"
                );
                let missing = call(None).await;
                missing.assert_problem(401, "unauthorized");
                assert_eq!(
                    missing.headers[header::WWW_AUTHENTICATE],
                    "Bearer",
                    "{what}"
                );
                call(Some(access.clone()))
                    .await
                    .assert_problem(401, "unauthorized");
                if let Some(lower) = below(needed) {
                    let answer = call(Some(tokens[&lower].clone())).await;
                    let problem = answer.assert_problem(403, "forbidden");
                    assert!(
                        problem["detail"]
                            .as_str()
                            .unwrap()
                            .contains(role_name(needed)),
                        "{what}: {problem}"
                    );
                }
                // the declared role is enough (whatever the handler then says about
                // the missing body or the state)
                assert_not_refused(&call(Some(tokens[&needed].clone())).await, &what);
            } else if schemes == ["access_code"] {
                code_ops += 1;
                for status in ["401", "404"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{what} does not document {status}"
                    );
                }
                call(None).await.assert_problem(401, "unauthorized");
                // a staff token, even an admin's, is no access code
                call(Some(ADMIN_TOKEN.into()))
                    .await
                    .assert_problem(404, "not-found");
                call(Some("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF".into()))
                    .await
                    .assert_problem(404, "not-found");
            } else {
                panic!("{what}: security {requirements:?} is not walked by this test");
            }
        }
    }

    // Assert: every kind was met (the walk did not silently skip the spec)
    assert!(staff_ops >= 15, "{staff_ops} staff operations");
    assert!(code_ops >= 10, "{code_ops} access-code operations");
    assert!(public_ops >= 10, "{public_ops} public operations");
}

#[track_caller]
fn assert_not_refused(answer: &Answer, what: &str) {
    assert!(
        ![401, 403].contains(&answer.status.as_u16()),
        "{what} answered {}: {}",
        answer.status,
        answer.text
    );
}
