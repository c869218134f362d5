//! The CTAP2 engine in-process (CTAP 2.1 sections 6.1 to 6.4): every reply parsed as a host would
//! parse it and every signature verified with the key the credential was made with. The host
//! libraries judge the same engine over UDP (tests/python/test_ctap2.py) and through the kernel.
use std::time::{Duration, Instant};

use ciborium::value::Value;
use ring::digest::{digest, SHA256};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};
use vu2f::ctap2::{Authenticator, Status, Step};
use vu2f::u2f::{self, Presence, PresencePolicy};

const ES256: i64 = -7;
const EDDSA: i64 = -8;

fn fido2_token(policy: PresencePolicy) -> (tempfile::TempDir, Authenticator) {
    fido2_token_with(policy, None)
}

fn fido2_token_with(
    policy: PresencePolicy,
    uv: Option<PresencePolicy>,
) -> (tempfile::TempDir, Authenticator) {
    fido2_token_attesting(policy, uv, keystore::AttestationType::Batch)
}

fn fido2_token_attesting(
    policy: PresencePolicy,
    uv: Option<PresencePolicy>,
    attestation: keystore::AttestationType,
) -> (tempfile::TempDir, Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    let options = keystore::TokenOptions {
        profile: keystore::Profile::Fido2,
        discoverable_limit: 3,
        attestation,
        ..Default::default()
    };
    store.create_token("t", options).unwrap();
    let u2f = u2f::Authenticator::new(store.load("t").unwrap(), Presence::new(policy));
    (dir, Authenticator::new(u2f, uv))
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn map(members: Vec<(Value, Value)>) -> Value {
    Value::Map(members)
}

fn encode(command: u8, params: Option<Value>) -> Vec<u8> {
    let mut request = vec![command];
    if let Some(params) = params {
        ciborium::ser::into_writer(&params, &mut request).unwrap();
    }
    request
}

/// A reply's status and map.
fn parse(reply: &[u8]) -> (u8, Option<Vec<(Value, Value)>>) {
    let (status, body) = reply.split_first().expect("a status byte");
    if body.is_empty() {
        return (*status, None);
    }
    let value: Value = ciborium::de::from_reader(body).expect("the reply is CBOR");
    assert_eq!(
        vu2f::ctap2::cbor::encode(&value),
        body,
        "the reply is canonical CBOR"
    );
    (*status, value.into_map().ok())
}

fn member(members: &[(Value, Value)], key: i64) -> Option<&Value> {
    members
        .iter()
        .find(|(k, _)| k.as_integer() == Some(key.into()))
        .map(|(_, v)| v)
}

fn text_member<'a>(members: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    members
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

fn done(step: Step) -> Vec<u8> {
    match step {
        Step::Done(reply) => reply,
        Step::WaitingForUser => panic!("the request waits for the user"),
    }
}

fn make_params(rp: &str, user_id: &[u8], algs: &[i64], extra: Vec<(Value, Value)>) -> Value {
    let mut members = vec![
        (int(1), Value::Bytes(vec![0xCD; 32])),
        (int(2), map(vec![(text("id"), text(rp))])),
        (
            int(3),
            map(vec![
                (text("id"), Value::Bytes(user_id.to_vec())),
                (text("name"), text("alice")),
                (text("displayName"), text("Alice")),
            ]),
        ),
        (
            int(4),
            Value::Array(
                algs.iter()
                    .map(|alg| {
                        map(vec![
                            (text("alg"), int(*alg)),
                            (text("type"), text("public-key")),
                        ])
                    })
                    .collect(),
            ),
        ),
    ];
    members.extend(extra);
    map(members)
}

fn get_params(rp: &str, client_data_hash: &[u8; 32], extra: Vec<(Value, Value)>) -> Value {
    let mut members = vec![
        (int(1), text(rp)),
        (int(2), Value::Bytes(client_data_hash.to_vec())),
    ];
    members.extend(extra);
    map(members)
}

fn allow_list(ids: &[&[u8]]) -> (Value, Value) {
    let entries = ids
        .iter()
        .map(|id| {
            map(vec![
                (text("id"), Value::Bytes(id.to_vec())),
                (text("type"), text("public-key")),
            ])
        })
        .collect();
    (int(3), Value::Array(entries))
}

fn options(members: &[(&str, bool)]) -> Value {
    map(members
        .iter()
        .map(|(k, v)| (text(k), Value::Bool(*v)))
        .collect())
}

fn sha256(data: &[u8]) -> [u8; 32] {
    digest(&SHA256, data).as_ref().try_into().unwrap()
}

/// A credential as makeCredential attested it.
struct Made {
    id: Vec<u8>,
    alg: i64,
    public_key: Vec<u8>,
    counter: u32,
    flags: u8,
    aaguid: [u8; 16],
    /// Batch attestation (x5c, verified with its certificate's key), else self attestation
    /// (no x5c, verified with the credential's own key).
    batch: bool,
}

/// Parses and checks a makeCredential reply: packed, AT set, rpIdHash, the attestation
/// signature over authData ‖ clientDataHash: by x5c[0]'s key with alg ES256 (batch), or by the
/// credential's own key with its alg (self).
fn made(reply: &[u8], rp: &str) -> Made {
    let (status, members) = parse(reply);
    assert_eq!(status, 0, "makeCredential: status {status:#04x}");
    let members = members.unwrap();
    assert_eq!(member(&members, 1), Some(&text("packed")));
    let auth_data = member(&members, 2).unwrap().as_bytes().unwrap().clone();
    assert_eq!(auth_data[..32], sha256(rp.as_bytes()));
    let flags = auth_data[32];
    assert_eq!(flags & 0x40, 0x40, "AT");
    let counter = u32::from_be_bytes(auth_data[33..37].try_into().unwrap());
    let aaguid: [u8; 16] = auth_data[37..53].try_into().unwrap();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + id_len].to_vec();
    let mut rest = &auth_data[55 + id_len..];
    let key: Value = ciborium::de::from_reader(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the COSE key");
    let key = key.into_map().unwrap();
    let alg = i64::try_from(member(&key, 3).unwrap().as_integer().unwrap()).unwrap();
    let x = member(&key, -2).unwrap().as_bytes().unwrap().clone();
    let public_key = match alg {
        ES256 => [
            vec![4],
            x,
            member(&key, -3).unwrap().as_bytes().unwrap().clone(),
        ]
        .concat(),
        EDDSA => x,
        other => panic!("alg {other}"),
    };
    let statement = member(&members, 3).unwrap().as_map().unwrap();
    let signature = text_member(statement, "sig").unwrap().as_bytes().unwrap();
    let mut signed = auth_data.clone();
    signed.extend_from_slice(&[0xCD; 32]);
    let batch = match text_member(statement, "x5c") {
        Some(x5c) => {
            assert_eq!(text_member(statement, "alg"), Some(&int(ES256)));
            let certificate = x5c.as_array().unwrap()[0].as_bytes().unwrap();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, certificate_public_key(certificate))
                .verify(&signed, signature)
                .expect("the attestation signature verifies with x5c[0]");
            true
        }
        None => {
            assert_eq!(text_member(statement, "alg"), Some(&int(alg)));
            assert_eq!(statement.len(), 2, "self attestation: alg and sig only");
            let algorithm: &dyn ring::signature::VerificationAlgorithm = match alg {
                ES256 => &ECDSA_P256_SHA256_ASN1,
                _ => &ED25519,
            };
            UnparsedPublicKey::new(algorithm, &public_key)
                .verify(&signed, signature)
                .expect("a self attestation verifies with the credential's own key");
            false
        }
    };
    Made {
        id,
        alg,
        public_key,
        counter,
        flags,
        aaguid,
        batch,
    }
}

/// The public key of a DER certificate, as ring takes it.
fn certificate_public_key(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, certificate) = X509Certificate::from_der(der).expect("x5c[0] is a certificate");
    certificate.public_key().subject_public_key.data.to_vec()
}

/// Parses and verifies a getAssertion reply for `credential`; returns its map and counter.
fn asserted(
    reply: &[u8],
    rp: &str,
    client_data_hash: &[u8; 32],
    credential: &Made,
) -> (Vec<(Value, Value)>, u32, u8) {
    let (status, members) = parse(reply);
    assert_eq!(status, 0, "getAssertion: status {status:#04x}");
    let members = members.unwrap();
    let descriptor = member(&members, 1).unwrap().as_map().unwrap();
    assert_eq!(
        text_member(descriptor, "id").unwrap().as_bytes().unwrap(),
        &credential.id
    );
    let auth_data = member(&members, 2).unwrap().as_bytes().unwrap();
    assert_eq!(auth_data.len(), 37);
    assert_eq!(auth_data[..32], sha256(rp.as_bytes()));
    let signature = member(&members, 3).unwrap().as_bytes().unwrap();
    let mut signed = auth_data.clone();
    signed.extend_from_slice(client_data_hash);
    let algorithm: &dyn ring::signature::VerificationAlgorithm = match credential.alg {
        ES256 => &ECDSA_P256_SHA256_ASN1,
        _ => &ED25519,
    };
    UnparsedPublicKey::new(algorithm, &credential.public_key)
        .verify(&signed, signature)
        .expect("the assertion verifies with the credential's key");
    let counter = u32::from_be_bytes(auth_data[33..37].try_into().unwrap());
    let flags = auth_data[32];
    (members.clone(), counter, flags)
}

fn make(token: &mut Authenticator, rp: &str, user: &[u8], alg: i64, rk: bool) -> Made {
    let extra = vec![(int(7), options(&[("rk", rk)]))];
    let reply = done(token.start(
        &encode(1, Some(make_params(rp, user, &[alg], extra))),
        Instant::now(),
    ));
    made(&reply, rp)
}

#[test]
fn get_info_says_what_the_token_is() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    let (status, info) = parse(&done(token.start(&[0x04], Instant::now())));
    assert_eq!(status, 0);
    let info = info.unwrap();
    let versions: Vec<&str> = member(&info, 1)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap())
        .collect();
    assert_eq!(versions, ["U2F_V2", "FIDO_2_0", "FIDO_2_1"]);
    assert_eq!(member(&info, 3).unwrap().as_bytes().unwrap().len(), 16);
    let options = member(&info, 4).unwrap().as_map().unwrap();
    assert_eq!(text_member(options, "rk"), Some(&Value::Bool(true)));
    assert_eq!(text_member(options, "uv"), None, "no built-in UV");
    assert_eq!(
        text_member(options, "clientPin"),
        Some(&Value::Bool(false)),
        "a PIN is possible, none is set yet"
    );
    assert_eq!(
        text_member(options, "pinUvAuthToken"),
        Some(&Value::Bool(true))
    );
    assert_eq!(member(&info, 6), Some(&Value::Array(vec![int(2), int(1)])));
    assert_eq!(member(&info, 0x0D), Some(&int(4)), "minPINLength");
    assert_eq!(member(&info, 0x14), Some(&int(3)));
}

#[test]
fn both_algorithms_make_and_sign_with_a_rising_counter() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    let (_, info) = parse(&done(token.start(&[0x04], Instant::now())));
    let aaguid = member(&info.unwrap(), 3)
        .unwrap()
        .as_bytes()
        .unwrap()
        .clone();
    for alg in [ES256, EDDSA] {
        let credential = make(&mut token, "example.com", b"user", alg, false);
        assert_eq!(credential.alg, alg);
        assert!(
            credential.batch,
            "batch attestation unless the token was made otherwise"
        );
        assert_eq!(credential.flags & 0x05, 0x01, "UP, not UV");
        assert_eq!(credential.aaguid[..], aaguid[..]);
        let mut last = credential.counter;
        for round in 0..2u8 {
            let hash = [round; 32];
            let params = get_params(
                "example.com",
                &hash,
                vec![allow_list(&[&[9; 40], &credential.id])],
            );
            let reply = done(token.start(&encode(2, Some(params)), Instant::now()));
            let (members, counter, flags) = asserted(&reply, "example.com", &hash, &credential);
            assert_eq!(flags, 0x01);
            assert!(counter > last, "counter {counter} after {last}");
            last = counter;
            assert!(
                member(&members, 4).is_none(),
                "no user for a non-discoverable credential"
            );
            assert!(
                member(&members, 5).is_none(),
                "no numberOfCredentials with an allowList"
            );
        }
    }
}

/// A token created with `--attestation self` signs each attestation with the new credential's
/// own key, in its own algorithm, and sends no certificate; the credential then signs as usual.
#[test]
fn a_self_attesting_token_signs_each_attestation_with_the_new_key() {
    let (_dir, mut token) = fido2_token_attesting(
        PresencePolicy::Auto,
        None,
        keystore::AttestationType::SelfAttestation,
    );
    for (alg, rk) in [(ES256, false), (EDDSA, false), (ES256, true)] {
        let credential = make(&mut token, "self.example", b"user", alg, rk);
        assert!(!credential.batch, "alg {alg}: self attestation");
        assert_eq!(
            credential.aaguid, [0; 16],
            "self attestation names no model"
        );
        let params = get_params(
            "self.example",
            &[4; 32],
            vec![allow_list(&[&credential.id])],
        );
        let reply = done(token.start(&encode(2, Some(params)), Instant::now()));
        let (_, counter, _) = asserted(&reply, "self.example", &[4; 32], &credential);
        assert!(counter > credential.counter);
    }
}

#[test]
fn a_credential_of_another_rp_or_token_is_not_found() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    let (_other_dir, mut other) = fido2_token(PresencePolicy::Auto);
    let credential = make(&mut token, "example.com", b"user", ES256, false);
    for (engine, rp) in [(&mut token, "example.org"), (&mut other, "example.com")] {
        let params = get_params(rp, &[1; 32], vec![allow_list(&[&credential.id])]);
        let reply = done(engine.start(&encode(2, Some(params)), Instant::now()));
        assert_eq!(reply, [Status::NoCredentials.byte()]);
    }
}

#[test]
fn discoverable_credentials_come_back_most_recent_first_and_replace_by_user() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    let first = make(&mut token, "example.com", b"user-1", ES256, true);
    let second = make(&mut token, "example.com", b"user-2", EDDSA, true);
    let _elsewhere = make(&mut token, "example.org", b"user-1", ES256, true);
    // A second credential for user-1 replaces the first.
    let third = make(&mut token, "example.com", b"user-1", ES256, true);

    let hash = [5; 32];
    let now = Instant::now();
    let reply = done(token.start(
        &encode(2, Some(get_params("example.com", &hash, vec![]))),
        now,
    ));
    let (members, c1, _) = asserted(&reply, "example.com", &hash, &third);
    assert_eq!(member(&members, 5), Some(&int(2)), "numberOfCredentials");
    let user = member(&members, 4).unwrap().as_map().unwrap();
    assert_eq!(
        text_member(user, "id"),
        Some(&Value::Bytes(b"user-1".to_vec()))
    );
    assert_eq!(text_member(user, "name"), None, "no names without UV");

    let reply = done(token.start(&[0x08], now + Duration::from_secs(1)));
    let (members, c2, _) = asserted(&reply, "example.com", &hash, &second);
    assert!(c2 > c1);
    assert!(member(&members, 5).is_none());
    assert_eq!(
        done(token.start(&[0x08], now + Duration::from_secs(2))),
        [Status::NotAllowed.byte()],
        "no third credential"
    );
    // The replaced credential is gone, even named in an allowList.
    let params = get_params("example.com", &hash, vec![allow_list(&[&first.id])]);
    assert_eq!(
        done(token.start(&encode(2, Some(params)), now)),
        [Status::NoCredentials.byte()]
    );
}

#[test]
fn get_next_assertion_expires_and_other_commands_end_it() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    make(&mut token, "example.com", b"user-1", ES256, true);
    make(&mut token, "example.com", b"user-2", ES256, true);
    let get = encode(2, Some(get_params("example.com", &[1; 32], vec![])));
    let now = Instant::now();
    assert_eq!(parse(&done(token.start(&get, now))).0, 0);
    assert_eq!(
        done(token.start(&[0x08], now + Duration::from_secs(31))),
        [Status::NotAllowed.byte()]
    );
    assert_eq!(parse(&done(token.start(&get, now))).0, 0);
    assert_eq!(parse(&done(token.start(&[0x04], now))).0, 0);
    assert_eq!(done(token.start(&[0x08], now)), [Status::NotAllowed.byte()]);
}

#[test]
fn the_discoverable_limit_is_kept_and_a_replacement_still_fits() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    for user in [b"a", b"b", b"c"] {
        make(&mut token, "example.com", user, ES256, true);
    }
    let full = make_params(
        "example.com",
        b"d",
        &[ES256],
        vec![(int(7), options(&[("rk", true)]))],
    );
    assert_eq!(
        done(token.start(&encode(1, Some(full)), Instant::now())),
        [Status::KeyStoreFull.byte()]
    );
    make(&mut token, "example.com", b"b", ES256, true);
    let (_, info) = parse(&done(token.start(&[0x04], Instant::now())));
    assert_eq!(member(&info.unwrap(), 0x14), Some(&int(0)));
}

#[test]
fn an_excluded_credential_is_refused_after_a_touch() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Touch);
    let button = token.u2f().presence().button().clone();
    button.press();
    let credential = make(&mut token, "example.com", b"user", ES256, false);
    let exclude = (
        int(5),
        Value::Array(vec![map(vec![
            (text("id"), Value::Bytes(credential.id.clone())),
            (text("type"), text("public-key")),
        ])]),
    );
    let request = encode(
        1,
        Some(make_params("example.com", b"user", &[ES256], vec![exclude])),
    );
    let now = Instant::now();
    assert_eq!(token.start(&request, now), Step::WaitingForUser);
    button.press();
    assert_eq!(
        done(token.poll(now + Duration::from_millis(100))),
        [Status::CredentialExcluded.byte()]
    );
}

#[test]
fn waiting_ends_with_a_touch_a_cancel_a_timeout_or_a_refusal() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Touch);
    let token = &mut token;
    let button = token.u2f().presence().button().clone();
    let request = encode(
        1,
        Some(make_params("example.com", b"user", &[ES256], vec![])),
    );
    let now = Instant::now();

    assert_eq!(token.start(&request, now), Step::WaitingForUser);
    assert_eq!(
        token.poll(now + Duration::from_secs(1)),
        Step::WaitingForUser
    );
    button.press();
    made(
        &done(token.poll(now + Duration::from_secs(2))),
        "example.com",
    );

    assert_eq!(token.start(&request, now), Step::WaitingForUser);
    assert_eq!(token.cancel(), [Status::KeepaliveCancel.byte()]);

    assert_eq!(token.start(&request, now), Step::WaitingForUser);
    assert_eq!(
        done(token.poll(now + Duration::from_secs(30))),
        [Status::UserActionTimeout.byte()]
    );

    let (_dir, mut denying) = fido2_token(PresencePolicy::Deny);
    assert_eq!(
        done(denying.start(&request, now)),
        [Status::OperationDenied.byte()]
    );
}

#[test]
fn up_false_signs_silently_and_options_are_checked() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Deny);
    let button = token.u2f().presence().button().clone();
    button.press();
    let credential = make(&mut token, "example.com", b"user", ES256, false);
    let silent = get_params(
        "example.com",
        &[2; 32],
        vec![
            allow_list(&[&credential.id]),
            (int(5), options(&[("up", false)])),
        ],
    );
    let reply = done(token.start(&encode(2, Some(silent)), Instant::now()));
    let (_, _, flags) = asserted(&reply, "example.com", &[2; 32], &credential);
    assert_eq!(flags, 0, "neither UP nor UV");

    let cases = [
        (
            make_params(
                "example.com",
                b"u",
                &[ES256],
                vec![(int(7), options(&[("up", false)]))],
            ),
            1,
            Status::InvalidOption,
        ),
        (
            make_params(
                "example.com",
                b"u",
                &[ES256],
                vec![(int(7), options(&[("uv", true)]))],
            ),
            1,
            Status::InvalidOption,
        ),
        (
            make_params("example.com", b"u", &[-257], vec![]),
            1,
            Status::UnsupportedAlgorithm,
        ),
        (
            get_params(
                "example.com",
                &[1; 32],
                vec![(int(5), options(&[("rk", true)]))],
            ),
            2,
            Status::UnsupportedOption,
        ),
        (
            get_params(
                "example.com",
                &[1; 32],
                vec![(int(6), Value::Bytes(vec![1; 16]))],
            ),
            2,
            Status::MissingParameter,
        ),
        (
            get_params("example.com", &[1; 32], vec![]),
            2,
            Status::NoCredentials,
        ),
    ];
    for (params, command, status) in cases {
        let reply = done(token.start(&encode(command, Some(params)), Instant::now()));
        assert_eq!(reply, [status.byte()], "expected {status}");
    }
}

#[test]
fn built_in_uv_sets_the_uv_flag_and_reveals_names() {
    let (_dir, mut token) = fido2_token_with(PresencePolicy::Deny, Some(PresencePolicy::Auto));
    let (_, info) = parse(&done(token.start(&[0x04], Instant::now())));
    let info = info.unwrap();
    let options_map = member(&info, 4).unwrap().as_map().unwrap();
    assert_eq!(text_member(options_map, "uv"), Some(&Value::Bool(true)));

    let params = make_params(
        "example.com",
        b"user",
        &[ES256],
        vec![(int(7), options(&[("rk", true), ("uv", true)]))],
    );
    let credential = made(
        &done(token.start(&encode(1, Some(params)), Instant::now())),
        "example.com",
    );
    assert_eq!(credential.flags & 0x05, 0x05, "UP and UV");
    let params = get_params(
        "example.com",
        &[3; 32],
        vec![(int(5), options(&[("uv", true)]))],
    );
    let reply = done(token.start(&encode(2, Some(params)), Instant::now()));
    let (members, _, flags) = asserted(&reply, "example.com", &[3; 32], &credential);
    assert_eq!(flags, 0x05);
    let user = member(&members, 4).unwrap().as_map().unwrap();
    assert_eq!(text_member(user, "name"), Some(&text("alice")));
    assert_eq!(text_member(user, "displayName"), Some(&text("Alice")));
}

#[test]
fn malformed_requests_get_cbor_statuses_and_unknown_commands_invalid_command() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    let now = Instant::now();
    assert_eq!(done(token.start(&[], now)), [Status::InvalidLength.byte()]);
    assert_eq!(
        done(token.start(&[0x42], now)),
        [Status::InvalidCommand.byte()]
    );
    assert_eq!(
        done(token.start(&[0x01, 0xA1], now)),
        [Status::InvalidCbor.byte()]
    );
    assert_eq!(
        done(token.start(&[0x02, 0x80], now)),
        [Status::CborUnexpectedType.byte()]
    );
    assert_eq!(
        done(token.start(&[0x01, 0xA0], now)),
        [Status::MissingParameter.byte()]
    );
}

#[test]
fn a_u2f_key_handle_signs_over_ctap2_and_a_ctap2_es256_credential_over_u2f() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    let app_id = "https://example.com";
    let app = sha256(app_id.as_bytes());
    let mut register = vec![0x00, 0x01, 0x03, 0x00, 0x00, 0x00, 0x40];
    register.extend_from_slice(&[7; 32]);
    register.extend_from_slice(&app);
    register.extend_from_slice(&[0x00, 0x00]);
    let response = token.u2f_mut().process(&register, Instant::now());
    assert_eq!(response[response.len() - 2..], [0x90, 0x00]);
    let public_key = response[1..66].to_vec();
    let handle_len = usize::from(response[66]);
    let handle = response[67..67 + handle_len].to_vec();
    let u2f_credential = Made {
        id: handle.clone(),
        alg: ES256,
        public_key,
        counter: 0,
        flags: 1,
        aaguid: [0; 16],
        batch: true,
    };
    // WebAuthn's appid extension: the AppID stands in for the RP ID.
    let params = get_params(app_id, &[4; 32], vec![allow_list(&[&handle])]);
    let reply = done(token.start(&encode(2, Some(params)), Instant::now()));
    asserted(&reply, app_id, &[4; 32], &u2f_credential);

    let credential = make(&mut token, "example.com", b"user", ES256, false);
    let mut authenticate = vec![0x00, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00];
    let mut data = vec![8; 32];
    data.extend_from_slice(&sha256(b"example.com"));
    data.push(credential.id.len() as u8);
    data.extend_from_slice(&credential.id);
    authenticate[6] = data.len() as u8;
    authenticate.extend_from_slice(&data);
    authenticate.extend_from_slice(&[0x00, 0x00]);
    let response = token.u2f_mut().process(&authenticate, Instant::now());
    assert_eq!(
        response[response.len() - 2..],
        [0x90, 0x00],
        "U2F signs with it"
    );
}

/// A replug (`vu2f replug`) empties the getNextAssertion queue: NOT_ALLOWED (0x30) follows.
#[test]
fn get_next_assertion_is_not_allowed_after_a_power_cycle() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Auto);
    make(&mut token, "example.com", b"user-1", ES256, true);
    make(&mut token, "example.com", b"user-2", ES256, true);
    let get = encode(2, Some(get_params("example.com", &[1; 32], vec![])));
    let now = Instant::now();
    assert_eq!(parse(&done(token.start(&get, now))).0, 0);
    token.power_cycle();
    assert_eq!(done(token.start(&[0x08], now)), [0x30]);
}

/// A replug drops the request that waits for the user (nothing is pending: a poll finds none,
/// and a touch afterwards makes nothing), and a touch given before it does not satisfy a request
/// after it; the credentials and the counter go on.
#[test]
fn a_power_cycle_drops_the_pending_request_and_the_touch() {
    let (_dir, mut token) = fido2_token(PresencePolicy::Touch);
    let button = token.u2f().presence().button().clone();
    button.press();
    let credential = make(&mut token, "example.com", b"user", ES256, false);
    let request = encode(
        1,
        Some(make_params("example.com", b"other", &[ES256], vec![])),
    );
    let now = Instant::now();
    assert_eq!(token.start(&request, now), Step::WaitingForUser);
    token.power_cycle();
    button.press();
    assert_eq!(
        done(token.poll(now + Duration::from_millis(100))),
        [Status::Other.byte()],
        "nothing is pending"
    );

    button.press();
    token.power_cycle();
    let assertion = encode(
        2,
        Some(get_params(
            "example.com",
            &[2; 32],
            vec![allow_list(&[&credential.id])],
        )),
    );
    assert_eq!(token.start(&assertion, now), Step::WaitingForUser);
    button.press();
    let reply = done(token.poll(now + Duration::from_millis(100)));
    let (_, counter, _) = asserted(&reply, "example.com", &[2; 32], &credential);
    assert!(counter > credential.counter);
}
