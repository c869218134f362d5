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
    ] {
        let out = common::vu2f(&store).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("vu2f: error: "), "{stderr}");
    }
}
