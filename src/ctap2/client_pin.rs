//! authenticatorClientPIN (0x06) and the pinUvAuthToken that makeCredential and getAssertion
//! check (CTAP 2.1 §6.5 "authenticatorClientPIN", §6.5.2 "pinUvAuthToken state", §6.5.5
//! subcommands; §6.1.2 steps 1, 2, 7 and 11; §6.2.2; `shared/spec/CTAP2.md` §7).
//!
//! ```text
//!  request  {1: pinUvAuthProtocol, 2: subCommand, 3: keyAgreement (COSE_Key), 4: pinUvAuthParam,
//!            5: newPinEnc, 6: pinHashEnc, 9: permissions, 10: rpId}
//!  reply    {1: keyAgreement, 2: pinUvAuthToken (encrypted), 3: pinRetries, 4: powerCycleState,
//!            5: uvRetries}
//!
//!  0x01 getPINRetries                               → {3, 4}
//!  0x02 getKeyAgreement                             → {1}
//!  0x03 setPIN     param = authenticate(shared, newPinEnc)
//!  0x04 changePIN  param = authenticate(shared, newPinEnc ‖ pinHashEnc)
//!  0x05 getPinToken                                 → {2}  permissions mc|ga, no RP ID
//!  0x06 getPinUvAuthTokenUsingUvWithPermissions     → {2}  built-in UV (`--uv`) only; its
//!                                                          failures: `super::built_in_uv`
//!  0x07 getUVRetries                                → {5}  built-in UV only: uvRetries as stored
//!  0x09 getPinUvAuthTokenUsingPinWithPermissions    → {2}
//!
//!  newPinEnc  = encrypt(shared, PIN ‖ 00… to 64 bytes)    PIN: at most 63 bytes of UTF-8, at
//!  pinHashEnc = encrypt(shared, LEFT(SHA-256(PIN), 16))    least minPINLength code points (4
//!                                                          unless setMinPINLength raised it)
//!  permissions  0x01 mc  0x02 ga  0x04 cm  0x08 be  0x10 lbw  0x20 acfg
//! ```
//!
//! Durable: the PIN's hash and the retry count, in the keystore (`keystore::pin`), which lowers
//! the count and flushes it before any comparison; minPINLength and forcePINChange, in the
//! token's settings (`keystore::config`, set by authenticatorConfig): while forcePINChange holds,
//! the PIN gives no token (`PIN_POLICY_VIOLATION`, §6.5.5.7) until changePIN sets another one,
//! which clears it. Volatile, made anew at power-up
//! ([`ClientPinState::power_up`]): the key-agreement keys, the pinUvAuthTokens and their state
//! (permissions, RP ID, flags, timers), and the count of consecutive mismatches that answers
//! `PIN_AUTH_BLOCKED` after three until the token is replugged.
//!
//! Each subcommand checks in the spec's order and answers the spec's status for each step; where
//! the spec names none, the choice is said at the step (a PIN operation on a token without a
//! PIN: `PIN_NOT_SET`, as python-fido2 and fido-authenticator expect).
use std::time::{Duration, Instant};

use keystore::{PinCheck, PIN_HASH_LEN};
use ring::rand::SystemRandom;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::authenticator::{body, reply, Authenticator, Operation, Step};
use super::cbor::{self, uint_map, Item, Parameters, Value};
use super::pin_protocol::{
    random_32, KeyAgreementKey, PinUvAuthProtocol, SharedSecret, PIN_UV_AUTH_TOKEN_LEN,
};
use super::request::PinUvAuth;
use super::status::Status;

/// A padded PIN's length: newPinEnc decrypts to exactly this many bytes, and a PIN fills at
/// most all but one of them (§6.5.5.5).
pub const PADDED_PIN_LEN: usize = 64;
/// Consecutive wrong PINs after which the token wants a power cycle (§6.5.5.7).
pub const MISMATCHES_BEFORE_POWER_CYCLE: u8 = 3;
/// How long a pinUvAuthToken waits for its first use (§6.5.2.1, USB: 30 s).
pub const INITIAL_USAGE_LIMIT: Duration = Duration::from_secs(30);
/// How long a pinUvAuthToken lives at most (§6.5.2.1: "SHOULD be ≤ 10 minutes").
pub const MAX_USAGE_PERIOD: Duration = Duration::from_secs(600);
/// How long the user-present flag of a token got through built-in UV stands in for a touch.
pub const USER_PRESENT_LIMIT: Duration = Duration::from_secs(30);

/// The permissions a pinUvAuthToken may carry (§6.5.5.7).
pub mod permission {
    /// makeCredential.
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    /// getAssertion.
    pub const GET_ASSERTION: u8 = 0x02;
    /// credentialManagement.
    pub const CREDENTIAL_MANAGEMENT: u8 = 0x04;
    /// bioEnrollment.
    pub const BIO_ENROLLMENT: u8 = 0x08;
    /// largeBlobWrite.
    pub const LARGE_BLOB_WRITE: u8 = 0x10;
    /// authenticatorConfig.
    pub const AUTHENTICATOR_CONFIG: u8 = 0x20;
    /// persistentCredentialManagementReadOnly (CTAP 2.2).
    pub const PERSISTENT_CREDENTIAL_MANAGEMENT: u8 = 0x40;
    /// What a PIN can grant: the others belong to commands this token does not have
    /// (`UNAUTHORIZED_PERMISSION`).
    pub const GRANTABLE: u8 = MAKE_CREDENTIAL
        | GET_ASSERTION
        | CREDENTIAL_MANAGEMENT
        | LARGE_BLOB_WRITE
        | AUTHENTICATOR_CONFIG;
    /// What built-in UV can grant: not acfg, as getInfo lists no `uvAcfg` (§6.5.5.8).
    pub const GRANTABLE_BY_UV: u8 = GRANTABLE & !AUTHENTICATOR_CONFIG;
    /// What CTAP 2.0's getPinToken grants (§6.5.5.7: "mc and ga").
    pub const LEGACY: u8 = MAKE_CREDENTIAL | GET_ASSERTION;
}

/// The subcommands, with their wire values (§6.5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SubCommand {
    /// getPINRetries.
    GetPinRetries = 0x01,
    /// getKeyAgreement.
    GetKeyAgreement = 0x02,
    /// setPIN.
    SetPin = 0x03,
    /// changePIN.
    ChangePin = 0x04,
    /// getPinToken (CTAP 2.0's).
    GetPinToken = 0x05,
    /// getPinUvAuthTokenUsingUvWithPermissions.
    GetPinUvAuthTokenUsingUvWithPermissions = 0x06,
    /// getUVRetries.
    GetUvRetries = 0x07,
    /// getPinUvAuthTokenUsingPinWithPermissions.
    GetPinUvAuthTokenUsingPinWithPermissions = 0x09,
}

impl TryFrom<u64> for SubCommand {
    type Error = Status;
    fn try_from(value: u64) -> Result<Self, Status> {
        Ok(match value {
            0x01 => Self::GetPinRetries,
            0x02 => Self::GetKeyAgreement,
            0x03 => Self::SetPin,
            0x04 => Self::ChangePin,
            0x05 => Self::GetPinToken,
            0x06 => Self::GetPinUvAuthTokenUsingUvWithPermissions,
            0x07 => Self::GetUvRetries,
            0x09 => Self::GetPinUvAuthTokenUsingPinWithPermissions,
            _ => return Err(Status::InvalidSubcommand),
        })
    }
}

/// An authenticatorClientPIN request: types checked, meaning left to the subcommands.
struct Request<'a> {
    protocol: Option<i64>,
    sub_command: SubCommand,
    key_agreement: Option<&'a Item<'a>>,
    pin_uv_auth_param: Option<&'a [u8]>,
    new_pin_enc: Option<&'a [u8]>,
    pin_hash_enc: Option<&'a [u8]>,
    permissions: Option<u64>,
    rp_id: Option<&'a str>,
}

impl<'a> TryFrom<&'a Parameters<'a>> for Request<'a> {
    type Error = Status;
    fn try_from(params: &'a Parameters<'a>) -> Result<Self, Status> {
        let unsigned = cbor::unsigned;
        let bytes = |key| params.get(key).map(cbor::bytes).transpose();
        let sub_command = unsigned(params.required(0x02)?)?;
        let request = Self {
            protocol: params.get(0x01).map(cbor::integer).transpose()?,
            sub_command: SubCommand::GetPinRetries,
            key_agreement: match params.get(0x03) {
                Some(item) => {
                    cbor::map(item)?;
                    Some(item)
                }
                None => None,
            },
            pin_uv_auth_param: bytes(0x04)?,
            new_pin_enc: bytes(0x05)?,
            pin_hash_enc: bytes(0x06)?,
            permissions: params.get(0x09).map(unsigned).transpose()?,
            rp_id: params.get(0x0A).map(cbor::text).transpose()?,
        };
        Ok(Self {
            sub_command: SubCommand::try_from(sub_command)?,
            ..request
        })
    }
}

/// A required member, or `MISSING_PARAMETER`.
fn required<T>(member: Option<T>) -> Result<T, Status> {
    member.ok_or(Status::MissingParameter)
}

/// The state of the pinUvAuthToken (§6.5.2.1): one for both protocols, each with its own bytes.
#[derive(Default)]
struct TokenState {
    /// When beginUsingPinUvAuthToken ran; `None`: not in use.
    since: Option<Instant>,
    /// Whether it was used since (the initial usage time limit no longer applies).
    used: bool,
    permissions: u8,
    rp_id: Option<String>,
    user_verified: bool,
    user_present: bool,
}

impl TokenState {
    /// Whether the token is in use at `now`: begun, and within its time limits.
    fn in_use(&self, now: Instant) -> bool {
        self.since.is_some_and(|since| {
            let age = now.saturating_duration_since(since);
            age <= MAX_USAGE_PERIOD && (self.used || age <= INITIAL_USAGE_LIMIT)
        })
    }
}

/// What a verified pinUvAuthParam of a makeCredential or getAssertion carries into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TokenUse {
    /// The token was got through built-in UV moments ago: the user was present then, and is
    /// not asked to touch again (§6.1.2 step 13).
    pub user_present: bool,
}

/// A getPinUvAuthTokenUsingUvWithPermissions waiting for built-in UV.
pub(super) struct UvTokenGrant {
    shared: SharedSecret,
    permissions: u8,
    rp_id: Option<String>,
}

/// The volatile clientPIN state of one power-up.
pub(super) struct ClientPinState {
    /// The key-agreement key of each protocol: `[one, two]`.
    key_agreement: [KeyAgreementKey; 2],
    /// The pinUvAuthToken of each protocol: `[one, two]`.
    tokens: [Zeroizing<[u8; PIN_UV_AUTH_TOKEN_LEN]>; 2],
    token: TokenState,
    consecutive_mismatches: u8,
}

fn index(protocol: PinUvAuthProtocol) -> usize {
    match protocol {
        PinUvAuthProtocol::One => 0,
        PinUvAuthProtocol::Two => 1,
    }
}

impl ClientPinState {
    /// The state at power-up (§6.5.4 initialize): new key-agreement keys and tokens, no token
    /// in use, no mismatch counted.
    pub(super) fn power_up(rng: &SystemRandom) -> Self {
        Self {
            key_agreement: [
                KeyAgreementKey::generate(rng),
                KeyAgreementKey::generate(rng),
            ],
            tokens: [random_32(rng), random_32(rng)],
            token: TokenState::default(),
            consecutive_mismatches: 0,
        }
    }

    /// resetPinUvAuthToken for every protocol: new token bytes, none in use.
    fn reset_tokens(&mut self, rng: &SystemRandom) {
        self.tokens = [random_32(rng), random_32(rng)];
        self.token = TokenState::default();
    }

    /// beginUsingPinUvAuthToken with `permissions` and `rp_id`, after a reset.
    fn begin_using(
        &mut self,
        rng: &SystemRandom,
        permissions: u8,
        rp_id: Option<String>,
        user_present: bool,
        now: Instant,
    ) {
        self.reset_tokens(rng);
        self.token = TokenState {
            since: Some(now),
            used: false,
            permissions,
            rp_id,
            user_verified: true,
            user_present,
        };
    }

    /// After a makeCredential or getAssertion that collected user presence with the token
    /// (§6.1.2 step 14, §6.2.2 step 9): its flags and every permission but lbw are spent.
    pub(super) fn spend_after_presence(&mut self) {
        self.token.user_present = false;
        self.token.user_verified = false;
        self.token.permissions &= permission::LARGE_BLOB_WRITE;
    }
}

impl Authenticator {
    /// authenticatorClientPIN: runs the subcommand (§6.5.5).
    pub(super) fn client_pin(&mut self, params: &Parameters, now: Instant) -> Result<Step, Status> {
        let request = Request::try_from(params)?;
        let answer = match request.sub_command {
            SubCommand::GetPinRetries => self.get_pin_retries(),
            SubCommand::GetKeyAgreement => self.get_key_agreement(&request),
            SubCommand::SetPin => self.set_pin(&request),
            SubCommand::ChangePin => self.change_pin(&request),
            SubCommand::GetPinToken => self.get_pin_token(&request, now),
            SubCommand::GetPinUvAuthTokenUsingPinWithPermissions => {
                self.get_pin_token_with_permissions(&request, now)
            }
            SubCommand::GetPinUvAuthTokenUsingUvWithPermissions => {
                return self.get_uv_token(&request, now)
            }
            SubCommand::GetUvRetries => self.get_uv_retries(),
        };
        // setPIN and changePIN answer the status alone.
        Ok(Step::Done(reply(Ok(answer?))))
    }

    /// Whether a PIN or built-in UV protects the token (§6.1.2: "protected by some form of
    /// user verification").
    pub(super) fn protected_by_uv(&self) -> bool {
        self.u2f.keys().pin.is_set() || self.uv.is_some()
    }

    /// The protocol a subcommand names: absent `MISSING_PARAMETER`, unsupported
    /// `INVALID_PARAMETER` (§6.5.5.1).
    fn protocol(request: &Request) -> Result<PinUvAuthProtocol, Status> {
        PinUvAuthProtocol::try_from(required(request.protocol)?)
    }

    fn get_pin_retries(&self) -> Result<Vec<u8>, Status> {
        Ok(body(uint_map([
            (0x03, Value::Integer(self.u2f.keys().pin.retries().into())),
            (
                0x04,
                Value::Bool(self.pin.consecutive_mismatches >= MISMATCHES_BEFORE_POWER_CYCLE),
            ),
        ])))
    }

    fn get_uv_retries(&self) -> Result<Vec<u8>, Status> {
        if self.uv.is_none() {
            return Err(Status::InvalidSubcommand);
        }
        let uv_retries = self.u2f.keys().pin.uv_retries();
        Ok(body(uint_map([(0x05, Value::Integer(uv_retries.into()))])))
    }

    fn get_key_agreement(&self, request: &Request) -> Result<Vec<u8>, Status> {
        let protocol = Self::protocol(request)?;
        let key = self.pin.key_agreement[index(protocol)].cose_key();
        Ok(body(uint_map([(0x01, key)])))
    }

    /// decapsulate(keyAgreement) with the protocol's key-agreement key.
    pub(super) fn shared_secret(
        &self,
        protocol: PinUvAuthProtocol,
        key_agreement: &Item,
    ) -> Result<SharedSecret, Status> {
        self.pin.key_agreement[index(protocol)].decapsulate(protocol, key_agreement)
    }

    /// setPIN (§6.5.5.5).
    fn set_pin(&mut self, request: &Request) -> Result<Vec<u8>, Status> {
        let key_agreement = required(request.key_agreement)?;
        let param = required(request.pin_uv_auth_param)?;
        let new_pin_enc = required(request.new_pin_enc)?;
        let protocol = Self::protocol(request)?;
        if self.u2f.keys().pin.is_set() {
            return Err(Status::PinAuthInvalid);
        }
        let shared = self.shared_secret(protocol, key_agreement)?;
        if !shared.verify(new_pin_enc, param) {
            return Err(Status::PinAuthInvalid);
        }
        let (hash, code_points) = new_pin(&shared, new_pin_enc, self.min_pin_length())?;
        self.u2f
            .keys_mut()
            .pin
            .set(&hash, code_points)
            .map_err(|_| Status::Other)?;
        Ok(Vec::new())
    }

    /// The shortest PIN the token takes now, in code points.
    fn min_pin_length(&self) -> usize {
        self.u2f.keys().config.get().min_pin_length.into()
    }

    /// changePIN (§6.5.5.6).
    fn change_pin(&mut self, request: &Request) -> Result<Vec<u8>, Status> {
        let key_agreement = required(request.key_agreement)?;
        let param = required(request.pin_uv_auth_param)?;
        let new_pin_enc = required(request.new_pin_enc)?;
        let pin_hash_enc = required(request.pin_hash_enc)?;
        let protocol = Self::protocol(request)?;
        self.pin_usable()?;
        let shared = self.shared_secret(protocol, key_agreement)?;
        if !shared.verify(&[new_pin_enc, pin_hash_enc].concat(), param) {
            return Err(Status::PinAuthInvalid);
        }
        self.check_pin(protocol, &shared, pin_hash_enc)?;
        let (hash, code_points) = new_pin(&shared, new_pin_enc, self.min_pin_length())?;
        let keys = self.u2f.keys_mut();
        let forced = keys.config.get().force_pin_change;
        if forced && keys.pin.is_current(&hash) {
            return Err(Status::PinPolicyViolation);
        }
        keys.pin
            .set(&hash, code_points)
            .map_err(|_| Status::Other)?;
        if forced {
            let mut config = keys.config.get().clone();
            config.force_pin_change = false;
            keys.config.set(config).map_err(|_| Status::Other)?;
        }
        self.pin.reset_tokens(&self.rng);
        Ok(Vec::new())
    }

    /// getPinToken (§6.5.5.7, CTAP 2.0's): permissions mc and ga, no RP ID.
    fn get_pin_token(&mut self, request: &Request, now: Instant) -> Result<Vec<u8>, Status> {
        let key_agreement = required(request.key_agreement)?;
        let pin_hash_enc = required(request.pin_hash_enc)?;
        let protocol = Self::protocol(request)?;
        if request.permissions.is_some() || request.rp_id.is_some() {
            return Err(Status::InvalidParameter);
        }
        self.grant_pin_token(
            protocol,
            key_agreement,
            pin_hash_enc,
            permission::LEGACY,
            None,
            now,
        )
    }

    /// getPinUvAuthTokenUsingPinWithPermissions (§6.5.5.7).
    fn get_pin_token_with_permissions(
        &mut self,
        request: &Request,
        now: Instant,
    ) -> Result<Vec<u8>, Status> {
        let key_agreement = required(request.key_agreement)?;
        let pin_hash_enc = required(request.pin_hash_enc)?;
        let permissions = required(request.permissions)?;
        let protocol = Self::protocol(request)?;
        let permissions = check_permissions(permissions, permission::GRANTABLE)?;
        let rp_id = request.rp_id.map(str::to_owned);
        self.grant_pin_token(
            protocol,
            key_agreement,
            pin_hash_enc,
            permissions,
            rp_id,
            now,
        )
    }

    /// The steps getPinToken and getPinUvAuthTokenUsingPinWithPermissions share: the PIN
    /// checked, a forced change refused (`PIN_POLICY_VIOLATION`), then a new token in use,
    /// encrypted for the platform.
    fn grant_pin_token(
        &mut self,
        protocol: PinUvAuthProtocol,
        key_agreement: &Item,
        pin_hash_enc: &[u8],
        permissions: u8,
        rp_id: Option<String>,
        now: Instant,
    ) -> Result<Vec<u8>, Status> {
        self.pin_usable()?;
        let shared = self.shared_secret(protocol, key_agreement)?;
        self.check_pin(protocol, &shared, pin_hash_enc)?;
        if self.u2f.keys().config.get().force_pin_change {
            return Err(Status::PinPolicyViolation);
        }
        self.pin
            .begin_using(&self.rng, permissions, rp_id, false, now);
        Ok(self.encrypted_token(protocol, &shared))
    }

    /// getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.8): the token waits for built-in UV.
    fn get_uv_token(&mut self, request: &Request, now: Instant) -> Result<Step, Status> {
        if self.uv.is_none() {
            return Err(Status::InvalidSubcommand);
        }
        let key_agreement = required(request.key_agreement)?;
        let permissions = required(request.permissions)?;
        let protocol = Self::protocol(request)?;
        let permissions = check_permissions(permissions, permission::GRANTABLE_BY_UV)?;
        let shared = self.shared_secret(protocol, key_agreement)?;
        let grant = UvTokenGrant {
            shared,
            permissions,
            rp_id: request.rp_id.map(str::to_owned),
        };
        Ok(self.wait(Operation::UvToken(Box::new(grant)), true, now))
    }

    /// The user was verified by built-in UV (and, sharing the button, was present): the token.
    pub(super) fn finish_uv_token(&mut self, grant: UvTokenGrant, now: Instant) -> Vec<u8> {
        let UvTokenGrant {
            shared,
            permissions,
            rp_id,
        } = grant;
        self.pin
            .begin_using(&self.rng, permissions, rp_id, true, now);
        self.encrypted_token(shared.protocol(), &shared)
    }

    fn encrypted_token(&self, protocol: PinUvAuthProtocol, shared: &SharedSecret) -> Vec<u8> {
        let token = &self.pin.tokens[index(protocol)];
        body(uint_map([(
            0x02,
            Value::Bytes(shared.encrypt(token.as_ref(), &self.rng)),
        )]))
    }

    /// A PIN to check: one set (`PIN_NOT_SET`), not blocked (`PIN_BLOCKED`).
    fn pin_usable(&self) -> Result<(), Status> {
        let pin = &self.u2f.keys().pin;
        if !pin.is_set() {
            return Err(Status::PinNotSet);
        }
        if pin.retries() == 0 {
            return Err(Status::PinBlocked);
        }
        Ok(())
    }

    /// Compares the PIN hash the platform sent with the token's (§6.5.5.7 steps on pinHashEnc):
    /// after three mismatches in a row nothing is compared until a power cycle
    /// (`PIN_AUTH_BLOCKED`); otherwise an attempt is spent durably first (the keystore's
    /// [`keystore::PinState::check`]). A mismatch makes a new key-agreement key for the
    /// protocol, and answers `PIN_BLOCKED` when no attempt is left, `PIN_AUTH_BLOCKED` at the
    /// third in a row, `PIN_INVALID` otherwise. A pinHashEnc that does not decrypt is a wrong
    /// PIN, counted as one.
    fn check_pin(
        &mut self,
        protocol: PinUvAuthProtocol,
        shared: &SharedSecret,
        pin_hash_enc: &[u8],
    ) -> Result<(), Status> {
        if self.pin.consecutive_mismatches >= MISMATCHES_BEFORE_POWER_CYCLE {
            return Err(Status::PinAuthBlocked);
        }
        let candidate = shared.decrypt(pin_hash_enc).unwrap_or_default();
        let checked = self
            .u2f
            .keys_mut()
            .pin
            .check(&candidate)
            .map_err(|_| Status::Other)?;
        match checked {
            PinCheck::Correct => {
                self.pin.consecutive_mismatches = 0;
                Ok(())
            }
            PinCheck::NotSet => Err(Status::PinNotSet),
            PinCheck::Blocked => Err(Status::PinBlocked),
            PinCheck::Wrong { retries } => {
                self.pin.key_agreement[index(protocol)] = KeyAgreementKey::generate(&self.rng);
                self.pin.consecutive_mismatches += 1;
                if retries == 0 {
                    Err(Status::PinBlocked)
                } else if self.pin.consecutive_mismatches >= MISMATCHES_BEFORE_POWER_CYCLE {
                    Err(Status::PinAuthBlocked)
                } else {
                    Err(Status::PinInvalid)
                }
            }
        }
    }

    /// Steps 1 and 2 of makeCredential and getAssertion (§6.1.2, §6.2.2) for a pinUvAuthParam
    /// that is not the zero-length probe: the protocol is required (`MISSING_PARAMETER`) and
    /// must be one the token speaks (`INVALID_PARAMETER`). `None` without a pinUvAuthParam.
    pub(super) fn pin_uv_auth_protocol<'p>(
        pin_uv_auth: PinUvAuth<'p>,
    ) -> Result<Option<(PinUvAuthProtocol, &'p [u8])>, Status> {
        match pin_uv_auth {
            PinUvAuth::Absent | PinUvAuth::Empty => Ok(None),
            PinUvAuth::Given { protocol, param } => {
                let protocol = PinUvAuthProtocol::try_from(required(protocol)?)?;
                Ok(Some((protocol, param)))
            }
        }
    }

    /// A pinUvAuthParam of credentialManagement, authenticatorConfig or authenticatorLargeBlobs'
    /// set (§6.8, §6.11, §6.10.2 step 3): it must be
    /// authenticate(pinUvAuthToken, `message`) of the token in use, and the token must have
    /// `permission`; else `PIN_AUTH_INVALID`. Returns the RP ID the token is bound to, which the
    /// caller checks as its subcommand wants.
    pub(super) fn authorize(
        &mut self,
        (protocol, param): (PinUvAuthProtocol, &[u8]),
        message: &[u8],
        permission: u8,
        now: Instant,
    ) -> Result<Option<String>, Status> {
        let state = &self.pin.token;
        let authentic = state.in_use(now)
            && protocol.verify(self.pin.tokens[index(protocol)].as_ref(), message, param);
        if !authentic || state.permissions & permission == 0 {
            return Err(Status::PinAuthInvalid);
        }
        self.pin.token.used = true;
        Ok(self.pin.token.rp_id.clone())
    }

    /// The pinUvAuthParam and pinUvAuthProtocol of a command that requires them (§6.8, §6.11):
    /// no param `PUAT_REQUIRED`, no protocol `MISSING_PARAMETER`, an unsupported one
    /// `INVALID_PARAMETER`.
    pub(super) fn required_pin_uv_auth(
        param: Option<&[u8]>,
        protocol: Option<i64>,
    ) -> Result<(PinUvAuthProtocol, &[u8]), Status> {
        let param = param.ok_or(Status::PuatRequired)?;
        Ok((PinUvAuthProtocol::try_from(required(protocol)?)?, param))
    }

    /// Step 11 of makeCredential, step 6 of getAssertion: the pinUvAuthParam must be
    /// authenticate(pinUvAuthToken, clientDataHash) of the token in use, with `permission`, for
    /// `rp_id` (or for no RP yet: the token is bound to it now), the user verified; else
    /// `PIN_AUTH_INVALID`. A token that has neither a PIN nor built-in UV cannot have a token:
    /// `PIN_NOT_SET`.
    pub(super) fn use_token(
        &mut self,
        (protocol, param): (PinUvAuthProtocol, &[u8]),
        client_data_hash: &[u8; 32],
        permission: u8,
        rp_id: &str,
        now: Instant,
    ) -> Result<TokenUse, Status> {
        if !self.protected_by_uv() {
            return Err(Status::PinNotSet);
        }
        let state = &self.pin.token;
        let authentic = state.in_use(now)
            && protocol.verify(
                self.pin.tokens[index(protocol)].as_ref(),
                client_data_hash,
                param,
            );
        let allowed = state.permissions & permission != 0
            && state.rp_id.as_deref().is_none_or(|bound| bound == rp_id)
            && state.user_verified;
        if !(authentic && allowed) {
            return Err(Status::PinAuthInvalid);
        }
        let since = state.since;
        let token = &mut self.pin.token;
        token.rp_id.get_or_insert_with(|| rp_id.to_owned());
        token.used = true;
        let fresh = since.is_some_and(|s| now.saturating_duration_since(s) <= USER_PRESENT_LIMIT);
        Ok(TokenUse {
            user_present: token.user_present && fresh,
        })
    }
}

/// The permissions of a request for a token with permissions: none `INVALID_PARAMETER`; one
/// outside `grantable` (be, pcmr: no command for them; acfg by built-in UV)
/// `UNAUTHORIZED_PERMISSION`; bits no version of the spec defines are ignored.
fn check_permissions(requested: u64, grantable: u8) -> Result<u8, Status> {
    if requested == 0 {
        return Err(Status::InvalidParameter);
    }
    let known = (requested & 0x7F) as u8;
    if known & !grantable != 0 {
        return Err(Status::UnauthorizedPermission);
    }
    if known == 0 {
        return Err(Status::InvalidParameter);
    }
    Ok(known)
}

/// The new PIN in newPinEnc (§6.5.5.5 steps 6 to 8): it must decrypt (`PIN_AUTH_INVALID`) to
/// exactly 64 bytes (`INVALID_PARAMETER`), then pass [`check_new_pin`] without its trailing zero
/// bytes.
fn new_pin(
    shared: &SharedSecret,
    new_pin_enc: &[u8],
    min_length: usize,
) -> Result<([u8; PIN_HASH_LEN], u8), Status> {
    let padded = shared.decrypt(new_pin_enc).ok_or(Status::PinAuthInvalid)?;
    if padded.len() != PADDED_PIN_LEN {
        return Err(Status::InvalidParameter);
    }
    let length = padded
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    check_new_pin(&padded[..length], min_length)
}

/// The rules of a new PIN (§6.5.5.5 step 8; `vu2f token pin` too): UTF-8 of at least
/// `min_length` code points and at most 63 bytes, else `PIN_POLICY_VIOLATION`. Returns
/// LEFT(SHA-256(PIN), 16) and the PIN's length in code points; the PIN goes no further.
pub fn check_new_pin(pin: &[u8], min_length: usize) -> Result<([u8; PIN_HASH_LEN], u8), Status> {
    let code_points = std::str::from_utf8(pin)
        .map_err(|_| Status::PinPolicyViolation)?
        .chars()
        .count();
    if code_points < min_length || pin.len() >= PADDED_PIN_LEN {
        return Err(Status::PinPolicyViolation);
    }
    let digest = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(pin)));
    let mut hash = [0u8; PIN_HASH_LEN];
    hash.copy_from_slice(&digest[..PIN_HASH_LEN]);
    // At most 63 code points: the length fits.
    Ok((hash, code_points as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_refused_as_the_spec_says() {
        let pin = permission::GRANTABLE;
        assert_eq!(check_permissions(0, pin), Err(Status::InvalidParameter));
        assert_eq!(check_permissions(0x03, pin), Ok(0x03));
        assert_eq!(check_permissions(0x02, pin), Ok(0x02));
        assert_eq!(check_permissions(0x24, pin), Ok(0x24), "cm and acfg");
        assert_eq!(check_permissions(0x10, pin), Ok(0x10), "lbw");
        for unsupported in [0x08, 0x40, 0x0C] {
            assert_eq!(
                check_permissions(unsupported, pin),
                Err(Status::UnauthorizedPermission),
                "{unsupported:#x}"
            );
        }
        assert_eq!(
            check_permissions(0x20, permission::GRANTABLE_BY_UV),
            Err(Status::UnauthorizedPermission),
            "no uvAcfg"
        );
        assert_eq!(
            check_permissions(0x04, permission::GRANTABLE_BY_UV),
            Ok(0x04)
        );
        assert_eq!(
            check_permissions(0x81, pin),
            Ok(0x01),
            "an undefined bit is ignored"
        );
        assert_eq!(check_permissions(0x100, pin), Err(Status::InvalidParameter));
    }

    #[test]
    fn subcommands_have_their_wire_values() {
        assert_eq!(
            SubCommand::try_from(0x09),
            Ok(SubCommand::GetPinUvAuthTokenUsingPinWithPermissions)
        );
        assert_eq!(SubCommand::try_from(0x08), Err(Status::InvalidSubcommand));
        assert_eq!(SubCommand::GetUvRetries as u8, 0x07);
    }

    #[test]
    fn a_token_times_out_unused_and_at_its_limit() {
        let start = Instant::now();
        let mut state = TokenState {
            since: Some(start),
            ..TokenState::default()
        };
        assert!(state.in_use(start + INITIAL_USAGE_LIMIT));
        assert!(!state.in_use(start + INITIAL_USAGE_LIMIT + Duration::from_millis(1)));
        state.used = true;
        assert!(state.in_use(start + MAX_USAGE_PERIOD));
        assert!(!state.in_use(start + MAX_USAGE_PERIOD + Duration::from_millis(1)));
        assert!(!TokenState::default().in_use(start));
    }
}
