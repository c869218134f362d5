//! `vu2f serve --udp` as a separate process, driven through the UDP client transport; presence
//! pressed from outside with `vu2f touch`.
mod common;

use std::time::Duration;

use vu2f::transport::{exchange_awaiting_presence, TokenTransport, UdpTransport};
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};

fn create(store: &std::path::Path, names: &[&str]) {
    for name in names {
        let status = common::vu2f(store)
            .args(["token", "create", name])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

#[test]
fn register_and_authenticate_over_udp_with_several_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    create(&store, &["a", "b"]);
    let server = common::Server::start(&store, &["a", "b"], "auto");
    assert_eq!(server.addrs.len(), 2);
    let mut a = UdpTransport::connect(server.addrs[0].1).unwrap();
    let mut b = UdpTransport::connect(server.addrs[1].1).unwrap();

    let version = a.exchange(&messages::version_request()).unwrap();
    assert_eq!(messages::split_status(&version).unwrap(), b"U2F_V2");

    let app = messages::app_param("https://udp.vu2f.invalid");
    let challenge = messages::challenge_param(b"c");
    let response = a
        .exchange(&messages::register_request(&challenge, &app))
        .unwrap();
    let reg = RegistrationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
    reg.verify(&app, &challenge).unwrap();

    let request = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &app,
        &reg.key_handle,
    );
    let mut last = 0;
    for _ in 0..5 {
        let response = a.exchange(&request).unwrap();
        let auth =
            AuthenticationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
        auth.verify(&app, &challenge, &reg.public_key).unwrap();
        assert!(auth.counter > last);
        last = auth.counter;
    }
    let refused = b.exchange(&request).unwrap();
    assert_eq!(
        messages::status_of(&refused),
        Some(0x6A80),
        "token b refuses a's handle"
    );
}

#[test]
fn vu2f_touch_presses_the_button_of_a_running_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    create(&store, &["t"]);
    let server = common::Server::start(&store, &["t"], "touch");
    let mut token = UdpTransport::connect(server.addrs[0].1).unwrap();
    let app = messages::app_param("https://touch.vu2f.invalid");
    let challenge = messages::challenge_param(b"c");
    let register = messages::register_request(&challenge, &app);
    assert_eq!(
        messages::status_of(&token.exchange(&register).unwrap()),
        Some(0x6985)
    );

    let store_for_touch = store.clone();
    let toucher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        common::vu2f(&store_for_touch)
            .args(["touch", "t"])
            .output()
            .unwrap()
    });
    let response = exchange_awaiting_presence(
        &mut token,
        &register,
        Duration::from_millis(50),
        Duration::from_secs(10),
    )
    .unwrap();
    let touched = toucher.join().unwrap();
    assert!(
        touched.status.success(),
        "{}",
        String::from_utf8_lossy(&touched.stderr)
    );
    let reg = RegistrationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
    reg.verify(&app, &challenge).unwrap();
    assert_eq!(
        messages::status_of(&token.exchange(&register).unwrap()),
        Some(0x6985),
        "the touch was consumed"
    );

    let unknown = common::vu2f(&store)
        .args(["touch", "nobody"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not served"));
}

#[test]
fn cli_errors_are_one_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for args in [
        &["token", "show", "missing"][..],
        &["serve", "--udp", "127.0.0.1:0", "--token", "missing"][..],
        &["serve", "--udp", "0.0.0.0:0", "--all"][..],
        &["touch", "t"][..],
        &[
            "token",
            "create",
            "t",
            "--profile",
            "u2f",
            "--attestation",
            "self",
        ][..],
    ] {
        let out = common::vu2f(&store).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("vu2f: error: "), "{stderr}");
    }
}

/// The counter across restarts of `serve`: after SIGTERM (a clean exit) the unused reservation is
/// given back and the next signature is exactly one more; after SIGKILL it resumes above the whole
/// reservation, never repeating a value. `vu2f logon` as a one-shot command behaves as the clean
/// exit: a token used once per CI job advances by one per job, not by a block.
#[test]
fn a_clean_stop_continues_at_plus_one_and_a_kill_skips_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    create(&store, &["t"]);
    let app = messages::app_param("https://restart.vu2f.invalid");
    let challenge = messages::challenge_param(b"c");
    let sign_twice = |key_handle: Option<Vec<u8>>| {
        let server = common::Server::start(&store, &["t"], "auto");
        let mut token = UdpTransport::connect(server.addrs[0].1).unwrap();
        let key_handle = key_handle.unwrap_or_else(|| {
            let response = token
                .exchange(&messages::register_request(&challenge, &app))
                .unwrap();
            RegistrationResponse::try_from(messages::split_status(&response).unwrap())
                .unwrap()
                .key_handle
        });
        let request = messages::authenticate_request(
            Control::EnforcePresenceAndSign,
            &challenge,
            &app,
            &key_handle,
        );
        let counters: Vec<u32> = (0..2)
            .map(|_| {
                let response = token.exchange(&request).unwrap();
                AuthenticationResponse::try_from(messages::split_status(&response).unwrap())
                    .unwrap()
                    .counter
            })
            .collect();
        (server, key_handle, counters)
    };

    let (mut server, handle, first) = sign_twice(None);
    assert_eq!(first, [1, 2]);
    assert!(server.process.signal("TERM").success());
    let (mut server, handle, after_clean_stop) = sign_twice(Some(handle));
    assert_eq!(
        after_clean_stop,
        [3, 4],
        "a clean exit gives the reservation back"
    );

    server.process.signal("KILL");
    let (mut server, _, after_kill) = sign_twice(Some(handle));
    // The second run started from ceiling 2 and reserved a block above it before its kill.
    let reserved = 2 + keystore::DEFAULT_COUNTER_BLOCK;
    assert_eq!(
        after_kill,
        [reserved + 1, reserved + 2],
        "a kill resumes above the whole reservation"
    );
    assert!(server.process.signal("TERM").success());
}

/// The control socket lives in `$XDG_RUNTIME_DIR/vu2f`, not in the store (which may sit on a
/// filesystem without sockets). Where it cannot be made, a server that needs no touch serves on
/// with a warning, and one with `--presence touch` refuses to start, in one line.
#[test]
fn the_control_socket_is_in_the_runtime_dir_and_only_touch_needs_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    create(&store, &["t"]);
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let env = [("XDG_RUNTIME_DIR", runtime.to_str().unwrap())];
    let server = common::Server::start_with_env(&store, &["t"], "touch", &env);
    let sockets: Vec<_> = std::fs::read_dir(runtime.join("vu2f"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        matches!(&sockets[..], [name] if name.starts_with("control-") && name.ends_with(".sock")),
        "{sockets:?}"
    );
    assert!(!store.join("control.sock").exists());
    let touched = common::vu2f(&store)
        .envs(env)
        .args(["touch", "t"])
        .output()
        .unwrap();
    assert!(
        touched.status.success(),
        "{}",
        String::from_utf8_lossy(&touched.stderr)
    );
    drop(server);

    // A runtime directory others can enter is no place for the socket.
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(shared.join("vu2f")).unwrap();
    std::fs::set_permissions(shared.join("vu2f"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = [("XDG_RUNTIME_DIR", shared.to_str().unwrap())];
    let server = common::Server::start_with_env(&store, &["t"], "auto", &env);
    let mut token = UdpTransport::connect(server.addrs[0].1).unwrap();
    let version = token.exchange(&messages::version_request()).unwrap();
    assert_eq!(messages::split_status(&version).unwrap(), b"U2F_V2");
    drop(server);
    let refused = common::vu2f(&store)
        .envs(env)
        .args([
            "serve",
            "--udp",
            "127.0.0.1:0",
            "--presence",
            "touch",
            "--all",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--presence touch needs the control socket")
            && stderr.contains("is not a private directory"),
        "{stderr}"
    );
}

/// A store with a `fido2` token "f" (made as `token create` makes tokens by default) and a `u2f`
/// token "u", both served over UDP with `presence`.
fn serve_fido2_and_u2f(presence: &str) -> (tempfile::TempDir, std::path::PathBuf, common::Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    create(&store, &["f"]);
    let created = common::vu2f(&store)
        .args(["token", "create", "u", "--profile", "u2f"])
        .status()
        .unwrap();
    assert!(created.success());
    let server = common::Server::start(&store, &["f", "u"], presence);
    (dir, store, server)
}

/// `vu2f probe --udp` against `vu2f serve --udp`: a `fido2` token passes the U2F and the CTAP2
/// checks (getInfo, makeCredential, two getAssertions, all verified), in text and in JSON; a
/// `u2f` token, whose INIT reply lacks the CBOR capability, the U2F ones only.
#[test]
fn probe_checks_ctap2_on_a_fido2_token_and_not_on_a_u2f_token() {
    let (_dir, store, server) = serve_fido2_and_u2f("auto");
    let addr = |name: &str| server.addr(name).to_string();
    let probe = |args: &[&str]| {
        let out = common::vu2f(&store).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    let ctap2_steps = [
        "CTAP2 getInfo",
        "CTAP2 makeCredential (ES256)",
        "CTAP2 getAssertion #1",
        "CTAP2 getAssertion #2",
    ];

    let json = probe(&["--json", "probe", "--udp", &addr("f")]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["ctap2"], true);
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert_eq!(names[6..], ctap2_steps);
    assert!(steps[6]["result"].as_str().unwrap().contains("FIDO_2_0"));
    assert!(steps[7]["result"]
        .as_str()
        .unwrap()
        .contains("packed attestation verified"));
    let counter = |step: &serde_json::Value| -> u32 {
        let result = step["result"].as_str().unwrap();
        let after = result.split("counter ").nth(1).unwrap();
        after.split(',').next().unwrap().parse().unwrap()
    };
    assert!(counter(&steps[7]) < counter(&steps[8]) && counter(&steps[8]) < counter(&steps[9]));

    let text = probe(&["probe", "--udp", &addr("f")]);
    assert!(text.contains("(U2F and CTAP2)"), "{text}");
    for step in ctap2_steps {
        assert!(text.contains(step), "{step}: {text}");
    }
    assert!(text.ends_with("all verified\n"), "{text}");

    let json = probe(&["--json", "probe", "--udp", &addr("u")]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["ctap2"], false);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    assert!(steps
        .iter()
        .all(|s| !s["step"].as_str().unwrap().starts_with("CTAP2")));
    let text = probe(&["probe", "--udp", &addr("u")]);
    assert!(
        text.contains("(U2F only)") && !text.contains("CTAP2 "),
        "{text}"
    );
}

/// The host's CTAP2 request: `None` from a token without the CBOR capability; from a fido2 token
/// that waits for the user longer than the 3-s reply timeout, the reply, its KEEPALIVEs having
/// kept the request alive.
#[test]
fn keepalives_keep_a_ctap2_request_alive_past_the_reply_timeout() {
    let (_dir, _store, server) = serve_fido2_and_u2f("delay:3500");
    let addr = |name: &str| server.addr(name);
    let mut u2f = UdpTransport::connect(addr("u")).unwrap();
    assert_eq!(u2f.capabilities() & 0x04, 0);
    assert!(TokenTransport::cbor(&mut u2f, &[0x04]).unwrap().is_none());

    let mut fido2 = UdpTransport::connect(addr("f")).unwrap();
    assert!(fido2.speaks_cbor());
    let start = std::time::Instant::now();
    // authenticatorSelection: status OK once the user (here the delay) has acted.
    let reply = TokenTransport::cbor(&mut fido2, &[0x0B]).unwrap();
    assert_eq!(reply, Some(vec![0x00]));
    assert!(
        start.elapsed() >= Duration::from_millis(3400),
        "{:?}",
        start.elapsed()
    );
}
