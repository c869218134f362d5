//! A token's clientPIN state and the retry count of its built-in user verification (CTAP 2.1
//! §6.5.5, "authenticatorClientPIN"; `shared/spec/CTAP2.md` §7: "Store LEFT(SHA-256(PIN), 16)
//! and code-point length; pinRetries max 8"; "decrement retries, then compare"; "mismatch counter
//! in RAM, pinRetries in flash"; CTAP 2.1's performBuiltInUv and getUVRetries, §6.5.5.3).
//!
//! One record per token that has a PIN or has spent a built-in UV attempt, in the sled tree
//! `pins`, written whole on every change so that the hash, its length and both retry counts
//! always go together; a token fresh from the factory (no PIN, every UV attempt left) has none:
//!
//! ```text
//!  key:    token name
//!  value:  0x00 ‖ JSON {hash (absent: no PIN), code_points, retries, uv_retries}
//!                                                               store without a passphrase
//!       or 0x01 ‖ nonce (12) ‖ AES-256-GCM(store key, JSON) ‖ tag (16)
//!                 aad = "vu2f-store-v1/token/<name>/pin"          (crate::lock)
//! ```
//!
//! The PIN itself is never stored, only the left half of its SHA-256, as the spec has it; a
//! locked store seals even that (a 16-byte hash of a 4-digit PIN is found by trying 10,000).
//! A record written before built-in UV could fail has no `uv_retries`: all of them are left.
//!
//! [`PinState::check`] is the only way to compare a PIN, and it cannot be cheated by killing the
//! process: it lowers the retry count and flushes it *before* it compares, and only a match
//! writes (and flushes) the count back up to [`MAX_PIN_RETRIES`], and uvRetries back up to
//! [`MAX_UV_RETRIES`] with it (a PIN unblocks built-in UV). A kill between the two leaves the
//! attempt counted, as if it had been wrong. Built-in UV follows the same order:
//! [`PinState::spend_uv_attempt`] lowers uvRetries and flushes it before the engine asks its
//! policy, and only a match gives every attempt back ([`PinState::uv_matched`]).
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
/// Built-in UV attempts a token allows before it blocks built-in UV until a PIN is used or the
/// token is reset (CTAP 2.1 maxUvRetries: 1 to 25).
pub const MAX_UV_RETRIES: u8 = 8;

const PLAIN: u8 = 0x00;
const SEALED: u8 = 0x01;

/// The record, as its JSON holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PinRecord {
    /// LEFT(SHA-256(PIN), 16); `None`: the token has no PIN.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::hex::optional"
    )]
    hash: Option<Vec<u8>>,
    /// The PIN's length in Unicode code points (for a later minimum PIN length check).
    code_points: u8,
    /// PIN attempts left: 0 is blocked.
    retries: u8,
    /// Built-in UV attempts left (uvRetries): 0 is blocked.
    #[serde(default = "max_uv_retries")]
    uv_retries: u8,
}

fn max_uv_retries() -> u8 {
    MAX_UV_RETRIES
}

impl PinRecord {
    /// A token fresh from the factory: no PIN, every attempt left. Never stored.
    fn factory() -> Self {
        Self {
            hash: None,
            code_points: 0,
            retries: MAX_PIN_RETRIES,
            uv_retries: MAX_UV_RETRIES,
        }
    }
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

/// What [`PinState::spend_uv_attempt`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UvAttempt {
    /// No attempt is left (or the PIN is blocked, which blocks built-in UV too): nothing spent.
    Blocked,
    /// One attempt is spent (flushed): this many are left if it fails.
    Spent {
        /// Attempts left; 0 means built-in UV is blocked if this one fails.
        uv_retries: u8,
    },
}

/// One token's PIN and uvRetries: in memory, written through to the store.
pub struct PinState {
    token: String,
    tree: sled::Tree,
    vault: Arc<Vault>,
    rng: SystemRandom,
    record: PinRecord,
}

impl std::fmt::Debug for PinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinState")
            .field("token", &self.token)
            .field("set", &self.is_set())
            .field("retries", &self.retries())
            .field("uv_retries", &self.uv_retries())
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
    let hash_len = record.hash.as_ref().map_or(PIN_HASH_LEN, Vec::len);
    if hash_len != PIN_HASH_LEN
        || record.retries > MAX_PIN_RETRIES
        || record.uv_retries > MAX_UV_RETRIES
    {
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

/// `token`'s record in `tree`: the factory one when it has none.
fn read_record(tree: &sled::Tree, vault: &Vault, token: &str) -> Result<PinRecord> {
    match tree.get(token.as_bytes())? {
        Some(value) => open_record(vault, &value, token),
        None => Ok(PinRecord::factory()),
    }
}

/// What `token show` tells of a token's record without loading it: its PIN's retry count
/// (`None` without a PIN), and uvRetries.
pub(crate) fn peek(tree: &sled::Tree, vault: &Vault, token: &str) -> Result<(Option<u8>, u8)> {
    let record = read_record(tree, vault, token)?;
    Ok((
        record.hash.is_some().then_some(record.retries),
        record.uv_retries,
    ))
}

impl PinState {
    /// Reads `token`'s record, if it has one.
    pub(crate) fn load(tree: sled::Tree, token: &str, vault: Arc<Vault>) -> Result<Self> {
        let record = read_record(&tree, &vault, token)?;
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
        self.record.hash.is_some()
    }

    /// Attempts left (getPINRetries): [`MAX_PIN_RETRIES`] for a token without a PIN.
    pub fn retries(&self) -> u8 {
        self.record.retries
    }

    /// Built-in UV attempts left (getUVRetries).
    pub fn uv_retries(&self) -> u8 {
        self.record.uv_retries
    }

    /// The current PIN's length in code points, if there is one.
    pub fn code_points(&self) -> Option<u8> {
        self.is_set().then_some(self.record.code_points)
    }

    /// Sets the PIN to the one whose hash is `hash` (LEFT(SHA-256(PIN), 16)) and `code_points`
    /// long, with [`MAX_PIN_RETRIES`] attempts, durably (flushed) before it returns. setPIN and
    /// changePIN both end here.
    /// uvRetries stays as it was: setting a PIN is not using one.
    pub fn set(&mut self, hash: &[u8; PIN_HASH_LEN], code_points: u8) -> Result<()> {
        self.write(PinRecord {
            hash: Some(hash.to_vec()),
            code_points,
            retries: MAX_PIN_RETRIES,
            uv_retries: self.record.uv_retries,
        })
    }

    /// Compares the PIN whose hash a host sent (`candidate`, decrypted; anything but 16 bytes
    /// is wrong) with the token's, in the order that cannot be cheated: one attempt is taken
    /// off and flushed first, then the hashes are compared (in constant time), then a match
    /// gives every attempt back, built-in UV's too, flushed again. If the first flush fails
    /// nothing is compared.
    pub fn check(&mut self, candidate: &[u8]) -> Result<PinCheck> {
        if !self.is_set() {
            return Ok(PinCheck::NotSet);
        }
        if self.record.retries == 0 {
            return Ok(PinCheck::Blocked);
        }
        self.update(|record| record.retries -= 1)?;
        let retries = self.record.retries;
        let matches = candidate.len() == PIN_HASH_LEN
            && self
                .record
                .hash
                .as_ref()
                .is_some_and(|hash| bool::from(hash.ct_eq(candidate)));
        if !matches {
            return Ok(PinCheck::Wrong { retries });
        }
        self.update(|record| {
            record.retries = MAX_PIN_RETRIES;
            record.uv_retries = MAX_UV_RETRIES;
        })?;
        Ok(PinCheck::Correct)
    }

    /// Spends one built-in UV attempt, durably (flushed) before the engine learns whether the
    /// user matches: a kill before the answer leaves it spent. A token whose PIN is blocked has
    /// its built-in UV blocked too (uvRetries written down to 0), as performBuiltInUv has it;
    /// then, or with no attempt left, nothing is spent.
    pub fn spend_uv_attempt(&mut self) -> Result<UvAttempt> {
        if self.is_set() && self.record.retries == 0 && self.record.uv_retries > 0 {
            self.update(|record| record.uv_retries = 0)?;
        }
        if self.record.uv_retries == 0 {
            return Ok(UvAttempt::Blocked);
        }
        self.update(|record| record.uv_retries -= 1)?;
        Ok(UvAttempt::Spent {
            uv_retries: self.record.uv_retries,
        })
    }

    /// The user matched: every built-in UV attempt is back (flushed; nothing is written when
    /// none was missing).
    pub fn uv_matched(&mut self) -> Result<()> {
        if self.record.uv_retries == MAX_UV_RETRIES {
            return Ok(());
        }
        self.update(|record| record.uv_retries = MAX_UV_RETRIES)
    }

    /// Whether `candidate` is the PIN's hash, without counting an attempt: for changePIN's check
    /// that a forced change does not keep the same PIN. Never a way to test guesses: the caller
    /// has just passed [`PinState::check`].
    pub fn is_current(&self, candidate: &[u8; PIN_HASH_LEN]) -> bool {
        self.record
            .hash
            .as_ref()
            .is_some_and(|hash| bool::from(hash.ct_eq(candidate)))
    }

    /// Forgets the PIN and the spent UV attempts in memory: the record was removed from the
    /// store (authenticatorReset).
    pub(crate) fn forget(&mut self) {
        self.record = PinRecord::factory();
    }

    /// Writes the record as `change` leaves it ([`Self::write`]).
    fn update(&mut self, change: impl FnOnce(&mut PinRecord)) -> Result<()> {
        let mut record = self.record.clone();
        change(&mut record);
        self.write(record)
    }

    /// Writes `record` (a factory one by removing the token's) and flushes it. The view in
    /// memory takes it first: if the write or the flush fails, this process still counts the
    /// attempt.
    fn write(&mut self, record: PinRecord) -> Result<()> {
        let value = (record != PinRecord::factory())
            .then(|| seal_record(&self.vault, &record, &self.token, &self.rng))
            .transpose()?;
        self.record = record;
        match value {
            Some(value) => self.tree.insert(self.token.as_bytes(), value)?,
            None => self.tree.remove(self.token.as_bytes())?,
        };
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
            hash: Some(hash("1234").to_vec()),
            code_points: 4,
            retries: 8,
            uv_retries: 3,
        };
        let value = seal_record(&vault, &record, "t", &rng).unwrap();
        assert_eq!(value[0], SEALED);
        let hex = hex::encode(hash("1234"));
        assert!(!value.windows(16).any(|w| w == hash("1234")));
        assert!(!value.windows(hex.len()).any(|w| w == hex.as_bytes()));
        let opened = open_record(&vault, &value, "t").unwrap();
        assert_eq!((opened.retries, opened.uv_retries), (8, 3));
        assert!(open_record(&vault, &value, "u").is_err(), "another token");
        assert!(open_record(&Vault::Plain, &value, "t").is_err());
        let plain = reseal(b"t", &value, &vault, &Vault::Plain, &rng).unwrap();
        assert_eq!(plain[0], PLAIN);
        assert_eq!(
            open_record(&Vault::Plain, &plain, "t").unwrap().hash,
            Some(hash("1234").to_vec())
        );
    }

    #[test]
    fn uv_attempts_count_down_durably_and_a_match_or_the_pin_gives_them_back() {
        let tree = temporary_tree();
        let mut state = open(&tree, "t");
        assert_eq!(state.uv_retries(), MAX_UV_RETRIES);
        for left in (0..MAX_UV_RETRIES).rev() {
            assert_eq!(
                state.spend_uv_attempt().unwrap(),
                UvAttempt::Spent { uv_retries: left }
            );
            let reloaded = open(&tree, "t");
            assert_eq!(reloaded.uv_retries(), left, "durable at once");
            assert!(!reloaded.is_set(), "a record without a PIN");
        }
        assert_eq!(state.spend_uv_attempt().unwrap(), UvAttempt::Blocked);
        assert_eq!(open(&tree, "t").uv_retries(), 0);

        // Setting a PIN is not using one; a right PIN gives every UV attempt back.
        state.set(&hash("1234"), 4).unwrap();
        assert_eq!(open(&tree, "t").uv_retries(), 0);
        assert_eq!(
            state.check(&hash("0000")).unwrap(),
            PinCheck::Wrong { retries: 7 }
        );
        assert_eq!(state.uv_retries(), 0, "a wrong PIN does not");
        assert_eq!(state.check(&hash("1234")).unwrap(), PinCheck::Correct);
        assert_eq!(open(&tree, "t").uv_retries(), MAX_UV_RETRIES);

        state.spend_uv_attempt().unwrap();
        state.uv_matched().unwrap();
        assert_eq!(open(&tree, "t").uv_retries(), MAX_UV_RETRIES);

        // Without a PIN, all attempts back is the factory state again: no record.
        let mut fresh = open(&tree, "u");
        fresh.spend_uv_attempt().unwrap();
        assert!(tree.get("u").unwrap().is_some());
        fresh.uv_matched().unwrap();
        assert!(tree.get("u").unwrap().is_none());
    }

    #[test]
    fn a_blocked_pin_blocks_built_in_uv_too() {
        let tree = temporary_tree();
        let mut state = open(&tree, "t");
        state.set(&hash("1234"), 4).unwrap();
        for _ in 0..MAX_PIN_RETRIES {
            state.check(&hash("0000")).unwrap();
        }
        assert_eq!(state.uv_retries(), MAX_UV_RETRIES);
        assert_eq!(state.spend_uv_attempt().unwrap(), UvAttempt::Blocked);
        assert_eq!(open(&tree, "t").uv_retries(), 0, "written down, durably");
    }

    /// A record written before built-in UV could fail has no `uv_retries`: all are left.
    #[test]
    fn an_older_record_has_every_uv_attempt_left() {
        let tree = temporary_tree();
        let json = format!(
            r#"{{"hash":"{}","code_points":4,"retries":5}}"#,
            hex::encode(hash("1234"))
        );
        tree.insert("t", [&[PLAIN], json.as_bytes()].concat())
            .unwrap();
        let state = open(&tree, "t");
        assert_eq!((state.retries(), state.uv_retries()), (5, MAX_UV_RETRIES));
        assert!(state.is_current(&hash("1234")));
    }
}
