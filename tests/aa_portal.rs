//! AA as its own end-user portal speaks it (PROTOCOLS.md 1.9), against the emulator: U2F
//! enrollment in the portal's two rounds (and the older inferred shapes refused), aborting an
//! enrollment, testing an enrolled template, and every request error in AA's body with AA's HTTP
//! status, matched against `tests/fixtures/aa/errors`, and read by the client as one line naming
//! the call, the msgid and the reason.
mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::aa::{assert_aa_error_body, quiet, Aa};
use serde_json::{json, Value};
use vu2f::aa::portal::RegisterRequest;
use vu2f::aa_sim::SimConfig;
use vu2f::client::enroll::DEFAULT_ENROLL_EVENT;
use vu2f::client::logon::{Logon, LogonRequest};
use vu2f::client::{ClientError, Step};

fn fixture(name: &str) -> (u16, Value) {
    let path = format!(
        "{}/tests/fixtures/aa/errors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (
        u16::try_from(fixture["http"].as_u64().unwrap()).unwrap(),
        fixture["body"].clone(),
    )
}

/// A request as the portal sends it, whatever the answer: its status and JSON body.
async fn raw(aa: &Aa, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{}{path}", aa.sim.url);
    let request = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A password logon of `user` to the enrollment event: the login session and the user id.
async fn login_session(aa: &Aa, user: &str) -> (String, String) {
    let logged_on = Logon::new(&aa.http, &aa.endpoint, None, &aa.policy, &mut quiet())
        .run(&LogonRequest {
            user: user.into(),
            event: DEFAULT_ENROLL_EVENT.into(),
            password: Some(aa.password(user)),
            chain: None,
        })
        .await
        .unwrap();
    (logged_on.login_session_id, logged_on.user_id.unwrap())
}

async fn start_enroll(aa: &Aa, session: &str) -> String {
    let (status, started) = raw(
        aa,
        "POST",
        "/api/v1/enroll",
        Some(json!({"method_id": "U2F:1", "login_session_id": session})),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    started["enroll_process_id"].as_str().unwrap().to_owned()
}

/// The portal's first `do_enroll` round at `path`: the register requests it answers.
async fn register_requests(
    aa: &Aa,
    path: &str,
    session: &str,
    user_id: &str,
) -> Vec<RegisterRequest> {
    let (status, asked) = raw(
        aa,
        "POST",
        path,
        Some(json!({"login_session_id": session,
                    "response": {"appId": aa.http.origin(), "userId": user_id}})),
    )
    .await;
    assert_eq!(
        (status, &asked["status"]),
        (200, &json!("MORE_DATA")),
        "{asked}"
    );
    serde_json::from_value(asked["registerRequests"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn enrollment_in_the_portals_rounds_and_the_old_shapes_refused() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    let (session, user_id) = login_session(&aa, "alice").await;
    let process = start_enroll(&aa, &session).await;
    let path = format!("/api/v1/enroll/{process}/do_enroll");
    let origin = aa.http.origin();

    // The inferred first round of before: an empty response.
    let (status, body) = raw(
        &aa,
        "POST",
        &path,
        Some(json!({"login_session_id": session, "response": {}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_aa_error_body(&body.to_string(), "VU2FSIM-0400", "empty response");
    assert!(
        body["errors"][0]["description"]
            .as_str()
            .unwrap()
            .starts_with("response: missing field `appId`"),
        "{body}"
    );
    // Another user's id.
    let (status, body) = raw(
        &aa,
        "POST",
        &path,
        Some(json!({"login_session_id": session,
                    "response": {"appId": origin, "userId": "0".repeat(32)}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_aa_error_body(&body.to_string(), "AUCORE-1056", "another user id");

    // The portal's first round.
    let (status, asked) = raw(
        &aa,
        "POST",
        &path,
        Some(json!({"login_session_id": session,
                    "response": {"appId": origin, "userId": user_id}})),
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!(asked["status"], "MORE_DATA", "{asked}");
    let requests: Vec<RegisterRequest> =
        serde_json::from_value(asked["registerRequests"].clone()).unwrap();
    assert_eq!(requests.len(), 1);
    let registered = token.register(&requests, &aa.policy).await.unwrap();
    assert_eq!(registered.app_id, requests[0].app_id);
    assert_eq!(registered.challenge, requests[0].challenge);
    assert_eq!(registered.version, "U2F_V2");

    // The inferred second round of before: no appId, no challenge.
    let (status, body) = raw(
        &aa,
        "POST",
        &path,
        Some(
            json!({"login_session_id": session, "response": {"registerResponse": {
            "registrationData": registered.registration_data,
            "clientData": registered.client_data, "version": "U2F_V2"}}}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_aa_error_body(&body.to_string(), "VU2FSIM-0400", "old second round");
    assert!(
        body["errors"][0]["description"]
            .as_str()
            .unwrap()
            .starts_with("response.registerResponse: missing field `appId`"),
        "{body}"
    );

    // The portal's second round: OK; a third is "Enrollment is already done".
    let second = json!({"login_session_id": session,
                        "response": {"registerResponse": registered}});
    let (status, done) = raw(&aa, "POST", &path, Some(second.clone())).await;
    assert_eq!((status, &done["status"]), (200, &json!("OK")), "{done}");
    let (_, again) = raw(&aa, "POST", &path, Some(second)).await;
    assert_eq!(again["status"], "FAILED", "{again}");
    assert_eq!(again["msgid"], "AUCORE-1016", "{again}");

    let (status, saved) = raw(
        &aa,
        "POST",
        &format!("/api/v1/users/{user_id}/templates"),
        Some(
            json!({"login_session_id": session, "enroll_process_id": process,
                    "category_id": "", "comment": "portal"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    aa.logon(&mut token, "alice").await.unwrap();
}

/// A registration whose appId or challenge is not the register request's is refused in-band.
#[tokio::test(flavor = "multi_thread")]
async fn a_register_response_must_carry_the_requests_app_id_and_challenge() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    for (field, value, reason) in [
        ("appId", "https://elsewhere.example", "U2F_APPID_MISMATCH"),
        ("challenge", "AAAA", "U2F_CHALLENGE_MISMATCH"),
    ] {
        let (session, user_id) = login_session(&aa, "alice").await;
        let process = start_enroll(&aa, &session).await;
        let path = format!("/api/v1/enroll/{process}/do_enroll");
        let requests = register_requests(&aa, &path, &session, &user_id).await;
        let mut registered =
            serde_json::to_value(token.register(&requests, &aa.policy).await.unwrap()).unwrap();
        registered[field] = json!(value);
        let (status, refused) = raw(
            &aa,
            "POST",
            &path,
            Some(json!({"login_session_id": session,
                        "response": {"registerResponse": registered}})),
        )
        .await;
        assert_eq!(status, 200, "{refused}");
        assert_eq!(refused["status"], "FAILED", "{refused}");
        assert_eq!(refused["reason"], reason, "{refused}");
    }
}

/// An enrollment that cannot complete is aborted by the client; an aborted process is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_enrollment_is_aborted() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    aa.enroll(&mut token, "alice").await.unwrap();
    let mut steps = Vec::new();
    let refused = vu2f::client::enroll::enroll(
        &aa.http,
        &aa.endpoint,
        &mut token,
        &aa.policy,
        &vu2f::client::enroll::EnrollRequest {
            user: "alice".into(),
            password: aa.password("alice"),
            event: DEFAULT_ENROLL_EVENT.into(),
            chain: None,
            category: "second".into(),
            comment: String::new(),
        },
        &mut |s: &Step| steps.push(s.clone()),
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("already enrolled"),
        "{refused}"
    );
    let last = steps.last().unwrap();
    assert_eq!(
        (last.request.as_str(), last.status.as_str()),
        (
            "DELETE /api/v1/enroll/{enroll_process_id}",
            "enroll process aborted"
        )
    );

    let (session, user_id) = login_session(&aa, "alice").await;
    let process = start_enroll(&aa, &session).await;
    let (status, _) = raw(
        &aa,
        "DELETE",
        &format!("/api/v1/enroll/{process}?login_session_id={session}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = raw(
        &aa,
        "POST",
        &format!("/api/v1/enroll/{process}/do_enroll"),
        Some(json!({"login_session_id": session,
                    "response": {"appId": aa.http.origin(), "userId": user_id}})),
    )
    .await;
    assert_eq!((status, body), fixture("enroll_process_not_found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enrolled_template_is_tested_as_the_portal_does() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    let enrolled = aa.enroll(&mut token, "alice").await.unwrap();
    let logon = LogonRequest {
        user: "alice".into(),
        event: DEFAULT_ENROLL_EVENT.into(),
        password: Some(aa.password("alice")),
        chain: None,
    };
    let tested = vu2f::client::template::test(
        &aa.http,
        &aa.endpoint,
        &mut token,
        &aa.policy,
        &logon,
        None,
        &mut quiet(),
    )
    .await
    .unwrap();
    assert_eq!(tested.template_id, enrolled.template_id);
    let logged_on = aa.logon(&mut token, "alice").await.unwrap();
    assert!(logged_on.counter.unwrap() > tested.counter);

    // Raw: the first round in the portal's form (`app_id`, as its fetch layer writes it), then a
    // tampered signature: FAILED, and the test process is over.
    let (session, user_id) = login_session(&aa, "alice").await;
    let path = format!(
        "/api/v1/users/{user_id}/templates/{}/test",
        enrolled.template_id
    );
    let (status, asked) = raw(
        &aa,
        "POST",
        &path,
        Some(json!({"login_session_id": session, "response": {"app_id": aa.http.origin()}})),
    )
    .await;
    assert_eq!(
        (status, &asked["status"]),
        (200, &json!("MORE_DATA")),
        "{asked}"
    );
    let requests: Vec<vu2f::aa::api::SignRequest> =
        serde_json::from_value(asked["signRequests"].clone()).unwrap();
    assert_eq!(requests.len(), 1, "the tested template's handle only");
    let (mut signed, _) = token.sign(&requests, &aa.policy).await.unwrap();
    let mut data = URL_SAFE_NO_PAD.decode(&signed.signature_data).unwrap();
    *data.last_mut().unwrap() ^= 1;
    signed.signature_data = URL_SAFE_NO_PAD.encode(&data);
    let second = json!({"login_session_id": session,
                        "logon_process_id": asked["logon_process_id"],
                        "response": {"signResponse": signed}});
    let (status, refused) = raw(&aa, "POST", &path, Some(second.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(refused["status"], "FAILED", "{refused}");
    assert_eq!(refused["reason"], "U2F_BAD_SIGNATURE", "{refused}");
    let (status, body) = raw(&aa, "POST", &path, Some(second)).await;
    assert_eq!((status, body), fixture("logon_process_not_found"));

    // Someone else's session cannot test alice's template.
    let (bob_session, _) = login_session(&aa, "bob").await;
    let (status, _) = raw(
        &aa,
        "POST",
        &path,
        Some(json!({"login_session_id": bob_session, "response": {"appId": aa.http.origin()}})),
    )
    .await;
    assert_eq!(status, 403);
}

/// Each request error AA's portal knows, provoked for real: the emulator's status and body are
/// the fixture's, and the client's error is one line naming the call, the msgid and the reason.
#[tokio::test(flavor = "multi_thread")]
async fn request_errors_are_aas_bodies_and_one_line_in_the_client() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    aa.enroll(&mut token, "alice").await.unwrap();
    let endpoint_session = aa.endpoint.session_id().to_owned();
    let (_, user_id) = login_session(&aa, "alice").await;
    let logon = |user: &str, session: &str| {
        json!({"method_id": "U2F:1", "user_name": user, "event": "Search Card",
               "endpoint_session_id": session})
    };
    let cases: Vec<(&str, &str, String, Option<Value>)> = vec![
        (
            "user_not_found",
            "POST",
            "/api/v1/logon".into(),
            Some(logon("nobody", &endpoint_session)),
        ),
        (
            "endpoint_session_not_found",
            "POST",
            "/api/v1/logon".into(),
            Some(logon("alice", "unknown")),
        ),
        (
            "login_session_not_found",
            "POST",
            "/api/v1/enroll".into(),
            Some(json!({"method_id": "U2F:1", "login_session_id": "unknown"})),
        ),
        (
            "logon_process_not_found",
            "POST",
            "/api/v1/logon/unknown/do_logon".into(),
            Some(json!({"endpoint_session_id": endpoint_session})),
        ),
        ("method_already_enrolled", "SAVE", String::new(), None),
    ];
    for (name, method, path, body) in cases {
        let (method, path, body) = if method == "SAVE" {
            // A second U2F template in the default category: enroll another token up to OK.
            let (session, _) = login_session(&aa, "alice").await;
            let process = start_enroll(&aa, &session).await;
            let mut other = Aa::token(&store, "other");
            let do_enroll = format!("/api/v1/enroll/{process}/do_enroll");
            let requests = register_requests(&aa, &do_enroll, &session, &user_id).await;
            let registered = other.register(&requests, &aa.policy).await.unwrap();
            raw(
                &aa,
                "POST",
                &do_enroll,
                Some(json!({"login_session_id": session,
                            "response": {"registerResponse": registered}})),
            )
            .await;
            (
                "POST",
                format!("/api/v1/users/{user_id}/templates"),
                Some(
                    json!({"login_session_id": session, "enroll_process_id": process,
                            "category_id": "", "comment": ""}),
                ),
            )
        } else {
            (method, path, body)
        };
        assert_as_fixture(&aa, name, method, &path, body).await;
    }

    // A login session past its lifetime (one second here).
    let config = SimConfig {
        login_session_ttl_secs: 1,
        ..SimConfig::default()
    };
    let short = Aa::start(config).await;
    let (expiring, _) = login_session(&short, "alice").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_as_fixture(
        &short,
        "login_session_expired",
        "POST",
        "/api/v1/enroll",
        Some(json!({"method_id": "U2F:1", "login_session_id": expiring})),
    )
    .await;
}

/// `POST path` answers as the fixture `name` says, and the client reads it as one line:
/// `POST path: HTTP status: msgid reason: description`.
async fn assert_as_fixture(aa: &Aa, name: &str, method: &str, path: &str, body: Option<Value>) {
    let expected = fixture(name);
    let answer = raw(aa, method, path, body.clone()).await;
    assert_eq!(answer, expected, "{name}: {method} {path}");

    let error: ClientError = aa
        .http
        .post::<_, Value>(path, &body.unwrap())
        .await
        .unwrap_err();
    let (status, body) = expected;
    assert_eq!(
        error.to_string(),
        format!(
            "POST {path}: HTTP {status}: {} {}: {}",
            body["errors"][0]["msgid"].as_str().unwrap(),
            body["reason"].as_str().unwrap(),
            body["errors"][0]["description"].as_str().unwrap()
        ),
        "{name}"
    );
}

/// A wrong password is an in-band FAILED with the portal's reason and msgid.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_failed_with_aas_reason_and_msgid() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_, started) = raw(
        &aa,
        "POST",
        "/api/v1/logon",
        Some(json!({"method_id": "PASSWORD:1", "user_name": "alice",
                    "event": DEFAULT_ENROLL_EVENT,
                    "endpoint_session_id": aa.endpoint.session_id()})),
    )
    .await;
    let process = started["logon_process_id"].as_str().unwrap();
    let (status, failed) = raw(
        &aa,
        "POST",
        &format!("/api/v1/logon/{process}/do_logon"),
        Some(json!({"response": {"password": "wrong"},
                    "endpoint_session_id": aa.endpoint.session_id()})),
    )
    .await;
    let (http, expected) = fixture("password_wrong");
    assert_eq!(status, http);
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&failed[key], value, "{key}: {failed}");
    }
}
