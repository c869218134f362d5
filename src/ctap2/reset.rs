//! authenticatorReset (0x07; CTAP 2.1 §6.6; `shared/spec/CTAP2.md` §8): the token back to its
//! factory state, only shortly after power-up and only with a touch.
//!
//! ```text
//!  07 (no parameters)
//!   ├─ more than 10 s since power-up (serve start, `vu2f replug`) ─► 30 NOT_ALLOWED
//!   └─ touch ─► declined 27 OPERATION_DENIED · none in time 2F USER_ACTION_TIMEOUT
//!               · CANCEL 2D · touched: keystore factory reset (flushed) ─► 00
//! ```
//! The keystore's [`keystore::TokenKeys::factory_reset`] gives the token a new master key (every
//! credential id and U2F key handle it issued stops opening: U2F answers `6A80` for them) and
//! erases its discoverable credentials, its PIN (8 retries again), its authenticatorConfig
//! settings and its large-blob array, durably before the reply; the signature counter goes on,
//! never back. The volatile state goes as at a power cycle: pinUvAuthTokens and key-agreement
//! keys, the U2F key cache, getNextAssertion's queue, credentialManagement's enumerations and a
//! large-blob write in progress (its next fragment answers as if none had begun).
use std::time::{Duration, Instant};

use super::authenticator::{reply, Authenticator, Operation, Step};
use super::client_pin::ClientPinState;
use super::status::Status;

/// How long after power-up authenticatorReset is allowed (§6.6: "within 10 seconds").
pub const RESET_WINDOW: Duration = Duration::from_secs(10);

impl Authenticator {
    /// authenticatorReset: refused after [`RESET_WINDOW`], else waits for the touch.
    pub(super) fn reset(&mut self, now: Instant) -> Step {
        if now.saturating_duration_since(self.powered_up) > RESET_WINDOW {
            return Step::Done(reply(Err(Status::NotAllowed)));
        }
        self.wait(Operation::Reset, false, now)
    }

    /// The user touched: the reset, flushed, then the volatile state.
    pub(super) fn finish_reset(&mut self) -> Result<Vec<u8>, Status> {
        self.u2f
            .keys_mut()
            .factory_reset()
            .map_err(|_| Status::Other)?;
        self.u2f.forget_cached_keys();
        self.pin = ClientPinState::power_up(&self.rng);
        self.next_assertions = None;
        self.enumeration = None;
        self.large_blob_write = None;
        Ok(Vec::new())
    }
}
