//! One token's CTAP2 engine, beside its U2F engine (CTAP 2.1 sections 6 and 8; DESIGN.md,
//! "FIDO2": one token, two protocols; waiting is state).
//!
//! A `fido2` token answers CTAP2 requests here and U2F APDUs in the [`crate::u2f::Authenticator`]
//! it wraps: one master key, one counter, one button. A request that needs the user is left
//! *pending*: [`Authenticator::start`] answers [`Step::WaitingForUser`], and the device loop calls
//! [`Authenticator::poll`] with the time until the touch comes (the reply), the policy refuses
//! (`OPERATION_DENIED`; built-in UV's failures, [`super::built_in_uv`]), the time runs out
//! (`USER_ACTION_TIMEOUT`) or the host cancels ([`Authenticator::cancel`], `KEEPALIVE_CANCEL`):
//!
//! ```text
//!  start(request) ──► Done(reply)                          no touch needed, or at once
//!        └──────────► WaitingForUser ─poll─► … ─poll─► Done(reply | 27 | 2F)
//!                                      └─cancel─► 2D
//! ```
use std::time::{Duration, Instant};

use minicbor::Encoder;
use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;

use super::built_in_uv::UvAttempts;
use super::cbor::{self, Arena, Parameters, ReplyEncoder, ReplyWriter, WriteResult};
use super::client_pin::{ClientPinState, TokenUse, UvTokenGrant};
use super::credential_management::Enumeration;
use super::get_assertion::AssertionQueue;
use super::get_info::{self, Facts};
use super::large_blobs::PendingWrite;
use super::make_credential::Creation;
use super::status::Status;
use crate::u2f::{self, Presence, PresencePolicy};

/// How long a request waits for the user before `USER_ACTION_TIMEOUT` (CTAP 2.1 section 6:
/// "at least 30 seconds" for a touch).
pub const USER_ACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The command byte of a CTAP2 request (CTAP 2.1 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// authenticatorMakeCredential.
    MakeCredential = 0x01,
    /// authenticatorGetAssertion.
    GetAssertion = 0x02,
    /// authenticatorGetInfo.
    GetInfo = 0x04,
    /// authenticatorClientPIN.
    ClientPin = 0x06,
    /// authenticatorReset.
    Reset = 0x07,
    /// authenticatorGetNextAssertion.
    GetNextAssertion = 0x08,
    /// authenticatorCredentialManagement.
    CredentialManagement = 0x0A,
    /// authenticatorSelection.
    Selection = 0x0B,
    /// authenticatorLargeBlobs.
    LargeBlobs = 0x0C,
    /// authenticatorConfig.
    Config = 0x0D,
    /// authenticatorCredentialManagement as CTAP 2.1's preview numbered it (hosts still send it).
    CredentialManagementPreview = 0x41,
}

impl TryFrom<u8> for Command {
    type Error = Status;
    fn try_from(byte: u8) -> Result<Self, Status> {
        match byte {
            0x01 => Ok(Self::MakeCredential),
            0x02 => Ok(Self::GetAssertion),
            0x04 => Ok(Self::GetInfo),
            0x06 => Ok(Self::ClientPin),
            0x07 => Ok(Self::Reset),
            0x08 => Ok(Self::GetNextAssertion),
            0x0A => Ok(Self::CredentialManagement),
            0x0B => Ok(Self::Selection),
            0x0C => Ok(Self::LargeBlobs),
            0x0D => Ok(Self::Config),
            0x41 => Ok(Self::CredentialManagementPreview),
            _ => Err(Status::InvalidCommand),
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Finished: the reply (status byte ‖ CBOR).
    Done(Vec<u8>),
    /// Waiting for the user's touch (or verification): poll again.
    WaitingForUser,
}

/// What a pending request does once the user has acted.
pub(super) enum Operation {
    /// Make the credential.
    Make(Box<Creation>),
    /// Sign the first assertion.
    Get(AssertionQueue),
    /// A credential of the excludeList is ours: `CREDENTIAL_EXCLUDED`, touched or not.
    Excluded,
    /// authenticatorSelection: the user picked this token.
    Selection,
    /// A zero-length pinUvAuthParam (CTAP 2.1 §6.1.2 step 1): once touched, `PIN_NOT_SET` or
    /// `PIN_INVALID`; declined or timed out, `OPERATION_DENIED`.
    PinProbe,
    /// getPinUvAuthTokenUsingUvWithPermissions: the token, once built-in UV verified the user.
    UvToken(Box<UvTokenGrant>),
    /// authenticatorReset, once touched.
    Reset,
}

struct Pending {
    operation: Operation,
    /// Whether the user must be verified (built-in UV), not only present.
    verify: bool,
    /// The pinUvAuthToken that verified the user for this request, if one did.
    token: Option<TokenUse>,
    deadline: Instant,
    /// Built-in UV's attempts for this request, when `verify`.
    uv_attempts: UvAttempts,
}

/// What the user did, as far as the token can tell now.
pub(super) enum UserAction {
    /// Present, and verified if verification was asked for.
    Done,
    /// The policy refuses.
    Denied,
    /// Built-in UV failed, or is blocked: the request ends with this status.
    Refused(Status),
    /// Not yet.
    Waiting,
}

/// One token's CTAP2 engine, with its U2F engine inside.
pub struct Authenticator {
    pub(super) u2f: u2f::Authenticator,
    /// Built-in user verification, when the token has it.
    pub(super) uv: Option<Presence>,
    /// Whether makeCredential makes discoverable credentials (getInfo's `rk`).
    pub(super) resident_keys: bool,
    pending: Option<Pending>,
    /// The credentials a getAssertion left for getNextAssertion.
    pub(super) next_assertions: Option<AssertionQueue>,
    pub(super) rng: SystemRandom,
    user_action_timeout: Duration,
    pub(super) last_rp_id: LastRpId,
    /// Where requests are read: emptied after each, so that reading allocates nothing.
    arena: Arena,
    /// clientPIN's state of this power-up: key-agreement keys, pinUvAuthTokens, mismatches.
    pub(super) pin: ClientPinState,
    /// When the token got power: authenticatorReset works only shortly after.
    pub(super) powered_up: Instant,
    /// What credentialManagement's enumerations have left for their GetNext subcommands.
    pub(super) enumeration: Option<Enumeration>,
    /// The authenticatorLargeBlobs set in progress, if one is.
    pub(super) large_blob_write: Option<PendingWrite>,
}

/// The most an emptied arena keeps: a request many times larger than any a host sends (a hostile
/// one, with thousands of tiny items) does not leave its memory behind in the token.
const ARENA_KEPT: usize = 16 * 1024;

/// SHA-256 of an RP ID: the rpIdHash.
pub fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest(&SHA256, rp_id.as_bytes()).as_ref());
    hash
}

/// The rpIdHash of the RP ID asked for last. A host signs in to the same RP again and again (a
/// load test, thousands of times), and one SHA-256 block costs half a percent of a signature.
#[derive(Default)]
pub(super) struct LastRpId {
    rp_id: Option<String>,
    hash: [u8; 32],
}

impl LastRpId {
    /// The rpIdHash of `rp_id`, remembered for next time.
    pub(super) fn hash(&mut self, rp_id: &str) -> [u8; 32] {
        match &mut self.rp_id {
            Some(last) if last == rp_id => {}
            Some(last) => {
                last.clear();
                last.push_str(rp_id);
                self.hash = rp_id_hash(rp_id);
            }
            None => {
                self.rp_id = Some(rp_id.to_owned());
                self.hash = rp_id_hash(rp_id);
            }
        }
        self.hash
    }
}

/// A reply: a success made by [`body`] as it is (an empty one is the status byte alone), a
/// failure its status byte.
pub(super) fn reply(result: Result<Vec<u8>, Status>) -> Vec<u8> {
    match result {
        Ok(reply) if reply.is_empty() => vec![Status::Ok.byte()],
        Ok(reply) => reply,
        Err(status) => vec![status.byte()],
    }
}

impl Authenticator {
    /// The CTAP2 engine of a token, over its U2F engine, powered up now (see
    /// [`Self::powered_up_at`]). `uv` is the policy of built-in user verification (none: the
    /// token has none); it shares the token's button.
    pub fn new(u2f: u2f::Authenticator, uv: Option<PresencePolicy>) -> Self {
        let uv = uv.map(|policy| Presence::with_button(policy, u2f.presence().button().clone()));
        let rng = SystemRandom::new();
        Self {
            u2f,
            uv,
            resident_keys: true,
            pending: None,
            next_assertions: None,
            pin: ClientPinState::power_up(&rng),
            rng,
            user_action_timeout: USER_ACTION_TIMEOUT,
            last_rp_id: LastRpId::default(),
            arena: Arena::new(),
            powered_up: Instant::now(),
            enumeration: None,
            large_blob_write: None,
        }
    }

    /// The token got power at `now` rather than when it was made: authenticatorReset's window
    /// counts from then (sans-IO callers and tests give their own clock).
    pub fn powered_up_at(mut self, now: Instant) -> Self {
        self.powered_up = now;
        self
    }

    /// Waits this long for the user instead of [`USER_ACTION_TIMEOUT`].
    pub fn with_user_action_timeout(mut self, timeout: Duration) -> Self {
        self.user_action_timeout = timeout;
        self
    }

    /// The policy of built-in user verification; `None`: the token has none.
    pub fn uv_policy(&self) -> Option<PresencePolicy> {
        self.uv.as_ref().map(Presence::policy)
    }

    /// Built-in user verification answers under `policy` from now on (the automation API's Set
    /// User Verified). False: the token has no built-in UV, and nothing changed.
    pub fn set_uv_policy(&mut self, policy: PresencePolicy) -> bool {
        match self.uv.as_mut() {
            Some(uv) => {
                uv.set_policy(policy);
                true
            }
            None => false,
        }
    }

    /// Whether the token makes discoverable credentials.
    pub fn resident_keys(&self) -> bool {
        self.resident_keys
    }

    /// Whether the token makes discoverable credentials (on unless turned off, as WebDriver's
    /// `hasResidentKey: false` does): off, getInfo says `rk: false` and no `largeBlobs`, and a
    /// makeCredential with `rk: true` gets `UNSUPPORTED_OPTION` (CTAP 2.1 §6.1.2 step 5).
    pub fn set_resident_keys(&mut self, on: bool) {
        self.resident_keys = on;
    }

    /// The U2F engine (name, presence, counter).
    pub fn u2f(&self) -> &u2f::Authenticator {
        &self.u2f
    }

    /// The U2F engine, to process APDUs.
    pub fn u2f_mut(&mut self) -> &mut u2f::Authenticator {
        &mut self.u2f
    }

    /// Whether the token speaks CTAP2 (its profile is `fido2`).
    pub fn speaks_ctap2(&self) -> bool {
        self.u2f.keys().profile == keystore::Profile::Fido2
    }

    /// Starts a request: command byte ‖ CBOR parameters.
    pub fn start(&mut self, request: &[u8], now: Instant) -> Step {
        let Some((&command, parameters)) = request.split_first() else {
            return Step::Done(reply(Err(Status::InvalidLength)));
        };
        let command = match Command::try_from(command) {
            Ok(command) => command,
            Err(status) => return Step::Done(reply(Err(status))),
        };
        if command != Command::GetNextAssertion {
            self.next_assertions = None;
        }
        if !matches!(
            command,
            Command::CredentialManagement | Command::CredentialManagementPreview
        ) {
            self.enumeration = None;
        }
        let mut arena = std::mem::take(&mut self.arena);
        let started = match command {
            Command::GetInfo => Ok(self.get_info()),
            Command::GetNextAssertion => Ok(Step::Done(reply(self.get_next_assertion(now)))),
            Command::Selection => Ok(self.wait(Operation::Selection, false, now)),
            Command::MakeCredential => Parameters::decode(parameters, &arena)
                .and_then(|params| self.make_credential(&params, now)),
            Command::GetAssertion => Parameters::decode(parameters, &arena)
                .and_then(|params| self.get_assertion(&params, now)),
            Command::ClientPin => Parameters::decode(parameters, &arena)
                .and_then(|params| self.client_pin(&params, now)),
            Command::Reset => Ok(self.reset(now)),
            Command::CredentialManagement | Command::CredentialManagementPreview => {
                Parameters::decode(parameters, &arena)
                    .and_then(|params| self.credential_management(&params, parameters, now))
            }
            Command::Config => Parameters::decode(parameters, &arena)
                .and_then(|params| self.config(&params, parameters, now)),
            Command::LargeBlobs => Parameters::decode(parameters, &arena)
                .and_then(|params| self.large_blobs(&params, now)),
        };
        arena.reset();
        if arena.allocated_bytes() <= ARENA_KEPT {
            self.arena = arena;
        }
        started.unwrap_or_else(|status| Step::Done(reply(Err(status))))
    }

    /// Advances the pending request.
    pub fn poll(&mut self, now: Instant) -> Step {
        match self.pending.take() {
            Some(pending) => self.advance(pending, now),
            None => Step::Done(reply(Err(Status::Other))),
        }
    }

    /// Ends the pending request at the host's CANCEL: its reply is `KEEPALIVE_CANCEL`.
    pub fn cancel(&mut self) -> Vec<u8> {
        if let Some(pending) = self.pending.take() {
            self.presence_for(pending.verify).abandon();
        }
        reply(Err(Status::KeepaliveCancel))
    }

    /// The token lost power and got it back (`vu2f replug`): everything volatile is forgotten,
    /// as at power-up. The pending request is dropped without a reply (none is owed after a
    /// power cycle), the getNextAssertion queue is emptied (`NOT_ALLOWED` follows), and the
    /// touch and the U2F key cache go (see [`u2f::Authenticator::power_cycle`]). clientPIN makes
    /// new key-agreement keys and pinUvAuthTokens (the old token no longer verifies) and forgets
    /// its consecutive wrong PINs (`PIN_AUTH_BLOCKED` lifts); credentialManagement's
    /// enumerations end; authenticatorReset's window opens again. The keys, the credentials, the
    /// counter, the PIN and its retry count, the settings are durable and stay.
    pub fn power_cycle(&mut self) {
        self.power_cycle_at(Instant::now());
    }

    /// [`Self::power_cycle`], the power back at `now`.
    pub fn power_cycle_at(&mut self, now: Instant) {
        self.powered_up = now;
        self.pending = None;
        self.next_assertions = None;
        self.enumeration = None;
        self.pin = ClientPinState::power_up(&self.rng);
        self.large_blob_write = None;
        if let Some(uv) = self.uv.as_mut() {
            uv.power_cycle();
        }
        self.u2f.power_cycle();
    }

    fn get_info(&self) -> Step {
        let keys = self.u2f.keys();
        let facts = Facts {
            aaguid: keys.aaguid,
            built_in_uv: self.uv.is_some(),
            resident_keys: self.resident_keys,
            pin_set: keys.pin.is_set(),
            remaining_discoverable: keys.discoverable.remaining(),
            settings: keys.config.get().clone(),
        };
        Step::Done(body(get_info::info(&facts)))
    }

    /// Leaves `operation` waiting for the user (verified when `verify`), and tries it at once.
    pub(super) fn wait(&mut self, operation: Operation, verify: bool, now: Instant) -> Step {
        self.wait_verified(operation, verify, None, now)
    }

    /// Leaves `operation` waiting as [`Self::wait`] does, for a request whose pinUvAuthToken
    /// (`token`) verified the user: no built-in UV then, and no touch either when the token
    /// vouches for the user's presence.
    pub(super) fn wait_verified(
        &mut self,
        operation: Operation,
        verify: bool,
        token: Option<TokenUse>,
        now: Instant,
    ) -> Step {
        let pending = Pending {
            operation,
            verify,
            token,
            deadline: now + self.user_action_timeout,
            uv_attempts: UvAttempts::default(),
        };
        self.advance(pending, now)
    }

    fn presence_for(&mut self, verify: bool) -> &mut Presence {
        match (verify, self.uv.as_mut()) {
            (true, Some(uv)) => uv,
            _ => self.u2f.presence_mut(),
        }
    }

    /// Whether the user is present (the token's presence policy).
    fn user_action(&mut self, now: Instant) -> UserAction {
        let presence = self.u2f.presence_mut();
        if presence.take(now) {
            UserAction::Done
        } else if presence.policy() == PresencePolicy::Deny {
            presence.abandon();
            UserAction::Denied
        } else {
            UserAction::Waiting
        }
    }

    fn advance(&mut self, mut pending: Pending, now: Instant) -> Step {
        let action = match pending.token {
            Some(TokenUse { user_present: true }) => UserAction::Done,
            _ if pending.verify => {
                self.perform_built_in_uv(&mut pending.uv_attempts, &pending.operation, now)
            }
            _ => self.user_action(now),
        };
        let outcome = match action {
            UserAction::Done => Ok(pending.verify || pending.token.is_some()),
            UserAction::Denied => Err(Status::OperationDenied),
            UserAction::Refused(status) => Err(status),
            UserAction::Waiting if now >= pending.deadline => {
                self.presence_for(pending.verify).abandon();
                Err(Status::UserActionTimeout)
            }
            UserAction::Waiting => {
                self.pending = Some(pending);
                return Step::WaitingForUser;
            }
        };
        if pending.token.is_some() && outcome.is_ok() {
            self.pin.spend_after_presence();
        }
        let result = match (pending.operation, outcome) {
            (Operation::Excluded, _) => Err(Status::CredentialExcluded),
            (Operation::PinProbe, Err(_)) => Err(Status::OperationDenied),
            (_, Err(status)) => Err(status),
            (Operation::Selection, Ok(_)) => Ok(Vec::new()),
            (Operation::PinProbe, Ok(_)) if self.u2f.keys().pin.is_set() => Err(Status::PinInvalid),
            (Operation::PinProbe, Ok(_)) => Err(Status::PinNotSet),
            (Operation::UvToken(grant), Ok(_)) => Ok(self.finish_uv_token(*grant, now)),
            (Operation::Make(creation), Ok(verified)) => self.finish_make(*creation, verified),
            (Operation::Get(queue), Ok(verified)) => self.finish_get(queue, verified, now),
            (Operation::Reset, Ok(_)) => self.finish_reset(),
        };
        Step::Done(reply(result))
    }
}

/// CTAP2 status of a keystore failure while signing or storing.
pub(super) fn store_failure(error: keystore::StoreError) -> Status {
    match error {
        keystore::StoreError::DiscoverableFull { .. } => Status::KeyStoreFull,
        _ => Status::Other,
    }
}

/// Room for most replies without growing: an assertion takes about 200 bytes, a credential with
/// its attestation certificate about 800.
const REPLY_CAPACITY: usize = 1024;

/// A successful reply's buffer: the status byte `00`, with room for the map after it.
fn success() -> Vec<u8> {
    let mut reply = Vec::with_capacity(REPLY_CAPACITY);
    reply.push(Status::Ok.byte());
    reply
}

/// A successful reply with a map: the status byte `00`, then the map's canonical CBOR.
pub(super) fn body(map: cbor::Value) -> Vec<u8> {
    let mut reply = success();
    cbor::encode_into(&map, &mut reply);
    reply
}

/// A successful reply whose map `write` puts straight into the buffer (the hot replies, in
/// canonical order by construction).
pub(super) fn written(write: impl FnOnce(&mut ReplyEncoder) -> WriteResult) -> Vec<u8> {
    let mut reply = success();
    // Writing into a Vec cannot fail.
    let _ = write(&mut Encoder::new(ReplyWriter(&mut reply)));
    reply
}
