//! credentialManagement (CTAP 2.1 §6.8), authenticatorReset (§6.6) and authenticatorConfig
//! (§6.11) in-process, with the clock and the power under the test's control: every subcommand,
//! every refusal (wrong permission, a token bound to another RP, a stale token after a power
//! cycle, GetNext without Begin, reset after its window), and what alwaysUv, setMinPINLength and
//! forcePINChange change elsewhere (makeCredential, U2F, clientPIN, getInfo). A platform of the
//! test's own drives the public PIN/UV auth protocol; python-fido2 drives the same over UDP in
//! tests/python/test_cred_mgmt_udp.py.
use std::time::{Duration, Instant};

use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use vu2f::ctap2::cbor::{self, text_map, uint_map, Arena, Item, Parameters, Value};
use vu2f::ctap2::pin_protocol::{encapsulate, PinUvAuthProtocol, SharedSecret};
use vu2f::ctap2::{Authenticator, Step};
use vu2f::u2f::authenticator::Control;
use vu2f::u2f::{self, messages, Presence, PresencePolicy};

const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;
const GET_INFO: u8 = 0x04;
const CLIENT_PIN: u8 = 0x06;
const RESET: u8 = 0x07;
const CRED_MGMT: u8 = 0x0A;
const CONFIG: u8 = 0x0D;
const CRED_MGMT_PREVIEW: u8 = 0x41;
const CM: i64 = 0x04;
const ACFG: i64 = 0x20;
const MC_GA: i64 = 0x03;

type PinToken = (PinUvAuthProtocol, Vec<u8>);

struct Token {
    _dir: tempfile::TempDir,
    engine: Authenticator,
    /// Power-up.
    t0: Instant,
}

fn token(presence: PresencePolicy) -> Token {
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    let options = keystore::TokenOptions {
        profile: keystore::Profile::Fido2,
        discoverable_limit: 10,
        ..Default::default()
    };
    store.create_token("t", options).unwrap();
    let u2f = u2f::Authenticator::new(store.load("t").unwrap(), Presence::new(presence));
    let t0 = Instant::now();
    Token {
        _dir: dir,
        engine: Authenticator::new(u2f, None).powered_up_at(t0),
        t0,
    }
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

impl Token {
    fn at(&self, seconds: u64) -> Instant {
        self.t0 + Duration::from_secs(seconds)
    }

    /// `command` ‖ `params` at `now` (nothing may wait): the status and the body.
    fn call_raw(&mut self, request: &[u8], now: Instant) -> (u8, Vec<u8>) {
        match self.engine.start(request, now) {
            Step::Done(reply) => (reply[0], reply[1..].to_vec()),
            Step::WaitingForUser => panic!("waits for the user"),
        }
    }

    fn call(&mut self, command: u8, params: Option<Value>, now: Instant) -> (u8, Vec<u8>) {
        let mut request = vec![command];
        if let Some(params) = params {
            request.extend(cbor::encode(&params));
        }
        self.call_raw(&request, now)
    }

    fn status(&mut self, command: u8, params: Option<Value>, now: Instant) -> u8 {
        self.call(command, params, now).0
    }

    fn agree(&mut self, now: Instant) -> (Value, SharedSecret) {
        let params = uint_map([(1, int(2)), (2, int(2))]);
        let (status, body) = self.call(CLIENT_PIN, Some(params), now);
        assert_eq!(status, 0);
        let arena = Arena::new();
        let reply = Parameters::decode(&body, &arena).unwrap();
        encapsulate(
            PinUvAuthProtocol::Two,
            reply.get(1).unwrap(),
            &SystemRandom::new(),
        )
        .unwrap()
    }

    fn set_pin(&mut self, pin: &str, now: Instant) -> u8 {
        let (key_agreement, shared) = self.agree(now);
        let new_pin_enc = shared.encrypt(&padded(pin), &SystemRandom::new());
        let params = uint_map([
            (1, int(2)),
            (2, int(3)),
            (3, key_agreement),
            (4, Value::Bytes(shared.authenticate(&new_pin_enc))),
            (5, Value::Bytes(new_pin_enc)),
        ]);
        self.status(CLIENT_PIN, Some(params), now)
    }

    fn change_pin(&mut self, old: &str, new: &str, now: Instant) -> u8 {
        let (key_agreement, shared) = self.agree(now);
        let rng = SystemRandom::new();
        let new_pin_enc = shared.encrypt(&padded(new), &rng);
        let pin_hash_enc = shared.encrypt(&digest(&SHA256, old.as_bytes()).as_ref()[..16], &rng);
        let param = shared.authenticate(&[new_pin_enc.clone(), pin_hash_enc.clone()].concat());
        let params = uint_map([
            (1, int(2)),
            (2, int(4)),
            (3, key_agreement),
            (4, Value::Bytes(param)),
            (5, Value::Bytes(new_pin_enc)),
            (6, Value::Bytes(pin_hash_enc)),
        ]);
        self.status(CLIENT_PIN, Some(params), now)
    }

    /// A pinUvAuthToken for `pin` with `permissions` (and `rp_id`), or the refusing status.
    fn pin_token(
        &mut self,
        pin: &str,
        permissions: i64,
        rp_id: Option<&str>,
        now: Instant,
    ) -> Result<PinToken, u8> {
        let (key_agreement, shared) = self.agree(now);
        let hash = digest(&SHA256, pin.as_bytes());
        let pin_hash_enc = shared.encrypt(&hash.as_ref()[..16], &SystemRandom::new());
        let mut params = vec![
            (1, int(2)),
            (2, int(9)),
            (3, key_agreement),
            (6, Value::Bytes(pin_hash_enc)),
            (9, int(permissions)),
        ];
        if let Some(rp_id) = rp_id {
            params.push((10, text(rp_id)));
        }
        let (status, body) = self.call(CLIENT_PIN, Some(uint_map(params)), now);
        if status != 0 {
            return Err(status);
        }
        let arena = Arena::new();
        let reply = Parameters::decode(&body, &arena).unwrap();
        let plain = shared
            .decrypt(cbor::bytes(reply.get(2).unwrap()).unwrap())
            .unwrap();
        Ok((PinUvAuthProtocol::Two, plain.to_vec()))
    }

    /// A discoverable credential for `rp` and `user` (made while the token has no PIN); its id.
    fn make_discoverable(&mut self, rp: &str, user: &[u8], name: &str) -> Vec<u8> {
        let (status, body) = self.make(rp, user, Some(name), true, self.t0);
        assert_eq!(status, 0);
        credential_id(&body)
    }

    fn make(
        &mut self,
        rp: &str,
        user: &[u8],
        name: Option<&str>,
        rk: bool,
        now: Instant,
    ) -> (u8, Vec<u8>) {
        let mut user_map = vec![("id", Value::Bytes(user.to_vec()))];
        if let Some(name) = name {
            user_map.push(("name", text(name)));
        }
        let params = uint_map([
            (1, Value::Bytes(vec![0xCD; 32])),
            (2, text_map([("id", text(rp))])),
            (3, text_map(user_map)),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", int(-7)),
                    ("type", text("public-key")),
                ])]),
            ),
            (7, text_map([("rk", Value::Bool(rk))])),
        ]);
        self.call(MAKE_CREDENTIAL, Some(params), now)
    }

    /// A credentialManagement request, authenticated with `with` over subCommand ‖ params.
    fn cm(
        &mut self,
        command: u8,
        sub: u8,
        params: Option<Value>,
        with: Option<&PinToken>,
        now: Instant,
    ) -> (u8, Vec<u8>) {
        let request = subcommand_request(vec![sub], sub, params, with);
        self.call(command, Some(request), now)
    }

    /// An authenticatorConfig request, authenticated with `with` over 32×FF ‖ 0D ‖ sub ‖ params.
    fn config(
        &mut self,
        sub: u8,
        params: Option<Value>,
        with: Option<&PinToken>,
        now: Instant,
    ) -> u8 {
        let prefix = [vec![0xFF; 32], vec![0x0D, sub]].concat();
        let request = subcommand_request(prefix, sub, params, with);
        self.status(CONFIG, Some(request), now)
    }

    fn info(&mut self) -> Vec<u8> {
        let now = self.t0;
        let (status, body) = self.call(GET_INFO, None, now);
        assert_eq!(status, 0);
        body
    }

    fn get(&mut self, rp: &str, id: &[u8], now: Instant) -> (u8, Vec<u8>) {
        let params = uint_map([
            (1, text(rp)),
            (2, Value::Bytes(vec![0xAB; 32])),
            (
                3,
                Value::Array(vec![text_map([
                    ("id", Value::Bytes(id.to_vec())),
                    ("type", text("public-key")),
                ])]),
            ),
        ]);
        self.call(GET_ASSERTION, Some(params), now)
    }
}

fn padded(pin: &str) -> Vec<u8> {
    let mut padded = pin.as_bytes().to_vec();
    padded.resize(64, 0);
    padded
}

fn credential_id(make_reply: &[u8]) -> Vec<u8> {
    let arena = Arena::new();
    let reply = Parameters::decode(make_reply, &arena).unwrap();
    let auth_data = cbor::bytes(reply.get(2).unwrap()).unwrap();
    let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    auth_data[55..55 + len].to_vec()
}

fn sign_count(reply: &[u8], key: u64) -> u32 {
    let arena = Arena::new();
    let reply = Parameters::decode(reply, &arena).unwrap();
    let auth_data = cbor::bytes(reply.get(key).unwrap()).unwrap();
    u32::from_be_bytes(auth_data[33..37].try_into().unwrap())
}

/// The member `key` of a reply map, re-encoded, and decoded for a look.
fn member<T>(body: &[u8], key: u64, look: impl FnOnce(&Item) -> T) -> T {
    let arena = Arena::new();
    let reply = Parameters::decode(body, &arena).unwrap();
    look(reply.get(key).unwrap_or_else(|| panic!("no member {key}")))
}

fn uint(body: &[u8], key: u64) -> u64 {
    member(body, key, |item| cbor::unsigned(item).unwrap())
}

fn has(body: &[u8], key: u64) -> bool {
    let arena = Arena::new();
    Parameters::decode(body, &arena).unwrap().get(key).is_some()
}

fn option(info: &[u8], name: &str) -> Option<bool> {
    member(info, 4, |options| {
        cbor::member(cbor::map(options).unwrap(), name).map(|v| cbor::boolean(v).unwrap())
    })
}

fn user_name(body: &[u8]) -> Option<String> {
    member(body, 6, |user| {
        cbor::member(cbor::map(user).unwrap(), "name").map(|n| cbor::text(n).unwrap().to_owned())
    })
}

fn rp_hash(rp: &str) -> Value {
    Value::Bytes(digest(&SHA256, rp.as_bytes()).as_ref().to_vec())
}

fn descriptor(id: &[u8]) -> Value {
    text_map([
        ("id", Value::Bytes(id.to_vec())),
        ("type", text("public-key")),
    ])
}

/// Three credentials on two RPs, then the PIN "1234".
fn token_with_credentials() -> (Token, [Vec<u8>; 3]) {
    let mut token = token(PresencePolicy::Auto);
    let a1 = token.make_discoverable("a.example", b"u1", "alice");
    let a2 = token.make_discoverable("a.example", b"u2", "bob");
    let b1 = token.make_discoverable("b.example", b"u3", "carol");
    let now = token.t0;
    assert_eq!(token.set_pin("1234", now), 0);
    (token, [a1, a2, b1])
}

#[test]
fn credentials_are_counted_enumerated_renamed_and_deleted() {
    let (mut token, [a1, a2, b1]) = token_with_credentials();
    let now = token.at(1);
    let cm = token.pin_token("1234", CM, None, now).unwrap();
    let (status, body) = token.cm(CRED_MGMT, 0x01, None, Some(&cm), now);
    assert_eq!(status, 0);
    assert_eq!((uint(&body, 1), uint(&body, 2)), (3, 7));

    let (status, body) = token.cm(CRED_MGMT, 0x02, None, Some(&cm), now);
    assert_eq!((status, uint(&body, 5)), (0, 2));
    let first = member(&body, 3, |rp| {
        cbor::text(cbor::member(cbor::map(rp).unwrap(), "id").unwrap())
            .unwrap()
            .to_owned()
    });
    let (status, body) = token.cm(CRED_MGMT, 0x03, None, None, now);
    assert_eq!(status, 0);
    assert!(!has(&body, 5), "totalRPs only in the Begin");
    let second = member(&body, 3, |rp| {
        cbor::text(cbor::member(cbor::map(rp).unwrap(), "id").unwrap())
            .unwrap()
            .to_owned()
    });
    let mut rps = [first, second];
    rps.sort();
    assert_eq!(rps, ["a.example", "b.example"]);
    assert_eq!(
        token.cm(CRED_MGMT, 0x03, None, None, now).0,
        0x30,
        "past the last"
    );

    let by_rp = uint_map([(1, rp_hash("a.example"))]);
    let (status, body) = token.cm(CRED_MGMT, 0x04, Some(by_rp.clone()), Some(&cm), now);
    assert_eq!((status, uint(&body, 9)), (0, 2));
    assert_eq!(user_name(&body).as_deref(), Some("bob"), "newest first");
    assert!(!has(&body, 0x0A), "no credProtect set");
    member(&body, 8, |key| assert_eq!(cbor::map(key).unwrap().len(), 5));
    let (status, body) = token.cm(CRED_MGMT, 0x05, None, None, now);
    assert_eq!((status, user_name(&body).as_deref()), (0, Some("alice")));
    assert_eq!(token.cm(CRED_MGMT, 0x05, None, None, now).0, 0x30);

    let rename = |id: &[u8], user_id: &[u8]| {
        uint_map([
            (2, descriptor(id)),
            (
                3,
                text_map([
                    ("id", Value::Bytes(user_id.to_vec())),
                    ("name", text("alice2")),
                ]),
            ),
        ])
    };
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x07, Some(rename(&a1, b"u9")), Some(&cm), now)
            .0,
        0x02
    );
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x07, Some(rename(&a1, b"u1")), Some(&cm), now)
            .0,
        0
    );
    token.cm(CRED_MGMT, 0x04, Some(by_rp.clone()), Some(&cm), now);
    let (_, alice) = token.cm(CRED_MGMT, 0x05, None, None, now);
    assert_eq!(
        user_name(&alice).as_deref(),
        Some("alice2"),
        "renamed in place"
    );

    let delete = |id: &[u8]| uint_map([(2, descriptor(id))]);
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x06, Some(delete(&a2)), Some(&cm), now)
            .0,
        0
    );
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x06, Some(delete(&a2)), Some(&cm), now)
            .0,
        0x2E
    );
    let (status, body) = token.cm(CRED_MGMT, 0x04, Some(by_rp), Some(&cm), now);
    assert_eq!((status, uint(&body, 9)), (0, 1));
    assert_eq!(
        token.get("a.example", &a2, now).0,
        0x2E,
        "a deleted credential is gone"
    );
    // The preview command answers alike.
    let (status, body) = token.cm(CRED_MGMT_PREVIEW, 0x01, None, Some(&cm), now);
    assert_eq!((status, uint(&body, 1)), (0, 2));
    assert_eq!(
        token
            .cm(CRED_MGMT_PREVIEW, 0x06, Some(delete(&b1)), Some(&cm), now)
            .0,
        0
    );
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x06, Some(delete(&a1)), Some(&cm), now)
            .0,
        0
    );
    assert_eq!(
        token.cm(CRED_MGMT, 0x02, None, Some(&cm), now).0,
        0x2E,
        "none left"
    );
    assert_eq!(
        token
            .cm(
                CRED_MGMT,
                0x04,
                Some(uint_map([(1, rp_hash("a.example"))])),
                Some(&cm),
                now
            )
            .0,
        0x2E
    );
}

#[test]
fn credential_management_refuses_as_the_spec_says() {
    let (mut token, [a1, _, b1]) = token_with_credentials();
    let now = token.at(1);
    let cm = token.pin_token("1234", CM, None, now).unwrap();
    // No pinUvAuthParam, no protocol, an unknown protocol, a wrong param.
    assert_eq!(token.cm(CRED_MGMT, 0x01, None, None, now).0, 0x36);
    let no_protocol = uint_map([(1, int(1)), (4, Value::Bytes(vec![0; 32]))]);
    assert_eq!(token.status(CRED_MGMT, Some(no_protocol), now), 0x14);
    let bad_protocol = uint_map([(1, int(1)), (3, int(7)), (4, Value::Bytes(vec![0; 32]))]);
    assert_eq!(token.status(CRED_MGMT, Some(bad_protocol), now), 0x02);
    let forged = (PinUvAuthProtocol::Two, vec![0x55; 32]);
    assert_eq!(token.cm(CRED_MGMT, 0x01, None, Some(&forged), now).0, 0x33);
    // The param covers the subcommand's parameters as sent.
    let by_rp = uint_map([(1, rp_hash("a.example"))]);
    let (protocol, key) = &cm;
    let signed_other = uint_map([
        (1, int(4)),
        (2, by_rp.clone()),
        (3, int(2)),
        (4, Value::Bytes(protocol.authenticate(key, &[4]))),
    ]);
    assert_eq!(token.status(CRED_MGMT, Some(signed_other), now), 0x33);
    assert_eq!(
        token.status(CRED_MGMT, Some(uint_map([(1, int(9))])), now),
        0x3E
    );
    assert_eq!(
        token.status(CRED_MGMT, Some(uint_map([(2, int(1))])), now),
        0x14
    );
    assert_eq!(
        token.cm(CRED_MGMT, 0x04, None, Some(&cm), now).0,
        0x14,
        "no rpIDHash"
    );
    // GetNext without its Begin, or after another command.
    assert_eq!(token.cm(CRED_MGMT, 0x03, None, None, now).0, 0x30);
    assert_eq!(token.cm(CRED_MGMT, 0x05, None, None, now).0, 0x30);
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x04, Some(by_rp.clone()), Some(&cm), now)
            .0,
        0
    );
    assert_eq!(
        token.cm(CRED_MGMT, 0x03, None, None, now).0,
        0x30,
        "not an RP enumeration"
    );
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x04, Some(by_rp.clone()), Some(&cm), now)
            .0,
        0
    );
    token.info();
    assert_eq!(
        token.cm(CRED_MGMT, 0x05, None, None, now).0,
        0x30,
        "getInfo came between"
    );

    // A token without cm.
    let mc = token
        .pin_token("1234", MC_GA, Some("a.example"), now)
        .unwrap();
    assert_eq!(token.cm(CRED_MGMT, 0x01, None, Some(&mc), now).0, 0x33);
    // A token bound to b.example: only b.example's credentials.
    let bound = token.pin_token("1234", CM, Some("b.example"), now).unwrap();
    assert_eq!(token.cm(CRED_MGMT, 0x01, None, Some(&bound), now).0, 0x33);
    assert_eq!(token.cm(CRED_MGMT, 0x02, None, Some(&bound), now).0, 0x33);
    assert_eq!(
        token.cm(CRED_MGMT, 0x04, Some(by_rp), Some(&bound), now).0,
        0x33
    );
    let by_b = uint_map([(1, rp_hash("b.example"))]);
    assert_eq!(
        token.cm(CRED_MGMT, 0x04, Some(by_b), Some(&bound), now).0,
        0
    );
    let delete = |id: &[u8]| uint_map([(2, descriptor(id))]);
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x06, Some(delete(&a1)), Some(&bound), now)
            .0,
        0x33
    );
    assert_eq!(
        token
            .cm(CRED_MGMT, 0x06, Some(delete(&b1)), Some(&bound), now)
            .0,
        0
    );
    // A stale token: the power cycle made new ones.
    let cm = token.pin_token("1234", CM, None, now).unwrap();
    token.engine.power_cycle_at(token.at(2));
    assert_eq!(
        token.cm(CRED_MGMT, 0x01, None, Some(&cm), token.at(2)).0,
        0x33
    );
    // And one unused for longer than 30 s.
    let cm = token.pin_token("1234", CM, None, token.at(3)).unwrap();
    assert_eq!(
        token.cm(CRED_MGMT, 0x01, None, Some(&cm), token.at(34)).0,
        0x33
    );
}

#[test]
fn reset_works_only_in_its_window_and_forgets_everything_but_the_counter() {
    let mut token = token(PresencePolicy::Auto);
    let now = token.t0;
    let (status, made) = token.make("a.example", b"u1", Some("alice"), false, now);
    assert_eq!(status, 0);
    let server_side = credential_id(&made);
    let before = sign_count(&made, 2);
    let resident = token.make_discoverable("a.example", b"u2", "bob");
    let app = messages::app_param("https://u2f.example");
    let response = token
        .engine
        .u2f_mut()
        .process(&messages::register_request(&[1; 32], &app), now);
    let handle = {
        let data = messages::split_status(&response).unwrap();
        let len = usize::from(data[66]);
        data[67..67 + len].to_vec()
    };
    let check = |token: &mut Token| {
        let request = messages::authenticate_request(Control::CheckOnly, &[2; 32], &app, &handle);
        messages::status_of(&token.engine.u2f_mut().process(&request, now))
    };
    assert_eq!(check(&mut token), Some(0x6985), "ours");
    assert_eq!(token.set_pin("1234", now), 0);

    assert_eq!(token.status(RESET, None, token.at(11)), 0x30, "after 10 s");
    assert_eq!(token.status(RESET, None, token.at(9)), 0);
    let info = token.info();
    assert_eq!(option(&info, "clientPin"), Some(false));
    assert_eq!(uint(&info, 0x14), 10, "no discoverable credential left");
    let retries = token.call(CLIENT_PIN, Some(uint_map([(1, int(2)), (2, int(1))])), now);
    assert_eq!((retries.0, uint(&retries.1, 3)), (0, 8));
    assert_eq!(token.get("a.example", &server_side, now).0, 0x2E);
    assert_eq!(token.get("a.example", &resident, now).0, 0x2E);
    assert_eq!(
        check(&mut token),
        Some(0x6A80),
        "a U2F handle of the old key"
    );
    let (status, made) = token.make("a.example", b"u1", None, false, token.at(9));
    assert_eq!(status, 0);
    assert!(sign_count(&made, 2) > before, "the counter never goes back");

    // A replug opens the window again; the user must touch.
    token.engine.power_cycle_at(token.at(100));
    assert_eq!(token.status(RESET, None, token.at(111)), 0x30);
    token.engine.power_cycle_at(token.at(200));
    assert_eq!(token.status(RESET, None, token.at(201)), 0);

    let mut denied = self::token(PresencePolicy::Deny);
    let at = denied.at(1);
    assert_eq!(denied.status(RESET, None, at), 0x27);
}

#[test]
fn always_uv_needs_a_token_and_turns_u2f_off() {
    let mut token = token(PresencePolicy::Auto);
    let now = token.t0;
    let info = token.info();
    assert_eq!(option(&info, "alwaysUv"), Some(false));
    assert_eq!(option(&info, "makeCredUvNotRqd"), Some(true));
    assert_eq!(option(&info, "authnrCfg"), Some(true));
    assert_eq!(option(&info, "credMgmt"), Some(true));
    // Neither PIN nor UV: toggled without authentication.
    assert_eq!(token.config(0x02, None, None, now), 0);
    let info = token.info();
    assert_eq!(option(&info, "alwaysUv"), Some(true));
    assert_eq!(option(&info, "makeCredUvNotRqd"), Some(false));
    let versions = member(&info, 1, |v| cbor::array(v).unwrap().len());
    assert_eq!(versions, 2, "U2F_V2 left");
    assert_eq!(token.make("a.example", b"u", None, false, now).0, 0x36);
    let app = messages::app_param("https://u2f.example");
    let register = messages::register_request(&[1; 32], &app);
    let response = token.engine.u2f_mut().process(&register, now);
    assert_eq!(messages::status_of(&response), Some(0x6986));
    // Other subcommands want a token now, which no PIN can give.
    assert_eq!(
        token.config(0x03, Some(uint_map([(1, int(6))])), None, now),
        0x36
    );
    assert_eq!(token.config(0x02, None, None, now), 0, "toggled back");
    assert_eq!(token.make("a.example", b"u", None, false, now).0, 0);

    // With a PIN: the acfg permission.
    assert_eq!(token.set_pin("1234", now), 0);
    assert_eq!(token.config(0x02, None, None, now), 0x36);
    let mc = token
        .pin_token("1234", MC_GA, Some("a.example"), now)
        .unwrap();
    assert_eq!(token.config(0x02, None, Some(&mc), now), 0x33);
    let acfg = token.pin_token("1234", ACFG, None, now).unwrap();
    assert_eq!(token.config(0x02, None, Some(&acfg), now), 0);
    assert_eq!(token.make("a.example", b"u", None, false, now).0, 0x36);
    let mc = token
        .pin_token("1234", MC_GA, Some("a.example"), now)
        .unwrap();
    let (protocol, key) = &mc;
    let with_token = uint_map([
        (1, Value::Bytes(vec![0xCD; 32])),
        (2, text_map([("id", text("a.example"))])),
        (3, text_map([("id", Value::Bytes(b"u".to_vec()))])),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", int(-7)),
                ("type", text("public-key")),
            ])]),
        ),
        (8, Value::Bytes(protocol.authenticate(key, &[0xCD; 32]))),
        (9, int(2)),
    ]);
    assert_eq!(token.status(MAKE_CREDENTIAL, Some(with_token), now), 0);
    // Unsupported subcommands.
    let acfg = token.pin_token("1234", ACFG, None, now).unwrap();
    assert_eq!(
        token.config(0x01, None, Some(&acfg), now),
        0x02,
        "no enterprise attestation"
    );
    assert_eq!(
        token.config(0xFF, None, Some(&acfg), now),
        0x02,
        "no vendor prototype"
    );
    assert_eq!(
        token.status(CONFIG, Some(uint_map([(2, int(1))])), now),
        0x14
    );
}

/// A makeCredential for `rp` asking for the minPinLength extension: its output, if any (the ED
/// flag set exactly when there is one).
fn min_pin_length_output(token: &mut Token, rp: &str) -> Option<u64> {
    let params = uint_map([
        (1, Value::Bytes(vec![0xCD; 32])),
        (2, text_map([("id", text(rp))])),
        (3, text_map([("id", Value::Bytes(b"u".to_vec()))])),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", int(-7)),
                ("type", text("public-key")),
            ])]),
        ),
        (6, text_map([("minPinLength", Value::Bool(true))])),
    ]);
    let now = token.t0;
    let (status, body) = token.call(MAKE_CREDENTIAL, Some(params), now);
    assert_eq!(status, 0);
    let arena = Arena::new();
    let reply = Parameters::decode(&body, &arena).unwrap();
    let auth_data = cbor::bytes(reply.get(2).unwrap()).unwrap();
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let (_, key_len) = Item::decode_prefix(&auth_data[55 + id_len..], &arena).unwrap();
    let rest = &auth_data[55 + id_len + key_len..];
    assert_eq!(auth_data[32] & 0x80 != 0, !rest.is_empty());
    if rest.is_empty() {
        return None;
    }
    let (map, _) = Item::decode_prefix(rest, &arena).unwrap();
    let members = cbor::map(&map).unwrap();
    assert_eq!(members.len(), 1);
    Some(cbor::unsigned(cbor::member(members, "minPinLength").unwrap()).unwrap())
}

#[test]
fn min_pin_length_grows_forces_a_change_and_is_enforced() {
    let mut token = token(PresencePolicy::Auto);
    let now = token.t0;
    assert_eq!(
        member(&token.info(), 0x0D, |n| cbor::unsigned(n).unwrap()),
        4
    );
    assert_eq!(token.set_pin("1234", now), 0);
    let acfg = token.pin_token("1234", ACFG, None, now).unwrap();
    let nine: Vec<Value> = (0..9).map(|i| text(&format!("rp{i}.example"))).collect();
    assert_eq!(
        token.config(
            0x03,
            Some(uint_map([(2, Value::Array(nine))])),
            Some(&acfg),
            now
        ),
        0x03,
        "more RP IDs than maxRPIDsForSetMinPINLength"
    );
    let raise = uint_map([(1, int(6)), (2, Value::Array(vec![text("a.example")]))]);
    assert_eq!(token.config(0x03, Some(raise), Some(&acfg), now), 0);
    let info = token.info();
    assert_eq!(uint(&info, 0x0D), 6);
    assert_eq!(uint(&info, 0x10), 8);
    assert!(
        member(&info, 0x0C, |b| cbor::boolean(b).unwrap()),
        "the PIN is short"
    );
    assert_eq!(token.pin_token("1234", MC_GA, None, now), Err(0x37));
    // The minPinLength extension tells the minimum to the listed RP only.
    assert_eq!(min_pin_length_output(&mut token, "a.example"), Some(6));
    assert_eq!(min_pin_length_output(&mut token, "b.example"), None);
    assert_eq!(
        token.config(0x03, Some(uint_map([(1, int(5))])), Some(&acfg), now),
        0x37
    );
    assert_eq!(
        token.change_pin("1234", "12345", now),
        0x37,
        "shorter than 6"
    );
    assert_eq!(token.change_pin("1234", "123456", now), 0);
    let info = token.info();
    assert!(!member(&info, 0x0C, |b| cbor::boolean(b).unwrap()));
    let acfg = token.pin_token("123456", ACFG, None, now).unwrap();
    // forceChangePin: the same PIN again does not count as a change.
    let force = uint_map([(3, Value::Bool(true))]);
    assert_eq!(token.config(0x03, Some(force), Some(&acfg), now), 0);
    assert_eq!(token.pin_token("123456", MC_GA, None, now), Err(0x37));
    assert_eq!(token.change_pin("123456", "123456", now), 0x37);
    assert_eq!(token.change_pin("123456", "654321", now), 0);
    assert!(token.pin_token("654321", MC_GA, None, now).is_ok());

    let mut fresh = self::token(PresencePolicy::Auto);
    let at = fresh.t0;
    assert_eq!(
        fresh.config(0x03, Some(uint_map([(3, Value::Bool(true))])), None, at),
        0x35,
        "forceChangePin without a PIN"
    );
    assert_eq!(
        fresh.config(0x03, Some(uint_map([(1, int(8))])), None, at),
        0
    );
    assert_eq!(fresh.set_pin("1234567", at), 0x37);
    assert_eq!(fresh.set_pin("12345678", at), 0);
    assert_eq!(
        fresh.config(0x03, Some(uint_map([(1, int(64))])), None, at),
        0x36,
        "PIN set now"
    );
}

/// A credentialManagement or authenticatorConfig request {1: sub, 2: params, 3: protocol,
/// 4: pinUvAuthParam}, the param authenticated with `with` over `prefix` ‖ params' CBOR.
fn subcommand_request(
    mut message: Vec<u8>,
    sub: u8,
    params: Option<Value>,
    with: Option<&PinToken>,
) -> Value {
    let mut request = vec![(1, int(sub.into()))];
    if let Some(params) = params {
        message.extend(cbor::encode(&params));
        request.push((2, params));
    }
    if let Some((protocol, key)) = with {
        request.push((3, int(*protocol as i64)));
        request.push((4, Value::Bytes(protocol.authenticate(key, &message))));
    }
    uint_map(request)
}

/// A discoverable credential deleted while an assertion waits for the touch (through the
/// automation API, which reaches the token meanwhile) does not sign when the touch comes.
#[test]
fn a_credential_deleted_during_the_touch_wait_does_not_sign() {
    let mut token = token(PresencePolicy::Touch);
    let now = token.t0;
    token.engine.u2f().presence().button().press();
    let id = token.make_discoverable("a.example", b"u1", "alice");
    let mut request = vec![GET_ASSERTION];
    request.extend(cbor::encode(&uint_map([
        (1, text("a.example")),
        (2, Value::Bytes(vec![0xAB; 32])),
        (3, Value::Array(vec![descriptor(&id)])),
    ])));
    assert_eq!(token.engine.start(&request, now), Step::WaitingForUser);
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &id);
    vu2f::automation::credentials::remove(&mut token.engine, &encoded).unwrap();
    token.engine.u2f().presence().button().press();
    assert_eq!(
        token.engine.poll(now),
        Step::Done(vec![0x22]),
        "CTAP2_ERR_INVALID_CREDENTIAL, not a signature"
    );
}
