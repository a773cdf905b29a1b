//! Public reads refreshed by many on draw day: the window summary, the commitment, the
//! results and the bundle carry an ETag and a Cache-Control suited to how they change,
//! answer `304` to a current copy, and are compressed for clients that accept it.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, Request, header};
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, Answer, TestApp, applicant, at, window_body};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SUMMARY: &str = "public, max-age=5, must-revalidate";

async fn get_with(app: &TestApp, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send_request(request.body(Body::empty()).unwrap()).await
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

/// An open window of [`window_body`] with `n` counter entries, closed and drawn.
async fn drawn_window(app: &TestApp, n: u32) -> String {
    let mut body = window_body();
    body["slots"] = json!([
        {"starts_at": "2027-01-04T08:30:00Z", "counter": "G1"},
        {"starts_at": "2027-01-04T09:00:00Z", "counter": "G1"}
    ]);
    let id = app.create_window(&body).await;
    app.post_empty(&format!("/api/v1/windows/{id}/open"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    for i in 0..n {
        app.post(
            &format!("/api/v1/windows/{id}/counter-entries"),
            Some(ADMIN_TOKEN),
            &applicant(i),
        )
        .await
        .assert_status(201);
    }
    app.clock.set(at("2026-12-16T10:00:00Z"));
    app.post_empty(&format!("/api/v1/windows/{id}/close"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    app.post_empty(&format!("/api/v1/windows/{id}/draw"), Some(ADMIN_TOKEN))
        .await
        .assert_status(200);
    id
}

#[tokio::test]
async fn the_summary_is_revalidated_with_its_etag_and_changes_with_a_registration() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let uri = format!("/api/v1/windows/{window_id}");

    let first = get_with(&app, &uri, &[]).await;
    first.assert_status(200);
    assert_eq!(header(&first.headers, header::CACHE_CONTROL), SUMMARY);
    let etag = header(&first.headers, header::ETAG).to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");

    // the same copy: 304, no body, the same tag
    let again = get_with(&app, &uri, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status.as_u16(), 304);
    assert!(again.text.is_empty());
    assert_eq!(header(&again.headers, header::ETAG), etag);
    assert_eq!(header(&again.headers, header::CACHE_CONTROL), SUMMARY);

    // a registration changes the counts, hence the tag: the old copy is not current
    app.register(&window_id, &applicant(1))
        .await
        .assert_status(201);
    let changed = get_with(&app, &uri, &[("if-none-match", &etag)]).await;
    changed.assert_status(200);
    assert_eq!(changed.json["entries"]["pending_verification"], 1);
    assert_ne!(header(&changed.headers, header::ETAG), etag);
}

#[tokio::test]
async fn a_staff_answer_is_private() {
    let app = TestApp::spawn().await;
    // a draft is visible to staff only: no shared cache may keep it
    let draft = app.create_window(&window_body()).await;
    let uri = format!("/api/v1/windows/{draft}");
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let answer = get_with(&app, &uri, &[("authorization", &bearer)]).await;
    answer.assert_status(200);
    assert_eq!(
        header(&answer.headers, header::CACHE_CONTROL),
        "private, no-cache"
    );
    get_with(&app, &uri, &[])
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test]
async fn what_is_published_at_close_and_draw_is_immutable_and_revalidated() {
    let app = TestApp::spawn().await;
    let window_id = drawn_window(&app, 5).await;

    for path in ["commitment", "results", "bundle"] {
        let uri = format!("/api/v1/windows/{window_id}/{path}");
        let first = get_with(&app, &uri, &[]).await;
        first.assert_status(200);
        assert_eq!(first.content_type(), "application/json", "{path}");
        assert_eq!(
            header(&first.headers, header::CACHE_CONTROL),
            IMMUTABLE,
            "{path}"
        );
        let etag = header(&first.headers, header::ETAG).to_owned();
        assert!(etag.starts_with('"'), "{path}: {etag}");

        let again = get_with(&app, &uri, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status.as_u16(), 304, "{path}");
        assert!(again.text.is_empty(), "{path}");
        // a weak form of the same tag matches too (what a compressed copy carried)
        let weak = format!("W/{etag}");
        let weakly = get_with(&app, &uri, &[("if-none-match", &weak)]).await;
        assert_eq!(weakly.status.as_u16(), 304, "{path}");
        // another tag does not
        let other = get_with(&app, &uri, &[("if-none-match", "\"0000\"")]).await;
        assert_eq!(other.status.as_u16(), 200, "{path}");
        assert_eq!(other.text, first.text, "{path}");
    }

    // the bundle's tag is its published SHA-256
    let bundle = get_with(&app, &format!("/api/v1/windows/{window_id}/bundle"), &[]).await;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        bundle.text.as_bytes(),
    ));
    assert_eq!(
        header(&bundle.headers, header::ETAG),
        format!("\"{digest}\"")
    );
}

#[tokio::test]
async fn bodies_are_compressed_for_clients_that_accept_it() {
    let app = TestApp::spawn().await;
    let window_id = drawn_window(&app, 20).await;
    let uri = format!("/api/v1/windows/{window_id}/bundle");
    let plain = get_with(&app, &uri, &[]).await;
    plain.assert_status(200);
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    let strong = header(&plain.headers, header::ETAG).to_owned();

    let gzipped = get_with(&app, &uri, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzipped.status.as_u16(), 200);
    assert_eq!(header(&gzipped.headers, header::CONTENT_ENCODING), "gzip");
    assert!(header(&gzipped.headers, header::VARY).contains("accept-encoding"));
    // the compressed bytes are other bytes: the tag is the weak form of the same one
    assert_eq!(
        header(&gzipped.headers, header::ETAG),
        format!("W/{strong}")
    );
    let compressed = &gzipped.bytes;
    assert!(
        compressed.len() * 2 < plain.text.len(),
        "{}",
        compressed.len()
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, plain.text);

    // the bundle's gzipped copy is made once and kept: served whenever gzip is accepted
    let both = get_with(&app, &uri, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(header(&both.headers, header::CONTENT_ENCODING), "gzip");
    assert_eq!(both.bytes, gzipped.bytes);
    let refused = get_with(&app, &uri, &[("accept-encoding", "gzip;q=0")]).await;
    assert!(refused.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(refused.text, plain.text);
    // a bundle is never compressed on the fly (seconds of CPU per download at national
    // size): a client accepting only brotli gets the plain bytes
    let brotli_only = get_with(&app, &uri, &[("accept-encoding", "br")]).await;
    assert!(brotli_only.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(brotli_only.text, plain.text);
    // and the weak tag a compressed copy carried revalidates it
    let weak = header(&gzipped.headers, header::ETAG).to_owned();
    let again = get_with(
        &app,
        &uri,
        &[("accept-encoding", "gzip"), ("if-none-match", &weak)],
    )
    .await;
    assert_eq!(again.status.as_u16(), 304);

    // the summary is compressed on the fly, brotli preferred when both are accepted
    let summary_uri = format!("/api/v1/windows/{window_id}");
    let summary = get_with(&app, &summary_uri, &[("accept-encoding", "gzip")]).await;
    assert_eq!(header(&summary.headers, header::CONTENT_ENCODING), "gzip");
    let brotli = get_with(&app, &summary_uri, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(header(&brotli.headers, header::CONTENT_ENCODING), "br");
    assert!(header(&brotli.headers, header::ETAG).starts_with("W/\""));
}
