//! The CTAPHID state machine against the host expectations of PROTOCOLS.md section 3.4b
//! (FIDO U2F HID protocol v1.1; the conformance tests' cases).
use std::time::{Duration, Instant};

use vu2f::hid::host::{Reply, ReplyAssembler};
use vu2f::hid::{fragment, CtapHid, HidError, MessageHandler, Report, BROADCAST_CID, MAX_PAYLOAD};

/// Answers every MSG with its payload reversed, so replies are told apart from PING echoes.
struct Reverse;
impl MessageHandler for Reverse {
    fn handle_message(&mut self, apdu: &[u8], _now: Instant) -> Vec<u8> {
        apdu.iter().rev().copied().collect()
    }
}

const PING: u8 = 0x81;
const MSG: u8 = 0x83;
const LOCK: u8 = 0x84;
const INIT: u8 = 0x86;
const WINK: u8 = 0x88;

fn replies_on(cid: u32, reports: &[Report]) -> Vec<Reply> {
    let mut assembler = ReplyAssembler::new(cid);
    reports.iter().filter_map(|r| assembler.push(r)).collect()
}

fn send(
    hid: &mut CtapHid<Reverse>,
    cid: u32,
    cmd: u8,
    payload: &[u8],
    now: Instant,
) -> Vec<Report> {
    fragment(cid, cmd, payload)
        .iter()
        .flat_map(|r| hid.handle_report(r, now))
        .collect()
}

fn init(hid: &mut CtapHid<Reverse>, now: Instant) -> u32 {
    let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
    let reports = send(hid, BROADCAST_CID, INIT, &nonce, now);
    let [Reply::Message {
        command: INIT,
        payload,
    }] = &replies_on(BROADCAST_CID, &reports)[..]
    else {
        panic!("no INIT reply");
    };
    assert_eq!(payload.len(), 17);
    assert_eq!(&payload[..8], &nonce);
    assert_eq!(payload[12], 2, "CTAPHID protocol version");
    assert_eq!(payload[16] & 0x04, 0, "no CBOR capability claimed");
    assert_eq!(
        payload[16] & 0x03,
        0x03,
        "WINK and LOCK claimed and implemented"
    );
    u32::from_be_bytes(payload[8..12].try_into().unwrap())
}

fn error_on(cid: u32, reports: &[Report]) -> Option<HidError> {
    match replies_on(cid, reports)[..] {
        [Reply::Error(e)] => Some(e),
        _ => None,
    }
}

#[test]
fn init_allocates_distinct_channels_and_resyncs_keeping_the_id() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let a = init(&mut hid, now);
    let b = init(&mut hid, now);
    assert_ne!(a, b);
    assert!(![0, BROADCAST_CID].contains(&a));
    // Start a long message on a, then INIT on a: the message is dropped, the id kept.
    let first = fragment(a, PING, &[9; 200])[0];
    assert!(hid.handle_report(&first, now).is_empty());
    let reports = send(&mut hid, a, INIT, &[8; 8], now);
    let [Reply::Message {
        command: INIT,
        payload,
    }] = &replies_on(a, &reports)[..]
    else {
        panic!()
    };
    assert_eq!(u32::from_be_bytes(payload[8..12].try_into().unwrap()), a);
    assert!(hid.next_deadline().is_none(), "aborted");
}

#[test]
fn ping_and_msg_round_trip_any_length() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let cid = init(&mut hid, now);
    for len in [0, 1, 57, 58, 116, 117, 1000, MAX_PAYLOAD] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let replies = replies_on(cid, &send(&mut hid, cid, PING, &payload, now));
        assert_eq!(
            replies,
            vec![Reply::Message {
                command: PING,
                payload: payload.clone()
            }],
            "len {len}"
        );
        let replies = replies_on(cid, &send(&mut hid, cid, MSG, &payload, now));
        let reversed: Vec<u8> = payload.iter().rev().copied().collect();
        assert_eq!(
            replies,
            vec![Reply::Message {
                command: MSG,
                payload: reversed
            }]
        );
    }
}

#[test]
fn unknown_and_retired_commands_are_invalid_at_once() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let cid = init(&mut hid, now);
    for cmd in [0xBC /* SYNC */, 0x90 /* CBOR */, 0x91, 0xC1, 0xBF] {
        let first = fragment(cid, cmd, &[0; 100])[0];
        assert_eq!(
            error_on(cid, &hid.handle_report(&first, now)),
            Some(HidError::InvalidCommand),
            "{cmd:#x}"
        );
    }
    assert_eq!(
        error_on(cid, &send(&mut hid, cid, PING, &[1; 3], now)),
        None,
        "the token keeps working after errors"
    );
}

#[test]
fn channel_zero_and_broadcast_are_refused_for_everything_but_init() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    assert_eq!(
        error_on(0, &send(&mut hid, 0, INIT, &[0; 8], now)),
        Some(HidError::InvalidChannel)
    );
    assert_eq!(
        error_on(0, &send(&mut hid, 0, PING, &[1], now)),
        Some(HidError::InvalidChannel)
    );
    assert_eq!(
        error_on(
            BROADCAST_CID,
            &send(&mut hid, BROADCAST_CID, PING, &[1], now)
        ),
        Some(HidError::InvalidChannel)
    );
    assert_eq!(
        error_on(
            BROADCAST_CID,
            &send(&mut hid, BROADCAST_CID, INIT, &[0; 7], now)
        ),
        Some(HidError::InvalidLength),
        "INIT takes an 8-byte nonce"
    );
}

#[test]
fn a_channel_the_token_never_allocated_is_served() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let cid = init(&mut hid, now);
    for own in [cid ^ 1, 0x0000_0100] {
        let replies = replies_on(own, &send(&mut hid, own, PING, b"hi", now));
        assert_eq!(
            replies,
            vec![Reply::Message {
                command: PING,
                payload: b"hi".to_vec()
            }]
        );
    }
}

#[test]
fn sequence_errors_abort_the_message_and_nothing_more() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let cid = init(&mut hid, now);
    let reports = fragment(cid, PING, &[5; 200]);
    assert!(hid.handle_report(&reports[0], now).is_empty());
    // Skip seq 0: seq 1 arrives.
    let out = hid.handle_report(&reports[2], now);
    assert_eq!(error_on(cid, &out), Some(HidError::InvalidSequence));
    assert_eq!(out.len(), 1);
    // The rest of that message is stray now: ignored silently.
    assert!(hid.handle_report(&reports[3], now).is_empty());

    // A second init packet on the same channel mid-message.
    assert!(hid.handle_report(&reports[0], now).is_empty());
    let out = hid.handle_report(&fragment(cid, PING, &[1])[0], now);
    assert_eq!(error_on(cid, &out), Some(HidError::InvalidSequence));
    assert_eq!(out.len(), 1, "nothing more");
    // Still working.
    assert_eq!(
        replies_on(cid, &send(&mut hid, cid, PING, &[3], now)).len(),
        1
    );
}

#[test]
fn a_stray_continuation_is_ignored() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let cid = init(&mut hid, now);
    let cont = fragment(cid, PING, &[0; 100])[1];
    assert!(hid.handle_report(&cont, now).is_empty());
}

#[test]
fn another_channel_is_busy_while_a_message_is_in_progress() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let (a, b) = (init(&mut hid, now), init(&mut hid, now));
    let long = fragment(a, PING, &[7; 100]);
    assert!(hid.handle_report(&long[0], now).is_empty());
    assert_eq!(
        error_on(b, &send(&mut hid, b, PING, &[1], now)),
        Some(HidError::ChannelBusy)
    );
    // The first channel completes normally.
    let replies = replies_on(a, &hid.handle_report(&long[1], now));
    assert_eq!(
        replies,
        vec![Reply::Message {
            command: PING,
            payload: vec![7; 100]
        }]
    );
}

#[test]
fn a_stalled_message_times_out_after_500_ms() {
    let mut hid = CtapHid::new(Reverse);
    let t0 = Instant::now();
    let cid = init(&mut hid, t0);
    let long = fragment(cid, PING, &[7; 100]);
    hid.handle_report(&long[0], t0);
    assert_eq!(hid.next_deadline(), Some(t0 + Duration::from_millis(500)));
    assert!(hid.poll(t0 + Duration::from_millis(499)).is_empty());
    let out = hid.poll(t0 + Duration::from_millis(500));
    assert_eq!(error_on(cid, &out), Some(HidError::MessageTimeout));
    // A late continuation is stray now.
    assert!(hid
        .handle_report(&long[1], t0 + Duration::from_millis(600))
        .is_empty());
}

#[test]
fn lengths_above_7609_are_invalid() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let cid = init(&mut hid, now);
    let mut first = fragment(cid, PING, &[0; 10])[0];
    first[5..7].copy_from_slice(&7610u16.to_be_bytes());
    assert_eq!(
        error_on(cid, &hid.handle_report(&first, now)),
        Some(HidError::InvalidLength)
    );
}

#[test]
fn lock_holds_other_channels_off_for_its_duration_only() {
    let mut hid = CtapHid::new(Reverse);
    let t0 = Instant::now();
    let (a, b) = (init(&mut hid, t0), init(&mut hid, t0));
    assert_eq!(
        replies_on(a, &send(&mut hid, a, LOCK, &[2], t0)),
        vec![Reply::Message {
            command: LOCK,
            payload: vec![]
        }]
    );
    assert_eq!(
        error_on(b, &send(&mut hid, b, PING, &[1], t0)),
        Some(HidError::ChannelBusy)
    );
    // INIT is still answered, on the broadcast channel (a new host) and on b's own (a resync);
    // the channel it hands out is as locked out as b.
    let c = init(&mut hid, t0);
    let resync = send(&mut hid, b, INIT, &[9; 8], t0);
    assert!(
        matches!(&replies_on(b, &resync)[..], [Reply::Message { command: INIT, payload }] if payload[..8] == [9; 8]),
        "{resync:?}"
    );
    assert_eq!(
        error_on(c, &send(&mut hid, c, PING, &[1], t0)),
        Some(HidError::ChannelBusy)
    );
    assert_eq!(
        replies_on(a, &send(&mut hid, a, PING, &[1], t0)).len(),
        1,
        "the holder is served"
    );
    let later = t0 + Duration::from_secs(2);
    assert_eq!(
        replies_on(b, &send(&mut hid, b, PING, &[1], later)).len(),
        1,
        "expired"
    );
    // Release with 0; more than 10 seconds is refused.
    send(&mut hid, a, LOCK, &[5], later);
    send(&mut hid, a, LOCK, &[0], later);
    assert_eq!(
        replies_on(b, &send(&mut hid, b, PING, &[1], later)).len(),
        1,
        "released"
    );
    assert_eq!(
        error_on(a, &send(&mut hid, a, LOCK, &[11], later)),
        Some(HidError::InvalidParameter)
    );
}

#[test]
fn wink_and_65_byte_reports() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let cid = init(&mut hid, now);
    assert_eq!(
        replies_on(cid, &send(&mut hid, cid, WINK, &[], now)),
        vec![Reply::Message {
            command: WINK,
            payload: vec![]
        }]
    );
    assert_eq!(hid.winks(), 1);
    let mut with_id = vec![0u8];
    with_id.extend_from_slice(&fragment(cid, PING, b"x")[0]);
    let replies = replies_on(cid, &hid.handle_report(&with_id, now));
    assert_eq!(
        replies,
        vec![Reply::Message {
            command: PING,
            payload: b"x".to_vec()
        }]
    );
    assert_eq!(
        error_on(cid, &hid.handle_report(&with_id[1..40], now)),
        Some(HidError::InvalidLength)
    );
}

/// A replug (`vu2f replug`): the channels allocated before answer INVALID_CHANNEL, to INIT too,
/// and the next INIT hands out one never seen; a channel the host picked itself stays served.
#[test]
fn channels_allocated_before_a_power_cycle_are_invalid_after_it() {
    let mut hid = CtapHid::new(Reverse);
    let now = Instant::now();
    let old: Vec<u32> = (0..3).map(|_| init(&mut hid, now)).collect();
    hid.power_cycle();
    for &cid in &old {
        for (cmd, payload) in [(PING, &b"hi"[..]), (MSG, &[1, 2][..]), (INIT, &[8; 8][..])] {
            assert_eq!(
                error_on(cid, &send(&mut hid, cid, cmd, payload, now)),
                Some(HidError::InvalidChannel),
                "command {cmd:#04x} on {cid:#010x}"
            );
        }
    }
    let fresh = init(&mut hid, now);
    assert!(!old.contains(&fresh), "{fresh:#010x} was handed out before");
    for cid in [fresh, fresh ^ 1, 0x0000_0100] {
        assert_eq!(
            replies_on(cid, &send(&mut hid, cid, PING, b"hi", now)),
            vec![Reply::Message {
                command: PING,
                payload: b"hi".to_vec()
            }]
        );
    }
    hid.power_cycle();
    assert_eq!(
        error_on(fresh, &send(&mut hid, fresh, PING, b"hi", now)),
        Some(HidError::InvalidChannel),
        "the second power cycle retires the channels of the first's power-up"
    );
}

/// A replug drops the message being reassembled (no MSG_TIMEOUT follows, its continuation is
/// stray) and releases a LOCK.
#[test]
fn a_power_cycle_forgets_a_partial_message_and_a_lock() {
    let mut hid = CtapHid::new(Reverse);
    let t0 = Instant::now();
    let a = init(&mut hid, t0);
    let long = fragment(a, PING, &[7; 100]);
    assert!(hid.handle_report(&long[0], t0).is_empty());
    hid.power_cycle();
    assert_eq!(hid.next_deadline(), None);
    assert!(hid.poll(t0 + Duration::from_secs(1)).is_empty());
    assert!(hid.handle_report(&long[1], t0).is_empty());

    let b = init(&mut hid, t0);
    assert_eq!(replies_on(b, &send(&mut hid, b, LOCK, &[10], t0)).len(), 1);
    hid.power_cycle();
    let c = init(&mut hid, t0);
    assert_eq!(
        replies_on(c, &send(&mut hid, c, PING, &[1], t0)),
        vec![Reply::Message {
            command: PING,
            payload: vec![1]
        }],
        "no channel holds the lock"
    );
}
