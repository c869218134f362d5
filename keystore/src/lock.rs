//! Secrets at rest (issue 6, "Secrets at rest"): a store may be locked with a passphrase.
//!
//! ```text
//!  passphrase ──Argon2id(salt, 64 MiB, 3 passes)──▶ key-encryption key
//!  meta/lock:  salt, KDF parameters, AES-256-GCM(KEK, store key)        (the wrapped store key)
//!  each secret field (token master keys, attestation and certificate private keys):
//!              nonce ‖ AES-256-GCM(store key, secret, aad = "vu2f-store-v1/" ‖ place) ‖ tag
//! ```
//!
//! One KDF run per opening, however many tokens: opening 100,000 tokens costs 100,000 AES-GCM
//! opens after it. The associated data names each secret's place (`token/<name>/master_key`), so a
//! sealed field copied onto another record does not open. Without the passphrase no secret in the
//! files is readable; with a wrong one the wrapped store key fails to open and the store says so.
//! Keys and passphrases are zeroized on drop ([`zeroize`]); ring's expanded signing keys are not
//! reachable for that and live only while a token is loaded.
use argon2::{Algorithm, Argon2, Params, Version};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

const AAD_PREFIX: &[u8] = b"vu2f-store-v1/";
const STORE_KEY_PLACE: &str = "store-key";
const SALT_LEN: usize = 16;
/// Argon2id cost: 64 MiB of memory, 3 passes, one lane (RFC 9106 section 4, second choice).
const M_COST_KIB: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;

/// A passphrase, zeroized when dropped.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    /// A passphrase from its bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A passphrase as read from a file or a prompt: without its trailing line break.
    pub fn from_line(mut bytes: Vec<u8>) -> Self {
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        Self::new(bytes)
    }

    /// Its bytes (a secret read the way passphrases are, such as a token's new PIN).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether two passphrases are the same (a new one typed twice).
    pub fn same_as(&self, other: &Passphrase) -> bool {
        self.0.as_slice() == other.0.as_slice()
    }

    /// Whether it is empty (refused when locking).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(…)")
    }
}

/// What `meta/lock` holds: how to turn the passphrase into the key that opens the store key.
#[derive(Serialize, Deserialize)]
pub(crate) struct LockRecord {
    kdf: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    #[serde(with = "crate::hex")]
    salt: Vec<u8>,
    #[serde(with = "crate::hex")]
    wrapped_key: Vec<u8>,
}

fn derive(passphrase: &Passphrase, record: &LockRecord) -> Result<Zeroizing<[u8; 32]>> {
    if record.kdf != "argon2id" {
        return Err(StoreError::Corrupt {
            what: "lock".into(),
            detail: format!("unknown KDF {:?}", record.kdf),
        });
    }
    let params =
        Params::new(record.m_cost_kib, record.t_cost, record.p_cost, Some(32)).map_err(|e| {
            StoreError::Corrupt {
                what: "lock".into(),
                detail: format!("Argon2 parameters: {e}"),
            }
        })?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(&passphrase.0, &record.salt, key.as_mut())
        .map_err(|e| StoreError::Crypto(format!("Argon2id: {e}")))?;
    Ok(key)
}

/// Whether the store's secrets are sealed, and with which key.
pub(crate) enum Vault {
    /// Secrets are stored as they are (in files only their owner can read).
    Plain,
    /// Secrets are sealed with this store key.
    Sealed(Zeroizing<[u8; 32]>),
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("AES-256 takes 32-byte keys"))
}

fn aad(place: &str) -> Aad<Vec<u8>> {
    Aad::from([AAD_PREFIX, place.as_bytes()].concat())
}

fn seal_with(key: &[u8; 32], secret: &[u8], place: &str, rng: &SystemRandom) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)
        .map_err(|_| StoreError::Crypto("no randomness for a nonce".into()))?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + secret.len() + 16);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(secret);
    let tag = aead(key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            aad(place),
            &mut sealed[NONCE_LEN..],
        )
        .map_err(|_| StoreError::Crypto(format!("sealing {place}")))?;
    sealed.extend_from_slice(tag.as_ref());
    Ok(sealed)
}

fn open_with(key: &[u8; 32], sealed: &[u8], place: &str) -> Option<Zeroizing<Vec<u8>>> {
    let (nonce, body) = sealed.split_first_chunk::<NONCE_LEN>()?;
    let mut body = Zeroizing::new(body.to_vec());
    let plain_len = aead(key)
        .open_in_place(Nonce::assume_unique_for_key(*nonce), aad(place), &mut body)
        .ok()?
        .len();
    body.truncate(plain_len);
    Some(body)
}

impl Vault {
    /// A new store key, and the record that wraps it under `passphrase`.
    pub(crate) fn lock(passphrase: &Passphrase, rng: &SystemRandom) -> Result<(Vault, LockRecord)> {
        let no_randomness = |_| StoreError::Crypto("no randomness for a store key".into());
        let mut store_key = Zeroizing::new([0u8; 32]);
        rng.fill(store_key.as_mut()).map_err(no_randomness)?;
        let mut salt = vec![0u8; SALT_LEN];
        rng.fill(&mut salt).map_err(no_randomness)?;
        let mut record = LockRecord {
            kdf: "argon2id".into(),
            m_cost_kib: M_COST_KIB,
            t_cost: T_COST,
            p_cost: P_COST,
            salt,
            wrapped_key: Vec::new(),
        };
        let kek = derive(passphrase, &record)?;
        record.wrapped_key = seal_with(&kek, store_key.as_ref(), STORE_KEY_PLACE, rng)?;
        Ok((Vault::Sealed(store_key), record))
    }

    /// The store key that `record` wraps, if `passphrase` is the right one.
    pub(crate) fn unlock(passphrase: &Passphrase, record: &LockRecord) -> Result<Vault> {
        let kek = derive(passphrase, record)?;
        let opened = open_with(&kek, &record.wrapped_key, STORE_KEY_PLACE)
            .ok_or(StoreError::WrongPassphrase)?;
        let key: [u8; 32] = opened
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt {
                what: "lock".into(),
                detail: "the store key is not 32 bytes".into(),
            })?;
        Ok(Vault::Sealed(Zeroizing::new(key)))
    }

    /// Whether secrets are sealed.
    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self, Vault::Sealed(_))
    }

    /// `secret` as stored at `place`.
    pub(crate) fn seal(&self, secret: &[u8], place: &str, rng: &SystemRandom) -> Result<Vec<u8>> {
        match self {
            Vault::Plain => Ok(secret.to_vec()),
            Vault::Sealed(key) => seal_with(key, secret, place, rng),
        }
    }

    /// The secret stored at `place`; `sealed` says how the record stored it.
    pub(crate) fn open(
        &self,
        stored: &[u8],
        sealed: bool,
        place: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            what: place.to_owned(),
            detail: detail.to_owned(),
        };
        match (self, sealed) {
            (Vault::Plain, false) => Ok(Zeroizing::new(stored.to_vec())),
            (Vault::Sealed(key), true) => {
                open_with(key, stored, place).ok_or_else(|| corrupt("sealed secret does not open"))
            }
            (Vault::Plain, true) => Err(corrupt("sealed, but the store has no passphrase")),
            (Vault::Sealed(_), false) => Err(corrupt("unsealed in a locked store")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_at_their_place_with_their_key() {
        let rng = SystemRandom::new();
        let (vault, record) = Vault::lock(&Passphrase::new(b"right".to_vec()), &rng).unwrap();
        let sealed = vault.seal(b"secret", "token/a/master_key", &rng).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            vault
                .open(&sealed, true, "token/a/master_key")
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(vault.open(&sealed, true, "token/b/master_key").is_err());
        let again = Vault::unlock(&Passphrase::new(b"right".to_vec()), &record).unwrap();
        assert!(again.open(&sealed, true, "token/a/master_key").is_ok());
        assert!(matches!(
            Vault::unlock(&Passphrase::new(b"wrong".to_vec()), &record),
            Err(StoreError::WrongPassphrase)
        ));
    }

    #[test]
    fn a_passphrase_line_loses_its_line_break_only() {
        let p = Passphrase::from_line(b" pass phrase \r\n".to_vec());
        assert_eq!(p.0.as_slice(), b" pass phrase ");
    }
}
