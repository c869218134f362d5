//! The automation API (`vu2f serve --control`) of a separate `vu2f serve` process: authenticators
//! added, driven over UDP by the CTAPHID client while their switches flip, and removed; the
//! bearer; malformed requests; ephemeral tokens that leave nothing behind; `vu2f ctl`.
mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use vu2f::ctap2::cbor::{self, text_map, uint_map, Arena, Parameters};
use vu2f::transport::{TokenTransport, UdpTransport};
use vu2f::u2f::messages;

use common::Running;

const OK: u8 = 0x00;
const OPERATION_DENIED: u8 = 0x27;
const UNSUPPORTED_OPTION: u8 = 0x2B;
const NO_CREDENTIALS: u8 = 0x2E;
/// What a refused built-in UV answers: OPERATION_DENIED, or UV_INVALID where UV counts retries.
const UV_REFUSED: [u8; 2] = [OPERATION_DENIED, 0x3F];

/// A `vu2f serve --control 127.0.0.1:0` with its own runtime directory; killed on drop.
struct Api {
    process: Running,
    url: String,
    token_file: PathBuf,
    bearer: String,
    http: reqwest::blocking::Client,
    /// `XDG_RUNTIME_DIR` of the server.
    runtime: tempfile::TempDir,
    /// The JSON lines of the command-line tokens.
    tokens: Vec<Value>,
}

impl Api {
    /// Serves the store `store` with `args` more (and `--token` for each of `tokens`), the API
    /// on a loopback port.
    fn start(store: &Path, args: &[&str], tokens: &[&str]) -> Api {
        Api::start_on(store, &["--control", "127.0.0.1:0"], args, tokens)
    }

    fn start_on(store: &Path, control: &[&str], args: &[&str], tokens: &[&str]) -> Api {
        let runtime = tempfile::tempdir().unwrap();
        Api::start_in(runtime, store, control, args, tokens)
    }

    /// As [`Api::start_on`], with `runtime` its `XDG_RUNTIME_DIR`.
    fn start_in(
        runtime: tempfile::TempDir,
        store: &Path,
        control: &[&str],
        args: &[&str],
        tokens: &[&str],
    ) -> Api {
        let mut command = common::vu2f(store);
        command.env("XDG_RUNTIME_DIR", runtime.path());
        command.args(["--json", "serve"]).args(control).args(args);
        for token in tokens {
            command.args(["--token", token]);
        }
        let (process, mut lines) = Running::start(command, tokens.len() + 1);
        let automation = lines.pop().unwrap();
        let token_file = PathBuf::from(automation["token_file"].as_str().unwrap());
        let bearer = std::fs::read_to_string(&token_file).unwrap();
        Api {
            process,
            url: automation["automation"].as_str().unwrap().to_owned(),
            token_file,
            bearer,
            http: reqwest::blocking::Client::new(),
            runtime,
            tokens: lines,
        }
    }

    /// `method path` with `body` and the bearer: the status and the JSON answer.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(Some(&self.bearer), method, path, body)
    }

    fn call_as(
        &self,
        bearer: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap())
    }

    /// A call that must succeed: its `value`.
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    /// A call that must fail with `status` and `error`: its message.
    fn refused(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
        error: &str,
    ) -> String {
        let (got, answer) = self.call(method, path, body);
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert_eq!(answer["value"]["error"], error, "{answer}");
        answer["value"]["message"].as_str().unwrap().to_owned()
    }

    /// Adds an authenticator: its id.
    fn add(&self, body: Value) -> String {
        let id = self.ok("POST", "/webauthn/authenticator", Some(body));
        id.as_str().unwrap().to_owned()
    }

    fn list(&self) -> Vec<Value> {
        let list = self.ok("GET", "/webauthn/authenticators", None);
        list.as_array().unwrap().clone()
    }

    fn show(&self, id: &str) -> Value {
        self.ok("GET", &format!("/webauthn/authenticator/{id}"), None)
    }

    fn switch(&self, id: &str, action: &str, body: Value) {
        let answer = self.ok(
            "POST",
            &format!("/webauthn/authenticator/{id}/{action}"),
            Some(body),
        );
        assert_eq!(answer, Value::Null);
    }

    /// `vu2f --store STORE` with the server's runtime directory, as `vu2f ctl` needs it.
    fn vu2f(&self, store: &Path) -> std::process::Command {
        let mut command = common::vu2f(store);
        command.env("XDG_RUNTIME_DIR", self.runtime.path());
        command
    }

    /// A CTAPHID channel to `id` over UDP.
    fn udp(&self, id: &str) -> UdpTransport {
        let addr = self.show(id)["udp"].as_str().unwrap().parse().unwrap();
        UdpTransport::connect(addr).unwrap()
    }
}

fn new_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    (dir, store)
}

/// A makeCredential for `rp` with the options `rk` and `uv` (each absent when `None`).
fn make_credential(rp: &str, rk: Option<bool>, uv: Option<bool>) -> Vec<u8> {
    let mut options = Vec::new();
    if let Some(rk) = rk {
        options.push(("rk", cbor::Value::Bool(rk)));
    }
    if let Some(uv) = uv {
        options.push(("uv", cbor::Value::Bool(uv)));
    }
    let mut members = vec![
        (1, cbor::Value::Bytes(vec![0x11; 32])),
        (2, text_map([("id", cbor::Value::Text(rp.into()))])),
        (3, text_map([("id", cbor::Value::Bytes(b"user".to_vec()))])),
        (
            4,
            cbor::Value::Array(vec![vu2f::ctap2::cose::Algorithm::Es256.parameters()]),
        ),
    ];
    if !options.is_empty() {
        members.push((7, text_map(options)));
    }
    [vec![0x01], cbor::encode(&uint_map(members))].concat()
}

/// A getAssertion for `rp` without an allowList (discoverable credentials only).
fn get_assertion(rp: &str) -> Vec<u8> {
    let request = uint_map([
        (1, cbor::Value::Text(rp.into())),
        (2, cbor::Value::Bytes(vec![0x22; 32])),
    ]);
    [vec![0x02], cbor::encode(&request)].concat()
}

/// The status byte of a CTAP2 request's reply.
fn status(token: &mut UdpTransport, request: &[u8]) -> u8 {
    token.cbor(request).unwrap()[0]
}

/// getInfo's options, as (name, value).
fn info_options(token: &mut UdpTransport) -> Vec<(String, bool)> {
    assert!(token.speaks_cbor());
    let reply = token.cbor(&[0x04]).unwrap();
    assert_eq!(reply[0], OK);
    let arena = Arena::new();
    let info = Parameters::decode(&reply[1..], &arena).unwrap();
    let cbor::Item::Map(options) = info.get(4).unwrap() else {
        panic!("options are a map")
    };
    options
        .iter()
        .map(|(name, value)| {
            let (cbor::Item::Text(name), cbor::Item::Bool(value)) = (name, value) else {
                panic!("an option is text: bool")
            };
            (name.to_string(), *value)
        })
        .collect()
}

fn option(options: &[(String, bool)], name: &str) -> Option<bool> {
    options.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// An authenticator added at run time is served over UDP, answers as its switches say, and
/// is gone once removed.
#[test]
fn an_added_authenticator_is_driven_over_udp_and_removed() {
    let (_dir, store) = new_store();
    let api = Api::start(&store, &["--udp", "127.0.0.1:0"], &[]);
    assert!(api.list().is_empty());
    let id = api.add(json!({
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": true,
        "hasUserVerification": true, "isUserVerified": true, "udp": true,
    }));
    assert!(id.starts_with("virtual-"), "{id}");
    let list = api.list();
    assert_eq!(list.len(), 1);
    let shown = &list[0];
    assert_eq!(shown["authenticatorId"], id.as_str());
    assert_eq!(shown["protocol"], "ctap2");
    assert_eq!(shown["ephemeral"], true);
    assert_eq!(shown["hasUserVerification"], true);
    assert_eq!(shown["isUserVerified"], true);
    assert_eq!(shown["hidraw"], Value::Null, "serve runs without --uhid");
    let udp = shown["udp"].as_str().unwrap().to_owned();

    let mut token = api.udp(&id);
    let options = info_options(&mut token);
    assert_eq!(option(&options, "uv"), Some(true));
    assert_eq!(option(&options, "rk"), Some(true));
    let verified = make_credential("uv.vu2f.invalid", None, Some(true));
    assert_eq!(status(&mut token, &verified), OK);

    api.switch(&id, "uv", json!({"isUserVerified": false}));
    assert_eq!(api.show(&id)["isUserVerified"], false);
    assert_eq!(api.show(&id)["uv"], "deny");
    let refused = status(&mut token, &verified);
    assert!(UV_REFUSED.contains(&refused), "uv refused: {refused:#04x}");
    let present = make_credential("up.vu2f.invalid", None, None);
    assert_eq!(
        status(&mut token, &present),
        OK,
        "presence alone still works"
    );
    api.switch(&id, "uv", json!({"isUserVerified": true}));
    assert_eq!(status(&mut token, &verified), OK);

    api.switch(&id, "consenting", json!({"isUserConsenting": false}));
    assert_eq!(api.show(&id)["isUserConsenting"], false);
    assert_eq!(api.show(&id)["presence"], "deny");
    assert_eq!(status(&mut token, &present), OPERATION_DENIED);
    api.switch(&id, "consenting", json!({"isUserConsenting": true}));
    assert_eq!(status(&mut token, &present), OK);

    assert_eq!(
        api.ok("DELETE", &format!("/webauthn/authenticator/{id}"), None),
        Value::Null
    );
    assert!(api.list().is_empty());
    let gone = api.refused(
        "GET",
        &format!("/webauthn/authenticator/{id}"),
        None,
        404,
        "no such authenticator",
    );
    assert!(gone.contains(&id), "{gone}");
    api.refused(
        "DELETE",
        &format!("/webauthn/authenticator/{id}"),
        None,
        404,
        "no such authenticator",
    );
    assert!(
        UdpTransport::connect(udp.parse().unwrap()).is_err(),
        "nothing answers on {udp} any more"
    );
}

/// Without the bearer token, or with another, every request is refused with 401 and a JSON
/// error, whatever the path; the token file is private.
#[test]
fn requests_without_the_bearer_token_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, store) = new_store();
    let api = Api::start(&store, &[], &[]);
    assert_eq!(api.bearer.len(), 43, "32 bytes, base64url without padding");
    let mode = std::fs::metadata(&api.token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let add = json!({"protocol": "ctap2", "transport": "usb"});
    for bearer in [None, Some("wrong"), Some(&api.bearer[1..])] {
        for (method, path) in [
            ("GET", "/webauthn/authenticators"),
            ("POST", "/webauthn/authenticator"),
            ("GET", "/nothing/here"),
        ] {
            let (status, answer) = api.call_as(bearer, method, path, Some(add.clone()));
            assert_eq!(status, 401, "{method} {path} with {bearer:?}: {answer}");
            assert_eq!(answer["value"]["error"], "unauthorized");
        }
    }
    assert!(api.list().is_empty(), "nothing was added");
    let lower_case = api
        .http
        .get(format!("{}/webauthn/authenticators", api.url))
        .header("Authorization", format!("bearer {}", api.bearer))
        .send()
        .unwrap();
    assert_eq!(lower_case.status(), 200, "the scheme is case-insensitive");
    api.refused("GET", "/nothing/here", None, 404, "unknown command");
    api.refused(
        "PUT",
        "/webauthn/authenticators",
        None,
        405,
        "unknown method",
    );
}

/// Malformed requests get 400 naming the field, and add nothing.
#[test]
fn bad_requests_get_400_naming_the_field() {
    let (_dir, store) = new_store();
    let api = Api::start(&store, &["--udp", "127.0.0.1:0"], &[]);
    let add = |body: Value, field: &str| {
        let message = api.refused(
            "POST",
            "/webauthn/authenticator",
            Some(body),
            400,
            "invalid argument",
        );
        assert!(message.contains(field), "{field}: {message}");
    };
    add(
        json!({"protocol": "ctap2", "transport": "usb", "hasResidentKey": "yes"}),
        "`hasResidentKey`",
    );
    add(json!({"transport": "usb"}), "`protocol`");
    add(
        json!({"protocol": "ctap3", "transport": "usb"}),
        "`protocol`",
    );
    add(
        json!({"protocol": "ctap2", "transport": "nfc"}),
        "`transport`",
    );
    add(
        json!({"protocol": "ctap2", "transport": "usb", "colour": 1}),
        "`colour`",
    );
    add(
        json!({"protocol": "ctap2", "transport": "usb", "udp": "10.1.2.3:5"}),
        "--allow-remote",
    );
    add(
        json!({"protocol": "ctap2", "transport": "usb", "name": "no/slash"}),
        "`name`",
    );
    let (status, answer) = {
        let response = api
            .http
            .post(format!("{}/webauthn/authenticator", api.url))
            .bearer_auth(&api.bearer)
            .body("{\"protocol\": ")
            .send()
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().unwrap(),
        )
    };
    assert_eq!(status, 400);
    assert!(
        answer["value"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON"),
        "{answer}"
    );
    assert!(api.list().is_empty(), "nothing was added");

    let id = api.add(json!({"protocol": "ctap2", "transport": "usb", "name": "only"}));
    add(
        json!({"protocol": "ctap2", "transport": "usb", "name": "only"}),
        "`name`",
    );
    let uv = format!("/webauthn/authenticator/{id}/uv");
    let message = api.refused(
        "POST",
        &uv,
        Some(json!({"isUserVerified": 1})),
        400,
        "invalid argument",
    );
    assert!(message.contains("`isUserVerified`"), "{message}");
    let message = api.refused(
        "POST",
        &uv,
        Some(json!({"isUserVerified": true})),
        400,
        "invalid argument",
    );
    assert!(message.contains("no user verification"), "{message}");
    let presence = format!("/webauthn/authenticator/{id}/presence");
    for policy in ["prompt", "sometimes"] {
        let message = api.refused(
            "POST",
            &presence,
            Some(json!({"policy": policy})),
            400,
            "invalid argument",
        );
        assert!(message.contains("`policy`"), "{message}");
    }
    api.refused(
        "POST",
        "/webauthn/authenticator/nobody/press",
        Some(json!({})),
        404,
        "no such authenticator",
    );
    assert_eq!(api.list().len(), 1);
}

/// A control address off loopback is refused unless --allow-remote, before anything runs.
#[test]
fn a_control_address_off_loopback_needs_allow_remote() {
    let (_dir, store) = new_store();
    let runtime = tempfile::tempdir().unwrap();
    let output = common::vu2f(&store)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args(["serve", "--control", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("0.0.0.0:0 is not a loopback address") && stderr.contains("--allow-remote"),
        "{stderr}"
    );
}

/// An ephemeral authenticator's token and credentials are gone once it is removed (one of the
/// same name starts empty), and nothing of it is left in the store or the runtime directory
/// once serve stops; a kept one is a token of the store.
#[test]
fn ephemeral_authenticators_leave_nothing_behind() {
    let (_dir, store) = new_store();
    common::succeeded(common::vu2f(&store).args(["token", "create", "kept"]));
    let mut api = Api::start(&store, &["--udp", "127.0.0.1:0"], &["kept"]);
    assert_eq!(api.tokens[0]["token"], "kept");
    let ephemeral = json!({
        "protocol": "ctap2_1", "transport": "usb", "hasResidentKey": true, "name": "eph",
        "udp": true,
    });
    api.add(ephemeral.clone());
    let rp = "eph.vu2f.invalid";
    let mut token = api.udp("eph");
    assert_eq!(
        status(&mut token, &make_credential(rp, Some(true), None)),
        OK
    );
    assert_eq!(status(&mut token, &get_assertion(rp)), OK);
    api.ok("DELETE", "/webauthn/authenticator/eph", None);
    api.add(ephemeral);
    let mut token = api.udp("eph");
    assert_eq!(
        status(&mut token, &get_assertion(rp)),
        NO_CREDENTIALS,
        "a new token of the same name"
    );
    let kept = api.add(json!({
        "protocol": "ctap2", "transport": "usb", "name": "persist", "ephemeral": false,
    }));
    assert_eq!(kept, "persist");
    let list = api.list();
    let ids: Vec<&str> = list
        .iter()
        .map(|a| a["authenticatorId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["kept", "eph", "persist"], "in the order served");
    let ephemeral: Vec<bool> = list
        .iter()
        .map(|a| a["ephemeral"].as_bool().unwrap())
        .collect();
    assert_eq!(ephemeral, [false, true, false]);
    assert_eq!(
        list[0]["protocol"], "ctap2_1",
        "a fido2 token of the command line"
    );
    let runtime = api.runtime.path().join("vu2f");
    let during: Vec<String> = entries(&runtime);
    assert!(
        during.iter().any(|name| name.starts_with("ephemeral-")),
        "the temporary store is in the runtime directory: {during:?}"
    );

    assert!(api.process.signal("TERM").success());
    assert_eq!(entries(&runtime), Vec::<String>::new(), "all gone");
    let listed = common::json_of(
        &common::vu2f(&store)
            .args(["--json", "token", "list"])
            .output()
            .unwrap(),
    );
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept", "persist"]);
}

/// The temporary store a killed serve could not remove is removed by the next serve on the same
/// runtime directory, at its first ephemeral authenticator; a live serve's is left alone.
#[test]
fn a_temporary_store_left_by_a_killed_serve_is_removed_by_the_next() {
    let (_dir, store) = new_store();
    let (_other_dir, other_store) = new_store();
    let temporary = |runtime: &Path| -> Vec<String> {
        let mut names = entries(&runtime.join("vu2f"));
        names.retain(|name| name.starts_with("ephemeral-"));
        names
    };
    let mut killed = Api::start(&store, &[], &[]);
    killed.add(json!({"protocol": "ctap2", "transport": "usb"}));
    let left = temporary(killed.runtime.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!killed.process.signal("KILL").success());
    assert_eq!(temporary(killed.runtime.path()), left, "kill -9 left it");

    let runtime = std::mem::replace(&mut killed.runtime, tempfile::tempdir().unwrap());
    let live = Api::start_in(
        runtime,
        &other_store,
        &["--control", "127.0.0.1:0"],
        &[],
        &[],
    );
    live.add(json!({"protocol": "ctap2", "transport": "usb"}));
    let now = temporary(live.runtime.path());
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, left, "the killed serve's is gone, the live one's made");

    let mut next = common::vu2f(&store);
    next.env("XDG_RUNTIME_DIR", live.runtime.path()).args([
        "--json",
        "serve",
        "--control",
        "127.0.0.1:0",
    ]);
    let (_next, lines) = Running::start(next, 1);
    let bearer = std::fs::read_to_string(lines[0]["token_file"].as_str().unwrap()).unwrap();
    let url = lines[0]["automation"].as_str().unwrap();
    let added = live
        .http
        .post(format!("{url}/webauthn/authenticator"))
        .bearer_auth(bearer)
        .json(&json!({"protocol": "ctap2", "transport": "usb"}))
        .send()
        .unwrap();
    assert_eq!(added.status(), 200);
    let both = temporary(live.runtime.path());
    assert_eq!(both.len(), 2, "the live serve's stays: {both:?}");
    assert!(both.contains(&now[0]));
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// WebDriver's session routes reach the same authenticators; a ctap1/u2f one is a U2F key
/// (no CTAP2, no discoverable credentials, whatever the client asked).
#[test]
fn session_routes_serve_webdriver_clients_and_u2f_authenticators() {
    let (_dir, store) = new_store();
    let api = Api::start(&store, &["--udp", "127.0.0.1:0"], &[]);
    let id = api.ok(
        "POST",
        "/session/any-session/webauthn/authenticator",
        Some(json!({
            "protocol": "ctap1/u2f", "transport": "usb", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true, "udp": true,
        })),
    );
    let id = id.as_str().unwrap();
    let listed = api.ok("GET", "/session/other/webauthn/authenticators", None);
    assert_eq!(listed[0]["protocol"], "ctap1/u2f");
    assert_eq!(listed[0]["hasResidentKey"], false);
    assert_eq!(listed[0]["hasUserVerification"], false);

    let mut token = api.udp(id);
    let app = messages::app_param("https://u2f.vu2f.invalid");
    common::register(&mut token, &app, &messages::challenge_param(b"c"));
    assert!(!token.speaks_cbor(), "a U2F key has no CBOR capability");
    api.ok(
        "DELETE",
        &format!("/session/any-session/webauthn/authenticator/{id}"),
        None,
    );
    assert!(api.list().is_empty());
}

/// `hasResidentKey: false`: getInfo says rk false (and no largeBlobs), and rk is refused with
/// UNSUPPORTED_OPTION while non-discoverable credentials work.
#[test]
fn an_authenticator_without_resident_keys_refuses_rk() {
    let (_dir, store) = new_store();
    let api = Api::start(&store, &["--udp", "127.0.0.1:0"], &[]);
    let id = api.add(json!({"protocol": "ctap2", "transport": "usb", "udp": true}));
    assert_eq!(api.show(&id)["hasResidentKey"], false);
    let mut token = api.udp(&id);
    let options = info_options(&mut token);
    assert_eq!(option(&options, "rk"), Some(false));
    assert_eq!(option(&options, "largeBlobs"), None);
    let rp = "no-rk.vu2f.invalid";
    assert_eq!(
        status(&mut token, &make_credential(rp, Some(true), None)),
        UNSUPPORTED_OPTION
    );
    assert_eq!(
        status(&mut token, &make_credential(rp, Some(false), None)),
        OK
    );
    assert_eq!(status(&mut token, &make_credential(rp, None, None)), OK);
}

/// Tokens of the command line are listed and take the switches; the button and replug work
/// through the API and through `vu2f touch` / `vu2f replug` for added ones alike.
#[test]
fn command_line_and_added_tokens_take_the_same_controls() {
    let (_dir, store) = new_store();
    common::succeeded(common::vu2f(&store).args(["token", "create", "t"]));
    let api = Api::start(&store, &["--udp", "127.0.0.1:0"], &["t"]);
    assert_eq!(api.list().len(), 1);
    let shown = api.show("t");
    assert_eq!(shown["ephemeral"], false);
    assert_eq!(shown["presence"], "auto");
    assert_eq!(shown["udp"], api.tokens[0]["udp"]);
    let added = api.add(json!({"protocol": "ctap2", "transport": "usb", "udp": true}));
    let command = |args: &[&str]| {
        let output = api.vu2f(&store).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let app = messages::app_param("https://press.vu2f.invalid");
    let challenge = messages::challenge_param(b"c");
    let register = messages::register_request(&challenge, &app);
    for id in ["t", added.as_str()] {
        api.switch(id, "presence", json!({"policy": "touch"}));
        assert_eq!(api.show(id)["presence"], "touch");
        let mut token = api.udp(id);
        assert_eq!(
            messages::status_of(&token.exchange(&register).unwrap()),
            Some(0x6985),
            "{id} waits for a touch"
        );
        api.switch(id, "press", json!({}));
        common::register(&mut token, &app, &challenge);
        assert_eq!(
            messages::status_of(&token.exchange(&register).unwrap()),
            Some(0x6985),
            "the touch was used"
        );
        command(&["touch", id]);
        common::register(&mut token, &app, &challenge);

        api.switch(id, "replug", json!({}));
        assert!(
            token.exchange(&register).is_err(),
            "{id}'s channel is gone after the replug"
        );
        command(&["replug", id]);
    }
}

/// `vu2f ctl` over the store's Unix socket, as a shell script drives it.
#[test]
fn vu2f_ctl_drives_the_api_over_the_unix_socket() {
    let (_dir, store) = new_store();
    let api = Api::start_on(&store, &["--control"], &["--udp", "127.0.0.1:0"], &[]);
    assert!(api.url.starts_with("unix:"), "{}", api.url);
    let ctl = |args: &[&str]| {
        let mut command = api.vu2f(&store);
        command.arg("ctl").args(args);
        command
    };
    let ctl_json = |args: &[&str]| {
        let mut command = api.vu2f(&store);
        command.args(["--json", "ctl"]).args(args);
        common::json_of(&command.output().unwrap())
    };
    let added = common::succeeded(&mut ctl(&[
        "add",
        "--name",
        "c1",
        "--protocol",
        "ctap2",
        "--resident-key",
        "--uv",
        "--verified",
        "on",
        "--udp",
    ]));
    assert_eq!(String::from_utf8(added).unwrap(), "c1\n");
    let list = ctl_json(&["list"]);
    assert_eq!(list[0]["authenticatorId"], "c1");
    assert_eq!(list[0]["hasResidentKey"], true);
    assert_eq!(list[0]["isUserVerified"], true);
    let addr = list[0]["udp"].as_str().unwrap().parse().unwrap();
    let mut token = UdpTransport::connect(addr).unwrap();
    let verified = make_credential("ctl.vu2f.invalid", None, Some(true));
    assert_eq!(status(&mut token, &verified), OK);

    common::succeeded(&mut ctl(&["uv", "c1", "off"]));
    let refused = status(&mut token, &verified);
    assert!(UV_REFUSED.contains(&refused), "{refused:#04x}");
    common::succeeded(&mut ctl(&["uv", "c1", "on"]));
    common::succeeded(&mut ctl(&["consenting", "c1", "off"]));
    let present = make_credential("ctl.vu2f.invalid", None, None);
    assert_eq!(status(&mut token, &present), OPERATION_DENIED);
    common::succeeded(&mut ctl(&["presence", "c1", "delay:50"]));
    assert_eq!(status(&mut token, &present), OK, "touched after 50 ms");
    let text = String::from_utf8(common::succeeded(&mut ctl(&["list"]))).unwrap();
    assert!(
        text.starts_with("c1 ctap2 ephemeral udp ") && text.contains("presence=delay:50 uv=auto"),
        "{text}"
    );
    common::succeeded(&mut ctl(&["press", "c1"]));
    common::succeeded(&mut ctl(&["replug", "c1"]));
    let shown = common::succeeded(&mut ctl(&[
        "--url",
        &api.url,
        "--token-file",
        api.token_file.to_str().unwrap(),
        "list",
    ]));
    assert!(String::from_utf8(shown).unwrap().starts_with("c1 "));

    common::succeeded(&mut ctl(&["remove", "c1"]));
    assert_eq!(ctl_json(&["list"]), json!([]));
    let again = ctl(&["remove", "c1"]).output().unwrap();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("no such authenticator (HTTP 404)"),
        "{stderr}"
    );
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-token").unwrap();
    let refused = ctl(&["--token-file", wrong.path().to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unauthorized (HTTP 401)"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// A getAssertion for `rp` without an allowList over UDP, verified with the P-256 point
/// `public`: the credential id, the counter, and whether the signature verifies.
fn signed_in(token: &mut UdpTransport, rp: &str, public: &[u8]) -> (Vec<u8>, u32, bool) {
    let reply = token.cbor(&get_assertion(rp)).unwrap();
    assert_eq!(reply[0], OK, "getAssertion");
    let value: ciborium::Value = ciborium::de::from_reader(&reply[1..]).unwrap();
    let member = |key: u64| {
        value
            .as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_integer() == Some(key.into()))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let descriptor = member(1);
    let id = descriptor
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("id"));
    let id = id.unwrap().1.as_bytes().unwrap().clone();
    let auth_data = member(2).into_bytes().unwrap();
    let counter = u32::from_be_bytes(auth_data[33..37].try_into().unwrap());
    let signed = [auth_data.as_slice(), &[0x22; 32]].concat();
    let verifies =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, public)
            .verify(&signed, &member(3).into_bytes().unwrap())
            .is_ok();
    (id, counter, verifies)
}

/// `vu2f ctl` puts a credential in with a key from a PEM file, lists it with the count of its
/// last signature, arms faults a verifier sees, and removes it.
#[test]
fn vu2f_ctl_puts_in_a_credential_lists_it_and_arms_faults() {
    use p256::pkcs8::EncodePrivateKey;
    const RP: &str = "ctl-credential.vu2f.invalid";
    let (dir, store) = new_store();
    let api = Api::start_on(&store, &["--control"], &["--udp", "127.0.0.1:0"], &[]);
    let ctl = |args: &[&str]| {
        let mut command = api.vu2f(&store);
        command.arg("ctl").args(args);
        String::from_utf8(common::succeeded(&mut command)).unwrap()
    };
    ctl(&["add", "--name", "k1", "--resident-key", "--udp"]);
    let secret = p256::SecretKey::random(&mut rand::thread_rng());
    let public =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let key_file = dir.path().join("key.pem");
    let der = secret.to_pkcs8_der().unwrap().as_bytes().to_vec();
    std::fs::write(&key_file, pem::encode(&pem::Pem::new("PRIVATE KEY", der))).unwrap();

    let credential_id = ctl(&[
        "add-credential",
        "k1",
        "--rp-id",
        RP,
        "--key",
        key_file.to_str().unwrap(),
        "--resident",
        "--user-handle",
        "dXNlcg",
        "--sign-count",
        "500",
    ]);
    let credential_id = credential_id.trim().to_owned();
    let raw_id = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &credential_id,
    )
    .unwrap();
    assert_eq!(raw_id.len(), 16, "a random id of 16 bytes: {credential_id}");
    let mut listed = api.vu2f(&store);
    listed.args(["--json", "ctl", "list"]);
    let addr = common::json_of(&listed.output().unwrap())[0]["udp"].clone();
    let mut token = UdpTransport::connect(addr.as_str().unwrap().parse().unwrap()).unwrap();
    let (id, counter, verifies) = signed_in(&mut token, RP, public.as_bytes());
    assert_eq!(id, raw_id);
    assert!(verifies && counter > 500, "counter {counter}");
    assert_eq!(
        ctl(&["credentials", "k1"]),
        format!("{credential_id} {RP} resident signCount={counter} user=dXNlcg\n")
    );

    let armed = ctl(&["faults", "k1", "--corrupt-signature", "--counter", "3"]);
    assert_eq!(
        armed,
        "corruptSignature=true counter=3 delayMs=- busy=false\n"
    );
    let (_, spoiled_counter, verifies) = signed_in(&mut token, RP, public.as_bytes());
    assert!(!verifies, "the corrupted signature verifies");
    assert_eq!(spoiled_counter, 3);
    assert_eq!(
        ctl(&["faults", "k1"]),
        "corruptSignature=false counter=- delayMs=- busy=false\n",
        "both spent"
    );
    let (_, after, verifies) = signed_in(&mut token, RP, public.as_bytes());
    assert!(verifies && after > counter + 1, "{after} after {counter}");

    ctl(&["remove-credential", "k1", &credential_id]);
    assert_eq!(status(&mut token, &get_assertion(RP)), NO_CREDENTIALS);
    assert_eq!(ctl(&["credentials", "k1"]), "");
    let mut missing = api.vu2f(&store);
    missing.args(["ctl", "remove-credential", "k1"]);
    let refused = missing.output().unwrap();
    assert!(!refused.status.success(), "no credential id and no --all");
}

/// `serve --control` with no token at all runs, and says where its API is.
#[test]
fn serve_with_the_api_alone_needs_no_token() {
    let (_dir, store) = new_store();
    let runtime = tempfile::tempdir().unwrap();
    let mut command = common::vu2f(&store);
    command
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args(["serve", "--control"]);
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _process = Running { child };
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("automation API on unix:") && line.contains("(bearer token in "),
        "{line}"
    );
}
