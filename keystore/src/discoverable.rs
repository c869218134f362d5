//! Discoverable credentials ("resident keys"; CTAP 2.1 §6.1 steps 16–18, `shared/spec/CTAP2.md`
//! §4: "rk true: discoverable; same rp.id + user.id ⇒ overwrite; full → `0x28`"; §5 step 12:
//! "no allowList ⇒ newest first").
//!
//! A non-discoverable credential lives only in its credential id ([`crate::key_handle`]). A
//! discoverable one also needs the user it was made for, found by rpId alone, so each is a record
//! in the sled tree `discoverable`, kept per token in the order it was stored:
//!
//! ```text
//!  key:    token name ‖ 0x00 ‖ sequence (u64, big-endian)    names never hold 0x00, so a token's
//!                                                            records are one prefix, oldest first
//!  value:  0x00 ‖ JSON(DiscoverableCredential)               store without a passphrase
//!       or 0x01 ‖ nonce (12) ‖ AES-256-GCM(store key, JSON) ‖ tag (16)
//!                 aad = "vu2f-store-v1/token/<name>/discoverable/<sequence>"   (crate::lock)
//! ```
//!
//! The credential's private key is not in the record: the credential id is a wrapped handle, and
//! the engine opens it as for any other credential. The record holds the user's id and names,
//! which is why a locked store seals it whole.
//!
//! The same tree holds two more kinds of record, for the automation API (`src/automation`):
//!
//! * **imported credentials** (WebDriver's Add Credential): the id is the test's, any bytes, and
//!   the record's `handle` is the key the test gave, wrapped into a handle of this token as if it
//!   had made it ([`DiscoverableCredentials::handle_of`] tells the engine which handle an id
//!   opens as);
//! * **records of non-discoverable credentials**, which only a token that tracks its credentials
//!   keeps (one added through the automation API), so that Get Credentials lists them too.
//!
//! Those are kept apart by the top bit of the sequence, so that discovery, credential management,
//! the limit and the count see discoverable credentials alone, while reset, removal and a new
//! passphrase, which go by the token's prefix, take every record:
//!
//! ```text
//!  sequence  0xxx…  a discoverable credential      1xxx…  a non-discoverable credential's record
//! ```
//! Removing a record ends its credential: a discoverable one is found by its record, an imported
//! one opens only through it. A non-discoverable credential the token made is whole in its id
//! (its sealed key), which would still open: its record becomes a **mark** (`removed`), and
//! [`DiscoverableCredentials::handle_of`] gives no handle for a marked id, which the engines then
//! refuse as they refuse one not theirs. A record replaced by another of the same id (an Add
//! Credential reusing it) ends the same way. A mark outlives any later record of its id (which
//! opens through its own handle while it lives) and goes only with a reset, which makes every old
//! id useless.
//!
//! A record may carry `sign_count`, the counter value of the credential's last signature
//! (tracked and imported credentials): rewritten at each signature without a flush, as it only
//! reports; the counter's own promise is kept by [`crate::Counter`].
//!
//! [`DiscoverableCredentials`] holds all of a token's records in memory from `Store::load` on (one
//! prefix scan, nothing for a token without any), and writes through: [`DiscoverableCredentials::store`]
//! and [`DiscoverableCredentials::remove`] return only once the change is flushed, so a reply
//! sent after them survives `kill -9`.
use std::sync::Arc;

use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::lock::Vault;

/// Discoverable credentials a token keeps unless created with another limit.
pub const DEFAULT_DISCOVERABLE_LIMIT: u32 = 100;
/// The longest credential id a record takes (CTAP 2.1: credential ids are at most 255 bytes in
/// practice, and U2F key handles at most 255 by their length byte).
pub const MAX_CREDENTIAL_ID_LEN: usize = 255;
/// The longest user id a record takes (WebAuthn: user.id is 1 to 64 bytes).
pub const MAX_USER_ID_LEN: usize = 64;

/// The sled tree of the records.
pub(crate) const DISCOVERABLE: &str = "discoverable";

const PLAIN: u8 = 0x00;
const SEALED: u8 = 0x01;

/// One discoverable credential, as `authenticatorGetAssertion` without an allowList returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverableCredential {
    /// The credential id as issued: a wrapped handle ([`crate::key_handle`]), at most
    /// [`MAX_CREDENTIAL_ID_LEN`] bytes.
    #[serde(with = "crate::hex")]
    pub credential_id: Vec<u8>,
    /// The RP id it was made for.
    pub rp_id: String,
    /// The user handle, at most [`MAX_USER_ID_LEN`] bytes.
    #[serde(with = "crate::hex")]
    pub user_id: Vec<u8>,
    /// The user's name, if the RP gave one.
    pub user_name: Option<String>,
    /// The user's display name, if the RP gave one.
    pub user_display_name: Option<String>,
    /// The credential's public key, COSE_Key bytes (CTAP2 §6), for credential management.
    #[serde(with = "crate::hex")]
    pub public_key_cose: Vec<u8>,
    /// The credProtect level (1–3); 0 = not set.
    #[serde(default)]
    pub cred_protect: u8,
    /// An imported credential's handle: its key wrapped by this token (module docs); `None` for
    /// a credential the token made, whose id is its handle.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::hex::optional"
    )]
    pub handle: Option<Vec<u8>>,
    /// The counter value of the credential's last signature, on a token that tracks its
    /// credentials or for an imported credential; `None` when not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_count: Option<u32>,
    /// A removed non-discoverable credential the token made (module docs): its id still opens,
    /// so the record stays to refuse it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl DiscoverableCredential {
    /// SHA-256 of the RP id: the rpIdHash of authData.
    pub fn rp_id_hash(&self) -> [u8; 32] {
        rp_id_hash(&self.rp_id)
    }
}

fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, rp_id.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// The top bit of a sequence: set for a non-discoverable credential's record (module docs).
const NOT_DISCOVERABLE: u64 = 1 << 63;

struct Entry {
    sequence: u64,
    rp_id_hash: [u8; 32],
    credential: DiscoverableCredential,
}

/// How a credential's record ends (removed, or replaced by one with the same id), in memory once
/// the batch that ends it is written: deleted, or rewritten as a mark (module docs).
enum Ending {
    Delete(u64),
    Mark(u64, Box<DiscoverableCredential>),
}

/// A token's discoverable credentials: in memory, written through to the store.
pub struct DiscoverableCredentials {
    token: String,
    tree: sled::Tree,
    vault: Arc<Vault>,
    rng: SystemRandom,
    limit: usize,
    next_sequence: u64,
    /// Oldest first (ascending sequence).
    entries: Vec<Entry>,
    /// The records of non-discoverable credentials, oldest first.
    others: Vec<Entry>,
    /// The marks of removed non-discoverable credentials the token made (module docs).
    marks: Vec<Entry>,
    next_other: u64,
}

impl std::fmt::Debug for DiscoverableCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoverableCredentials")
            .field("token", &self.token)
            .field("len", &self.entries.len())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The key prefix of `token`'s records.
pub(crate) fn prefix(token: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(token.len() + 1);
    prefix.extend_from_slice(token.as_bytes());
    prefix.push(0);
    prefix
}

fn key(token: &str, sequence: u64) -> Vec<u8> {
    let mut key = prefix(token);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn place(token: &str, sequence: u64) -> String {
    format!("token/{token}/discoverable/{sequence}")
}

fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        detail: detail.into(),
    }
}

/// The token name and sequence in a record's key.
fn split_key(key: &[u8]) -> Result<(&str, u64)> {
    let bad = || corrupt("discoverable credential key", hex::encode(key));
    let split = key.len().checked_sub(9).ok_or_else(bad)?;
    let (name, rest) = key.split_at(split);
    let (zero, sequence) = rest.split_first().ok_or_else(bad)?;
    let sequence: [u8; 8] = sequence.try_into().map_err(|_| bad())?;
    let name = std::str::from_utf8(name).map_err(|_| bad())?;
    if *zero != 0 || name.contains('\0') {
        return Err(bad());
    }
    Ok((name, u64::from_be_bytes(sequence)))
}

/// A record's JSON as stored: tagged, and sealed when `vault` is (module docs).
fn seal_value(
    vault: &Vault,
    json: &[u8],
    token: &str,
    sequence: u64,
    rng: &SystemRandom,
) -> Result<Vec<u8>> {
    let tag = if vault.is_sealed() { SEALED } else { PLAIN };
    let body = vault.seal(json, &place(token, sequence), rng)?;
    let mut value = Vec::with_capacity(1 + body.len());
    value.push(tag);
    value.extend_from_slice(&body);
    Ok(value)
}

/// A record's JSON, opened by `vault`.
fn open_value(
    vault: &Vault,
    value: &[u8],
    token: &str,
    sequence: u64,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let place = place(token, sequence);
    let (sealed, body) = match value.split_first() {
        Some((&PLAIN, body)) => (false, body),
        Some((&SEALED, body)) => (true, body),
        _ => return Err(corrupt(place, "unknown record format")),
    };
    vault.open(body, sealed, &place)
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
    let (token, sequence) = split_key(key)?;
    let json = open_value(from, value, token, sequence)?;
    seal_value(to, &json, token, sequence, rng)
}

/// The number of discoverable credentials `token` has in `tree`.
pub(crate) fn count(tree: &sled::Tree, token: &str) -> Result<usize> {
    let mut count = 0;
    for key in tree.scan_prefix(prefix(token)).keys() {
        let (_, sequence) = split_key(&key?)?;
        if sequence & NOT_DISCOVERABLE == 0 {
            count += 1;
        }
    }
    Ok(count)
}

impl DiscoverableCredentials {
    /// Reads all of `token`'s records.
    pub(crate) fn load(
        tree: sled::Tree,
        token: &str,
        limit: u32,
        vault: Arc<Vault>,
    ) -> Result<Self> {
        let (mut entries, mut others, mut marks) = (Vec::new(), Vec::new(), Vec::new());
        for entry in tree.scan_prefix(prefix(token)) {
            let (key, value) = entry?;
            let (name, sequence) = split_key(&key)?;
            if name != token {
                return Err(corrupt(place(token, sequence), "under another token's key"));
            }
            let json = open_value(&vault, &value, token, sequence)?;
            let credential: DiscoverableCredential = serde_json::from_slice(&json)
                .map_err(|e| corrupt(place(token, sequence), e.to_string()))?;
            let entry = Entry {
                sequence,
                rp_id_hash: credential.rp_id_hash(),
                credential,
            };
            if sequence & NOT_DISCOVERABLE == 0 {
                entries.push(entry);
            } else if entry.credential.removed {
                marks.push(entry);
            } else {
                others.push(entry);
            }
        }
        let next_sequence = entries.last().map_or(0, |e| e.sequence.saturating_add(1));
        let next_other = others
            .iter()
            .chain(&marks)
            .map(|e| e.sequence.saturating_add(1))
            .max()
            .unwrap_or(NOT_DISCOVERABLE);
        Ok(Self {
            token: token.to_owned(),
            tree,
            vault,
            rng: SystemRandom::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            next_sequence,
            entries,
            others,
            marks,
            next_other,
        })
    }

    /// The credentials made for the RP whose rpIdHash is `rp_id_hash`, most recently stored first.
    pub fn for_rp(&self, rp_id_hash: &[u8; 32]) -> Vec<&DiscoverableCredential> {
        self.entries
            .iter()
            .rev()
            .filter(|e| &e.rp_id_hash == rp_id_hash)
            .map(|e| &e.credential)
            .collect()
    }

    /// The credential whose id is `credential_id`.
    pub fn find(&self, credential_id: &[u8]) -> Option<&DiscoverableCredential> {
        self.entries
            .iter()
            .find(|e| e.credential.credential_id == credential_id)
            .map(|e| &e.credential)
    }

    /// Stores `credential` as the most recent one, durably (flushed) before it returns.
    ///
    /// A credential for the same RP id and user id as a stored one replaces it (CTAP 2.1 §6.1
    /// step 17), as does one with the same credential id (a non-discoverable record of that id
    /// ends as [`Self::remove`] ends it); the old record goes in the same atomic sled batch that
    /// adds the new one, so a crash leaves one or the other. Otherwise a token at
    /// its limit refuses it with [`StoreError::DiscoverableFull`] (`CTAP2_ERR_KEY_STORE_FULL`).
    /// An empty or over-long credential id, or an over-long user id, is
    /// [`StoreError::InvalidCredential`].
    ///
    /// If the flush fails the batch is applied all the same (sled may still write it): this view
    /// holds the credential, and the error is returned.
    pub fn store(&mut self, credential: DiscoverableCredential) -> Result<()> {
        self.check(&credential)?;
        let mut endings: Vec<Ending> = self
            .entries
            .iter()
            .filter(|e| {
                (e.credential.rp_id == credential.rp_id
                    && e.credential.user_id == credential.user_id)
                    || e.credential.credential_id == credential.credential_id
            })
            .map(|e| Ending::Delete(e.sequence))
            .collect();
        if endings.is_empty() && self.entries.len() >= self.limit {
            return Err(StoreError::DiscoverableFull {
                token: self.token.clone(),
                limit: self.limit,
            });
        }
        let mut batch = sled::Batch::default();
        if let Some(other) = self.position_of_other(&credential.credential_id) {
            endings.push(self.end_other(&self.others[other], &mut batch)?);
        }
        let sequence = self.next_sequence;
        batch.insert(
            key(&self.token, sequence),
            self.sealed(&credential, sequence)?,
        );
        for ending in &endings {
            if let Ending::Delete(old) = ending {
                batch.remove(key(&self.token, *old));
            }
        }
        self.tree.apply_batch(batch)?;
        self.next_sequence = sequence.saturating_add(1);
        self.apply(endings);
        self.entries.push(Entry {
            sequence,
            rp_id_hash: credential.rp_id_hash(),
            credential,
        });
        self.tree.flush()?;
        Ok(())
    }

    /// Ends the credential whose id is `credential_id`, durably (flushed): its record goes, or,
    /// for a non-discoverable credential the token made, becomes a mark (module docs). `false`
    /// when there is none (or it was removed already).
    pub fn remove(&mut self, credential_id: &[u8]) -> Result<bool> {
        let mut batch = sled::Batch::default();
        let Some(ending) = self.ending(credential_id, &mut batch)? else {
            return Ok(false);
        };
        self.tree.apply_batch(batch)?;
        self.apply(vec![ending]);
        self.tree.flush()?;
        Ok(true)
    }

    /// Ends every credential of the token, as [`Self::remove`] does each, in one batch, durably
    /// (flushed): WebDriver's Remove All Credentials. Returns how many there were.
    pub fn remove_all(&mut self) -> Result<usize> {
        let mut batch = sled::Batch::default();
        let mut endings = Vec::new();
        for (credential, _) in self.records() {
            endings.extend(self.ending(&credential.credential_id, &mut batch)?);
        }
        let count = endings.len();
        self.tree.apply_batch(batch)?;
        self.apply(endings);
        self.tree.flush()?;
        Ok(count)
    }

    /// How the live record of `credential_id` ends, its change added to `batch`; `None` when
    /// there is none.
    fn ending(&self, credential_id: &[u8], batch: &mut sled::Batch) -> Result<Option<Ending>> {
        if let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.credential.credential_id == credential_id)
        {
            batch.remove(key(&self.token, entry.sequence));
            return Ok(Some(Ending::Delete(entry.sequence)));
        }
        match self.position_of_other(credential_id) {
            Some(index) => self.end_other(&self.others[index], batch).map(Some),
            None => Ok(None),
        }
    }

    /// How a non-discoverable credential's record ends, its change added to `batch`: an imported
    /// credential's is deleted (its id opens only through it); one the token made becomes a mark,
    /// as its id would still open.
    fn end_other(&self, entry: &Entry, batch: &mut sled::Batch) -> Result<Ending> {
        if entry.credential.handle.is_some() {
            batch.remove(key(&self.token, entry.sequence));
            return Ok(Ending::Delete(entry.sequence));
        }
        let mark = DiscoverableCredential {
            removed: true,
            sign_count: None,
            ..entry.credential.clone()
        };
        batch.insert(
            key(&self.token, entry.sequence),
            self.sealed(&mark, entry.sequence)?,
        );
        Ok(Ending::Mark(entry.sequence, Box::new(mark)))
    }

    /// Applies `endings` to the records in memory, once their batch is written.
    fn apply(&mut self, endings: Vec<Ending>) {
        for ending in endings {
            let sequence = match &ending {
                Ending::Delete(sequence) | Ending::Mark(sequence, _) => *sequence,
            };
            self.entries.retain(|e| e.sequence != sequence);
            let Some(index) = self.others.iter().position(|e| e.sequence == sequence) else {
                continue;
            };
            let entry = self.others.remove(index);
            if let Ending::Mark(_, mark) = ending {
                self.marks.push(Entry {
                    credential: *mark,
                    ..entry
                });
            }
        }
    }

    /// The handle `credential_id` opens as: an imported credential's the handle its record
    /// keeps; none for a removed credential's id, nor for a discoverable credential's whose
    /// record is gone (the engines refuse both, whenever they ask: after a touch wait too); any
    /// other id itself.
    pub fn handle_of<'a>(&'a self, credential_id: &'a [u8]) -> Option<&'a [u8]> {
        match self.record(credential_id) {
            Some((credential, _)) => Some(credential.handle.as_deref().unwrap_or(credential_id)),
            None if self.is_removed(credential_id)
                || crate::KeyWrapper::is_discoverable(credential_id) =>
            {
                None
            }
            None => Some(credential_id),
        }
    }

    /// Whether `credential_id` is that of a removed non-discoverable credential the token made.
    fn is_removed(&self, credential_id: &[u8]) -> bool {
        self.marks
            .iter()
            .any(|e| e.credential.credential_id == credential_id)
    }

    /// Keeps `credential` as a non-discoverable credential's record (module docs), durably
    /// (flushed). A record with the same id, discoverable or not, ends in the same batch, as
    /// [`Self::remove`] ends it. Not counted against the limit: such records are kept only by
    /// tokens that track their credentials and for imported ones.
    pub fn track(&mut self, credential: DiscoverableCredential) -> Result<()> {
        self.check(&credential)?;
        let mut batch = sled::Batch::default();
        let ending = self.ending(&credential.credential_id, &mut batch)?;
        let sequence = self.next_other;
        batch.insert(
            key(&self.token, sequence),
            self.sealed(&credential, sequence)?,
        );
        self.tree.apply_batch(batch)?;
        self.apply(ending.into_iter().collect());
        self.next_other = sequence.saturating_add(1);
        self.others.push(Entry {
            sequence,
            rp_id_hash: credential.rp_id_hash(),
            credential,
        });
        self.tree.flush()?;
        Ok(())
    }

    /// The record of `credential_id`, discoverable (`true`) or not.
    pub fn record(&self, credential_id: &[u8]) -> Option<(&DiscoverableCredential, bool)> {
        if let Some(credential) = self.find(credential_id) {
            return Some((credential, true));
        }
        self.position_of_other(credential_id)
            .map(|index| (&self.others[index].credential, false))
    }

    /// Every record, discoverable (`true`) or not, oldest first (no mark).
    pub fn records(&self) -> impl Iterator<Item = (&DiscoverableCredential, bool)> {
        let discoverable = self.entries.iter().map(|e| (&e.credential, true));
        let others = self.others.iter().map(|e| (&e.credential, false));
        discoverable.chain(others)
    }

    /// Notes that `credential_id` signed with `counter`, when its record keeps a sign count.
    /// Written without a flush: the count only reports (module docs).
    pub fn note_signature(&mut self, credential_id: &[u8], counter: u32) -> Result<()> {
        let entry = self
            .entries
            .iter_mut()
            .chain(self.others.iter_mut())
            .find(|e| e.credential.credential_id == credential_id);
        let Some(entry) = entry.filter(|e| e.credential.sign_count.is_some()) else {
            return Ok(());
        };
        let mut updated = entry.credential.clone();
        updated.sign_count = Some(counter);
        let json = serde_json::to_vec(&updated)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        let value = seal_value(&self.vault, &json, &self.token, entry.sequence, &self.rng)?;
        self.tree.insert(key(&self.token, entry.sequence), value)?;
        entry.credential = updated;
        Ok(())
    }

    fn position_of_other(&self, credential_id: &[u8]) -> Option<usize> {
        self.others
            .iter()
            .position(|e| e.credential.credential_id == credential_id)
    }

    /// `credential` as stored at `sequence`: JSON, sealed when the store is locked.
    fn sealed(&self, credential: &DiscoverableCredential, sequence: u64) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(credential)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        seal_value(&self.vault, &json, &self.token, sequence, &self.rng)
    }

    /// Refuses an id or a user id out of range.
    fn check(&self, credential: &DiscoverableCredential) -> Result<()> {
        let invalid = |detail: String| StoreError::InvalidCredential {
            token: self.token.clone(),
            detail,
        };
        if credential.credential_id.is_empty()
            || credential.credential_id.len() > MAX_CREDENTIAL_ID_LEN
        {
            return Err(invalid(format!(
                "a {}-byte credential id (1 to {MAX_CREDENTIAL_ID_LEN} bytes)",
                credential.credential_id.len()
            )));
        }
        if credential.user_id.len() > MAX_USER_ID_LEN {
            return Err(invalid(format!(
                "a {}-byte user id (at most {MAX_USER_ID_LEN} bytes)",
                credential.user_id.len()
            )));
        }
        Ok(())
    }

    /// Replaces the user's name and display name of the credential whose id is `credential_id`
    /// (credentialManagement's updateUserInformation: an absent one is removed), in place (its
    /// order stays), durably (flushed); `false` when there is none.
    pub fn update_user(
        &mut self,
        credential_id: &[u8],
        user_name: Option<String>,
        user_display_name: Option<String>,
    ) -> Result<bool> {
        let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.credential.credential_id == credential_id)
        else {
            return Ok(false);
        };
        let mut updated = entry.credential.clone();
        updated.user_name = user_name;
        updated.user_display_name = user_display_name;
        let json = serde_json::to_vec(&updated)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        let value = seal_value(&self.vault, &json, &self.token, entry.sequence, &self.rng)?;
        self.tree.insert(key(&self.token, entry.sequence), value)?;
        entry.credential = updated;
        self.tree.flush()?;
        Ok(true)
    }

    /// Forgets every record in memory: they were removed from the store (authenticatorReset).
    pub(crate) fn forget_all(&mut self) {
        self.entries.clear();
        self.others.clear();
        self.marks.clear();
    }

    /// How many credentials are stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many the token may keep (`TokenOptions::discoverable_limit`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many more fit (getInfo's remainingDiscoverableCredentials).
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.entries.len())
    }

    /// Every credential, most recently stored first.
    pub fn iter(&self) -> impl Iterator<Item = &DiscoverableCredential> {
        self.entries.iter().rev().map(|e| &e.credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn credential(rp: &str, user: &[u8], id: u8) -> DiscoverableCredential {
        DiscoverableCredential {
            credential_id: vec![id; 61],
            rp_id: rp.to_owned(),
            user_id: user.to_vec(),
            user_name: Some(format!("user-{}", hex::encode(user))),
            user_display_name: None,
            public_key_cose: vec![0xa4, 1, 1, 3, 0x27],
            cred_protect: 0,
            handle: None,
            sign_count: None,
            removed: false,
        }
    }

    fn temporary_tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree(DISCOVERABLE).unwrap()
    }

    fn open(tree: &sled::Tree, token: &str, limit: u32) -> DiscoverableCredentials {
        DiscoverableCredentials::load(tree.clone(), token, limit, Arc::new(Vault::Plain)).unwrap()
    }

    #[test]
    fn keys_split_back_into_token_and_sequence() {
        assert_eq!(split_key(&key("tok-1", 7)).unwrap(), ("tok-1", 7));
        assert!(split_key(b"short").is_err());
        assert!(split_key(&[b'a', 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn tokens_whose_names_share_a_prefix_stay_apart() {
        let tree = temporary_tree();
        let mut a = open(&tree, "a", 10);
        let mut ab = open(&tree, "ab", 10);
        a.store(credential("x.example", b"1", 1)).unwrap();
        ab.store(credential("x.example", b"1", 2)).unwrap();
        assert_eq!(open(&tree, "a", 10).len(), 1);
        assert_eq!(count(&tree, "ab").unwrap(), 1);
        assert_eq!(
            open(&tree, "ab", 10).iter().next().unwrap().credential_id,
            vec![2; 61]
        );
    }

    #[test]
    fn sealed_records_open_only_at_their_place() {
        let rng = SystemRandom::new();
        let (vault, _) = Vault::lock(&crate::Passphrase::new(b"p".to_vec()), &rng).unwrap();
        let json = serde_json::to_vec(&credential("x.example", b"1", 1)).unwrap();
        let value = seal_value(&vault, &json, "t", 3, &rng).unwrap();
        assert_eq!(value[0], SEALED);
        assert!(!value.windows(9).any(|w| w == b"x.example"));
        assert_eq!(
            open_value(&vault, &value, "t", 3).unwrap().as_slice(),
            json.as_slice()
        );
        assert!(
            open_value(&vault, &value, "t", 4).is_err(),
            "another sequence"
        );
        assert!(open_value(&vault, &value, "u", 3).is_err(), "another token");
        assert!(open_value(&Vault::Plain, &value, "t", 3).is_err());
        let resealed = reseal(&key("t", 3), &value, &vault, &Vault::Plain, &rng).unwrap();
        assert_eq!(resealed[0], PLAIN);
        assert_eq!(&resealed[1..], json.as_slice());
    }

    #[test]
    fn a_user_update_keeps_the_order_and_survives_a_reload() {
        let tree = temporary_tree();
        let mut creds = open(&tree, "t", 10);
        creds.store(credential("x.example", b"1", 1)).unwrap();
        creds.store(credential("x.example", b"2", 2)).unwrap();
        assert!(creds
            .update_user(&[1; 61], Some("new".into()), None)
            .unwrap());
        assert!(!creds.update_user(&[9; 61], None, None).unwrap());
        let reloaded = open(&tree, "t", 10);
        let ids: Vec<u8> = reloaded.iter().map(|c| c.credential_id[0]).collect();
        assert_eq!(ids, vec![2, 1], "newest first, as before the update");
        let updated = reloaded.find(&[1; 61]).unwrap();
        assert_eq!(updated.user_name.as_deref(), Some("new"));
        assert_eq!(updated.user_display_name, None);
        assert_eq!(updated.user_id, b"1");
    }

    #[test]
    fn non_discoverable_records_stay_out_of_discovery_the_limit_and_the_count() {
        let tree = temporary_tree();
        let mut creds = open(&tree, "t", 1);
        creds.store(credential("x.example", b"1", 1)).unwrap();
        let imported = DiscoverableCredential {
            handle: Some(vec![0x81; 126]),
            sign_count: Some(41),
            removed: false,
            ..credential("x.example", b"", 2)
        };
        creds.track(imported.clone()).unwrap();
        creds.track(credential("y.example", b"", 3)).unwrap();
        let reloaded = open(&tree, "t", 1);
        for view in [&creds, &reloaded] {
            assert_eq!((view.len(), view.remaining()), (1, 0));
            assert_eq!(view.for_rp(&rp_id_hash("x.example")).len(), 1);
            assert!(view.find(&[2; 61]).is_none(), "not discoverable");
            assert_eq!(view.record(&[2; 61]), Some((&imported, false)));
            assert_eq!(view.handle_of(&[2; 61]), Some(&[0x81; 126][..]));
            assert_eq!(
                view.handle_of(&[1; 61]),
                Some(&[1; 61][..]),
                "its id is its handle"
            );
            let ids: Vec<(u8, bool)> = view
                .records()
                .map(|(c, discoverable)| (c.credential_id[0], discoverable))
                .collect();
            assert_eq!(ids, vec![(1, true), (2, false), (3, false)]);
        }
        assert_eq!(count(&tree, "t").unwrap(), 1);
    }

    #[test]
    fn a_signature_updates_a_kept_sign_count_only() {
        let tree = temporary_tree();
        let mut creds = open(&tree, "t", 10);
        creds.store(credential("x.example", b"1", 1)).unwrap();
        let counted = DiscoverableCredential {
            sign_count: Some(0),
            removed: false,
            ..credential("x.example", b"", 2)
        };
        creds.track(counted).unwrap();
        creds.note_signature(&[1; 61], 7).unwrap();
        creds.note_signature(&[2; 61], 7).unwrap();
        creds.note_signature(&[9; 61], 7).unwrap();
        let reloaded = open(&tree, "t", 10);
        assert_eq!(reloaded.record(&[1; 61]).unwrap().0.sign_count, None);
        assert_eq!(reloaded.record(&[2; 61]).unwrap().0.sign_count, Some(7));
    }

    #[test]
    fn remove_takes_either_kind_and_remove_all_takes_every_record() {
        let tree = temporary_tree();
        let mut creds = open(&tree, "t", 10);
        creds.store(credential("x.example", b"1", 1)).unwrap();
        creds.store(credential("x.example", b"2", 2)).unwrap();
        creds.track(credential("x.example", b"", 3)).unwrap();
        let imported = DiscoverableCredential {
            handle: Some(vec![0x01; 61]),
            ..credential("x.example", b"", 4)
        };
        creds.track(imported).unwrap();
        assert!(creds.remove(&[3; 61]).unwrap());
        assert!(creds.remove(&[1; 61]).unwrap());
        assert!(!creds.remove(&[3; 61]).unwrap(), "removed already");
        assert_eq!(open(&tree, "t", 10).records().count(), 2);
        assert_eq!(creds.remove_all().unwrap(), 2);
        assert_eq!(creds.records().count(), 0);
        let reloaded = open(&tree, "t", 10);
        assert_eq!(reloaded.records().count(), 0);
        assert!(reloaded.record(&[3; 61]).is_none());
        assert_eq!(
            reloaded.handle_of(&[3; 61]),
            None,
            "the token made it: its id would still open, so its mark stays"
        );
        assert_eq!(reloaded.handle_of(&[4; 61]), Some(&[4; 61][..]));
        assert_eq!(reloaded.handle_of(&[1; 61]), Some(&[1; 61][..]));
        assert_eq!(tree.len(), 1, "the mark alone");
    }

    #[test]
    fn a_mark_outlives_the_records_that_reuse_its_id() {
        let tree = temporary_tree();
        let mut creds = open(&tree, "t", 1);
        let imported = |id: u8, handle: u8| DiscoverableCredential {
            handle: Some(vec![handle; 61]),
            ..credential("x.example", b"i", id)
        };
        creds.track(credential("x.example", b"", 3)).unwrap();
        creds.track(imported(3, 0xA1)).unwrap();
        assert_eq!(creds.handle_of(&[3; 61]), Some(&[0xA1; 61][..]), "replaced");
        assert!(creds.remove(&[3; 61]).unwrap());
        assert_eq!(creds.handle_of(&[3; 61]), None, "the replaced one's mark");

        creds.track(credential("x.example", b"", 5)).unwrap();
        creds.store(imported(5, 0xA2)).unwrap();
        assert_eq!(creds.handle_of(&[5; 61]), Some(&[0xA2; 61][..]));
        let another_user = DiscoverableCredential {
            user_id: b"j".to_vec(),
            ..imported(6, 0xA3)
        };
        let full = creds.store(another_user);
        assert!(matches!(full, Err(StoreError::DiscoverableFull { .. })));
        assert!(creds.remove(&[5; 61]).unwrap());
        creds.store(credential("x.example", b"k", 7)).unwrap();
        creds.track(imported(7, 0xA4)).unwrap();
        assert!(
            creds.iter().next().is_none(),
            "an id is one kind of record or the other"
        );
        assert_eq!(creds.handle_of(&[7; 61]), Some(&[0xA4; 61][..]));
        assert!(creds.remove(&[7; 61]).unwrap());
        let reloaded = open(&tree, "t", 1);
        assert_eq!(reloaded.handle_of(&[3; 61]), None);
        assert_eq!(reloaded.handle_of(&[5; 61]), None);
        assert_eq!(
            reloaded.handle_of(&[7; 61]),
            Some(&[7; 61][..]),
            "a discoverable id opens only with its record, so none is marked"
        );
        assert_eq!(reloaded.records().count(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Store { rp: u8, user: u8 },
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..3, 0u8..3).prop_map(|(rp, user)| Op::Store { rp, user }),
            1 => (0usize..8).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Against a model (a list, newest first): replacement by (rp, user), the limit, removal,
        /// order, and the same view after a reload.
        #[test]
        fn behaves_like_a_newest_first_list(ops in proptest::collection::vec(op(), 1..24)) {
            const LIMIT: usize = 4;
            let tree = temporary_tree();
            let mut creds = open(&tree, "t", LIMIT as u32);
            let mut model: Vec<DiscoverableCredential> = Vec::new();
            for (n, op) in ops.iter().enumerate() {
                match *op {
                    Op::Store { rp, user } => {
                        let c = credential(&format!("rp{rp}.example"), &[user], n as u8);
                        let old = model.iter().position(|m| m.rp_id == c.rp_id && m.user_id == c.user_id);
                        let result = creds.store(c.clone());
                        match old {
                            Some(i) => {
                                prop_assert!(result.is_ok());
                                model.remove(i);
                                model.insert(0, c);
                            }
                            None if model.len() >= LIMIT => {
                                let full = matches!(result, Err(StoreError::DiscoverableFull { limit: LIMIT, .. }));
                                prop_assert!(full);
                            }
                            None => {
                                prop_assert!(result.is_ok());
                                model.insert(0, c);
                            }
                        }
                    }
                    Op::Remove(i) => {
                        let id = model.get(i).map_or(vec![0xee; 61], |m| m.credential_id.clone());
                        prop_assert_eq!(creds.remove(&id).unwrap(), i < model.len());
                        if i < model.len() {
                            model.remove(i);
                        }
                    }
                }
                prop_assert_eq!(creds.iter().cloned().collect::<Vec<_>>(), model.clone());
                prop_assert_eq!(creds.remaining(), LIMIT - model.len());
            }
            for rp in 0..3u8 {
                let rp_id = format!("rp{rp}.example");
                let expected: Vec<_> = model.iter().filter(|m| m.rp_id == rp_id).collect();
                prop_assert_eq!(creds.for_rp(&rp_id_hash(&rp_id)), expected);
            }
            let reloaded = open(&tree, "t", LIMIT as u32);
            prop_assert_eq!(reloaded.iter().cloned().collect::<Vec<_>>(), model);
        }
    }
}
