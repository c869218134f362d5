//! The automation API's credential operations and signature faults on the engine, in-process
//! (`src/automation/credentials.rs`, `src/u2f/faults.rs`): a credential added with a known
//! private key signs assertions that verify with that key's public half, over CTAP2 and U2F;
//! discovery, the sign count, tracking, removal and export; the faults spoil exactly one
//! signature. The same goes over HTTP with python-fido2 as the relying party in
//! tests/python/test_automation_udp.py.
mod common;

use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::pkcs8::EncodePrivateKey;
use ring::digest::{digest, SHA256};
use ring::signature::{KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};
use vu2f::automation::credentials::{self, NewCredential, Refused};
use vu2f::ctap2::cbor::{self, text_map, uint_map, Value};
use vu2f::ctap2::{Authenticator, Step};
use vu2f::u2f::{Faults, PresencePolicy};

const RP: &str = "automation.example";
const CLIENT_DATA_HASH: [u8; 32] = [0xCD; 32];
const NO_CREDENTIALS: u8 = 0x2E;

fn token_with(options: keystore::TokenOptions) -> (tempfile::TempDir, Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    store.create_token("t", options).unwrap();
    let engine = common::ctap2_engine(&store, "t", PresencePolicy::Auto, None);
    (dir, engine)
}

fn fido2_token() -> (tempfile::TempDir, Authenticator) {
    token_with(common::fido2_options())
}

/// A P-256 key: its PKCS#8 and its public point, as ring verifies with it.
fn p256_key() -> (Vec<u8>, Vec<u8>) {
    let secret = p256::SecretKey::random(&mut rand::thread_rng());
    let public =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    (
        secret.to_pkcs8_der().unwrap().as_bytes().to_vec(),
        public.as_bytes().to_vec(),
    )
}

fn new_credential(id: &[u8], resident: bool, pkcs8: &[u8], sign_count: u32) -> NewCredential {
    let json = serde_json::json!({
        "credentialId": URL_SAFE_NO_PAD.encode(id),
        "isResidentCredential": resident,
        "rpId": RP,
        "privateKey": URL_SAFE_NO_PAD.encode(pkcs8),
        "userHandle": resident.then(|| URL_SAFE_NO_PAD.encode(b"user-1")),
        "userName": "alice",
        "signCount": sign_count,
    });
    serde_json::from_value(json).unwrap()
}

/// getAssertion for [`RP`], with an allowList of `ids` (none: discovery); status and map.
fn get(token: &mut Authenticator, ids: &[&[u8]]) -> (u8, Vec<(Value, Value)>) {
    let mut members = vec![
        (1, Value::Text(RP.into())),
        (2, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
    ];
    if !ids.is_empty() {
        let list = ids
            .iter()
            .map(|id| {
                text_map([
                    ("id", Value::Bytes(id.to_vec())),
                    ("type", Value::Text("public-key".into())),
                ])
            })
            .collect();
        members.push((3, Value::Array(list)));
    }
    let request = [vec![0x02], cbor::encode(&uint_map(members))].concat();
    let reply = match token.start(&request, Instant::now()) {
        Step::Done(reply) => reply,
        Step::WaitingForUser => panic!("waits"),
    };
    if reply[0] != 0 {
        return (reply[0], Vec::new());
    }
    let value: Value = ciborium::de::from_reader(&reply[1..]).unwrap();
    (0, value.into_map().unwrap())
}

fn member(map: &[(Value, Value)], key: u64) -> &Value {
    map.iter()
        .find(|(k, _)| k.as_integer() == Some(key.into()))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no member {key}"))
}

/// The assertion's credential id, counter, and whether its signature verifies with `public`.
fn checked(
    map: &[(Value, Value)],
    public: &[u8],
    algorithm: &'static dyn ring::signature::VerificationAlgorithm,
) -> (Vec<u8>, u32, bool) {
    let descriptor = member(map, 1).as_map().unwrap();
    let id = descriptor
        .iter()
        .find(|(k, _)| k.as_text() == Some("id"))
        .unwrap()
        .1
        .as_bytes()
        .unwrap()
        .clone();
    let auth_data = member(map, 2).as_bytes().unwrap();
    assert_eq!(
        auth_data[..32],
        *digest(&SHA256, RP.as_bytes()).as_ref(),
        "rpIdHash"
    );
    let counter = u32::from_be_bytes(auth_data[33..37].try_into().unwrap());
    let signed = [auth_data.as_slice(), &CLIENT_DATA_HASH].concat();
    let signature = member(map, 3).as_bytes().unwrap();
    let verifies = UnparsedPublicKey::new(algorithm, public)
        .verify(&signed, signature)
        .is_ok();
    (id, counter, verifies)
}

#[test]
fn an_added_credential_signs_with_its_own_key_above_its_sign_count() {
    let (_dir, mut token) = fido2_token();
    let (pkcs8, public) = p256_key();
    let id = b"any id the test picks".to_vec();
    credentials::add(&mut token, new_credential(&id, false, &pkcs8, 41)).unwrap();
    let (status, map) = get(&mut token, &[&id]);
    assert_eq!(status, 0);
    let (returned, counter, verifies) = checked(&map, &public, &ECDSA_P256_SHA256_ASN1);
    assert_eq!(returned, id);
    assert!(verifies, "the assertion verifies with the injected key");
    assert!(counter > 41, "counter {counter} above the signCount");
    assert_eq!(get(&mut token, &[]).0, NO_CREDENTIALS, "not discoverable");
    let listed = credentials::list(&token);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].credential_id, URL_SAFE_NO_PAD.encode(&id));
    assert_eq!(listed[0].sign_count, counter, "read back as the RP saw it");
    assert!(!listed[0].is_resident_credential);
    assert_eq!(listed[0].private_key, None, "the token is not exportable");
}

#[test]
fn a_resident_ed25519_credential_is_discovered_with_its_user() {
    let (_dir, mut token) = fido2_token();
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    // ring writes PKCS#8 v2 (with the public key); vu2f takes v1 and v2.
    let id = vec![7u8; 16];
    credentials::add(&mut token, new_credential(&id, true, pkcs8.as_ref(), 0)).unwrap();
    let (status, map) = get(&mut token, &[]);
    assert_eq!(status, 0);
    let (returned, _, verifies) = checked(&map, pair.public_key().as_ref(), &ED25519);
    assert_eq!(returned, id);
    assert!(verifies);
    let user = member(&map, 4).as_map().unwrap();
    assert_eq!(user[0].1.as_bytes().unwrap(), b"user-1");
    let listed = &credentials::list(&token)[0];
    assert!(listed.is_resident_credential);
    assert_eq!(
        listed.user_handle.as_deref(),
        Some(&*URL_SAFE_NO_PAD.encode(b"user-1"))
    );
}

#[test]
fn an_exportable_tracking_token_lists_what_it_made_with_keys_that_sign_the_same() {
    let (_dir, mut token) = token_with(keystore::TokenOptions {
        tracks_credentials: true,
        exportable: true,
        ..common::fido2_options()
    });
    let made = make_non_discoverable(&mut token);
    let listed = credentials::list(&token);
    assert_eq!(listed.len(), 1, "the non-discoverable credential it made");
    let id = URL_SAFE_NO_PAD.decode(&listed[0].credential_id).unwrap();
    assert_eq!(id, made);
    let pkcs8 = URL_SAFE_NO_PAD
        .decode(listed[0].private_key.as_ref().expect("exported"))
        .unwrap();
    let secret =
        <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(&pkcs8).unwrap();
    let public =
        p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    let (status, map) = get(&mut token, &[&id]);
    assert_eq!(status, 0);
    let (_, counter, verifies) = checked(&map, public.as_bytes(), &ECDSA_P256_SHA256_ASN1);
    assert!(verifies, "the exported key is the credential's");
    assert_eq!(credentials::list(&token)[0].sign_count, counter);
}

/// makeCredential of a non-discoverable ES256 credential for [`RP`]; its id.
fn make_non_discoverable(token: &mut Authenticator) -> Vec<u8> {
    let make = uint_map(vec![
        (1, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
        (2, text_map([("id", Value::Text(RP.into()))])),
        (3, text_map([("id", Value::Bytes(b"u".to_vec()))])),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", Value::Integer((-7).into())),
                ("type", Value::Text("public-key".into())),
            ])]),
        ),
    ]);
    let request = [vec![0x01], cbor::encode(&make)].concat();
    let Step::Done(reply) = token.start(&request, Instant::now()) else {
        panic!("waits")
    };
    assert_eq!(reply[0], 0);
    let made: Value = ciborium::de::from_reader(&reply[1..]).unwrap();
    let map = made.into_map().unwrap();
    let auth_data = member(&map, 2).as_bytes().unwrap();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    auth_data[55..55 + id_len].to_vec()
}

/// The status word of a U2F AUTHENTICATE with `id` for [`RP`].
fn u2f_status(token: &mut Authenticator, id: &[u8]) -> [u8; 2] {
    let request = vu2f::u2f::messages::authenticate_request(
        vu2f::u2f::authenticator::Control::EnforcePresenceAndSign,
        &[5; 32],
        &vu2f::u2f::messages::app_param(RP),
        id,
    );
    let response = token.u2f_mut().process(&request, Instant::now());
    response[response.len() - 2..].try_into().unwrap()
}

/// A non-discoverable credential the token made is whole in its id, so removing it keeps a mark
/// that the engines refuse, over CTAP2 and U2F, across a restart, and that outlives a credential
/// added under the same id; Remove All ends them all.
#[test]
fn a_removed_credential_the_token_made_signs_no_more_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    let options = keystore::TokenOptions {
        tracks_credentials: true,
        ..common::fido2_options()
    };
    store.create_token("t", options).unwrap();
    let engine = || common::ctap2_engine(&store, "t", PresencePolicy::Auto, None);
    let mut token = engine();
    let (first, second) = (
        make_non_discoverable(&mut token),
        make_non_discoverable(&mut token),
    );
    assert_eq!(get(&mut token, &[&first]).0, 0, "signs before");
    assert_eq!(u2f_status(&mut token, &first), [0x90, 0x00], "a U2F handle");

    credentials::remove(&mut token, &URL_SAFE_NO_PAD.encode(&first)).unwrap();
    assert_eq!(get(&mut token, &[&first]).0, NO_CREDENTIALS);
    assert_eq!(
        u2f_status(&mut token, &first),
        [0x6A, 0x80],
        "bad key handle"
    );
    assert_eq!(
        get(&mut token, &[&second]).0,
        0,
        "the other one still signs"
    );
    let listed = credentials::list(&token);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].credential_id, URL_SAFE_NO_PAD.encode(&second));
    assert!(matches!(
        credentials::remove(&mut token, &URL_SAFE_NO_PAD.encode(&first)),
        Err(Refused::NoSuchCredential(_))
    ));

    drop(token);
    let mut token = engine();
    assert_eq!(
        get(&mut token, &[&first]).0,
        NO_CREDENTIALS,
        "after a restart"
    );
    assert_eq!(u2f_status(&mut token, &first), [0x6A, 0x80]);
    assert_eq!(get(&mut token, &[&second]).0, 0);

    // A test may put a credential in under the removed one's id: that one signs, with its own
    // key, and once it is removed the token's own credential does not come back.
    let (pkcs8, public) = p256_key();
    credentials::add(&mut token, new_credential(&first, false, &pkcs8, 0)).unwrap();
    let (status, map) = get(&mut token, &[&first]);
    assert_eq!(status, 0);
    assert!(
        checked(&map, &public, &ECDSA_P256_SHA256_ASN1).2,
        "the added key signs"
    );
    credentials::remove(&mut token, &URL_SAFE_NO_PAD.encode(&first)).unwrap();
    assert_eq!(
        get(&mut token, &[&first]).0,
        NO_CREDENTIALS,
        "the mark outlives it"
    );
    assert_eq!(u2f_status(&mut token, &first), [0x6A, 0x80]);
    // The same over the live one: added under the second's id, then removed.
    credentials::add(&mut token, new_credential(&second, true, &pkcs8, 0)).unwrap();
    credentials::remove(&mut token, &URL_SAFE_NO_PAD.encode(&second)).unwrap();
    assert_eq!(get(&mut token, &[&second]).0, NO_CREDENTIALS);
    assert_eq!(u2f_status(&mut token, &second), [0x6A, 0x80]);
    credentials::add(&mut token, new_credential(b"other", false, &pkcs8, 0)).unwrap();
    assert_eq!(credentials::remove_all(&mut token).unwrap(), 1);
    assert_eq!(get(&mut token, &[b"other"]).0, NO_CREDENTIALS);
    assert!(credentials::list(&token).is_empty());
}

#[test]
fn faults_spoil_one_signature_each() {
    let (_dir, mut token) = fido2_token();
    let (pkcs8, public) = p256_key();
    let id = vec![1u8; 32];
    credentials::add(&mut token, new_credential(&id, false, &pkcs8, 0)).unwrap();
    let (_, first, _) = checked(&get(&mut token, &[&id]).1, &public, &ECDSA_P256_SHA256_ASN1);
    token.u2f_mut().faults_mut().arm(&Faults {
        corrupt_signature: true,
        ..Faults::default()
    });
    let (_, _, verifies) = checked(&get(&mut token, &[&id]).1, &public, &ECDSA_P256_SHA256_ASN1);
    assert!(!verifies, "the corrupted signature does not verify");
    token.u2f_mut().faults_mut().arm(&Faults {
        counter: Some(1),
        ..Faults::default()
    });
    let (_, went_back, verifies) =
        checked(&get(&mut token, &[&id]).1, &public, &ECDSA_P256_SHA256_ASN1);
    assert!(verifies);
    assert_eq!(went_back, 1, "the counter went back");
    let (_, after, verifies) =
        checked(&get(&mut token, &[&id]).1, &public, &ECDSA_P256_SHA256_ASN1);
    assert!(verifies);
    assert!(after > first + 2, "the durable counter went on: {after}");
}

#[test]
fn a_u2f_token_signs_authenticate_with_an_added_credential() {
    let (_dir, mut token) = token_with(keystore::TokenOptions {
        profile: keystore::Profile::U2f,
        ..Default::default()
    });
    let (pkcs8, public) = p256_key();
    let id = b"u2f handle of the test".to_vec();
    credentials::add(&mut token, new_credential(&id, false, &pkcs8, 9)).unwrap();
    let app = vu2f::u2f::messages::app_param(RP);
    let request = vu2f::u2f::messages::authenticate_request(
        vu2f::u2f::authenticator::Control::EnforcePresenceAndSign,
        &[5; 32],
        &app,
        &id,
    );
    let response = token.u2f_mut().process(&request, Instant::now());
    let body = vu2f::u2f::messages::split_status(&response).expect("9000");
    let counter = u32::from_be_bytes(body[1..5].try_into().unwrap());
    assert!(counter > 9);
    let signed = [&app[..], &body[..5], &[5; 32]].concat();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public)
        .verify(&signed, &body[5..])
        .expect("verifies with the injected key");
    let resident = credentials::add(&mut token, new_credential(b"r", true, &pkcs8, 0));
    assert!(
        matches!(&resident, Err(Refused::InvalidArgument(m)) if m.starts_with("field `isResidentCredential`")),
        "{resident:?}"
    );
}

#[test]
fn removal_ends_added_credentials_and_bad_fields_are_named() {
    let (_dir, mut token) = fido2_token();
    let (pkcs8, _) = p256_key();
    for id in [b"one".as_slice(), b"two", b"three"] {
        credentials::add(&mut token, new_credential(id, id == b"two", &pkcs8, 0)).unwrap();
    }
    credentials::remove(&mut token, &URL_SAFE_NO_PAD.encode(b"one")).unwrap();
    assert_eq!(get(&mut token, &[b"one"]).0, NO_CREDENTIALS);
    assert!(matches!(
        credentials::remove(&mut token, &URL_SAFE_NO_PAD.encode(b"one")),
        Err(Refused::NoSuchCredential(_))
    ));
    assert_eq!(credentials::remove_all(&mut token).unwrap(), 2);
    assert_eq!(get(&mut token, &[b"three"]).0, NO_CREDENTIALS);
    assert_eq!(get(&mut token, &[]).0, NO_CREDENTIALS);

    let mut bad = new_credential(b"x", true, &pkcs8, 0);
    bad.user_handle = None;
    let mut no_key = new_credential(b"x", false, b"not a key", 0);
    no_key.private_key = URL_SAFE_NO_PAD.encode(b"not a key");
    let mut blob = new_credential(b"x", false, &pkcs8, 0);
    blob.large_blob = Some("!!".into());
    let mut id = new_credential(b"x", false, &pkcs8, 0);
    id.credential_id = "!!".into();
    for (request, field) in [
        (bad, "userHandle"),
        (no_key, "privateKey"),
        (blob, "largeBlob"),
        (id, "credentialId"),
    ] {
        let refused = credentials::add(&mut token, request)
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with(&format!("field `{field}`: ")),
            "{refused}"
        );
    }
}

#[test]
fn a_large_blob_goes_into_the_array_under_the_credential_key_and_reads_back() {
    let (_dir, mut token) = fido2_token();
    let (pkcs8, _) = p256_key();
    let mut with_blob = new_credential(b"blobbed", true, &pkcs8, 0);
    with_blob.large_blob = Some(URL_SAFE_NO_PAD.encode(b"a blob for the test"));
    credentials::add(&mut token, with_blob).unwrap();
    credentials::add(&mut token, new_credential(b"plain", false, &pkcs8, 0)).unwrap();
    let listed = credentials::list(&token);
    let blob_of = |id: &[u8]| {
        listed
            .iter()
            .find(|c| c.credential_id == URL_SAFE_NO_PAD.encode(id))
            .unwrap()
            .large_blob
            .clone()
    };
    assert_eq!(
        blob_of(b"blobbed"),
        Some(URL_SAFE_NO_PAD.encode(b"a blob for the test"))
    );
    assert_eq!(blob_of(b"plain"), None);
    // The host side: getAssertion's largeBlobKey (0x07) opens the array's entry.
    let request = [
        vec![0x02],
        cbor::encode(&uint_map(vec![
            (1, Value::Text(RP.into())),
            (2, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
            (4, text_map([("largeBlobKey", Value::Bool(true))])),
        ])),
    ]
    .concat();
    let Step::Done(reply) = token.start(&request, Instant::now()) else {
        panic!("waits")
    };
    assert_eq!(reply[0], 0);
    let map = ciborium::de::from_reader::<Value, _>(&reply[1..])
        .unwrap()
        .into_map()
        .unwrap();
    let key: [u8; 32] = member(&map, 7)
        .as_bytes()
        .unwrap()
        .as_slice()
        .try_into()
        .unwrap();
    let serialized = token.u2f().keys().large_blobs.serialized().to_vec();
    let opened: Vec<Vec<u8>> = vu2f::automation::large_blob::entries(&serialized)
        .iter()
        .filter_map(|entry| vu2f::automation::large_blob::open(&key, entry))
        .collect();
    assert_eq!(opened, vec![b"a blob for the test".to_vec()]);
    let mut huge = new_credential(b"huge", false, &pkcs8, 0);
    let mut noise = vec![0u8; 6000];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut noise).unwrap();
    huge.large_blob = Some(URL_SAFE_NO_PAD.encode(noise));
    let refused = credentials::add(&mut token, huge).unwrap_err().to_string();
    assert!(refused.starts_with("field `largeBlob`: "), "{refused}");
    assert_eq!(
        token.u2f().keys().large_blobs.serialized(),
        serialized.as_slice(),
        "a blob that does not fit leaves the array as it was"
    );
    assert!(credentials::list(&token)
        .iter()
        .all(|c| c.credential_id != URL_SAFE_NO_PAD.encode(b"huge")));
}
