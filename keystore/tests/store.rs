//! The store through its public API: tokens, counters across reopen, attestation, permissions.
use std::os::unix::fs::PermissionsExt;

use keystore::{Store, StoreError, TokenOptions};

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// Steady state is +1 with one flush per block; a token dropped cleanly gives the rest of its
/// block back, so the next load goes on at +1. (A crash resuming above the block is a process
/// kill: tests/udp_serve.rs and tests/crash_serve_udp.rs.)
#[test]
fn counter_is_plus_one_in_steady_state_and_after_a_clean_reopen() {
    let (dir, mut store) = temp_store();
    store.set_counter_block(100);
    store.create_token("t", TokenOptions::default()).unwrap();
    let mut keys = store.load("t").unwrap();
    let values: Vec<u32> = (0..250)
        .map(|_| keys.counter.next_value().unwrap())
        .collect();
    assert_eq!(values, (1..=250).collect::<Vec<_>>());
    assert_eq!(keys.counter.flushes(), 3, "one flush per block of 100");
    let last = *values.last().unwrap();
    drop(keys);
    drop(store);

    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut keys = store.load("t").unwrap();
    let after = keys.counter.next_value().unwrap();
    assert_eq!(after, last + 1, "the unused reservation was given back");
    assert_eq!(keys.counter.next_value().unwrap(), last + 2);
}

#[test]
fn a_token_loads_once_per_process_and_is_released_on_drop() {
    let (_dir, store) = temp_store();
    store.create_token("t", TokenOptions::default()).unwrap();
    let keys = store.load("t").unwrap();
    assert!(matches!(store.load("t"), Err(StoreError::TokenBusy(_))));
    assert!(matches!(store.remove("t"), Err(StoreError::TokenBusy(_))));
    drop(keys);
    store.load("t").unwrap();
}

#[test]
fn create_list_show_remove() {
    let (_dir, store) = temp_store();
    let names: Vec<String> = (0..50).map(|i| format!("user{i:03}")).collect();
    store
        .create_tokens(&names, TokenOptions::default())
        .unwrap();
    assert!(matches!(
        store.create_token("user007", TokenOptions::default()),
        Err(StoreError::TokenExists(_))
    ));
    assert!(matches!(
        store.create_tokens(&["fresh", "fresh"], TokenOptions::default()),
        Err(StoreError::TokenExists(_))
    ));
    assert!(
        !store.names().unwrap().contains(&"fresh".to_string()),
        "a failed batch creates nothing"
    );
    assert_eq!(store.names().unwrap(), names);
    assert!(matches!(
        store.create_token("a/b", TokenOptions::default()),
        Err(StoreError::InvalidName(_))
    ));
    store.remove("user007").unwrap();
    assert!(matches!(
        store.info("user007"),
        Err(StoreError::NoSuchToken(_))
    ));
    assert!(matches!(
        store.remove("user007"),
        Err(StoreError::NoSuchToken(_))
    ));
    assert_eq!(store.list().unwrap().len(), 49);
}

#[test]
fn key_handles_of_one_token_do_not_open_on_another() {
    let (_dir, store) = temp_store();
    store
        .create_tokens(&["a", "b"], TokenOptions::default())
        .unwrap();
    let (a, b) = (store.load("a").unwrap(), store.load("b").unwrap());
    let rng = ring::rand::SystemRandom::new();
    let credential = keystore::CredentialKey::generate(&rng).unwrap();
    let handle = a.wrapper.wrap(&credential, &[1; 32], &rng).unwrap();
    assert!(a.wrapper.unwrap(&handle, &[1; 32]).is_ok());
    assert_eq!(
        b.wrapper.unwrap(&handle, &[1; 32]).err(),
        Some(keystore::UnwrapError::NotOurs)
    );
}

#[test]
fn a_second_open_of_the_same_store_is_refused_clearly() {
    let (dir, _store) = temp_store();
    match Store::open(&dir.path().join("store")) {
        Err(e @ StoreError::InUse(_)) => assert!(e.to_string().contains("in use")),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("second open succeeded"),
    }
}

#[test]
fn directory_is_private() {
    let (dir, _store) = temp_store();
    let root = dir.path().join("store");
    assert_eq!(
        std::fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for entry in std::fs::read_dir(root.join("db")).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        if meta.is_file() {
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "no access for group or others"
            );
        }
    }
}

fn parse_cert(der: &[u8]) -> x509_parser::certificate::X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

#[test]
fn batch_and_own_certificates_chain_to_the_store_ca() {
    let (_dir, store) = temp_store();
    store
        .create_token("batch1", TokenOptions::default())
        .unwrap();
    store
        .create_token("batch2", TokenOptions::default())
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
    let ca_der = store.attestation().ca_certificate_der().to_vec();
    let ca = parse_cert(&ca_der);
    let (b1, b2, own) = (
        store.load("batch1").unwrap(),
        store.load("batch2").unwrap(),
        store.load("own").unwrap(),
    );
    assert_eq!(
        b1.attestation.certificate_der(),
        b2.attestation.certificate_der(),
        "batch is shared"
    );
    assert_ne!(
        own.attestation.certificate_der(),
        b1.attestation.certificate_der()
    );
    for keys in [&b1, &own] {
        let cert = parse_cert(keys.attestation.certificate_der());
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key()))
            .expect("signed by the store CA");
        // The attestation key is the certificate's key: a signature verifies with it.
        let rng = ring::rand::SystemRandom::new();
        let sig = keys.attestation.sign(&rng, b"attest").unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            cert.public_key().subject_public_key.data.as_ref(),
        )
        .verify(b"attest", &sig)
        .unwrap();
    }
    assert!(store
        .attestation()
        .ca_certificate_pem()
        .starts_with("-----BEGIN CERTIFICATE-----"));
}

/// `load_many` reserves every token's first counter block with one flush: no signature needs a
/// flush of its own, and after a reopen every counter resumes above what it handed out.
#[test]
fn load_many_reserves_every_counter_with_one_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let names = ["a", "b", "c"];
    let mut handed_out = Vec::new();
    {
        let store = Store::open(&path).unwrap();
        store
            .create_tokens(&names, TokenOptions::default())
            .unwrap();
        let mut loaded = store.load_many(&names).unwrap();
        for keys in &mut loaded {
            let values: Vec<u32> = (0..5).map(|_| keys.counter.next_value().unwrap()).collect();
            assert!(values.windows(2).all(|w| w[1] == w[0] + 1));
            assert_eq!(keys.counter.flushes(), 0);
            handed_out.push(*values.last().unwrap());
        }
    }
    let store = Store::open(&path).unwrap();
    for (name, last) in names.iter().zip(handed_out) {
        let mut keys = store.load(name).unwrap();
        assert!(keys.counter.next_value().unwrap() > last);
    }
}
