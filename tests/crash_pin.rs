//! The PIN retry count cannot be cheated by killing the token (CTAP 2.1 §6.5.5.7: the retry
//! count is decremented before the PIN is compared; DESIGN.md, "FIDO2": everything a host may
//! count on survives `kill -9`). `serve --udp` is killed with SIGKILL 200 times while a host
//! sends wrong PINs (getPinUvAuthTokenUsingPinWithPermissions, protocol 2) to tokens that have
//! one, each kill 0 to 2 ms after the host began an attempt (a random one of the run's first
//! four), so that most land inside one, and restarted each time. After every restart a token's count is
//! never above the last one the host saw, and lower by one at most (the attempt the kill cut
//! off, answered or not); every answered attempt lowered it by exactly one, with the status of
//! its place (PIN_INVALID, PIN_AUTH_BLOCKED at the third in a row since power-up, PIN_BLOCKED at
//! zero), and a blocked token refuses even the right PIN.
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use vu2f::ctap2::cbor::{self, uint_map, Arena, Parameters, Value};
use vu2f::ctap2::pin_protocol::{encapsulate, PinUvAuthProtocol};
use vu2f::transport::UdpTransport;

const KILLS: usize = 200;
/// Tokens with a PIN: 8 attempts each, more than the runs spend (2.5 each on average).
const TOKENS: usize = 80;
/// The whole test must end within this, restarts included.
const BOUND: Duration = Duration::from_secs(900);
const PIN: &[u8] = b"1234";
const PIN_INVALID: u8 = 0x31;
const PIN_BLOCKED: u8 = 0x32;
const PIN_AUTH_BLOCKED: u8 = 0x34;

fn name(n: usize) -> String {
    format!("pin-{n:02}")
}

/// getPinUvAuthTokenUsingPinWithPermissions (ga) with `pin`, after a getKeyAgreement: the
/// status, or `None` when the token did not answer (killed).
fn attempt(token: &mut UdpTransport, pin: &[u8]) -> Option<u8> {
    let protocol = PinUvAuthProtocol::Two;
    let request = uint_map([(1, Value::Integer(2.into())), (2, Value::Integer(2.into()))]);
    let reply = token
        .cbor(&[vec![0x06], cbor::encode(&request)].concat())
        .ok()?;
    assert_eq!(reply.first(), Some(&0), "getKeyAgreement: {reply:02x?}");
    let arena = Arena::new();
    let params = Parameters::decode(&reply[1..], &arena).unwrap();
    let (key_agreement, shared) =
        encapsulate(protocol, params.get(1).unwrap(), &SystemRandom::new()).unwrap();
    let hash = digest(&SHA256, pin);
    let pin_hash_enc = shared.encrypt(&hash.as_ref()[..16], &SystemRandom::new());
    let request = uint_map([
        (1, Value::Integer(2.into())),
        (2, Value::Integer(9.into())),
        (3, key_agreement),
        (6, Value::Bytes(pin_hash_enc)),
        (9, Value::Integer(2.into())),
        (10, Value::Text("crash.vu2f.invalid".into())),
    ]);
    let reply = token
        .cbor(&[vec![0x06], cbor::encode(&request)].concat())
        .ok()?;
    reply.first().copied()
}

/// getPINRetries.
fn retries(token: &mut UdpTransport) -> u8 {
    let request = uint_map([(1, Value::Integer(2.into())), (2, Value::Integer(1.into()))]);
    let reply = token
        .cbor(&[vec![0x06], cbor::encode(&request)].concat())
        .unwrap();
    assert_eq!(reply[0], 0, "getPINRetries: {reply:02x?}");
    let arena = Arena::new();
    let params = Parameters::decode(&reply[1..], &arena).unwrap();
    cbor::integer(params.get(3).unwrap()).unwrap() as u8
}

fn connect(addr: SocketAddr, timeout: Duration) -> Option<UdpTransport> {
    let mut token = UdpTransport::connect(addr).ok()?;
    token.set_timeout(timeout);
    Some(token)
}

/// What a run's host saw: the counts after its answered attempts, the tokens it tried, and the
/// one whose attempt the kill cut off.
struct Seen {
    known: Vec<u8>,
    tried: BTreeSet<usize>,
    in_flight: Option<usize>,
}

/// Sends wrong PINs, token after token, until the kill; checks each answer against the count.
/// Sets `armed` as it begins the attempt after `arm_after` answered ones.
fn wrong_pins(
    addrs: &[SocketAddr],
    mut known: Vec<u8>,
    stop: &AtomicBool,
    armed: &AtomicBool,
    arm_after: usize,
) -> Seen {
    let mut seen_mismatches = vec![0u8; addrs.len()];
    let mut tried = BTreeSet::new();
    let mut attempts = 0;
    for (index, addr) in addrs.iter().enumerate() {
        if known[index] == 0 {
            continue;
        }
        let Some(mut token) = connect(*addr, Duration::from_millis(300)) else {
            return Seen {
                known,
                tried,
                in_flight: None,
            };
        };
        while known[index] > 0 && seen_mismatches[index] < 3 {
            if stop.load(Ordering::Relaxed) {
                return Seen {
                    known,
                    tried,
                    in_flight: None,
                };
            }
            tried.insert(index);
            if attempts == arm_after {
                armed.store(true, Ordering::Relaxed);
            }
            attempts += 1;
            let Some(status) = attempt(&mut token, b"0000") else {
                return Seen {
                    known,
                    tried,
                    in_flight: Some(index),
                };
            };
            known[index] -= 1;
            seen_mismatches[index] += 1;
            let expected = if known[index] == 0 {
                PIN_BLOCKED
            } else if seen_mismatches[index] == 3 {
                PIN_AUTH_BLOCKED
            } else {
                PIN_INVALID
            };
            assert_eq!(status, expected, "{}: {} left", name(index), known[index]);
        }
    }
    Seen {
        known,
        tried,
        in_flight: None,
    }
}

#[test]
fn sigkill_during_pin_attempts_never_gives_an_attempt_back() {
    let begun = Instant::now();
    let names: Vec<String> = (0..TOKENS).map(name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (dir, store) = common::store_with(&names);
    let hash: [u8; 16] = digest(&SHA256, PIN).as_ref()[..16].try_into().unwrap();
    for name in &names {
        store.load(name).unwrap().pin.set(&hash, 4).unwrap();
    }
    drop(store);
    let store = dir.path().join("store");

    let mut known = vec![8u8; TOKENS];
    let mut last = Seen {
        known: known.clone(),
        tried: BTreeSet::new(),
        in_flight: None,
    };
    let mut rng = rand::thread_rng();
    let mut answered = 0;
    let mut cut_off = 0;
    for run in 0..KILLS {
        assert!(begun.elapsed() < BOUND, "run {run} began after {BOUND:?}");
        let mut server = common::Server::start(&store, &names, "auto");
        let addrs: Vec<SocketAddr> = names.iter().map(|n| server.addr(n)).collect();

        // What the last run's host saw, and at most one attempt more, is what the token kept.
        for &index in last.tried.iter().chain(&last.in_flight) {
            let count = retries(&mut connect(addrs[index], Duration::from_secs(5)).unwrap());
            let lowest = known[index].saturating_sub(u8::from(last.in_flight == Some(index)));
            assert!(
                (lowest..=known[index]).contains(&count),
                "run {run}: {} has {count} attempts, the host saw {} ({:?} cut off)",
                name(index),
                known[index],
                last.in_flight.map(name)
            );
            known[index] = count;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(false));
        let arm_after = rng.gen_range(0..4);
        let host = {
            let (stop, armed) = (Arc::clone(&stop), Arc::clone(&armed));
            let (known, addrs) = (known.clone(), addrs.clone());
            std::thread::spawn(move || wrong_pins(&addrs, known, &stop, &armed, arm_after))
        };
        let waited = Instant::now();
        while !armed.load(Ordering::Relaxed) && waited.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..2000)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        last = host.join().unwrap();
        answered += last
            .tried
            .iter()
            .map(|&i| usize::from(known[i] - last.known[i]))
            .sum::<usize>();
        cut_off += usize::from(last.in_flight.is_some());
        known.clone_from(&last.known);
    }
    eprintln!(
        "{KILLS} kills: {answered} wrong PINs answered, {cut_off} attempts cut off, {} tokens \
         blocked",
        known.iter().filter(|&&k| k == 0).count()
    );
    assert!(
        answered >= 200 && cut_off >= 100,
        "the kills came during attempts: {answered} answered, {cut_off} cut off"
    );

    // At the end: each count as seen (the last cut-off attempt resolved); the blocked tokens
    // refuse the right PIN, the others take it.
    let server = common::Server::start(&store, &names, "auto");
    for (index, name) in names.iter().enumerate() {
        let mut token = connect(server.addr(name), Duration::from_secs(5)).unwrap();
        let count = retries(&mut token);
        let lowest = known[index].saturating_sub(u8::from(last.in_flight == Some(index)));
        assert!((lowest..=known[index]).contains(&count), "{name}: {count}");
        if count == 0 {
            assert_eq!(attempt(&mut token, PIN), Some(PIN_BLOCKED), "{name}");
        } else {
            assert_eq!(attempt(&mut token, PIN), Some(0), "{name}");
            assert_eq!(retries(&mut token), 8, "{name}");
        }
    }
    assert!(
        known.iter().filter(|&&k| k == 0).count() >= 5,
        "some tokens were blocked: {known:?}"
    );
}
