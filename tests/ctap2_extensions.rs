//! The extensions of makeCredential and getAssertion (CTAP 2.1 §12: credProtect, credBlob,
//! largeBlobKey, hmac-secret; CTAP 2.2 hmac-secret-mc) and authenticatorLargeBlobs (§6.10),
//! in-process: every output, and every refusal with its status. A platform of the test's own
//! drives the token through the public PIN/UV auth protocol; python-fido2 drives the same over
//! UDP in tests/python/test_extensions_udp.py.
mod common;

use std::time::Instant;

use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use vu2f::ctap2::cbor::{self, int_map, text_map, uint_map, Arena, Parameters, Value};
use vu2f::ctap2::pin_protocol::{encapsulate, PinUvAuthProtocol, SharedSecret};
use vu2f::ctap2::{Authenticator, Step};
use vu2f::u2f::PresencePolicy;

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const ED: u8 = 0x80;
const NO_CREDENTIALS: u8 = 0x2E;

fn token() -> (tempfile::TempDir, Authenticator) {
    common::fido2_token(PresencePolicy::Auto, None)
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// Runs `command` with `params` (nothing may wait); the status and the body.
fn call(token: &mut Authenticator, command: u8, params: Value) -> (u8, Vec<u8>) {
    let request = [vec![command], cbor::encode(&params)].concat();
    match token.start(&request, Instant::now()) {
        Step::Done(reply) => (reply[0], reply[1..].to_vec()),
        Step::WaitingForUser => panic!("waits for the user"),
    }
}

fn decode(bytes: &[u8]) -> Value {
    ciborium::de::from_reader(bytes).unwrap()
}

/// The member `key` of a decoded map.
fn member<'v>(map: &'v Value, key: &Value) -> Option<&'v Value> {
    map.as_map()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn text(key: &str) -> Value {
    Value::Text(key.into())
}

/// A key agreement with the token (getKeyAgreement), the platform's side.
fn agree(token: &mut Authenticator, protocol: PinUvAuthProtocol) -> (Value, SharedSecret) {
    let (status, body) = call(
        token,
        0x06,
        uint_map([(1, int(protocol as i64)), (2, int(2))]),
    );
    assert_eq!(status, 0);
    let arena = Arena::new();
    let reply = Parameters::decode(&body, &arena).unwrap();
    encapsulate(protocol, reply.get(1).unwrap(), &SystemRandom::new()).unwrap()
}

/// Sets the PIN "1234" and returns a pinUvAuthToken (protocol two) with `permissions`.
fn pin_token(token: &mut Authenticator, set: bool, permissions: i64) -> Vec<u8> {
    let rng = SystemRandom::new();
    if set {
        let (key_agreement, shared) = agree(token, PinUvAuthProtocol::Two);
        let mut padded = b"1234".to_vec();
        padded.resize(64, 0);
        let new_pin_enc = shared.encrypt(&padded, &rng);
        let params = uint_map([
            (1, int(2)),
            (2, int(3)),
            (3, key_agreement),
            (4, bytes(&shared.authenticate(&new_pin_enc))),
            (5, bytes(&new_pin_enc)),
        ]);
        assert_eq!(call(token, 0x06, params).0, 0);
    }
    let (key_agreement, shared) = agree(token, PinUvAuthProtocol::Two);
    let pin_hash_enc = shared.encrypt(&digest(&SHA256, b"1234").as_ref()[..16], &rng);
    let params = uint_map([
        (1, int(2)),
        (2, int(9)),
        (3, key_agreement),
        (6, bytes(&pin_hash_enc)),
        (9, int(permissions)),
    ]);
    let (status, body) = call(token, 0x06, params);
    assert_eq!(status, 0);
    let reply = decode(&body);
    let encrypted = member(&reply, &int(2)).unwrap().as_bytes().unwrap();
    shared.decrypt(encrypted).unwrap().to_vec()
}

/// A pinUvAuthParam of `pin_token` over a clientDataHash.
fn pin_param(pin_token: Option<&[u8]>, client_data_hash: &[u8]) -> Vec<(u64, Value)> {
    match pin_token {
        Some(t) => vec![
            (
                8,
                bytes(&PinUvAuthProtocol::Two.authenticate(t, client_data_hash)),
            ),
            (9, int(2)),
        ],
        None => Vec::new(),
    }
}

/// What a makeCredential gave.
struct Made {
    id: Vec<u8>,
    flags: u8,
    extensions: Option<Value>,
    large_blob_key: Option<Vec<u8>>,
}

fn make(
    token: &mut Authenticator,
    user: &[u8],
    rk: bool,
    extensions: Option<Value>,
    pin_token: Option<&[u8]>,
) -> Result<Made, u8> {
    let client_data_hash = [0xCD; 32];
    let mut params = vec![
        (1, bytes(&client_data_hash)),
        (2, text_map([("id", text("x.example"))])),
        (3, text_map([("id", bytes(user))])),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", int(-7)),
                ("type", text("public-key")),
            ])]),
        ),
        (7, text_map([("rk", Value::Bool(rk))])),
    ];
    if let Some(extensions) = extensions {
        params.push((6, extensions));
    }
    let mut auth = pin_param(pin_token, &client_data_hash);
    params.append(&mut auth);
    let (status, body) = call(token, 0x01, uint_map(params));
    if status != 0 {
        return Err(status);
    }
    let reply = decode(&body);
    let auth_data = member(&reply, &int(2)).unwrap().as_bytes().unwrap().clone();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + id_len].to_vec();
    let mut rest = &auth_data[55 + id_len..];
    let _public_key: Value = ciborium::de::from_reader(&mut rest).unwrap();
    let extensions = (auth_data[32] & ED != 0).then(|| {
        let map: Value = ciborium::de::from_reader(&mut rest).unwrap();
        map
    });
    assert!(rest.is_empty(), "nothing after the extension map");
    Ok(Made {
        id,
        flags: auth_data[32],
        extensions,
        large_blob_key: member(&reply, &int(5)).map(|k| k.as_bytes().unwrap().clone()),
    })
}

/// What a getAssertion gave.
struct Got {
    id: Vec<u8>,
    flags: u8,
    extensions: Option<Value>,
    large_blob_key: Option<Vec<u8>>,
}

fn get(
    token: &mut Authenticator,
    allow: &[&[u8]],
    extensions: Option<Value>,
    pin_token: Option<&[u8]>,
    up: bool,
) -> Result<Got, u8> {
    let client_data_hash = [0xAB; 32];
    let mut params = vec![(1, text("x.example")), (2, bytes(&client_data_hash))];
    if !allow.is_empty() {
        let list = allow
            .iter()
            .map(|id| text_map([("id", bytes(id)), ("type", text("public-key"))]))
            .collect();
        params.push((3, Value::Array(list)));
    }
    if let Some(extensions) = extensions {
        params.push((4, extensions));
    }
    params.push((5, text_map([("up", Value::Bool(up))])));
    for (key, value) in pin_param(pin_token, &client_data_hash) {
        params.push((key - 2, value));
    }
    let (status, body) = call(token, 0x02, uint_map(params));
    if status != 0 {
        return Err(status);
    }
    let reply = decode(&body);
    let auth_data = member(&reply, &int(2)).unwrap().as_bytes().unwrap().clone();
    let credential = member(&reply, &int(1)).unwrap();
    let extensions = (auth_data[32] & ED != 0).then(|| decode(&auth_data[37..]));
    if extensions.is_none() {
        assert_eq!(auth_data.len(), 37);
    }
    Ok(Got {
        id: member(credential, &text("id"))
            .unwrap()
            .as_bytes()
            .unwrap()
            .clone(),
        flags: auth_data[32],
        extensions,
        large_blob_key: member(&reply, &int(7)).map(|k| k.as_bytes().unwrap().clone()),
    })
}

fn cred_protect(level: i64) -> Option<Value> {
    Some(text_map([("credProtect", int(level))]))
}

#[test]
fn a_plain_credential_keeps_the_u2f_id_and_no_extension_data() {
    let (_dir, mut token) = token();
    let made = make(&mut token, b"u", false, None, None).unwrap();
    assert_eq!(made.id.len(), keystore::KEY_HANDLE_LEN);
    assert_eq!(made.id[0], 1);
    assert_eq!(made.flags & ED, 0);
    assert!(made.extensions.is_none());
    let got = get(&mut token, &[&made.id], None, None, true).unwrap();
    assert_eq!(got.flags, UP);
    // Asking for credBlob of a credential made without one: the empty blob.
    let got = get(
        &mut token,
        &[&made.id],
        Some(text_map([("credBlob", Value::Bool(true))])),
        None,
        true,
    )
    .unwrap();
    assert_eq!(got.flags, UP | ED);
    assert_eq!(got.extensions, Some(text_map([("credBlob", bytes(&[]))])));
}

#[test]
fn cred_protect_is_reported_sealed_in_the_id_and_enforced() {
    let (_dir, mut token) = token();
    let mut ids = Vec::new();
    for level in 1..=3 {
        let made = make(&mut token, b"u", false, cred_protect(level), None).unwrap();
        assert_eq!(made.flags & ED, ED);
        assert_eq!(
            made.extensions,
            Some(text_map([("credProtect", int(level))]))
        );
        assert_eq!(made.id[0], 3, "a version-3 id");
        assert!(made.id.len() <= keystore::MAX_ISSUED_ID_LEN);
        ids.push(made.id);
    }
    // Without UV: levels 1 and 2 through the allowList, level 3 never.
    assert!(get(&mut token, &[&ids[0]], None, None, true).is_ok());
    assert!(get(&mut token, &[&ids[1]], None, None, true).is_ok());
    assert_eq!(
        get(&mut token, &[&ids[2]], None, None, true).err(),
        Some(NO_CREDENTIALS)
    );
    let got = get(&mut token, &[&ids[2], &ids[1]], None, None, true).unwrap();
    assert_eq!(got.id, ids[1], "the level-3 credential is passed over");
    // Excluded only when the user is verified: without, a level-3 one is not seen.
    let exclude = make_excluding(&mut token, &ids[2], None);
    assert_eq!(exclude, 0);
    assert_eq!(make_excluding(&mut token, &ids[1], None), 0x19);

    // With a PIN token (UV), level 3 signs.
    let t = pin_token(&mut token, true, 0x03);
    let got = get(&mut token, &[&ids[2]], None, Some(&t), true).unwrap();
    assert_eq!(got.flags & (UP | UV), UP | UV);
    let t = pin_token(&mut token, false, 0x01);
    assert_eq!(make_excluding(&mut token, &ids[2], Some(&t)), 0x19);
}

/// A makeCredential with `excluded` in its excludeList: its status.
fn make_excluding(token: &mut Authenticator, excluded: &[u8], pin_token: Option<&[u8]>) -> u8 {
    let client_data_hash = [0xCD; 32];
    let mut params = vec![
        (1, bytes(&client_data_hash)),
        (2, text_map([("id", text("x.example"))])),
        (3, text_map([("id", bytes(b"v"))])),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", int(-7)),
                ("type", text("public-key")),
            ])]),
        ),
        (
            5,
            Value::Array(vec![text_map([
                ("id", bytes(excluded)),
                ("type", text("public-key")),
            ])]),
        ),
    ];
    params.extend(pin_param(pin_token, &client_data_hash));
    call(token, 0x01, uint_map(params)).0
}

#[test]
fn discoverable_credentials_hide_by_level_without_uv() {
    let (_dir, mut token) = token();
    let t = pin_token(&mut token, true, 0x01);
    let level3 = make(&mut token, b"3", true, cred_protect(3), Some(&t)).unwrap();
    let t = pin_token(&mut token, false, 0x01);
    let level2 = make(&mut token, b"2", true, cred_protect(2), Some(&t)).unwrap();
    assert_eq!(level2.id[0], 0x83, "discoverable, version 3");
    // No allowList, no UV: both hidden.
    assert_eq!(
        get(&mut token, &[], None, None, true).err(),
        Some(NO_CREDENTIALS)
    );
    // Level 2 through the allowList without UV; level 3 not.
    assert_eq!(
        get(&mut token, &[&level2.id], None, None, true).unwrap().id,
        level2.id
    );
    assert_eq!(
        get(&mut token, &[&level3.id], None, None, true).err(),
        Some(NO_CREDENTIALS)
    );
    // With UV both are found, newest first.
    let t = pin_token(&mut token, false, 0x02);
    let got = get(&mut token, &[], None, Some(&t), true).unwrap();
    assert_eq!(got.id, level2.id);
    assert_eq!(got.flags & UV, UV);
    let t = pin_token(&mut token, false, 0x01);
    let level1 = make(&mut token, b"1", true, cred_protect(1), Some(&t)).unwrap();
    assert_eq!(
        get(&mut token, &[], None, None, true).unwrap().id,
        level1.id,
        "level 1 is found without UV"
    );
}

fn hmac_input(
    token: &mut Authenticator,
    protocol: PinUvAuthProtocol,
    salts: &[u8],
) -> (Value, SharedSecret) {
    let (key_agreement, shared) = agree(token, protocol);
    let salt_enc = shared.encrypt(salts, &SystemRandom::new());
    let input = int_map([
        (1, key_agreement),
        (2, bytes(&salt_enc)),
        (3, bytes(&shared.authenticate(&salt_enc))),
        (4, int(protocol as i64)),
    ]);
    (input, shared)
}

/// hmac-secret's output for `id` and `salts`, decrypted.
fn hmac_secret(
    token: &mut Authenticator,
    id: &[u8],
    protocol: PinUvAuthProtocol,
    salts: &[u8],
    pin_token: Option<&[u8]>,
) -> Vec<u8> {
    let (input, shared) = hmac_input(token, protocol, salts);
    let got = get(
        token,
        &[id],
        Some(text_map([("hmac-secret", input)])),
        pin_token,
        true,
    )
    .unwrap();
    let extensions = got.extensions.unwrap();
    let output = member(&extensions, &text("hmac-secret")).unwrap();
    shared.decrypt(output.as_bytes().unwrap()).unwrap().to_vec()
}

#[test]
fn hmac_secret_gives_one_secret_per_salt_and_another_with_uv() {
    let (_dir, mut token) = token();
    let made = make(
        &mut token,
        b"u",
        false,
        Some(text_map([("hmac-secret", Value::Bool(true))])),
        None,
    )
    .unwrap();
    assert_eq!(
        made.extensions,
        Some(text_map([("hmac-secret", Value::Bool(true))]))
    );
    let salt1 = [1u8; 32];
    let salt2 = [2u8; 32];
    let mut first = None;
    for protocol in [PinUvAuthProtocol::One, PinUvAuthProtocol::Two] {
        let one = hmac_secret(&mut token, &made.id, protocol, &salt1, None);
        assert_eq!(one.len(), 32);
        let again = hmac_secret(&mut token, &made.id, protocol, &salt1, None);
        assert_eq!(one, again, "the same salt, the same secret");
        let both = hmac_secret(
            &mut token,
            &made.id,
            protocol,
            &[salt1, salt2].concat(),
            None,
        );
        assert_eq!(both.len(), 64);
        assert_eq!(both[..32], one[..]);
        assert_ne!(both[32..], one[..]);
        assert_eq!(
            *first.get_or_insert(one.clone()),
            one,
            "protocol-independent"
        );
    }
    let t = pin_token(&mut token, true, 0x02);
    let verified = hmac_secret(
        &mut token,
        &made.id,
        PinUvAuthProtocol::Two,
        &salt1,
        Some(&t),
    );
    assert_ne!(Some(verified), first, "CredRandomWithUV is another");

    // A credential made without hmac-secret gives no output.
    let plain = make(&mut token, b"p", false, None, None).unwrap();
    let (input, _) = hmac_input(&mut token, PinUvAuthProtocol::Two, &salt1);
    let got = get(
        &mut token,
        &[&plain.id],
        Some(text_map([("hmac-secret", input)])),
        None,
        true,
    )
    .unwrap();
    assert!(got.extensions.is_none());
    assert_eq!(got.flags & ED, 0);
}

#[test]
fn hmac_secret_refuses_bad_inputs_with_their_statuses() {
    let (_dir, mut token) = token();
    let hmac = Some(text_map([("hmac-secret", Value::Bool(true))]));
    let made = make(&mut token, b"u", false, hmac, None).unwrap();
    let salt = [7u8; 32];
    let ask = |token: &mut Authenticator, input: Value, up: bool| {
        get(
            token,
            &[&made.id],
            Some(text_map([("hmac-secret", input)])),
            None,
            up,
        )
        .err()
        .unwrap_or(0)
    };
    let (input, _) = hmac_input(&mut token, PinUvAuthProtocol::Two, &salt);
    assert_eq!(ask(&mut token, input, false), 0x2B, "up: false");
    let (mut input, _) = hmac_input(&mut token, PinUvAuthProtocol::Two, &salt);
    if let Value::Map(members) = &mut input {
        members[2].1 = bytes(&[0; 32]);
    }
    assert_eq!(ask(&mut token, input, true), 0x33, "a wrong saltAuth");
    let (input, _) = hmac_input(&mut token, PinUvAuthProtocol::Two, &[7u8; 48]);
    assert_eq!(ask(&mut token, input, true), 0x02, "48 bytes of salt");
    let (mut input, _) = hmac_input(&mut token, PinUvAuthProtocol::Two, &salt);
    if let Value::Map(members) = &mut input {
        members[3].1 = int(3);
    }
    assert_eq!(ask(&mut token, input, true), 0x02, "protocol 3");
    let (mut input, _) = hmac_input(&mut token, PinUvAuthProtocol::One, &salt);
    if let Value::Map(members) = &mut input {
        members.retain(|(k, _)| *k != int(1));
    }
    assert_eq!(ask(&mut token, input, true), 0x14, "no keyAgreement");
    // Protocol one is what an absent protocol means.
    let (mut input, shared) = hmac_input(&mut token, PinUvAuthProtocol::One, &salt);
    if let Value::Map(members) = &mut input {
        members.retain(|(k, _)| *k != int(4));
    }
    let got = get(
        &mut token,
        &[&made.id],
        Some(text_map([("hmac-secret", input)])),
        None,
        true,
    )
    .unwrap();
    let output = member(got.extensions.as_ref().unwrap(), &text("hmac-secret")).unwrap();
    assert_eq!(
        shared.decrypt(output.as_bytes().unwrap()).unwrap().len(),
        32
    );
}

#[test]
fn hmac_secret_mc_gives_at_creation_what_get_assertion_gives_later() {
    let (_dir, mut token) = token();
    let salt = [9u8; 32];
    let (input, shared) = hmac_input(&mut token, PinUvAuthProtocol::Two, &salt);
    let extensions = text_map([
        ("hmac-secret", Value::Bool(true)),
        ("hmac-secret-mc", input),
    ]);
    let made = make(&mut token, b"u", false, Some(extensions), None).unwrap();
    let outputs = made.extensions.unwrap();
    assert_eq!(
        member(&outputs, &text("hmac-secret")),
        Some(&Value::Bool(true))
    );
    let at_creation = member(&outputs, &text("hmac-secret-mc")).unwrap();
    let at_creation = shared.decrypt(at_creation.as_bytes().unwrap()).unwrap();
    let later = hmac_secret(&mut token, &made.id, PinUvAuthProtocol::Two, &salt, None);
    assert_eq!(at_creation.to_vec(), later);
    // hmac-secret-mc without hmac-secret: MISSING_PARAMETER.
    let (input, _) = hmac_input(&mut token, PinUvAuthProtocol::Two, &salt);
    let alone = text_map([("hmac-secret-mc", input)]);
    assert_eq!(
        make(&mut token, b"v", false, Some(alone), None).err(),
        Some(0x14)
    );
}

#[test]
fn cred_blob_is_kept_up_to_its_limit_and_returned_when_asked() {
    let (_dir, mut token) = token();
    let blob = [0x42u8; keystore::MAX_CRED_BLOB_LEN];
    let ask = Some(text_map([("credBlob", Value::Bool(true))]));
    for rk in [false, true] {
        let t = if rk {
            let set = !token_has_pin(&mut token);
            Some(pin_token(&mut token, set, 0x01))
        } else {
            None
        };
        let made = make(
            &mut token,
            b"u",
            rk,
            Some(text_map([("credBlob", bytes(&blob))])),
            t.as_deref(),
        )
        .unwrap();
        assert_eq!(
            made.extensions,
            Some(text_map([("credBlob", Value::Bool(true))]))
        );
        let got = get(&mut token, &[&made.id], ask.clone(), None, true).unwrap();
        assert_eq!(got.extensions, Some(text_map([("credBlob", bytes(&blob))])));
        let got = get(&mut token, &[&made.id], None, None, true).unwrap();
        assert!(got.extensions.is_none(), "not asked, not given");
    }
    let long = [0x42u8; keystore::MAX_CRED_BLOB_LEN + 1];
    let made = make(
        &mut token,
        b"w",
        false,
        Some(text_map([("credBlob", bytes(&long))])),
        None,
    )
    .unwrap();
    assert_eq!(
        made.extensions,
        Some(text_map([("credBlob", Value::Bool(false))]))
    );
    let got = get(&mut token, &[&made.id], ask, None, true).unwrap();
    assert_eq!(got.extensions, Some(text_map([("credBlob", bytes(&[]))])));
}

fn token_has_pin(token: &mut Authenticator) -> bool {
    let (status, body) = call_raw(token, &[0x04]);
    assert_eq!(status, 0);
    let info = decode(&body);
    let options = member(&info, &int(4)).unwrap();
    member(options, &text("clientPin")) == Some(&Value::Bool(true))
}

fn call_raw(token: &mut Authenticator, request: &[u8]) -> (u8, Vec<u8>) {
    match token.start(request, Instant::now()) {
        Step::Done(reply) => (reply[0], reply[1..].to_vec()),
        Step::WaitingForUser => panic!("waits for the user"),
    }
}

#[test]
fn large_blob_key_is_given_to_discoverable_credentials_only() {
    let (_dir, mut token) = token();
    let ask = Some(text_map([("largeBlobKey", Value::Bool(true))]));
    assert_eq!(
        make(&mut token, b"u", false, ask.clone(), None).err(),
        Some(0x2C)
    );
    let no = Some(text_map([("largeBlobKey", Value::Bool(false))]));
    let t = pin_token(&mut token, true, 0x01);
    assert_eq!(make(&mut token, b"u", true, no, Some(&t)).err(), Some(0x2C));
    let t = pin_token(&mut token, false, 0x01);
    let made = make(&mut token, b"u", true, ask.clone(), Some(&t)).unwrap();
    let key = made.large_blob_key.clone().expect("member 0x05");
    assert_eq!(key.len(), 32);
    assert!(made.extensions.is_none(), "never in authData");
    let got = get(&mut token, &[&made.id], ask.clone(), None, true).unwrap();
    assert_eq!(got.large_blob_key, Some(key.clone()));
    assert!(got.extensions.is_none());
    assert_eq!(
        get(&mut token, &[&made.id], None, None, true)
            .unwrap()
            .large_blob_key,
        None
    );
    // Another credential has another key; one made without asking has none.
    let t = pin_token(&mut token, false, 0x01);
    let other = make(&mut token, b"v", true, ask.clone(), Some(&t)).unwrap();
    assert_ne!(other.large_blob_key, Some(key));
    let t = pin_token(&mut token, false, 0x01);
    let without = make(&mut token, b"w", true, None, Some(&t)).unwrap();
    assert_eq!(
        get(&mut token, &[&without.id], ask, None, true)
            .unwrap()
            .large_blob_key,
        None
    );
}

/// A request's members.
type Members = Vec<(u64, Value)>;

/// authenticatorLargeBlobs with `params`: the status and the body.
fn large_blobs(token: &mut Authenticator, params: Vec<(u64, Value)>) -> (u8, Vec<u8>) {
    call(token, 0x0C, uint_map(params))
}

fn read_array(token: &mut Authenticator) -> Vec<u8> {
    let mut array = Vec::new();
    loop {
        let (status, body) = large_blobs(token, vec![(1, int(1000)), (3, int(array.len() as i64))]);
        assert_eq!(status, 0);
        let fragment = member(&decode(&body), &int(1))
            .unwrap()
            .as_bytes()
            .unwrap()
            .clone();
        array.extend_from_slice(&fragment);
        if fragment.len() < 1000 {
            return array;
        }
    }
}

fn serialized(array: &[u8]) -> Vec<u8> {
    [array, &digest(&SHA256, array).as_ref()[..16]].concat()
}

/// One set fragment with a pinUvAuthParam of `pin_token` (when given).
fn set_fragment(
    token: &mut Authenticator,
    fragment: &[u8],
    offset: usize,
    length: Option<usize>,
    pin_token: Option<&[u8]>,
) -> u8 {
    let mut params = vec![(2, bytes(fragment)), (3, int(offset as i64))];
    if let Some(length) = length {
        params.push((4, int(length as i64)));
    }
    if let Some(t) = pin_token {
        let mut message = vec![0xFF; 32];
        message.extend_from_slice(&[0x0C, 0x00]);
        message.extend_from_slice(&(offset as u32).to_le_bytes());
        message.extend_from_slice(digest(&SHA256, fragment).as_ref());
        params.push((5, bytes(&PinUvAuthProtocol::Two.authenticate(t, &message))));
        params.push((6, int(2)));
    }
    large_blobs(token, params).0
}

#[test]
fn the_large_blob_array_starts_empty_and_is_written_in_fragments_durably() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let new_array = serialized(&[vec![0x81, 0x59, 0x07, 0xD0], vec![0x5A; 2000]].concat());
    {
        let store = keystore::Store::open(&path).unwrap();
        store.create_token("t", common::fido2_options()).unwrap();
        let mut token = common::ctap2_engine(&store, "t", PresencePolicy::Auto, None);
        assert_eq!(
            hex::encode(read_array(&mut token)),
            "8076be8b528d0075f7aae98d6fa57a6d3c"
        );
        // Without a PIN no pinUvAuthParam is needed.
        let total = new_array.len();
        assert_eq!(
            set_fragment(&mut token, &new_array[..1000], 0, Some(total), None),
            0
        );
        assert_eq!(
            set_fragment(&mut token, &new_array[1000..2000], 1000, None, None),
            0
        );
        assert_eq!(
            read_array(&mut token).len(),
            17,
            "not committed before the end"
        );
        assert_eq!(
            set_fragment(&mut token, &new_array[2000..], 2000, None, None),
            0
        );
        assert_eq!(read_array(&mut token), new_array);
    }
    let store = keystore::Store::open(&path).unwrap();
    let mut token = common::ctap2_engine(&store, "t", PresencePolicy::Auto, None);
    assert_eq!(
        read_array(&mut token),
        new_array,
        "durable across a restart"
    );
}

/// authenticatorReset erases the array (CTAP 2.1 §6.6) and ends a write in progress: its next
/// fragment is out of sequence, so no write begun before the reset completes after it.
#[test]
fn a_reset_erases_the_array_and_ends_a_write_in_progress() {
    let (_dir, mut token) = token();
    let first = serialized(&[0x81, 0x41, 0x01]);
    assert_eq!(
        set_fragment(&mut token, &first, 0, Some(first.len()), None),
        0
    );
    let second = serialized(&[vec![0x81, 0x59, 0x03, 0xE8], vec![0x33; 1000]].concat());
    assert_eq!(
        set_fragment(&mut token, &second[..600], 0, Some(second.len()), None),
        0
    );
    assert_eq!(call_raw(&mut token, &[0x07]), (0, Vec::new()));
    assert_eq!(
        hex::encode(read_array(&mut token)),
        "8076be8b528d0075f7aae98d6fa57a6d3c",
        "the initial array again"
    );
    assert_eq!(
        set_fragment(&mut token, &second[600..], 600, None, None),
        0x04,
        "INVALID_SEQ"
    );
    assert_eq!(read_array(&mut token).len(), 17);
}

#[test]
fn large_blob_requests_are_refused_as_the_spec_says() {
    let (_dir, mut token) = token();
    let array = serialized(&[0x81, 0x41, 0x01]);
    let get_of = |count: i64, offset: i64| vec![(1, int(count)), (3, int(offset))];
    let cases: Vec<(Members, u8, &str)> = vec![
        (vec![(3, int(0))], 0x02, "neither get nor set"),
        (
            vec![(1, int(1)), (2, bytes(&[1])), (3, int(0))],
            0x02,
            "both",
        ),
        (vec![(1, int(1))], 0x14, "no offset"),
        (get_of(1137, 0), 0x03, "get past maxFragmentLength"),
        (get_of(1, 18), 0x02, "offset past the end"),
        (
            [get_of(1, 0), vec![(4, int(17))]].concat(),
            0x02,
            "get with a length",
        ),
        (
            vec![(2, bytes(&array)), (3, int(0))],
            0x02,
            "set at 0 without length",
        ),
        (
            vec![(2, bytes(&array)), (3, int(0)), (4, int(4097))],
            0x18,
            "longer than the token keeps",
        ),
        (
            vec![(2, bytes(&array[..16])), (3, int(0)), (4, int(16))],
            0x02,
            "under 17",
        ),
        (
            vec![(2, bytes(&array)), (3, int(5))],
            0x04,
            "not where the last ended",
        ),
        (
            vec![(2, bytes(&[0; 1137])), (3, int(0)), (4, int(2000))],
            0x03,
            "fragment too long",
        ),
        (vec![(1, text("x")), (3, int(0))], 0x11, "get not a number"),
        (
            [get_of(1, 0), vec![(5, bytes(&[0; 32])), (6, int(2))]].concat(),
            0x02,
            "get with a pinUvAuthParam",
        ),
    ];
    for (params, status, case) in cases {
        assert_eq!(large_blobs(&mut token, params).0, status, "{case}");
    }
    assert_eq!(read_array(&mut token).len(), 17);
    // A length after the first fragment, a fragment out of sequence.
    assert_eq!(
        set_fragment(&mut token, &array[..10], 0, Some(array.len()), None),
        0
    );
    assert_eq!(
        set_fragment(&mut token, &array[10..], 10, Some(array.len()), None),
        0x02
    );
    assert_eq!(set_fragment(&mut token, &array[11..], 11, None, None), 0x04);
    assert_eq!(set_fragment(&mut token, &array[10..], 10, None, None), 0);
    assert_eq!(read_array(&mut token), array);
    // Overrun and a wrong trailer.
    assert_eq!(
        set_fragment(&mut token, &array, 0, Some(array.len() - 1), None),
        0x02
    );
    let mut bad = array.clone();
    bad[19 - 1] ^= 1;
    assert_eq!(
        set_fragment(&mut token, &bad, 0, Some(bad.len()), None),
        0x3D
    );
    assert_eq!(read_array(&mut token), array, "nothing written");

    // With a PIN: the param is required, and needs lbw.
    let mc_ga = pin_token(&mut token, true, 0x03);
    assert_eq!(
        set_fragment(&mut token, &array, 0, Some(array.len()), None),
        0x36
    );
    assert_eq!(
        set_fragment(&mut token, &array, 0, Some(array.len()), Some(&mc_ga)),
        0x33,
        "no lbw permission"
    );
    let lbw = pin_token(&mut token, false, 0x10);
    let array = serialized(&[0x81, 0x42, 0x02, 0x03]);
    let mut params = vec![
        (2, bytes(&array)),
        (3, int(0)),
        (4, int(array.len() as i64)),
    ];
    params.push((5, bytes(&[0; 32])));
    assert_eq!(large_blobs(&mut token, params).0, 0x14, "no protocol");
    assert_eq!(
        set_fragment(&mut token, &array, 0, Some(array.len()), Some(&[0u8; 32])),
        0x33,
        "another token"
    );
    assert_eq!(
        set_fragment(&mut token, &array, 0, Some(array.len()), Some(&lbw)),
        0
    );
    assert_eq!(read_array(&mut token), array, "the lbw token wrote it");
}
