//! The AA documentation's samples (tests/fixtures/aa, from shared/seeds) read into the API types,
//! decoded as a relying party would, and written back with every field they had.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use vu2f::aa::api::{DoLogonRequest, LogonResponse, LogonStatus, MethodResponse};
use vu2f::u2f::messages::AuthenticationResponse;

mod common;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/aa/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every key of `sample` is in `written`, recursively through objects and first array elements.
fn assert_keys_kept(sample: &Value, written: &Value, path: &str) {
    match (sample, written) {
        (Value::Object(sample), Value::Object(written)) => {
            for (key, value) in sample {
                let here = format!("{path}.{key}");
                let Some(other) = written.get(key) else {
                    panic!("{here} is missing")
                };
                assert_keys_kept(value, other, &here);
            }
        }
        (Value::Array(sample), Value::Array(written)) => {
            if let (Some(first), Some(other)) = (sample.first(), written.first()) {
                assert_keys_kept(first, other, &format!("{path}[0]"));
            }
        }
        _ => {}
    }
}

#[test]
fn gather_response_decodes_and_round_trips() {
    let sample = fixture("gather_response.json");
    let response: LogonResponse = serde_json::from_value(sample.clone()).unwrap();
    assert_eq!(response.status, LogonStatus::MoreData);
    assert_eq!(
        response.reason.as_deref(),
        Some("U2F_WAITING_AUTH_RESPONSE")
    );
    assert_eq!(response.msgid.as_deref(), Some("AUCORE-2059"));
    let request = &response.sign_requests[0];
    assert_eq!(request.version, "U2F_V2");
    let key_handle = URL_SAFE_NO_PAD.decode(&request.key_handle).unwrap();
    assert_eq!(key_handle.len(), 64);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&request.challenge).unwrap().len(),
        32
    );
    let webauthn = response.webauth_challenge.as_ref().unwrap();
    assert_eq!(
        webauthn.allow_credentials[0].id,
        hex::encode(&key_handle),
        "the same handle, in hex"
    );
    assert_eq!(response.chains.len(), 2);
    assert_keys_kept(&sample, &serde_json::to_value(&response).unwrap(), "$");
}

#[test]
fn ok_response_decodes_and_round_trips() {
    let sample = fixture("logon_ok_response.json");
    let response: LogonResponse = serde_json::from_value(sample.clone()).unwrap();
    assert_eq!(response.status, LogonStatus::Ok);
    assert_eq!(response.msgid.as_deref(), Some("AUCORE-2001"));
    assert_eq!(
        response.login_session_id.as_deref(),
        Some("Z345oBnWuItOpubBsC2AaPBwAvzlIh4h")
    );
    assert_eq!(
        response.completed_chain.as_ref().unwrap().methods,
        ["U2F:1"]
    );
    assert_eq!(response.extra["user_name"], "JAGUAR\\denis");
    assert_keys_kept(&sample, &serde_json::to_value(&response).unwrap(), "$");
}

#[test]
fn sign_response_request_decodes_to_a_u2f_authentication_response() {
    let sample = fixture("sign_response_request.json");
    let request: DoLogonRequest = serde_json::from_value(sample.clone()).unwrap();
    let Some(MethodResponse::U2f { sign_response }) = &request.response else {
        panic!("not U2F")
    };
    let signature_data = URL_SAFE_NO_PAD
        .decode(&sign_response.signature_data)
        .unwrap();
    let parsed = AuthenticationResponse::try_from(&signature_data[..]).unwrap();
    assert_eq!((parsed.flags, parsed.counter), (0x01, 380));
    let client_data = URL_SAFE_NO_PAD.decode(&sign_response.client_data).unwrap();
    let client: Value = serde_json::from_slice(&client_data).unwrap();
    assert_eq!(client["typ"], "navigator.id.getAssertion");
    assert_eq!(client["origin"], "https://drbiomtdevap2v.alrajhi.bank");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(&sign_response.key_handle)
            .unwrap()
            .len(),
        64
    );
    assert_eq!(serde_json::to_value(&request).unwrap(), sample);
    let gather: DoLogonRequest = serde_json::from_value(fixture("gather_request.json")).unwrap();
    assert!(gather.response.is_none());
}

/// The emulator answers with every field the documentation's samples have, so that code written
/// against a real server reads its answers too.
#[tokio::test(flavor = "multi_thread")]
async fn the_emulators_answers_carry_the_samples_fields() {
    let aa = common::aa::Aa::start(vu2f::aa_sim::SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = common::aa::Aa::token(&store, "t");
    aa.enroll(&mut token, "alice").await.unwrap();
    let client = reqwest::Client::new();
    let post = |path: String, body: Value| {
        let request = client.post(format!("{}{path}", aa.sim.url)).json(&body);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let session = aa.endpoint.session_id();
    let started = post(
        "/api/v1/logon".into(),
        json!({"method_id": "U2F:1", "user_name": "alice", "event": "Search Card", "endpoint_session_id": session}),
    )
    .await;
    assert_eq!(started["msgid"], "AUCORE-1008");
    let process = started["logon_process_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/logon/{process}/do_logon");
    let gathered = post(path.clone(), json!({"endpoint_session_id": session})).await;
    assert_keys_kept(&fixture("gather_response.json"), &gathered, "$");

    let response: LogonResponse = serde_json::from_value(gathered).unwrap();
    let (sign_response, _) = token
        .sign(&response.sign_requests, &aa.policy)
        .await
        .unwrap();
    let ok = post(
        path,
        json!({"response": {"signResponse": sign_response}, "endpoint_session_id": session}),
    )
    .await;
    assert_eq!(ok["status"], "OK");
    assert_keys_kept(&fixture("logon_ok_response.json"), &ok, "$");
}
