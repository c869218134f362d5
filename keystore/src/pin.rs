//! A token's clientPIN state (CTAP 2.1 §6.5.5, "authenticatorClientPIN"; `shared/spec/CTAP2.md`
//! §7: "Store LEFT(SHA-256(PIN), 16) and code-point length; pinRetries max 8"; "decrement
//! retries, then compare"; "mismatch counter in RAM, pinRetries in flash").
//!
//! One record per token with a PIN, in the sled tree `pins`, written whole on every change so
//! that the hash, its length and the retry count always go together:
//!
//! ```text
//!  key:    token name
//!  value:  0x00 ‖ JSON {hash, code_points, retries}             store without a passphrase
//!       or 0x01 ‖ nonce (12) ‖ AES-256-GCM(store key, JSON) ‖ tag (16)
//!                 aad = "vu2f-store-v1/token/<name>/pin"          (crate::lock)
//! ```
//!
//! The PIN itself is never stored, only the left half of its SHA-256, as the spec has it; a
//! locked store seals even that (a 16-byte hash of a 4-digit PIN is found by trying 10,000).
//!
//! [`PinState::check`] is the only way to compare a PIN, and it cannot be cheated by killing the
//! process: it lowers the retry count and flushes it *before* it compares, and only a match
//! writes (and flushes) the count back up to [`MAX_PIN_RETRIES`]. A kill between the two leaves
//! the attempt counted, as if it had been wrong.
use std::sync::Arc;

use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Result, StoreError};
use crate::lock::Vault;

/// The sled tree of the records.
pub(crate) const PINS: &str = "pins";
/// PIN attempts a token allows before it blocks the PIN (CTAP 2.1 §6.5.2: "maximum 8").
pub const MAX_PIN_RETRIES: u8 = 8;
/// The length of a stored PIN hash: LEFT(SHA-256(PIN), 16).
pub const PIN_HASH_LEN: usize = 16;

const PLAIN: u8 = 0x00;
const SEALED: u8 = 0x01;

/// The record, as its JSON holds it.
#[derive(Clone, Serialize, Deserialize)]
struct PinRecord {
    #[serde(with = "crate::hex")]
    hash: Vec<u8>,
    /// The PIN's length in Unicode code points (for a later minimum PIN length check).
    code_points: u8,
    /// Attempts left: 0 is blocked.
    retries: u8,
}

impl Drop for PinRecord {
    fn drop(&mut self) {
        self.hash.zeroize();
    }
}

/// What [`PinState::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// The token has no PIN.
    NotSet,
    /// No attempt is left; nothing was compared or written.
    Blocked,
    /// The PIN matches: the retry count is back at [`MAX_PIN_RETRIES`] (flushed).
    Correct,
    /// It does not: this many attempts are left (flushed before the comparison).
    Wrong {
        /// Attempts left; 0 means the PIN is now blocked.
        retries: u8,
    },
}

/// One token's PIN: in memory, written through to the store.
pub struct PinState {
    token: String,
    tree: sled::Tree,
    vault: Arc<Vault>,
    rng: SystemRandom,
    record: Option<PinRecord>,
}

impl std::fmt::Debug for PinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinState")
            .field("token", &self.token)
            .field("set", &self.is_set())
            .field("retries", &self.retries())
            .finish_non_exhaustive()
    }
}

fn place(token: &str) -> String {
    format!("token/{token}/pin")
}

fn corrupt(token: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: place(token),
        detail: detail.into(),
    }
}

/// The record of `token` as stored in `value`, opened by `vault`.
fn open_record(vault: &Vault, value: &[u8], token: &str) -> Result<PinRecord> {
    let (sealed, body) = match value.split_first() {
        Some((&PLAIN, body)) => (false, body),
        Some((&SEALED, body)) => (true, body),
        _ => return Err(corrupt(token, "unknown record format")),
    };
    let json = vault.open(body, sealed, &place(token))?;
    let record: PinRecord =
        serde_json::from_slice(&json).map_err(|e| corrupt(token, e.to_string()))?;
    if record.hash.len() != PIN_HASH_LEN || record.retries > MAX_PIN_RETRIES {
        return Err(corrupt(token, "a PIN hash or retry count out of range"));
    }
    Ok(record)
}

/// `record` as `vault` stores it for `token`.
fn seal_record(
    vault: &Vault,
    record: &PinRecord,
    token: &str,
    rng: &SystemRandom,
) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(record)
        .map(Zeroizing::new)
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
    let body = vault.seal(&json, &place(token), rng)?;
    let mut value = Vec::with_capacity(1 + body.len());
    value.push(if vault.is_sealed() { SEALED } else { PLAIN });
    value.extend_from_slice(&body);
    Ok(value)
}

/// The record under `key` (stored as `value`, opened by `from`) as `to` would store it: what
/// `Store::set_passphrase` writes into the rewritten database.
pub(crate) fn reseal(
    key: &[u8],
    value: &[u8],
    from: &Vault,
    to: &Vault,
    rng: &SystemRandom,
) -> Result<Vec<u8>> {
    let token = std::str::from_utf8(key).map_err(|_| corrupt("?", "a token name not UTF-8"))?;
    let record = open_record(from, value, token)?;
    seal_record(to, &record, token, rng)
}

/// Whether `token` has a PIN, and its retry count, without loading it (`token show`).
pub(crate) fn peek(tree: &sled::Tree, vault: &Vault, token: &str) -> Result<Option<u8>> {
    match tree.get(token.as_bytes())? {
        Some(value) => Ok(Some(open_record(vault, &value, token)?.retries)),
        None => Ok(None),
    }
}

impl PinState {
    /// Reads `token`'s record, if it has one.
    pub(crate) fn load(tree: sled::Tree, token: &str, vault: Arc<Vault>) -> Result<Self> {
        let record = match tree.get(token.as_bytes())? {
            Some(value) => Some(open_record(&vault, &value, token)?),
            None => None,
        };
        Ok(Self {
            token: token.to_owned(),
            tree,
            vault,
            rng: SystemRandom::new(),
            record,
        })
    }

    /// Whether the token has a PIN (getInfo's `clientPin: true`).
    pub fn is_set(&self) -> bool {
        self.record.is_some()
    }

    /// Attempts left (getPINRetries): [`MAX_PIN_RETRIES`] for a token without a PIN.
    pub fn retries(&self) -> u8 {
        self.record.as_ref().map_or(MAX_PIN_RETRIES, |r| r.retries)
    }

    /// The current PIN's length in code points, if there is one.
    pub fn code_points(&self) -> Option<u8> {
        self.record.as_ref().map(|r| r.code_points)
    }

    /// Sets the PIN to the one whose hash is `hash` (LEFT(SHA-256(PIN), 16)) and `code_points`
    /// long, with [`MAX_PIN_RETRIES`] attempts, durably (flushed) before it returns. setPIN and
    /// changePIN both end here.
    pub fn set(&mut self, hash: &[u8; PIN_HASH_LEN], code_points: u8) -> Result<()> {
        self.write(PinRecord {
            hash: hash.to_vec(),
            code_points,
            retries: MAX_PIN_RETRIES,
        })
    }

    /// Compares the PIN whose hash a host sent (`candidate`, decrypted; anything but 16 bytes
    /// is wrong) with the token's, in the order that cannot be cheated: one attempt is taken
    /// off and flushed first, then the hashes are compared (in constant time), then a match
    /// gives every attempt back, flushed again. If the first flush fails nothing is compared.
    pub fn check(&mut self, candidate: &[u8]) -> Result<PinCheck> {
        let Some(record) = &self.record else {
            return Ok(PinCheck::NotSet);
        };
        if record.retries == 0 {
            return Ok(PinCheck::Blocked);
        }
        let mut lowered = record.clone();
        lowered.retries -= 1;
        let retries = lowered.retries;
        self.write(lowered)?;
        let Some(record) = &self.record else {
            return Ok(PinCheck::NotSet);
        };
        let matches = candidate.len() == PIN_HASH_LEN && bool::from(record.hash.ct_eq(candidate));
        if !matches {
            return Ok(PinCheck::Wrong { retries });
        }
        let mut restored = record.clone();
        restored.retries = MAX_PIN_RETRIES;
        self.write(restored)?;
        Ok(PinCheck::Correct)
    }

    /// Whether `candidate` is the PIN's hash, without counting an attempt: for changePIN's check
    /// that a forced change does not keep the same PIN. Never a way to test guesses: the caller
    /// has just passed [`PinState::check`].
    pub fn is_current(&self, candidate: &[u8; PIN_HASH_LEN]) -> bool {
        self.record
            .as_ref()
            .is_some_and(|r| bool::from(r.hash.ct_eq(candidate)))
    }

    /// Forgets the PIN in memory: its record was removed from the store (authenticatorReset).
    pub(crate) fn forget(&mut self) {
        self.record = None;
    }

    /// Writes `record` and flushes it. The view in memory takes it first: if the write or the
    /// flush fails, this process still counts the attempt.
    fn write(&mut self, record: PinRecord) -> Result<()> {
        let value = seal_record(&self.vault, &record, &self.token, &self.rng)?;
        self.record = Some(record);
        self.tree.insert(self.token.as_bytes(), value)?;
        self.tree.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary_tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree(PINS).unwrap()
    }

    fn hash(pin: &str) -> [u8; 16] {
        let digest = ring::digest::digest(&ring::digest::SHA256, pin.as_bytes());
        digest.as_ref()[..16].try_into().unwrap()
    }

    fn open(tree: &sled::Tree, token: &str) -> PinState {
        PinState::load(tree.clone(), token, Arc::new(Vault::Plain)).unwrap()
    }

    #[test]
    fn a_token_without_a_pin_has_none_to_check() {
        let tree = temporary_tree();
        let mut pin = open(&tree, "t");
        assert!(!pin.is_set());
        assert_eq!(pin.retries(), MAX_PIN_RETRIES);
        assert_eq!(pin.check(&hash("1234")).unwrap(), PinCheck::NotSet);
        assert!(tree.is_empty());
    }

    #[test]
    fn wrong_pins_count_down_to_blocked_and_a_right_one_restores_every_attempt() {
        let tree = temporary_tree();
        let mut pin = open(&tree, "t");
        pin.set(&hash("1234"), 4).unwrap();
        assert_eq!(pin.code_points(), Some(4));
        for left in (5..MAX_PIN_RETRIES).rev() {
            assert_eq!(
                pin.check(&hash("0000")).unwrap(),
                PinCheck::Wrong { retries: left }
            );
            assert_eq!(open(&tree, "t").retries(), left, "durable at once");
        }
        assert_eq!(
            pin.check(&hash("1234")[..15]).unwrap(),
            PinCheck::Wrong { retries: 4 },
            "a short candidate is a wrong one"
        );
        assert_eq!(pin.check(&hash("1234")).unwrap(), PinCheck::Correct);
        assert_eq!(open(&tree, "t").retries(), MAX_PIN_RETRIES);
        for left in (0..MAX_PIN_RETRIES).rev() {
            assert_eq!(
                pin.check(&hash("9999")).unwrap(),
                PinCheck::Wrong { retries: left }
            );
        }
        assert_eq!(pin.check(&hash("1234")).unwrap(), PinCheck::Blocked);
        let mut reloaded = open(&tree, "t");
        assert_eq!(reloaded.retries(), 0);
        assert_eq!(reloaded.check(&hash("1234")).unwrap(), PinCheck::Blocked);
        assert!(reloaded.is_current(&hash("1234")));
        assert!(!reloaded.is_current(&hash("12345")));
    }

    /// The order the retry count is written in, as sled reports every write to the record: a
    /// right PIN is first counted as an attempt (7), and only then given its attempts back (8),
    /// so a process killed between the two has spent one.
    #[test]
    fn the_attempt_is_written_before_the_pin_is_compared() {
        let tree = temporary_tree();
        let mut pin = open(&tree, "t");
        pin.set(&hash("1234"), 4).unwrap();
        let writes = tree.watch_prefix(b"t");
        assert_eq!(pin.check(&hash("1234")).unwrap(), PinCheck::Correct);
        let retries = |event: Option<sled::Event>| match event {
            Some(sled::Event::Insert { value, .. }) => {
                open_record(&Vault::Plain, &value, "t").unwrap().retries
            }
            other => panic!("{other:?}"),
        };
        let mut writes = writes.take(2);
        assert_eq!(retries(writes.next()), MAX_PIN_RETRIES - 1);
        assert_eq!(retries(writes.next()), MAX_PIN_RETRIES);
    }

    #[test]
    fn a_sealed_record_hides_the_hash_and_opens_only_for_its_token() {
        let rng = SystemRandom::new();
        let (vault, _) = Vault::lock(&crate::Passphrase::new(b"p".to_vec()), &rng).unwrap();
        let record = PinRecord {
            hash: hash("1234").to_vec(),
            code_points: 4,
            retries: 8,
        };
        let value = seal_record(&vault, &record, "t", &rng).unwrap();
        assert_eq!(value[0], SEALED);
        let hex = hex::encode(hash("1234"));
        assert!(!value.windows(16).any(|w| w == hash("1234")));
        assert!(!value.windows(hex.len()).any(|w| w == hex.as_bytes()));
        assert_eq!(open_record(&vault, &value, "t").unwrap().retries, 8);
        assert!(open_record(&vault, &value, "u").is_err(), "another token");
        assert!(open_record(&Vault::Plain, &value, "t").is_err());
        let plain = reseal(b"t", &value, &vault, &Vault::Plain, &rng).unwrap();
        assert_eq!(plain[0], PLAIN);
        assert_eq!(
            open_record(&Vault::Plain, &plain, "t").unwrap().hash,
            hash("1234")
        );
    }
}
