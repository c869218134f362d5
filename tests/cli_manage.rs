//! `vu2f token pin`, `token creds`, `token reset` and what `token show` tells of a token's PIN,
//! settings and claims, as processes on a store (the token not served): the PIN from a file or
//! `$VU2F_PIN` under the PIN rules, the discoverable credentials a CTAP2 engine made, a reset
//! that needs `--yes` without a terminal and then leaves nothing of them.
mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Instant;

use vu2f::ctap2::cbor::{self, text_map, uint_map, Arena, Parameters, Value};
use vu2f::ctap2::{Authenticator, Step};
use vu2f::u2f::{self, Presence, PresencePolicy};

fn run(store: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::vu2f(store)
        .args(args)
        .env_remove("VU2F_PIN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Makes discoverable credentials on token `t` with the CTAP2 engine, in this process; their ids.
fn make_discoverable(store: &Path, accounts: &[(&str, &[u8], &str)]) -> Vec<Vec<u8>> {
    let store = keystore::Store::open(store).unwrap();
    let u2f = u2f::Authenticator::new(
        store.load("t").unwrap(),
        Presence::new(PresencePolicy::Auto),
    );
    let mut engine = Authenticator::new(u2f, None);
    let mut ids = Vec::new();
    for (rp, user_id, name) in accounts {
        let params = uint_map([
            (1, Value::Bytes(vec![1; 32])),
            (2, text_map([("id", Value::Text((*rp).into()))])),
            (
                3,
                text_map([
                    ("id", Value::Bytes(user_id.to_vec())),
                    ("name", Value::Text((*name).into())),
                ]),
            ),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Value::Integer((-7).into())),
                    ("type", Value::Text("public-key".into())),
                ])]),
            ),
            (7, text_map([("rk", Value::Bool(true))])),
        ]);
        let request = [vec![0x01], cbor::encode(&params)].concat();
        let Step::Done(reply) = engine.start(&request, Instant::now()) else {
            panic!("waits");
        };
        assert_eq!(reply[0], 0);
        let arena = Arena::new();
        let reply = Parameters::decode(&reply[1..], &arena).unwrap();
        let auth_data = cbor::bytes(reply.get(2).unwrap()).unwrap();
        let len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
        ids.push(auth_data[55..55 + len].to_vec());
    }
    ids
}

#[test]
fn a_pin_is_set_under_the_rules_and_shown_only_as_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(
        run(&store, &["token", "create", "t", "--profile", "fido2"], &[])
            .status
            .success()
    );
    let no_pin = stderr(&run(&store, &["token", "pin", "t"], &[]));
    assert!(
        no_pin.contains("--pin-file") && no_pin.contains("VU2F_PIN"),
        "{no_pin}"
    );
    let short = dir.path().join("short");
    std::fs::write(&short, "123\n").unwrap();
    let refused = stderr(&run(
        &store,
        &["token", "pin", "t", "--pin-file", short.to_str().unwrap()],
        &[],
    ));
    assert!(refused.contains("at least 4"), "{refused}");
    let shown = json(&run(&store, &["--json", "token", "show", "t"], &[]));
    assert_eq!(shown["pin_set"], false);

    let set = json(&run(
        &store,
        &["--json", "token", "pin", "t"],
        &[("VU2F_PIN", "2468")],
    ));
    assert_eq!(
        (set["pin_set"].clone(), set["pin_retries"].clone()),
        (true.into(), 8.into())
    );
    let text = run(&store, &["token", "show", "t"], &[]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("set, 8 of 8 attempts left"), "{text}");
    assert!(
        text.contains("built-in uv     8 of 8 attempts left"),
        "{text}"
    );
    assert_eq!(set["uv_retries"], 8);
    assert!(text.contains("alwaysUv off, minPINLength 4"), "{text}");
    assert!(
        text.contains("clientPin=true") && text.contains("credMgmt=true"),
        "{text}"
    );
    assert!(!text.contains("2468"), "never the PIN");
    // Changed from a file: the engine takes the new one, not the old.
    let file = dir.path().join("pin");
    std::fs::write(&file, "pässwörd\n").unwrap();
    assert!(run(
        &store,
        &["token", "pin", "t", "--pin-file", file.to_str().unwrap()],
        &[]
    )
    .status
    .success());
    let keys = keystore::Store::open(&store).unwrap().load("t").unwrap();
    let hash = |pin: &str| -> [u8; 16] {
        ring::digest::digest(&ring::digest::SHA256, pin.as_bytes()).as_ref()[..16]
            .try_into()
            .unwrap()
    };
    assert!(keys.pin.is_current(&hash("pässwörd")));
    assert!(!keys.pin.is_current(&hash("2468")));
    assert_eq!(keys.pin.code_points(), Some(8));
}

#[test]
fn creds_lists_the_passkeys_and_reset_erases_them_only_when_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(
        run(&store, &["token", "create", "t", "--profile", "fido2"], &[])
            .status
            .success()
    );
    let ids = make_discoverable(
        &store,
        &[
            ("a.example", b"\x01\x02", "alice"),
            ("b.example", b"\xff", "bob"),
        ],
    );
    let listed = json(&run(&store, &["--json", "token", "creds", "t"], &[]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["rp_id"], "b.example", "newest first");
    assert_eq!(listed[0]["user_name"], "bob");
    assert_eq!(listed[0]["user_id"], "ff");
    assert_eq!(listed[1]["user_id"], "0102");
    assert_eq!(listed[1]["credential_id"], hex::encode(&ids[0]));
    assert_eq!(listed[1]["cred_protect"], 0);
    let text = String::from_utf8(run(&store, &["token", "creds", "t"], &[]).stdout).unwrap();
    assert!(
        text.contains("a.example\tuser alice (-)\tuser id 0102"),
        "{text}"
    );

    assert!(run(&store, &["token", "pin", "t"], &[("VU2F_PIN", "1234")])
        .status
        .success());
    let unconfirmed = stderr(&run(&store, &["token", "reset", "t"], &[]));
    assert!(unconfirmed.contains("--yes"), "{unconfirmed}");
    assert_eq!(
        json(&run(&store, &["--json", "token", "show", "t"], &[]))["discoverable"],
        2,
        "nothing reset without confirmation"
    );
    let reset = json(&run(
        &store,
        &["--json", "token", "reset", "t", "--yes"],
        &[],
    ));
    assert_eq!(
        (reset["discoverable"].clone(), reset["pin_set"].clone()),
        (0.into(), false.into())
    );
    let listed = json(&run(&store, &["--json", "token", "creds", "t"], &[]));
    assert_eq!(listed, serde_json::json!([]));
    assert!(!stderr(&run(&store, &["token", "reset", "nope", "--yes"], &[])).is_empty());
}
