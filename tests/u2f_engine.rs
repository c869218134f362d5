//! The U2F engine in-process (FIDO U2F raw message formats v1.2): every answer checked against
//! the spec's status words, every signature verified.
mod common;

use std::time::{Duration, Instant};

use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};
use vu2f::u2f::{Authenticator, PresencePolicy, StatusWord};

const APP: &str = "https://example.vu2f.invalid";

fn status(response: &[u8]) -> u16 {
    messages::status_of(response).unwrap()
}

fn register(token: &mut Authenticator, app: &[u8; 32]) -> RegistrationResponse {
    let challenge = messages::challenge_param(b"register");
    let response = token.process(&messages::register_request(&challenge, app), Instant::now());
    let registration =
        RegistrationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
    registration.verify(app, &challenge).unwrap();
    registration
}

fn sign(
    token: &mut Authenticator,
    control: Control,
    app: &[u8; 32],
    handle: &[u8],
    now: Instant,
) -> Vec<u8> {
    let challenge = messages::challenge_param(b"sign");
    token.process(
        &messages::authenticate_request(control, &challenge, app, handle),
        now,
    )
}

/// The status word of an AUTHENTICATE that enforces presence.
fn enforced(token: &mut Authenticator, app: &[u8; 32], handle: &[u8], now: Instant) -> u16 {
    status(&sign(
        token,
        Control::EnforcePresenceAndSign,
        app,
        handle,
        now,
    ))
}

#[test]
fn register_then_authenticate_with_increasing_counters() {
    let (_dir, store) = common::store_with(&["t"]);
    let mut token = common::engine(&store, "t", PresencePolicy::Auto);
    let app = messages::app_param(APP);
    let reg = register(&mut token, &app);
    assert_eq!(reg.key_handle.len(), keystore::KEY_HANDLE_LEN);
    let mut last = 0;
    for i in 0..20u8 {
        let challenge = messages::challenge_param(&[i]);
        let request = messages::authenticate_request(
            Control::EnforcePresenceAndSign,
            &challenge,
            &app,
            &reg.key_handle,
        );
        let response = token.process(&request, Instant::now());
        let auth =
            AuthenticationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
        auth.verify(&app, &challenge, &reg.public_key).unwrap();
        assert_eq!(auth.flags, 0x01);
        assert_eq!(auth.counter, last + 1, "steady state is +1");
        last = auth.counter;
    }
}

#[test]
fn status_words_follow_the_spec() {
    let (_dir, store) = common::store_with(&["t", "other"]);
    let mut token = common::engine(&store, "t", PresencePolicy::Auto);
    let mut other = common::engine(&store, "other", PresencePolicy::Auto);
    let app = messages::app_param(APP);
    let reg = register(&mut token, &app);
    let now = Instant::now();

    let version = token.process(&[0, 3, 0, 0], now);
    assert_eq!(version, b"U2F_V2\x90\x00");
    assert_eq!(
        token.process(&[0, 3, 0, 0, 0, 0, 0], now),
        b"U2F_V2\x90\x00"
    );
    assert_eq!(
        status(&token.process(&[0, 3, 0, 0, 1, 0xAA], now)),
        0x6700,
        "VERSION with data"
    );
    assert_eq!(status(&token.process(&[0, 0x40, 0, 0], now)), 0x6D00);
    assert_eq!(status(&token.process(&[0x80, 3, 0, 0], now)), 0x6E00);
    assert_eq!(status(&token.process(&[0, 3], now)), 0x6700);
    assert_eq!(
        status(&token.process(&vu2f::u2f::apdu::encode_extended(1, 0, 0, &[0; 63]), now)),
        0x6700
    );

    assert_eq!(
        status(&sign(
            &mut token,
            Control::CheckOnly,
            &app,
            &reg.key_handle,
            now
        )),
        0x6985
    );
    let other_app = messages::app_param("https://other.invalid");
    assert_eq!(
        status(&sign(
            &mut token,
            Control::CheckOnly,
            &other_app,
            &reg.key_handle,
            now
        )),
        0x6A80
    );
    assert_eq!(
        enforced(&mut token, &other_app, &reg.key_handle, now),
        0x6A80
    );
    assert_eq!(
        enforced(&mut other, &app, &reg.key_handle, now),
        0x6A80,
        "another token's handle"
    );
    let mut forged = reg.key_handle.clone();
    forged[40] ^= 0x80;
    assert_eq!(enforced(&mut token, &app, &forged, now), 0x6A80);
    assert_eq!(
        status(&sign(&mut token, Control::CheckOnly, &app, &[7; 64], now)),
        0x6700,
        "a length we never issue"
    );
    assert_eq!(
        status(&sign(
            &mut token,
            Control::EnforcePresenceAndSign,
            &app,
            &reg.key_handle[..10],
            now
        )),
        0x6700
    );

    // L says more than the data holds.
    let challenge = messages::challenge_param(b"x");
    let mut truncated = messages::authenticate_request(
        Control::EnforcePresenceAndSign,
        &challenge,
        &app,
        &reg.key_handle,
    );
    truncated[4 + 3 + 64] = 200;
    assert_eq!(status(&token.process(&truncated, now)), 0x6700);
}

#[test]
fn dont_enforce_signs_without_presence_and_says_so() {
    let (_dir, store) = common::store_with(&["t"]);
    let app = messages::app_param(APP);
    let handle = register(&mut common::engine(&store, "t", PresencePolicy::Auto), &app);
    let mut token = common::engine(&store, "t", PresencePolicy::Deny);
    let now = Instant::now();
    assert_eq!(enforced(&mut token, &app, &handle.key_handle, now), 0x6985);
    let response = sign(
        &mut token,
        Control::DontEnforcePresenceAndSign,
        &app,
        &handle.key_handle,
        now,
    );
    let auth =
        AuthenticationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
    assert_eq!(auth.flags, 0x00, "user presence bit clear");
    auth.verify(
        &app,
        &messages::challenge_param(b"sign"),
        &handle.public_key,
    )
    .unwrap();
    // Registration needs presence too.
    let challenge = messages::challenge_param(b"r");
    assert_eq!(
        status(&token.process(&messages::register_request(&challenge, &app), now)),
        0x6985
    );
}

#[test]
fn presence_is_asked_for_then_consumed() {
    let (_dir, store) = common::store_with(&["t"]);
    let app = messages::app_param(APP);
    let reg = register(&mut common::engine(&store, "t", PresencePolicy::Auto), &app);

    let mut token = common::engine(&store, "t", PresencePolicy::Touch);
    let t0 = Instant::now();
    assert_eq!(enforced(&mut token, &app, &reg.key_handle, t0), 0x6985);
    token.presence().button().press();
    assert_eq!(
        status(&sign(
            &mut token,
            Control::EnforcePresenceAndSign,
            &app,
            &reg.key_handle,
            Instant::now()
        )),
        0x9000
    );
    assert_eq!(
        status(&sign(
            &mut token,
            Control::EnforcePresenceAndSign,
            &app,
            &reg.key_handle,
            Instant::now()
        )),
        0x6985,
        "one touch, one signature"
    );
    drop(token);

    let mut delayed = common::engine(
        &store,
        "t",
        PresencePolicy::Delay(Duration::from_millis(200)),
    );
    let t0 = Instant::now();
    assert_eq!(enforced(&mut delayed, &app, &reg.key_handle, t0), 0x6985);
    let t1 = t0 + Duration::from_millis(150);
    assert_eq!(enforced(&mut delayed, &app, &reg.key_handle, t1), 0x6985);
    let t2 = t0 + Duration::from_millis(200);
    assert_eq!(enforced(&mut delayed, &app, &reg.key_handle, t2), 0x9000);
}

#[test]
fn status_word_values_are_the_wire_values() {
    assert_eq!(StatusWord::WrongData.to_bytes(), [0x6A, 0x80]);
    assert_eq!(StatusWord::ConditionsNotSatisfied as u16, 0x6985);
}

/// A replug (`vu2f replug`): a touch given before it does not sign after it; the key handle and
/// the counter are durable and go on.
#[test]
fn a_touch_before_a_power_cycle_does_not_count_after_it() {
    let (_dir, store) = common::store_with(&["t"]);
    let app = messages::app_param(APP);
    let mut token = common::engine(&store, "t", PresencePolicy::Touch);
    token.presence().button().press();
    let reg = register(&mut token, &app);
    token.presence().button().press();
    let signed = sign(
        &mut token,
        Control::EnforcePresenceAndSign,
        &app,
        &reg.key_handle,
        Instant::now(),
    );
    let before = AuthenticationResponse::try_from(messages::split_status(&signed).unwrap())
        .unwrap()
        .counter;

    token.presence().button().press();
    token.power_cycle();
    assert_eq!(
        enforced(&mut token, &app, &reg.key_handle, Instant::now()),
        0x6985
    );
    token.presence().button().press();
    let signed = sign(
        &mut token,
        Control::EnforcePresenceAndSign,
        &app,
        &reg.key_handle,
        Instant::now(),
    );
    let after = AuthenticationResponse::try_from(messages::split_status(&signed).unwrap())
        .unwrap()
        .counter;
    assert!(after > before, "counter {after} after {before}");
}
