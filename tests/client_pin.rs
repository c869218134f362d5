//! clientPIN in-process (CTAP 2.1 §6.5): what needs a clock or a power cycle under the test's
//! control. The pinUvAuthToken's time limits, its death at a power cycle, the legacy
//! getPinToken's permissions and RP binding, a token from built-in UV standing for the touch,
//! and built-in UV that fails (`--uv deny`, a finger that never matches): uvRetries lowered
//! durably by each attempt, the statuses of each command, blocked at zero until a PIN is used
//! or the token is reset. A platform of the test's own drives the token through the public PIN/UV auth protocol
//! (`vu2f::ctap2::pin_protocol`, itself checked against python-fido2's); python-fido2 drives the
//! same over UDP in tests/python/test_client_pin_udp.py.
mod common;

use std::time::{Duration, Instant};

use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use vu2f::ctap2::cbor::{self, text_map, uint_map, Arena, Parameters, Value};
use vu2f::ctap2::pin_protocol::{encapsulate, PinUvAuthProtocol, SharedSecret};
use vu2f::ctap2::{Authenticator, Status, Step};
use vu2f::u2f::PresencePolicy;

const CLIENT_PIN: u8 = 0x06;
const MC: u64 = 0x01;
const GA: u64 = 0x02;

fn token_with(
    presence: PresencePolicy,
    uv: Option<PresencePolicy>,
) -> (tempfile::TempDir, Authenticator) {
    common::fido2_token(presence, uv)
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// Runs `command` with `params` at `now` (nothing may wait); returns the status and the body.
fn call(token: &mut Authenticator, command: u8, params: Value, now: Instant) -> (u8, Vec<u8>) {
    let request = [vec![command], cbor::encode(&params)].concat();
    match token.start(&request, now) {
        Step::Done(reply) => (reply[0], reply[1..].to_vec()),
        Step::WaitingForUser => panic!("waits for the user"),
    }
}

/// The platform's side of one key agreement.
struct Platform {
    protocol: PinUvAuthProtocol,
    key_agreement: Value,
    shared: SharedSecret,
}

fn agree(token: &mut Authenticator, protocol: PinUvAuthProtocol, now: Instant) -> Platform {
    let params = uint_map([(1, int(protocol as i64)), (2, int(2))]);
    let (status, body) = call(token, CLIENT_PIN, params, now);
    assert_eq!(status, 0);
    let arena = Arena::new();
    let reply = Parameters::decode(&body, &arena).unwrap();
    let (key_agreement, shared) =
        encapsulate(protocol, reply.get(1).unwrap(), &SystemRandom::new()).unwrap();
    Platform {
        protocol,
        key_agreement,
        shared,
    }
}

fn set_pin(token: &mut Authenticator, pin: &str, now: Instant) {
    let platform = agree(token, PinUvAuthProtocol::Two, now);
    let mut padded = pin.as_bytes().to_vec();
    padded.resize(64, 0);
    let new_pin_enc = platform.shared.encrypt(&padded, &SystemRandom::new());
    let params = uint_map([
        (1, int(2)),
        (2, int(3)),
        (3, platform.key_agreement),
        (4, Value::Bytes(platform.shared.authenticate(&new_pin_enc))),
        (5, Value::Bytes(new_pin_enc)),
    ]);
    assert_eq!(call(token, CLIENT_PIN, params, now), (0, Vec::new()));
}

/// A pinUvAuthToken through `sub_command` (0x05, 0x06 or 0x09) with the PIN "1234", or the
/// status that refuses it.
fn pin_uv_auth_token(
    token: &mut Authenticator,
    protocol: PinUvAuthProtocol,
    sub_command: i64,
    extra: Vec<(u64, Value)>,
    now: Instant,
) -> Result<(PinUvAuthProtocol, Vec<u8>), u8> {
    let platform = agree(token, protocol, now);
    let mut params = vec![
        (1, int(protocol as i64)),
        (2, int(sub_command)),
        (3, platform.key_agreement),
    ];
    if sub_command != 0x06 {
        let hash = digest(&SHA256, b"1234");
        let pin_hash_enc = platform
            .shared
            .encrypt(&hash.as_ref()[..16], &SystemRandom::new());
        params.push((6, Value::Bytes(pin_hash_enc)));
    }
    params.extend(extra);
    let (status, body) = call(token, CLIENT_PIN, uint_map(params), now);
    if status != 0 {
        return Err(status);
    }
    let arena = Arena::new();
    let reply = Parameters::decode(&body, &arena).unwrap();
    let encrypted = cbor::bytes(reply.get(2).unwrap()).unwrap();
    let plain = platform.shared.decrypt(encrypted).unwrap();
    assert_eq!(plain.len(), 32);
    Ok((platform.protocol, plain.to_vec()))
}

fn with_permissions(permissions: u64, rp_id: &str) -> Vec<(u64, Value)> {
    vec![
        (9, int(permissions as i64)),
        (10, Value::Text(rp_id.into())),
    ]
}

/// makeCredential (not discoverable) for `rp`, with the token's pinUvAuthParam when given;
/// returns the status, and the credential id and authData flags of a success.
fn make(
    token: &mut Authenticator,
    rp: &str,
    with: Option<&(PinUvAuthProtocol, Vec<u8>)>,
    now: Instant,
) -> (u8, Option<(Vec<u8>, u8)>) {
    make_with(token, rp, with, Vec::new(), now)
}

/// [`make`] with these options (`uv: true` for built-in UV).
fn make_with(
    token: &mut Authenticator,
    rp: &str,
    with: Option<&(PinUvAuthProtocol, Vec<u8>)>,
    options: Vec<(&str, Value)>,
    now: Instant,
) -> (u8, Option<(Vec<u8>, u8)>) {
    let client_data_hash = [0xCD; 32];
    let mut params = vec![
        (1, Value::Bytes(client_data_hash.to_vec())),
        (2, text_map([("id", Value::Text(rp.into()))])),
        (3, text_map([("id", Value::Bytes(b"user".to_vec()))])),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", int(-7)),
                ("type", Value::Text("public-key".into())),
            ])]),
        ),
    ];
    if !options.is_empty() {
        params.push((7, text_map(options)));
    }
    if let Some((protocol, pin_token)) = with {
        params.push((
            8,
            Value::Bytes(protocol.authenticate(pin_token, &client_data_hash)),
        ));
        params.push((9, int(*protocol as i64)));
    }
    let (status, body) = call(token, 0x01, uint_map(params), now);
    if status != 0 {
        return (status, None);
    }
    let arena = Arena::new();
    let reply = Parameters::decode(&body, &arena).unwrap();
    let auth_data = cbor::bytes(reply.get(2).unwrap()).unwrap();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    (
        status,
        Some((auth_data[55..55 + id_len].to_vec(), auth_data[32])),
    )
}

/// A silent getAssertion (`up: false`) of `id` for `rp` with the token's pinUvAuthParam; the
/// status and the authData flags.
fn silent_get(
    token: &mut Authenticator,
    rp: &str,
    id: &[u8],
    (protocol, pin_token): &(PinUvAuthProtocol, Vec<u8>),
    now: Instant,
) -> (u8, Option<u8>) {
    let client_data_hash = [0xAB; 32];
    let params = uint_map([
        (1, Value::Text(rp.into())),
        (2, Value::Bytes(client_data_hash.to_vec())),
        (
            3,
            Value::Array(vec![text_map([
                ("id", Value::Bytes(id.to_vec())),
                ("type", Value::Text("public-key".into())),
            ])]),
        ),
        (5, text_map([("up", Value::Bool(false))])),
        (
            6,
            Value::Bytes(protocol.authenticate(pin_token, &client_data_hash)),
        ),
        (7, int(*protocol as i64)),
    ]);
    let (status, body) = call(token, 0x02, params, now);
    if status != 0 {
        return (status, None);
    }
    let arena = Arena::new();
    let reply = Parameters::decode(&body, &arena).unwrap();
    (
        status,
        Some(cbor::bytes(reply.get(2).unwrap()).unwrap()[32]),
    )
}

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const PIN_AUTH_INVALID: u8 = 0x33;

#[test]
fn a_token_lapses_unused_is_spent_by_a_touch_and_dies_at_a_power_cycle() {
    let (_dir, mut token) = token_with(PresencePolicy::Auto, None);
    let t0 = Instant::now();
    set_pin(&mut token, "1234", t0);
    for protocol in [PinUvAuthProtocol::One, PinUvAuthProtocol::Two] {
        let mc = with_permissions(MC, "a.example");
        let pin_token = pin_uv_auth_token(&mut token, protocol, 0x09, mc.clone(), t0).unwrap();
        let late = t0 + Duration::from_secs(31);
        assert_eq!(
            make(&mut token, "a.example", Some(&pin_token), late).0,
            PIN_AUTH_INVALID
        );

        let pin_token = pin_uv_auth_token(&mut token, protocol, 0x09, mc.clone(), t0).unwrap();
        let in_time = t0 + Duration::from_secs(29);
        let (status, made) = make(&mut token, "a.example", Some(&pin_token), in_time);
        assert_eq!(status, 0);
        assert_eq!(made.unwrap().1 & (UP | UV), UP | UV);
        assert_eq!(
            make(&mut token, "a.example", Some(&pin_token), in_time).0,
            PIN_AUTH_INVALID,
            "the touch spent the mc permission"
        );

        let pin_token = pin_uv_auth_token(&mut token, protocol, 0x09, mc, t0).unwrap();
        token.power_cycle();
        assert_eq!(
            make(&mut token, "a.example", Some(&pin_token), t0).0,
            PIN_AUTH_INVALID
        );
    }
}

#[test]
fn the_legacy_token_has_mc_and_ga_and_binds_to_the_first_rp_it_is_used_for() {
    let (_dir, mut token) = token_with(PresencePolicy::Auto, None);
    let now = Instant::now();
    set_pin(&mut token, "1234", now);
    let protocol = PinUvAuthProtocol::One;
    assert_eq!(
        pin_uv_auth_token(
            &mut token,
            protocol,
            0x05,
            with_permissions(GA, "a.example"),
            now
        ),
        Err(Status::InvalidParameter.byte())
    );
    // makeCredUvNotRqd: a server-side credential needs no PIN, and gets no UV.
    let (status, made) = make(&mut token, "a.example", None, now);
    assert_eq!(status, 0);
    let (id, flags) = made.unwrap();
    assert_eq!(flags & (UP | UV), UP);

    let legacy = pin_uv_auth_token(&mut token, protocol, 0x05, Vec::new(), now).unwrap();
    assert_eq!(
        silent_get(&mut token, "a.example", &id, &legacy, now),
        (0, Some(UV))
    );
    assert_eq!(
        silent_get(&mut token, "b.example", &id, &legacy, now),
        (PIN_AUTH_INVALID, None),
        "bound to a.example by its first use"
    );
    let (other, _) = pin_uv_auth_token(&mut token, protocol, 0x05, Vec::new(), now).unwrap();
    let wrong = (other, vec![0u8; 32]);
    assert_eq!(
        silent_get(&mut token, "a.example", &id, &wrong, now),
        (PIN_AUTH_INVALID, None)
    );
}

#[test]
fn a_token_from_built_in_uv_stands_for_the_touch() {
    // Presence denies every touch; built-in UV (its own gesture on the same button) verifies.
    let (_dir, mut token) = token_with(PresencePolicy::Deny, Some(PresencePolicy::Auto));
    let now = Instant::now();
    assert_eq!(
        make(&mut token, "a.example", None, now).0,
        Status::OperationDenied.byte()
    );
    let uv_token = pin_uv_auth_token(
        &mut token,
        PinUvAuthProtocol::Two,
        0x06,
        with_permissions(MC | GA, "a.example"),
        now,
    )
    .unwrap();
    let (status, made) = make(&mut token, "a.example", Some(&uv_token), now);
    assert_eq!(status, 0, "no touch asked: the UV gesture was one");
    assert_eq!(made.unwrap().1 & (UP | UV), UP | UV);
    assert_eq!(
        make(&mut token, "a.example", Some(&uv_token), now).0,
        PIN_AUTH_INVALID,
        "spent"
    );
    assert_eq!(
        pin_uv_auth_token(
            &mut token,
            PinUvAuthProtocol::Two,
            0x09,
            with_permissions(GA, "a"),
            now
        ),
        Err(Status::PinNotSet.byte()),
        "built-in UV, but no PIN"
    );
}

const UV_BLOCKED: u8 = 0x3C;
const UV_INVALID: u8 = 0x3F;

/// getUVRetries.
fn uv_retries(token: &mut Authenticator, now: Instant) -> u8 {
    let (status, body) = call(token, CLIENT_PIN, uint_map([(1, int(2)), (2, int(7))]), now);
    assert_eq!(status, 0);
    let arena = Arena::new();
    let reply = Parameters::decode(&body, &arena).unwrap();
    cbor::integer(reply.get(5).unwrap()).unwrap() as u8
}

/// getPinUvAuthTokenUsingUvWithPermissions (ga for a.example): its status.
fn uv_token_status(token: &mut Authenticator, now: Instant) -> u8 {
    let with = with_permissions(GA, "a.example");
    pin_uv_auth_token(token, PinUvAuthProtocol::Two, 0x06, with, now).map_or_else(|s| s, |_| 0)
}

/// A makeCredential that asks built-in UV (`uv: true`): its status.
fn make_verified(token: &mut Authenticator, now: Instant) -> u8 {
    make_with(
        token,
        "a.example",
        None,
        vec![("uv", Value::Bool(true))],
        now,
    )
    .0
}

/// The engine of token `t` of the store in `dir` again, as a new `serve` would make it.
fn reopen(dir: &tempfile::TempDir, uv: PresencePolicy) -> Authenticator {
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    common::ctap2_engine(&store, "t", PresencePolicy::Auto, Some(uv))
}

#[test]
fn a_finger_that_never_matches_spends_uv_retries_until_a_pin_gives_them_back() {
    let (dir, mut token) = token_with(PresencePolicy::Auto, Some(PresencePolicy::Deny));
    let now = Instant::now();
    assert_eq!(uv_retries(&mut token, now), 8);
    for left in (1..8).rev() {
        assert_eq!(uv_token_status(&mut token, now), UV_INVALID);
        assert_eq!(uv_retries(&mut token, now), left, "one attempt per call");
    }
    drop(token);
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(
        store.info("t").unwrap().uv_retries,
        1,
        "as `token show` tells it"
    );
    drop(store);
    let mut token = reopen(&dir, PresencePolicy::Deny);
    assert_eq!(uv_retries(&mut token, now), 1, "durable");
    assert_eq!(
        uv_token_status(&mut token, now),
        UV_BLOCKED,
        "the last attempt failed"
    );
    assert_eq!(uv_token_status(&mut token, now), UV_BLOCKED, "none left");
    assert_eq!(uv_retries(&mut token, now), 0);
    assert_eq!(
        make_verified(&mut token, now),
        Status::PinBlocked.byte(),
        "no PIN to fall back on"
    );
    set_pin(&mut token, "1234", now);
    assert_eq!(
        uv_retries(&mut token, now),
        0,
        "setting a PIN is not using one"
    );
    assert_eq!(
        make_verified(&mut token, now),
        Status::PuatRequired.byte(),
        "a PIN to fall back on"
    );
    pin_uv_auth_token(
        &mut token,
        PinUvAuthProtocol::One,
        0x09,
        with_permissions(MC, "a.example"),
        now,
    )
    .unwrap();
    assert_eq!(
        uv_retries(&mut token, now),
        8,
        "a right PIN unblocks built-in UV"
    );
    drop(token);
    let mut token = reopen(&dir, PresencePolicy::Auto);
    assert_eq!(uv_retries(&mut token, now), 8, "durable");
    assert_eq!(uv_token_status(&mut token, now), 0);
}

#[test]
fn make_credential_retries_a_failed_match_itself_and_a_match_or_a_reset_gives_every_attempt_back() {
    let (dir, mut token) = token_with(PresencePolicy::Auto, Some(PresencePolicy::Deny));
    let now = Instant::now();
    for left in [5, 2] {
        assert_eq!(
            make_verified(&mut token, now),
            Status::OperationDenied.byte()
        );
        assert_eq!(
            uv_retries(&mut token, now),
            left,
            "three attempts a request"
        );
    }
    drop(token);
    let mut token = reopen(&dir, PresencePolicy::Auto);
    assert_eq!(uv_retries(&mut token, now), 2);
    let (status, made) = make_with(
        &mut token,
        "a.example",
        None,
        vec![("uv", Value::Bool(true))],
        now,
    );
    assert_eq!(status, 0);
    assert_eq!(made.unwrap().1 & (UP | UV), UP | UV);
    assert_eq!(
        uv_retries(&mut token, now),
        8,
        "a match gives every attempt back"
    );
    drop(token);

    let mut token = reopen(&dir, PresencePolicy::Deny);
    for _ in 0..2 {
        make_verified(&mut token, now);
    }
    assert_eq!(make_verified(&mut token, now), Status::PinBlocked.byte());
    assert_eq!(uv_retries(&mut token, now), 0);
    assert_eq!(call(&mut token, 0x07, uint_map([]), now).0, 0, "reset");
    assert_eq!(
        uv_retries(&mut token, now),
        8,
        "a reset gives every attempt back"
    );
}

#[test]
fn an_attempt_is_spent_when_it_begins_so_a_timeout_or_a_cancel_keeps_it_spent() {
    let (_dir, mut token) = token_with(PresencePolicy::Auto, Some(PresencePolicy::Touch));
    let t0 = Instant::now();
    let platform = agree(&mut token, PinUvAuthProtocol::Two, t0);
    let request = [
        vec![CLIENT_PIN],
        cbor::encode(&uint_map([
            (1, int(2)),
            (2, int(6)),
            (3, platform.key_agreement),
            (9, int(GA as i64)),
        ])),
    ]
    .concat();
    assert_eq!(token.start(&request, t0), Step::WaitingForUser);
    assert_eq!(
        token.poll(t0 + Duration::from_secs(31)),
        Step::Done(vec![Status::UserActionTimeout.byte()])
    );
    assert_eq!(uv_retries(&mut token, t0), 7);
    assert_eq!(token.start(&request, t0), Step::WaitingForUser);
    assert_eq!(token.cancel(), vec![Status::KeepaliveCancel.byte()]);
    assert_eq!(uv_retries(&mut token, t0), 6);
    assert_eq!(token.start(&request, t0), Step::WaitingForUser);
    token.u2f().presence().button().press();
    let Step::Done(reply) = token.poll(t0) else {
        panic!("the touch verifies");
    };
    assert_eq!(reply[0], 0);
    assert_eq!(uv_retries(&mut token, t0), 8);
}

#[test]
fn a_blocked_pin_blocks_built_in_uv_too() {
    let (_dir, mut token) = token_with(PresencePolicy::Auto, Some(PresencePolicy::Auto));
    let now = Instant::now();
    set_pin(&mut token, "1234", now);
    for attempt in 0..8 {
        if attempt % 3 == 0 {
            token.power_cycle();
        }
        let platform = agree(&mut token, PinUvAuthProtocol::Two, now);
        let hash = digest(&SHA256, b"0000");
        let pin_hash_enc = platform
            .shared
            .encrypt(&hash.as_ref()[..16], &SystemRandom::new());
        let params = uint_map([
            (1, int(2)),
            (2, int(5)),
            (3, platform.key_agreement),
            (6, Value::Bytes(pin_hash_enc)),
        ]);
        assert_ne!(call(&mut token, CLIENT_PIN, params, now).0, 0);
    }
    assert_eq!(uv_retries(&mut token, now), 8);
    assert_eq!(uv_token_status(&mut token, now), UV_BLOCKED);
    assert_eq!(uv_retries(&mut token, now), 0);
    assert_eq!(make_verified(&mut token, now), Status::PuatRequired.byte());
}
