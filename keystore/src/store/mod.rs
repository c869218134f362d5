//! The store: one directory, one sled database, any number of tokens (`DESIGN.md`, "Tokens are
//! cheap"; "One `sled::Db` for the whole store").
//!
//! * this module: opening the store, and creating, listing, loading and removing tokens;
//! * `files`: the directory on disk, its permissions, its lock file and its database files;
//! * `rewrite`: locking the store with a passphrase, changing it or removing it.
use std::collections::HashSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::attestation::{Attestation, AttestationKey, StoredAttestation, StoredCertificate};
use crate::counter::{self, Counter, DEFAULT_COUNTER_BLOCK};
use crate::error::{Result, StoreError};
use crate::key_handle::KeyWrapper;
use crate::lock::{LockRecord, Passphrase, Vault};

mod files;
mod rewrite;

use files::{
    check_is_store, check_private, finish_rewrite, open_db, restrict_permissions, take_lock, DB,
};

const ATTESTATION_KEY: &[u8] = b"attestation";
const LOCK_KEY: &[u8] = b"lock";
const META: &str = "meta";
const TOKENS: &str = "tokens";
const COUNTERS: &str = "counters";
const RECORD_VERSION: u8 = 1;

/// How to create a token.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenOptions {
    /// Give the token its own attestation certificate instead of the store's batch certificate.
    pub own_certificate: bool,
}

/// What `token list` and `token show` tell about a token. Holds no secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// The token's name.
    pub name: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Whether the token has its own attestation certificate.
    pub own_certificate: bool,
    /// The persisted counter ceiling: every value handed out so far is at most this.
    pub counter_ceiling: u32,
}

#[derive(Serialize, Deserialize)]
struct TokenRecord {
    version: u8,
    /// The master key: 32 bytes, or sealed (`lock`) when `sealed`.
    #[serde(with = "crate::hex")]
    master_key: Vec<u8>,
    /// The token's own certificate; its key sealed like the master key.
    certificate: Option<StoredCertificate>,
    created_unix: u64,
    /// Whether the secrets of this record are sealed with the store key.
    #[serde(default)]
    sealed: bool,
}

impl Drop for TokenRecord {
    fn drop(&mut self) {
        self.master_key.zeroize();
    }
}

fn master_key_place(name: &str) -> String {
    format!("token/{name}/master_key")
}

fn certificate_place(name: &str) -> String {
    format!("token/{name}/certificate")
}

/// Everything the U2F engine needs to run one token.
pub struct TokenKeys {
    /// The token's name.
    pub name: String,
    /// Seals and opens the token's key handles.
    pub wrapper: KeyWrapper,
    /// The attestation key registrations are signed with.
    pub attestation: Arc<AttestationKey>,
    /// The token's signature counter.
    pub counter: Counter,
}

/// Marks a token as loaded in this process until dropped (inside its [`Counter`]).
pub(crate) struct TokenLease {
    name: String,
    in_use: Arc<Mutex<HashSet<String>>>,
}

impl Drop for TokenLease {
    fn drop(&mut self) {
        if let Ok(mut set) = self.in_use.lock() {
            set.remove(&self.name);
        }
    }
}

/// A key store directory, opened.
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    tokens: sled::Tree,
    counters: sled::Tree,
    attestation: Attestation,
    rng: SystemRandom,
    in_use: Arc<Mutex<HashSet<String>>>,
    counter_block: u32,
    vault: Vault,
    /// The open lock file, flock'ed: the store belongs to this process until dropped.
    _lock: std::fs::File,
}

fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_owned()))
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Opens the store in `dir`, creating it (mode 0700) and its attestation CA on first use.
    /// A store locked with a passphrase is refused with [`StoreError::Locked`].
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_unlocking(dir, || Err(StoreError::Locked(dir.to_owned())))
    }

    /// Opens the store in `dir`; if it is locked, `passphrase` is asked for the passphrase.
    /// An existing store whose files other users can read is refused ([`StoreError::NotPrivate`]).
    pub fn open_unlocking(
        dir: &Path,
        passphrase: impl FnOnce() -> Result<Passphrase>,
    ) -> Result<Self> {
        Self::open_with(dir, None, |lock| match lock {
            Some(record) => Vault::unlock(&passphrase()?, &record),
            None => Ok(Vault::Plain),
        })
    }

    /// Opens the store, holding its lock file (`held`, when the caller took it already).
    fn open_with(
        dir: &Path,
        held: Option<std::fs::File>,
        unlock: impl FnOnce(Option<LockRecord>) -> Result<Vault>,
    ) -> Result<Self> {
        let dir_error = |source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        };
        if dir.exists() && check_is_store(dir)? {
            check_private(dir)?;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(dir_error)?;
        let lock_file = match held {
            Some(file) => file,
            None => take_lock(dir)?,
        };
        finish_rewrite(dir).map_err(dir_error)?;
        let db = open_db(dir, &dir.join(DB))?;
        restrict_permissions(dir).map_err(dir_error)?;
        let rng = SystemRandom::new();
        let meta = db.open_tree(META)?;
        let lock = match meta.get(LOCK_KEY)? {
            Some(bytes) => Some(decode::<LockRecord>(&bytes, "lock")?),
            None => None,
        };
        let vault = unlock(lock)?;
        let stored = match meta.get(ATTESTATION_KEY)? {
            Some(bytes) => decode::<StoredAttestation>(&bytes, "attestation")?.open(&vault)?,
            None => {
                let generated = StoredAttestation::generate(&rng)?;
                meta.insert(ATTESTATION_KEY, encode(&generated.seal(&vault, &rng)?)?)?;
                db.flush()?;
                generated
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            tokens: db.open_tree(TOKENS)?,
            counters: db.open_tree(COUNTERS)?,
            attestation: Attestation::load(&stored, &rng)?,
            db,
            rng,
            in_use: Arc::default(),
            counter_block: DEFAULT_COUNTER_BLOCK,
            vault,
            _lock: lock_file,
        })
    }

    /// Whether the store is locked with a passphrase.
    pub fn is_locked(&self) -> bool {
        self.vault.is_sealed()
    }

    /// Sets how many counter values one flush reserves (default [`DEFAULT_COUNTER_BLOCK`]).
    pub fn set_counter_block(&mut self, block: u32) {
        self.counter_block = block.max(1);
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store's attestation CA and batch certificate.
    pub fn attestation(&self) -> &Attestation {
        &self.attestation
    }

    /// Creates tokens, all or none, with one flush for the whole batch.
    pub fn create_tokens<S: AsRef<str>>(
        &self,
        names: &[S],
        options: TokenOptions,
    ) -> Result<Vec<TokenInfo>> {
        let mut seen = HashSet::new();
        for name in names {
            let name = name.as_ref();
            validate_name(name)?;
            if !seen.insert(name) || self.tokens.contains_key(name)? {
                return Err(StoreError::TokenExists(name.to_owned()));
            }
        }
        let mut batch = sled::Batch::default();
        let mut infos = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let mut master_key = Zeroizing::new([0u8; 32]);
            self.rng
                .fill(master_key.as_mut())
                .map_err(|_| StoreError::Crypto("no randomness for a master key".into()))?;
            let certificate = if options.own_certificate {
                let mut own = self.attestation.issue_for_token(name, &self.rng)?;
                let key = self
                    .vault
                    .seal(own.key(), &certificate_place(name), &self.rng)?;
                own.set_key(key);
                Some(own)
            } else {
                None
            };
            let record = TokenRecord {
                version: RECORD_VERSION,
                master_key: self.vault.seal(
                    master_key.as_ref(),
                    &master_key_place(name),
                    &self.rng,
                )?,
                certificate,
                created_unix: now_unix(),
                sealed: self.vault.is_sealed(),
            };
            let json = encode(&record)?;
            batch.insert(name.as_bytes(), json);
            infos.push(TokenInfo {
                name: name.to_owned(),
                created_unix: record.created_unix,
                own_certificate: options.own_certificate,
                counter_ceiling: 0,
            });
        }
        self.tokens.apply_batch(batch)?;
        self.db.flush()?;
        Ok(infos)
    }

    /// Creates one token.
    pub fn create_token(&self, name: &str, options: TokenOptions) -> Result<TokenInfo> {
        let mut infos = self.create_tokens(&[name], options)?;
        Ok(infos.remove(0))
    }

    fn record(&self, name: &str) -> Result<TokenRecord> {
        let bytes = self
            .tokens
            .get(name.as_bytes())?
            .ok_or_else(|| StoreError::NoSuchToken(name.to_owned()))?;
        let record: TokenRecord = decode(&bytes, &format!("token {name:?}"))?;
        if record.version != RECORD_VERSION || (!record.sealed && record.master_key.len() != 32) {
            return Err(StoreError::Corrupt {
                what: format!("token {name:?}"),
                detail: format!(
                    "record version {} with a {}-byte key",
                    record.version,
                    record.master_key.len()
                ),
            });
        }
        Ok(record)
    }

    fn info_of(&self, name: &str, record: &TokenRecord) -> Result<TokenInfo> {
        Ok(TokenInfo {
            name: name.to_owned(),
            created_unix: record.created_unix,
            own_certificate: record.certificate.is_some(),
            counter_ceiling: counter::read_ceiling(&self.counters, name)?,
        })
    }

    /// Tells about one token.
    pub fn info(&self, name: &str) -> Result<TokenInfo> {
        let record = self.record(name)?;
        self.info_of(name, &record)
    }

    /// The names of all tokens, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        self.tokens
            .iter()
            .keys()
            .map(|key| {
                let key = key?;
                String::from_utf8(key.to_vec()).map_err(|_| StoreError::Corrupt {
                    what: "token name".into(),
                    detail: "not UTF-8".into(),
                })
            })
            .collect()
    }

    /// Tells about all tokens, sorted by name.
    pub fn list(&self) -> Result<Vec<TokenInfo>> {
        self.names()?.iter().map(|name| self.info(name)).collect()
    }

    /// Deletes a token: its master key and counter are gone, and so is every credential it made.
    pub fn remove(&self, name: &str) -> Result<()> {
        if self.in_use.lock().is_ok_and(|set| set.contains(name)) {
            return Err(StoreError::TokenBusy(name.to_owned()));
        }
        if self.tokens.remove(name.as_bytes())?.is_none() {
            return Err(StoreError::NoSuchToken(name.to_owned()));
        }
        self.counters.remove(name.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Loads a token for use. At most one load per token is alive at a time in a process.
    pub fn load(&self, name: &str) -> Result<TokenKeys> {
        let record = self.record(name)?;
        {
            let mut set = self
                .in_use
                .lock()
                .map_err(|_| StoreError::TokenBusy(name.to_owned()))?;
            if !set.insert(name.to_owned()) {
                return Err(StoreError::TokenBusy(name.to_owned()));
            }
        }
        let lease = TokenLease {
            name: name.to_owned(),
            in_use: Arc::clone(&self.in_use),
        };
        let counter = Counter::open(self.counters.clone(), name, self.counter_block, lease)?;
        let attestation = match &record.certificate {
            Some(own) => {
                let key = self
                    .vault
                    .open(own.key(), record.sealed, &certificate_place(name))?;
                Arc::new(AttestationKey::from_der(
                    own.certificate_der.clone(),
                    &key,
                    &self.rng,
                )?)
            }
            None => Arc::clone(self.attestation.batch()),
        };
        let opened = self
            .vault
            .open(&record.master_key, record.sealed, &master_key_place(name))?;
        let master_key: Zeroizing<[u8; 32]> = Zeroizing::new(
            opened
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt {
                    what: format!("token {name:?}"),
                    detail: format!("a {}-byte master key", opened.len()),
                })?,
        );
        Ok(TokenKeys {
            name: name.to_owned(),
            wrapper: KeyWrapper::new(&master_key),
            attestation,
            counter,
        })
    }
}

impl Store {
    /// Loads many tokens at once, and reserves the first counter block of all of them with one
    /// flush (instead of one flush per token at its first signature).
    pub fn load_many<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<TokenKeys>> {
        let mut loaded = names
            .iter()
            .map(|name| self.load(name.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let mut batch = sled::Batch::default();
        let planned: Vec<Option<u32>> = loaded
            .iter()
            .map(|keys| {
                let ceiling = keys.counter.next_ceiling();
                if let Some(ceiling) = ceiling {
                    batch.insert(keys.name.as_bytes(), &ceiling.to_be_bytes());
                }
                ceiling
            })
            .collect();
        self.counters.apply_batch(batch)?;
        self.db.flush()?;
        for (keys, ceiling) in loaded.iter_mut().zip(planned) {
            if let Some(ceiling) = ceiling {
                keys.counter.reserved(ceiling);
            }
        }
        Ok(loaded)
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what: what.to_owned(),
        detail: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Crypto(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for good in ["a", "alice", "tok-1.x_y", &"z".repeat(64)] {
            validate_name(good).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "sp ace", "é", &"z".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
