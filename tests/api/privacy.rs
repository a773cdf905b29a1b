//! Public views never show personal data or the window's secret.

use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, TestApp};

#[tokio::test]
async fn public_responses_hold_no_personal_data_and_no_secret() {
    let app = TestApp::spawn().await;
    let window_id = app.open_window().await;
    let applicant = json!({
        "family_name": "Zyxwvutsrq",
        "given_names": "Qponmlkjih",
        "birth_date": "1987-06-29",
        "nationality": "ZZZ",
        "document": {"kind": "passport", "number": "XQ9876543", "country": "ZZZ"},
        "email": "recognisable.person@example.net",
        "phone": "+447700900123",
        "permit_expires_on": "2027-02-11"
    });
    let receipt = app.register(&window_id, &applicant).await.json;
    let code = app.code_from_mail(1).await;
    let access = receipt["access_code"].as_str().unwrap();
    let staff = app.token("staff").await;
    let counter = json!({
        "family_name": "Counterperson", "given_names": "Walkin", "birth_date": "1970-01-02",
        "nationality": "YYY", "document": {"kind": "foreigner_number", "number": "9912345678", "country": "FRA"}
    });
    app.post(
        &format!("/api/v1/windows/{window_id}/counter-entries"),
        Some(&staff),
        &counter,
    )
    .await
    .assert_status(201);

    let secret = hex::encode(
        app.store()
            .window_secret(&window_id)
            .await
            .unwrap()
            .unwrap(),
    );
    let recognisable = [
        "Zyxwvutsrq",
        "Qponmlkjih",
        "1987-06-29",
        "ZZZ",
        "XQ9876543",
        "recognisable",
        "447700900123",
        "2027-02-11",
        "Counterperson",
        "Walkin",
        "9912345678",
        access,
        &code,
        &secret,
    ];
    let public = [
        "/api/v1/windows".to_owned(),
        format!("/api/v1/windows/{window_id}"),
        format!("/api/v1/windows/{window_id}/slots"),
        "/api/openapi.json".to_owned(),
        "/healthz".to_owned(),
    ];
    for uri in &public {
        let answer = app.get(uri, None).await;
        answer.assert_status(200);
        for value in recognisable {
            assert!(!answer.text.contains(value), "{uri} shows {value}");
        }
    }
    // Staff views of the window are no different, and the audit trail holds ids only.
    for uri in [
        format!("/api/v1/windows/{window_id}"),
        format!("/api/v1/windows/{window_id}/events"),
    ] {
        let answer = app.get(&uri, Some(ADMIN_TOKEN)).await;
        answer.assert_status(200);
        for value in recognisable {
            assert!(!answer.text.contains(value), "{uri} shows {value}");
        }
    }
    let window = app
        .get(&format!("/api/v1/windows/{window_id}"), None)
        .await
        .json;
    assert_eq!(
        window["entries"],
        json!({"pending_verification": 1, "eligible": 1, "withdrawn": 0})
    );
    assert!(window.get("secret").is_none());
}
