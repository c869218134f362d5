//! Crash safety of discoverable credentials (CTAP 2.1 section 6.1, steps 16 to 18; DESIGN.md,
//! "FIDO2": everything a host may count on survives `kill -9`): `serve --udp` is killed with
//! SIGKILL 200 times while one client makes discoverable credentials and another signs with
//! them, and restarted each time. After every restart each credential the token acknowledged is
//! still there (found by its RP alone, with its user, and its signature verifies with the key of
//! its attestation), and across all runs no counter value repeats or goes back.
mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use vu2f::ctap2::cbor::{self, text_map, uint_map, Arena, Parameters, Value};
use vu2f::transport::UdpTransport;

const KILLS: usize = 200;
/// The whole test must end within this, restarts included.
const BOUND: Duration = Duration::from_secs(900);
const CLIENT_DATA_HASH: [u8; 32] = [0x11; 32];

/// A discoverable credential the token acknowledged.
#[derive(Clone, Debug)]
struct Made {
    rp: String,
    user: Vec<u8>,
    id: Vec<u8>,
    /// The uncompressed P-256 point of its attested key.
    public_key: Vec<u8>,
}

fn rp_of(run: usize) -> String {
    format!("run-{run}.crash.vu2f.invalid")
}

/// An ES256 makeCredential of a discoverable credential for `user` at `rp`.
fn make_request(rp: &str, user: &[u8]) -> Vec<u8> {
    let request = uint_map([
        (1, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
        (2, text_map([("id", Value::Text(rp.into()))])),
        (3, text_map([("id", Value::Bytes(user.to_vec()))])),
        (
            4,
            Value::Array(vec![vu2f::ctap2::cose::Algorithm::Es256.parameters()]),
        ),
        (7, text_map([("rk", Value::Bool(true))])),
    ]);
    [vec![0x01], cbor::encode(&request)].concat()
}

/// A getAssertion for `rp` without an allowList.
fn get_request(rp: &str) -> Vec<u8> {
    let request = uint_map([
        (1, Value::Text(rp.into())),
        (2, Value::Bytes(CLIENT_DATA_HASH.to_vec())),
    ]);
    [vec![0x02], cbor::encode(&request)].concat()
}

/// The map of a successful reply; `None` for anything else (the server died mid-reply).
fn success<'a>(reply: &'a [u8], arena: &'a Arena) -> Option<Parameters<'a>> {
    match reply.split_first() {
        Some((0, body)) => Some(Parameters::decode(body, arena).expect("a reply is a CBOR map")),
        _ => None,
    }
}

fn bytes(params: &Parameters, key: u64) -> Vec<u8> {
    cbor::bytes(params.get(key).expect("member present"))
        .unwrap()
        .to_vec()
}

fn counter_of(auth_data: &[u8]) -> u32 {
    u32::from_be_bytes(auth_data[33..37].try_into().unwrap())
}

/// Reads a makeCredential reply: the credential, and the counter of its authData.
fn read_made(rp: &str, user: &[u8], reply: &Parameters) -> (Made, u32) {
    let auth_data = bytes(reply, 2);
    let id_len = usize::from(u16::from_be_bytes([auth_data[53], auth_data[54]]));
    let id = auth_data[55..55 + id_len].to_vec();
    let key: Value = ciborium::de::from_reader(&auth_data[55 + id_len..]).unwrap();
    let key = key.into_map().expect("a COSE key is a map");
    let coordinate = |k: i64| {
        key.iter()
            .find(|(key, _)| key.as_integer() == Some(k.into()))
            .and_then(|(_, v)| v.as_bytes().cloned())
            .expect("an ES256 key has x and y")
    };
    let public_key = [vec![4], coordinate(-2), coordinate(-3)].concat();
    let credential = Made {
        rp: rp.into(),
        user: user.to_vec(),
        id,
        public_key,
    };
    (credential, counter_of(&auth_data))
}

/// Checks a getAssertion or getNextAssertion reply against the credentials of its RP; returns
/// the credential id, its user and the counter.
fn asserted(reply: &Parameters, known: &[Made]) -> (Vec<u8>, Vec<u8>, u32) {
    let descriptor = cbor::map(reply.get(1).unwrap()).unwrap();
    let id = cbor::bytes(cbor::member(descriptor, "id").unwrap())
        .unwrap()
        .to_vec();
    let user = cbor::map(reply.get(4).expect("a discoverable credential's user")).unwrap();
    let user = cbor::bytes(cbor::member(user, "id").unwrap())
        .unwrap()
        .to_vec();
    let auth_data = bytes(reply, 2);
    let signature = bytes(reply, 3);
    if let Some(credential) = known.iter().find(|c| c.id == id) {
        assert_eq!(credential.user, user, "the credential's own user");
        let signed = [auth_data.clone(), CLIENT_DATA_HASH.to_vec()].concat();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &credential.public_key)
            .verify(&signed, &signature)
            .expect("the assertion verifies with the attested key");
    }
    (id, user, counter_of(&auth_data))
}

/// Every credential of `rp`: getAssertion, then getNextAssertion for the rest.
fn all_of_rp(token: &mut UdpTransport, rp: &str, known: &[Made]) -> (HashSet<Vec<u8>>, Vec<u32>) {
    let mut ids = HashSet::new();
    let mut counters = Vec::new();
    let reply = token.cbor(&get_request(rp)).unwrap();
    if reply == [0x2E] {
        return (ids, counters);
    }
    let arena = Arena::new();
    let first =
        success(&reply, &arena).unwrap_or_else(|| panic!("{rp}: getAssertion {reply:02x?}"));
    let count = first
        .get(5)
        .map_or(1, |n| cbor::integer(n).unwrap() as usize);
    let (id, _, counter) = asserted(&first, known);
    ids.insert(id);
    counters.push(counter);
    for _ in 1..count {
        let reply = token.cbor(&[0x08]).unwrap();
        let arena = Arena::new();
        let next = success(&reply, &arena)
            .unwrap_or_else(|| panic!("{rp}: getNextAssertion {reply:02x?}"));
        let (id, _, counter) = asserted(&next, known);
        assert!(ids.insert(id), "{rp}: a credential came back twice");
        counters.push(counter);
    }
    (ids, counters)
}

/// Every counter value the token handed out, by run: none twice, and each run's above the last's.
#[derive(Default)]
struct Counters {
    seen: HashSet<u32>,
    highest_before: Option<u32>,
    this_run: Vec<u32>,
}

impl Counters {
    fn record(&mut self, values: &[u32]) {
        for &value in values {
            assert!(self.seen.insert(value), "counter {value} handed out twice");
            if let Some(highest) = self.highest_before {
                assert!(
                    value > highest,
                    "counter {value} after {highest} in an earlier run"
                );
            }
        }
        self.this_run.extend_from_slice(values);
    }

    fn next_run(&mut self) {
        self.highest_before = self.this_run.iter().copied().max().max(self.highest_before);
        self.this_run.clear();
    }
}

fn connect(addr: SocketAddr) -> UdpTransport {
    let mut token = UdpTransport::connect(addr).unwrap();
    token.set_timeout(Duration::from_secs(5));
    token
}

/// A client's connection during the load, or `None` when the kill came first.
fn connect_under_load(addr: SocketAddr) -> Option<UdpTransport> {
    let mut token = UdpTransport::connect(addr).ok()?;
    token.set_timeout(Duration::from_millis(300));
    Some(token)
}

#[test]
fn sigkill_while_discoverable_credentials_are_made_loses_none_acknowledged() {
    let begun = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    assert!(common::vu2f(&store)
        .args([
            "token",
            "create",
            "rk",
            "--profile",
            "fido2",
            "--discoverable-limit",
            "100000"
        ])
        .status()
        .unwrap()
        .success());

    let mut acknowledged: Vec<Made> = Vec::new();
    let mut counters = Counters::default();
    let mut rng = rand::thread_rng();
    let mut made_under_load = 0;
    let mut signed_under_load = 0;
    for run in 0..KILLS {
        assert!(begun.elapsed() < BOUND, "run {run} began after {BOUND:?}");
        let mut server = common::Server::start(&store, &["rk"], "auto");
        let addr = server.addrs[0].1;

        // What the last run acknowledged survived its kill.
        if let Some(last) = run.checked_sub(1) {
            let rp = rp_of(last);
            let known: Vec<Made> = acknowledged
                .iter()
                .filter(|c| c.rp == rp)
                .cloned()
                .collect();
            let (found, values) = all_of_rp(&mut connect(addr), &rp, &known);
            counters.record(&values);
            for credential in &known {
                assert!(
                    found.contains(&credential.id),
                    "run {run}: a credential acknowledged for user {:02x?} of {rp} is gone",
                    credential.user
                );
            }
        }

        let stop = Arc::new(AtomicBool::new(false));
        let maker = {
            let stop = Arc::clone(&stop);
            let rp = rp_of(run);
            std::thread::spawn(move || {
                let mut made = Vec::new();
                let mut values = Vec::new();
                let Some(mut token) = connect_under_load(addr) else {
                    return (made, values);
                };
                for n in 0u32.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let user = [run.to_be_bytes().to_vec(), n.to_be_bytes().to_vec()].concat();
                    let Some(reply) = token.cbor(&make_request(&rp, &user)).ok() else {
                        break;
                    };
                    let arena = Arena::new();
                    let Some(reply) = success(&reply, &arena) else {
                        break;
                    };
                    let (credential, counter) = read_made(&rp, &user, &reply);
                    made.push(credential);
                    values.push(counter);
                }
                (made, values)
            })
        };
        let signer = {
            let stop = Arc::clone(&stop);
            // The credentials of the run before: they exist from the start of this one.
            let rp = rp_of(run.saturating_sub(1));
            let known: Vec<Made> = acknowledged
                .iter()
                .filter(|c| c.rp == rp)
                .cloned()
                .collect();
            std::thread::spawn(move || {
                let mut values = Vec::new();
                let Some(mut token) = connect_under_load(addr) else {
                    return values;
                };
                while !stop.load(Ordering::Relaxed) && !known.is_empty() {
                    let Some(reply) = token.cbor(&get_request(&rp)).ok() else {
                        break;
                    };
                    let arena = Arena::new();
                    let Some(reply) = success(&reply, &arena) else {
                        break;
                    };
                    // The newest may be one whose makeCredential reply the kill cut off: the
                    // token made it, the client never heard. Those it heard of are verified.
                    let (_, _, counter) = asserted(&reply, &known);
                    values.push(counter);
                }
                values
            })
        };
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..120)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let (made, made_values) = maker.join().unwrap();
        let signed_values = signer.join().unwrap();
        made_under_load += made.len();
        signed_under_load += signed_values.len();
        acknowledged.extend(made);
        counters.record(&made_values);
        counters.record(&signed_values);
        counters.next_run();
    }

    // At the end, every credential of every run is there.
    let mut server = common::Server::start(&store, &["rk"], "auto");
    let mut token = connect(server.addrs[0].1);
    for run in 0..KILLS {
        let rp = rp_of(run);
        let known: Vec<Made> = acknowledged
            .iter()
            .filter(|c| c.rp == rp)
            .cloned()
            .collect();
        let (found, values) = all_of_rp(&mut token, &rp, &known);
        counters.record(&values);
        assert!(
            known.iter().all(|c| found.contains(&c.id)),
            "{rp}: a credential is gone"
        );
    }
    server.kill();
    assert!(
        made_under_load > KILLS && signed_under_load > KILLS,
        "enough work under load to mean something: {made_under_load} made, {signed_under_load} signed"
    );
    eprintln!(
        "{KILLS} SIGKILLs: {made_under_load} discoverable credentials made and {signed_under_load} \
         assertions under load, all {} found again, {} counter values checked, in {:.1} s",
        acknowledged.len(),
        counters.seen.len(),
        begun.elapsed().as_secs_f64()
    );
}
