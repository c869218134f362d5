//! CTAPHID for CTAP2 (CTAP 2.1 section 11.2.9; CTAP2.md section 1): CBOR requests, KEEPALIVE every
//! 100 ms while one waits for the user, CANCEL on the waiting channel, and the busy rules around
//! them, driven by the clock alone (sans-IO), against a scripted handler.
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use vu2f::hid::host::{Reply, ReplyAssembler};
use vu2f::hid::BROADCAST_CID;
use vu2f::hid::{fragment, CborStep, CtapHid, HidError, KeepaliveStatus, MessageHandler, Report};

const PING: u8 = 0x81;
const INIT: u8 = 0x86;
const CBOR: u8 = 0x90;
const CANCEL: u8 = 0x91;
const KEEPALIVE: u8 = 0xBB;

/// Command 0x04 answers at once; any other waits for a touch that comes `touch_after` later.
struct Scripted {
    touch_after: Duration,
    touched_at: Option<Instant>,
    cancelled: usize,
    /// How many times the framing passed a power cycle on.
    power_cycles: Rc<Cell<usize>>,
}

impl Scripted {
    fn new(touch_after: Duration) -> Self {
        Self {
            touch_after,
            touched_at: None,
            cancelled: 0,
            power_cycles: Rc::default(),
        }
    }
}

impl MessageHandler for Scripted {
    fn handle_message(&mut self, _apdu: &[u8], _now: Instant) -> Vec<u8> {
        vec![0x90, 0x00]
    }

    fn speaks_cbor(&self) -> bool {
        true
    }

    fn start_cbor(&mut self, request: &[u8], now: Instant) -> CborStep {
        if request[0] == 0x04 {
            return CborStep::Done(vec![0x00, 0xA0]);
        }
        self.touched_at = Some(now + self.touch_after);
        self.poll_cbor(now)
    }

    fn poll_cbor(&mut self, now: Instant) -> CborStep {
        match self.touched_at {
            Some(at) if now >= at => {
                self.touched_at = None;
                CborStep::Done(vec![0x00, 0xA1, 0x01, 0x02])
            }
            _ => CborStep::Waiting(KeepaliveStatus::UpNeeded),
        }
    }

    fn cancel_cbor(&mut self) -> Vec<u8> {
        self.touched_at = None;
        self.cancelled += 1;
        vec![0x2D]
    }

    fn power_cycle(&mut self) {
        self.touched_at = None;
        self.power_cycles.set(self.power_cycles.get() + 1);
    }
}

fn send<H: MessageHandler>(
    hid: &mut CtapHid<H>,
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

fn replies_on(cid: u32, reports: &[Report]) -> Vec<Reply> {
    let mut assembler = ReplyAssembler::new(cid);
    reports.iter().filter_map(|r| assembler.push(r)).collect()
}

/// INIT on the broadcast channel: the new channel and the capability byte.
fn init<H: MessageHandler>(hid: &mut CtapHid<H>, now: Instant) -> (u32, u8) {
    let reports = send(hid, BROADCAST_CID, INIT, &[9; 8], now);
    let [Reply::Message { payload, .. }] = &replies_on(BROADCAST_CID, &reports)[..] else {
        panic!("no INIT reply: {reports:?}");
    };
    (
        u32::from_be_bytes(payload[8..12].try_into().unwrap()),
        payload[16],
    )
}

fn keepalive(status: KeepaliveStatus) -> Reply {
    Reply::Message {
        command: KEEPALIVE,
        payload: vec![status as u8],
    }
}

fn cbor_reply(payload: &[u8]) -> Reply {
    Reply::Message {
        command: CBOR,
        payload: payload.to_vec(),
    }
}

#[test]
fn a_u2f_token_refuses_cbor_and_does_not_claim_it() {
    struct U2fOnly;
    impl MessageHandler for U2fOnly {
        fn handle_message(&mut self, _apdu: &[u8], _now: Instant) -> Vec<u8> {
            vec![0x90, 0x00]
        }
    }
    let mut hid = CtapHid::new(U2fOnly);
    let now = Instant::now();
    let (cid, capabilities) = init(&mut hid, now);
    assert_eq!(capabilities & 0x04, 0);
    assert_eq!(
        replies_on(cid, &send(&mut hid, cid, CBOR, &[0x04], now)),
        [Reply::Error(HidError::InvalidCommand)]
    );
}

#[test]
fn a_cbor_request_is_answered_on_its_channel() {
    let mut hid = CtapHid::new(Scripted::new(Duration::ZERO));
    let now = Instant::now();
    let (cid, capabilities) = init(&mut hid, now);
    assert_eq!(capabilities & 0x04, 0x04, "the CBOR capability");
    assert_eq!(
        replies_on(cid, &send(&mut hid, cid, CBOR, &[0x04], now)),
        [cbor_reply(&[0x00, 0xA0])]
    );
    assert_eq!(
        replies_on(cid, &send(&mut hid, cid, CBOR, &[], now)),
        [Reply::Error(HidError::InvalidLength)],
        "a CBOR request has at least its command byte"
    );
}

/// The touch comes 350 ms after the request: KEEPALIVE UPNEEDED at once and every 100 ms, then
/// the reply; nothing more after it.
#[test]
fn a_waiting_request_sends_keepalives_every_100_ms_until_its_reply() {
    let mut hid = CtapHid::new(Scripted::new(Duration::from_millis(350)));
    let t0 = Instant::now();
    let (cid, _) = init(&mut hid, t0);
    let mut seen = replies_on(cid, &send(&mut hid, cid, CBOR, &[0x01, 0xA0], t0));
    let mut polls = Vec::new();
    while let Some(deadline) = hid.next_deadline() {
        polls.push(deadline.duration_since(t0).as_millis());
        seen.extend(replies_on(cid, &hid.poll(deadline)));
    }
    let up = keepalive(KeepaliveStatus::UpNeeded);
    assert_eq!(
        seen,
        [
            up.clone(),
            up.clone(),
            up.clone(),
            up,
            cbor_reply(&[0x00, 0xA1, 0x01, 0x02])
        ]
    );
    assert_eq!(polls, [100, 200, 300, 400]);
}

/// While a request waits: INIT is answered on other channels, their CANCEL ignored, anything else
/// CHANNEL_BUSY; CANCEL on the waiting channel ends it with KEEPALIVE_CANCEL at once.
#[test]
fn cancel_ends_the_waiting_request_and_other_channels_are_busy() {
    let mut hid = CtapHid::new(Scripted::new(Duration::from_secs(30)));
    let t0 = Instant::now();
    let (a, _) = init(&mut hid, t0);
    send(&mut hid, a, CBOR, &[0x01, 0xA0], t0);
    let (b, _) = init(&mut hid, t0);
    assert_eq!(
        replies_on(b, &send(&mut hid, b, PING, &[1], t0)),
        [Reply::Error(HidError::ChannelBusy)]
    );
    assert_eq!(
        replies_on(b, &send(&mut hid, b, CBOR, &[0x04], t0)),
        [Reply::Error(HidError::ChannelBusy)]
    );
    assert!(
        send(&mut hid, b, CANCEL, &[], t0).is_empty(),
        "not b's request"
    );
    let t1 = t0 + Duration::from_millis(150);
    assert_eq!(
        replies_on(a, &hid.poll(t1)),
        [keepalive(KeepaliveStatus::UpNeeded)],
        "still waiting"
    );
    assert_eq!(
        replies_on(a, &send(&mut hid, a, CANCEL, &[], t1)),
        [cbor_reply(&[0x2D])]
    );
    assert_eq!(hid.next_deadline(), None, "nothing waits any more");
    assert!(
        send(&mut hid, a, CANCEL, &[], t1).is_empty(),
        "nothing to cancel"
    );
    assert_eq!(
        replies_on(b, &send(&mut hid, b, CBOR, &[0x04], t1)),
        [cbor_reply(&[0x00, 0xA0])],
        "the token is free again"
    );
}

/// INIT on the waiting channel abandons the request: the handler is told, no reply follows.
#[test]
fn init_on_the_waiting_channel_abandons_the_request() {
    let mut hid = CtapHid::new(Scripted::new(Duration::from_secs(30)));
    let t0 = Instant::now();
    let (a, _) = init(&mut hid, t0);
    send(&mut hid, a, CBOR, &[0x01, 0xA0], t0);
    let resync = send(&mut hid, a, INIT, &[7; 8], t0);
    assert!(matches!(
        &replies_on(a, &resync)[..],
        [Reply::Message { command: INIT, .. }]
    ));
    assert_eq!(hid.next_deadline(), None);
    assert!(hid.poll(t0 + Duration::from_secs(1)).is_empty());
}

/// A replug while a request waits: it is abandoned without a reply (none is owed after a power
/// cycle), the handler's own state is reset, and the old channel is invalid; a new channel is
/// not busy.
#[test]
fn a_power_cycle_abandons_the_waiting_request_without_a_reply() {
    let scripted = Scripted::new(Duration::from_millis(350));
    let power_cycles = Rc::clone(&scripted.power_cycles);
    let mut hid = CtapHid::new(scripted);
    let t0 = Instant::now();
    let (a, _) = init(&mut hid, t0);
    send(&mut hid, a, CBOR, &[0x01, 0xA0], t0);
    assert!(hid.next_deadline().is_some(), "the request waits");
    hid.power_cycle();
    assert_eq!(power_cycles.get(), 1, "the handler is told");
    assert_eq!(hid.next_deadline(), None, "nothing waits any more");
    assert!(hid.poll(t0 + Duration::from_secs(1)).is_empty(), "no reply");
    assert_eq!(
        replies_on(a, &send(&mut hid, a, CANCEL, &[], t0)),
        [Reply::Error(HidError::InvalidChannel)],
        "nothing to cancel, and the channel is of before"
    );
    let (b, _) = init(&mut hid, t0);
    assert_eq!(
        replies_on(b, &send(&mut hid, b, CBOR, &[0x04], t0)),
        [cbor_reply(&[0x00, 0xA0])],
        "the token is free"
    );
}

/// The automation API's transport faults (`vu2f::u2f::faults`): BUSY answers the next request
/// CHANNEL_BUSY, and a delay holds the next one back 250 ms, with KEEPALIVE PROCESSING every
/// 100 ms for CBOR and silence for MSG; each spoils one request.
#[test]
fn transport_faults_answer_busy_or_late_once() {
    struct Faulty {
        inner: Scripted,
        faults: Vec<vu2f::u2f::TransportFault>,
    }
    impl MessageHandler for Faulty {
        fn handle_message(&mut self, apdu: &[u8], now: Instant) -> Vec<u8> {
            self.inner.handle_message(apdu, now)
        }
        fn speaks_cbor(&self) -> bool {
            true
        }
        fn start_cbor(&mut self, request: &[u8], now: Instant) -> CborStep {
            self.inner.start_cbor(request, now)
        }
        fn take_transport_fault(&mut self) -> Option<vu2f::u2f::TransportFault> {
            self.faults.pop()
        }
    }
    const MSG: u8 = 0x83;
    let delay = vu2f::u2f::TransportFault::Delay(Duration::from_millis(250));
    let mut hid = CtapHid::new(Faulty {
        inner: Scripted::new(Duration::ZERO),
        faults: vec![delay, delay, vu2f::u2f::TransportFault::Busy],
    });
    let t0 = Instant::now();
    let (cid, _) = init(&mut hid, t0);
    assert_eq!(
        replies_on(cid, &send(&mut hid, cid, PING, &[1], t0)),
        [Reply::Message {
            command: PING,
            payload: vec![1]
        }],
        "PING is not spoilt"
    );
    assert_eq!(
        replies_on(cid, &send(&mut hid, cid, CBOR, &[0x04], t0)),
        [Reply::Error(HidError::ChannelBusy)]
    );
    let mut seen = replies_on(cid, &send(&mut hid, cid, CBOR, &[0x04], t0));
    let mut polls = Vec::new();
    while let Some(deadline) = hid.next_deadline() {
        polls.push(deadline.duration_since(t0).as_millis());
        seen.extend(replies_on(cid, &hid.poll(deadline)));
    }
    let processing = keepalive(KeepaliveStatus::Processing);
    assert_eq!(
        seen,
        [
            processing.clone(),
            processing.clone(),
            processing,
            cbor_reply(&[0x00, 0xA0])
        ]
    );
    assert_eq!(polls, [100, 200, 250]);
    let t1 = t0 + Duration::from_secs(1);
    assert!(
        send(&mut hid, cid, MSG, &[0, 3, 0, 0], t1).is_empty(),
        "held"
    );
    let deadline = hid.next_deadline().unwrap();
    assert_eq!(deadline.duration_since(t1).as_millis(), 250);
    assert_eq!(
        replies_on(cid, &hid.poll(deadline)),
        [Reply::Message {
            command: MSG,
            payload: vec![0x90, 0x00]
        }]
    );
    assert_eq!(
        replies_on(cid, &send(&mut hid, cid, CBOR, &[0x04], t1)),
        [cbor_reply(&[0x00, 0xA0])],
        "disarmed"
    );
}
