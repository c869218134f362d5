//! # transport — how a host reaches a token (`DESIGN.md`, "Data flow": the `TokenTransport` seam)
//!
//! * [`InProcess`]: a function call into the U2F engine (tests, load, the demo).
//! * [`UdpTransport`]: CTAPHID over UDP, one 64-byte report per datagram (`vu2f serve --udp`).
//! * [`HidrawTransport`]: CTAPHID through `/dev/hidrawN`: `vu2f serve --uhid`, or a physical key.
//!
//! Both are a [`ctaphid::CtapHidHost`] over a different [`ctaphid::ReportLink`].
use std::time::{Duration, Instant};

use crate::hid::HidError;
use crate::u2f::{messages, Authenticator, StatusWord};

pub mod ctaphid;
mod hidraw;
mod udp;
pub use hidraw::HidrawTransport;
pub use udp::UdpTransport;

/// Why an exchange with a token failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket or device failed.
    #[error("transport I/O: {0}")]
    Io(std::io::Error),
    /// The token did not answer in time.
    #[error("the token did not answer within {0:?}")]
    Timeout(Duration),
    /// The token answered with a CTAPHID error.
    #[error("the token answered CTAPHID error {0}")]
    Hid(HidError),
    /// The token's answer makes no sense.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl From<std::io::Error> for TransportError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// A way to send U2F APDUs to a token.
pub trait TokenTransport {
    /// Sends one APDU and returns the response (data ‖ SW).
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError>;

    /// Whether an exchange may wait on I/O or a person (then async callers run it on a
    /// blocking thread); a computation of microseconds says false.
    fn may_block(&self) -> bool {
        true
    }
}

/// The engine itself, called directly.
pub struct InProcess {
    authenticator: Authenticator,
}

impl InProcess {
    /// A transport over an engine.
    pub fn new(authenticator: Authenticator) -> Self {
        Self { authenticator }
    }
}

impl TokenTransport for InProcess {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        Ok(self.authenticator.process(apdu, Instant::now()))
    }

    /// Only with a presence policy that answers at once (not `prompt`, `touch` or `delay`,
    /// which make callers poll).
    fn may_block(&self) -> bool {
        !self.authenticator.presence().answers_at_once()
    }
}

/// Sends `apdu` until the token stops asking for a touch (`0x6985`), as hosts do, polling every
/// `interval` for at most `timeout`. The response of the last try is returned.
pub fn exchange_awaiting_presence(
    transport: &mut dyn TokenTransport,
    apdu: &[u8],
    interval: Duration,
    timeout: Duration,
) -> Result<Vec<u8>, TransportError> {
    let start = Instant::now();
    loop {
        let response = transport.exchange(apdu)?;
        let waiting =
            messages::status_of(&response) == Some(StatusWord::ConditionsNotSatisfied as u16);
        if !waiting || start.elapsed() >= timeout {
            return Ok(response);
        }
        std::thread::sleep(interval);
    }
}
