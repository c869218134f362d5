//! `vu2f demo`, the README's first command: in one process and a throwaway directory, the AA
//! emulator starts on a loopback port, a token is created, enrolled for a user as AA's portal does
//! it, used to log on through the user's chains (`U2F:1` alone, then `PASSWORD:1` → `U2F:1`) and
//! its template tested; then the same token, over CTAP2, is enrolled with `FIDO2:1` and logs on
//! with it (PROTOCOLS.md 1.9), every step shown as it happens.
use std::time::Duration;

use serde::Serialize;

use crate::aa::api::AuthData;
use crate::aa_sim::{self, SimConfig, SimOptions};
use crate::client::enroll::{enroll, enroll_fido2, EnrollRequest, DEFAULT_ENROLL_EVENT};
use crate::client::logon::{Logon, LogonRequest, FIDO2, PASSWORD};
use crate::client::{AaHttp, Endpoint, EndpointAccess, OriginPolicy, Step, TlsTrust, TokenClient};
use crate::transport::InProcess;
use crate::u2f::{Authenticator, Presence, PresencePolicy};

const TOKEN: &str = "demo-token";
const USER: &str = "alice";

/// One part of the demo.
#[derive(Debug, Serialize)]
pub struct Section {
    /// What it does.
    pub title: String,
    /// Its calls, in order.
    pub steps: Vec<Step>,
    /// What it ended with (`template …`, `login_session_id …`).
    pub result: String,
}

/// What the demo did.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    /// The emulator's URL.
    pub server: String,
    /// The token's name.
    pub token: String,
    /// The user.
    pub user: String,
    /// The parts, in order.
    pub sections: Vec<Section>,
    /// The session of the last logon.
    pub login_session_id: String,
}

/// Where the demo reports as it goes: a section's title, then its steps.
pub trait DemoObserver: Send {
    /// A section begins.
    fn section(&mut self, title: &str);
    /// A step of the current section happened.
    fn step(&mut self, step: &Step);
    /// The current section ended with `result`.
    fn result(&mut self, result: &str);
}

struct Recorder<'a> {
    observer: &'a mut dyn DemoObserver,
    sections: Vec<Section>,
}

impl Recorder<'_> {
    fn begin(&mut self, title: String) {
        self.observer.section(&title);
        self.sections.push(Section {
            title,
            steps: Vec::new(),
            result: String::new(),
        });
    }

    fn step(&mut self, step: &Step) {
        self.observer.step(step);
        if let Some(section) = self.sections.last_mut() {
            section.steps.push(step.clone());
        }
    }

    fn end(&mut self, result: String) {
        self.observer.result(&result);
        if let Some(section) = self.sections.last_mut() {
            section.result = result;
        }
    }
}

/// Runs the demo.
pub async fn run(observer: &mut dyn DemoObserver) -> anyhow::Result<DemoReport> {
    let scratch = tempfile::tempdir()?;
    let config = SimConfig::default();
    let alice_password = config
        .user(USER)
        .map(|u| u.password.clone())
        .unwrap_or_default();
    let admin = config
        .users
        .iter()
        .find(|u| u.admin)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the default configuration has no administrator"))?;
    let sim = aa_sim::start(SimOptions {
        listen: "127.0.0.1:0".parse()?,
        data_dir: scratch.path().join("aa-sim"),
        tls: false,
        config,
    })
    .await?;
    let store = keystore::Store::open(&scratch.path().join("store"))?;
    let options = keystore::TokenOptions {
        profile: keystore::Profile::Fido2,
        ..Default::default()
    };
    store.create_token(TOKEN, options)?;
    // One token for both methods, as a current hardware key: U2F APDUs reach the U2F engine
    // inside the CTAP2 one, with the same key and counter.
    let u2f = Authenticator::new(store.load(TOKEN)?, Presence::new(PresencePolicy::Auto));
    let mut token = TokenClient::new(
        Box::new(InProcess::ctap2(crate::ctap2::Authenticator::new(
            u2f, None,
        ))),
        Duration::from_secs(10),
    );
    let http = AaHttp::new(&sim.url, &TlsTrust::System, Duration::from_secs(10))?;
    let policy = OriginPolicy::new(http.origin(), Vec::new(), None);
    let mut recorder = Recorder {
        observer,
        sections: Vec::new(),
    };

    let access = EndpointAccess::Admin {
        auth: AuthData {
            method_id: PASSWORD.into(),
            user_name: admin.name.clone(),
            password: admin.password.clone(),
        },
        keep: None,
    };
    recorder.begin(format!(
        "Register an endpoint as {:?} and open an endpoint session",
        admin.name
    ));
    let endpoint = Endpoint::open(&http, &access, &mut |s: &Step| recorder.step(s)).await?;
    recorder.end(format!("endpoint {}", endpoint.id()));

    recorder.begin(format!(
        "Enroll token {TOKEN:?} for {USER} (PASSWORD:1 logon to {DEFAULT_ENROLL_EVENT:?}, then U2F:1)"
    ));
    let enrolled = enroll(
        &http,
        &endpoint,
        &mut token,
        &policy,
        &enroll_request(&alice_password, "vu2f demo"),
        &mut |s: &Step| recorder.step(s),
    )
    .await?;
    recorder.end(format!("template {}", enrolled.template_id));

    for (event, password, title) in [
        ("Search Card", None, "Log on to \"Search Card\" with U2F:1"),
        (
            "Password and U2F",
            Some(alice_password.clone()),
            "Log on to \"Password and U2F\": PASSWORD:1, then U2F:1",
        ),
    ] {
        recorder.begin(title.into());
        let logged_on = Logon::new(
            &http,
            &endpoint,
            Some(&mut token),
            &policy,
            &mut |s: &Step| recorder.step(s),
        )
        .run(&LogonRequest {
            user: USER.into(),
            event: event.into(),
            password,
            chain: None,
        })
        .await?;
        recorder.end(format!("login_session_id {}", logged_on.login_session_id));
    }
    recorder.begin(format!(
        "Test {USER}'s U2F template as AA's portal does (after a logon to {DEFAULT_ENROLL_EVENT:?})"
    ));
    let tested = crate::client::template::test(
        &http,
        &endpoint,
        &mut token,
        &policy,
        &LogonRequest {
            user: USER.into(),
            event: DEFAULT_ENROLL_EVENT.into(),
            password: Some(alice_password.clone()),
            chain: None,
        },
        None,
        &mut |s: &Step| recorder.step(s),
    )
    .await?;
    recorder.end(format!(
        "template {} works, counter {}",
        tested.template_id, tested.counter
    ));

    recorder.begin(format!(
        "Enroll the same token for {USER} with {FIDO2} (PASSWORD:1 logon to {DEFAULT_ENROLL_EVENT:?}, then WebAuthn as AA's portal runs it)"
    ));
    let enrolled = enroll_fido2(
        &http,
        &endpoint,
        &mut token,
        &policy,
        &enroll_request(&alice_password, "vu2f demo, FIDO2"),
        &mut |s: &Step| recorder.step(s),
    )
    .await?;
    recorder.end(format!("template {}", enrolled.template_id));

    recorder.begin(format!("Log on to \"FIDO2\" with {FIDO2}"));
    let logged_on = Logon::new(
        &http,
        &endpoint,
        Some(&mut token),
        &policy,
        &mut |s: &Step| recorder.step(s),
    )
    .run(&LogonRequest {
        user: USER.into(),
        event: crate::aa_sim::config::FIDO2_EVENT.into(),
        password: None,
        chain: None,
    })
    .await?;
    recorder.end(format!("login_session_id {}", logged_on.login_session_id));
    let last_session = logged_on.login_session_id;

    endpoint.close(&http).await?;
    let server = sim.url.clone();
    sim.stop().await?;
    Ok(DemoReport {
        server,
        token: TOKEN.into(),
        user: USER.into(),
        sections: recorder.sections,
        login_session_id: last_session,
    })
}

/// Alice's enrollment at the default enroll event, its template commented `comment`.
fn enroll_request(password: &str, comment: &str) -> EnrollRequest {
    EnrollRequest {
        user: USER.into(),
        password: password.into(),
        event: DEFAULT_ENROLL_EVENT.into(),
        chain: None,
        category: String::new(),
        comment: comment.into(),
    }
}
