//! `vu2f aa-sim`, `vu2f enroll` and `vu2f logon` as separate processes, as a user runs them:
//! plain HTTP and HTTPS with the generated certificate, secrets never printed, failures one line.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Sim;
use serde_json::Value;

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

fn companion(store: &Path, sim: &Sim, verb: &str, extra: &[&str]) -> Command {
    let mut command = common::vu2f(store);
    command
        .arg("--json")
        .args(verb.split(' '))
        .args(["--server", &sim.url, "--user", "alice"])
        .args(["--admin-user", "admin"])
        .env("VU2F_ADMIN_PASSWORD", "admin-password")
        .env("VU2F_PASSWORD", "alice-password")
        .args(extra);
    if let Some(certificate) = &sim.certificate {
        command.args(["--ca", certificate]);
    }
    command
}

fn enroll_and_log_on(tls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let sim = Sim::start(&dir.path().join("sim"), tls);
    assert!(sim
        .url
        .starts_with(if tls { "https://" } else { "http://" }));
    assert!(run(common::vu2f(&store).args(["token", "create", "t"]))
        .status
        .success());

    let enrolled = common::json_of(&run(&mut companion(
        &store,
        &sim,
        "enroll",
        &["--token", "t"],
    )));
    assert_eq!(enrolled["template_id"].as_str().unwrap().len(), 32);

    // VU2F_PASSWORD stays set, as a new user has it for enrollment: the client still takes the
    // event's first chain it can complete, "U2F only", instead of guessing PASSWORD:1 first.
    let logged_on = common::json_of(&run(&mut companion(
        &store,
        &sim,
        "logon",
        &["--token", "t", "--event", "Search Card"],
    )));
    assert_eq!(logged_on["login_session_id"].as_str().unwrap().len(), 32);
    assert_eq!(logged_on["chain"], "U2F only");
    assert_eq!(logged_on["completed_methods"], serde_json::json!(["U2F:1"]));
    assert_eq!(
        statuses(&logged_on)[1..],
        [
            "endpoint session opened",
            "chain \"U2F only\" (U2F:1)",
            "MORE_DATA",
            "MORE_DATA",
            "signed, counter 1",
            "OK"
        ]
    );

    let chained = common::json_of(&run(&mut companion(
        &store,
        &sim,
        "logon",
        &["--token", "t", "--event", "Password and U2F"],
    )));
    assert_eq!(chained["chain"], "Password & U2F");
    assert_eq!(
        chained["completed_methods"],
        serde_json::json!(["PASSWORD:1", "U2F:1"])
    );

    let tested = common::json_of(&run(&mut companion(
        &store,
        &sim,
        "template test",
        &["--token", "t"],
    )));
    assert_eq!(tested["template_id"], enrolled["template_id"]);
    let counter = tested["counter"].as_u64().unwrap();
    assert!(counter > chained["counter"].as_u64().unwrap(), "{tested}");
    assert!(
        statuses(&tested).ends_with(&["MORE_DATA", &format!("signed, counter {counter}"), "OK"]),
        "{tested}"
    );
}

fn statuses(report: &Value) -> Vec<&str> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect()
}

#[test]
fn enroll_and_log_on_over_http() {
    enroll_and_log_on(false);
}

#[test]
fn enroll_and_log_on_over_https_trusting_the_generated_certificate() {
    enroll_and_log_on(true);
}

#[test]
fn https_without_trust_fails_and_insecure_connects() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(run(common::vu2f(&store).args(["token", "create", "t"]))
        .status
        .success());
    let mut plain = Sim::start(&dir.path().join("sim"), true);
    plain.certificate = None;
    let untrusted = run(&mut companion(
        &store,
        &plain,
        "logon",
        &["--token", "t", "--event", "Search Card"],
    ));
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.contains("cannot reach the server") && stderr.contains("certificate"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let insecure = run(&mut companion(
        &store,
        &plain,
        "logon",
        &["--token", "t", "--event", "Search Card", "--insecure"],
    ));
    let stderr = String::from_utf8_lossy(&insecure.stderr);
    assert!(
        stderr.contains("U2F_NOT_ENROLLED"),
        "connected, and got to the U2F step: {stderr}"
    );
}

#[test]
fn a_kept_endpoint_is_reused_and_its_secret_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let sim = Sim::start(&dir.path().join("sim"), false);
    let endpoint_file = dir.path().join("endpoint.json");
    let endpoint_arg = endpoint_file.to_str().unwrap();
    assert!(run(common::vu2f(&store).args(["token", "create", "t"]))
        .status
        .success());
    let enrolled = run(&mut companion(
        &store,
        &sim,
        "enroll",
        &["--token", "t", "--endpoint-file", endpoint_arg],
    ));
    common::json_of(&enrolled);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&endpoint_file).unwrap()).unwrap();
    let secret = saved["secret"].as_str().unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&endpoint_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let mut logon = common::vu2f(&store);
    logon
        .args([
            "--json",
            "logon",
            "--server",
            &sim.url,
            "--user",
            "alice",
            "--event",
            "Search Card",
        ])
        .args(["--token", "t", "--endpoint-file", endpoint_arg]);
    let logged_on = run(&mut logon);
    common::json_of(&logged_on);
    for output in [&enrolled, &logged_on] {
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(secret), "the secret was printed: {text}");
            assert!(!text.contains("alice-password") && !text.contains("admin-password"));
        }
    }
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(&endpoint_file).unwrap()).unwrap();
    assert_eq!(
        again, saved,
        "the endpoint was reused, not registered again"
    );
}

#[test]
fn a_refused_logon_is_one_line_with_the_servers_reason_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let sim = Sim::start(&dir.path().join("sim"), false);
    assert!(run(common::vu2f(&store).args(["token", "create", "t"]))
        .status
        .success());
    let output = run(companion(
        &store,
        &sim,
        "logon",
        &["--token", "t", "--event", "Password and U2F"],
    )
    .env("VU2F_PASSWORD", "wrong"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "vu2f: error: POST /api/v1/logon/{logon_process_id}/do_logon: \
         FAILED PASSWORD_WRONG (AUCORE-2007): Wrong password"
    );
}

/// No chain of the event can be completed (a chain asked for needs a password, or the event
/// has none without TOTP): one line naming the chains and what stops each, exit 1.
#[test]
fn no_fitting_chain_is_one_line_naming_the_chains() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let config = dir.path().join("config.json");
    let mut sim_config = vu2f::aa_sim::SimConfig::default();
    sim_config.chains.push(vu2f::aa_sim::config::ChainConfig {
        name: "TOTP only".into(),
        methods: vec!["TOTP:1".into()],
    });
    sim_config.events.push(vu2f::aa_sim::config::EventConfig {
        name: "VPN".into(),
        chains: vec!["TOTP only".into(), "Password & U2F".into()],
        enroll: false,
    });
    std::fs::write(&config, serde_json::to_vec(&sim_config).unwrap()).unwrap();
    let sim = Sim::configured(&dir.path().join("sim"), true, Some(&config));
    assert!(run(common::vu2f(&store).args(["token", "create", "t"]))
        .status
        .success());
    let output = run(
        companion(&store, &sim, "logon", &["--token", "t", "--event", "VPN"])
            .env_remove("VU2F_PASSWORD"),
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "vu2f: error: no chain for alice at event \"VPN\" is one vu2f can complete: \
         \"TOTP only\" (TOTP:1): TOTP:1 is not a method vu2f answers; \
         \"Password & U2F\" (PASSWORD:1 → U2F:1): PASSWORD:1 needs the password \
         (--password-file or VU2F_PASSWORD)"
    );
    let output = run(&mut companion(
        &store,
        &sim,
        "logon",
        &[
            "--token",
            "t",
            "--event",
            "Search Card",
            "--chain",
            "Password only",
        ],
    ));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "vu2f: error: no chain \"Password only\" for alice at event \"Search Card\"; \
         the server lists: \"U2F only\" (U2F:1), \"Password & U2F\" (PASSWORD:1 → U2F:1)"
    );
}

#[test]
fn a_config_file_with_a_typo_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"userz": []}"#).unwrap();
    let output = run(Command::new(env!("CARGO_BIN_EXE_vu2f"))
        .args(["aa-sim", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("sim")));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown field `userz`"), "{stderr}");

    let printed = run(Command::new(env!("CARGO_BIN_EXE_vu2f")).args(["aa-sim", "--print-config"]));
    let default: vu2f::aa_sim::SimConfig = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(default, vu2f::aa_sim::SimConfig::default());
}
