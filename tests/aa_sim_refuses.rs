//! The emulator refuses what a relying party must refuse (PROTOCOLS.md section 4), each with
//! `FAILED` and the reason of the check that failed; bad requests get a 4xx error body.
mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::aa::{assert_refused, Aa};
use vu2f::aa::api::{LogonResponse, LogonStatus, SignRequest};
use vu2f::aa::errors::ErrorBody;
use vu2f::aa_sim::SimConfig;
use vu2f::client::OriginPolicy;

fn assert_failed(response: &LogonResponse, reason: &str) {
    assert_eq!(response.status, LogonStatus::Failed, "{response:?}");
    assert_eq!(response.reason.as_deref(), Some(reason), "{response:?}");
}

/// An emulator with alice enrolled on token `t` of a fresh store.
async fn alice_enrolled(config: SimConfig) -> (Aa, tempfile::TempDir, vu2f::client::TokenClient) {
    let aa = Aa::start(config).await;
    let (dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    aa.enroll(&mut token, "alice").await.unwrap();
    (aa, dir, token)
}

/// A new logon process for alice, and the token's answer to its sign request.
async fn signed(
    aa: &Aa,
    token: &mut vu2f::client::TokenClient,
) -> (String, vu2f::aa::api::SignResponse) {
    let process = aa.start_u2f("alice").await;
    let gathered = aa.gather(&process).await;
    let (response, _) = token
        .sign(&gathered.sign_requests, &aa.policy)
        .await
        .unwrap();
    (process, response)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_signature() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    let (process, mut response) = signed(&aa, &mut token).await;
    let mut data = URL_SAFE_NO_PAD.decode(&response.signature_data).unwrap();
    *data.last_mut().unwrap() ^= 0x01;
    response.signature_data = URL_SAFE_NO_PAD.encode(&data);
    assert_failed(&aa.answer(&process, response).await, "U2F_BAD_SIGNATURE");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_sign_response() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    let first = aa.start_u2f("alice").await;
    let gathered = aa.gather(&first).await;
    let (response, _) = token
        .sign(&gathered.sign_requests, &aa.policy)
        .await
        .unwrap();
    assert_eq!(
        aa.answer(&first, response.clone()).await.status,
        LogonStatus::Ok
    );

    let second = aa.start_u2f("alice").await;
    aa.gather(&second).await;
    assert_failed(&aa.answer(&second, response).await, "U2F_CHALLENGE_REUSED");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counter_that_went_back_because_the_store_was_restored_from_an_older_copy() {
    let aa = Aa::start(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("store");
    let backup = dir.path().join("backup");
    {
        let mut store = keystore::Store::open(&live).unwrap();
        store.set_counter_block(1);
        let mut token = Aa::token(&store, "t");
        aa.enroll(&mut token, "alice").await.unwrap();
    }
    copy_dir(&live, &backup);
    {
        let mut store = keystore::Store::open(&live).unwrap();
        store.set_counter_block(1);
        let mut token = Aa::token(&store, "t");
        for _ in 0..3 {
            aa.logon(&mut token, "alice").await.unwrap();
        }
    }
    let mut store = keystore::Store::open(&backup).unwrap();
    store.set_counter_block(1);
    let mut restored = Aa::token(&store, "t");
    let refused = aa.logon(&mut restored, "alice").await.unwrap_err();
    assert_refused(&refused, "U2F_COUNTER_NOT_INCREASED");
}

/// Copies a directory tree with its modes, as `cp -a` does (a store must stay private).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_origin() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    let evil = OriginPolicy::new(
        aa.http.origin(),
        Vec::new(),
        Some("https://evil.example".into()),
    );
    let refused = aa
        .logon_with(&mut token, &evil, "alice", "Search Card", None)
        .await
        .unwrap_err();
    assert_refused(&refused, "U2F_ORIGIN_MISMATCH");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_challenge_from_another_logon_process() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    let one = aa.start_u2f("alice").await;
    let other = aa.start_u2f("alice").await;
    let gathered_one = aa.gather(&one).await;
    aa.gather(&other).await;
    let (response, _) = token
        .sign(&gathered_one.sign_requests, &aa.policy)
        .await
        .unwrap();
    assert_failed(
        &aa.answer(&other, response.clone()).await,
        "U2F_CHALLENGE_MISMATCH",
    );
    assert_eq!(
        aa.answer(&one, response).await.status,
        LogonStatus::Ok,
        "the owner's own process is not disturbed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_challenge() {
    let config = SimConfig {
        challenge_ttl_ms: 200,
        ..SimConfig::default()
    };
    let (aa, _dir, mut token) = alice_enrolled(config).await;
    let process = aa.start_u2f("alice").await;
    let gathered = aa.gather(&process).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (response, _) = token
        .sign(&gathered.sign_requests, &aa.policy)
        .await
        .unwrap();
    assert_failed(
        &aa.answer(&process, response).await,
        "U2F_CHALLENGE_EXPIRED",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_handle_of_another_user() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut alices = Aa::token(&store, "alice");
    let mut bobs = Aa::token(&store, "bob");
    aa.enroll(&mut alices, "alice").await.unwrap();
    aa.enroll(&mut bobs, "bob").await.unwrap();
    let bob_process = aa.start_u2f("bob").await;
    let bob_handle = aa.gather(&bob_process).await.sign_requests[0]
        .key_handle
        .clone();

    let process = aa.start_u2f("alice").await;
    let gathered = aa.gather(&process).await;
    let forged = SignRequest {
        key_handle: bob_handle,
        ..gathered.sign_requests[0].clone()
    };
    let (response, _) = bobs.sign(&[forged], &aa.policy).await.unwrap();
    assert_failed(
        &aa.answer(&process, response).await,
        "U2F_UNKNOWN_KEY_HANDLE",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_process_is_over() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    let (process, mut response) = signed(&aa, &mut token).await;
    response.client_data = "!!".into();
    assert_failed(
        &aa.answer(&process, response).await,
        "U2F_MALFORMED_RESPONSE",
    );
    let again = reqwest::Client::new()
        .post(format!("{}/api/v1/logon/{process}/do_logon", aa.sim.url))
        .json(&serde_json::json!({"endpoint_session_id": aa.endpoint.session_id()}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 444);
    let text = again.text().await.unwrap();
    common::aa::assert_aa_error_body(&text, "AUCORE-1001", "a failed process");
}

/// Unknown ids and malformed bodies: AA's status for each, and AA's error body (PROTOCOLS.md 1.9:
/// `location`, `name: AuError`, `msgid`, `description`, and the `reason`), whose description
/// names what is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_aa_error_bodies_with_aa_status_codes() {
    let aa = Aa::start(SimConfig::default()).await;
    let session = aa.endpoint.session_id().to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let cases: Vec<(&str, String, String, u16, &str, &str)> = vec![
        ("POST", "/api/v1/logon".into(), "{not json".into(), 400, "VU2FSIM-0400", "key must be a string"),
        (
            "POST",
            "/api/v1/logon".into(),
            r#"{"method_id":"U2F:1","user_name":7,"event":"Search Card","endpoint_session_id":"x"}"#.into(),
            400,
            "VU2FSIM-0400",
            "user_name",
        ),
        (
            "POST",
            "/api/v1/logon".into(),
            format!(r#"{{"method_id":"U2F:1","user_name":"nobody","event":"Search Card","endpoint_session_id":"{session}"}}"#),
            400,
            "AUCORE-1056",
            "User is not found",
        ),
        (
            "POST",
            "/api/v1/logon".into(),
            r#"{"method_id":"U2F:1","user_name":"alice","event":"Search Card","endpoint_session_id":"unknown"}"#.into(),
            433,
            "AUCORE-1063",
            "Endpoint session is not found",
        ),
        (
            "POST",
            "/api/v1/logon".into(),
            format!(r#"{{"method_id":"TOTP:1","user_name":"alice","event":"Search Card","endpoint_session_id":"{session}"}}"#),
            400,
            "VU2FSIM-0400",
            "method_id",
        ),
        (
            "POST",
            "/api/v1/logon/unknown/do_logon".into(),
            format!(r#"{{"endpoint_session_id":"{session}"}}"#),
            444,
            "AUCORE-1001",
            "Logon process is not found",
        ),
        (
            "POST",
            "/api/v1/logon/unknown/next".into(),
            format!(r#"{{"method_id":"U2F:1","endpoint_session_id":"{session}"}}"#),
            444,
            "AUCORE-1001",
            "Logon process is not found",
        ),
        (
            "GET",
            format!("/api/v1/logon/chains?user_name=nobody&event=Search%20Card&endpoint_session_id={session}"),
            String::new(),
            400,
            "AUCORE-1056",
            "User is not found",
        ),
        (
            "GET",
            "/api/v1/logon/chains?user_name=alice&event=Search%20Card&endpoint_session_id=unknown".into(),
            String::new(),
            433,
            "AUCORE-1063",
            "Endpoint session is not found",
        ),
        (
            "POST",
            "/api/v1/endpoints/00000000000000000000000000000000/sessions".into(),
            r#"{"salt":"s","endpoint_secret_hash":"00"}"#.into(),
            404,
            "VU2FSIM-0404",
            "endpoint_id",
        ),
        (
            "POST",
            format!("/api/v1/endpoints/{}/sessions", aa.endpoint.id()),
            r#"{"salt":"s","endpoint_secret_hash":"00"}"#.into(),
            401,
            "VU2FSIM-0401",
            "endpoint_secret_hash",
        ),
        (
            "POST",
            "/api/v1/endpoints".into(),
            r#"{"name":"x","typ":3,"desc":"","is_trusted":true,"tenant_name":"TOP","auth_data":{"method_id":"PASSWORD:1","user_name":"admin","password":"wrong"}}"#.into(),
            401,
            "VU2FSIM-0401",
            "auth_data",
        ),
        (
            "POST",
            "/api/v1/endpoints".into(),
            r#"{"name":"x","typ":3,"desc":"","is_trusted":true,"tenant_name":"TOP","auth_data":{"method_id":"PASSWORD:1","user_name":"alice","password":"alice-password"}}"#.into(),
            403,
            "VU2FSIM-0403",
            "auth_data.user_name",
        ),
        (
            "POST",
            "/api/v1/enroll".into(),
            r#"{"method_id":"U2F:1","login_session_id":"unknown"}"#.into(),
            434,
            "AUCORE-1066",
            "Login session is not found",
        ),
        (
            "POST",
            "/api/v1/enroll/unknown/do_enroll".into(),
            r#"{"response":{},"login_session_id":"unknown"}"#.into(),
            434,
            "AUCORE-1066",
            "Login session is not found",
        ),
        (
            "GET",
            "/api/v1/users/0/templates".into(),
            String::new(),
            400,
            "VU2FSIM-0400",
            "login_session_id",
        ),
        ("GET", "/api/v1/nothing".into(), String::new(), 404, "VU2FSIM-0404", "path"),
    ];
    for (method, path, body, status, msgid, words) in cases {
        let url = format!("{}{path}", aa.sim.url);
        let request = match method {
            "GET" => client.get(url),
            _ => client
                .post(url)
                .header("content-type", "application/json")
                .body(body.clone()),
        };
        let response = request.send().await.unwrap();
        let case = format!("{method} {path} {body}");
        assert_eq!(response.status().as_u16(), status, "{case}");
        let text = response.text().await.unwrap();
        common::aa::assert_aa_error_body(&text, msgid, &case);
        let error: ErrorBody = serde_json::from_str(&text).unwrap();
        assert!(
            error.errors[0].description.contains(words),
            "{case}: {text}"
        );
    }
}

/// The emulator bounds what one client can make it hold: request bodies (413) and open logon
/// processes (503, until some end), each with an error body.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_and_too_many_open_processes_are_refused() {
    let config = SimConfig {
        max_open_processes: 2,
        max_body_bytes: 4096,
        ..SimConfig::default()
    };
    let (aa, _dir, mut token) = alice_enrolled(config).await;
    let client = reqwest::Client::new();
    let huge = format!(
        r#"{{"salt":"{}","endpoint_secret_hash":"00"}}"#,
        "s".repeat(8192)
    );
    let response = client
        .post(format!(
            "{}/api/v1/endpoints/{}/sessions",
            aa.sim.url,
            aa.endpoint.id()
        ))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    common::aa::assert_aa_error_body(&response.text().await.unwrap(), "VU2FSIM-0413", "413");

    let first = aa.start_u2f("alice").await;
    aa.start_u2f("alice").await;
    let third = aa
        .http
        .post::<_, vu2f::aa::api::LogonResponse>(
            "/api/v1/logon",
            &serde_json::json!({"method_id": "U2F:1", "user_name": "alice",
                                "event": "Search Card", "endpoint_session_id": aa.endpoint.session_id()}),
        )
        .await
        .unwrap_err();
    assert!(third.to_string().contains("HTTP 503"), "{third}");

    let gathered = aa.gather(&first).await;
    let (response, _) = token
        .sign(&gathered.sign_requests, &aa.policy)
        .await
        .unwrap();
    assert_eq!(aa.answer(&first, response).await.status, LogonStatus::Ok);
    aa.start_u2f("alice").await;
}
