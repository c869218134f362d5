//! `vu2f load` against the embedded emulator: every logon counted and timed by step; the open
//! model keeps its offered rate when the server is slow (latency grows instead: no coordinated
//! omission), where the closed model slows down with it; the HTML report has its charts.
mod common;

use std::time::Duration;

use vu2f::aa_sim::config::UserConfig;
use vu2f::aa_sim::SimConfig;
use vu2f::client::TlsTrust;
use vu2f::load::{self, Fido2Users, LoadOptions, LoadReport, Model, Target, Until};

fn options(tokens: usize, model: Model, until: Until, server_delay: Duration) -> LoadOptions {
    LoadOptions {
        target: Target::Embedded { server_delay },
        tokens,
        prefix: "t-".into(),
        enroll: true,
        event: "Search Card".into(),
        chain: None,
        fido2: Fido2Users::default(),
        model,
        until,
        ramp_up: Duration::ZERO,
        progress: false,
        timeout: Duration::from_secs(20),
    }
}

async fn run(options: LoadOptions) -> LoadReport {
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    load::run(&store, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_logon_is_counted_and_timed_by_step() {
    let report = run(options(
        20,
        Model::Concurrency(8),
        Until::Logons(300),
        Duration::ZERO,
    ))
    .await;
    assert_eq!(
        (report.started, report.completed, report.failed),
        (300, 300, 0)
    );
    assert!(
        report.summary.errors.is_empty(),
        "{:?}",
        report.summary.errors
    );
    for step in ["chains", "start", "gather", "sign", "answer"] {
        assert_eq!(report.summary.steps[step].count, 300, "{step}");
    }
    assert_eq!(report.summary.steps["endpoint session"].count, 20);
    let logon = &report.summary.logon;
    assert!(logon.p50_us <= logon.p99_us && logon.p99_us <= logon.max_us);
    let in_timeline: u64 = report.summary.timeline.iter().map(|s| s.completed).sum();
    assert_eq!(in_timeline, 300);
    let bucketed: u64 = report.latency_buckets.iter().map(|b| b.1).sum();
    assert_eq!(bucketed, 300);

    let html = report.to_html();
    assert_eq!(html.matches("<svg").count(), 3, "three charts");
    assert!(
        html.contains("<polyline") || html.contains("<path"),
        "lines are drawn"
    );
}

/// Half the users on FIDO2:1 and half on U2F:1, against the embedded emulator: every user
/// enrolled with its method, every logon completed, each method's logons counted and timed, and
/// the FIDO2:1 steps (the login exchange's options and result) recorded for FIDO2:1 logons only.
#[tokio::test(flavor = "multi_thread")]
async fn a_mixed_population_logs_on_with_both_methods() {
    let report = run(LoadOptions {
        fido2: Fido2Users {
            share: 0.5,
            ..Fido2Users::default()
        },
        ..options(
            10,
            Model::Concurrency(4),
            Until::Logons(120),
            Duration::ZERO,
        )
    })
    .await;
    assert_eq!(
        (report.started, report.completed, report.failed),
        (120, 120, 0),
        "{:?}",
        report.summary.errors
    );
    let users: Vec<(&str, usize)> = report
        .users_by_method
        .iter()
        .map(|(m, n)| (m.as_str(), *n))
        .collect();
    assert_eq!(users, [("FIDO2:1", 5), ("U2F:1", 5)]);
    let fido2 = &report.summary.methods["FIDO2:1"];
    let u2f = &report.summary.methods["U2F:1"];
    // Users take turns (the longest idle goes next): each method gets about half the logons.
    assert!(
        fido2.completed >= 40 && u2f.completed >= 40,
        "both methods were used, each about half the time: {fido2:?} {u2f:?}"
    );
    assert_eq!(fido2.completed + u2f.completed, 120);
    assert_eq!(fido2.logon.count, fido2.completed);
    assert_eq!((fido2.failed, u2f.failed), (0, 0));
    for step in ["chains", "start", "gather", "sign", "answer"] {
        assert_eq!(report.summary.steps[step].count, 120, "{step}");
    }
    for step in ["options", "result"] {
        assert_eq!(
            report.summary.steps[step].count, fido2.completed,
            "{step}: FIDO2:1 logons only"
        );
    }
    let text = report.to_text();
    assert!(
        text.contains("10 tokens (5 on FIDO2:1, 5 on U2F:1)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "by method: FIDO2:1 {} logons, 0 failed; U2F:1 {} logons, 0 failed",
            fido2.completed, u2f.completed
        )),
        "{text}"
    );
    assert!(text.contains("\nlogon FIDO2:1 "), "{text}");
    assert!(report.to_html().contains("<td>logon U2F:1</td>"));

    // Every user on FIDO2:1: no U2F:1 logon at all.
    let all = run(LoadOptions {
        fido2: Fido2Users::all(),
        ..options(4, Model::Concurrency(2), Until::Logons(20), Duration::ZERO)
    })
    .await;
    assert_eq!(
        (all.completed, all.failed),
        (20, 0),
        "{:?}",
        all.summary.errors
    );
    let methods: Vec<&String> = all.summary.methods.keys().collect();
    assert_eq!(methods, ["FIDO2:1"]);
}

/// The server answers every call 100 ms late. The open model still starts 60 logons a second
/// and each takes at least 300 ms from when it was meant to start (four calls: chains, start,
/// gather, answer); the closed model with 2 in flight can only manage about 2 / 0.4 s.
#[tokio::test(flavor = "multi_thread")]
async fn the_open_model_holds_its_rate_against_a_slow_server() {
    let slow = Duration::from_millis(100);
    let open = run(options(
        80,
        Model::Rate(60.0),
        Until::Duration(Duration::from_secs(3)),
        slow,
    ))
    .await;
    assert_eq!(open.failed, 0, "{:?}", open.summary.errors);
    assert!(
        (170..=181).contains(&open.started),
        "60/s for 3 s starts 180 logons, started {}",
        open.started
    );
    assert_eq!(open.completed, open.started);
    assert!(
        open.summary.logon.p50_us >= 300_000,
        "{:?}",
        open.summary.logon
    );

    let closed = run(options(
        80,
        Model::Concurrency(2),
        Until::Duration(Duration::from_secs(3)),
        slow,
    ))
    .await;
    assert!(
        closed.logons_per_s < 10.0,
        "the closed model is held back by the server: {:.1}/s",
        closed.logons_per_s
    );
    assert!(open.logons_per_s > 4.0 * closed.logons_per_s);
}

/// Endpoint sessions that expire during a run (AA's 433, here after at most 2 s): the load tester
/// opens a new one for the user, as AA's portal does, and the run goes on; an expiry costs that
/// user one failed logon, counted by its status and msgid.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_endpoint_session_is_opened_again() {
    let mut config = SimConfig {
        endpoint_session_ttl_secs: 2,
        ..SimConfig::default()
    };
    config.users.extend((1..=4).map(|n| UserConfig {
        name: format!("t-{n:05}"),
        password: "pw".into(),
        admin: false,
    }));
    let aa = common::aa::Aa::start(config.clone()).await;
    let options = LoadOptions {
        target: Target::Server {
            url: aa.sim.url.clone(),
            trust: TlsTrust::System,
            access: common::aa::admin_access(&config, None),
            app_ids: Vec::new(),
            password: Some("pw".into()),
        },
        ..options(
            4,
            Model::Concurrency(4),
            Until::Duration(Duration::from_secs(6)),
            Duration::ZERO,
        )
    };
    let report = run(options).await;
    let kinds: Vec<&String> = report.summary.errors.keys().collect();
    assert_eq!(
        kinds,
        ["HTTP 433 AUCORE-1063"],
        "{:?}",
        report.summary.errors
    );
    let late: u64 = report.summary.timeline[4..6]
        .iter()
        .map(|s| s.completed)
        .sum();
    assert!(
        late > 0,
        "logons still complete after the first sessions expired: {:?}",
        report.summary.timeline
    );
}

/// `vu2f load` as a process: a mixed population in `--json`, and bad method options refused in
/// one line naming the option.
#[test]
fn the_cli_runs_a_mixed_population_and_refuses_bad_method_options() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let stdout = common::succeeded(
        common::vu2f(&store)
            .args(["--json", "load", "--tokens", "4", "--fido2-share", "0.5"])
            .args(["--logons", "20", "--concurrency", "2"]),
    );
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(
        report["users_by_method"],
        serde_json::json!({"FIDO2:1": 2, "U2F:1": 2})
    );
    for method in ["FIDO2:1", "U2F:1"] {
        let counted = &report["summary"]["methods"][method];
        assert!(counted["completed"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(counted["failed"], 0, "{report}");
    }

    for (args, expected) in [
        (
            &["--fido2-share", "1.5"][..],
            "vu2f: error: --fido2-share 1.5: must be from 0 to 1",
        ),
        (
            &["--method", "TOTP:1"][..],
            "vu2f: error: --method TOTP:1: vu2f load runs U2F:1 and FIDO2:1",
        ),
    ] {
        let output = common::vu2f(&store)
            .arg("load")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&output.stderr).trim_end(), expected);
    }
}
