//! `vu2f probe` in-process: a `fido2` token passes the U2F and the CTAP2 checks, a U2F engine only
//! the U2F ones, and a CTAP2 reply tampered with on its way fails with one line naming the
//! command and the field. Over UDP and from the command line: tests/udp_serve.rs.
use std::time::Duration;

use ciborium::value::Value;
use vu2f::transport::{InProcess, TokenTransport, TransportError};
use vu2f::u2f::{self, Presence, PresencePolicy};

fn in_process(profile: keystore::Profile) -> (tempfile::TempDir, InProcess) {
    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    let options = keystore::TokenOptions {
        profile,
        ..Default::default()
    };
    store.create_token("t", options).unwrap();
    let u2f = u2f::Authenticator::new(
        store.load("t").unwrap(),
        Presence::new(PresencePolicy::Auto),
    );
    (
        dir,
        InProcess::ctap2(vu2f::ctap2::Authenticator::new(u2f, None)),
    )
}

fn step_names(report: &vu2f::probe::ProbeReport) -> Vec<&str> {
    report.steps.iter().map(|s| s.step.as_str()).collect()
}

const CTAP2_STEPS: [&str; 4] = [
    "CTAP2 getInfo",
    "CTAP2 makeCredential (ES256)",
    "CTAP2 getAssertion #1",
    "CTAP2 getAssertion #2",
];

#[test]
fn a_fido2_token_passes_the_ctap2_checks_and_a_u2f_engine_has_none() {
    let report = vu2f::probe::run("in-process".into(), None, 0, Duration::from_secs(5)).unwrap();
    assert!(report.ctap2);
    assert_eq!(report.steps.len(), 10, "{:?}", step_names(&report));
    assert_eq!(step_names(&report)[6..], CTAP2_STEPS);
    let text = report.to_text();
    assert!(text.contains("(U2F and CTAP2)"), "{text}");
    assert!(text.contains("packed attestation verified"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let store = keystore::Store::open(&dir.path().join("store")).unwrap();
    store
        .create_token("u", keystore::TokenOptions::default())
        .unwrap();
    let engine = u2f::Authenticator::new(
        store.load("u").unwrap(),
        Presence::new(PresencePolicy::Auto),
    );
    let u2f_only: Box<dyn TokenTransport> = Box::new(InProcess::new(engine));
    let report = vu2f::probe::run("u2f".into(), Some(u2f_only), 0, Duration::from_secs(5)).unwrap();
    assert!(!report.ctap2);
    assert_eq!(report.steps.len(), 6);
    assert!(report.to_text().contains("(U2F only)"));

    // A u2f-profile token behind a CTAP2 engine speaks no CTAP2 either.
    let (_dir, mut token) = in_process(keystore::Profile::U2f);
    assert!(token.cbor(&[0x04]).unwrap().is_none());
    assert!(vu2f::probe::ctap2::check(&mut token).unwrap().is_none());
}

/// What a tampering transport does to a reply.
type Tamper = fn(Vec<u8>) -> Vec<u8>;

/// An in-process fido2 token whose replies to one command are changed by `tamper`.
struct Tampering {
    inner: InProcess,
    command: u8,
    tamper: Tamper,
}

impl TokenTransport for Tampering {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.inner.exchange(apdu)
    }

    fn cbor(&mut self, request: &[u8]) -> Result<Option<Vec<u8>>, TransportError> {
        let reply = self.inner.cbor(request)?;
        Ok(if request.first() == Some(&self.command) {
            reply.map(self.tamper)
        } else {
            reply
        })
    }
}

/// `reply` with the member `key` of its map changed by `edit`, re-encoded.
fn edit(reply: Vec<u8>, key: u64, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    assert_eq!(reply[0], 0, "the token's own reply succeeded");
    let mut map: Value = ciborium::de::from_reader(&reply[1..]).unwrap();
    let Value::Map(members) = &mut map else {
        panic!("not a map")
    };
    let (_, value) = members
        .iter_mut()
        .find(|(k, _)| k.as_integer() == Some(key.into()))
        .unwrap();
    edit(value);
    [vec![0], vu2f::ctap2::cbor::encode(&map)].concat()
}

fn flip_last(value: &mut Value) {
    let Value::Bytes(bytes) = value else {
        panic!("not bytes")
    };
    *bytes.last_mut().unwrap() ^= 1;
}

fn probe_error(command: u8, tamper: Tamper) -> String {
    let (_dir, inner) = in_process(keystore::Profile::Fido2);
    let mut token = Tampering {
        inner,
        command,
        tamper,
    };
    let error = vu2f::probe::ctap2::check(&mut token).unwrap_err();
    format!("{error:#}")
}

#[test]
fn a_tampered_reply_fails_naming_the_command_and_the_field() {
    let cases: [(u8, Tamper, &str); 6] = [
        (
            0x04,
            |reply| {
                edit(reply, 0x01, |v| {
                    *v = Value::Array(vec![Value::Text("U2F_V2".into())])
                })
            },
            "CTAP2 getInfo: versions: [\"U2F_V2\"] lack FIDO_2_0",
        ),
        (
            0x01,
            |reply| {
                edit(reply, 0x03, |statement| {
                    let Value::Map(members) = statement else {
                        panic!("attStmt")
                    };
                    for (k, v) in members.iter_mut() {
                        if k.as_text() == Some("sig") {
                            flip_last(v);
                        }
                    }
                })
            },
            "CTAP2 makeCredential: attStmt: sig does not verify with the x5c[0] certificate's key",
        ),
        (
            0x01,
            |reply| {
                edit(reply, 0x02, |auth_data| {
                    let Value::Bytes(bytes) = auth_data else {
                        panic!("authData")
                    };
                    bytes[0] ^= 1;
                })
            },
            "CTAP2 makeCredential: authData: rpIdHash is not SHA-256 of \"probe.vu2f.invalid\"",
        ),
        (
            0x01,
            |reply| edit(reply, 0x01, |fmt| *fmt = Value::Text("none".into())),
            "CTAP2 makeCredential: fmt: \"none\", expected \"packed\"",
        ),
        (
            0x02,
            |reply| edit(reply, 0x03, flip_last),
            "CTAP2 getAssertion #1: signature: does not verify with the credential's COSE key",
        ),
        (
            0x02,
            |_| vec![0x2E],
            "CTAP2 getAssertion #1: status: 0x2E (NO_CREDENTIALS), expected 0 (OK)",
        ),
    ];
    for (command, tamper, expected) in cases {
        let error = probe_error(command, tamper);
        assert_eq!(error, expected);
        assert_eq!(error.lines().count(), 1);
    }
}
