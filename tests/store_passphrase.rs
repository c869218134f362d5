//! Secrets at rest from the command line (issue 6): `vu2f store lock` seals the store with a
//! passphrase, every command then needs it (file, environment or terminal) and refuses a wrong
//! one clearly, a credential registered before locking still authenticates through `serve`, and
//! a store that others can read is refused with the command that fixes it. A process that holds
//! a locked store's passphrase keeps it from the user's other processes.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// `nobody`, whom the test plays "another process of the same user" as when it runs as root: root
/// reads every process's files whatever they allow.
const NOBODY: u32 = 65534;

/// `program` run as the user whose processes are compared: the test's own, or `nobody`.
fn as_the_user(program: &Path, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(dir).env_remove("VU2F_PASSPHRASE");
    if rustix::process::geteuid().is_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

/// What `/proc/PID/environ` gives to another process of the same user, or why it gives nothing.
fn environ_seen_by_the_user(pid: u32, dir: &Path) -> Result<String, String> {
    let cat = as_the_user(Path::new("cat"), dir)
        .arg(format!("/proc/{pid}/environ"))
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    if cat.status.success() {
        Ok(String::from_utf8_lossy(&cat.stdout).replace('\0', "\n"))
    } else {
        Err(String::from_utf8_lossy(&cat.stderr).into_owned())
    }
}

#[test]
fn the_passphrase_in_the_environment_is_kept_from_the_users_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let vu2f = if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        let copy = dir.path().join("vu2f");
        std::fs::copy(env!("CARGO_BIN_EXE_vu2f"), &copy).unwrap();
        copy
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_vu2f"))
    };
    let vu2f_on = |store: &str| {
        let mut command = as_the_user(&vu2f, dir.path());
        command.args(["--store", store]);
        command
    };
    let serving = |store: &str| {
        let mut command = vu2f_on(store);
        command
            .args(["--json", "serve", "--udp", "127.0.0.1:0", "--token", "t"])
            .env("VU2F_PASSPHRASE", "correct horse battery staple");
        common::Running::start(command, 1).0
    };
    for store in ["plain", "locked"] {
        let created = vu2f_on(store).args(["token", "create", "t"]).output();
        let created = created.unwrap();
        assert!(created.status.success(), "{created:?}");
    }
    let locked = vu2f_on("locked")
        .args(["store", "lock"])
        .env("VU2F_NEW_PASSPHRASE", "correct horse battery staple")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(locked.status.success(), "{locked:?}");

    let plain = serving("plain");
    let seen = environ_seen_by_the_user(plain.child.id(), dir.path())
        .expect("the user's processes read each other's environment, a plain store's too");
    assert!(seen.contains("VU2F_PASSPHRASE=correct horse"), "{seen}");

    let locked = serving("locked");
    let refused = environ_seen_by_the_user(locked.child.id(), dir.path())
        .expect_err("a process holding a locked store's passphrase is not readable");
    assert!(refused.contains("Permission denied"), "{refused}");
}
