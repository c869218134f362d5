//! AA's FIDO2:1 method end to end on loopback, in-process: the companion enrolls a fido2 token as
//! AA's portal does (PROTOCOLS.md 1.9) and logs on with it, alone and after a password, ES256 and
//! EdDSA, discoverable and not; and the emulator refuses what a WebAuthn relying party must
//! (WebAuthn Level 2 §7.1, §7.2), each with `FAILED` and its reason.
mod common;

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::aa::{assert_refused, quiet, token_over, Aa};
use vu2f::aa::api::{DoLogonRequest, LogonResponse, LogonStatus, StartLogonRequest};
use vu2f::aa::fido2::{
    CredentialAssertion, ExchangeResult, OptionsRequest, RequestOptions, LOGIN_EXCHANGE,
};
use vu2f::aa::{paths, FIDO2};
use vu2f::aa_sim::{AttestationPolicy, Requirement, SimConfig};
use vu2f::client::enroll::{EnrollRequest, Enrolled, DEFAULT_ENROLL_EVENT};
use vu2f::client::logon::{LoggedOn, Logon, LogonRequest};
use vu2f::client::webauthn::Request;
use vu2f::client::{ClientError, OriginPolicy, Step, TokenClient};
use vu2f::transport::InProcess;
use vu2f::u2f::{Presence, PresencePolicy};

/// A fido2 token of `store` in-process, with built-in UV when `uv` is given.
fn fido2_token(
    store: &keystore::Store,
    name: &str,
    uv: Option<PresencePolicy>,
    attestation: keystore::AttestationType,
) -> TokenClient {
    if store.info(name).is_err() {
        let options = keystore::TokenOptions {
            profile: keystore::Profile::Fido2,
            attestation,
            ..Default::default()
        };
        store.create_token(name, options).unwrap();
    }
    let u2f = vu2f::u2f::Authenticator::new(
        store.load(name).unwrap(),
        Presence::new(PresencePolicy::Auto),
    );
    token_over(Box::new(InProcess::ctap2(vu2f::ctap2::Authenticator::new(
        u2f, uv,
    ))))
}

fn batch_token(store: &keystore::Store, name: &str) -> TokenClient {
    fido2_token(store, name, None, keystore::AttestationType::Batch)
}

/// Collects the steps' lines.
fn recorder() -> (Arc<Mutex<Vec<String>>>, impl FnMut(&Step) + Send) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let lines = Arc::clone(&lines);
        move |step: &Step| lines.lock().unwrap().push(step.to_line())
    };
    (lines, sink)
}

async fn enroll(aa: &Aa, token: &mut TokenClient, user: &str) -> Result<Enrolled, ClientError> {
    enroll_recorded(aa, token, user, &mut quiet()).await
}

async fn enroll_recorded(
    aa: &Aa,
    token: &mut TokenClient,
    user: &str,
    steps: &mut (dyn FnMut(&Step) + Send),
) -> Result<Enrolled, ClientError> {
    vu2f::client::enroll::enroll_fido2(
        &aa.http,
        &aa.endpoint,
        token,
        &aa.policy,
        &EnrollRequest {
            user: user.into(),
            password: aa.password(user),
            event: DEFAULT_ENROLL_EVENT.into(),
            chain: None,
            category: String::new(),
            comment: "fido2 test".into(),
        },
        steps,
    )
    .await
}

async fn logon_at(
    aa: &Aa,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    user: &str,
    event: &str,
    password: Option<String>,
) -> Result<LoggedOn, ClientError> {
    Logon::new(&aa.http, &aa.endpoint, Some(token), policy, &mut quiet())
        .run(&LogonRequest {
            user: user.into(),
            event: event.into(),
            password,
            chain: None,
        })
        .await
}

async fn logon(aa: &Aa, token: &mut TokenClient, user: &str) -> Result<LoggedOn, ClientError> {
    logon_at(aa, token, &aa.policy, user, "FIDO2", None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn es256_enroll_then_log_on_with_the_counter_rising() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    let (lines, mut sink) = recorder();
    let enrolled = enroll_recorded(&aa, &mut token, "alice", &mut sink)
        .await
        .unwrap();
    let lines = lines.lock().unwrap().join("\n");
    assert!(lines.contains("token makeCredential"), "{lines}");
    assert!(lines.contains("ES256 credential"), "{lines}");
    assert!(lines.contains("do_enroll"), "{lines}");

    let first = logon(&aa, &mut token, "alice").await.unwrap();
    let second = logon(&aa, &mut token, "alice").await.unwrap();
    assert_eq!(first.completed_methods, [FIDO2]);
    assert_eq!(first.chain, "FIDO2 only");
    assert_eq!(second.counter, first.counter.map(|c| c + 1), "exactly +1");
    assert_eq!(
        first.response.extra["completed_template_id"],
        enrolled.template_id.as_str()
    );
    assert_ne!(first.login_session_id, second.login_session_id);

    // Enrolled once: the token refuses to register again (excludeCredentials).
    let again = enroll(&aa, &mut token, "alice").await.unwrap_err();
    assert!(again.to_string().contains("already enrolled"), "{again}");
    // A user without a FIDO2 template is refused.
    let none = logon(&aa, &mut token, "bob").await.unwrap_err();
    assert_refused(&none, "FIDO2_NOT_ENROLLED");
}

#[tokio::test(flavor = "multi_thread")]
async fn eddsa_credentials_enroll_and_log_on() {
    let mut config = SimConfig::default();
    config.fido2.algorithms = vec![vu2f::webauthn::EDDSA];
    let aa = Aa::start(config).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    let (lines, mut sink) = recorder();
    enroll_recorded(&aa, &mut token, "alice", &mut sink)
        .await
        .unwrap();
    let lines = lines.lock().unwrap().join("\n");
    assert!(lines.contains("EdDSA credential"), "{lines}");
    let first = logon(&aa, &mut token, "alice").await.unwrap();
    let second = logon(&aa, &mut token, "alice").await.unwrap();
    assert!(second.counter > first.counter);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_es256_only_server_refuses_an_eddsa_credential() {
    let mut config = SimConfig::default();
    config.fido2.algorithms = vec![vu2f::webauthn::ES256];
    let aa = Aa::start(config).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    // The token is asked for EdDSA alone, as a client ignoring the server's list would.
    let refused = enroll_with(&aa, &mut token, "alice", |creation| {
        creation.algorithms = vec![vu2f::webauthn::EDDSA];
    })
    .await
    .unwrap_err();
    assert_refused(&refused, "FIDO2_UNSUPPORTED_ALGORITHM");
}

#[tokio::test(flavor = "multi_thread")]
async fn discoverable_credentials_log_on_without_an_allow_list() {
    let mut config = SimConfig::default();
    config.fido2.resident_key = Requirement::Required;
    config.fido2.allow_credentials = false;
    config.fido2.algorithms = vec![vu2f::webauthn::EDDSA, vu2f::webauthn::ES256];
    let aa = Aa::start(config).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    enroll(&aa, &mut token, "alice").await.unwrap();
    assert_eq!(
        store.info("t").unwrap().discoverable,
        1,
        "the credential is kept on the token"
    );
    let logged_on = logon(&aa, &mut token, "alice").await.unwrap();
    assert_eq!(logged_on.completed_methods, [FIDO2]);

    // The token finds alice's credential for this RP with no list: bob cannot pass as alice.
    let (_bob_dir, bob_store) = common::store_with(&[]);
    let mut bobs = batch_token(&bob_store, "b");
    enroll(&aa, &mut bobs, "bob").await.unwrap();
    let refused = logon(&aa, &mut token, "bob").await.unwrap_err();
    assert_refused(&refused, "FIDO2_UNKNOWN_CREDENTIAL");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_then_fido2_chain_ends_in_ok() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    enroll(&aa, &mut token, "bob").await.unwrap();
    let password = Some(aa.password("bob"));
    let logged_on = logon_at(
        &aa,
        &mut token,
        &aa.policy,
        "bob",
        "Password and FIDO2",
        password,
    )
    .await
    .unwrap();
    assert_eq!(logged_on.completed_methods, ["PASSWORD:1", FIDO2]);
    assert_eq!(
        logged_on.response.completed_chain.unwrap().methods,
        ["PASSWORD:1", FIDO2]
    );
    let wrong = logon_at(
        &aa,
        &mut token,
        &aa.policy,
        "bob",
        "Password and FIDO2",
        Some("nope".into()),
    )
    .await
    .unwrap_err();
    assert_refused(&wrong, "PASSWORD_WRONG");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_verification_required_is_given_by_a_token_with_built_in_uv() {
    let mut config = SimConfig::default();
    config.fido2.user_verification = Requirement::Required;
    let aa = Aa::start(config).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = fido2_token(
        &store,
        "t",
        Some(PresencePolicy::Auto),
        keystore::AttestationType::Batch,
    );
    enroll(&aa, &mut token, "alice").await.unwrap();
    logon(&aa, &mut token, "alice").await.unwrap();
    let (_plain_dir, plain_store) = common::store_with(&[]);
    let mut without_uv = batch_token(&plain_store, "p");
    let refused = enroll(&aa, &mut without_uv, "bob").await.unwrap_err();
    assert!(
        refused.to_string().contains("requires user verification"),
        "{refused}"
    );
}

// The refusals.

/// An enrollment up to the attestation, not yet posted: the paths of its exchange and its
/// `do_enroll`, the `do_enroll` body, and the attestation the token made.
struct Attested {
    session: String,
    process: String,
    exchange: String,
    do_enroll: String,
    rp_id: vu2f::aa::portal::DoEnrollRequest<vu2f::aa::fido2::EnrollRpId>,
    attestation: vu2f::aa::fido2::CredentialAttestation,
}

/// Runs an enrollment up to the token's attestation for the creation the browser prepared,
/// changed by `tamper` first.
async fn attest(
    aa: &Aa,
    token: &mut TokenClient,
    user: &str,
    tamper: impl FnOnce(&mut vu2f::client::webauthn::Creation),
) -> Result<Attested, ClientError> {
    use vu2f::aa::fido2::{CreationOptions, EnrollRpId, ENROLL_EXCHANGE};
    use vu2f::aa::portal::{DoEnrollRequest, DoEnrollResponse, EnrollStarted, StartEnrollRequest};
    let logged_on = logon_at(
        aa,
        token,
        &aa.policy,
        user,
        DEFAULT_ENROLL_EVENT,
        Some(aa.password(user)),
    )
    .await
    .unwrap();
    let session = logged_on.login_session_id;
    let started: EnrollStarted = aa
        .http
        .post(
            paths::ENROLL,
            &StartEnrollRequest {
                method_id: FIDO2.into(),
                login_session_id: session.clone(),
            },
        )
        .await
        .unwrap();
    let process = started.enroll_process_id;
    let do_enroll = paths::fill(paths::DO_ENROLL, &[("enroll_process_id", &process)]);
    let rp_id = DoEnrollRequest {
        response: EnrollRpId {
            rp_id: "127.0.0.1".into(),
        },
        login_session_id: session.clone(),
    };
    let asked: DoEnrollResponse = aa.http.post(&do_enroll, &rp_id).await.unwrap();
    assert_eq!(asked.status, LogonStatus::MoreData, "{asked:?}");
    let exchange = paths::fill(
        ENROLL_EXCHANGE,
        &[("method_id", FIDO2), ("enroll_process_id", &process)],
    );
    let options: CreationOptions = aa
        .http
        .post(
            &exchange,
            &OptionsRequest {
                username: user.into(),
                display_name: user.into(),
            },
        )
        .await
        .unwrap();
    let origin = aa.http.origin();
    let mut creation =
        vu2f::client::webauthn::Creation::from_options(&options, &origin, "test").unwrap();
    tamper(&mut creation);
    let made = token.make_credential(&creation, &origin).await?;
    Ok(Attested {
        session,
        process,
        exchange,
        do_enroll,
        rp_id,
        attestation: made.attestation,
    })
}

/// Enrolls with the creation the browser prepared, changed by `tamper` first.
async fn enroll_with(
    aa: &Aa,
    token: &mut TokenClient,
    user: &str,
    tamper: impl FnOnce(&mut vu2f::client::webauthn::Creation),
) -> Result<(), ClientError> {
    let attested = attest(aa, token, user, tamper).await?;
    let result: ExchangeResult = aa
        .http
        .post(&attested.exchange, &attested.attestation)
        .await
        .unwrap();
    let answered = do_enroll_again(aa, &attested).await;
    if answered.status == LogonStatus::Failed {
        assert_eq!(result.status, "failed");
        assert!(
            result
                .error_message
                .starts_with(answered.reason.as_deref().unwrap()),
            "{result:?} {answered:?}"
        );
        return Err(ClientError::Refused {
            call: "do_enroll".into(),
            status: "FAILED".into(),
            reason: answered.reason,
            msgid: answered.msgid,
            msg: answered.msg,
        });
    }
    assert_eq!(result.status, "ok", "{result:?}");
    Ok(())
}

/// A FIDO2:1 logon process of `user` at "FIDO2", up to the request options.
async fn start(aa: &Aa, user: &str) -> (String, RequestOptions) {
    let started: LogonResponse = aa
        .http
        .post(
            paths::LOGON,
            &StartLogonRequest {
                method_id: FIDO2.into(),
                user_name: user.into(),
                event: "FIDO2".into(),
                endpoint_session_id: aa.endpoint.session_id().into(),
            },
        )
        .await
        .unwrap();
    let process = started.logon_process_id.unwrap();
    let gathered = do_logon(aa, &process).await;
    assert_eq!(gathered.status, LogonStatus::MoreData, "{gathered:?}");
    assert_eq!(gathered.reason.as_deref(), Some("FIDO2_WAITING_ASSERTION"));
    let options: RequestOptions = aa
        .http
        .post(
            &exchange_path(&process),
            &OptionsRequest {
                username: user.into(),
                display_name: user.into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(options.status, "ok", "{options:?}");
    (process, options)
}

fn exchange_path(process: &str) -> String {
    paths::fill(
        LOGIN_EXCHANGE,
        &[("method_id", FIDO2), ("logon_process_id", process)],
    )
}

async fn do_logon(aa: &Aa, process: &str) -> LogonResponse {
    aa.http
        .post(
            &paths::fill(paths::DO_LOGON, &[("logon_process_id", process)]),
            &DoLogonRequest {
                response: None,
                endpoint_session_id: aa.endpoint.session_id().into(),
            },
        )
        .await
        .unwrap()
}

/// The token's assertion for `options`, as a browser on the server's origin makes it.
async fn sign(aa: &Aa, token: &mut TokenClient, options: &RequestOptions) -> CredentialAssertion {
    sign_with(aa, token, options, |_| {}).await
}

async fn sign_with(
    aa: &Aa,
    token: &mut TokenClient,
    options: &RequestOptions,
    tamper: impl FnOnce(&mut Request),
) -> CredentialAssertion {
    let origin = aa.http.origin();
    let mut request = Request::from_options(options, &origin, "test").unwrap();
    tamper(&mut request);
    token
        .get_assertion(&request, &origin)
        .await
        .unwrap()
        .assertion
}

/// Posts `assertion` to `process`, then `do_logon`: the exchange's answer and the verdict.
async fn answer(
    aa: &Aa,
    process: &str,
    assertion: &CredentialAssertion,
) -> (ExchangeResult, LogonResponse) {
    let result: ExchangeResult = aa
        .http
        .post(&exchange_path(process), assertion)
        .await
        .unwrap();
    (result, do_logon(aa, process).await)
}

/// Asserts that the exchange said `failed` with `reason`, and `do_logon` `FAILED` with it.
fn assert_failed((result, verdict): &(ExchangeResult, LogonResponse), reason: &str) {
    assert_eq!(result.status, "failed", "{result:?}");
    assert!(
        result.error_message.starts_with(&format!("{reason}: ")),
        "{result:?}"
    );
    assert_eq!(verdict.status, LogonStatus::Failed, "{verdict:?}");
    assert_eq!(verdict.reason.as_deref(), Some(reason), "{verdict:?}");
}

async fn alice_enrolled(config: SimConfig) -> (Aa, tempfile::TempDir, TokenClient) {
    let aa = Aa::start(config).await;
    let (dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    enroll(&aa, &mut token, "alice").await.unwrap();
    (aa, dir, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untampered_assertion_passes_the_same_raw_path() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    let (process, options) = start(&aa, "alice").await;
    let assertion = sign(&aa, &mut token, &options).await;
    let (result, verdict) = answer(&aa, &process, &assertion).await;
    assert_eq!(result.status, "ok", "{result:?}");
    assert_eq!(verdict.status, LogonStatus::Ok, "{verdict:?}");
}

/// Alice, enrolled under `config`, answers her logon's options with her token's assertion
/// changed by `tamper` first: the exchange and `do_logon` refuse it with `reason`.
async fn tampered_assertion_refused(
    config: SimConfig,
    tamper: impl FnOnce(&mut CredentialAssertion),
    reason: &str,
) {
    let (aa, _dir, mut token) = alice_enrolled(config).await;
    let (process, options) = start(&aa, "alice").await;
    let mut assertion = sign(&aa, &mut token, &options).await;
    tamper(&mut assertion);
    assert_failed(&answer(&aa, &process, &assertion).await, reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_signature() {
    let flip = |assertion: &mut CredentialAssertion| {
        let mut signature = URL_SAFE_NO_PAD
            .decode(&assertion.response.signature)
            .unwrap();
        *signature.last_mut().unwrap() ^= 0x01;
        assertion.response.signature = URL_SAFE_NO_PAD.encode(signature);
    };
    tampered_assertion_refused(SimConfig::default(), flip, "FIDO2_BAD_SIGNATURE").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_eddsa_signature() {
    let mut config = SimConfig::default();
    config.fido2.algorithms = vec![vu2f::webauthn::EDDSA];
    let flip = |assertion: &mut CredentialAssertion| {
        let mut signature = URL_SAFE_NO_PAD
            .decode(&assertion.response.signature)
            .unwrap();
        assert_eq!(signature.len(), 64, "an Ed25519 signature");
        signature[10] ^= 0x01;
        assertion.response.signature = URL_SAFE_NO_PAD.encode(signature);
    };
    tampered_assertion_refused(config, flip, "FIDO2_BAD_SIGNATURE").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_origin() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    // Another site on the same host: the RP id still fits, the origin is not the server's.
    let elsewhere = OriginPolicy::new(
        aa.http.origin(),
        Vec::new(),
        Some("http://127.0.0.1:1".into()),
    );
    let refused = logon_at(&aa, &mut token, &elsewhere, "alice", "FIDO2", None)
        .await
        .unwrap_err();
    assert_refused(&refused, "FIDO2_ORIGIN_MISMATCH");
    // A site on another host gets no further than the browser's RP id check.
    let evil = OriginPolicy::new(
        aa.http.origin(),
        Vec::new(),
        Some("https://evil.example".into()),
    );
    let refused = logon_at(&aa, &mut token, &evil, "alice", "FIDO2", None)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ClientError::RpIdNotAllowed { .. }),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_rp_id() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    // A credential made for another RP id.
    let refused = enroll_with(&aa, &mut token, "alice", |creation| {
        creation.rp_id = "other.example".into();
    })
    .await
    .unwrap_err();
    assert_refused(&refused, "FIDO2_RP_ID_MISMATCH");

    // An assertion whose authenticator data names another RP.
    enroll(&aa, &mut token, "alice").await.unwrap();
    let (process, options) = start(&aa, "alice").await;
    let mut assertion = sign(&aa, &mut token, &options).await;
    let mut auth_data = URL_SAFE_NO_PAD
        .decode(&assertion.response.authenticator_data)
        .unwrap();
    auth_data[..32].copy_from_slice(&vu2f::webauthn::sha256(b"other.example"));
    assertion.response.authenticator_data = URL_SAFE_NO_PAD.encode(auth_data);
    assert_failed(
        &answer(&aa, &process, &assertion).await,
        "FIDO2_RP_ID_MISMATCH",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn user_verification_required_but_not_given() {
    let mut config = SimConfig::default();
    config.fido2.user_verification = Requirement::Required;
    let aa = Aa::start(config).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = fido2_token(
        &store,
        "t",
        Some(PresencePolicy::Auto),
        keystore::AttestationType::Batch,
    );
    let refused = enroll_with(&aa, &mut token, "alice", |creation| {
        creation.user_verification = "discouraged".into();
    })
    .await
    .unwrap_err();
    assert_refused(&refused, "FIDO2_USER_NOT_VERIFIED");

    enroll(&aa, &mut token, "alice").await.unwrap();
    let (process, options) = start(&aa, "alice").await;
    assert_eq!(options.user_verification.as_deref(), Some("required"));
    let assertion = sign_with(&aa, &mut token, &options, |request| {
        request.user_verification = "discouraged".into();
    })
    .await;
    assert_failed(
        &answer(&aa, &process, &assertion).await,
        "FIDO2_USER_NOT_VERIFIED",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_assertion() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    let (first, options) = start(&aa, "alice").await;
    let assertion = sign(&aa, &mut token, &options).await;
    let (result, verdict) = answer(&aa, &first, &assertion).await;
    assert_eq!(
        (result.status.as_str(), verdict.status),
        ("ok", LogonStatus::Ok)
    );

    let (second, _) = start(&aa, "alice").await;
    assert_failed(
        &answer(&aa, &second, &assertion).await,
        "FIDO2_CHALLENGE_REUSED",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_challenge_from_another_logon_process() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;
    let (_one, options_one) = start(&aa, "alice").await;
    let (other, _) = start(&aa, "alice").await;
    let assertion = sign(&aa, &mut token, &options_one).await;
    assert_failed(
        &answer(&aa, &other, &assertion).await,
        "FIDO2_CHALLENGE_MISMATCH",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counter_that_went_back_because_the_store_was_restored_from_an_older_copy() {
    let aa = Aa::start(SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("store");
    let backup = dir.path().join("backup");
    {
        let mut store = keystore::Store::open(&live).unwrap();
        store.set_counter_block(1);
        let mut token = batch_token(&store, "t");
        enroll(&aa, &mut token, "alice").await.unwrap();
    }
    copy_dir(&live, &backup);
    {
        let mut store = keystore::Store::open(&live).unwrap();
        store.set_counter_block(1);
        let mut token = batch_token(&store, "t");
        for _ in 0..3 {
            logon(&aa, &mut token, "alice").await.unwrap();
        }
    }
    let mut store = keystore::Store::open(&backup).unwrap();
    store.set_counter_block(1);
    let mut restored = batch_token(&store, "t");
    let refused = logon(&aa, &mut restored, "alice").await.unwrap_err();
    assert_refused(&refused, "FIDO2_COUNTER_NOT_INCREASED");
}

/// Copies a directory tree with its modes, as `cp -a` does (a store must stay private).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A configuration that takes only attestations chaining to the CA in `pem`.
fn trusting(pem: &str, dir: &std::path::Path) -> SimConfig {
    let path = dir.join("trusted-ca.pem");
    std::fs::write(&path, pem).unwrap();
    let mut config = SimConfig::default();
    config.fido2.attestation_policy = AttestationPolicy::Trusted;
    config.fido2.trusted_cas = vec![path];
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attestation_from_an_untrusted_ca_when_the_policy_requires_trust() {
    let (_dir, store) = common::store_with(&[]);
    let (other_dir, other_store) = common::store_with(&[]);
    let other_ca = other_store.attestation().ca_certificate_pem();

    // Trusting another store's CA: this store's batch certificate does not chain to it.
    let aa = Aa::start(trusting(&other_ca, other_dir.path())).await;
    let mut token = batch_token(&store, "t");
    let refused = enroll(&aa, &mut token, "alice").await.unwrap_err();
    assert_refused(&refused, "FIDO2_ATTESTATION_UNTRUSTED");
    // Self attestation has no chain at all.
    let mut selfish = fido2_token(
        &store,
        "s",
        None,
        keystore::AttestationType::SelfAttestation,
    );
    let refused = enroll(&aa, &mut selfish, "alice").await.unwrap_err();
    assert_refused(&refused, "FIDO2_ATTESTATION_UNTRUSTED");

    // Trusting this store's CA (`vu2f token export-ca`): the same token enrolls.
    let own_ca = store.attestation().ca_certificate_pem();
    let trusted = Aa::start(trusting(&own_ca, other_dir.path())).await;
    enroll(&trusted, &mut token, "alice").await.unwrap();
    logon(&trusted, &mut token, "alice").await.unwrap();

    // Without the policy, self attestation is taken.
    let any = Aa::start(SimConfig::default()).await;
    enroll(&any, &mut selfish, "bob").await.unwrap();
    logon(&any, &mut selfish, "bob").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_do_enroll_rp_id_must_be_the_servers() {
    use vu2f::aa::portal::{DoEnrollResponse, EnrollStarted, StartEnrollRequest};
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    let session = logon_at(
        &aa,
        &mut token,
        &aa.policy,
        "alice",
        DEFAULT_ENROLL_EVENT,
        Some(aa.password("alice")),
    )
    .await
    .unwrap()
    .login_session_id;
    let started: EnrollStarted = aa
        .http
        .post(
            paths::ENROLL,
            &StartEnrollRequest {
                method_id: FIDO2.into(),
                login_session_id: session.clone(),
            },
        )
        .await
        .unwrap();
    let answered: DoEnrollResponse = aa
        .http
        .post(
            &paths::fill(
                paths::DO_ENROLL,
                &[("enroll_process_id", &started.enroll_process_id)],
            ),
            // The camelCase spelling of the portal's code is taken too.
            &serde_json::json!({"login_session_id": session, "response": {"rpId": "evil.example"}}),
        )
        .await
        .unwrap();
    assert_eq!(answered.status, LogonStatus::Failed);
    assert_eq!(answered.reason.as_deref(), Some("FIDO2_RP_ID_MISMATCH"));
}

/// The `do_enroll` after the exchange's result.
async fn do_enroll_again(aa: &Aa, attested: &Attested) -> vu2f::aa::portal::DoEnrollResponse {
    aa.http
        .post(&attested.do_enroll, &attested.rp_id)
        .await
        .unwrap()
}

/// Posts `body` to `path` twice, one after the other: the two exchange results.
async fn twice_in_turn<B: serde::Serialize>(aa: &Aa, path: &str, body: &B) -> Vec<ExchangeResult> {
    let mut results = Vec::new();
    for _ in 0..2 {
        results.push(aa.http.post(path, body).await.unwrap());
    }
    results
}

/// Posts `body` to `path` from two tasks of the multi-threaded runtime at once (a barrier lets
/// neither start before the other is ready): the two exchange results.
async fn twice_at_once<B: serde::Serialize + Clone + Send + Sync + 'static>(
    aa: &Aa,
    path: &str,
    body: &B,
) -> [ExchangeResult; 2] {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (http, path, body) = (aa.http.clone(), path.to_owned(), body.clone());
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                http.post::<_, ExchangeResult>(&path, &body).await.unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results.try_into().unwrap()
}

/// Exactly one of `results` is `ok`; the other `failed` with `reason`.
fn one_ok_one_refused(results: &[ExchangeResult], reason: &str) {
    let ok = results.iter().filter(|r| r.status == "ok").count();
    assert_eq!(ok, 1, "{results:?}");
    let refused = results.iter().find(|r| r.status != "ok").unwrap();
    assert_eq!(refused.status, "failed", "{results:?}");
    assert!(
        refused.error_message.starts_with(&format!("{reason}: ")),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_attestation_is_accepted_once_in_turn_or_at_once() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");

    // In turn: the first result passes, the same one again is a replay, and the process goes on
    // as the first left it.
    let attested = attest(&aa, &mut token, "alice", |_| {}).await.unwrap();
    let results = twice_in_turn(&aa, &attested.exchange, &attested.attestation).await;
    assert_eq!(results[0].status, "ok", "{results:?}");
    one_ok_one_refused(&results, "FIDO2_CHALLENGE_REUSED");
    let confirmed = do_enroll_again(&aa, &attested).await;
    assert_eq!(confirmed.status, LogonStatus::Ok, "{confirmed:?}");

    // At once, many times over: exactly one of two racing results is checked.
    for round in 0..10 {
        let attested = attest(&aa, &mut token, "bob", |_| {}).await.unwrap();
        let results = twice_at_once(&aa, &attested.exchange, &attested.attestation).await;
        one_ok_one_refused(&results, "FIDO2_CHALLENGE_REUSED");
        let confirmed = do_enroll_again(&aa, &attested).await;
        assert_eq!(
            confirmed.status,
            LogonStatus::Ok,
            "round {round}: {confirmed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_assertion_is_accepted_once_in_turn_or_at_once() {
    let (aa, _dir, mut token) = alice_enrolled(SimConfig::default()).await;

    let (process, options) = start(&aa, "alice").await;
    let assertion = sign(&aa, &mut token, &options).await;
    let results = twice_in_turn(&aa, &exchange_path(&process), &assertion).await;
    assert_eq!(results[0].status, "ok", "{results:?}");
    one_ok_one_refused(&results, "FIDO2_CHALLENGE_REUSED");
    assert_eq!(do_logon(&aa, &process).await.status, LogonStatus::Ok);

    for _ in 0..10 {
        let (process, options) = start(&aa, "alice").await;
        let assertion = sign(&aa, &mut token, &options).await;
        let results = twice_at_once(&aa, &exchange_path(&process), &assertion).await;
        one_ok_one_refused(&results, "FIDO2_CHALLENGE_REUSED");
        let verdict = do_logon(&aa, &process).await;
        assert_eq!(verdict.status, LogonStatus::Ok, "{verdict:?}");
    }
}

/// Saves the enrollment's template as the portal does after the second `do_enroll`.
async fn save(
    aa: &Aa,
    attested: &Attested,
    user: &str,
) -> Result<vu2f::aa::portal::TemplateSaved, ClientError> {
    let found: serde_json::Value = aa
        .http
        .get(
            paths::USERS,
            &[("user_name", user), ("login_session_id", &attested.session)],
        )
        .await
        .unwrap();
    let user_id = found["id"].as_str().unwrap();
    aa.http
        .post(
            &paths::fill(paths::TEMPLATES, &[("user_id", user_id)]),
            &vu2f::aa::portal::SaveTemplateRequest {
                login_session_id: attested.session.clone(),
                enroll_process_id: attested.process.clone(),
                category_id: String::new(),
                comment: "saved by hand".into(),
            },
        )
        .await
}

/// Posts the enrollment's result, then the second `do_enroll`.
async fn post_attestation(
    aa: &Aa,
    attested: &Attested,
    attestation: &vu2f::aa::fido2::CredentialAttestation,
) -> (ExchangeResult, vu2f::aa::portal::DoEnrollResponse) {
    let result: ExchangeResult = aa.http.post(&attested.exchange, attestation).await.unwrap();
    (result, do_enroll_again(aa, attested).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_is_saved_only_after_the_second_do_enroll() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    let attested = attest(&aa, &mut token, "alice", |_| {}).await.unwrap();
    let result: ExchangeResult = aa
        .http
        .post(&attested.exchange, &attested.attestation)
        .await
        .unwrap();
    assert_eq!(result.status, "ok", "{result:?}");
    let early = save(&aa, &attested, "alice").await.unwrap_err();
    assert!(early.to_string().contains("HTTP 400"), "{early}");
    assert!(
        early
            .to_string()
            .contains("do_enroll after the WebAuthn exchange"),
        "{early}"
    );
    let confirmed = do_enroll_again(&aa, &attested).await;
    assert_eq!(confirmed.status, LogonStatus::Ok, "{confirmed:?}");
    save(&aa, &attested, "alice").await.unwrap();
    logon(&aa, &mut token, "alice").await.unwrap();
}

/// The byte string stored under the text key `key` of the CBOR map `object` (the map's
/// members as a portal's attestation object holds them: text keys, byte string values of up to
/// 65535 bytes), and where its bytes begin.
fn cbor_bytes_member(object: &[u8], key: &str) -> (usize, Vec<u8>) {
    let mut pattern = vec![0x60 | key.len() as u8];
    pattern.extend_from_slice(key.as_bytes());
    let at = object
        .windows(pattern.len())
        .position(|w| w == pattern)
        .unwrap()
        + pattern.len();
    let (length, start) = match object[at] {
        0x58 => (usize::from(object[at + 1]), at + 2),
        0x59 => (
            usize::from(u16::from_be_bytes([object[at + 1], object[at + 2]])),
            at + 3,
        ),
        short @ 0x40..=0x57 => (usize::from(short - 0x40), at + 1),
        other => panic!("{key}: not a byte string ({other:#x})"),
    };
    (start, object[start..start + length].to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_key_off_the_curve_is_refused_with_the_detail() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    let attested = attest(&aa, &mut token, "alice", |_| {}).await.unwrap();
    let mut attestation = attested.attestation.clone();
    let mut object = URL_SAFE_NO_PAD
        .decode(&attestation.response.attestation_object)
        .unwrap();
    let (start, auth_data) = cbor_bytes_member(&object, "authData");
    // The COSE key's y: -3 (0x22), 32 bytes (0x58 0x20).
    let y = auth_data
        .windows(3)
        .position(|w| w == [0x22, 0x58, 0x20])
        .unwrap()
        + 3;
    object[start + y + 31] ^= 0x01;
    attestation.response.attestation_object = URL_SAFE_NO_PAD.encode(object);
    let (result, answered) = post_attestation(&aa, &attested, &attestation).await;
    assert!(
        result
            .error_message
            .starts_with("FIDO2_BAD_PUBLIC_KEY: The credential public key is not a valid key: "),
        "{result:?}"
    );
    assert!(result.error_message.contains("not on P-256"), "{result:?}");
    assert_eq!(answered.status, LogonStatus::Failed, "{answered:?}");
    assert_eq!(answered.reason.as_deref(), Some("FIDO2_BAD_PUBLIC_KEY"));
    assert!(answered.msg.contains("not on P-256"), "{answered:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_enrolled_already_is_refused_by_the_server() {
    let aa = Aa::start(SimConfig::default()).await;
    let (_dir, store) = common::store_with(&[]);
    let mut token = batch_token(&store, "t");
    let alices = attest(&aa, &mut token, "alice", |_| {}).await.unwrap();
    let (result, confirmed) = post_attestation(&aa, &alices, &alices.attestation).await;
    assert_eq!(
        (result.status.as_str(), confirmed.status),
        ("ok", LogonStatus::Ok)
    );
    save(&aa, &alices, "alice").await.unwrap();

    // Bob's enrollment answered with alice's credential: her authenticator data under `none`
    // attestation, with the client data of bob's own challenge. The token would not do this
    // (excludeCredentials); the server must refuse it all the same (§7.1 step 22).
    let (_bob_dir, bob_store) = common::store_with(&[]);
    let mut bobs_token = batch_token(&bob_store, "b");
    let bobs = attest(&aa, &mut bobs_token, "bob", |_| {}).await.unwrap();
    let alice_object = URL_SAFE_NO_PAD
        .decode(&alices.attestation.response.attestation_object)
        .unwrap();
    let (_, auth_data) = cbor_bytes_member(&alice_object, "authData");
    let mut none = vec![0xA3, 0x63];
    none.extend_from_slice(b"fmt");
    none.push(0x64);
    none.extend_from_slice(b"none");
    none.push(0x67);
    none.extend_from_slice(b"attStmt");
    none.push(0xA0);
    none.push(0x68);
    none.extend_from_slice(b"authData");
    none.push(0x59);
    none.extend_from_slice(&(auth_data.len() as u16).to_be_bytes());
    none.extend_from_slice(&auth_data);
    let mut forged = bobs.attestation.clone();
    forged.raw_id = alices.attestation.raw_id.clone();
    forged.id = alices.attestation.id.clone();
    forged.response.attestation_object = URL_SAFE_NO_PAD.encode(none);
    let refused = post_attestation(&aa, &bobs, &forged).await;
    assert!(
        refused
            .0
            .error_message
            .starts_with("FIDO2_ALREADY_ENROLLED: "),
        "{refused:?}"
    );
    assert_eq!(refused.1.status, LogonStatus::Failed, "{refused:?}");
    assert_eq!(refused.1.reason.as_deref(), Some("FIDO2_ALREADY_ENROLLED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_handle_that_is_not_the_users() {
    // The signature does not cover the user handle: only the handle's own check refuses it.
    let another = |assertion: &mut CredentialAssertion| {
        assertion.response.user_handle = Some(URL_SAFE_NO_PAD.encode([0x5a; 16]));
    };
    tampered_assertion_refused(SimConfig::default(), another, "FIDO2_USER_HANDLE_MISMATCH").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_data_of_a_registration_in_an_assertion() {
    let swap = |assertion: &mut CredentialAssertion| {
        let client_data = URL_SAFE_NO_PAD
            .decode(&assertion.response.client_data_json)
            .unwrap();
        let swapped = String::from_utf8(client_data)
            .unwrap()
            .replace("\"webauthn.get\"", "\"webauthn.create\"");
        assert!(swapped.contains("webauthn.create"), "{swapped}");
        assertion.response.client_data_json = URL_SAFE_NO_PAD.encode(swapped);
    };
    tampered_assertion_refused(SimConfig::default(), swap, "FIDO2_WRONG_TYPE").await;
}
