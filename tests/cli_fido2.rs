//! AA's FIDO2:1 as separate processes, as a user runs them: `vu2f aa-sim` over HTTPS with the
//! certificate it generates, `vu2f enroll --method FIDO2:1` and `vu2f logon` (alone, and in the
//! password-then-FIDO2 chain), with the token in the companion's own process or served by
//! `vu2f serve --udp`; ES256 and EdDSA, discoverable and not, UV required and given.
mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, Sim};
use serde_json::{json, Value};
use vu2f::aa_sim::{Requirement, SimConfig};

/// Where the companion finds its token.
enum Token<'a> {
    /// `--token NAME` of the store, in the companion's process.
    InProcess(&'a str),
    /// `--udp ADDR`: a token that `vu2f serve --udp` serves.
    Udp(std::net::SocketAddr),
}

/// `vu2f --json VERB` against `sim` for `user`, its password in `$VU2F_PASSWORD`.
fn companion(store: &Path, sim: &Sim, verb: &str, user: &str, token: &Token) -> Command {
    let mut command = common::vu2f(store);
    command
        .arg("--json")
        .args(verb.split(' '))
        .args(["--server", &sim.url, "--user", user])
        .args(["--admin-user", "admin"])
        .env("VU2F_ADMIN_PASSWORD", "admin-password")
        .env("VU2F_PASSWORD", format!("{user}-password"));
    match token {
        Token::InProcess(name) => command.args(["--token", name]),
        Token::Udp(addr) => command.args(["--udp", &addr.to_string()]),
    };
    if let Some(certificate) = &sim.certificate {
        command.args(["--ca", certificate]);
    }
    command
}

fn run(command: &mut Command) -> Value {
    common::json_of(&command.output().unwrap())
}

/// The statuses of a report's steps, after the endpoint's own.
fn statuses(report: &Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            !s["request"]
                .as_str()
                .unwrap()
                .starts_with("POST /api/v1/endpoints")
        })
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect()
}

fn create_token(store: &Path, name: &str) {
    let created = common::vu2f(store)
        .args(["token", "create", name])
        .output()
        .unwrap();
    assert!(created.status.success());
}

/// An emulator over HTTPS with this FIDO2:1 policy.
fn sim_with(dir: &Path, edit: impl FnOnce(&mut SimConfig)) -> Sim {
    let mut config = SimConfig::default();
    edit(&mut config);
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let sim = Sim::configured(&dir.join("sim"), true, Some(&path));
    assert!(sim.url.starts_with("https://"), "{}", sim.url);
    sim
}

/// Enrolls `user` with FIDO2:1, logs on at the FIDO2 event and at the password-then-FIDO2 one,
/// and checks every step; returns the enrollment report and the two logons'.
fn enroll_and_log_on(
    store: &Path,
    sim: &Sim,
    user: &str,
    token: &Token,
    algorithm: &str,
    offered: usize,
) -> (Value, Value, Value) {
    let enrolled = run(companion(store, sim, "enroll", user, token).args(["--method", "FIDO2:1"]));
    assert_eq!(enrolled["template_id"].as_str().unwrap().len(), 32);
    let counter = |report: &Value| report["counter"].as_u64().unwrap();
    let made = statuses(&enrolled);
    assert_eq!(
        made[3..],
        [
            "enroll process started",
            "MORE_DATA",
            "creation options for 127.0.0.1",
            &format!("{algorithm} credential, counter 1"),
            "ok",
            "OK",
            &format!(
                "template {} saved",
                enrolled["template_id"].as_str().unwrap()
            ),
        ],
        "{enrolled}"
    );

    let alone = run(companion(store, sim, "logon", user, token).args(["--event", "FIDO2"]));
    assert_eq!(alone["chain"], "FIDO2 only");
    assert_eq!(alone["completed_methods"], json!(["FIDO2:1"]));
    assert_eq!(alone["login_session_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        statuses(&alone),
        [
            "chain \"FIDO2 only\" (FIDO2:1)",
            "MORE_DATA",
            "MORE_DATA",
            &format!("request options, {offered} credential(s) offered"),
            &format!("signed, counter {}", counter(&alone)),
            "ok",
            "OK",
        ],
        "{alone}"
    );

    let chained =
        run(companion(store, sim, "logon", user, token).args(["--event", "Password and FIDO2"]));
    assert_eq!(chained["chain"], "Password & FIDO2");
    assert_eq!(
        chained["completed_methods"],
        json!(["PASSWORD:1", "FIDO2:1"])
    );
    assert_eq!(
        statuses(&chained)[..4],
        [
            "chain \"Password & FIDO2\" (PASSWORD:1 → FIDO2:1)",
            "MORE_DATA",
            "NEXT",
            "MORE_DATA"
        ],
        "{chained}"
    );
    assert_eq!(
        counter(&chained),
        counter(&alone) + 1,
        "the counter rises by exactly one"
    );
    assert_ne!(chained["login_session_id"], alone["login_session_id"]);
    (enrolled, alone, chained)
}

/// ES256, not discoverable, the token in the companion's process: enrollment and both logons
/// over HTTPS, and the template is listed as FIDO2:1 with the RP id and the last counter.
#[test]
fn es256_enroll_and_log_on_over_https_as_processes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let sim = sim_with(dir.path(), |_| {});
    create_token(&store, "t");
    let token = Token::InProcess("t");
    let (enrolled, _, chained) = enroll_and_log_on(&store, &sim, "alice", &token, "ES256", 1);

    let listed = run(&mut companion(
        &store,
        &sim,
        "template list",
        "alice",
        &token,
    ));
    assert_eq!(
        listed["templates"],
        json!([{
            "id": enrolled["template_id"],
            "method_id": "FIDO2:1",
            "app_id": "127.0.0.1",
            "category_id": "",
            "comment": "vu2f virtual token",
            "counter": chained["counter"],
        }]),
        "the server keeps the credential's last counter: {listed}"
    );
}

/// EdDSA, discoverable (the server lists no credential; the token finds alice's by the RP), the
/// token served over UDP by another process: enrollment and both logons over HTTPS; the
/// credential is in the token's store once the server has gone.
#[test]
fn eddsa_discoverable_over_udp_and_https_as_processes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let sim = sim_with(dir.path(), |config| {
        config.fido2.algorithms = vec![vu2f::webauthn::EDDSA];
        config.fido2.resident_key = Requirement::Required;
        config.fido2.allow_credentials = false;
    });
    create_token(&store, "u");
    let mut server = Server::start(&store, &["u"], "auto");
    let token = Token::Udp(server.addr("u"));
    // The companion's store is another one: the served one belongs to `serve`.
    let companion_store = dir.path().join("companion");
    enroll_and_log_on(&companion_store, &sim, "bob", &token, "EdDSA", 0);
    server.kill();

    let shown = run(common::vu2f(&store).args(["--json", "token", "show", "u"]));
    assert_eq!(shown["discoverable"], 1, "{shown}");
}

/// ES256 over UDP with UV required by the server: a token served with `--uv auto` enrolls and
/// logs on; one served without built-in UV is refused by the companion in one line, as a
/// browser refuses it, before anything is sent to the token.
#[test]
fn uv_required_over_udp_needs_a_token_with_built_in_uv() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let sim = sim_with(dir.path(), |config| {
        config.fido2.user_verification = Requirement::Required;
    });
    let plain_store = dir.path().join("plain-store");
    create_token(&store, "uv");
    create_token(&plain_store, "plain");
    let with_uv = Server::start_with(&store, &["uv"], "auto", &[], &["--uv", "auto"]);
    let without = Server::start(&plain_store, &["plain"], "auto");
    let companion_store = dir.path().join("companion");
    enroll_and_log_on(
        &companion_store,
        &sim,
        "alice",
        &Token::Udp(with_uv.addr("uv")),
        "ES256",
        1,
    );

    let refused = companion(
        &companion_store,
        &sim,
        "enroll",
        "bob",
        &Token::Udp(without.addr("plain")),
    )
    .args(["--method", "FIDO2:1"])
    .output()
    .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("requires user verification and the token has none"),
        "{stderr}"
    );
}

/// A FIDO2:1 logon for a user enrolled with U2F:1 only, or with a U2F-only token: one line with
/// the server's reason or what the token lacks, exit 1.
#[test]
fn fido2_refusals_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let sim = sim_with(dir.path(), |_| {});
    create_token(&store, "t");
    let output = companion(&store, &sim, "logon", "alice", &Token::InProcess("t"))
        .args(["--event", "FIDO2"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("FIDO2_NOT_ENROLLED"), "{stderr}");

    let created = common::vu2f(&store)
        .args(["token", "create", "old", "--profile", "u2f"])
        .output()
        .unwrap();
    assert!(created.status.success());
    let output = companion(&store, &sim, "enroll", "bob", &Token::InProcess("old"))
        .args(["--method", "FIDO2:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("FIDO2:1 needs a fido2 token"), "{stderr}");
}
