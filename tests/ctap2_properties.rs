//! Property tests of the CTAP2 engine (CTAP 2.1 sections 6 and 8; `DESIGN.md`, "Host input never
//! panics"): any bytes and any CBOR, after any command byte, get a reply and never a panic; an
//! error is one status byte of `src/ctap2/status.rs`; a success is one canonical CBOR map with a
//! counter that rises (the checks of the fuzzers, `tests/fuzz/checks.rs`); malformed CBOR,
//! wrong-typed and missing members get the statuses of CTAP 2.1 section 8.
//!
//! getInfo, getNextAssertion and selection take no parameters and ignore any bytes after their
//! command byte, so the CBOR statuses are checked for makeCredential and getAssertion.
#[path = "fuzz/checks.rs"]
mod checks;

use std::cell::RefCell;
use std::time::Instant;

use checks::{
    cbor_request, check_ctap2_reply, ctap2_status_listed, make_credential_params, CLIENT_PIN,
    FUZZ_RP, GET_ASSERTION, GET_INFO, GET_NEXT_ASSERTION, LARGE_BLOBS, MAKE_CREDENTIAL, SELECTION,
};
use ciborium::value::Value;
use proptest::prelude::*;
use proptest::sample::Index;
use vu2f::ctap2::{Authenticator, Step};
use vu2f::u2f::{self, Presence, PresencePolicy};

const INVALID_COMMAND: u8 = 0x01;
const CBOR_UNEXPECTED_TYPE: u8 = 0x11;
const INVALID_CBOR: u8 = 0x12;
const MISSING_PARAMETER: u8 = 0x14;
const COMMANDS: [u8; 11] = [
    MAKE_CREDENTIAL,
    GET_ASSERTION,
    GET_INFO,
    CLIENT_PIN,
    0x07,
    GET_NEXT_ASSERTION,
    0x0A,
    SELECTION,
    LARGE_BLOBS,
    0x0D,
    0x41,
];

/// A `fido2` token with presence `auto` and no built-in UV, and the highest counter it signed.
struct Token {
    _dir: tempfile::TempDir,
    engine: Authenticator,
    counter: Option<u32>,
}

thread_local! {
    static TOKEN: RefCell<Token> = {
        let dir = tempfile::tempdir().unwrap();
        let store = keystore::Store::open(&dir.path().join("store")).unwrap();
        let options = keystore::TokenOptions {
            profile: keystore::Profile::Fido2,
            ..Default::default()
        };
        store.create_token("p", options).unwrap();
        let u2f = u2f::Authenticator::new(
            store.load("p").unwrap(),
            Presence::new(PresencePolicy::Auto),
        );
        RefCell::new(Token {
            _dir: dir,
            engine: Authenticator::new(u2f, None),
            counter: None,
        })
    };
}

/// The engine's reply to `request`, checked as the fuzzers check it (a panic is a failure too).
fn reply_to(request: &[u8]) -> Vec<u8> {
    TOKEN.with(|token| {
        let token = &mut *token.borrow_mut();
        let reply = match token.engine.start(request, Instant::now()) {
            Step::Done(reply) => reply,
            Step::WaitingForUser => {
                token.engine.cancel();
                panic!("with presence auto, {request:02x?} waits for the user");
            }
        };
        check_ctap2_reply(request, &reply, &mut token.counter);
        reply
    })
}

fn encode(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(value, &mut bytes).unwrap();
    bytes
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A CBOR value with no container: integers across the whole range, byte and text strings, bools.
fn cbor_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|i| Value::Integer(i.into())),
        (0u64..24).prop_map(|i| Value::Integer(i.into())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        any::<String>().prop_map(Value::Text),
        prop_oneof![
            Just("id"),
            Just("type"),
            Just("alg"),
            Just("public-key"),
            Just("rk"),
            Just("up"),
            Just("uv"),
        ]
        .prop_map(text),
        any::<bool>().prop_map(Value::Bool),
    ]
}

/// The members of a map, each key once (a duplicate key is `INVALID_CBOR`, checked elsewhere).
fn unique(members: Vec<(Value, Value)>) -> Vec<(Value, Value)> {
    let mut unique: Vec<(Value, Value)> = Vec::with_capacity(members.len());
    for (key, value) in members {
        if !unique.iter().any(|(k, _)| *k == key) {
            unique.push((key, value));
        }
    }
    unique
}

/// Any CBOR value of maps, arrays, integers, strings and bools, at most four containers deep
/// (the engine takes eight).
fn cbor_value() -> impl Strategy<Value = Value> {
    cbor_leaf().prop_recursive(3, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((cbor_leaf(), inner), 0..6)
                .prop_map(|members| Value::Map(unique(members))),
        ]
    })
}

/// A CBOR map of anything.
fn cbor_map() -> impl Strategy<Value = Value> {
    proptest::collection::vec((cbor_leaf(), cbor_value()), 0..8)
        .prop_map(|members| Value::Map(unique(members)))
}

/// A command byte: each of the engine's, or any other.
fn command() -> impl Strategy<Value = u8> {
    prop_oneof![proptest::sample::select(COMMANDS.to_vec()), any::<u8>()]
}

/// A valid makeCredential's members, with optional members that keep it valid, in any order.
fn valid_make_credential() -> impl Strategy<Value = Vec<(Value, Value)>> {
    (
        proptest::collection::vec(any::<u8>(), 1..=64),
        proptest::sample::select(vec![-7i64, -8]),
        any::<bool>(),
        any::<bool>(),
        any::<Index>(),
    )
        .prop_map(|(user_id, alg, rk, exclude, rotation)| {
            let mut extra = vec![(
                Value::Integer(7.into()),
                Value::Map(vec![(text("rk"), Value::Bool(rk))]),
            )];
            if exclude {
                extra.push((
                    Value::Integer(5.into()),
                    Value::Array(vec![Value::Map(vec![
                        (text("id"), Value::Bytes(vec![0xEE; 16])),
                        (text("type"), text("public-key")),
                    ])]),
                ));
            }
            let mut members = make_credential_params(FUZZ_RP, &user_id, &[alg], extra);
            let len = members.len();
            members.rotate_left(rotation.index(len));
            members
        })
}

/// A valid getAssertion's members.
fn valid_get_assertion() -> Vec<(Value, Value)> {
    vec![
        (Value::Integer(1.into()), text(FUZZ_RP)),
        (Value::Integer(2.into()), Value::Bytes(vec![0xAB; 32])),
    ]
}

/// A member of a request (key → path of nested text keys) and the CBOR type it must have.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bytes,
    Text,
    Map,
    Array,
    Integer,
}

fn is(kind: Kind, value: &Value) -> bool {
    match kind {
        Kind::Bytes => value.is_bytes(),
        Kind::Text => value.is_text(),
        Kind::Map => value.is_map(),
        Kind::Array => value.is_array(),
        Kind::Integer => value.is_integer(),
    }
}

/// The required members of makeCredential: `(key, nested text key)`, and their types.
const MAKE_CREDENTIAL_REQUIRED: [(u64, Option<&str>, Kind); 8] = [
    (1, None, Kind::Bytes),
    (2, None, Kind::Map),
    (2, Some("id"), Kind::Text),
    (3, None, Kind::Map),
    (3, Some("id"), Kind::Bytes),
    (4, None, Kind::Array),
    // In the first (only) entry of pubKeyCredParams.
    (4, Some("alg"), Kind::Integer),
    (4, Some("type"), Kind::Text),
];

const GET_ASSERTION_REQUIRED: [(u64, Option<&str>, Kind); 2] =
    [(1, None, Kind::Text), (2, None, Kind::Bytes)];

/// The nested map of member `key`: itself, or the first entry of an array.
fn nested(members: &mut [(Value, Value)], key: u64) -> &mut Vec<(Value, Value)> {
    let value = members
        .iter_mut()
        .find(|(k, _)| k.as_integer() == Some(key.into()))
        .map(|(_, v)| v)
        .unwrap();
    let value = match value {
        Value::Array(entries) => &mut entries[0],
        other => other,
    };
    value.as_map_mut().unwrap()
}

/// Sets (`Some`) or removes (`None`) the member `(key, inner)`.
fn set(members: &mut Vec<(Value, Value)>, key: u64, inner: Option<&str>, to: Option<Value>) {
    let (list, wanted) = match inner {
        None => (members, Value::Integer(key.into())),
        Some(inner) => (nested(members, key), text(inner)),
    };
    let at = list.iter().position(|(k, _)| *k == wanted);
    match (at, to) {
        (Some(at), Some(value)) => list[at].1 = value,
        (Some(at), None) => {
            list.remove(at);
        }
        (None, Some(value)) => list.push((wanted, value)),
        (None, None) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Any bytes: a reply with a status of the spec, an error alone, a success canonical.
    #[test]
    fn any_bytes_get_a_status_of_the_spec(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        reply_to(&bytes);
    }

    /// Any CBOR value after any command byte: the same; an unknown command is INVALID_COMMAND,
    /// and makeCredential, getAssertion, clientPIN, credentialManagement or authenticatorConfig
    /// parameters that are not a map
    /// CBOR_UNEXPECTED_TYPE.
    #[test]
    fn any_cbor_after_any_command_gets_a_status_of_the_spec(
        command in command(),
        value in prop_oneof![cbor_value(), cbor_map()],
    ) {
        let mut request = vec![command];
        request.extend(encode(&value));
        let reply = reply_to(&request);
        if !COMMANDS.contains(&command) {
            prop_assert_eq!(reply, [INVALID_COMMAND]);
        } else if matches!(
            command,
            MAKE_CREDENTIAL | GET_ASSERTION | CLIENT_PIN | LARGE_BLOBS | 0x0A | 0x0D | 0x41
        )
            && !value.is_map()
        {
            prop_assert_eq!(reply, [CBOR_UNEXPECTED_TYPE]);
        }
    }

    /// A request's CBOR cut short anywhere, or followed by anything: INVALID_CBOR.
    #[test]
    fn truncated_or_trailing_cbor_gets_invalid_cbor(
        command in proptest::sample::select(vec![MAKE_CREDENTIAL, GET_ASSERTION]),
        params in prop_oneof![
            cbor_map(),
            valid_make_credential().prop_map(Value::Map),
            Just(Value::Map(valid_get_assertion())),
        ],
        cut in any::<Index>(),
        trailing in proptest::collection::vec(any::<u8>(), 1..20),
    ) {
        let encoded = encode(&params);
        // Every strict prefix of a CBOR item is cut short (an empty one is an empty map).
        if encoded.len() > 1 {
            let cut = 1 + cut.index(encoded.len() - 1);
            let request = [&[command][..], &encoded[..cut]].concat();
            prop_assert_eq!(reply_to(&request), [INVALID_CBOR], "cut at {}", cut);
        }
        let request = [&[command][..], &encoded, &trailing].concat();
        prop_assert_eq!(reply_to(&request), [INVALID_CBOR], "{} bytes after", trailing.len());
    }

    /// A valid request with one required member of another CBOR type: CBOR_UNEXPECTED_TYPE.
    #[test]
    fn a_wrong_typed_required_member_gets_cbor_unexpected_type(
        make in valid_make_credential(),
        which in any::<Index>(),
        make_credential in any::<bool>(),
        value in cbor_value(),
    ) {
        let (command, mut members, (key, inner, kind)) = if make_credential {
            (MAKE_CREDENTIAL, make, *which.get(&MAKE_CREDENTIAL_REQUIRED))
        } else {
            (GET_ASSERTION, valid_get_assertion(), *which.get(&GET_ASSERTION_REQUIRED))
        };
        prop_assume!(!is(kind, &value));
        set(&mut members, key, inner, Some(value));
        let reply = reply_to(&cbor_request(command, members));
        prop_assert_eq!(reply, [CBOR_UNEXPECTED_TYPE], "member {} {:?}", key, inner);
    }

    /// A valid request without some of its required members: MISSING_PARAMETER.
    #[test]
    fn missing_required_members_get_missing_parameter(
        make in valid_make_credential(),
        removed in 1u16..0x100,
        make_credential in any::<bool>(),
    ) {
        let (command, mut members, required) = if make_credential {
            (MAKE_CREDENTIAL, make, &MAKE_CREDENTIAL_REQUIRED[..])
        } else {
            (GET_ASSERTION, valid_get_assertion(), &GET_ASSERTION_REQUIRED[..])
        };
        let removed = removed % (1 << required.len());
        prop_assume!(removed != 0);
        // Nested members first, while their map is still there.
        for (index, (key, inner, _)) in required.iter().enumerate().rev() {
            let present = inner.is_none()
                || members.iter().any(|(k, _)| k.as_integer() == Some((*key).into()));
            if removed & (1 << index) != 0 && present {
                set(&mut members, *key, *inner, None);
            }
        }
        let reply = reply_to(&cbor_request(command, members));
        prop_assert_eq!(reply, [MISSING_PARAMETER], "removed {:08b}", removed);
    }
}

/// The extensions a request may name, and one no version of the spec has.
const EXTENSION_NAMES: [&str; 6] = [
    "credProtect",
    "hmac-secret",
    "hmac-secret-mc",
    "credBlob",
    "largeBlobKey",
    "unknownExtension",
];

/// An extensions map: each of [`EXTENSION_NAMES`] maybe, with a value of the type it takes or of
/// any other.
fn extensions() -> impl Strategy<Value = Value> {
    let typed = prop_oneof![
        (0i64..5).prop_map(|i| Value::Integer(i.into())),
        any::<bool>().prop_map(Value::Bool),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        proptest::collection::vec((1i64..5, cbor_leaf()), 0..4).prop_map(|members| {
            Value::Map(unique(
                members
                    .into_iter()
                    .map(|(k, v)| (Value::Integer(k.into()), v))
                    .collect(),
            ))
        }),
        cbor_value(),
    ];
    proptest::collection::vec(
        (proptest::sample::select(EXTENSION_NAMES.to_vec()), typed),
        0..6,
    )
    .prop_map(|members| {
        Value::Map(unique(
            members.into_iter().map(|(k, v)| (text(k), v)).collect(),
        ))
    })
}

/// The extension map that ends `auth_data` when its ED flag is set: past the attested
/// credential (its id and COSE key) for a makeCredential, right after the counter otherwise.
fn extension_outputs(auth_data: &[u8]) -> Option<Value> {
    if auth_data[32] & 0x80 == 0 {
        return None;
    }
    let mut rest = &auth_data[37..];
    if auth_data[32] & 0x40 != 0 {
        let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
        rest = &auth_data[55 + id_len..];
        let _key: Value = ciborium::de::from_reader(&mut rest).unwrap();
    }
    let outputs: Value = ciborium::de::from_reader(&mut rest).unwrap();
    assert!(rest.is_empty(), "bytes after the extension map");
    Some(outputs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// makeCredential and getAssertion with extensions of any shape: a status of the spec, and
    /// on success extension outputs only for extensions that were asked for (CTAP 2.1 §12),
    /// never an unknown one.
    #[test]
    fn extensions_of_any_shape_get_a_status_and_only_outputs_that_were_asked_for(
        make in valid_make_credential(),
        asked in extensions(),
        make_credential in any::<bool>(),
    ) {
        let (command, mut members) = if make_credential {
            (MAKE_CREDENTIAL, make)
        } else {
            (GET_ASSERTION, valid_get_assertion())
        };
        let key = if make_credential { 6 } else { 4 };
        set(&mut members, key, None, Some(asked.clone()));
        let reply = reply_to(&cbor_request(command, members));
        if reply[0] != 0 {
            return Ok(());
        }
        let body: Value = ciborium::de::from_reader(&reply[1..]).unwrap();
        let auth_data = body
            .as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_integer() == Some(2.into()))
            .and_then(|(_, v)| v.as_bytes())
            .unwrap()
            .clone();
        if let Some(outputs) = extension_outputs(&auth_data) {
            let outputs = outputs.as_map().unwrap().clone();
            prop_assert!(!outputs.is_empty(), "ED set for an empty map");
            for (name, _) in outputs {
                prop_assert!(
                    asked.as_map().unwrap().iter().any(|(k, _)| *k == name),
                    "{:?} given, not asked for", name
                );
                prop_assert_ne!(name, text("unknownExtension"));
            }
        }
    }
}

/// The statuses the checks accept are those of `src/ctap2/status.rs`, and no other byte.
#[test]
fn the_listed_statuses_are_the_specs() {
    let listed: Vec<u8> = (0..=255).filter(|&b| ctap2_status_listed(b)).collect();
    assert_eq!(listed.len(), checks::CTAP2_STATUSES.len());
    for byte in [0x00, 0x01, 0x11, 0x12, 0x14, 0x2D, 0x7F] {
        assert!(ctap2_status_listed(byte), "0x{byte:02X}");
    }
    for byte in [0x10, 0x13, 0x16, 0x2A, 0x38, 0x41, 0xFF] {
        assert!(!ctap2_status_listed(byte), "0x{byte:02X}");
    }
}
