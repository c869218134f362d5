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
//!   had made it ([`DiscoverableCredentials::handle_for`] tells the engine which handle an id
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
//! (its sealed key), which would still open: its record stays, marked `removed`, and the engines
//! refuse an id so marked ([`DiscoverableCredentials::is_removed`]) as they refuse one not theirs.
//! Only a reset, which makes every old id useless, drops such marks.
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

/// How [`DiscoverableCredentials::remove`] ends a credential: the record at a sequence deleted,
/// or rewritten as `removed` (the new record and its stored value).
enum Ending {
    Delete(u64),
    Mark(u64, Box<DiscoverableCredential>, Vec<u8>),
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
        let (mut entries, mut others) = (Vec::new(), Vec::new());
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
            } else {
                others.push(entry);
            }
        }
        let next_sequence = entries.last().map_or(0, |e| e.sequence.saturating_add(1));
        let next_other = others
            .last()
            .map_or(NOT_DISCOVERABLE, |e| e.sequence.saturating_add(1));
        Ok(Self {
            token: token.to_owned(),
            tree,
            vault,
            rng: SystemRandom::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            next_sequence,
            entries,
            others,
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
    /// step 17), as does one with the same credential id; the old record goes in the same atomic
    /// sled batch that adds the new one, so a crash leaves one or the other. Otherwise a token at
    /// its limit refuses it with [`StoreError::DiscoverableFull`] (`CTAP2_ERR_KEY_STORE_FULL`).
    /// An empty or over-long credential id, or an over-long user id, is
    /// [`StoreError::InvalidCredential`].
    ///
    /// If the flush fails the batch is applied all the same (sled may still write it): this view
    /// holds the credential, and the error is returned.
    pub fn store(&mut self, credential: DiscoverableCredential) -> Result<()> {
        self.check(&credential)?;
        let replaced: Vec<u64> = self
            .entries
            .iter()
            .filter(|e| {
                (e.credential.rp_id == credential.rp_id
                    && e.credential.user_id == credential.user_id)
                    || e.credential.credential_id == credential.credential_id
            })
            .map(|e| e.sequence)
            .collect();
        if replaced.is_empty() && self.entries.len() >= self.limit {
            return Err(StoreError::DiscoverableFull {
                token: self.token.clone(),
                limit: self.limit,
            });
        }
        let sequence = self.next_sequence;
        let value = self.sealed(&credential, sequence)?;
        let mut batch = sled::Batch::default();
        for old in &replaced {
            batch.remove(key(&self.token, *old));
        }
        if let Some(other) = self.position_of_other(&credential.credential_id) {
            batch.remove(key(&self.token, self.others[other].sequence));
            self.others.remove(other);
        }
        batch.insert(key(&self.token, sequence), value);
        self.tree.apply_batch(batch)?;
        self.next_sequence = sequence.saturating_add(1);
        self.entries.retain(|e| !replaced.contains(&e.sequence));
        self.entries.push(Entry {
            sequence,
            rp_id_hash: credential.rp_id_hash(),
            credential,
        });
        self.tree.flush()?;
        Ok(())
    }

    /// Ends the credential whose id is `credential_id`, durably (flushed): its record goes, or,
    /// for a non-discoverable credential the token made, is marked removed (module docs).
    /// `false` when there is none (or it was removed already).
    pub fn remove(&mut self, credential_id: &[u8]) -> Result<bool> {
        let Some(ending) = self.ending(credential_id)? else {
            return Ok(false);
        };
        self.end(vec![ending])?;
        Ok(true)
    }

    /// Ends every credential of the token, as [`Self::remove`] does each, in one batch, durably
    /// (flushed): WebDriver's Remove All Credentials. Returns how many there were.
    pub fn remove_all(&mut self) -> Result<usize> {
        let mut endings = Vec::new();
        for (credential, _) in self.records() {
            endings.extend(self.ending(&credential.credential_id)?);
        }
        let count = endings.len();
        self.end(endings)?;
        Ok(count)
    }

    /// How `credential_id`'s credential ends: `None` when there is none (or it ended already).
    fn ending(&self, credential_id: &[u8]) -> Result<Option<Ending>> {
        if let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.credential.credential_id == credential_id)
        {
            return Ok(Some(Ending::Delete(entry.sequence)));
        }
        let Some(entry) = self
            .others
            .iter()
            .find(|e| e.credential.credential_id == credential_id && !e.credential.removed)
        else {
            return Ok(None);
        };
        if entry.credential.handle.is_some() {
            return Ok(Some(Ending::Delete(entry.sequence)));
        }
        let mut marked = entry.credential.clone();
        marked.removed = true;
        marked.sign_count = None;
        let value = self.sealed(&marked, entry.sequence)?;
        Ok(Some(Ending::Mark(entry.sequence, Box::new(marked), value)))
    }

    /// Writes `endings` in one batch, flushed, then to the records in memory.
    fn end(&mut self, endings: Vec<Ending>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for ending in &endings {
            match ending {
                Ending::Delete(sequence) => batch.remove(key(&self.token, *sequence)),
                Ending::Mark(sequence, _, value) => {
                    batch.insert(key(&self.token, *sequence), value.as_slice())
                }
            }
        }
        self.tree.apply_batch(batch)?;
        for ending in endings {
            match ending {
                Ending::Delete(sequence) => {
                    self.entries.retain(|e| e.sequence != sequence);
                    self.others.retain(|e| e.sequence != sequence);
                }
                Ending::Mark(sequence, marked, _) => {
                    if let Some(entry) = self.others.iter_mut().find(|e| e.sequence == sequence) {
                        entry.credential = *marked;
                    }
                }
            }
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Whether `credential_id` is a non-discoverable credential of the token that was removed:
    /// the engines refuse it.
    pub fn is_removed(&self, credential_id: &[u8]) -> bool {
        self.position_of_other(credential_id)
            .is_some_and(|index| self.others[index].credential.removed)
    }

    /// Keeps `credential` as a non-discoverable credential's record (module docs), replacing a
    /// record with the same id, durably (flushed). Not counted against the limit: such records
    /// are kept only by tokens that track their credentials and for imported ones.
    pub fn track(&mut self, credential: DiscoverableCredential) -> Result<()> {
        self.check(&credential)?;
        if self.find(&credential.credential_id).is_some() {
            return Err(StoreError::InvalidCredential {
                token: self.token.clone(),
                detail: "the id is a discoverable credential's already".into(),
            });
        }
        let sequence = self.next_other;
        let value = self.sealed(&credential, sequence)?;
        let mut batch = sled::Batch::default();
        let replaced = self.position_of_other(&credential.credential_id);
        if let Some(old) = replaced {
            batch.remove(key(&self.token, self.others[old].sequence));
        }
        batch.insert(key(&self.token, sequence), value);
        self.tree.apply_batch(batch)?;
        if let Some(old) = replaced {
            self.others.remove(old);
        }
        self.next_other = sequence.saturating_add(1);
        self.others.push(Entry {
            sequence,
            rp_id_hash: credential.rp_id_hash(),
            credential,
        });
        self.tree.flush()?;
        Ok(())
    }

    /// The handle an imported credential's id opens as (module docs); `None` for any other id,
    /// which is its own handle.
    pub fn handle_for(&self, credential_id: &[u8]) -> Option<&[u8]> {
        self.record(credential_id)
            .and_then(|(credential, _)| credential.handle.as_deref())
    }

    /// The record of `credential_id`, discoverable (`true`) or not.
    pub fn record(&self, credential_id: &[u8]) -> Option<(&DiscoverableCredential, bool)> {
        if let Some(credential) = self.find(credential_id) {
            return Some((credential, true));
        }
        self.position_of_other(credential_id)
            .map(|index| &self.others[index].credential)
            .filter(|credential| !credential.removed)
            .map(|credential| (credential, false))
    }

    /// Every record, discoverable (`true`) or not, oldest first (none of a removed credential).
    pub fn records(&self) -> impl Iterator<Item = (&DiscoverableCredential, bool)> {
        let discoverable = self.entries.iter().map(|e| (&e.credential, true));
        let others = self
            .others
            .iter()
            .filter(|e| !e.credential.removed)
            .map(|e| (&e.credential, false));
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
        assert!(
            creds.track(credential("x.example", b"", 1)).is_err(),
            "an id is one kind of record or the other"
        );
        let reloaded = open(&tree, "t", 1);
        for view in [&creds, &reloaded] {
            assert_eq!((view.len(), view.remaining()), (1, 0));
            assert_eq!(view.for_rp(&rp_id_hash("x.example")).len(), 1);
            assert!(view.find(&[2; 61]).is_none(), "not discoverable");
            assert_eq!(view.record(&[2; 61]), Some((&imported, false)));
            assert_eq!(view.handle_for(&[2; 61]), Some(&[0x81; 126][..]));
            assert_eq!(view.handle_for(&[1; 61]), None, "its id is its handle");
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
        assert!(
            reloaded.is_removed(&[3; 61]),
            "the token made it: its id would still open, so its mark stays"
        );
        assert!(!reloaded.is_removed(&[4; 61]) && !reloaded.is_removed(&[1; 61]));
        assert_eq!(tree.len(), 1, "the mark alone");
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
