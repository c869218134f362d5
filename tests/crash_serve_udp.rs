//! Crash safety of `serve --udp` (`DESIGN.md`, "Counter"; issue 6): several clients authenticate at
//! once, each on its own socket and CTAPHID channel, while the server is killed with SIGKILL at
//! random moments, 200 times, and restarted each time. After every restart the store opens and
//! every registered key handle authenticates; across all runs no counter value of a token is
//! handed out twice and none goes back.
mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use vu2f::transport::{TokenTransport, UdpTransport};
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};

const KILLS: usize = 200;
/// The whole test must end within this, restarts included.
const BOUND: Duration = Duration::from_secs(600);

/// One registered credential: which token holds it and how to ask for a signature.
#[derive(Clone)]
struct Credential {
    token: String,
    app: [u8; 32],
    challenge: [u8; 32],
    registration: Arc<RegistrationResponse>,
}

impl Credential {
    fn request(&self) -> Vec<u8> {
        messages::authenticate_request(
            Control::EnforcePresenceAndSign,
            &self.challenge,
            &self.app,
            &self.registration.key_handle,
        )
    }

    /// Authenticates once; the counter of a valid signature, or `None` when the server is gone.
    fn authenticate(&self, token: &mut UdpTransport) -> Option<u32> {
        let response = token.exchange(&self.request()).ok()?;
        let data = messages::split_status(&response).expect("9000 while the server is alive");
        let auth = AuthenticationResponse::try_from(data).unwrap();
        auth.verify(&self.app, &self.challenge, &self.registration.public_key)
            .expect("a valid signature");
        Some(auth.counter)
    }
}

fn register(addr: SocketAddr, token: &str, app_name: &str) -> Credential {
    let app = messages::app_param(app_name);
    let challenge = messages::challenge_param(app_name.as_bytes());
    let registration =
        common::register(&mut UdpTransport::connect(addr).unwrap(), &app, &challenge);
    Credential {
        token: token.into(),
        app,
        challenge,
        registration: Arc::new(registration),
    }
}

/// Every counter value a token handed out, in the order of the runs.
#[derive(Default)]
struct Seen {
    runs: HashMap<String, Vec<Vec<u32>>>,
}

impl Seen {
    fn record(&mut self, run: usize, token: &str, counters: &[u32]) {
        let runs = self.runs.entry(token.to_owned()).or_default();
        runs.resize_with(run + 1, Vec::new);
        runs[run].extend_from_slice(counters);
    }

    /// No value twice for one token; every value of a run above every value of earlier runs.
    fn check(&self) -> usize {
        let mut total = 0;
        for (token, runs) in &self.runs {
            let mut unique = HashSet::new();
            let mut highest_before: Option<u32> = None;
            for (run, values) in runs.iter().enumerate() {
                for &value in values {
                    assert!(
                        unique.insert(value),
                        "token {token}: counter {value} handed out twice"
                    );
                    if let Some(highest) = highest_before {
                        assert!(
                            value > highest,
                            "token {token}: counter {value} in run {run} after {highest} before it"
                        );
                    }
                }
                highest_before = values.iter().copied().max().max(highest_before);
                total += values.len();
            }
        }
        total
    }
}

#[test]
fn sigkill_under_concurrent_load_loses_no_handle_and_repeats_no_counter() {
    let begun = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let tokens = ["a", "b"];
    for token in tokens {
        assert!(common::vu2f(&store)
            .args(["token", "create", token])
            .status()
            .unwrap()
            .success());
    }

    let credentials = {
        let server = common::Server::start(&store, &tokens, "auto");
        let a = server.addrs[0].1;
        let b = server.addrs[1].1;
        vec![
            register(a, "a", "https://one.kill.vu2f.invalid"),
            register(a, "a", "https://two.kill.vu2f.invalid"),
            register(b, "b", "https://three.kill.vu2f.invalid"),
        ]
    };

    let mut seen = Seen::default();
    let mut rng = rand::thread_rng();
    let mut during_load = 0;
    for run in 0..KILLS {
        assert!(begun.elapsed() < BOUND, "run {run} began after {BOUND:?}");
        let mut server = common::Server::start(&store, &tokens, "auto");
        let addr_of: HashMap<String, SocketAddr> = server.addrs.iter().cloned().collect();

        for credential in &credentials {
            let mut udp = UdpTransport::connect(addr_of[&credential.token]).unwrap();
            let counter = credential
                .authenticate(&mut udp)
                .unwrap_or_else(|| panic!("run {run}: a registered handle failed after restart"));
            seen.record(run, &credential.token, &[counter]);
        }

        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = credentials
            .iter()
            .map(|credential| {
                let (stop, credential) = (Arc::clone(&stop), credential.clone());
                let addr = addr_of[&credential.token];
                std::thread::spawn(move || {
                    let mut counters = Vec::new();
                    let Ok(mut udp) = UdpTransport::connect(addr) else {
                        return (credential.token, counters);
                    };
                    udp.set_timeout(Duration::from_millis(300));
                    while !stop.load(Ordering::Relaxed) {
                        let Some(counter) = credential.authenticate(&mut udp) else {
                            break;
                        };
                        if let Some(&last) = counters.last() {
                            assert!(counter > last, "one client saw {last} then {counter}");
                        }
                        counters.push(counter);
                    }
                    (credential.token, counters)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..120)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            let (token, counters) = client.join().unwrap();
            during_load += counters.len();
            seen.record(run, &token, &counters);
        }
    }
    let total = seen.check();
    assert!(
        during_load > KILLS,
        "enough signatures under load to mean something: {during_load}"
    );
    eprintln!(
        "{KILLS} SIGKILLs, {total} signatures checked ({during_load} under load) in {:.1} s",
        begun.elapsed().as_secs_f64()
    );
}
