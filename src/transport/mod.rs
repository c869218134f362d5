//! # transport — how a host reaches a token (`DESIGN.md`, "Data flow": the `TokenTransport` seam)
//!
//! * [`InProcess`]: a function call into the U2F engine (tests, load, the demo), or into the CTAP2
//!   engine of a `fido2` token, which answers U2F too (`vu2f probe` without a target).
//! * [`UdpTransport`]: CTAPHID over UDP, one 64-byte report per datagram (`vu2f serve --udp`).
//! * [`HidrawTransport`]: CTAPHID through `/dev/hidrawN`: `vu2f serve --uhid`, or a physical key.
//!
//! Both are a [`ctaphid::CtapHidHost`] over a different [`ctaphid::ReportLink`].
use std::time::{Duration, Instant};

use crate::ctap2;
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

/// A way to send U2F APDUs, and CTAP2 requests where the token speaks CTAP2, to a token.
pub trait TokenTransport {
    /// Sends one APDU and returns the response (data ‖ SW).
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError>;

    /// Sends one CTAP2 request (command byte ‖ CBOR) and returns its reply (status ‖ CBOR),
    /// after the user's touch if it needs one. `None`: this transport, or the token, speaks no
    /// CTAP2 (a CTAPHID token without the CBOR capability, a U2F engine in-process).
    fn cbor(&mut self, _request: &[u8]) -> Result<Option<Vec<u8>>, TransportError> {
        Ok(None)
    }

    /// Whether an exchange may wait on I/O or a person (then async callers run it on a
    /// blocking thread); a computation of microseconds says false.
    fn may_block(&self) -> bool {
        true
    }
}

/// The engine itself, called directly.
pub struct InProcess {
    engine: Engine,
}

// One engine per transport, the CTAP2 one holding a U2F one: boxing either buys nothing.
#[allow(clippy::large_enum_variant)]
enum Engine {
    U2f(Authenticator),
    Ctap2(ctap2::Authenticator),
}

/// How often an in-process CTAP2 request that waits for the user is polled.
const CTAP2_POLL: Duration = Duration::from_millis(20);

impl InProcess {
    /// A transport over a U2F engine.
    pub fn new(authenticator: Authenticator) -> Self {
        Self {
            engine: Engine::U2f(authenticator),
        }
    }

    /// A transport over a CTAP2 engine: APDUs go to the U2F engine inside it, and CTAP2 requests
    /// to it when the token speaks CTAP2 (its profile is `fido2`).
    pub fn ctap2(authenticator: ctap2::Authenticator) -> Self {
        Self {
            engine: Engine::Ctap2(authenticator),
        }
    }

    fn u2f(&self) -> &Authenticator {
        match &self.engine {
            Engine::U2f(u2f) => u2f,
            Engine::Ctap2(ctap2) => ctap2.u2f(),
        }
    }
}

impl TokenTransport for InProcess {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        let u2f = match &mut self.engine {
            Engine::U2f(u2f) => u2f,
            Engine::Ctap2(ctap2) => ctap2.u2f_mut(),
        };
        Ok(u2f.process(apdu, Instant::now()))
    }

    /// A request that waits for the user is polled, as the device loop does, until the engine
    /// answers: the touch, a refusal, or its own timeout (`USER_ACTION_TIMEOUT`).
    fn cbor(&mut self, request: &[u8]) -> Result<Option<Vec<u8>>, TransportError> {
        let Engine::Ctap2(engine) = &mut self.engine else {
            return Ok(None);
        };
        if !engine.speaks_ctap2() {
            return Ok(None);
        }
        let mut step = engine.start(request, Instant::now());
        loop {
            match step {
                ctap2::Step::Done(reply) => return Ok(Some(reply)),
                ctap2::Step::WaitingForUser => {
                    std::thread::sleep(CTAP2_POLL);
                    step = engine.poll(Instant::now());
                }
            }
        }
    }

    /// Only with a presence policy that answers at once (not `prompt`, `touch` or `delay`,
    /// which make callers poll).
    fn may_block(&self) -> bool {
        !self.u2f().presence().answers_at_once()
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
