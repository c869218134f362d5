//! The AA emulator on a loopback port with an endpoint session open, tokens of a temporary store,
//! and the raw calls that the refusal tests need to tamper between the steps of a logon.
use std::time::Duration;

use vu2f::aa::api::{
    DoLogonRequest, LogonResponse, MethodResponse, SignResponse, StartLogonRequest,
};
use vu2f::aa::paths;
use vu2f::aa_sim::{self, RunningSim, SimConfig, SimOptions};
use vu2f::client::enroll::{EnrollRequest, Enrolled, DEFAULT_ENROLL_EVENT};
use vu2f::client::logon::{LoggedOn, Logon, LogonRequest, PASSWORD, U2F};
use vu2f::client::{
    AaHttp, ClientError, Endpoint, EndpointAccess, OriginPolicy, Step, TlsTrust, TokenClient,
};
use vu2f::transport::{InProcess, TokenTransport};
use vu2f::u2f::{Authenticator, Presence, PresencePolicy};

/// Discards steps.
pub fn quiet() -> impl FnMut(&Step) + Send {
    |_: &Step| {}
}

/// A token client over any transport.
pub fn token_over(transport: Box<dyn TokenTransport + Send>) -> TokenClient {
    TokenClient::new(transport, Duration::from_secs(5))
}

/// A client of an emulator at a URL, with an endpoint session open: the calls of a logon and an
/// enrollment, whole or step by step.
pub struct AaClient {
    pub config: SimConfig,
    pub http: AaHttp,
    pub endpoint: Endpoint,
    pub policy: OriginPolicy,
}

/// An emulator running in this process, and a client connected to it.
pub struct Aa {
    pub sim: RunningSim,
    pub client: AaClient,
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for Aa {
    type Target = AaClient;

    fn deref(&self) -> &AaClient {
        &self.client
    }
}

/// Asserts that `error` is the server's `FAILED` with `reason`.
pub fn assert_refused(error: &ClientError, reason: &str) {
    assert!(
        matches!(error, ClientError::Refused { reason: Some(r), .. } if r == reason),
        "expected FAILED {reason}, got: {error}"
    );
}

/// Asserts that `text` is an AA error body as AA's portal shows one (PROTOCOLS.md 1.9):
/// exactly `status`, `errors` and `reason` at the top; each item exactly `location`, `name`
/// (`AuError`), `msgid` and `description`, all strings; the first item's msgid `msgid`.
pub fn assert_aa_error_body(text: &str, msgid: &str, case: &str) {
    let body: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {text}"));
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&body),
        ["errors", "reason", "status"],
        "{case}: {text}"
    );
    assert_eq!(body["status"], "error", "{case}: {text}");
    assert!(body["reason"].is_string(), "{case}: {text}");
    let items = body["errors"].as_array().unwrap();
    assert!(!items.is_empty(), "{case}: {text}");
    for item in items {
        assert_eq!(
            keys(item),
            ["description", "location", "msgid", "name"],
            "{case}: {text}"
        );
        assert_eq!(item["name"], "AuError", "{case}: {text}");
        for key in ["description", "location", "msgid"] {
            assert!(item[key].is_string(), "{case}: {key}: {text}");
        }
    }
    assert_eq!(items[0]["msgid"], msgid, "{case}: {text}");
}

/// The configuration's administrator, as endpoint access (kept in `keep`, if given).
pub fn admin_access(config: &SimConfig, keep: Option<std::path::PathBuf>) -> EndpointAccess {
    let admin = config.users.iter().find(|u| u.admin).unwrap();
    EndpointAccess::Admin {
        auth: vu2f::aa::api::AuthData {
            method_id: PASSWORD.into(),
            user_name: admin.name.clone(),
            password: admin.password.clone(),
        },
        keep,
    }
}

impl Aa {
    /// An emulator on a free loopback port, with its data in a new temporary directory.
    pub async fn start(config: SimConfig) -> Aa {
        let dir = tempfile::tempdir().unwrap();
        let options = SimOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("aa-sim"),
            tls: false,
            config: config.clone(),
        };
        let access = admin_access(&config, None);
        Aa::attach(aa_sim::start(options).await.unwrap(), config, dir, &access).await
    }

    /// A client of a running emulator, with an endpoint session open.
    pub async fn attach(
        sim: RunningSim,
        config: SimConfig,
        dir: tempfile::TempDir,
        access: &EndpointAccess,
    ) -> Aa {
        let client = AaClient::connect(&sim.url, config, access).await;
        Aa { sim, client, dir }
    }

    /// An in-process token of `store`.
    pub fn token(store: &keystore::Store, name: &str) -> TokenClient {
        if store.info(name).is_err() {
            store
                .create_token(name, keystore::TokenOptions::default())
                .unwrap();
        }
        token_over(Box::new(InProcess::new(Authenticator::new(
            store.load(name).unwrap(),
            Presence::new(PresencePolicy::Auto),
        ))))
    }
}

impl AaClient {
    /// Opens an endpoint session with the emulator at `url`.
    pub async fn connect(url: &str, config: SimConfig, access: &EndpointAccess) -> AaClient {
        let http = AaHttp::new(url, &TlsTrust::System, Duration::from_secs(10)).unwrap();
        let endpoint = Endpoint::open(&http, access, &mut quiet()).await.unwrap();
        let policy = OriginPolicy::new(http.origin(), Vec::new(), None);
        AaClient {
            config,
            http,
            endpoint,
            policy,
        }
    }

    pub fn password(&self, user: &str) -> String {
        self.config.user(user).unwrap().password.clone()
    }

    pub async fn enroll(
        &self,
        token: &mut TokenClient,
        user: &str,
    ) -> Result<Enrolled, ClientError> {
        self.enroll_in(token, user, "").await
    }

    /// Enrolls `token` for `user` with its template in `category`.
    pub async fn enroll_in(
        &self,
        token: &mut TokenClient,
        user: &str,
        category: &str,
    ) -> Result<Enrolled, ClientError> {
        self.enroll_method(token, user, category, U2F).await
    }

    /// Enrolls `token` for `user` with `method` (`U2F:1` or `FIDO2:1`), in `category`.
    pub async fn enroll_method(
        &self,
        token: &mut TokenClient,
        user: &str,
        category: &str,
        method: &str,
    ) -> Result<Enrolled, ClientError> {
        vu2f::client::enroll::enroll_method(
            &self.http,
            &self.endpoint,
            token,
            &self.policy,
            &EnrollRequest {
                user: user.into(),
                password: self.password(user),
                event: DEFAULT_ENROLL_EVENT.into(),
                chain: None,
                category: category.into(),
                comment: "test".into(),
            },
            method,
            &mut quiet(),
        )
        .await
    }

    pub async fn logon_with(
        &self,
        token: &mut TokenClient,
        policy: &OriginPolicy,
        user: &str,
        event: &str,
        password: Option<String>,
    ) -> Result<LoggedOn, ClientError> {
        Logon::new(
            &self.http,
            &self.endpoint,
            Some(token),
            policy,
            &mut quiet(),
        )
        .run(&LogonRequest {
            user: user.into(),
            event: event.into(),
            password,
            chain: None,
        })
        .await
    }

    pub async fn logon(
        &self,
        token: &mut TokenClient,
        user: &str,
    ) -> Result<LoggedOn, ClientError> {
        self.logon_with(token, &self.policy, user, "Search Card", None)
            .await
    }

    /// `POST /logon` with `U2F:1`; the process id.
    pub async fn start_u2f(&self, user: &str) -> String {
        let started: LogonResponse = self
            .http
            .post(
                paths::LOGON,
                &StartLogonRequest {
                    method_id: U2F.into(),
                    user_name: user.into(),
                    event: "Search Card".into(),
                    endpoint_session_id: self.endpoint.session_id().into(),
                },
            )
            .await
            .unwrap();
        started.logon_process_id.unwrap()
    }

    /// The first U2F round: the sign requests.
    pub async fn gather(&self, process: &str) -> LogonResponse {
        self.do_logon(process, None).await
    }

    /// The second U2F round, whatever the answer.
    pub async fn answer(&self, process: &str, sign_response: SignResponse) -> LogonResponse {
        self.do_logon(process, Some(MethodResponse::U2f { sign_response }))
            .await
    }

    async fn do_logon(&self, process: &str, response: Option<MethodResponse>) -> LogonResponse {
        self.http
            .post(
                &paths::fill(paths::DO_LOGON, &[("logon_process_id", process)]),
                &DoLogonRequest {
                    response,
                    endpoint_session_id: self.endpoint.session_id().into(),
                },
            )
            .await
            .unwrap()
    }
}
