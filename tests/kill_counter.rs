//! The counter survives `kill -9` (`DESIGN.md`, "Counter"): `serve --udp` is killed at random
//! moments while a client authenticates in a loop, restarted, and across all runs no counter value
//! is seen twice and none goes back.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use vu2f::transport::{TokenTransport, UdpTransport};
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};

const KILLS: usize = 40;

#[test]
fn no_counter_value_repeats_or_goes_back_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(common::vu2f(&store)
        .args(["token", "create", "k"])
        .status()
        .unwrap()
        .success());
    let app = messages::app_param("https://kill.vu2f.invalid");
    let challenge = messages::challenge_param(b"kill");

    let registration = {
        let server = common::Server::start(&store, &["k"], "auto");
        let mut token = UdpTransport::connect(server.addrs[0].1).unwrap();
        let response = token
            .exchange(&messages::register_request(&challenge, &app))
            .unwrap();
        RegistrationResponse::try_from(messages::split_status(&response).unwrap()).unwrap()
    };
    let request = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &app,
        &registration.key_handle,
    );

    let mut seen: Vec<u32> = Vec::new();
    let mut rng = rand::thread_rng();
    for run in 0..KILLS {
        let mut server = common::Server::start(&store, &["k"], "auto");
        let addr = server.addrs[0].1;
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let (stop, request, public_key) =
                (Arc::clone(&stop), request.clone(), registration.public_key);
            std::thread::spawn(move || {
                let mut counters = Vec::new();
                let Ok(mut token) = UdpTransport::connect(addr) else {
                    return counters;
                };
                token.set_timeout(Duration::from_millis(200));
                while !stop.load(Ordering::Relaxed) {
                    let Ok(response) = token.exchange(&request) else {
                        break;
                    };
                    let data = messages::split_status(&response).expect("9000 while alive");
                    let auth = AuthenticationResponse::try_from(data).unwrap();
                    auth.verify(&app, &challenge, &public_key)
                        .expect("valid signature");
                    counters.push(auth.counter);
                }
                counters
            })
        };
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..250)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let counters = client.join().unwrap();
        assert!(
            !counters.is_empty() || run > 0,
            "the first run signed something"
        );
        seen.extend(counters);
    }
    assert!(
        seen.len() > KILLS,
        "enough signatures to mean something: {}",
        seen.len()
    );
    for pair in seen.windows(2) {
        assert!(
            pair[1] > pair[0],
            "counter went from {} to {}",
            pair[0],
            pair[1]
        );
    }
}
