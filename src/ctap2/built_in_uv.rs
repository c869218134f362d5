//! Built-in user verification that can fail, with a durable uvRetries (CTAP 2.1's
//! performBuiltInUv(internalRetry); §6.1.2 step 11 and §6.2.2 step 6, makeCredential and
//! getAssertion with `uv: true`; §6.5.5.7.3 getPinUvAuthTokenUsingUvWithPermissions; §6.5.5.3
//! getUVRetries; §6.4 getInfo's preferredPlatformUVAttempts and uvModality).
//!
//! `serve --uv POLICY` stands for a fingerprint sensor: `deny` is a finger that never matches (a
//! press of the button, `vu2f touch`, still does), `auto` one that always does, `delay:MS`,
//! `prompt` and `touch` one that matches once it comes. Each attempt is spent before the policy
//! is asked, as a wrong PIN is (`keystore::PinState::spend_uv_attempt`):
//!
//! ```text
//!  attempt ─► uvRetries 0, or the PIN blocked (uvRetries ← 0) ──────────────► blocked
//!          └► uvRetries − 1, flushed ─► the policy: match  ─► uvRetries ← 8, flushed ─► verified
//!                                                   no match ─► again (mc, ga: up to 3 in all),
//!                                                               else failed
//!                                                   not yet  ─► wait; the attempt stays spent
//!                                                               if it times out, is cancelled
//!                                                               or the process dies
//!
//!  failed or blocked   getPinUvAuthTokenUsingUv    makeCredential, getAssertion
//!  a timeout           USER_ACTION_TIMEOUT          USER_ACTION_TIMEOUT
//!  a PIN is set        UV_BLOCKED or UV_INVALID     PUAT_REQUIRED
//!  uvRetries 0         UV_BLOCKED                   PIN_BLOCKED
//!  otherwise           UV_INVALID                   OPERATION_DENIED
//! ```
//!
//! getPinUvAuthTokenUsingUvWithPermissions makes one attempt per call: getInfo's
//! preferredPlatformUVAttempts is 3, above 1, so the platform retries and each call may lower
//! uvRetries by one only. makeCredential and getAssertion retry internally
//! ([`MAX_UV_ATTEMPTS_FOR_INTERNAL_RETRIES`]). A right PIN (getPinToken, changePIN,
//! getPinUvAuthTokenUsingPinWithPermissions) or authenticatorReset gives every attempt back.
use keystore::UvAttempt;

use super::authenticator::{Authenticator, Operation, UserAction};
use super::status::Status;
use crate::u2f::PresencePolicy;

/// The attempts makeCredential and getAssertion make within one request before they fail
/// (maxUvAttemptsForInternalRetries).
pub const MAX_UV_ATTEMPTS_FOR_INTERNAL_RETRIES: u8 = 3;
/// How many getPinUvAuthTokenUsingUvWithPermissions calls a platform should make before it falls
/// back to the PIN (getInfo 0x11).
pub const PREFERRED_PLATFORM_UV_ATTEMPTS: u8 = 3;
/// The kind of built-in UV (getInfo 0x12): USER_VERIFY_FINGERPRINT_INTERNAL of the FIDO Registry.
pub const UV_MODALITY: u32 = 0x0000_0002;

/// The built-in UV attempts of one request.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct UvAttempts {
    /// Attempts spent (uvRetries lowered) for the request so far.
    spent: u8,
    /// Whether the last one spent still waits for the policy's answer.
    open: bool,
}

/// Whether `operation` retries a failed match itself: not a getPinUvAuthTokenUsingUv, whose
/// platform retries (preferredPlatformUVAttempts above 1).
fn retries_internally(operation: &Operation) -> bool {
    !matches!(operation, Operation::UvToken(_))
}

impl Authenticator {
    /// performBuiltInUv for a request waiting with `operation`: verified, still waiting, or the
    /// refusal its command answers (see the module docs).
    pub(super) fn perform_built_in_uv(
        &mut self,
        attempts: &mut UvAttempts,
        operation: &Operation,
        now: std::time::Instant,
    ) -> UserAction {
        loop {
            if !attempts.open {
                match self.u2f.keys_mut().pin.spend_uv_attempt() {
                    Err(_) => return UserAction::Refused(Status::Other),
                    Ok(UvAttempt::Blocked) => {
                        return UserAction::Refused(self.uv_refusal(operation))
                    }
                    Ok(UvAttempt::Spent { .. }) => {
                        attempts.spent += 1;
                        attempts.open = true;
                    }
                }
            }
            let Some(uv) = self.uv.as_mut() else {
                return UserAction::Refused(Status::Other);
            };
            if uv.take(now) {
                return match self.u2f.keys_mut().pin.uv_matched() {
                    Ok(()) => UserAction::Done,
                    Err(_) => UserAction::Refused(Status::Other),
                };
            }
            if uv.policy() != PresencePolicy::Deny {
                return UserAction::Waiting;
            }
            uv.abandon();
            attempts.open = false;
            let again = retries_internally(operation)
                && attempts.spent < MAX_UV_ATTEMPTS_FOR_INTERNAL_RETRIES
                && self.u2f.keys().pin.uv_retries() > 0;
            if !again {
                return UserAction::Refused(self.uv_refusal(operation));
            }
        }
    }

    /// What `operation` answers when built-in UV failed or is blocked (a timeout aside).
    fn uv_refusal(&self, operation: &Operation) -> Status {
        let pin = &self.u2f.keys().pin;
        let blocked = pin.uv_retries() == 0;
        match operation {
            Operation::UvToken(_) if blocked => Status::UvBlocked,
            Operation::UvToken(_) => Status::UvInvalid,
            _ if pin.is_set() => Status::PuatRequired,
            _ if blocked => Status::PinBlocked,
            _ => Status::OperationDenied,
        }
    }
}
