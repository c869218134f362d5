//! What credentialManagement, authenticatorConfig and authenticatorReset acknowledge survives
//! `kill -9` (CTAP 2.1 §6.8, §6.11, §6.6; DESIGN.md, "FIDO2": everything a host may count on
//! survives it). In each of 12 rounds `serve --udp` serves three tokens and a host, over UDP,
//! resets one (just after the start, inside the 10 s window), deletes a discoverable credential
//! of another with a cm pinUvAuthToken, and toggles alwaysUv on the third with an acfg one, in
//! an order that turns each round, and the process gets SIGKILL the moment the last reply is in.
//! The store, opened again, holds every acknowledged change: the reset token has no PIN, no
//! credential and a new master key (a handle of the old one no longer opens), the deleted
//! credential is gone and the others stay, alwaysUv is what the toggles made it.
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use vu2f::ctap2::cbor::{self, text_map, uint_map, Arena, Parameters, Value};
use vu2f::ctap2::pin_protocol::{encapsulate, PinUvAuthProtocol};
use vu2f::transport::UdpTransport;

const ROUNDS: u8 = 12;
const RESET: &str = "reset";
const DELETE: &str = "delete";
const TOGGLE: &str = "toggle";
const APP: [u8; 32] = [0xA5; 32];

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn pin_hash() -> [u8; 16] {
    digest(&SHA256, b"1234").as_ref()[..16].try_into().unwrap()
}

fn credential(id: u8) -> keystore::DiscoverableCredential {
    keystore::DiscoverableCredential {
        credential_id: vec![id; 61],
        rp_id: "crash.vu2f.invalid".into(),
        user_id: vec![id],
        user_name: None,
        user_display_name: None,
        public_key_cose: vec![0xA0],
        cred_protect: 0,
        handle: None,
        sign_count: None,
        removed: false,
    }
}

/// A pinUvAuthToken with `permissions` for the PIN "1234" (protocol 2).
fn pin_token(token: &mut UdpTransport, permissions: i64) -> Vec<u8> {
    let request = uint_map([(1, int(2)), (2, int(2))]);
    let reply = token
        .cbor(&[vec![0x06], cbor::encode(&request)].concat())
        .unwrap();
    assert_eq!(reply[0], 0, "getKeyAgreement: {reply:02x?}");
    let arena = Arena::new();
    let params = Parameters::decode(&reply[1..], &arena).unwrap();
    let rng = SystemRandom::new();
    let (key_agreement, shared) =
        encapsulate(PinUvAuthProtocol::Two, params.get(1).unwrap(), &rng).unwrap();
    let request = uint_map([
        (1, int(2)),
        (2, int(9)),
        (3, key_agreement),
        (6, Value::Bytes(shared.encrypt(&pin_hash(), &rng))),
        (9, int(permissions)),
    ]);
    let reply = token
        .cbor(&[vec![0x06], cbor::encode(&request)].concat())
        .unwrap();
    assert_eq!(
        reply[0], 0,
        "getPinUvAuthTokenUsingPinWithPermissions: {reply:02x?}"
    );
    let params = Parameters::decode(&reply[1..], &arena).unwrap();
    shared
        .decrypt(cbor::bytes(params.get(2).unwrap()).unwrap())
        .unwrap()
        .to_vec()
}

/// One acknowledged operation on the token at `addr`; returns once its reply (0) is in.
fn operate(operation: &str, addr: SocketAddr, round: u8) {
    let mut token = UdpTransport::connect(addr).unwrap();
    token.set_timeout(Duration::from_secs(5));
    let protocol = PinUvAuthProtocol::Two;
    let request = match operation {
        RESET => vec![0x07],
        DELETE => {
            let key = pin_token(&mut token, 0x04);
            let params = uint_map([(
                2,
                text_map([
                    ("id", Value::Bytes(credential(round).credential_id)),
                    ("type", Value::Text("public-key".into())),
                ]),
            )]);
            let message = [vec![0x06], cbor::encode(&params)].concat();
            let request = uint_map([
                (1, int(6)),
                (2, params),
                (3, int(2)),
                (4, Value::Bytes(protocol.authenticate(&key, &message))),
            ]);
            [vec![0x0A], cbor::encode(&request)].concat()
        }
        _ => {
            let key = pin_token(&mut token, 0x20);
            let message = [vec![0xFF; 32], vec![0x0D, 0x02]].concat();
            let request = uint_map([
                (1, int(2)),
                (3, int(2)),
                (4, Value::Bytes(protocol.authenticate(&key, &message))),
            ]);
            [vec![0x0D], cbor::encode(&request)].concat()
        }
    };
    assert_eq!(
        token.cbor(&request).unwrap(),
        [0],
        "{operation} in round {round}"
    );
}

/// Gives the token to be reset a PIN, a credential and a U2F handle of its master key now;
/// returns the handle.
fn prepare_reset(store: &Path) -> Vec<u8> {
    let store = keystore::Store::open(store).unwrap();
    let mut keys = store.load(RESET).unwrap();
    keys.pin.set(&pin_hash(), 4).unwrap();
    keys.discoverable.store(credential(0xEE)).unwrap();
    let rng = SystemRandom::new();
    let key = keystore::CredentialKey::generate(&rng).unwrap();
    keys.wrapper.wrap(&key, &APP, &rng).unwrap().to_vec()
}

#[test]
fn acknowledged_deletes_settings_and_resets_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = keystore::Store::open(&path).unwrap();
        let options = keystore::TokenOptions {
            profile: keystore::Profile::Fido2,
            ..Default::default()
        };
        store
            .create_tokens(&[RESET, DELETE, TOGGLE], options)
            .unwrap();
        for name in [DELETE, TOGGLE] {
            let mut keys = store.load(name).unwrap();
            keys.pin.set(&pin_hash(), 4).unwrap();
        }
        let mut keys = store.load(DELETE).unwrap();
        for id in 0..ROUNDS + 3 {
            keys.discoverable.store(credential(id)).unwrap();
        }
    }
    for round in 0..ROUNDS {
        let old_handle = prepare_reset(&path);
        let mut server = common::Server::start(&path, &[RESET, DELETE, TOGGLE], "auto");
        let mut order = [RESET, DELETE, TOGGLE];
        order.rotate_left(usize::from(round % 3));
        // The reset must come within 10 s of the start: first or not, it does.
        for operation in order {
            operate(operation, server.addr(operation), round);
        }
        server.kill();

        let store = keystore::Store::open(&path).unwrap();
        let reset = store.load(RESET).unwrap();
        assert!(
            !reset.pin.is_set(),
            "round {round}: the PIN survived the reset"
        );
        assert!(reset.discoverable.is_empty(), "round {round}");
        assert!(
            reset.wrapper.unwrap(&old_handle, &APP).is_err(),
            "round {round}: the old master key survived the reset"
        );
        let deleted = store.load(DELETE).unwrap();
        let ids: Vec<u8> = deleted.discoverable.iter().map(|c| c.user_id[0]).collect();
        let expected: Vec<u8> = (round + 1..ROUNDS + 3).rev().collect();
        assert_eq!(ids, expected, "round {round}: deletes");
        let toggled = store.load(TOGGLE).unwrap();
        assert_eq!(
            toggled.config.get().always_uv,
            round % 2 == 0,
            "round {round}: alwaysUv"
        );
    }
}
