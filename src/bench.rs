//! `vu2f bench`: throughput of the U2F engine against the physical limit, measured in the same run
//! on one thread: raw ring ECDSA P-256 signing with a key already loaded.
//!
//! * AUTHENTICATE: APDU in, response out, counter included, against raw sign.
//! * REGISTER: against raw key generation plus one sign with a loaded key (what a registration
//!   cannot avoid: a new key pair and the attestation signature).
//! * The durable counter: flushes per 1,000 signatures.
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde::Serialize;

use crate::u2f::authenticator::Control;
use crate::u2f::messages::{self, RegistrationResponse};
use crate::u2f::{Authenticator, Presence, PresencePolicy};

/// The figures of one bench run.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Seconds each measurement ran.
    pub seconds_each: f64,
    /// Raw ring P-256 signatures per second.
    pub raw_sign_per_sec: f64,
    /// In-process AUTHENTICATE per second.
    pub authenticate_per_sec: f64,
    /// AUTHENTICATE over raw sign.
    pub authenticate_ratio: f64,
    /// Raw ring key generation plus one sign, per second.
    pub raw_keygen_sign_per_sec: f64,
    /// In-process REGISTER per second.
    pub register_per_sec: f64,
    /// REGISTER over raw key generation plus sign.
    pub register_ratio: f64,
    /// Store flushes per 1,000 signatures.
    pub counter_flushes_per_1000: f64,
}

/// Runs `op` in batches until `duration` has passed; returns operations per second.
fn rate(duration: Duration, mut op: impl FnMut()) -> f64 {
    for _ in 0..50 {
        op();
    }
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        for _ in 0..100 {
            op();
        }
        count += 100;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn ensure(ok: bool, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(ok, "bench: {what}");
    Ok(())
}

/// Runs every measurement for `duration` each, in a temporary store.
pub fn run(duration: Duration) -> anyhow::Result<BenchReport> {
    let rng = SystemRandom::new();
    let message = [0x5au8; 69];
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow::anyhow!("bench: key generation"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow::anyhow!("bench: key load"))?;
    let raw_sign = rate(duration, || {
        let _ = std::hint::black_box(key.sign(&rng, &message));
    });
    let raw_keygen_sign = rate(duration, || {
        let _ = std::hint::black_box(EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        ));
        let _ = std::hint::black_box(key.sign(&rng, &message));
    });

    let dir = tempfile::tempdir()?;
    let store = keystore::Store::open(&dir.path().join("store"))?;
    store.create_token("bench", keystore::TokenOptions::default())?;
    let mut token = Authenticator::new(store.load("bench")?, Presence::new(PresencePolicy::Auto));
    let app = messages::app_param("https://bench.vu2f.invalid");
    let challenge = messages::challenge_param(b"bench");

    let register = messages::register_request(&challenge, &app);
    let mut failures = 0u32;
    let register_rate = rate(duration, || {
        failures +=
            u32::from(messages::split_status(&token.process(&register, Instant::now())).is_err());
    });
    let response = token.process(&register, Instant::now());
    let registration = RegistrationResponse::try_from(messages::split_status(&response)?)?;
    registration.verify(&app, &challenge)?;

    let authenticate = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &app,
        &registration.key_handle,
    );
    let flushes_before = token.counter_flushes();
    let mut signatures = 0u64;
    let authenticate_rate = rate(duration, || {
        let ok = messages::split_status(&token.process(&authenticate, Instant::now())).is_ok();
        failures += u32::from(!ok);
        signatures += 1;
    });
    ensure(failures == 0, "an operation failed during the measurement")?;
    let flushes = token.counter_flushes() - flushes_before;

    Ok(BenchReport {
        seconds_each: duration.as_secs_f64(),
        raw_sign_per_sec: raw_sign,
        authenticate_per_sec: authenticate_rate,
        authenticate_ratio: authenticate_rate / raw_sign,
        raw_keygen_sign_per_sec: raw_keygen_sign,
        register_per_sec: register_rate,
        register_ratio: register_rate / raw_keygen_sign,
        counter_flushes_per_1000: flushes as f64 * 1000.0 / signatures as f64,
    })
}

impl BenchReport {
    /// The report as a table for people.
    pub fn to_text(&self) -> String {
        format!(
            "vu2f bench (one thread, {:.1} s per figure)\n\
             raw ring P-256 sign          {:>9.0} /s\n\
             AUTHENTICATE in-process      {:>9.0} /s   {:>5.1} % of raw sign\n\
             raw keygen + sign            {:>9.0} /s\n\
             REGISTER in-process          {:>9.0} /s   {:>5.1} % of raw keygen + sign\n\
             counter flushes              {:>9.2} per 1,000 signatures\n",
            self.seconds_each,
            self.raw_sign_per_sec,
            self.authenticate_per_sec,
            self.authenticate_ratio * 100.0,
            self.raw_keygen_sign_per_sec,
            self.register_per_sec,
            self.register_ratio * 100.0,
            self.counter_flushes_per_1000,
        )
    }
}
