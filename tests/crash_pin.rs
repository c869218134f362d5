//! The PIN retry count cannot be cheated by killing the token (CTAP 2.1 §6.5.5.7: the retry
//! count is decremented before the PIN is compared; DESIGN.md, "FIDO2": everything a host may
//! count on survives `kill -9`). `serve --udp` is killed with SIGKILL 200 times while a host
//! sends wrong PINs (getPinUvAuthTokenUsingPinWithPermissions, protocol 2) to tokens that have
//! one, as `common::kill_attempts` has it: after every restart a token's count is never above
//! the last one the host saw, and lower by one at most; every answered attempt lowered it by
//! exactly one, with the status of its place (PIN_INVALID, PIN_AUTH_BLOCKED at the third in a
//! row since power-up, PIN_BLOCKED at zero), and a blocked token refuses even the right PIN.
mod common;

use std::time::Duration;

use common::kill_attempts::{self, Attempts};
use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use vu2f::ctap2::cbor::{Arena, Parameters, Value};
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

/// getPinUvAuthTokenUsingPinWithPermissions (ga) with `pin`, after a getKeyAgreement: the
/// status, or `None` when the token did not answer (killed).
fn attempt(token: &mut UdpTransport, pin: &[u8]) -> Option<u8> {
    let protocol = PinUvAuthProtocol::Two;
    let int = |i: i64| Value::Integer(i.into());
    let reply = kill_attempts::client_pin(token, vec![(1, int(2)), (2, int(2))])?;
    assert_eq!(reply.first(), Some(&0), "getKeyAgreement: {reply:02x?}");
    let arena = Arena::new();
    let params = Parameters::decode(&reply[1..], &arena).unwrap();
    let (key_agreement, shared) =
        encapsulate(protocol, params.get(1).unwrap(), &SystemRandom::new()).unwrap();
    let hash = digest(&SHA256, pin);
    let pin_hash_enc = shared.encrypt(&hash.as_ref()[..16], &SystemRandom::new());
    let request = vec![
        (1, int(2)),
        (2, int(9)),
        (3, key_agreement),
        (6, Value::Bytes(pin_hash_enc)),
        (9, int(2)),
        (10, Value::Text("crash.vu2f.invalid".into())),
    ];
    kill_attempts::client_pin(token, request)?.first().copied()
}

/// Wrong PINs, three in a row at most.
struct WrongPins;

impl Attempts for WrongPins {
    const IN_A_ROW: u8 = 3;

    fn attempt(token: &mut UdpTransport) -> Option<u8> {
        attempt(token, b"0000")
    }

    fn retries(token: &mut UdpTransport) -> u8 {
        kill_attempts::count(token, 1, 3)
    }

    fn status(left: u8, in_a_row: u8) -> u8 {
        if left == 0 {
            PIN_BLOCKED
        } else if in_a_row == 3 {
            PIN_AUTH_BLOCKED
        } else {
            PIN_INVALID
        }
    }
}

#[test]
fn sigkill_during_pin_attempts_never_gives_an_attempt_back() {
    let (names, _dir, store) = kill_attempts::tokens_with_pin("pin", TOKENS, PIN);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let killed =
        kill_attempts::kill_during_attempts::<WrongPins>(&store, &names, &[], 8, KILLS, BOUND);
    let blocked = killed.known.iter().filter(|&&k| k == 0).count();
    eprintln!(
        "{KILLS} kills: {} wrong PINs answered, {} attempts cut off, {blocked} tokens blocked",
        killed.answered, killed.cut_off
    );
    assert!(
        killed.answered >= 200 && killed.cut_off >= 100,
        "the kills came during attempts: {} answered, {} cut off",
        killed.answered,
        killed.cut_off
    );

    // At the end: each count as seen (the last cut-off attempt resolved); the blocked tokens
    // refuse the right PIN, the others take it.
    let server = common::Server::start(&store, &names, "auto");
    for (index, name) in names.iter().enumerate() {
        let mut token = kill_attempts::connect(server.addr(name), Duration::from_secs(5)).unwrap();
        let count = WrongPins::retries(&mut token);
        killed.check(index, count);
        if count == 0 {
            assert_eq!(attempt(&mut token, PIN), Some(PIN_BLOCKED), "{name}");
        } else {
            assert_eq!(attempt(&mut token, PIN), Some(0), "{name}");
            assert_eq!(WrongPins::retries(&mut token), 8, "{name}");
        }
    }
    assert!(blocked >= 5, "some tokens were blocked: {:?}", killed.known);
}
