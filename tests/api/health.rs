use axum::http::Method;

use crate::helpers::TestApp;

#[tokio::test]
async fn healthz_answers_200() {
    let app = TestApp::spawn().await;
    let answer = app.get("/healthz", None).await;
    assert_eq!(answer.assert_status(200)["status"], "ok");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/nothing-here", None)
        .await
        .assert_problem(404, "not-found");
    app.send(Method::DELETE, "/healthz", None, None, &[])
        .await
        .assert_problem(405, "method-not-allowed");
}

#[tokio::test]
async fn the_api_documents_itself() {
    let app = TestApp::spawn().await;
    let spec = app.get("/api/openapi.json", None).await;
    assert_eq!(
        spec.assert_status(200)["openapi"]
            .as_str()
            .unwrap()
            .get(..2),
        Some("3.")
    );
    let docs = app.get("/api/docs/", None).await;
    assert_eq!(docs.status, 200);
    assert!(docs.text.contains("swagger"), "{}", docs.text);
    // The page's script comes from the service itself: it works offline.
    assert_eq!(
        app.get("/api/docs/swagger-ui-bundle.js", None).await.status,
        200
    );
}
