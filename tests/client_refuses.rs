//! The client against a deliberately broken server (a loopback axum app that answers canned
//! bodies; no AA server sends these, which is why it is canned): every bad reply is a one-line
//! error naming the call and the field, a stalled server times out, and the token never signs for
//! an appId the user did not allow.
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use vu2f::aa::api::EndpointCredentials;
use vu2f::aa_sim::SimConfig;
use vu2f::client::logon::{Logon, LogonRequest};
use vu2f::client::{
    AaHttp, ClientError, Endpoint, EndpointAccess, OriginPolicy, TlsTrust, TokenClient,
};
use vu2f::transport::{TokenTransport, TransportError};

#[derive(Clone)]
enum Reply {
    Json(Value),
    Raw(u16, &'static str, &'static str),
    Stall,
}

/// Serves `replies` by `METHOD path`, else by path; the endpoint session call always succeeds,
/// and the chains call lists "Password only" and "U2F only" unless told otherwise.
async fn broken_server(mut replies: HashMap<&'static str, Reply>) -> String {
    replies
        .entry("/api/v1/endpoints/e/sessions")
        .or_insert(Reply::Json(json!({"endpoint_session_id": "s"})));
    replies
        .entry("/api/v1/logon/chains")
        .or_insert(Reply::Json(json!({"chains": [
            {"name": "Password only", "methods": ["PASSWORD:1"]},
            {"name": "U2F only", "methods": ["U2F:1"]}
        ]})));
    let replies = Arc::new(replies);
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let replies = replies.clone();
        async move {
            let reply = replies
                .get(format!("{method} {}", uri.path()).as_str())
                .or_else(|| replies.get(uri.path()))
                .cloned();
            match reply {
                Some(Reply::Json(value)) => axum::Json(value).into_response(),
                Some(Reply::Raw(status, content_type, body)) => Response::builder()
                    .status(StatusCode::from_u16(status).unwrap())
                    .header("content-type", content_type)
                    .body(axum::body::Body::from(body))
                    .unwrap(),
                Some(Reply::Stall) => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    StatusCode::OK.into_response()
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A transport that counts what it is asked and refuses everything.
struct Counting(Arc<AtomicUsize>);

impl TokenTransport for Counting {
    fn exchange(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(vec![0x6A, 0x80])
    }
}

async fn log_on(url: &str, timeout: Duration) -> (Result<(), ClientError>, usize) {
    log_on_with(url, timeout, None).await
}

async fn log_on_with(
    url: &str,
    timeout: Duration,
    password: Option<&str>,
) -> (Result<(), ClientError>, usize) {
    let http = AaHttp::new(url, &TlsTrust::System, timeout).unwrap();
    let access = EndpointAccess::Given(EndpointCredentials {
        id: "e".into(),
        secret: "secret".into(),
    });
    let asked = Arc::new(AtomicUsize::new(0));
    let mut token = TokenClient::new(Box::new(Counting(asked.clone())), Duration::from_secs(1));
    let policy = OriginPolicy::new(http.origin(), Vec::new(), None);
    let result = async {
        let endpoint = Endpoint::open(&http, &access, &mut common::aa::quiet()).await?;
        Logon::new(
            &http,
            &endpoint,
            Some(&mut token),
            &policy,
            &mut common::aa::quiet(),
        )
        .run(&LogonRequest {
            user: "alice".into(),
            event: "Search Card".into(),
            password: password.map(Into::into),
            chain: None,
        })
        .await
        .map(drop)
    }
    .await;
    (result, asked.load(Ordering::SeqCst))
}

fn started() -> Value {
    json!({"status": "MORE_DATA", "msg": "Process has been started", "reason": "PROCESS_STARTED",
           "msgid": "AUCORE-1008", "logon_process_id": "p", "completed_methods": []})
}

async fn refused_with(logon_reply: Reply, expected: &[&str]) {
    let url = broken_server(HashMap::from([("/api/v1/logon", logon_reply)])).await;
    let (result, _) = log_on(&url, Duration::from_secs(5)).await;
    let line = result.unwrap_err().to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    for part in expected {
        assert!(line.contains(part), "{line:?} should contain {part:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_field_is_named() {
    refused_with(
        Reply::Json(json!({"msg": "hello", "completed_methods": []})),
        &["POST /api/v1/logon", "missing field `status`"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_type_is_named() {
    refused_with(
        Reply::Json(json!({"status": "MORE_DATA", "msg": 7})),
        &["POST /api/v1/logon", "field `msg`", "invalid type"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_status_is_named() {
    refused_with(
        Reply::Json(json!({"status": "MAYBE", "msg": ""})),
        &["field `status`", "MAYBE"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn html_instead_of_json() {
    refused_with(
        Reply::Raw(200, "text/html", "<html><body>Login portal</body></html>"),
        &["POST /api/v1/logon", "HTML instead of JSON", "Login portal"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_error_quotes_the_servers_error_body() {
    refused_with(
        Reply::Raw(
            400,
            "application/json",
            r#"{"status":"error","errors":[{"name":"event","description":"no such event","location":"body"}]}"#,
        ),
        &["POST /api/v1/logon", "HTTP 400", "event: no such event"],
    )
    .await;
    refused_with(
        Reply::Raw(502, "text/html", "<html>Bad Gateway</html>"),
        &["HTTP 502", "Bad Gateway"],
    )
    .await;
}

/// The chains call is read like every other: a bad list is one line naming the field; a server
/// without the portal's `GET` form (404) is asked with `POST`, as PWM does.
#[tokio::test(flavor = "multi_thread")]
async fn the_chains_call_is_read_strictly_and_falls_back_to_post() {
    let url = broken_server(HashMap::from([(
        "/api/v1/logon/chains",
        Reply::Json(json!({"chains": [{"name": "U2F only"}]})),
    )]))
    .await;
    let (result, _) = log_on(&url, Duration::from_secs(5)).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "GET /api/v1/logon/chains: bad reply: (HTTP 200) field `chains[0]`: missing field `methods` at line 1 column 30"
    );

    let url = broken_server(HashMap::from([
        (
            "GET /api/v1/logon/chains",
            Reply::Raw(404, "text/plain", ""),
        ),
        (
            "POST /api/v1/logon/chains",
            Reply::Json(json!({"chains": [{"name": "TOTP", "methods": ["TOTP:1"]}]})),
        ),
    ]))
    .await;
    let (result, _) = log_on(&url, Duration::from_secs(5)).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "no chain for alice at event \"Search Card\" is one vu2f can complete: \
         \"TOTP\" (TOTP:1): TOTP:1 is not a method vu2f answers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ok_without_a_login_session_is_refused() {
    let url = broken_server(HashMap::from([
        ("/api/v1/logon", Reply::Json(started())),
        (
            "/api/v1/logon/p/do_logon",
            Reply::Json(
                json!({"status": "OK", "msg": "Welcome", "completed_methods": ["PASSWORD:1"]}),
            ),
        ),
    ]))
    .await;
    let (result, _) = log_on_with(&url, Duration::from_secs(5), Some("pw")).await;
    let line = result.unwrap_err().to_string();
    assert!(line.contains("OK without a login_session_id"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_out_of_order_is_refused() {
    let url = broken_server(HashMap::from([
        ("/api/v1/logon", Reply::Json(started())),
        (
            "/api/v1/logon/p/do_logon",
            Reply::Json(json!({"status": "OK", "msg": "Welcome", "completed_methods": ["U2F:1"],
                               "signRequests": [{"version": "U2F_V2", "appId": "x", "keyHandle": "AA", "challenge": "c"}]})),
        ),
    ]))
    .await;
    let (result, _) = log_on(&url, Duration::from_secs(5)).await;
    let line = result.unwrap_err().to_string();
    assert!(line.contains("expected MORE_DATA"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_server_times_out() {
    let url = broken_server(HashMap::from([("/api/v1/logon", Reply::Stall)])).await;
    let start = Instant::now();
    let (result, _) = log_on(&url, Duration::from_millis(500)).await;
    let error = result.unwrap_err();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_listening_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (result, _) = log_on(&url, Duration::from_secs(5)).await;
    let line = result.unwrap_err().to_string();
    assert!(line.contains("cannot reach the server"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_never_asked_to_sign_for_a_foreign_app_id() {
    let url = broken_server(HashMap::from([
        ("/api/v1/logon", Reply::Json(started())),
        (
            "/api/v1/logon/p/do_logon",
            Reply::Json(
                json!({"status": "MORE_DATA", "msg": "", "reason": "U2F_WAITING_AUTH_RESPONSE",
                "logon_process_id": "p",
                "signRequests": [{"version": "U2F_V2", "appId": "https://bank.example",
                                  "keyHandle": "AAAA", "challenge": "c"}]}),
            ),
        ),
    ]))
    .await;
    let (result, asked) = log_on(&url, Duration::from_secs(5)).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, ClientError::AppIdNotAllowed { app_id, .. } if app_id == "https://bank.example"),
        "{error}"
    );
    assert_eq!(asked, 0, "the token was not asked");
}

/// Against the real emulator configured with an App ID on another host: refused by default,
/// signed once the user allows it with `--appid`.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_id_on_another_host_needs_the_users_permission() {
    let config = SimConfig {
        app_id: Some("https://aa.example.com".into()),
        ..SimConfig::default()
    };
    let mut aa = common::aa::Aa::start(config).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = common::aa::Aa::token(&store, "t");
    let refused = aa.enroll(&mut token, "alice").await.unwrap_err();
    assert!(
        matches!(refused, ClientError::AppIdNotAllowed { .. }),
        "{refused}"
    );

    let allowed = OriginPolicy::new(
        aa.http.origin(),
        vec!["https://aa.example.com".into()],
        None,
    );
    aa.client.policy = allowed;
    aa.enroll(&mut token, "alice").await.unwrap();
    aa.logon(&mut token, "alice").await.unwrap();
}
