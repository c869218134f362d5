//! Wrapped key handles (`DESIGN.md`, "Key handles are wrapped").
//!
//! A U2F key handle is opaque to the host (U2F raw message formats v1.2, section 4.3). vu2f stores no
//! per-credential state: the credential key pair travels inside the handle, sealed with the token's
//! master key (AES-256-GCM), with the application parameter as associated data, so a handle presented
//! with another appId, forged, or from another token fails to open.
//!
//! ```text
//!  +---------+-----------+--------------------------------------------+----------+
//!  | version | nonce     | AES-256-GCM( private scalar ‖ public point) | GCM tag  |
//!  | 1 byte  | 12 bytes  | 32 + 65 bytes                               | 16 bytes |
//!  +---------+-----------+--------------------------------------------+----------+
//!  associated data: version ‖ application parameter (32 bytes)           = 126 bytes
//! ```
//!
//! The public point rides along because ring builds a signing key from both halves; carrying it
//! saves a scalar multiplication in software on every cache miss.
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use crate::error::{Result, StoreError};
use zeroize::Zeroize;

const VERSION: u8 = 1;
const PRIVATE_LEN: usize = 32;
/// Length of an uncompressed P-256 point: `0x04 ‖ X ‖ Y`.
pub const PUBLIC_KEY_LEN: usize = 65;
const TAG_LEN: usize = 16;
/// The length of every key handle this token issues.
pub const KEY_HANDLE_LEN: usize = 1 + NONCE_LEN + PRIVATE_LEN + PUBLIC_KEY_LEN + TAG_LEN;

/// A credential key pair in raw form: what a key handle carries.
pub struct CredentialKey {
    /// The private scalar, big-endian.
    pub private_key: [u8; PRIVATE_LEN],
    /// The public point, uncompressed SEC1.
    pub public_key: [u8; PUBLIC_KEY_LEN],
}

impl Drop for CredentialKey {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

impl CredentialKey {
    /// Generates a fresh P-256 key pair.
    pub fn generate(rng: &SystemRandom) -> Result<Self> {
        let crypto = |what: &str| StoreError::Crypto(format!("credential key generation: {what}"));
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
            .map_err(|_| crypto("no randomness"))?;
        let info = pkcs8::PrivateKeyInfo::try_from(document.as_ref())
            .map_err(|e| crypto(&format!("PKCS#8: {e}")))?;
        let ec = sec1::EcPrivateKey::try_from(info.private_key)
            .map_err(|e| crypto(&format!("SEC1: {e}")))?;
        let private_key = ec
            .private_key
            .try_into()
            .map_err(|_| crypto("scalar length"))?;
        let public_key = ec
            .public_key
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| crypto("public key missing"))?;
        Ok(Self {
            private_key,
            public_key,
        })
    }

    /// Builds ring's signing key from the two halves (ring checks that they belong together).
    pub fn signing_key(&self, rng: &SystemRandom) -> Result<EcdsaKeyPair> {
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &self.private_key,
            &self.public_key,
            rng,
        )
        .map_err(|e| StoreError::Crypto(format!("credential key rejected: {e}")))
    }

    /// The public key of a ring key pair, uncompressed.
    pub fn public_key_of(pair: &EcdsaKeyPair) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(pair.public_key().as_ref());
        out
    }
}

/// Why a key handle was refused. The U2F layer answers all of them with `0x6A80`, except a
/// length this token never issues, which real keys answer with `0x6700`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// The handle is not [`KEY_HANDLE_LEN`] bytes long.
    #[error("key handle has the wrong length")]
    WrongLength,
    /// The handle is not ours, was altered, or is bound to another application parameter.
    #[error("key handle was not issued by this token for this application")]
    NotOurs,
}

/// Seals and opens key handles with one token's master key.
///
/// It keeps the 32-byte key and expands it for each operation (well under a microsecond with
/// AES-NI) rather than keeping ring's 544-byte expanded key: a token is opened only on a key
/// cache miss or a registration, and a process may hold 100,000 tokens.
pub struct KeyWrapper {
    master_key: [u8; 32],
}

impl Drop for KeyWrapper {
    fn drop(&mut self) {
        self.master_key.zeroize();
    }
}

impl KeyWrapper {
    /// A wrapper over a 32-byte master key.
    pub fn new(master_key: &[u8; 32]) -> Self {
        Self {
            master_key: *master_key,
        }
    }

    fn key(&self) -> LessSafeKey {
        let unbound =
            UnboundKey::new(&AES_256_GCM, &self.master_key).expect("AES-256 takes 32-byte keys");
        LessSafeKey::new(unbound)
    }

    fn aad(app_param: &[u8; 32]) -> [u8; 33] {
        let mut aad = [0u8; 33];
        aad[0] = VERSION;
        aad[1..].copy_from_slice(app_param);
        aad
    }

    /// Seals `credential` into a key handle bound to `app_param`.
    pub fn wrap(
        &self,
        credential: &CredentialKey,
        app_param: &[u8; 32],
        rng: &SystemRandom,
    ) -> Result<[u8; KEY_HANDLE_LEN]> {
        let mut handle = [0u8; KEY_HANDLE_LEN];
        handle[0] = VERSION;
        rng.fill(&mut handle[1..1 + NONCE_LEN])
            .map_err(|_| StoreError::Crypto("no randomness for a nonce".into()))?;
        let nonce = Nonce::try_assume_unique_for_key(&handle[1..1 + NONCE_LEN])
            .map_err(|_| StoreError::Crypto("nonce length".into()))?;
        let body_start = 1 + NONCE_LEN;
        let tag_start = KEY_HANDLE_LEN - TAG_LEN;
        let body = &mut handle[body_start..tag_start];
        body[..PRIVATE_LEN].copy_from_slice(&credential.private_key);
        body[PRIVATE_LEN..].copy_from_slice(&credential.public_key);
        let tag = self
            .key()
            .seal_in_place_separate_tag(nonce, Aad::from(Self::aad(app_param)), body)
            .map_err(|_| StoreError::Crypto("sealing a key handle".into()))?;
        handle[tag_start..].copy_from_slice(tag.as_ref());
        Ok(handle)
    }

    /// Opens a key handle presented with `app_param`.
    pub fn unwrap(
        &self,
        handle: &[u8],
        app_param: &[u8; 32],
    ) -> Result<CredentialKey, UnwrapError> {
        if handle.len() != KEY_HANDLE_LEN {
            return Err(UnwrapError::WrongLength);
        }
        if handle[0] != VERSION {
            return Err(UnwrapError::NotOurs);
        }
        let nonce = Nonce::try_assume_unique_for_key(&handle[1..1 + NONCE_LEN])
            .map_err(|_| UnwrapError::NotOurs)?;
        let mut sealed = [0u8; PRIVATE_LEN + PUBLIC_KEY_LEN + TAG_LEN];
        sealed.copy_from_slice(&handle[1 + NONCE_LEN..]);
        let plain = self
            .key()
            .open_in_place(nonce, Aad::from(Self::aad(app_param)), &mut sealed)
            .map_err(|_| UnwrapError::NotOurs)?;
        let mut credential = CredentialKey {
            private_key: [0u8; PRIVATE_LEN],
            public_key: [0u8; PUBLIC_KEY_LEN],
        };
        credential
            .private_key
            .copy_from_slice(&plain[..PRIVATE_LEN]);
        credential.public_key.copy_from_slice(&plain[PRIVATE_LEN..]);
        sealed.zeroize();
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapper(byte: u8) -> KeyWrapper {
        KeyWrapper::new(&[byte; 32])
    }

    #[test]
    fn round_trip_and_binding() {
        let rng = SystemRandom::new();
        let credential = CredentialKey::generate(&rng).unwrap();
        let app = [7u8; 32];
        let handle = wrapper(1).wrap(&credential, &app, &rng).unwrap();
        assert_eq!(handle.len(), KEY_HANDLE_LEN);

        let opened = wrapper(1).unwrap(&handle, &app).unwrap();
        assert_eq!(opened.private_key, credential.private_key);
        assert_eq!(opened.public_key, credential.public_key);
        opened.signing_key(&rng).expect("halves belong together");

        assert_eq!(
            wrapper(1).unwrap(&handle, &[8u8; 32]).err(),
            Some(UnwrapError::NotOurs)
        );
        assert_eq!(
            wrapper(2).unwrap(&handle, &app).err(),
            Some(UnwrapError::NotOurs)
        );
        assert_eq!(
            wrapper(1).unwrap(&handle[..KEY_HANDLE_LEN - 1], &app).err(),
            Some(UnwrapError::WrongLength)
        );
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let rng = SystemRandom::new();
        let credential = CredentialKey::generate(&rng).unwrap();
        let app = [3u8; 32];
        let handle = wrapper(9).wrap(&credential, &app, &rng).unwrap();
        for byte in 0..KEY_HANDLE_LEN {
            let mut forged = handle;
            forged[byte] ^= 0x01;
            assert_eq!(
                wrapper(9).unwrap(&forged, &app).err(),
                Some(UnwrapError::NotOurs),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let rng = SystemRandom::new();
        let credential = CredentialKey::generate(&rng).unwrap();
        let pair = credential.signing_key(&rng).unwrap();
        assert_eq!(CredentialKey::public_key_of(&pair), credential.public_key);
        let sig = pair.sign(&rng, b"message").unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &credential.public_key,
        )
        .verify(b"message", sig.as_ref())
        .unwrap();
    }
}
