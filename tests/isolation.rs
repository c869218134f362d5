//! Isolation between the clients of one token (issue 6), against a real `vu2f serve --udp`:
//! interleaved transactions on different CTAPHID channels never see each other's replies; LOCK
//! holds other channels off for its duration and no longer; a client that vanishes mid-message
//! holds the token only until the message timeout (FIDO U2F HID protocol v1.1, sections 2.5 and
//! 3.2.2; PROTOCOLS.md 3.4). Key handles do not cross tokens, even of the same name.
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use vu2f::hid::{fragment, Command, BROADCAST_CID};
use vu2f::transport::{InProcess, TokenTransport, UdpTransport};
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse};
use vu2f::u2f::PresencePolicy;

fn serve() -> (tempfile::TempDir, common::Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(common::vu2f(&store)
        .args(["token", "create", "t"])
        .status()
        .unwrap()
        .success());
    let server = common::Server::start(&store, &["t"], "auto");
    (dir, server)
}

fn ping(token: &mut UdpTransport, payload: &[u8]) -> Vec<u8> {
    token.transact(Command::Ping as u8, payload).unwrap()
}

/// One client's work: pings whose payload names the client, and signatures for its own app.
fn client(addr: SocketAddr, id: u8, rounds: usize) -> usize {
    let mut token = UdpTransport::connect(addr).unwrap();
    let app = messages::app_param(&format!("https://client{id}.vu2f.invalid"));
    let challenge = messages::challenge_param(&[id]);
    let registration = common::register(&mut token, &app, &challenge);
    let request = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &app,
        &registration.key_handle,
    );
    for round in 0..rounds {
        // 1 to 4 reports long, so that the messages of the two clients interleave packet by packet.
        let payload: Vec<u8> = (0..(round * 37) % 230 + 1)
            .map(|i| id ^ (i as u8) ^ (round as u8))
            .collect();
        assert_eq!(
            ping(&mut token, &payload),
            payload,
            "client {id}, round {round}"
        );
        let response = token.exchange(&request).unwrap();
        let auth =
            AuthenticationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
        auth.verify(&app, &challenge, &registration.public_key)
            .unwrap_or_else(|e| panic!("client {id}, round {round}: {e}"));
    }
    rounds
}

#[test]
fn interleaved_channels_never_see_each_others_replies() {
    let (_dir, server) = serve();
    let addr = server.addrs[0].1;
    let clients: Vec<_> = (1..=3u8)
        .map(|id| std::thread::spawn(move || client(addr, id, 150)))
        .collect();
    let rounds: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(rounds, 450);
}

#[test]
fn lock_holds_other_channels_off_for_its_duration_only() {
    let (_dir, server) = serve();
    let addr = server.addrs[0].1;
    let mut holder = UdpTransport::connect(addr).unwrap();
    let mut other = UdpTransport::connect(addr).unwrap();
    holder.transact(Command::Lock as u8, &[1]).unwrap();
    let locked_at = Instant::now();
    assert_eq!(ping(&mut holder, b"mine"), b"mine", "the holder goes on");
    let waited = std::thread::spawn(move || {
        ping(&mut other, b"theirs");
        Instant::now()
    });
    let served_at = waited.join().unwrap();
    let held = served_at - locked_at;
    assert!(
        held >= Duration::from_millis(900) && held < Duration::from_millis(1900),
        "another channel was held off for {held:?}, the lock lasts 1 s"
    );
}

#[test]
fn a_client_that_vanishes_mid_message_holds_the_token_only_until_the_timeout() {
    let (_dir, server) = serve();
    let addr = server.addrs[0].1;
    let mut other = UdpTransport::connect(addr).unwrap();
    {
        let vanishing = UdpSocket::bind("127.0.0.1:0").unwrap();
        vanishing.connect(addr).unwrap();
        vanishing
            .send(&fragment(BROADCAST_CID, Command::Init as u8, b"12345678")[0])
            .unwrap();
        let mut reply = [0u8; 64];
        vanishing
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        vanishing.recv(&mut reply).unwrap();
        let cid = u32::from_be_bytes(reply[15..19].try_into().unwrap());
        // The first of three reports of a PING, then nothing: the socket is closed.
        let reports = fragment(cid, Command::Ping as u8, &[0x55; 150]);
        assert_eq!(reports.len(), 3);
        vanishing.send(&reports[0]).unwrap();
    }
    let started = Instant::now();
    assert_eq!(ping(&mut other, b"after"), b"after");
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(300) && held < Duration::from_millis(1500),
        "held for {held:?}; the message timeout is 500 ms"
    );
}

#[test]
fn a_key_handle_never_works_on_another_token_even_of_the_same_name() {
    let (_one, first_store) = common::store_with(&["t"]);
    let (_two, second_store) = common::store_with(&["t"]);
    let first = common::engine(&first_store, "t", PresencePolicy::Auto);
    let mut second = common::engine(&second_store, "t", PresencePolicy::Auto);
    let app = messages::app_param("https://cross.vu2f.invalid");
    let challenge = messages::challenge_param(b"cross");
    let now = Instant::now();
    let registration = common::register(&mut InProcess::new(first), &app, &challenge);
    for control in [Control::CheckOnly, Control::EnforcePresenceAndSign] {
        let request =
            messages::authenticate_request(control, &challenge, &app, &registration.key_handle);
        assert_eq!(
            messages::status_of(&second.process(&request, now)),
            Some(0x6A80),
            "{control:?} on the other token"
        );
    }
}
