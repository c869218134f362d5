//! # device — where reports meet a wire (`DESIGN.md`, "Sans-IO middle": only this layer does I/O)
//!
//! * [`udp`]: `vu2f serve --udp`: CTAPHID over UDP, one report per datagram, replies to the sender.
//! * [`uhid`]: `vu2f serve --uhid`: a HID device through the kernel, seen as `/dev/hidrawN`.
//! * [`report_descriptor`]: the FIDO U2F report descriptor and the device ids.
//! * [`service`]: `vu2f serve --device-service`: the FIDO U2F API of AA's Device Service.
//! * [`SharedToken`]: one token behind several devices (`--udp`, `--uhid`, the device service).
//! * [`control`]: the control socket (in `$XDG_RUNTIME_DIR`) through which `vu2f touch NAME` presses
//!   buttons and `vu2f replug NAME` replugs tokens.
//! * [`replug`]: a token's devices unplugged and plugged in again, as at power-up.
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::ctap2::Authenticator;
use crate::hid::{CborStep, MessageHandler};

pub mod control;
pub mod replug;
pub mod report_descriptor;
pub mod service;
pub mod udp;
pub mod uhid;

/// A token that several devices serve: each has its own CTAPHID channels, all share the keys,
/// the counter, the button and the CTAP2 request that waits for it.
#[derive(Clone)]
pub struct SharedToken(Arc<Mutex<Authenticator>>);

impl SharedToken {
    /// Shares `authenticator`.
    pub fn new(authenticator: Authenticator) -> Self {
        Self(Arc::new(Mutex::new(authenticator)))
    }
}

impl crate::transport::TokenTransport for SharedToken {
    fn exchange(&mut self, apdu: &[u8]) -> Result<Vec<u8>, crate::transport::TransportError> {
        Ok(self.handle_message(apdu, Instant::now()))
    }

    fn may_block(&self) -> bool {
        !self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .u2f()
            .presence()
            .answers_at_once()
    }
}

impl SharedToken {
    /// The engine, locked: every device of the token waits meanwhile, so hold it briefly.
    pub fn engine(&self) -> std::sync::MutexGuard<'_, Authenticator> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MessageHandler for SharedToken {
    fn handle_message(&mut self, apdu: &[u8], now: Instant) -> Vec<u8> {
        self.engine().handle_message(apdu, now)
    }
    fn speaks_cbor(&self) -> bool {
        self.engine().speaks_cbor()
    }
    fn start_cbor(&mut self, request: &[u8], now: Instant) -> CborStep {
        self.engine().start_cbor(request, now)
    }
    fn poll_cbor(&mut self, now: Instant) -> CborStep {
        self.engine().poll_cbor(now)
    }
    fn cancel_cbor(&mut self) -> Vec<u8> {
        self.engine().cancel_cbor()
    }
    fn take_transport_fault(&mut self) -> Option<crate::u2f::TransportFault> {
        self.engine().take_transport_fault()
    }
    // No `power_cycle`: each device's CTAPHID power cycle leaves the shared engine alone. A replug
    // power-cycles the engine once, through the token's own plug, before its devices (see
    // `replug`): another device's power cycle later would drop a request a host has just started
    // on a device already back.
}

/// Sleeps until `deadline`, or forever without one (for `select!` arms that are disabled then).
async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}
