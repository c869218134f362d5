//! The companion, the emulator and a token, end to end on loopback: enrollment, U2F logon, the
//! two-method chain, in-process and with the token in a `vu2f serve --udp` process.
mod common;

use common::aa::{admin_access, assert_refused, token_over, Aa};
use vu2f::aa_sim::SimConfig;
use vu2f::transport::UdpTransport;

#[tokio::test(flavor = "multi_thread")]
async fn enroll_then_log_on_in_process_with_the_counter_rising() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    let enrolled = aa.enroll(&mut token, "alice").await.unwrap();
    assert_eq!(enrolled.template_id.len(), 32);

    let first = aa.logon(&mut token, "alice").await.unwrap();
    let second = aa.logon(&mut token, "alice").await.unwrap();
    assert_eq!(first.login_session_id.len(), 32);
    assert_ne!(first.login_session_id, second.login_session_id);
    assert_eq!(first.completed_methods, ["U2F:1"]);
    assert_eq!(second.counter, first.counter.map(|c| c + 1), "exactly +1");
    assert_eq!(
        first.response.extra["completed_template_id"],
        enrolled.template_id.as_str()
    );
    assert_eq!(first.user_id.as_deref(), Some(enrolled.user_id.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_then_u2f_chain_ends_in_ok() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    aa.enroll(&mut token, "bob").await.unwrap();
    let logged_on = aa
        .logon_with(
            &mut token,
            &aa.policy,
            "bob",
            "Password and U2F",
            Some(aa.password("bob")),
        )
        .await
        .unwrap();
    assert_eq!(logged_on.completed_methods, ["PASSWORD:1", "U2F:1"]);
    let chain = logged_on.response.completed_chain.unwrap();
    assert_eq!(chain.methods, ["PASSWORD:1", "U2F:1"]);

    let wrong = aa
        .logon_with(
            &mut token,
            &aa.policy,
            "bob",
            "Password and U2F",
            Some("not-the-password".into()),
        )
        .await
        .unwrap_err();
    assert_refused(&wrong, "PASSWORD_WRONG");
    assert!(
        wrong
            .to_string()
            .ends_with("/do_logon: FAILED PASSWORD_WRONG (AUCORE-2007): Wrong password"),
        "{wrong}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_enrolled_once_and_a_user_without_one_cannot_use_u2f() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    aa.enroll(&mut token, "alice").await.unwrap();
    let again = aa.enroll(&mut token, "alice").await.unwrap_err();
    assert!(again.to_string().contains("already enrolled"), "{again}");

    let none = aa.logon(&mut token, "bob").await.unwrap_err();
    assert_refused(&none, "U2F_NOT_ENROLLED");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tokens_of_one_user_each_log_on_with_their_own_handle() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut first = Aa::token(&store, "first");
    let mut second = Aa::token(&store, "second");
    aa.enroll(&mut first, "alice").await.unwrap();
    let same_category = aa.enroll(&mut second, "alice").await.unwrap_err();
    assert!(
        same_category.to_string().ends_with(
            "/templates: HTTP 409: AUCORE-3047 METHOD_ALREADY_ENROLLED: \
             The method is already enrolled in this category"
        ),
        "{same_category}"
    );
    aa.enroll_in(&mut second, "alice", "backup").await.unwrap();
    let a = aa.logon(&mut first, "alice").await.unwrap();
    let b = aa.logon(&mut second, "alice").await.unwrap();
    assert_ne!(
        a.response.extra["completed_template_id"], b.response.extra["completed_template_id"],
        "the server offered both handles and each token signed only its own"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn enroll_and_log_on_with_the_token_in_a_serve_process_over_udp() {
    let aa = Aa::start(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    drop(
        keystore::Store::open(&store_dir)
            .unwrap()
            .create_token("udp", keystore::TokenOptions::default())
            .unwrap(),
    );
    let server = common::Server::start(&store_dir, &["udp"], "auto");
    let mut token = token_over(Box::new(UdpTransport::connect(server.addrs[0].1).unwrap()));
    aa.enroll(&mut token, "alice").await.unwrap();
    // With the password at hand, "Search Card" still goes through its first chain that the
    // client completes, "U2F only"; "Password and U2F" through its two methods.
    let password = Some(aa.password("alice"));
    let logged_on = aa
        .logon_with(
            &mut token,
            &aa.policy,
            "alice",
            "Search Card",
            password.clone(),
        )
        .await
        .unwrap();
    assert_eq!(logged_on.chain, "U2F only");
    assert_eq!(logged_on.completed_methods, ["U2F:1"]);
    assert!(logged_on.counter.unwrap() >= 1);
    let chained = aa
        .logon_with(
            &mut token,
            &aa.policy,
            "alice",
            "Password and U2F",
            password.clone(),
        )
        .await
        .unwrap();
    assert_eq!(chained.completed_methods, ["PASSWORD:1", "U2F:1"]);
    let tested = vu2f::client::template::test(
        &aa.http,
        &aa.endpoint,
        &mut token,
        &aa.policy,
        &vu2f::client::logon::LogonRequest {
            user: "alice".into(),
            event: vu2f::client::enroll::DEFAULT_ENROLL_EVENT.into(),
            password,
            chain: None,
        },
        None,
        &mut common::aa::quiet(),
    )
    .await
    .unwrap();
    assert!(tested.counter > chained.counter.unwrap());
}

/// Endpoints, templates and counters live in the emulator's sled database: a restarted emulator
/// still knows the endpoint and the token, and still counts from where it was.
#[tokio::test(flavor = "multi_thread")]
async fn the_emulators_state_survives_a_restart() {
    use vu2f::aa_sim::{self, SimOptions};
    use vu2f::client::endpoint::read_credentials;
    use vu2f::client::EndpointAccess;

    let dir = tempfile::tempdir().unwrap();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let options = SimOptions {
        listen: probe.local_addr().unwrap(),
        data_dir: dir.path().join("aa-sim"),
        tls: false,
        config: SimConfig::default(),
    };
    drop(probe);
    let keep = dir.path().join("endpoint.json");
    let (_store_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");

    let sim = aa_sim::start(options.clone()).await.unwrap();
    let access = admin_access(&options.config, Some(keep.clone()));
    let aa = Aa::attach(sim, SimConfig::default(), dir, &access).await;
    aa.enroll(&mut token, "alice").await.unwrap();
    let before = aa.logon(&mut token, "alice").await.unwrap();
    let Aa { sim, dir, .. } = aa;
    sim.stop().await.unwrap();

    let sim = aa_sim::start(options).await.unwrap();
    let access = EndpointAccess::Given(read_credentials(&keep).unwrap());
    let aa = Aa::attach(sim, SimConfig::default(), dir, &access).await;
    let after = aa.logon(&mut token, "alice").await.unwrap();
    assert_eq!(after.counter, before.counter.map(|c| c + 1));
    assert_eq!(
        after.response.extra["completed_template_id"],
        before.response.extra["completed_template_id"]
    );
}

/// Users, chains and events come from the configuration.
#[tokio::test(flavor = "multi_thread")]
async fn a_configured_user_and_event() {
    let mut config: SimConfig = serde_json::from_value(serde_json::json!({
        "users": [
            {"name": "root", "password": "r", "admin": true},
            {"name": "carol", "password": "c"}
        ],
        "chains": [{"name": "Key", "methods": ["U2F:1"]}, {"name": "Pw", "methods": ["PASSWORD:1"]}],
        "events": [
            {"name": "Authenticators Management", "chains": ["Pw"], "enroll": true},
            {"name": "VPN", "chains": ["Key"]}
        ]
    }))
    .unwrap();
    config.challenge_ttl_ms = 5_000;
    let aa = Aa::start(config).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = Aa::token(&store, "t");
    aa.enroll(&mut token, "carol").await.unwrap();
    let logged_on = aa
        .logon_with(&mut token, &aa.policy, "LOCAL\\carol", "VPN", None)
        .await
        .unwrap();
    assert_eq!(logged_on.response.completed_chain.unwrap().name, "Key");
    let unknown = aa
        .logon_with(&mut token, &aa.policy, "alice", "VPN", None)
        .await
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "GET /api/v1/logon/chains: HTTP 400: AUCORE-1056 USER_NOT_FOUND: User is not found"
    );
}
