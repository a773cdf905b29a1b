//! The committed OpenAPI document matches the code. Run with `UPDATE_OPENAPI=1` to
//! rewrite `openapi/openapi.json` after changing the API.

use std::path::Path;

#[test]
fn the_committed_openapi_document_is_up_to_date() {
    let generated = tirage::http::openapi_json();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --all-features --test api openapi` and commit it"
    );
}

#[test]
fn every_operation_has_a_tag_and_a_verb_resource_id() {
    let spec: serde_json::Value = serde_json::from_str(&tirage::http::openapi_json()).unwrap();
    let verbs = [
        "get", "list", "create", "update", "open", "cancel", "verify", "resend", "withdraw",
        "revoke", "close", "draw", "record", "accept", "decline",
    ];
    let mut count = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            count += 1;
            let id = operation["operationId"].as_str().unwrap_or_default();
            let (verb, resource) = id.split_once('_').unwrap_or_default();
            assert!(
                verbs.contains(&verb) && !resource.is_empty(),
                "{method} {path}: operation id {id:?}"
            );
            assert_eq!(
                operation["tags"].as_array().map(Vec::len),
                Some(1),
                "{method} {path}: one tag"
            );
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty())
            );
        }
    }
    // Every documented handler is routed: as many operations as `#[utoipa::path]`s.
    assert_eq!(
        count,
        documented_handlers(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"))
    );
}

fn documented_handlers(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            if path.is_dir() {
                documented_handlers(&path)
            } else if path.extension().is_some_and(|e| e == "rs") {
                std::fs::read_to_string(&path)
                    .unwrap()
                    .matches("#[utoipa::path(")
                    .count()
            } else {
                0
            }
        })
        .sum()
}
