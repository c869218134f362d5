//! The kill test of a retry count, shared by `tests/crash_pin.rs` (PIN attempts) and
//! `tests/crash_uv.rs` (built-in UV attempts): `serve --udp` is killed with SIGKILL while a host
//! spends failing attempts on many tokens, each kill 0 to 2 ms after the host began an attempt
//! (a random one of the run's first four), so that most land inside one, and restarted each
//! time. After every restart a token's count is never above the last one the host saw, and
//! lower by one at most (the attempt the kill cut off, answered or not); every answered attempt
//! lowered it by exactly one, with the status of its place ([`Attempts::status`]).
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use ring::digest::{digest, SHA256};
use vu2f::ctap2::cbor::{self, uint_map, Arena, Parameters, Value};
use vu2f::transport::UdpTransport;

/// The attempts a kill test spends, and how a token answers them.
pub trait Attempts {
    /// Attempts a host makes on one token before it moves on to the next (PIN: three in a row
    /// want a power cycle).
    const IN_A_ROW: u8;
    /// One failing attempt: its status, or `None` when the token did not answer (killed).
    fn attempt(token: &mut UdpTransport) -> Option<u8>;
    /// The count as the token tells it (getPINRetries, getUVRetries).
    fn retries(token: &mut UdpTransport) -> u8;
    /// The status of an answered attempt that left `left`, the `in_a_row`-th on its token since
    /// the token was started.
    fn status(left: u8, in_a_row: u8) -> u8;
}

/// authenticatorClientPIN (0x06) with `params`: the reply, or `None` when the token did not
/// answer.
pub fn client_pin(token: &mut UdpTransport, params: Vec<(u64, Value)>) -> Option<Vec<u8>> {
    token
        .cbor(&[vec![0x06], cbor::encode(&uint_map(params))].concat())
        .ok()
}

/// getPINRetries (member 3) or getUVRetries (member 5), protocol 2: the count.
pub fn count(token: &mut UdpTransport, sub_command: i64, member: u64) -> u8 {
    let params = vec![
        (1, Value::Integer(2.into())),
        (2, Value::Integer(sub_command.into())),
    ];
    let reply = client_pin(token, params).unwrap();
    assert_eq!(reply[0], 0, "subcommand {sub_command}: {reply:02x?}");
    let arena = Arena::new();
    let params = Parameters::decode(&reply[1..], &arena).unwrap();
    cbor::integer(params.get(member).unwrap()).unwrap() as u8
}

/// `count` token names (`prefix-00`, …), and a store with those tokens, each with the PIN `pin`:
/// the store's directory (holding it) and its path.
pub fn tokens_with_pin(
    prefix: &str,
    count: usize,
    pin: &[u8],
) -> (Vec<String>, tempfile::TempDir, PathBuf) {
    let names: Vec<String> = (0..count).map(|n| format!("{prefix}-{n:02}")).collect();
    let (dir, store) = super::store_with(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let hash: [u8; 16] = digest(&SHA256, pin).as_ref()[..16].try_into().unwrap();
    for name in &names {
        store.load(name).unwrap().pin.set(&hash, 4).unwrap();
    }
    let path = dir.path().join("store");
    (names, dir, path)
}

/// A connection to a token, answering within `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Option<UdpTransport> {
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

/// Spends attempts, token after token, until the kill; checks each answer against the count.
/// Sets `armed` as it begins the attempt after `arm_after` answered ones.
fn spend<A: Attempts + 'static>(
    addrs: &[SocketAddr],
    mut known: Vec<u8>,
    stop: &AtomicBool,
    armed: &AtomicBool,
    arm_after: usize,
) -> Seen {
    let mut in_a_row = vec![0u8; addrs.len()];
    let mut tried = BTreeSet::new();
    let mut attempts = 0;
    for (index, addr) in addrs.iter().enumerate() {
        if known[index] == 0 {
            continue;
        }
        let Some(mut token) = connect(*addr, Duration::from_millis(300)) else {
            break;
        };
        while known[index] > 0 && in_a_row[index] < A::IN_A_ROW {
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
            let Some(status) = A::attempt(&mut token) else {
                return Seen {
                    known,
                    tried,
                    in_flight: Some(index),
                };
            };
            known[index] -= 1;
            in_a_row[index] += 1;
            let expected = A::status(known[index], in_a_row[index]);
            assert_eq!(status, expected, "token {index}: {} left", known[index]);
        }
    }
    Seen {
        known,
        tried,
        in_flight: None,
    }
}

/// What the kills left: the counts the host last saw, the token whose attempt the last kill cut
/// off, and the attempts answered and cut off in all.
pub struct Killed {
    pub known: Vec<u8>,
    pub in_flight: Option<usize>,
    pub answered: usize,
    pub cut_off: usize,
}

impl Killed {
    /// Checks a token's count as the token tells it after the last kill: as the host saw it, or
    /// lower by the attempt the kill cut off.
    pub fn check(&self, index: usize, count: u8) {
        let known = self.known[index];
        let lowest = known.saturating_sub(u8::from(self.in_flight == Some(index)));
        assert!(
            (lowest..=known).contains(&count),
            "token {index} has {count} attempts, the host saw {known} ({:?} cut off)",
            self.in_flight
        );
    }
}

/// Serves `names` of the store in `store` (`serve --udp` with `serve_args`) `kills` times, each
/// killed during the host's attempts, every token starting with `start` attempts; checks each
/// restart against what the host saw, all within `bound`.
pub fn kill_during_attempts<A: Attempts + 'static>(
    store: &Path,
    names: &[&str],
    serve_args: &[&str],
    start: u8,
    kills: usize,
    bound: Duration,
) -> Killed {
    let begun = Instant::now();
    let mut last = Killed {
        known: vec![start; names.len()],
        in_flight: None,
        answered: 0,
        cut_off: 0,
    };
    let mut tried = BTreeSet::new();
    let mut rng = rand::thread_rng();
    for run in 0..kills {
        assert!(begun.elapsed() < bound, "run {run} began after {bound:?}");
        let mut server = super::Server::start_with(store, names, "auto", &[], serve_args);
        let addrs: Vec<SocketAddr> = names.iter().map(|n| server.addr(n)).collect();

        // What the last run's host saw, and at most one attempt more, is what the token kept.
        for &index in tried.iter().chain(&last.in_flight) {
            let count = A::retries(&mut connect(addrs[index], Duration::from_secs(5)).unwrap());
            last.check(index, count);
            last.known[index] = count;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(false));
        let arm_after = rng.gen_range(0..4);
        let host = {
            let (stop, armed) = (Arc::clone(&stop), Arc::clone(&armed));
            let (known, addrs) = (last.known.clone(), addrs.clone());
            std::thread::spawn(move || spend::<A>(&addrs, known, &stop, &armed, arm_after))
        };
        let waited = Instant::now();
        while !armed.load(Ordering::Relaxed) && waited.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..2000)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let seen = host.join().unwrap();
        last.answered += seen
            .tried
            .iter()
            .map(|&i| usize::from(last.known[i] - seen.known[i]))
            .sum::<usize>();
        last.cut_off += usize::from(seen.in_flight.is_some());
        last.known = seen.known;
        last.in_flight = seen.in_flight;
        tried = seen.tried;
    }
    last
}
