//! What must hold for any input, shared by the libFuzzer targets (`fuzz_targets/`) and by the
//! regression test that replays the seeds and findings in CI (`tests/fuzz_regressions.rs`).
//! Each check panics when a promise breaks; a panic inside vu2f is a finding too.
//!
//! * [`apdu`]: the U2F engine answers every APDU with a status word of the spec (FIDO U2F raw
//!   message formats v1.2, section 3.3) and its counter never repeats nor goes back.
//! * [`ctaphid`]: the CTAPHID state machine (FIDO U2F HID protocol v1.1, section 2), driven with
//!   sequences of packets and clock steps, only ever answers channels that spoke.
//! * [`key_handle`]: no handle that the token did not seal opens, and a sealed one opens only for
//!   its own application parameter.
//! * [`server_reply`]: the client reads any server reply, status and body, into a value or a
//!   one-line error; sign and register requests it accepts go to the token without harm.
//! * [`ctap2_request`]: the CTAP2 engine of a `fido2` token (presence `auto`) answers any request
//!   with a status of `src/ctap2/status.rs`, an error with that byte alone, a success with one
//!   canonical CBOR map, and its counter never repeats nor goes back (CTAP 2.1 sections 6 and 8).
//! * [`ctaphid_cbor`]: CTAPHID over that engine with presence `touch` or `delay`, so that requests
//!   wait: only channels that spoke are answered, KEEPALIVE carries 1 or 2, a CBOR reply follows
//!   a CBOR request on its channel, and CANCEL ends the waiting request with `[0x2D]` (CTAP 2.1
//!   section 11.2.9).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ciborium::value::Value;
use keystore::{KeyWrapper, Store, TokenOptions, KEY_HANDLE_LEN};
use vu2f::aa::api::{EndpointSession, LogonResponse};
use vu2f::aa::portal::{DoEnrollResponse, TemplateList, TemplateSaved};
use vu2f::client::http::read_reply;
use vu2f::client::{OriginPolicy, TokenClient};
use vu2f::ctap2::{self, cbor, Status, Step};
use vu2f::hid::{fragment, Command, CtapHid, MessageHandler, Packet, Report, BROADCAST_CID};
use vu2f::transport::InProcess;
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};
use vu2f::u2f::{Authenticator, Presence, PresencePolicy};

/// The status words a token may answer.
const STATUS_WORDS: [u16; 8] = [
    0x9000, 0x6985, 0x6986, 0x6A80, 0x6700, 0x6D00, 0x6E00, 0x6F00,
];
const APP: &str = "https://fuzz.vu2f.invalid";
const INS_AUTHENTICATE: u8 = 0x02;

/// A store in a temporary directory that lives as long as the process: in /dev/shm where there is
/// one, so that the flushes of counters and discoverable credentials cost the fuzzer little.
fn store() -> &'static Store {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    let (_, store) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        (dir, store)
    });
    store
}

/// A token of the process's store.
fn token(name: &str) -> Authenticator {
    let store = store();
    store.create_token(name, TokenOptions::default()).unwrap();
    Authenticator::new(
        store.load(name).unwrap(),
        Presence::new(PresencePolicy::Auto),
    )
}

/// The engine, a key handle it issued for [`APP`], and the highest counter it has signed with.
struct Engine {
    token: Authenticator,
    key_handle: Vec<u8>,
    counter: Option<u32>,
}

fn engine() -> &'static Mutex<Engine> {
    static ENGINE: OnceLock<Mutex<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut token = token("apdu");
        let app = messages::app_param(APP);
        let request = messages::register_request(&[1; 32], &app);
        let response = token.process(&request, Instant::now());
        let registration =
            RegistrationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
        Mutex::new(Engine {
            token,
            key_handle: registration.key_handle,
            counter: None,
        })
    })
}

/// Input: a mode byte, then either a raw APDU (even mode) or bytes XORed over a valid
/// AUTHENTICATE of the registered handle (odd mode; bit 1 makes it check-only, bit 2 cuts it to
/// the input's length), so that the fuzzer reaches past the unwrap.
pub fn apdu(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut engine = engine().lock().unwrap_or_else(|e| e.into_inner());
    let command = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let control = if mode & 0x02 == 0 {
            Control::EnforcePresenceAndSign
        } else {
            Control::CheckOnly
        };
        let mut valid = messages::authenticate_request(
            control,
            &[2; 32],
            &messages::app_param(APP),
            &engine.key_handle,
        );
        valid.resize(valid.len().max(rest.len()), 0);
        for (byte, flip) in valid.iter_mut().zip(rest) {
            *byte ^= flip;
        }
        if mode & 0x04 != 0 {
            valid.truncate(rest.len());
        }
        valid
    };
    let response = engine.token.process(&command, Instant::now());
    let status = messages::status_of(&response).expect("every response ends with a status word");
    assert!(
        STATUS_WORDS.contains(&status),
        "status {status:04X} is not a U2F status word"
    );
    if status == 0x9000 && command.get(1) == Some(&INS_AUTHENTICATE) {
        let auth = AuthenticationResponse::try_from(messages::split_status(&response).unwrap())
            .expect("a signed authentication parses");
        if let Some(last) = engine.counter {
            assert!(auth.counter > last, "counter {} after {last}", auth.counter);
        }
        engine.counter = Some(auth.counter);
    }
}

/// Echoes messages, so that a reply's content is known.
struct Echo;

impl MessageHandler for Echo {
    fn handle_message(&mut self, apdu: &[u8], _now: Instant) -> Vec<u8> {
        apdu.to_vec()
    }
}

/// Input: a sequence of operations. A byte with the top bit set advances the clock by
/// `(byte & 0x7f) * 10` ms and polls; otherwise the byte's low 6 bits give a report length
/// (`len + 8`, at most 65) of the bytes that follow, and bit 6 replaces the report's channel with
/// one the token allocated earlier.
pub fn ctaphid(data: &[u8]) {
    let mut hid = CtapHid::new(Echo);
    let mut now = Instant::now();
    let mut spoke: HashSet<u32> = HashSet::from([BROADCAST_CID]);
    let mut allocated: Vec<u32> = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let replies = if op & 0x80 != 0 {
            now += Duration::from_millis(u64::from(op & 0x7f) * 10);
            rest = tail;
            hid.poll(now)
        } else {
            let len = (usize::from(op & 0x3f) + 8).min(65).min(tail.len());
            let mut report = tail[..len].to_vec();
            rest = &tail[len..];
            if op & 0x40 != 0 && !allocated.is_empty() && report.len() >= 4 {
                let cid = allocated[usize::from(report[0]) % allocated.len()];
                report[..4].copy_from_slice(&cid.to_be_bytes());
            }
            // A 65-byte report may lead with report number 0, which the token strips.
            let cid_at = if report.len() == 65 { 0..2 } else { 0..1 };
            for at in cid_at {
                if let Some(cid) = report.get(at..at + 4) {
                    spoke.insert(u32::from_be_bytes(cid.try_into().unwrap()));
                }
            }
            hid.handle_report(&report, now)
        };
        for reply in &replies {
            check_reply(reply, &spoke, &mut allocated);
        }
    }
}

fn check_reply(reply: &Report, spoke: &HashSet<u32>, allocated: &mut Vec<u32>) {
    let cid = u32::from_be_bytes(reply[..4].try_into().unwrap());
    assert!(
        spoke.contains(&cid),
        "a reply on channel {cid:08x}, which never spoke"
    );
    // An INIT reply (command 0x86, 17 bytes) hands out a channel.
    if reply[4] == 0x86 && reply[5..7] == [0, 17] {
        let new = u32::from_be_bytes(reply[15..19].try_into().unwrap());
        assert_ne!(new, BROADCAST_CID, "INIT allocated the broadcast channel");
        assert_ne!(new, 0, "INIT allocated channel 0");
        allocated.push(new);
    }
}

/// Input: 32 bytes of application parameter, then a key handle. Also checks that a handle sealed
/// for that application opens for it and for no other.
pub fn key_handle(data: &[u8]) {
    static WRAPPER: OnceLock<KeyWrapper> = OnceLock::new();
    let wrapper = WRAPPER.get_or_init(|| KeyWrapper::new(&[0x5a; 32]));
    let Some((app, handle)) = data.split_first_chunk::<32>() else {
        return;
    };
    match wrapper.unwrap(handle, app) {
        Ok(_) => panic!("a key handle the token never sealed opened"),
        Err(keystore::UnwrapError::WrongLength) => assert_ne!(handle.len(), KEY_HANDLE_LEN),
        Err(keystore::UnwrapError::NotOurs) => assert_eq!(handle.len(), KEY_HANDLE_LEN),
    }
    if data.len() < 33 || data[32] != 0 {
        return;
    }
    let rng = ring::rand::SystemRandom::new();
    let credential = keystore::CredentialKey::generate(&rng).unwrap();
    let sealed = wrapper.wrap(&credential, app, &rng).unwrap();
    assert!(
        wrapper.unwrap(&sealed, app).is_ok(),
        "a sealed handle does not open"
    );
    let mut other = *app;
    other[usize::from(data.len() as u8 % 32)] ^= 1;
    assert!(
        wrapper.unwrap(&sealed, &other).is_err(),
        "a handle opened for another application"
    );
}

/// Input: a selector byte (which HTTP status, which reply type), then the body.
pub fn server_reply(data: &[u8]) {
    const STATUSES: [u16; 10] = [200, 201, 204, 400, 401, 404, 409, 413, 500, 503];
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(selector) % STATUSES.len()];
    let call = "POST /api/v1/fuzz";
    let one_line = |error: &vu2f::client::ClientError| {
        let text = error.to_string();
        assert!(
            !text.chars().any(char::is_control),
            "an error with control characters: {text:?}"
        );
    };
    match usize::from(selector) / STATUSES.len() % 5 {
        0 => match read_reply::<LogonResponse>(call, status, body) {
            Ok(reply) if !reply.sign_requests.is_empty() => {
                if let Err(e) = block_on(
                    client()
                        .lock()
                        .unwrap()
                        .sign(&reply.sign_requests, &policy()),
                ) {
                    one_line(&e);
                }
            }
            Ok(_) => {}
            Err(e) => one_line(&e),
        },
        1 => match read_reply::<DoEnrollResponse>(call, status, body) {
            Ok(reply) => {
                let mut token = client().lock().unwrap();
                let policy = policy();
                if let Err(e) = block_on(token.knows_any(&reply.sign_requests, &policy)) {
                    one_line(&e);
                }
                if let Err(e) = block_on(token.register(&reply.register_requests, &policy)) {
                    one_line(&e);
                }
            }
            Err(e) => one_line(&e),
        },
        2 => read_reply::<EndpointSession>(call, status, body)
            .err()
            .iter()
            .for_each(one_line),
        3 => read_reply::<TemplateList>(call, status, body)
            .err()
            .iter()
            .for_each(one_line),
        _ => read_reply::<TemplateSaved>(call, status, body)
            .err()
            .iter()
            .for_each(one_line),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        })
        .block_on(future)
}

fn client() -> &'static Mutex<TokenClient> {
    static CLIENT: OnceLock<Mutex<TokenClient>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let transport = InProcess::new(token("server-reply"));
        Mutex::new(TokenClient::new(
            Box::new(transport),
            Duration::from_secs(1),
        ))
    })
}

fn policy() -> OriginPolicy {
    OriginPolicy::new(APP.into(), Vec::new(), None)
}

// ---------------------------------------------------------------------------------------------
// CTAP2 (`ctap2_request`, `ctaphid_cbor`)

/// Every status of `src/ctap2/status.rs`: the only first bytes a CTAP2 reply may have.
pub const CTAP2_STATUSES: [Status; 37] = [
    Status::Ok,
    Status::InvalidCommand,
    Status::InvalidParameter,
    Status::InvalidLength,
    Status::InvalidSeq,
    Status::LargeBlobStorageFull,
    Status::Other,
    Status::CborUnexpectedType,
    Status::InvalidCbor,
    Status::MissingParameter,
    Status::LimitExceeded,
    Status::CredentialExcluded,
    Status::Processing,
    Status::InvalidCredential,
    Status::UnsupportedAlgorithm,
    Status::OperationDenied,
    Status::KeyStoreFull,
    Status::UnsupportedOption,
    Status::InvalidOption,
    Status::KeepaliveCancel,
    Status::NoCredentials,
    Status::UserActionTimeout,
    Status::NotAllowed,
    Status::PinInvalid,
    Status::PinBlocked,
    Status::PinAuthInvalid,
    Status::PinAuthBlocked,
    Status::PinNotSet,
    Status::PuatRequired,
    Status::PinPolicyViolation,
    Status::RequestTooLarge,
    Status::UpRequired,
    Status::UvBlocked,
    Status::IntegrityFailure,
    Status::InvalidSubcommand,
    Status::UvInvalid,
    Status::UnauthorizedPermission,
];

/// Does not build when `Status` gains a variant: list it in [`CTAP2_STATUSES`] too.
const _EVERY_STATUS_IS_LISTED: fn(Status) = |status| match status {
    Status::Ok
    | Status::InvalidCommand
    | Status::InvalidParameter
    | Status::InvalidLength
    | Status::InvalidSeq
    | Status::LargeBlobStorageFull
    | Status::Other
    | Status::CborUnexpectedType
    | Status::InvalidCbor
    | Status::MissingParameter
    | Status::LimitExceeded
    | Status::CredentialExcluded
    | Status::Processing
    | Status::InvalidCredential
    | Status::UnsupportedAlgorithm
    | Status::OperationDenied
    | Status::KeyStoreFull
    | Status::UnsupportedOption
    | Status::InvalidOption
    | Status::KeepaliveCancel
    | Status::NoCredentials
    | Status::UserActionTimeout
    | Status::NotAllowed
    | Status::PinInvalid
    | Status::PinBlocked
    | Status::PinAuthInvalid
    | Status::PinAuthBlocked
    | Status::PinNotSet
    | Status::PuatRequired
    | Status::PinPolicyViolation
    | Status::RequestTooLarge
    | Status::UpRequired
    | Status::UvBlocked
    | Status::IntegrityFailure
    | Status::InvalidSubcommand
    | Status::UvInvalid
    | Status::UnauthorizedPermission => {}
};

/// Whether `VU2F_FUZZ_TRACE` is set: the CTAP2 targets then print what they send and receive
/// (to read a finding with `cargo test --test fuzz_regressions -- --nocapture`).
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("VU2F_FUZZ_TRACE").is_some())
}

/// Whether `byte` is a status of `src/ctap2/status.rs`.
pub fn ctap2_status_listed(byte: u8) -> bool {
    CTAP2_STATUSES.iter().any(|status| status.byte() == byte)
}

pub const MAKE_CREDENTIAL: u8 = 0x01;
pub const GET_ASSERTION: u8 = 0x02;
pub const GET_INFO: u8 = 0x04;
pub const CLIENT_PIN: u8 = 0x06;
pub const GET_NEXT_ASSERTION: u8 = 0x08;
pub const SELECTION: u8 = 0x0B;
pub const RESET: u8 = 0x07;
pub const CREDENTIAL_MANAGEMENT: u8 = 0x0A;
pub const LARGE_BLOBS: u8 = 0x0C;
pub const CONFIG: u8 = 0x0D;
pub const CREDENTIAL_MANAGEMENT_PREVIEW: u8 = 0x41;
/// The RP of the fuzzed credentials.
pub const FUZZ_RP: &str = "fuzz.vu2f.invalid";
/// A credential id that no token issued.
const UNKNOWN_ID: [u8; 16] = [0xEE; 16];
const ES256: i64 = -7;
const EDDSA: i64 = -8;
/// authenticator data flags (WebAuthn section 6.1).
const FLAG_ATTESTED: u8 = 0x40;
const FLAG_EXTENSIONS: u8 = 0x80;

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

/// Command byte ‖ CBOR of `params`, written by ciborium in the order given.
pub fn cbor_request(command: u8, params: Vec<(Value, Value)>) -> Vec<u8> {
    let mut request = vec![command];
    ciborium::ser::into_writer(&Value::Map(params), &mut request).unwrap();
    request
}

fn options(options: &[(&str, bool)]) -> Value {
    Value::Map(
        options
            .iter()
            .map(|(k, v)| (text(k), Value::Bool(*v)))
            .collect(),
    )
}

fn descriptors(ids: &[&[u8]]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| {
                Value::Map(vec![
                    (text("id"), Value::Bytes(id.to_vec())),
                    (text("type"), text("public-key")),
                ])
            })
            .collect(),
    )
}

/// The members of a valid authenticatorMakeCredential (keys 1 to 4), then `extra`.
pub fn make_credential_params(
    rp: &str,
    user_id: &[u8],
    algorithms: &[i64],
    extra: Vec<(Value, Value)>,
) -> Vec<(Value, Value)> {
    let mut params = vec![
        (int(1), Value::Bytes(vec![0xCD; 32])),
        (
            int(2),
            Value::Map(vec![(text("id"), text(rp)), (text("name"), text("Fuzz"))]),
        ),
        (
            int(3),
            Value::Map(vec![
                (text("id"), Value::Bytes(user_id.to_vec())),
                (text("name"), text("fuzz")),
                (text("displayName"), text("Fuzz User")),
            ]),
        ),
        (
            int(4),
            Value::Array(
                algorithms
                    .iter()
                    .map(|alg| {
                        Value::Map(vec![
                            (text("alg"), int(*alg)),
                            (text("type"), text("public-key")),
                        ])
                    })
                    .collect(),
            ),
        ),
    ];
    params.extend(extra);
    params
}

/// An authenticatorMakeCredential with the `options` and the `exclude` list (when not empty).
pub fn make_credential_request(
    rp: &str,
    user_id: &[u8],
    algorithm: i64,
    opts: &[(&str, bool)],
    exclude: &[&[u8]],
) -> Vec<u8> {
    let mut extra = Vec::new();
    if !exclude.is_empty() {
        extra.push((int(5), descriptors(exclude)));
    }
    if !opts.is_empty() {
        extra.push((int(7), options(opts)));
    }
    cbor_request(
        MAKE_CREDENTIAL,
        make_credential_params(rp, user_id, &[algorithm], extra),
    )
}

/// An authenticatorGetAssertion with the `allow` list (when not empty) and the `options`.
pub fn get_assertion_request(rp: &str, allow: &[&[u8]], opts: &[(&str, bool)]) -> Vec<u8> {
    let mut params = vec![(int(1), text(rp)), (int(2), Value::Bytes(vec![0xAB; 32]))];
    if !allow.is_empty() {
        params.push((int(3), descriptors(allow)));
    }
    if !opts.is_empty() {
        params.push((int(5), options(opts)));
    }
    cbor_request(GET_ASSERTION, params)
}

/// `bytes` as exactly one CBOR map in CTAP2 canonical form, or a panic naming `what`.
fn canonical_map(bytes: &[u8], what: &str) -> Vec<(Value, Value)> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader(&mut rest)
        .unwrap_or_else(|e| panic!("{what} is not CBOR ({e}): {bytes:02x?}"));
    assert!(
        rest.is_empty(),
        "{what}: {} bytes after its CBOR item: {bytes:02x?}",
        rest.len()
    );
    assert_eq!(
        ctap2::cbor::encode(&value),
        bytes,
        "{what} is not canonical CBOR"
    );
    value
        .into_map()
        .unwrap_or_else(|v| panic!("{what} is not a map: {v:?}"))
}

fn uint_member(members: &[(Value, Value)], key: u64) -> Option<&Value> {
    members
        .iter()
        .find(|(k, _)| k.as_integer() == Some(key.into()))
        .map(|(_, v)| v)
}

/// The credential id of a makeCredential reply's authenticator data; its public key is one
/// canonical COSE map and nothing follows it (no extensions).
fn attested_credential_id(auth_data: &[u8]) -> Vec<u8> {
    assert!(
        auth_data.len() >= 55,
        "attested authenticator data of {} bytes",
        auth_data.len()
    );
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data
        .get(55..55 + id_len)
        .unwrap_or_else(|| panic!("a credential id of {id_len} bytes in {auth_data:02x?}"));
    if auth_data[32] & FLAG_EXTENSIONS == 0 {
        canonical_map(&auth_data[55 + id_len..], "the credential public key");
    }
    id.to_vec()
}

/// Checks the engine's `reply` to `request` (see the module's documentation); `last_counter` is
/// the highest counter the token has signed with. Returns the reply's map, if it has one.
pub fn check_ctap2_reply(
    request: &[u8],
    reply: &[u8],
    last_counter: &mut Option<u32>,
) -> Option<Vec<(Value, Value)>> {
    let (&status, body) = reply
        .split_first()
        .unwrap_or_else(|| panic!("an empty reply to {request:02x?}"));
    assert!(
        ctap2_status_listed(status),
        "status 0x{status:02X} is not a CTAP2 status (request {request:02x?})"
    );
    if status != Status::Ok.byte() {
        assert!(
            body.is_empty(),
            "error 0x{status:02X} with a body: {reply:02x?} (request {request:02x?})"
        );
        return None;
    }
    let command = request.first().copied();
    if body.is_empty() {
        assert!(
            matches!(
                command,
                Some(
                    SELECTION
                        | CLIENT_PIN
                        | RESET
                        | CONFIG
                        | CREDENTIAL_MANAGEMENT
                        | CREDENTIAL_MANAGEMENT_PREVIEW
                        | LARGE_BLOBS
                )
            ),
            "a success without a body (request {request:02x?})"
        );
        return None;
    }
    let members = canonical_map(body, "a success reply's body");
    if let Some(command @ (MAKE_CREDENTIAL | GET_ASSERTION | GET_NEXT_ASSERTION)) = command {
        let auth_data = uint_member(&members, 2)
            .and_then(Value::as_bytes)
            .unwrap_or_else(|| panic!("a success without authData (key 2): {members:?}"));
        assert!(
            auth_data.len() >= 37,
            "authData of {} bytes",
            auth_data.len()
        );
        let counter = u32::from_be_bytes(auth_data[33..37].try_into().unwrap());
        if let Some(last) = *last_counter {
            assert!(counter > last, "counter {counter} after {last}");
        }
        *last_counter = Some(counter);
        let attested = auth_data[32] & FLAG_ATTESTED != 0;
        assert_eq!(
            attested,
            command == MAKE_CREDENTIAL,
            "the AT flag of command 0x{command:02X}'s authData"
        );
        if attested {
            attested_credential_id(auth_data);
        }
    }
    Some(members)
}

/// A `fido2` token's options in the fuzzers: few discoverable credentials, so that a full store
/// is reached too.
fn fido2_options() -> TokenOptions {
    TokenOptions {
        profile: keystore::Profile::Fido2,
        discoverable_limit: 16,
        ..TokenOptions::default()
    }
}

/// One CTAP2 engine of `ctap2_request`, with credentials it made at the start.
struct Ctap2Engine {
    token: ctap2::Authenticator,
    counter: Option<u32>,
    /// A non-discoverable ES256 credential of [`FUZZ_RP`] (a discoverable one would be gone once
    /// a fuzzed makeCredential replaced it).
    es256: Vec<u8>,
    /// A non-discoverable EdDSA credential of [`FUZZ_RP`].
    eddsa: Vec<u8>,
    /// A U2F key handle registered for [`APP`], which WebAuthn's `appid` sends as the rpId.
    u2f_handle: Vec<u8>,
}

impl Ctap2Engine {
    fn new(name: &str, uv: Option<PresencePolicy>) -> Self {
        let store = store();
        store.create_token(name, fido2_options()).unwrap();
        let u2f = Authenticator::new(
            store.load(name).unwrap(),
            Presence::new(PresencePolicy::Auto),
        );
        let mut engine = Self {
            token: ctap2::Authenticator::new(u2f, uv),
            counter: None,
            es256: Vec::new(),
            eddsa: Vec::new(),
            u2f_handle: Vec::new(),
        };
        // A token with built-in UV makes discoverable credentials only for a verified user
        // (CTAP 2.1 §6.1.2 step 7).
        let rk: &[(&str, bool)] = if uv.is_some() {
            &[("rk", true), ("uv", true)]
        } else {
            &[("rk", true)]
        };
        engine.make(&make_credential_request(FUZZ_RP, &[1], ES256, rk, &[]));
        engine.make(&make_credential_request(FUZZ_RP, &[2], EDDSA, rk, &[]));
        engine.es256 = engine.make(&make_credential_request(FUZZ_RP, &[3], ES256, &[], &[]));
        engine.eddsa = engine.make(&make_credential_request(FUZZ_RP, &[4], EDDSA, &[], &[]));
        let request = messages::register_request(&[1; 32], &messages::app_param(APP));
        let response = engine.token.u2f_mut().process(&request, Instant::now());
        let registration =
            RegistrationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
        engine.u2f_handle = registration.key_handle;
        engine
    }

    /// Runs one request to its reply (presence `auto`: nothing waits) and checks the reply;
    /// returns its status and map.
    fn run(&mut self, request: &[u8]) -> (u8, Option<Vec<(Value, Value)>>) {
        let reply = match self.token.start(request, Instant::now()) {
            Step::Done(reply) => reply,
            Step::WaitingForUser => {
                self.token.cancel();
                panic!("with presence auto, request {request:02x?} waits for the user");
            }
        };
        if tracing() {
            eprintln!("ctap2 {request:02x?}\n   -> {reply:02x?}");
        }
        (
            reply[0],
            check_ctap2_reply(request, &reply, &mut self.counter),
        )
    }

    fn make(&mut self, request: &[u8]) -> Vec<u8> {
        let members = self
            .run(request)
            .1
            .expect("the setup's makeCredential succeeds");
        let auth_data = uint_member(&members, 2).and_then(Value::as_bytes).unwrap();
        attested_credential_id(auth_data)
    }

    /// The valid request of a structured input: `selector & 7` picks the command, the bits above
    /// its options (see [`ctap2_request`]).
    fn template(&self, selector: u8) -> Vec<u8> {
        let bit = |n: u8| selector & (1 << n) != 0;
        let mut opts = Vec::new();
        match selector & 0x07 {
            0 => {
                if bit(3) {
                    opts.push(("rk", true));
                }
                if bit(6) {
                    opts.push(("uv", true));
                }
                let algorithm = if bit(4) { EDDSA } else { ES256 };
                let exclude: &[&[u8]] = if bit(5) { &[&self.es256] } else { &[] };
                make_credential_request(FUZZ_RP, &[0x10], algorithm, &opts, exclude)
            }
            1 | 2 | 6 => {
                if bit(3) {
                    opts.push(("up", false));
                }
                if bit(5) {
                    opts.push(("rk", true));
                }
                if bit(6) {
                    opts.push(("uv", true));
                }
                match selector & 0x07 {
                    1 => {
                        let known = if bit(4) { &self.eddsa } else { &self.es256 };
                        get_assertion_request(FUZZ_RP, &[&UNKNOWN_ID, known], &opts)
                    }
                    2 => get_assertion_request(FUZZ_RP, &[], &opts),
                    _ => get_assertion_request(APP, &[&self.u2f_handle], &opts),
                }
            }
            3 => vec![GET_INFO],
            4 => vec![SELECTION],
            5 => vec![GET_NEXT_ASSERTION],
            _ => {
                let mut extra = Vec::new();
                if bit(3) {
                    extra.push((int(8), Value::Bytes(Vec::new())));
                } else if bit(4) {
                    extra.push((int(8), Value::Bytes(vec![0x11; 16])));
                    extra.push((int(9), int(1)));
                }
                if bit(5) {
                    extra.push((int(10), int(1)));
                }
                let algorithms: &[i64] = if bit(6) { &[-257] } else { &[-257, EDDSA] };
                cbor_request(
                    MAKE_CREDENTIAL,
                    make_credential_params(FUZZ_RP, &[0x11], algorithms, extra),
                )
            }
        }
    }
}

fn ctap2_engines() -> &'static Mutex<Vec<Ctap2Engine>> {
    static ENGINES: OnceLock<Mutex<Vec<Ctap2Engine>>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        Mutex::new(vec![
            Ctap2Engine::new("ctap2-request", None),
            Ctap2Engine::new("ctap2-request-uv", Some(PresencePolicy::Auto)),
            Ctap2Engine::new("ctap2-request-settings", None),
        ])
    })
}

/// The engine a request runs on: a reset or an authenticatorConfig (alwaysUv) would leave a
/// token changed for every input after it, whose expected statuses assume one as made, so those
/// run on a token of their own (the third).
fn engine_for(request: &[u8], otherwise: usize) -> usize {
    match request.first() {
        Some(&(RESET | CONFIG)) => 2,
        _ => otherwise,
    }
}

/// A token with the PIN "1234" and discoverable credentials on two RPs, for `manage_request`.
struct ManageToken {
    engine: Ctap2Engine,
    /// The lowest minPINLength getInfo may tell now: it only grows.
    min_pin_length: u64,
}

const MANAGE_PIN: &[u8] = b"1234";
const CM: u8 = 0x04;
const ACFG: u8 = 0x20;

impl ManageToken {
    fn new() -> Self {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut engine = Ctap2Engine::new(&format!("manage-{n}"), None);
        engine.make(&make_credential_request(
            "other.vu2f.invalid",
            &[9],
            ES256,
            &[("rk", true)],
            &[],
        ));
        let mut token = Self {
            engine,
            min_pin_length: 4,
        };
        let (key_agreement, shared) = token.agree();
        let mut padded = MANAGE_PIN.to_vec();
        padded.resize(64, 0);
        let new_pin_enc = shared.encrypt(&padded, &ring::rand::SystemRandom::new());
        let set_pin = cbor_map(vec![
            (1, Value::Integer(2.into())),
            (2, Value::Integer(3.into())),
            (3, key_agreement),
            (4, Value::Bytes(shared.authenticate(&new_pin_enc))),
            (5, Value::Bytes(new_pin_enc)),
        ]);
        assert_eq!(
            token.engine.run(&[&[CLIENT_PIN][..], &set_pin].concat()).0,
            0
        );
        token
    }

    fn agree(&mut self) -> (Value, vu2f::ctap2::pin_protocol::SharedSecret) {
        let request = cbor_map(vec![
            (1, Value::Integer(2.into())),
            (2, Value::Integer(2.into())),
        ]);
        let (status, members) = self.engine.run(&[&[CLIENT_PIN][..], &request].concat());
        assert_eq!(status, 0, "getKeyAgreement");
        let key = cbor::encode(uint_member(&members.unwrap(), 1).unwrap());
        let arena = cbor::Arena::new();
        let (item, _) = cbor::Item::decode_prefix(&key, &arena).unwrap();
        vu2f::ctap2::pin_protocol::encapsulate(
            vu2f::ctap2::pin_protocol::PinUvAuthProtocol::Two,
            &item,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap()
    }

    /// A fresh pinUvAuthToken with `permissions` (bound to FUZZ_RP when `bound`), or the status
    /// that refuses it (a forced PIN change: `PIN_POLICY_VIOLATION`).
    fn pin_token(&mut self, permissions: u8, bound: bool) -> Result<Vec<u8>, u8> {
        let (key_agreement, shared) = self.agree();
        let hash = ring::digest::digest(&ring::digest::SHA256, MANAGE_PIN);
        let rng = ring::rand::SystemRandom::new();
        let mut members = vec![
            (1, Value::Integer(2.into())),
            (2, Value::Integer(9.into())),
            (3, key_agreement),
            (6, Value::Bytes(shared.encrypt(&hash.as_ref()[..16], &rng))),
            (9, Value::Integer(permissions.into())),
        ];
        if bound {
            members.push((10, Value::Text(FUZZ_RP.into())));
        }
        let request = cbor_map(members);
        let (status, members) = self.engine.run(&[&[CLIENT_PIN][..], &request].concat());
        if status != 0 {
            return Err(status);
        }
        let encrypted = uint_member(&members.unwrap(), 2)
            .unwrap()
            .as_bytes()
            .unwrap()
            .clone();
        Ok(shared.decrypt(&encrypted).unwrap().to_vec())
    }
}

/// Canonical CBOR of a map with unsigned keys.
fn cbor_map(members: Vec<(u64, Value)>) -> Vec<u8> {
    cbor::encode(&cbor::uint_map(members))
}

/// The head of a CBOR item of major type `major` and argument `n` (n < 65536).
fn cbor_head(major: u8, n: usize) -> Vec<u8> {
    match n {
        0..=23 => vec![major << 5 | n as u8],
        24..=255 => vec![major << 5 | 24, n as u8],
        _ => [vec![major << 5 | 25], (n as u16).to_be_bytes().to_vec()].concat(),
    }
}

/// `manage_request`: credentialManagement (0x0A, its preview 0x41) and authenticatorConfig
/// (0x0D) on a token with a PIN and discoverable credentials, authenticated with a fresh
/// pinUvAuthToken over whatever subCommandParams the fuzzer gives, so that it reaches past the
/// pinUvAuthParam. Input: a selector (bits 0–1: 0x0A, 0x41, 0x0D, 0x0A; bit 2: authenticate;
/// bit 3: with the other command's permission; bit 4: a token bound to [`FUZZ_RP`]), the
/// subcommand, then subCommandParams as bytes put into the request as they are (none when
/// empty). Must hold: every reply passes [`check_ctap2_reply`]; minPINLength never goes down;
/// getCredsMetadata counts what getInfo's remainingDiscoverableCredentials leaves.
pub fn manage_request(data: &[u8]) {
    static TOKEN: OnceLock<Mutex<ManageToken>> = OnceLock::new();
    let mut token = TOKEN
        .get_or_init(|| Mutex::new(ManageToken::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let [selector, sub, params @ ..] = data else {
        return;
    };
    let command = [
        CREDENTIAL_MANAGEMENT,
        CREDENTIAL_MANAGEMENT_PREVIEW,
        CONFIG,
        CREDENTIAL_MANAGEMENT,
    ][usize::from(selector & 0x03)];
    let (right, wrong) = if command == CONFIG {
        (ACFG, CM)
    } else {
        (CM, ACFG)
    };
    let permission = if selector & 0x08 != 0 { wrong } else { right };
    let key = if selector & 0x04 != 0 {
        match token.pin_token(permission, selector & 0x10 != 0) {
            Ok(key) => Some(key),
            Err(0x37) => {
                // setMinPINLength forced a PIN change: a token as made, from here on.
                *token = ManageToken::new();
                return;
            }
            Err(status) => panic!("no pinUvAuthToken: 0x{status:02X}"),
        }
    } else {
        None
    };
    let mut entries = 1;
    let mut body = vec![0x01];
    body.extend(cbor_head(0, usize::from(*sub)));
    if !params.is_empty() {
        entries += 1;
        body.push(0x02);
        body.extend_from_slice(params);
    }
    if let Some(key) = key {
        let mut message = if command == CONFIG {
            [vec![0xFF; 32], vec![0x0D]].concat()
        } else {
            Vec::new()
        };
        message.push(*sub);
        message.extend_from_slice(params);
        let param = vu2f::ctap2::pin_protocol::PinUvAuthProtocol::Two.authenticate(&key, &message);
        entries += 2;
        body.extend([0x03, 0x02, 0x04]);
        body.extend(cbor_head(2, param.len()));
        body.extend(param);
    }
    let request = [vec![command], cbor_head(5, entries), body].concat();
    token.engine.run(&request);

    let (status, info) = token.engine.run(&[GET_INFO]);
    assert_eq!(status, 0, "getInfo");
    let info = info.unwrap();
    let number = |key| {
        uint_member(&info, key)
            .and_then(Value::as_integer)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or_else(|| panic!("getInfo member {key}"))
    };
    let min_pin_length = number(0x0D);
    assert!(
        (token.min_pin_length..64).contains(&min_pin_length),
        "minPINLength {min_pin_length} after {}",
        token.min_pin_length
    );
    token.min_pin_length = min_pin_length;
    let remaining = number(0x14);
    let Ok(key) = token.pin_token(CM, false) else {
        *token = ManageToken::new();
        return;
    };
    let param = vu2f::ctap2::pin_protocol::PinUvAuthProtocol::Two.authenticate(&key, &[0x01]);
    let metadata = [
        vec![CREDENTIAL_MANAGEMENT, 0xA3, 0x01, 0x01, 0x03, 0x02, 0x04],
        cbor_head(2, param.len()),
        param,
    ]
    .concat();
    let (status, members) = token.engine.run(&metadata);
    assert_eq!(status, 0, "getCredsMetadata");
    let members = members.unwrap();
    let count = |key| {
        uint_member(&members, key)
            .and_then(Value::as_integer)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap()
    };
    assert_eq!(count(2), remaining, "getCredsMetadata against getInfo");
    assert!(count(1) + count(2) <= u64::from(fido2_options().discoverable_limit));
}

/// The seeds of `manage_request`: each subcommand, authenticated, with parameters that name
/// what the token has.
pub fn manage_request_seeds() -> Vec<(String, Vec<u8>)> {
    let rp_hash = ring::digest::digest(&ring::digest::SHA256, FUZZ_RP.as_bytes());
    let by_rp = cbor_map(vec![(1, Value::Bytes(rp_hash.as_ref().to_vec()))]);
    let user = cbor_map(vec![(
        3,
        Value::Map(vec![(Value::Text("id".into()), Value::Bytes(vec![1]))]),
    )]);
    let min_length = cbor_map(vec![
        (1, Value::Integer(5.into())),
        (2, Value::Array(vec![Value::Text(FUZZ_RP.into())])),
    ]);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("metadata", vec![0x04, 0x01]),
        ("metadata_preview_bound", vec![0x15, 0x01]),
        ("rps_begin", vec![0x04, 0x02]),
        ("rps_next", vec![0x00, 0x03]),
        ("creds_begin", [vec![0x04, 0x04], by_rp.clone()].concat()),
        ("creds_begin_bound", [vec![0x14, 0x04], by_rp].concat()),
        ("creds_next", vec![0x00, 0x05]),
        ("update_user", [vec![0x04, 0x07], user].concat()),
        ("wrong_permission", vec![0x0C, 0x01]),
        ("config_toggle", vec![0x06, 0x02]),
        (
            "config_min_pin_length",
            [vec![0x06, 0x03], min_length].concat(),
        ),
        ("config_unauthenticated", vec![0x02, 0x02]),
        ("config_enterprise", vec![0x06, 0x01]),
    ];
    seeds
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect()
}

/// The first byte of a structured `ctap2_request` input (as a command byte: an unknown one).
pub const STRUCTURED: u8 = 0xFE;

/// The statuses an unmutated structured request may get (CTAP 2.1 sections 6.1.2 and 6.2.2, in
/// the order of their steps); `None` when it depends on what came before (getNextAssertion).
fn structured_outcomes(selector: u8) -> Option<&'static [u8]> {
    const OK: u8 = 0x00;
    let uv_engine = selector & 0x80 != 0;
    let bit = |n: u8| selector & (1 << n) != 0;
    Some(match selector & 0x07 {
        0 if bit(6) && !uv_engine => &[0x2C],
        // Built-in UV protects the token: a discoverable credential needs the user verified.
        0 if bit(3) && uv_engine && !bit(6) => &[0x36],
        0 if bit(5) => &[0x19],
        // A full store refuses a new discoverable credential.
        0 if bit(3) => &[OK, 0x28],
        1 | 2 | 6 if bit(5) => &[0x2B],
        1 | 2 | 6 if bit(6) && !uv_engine => &[0x2C],
        0..=4 | 6 => &[OK],
        5 => return None,
        // The zero-length pinUvAuthParam: a touch, then "no PIN is set".
        _ if bit(3) => &[0x35],
        _ if bit(6) => &[0x26],
        _ if bit(5) => &[0x02],
        // A pinUvAuthParam of protocol 1: no PIN to have a token with, or (built-in UV) no
        // token in use.
        _ if bit(4) && uv_engine => &[0x33],
        _ if bit(4) => &[0x35],
        _ => &[OK],
    })
}

/// Input: a CTAP2 request, command byte ‖ CBOR, for a `fido2` token without built-in UV.
/// Structured mode, when the input starts with [`STRUCTURED`]: a selector byte, then bytes XORed
/// over a valid request built from it (and appended past its end), so that the fuzzer reaches
/// credentials this process made: `selector & 7` is makeCredential (bit 3 rk, 4 EdDSA, 5 an
/// excludeList of ours, 6 uv), getAssertion with an allowList of ours (3 up false, 4 EdDSA, 5 rk,
/// 6 uv), getAssertion of discoverable credentials then 3 getNextAssertion (as 1), getInfo,
/// selection, getNextAssertion, getAssertion of a U2F handle with the AppID as rpId (as 1), or a
/// makeCredential with pinUvAuthParam, enterpriseAttestation and algorithm variants; bit 7 asks
/// a token with built-in UV (`auto`). Unmutated (no byte flipped), the request gets the status
/// the spec gives it, and a getAssertion's numberOfCredentials is as many as getNextAssertion
/// then hands out.
pub fn ctap2_request(data: &[u8]) {
    let mut engines = ctap2_engines().lock().unwrap_or_else(|e| e.into_inner());
    let [STRUCTURED, selector, mask @ ..] = data else {
        engines[engine_for(data, 0)].run(data);
        return;
    };
    let chosen = usize::from(selector >> 7);
    let mut request = engines[chosen].template(*selector);
    let unmutated = mask.len() <= request.len() && mask.iter().all(|&b| b == 0);
    request.resize(request.len().max(mask.len()), 0);
    for (byte, flip) in request.iter_mut().zip(mask) {
        *byte ^= flip;
    }
    let engine = &mut engines[engine_for(&request, chosen)];
    let (status, members) = engine.run(&request);
    let expected = structured_outcomes(*selector).filter(|_| unmutated);
    if let Some(expected) = expected {
        assert!(
            expected.contains(&status),
            "structured {selector:02x}: status 0x{status:02X}, not one of {expected:02x?}"
        );
    }
    if selector & 0x07 == 2 {
        let count = members
            .as_deref()
            .and_then(|m| uint_member(m, 5))
            .and_then(|count| count.as_integer())
            .and_then(|count| u64::try_from(count).ok())
            .unwrap_or(1);
        for next in 1..=3 {
            let (status, _) = engine.run(&[GET_NEXT_ASSERTION]);
            if expected.is_some() {
                let should = if next < count { 0x00 } else { 0x30 };
                assert_eq!(
                    status, should,
                    "getNextAssertion {next} of {count} credentials"
                );
            }
        }
    }
}

/// Seeds of `ctap2_request`: real requests of every command, and structured inputs.
pub fn ctap2_request_seeds() -> Vec<(String, Vec<u8>)> {
    let rk = [("rk", true)];
    let mut seeds = vec![
        (
            "make_credential_es256",
            make_credential_request(FUZZ_RP, &[0x20], ES256, &[], &[]),
        ),
        (
            "make_credential_eddsa_rk",
            make_credential_request(FUZZ_RP, &[0x21], EDDSA, &rk, &[]),
        ),
        (
            "make_credential_exclude_unknown_up",
            make_credential_request(FUZZ_RP, &[0x22], ES256, &[("up", true)], &[&UNKNOWN_ID]),
        ),
        (
            "make_credential_every_member",
            cbor_request(
                MAKE_CREDENTIAL,
                make_credential_params(
                    "other.vu2f.invalid",
                    &[0x23; 64],
                    &[-257, EDDSA, ES256],
                    vec![
                        (int(5), descriptors(&[&UNKNOWN_ID])),
                        (int(6), Value::Map(vec![(text("credProtect"), int(1))])),
                        (int(7), options(&[("rk", false), ("uv", false)])),
                        (int(99), Value::Null),
                    ],
                ),
            ),
        ),
        (
            "make_credential_empty_pin_uv_auth_param",
            cbor_request(
                MAKE_CREDENTIAL,
                make_credential_params(
                    FUZZ_RP,
                    &[0x24],
                    &[ES256],
                    vec![(int(8), Value::Bytes(Vec::new()))],
                ),
            ),
        ),
        (
            "get_assertion_discoverable",
            get_assertion_request(FUZZ_RP, &[], &[]),
        ),
        (
            "get_assertion_unknown_allow_list",
            get_assertion_request(FUZZ_RP, &[&UNKNOWN_ID], &[("up", true)]),
        ),
        (
            "get_assertion_silent",
            get_assertion_request(FUZZ_RP, &[], &[("up", false)]),
        ),
        ("get_info", vec![GET_INFO]),
        ("get_next_assertion", vec![GET_NEXT_ASSERTION]),
        ("selection", vec![SELECTION]),
        ("empty", Vec::new()),
        ("unknown_command", vec![0x42, 0xA0]),
        // getCredsMetadata and enumerateRPsBegin without a pinUvAuthParam, a GetNext. (No
        // reset or toggleAlwaysUv: the seeds share one token, which the structured ones after
        // them need as it was.)
        (
            "cred_mgmt_metadata",
            vec![CREDENTIAL_MANAGEMENT, 0xA1, 0x01, 0x01],
        ),
        (
            "cred_mgmt_rps_begin",
            vec![CREDENTIAL_MANAGEMENT_PREVIEW, 0xA1, 0x01, 0x02],
        ),
        (
            "cred_mgmt_next_rp",
            vec![CREDENTIAL_MANAGEMENT, 0xA1, 0x01, 0x03],
        ),
        // setMinPINLength {1: 6, 3: true}: PIN_NOT_SET, the token has no PIN.
        (
            "config_set_min_pin_length",
            vec![CONFIG, 0xA2, 0x01, 0x03, 0x02, 0xA2, 0x01, 0x06, 0x03, 0xF5],
        ),
    ]
    .into_iter()
    .map(|(name, bytes)| (name.to_owned(), bytes))
    .collect::<Vec<_>>();
    for selector in [
        0x00, 0x08, 0x18, 0x28, 0x01, 0x19, 0x02, 0x82, 0xC2, 0x06, 0x07, 0x0F,
    ] {
        seeds.push((
            format!("structured_{selector:02x}"),
            vec![STRUCTURED, selector],
        ));
    }
    seeds
}

// ---------------------------------------------------------------------------------------------
// ctaphid_cbor

/// How long a request of `ctaphid_cbor` waits for the user: short, so the fuzzer gets there.
const HID_USER_ACTION_TIMEOUT: Duration = Duration::from_secs(2);
const HID_NONCE: [u8; 8] = *b"fuzznonc";

/// The engine of one `ctaphid_cbor` input, loaded afresh (so that presence, button and pending
/// state do not leak from one input to the next): `config % 3` picks presence `touch`,
/// `delay:300`, or `touch` with built-in UV `delay:500`. Each token has two discoverable
/// credentials of [`FUZZ_RP`].
fn hid_token(config: u8) -> ctap2::Authenticator {
    const TOKENS: [&str; 3] = ["hid-touch", "hid-delay", "hid-uv"];
    static CREATED: OnceLock<()> = OnceLock::new();
    let store = store();
    CREATED.get_or_init(|| {
        for name in TOKENS {
            store.create_token(name, fido2_options()).unwrap();
            let u2f = Authenticator::new(
                store.load(name).unwrap(),
                Presence::new(PresencePolicy::Auto),
            );
            let mut token = ctap2::Authenticator::new(u2f, None);
            for user in [1, 2] {
                let request =
                    make_credential_request(FUZZ_RP, &[user], ES256, &[("rk", true)], &[]);
                let Step::Done(reply) = token.start(&request, Instant::now()) else {
                    panic!("presence auto waited");
                };
                assert_eq!(
                    reply[0], 0,
                    "the setup's makeCredential fails: {reply:02x?}"
                );
            }
        }
    });
    let (name, presence, uv) = match config % 3 {
        0 => (TOKENS[0], PresencePolicy::Touch, None),
        1 => (
            TOKENS[1],
            PresencePolicy::Delay(Duration::from_millis(300)),
            None,
        ),
        _ => (
            TOKENS[2],
            PresencePolicy::Touch,
            Some(PresencePolicy::Delay(Duration::from_millis(500))),
        ),
    };
    let mut keys = store.load(name).unwrap();
    // Built-in UV attempts that timed out or were cancelled stay spent in the store: every input
    // starts with all of them, so that UV still waits rather than answering blocked.
    keys.pin.uv_matched().unwrap();
    let u2f = Authenticator::new(keys, Presence::new(presence));
    ctap2::Authenticator::new(u2f, uv).with_user_action_timeout(HID_USER_ACTION_TIMEOUT)
}

/// The CTAP2 request of a `ctaphid_cbor` CBOR operation: `template & 7` picks makeCredential
/// (bits 3-4 the user, 5 EdDSA, 6 rk), getAssertion of the discoverable credentials, one with an
/// unknown allowList, getInfo, selection, getNextAssertion, makeCredential with `uv`, or a silent
/// getAssertion (`up: false`).
pub fn hid_request(template: u8) -> Vec<u8> {
    match template & 0x07 {
        0 => {
            let algorithm = if template & 0x20 != 0 { EDDSA } else { ES256 };
            let opts: &[(&str, bool)] = if template & 0x40 != 0 {
                &[("rk", true)]
            } else {
                &[]
            };
            make_credential_request(FUZZ_RP, &[0x30 | (template >> 3) & 3], algorithm, opts, &[])
        }
        1 => get_assertion_request(FUZZ_RP, &[], &[]),
        2 => get_assertion_request(FUZZ_RP, &[&UNKNOWN_ID], &[]),
        3 => vec![GET_INFO],
        4 => vec![SELECTION],
        5 => vec![GET_NEXT_ASSERTION],
        6 => make_credential_request(FUZZ_RP, &[0x34], ES256, &[("uv", true)], &[]),
        _ => get_assertion_request(FUZZ_RP, &[], &[("up", false)]),
    }
}

/// A CANCEL sent on the channel whose request waited.
struct Cancel {
    cid: u32,
    /// Whether the framing polled the request before the CANCEL (its KEEPALIVE was due): then the
    /// request may have finished on its own just before.
    polled: bool,
    /// Whether the poll sent a KEEPALIVE (the request still waited when the CANCEL came).
    kept_alive: bool,
    /// Whether a CBOR reply ended the request.
    ended: bool,
}

/// What the host of `ctaphid_cbor` knows, to judge the token's replies.
struct HidHost {
    spoke: HashSet<u32>,
    allocated: Vec<u32>,
    /// CBOR requests sent on each channel that no CBOR reply has answered yet.
    cbor_requests: HashMap<u32, usize>,
    /// The channel whose request waits: a KEEPALIVE came on it, its CBOR reply not yet.
    waiting: Option<u32>,
}

impl HidHost {
    fn new() -> Self {
        Self {
            spoke: HashSet::from([BROADCAST_CID]),
            allocated: Vec::new(),
            cbor_requests: HashMap::new(),
            waiting: None,
        }
    }

    /// An allocated channel, or before any a made-up one (the token serves any channel).
    fn channel(&self, selector: u8) -> u32 {
        match self.allocated.len() {
            0 => 0x0C7A_0000 | u32::from(selector),
            n => self.allocated[usize::from(selector) % n],
        }
    }

    fn send(&mut self, hid: &mut CtapHid<ctap2::Authenticator>, report: &[u8], now: Instant) {
        // A 65-byte report may lead with report number 0, which the token strips.
        let cid_at = if report.len() == 65 { 0..2 } else { 0..1 };
        for at in cid_at {
            if let Some(cid) = report.get(at..at + 4) {
                self.spoke
                    .insert(u32::from_be_bytes(cid.try_into().unwrap()));
            }
        }
        let polled = hid.next_deadline().is_some_and(|deadline| deadline <= now);
        let mut cancel = None;
        if let Ok(Packet::Init { cid, cmd, .. }) = Packet::try_from(report) {
            // While a request waits (and is not polled to its end first), another CBOR request
            // gets CHANNEL_BUSY: it will have no CBOR reply.
            if cmd == Command::Cbor as u8 && (self.waiting.is_none() || polled) {
                *self.cbor_requests.entry(cid).or_default() += 1;
            }
            if cmd == Command::Cancel as u8 && self.waiting == Some(cid) {
                cancel = Some(Cancel {
                    cid,
                    polled,
                    kept_alive: false,
                    ended: false,
                });
            }
        }
        let replies = hid.handle_report(report, now);
        if tracing() {
            eprintln!("host {:02x?}", &report[..report.len().min(16)]);
        }
        self.check(&replies, cancel.as_mut());
        if let Some(cancel) = cancel {
            assert!(
                cancel.ended,
                "CANCEL on {:08x}, whose request waited, got no CBOR reply: {replies:02x?}",
                cancel.cid
            );
        }
    }

    fn check(&mut self, replies: &[Report], mut cancel: Option<&mut Cancel>) {
        for reply in replies {
            if tracing() {
                eprintln!("   <- {:02x?}", &reply[..16]);
            }
            check_reply(reply, &self.spoke, &mut self.allocated);
            let cid = u32::from_be_bytes(reply[..4].try_into().unwrap());
            let (cmd, bcnt) = (reply[4], u16::from_be_bytes([reply[5], reply[6]]));
            if cmd == Command::Init as u8 && cid != BROADCAST_CID {
                // INIT on a channel abandons its message and its waiting request.
                self.cbor_requests.remove(&cid);
                if self.waiting == Some(cid) {
                    self.waiting = None;
                }
            } else if cmd == Command::Keepalive as u8 {
                assert!(
                    bcnt == 1 && matches!(reply[7], 0x01 | 0x02),
                    "a KEEPALIVE of {bcnt} bytes, status 0x{:02X}, on {cid:08x}",
                    reply[7]
                );
                assert!(
                    self.cbor_requests.get(&cid).is_some_and(|&n| n > 0),
                    "a KEEPALIVE on {cid:08x}, which has no CBOR request"
                );
                assert!(
                    self.waiting.is_none() || self.waiting == Some(cid),
                    "a KEEPALIVE on {cid:08x} while {:08x?} waits",
                    self.waiting
                );
                self.waiting = Some(cid);
                if let Some(cancel) = cancel.as_mut().filter(|c| c.cid == cid) {
                    cancel.kept_alive = true;
                }
            } else if cmd == Command::Cbor as u8 {
                let outstanding = self.cbor_requests.entry(cid).or_default();
                assert!(
                    *outstanding > 0,
                    "a CBOR reply on {cid:08x}, which has no CBOR request outstanding"
                );
                *outstanding -= 1;
                assert!(bcnt >= 1, "an empty CBOR reply on {cid:08x}");
                let status = reply[7];
                assert!(
                    ctap2_status_listed(status),
                    "CBOR reply status 0x{status:02X} is not a CTAP2 status"
                );
                assert!(
                    status == 0 || bcnt == 1,
                    "error 0x{status:02X} with a {bcnt}-byte reply"
                );
                if self.waiting == Some(cid) {
                    self.waiting = None;
                }
                if let Some(cancel) = cancel.as_mut().filter(|c| c.cid == cid) {
                    if !cancel.polled || cancel.kept_alive {
                        assert_eq!(
                            reply[5..8],
                            [0, 1, Status::KeepaliveCancel.byte()],
                            "a cancelled request on {cid:08x} does not end with KEEPALIVE_CANCEL"
                        );
                    }
                    cancel.ended = true;
                }
            }
        }
    }
}

/// Input: a configuration byte (see [`hid_token`]), then a sequence of operations:
/// * `0x00..=0x7F`: a raw report, as in [`ctaphid`]: the low 6 bits give its length
///   (`len + 8`, at most 65) of the bytes that follow; bit 6 puts an allocated channel in it.
/// * `0x80..=0xBF`: the clock advances `(op & 0x3f) * 20` ms, and the token is polled.
/// * `0xC0..=0xFF`: a whole message on channel `(op >> 3) & 7` (an index into the allocated
///   channels); `op & 7`: INIT on the broadcast channel, CBOR (the next byte picks the request,
///   see [`hid_request`]), CANCEL, MSG (a U2F REGISTER), INIT on the channel, a press of the
///   token's button, only the first packet of a CBOR makeCredential, or PING.
pub fn ctaphid_cbor(data: &[u8]) {
    let Some((&config, mut rest)) = data.split_first() else {
        return;
    };
    let token = hid_token(config);
    let button = Arc::clone(token.u2f().presence().button());
    let mut hid = CtapHid::new(token);
    let mut host = HidHost::new();
    let mut now = Instant::now();
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op {
            0x80..=0xBF => {
                now += Duration::from_millis(u64::from(op & 0x3f) * 20);
                if tracing() {
                    eprintln!("clock +{} ms", u64::from(op & 0x3f) * 20);
                }
                let replies = hid.poll(now);
                host.check(&replies, None);
            }
            0xC0..=0xFF => {
                let cid = host.channel((op >> 3) & 0x07);
                let reports = match op & 0x07 {
                    0 => fragment(BROADCAST_CID, Command::Init as u8, &HID_NONCE),
                    1 => {
                        let (template, tail) =
                            rest.split_first().map_or((0, rest), |(&t, r)| (t, r));
                        rest = tail;
                        fragment(cid, Command::Cbor as u8, &hid_request(template))
                    }
                    2 => fragment(cid, Command::Cancel as u8, &[]),
                    3 => fragment(
                        cid,
                        Command::Msg as u8,
                        &messages::register_request(&[3; 32], &messages::app_param(APP)),
                    ),
                    4 => fragment(cid, Command::Init as u8, &HID_NONCE),
                    5 => {
                        button.press();
                        Vec::new()
                    }
                    6 => {
                        let mut reports = fragment(cid, Command::Cbor as u8, &hid_request(0));
                        reports.truncate(1);
                        reports
                    }
                    _ => fragment(cid, Command::Ping as u8, b"ping"),
                };
                for report in &reports {
                    host.send(&mut hid, report, now);
                }
            }
            _ => {
                let len = (usize::from(op & 0x3f) + 8).min(65).min(rest.len());
                let mut report = rest[..len].to_vec();
                rest = &rest[len..];
                if op & 0x40 != 0 && !host.allocated.is_empty() && report.len() >= 4 {
                    let cid = host.channel(report[0]);
                    report[..4].copy_from_slice(&cid.to_be_bytes());
                }
                host.send(&mut hid, &report, now);
            }
        }
    }
}

/// Seeds of `ctaphid_cbor`.
pub fn ctaphid_cbor_seeds() -> Vec<(String, Vec<u8>)> {
    const TOUCH: u8 = 0;
    const DELAY: u8 = 1;
    const UV: u8 = 2;
    const ALLOCATE: u8 = 0xC0;
    const MS_100: u8 = 0x85;
    const MS_1260: u8 = 0xBF;
    const PRESS: u8 = 0xC5;
    let cbor = |channel: u8| 0xC1 | channel << 3;
    let cancel = |channel: u8| 0xC2 | channel << 3;
    let msg = |channel: u8| 0xC3 | channel << 3;
    let resync = |channel: u8| 0xC4 | channel << 3;
    let first_packet = |channel: u8| 0xC6 | channel << 3;
    let ping = |channel: u8| 0xC7 | channel << 3;
    let mut raw_get_info = vec![TOUCH, 0x38];
    let mut report = [0u8; 64];
    report[..8].copy_from_slice(&[0x01, 0x02, 0x03, 0x04, 0x90, 0x00, 0x01, GET_INFO]);
    raw_get_info.extend_from_slice(&report);
    raw_get_info.push(MS_100);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "touch_make_credential",
            vec![
                TOUCH,
                ALLOCATE,
                cbor(0),
                0x40,
                MS_100,
                MS_100,
                PRESS,
                MS_100,
                MS_100,
            ],
        ),
        (
            "touch_get_assertion_then_next",
            vec![
                TOUCH,
                ALLOCATE,
                cbor(0),
                1,
                MS_100,
                PRESS,
                MS_100,
                cbor(0),
                5,
            ],
        ),
        (
            "cancel_waiting_request",
            vec![TOUCH, ALLOCATE, cbor(0), 4, MS_100, 0x82, cancel(0), MS_100],
        ),
        (
            "cancel_when_keepalive_due",
            vec![DELAY, ALLOCATE, cbor(0), 4, MS_100, cancel(0)],
        ),
        (
            "delay_selection",
            vec![DELAY, ALLOCATE, cbor(0), 4, MS_100, MS_100, MS_100, MS_100],
        ),
        (
            "busy_other_channel",
            vec![
                TOUCH,
                ALLOCATE,
                ALLOCATE,
                cbor(0),
                0,
                cbor(1),
                3,
                msg(1),
                cancel(1),
                ping(1),
                resync(0),
                cbor(1),
                3,
            ],
        ),
        (
            "user_action_timeout",
            vec![TOUCH, ALLOCATE, cbor(0), 1, MS_1260, MS_1260, MS_100],
        ),
        (
            "uv_make_credential",
            vec![UV, ALLOCATE, cbor(0), 6, MS_100, 0x99, MS_100, MS_100],
        ),
        (
            "partial_message_times_out",
            vec![TOUCH, ALLOCATE, first_packet(0), 0x9E, cbor(0), 3],
        ),
        (
            "msg_and_ping_while_waiting",
            vec![DELAY, ALLOCATE, cbor(0), 0, msg(0), ping(0), MS_100, 0x8F],
        ),
        ("raw_get_info", raw_get_info),
    ];
    seeds
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect()
}
