//! The FIDO2 additions through the public API: profiles, the AAGUID and packed-attestation
//! certificates, discoverable credentials across reopen and locking.
use std::path::{Path, PathBuf};

use keystore::{
    DiscoverableCredential, Passphrase, Profile, Store, StoreError, TokenOptions,
    DEFAULT_DISCOVERABLE_LIMIT,
};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

fn temp_store() -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path).unwrap();
    (dir, path, store)
}

fn credential(rp: &str, user: &[u8], name: &str, id: u8) -> DiscoverableCredential {
    DiscoverableCredential {
        credential_id: vec![id; 126],
        rp_id: rp.to_owned(),
        user_id: user.to_vec(),
        user_name: Some(name.to_owned()),
        user_display_name: Some(format!("{name} (display)")),
        public_key_cose: vec![0xa5, 0x01, 0x02, 0x03, 0x26],
        cred_protect: 0,
        handle: None,
        sign_count: None,
        removed: false,
    }
}

fn rp_hash(rp: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, rp.as_bytes());
    digest.as_ref().try_into().unwrap()
}

fn ids(credentials: &[&DiscoverableCredential]) -> Vec<u8> {
    credentials.iter().map(|c| c.credential_id[0]).collect()
}

#[test]
fn profiles_are_stored_shown_and_changed() {
    let (_dir, path, store) = temp_store();
    let default = store.create_token("d", TokenOptions::default()).unwrap();
    assert_eq!(default.profile, Profile::Fido2, "new tokens are fido2");
    let u2f = store
        .create_token(
            "u",
            TokenOptions {
                profile: Profile::U2f,
                ..TokenOptions::default()
            },
        )
        .unwrap();
    assert_eq!(u2f.profile, Profile::U2f);
    let fido = store
        .create_token(
            "f",
            TokenOptions {
                profile: Profile::Fido2,
                ..TokenOptions::default()
            },
        )
        .unwrap();
    assert_eq!(fido.profile, Profile::Fido2);
    assert_eq!(store.info("f").unwrap().profile, Profile::Fido2);
    assert_eq!(store.load("f").unwrap().profile, Profile::Fido2);

    store.set_profile("u", Profile::Fido2).unwrap();
    store.set_profile("f", Profile::U2f).unwrap();
    assert!(matches!(
        store.set_profile("missing", Profile::U2f),
        Err(StoreError::NoSuchToken(_))
    ));
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.info("u").unwrap().profile, Profile::Fido2);
    assert_eq!(store.load("f").unwrap().profile, Profile::U2f);

    let json = serde_json::to_value(store.info("u").unwrap()).unwrap();
    assert_eq!(json["profile"], "fido2");
    assert_eq!(json["discoverable"], 0);
    assert_eq!(json["aaguid"].as_str().unwrap().len(), 36);
}

/// WebAuthn §8.2.1: what python-fido2's packed verifier checks, and that the certificate chains
/// to the store's CA.
fn assert_packed_attestation_certificate(der: &[u8], aaguid: &[u8; 16], ca_der: &[u8]) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let (_, ca) = X509Certificate::from_der(ca_der).unwrap();
    assert_eq!(cert.version(), X509Version::V3);
    let subject = cert.subject();
    assert_eq!(
        subject.iter_country().next().unwrap().as_str().unwrap(),
        "ZZ"
    );
    assert!(subject.iter_organization().next().is_some());
    assert_eq!(
        subject
            .iter_organizational_unit()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "Authenticator Attestation"
    );
    assert!(subject.iter_common_name().next().is_some());
    let constraints = cert
        .basic_constraints()
        .unwrap()
        .expect("Basic Constraints");
    assert!(!constraints.value.ca);
    let extension = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.4.1.45724.1.1.4")
        .expect("id-fido-gen-ce-aaguid");
    assert!(!extension.critical);
    let mut expected = vec![0x04, 0x10];
    expected.extend_from_slice(aaguid);
    assert_eq!(
        extension.value,
        expected.as_slice(),
        "OCTET STRING in extnValue"
    );
    assert_eq!(cert.issuer(), ca.subject());
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the store CA");
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.clone()
            }
            _ => None,
        })
        .expect("authority key identifier");
    let ski = ca
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) => {
                Some(ski.clone())
            }
            _ => None,
        })
        .expect("CA subject key identifier");
    assert_eq!(aki.0, ski.0);
}

#[test]
fn new_stores_attest_for_fido2_with_their_aaguid() {
    let (_dir, path, store) = temp_store();
    store
        .create_token("batch", TokenOptions::default())
        .unwrap();
    store
        .create_token(
            "own",
            TokenOptions {
                own_certificate: true,
                ..TokenOptions::default()
            },
        )
        .unwrap();
    let attestation = store.attestation();
    let aaguid = attestation.aaguid();
    assert_eq!(aaguid[6] >> 4, 4);
    assert_eq!(aaguid[8] >> 6, 0b10);
    let ca = attestation.ca_certificate_der().to_vec();
    assert_eq!(
        attestation.fido2().certificate_der(),
        attestation.batch().certificate_der(),
        "a new store's batch serves FIDO2 too"
    );

    let batch = store.load("batch").unwrap();
    let own = store.load("own").unwrap();
    for keys in [&batch, &own] {
        assert_eq!(keys.aaguid, aaguid);
        assert_eq!(
            keys.fido2_attestation.certificate_der(),
            keys.attestation.certificate_der()
        );
        assert_packed_attestation_certificate(
            keys.fido2_attestation.certificate_der(),
            &aaguid,
            &ca,
        );
    }
    assert_ne!(
        own.fido2_attestation.certificate_der(),
        batch.fido2_attestation.certificate_der()
    );

    let info = store.info("own").unwrap();
    let hex: String = info.aaguid.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex, hex::encode(aaguid));
    assert_eq!(
        info.aaguid.split('-').map(str::len).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    drop((batch, own, store));
    let store = Store::open(&path).unwrap();
    assert_eq!(store.attestation().aaguid(), aaguid, "stable across reopen");
}

#[test]
fn discoverable_credentials_replace_order_limit_and_remove() {
    let (_dir, path, store) = temp_store();
    store
        .create_token(
            "t",
            TokenOptions {
                discoverable_limit: 3,
                ..TokenOptions::default()
            },
        )
        .unwrap();
    store
        .create_token("other", TokenOptions::default())
        .unwrap();
    {
        let mut keys = store.load("t").unwrap();
        let creds = &mut keys.discoverable;
        assert!(creds.is_empty());
        assert_eq!((creds.limit(), creds.remaining()), (3, 3));
        creds
            .store(credential("a.example", b"alice", "alice", 1))
            .unwrap();
        creds
            .store(credential("b.example", b"alice", "alice", 2))
            .unwrap();
        creds
            .store(credential("a.example", b"bob", "bob", 3))
            .unwrap();
        assert_eq!(
            ids(&creds.for_rp(&rp_hash("a.example"))),
            [3, 1],
            "newest first"
        );
        assert_eq!(creds.remaining(), 0);
        let full = creds
            .store(credential("c.example", b"carol", "carol", 4))
            .unwrap_err();
        assert!(
            matches!(full, StoreError::DiscoverableFull { ref token, limit: 3 } if token == "t"),
            "{full}"
        );
        // Same rp.id and user.id: replaces, even when full, and becomes the newest.
        creds
            .store(credential("a.example", b"alice", "alice2", 5))
            .unwrap();
        assert_eq!(creds.len(), 3);
        assert_eq!(ids(&creds.for_rp(&rp_hash("a.example"))), [5, 3]);
        assert!(creds.find(&[1; 126]).is_none());
        assert_eq!(
            creds.find(&[5; 126]).unwrap().user_name.as_deref(),
            Some("alice2")
        );
        assert_eq!(
            creds.iter().map(|c| c.credential_id[0]).collect::<Vec<_>>(),
            [5, 3, 2]
        );
        assert!(creds.remove(&[3; 126]).unwrap());
        assert!(!creds.remove(&[3; 126]).unwrap());
        assert_eq!(creds.remaining(), 1);
        assert!(creds.for_rp(&rp_hash("nowhere.example")).is_empty());
        assert!(matches!(
            creds.store(DiscoverableCredential {
                user_id: vec![0; 65],
                ..credential("a.example", b"x", "x", 9)
            }),
            Err(StoreError::InvalidCredential { .. })
        ));
        assert!(matches!(
            creds.store(DiscoverableCredential {
                credential_id: vec![0; 256],
                ..credential("a.example", b"x", "x", 9)
            }),
            Err(StoreError::InvalidCredential { .. })
        ));
        assert_eq!(
            credential("a.example", b"x", "x", 9).rp_id_hash(),
            rp_hash("a.example")
        );
    }
    assert_eq!(store.info("t").unwrap().discoverable, 2);
    assert_eq!(store.info("other").unwrap().discoverable, 0);
    assert_eq!(
        store.info("other").unwrap().discoverable_limit,
        DEFAULT_DISCOVERABLE_LIMIT
    );
    drop(store);

    // Persisted (each store/remove flushed), in order, and the sequence goes on after reopen.
    let store = Store::open(&path).unwrap();
    {
        let mut keys = store.load("t").unwrap();
        assert_eq!(
            keys.discoverable
                .iter()
                .map(|c| c.credential_id[0])
                .collect::<Vec<_>>(),
            [5, 2]
        );
        assert_eq!(keys.discoverable.limit(), 3);
        keys.discoverable
            .store(credential("b.example", b"dave", "dave", 6))
            .unwrap();
        assert_eq!(
            ids(&keys.discoverable.for_rp(&rp_hash("b.example"))),
            [6, 2]
        );
        assert!(store.load("other").unwrap().discoverable.is_empty());
    }
    assert_eq!(
        ids(&store
            .load("t")
            .unwrap()
            .discoverable
            .for_rp(&rp_hash("b.example"))),
        [6, 2]
    );

    // Removing the token removes its records: a new token of that name starts empty.
    store.remove("t").unwrap();
    store.create_token("t", TokenOptions::default()).unwrap();
    assert_eq!(store.info("t").unwrap().discoverable, 0);
    assert!(store.load("t").unwrap().discoverable.is_empty());
}

/// Every file under `dir`, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn discoverable_credentials_are_sealed_in_a_locked_store() {
    let (_dir, path, store) = temp_store();
    store
        .create_token(
            "t",
            TokenOptions {
                profile: Profile::Fido2,
                ..TokenOptions::default()
            },
        )
        .unwrap();
    store
        .load("t")
        .unwrap()
        .discoverable
        .store(credential(
            "before.example",
            b"u1",
            "zebulon-before-lock",
            1,
        ))
        .unwrap();
    drop(store);
    assert!(
        contains(&all_bytes(&path), b"zebulon-before-lock"),
        "the scan finds the name in a plain store"
    );

    let store = Store::open(&path).unwrap();
    let passphrase = || Passphrase::new(b"correct horse".to_vec());
    let locked = store.set_passphrase(Some(&passphrase())).unwrap();
    locked
        .load("t")
        .unwrap()
        .discoverable
        .store(credential("after.example", b"u2", "zebulon-after-lock", 2))
        .unwrap();
    drop(locked);
    let bytes = all_bytes(&path);
    for secret in [
        &b"zebulon-before-lock"[..],
        b"zebulon-after-lock",
        b"before.example",
        b"after.example",
    ] {
        assert!(
            !contains(&bytes, secret),
            "{} readable in a locked store",
            String::from_utf8_lossy(secret)
        );
    }

    let unlocked = Store::open_unlocking(&path, || Ok(passphrase())).unwrap();
    {
        let keys = unlocked.load("t").unwrap();
        let names: Vec<_> = keys
            .discoverable
            .iter()
            .map(|c| c.user_name.clone().unwrap())
            .collect();
        assert_eq!(names, ["zebulon-after-lock", "zebulon-before-lock"]);
    }
    assert_eq!(unlocked.info("t").unwrap().discoverable, 2);
    let plain = unlocked.set_passphrase(None).unwrap();
    assert_eq!(plain.load("t").unwrap().discoverable.len(), 2);
}

const ABORT_CHILD: &str = "KEYSTORE_TEST_ABORT_CHILD";

/// The child of [`a_stored_credential_survives_an_abort`]: stores, then dies without running
/// any destructor (as under `kill -9`: sled gets no chance to write anything more).
#[test]
#[ignore = "a child process of a_stored_credential_survives_an_abort"]
fn child_stores_a_credential_then_aborts() {
    let Some(path) = std::env::var_os(ABORT_CHILD) else {
        return;
    };
    let store = Store::open(Path::new(&path)).unwrap();
    let mut keys = store.load("t").unwrap();
    keys.discoverable
        .store(credential("durable.example", b"u", "durable", 1))
        .unwrap();
    std::process::abort();
}

/// `store` returns only once the record is flushed: a reply sent after it is never lost.
#[test]
fn a_stored_credential_survives_an_abort() {
    let (_dir, path, store) = temp_store();
    store.create_token("t", TokenOptions::default()).unwrap();
    drop(store);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_stores_a_credential_then_aborts",
            "--ignored",
            "--test-threads=1",
        ])
        .env(ABORT_CHILD, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child aborts");
    let store = Store::open(&path).unwrap();
    let keys = store.load("t").unwrap();
    assert_eq!(
        ids(&keys.discoverable.for_rp(&rp_hash("durable.example"))),
        [1]
    );
}
