//! The U2F authenticator: REGISTER, AUTHENTICATE and VERSION over one token's keys (FIDO U2F raw
//! message formats v1.2, sections 4 to 6).
//!
//! ```text
//!  REGISTER     data: challenge param (32) ‖ application param (32)
//!        reply: 05 ‖ public key (65) ‖ L ‖ key handle (L) ‖ attestation cert ‖ signature
//!               signed by the attestation key: 00 ‖ app ‖ challenge ‖ key handle ‖ public key
//!  AUTHENTICATE data: challenge param (32) ‖ application param (32) ‖ L ‖ key handle (L)
//!        P1:    03 enforce presence and sign, 07 check only, 08 sign without presence
//!        reply: flags ‖ counter (4, big-endian) ‖ signature
//!               signed by the credential key: app ‖ flags ‖ counter ‖ challenge
//!  VERSION      no data; reply "U2F_V2"
//! ```
//! Every reply ends with a status word (see [`StatusWord`]).
use std::time::Instant;

use keystore::{CredentialKey, TokenKeys, KEY_HANDLE_LEN};
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;

use super::apdu::{Apdu, Instruction};
use super::faults::Faults;
use super::presence::Presence;
use super::status::StatusWord;

/// The version string of U2F 1.2 over HID.
pub const VERSION: &[u8] = b"U2F_V2";
/// Flags byte bit 0: the user was present.
pub const FLAG_USER_PRESENT: u8 = 0x01;
/// Unwrapped credential keys kept per token, most recently used first.
const KEY_CACHE_SLOTS: usize = 4;

/// The control byte (P1) of AUTHENTICATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Control {
    /// Require a touch, then sign.
    EnforcePresenceAndSign = 0x03,
    /// Only say whether the handle is ours (answered with `0x6985` when it is).
    CheckOnly = 0x07,
    /// Sign without requiring a touch; the flags byte says none was given.
    DontEnforcePresenceAndSign = 0x08,
}

impl TryFrom<u8> for Control {
    type Error = StatusWord;
    fn try_from(p1: u8) -> Result<Self, StatusWord> {
        match p1 {
            0x03 => Ok(Self::EnforcePresenceAndSign),
            0x07 => Ok(Self::CheckOnly),
            0x08 => Ok(Self::DontEnforcePresenceAndSign),
            _ => Err(StatusWord::WrongData),
        }
    }
}

struct CachedKey {
    app_param: [u8; 32],
    key_handle: [u8; KEY_HANDLE_LEN],
    signing_key: EcdsaKeyPair,
}

/// One token's U2F engine.
pub struct Authenticator {
    keys: TokenKeys,
    presence: Presence,
    key_cache: Vec<CachedKey>,
    rng: SystemRandom,
    faults: Faults,
}

fn split_32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    out
}

impl Authenticator {
    /// An engine over a loaded token with a presence policy.
    pub fn new(keys: TokenKeys, presence: Presence) -> Self {
        Self {
            keys,
            presence,
            key_cache: Vec::new(),
            rng: SystemRandom::new(),
            faults: Faults::default(),
        }
    }

    /// The faults armed on the token (`super::faults`).
    pub fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.keys.name
    }

    /// The token's presence (its button can be pressed from elsewhere).
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// The token's keys: for the CTAP2 engine beside this one, and to read (the automation
    /// API, tests).
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// The token's keys, mutable (the counter, discoverable credentials).
    pub(crate) fn keys_mut(&mut self) -> &mut TokenKeys {
        &mut self.keys
    }

    /// The token's presence, to wait on.
    pub(crate) fn presence_mut(&mut self) -> &mut Presence {
        &mut self.presence
    }

    /// The token lost power and got it back (`vu2f replug`): the touch is forgotten (a press
    /// before does not count after), and so are the unwrapped keys of the cache, as a key's RAM
    /// would be. The keys and the counter are durable and stay.
    pub fn power_cycle(&mut self) {
        self.presence.power_cycle();
        self.key_cache.clear();
    }

    /// Forgets the unwrapped keys of the cache: the credentials they belong to were deleted, or
    /// the master key changed (CTAP2's credentialManagement and authenticatorReset).
    pub(crate) fn forget_cached_keys(&mut self) {
        self.key_cache.clear();
    }

    /// How many times the counter flushed the store so far.
    pub fn counter_flushes(&self) -> u64 {
        self.keys.counter.flushes()
    }

    /// Processes one command APDU and returns the response: data ‖ SW1 SW2.
    pub fn process(&mut self, apdu: &[u8], now: Instant) -> Vec<u8> {
        let mut response = Vec::new();
        let status = match self.dispatch(apdu, now, &mut response) {
            Ok(()) => StatusWord::NoError,
            Err(status) => {
                response.clear();
                status
            }
        };
        response.extend_from_slice(&status.to_bytes());
        response
    }

    fn dispatch(
        &mut self,
        bytes: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), StatusWord> {
        let apdu = Apdu::try_from(bytes)?;
        match Instruction::try_from(apdu.ins)? {
            Instruction::Version if apdu.data.is_empty() => {
                out.extend_from_slice(VERSION);
                Ok(())
            }
            Instruction::Version => Err(StatusWord::WrongLength),
            Instruction::Register | Instruction::Authenticate
                if self.keys.config.get().always_uv =>
            {
                Err(StatusWord::CommandNotAllowed)
            }
            Instruction::Register => self.register(apdu.data, now, out),
            Instruction::Authenticate => self.authenticate(apdu.p1, apdu.data, now, out),
        }
    }

    fn register(&mut self, data: &[u8], now: Instant, out: &mut Vec<u8>) -> Result<(), StatusWord> {
        if data.len() != 64 {
            return Err(StatusWord::WrongLength);
        }
        let (challenge, app) = (split_32(data), split_32(&data[32..]));
        if !self.presence.take(now) {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        let credential = CredentialKey::generate(&self.rng)?;
        let key_handle = self.keys.wrapper.wrap(&credential, &app, &self.rng)?;

        let mut signed = Vec::with_capacity(1 + 32 + 32 + KEY_HANDLE_LEN + 65);
        signed.push(0x00);
        signed.extend_from_slice(&app);
        signed.extend_from_slice(&challenge);
        signed.extend_from_slice(&key_handle);
        signed.extend_from_slice(&credential.public_key);
        let signature = self.keys.attestation.sign(&self.rng, &signed)?;

        let certificate = self.keys.attestation.certificate_der();
        out.reserve(1 + 65 + 1 + KEY_HANDLE_LEN + certificate.len() + signature.len() + 2);
        out.push(0x05);
        out.extend_from_slice(&credential.public_key);
        out.push(KEY_HANDLE_LEN as u8);
        out.extend_from_slice(&key_handle);
        out.extend_from_slice(certificate);
        out.extend_from_slice(&signature);
        Ok(())
    }

    /// Whether the key of a handle for `app` is in the cache (so the handle is ours), and the
    /// handle's credential was not removed.
    pub(crate) fn has_cached(&self, app: &[u8; 32], key_handle: &[u8]) -> bool {
        self.key_cache
            .iter()
            .any(|c| &c.app_param == app && c.key_handle[..] == *key_handle)
            && self.keys.discoverable.handle_of(key_handle).is_some()
    }

    /// The signing key of a handle, from the cache or by unwrapping it (CTAP2 signs with U2F
    /// key handles too: they are its ES256 credential ids). An imported credential's id opens
    /// as the handle its record keeps, and a removed credential's is not ours
    /// (`keystore::discoverable`).
    pub(crate) fn signing_key(
        &mut self,
        app: &[u8; 32],
        key_handle: &[u8],
    ) -> Result<&EcdsaKeyPair, StatusWord> {
        let opened_as = self
            .keys
            .discoverable
            .handle_of(key_handle)
            .ok_or(StatusWord::WrongData)?;
        let imported = (opened_as != key_handle).then(|| opened_as.to_vec());
        let key_handle = imported.as_deref().unwrap_or(key_handle);
        let hit = self
            .key_cache
            .iter()
            .position(|c| &c.app_param == app && c.key_handle[..] == *key_handle);
        let index = match hit {
            Some(index) => index,
            None => {
                let credential = self.keys.wrapper.unwrap(key_handle, app)?;
                let signing_key = credential.signing_key(&self.rng)?;
                if self.key_cache.len() == KEY_CACHE_SLOTS {
                    self.key_cache.pop();
                } else {
                    // One slot at a time: most tokens only ever use one credential.
                    self.key_cache.reserve_exact(1);
                }
                let mut handle = [0u8; KEY_HANDLE_LEN];
                handle.copy_from_slice(key_handle);
                self.key_cache.insert(
                    0,
                    CachedKey {
                        app_param: *app,
                        key_handle: handle,
                        signing_key,
                    },
                );
                0
            }
        };
        if index != 0 {
            let entry = self.key_cache.remove(index);
            self.key_cache.insert(0, entry);
        }
        Ok(&self.key_cache[0].signing_key)
    }

    fn authenticate(
        &mut self,
        p1: u8,
        data: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), StatusWord> {
        let [header @ .., handle_len] = data.get(..65).ok_or(StatusWord::WrongLength)? else {
            return Err(StatusWord::WrongLength);
        };
        let key_handle = &data[65..];
        if key_handle.len() != usize::from(*handle_len) {
            return Err(StatusWord::WrongLength);
        }
        let (challenge, app) = (split_32(header), split_32(&header[32..]));
        let control = Control::try_from(p1)?;
        self.signing_key(&app, key_handle)?;
        let flags = match control {
            Control::CheckOnly => return Err(StatusWord::ConditionsNotSatisfied),
            Control::EnforcePresenceAndSign if self.presence.take(now) => FLAG_USER_PRESENT,
            Control::EnforcePresenceAndSign => return Err(StatusWord::ConditionsNotSatisfied),
            Control::DontEnforcePresenceAndSign => 0,
        };
        let counter = self.keys.counter.next_value()?;
        self.keys
            .discoverable
            .note_signature(key_handle, counter)
            .map_err(|_| StatusWord::NoPreciseDiagnosis)?;
        let user_present = flags & FLAG_USER_PRESENT != 0;
        let counter = self.faults.counter_for(counter, user_present).to_be_bytes();

        let mut signed = [0u8; 32 + 1 + 4 + 32];
        signed[..32].copy_from_slice(&app);
        signed[32] = flags;
        signed[33..37].copy_from_slice(&counter);
        signed[37..].copy_from_slice(&challenge);
        let message = self.faults.message_for(&signed, user_present);
        let signature = self.key_cache[0]
            .signing_key
            .sign(&self.rng, &message)
            .map_err(|_| StatusWord::NoPreciseDiagnosis)?;

        out.push(flags);
        out.extend_from_slice(&counter);
        out.extend_from_slice(signature.as_ref());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::u2f::messages::{self, RegistrationResponse};
    use crate::u2f::PresencePolicy;

    #[test]
    fn a_power_cycle_empties_the_key_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = keystore::Store::open(&dir.path().join("store")).unwrap();
        store
            .create_token("t", keystore::TokenOptions::default())
            .unwrap();
        let presence = Presence::new(PresencePolicy::Auto);
        let mut token = Authenticator::new(store.load("t").unwrap(), presence);
        let app = messages::app_param("https://cache.vu2f.invalid");
        let request = messages::register_request(&[1; 32], &app);
        let response = token.process(&request, Instant::now());
        let registration =
            RegistrationResponse::try_from(messages::split_status(&response).unwrap()).unwrap();
        token.signing_key(&app, &registration.key_handle).unwrap();
        assert!(token.has_cached(&app, &registration.key_handle));
        token.power_cycle();
        assert!(!token.has_cached(&app, &registration.key_handle));
    }
}
