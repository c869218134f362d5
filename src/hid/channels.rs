//! The CTAPHID channel state machine (FIDO U2F HID protocol v1.1 sections 2.5 and 4; CTAP 2.1
//! section 11.2; the host expectations of PROTOCOLS.md section 3.4b and CTAP2.md section 1).
//!
//! One transaction at a time: while a message is being reassembled on one channel, an init packet
//! from another channel gets `CHANNEL_BUSY` at once, and the first channel runs to its own end or
//! timeout. INIT is answered at once on any channel, even while another channel holds LOCK; on an
//! allocated channel it aborts that channel's message and keeps its id. A message whose next
//! packet is more than 500 ms late gets `MSG_TIMEOUT`.
//!
//! A CTAP2 request (CBOR) may wait for the user. Waiting is state, not a blocked thread: the
//! request is pending on its channel, and [`CtapHid::poll`], called at [`CtapHid::next_deadline`],
//! asks the handler again and sends a KEEPALIVE every 100 ms until the reply:
//!
//! ```text
//!  host  CBOR(cid A) ──►                       CANCEL(cid A) ──►
//!  token            ◄── KEEPALIVE 02 ◄── KEEPALIVE 02 …        ◄── CBOR [2D] (KEEPALIVE_CANCEL)
//!  other channels:  INIT answered; CANCEL ignored; anything else CHANNEL_BUSY
//! ```
//! INIT on the waiting channel abandons the request. A token that speaks no CTAP2 answers CBOR
//! with `INVALID_CMD` and does not set the CBOR capability.
//!
//! [`CtapHid::power_cycle`] is the token unplugged and plugged in again (`vu2f replug`): the
//! channels it allocated before answer `INVALID_CHANNEL` from then on, and nothing of a message,
//! a LOCK or a waiting request survives it.
use std::time::Instant;

use super::packet::{error_report, fragment, MalformedReport, Packet, Report};
use super::wire::{
    Command, HidError, KeepaliveStatus, BROADCAST_CID, CAPABILITY_CBOR, CAPABILITY_LOCK,
    CAPABILITY_WINK, KEEPALIVE_INTERVAL, MAX_LOCK_SECONDS, MAX_PAYLOAD, MESSAGE_TIMEOUT,
    PROTOCOL_VERSION,
};
use crate::u2f::TransportFault;

/// Where a CTAP2 request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CborStep {
    /// Finished: the reply payload (status byte ‖ CBOR).
    Done(Vec<u8>),
    /// Still waiting; the KEEPALIVE status to send meanwhile.
    Waiting(KeepaliveStatus),
}

/// What the framing hands complete messages to: the U2F engine, and the CTAP2 one beside it.
pub trait MessageHandler {
    /// Processes a MSG payload (an APDU) and returns the reply payload (data ‖ SW).
    fn handle_message(&mut self, apdu: &[u8], now: Instant) -> Vec<u8>;
    /// Blinks (WINK). Nothing to do for a token without a light.
    fn wink(&mut self) {}
    /// Whether the token speaks CTAP2 (CBOR requests, and the CBOR capability in INIT).
    fn speaks_cbor(&self) -> bool {
        false
    }
    /// Starts a CBOR request (command byte ‖ CBOR). Only called when [`Self::speaks_cbor`].
    fn start_cbor(&mut self, _request: &[u8], _now: Instant) -> CborStep {
        CborStep::Done(vec![HidError::InvalidCommand as u8])
    }
    /// Advances the request that [`Self::start_cbor`] left waiting.
    fn poll_cbor(&mut self, _now: Instant) -> CborStep {
        CborStep::Done(vec![HidError::Other as u8])
    }
    /// Ends the waiting request at the host's CANCEL; returns its reply payload
    /// (`CTAP2_ERR_KEEPALIVE_CANCEL`). Also called, its reply dropped, when INIT abandons it.
    fn cancel_cbor(&mut self) -> Vec<u8> {
        vec![HidError::Other as u8]
    }
    /// The token lost power and got it back: forget everything volatile, as at power-up (a
    /// waiting request without a reply, the touch). Durable state (keys, counter) stays.
    /// Whatever a later feature keeps per power-up resets here too: CTAP 2.1's clientPIN its
    /// pinUvAuthToken and its retries per power-up. Nothing to do for a token without state.
    fn power_cycle(&mut self) {}
    /// The transport fault armed for the next MSG or CBOR request (`crate::u2f::faults`), taken
    /// (disarmed). None for a handler without faults.
    fn take_transport_fault(&mut self) -> Option<TransportFault> {
        None
    }
}

impl MessageHandler for crate::u2f::Authenticator {
    fn handle_message(&mut self, apdu: &[u8], now: Instant) -> Vec<u8> {
        self.process(apdu, now)
    }
    fn power_cycle(&mut self) {
        crate::u2f::Authenticator::power_cycle(self);
    }
    fn take_transport_fault(&mut self) -> Option<TransportFault> {
        self.faults_mut().take_transport()
    }
}

/// A token with both engines: MSG to U2F, CBOR to CTAP2 when its profile is `fido2`.
impl MessageHandler for crate::ctap2::Authenticator {
    fn handle_message(&mut self, apdu: &[u8], now: Instant) -> Vec<u8> {
        self.u2f_mut().process(apdu, now)
    }
    fn speaks_cbor(&self) -> bool {
        self.speaks_ctap2()
    }
    fn start_cbor(&mut self, request: &[u8], now: Instant) -> CborStep {
        self.start(request, now).into()
    }
    fn poll_cbor(&mut self, now: Instant) -> CborStep {
        self.poll(now).into()
    }
    fn cancel_cbor(&mut self) -> Vec<u8> {
        self.cancel()
    }
    fn power_cycle(&mut self) {
        crate::ctap2::Authenticator::power_cycle(self);
    }
    fn take_transport_fault(&mut self) -> Option<TransportFault> {
        self.u2f_mut().faults_mut().take_transport()
    }
}

impl From<crate::ctap2::Step> for CborStep {
    fn from(step: crate::ctap2::Step) -> Self {
        match step {
            crate::ctap2::Step::Done(reply) => Self::Done(reply),
            crate::ctap2::Step::WaitingForUser => Self::Waiting(KeepaliveStatus::UpNeeded),
        }
    }
}

/// A request waiting on a channel: a CTAP2 one the handler works on, or one a delay fault holds
/// back.
struct Pending {
    cid: u32,
    next_keepalive: Instant,
    deferred: Option<Deferred>,
}

/// A MSG or CBOR request held back by a delay fault, run at `until`.
struct Deferred {
    command: Command,
    payload: Vec<u8>,
    until: Instant,
}

/// A message being reassembled.
struct Assembly {
    cid: u32,
    command: Command,
    expected_len: usize,
    payload: Vec<u8>,
    next_seq: u8,
    deadline: Instant,
}

/// A LOCK held by one channel.
struct Lock {
    cid: u32,
    until: Instant,
}

/// Allocated channel ids are the allocation's number times this odd constant (modulo 2^32).
const CID_STEP: u32 = 0x9E37_79B1;
/// The inverse of [`CID_STEP`] modulo 2^32, which turns a channel id back into its allocation's
/// number. Newton's iteration: an odd number is its own inverse to 3 bits, each step doubles them.
const CID_STEP_INVERSE: u32 = {
    let mut inverse = CID_STEP;
    let mut step = 0;
    while step < 4 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(CID_STEP.wrapping_mul(inverse)));
        step += 1;
    }
    inverse
};
const _: () = assert!(CID_STEP.wrapping_mul(CID_STEP_INVERSE) == 1);

/// Ids never allocated: the reserved channel 0, the broadcast channel, and their neighbours, so
/// that a host's own `cid ^ 1` of an allocated channel is never 0 or the broadcast channel.
fn never_allocated(cid: u32) -> bool {
    matches!(cid, 0 | 1 | 0xFFFF_FFFE | BROADCAST_CID)
}

/// One token's CTAPHID endpoint.
pub struct CtapHid<H> {
    handler: H,
    /// How many channel ids were handed out (the number of the last one).
    allocations: u32,
    /// The allocations up to this number were made before the last power cycle: their channels
    /// are no longer valid.
    retired: u32,
    assembly: Option<Assembly>,
    pending: Option<Pending>,
    lock: Option<Lock>,
    winks: u64,
}

impl<H: MessageHandler> CtapHid<H> {
    /// The framing over a message handler.
    pub fn new(handler: H) -> Self {
        Self {
            handler,
            allocations: 0,
            retired: 0,
            assembly: None,
            pending: None,
            lock: None,
            winks: 0,
        }
    }

    /// The token is unplugged and plugged in again (`vu2f replug`), as at power-up: every channel
    /// allocated so far answers `INVALID_CHANNEL` from now on (a host must INIT again, and gets a
    /// channel id it never had), a message being reassembled is dropped, a LOCK is released, a
    /// waiting CTAP2 request is abandoned without a reply. Then the handler's own volatile state
    /// goes ([`MessageHandler::power_cycle`]: the touch, the pending operation, and later
    /// clientPIN's pinUvAuthToken and retries per power-up). Channels a host picked itself stay
    /// served, unless one happens to be an id allocated before: every 32-bit id is some
    /// allocation's, so after n allocations a host's own id is retired with probability n/2^32.
    pub fn power_cycle(&mut self) {
        self.retired = self.allocations;
        self.assembly = None;
        self.pending = None;
        self.lock = None;
        self.handler.power_cycle();
    }

    /// Whether `cid` was allocated before the last power cycle.
    fn is_retired(&self, cid: u32) -> bool {
        let number = cid.wrapping_mul(CID_STEP_INVERSE);
        !never_allocated(cid) && number != 0 && number <= self.retired
    }

    /// How many WINKs the token received.
    pub fn winks(&self) -> u64 {
        self.winks
    }

    /// When [`CtapHid::poll`] has something to do next, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let assembly = self.assembly.as_ref().map(|a| a.deadline);
        let pending = self.pending.as_ref().map(|p| p.next_keepalive);
        match (assembly, pending) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    /// Times out a stalled message (its `MSG_TIMEOUT`), and advances a waiting CTAP2 request:
    /// its reply once done, else a KEEPALIVE when one is due.
    pub fn poll(&mut self, now: Instant) -> Vec<Report> {
        let mut replies = match &self.assembly {
            Some(a) if now >= a.deadline => {
                let cid = a.cid;
                self.assembly = None;
                vec![error_report(cid, HidError::MessageTimeout)]
            }
            _ => Vec::new(),
        };
        if let Some(pending) = self.pending.as_mut().filter(|p| now >= p.next_keepalive) {
            let cid = pending.cid;
            if let Some(deferred) = &pending.deferred {
                if now >= deferred.until {
                    let deferred = pending.deferred.take().expect("checked above");
                    self.pending = None;
                    replies.extend(self.run(cid, deferred.command, &deferred.payload, now));
                } else {
                    pending.next_keepalive = (now + KEEPALIVE_INTERVAL).min(deferred.until);
                    if deferred.command == Command::Cbor {
                        let status = KeepaliveStatus::Processing as u8;
                        replies.extend(fragment(cid, Command::Keepalive as u8, &[status]));
                    }
                }
                return replies;
            }
            match self.handler.poll_cbor(now) {
                CborStep::Done(reply) => {
                    self.pending = None;
                    replies.extend(fragment(cid, Command::Cbor as u8, &reply));
                }
                CborStep::Waiting(status) => {
                    pending.next_keepalive = now + KEEPALIVE_INTERVAL;
                    replies.extend(fragment(cid, Command::Keepalive as u8, &[status as u8]));
                }
            }
        }
        replies
    }

    /// Handles one output report from the host; returns the input reports to send back.
    pub fn handle_report(&mut self, report: &[u8], now: Instant) -> Vec<Report> {
        let mut replies = self.poll(now);
        if self.lock.as_ref().is_some_and(|l| now >= l.until) {
            self.lock = None;
        }
        match Packet::try_from(report) {
            Ok(Packet::Init {
                cid,
                cmd,
                bcnt,
                data,
            }) => replies.extend(self.init_packet(cid, cmd, bcnt, data, now)),
            Ok(Packet::Cont { cid, seq, data }) => {
                replies.extend(self.cont_packet(cid, seq, data, now))
            }
            Err(MalformedReport {
                cid: Some(cid),
                error,
            }) => replies.push(error_report(cid, error)),
            Err(MalformedReport { cid: None, .. }) => {}
        }
        replies
    }

    fn init_packet(
        &mut self,
        cid: u32,
        cmd: u8,
        bcnt: u16,
        data: &[u8],
        now: Instant,
    ) -> Vec<Report> {
        let error = |e| vec![error_report(cid, e)];
        if cid == 0 || self.is_retired(cid) {
            return error(HidError::InvalidChannel);
        }
        let Some(command) = Command::from_wire(cmd) else {
            return error(HidError::InvalidCommand);
        };
        if matches!(command, Command::Cbor | Command::Cancel) && !self.handler.speaks_cbor() {
            return error(HidError::InvalidCommand);
        }
        // INIT is answered on any channel, even while another holds the lock: a host that
        // opens the device must always get a channel (CTAP 2.1, CTAPHID_INIT).
        if command == Command::Init {
            return self.init(cid, bcnt, data);
        }
        // CANCEL is never answered and never busy: it ends the request waiting on its own
        // channel, and is ignored anywhere else.
        if command == Command::Cancel {
            return match self.pending.take() {
                // A request a delay fault holds back never reached the handler.
                Some(Pending {
                    cid: waiting,
                    deferred: Some(deferred),
                    ..
                }) if waiting == cid => match deferred.command {
                    Command::Cbor => fragment(
                        cid,
                        Command::Cbor as u8,
                        &[crate::ctap2::status::Status::KeepaliveCancel.byte()],
                    ),
                    _ => Vec::new(),
                },
                Some(pending) if pending.cid == cid => {
                    fragment(cid, Command::Cbor as u8, &self.handler.cancel_cbor())
                }
                other => {
                    self.pending = other;
                    Vec::new()
                }
            };
        }
        if self.pending.is_some() {
            return error(HidError::ChannelBusy);
        }
        if self.lock.as_ref().is_some_and(|l| l.cid != cid) {
            return error(HidError::ChannelBusy);
        }
        if cid == BROADCAST_CID {
            return error(HidError::InvalidChannel);
        }
        if let Some(busy) = &self.assembly {
            if busy.cid == cid {
                self.assembly = None;
                return error(HidError::InvalidSequence);
            }
            return error(HidError::ChannelBusy);
        }
        let expected_len = usize::from(bcnt);
        if expected_len > MAX_PAYLOAD || command == Command::Error {
            return error(if command == Command::Error {
                HidError::InvalidCommand
            } else {
                HidError::InvalidLength
            });
        }
        let mut payload = Vec::with_capacity(expected_len);
        payload.extend_from_slice(&data[..expected_len.min(data.len())]);
        self.assembly = Some(Assembly {
            cid,
            command,
            expected_len,
            payload,
            next_seq: 0,
            deadline: now + MESSAGE_TIMEOUT,
        });
        self.complete_if_done(now)
    }

    fn cont_packet(&mut self, cid: u32, seq: u8, data: &[u8], now: Instant) -> Vec<Report> {
        let Some(assembly) = self.assembly.as_mut().filter(|a| a.cid == cid) else {
            return Vec::new();
        };
        if seq != assembly.next_seq {
            self.assembly = None;
            return vec![error_report(cid, HidError::InvalidSequence)];
        }
        let missing = assembly.expected_len - assembly.payload.len();
        assembly
            .payload
            .extend_from_slice(&data[..missing.min(data.len())]);
        assembly.next_seq += 1;
        assembly.deadline = now + MESSAGE_TIMEOUT;
        self.complete_if_done(now)
    }

    fn complete_if_done(&mut self, now: Instant) -> Vec<Report> {
        match self.assembly.take() {
            Some(a) if a.payload.len() == a.expected_len => {
                self.execute(a.cid, a.command, &a.payload, now)
            }
            unfinished => {
                self.assembly = unfinished;
                Vec::new()
            }
        }
    }

    fn init(&mut self, cid: u32, bcnt: u16, data: &[u8]) -> Vec<Report> {
        if bcnt != 8 {
            return vec![error_report(cid, HidError::InvalidLength)];
        }
        let assigned = if cid == BROADCAST_CID {
            self.allocate_cid()
        } else {
            if self.assembly.as_ref().is_some_and(|a| a.cid == cid) {
                self.assembly = None;
            }
            if self.pending.as_ref().is_some_and(|p| p.cid == cid) {
                self.pending = None;
                self.handler.cancel_cbor();
            }
            cid
        };
        let (major, minor, build) = crate::VERSION_TRIPLE;
        let mut reply = [0u8; 17];
        reply[..8].copy_from_slice(&data[..8]);
        reply[8..12].copy_from_slice(&assigned.to_be_bytes());
        reply[12..].copy_from_slice(&[
            PROTOCOL_VERSION,
            major,
            minor,
            build,
            CAPABILITY_WINK
                | CAPABILITY_LOCK
                | if self.handler.speaks_cbor() {
                    CAPABILITY_CBOR
                } else {
                    0
                },
        ]);
        fragment(cid, Command::Init as u8, &reply)
    }

    /// Hands out channel ids that look random (a counter times an odd constant: distinct for 2^32
    /// allocations), never 0, 1, or the broadcast id and its neighbour, so that a host's own
    /// `cid ^ 1` is still a valid channel. Once the counter wraps, every id comes round again,
    /// the retired ones too.
    fn allocate_cid(&mut self) -> u32 {
        loop {
            self.allocations = self.allocations.wrapping_add(1);
            if self.allocations == 0 {
                self.retired = 0;
            }
            let cid = self.allocations.wrapping_mul(CID_STEP);
            if !never_allocated(cid) {
                return cid;
            }
        }
    }

    /// Runs a complete request, unless a transport fault armed on the token answers it busy or
    /// holds it back (`crate::u2f::faults`).
    fn execute(&mut self, cid: u32, command: Command, payload: &[u8], now: Instant) -> Vec<Report> {
        let spoilable =
            command == Command::Msg || (command == Command::Cbor && !payload.is_empty());
        match spoilable
            .then(|| self.handler.take_transport_fault())
            .flatten()
        {
            None => self.run(cid, command, payload, now),
            Some(TransportFault::Busy) => vec![error_report(cid, HidError::ChannelBusy)],
            Some(TransportFault::Delay(delay)) => {
                let until = now + delay;
                let next_keepalive = if command == Command::Cbor {
                    (now + KEEPALIVE_INTERVAL).min(until)
                } else {
                    until
                };
                self.pending = Some(Pending {
                    cid,
                    next_keepalive,
                    deferred: Some(Deferred {
                        command,
                        payload: payload.to_vec(),
                        until,
                    }),
                });
                if command == Command::Cbor {
                    let status = KeepaliveStatus::Processing as u8;
                    fragment(cid, Command::Keepalive as u8, &[status])
                } else {
                    Vec::new()
                }
            }
        }
    }

    fn run(&mut self, cid: u32, command: Command, payload: &[u8], now: Instant) -> Vec<Report> {
        let reply = |payload: &[u8]| fragment(cid, command as u8, payload);
        match command {
            Command::Ping => reply(payload),
            Command::Msg => {
                let response = self.handler.handle_message(payload, now);
                reply(&response)
            }
            Command::Cbor if payload.is_empty() => vec![error_report(cid, HidError::InvalidLength)],
            Command::Cbor => match self.handler.start_cbor(payload, now) {
                CborStep::Done(response) => reply(&response),
                CborStep::Waiting(status) => {
                    self.pending = Some(Pending {
                        cid,
                        next_keepalive: now + KEEPALIVE_INTERVAL,
                        deferred: None,
                    });
                    fragment(cid, Command::Keepalive as u8, &[status as u8])
                }
            },
            Command::Wink if payload.is_empty() => {
                self.winks += 1;
                self.handler.wink();
                reply(&[])
            }
            Command::Lock => match payload {
                [0] => {
                    self.lock = None;
                    reply(&[])
                }
                [seconds] if *seconds <= MAX_LOCK_SECONDS => {
                    self.lock = Some(Lock {
                        cid,
                        until: now + std::time::Duration::from_secs(u64::from(*seconds)),
                    });
                    reply(&[])
                }
                [_] => vec![error_report(cid, HidError::InvalidParameter)],
                _ => vec![error_report(cid, HidError::InvalidLength)],
            },
            Command::Wink => vec![error_report(cid, HidError::InvalidLength)],
            Command::Init | Command::Cancel | Command::Keepalive | Command::Error => {
                vec![error_report(cid, HidError::InvalidCommand)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Silent;
    impl MessageHandler for Silent {
        fn handle_message(&mut self, _apdu: &[u8], _now: Instant) -> Vec<u8> {
            Vec::new()
        }
    }

    /// After 2^32 allocations every id comes round again: the retired ones are valid once more.
    #[test]
    fn retired_channels_come_back_once_the_allocations_wrap() {
        let mut hid = CtapHid::new(Silent);
        hid.allocations = u32::MAX - 1;
        hid.power_cycle();
        let last = hid.allocate_cid();
        let wrapped = hid.allocate_cid();
        assert_eq!(wrapped, CID_STEP, "allocation number 1 again");
        assert!(!hid.is_retired(last) && !hid.is_retired(wrapped));
        let ping = fragment(wrapped, Command::Ping as u8, b"x");
        assert_eq!(hid.handle_report(&ping[0], Instant::now()), ping);
    }

    #[test]
    fn a_channel_id_gives_back_its_allocation_number() {
        for number in [1u32, 2, 1000, u32::MAX] {
            assert_eq!(
                number.wrapping_mul(CID_STEP).wrapping_mul(CID_STEP_INVERSE),
                number
            );
        }
    }
}
