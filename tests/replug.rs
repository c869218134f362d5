//! `vu2f replug NAME` against `vu2f serve --udp` as a separate process: the token is unplugged
//! and plugged in again as at power-up. A host's channel of before gets ERR_INVALID_CHANNEL and
//! a fresh INIT works; the counter goes on; a touch given before does not count after. The uhid
//! side (a new hidraw node) is in tests/uhid.rs.
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use vu2f::hid::{Command, HidError};
use vu2f::transport::{TokenTransport, TransportError, UdpTransport};
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse};

/// A store with token `t`, closed again for the server to open.
fn store() -> (tempfile::TempDir, PathBuf) {
    let (dir, store) = common::store_with(&["t"]);
    drop(store);
    let path = dir.path().join("store");
    (dir, path)
}

fn vu2f_replug(store: &Path, name: &str) -> Output {
    common::vu2f(store).args(["replug", name]).output().unwrap()
}

/// The error of a failed command: one line on stderr.
fn one_line_error(output: &Output) -> String {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("vu2f: error: "), "{stderr}");
    stderr
}

fn authenticate(token: &mut dyn TokenTransport, app: &[u8; 32], key_handle: &[u8]) -> u32 {
    let challenge = messages::challenge_param(b"replug");
    let request = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        app,
        key_handle,
    );
    let response = token.exchange(&request).unwrap();
    AuthenticationResponse::try_from(messages::split_status(&response).unwrap())
        .unwrap()
        .counter
}

#[test]
fn a_replug_invalidates_the_hosts_channel_and_the_counter_goes_on() {
    let (_dir, store) = store();
    let server = common::Server::start(&store, &["t"], "auto");
    let mut host = UdpTransport::connect(server.addr("t")).unwrap();
    let app = messages::app_param("https://replug.vu2f.invalid");
    let registration = common::register(&mut host, &app, &messages::challenge_param(b"r"));
    let before = authenticate(&mut host, &app, &registration.key_handle);

    let replugged = vu2f_replug(&store, "t");
    assert!(
        replugged.status.success(),
        "{}",
        String::from_utf8_lossy(&replugged.stderr)
    );

    match host.transact(Command::Ping as u8, b"still there?") {
        Err(TransportError::Hid(error)) => {
            assert_eq!(error, HidError::InvalidChannel);
            assert_eq!(error as u8, 0x0B);
        }
        other => panic!("the channel of before answered {other:?}"),
    }
    let mut fresh = UdpTransport::connect(server.addr("t")).unwrap();
    assert_ne!(fresh.cid(), host.cid(), "a channel never handed out before");
    let after = authenticate(&mut fresh, &app, &registration.key_handle);
    assert!(after > before, "counter {after} after {before}");
}

#[test]
fn a_touch_given_before_a_replug_does_not_count_after_it() {
    let (_dir, store) = store();
    let server = common::Server::start(&store, &["t"], "touch");
    let touched = common::vu2f(&store).args(["touch", "t"]).output().unwrap();
    assert!(touched.status.success());
    assert!(vu2f_replug(&store, "t").status.success());

    let mut host = UdpTransport::connect(server.addr("t")).unwrap();
    let app = messages::app_param("https://replug.vu2f.invalid");
    let register = messages::register_request(&messages::challenge_param(b"r"), &app);
    assert_eq!(
        messages::status_of(&host.exchange(&register).unwrap()),
        Some(0x6985),
        "the touch went with the power"
    );
}

#[test]
fn replug_of_an_unknown_token_or_without_a_server_fails_in_one_line() {
    let (_dir, store) = store();
    let alone = one_line_error(&vu2f_replug(&store, "t"));
    assert!(alone.contains("no running `vu2f serve`"), "{alone}");

    let _server = common::Server::start(&store, &["t"], "auto");
    let unknown = one_line_error(&vu2f_replug(&store, "nosuch"));
    assert!(unknown.contains("\"nosuch\" is not served"), "{unknown}");
}
