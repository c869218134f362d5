//! The self-check behind `vu2f demo`: in a throwaway store, a token registers and authenticates
//! in-process, and every answer is verified as a relying party would (PROTOCOLS.md section 4).
use std::fmt::Write as _;

use serde::Serialize;

use crate::transport::{InProcess, TokenTransport};
use crate::u2f::authenticator::Control;
use crate::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};
use crate::u2f::{Authenticator, Presence, PresencePolicy, StatusWord};

/// One step of the self-check and what it showed.
#[derive(Debug, Serialize)]
pub struct Step {
    /// What was done.
    pub step: String,
    /// What came back, verified.
    pub result: String,
}

/// The self-check's report.
#[derive(Debug, Serialize)]
pub struct SelfCheck {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl SelfCheck {
    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut text = String::from("vu2f self-check: a virtual token, in-process\n");
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(text, "{:>2}. {:<44} {}", i + 1, s.step, s.result);
        }
        text.push_str("all verified\n");
        text
    }
}

fn expect_status(response: &[u8], expected: StatusWord, what: &str) -> anyhow::Result<()> {
    let got = messages::status_of(response);
    anyhow::ensure!(
        got == Some(expected as u16),
        "{what}: expected {expected}, got {got:04X?}"
    );
    Ok(())
}

/// Runs the self-check.
pub fn run() -> anyhow::Result<SelfCheck> {
    let dir = tempfile::tempdir()?;
    let store = keystore::Store::open(&dir.path().join("store"))?;
    store.create_token("demo", keystore::TokenOptions::default())?;
    let mut token = InProcess::new(Authenticator::new(
        store.load("demo")?,
        Presence::new(PresencePolicy::Auto),
    ));
    let mut steps = Vec::new();
    let mut step = |step: &str, result: String| {
        steps.push(Step {
            step: step.into(),
            result,
        })
    };

    let version = token.exchange(&messages::version_request())?;
    let version = String::from_utf8_lossy(messages::split_status(&version)?).into_owned();
    anyhow::ensure!(version == "U2F_V2", "VERSION answered {version:?}");
    step("VERSION", version);

    let app_id = "https://demo.vu2f.invalid";
    let app = messages::app_param(app_id);
    let enroll_data = br#"{"typ":"navigator.id.finishEnrollment","challenge":"c2VsZi1jaGVjaw","origin":"https://demo.vu2f.invalid"}"#;
    let challenge = messages::challenge_param(enroll_data);
    let response = token.exchange(&messages::register_request(&challenge, &app))?;
    let registration = RegistrationResponse::try_from(messages::split_status(&response)?)?;
    registration.verify(&app, &challenge)?;
    step(
        &format!("REGISTER for {app_id}"),
        format!(
            "{}-byte key handle, attestation signature verified",
            registration.key_handle.len()
        ),
    );

    let mut last_counter = 0;
    for round in 1..=2 {
        let sign_data = format!(
            r#"{{"typ":"navigator.id.getAssertion","challenge":"round-{round}","origin":"{app_id}"}}"#
        );
        let challenge = messages::challenge_param(sign_data.as_bytes());
        let request = messages::authenticate_request(
            Control::EnforcePresenceAndSign,
            &challenge,
            &app,
            &registration.key_handle,
        );
        let response = token.exchange(&request)?;
        let signed = AuthenticationResponse::try_from(messages::split_status(&response)?)?;
        signed.verify(&app, &challenge, &registration.public_key)?;
        anyhow::ensure!(signed.counter > last_counter, "counter did not increase");
        anyhow::ensure!(signed.flags & 1 == 1, "user presence flag missing");
        last_counter = signed.counter;
        step(
            &format!("AUTHENTICATE #{round}"),
            format!(
                "counter {}, user present, signature verified",
                signed.counter
            ),
        );
    }

    let check = messages::authenticate_request(
        Control::CheckOnly,
        &challenge,
        &app,
        &registration.key_handle,
    );
    expect_status(
        &token.exchange(&check)?,
        StatusWord::ConditionsNotSatisfied,
        "check-only",
    )?;
    step("AUTHENTICATE check-only", "6985: the handle is ours".into());

    let other = messages::app_param("https://other.vu2f.invalid");
    let foreign = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &other,
        &registration.key_handle,
    );
    expect_status(
        &token.exchange(&foreign)?,
        StatusWord::WrongData,
        "other appId",
    )?;
    step("AUTHENTICATE with another appId", "6A80: refused".into());
    Ok(SelfCheck { steps })
}
