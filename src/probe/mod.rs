//! `vu2f probe`: does a U2F token work? VERSION, a REGISTER and two AUTHENTICATEs, each answer
//! verified as a relying party would (PROTOCOLS.md section 4), then check-only and a foreign appId.
//! When the token speaks CTAP2 too, getInfo, a makeCredential and two getAssertions, verified
//! likewise (CTAP 2.1 sections 6.4, 6.1 and 6.2; see [`ctap2`]). The token is any
//! [`TokenTransport`]: a hidraw node (the virtual device or a physical key), a `vu2f serve --udp`
//! token, or a throwaway `fido2` token in this process.
//!
//! With rounds, it also measures the latency of AUTHENTICATE on that token against the same
//! operation on a throwaway in-process token, in the same run.
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::transport::{exchange_awaiting_presence, InProcess, TokenTransport};
use crate::u2f::authenticator::Control;
use crate::u2f::messages::{
    self, AuthenticationResponse, ClientData, RegistrationResponse, TYP_REGISTER, TYP_SIGN,
};
use crate::u2f::{Authenticator, Presence, PresencePolicy, StatusWord};

pub mod ctap2;

const APP_ID: &str = "https://probe.vu2f.invalid";
const PRESENCE_POLL: Duration = Duration::from_millis(100);

/// One check and what it showed.
#[derive(Debug, Serialize)]
pub struct Step {
    /// What was done.
    pub step: String,
    /// What came back, verified.
    pub result: String,
}

/// AUTHENTICATE latency on the token against in-process, medians of the same number of rounds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Rounds measured on each.
    pub rounds: usize,
    /// Median on the probed token, in microseconds.
    pub token_median_us: f64,
    /// Median in-process, in microseconds.
    pub in_process_median_us: f64,
    /// `token_median_us / in_process_median_us`.
    pub ratio: f64,
}

/// What the probe found.
#[derive(Debug, Serialize)]
pub struct ProbeReport {
    /// What was probed.
    pub target: String,
    /// Whether the token speaks CTAP2 (then the steps end with its checks).
    pub ctap2: bool,
    /// The checks, in order.
    pub steps: Vec<Step>,
    /// The latency, when rounds were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
}

impl ProbeReport {
    /// The report for people.
    pub fn to_text(&self) -> String {
        let protocols = if self.ctap2 {
            "U2F and CTAP2"
        } else {
            "U2F only"
        };
        let mut text = format!("vu2f probe: {} ({protocols})\n", self.target);
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(text, "{:>2}. {:<40} {}", i + 1, s.step, s.result);
        }
        text.push_str("all verified\n");
        if let Some(l) = &self.latency {
            let _ = writeln!(
                text,
                "AUTHENTICATE latency, median of {} rounds: {:.1} µs on the token, {:.1} µs in-process: {:.1}×",
                l.rounds, l.token_median_us, l.in_process_median_us, l.ratio
            );
        }
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

fn client_data(typ: &str, challenge: &str) -> Vec<u8> {
    ClientData {
        typ,
        challenge,
        origin: APP_ID,
    }
    .to_bytes()
}

fn authenticate_request(round: usize, key_handle: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let challenge = messages::challenge_param(&client_data(TYP_SIGN, &format!("r{round}")));
    let request = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &messages::app_param(APP_ID),
        key_handle,
    );
    (request, challenge)
}

/// Runs the checks on `token`; returns them and the registration they made.
pub fn check(
    token: &mut dyn TokenTransport,
    touch_timeout: Duration,
) -> anyhow::Result<(Vec<Step>, RegistrationResponse)> {
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

    let app = messages::app_param(APP_ID);
    let challenge = messages::challenge_param(&client_data(TYP_REGISTER, "probe"));
    let response = exchange_awaiting_presence(
        token,
        &messages::register_request(&challenge, &app),
        PRESENCE_POLL,
        touch_timeout,
    )?;
    let registration = RegistrationResponse::try_from(messages::split_status(&response)?)?;
    registration.verify(&app, &challenge)?;
    step(
        &format!("REGISTER for {APP_ID}"),
        format!(
            "{}-byte key handle, attestation signature verified",
            registration.key_handle.len()
        ),
    );

    let mut last_counter = None;
    for round in 1..=2 {
        let (request, challenge) = authenticate_request(round, &registration.key_handle);
        let response = exchange_awaiting_presence(token, &request, PRESENCE_POLL, touch_timeout)?;
        let signed = AuthenticationResponse::try_from(messages::split_status(&response)?)?;
        signed.verify(&app, &challenge, &registration.public_key)?;
        anyhow::ensure!(
            last_counter.is_none_or(|last| signed.counter > last),
            "the counter did not increase"
        );
        anyhow::ensure!(signed.flags & 1 == 1, "the user presence flag is missing");
        last_counter = Some(signed.counter);
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
    step(
        "AUTHENTICATE check-only",
        "6985: the handle is its own".into(),
    );

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
    Ok((steps, registration))
}

/// The median time of `rounds` AUTHENTICATEs of `key_handle`.
fn median_authenticate(
    token: &mut dyn TokenTransport,
    key_handle: &[u8],
    rounds: usize,
    touch_timeout: Duration,
) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (request, _) = authenticate_request(round + 10, key_handle);
        let start = Instant::now();
        let response = exchange_awaiting_presence(token, &request, PRESENCE_POLL, touch_timeout)?;
        times.push(start.elapsed());
        messages::split_status(&response)?;
    }
    times.sort();
    Ok(times.get(times.len() / 2).copied().unwrap_or_default())
}

/// A throwaway in-process `fido2` token, U2F and CTAP2 (its store is deleted when the guard is
/// dropped).
fn throwaway_token() -> anyhow::Result<(tempfile::TempDir, InProcess)> {
    let dir = tempfile::tempdir()?;
    let store = keystore::Store::open(&dir.path().join("store"))?;
    let options = keystore::TokenOptions {
        profile: keystore::Profile::Fido2,
        ..Default::default()
    };
    store.create_token("probe", options)?;
    let u2f = Authenticator::new(store.load("probe")?, Presence::new(PresencePolicy::Auto));
    let token = InProcess::ctap2(crate::ctap2::Authenticator::new(u2f, None));
    Ok((dir, token))
}

/// Probes `token` (U2F, then CTAP2 if it speaks it); with `rounds`, measures its AUTHENTICATE
/// latency against in-process.
pub fn run(
    target: String,
    token: Option<Box<dyn TokenTransport>>,
    rounds: usize,
    touch_timeout: Duration,
) -> anyhow::Result<ProbeReport> {
    let (_dir, local) = throwaway_token()?;
    let mut token = token.unwrap_or_else(|| Box::new(local));
    let token = token.as_mut();
    let (mut steps, registration) = check(token, touch_timeout)?;
    let ctap2_steps = ctap2::check(token)?;
    let ctap2 = ctap2_steps.is_some();
    steps.extend(ctap2_steps.into_iter().flatten());
    let latency = if rounds == 0 {
        None
    } else {
        let token_median =
            median_authenticate(token, &registration.key_handle, rounds, touch_timeout)?;
        let (_baseline_dir, mut baseline) = throwaway_token()?;
        let (_, baseline_registration) = check(&mut baseline, touch_timeout)?;
        let in_process = median_authenticate(
            &mut baseline,
            &baseline_registration.key_handle,
            rounds,
            touch_timeout,
        )?;
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        Some(Latency {
            rounds,
            token_median_us: micros(token_median),
            in_process_median_us: micros(in_process),
            ratio: micros(token_median) / micros(in_process).max(f64::MIN_POSITIVE),
        })
    };
    Ok(ProbeReport {
        target,
        ctap2,
        steps,
        latency,
    })
}
