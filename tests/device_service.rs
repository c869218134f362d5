//! `vu2f serve --device-service`: AA's Device Service API (PROTOCOLS.md 1.6) answered by vu2f
//! tokens, its error codes included, checked as a relying party would.
mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use vu2f::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};

struct Service {
    _process: common::Running,
    url: String,
}

fn start(store: &std::path::Path, tokens: &[&str]) -> Service {
    let mut command = common::vu2f(store);
    command.args([
        "--json",
        "serve",
        "--device-service",
        "127.0.0.1:0",
        "--plain-http",
    ]);
    for token in tokens {
        command.args(["--token", token]);
    }
    let (process, lines) = common::Running::start(command, tokens.len() + 1);
    let url = lines[tokens.len()]["device_service"]
        .as_str()
        .unwrap()
        .to_owned();
    Service {
        _process: process,
        url,
    }
}

const APP_ID: &str = "https://aa.vu2f.test";

fn post(service: &Service, call: &str, token: &str, body: Value) -> Value {
    reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v1/fidou2f/{call}?token={token}",
            service.url
        ))
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn register_and_sign_verify_and_errors_carry_the_js_api_codes() {
    let (dir, store) = common::store_with(&["a", "b"]);
    drop(store);
    let service = start(&dir.path().join("store"), &["a", "b"]);

    let registered = post(
        &service,
        "register",
        "a",
        json!({
            "registerRequests": [{"version": "U2F_V2", "appId": APP_ID, "challenge": "cmVn"}],
            "signRequests": []
        }),
    );
    // The portal's registerResponse (PROTOCOLS.md 1.9): the register request's appId, challenge
    // and version beside the U2F RegisterResponse, ready for do_enroll.
    let mut keys: Vec<&String> = registered.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "appId",
            "challenge",
            "clientData",
            "registrationData",
            "version"
        ],
        "{registered}"
    );
    assert_eq!(registered["appId"], APP_ID);
    assert_eq!(registered["challenge"], "cmVn");
    assert_eq!(registered["version"], "U2F_V2");
    let client_data = URL_SAFE_NO_PAD
        .decode(registered["clientData"].as_str().unwrap())
        .unwrap();
    let client: Value = serde_json::from_slice(&client_data).unwrap();
    assert_eq!(client["typ"], "navigator.id.finishEnrollment");
    assert_eq!(client["origin"], APP_ID);
    let data = URL_SAFE_NO_PAD
        .decode(registered["registrationData"].as_str().unwrap())
        .unwrap();
    let registration = RegistrationResponse::try_from(&data[..]).unwrap();
    let app = messages::app_param(APP_ID);
    registration
        .verify(&app, &messages::challenge_param(&client_data))
        .unwrap();
    let key_handle = URL_SAFE_NO_PAD.encode(&registration.key_handle);
    let sign_request = json!({"version": "U2F_V2", "appId": APP_ID, "keyHandle": key_handle,
                              "challenge": "c2lnbg"});

    let signed = post(
        &service,
        "sign",
        "a",
        json!({"signRequests": [sign_request]}),
    );
    let client_data = URL_SAFE_NO_PAD
        .decode(signed["clientData"].as_str().unwrap())
        .unwrap();
    let data = URL_SAFE_NO_PAD
        .decode(signed["signatureData"].as_str().unwrap())
        .unwrap();
    AuthenticationResponse::try_from(&data[..])
        .unwrap()
        .verify(
            &app,
            &messages::challenge_param(&client_data),
            &registration.public_key,
        )
        .unwrap();
    assert_eq!(signed["keyHandle"], key_handle.as_str());

    let anyone = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/fidou2f/sign", service.url))
        .json(&json!({"signRequests": [sign_request]}))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert!(
        anyone["signatureData"].is_string(),
        "without ?token every token is asked: {anyone}"
    );

    let others = post(
        &service,
        "sign",
        "b",
        json!({"signRequests": [sign_request]}),
    );
    assert_eq!(others["errorCode"], 4, "{others}");
    let again = post(
        &service,
        "register",
        "a",
        json!({
            "registerRequests": [{"version": "U2F_V2", "appId": APP_ID, "challenge": "cmVn"}],
            "signRequests": [sign_request]
        }),
    );
    assert_eq!(again["errorCode"], 4, "already registered: {again}");
    let not_a_url = post(
        &service,
        "register",
        "a",
        json!({
            "registerRequests": [{"version": "U2F_V2", "appId": "NetIQ", "challenge": "cmVn"}]
        }),
    );
    assert_eq!(not_a_url["errorCode"], 2, "{not_a_url}");
    let other_page = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/fidou2f/sign?token=a", service.url))
        .header("Origin", "https://evil.example")
        .json(&json!({"signRequests": [sign_request]}))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(
        other_page["errorCode"], 2,
        "a page of another origin: {other_page}"
    );
    let garbage = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/fidou2f/sign", service.url))
        .body("{oops")
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(garbage["errorCode"], 2);
    let aborted: Value = reqwest::blocking::get(format!("{}/api/v1/fidou2f/abort", service.url))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(aborted, json!({"result": "ok"}));
}

/// An authenticator the automation API adds while serve runs answers the Device Service, which
/// forgets it once it is removed.
#[test]
fn authenticators_added_at_run_time_answer_and_removed_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let mut command = common::vu2f(&dir.path().join("store"));
    command.env("XDG_RUNTIME_DIR", runtime.path()).args([
        "--json",
        "serve",
        "--device-service",
        "127.0.0.1:0",
        "--plain-http",
        "--control",
        "127.0.0.1:0",
    ]);
    let (process, lines) = common::Running::start(command, 2);
    let service = Service {
        _process: process,
        url: lines[0]["device_service"].as_str().unwrap().to_owned(),
    };
    let api = lines[1]["automation"].as_str().unwrap().to_owned();
    let bearer = std::fs::read_to_string(lines[1]["token_file"].as_str().unwrap()).unwrap();
    let http = reqwest::blocking::Client::new();
    let added: Value = http
        .post(format!("{api}/webauthn/authenticator"))
        .bearer_auth(&bearer)
        .json(&json!({"protocol": "ctap1/u2f", "transport": "usb", "name": "late"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(added["value"], "late", "{added}");

    let registered = post(
        &service,
        "register",
        "late",
        json!({
            "registerRequests": [{"version": "U2F_V2", "appId": APP_ID, "challenge": "cmVn"}],
            "signRequests": []
        }),
    );
    let data = URL_SAFE_NO_PAD
        .decode(registered["registrationData"].as_str().expect("registered"))
        .unwrap();
    let registration = RegistrationResponse::try_from(&data[..]).unwrap();
    let sign_request = json!({"version": "U2F_V2", "appId": APP_ID, "challenge": "c2lnbg",
        "keyHandle": URL_SAFE_NO_PAD.encode(&registration.key_handle)});
    let sign_anywhere = || {
        http.post(format!("{}/api/v1/fidou2f/sign", service.url))
            .json(&json!({"signRequests": [sign_request]}))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()
    };
    let signed = sign_anywhere();
    let data = URL_SAFE_NO_PAD
        .decode(signed["signatureData"].as_str().expect("signed"))
        .unwrap();
    let client_data = URL_SAFE_NO_PAD
        .decode(signed["clientData"].as_str().unwrap())
        .unwrap();
    AuthenticationResponse::try_from(&data[..])
        .unwrap()
        .verify(
            &messages::app_param(APP_ID),
            &messages::challenge_param(&client_data),
            &registration.public_key,
        )
        .unwrap();

    let removed = http
        .delete(format!("{api}/webauthn/authenticator/late"))
        .bearer_auth(&bearer)
        .send()
        .unwrap();
    assert_eq!(removed.status(), 200);
    let named = post(
        &service,
        "sign",
        "late",
        json!({"signRequests": [sign_request]}),
    );
    assert_eq!(named["errorCode"], 2, "no token named late: {named}");
    let anywhere = sign_anywhere();
    assert_eq!(anywhere["errorCode"], 4, "no token signs: {anywhere}");
}
