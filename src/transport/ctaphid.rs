//! The host side of CTAPHID over any link that carries one 64-byte report at a time (FIDO U2F HID
//! protocol v1.1 section 2; PROTOCOLS.md 3.4): INIT on the broadcast channel to get a channel of
//! one's own, then each message fragmented into reports and the reply reassembled. The INIT reply's
//! capabilities tell whether the token speaks CTAP2 (CTAPHID_CBOR, CTAP 2.1 section 11.2.9.1.3).
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

use super::{TokenTransport, TransportError};
use crate::hid::host::{Reply, ReplyAssembler};
use crate::hid::wire::CAPABILITY_CBOR;
use crate::hid::{fragment, Command, HidError, Report, BROADCAST_CID};

/// How long to wait for a reply by default (PROTOCOLS.md 3.2: the transaction timeout).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
/// The first and the longest pause before a message refused with `ERR_CHANNEL_BUSY` is sent again.
const BUSY_PAUSE_MIN: Duration = Duration::from_millis(1);
const BUSY_PAUSE_MAX: Duration = Duration::from_millis(20);
/// The longest a CTAP2 request may be kept alive by KEEPALIVEs: past the 30 s a token waits for
/// the user (CTAP 2.1 section 6) before it answers `USER_ACTION_TIMEOUT` itself.
const KEEPALIVE_LIMIT: Duration = Duration::from_secs(40);

/// Something that carries HID reports to a token and back: a UDP socket, a hidraw node.
pub trait ReportLink {
    /// Sends one output report.
    fn send(&mut self, report: &Report) -> std::io::Result<()>;
    /// Waits at most `timeout` for one input report; `None` when none came.
    fn receive(&mut self, timeout: Duration) -> std::io::Result<Option<Report>>;
}

/// A CTAPHID channel to a token over a [`ReportLink`].
pub struct CtapHidHost<L: ReportLink> {
    link: L,
    cid: u32,
    timeout: Duration,
    /// The capability flags of the INIT reply.
    capabilities: u8,
}

impl<L: ReportLink> CtapHidHost<L> {
    /// Allocates a channel on the token at the other end of `link` with INIT.
    pub fn open(link: L) -> Result<Self, TransportError> {
        let mut host = Self {
            link,
            cid: BROADCAST_CID,
            timeout: REPLY_TIMEOUT,
            capabilities: 0,
        };
        let mut nonce = [0u8; 8];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| TransportError::Protocol("no randomness".into()))?;
        let reply = host.transact(Command::Init as u8, &nonce)?;
        match reply.get(..12) {
            Some(head) if head[..8] == nonce => {
                host.cid = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                // nonce 8 ‖ cid 4 ‖ protocol version ‖ major ‖ minor ‖ build ‖ capabilities
                host.capabilities = reply.get(16).copied().unwrap_or(0);
                Ok(host)
            }
            _ => Err(TransportError::Protocol(
                "INIT reply does not echo the nonce".into(),
            )),
        }
    }

    /// Sets how long to wait for each reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The channel id the token allocated.
    pub fn cid(&self) -> u32 {
        self.cid
    }

    /// The capability flags of the token's INIT reply (WINK 0x01, LOCK 0x02, CBOR 0x04, NMSG 0x08).
    pub fn capabilities(&self) -> u8 {
        self.capabilities
    }

    /// Whether the token speaks CTAP2: its INIT reply has the CBOR capability.
    pub fn speaks_cbor(&self) -> bool {
        self.capabilities & CAPABILITY_CBOR != 0
    }

    /// Sends one message and returns the reply payload. While another channel holds the token
    /// (`ERR_CHANNEL_BUSY`: a message in progress, or a LOCK), the message is sent again after a
    /// short pause, as hosts do, until the reply timeout.
    pub fn transact(&mut self, command: u8, payload: &[u8]) -> Result<Vec<u8>, TransportError> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = BUSY_PAUSE_MIN;
        loop {
            match self.transact_once(command, payload, deadline) {
                Err(TransportError::Hid(HidError::ChannelBusy))
                    if Instant::now() + pause < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(BUSY_PAUSE_MAX);
                }
                other => return other,
            }
        }
    }

    fn transact_once(
        &mut self,
        command: u8,
        payload: &[u8],
        mut deadline: Instant,
    ) -> Result<Vec<u8>, TransportError> {
        for report in fragment(self.cid, command, payload) {
            self.link.send(&report)?;
        }
        let keepalive_limit = Instant::now() + KEEPALIVE_LIMIT;
        let mut assembler = ReplyAssembler::new(self.cid);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TransportError::Timeout(self.timeout));
            }
            let Some(report) = self.link.receive(left)? else {
                return Err(TransportError::Timeout(self.timeout));
            };
            match assembler.push(&report) {
                Some(Reply::Message {
                    command: c,
                    payload,
                }) if c == command => return Ok(payload),
                // A CTAP2 request that waits for the user is kept alive until its reply: each
                // KEEPALIVE gives the token the reply timeout again, up to the keepalive limit.
                Some(Reply::Message { command: c, .. })
                    if c == Command::Keepalive as u8 && command == Command::Cbor as u8 =>
                {
                    assembler = ReplyAssembler::new(self.cid);
                    deadline = deadline.max((Instant::now() + self.timeout).min(keepalive_limit));
                }
                Some(Reply::Message { command: c, .. }) => {
                    return Err(TransportError::Protocol(format!(
                        "reply command {c:#04x} to {command:#04x}"
                    )))
                }
                Some(Reply::Error(e)) => return Err(TransportError::Hid(e)),
                None => {}
            }
        }
    }
}

impl<L: ReportLink> CtapHidHost<L> {
    /// Sends a CTAP2 request (command byte ‖ CBOR) and returns its reply (status ‖ CBOR),
    /// waiting through KEEPALIVEs: each gives the token the reply timeout again, for at most
    /// 40 s in all. Sent whatever the token's capabilities; [`TokenTransport::cbor`] asks first.
    pub fn cbor(&mut self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transact(Command::Cbor as u8, request)
    }
}

impl<L: ReportLink> TokenTransport for CtapHidHost<L> {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transact(Command::Msg as u8, apdu)
    }

    /// `None` when the token's INIT reply lacks the CBOR capability (a U2F-only key).
    fn cbor(&mut self, request: &[u8]) -> Result<Option<Vec<u8>>, TransportError> {
        if !self.speaks_cbor() {
            return Ok(None);
        }
        self.transact(Command::Cbor as u8, request).map(Some)
    }
}
