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
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use keystore::{KeyWrapper, Store, TokenOptions, KEY_HANDLE_LEN};
use vu2f::aa::api::{EndpointSession, LogonResponse};
use vu2f::aa::portal::{DoEnrollResponse, TemplateList, TemplateSaved};
use vu2f::client::http::read_reply;
use vu2f::client::{OriginPolicy, TokenClient};
use vu2f::hid::{CtapHid, MessageHandler, Report, BROADCAST_CID};
use vu2f::transport::InProcess;
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};
use vu2f::u2f::{Authenticator, Presence, PresencePolicy};

/// The status words a token may answer.
const STATUS_WORDS: [u16; 7] = [0x9000, 0x6985, 0x6A80, 0x6700, 0x6D00, 0x6E00, 0x6F00];
const APP: &str = "https://fuzz.vu2f.invalid";
const INS_AUTHENTICATE: u8 = 0x02;

/// A token of a store in a temporary directory that lives as long as the process.
fn token(name: &str) -> Authenticator {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    let (_, store) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        (dir, store)
    });
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
