//! uvRetries cannot be cheated by killing the token (CTAP 2.1 performBuiltInUv: an attempt is
//! counted before the user is matched; DESIGN.md, "FIDO2": everything a host may count on
//! survives `kill -9`). `serve --udp --uv deny` (a finger that never matches) is killed with
//! SIGKILL 50 times while a host asks for pinUvAuthTokens through built-in UV
//! (getPinUvAuthTokenUsingUvWithPermissions, protocol 2), as `common::kill_attempts` has it:
//! after every restart a token's getUVRetries is never above the last one the host saw, and
//! lower by one at most; every answered attempt lowered it by exactly one, with UV_INVALID, or
//! UV_BLOCKED when it left none. At the end a blocked token stays blocked, and the right PIN
//! gives every attempt back.
mod common;

use std::time::Duration;

use common::kill_attempts::{self, Attempts};
use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use vu2f::ctap2::cbor::{Arena, Parameters, Value};
use vu2f::ctap2::pin_protocol::{encapsulate, PinUvAuthProtocol};
use vu2f::transport::UdpTransport;

const KILLS: usize = 50;
/// Tokens with built-in UV: 8 attempts each, more than the runs spend.
const TOKENS: usize = 30;
/// The whole test must end within this, restarts included.
const BOUND: Duration = Duration::from_secs(600);
const UV_BLOCKED: u8 = 0x3C;
const UV_INVALID: u8 = 0x3F;

/// After a getKeyAgreement, getPinUvAuthTokenUsingUvWithPermissions (ga), or with
/// `pin_hash_enc` getPinUvAuthTokenUsingPinWithPermissions: the status, or `None` when the
/// token did not answer (killed).
fn ask_token(token: &mut UdpTransport, pin: Option<&[u8]>) -> Option<u8> {
    let int = |i: i64| Value::Integer(i.into());
    let reply = kill_attempts::client_pin(token, vec![(1, int(2)), (2, int(2))])?;
    assert_eq!(reply.first(), Some(&0), "getKeyAgreement: {reply:02x?}");
    let arena = Arena::new();
    let params = Parameters::decode(&reply[1..], &arena).unwrap();
    let (key_agreement, shared) = encapsulate(
        PinUvAuthProtocol::Two,
        params.get(1).unwrap(),
        &SystemRandom::new(),
    )
    .unwrap();
    let mut request = vec![
        (1, int(2)),
        (2, int(if pin.is_some() { 9 } else { 6 })),
        (3, key_agreement),
        (9, int(2)),
    ];
    if let Some(pin) = pin {
        let hash = digest(&SHA256, pin);
        let pin_hash_enc = shared.encrypt(&hash.as_ref()[..16], &SystemRandom::new());
        request.push((6, Value::Bytes(pin_hash_enc)));
    }
    kill_attempts::client_pin(token, request)?.first().copied()
}

/// Built-in UV attempts with a finger that never matches.
struct FailedMatches;

impl Attempts for FailedMatches {
    const IN_A_ROW: u8 = 4;

    fn attempt(token: &mut UdpTransport) -> Option<u8> {
        ask_token(token, None)
    }

    fn retries(token: &mut UdpTransport) -> u8 {
        kill_attempts::count(token, 7, 5)
    }

    fn status(left: u8, _: u8) -> u8 {
        if left == 0 {
            UV_BLOCKED
        } else {
            UV_INVALID
        }
    }
}

#[test]
fn sigkill_during_uv_attempts_never_gives_an_attempt_back() {
    let (names, _dir, store) = kill_attempts::tokens_with_pin("uv", TOKENS, b"1234");
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let serve_args = ["--uv", "deny"];

    let killed = kill_attempts::kill_during_attempts::<FailedMatches>(
        &store,
        &names,
        &serve_args,
        8,
        KILLS,
        BOUND,
    );
    let blocked = killed.known.iter().filter(|&&k| k == 0).count();
    eprintln!(
        "{KILLS} kills: {} failed matches answered, {} attempts cut off, {blocked} tokens \
         blocked",
        killed.answered, killed.cut_off
    );
    assert!(
        killed.answered >= 50 && killed.cut_off >= 25,
        "the kills came during attempts: {} answered, {} cut off",
        killed.answered,
        killed.cut_off
    );
    assert!(blocked >= 2, "some tokens were blocked: {:?}", killed.known);

    // At the end: each count as seen (the last cut-off attempt resolved); a blocked token stays
    // blocked, the others fail one more match; the right PIN gives every attempt back.
    let server = common::Server::start_with(&store, &names, "auto", &[], &serve_args);
    for (index, name) in names.iter().enumerate() {
        let mut token = kill_attempts::connect(server.addr(name), Duration::from_secs(5)).unwrap();
        let count = FailedMatches::retries(&mut token);
        killed.check(index, count);
        let expected = FailedMatches::status(count.saturating_sub(1), 1);
        assert_eq!(ask_token(&mut token, None), Some(expected), "{name}");
        assert_eq!(ask_token(&mut token, Some(b"1234")), Some(0), "{name}");
        assert_eq!(FailedMatches::retries(&mut token), 8, "{name}");
    }
}
