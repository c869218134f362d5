//! Secrets at rest from the command line (issue 6): `vu2f store lock` seals the store with a
//! passphrase, every command then needs it (file, environment or terminal) and refuses a wrong
//! one clearly, a credential registered before locking still authenticates through `serve`, and
//! a store that others can read is refused with the command that fixes it.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

use vu2f::transport::{TokenTransport, UdpTransport};
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse};

fn run(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::vu2f(store)
        .args(args)
        .env_remove("VU2F_PASSPHRASE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn error_line(output: &Output) -> String {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn a_locked_store_serves_only_with_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(run(&store, &["token", "create", "t"], &[]).status.success());
    let app = messages::app_param("https://lock.vu2f.invalid");
    let challenge = messages::challenge_param(b"lock");
    let registration = {
        let server = common::Server::start(&store, &["t"], "auto");
        let mut udp = UdpTransport::connect(server.addrs[0].1).unwrap();
        common::register(&mut udp, &app, &challenge)
    };

    let file = dir.path().join("passphrase");
    std::fs::write(&file, "correct horse battery staple\n").unwrap();
    let locked = run(
        &store,
        &[
            "store",
            "lock",
            "--new-passphrase-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(locked.status.success(), "{locked:?}");

    let without = error_line(&run(&store, &["token", "list"], &[]));
    assert!(without.contains("locked with a passphrase"), "{without}");
    assert!(without.contains("--passphrase-file"), "{without}");
    let wrong = error_line(&run(
        &store,
        &["token", "list"],
        &[("VU2F_PASSPHRASE", "correct horse")],
    ));
    assert!(wrong.contains("wrong passphrase"), "{wrong}");
    let listed = run(
        &store,
        &["--passphrase-file", file.to_str().unwrap(), "token", "list"],
        &[],
    );
    assert!(listed.status.success(), "{listed:?}");

    let server = common::Server::start_with_env(
        &store,
        &["t"],
        "auto",
        &[("VU2F_PASSPHRASE", "correct horse battery staple")],
    );
    let mut udp = UdpTransport::connect(server.addrs[0].1).unwrap();
    let request = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &app,
        &registration.key_handle,
    );
    let response = udp.exchange(&request).unwrap();
    let auth =
        AuthenticationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
    auth.verify(&app, &challenge, &registration.public_key)
        .expect("a handle registered before locking still signs");
    drop(server);

    let unlocked = run(
        &store,
        &["store", "unlock"],
        &[("VU2F_PASSPHRASE", "correct horse battery staple")],
    );
    assert!(unlocked.status.success(), "{unlocked:?}");
    assert!(run(&store, &["token", "list"], &[]).status.success());
}

#[test]
fn a_store_others_can_read_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(run(&store, &["token", "create", "t"], &[]).status.success());
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = error_line(&run(&store, &["token", "list"], &[]));
    assert!(refused.contains("not private"), "{refused}");
    assert!(refused.contains("chmod -R go="), "{refused}");
}
