//! `vu2f bench`: throughput of the U2F engine against the physical limit, measured in the same run
//! on one thread: raw ring ECDSA P-256 signing with a key already loaded.
//!
//! * AUTHENTICATE: APDU in, response out, counter included, against raw sign.
//! * REGISTER: against raw key generation plus one sign with a loaded key (what a registration
//!   cannot avoid: a new key pair and the attestation signature).
//! * The durable counter: flushes per 1,000 signatures.
//! * Logons: `vu2f load` against the embedded emulator on every core, against the bound ECDSA
//!   alone sets (each logon is one signature by the token and one verification by the server):
//!   `U2F:1` logons, then `FIDO2:1` ones (the same bound: one getAssertion signature, one
//!   verification), each run with the same tokens, concurrency and duration.
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
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
    /// In-process CTAP2 getAssertion (ES256, non-discoverable, allowList) per second.
    pub get_assertion_per_sec: f64,
    /// getAssertion over raw sign.
    pub get_assertion_ratio: f64,
    /// In-process CTAP2 makeCredential (ES256, non-discoverable, packed) per second.
    pub make_credential_per_sec: f64,
    /// makeCredential over raw key generation plus sign.
    pub make_credential_ratio: f64,
    /// In-process CTAP2 makeCredential of a discoverable credential (stored and flushed before
    /// the reply) per second.
    pub make_discoverable_per_sec: f64,
    /// Store flushes per 1,000 signatures.
    pub counter_flushes_per_1000: f64,
    /// Raw ring P-256 verifications per second, one thread.
    pub raw_verify_per_sec: f64,
    /// Cores the logon measurement may use.
    pub cores: usize,
    /// Logons per second if each cost only one sign and one verify, on every core.
    pub ecdsa_logon_bound_per_sec: f64,
    /// `U2F:1` logons per second through HTTP against the embedded emulator (`vu2f load`).
    pub logons_per_sec: f64,
    /// `U2F:1` logons over the ECDSA bound.
    pub logon_ratio: f64,
    /// `FIDO2:1` logons per second through HTTP against the embedded emulator
    /// (`vu2f load --method FIDO2:1`).
    pub fido2_logons_per_sec: f64,
    /// `FIDO2:1` logons over the ECDSA bound.
    pub fido2_logon_ratio: f64,
}

/// Tokens of the logon measurement.
const LOGON_TOKENS: usize = 1000;

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

/// How long each turn of [`paired_rates`] runs one side.
const SLICE: Duration = Duration::from_millis(20);

/// The rates of `baseline` and of `op`, each run for `duration` in all, taking turns in slices
/// of [`SLICE`]. A drift of the machine's speed (its clock, a neighbour's load) then weighs on
/// both alike, and `op` over `baseline` is the cost of what `op` does beyond it. Measured one
/// after the other, seconds apart, the same ratio wandered by two points between runs.
fn paired_rates(
    duration: Duration,
    baseline: &mut dyn FnMut(),
    op: &mut dyn FnMut(),
) -> (f64, f64) {
    let mut sides: [(&mut dyn FnMut(), u64, Duration); 2] =
        [(baseline, 0, Duration::ZERO), (op, 0, Duration::ZERO)];
    for (run, _, _) in sides.iter_mut() {
        for _ in 0..50 {
            run();
        }
    }
    while sides[1].2 < duration {
        for (run, count, time) in sides.iter_mut() {
            let start = Instant::now();
            while start.elapsed() < SLICE {
                for _ in 0..10 {
                    run();
                }
                *count += 10;
            }
            *time += start.elapsed();
        }
    }
    let [baseline, op] = sides.map(|(_, count, time)| count as f64 / time.as_secs_f64());
    (baseline, op)
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
    let mut raw_sign = || {
        let _ = std::hint::black_box(key.sign(&rng, &message));
    };
    let signature = key
        .sign(&rng, &message)
        .map_err(|_| anyhow::anyhow!("bench: sign"))?;
    let public =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
    let raw_verify = rate(duration, || {
        let _ = std::hint::black_box(public.verify(&message, signature.as_ref()));
    });
    let mut raw_keygen_sign = || {
        let _ = std::hint::black_box(EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        ));
        let _ = std::hint::black_box(key.sign(&rng, &message));
    };

    let dir = tempfile::tempdir()?;
    let store = keystore::Store::open(&dir.path().join("store"))?;
    store.create_token("bench", keystore::TokenOptions::default())?;
    let mut token = Authenticator::new(store.load("bench")?, Presence::new(PresencePolicy::Auto));
    let app = messages::app_param("https://bench.vu2f.invalid");
    let challenge = messages::challenge_param(b"bench");

    let register = messages::register_request(&challenge, &app);
    let mut failures = 0u32;
    let (raw_keygen_sign_rate, register_rate) =
        paired_rates(duration, &mut raw_keygen_sign, &mut || {
            failures += u32::from(
                messages::split_status(&token.process(&register, Instant::now())).is_err(),
            );
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
    let (raw_sign_rate, authenticate_rate) = paired_rates(duration, &mut raw_sign, &mut || {
        let ok = messages::split_status(&token.process(&authenticate, Instant::now())).is_ok();
        failures += u32::from(!ok);
        signatures += 1;
    });
    ensure(failures == 0, "an operation failed during the measurement")?;
    let flushes = token.counter_flushes() - flushes_before;
    drop(token);
    let ctap2 = ctap2_rates(&store, duration, &mut raw_sign, &mut raw_keygen_sign)?;

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let ecdsa_bound = cores as f64 / (1.0 / raw_sign_rate + 1.0 / raw_verify);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let logons = |fido2: crate::load::Fido2Users| {
        runtime.block_on(crate::load::run(
            &store,
            crate::load::LoadOptions {
                target: crate::load::Target::Embedded {
                    server_delay: Duration::ZERO,
                },
                tokens: LOGON_TOKENS,
                prefix: "bench-".into(),
                enroll: true,
                event: "Search Card".into(),
                chain: None,
                fido2,
                model: crate::load::Model::Concurrency(32),
                until: crate::load::Until::Duration(duration),
                ramp_up: Duration::ZERO,
                progress: false,
                timeout: Duration::from_secs(10),
            },
        ))
    };
    let load = logons(crate::load::Fido2Users::default())?;
    ensure(load.failed == 0, "a logon failed during the measurement")?;
    let fido2 = logons(crate::load::Fido2Users::all())?;
    ensure(
        fido2.failed == 0 && fido2.summary.methods.keys().eq([crate::aa::FIDO2]),
        "a FIDO2:1 logon failed during the measurement",
    )?;

    Ok(BenchReport {
        seconds_each: duration.as_secs_f64(),
        raw_sign_per_sec: raw_sign_rate,
        authenticate_per_sec: authenticate_rate,
        authenticate_ratio: authenticate_rate / raw_sign_rate,
        raw_keygen_sign_per_sec: raw_keygen_sign_rate,
        register_per_sec: register_rate,
        register_ratio: register_rate / raw_keygen_sign_rate,
        get_assertion_per_sec: ctap2.get_assertion,
        get_assertion_ratio: ctap2.get_assertion_ratio,
        make_credential_per_sec: ctap2.make_credential,
        make_credential_ratio: ctap2.make_credential_ratio,
        make_discoverable_per_sec: ctap2.make_discoverable,
        counter_flushes_per_1000: flushes as f64 * 1000.0 / signatures as f64,
        raw_verify_per_sec: raw_verify,
        cores,
        ecdsa_logon_bound_per_sec: ecdsa_bound,
        logons_per_sec: load.logons_per_s,
        logon_ratio: load.logons_per_s / ecdsa_bound,
        fido2_logons_per_sec: fido2.logons_per_s,
        fido2_logon_ratio: fido2.logons_per_s / ecdsa_bound,
    })
}

/// What the CTAP2 engine does per second, and against the raw operations measured beside it.
struct Ctap2Rates {
    get_assertion: f64,
    get_assertion_ratio: f64,
    make_credential: f64,
    make_credential_ratio: f64,
    make_discoverable: f64,
}

/// A makeCredential request for ES256 with user `user`, discoverable or not.
fn make_credential_request(user: &[u8], discoverable: bool) -> Vec<u8> {
    use crate::ctap2::cbor::{self, text_map, uint_map, Value};
    let request = uint_map([
        (1, Value::Bytes(vec![0x5a; 32])),
        (
            2,
            text_map([("id", Value::Text("bench.vu2f.invalid".into()))]),
        ),
        (3, text_map([("id", Value::Bytes(user.to_vec()))])),
        (
            4,
            Value::Array(vec![crate::ctap2::cose::Algorithm::Es256.parameters()]),
        ),
        (7, text_map([("rk", Value::Bool(discoverable))])),
    ]);
    [vec![0x01], cbor::encode(&request)].concat()
}

/// The CTAP2 engine's rates on a fido2 token of `store`, each checked for success and measured
/// beside its bound: getAssertion beside `raw_sign`, makeCredential beside `raw_keygen_sign`.
fn ctap2_rates(
    store: &keystore::Store,
    duration: Duration,
    raw_sign: &mut dyn FnMut(),
    raw_keygen_sign: &mut dyn FnMut(),
) -> anyhow::Result<Ctap2Rates> {
    use crate::ctap2::cbor::{self, text_map, uint_map, Arena, Parameters, Value};
    use crate::ctap2::Step;
    let options = keystore::TokenOptions {
        profile: keystore::Profile::Fido2,
        ..Default::default()
    };
    store.create_token("bench-fido2", options)?;
    let u2f = Authenticator::new(
        store.load("bench-fido2")?,
        Presence::new(PresencePolicy::Auto),
    );
    let mut token = crate::ctap2::Authenticator::new(u2f, None);
    let mut failures = 0u32;
    let mut run = |token: &mut crate::ctap2::Authenticator, request: &[u8]| -> Vec<u8> {
        match token.start(request, Instant::now()) {
            Step::Done(reply) if reply.first() == Some(&0) => reply,
            _ => {
                failures += 1;
                Vec::new()
            }
        }
    };
    let make = make_credential_request(b"bench", false);
    let (keygen_sign, make_credential) = paired_rates(duration, raw_keygen_sign, &mut || {
        run(&mut token, &make);
    });
    let reply = run(&mut token, &make);
    let arena = Arena::new();
    let made = Parameters::decode(reply.get(1..).unwrap_or_default(), &arena)
        .map_err(|status| anyhow::anyhow!("bench: makeCredential: {status}"))?;
    let auth_data = made
        .get(2)
        .and_then(|item| item.as_bytes())
        .ok_or_else(|| anyhow::anyhow!("bench: makeCredential has no authData"))?;
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + id_len].to_vec();
    let get = uint_map([
        (1, Value::Text("bench.vu2f.invalid".into())),
        (2, Value::Bytes(vec![0x5a; 32])),
        (
            3,
            Value::Array(vec![text_map([
                ("id", Value::Bytes(id)),
                ("type", Value::Text("public-key".into())),
            ])]),
        ),
    ]);
    let get = [vec![0x02], cbor::encode(&get)].concat();
    let (sign, get_assertion) = paired_rates(duration, raw_sign, &mut || {
        run(&mut token, &get);
    });
    // The same user each time: every one replaces the last, so the store never fills.
    let make_discoverable = make_credential_request(b"bench-discoverable", true);
    let make_discoverable = rate(duration, || {
        run(&mut token, &make_discoverable);
    });
    ensure(
        failures == 0,
        "a CTAP2 request failed during the measurement",
    )?;
    Ok(Ctap2Rates {
        get_assertion,
        get_assertion_ratio: get_assertion / sign,
        make_credential,
        make_credential_ratio: make_credential / keygen_sign,
        make_discoverable,
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
             CTAP2 getAssertion           {:>9.0} /s   {:>5.1} % of raw sign\n\
             CTAP2 makeCredential         {:>9.0} /s   {:>5.1} % of raw keygen + sign\n\
             makeCredential, discoverable {:>9.0} /s   (stored and flushed before the reply)\n\
             counter flushes              {:>9.2} per 1,000 signatures\n\
             raw ring P-256 verify        {:>9.0} /s\n\
             logons, ECDSA bound          {:>9.0} /s   (sign + verify, {} cores)\n\
             U2F:1 logons via HTTP        {:>9.0} /s   {:>5.1} % of the ECDSA bound (embedded emulator)\n\
             FIDO2:1 logons via HTTP      {:>9.0} /s   {:>5.1} % of the ECDSA bound (embedded emulator)\n",
            self.seconds_each,
            self.raw_sign_per_sec,
            self.authenticate_per_sec,
            self.authenticate_ratio * 100.0,
            self.raw_keygen_sign_per_sec,
            self.register_per_sec,
            self.register_ratio * 100.0,
            self.get_assertion_per_sec,
            self.get_assertion_ratio * 100.0,
            self.make_credential_per_sec,
            self.make_credential_ratio * 100.0,
            self.make_discoverable_per_sec,
            self.counter_flushes_per_1000,
            self.raw_verify_per_sec,
            self.ecdsa_logon_bound_per_sec,
            self.cores,
            self.logons_per_sec,
            self.logon_ratio * 100.0,
            self.fido2_logons_per_sec,
            self.fido2_logon_ratio * 100.0,
        )
    }
}

/// What `vu2f bench --scale N` measured.
#[derive(Debug, Serialize)]
pub struct ScaleReport {
    /// Tokens in the process.
    pub tokens: usize,
    /// Seconds to create them in the store (one batch).
    pub create_s: f64,
    /// Seconds to load them all into engines.
    pub load_s: f64,
    /// Seconds for every token to register once and authenticate once.
    pub authenticate_s: f64,
    /// Heap added by loading the tokens, per token, in bytes.
    pub bytes_per_token_loaded: f64,
    /// Heap added by the loaded tokens after a registration and an authentication each (their
    /// key caches hold one credential), per token, in bytes. The store's cache was warmed by an
    /// earlier load of every token before the baseline.
    pub bytes_per_token: f64,
}

impl ScaleReport {
    /// The report for people.
    pub fn to_text(&self) -> String {
        format!(
            "vu2f bench --scale: {} tokens in one process\n\
             created in {:.1} s, loaded in {:.1} s, each registered and authenticated in {:.1} s\n\
             memory per token: {:.0} bytes loaded, {:.0} bytes after use (heap in use, beyond the store's cache)\n",
            self.tokens,
            self.create_s,
            self.load_s,
            self.authenticate_s,
            self.bytes_per_token_loaded,
            self.bytes_per_token
        )
    }
}

/// Bytes of heap in use, as the process's allocator counts them.
pub type HeapMeter = fn() -> usize;

/// Loads every token of the store at `dir` in this process, registers and authenticates each
/// once, and measures the memory they take beyond the store's (warmed) cache. The tokens should have been created by another
/// process, so that nothing the creation allocated is still in this one.
pub fn scale(
    dir: &std::path::Path,
    create_s: f64,
    heap_in_use: HeapMeter,
) -> anyhow::Result<ScaleReport> {
    let store = keystore::Store::open(dir)?;
    let names = store.names()?;
    anyhow::ensure!(!names.is_empty(), "no tokens in {}", dir.display());
    // Warm the store's cache (and its writes) with a load of every token, given back at once:
    // what the second load adds is what the tokens themselves take. sled frees replaced pages
    // only as later operations move its epochs on, so each phase ends with a read of every token.
    let settle = || -> anyhow::Result<()> {
        for name in &names {
            store.info(name)?;
        }
        Ok(())
    };
    drop(store.load_many(&names)?);
    settle()?;
    let baseline = heap_in_use();

    let started = Instant::now();
    let mut engines: Vec<Authenticator> = store
        .load_many(&names)?
        .into_iter()
        .map(|keys| Authenticator::new(keys, Presence::new(PresencePolicy::Auto)))
        .collect();
    let load_s = started.elapsed().as_secs_f64();
    settle()?;
    let loaded = heap_in_use().saturating_sub(baseline);

    let started = Instant::now();
    let app = messages::app_param("https://scale.vu2f.invalid");
    let challenge = messages::challenge_param(b"scale");
    let register = messages::register_request(&challenge, &app);
    for engine in &mut engines {
        let response = engine.process(&register, Instant::now());
        let registration = RegistrationResponse::try_from(messages::split_status(&response)?)?;
        let authenticate = messages::authenticate_request(
            Control::EnforcePresenceAndSign,
            &challenge,
            &app,
            &registration.key_handle,
        );
        let signed = engine.process(&authenticate, Instant::now());
        let signed = messages::AuthenticationResponse::try_from(messages::split_status(&signed)?)?;
        signed.verify(&app, &challenge, &registration.public_key)?;
    }
    let authenticate_s = started.elapsed().as_secs_f64();
    settle()?;
    let added = heap_in_use().saturating_sub(baseline);
    let tokens = engines.len();
    drop(engines);
    Ok(ScaleReport {
        tokens,
        create_s,
        load_s,
        authenticate_s,
        bytes_per_token_loaded: loaded as f64 / tokens as f64,
        bytes_per_token: added as f64 / tokens as f64,
    })
}
