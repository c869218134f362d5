//! CTAPHID over UDP, host side: one 64-byte report per datagram (`DESIGN.md`, "Contracts").
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

use super::{TokenTransport, TransportError};
use crate::hid::host::{Reply, ReplyAssembler};
use crate::hid::{fragment, Command, Report, BROADCAST_CID, REPORT_LEN};

/// How long to wait for a reply by default.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// A channel to a token served over UDP.
pub struct UdpTransport {
    socket: UdpSocket,
    cid: u32,
    timeout: Duration,
}

impl UdpTransport {
    /// Connects to the token at `addr` and allocates a channel with INIT.
    pub fn connect(addr: SocketAddr) -> Result<Self, TransportError> {
        let local: SocketAddr = if addr.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        }
        .parse()
        .map_err(|e| TransportError::Protocol(format!("{e}")))?;
        let socket = UdpSocket::bind(local)?;
        socket.connect(addr)?;
        let mut transport = Self {
            socket,
            cid: BROADCAST_CID,
            timeout: REPLY_TIMEOUT,
        };
        let mut nonce = [0u8; 8];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| TransportError::Protocol("no randomness".into()))?;
        let reply = transport.transact(Command::Init as u8, &nonce)?;
        match reply.get(..12) {
            Some(head) if head[..8] == nonce => {
                transport.cid = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                Ok(transport)
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

    /// Sends one message and returns the reply payload.
    pub fn transact(&mut self, command: u8, payload: &[u8]) -> Result<Vec<u8>, TransportError> {
        for report in fragment(self.cid, command, payload) {
            self.socket.send(&report)?;
        }
        let deadline = Instant::now() + self.timeout;
        let mut assembler = ReplyAssembler::new(self.cid);
        let mut report: Report = [0u8; REPORT_LEN];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TransportError::Timeout(self.timeout));
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv(&mut report) {
                Ok(REPORT_LEN) => {}
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(TransportError::Timeout(self.timeout))
                }
                Err(e) => return Err(e.into()),
            }
            match assembler.push(&report) {
                Some(Reply::Message {
                    command: c,
                    payload,
                }) if c == command => return Ok(payload),
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

impl TokenTransport for UdpTransport {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transact(Command::Msg as u8, apdu)
    }
}
