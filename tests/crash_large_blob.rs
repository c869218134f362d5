//! An acknowledged large-blob write survives `kill -9` (CTAP 2.1 §6.10: the array is committed
//! when its last fragment comes; DESIGN.md, "FIDO2": everything a host may count on survives
//! `kill -9`). `serve --udp` is killed with SIGKILL 60 times while a host writes new arrays
//! (authenticatorLargeBlobs set, three fragments each, each array of random bytes with its
//! trailer) one after another, each kill 0 to 15 ms after the writes began. After every restart
//! the token's array is whole (its trailer matches) and is the last one the host saw
//! acknowledged, or the one whose last fragment the kill cut off; never an older one, never a
//! mix.
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use ring::digest::{digest, SHA256};
use vu2f::ctap2::cbor::{self, uint_map, Arena, Parameters, Value};
use vu2f::transport::UdpTransport;

const KILLS: usize = 60;
const FRAGMENT: usize = 1000;
/// The whole test must end within this, restarts included.
const BOUND: Duration = Duration::from_secs(600);

fn int(i: usize) -> Value {
    Value::Integer((i as u64).into())
}

/// A serialized array: a CBOR byte string of `body` in a one-entry array, and its trailer.
fn serialized(body: &[u8]) -> Vec<u8> {
    let array = cbor::encode(&Value::Array(vec![Value::Bytes(body.to_vec())]));
    [&array[..], &digest(&SHA256, &array).as_ref()[..16]].concat()
}

fn connect(addr: SocketAddr, timeout: Duration) -> Option<UdpTransport> {
    let mut token = UdpTransport::connect(addr).ok()?;
    token.set_timeout(timeout);
    Some(token)
}

fn large_blobs(token: &mut UdpTransport, params: Vec<(u64, Value)>) -> Option<Vec<u8>> {
    token
        .cbor(&[vec![0x0C], cbor::encode(&uint_map(params))].concat())
        .ok()
}

/// The whole serialized array, read in fragments.
fn read(token: &mut UdpTransport) -> Vec<u8> {
    let mut array = Vec::new();
    loop {
        let reply = large_blobs(token, vec![(1, int(FRAGMENT)), (3, int(array.len()))]).unwrap();
        assert_eq!(reply[0], 0, "get: {reply:02x?}");
        let arena = Arena::new();
        let params = Parameters::decode(&reply[1..], &arena).unwrap();
        let fragment = cbor::bytes(params.get(1).unwrap()).unwrap();
        array.extend_from_slice(fragment);
        if fragment.len() < FRAGMENT {
            return array;
        }
    }
}

/// Writes `array` in fragments: `Some(true)` acknowledged, `None` when the token stopped
/// answering at the last fragment (the write may or may not have committed), `Some(false)`
/// when it stopped before (nothing can have committed).
fn write(token: &mut UdpTransport, array: &[u8]) -> Option<bool> {
    let chunks: Vec<&[u8]> = array.chunks(FRAGMENT).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let offset = index * FRAGMENT;
        let mut params = vec![(2, Value::Bytes(chunk.to_vec())), (3, int(offset))];
        if offset == 0 {
            params.push((4, int(array.len())));
        }
        match large_blobs(token, params) {
            Some(reply) => assert_eq!(reply, [0], "set at {offset}"),
            None if index + 1 == chunks.len() => return None,
            None => return Some(false),
        }
    }
    Some(true)
}

/// What a run's host saw: the last acknowledged array, and the one cut off at its last
/// fragment.
struct Seen {
    acknowledged: Vec<u8>,
    in_flight: Option<Vec<u8>>,
    written: usize,
}

fn writer(addr: SocketAddr, acknowledged: Vec<u8>, stop: &AtomicBool) -> Seen {
    let mut seen = Seen {
        acknowledged,
        in_flight: None,
        written: 0,
    };
    let Some(mut token) = connect(addr, Duration::from_millis(300)) else {
        return seen;
    };
    let mut rng = rand::thread_rng();
    while !stop.load(Ordering::Relaxed) {
        let mut body = vec![0u8; 2400];
        rng.fill_bytes(&mut body);
        let array = serialized(&body);
        match write(&mut token, &array) {
            Some(true) => {
                seen.acknowledged = array;
                seen.written += 1;
            }
            None => {
                seen.in_flight = Some(array);
                return seen;
            }
            Some(false) => return seen,
        }
    }
    seen
}

#[test]
fn sigkill_during_large_blob_writes_keeps_the_last_acknowledged_array() {
    let begun = Instant::now();
    let (dir, store) = common::store_with(&["blobs"]);
    drop(store);
    let store = dir.path().join("store");
    let initial = hex::decode("8076be8b528d0075f7aae98d6fa57a6d3c").unwrap();
    let mut last = Seen {
        acknowledged: initial,
        in_flight: None,
        written: 0,
    };
    let mut rng = rand::thread_rng();
    let (mut written, mut cut_off, mut landed_in_flight) = (0, 0, 0);
    for run in 0..KILLS {
        assert!(begun.elapsed() < BOUND, "run {run} began after {BOUND:?}");
        let mut server = common::Server::start(&store, &["blobs"], "auto");
        let addr = server.addr("blobs");
        let found = read(&mut connect(addr, Duration::from_secs(5)).unwrap());
        if last.in_flight.as_ref() == Some(&found) {
            landed_in_flight += 1;
        } else {
            assert!(
                found == last.acknowledged,
                "run {run}: neither the acknowledged array nor the one cut off"
            );
        }
        let acknowledged = found;

        let stop = Arc::new(AtomicBool::new(false));
        let host = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || writer(addr, acknowledged, &stop))
        };
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..15_000)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        last = host.join().unwrap();
        written += last.written;
        cut_off += usize::from(last.in_flight.is_some());
    }
    eprintln!(
        "{KILLS} kills: {written} arrays acknowledged, {cut_off} cut off at their last \
         fragment, {landed_in_flight} of those found committed"
    );
    assert!(
        written >= KILLS && cut_off >= 5,
        "the kills came during writes: {written} acknowledged, {cut_off} cut off"
    );
}
