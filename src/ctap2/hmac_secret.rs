//! hmac-secret (CTAP 2.1 §12.5) and hmac-secret-mc (CTAP 2.2 §12.7): a secret per credential
//! and salt, for disk encryption and WebAuthn's PRF.
//!
//! ```text
//!  input    {1: keyAgreement, 2: saltEnc, 3: saltAuth, 4: pinUvAuthProtocol (absent: 1)}
//!  shared   = decapsulate(keyAgreement) with the token's clientPIN key-agreement key
//!  checks   verify(shared, saltEnc, saltAuth)            else PIN_AUTH_INVALID
//!           decrypt(shared, saltEnc) is 32 or 64 bytes   else INVALID_PARAMETER
//!  output   = encrypt(shared, HMAC-SHA-256(CredRandom, salt1) [‖ HMAC-SHA-256(CredRandom, salt2)])
//!  CredRandom = CredRandomWithUV when the reply's UV flag is set, else CredRandomWithoutUV
//! ```
//! The CredRandoms are derived from the token's master key and the credential id
//! ([`keystore::KeyWrapper::credential_secret`]): nothing is stored, non-discoverable
//! credentials have them as discoverable ones do, and a reset (a new master key) changes them.
//! Everything is checked before the user is asked to touch.
use hmac::{Hmac, Mac};
use keystore::{CredentialSecret, KeyWrapper};
use ring::rand::SystemRandom;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::authenticator::Authenticator;
use super::extensions::HmacSecretInput;
use super::pin_protocol::{PinUvAuthProtocol, SharedSecret};
use super::status::Status;

/// The length of one salt and of one output.
pub const SALT_LEN: usize = 32;

/// An hmac-secret request that passed its checks: the shared secret and the salts.
pub(super) struct HmacSecretRequest {
    shared: SharedSecret,
    /// salt1, or salt1 ‖ salt2.
    salts: Zeroizing<Vec<u8>>,
}

impl Authenticator {
    /// Checks an hmac-secret input (module docs) and keeps what its outputs need.
    pub(super) fn hmac_secret_request(
        &self,
        input: &HmacSecretInput,
    ) -> Result<HmacSecretRequest, Status> {
        let protocol = PinUvAuthProtocol::try_from(input.protocol.unwrap_or(1))?;
        let shared = self.shared_secret(protocol, input.key_agreement)?;
        if !shared.verify(input.salt_enc, input.salt_auth) {
            return Err(Status::PinAuthInvalid);
        }
        let salts = shared
            .decrypt(input.salt_enc)
            .ok_or(Status::InvalidParameter)?;
        if salts.len() != SALT_LEN && salts.len() != 2 * SALT_LEN {
            return Err(Status::InvalidParameter);
        }
        Ok(HmacSecretRequest { shared, salts })
    }
}

impl HmacSecretRequest {
    /// The encrypted output for the credential `id`, with the CredRandom of `verified`.
    pub(super) fn output(
        &self,
        wrapper: &KeyWrapper,
        id: &[u8],
        verified: bool,
        rng: &SystemRandom,
    ) -> Vec<u8> {
        let purpose = if verified {
            CredentialSecret::HmacSecretWithUv
        } else {
            CredentialSecret::HmacSecretWithoutUv
        };
        let cred_random = wrapper.credential_secret(purpose, id);
        let mut outputs = Zeroizing::new(Vec::with_capacity(self.salts.len()));
        for salt in self.salts.chunks(SALT_LEN) {
            let mut mac = Hmac::<Sha256>::new_from_slice(cred_random.as_ref())
                .expect("HMAC takes keys of any length");
            mac.update(salt);
            outputs.extend_from_slice(&mac.finalize().into_bytes());
        }
        self.shared.encrypt(&outputs, rng)
    }
}
