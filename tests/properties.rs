//! Property tests: host input never panics a parser, and framing loses nothing (`DESIGN.md`,
//! "Host input never panics").
mod common;

use std::time::Instant;

use proptest::prelude::*;
use vu2f::ctap2::cbor::{self, Parameters, Value};
use vu2f::hid::host::{Reply, ReplyAssembler};
use vu2f::hid::{fragment, CtapHid, MessageHandler, BROADCAST_CID, MAX_PAYLOAD};
use vu2f::u2f::{Apdu, PresencePolicy};

struct Echo;
impl MessageHandler for Echo {
    fn handle_message(&mut self, apdu: &[u8], _now: Instant) -> Vec<u8> {
        apdu.to_vec()
    }
}

/// Every length from 0 to 7609: fragmented by the host, reassembled by the token, answered,
/// reassembled by the host, unchanged.
#[test]
fn every_message_length_survives_fragmentation_both_ways() {
    let mut hid = CtapHid::new(Echo);
    let now = Instant::now();
    let cid = 0x0102_0304;
    for len in 0..=MAX_PAYLOAD {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
        let mut host = ReplyAssembler::new(cid);
        let mut got = None;
        for report in fragment(cid, 0x83, &payload) {
            for reply in hid.handle_report(&report, now) {
                got = got.or(host.push(&reply));
            }
        }
        assert_eq!(
            got,
            Some(Reply::Message {
                command: 0x83,
                payload
            }),
            "length {len}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn apdu_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Apdu::try_from(&bytes[..]);
    }

    #[test]
    fn the_engine_answers_any_bytes_with_a_status_word(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        thread_local! {
            static TOKEN: std::cell::RefCell<(tempfile::TempDir, vu2f::u2f::Authenticator)> = {
                let (dir, store) = common::store_with(&["p"]);
                let engine = common::engine(&store, "p", PresencePolicy::Auto);
                std::cell::RefCell::new((dir, engine))
            };
        }
        let response = TOKEN.with(|t| t.borrow_mut().1.process(&bytes, Instant::now()));
        prop_assert!(response.len() >= 2);
    }

    #[test]
    fn random_report_sequences_never_panic_the_framing(
        reports in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..70), 0u64..2000, prop_oneof![Just(0x0102_0304u32), Just(BROADCAST_CID), any::<u32>()]),
            1..40,
        )
    ) {
        let mut hid = CtapHid::new(Echo);
        let start = Instant::now();
        for (mut bytes, millis, cid) in reports {
            if bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&cid.to_be_bytes());
            }
            let now = start + std::time::Duration::from_millis(millis);
            for reply in hid.handle_report(&bytes, now).into_iter().chain(hid.poll(now)) {
                prop_assert_eq!(reply.len(), 64);
            }
        }
    }

    /// Any bytes: the CTAP2 request decoder answers a map or a status, never panics.
    #[test]
    fn the_ctap2_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Parameters::decode(&bytes, &vu2f::ctap2::cbor::Arena::new());
    }

    /// Whatever order a map's integer and text keys come in, the encoding is the same, it decodes
    /// back to the same members, and every map in it is in canonical key order.
    #[test]
    fn ctap2_encoding_is_canonical_whatever_the_order_in(
        numbers in proptest::collection::btree_set(any::<i64>(), 0..8),
        words in proptest::collection::btree_set("[a-z]{0,12}", 0..8),
        seed in any::<u64>(),
    ) {
        let keys: Vec<Value> = numbers
            .iter()
            .map(|&k| Value::Integer(k.into()))
            .chain(words.iter().cloned().map(Value::Text))
            .collect();
        let members: Vec<(Value, Value)> = keys.iter().cloned().map(|k| (k, Value::Bool(true))).collect();
        let mut shuffled = members.clone();
        let len = shuffled.len().max(1) as u64;
        shuffled.rotate_left((seed % len) as usize);
        shuffled.reverse();
        let encoded = cbor::encode(&Value::Map(members));
        prop_assert_eq!(&encoded, &cbor::encode(&Value::Map(shuffled)));
        let decoded: Value = ciborium::de::from_reader(&encoded[..]).unwrap();
        let Value::Map(decoded) = decoded else { panic!("not a map") };
        let order: Vec<(u8, usize, Vec<u8>)> = decoded
            .iter()
            .map(|(k, _)| {
                let e = cbor::encode(k);
                (e[0] >> 5, e.len(), e)
            })
            .collect();
        prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "{:?}", order);
        prop_assert_eq!(decoded.len(), keys.len());
    }
}
