//! The store: one directory, one sled database, any number of tokens (`DESIGN.md`, "Tokens are
//! cheap"; "One `sled::Db` for the whole store").
use std::collections::HashSet;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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

const ATTESTATION_KEY: &[u8] = b"attestation";
const LOCK_KEY: &[u8] = b"lock";
const META: &str = "meta";
const TOKENS: &str = "tokens";
const COUNTERS: &str = "counters";
/// The database, and where a rewrite (`set_passphrase`) builds its successor and puts it away.
const DB: &str = "db";
const NEXT_DB: &str = "db.next";
const OLD_DB: &str = "db.old";
/// Held (flock) by the process that has the store open, rewrites included.
const LOCK_FILE: &str = "lock";
const RECORD_VERSION: u8 = 1;
/// sled's page cache; the store's records are small.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

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

fn restrict_permissions(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(path)? {
            restrict_permissions(&entry?.path())?;
        }
    } else if meta.is_file() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Refuses a store whose secrets other users could read: an entry they can reach (every directory
/// above it searchable by them) and read. A 0644 file that sled made inside the 0700 store is
/// unreachable, so it passes; a store directory opened to the group does not.
fn check_private(dir: &Path) -> Result<()> {
    fn walk(path: &Path, reach: u32, top: &Path) -> Result<()> {
        let io = |source| StoreError::Dir {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::symlink_metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        // `reach`: the group (0o070) and other (0o007) bits of those who can get this far.
        let readable = mode & reach & 0o044;
        if readable != 0 {
            let who = if readable & 0o004 != 0 {
                "everyone"
            } else {
                "its group"
            };
            return Err(StoreError::NotPrivate {
                path: top.to_owned(),
                detail: format!("{} (mode {mode:o}) is readable by {who}", path.display()),
            });
        }
        if meta.is_dir() {
            let searchable = mode & reach & 0o011;
            let reach = (searchable * 7) & reach;
            if reach != 0 {
                for entry in std::fs::read_dir(path).map_err(io)? {
                    walk(&entry.map_err(io)?.path(), reach, top)?;
                }
            }
        }
        Ok(())
    }
    walk(dir, 0o077, dir)
}

/// Takes the store's lock file, or says which process kind holds it.
fn take_lock(dir: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| StoreError::Dir { path, source })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::InUse(dir.to_owned())),
        Err(e) => Err(StoreError::Dir {
            path: dir.to_owned(),
            source: e.into(),
        }),
    }
}

fn open_db(dir: &Path, path: &Path) -> Result<sled::Db> {
    sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        .open()
        .map_err(|e| match e {
            sled::Error::Io(io) if io.to_string().contains("lock") => {
                StoreError::InUse(dir.to_owned())
            }
            other => StoreError::Db(other),
        })
}

/// Replaces the database with the rewritten one: `db` → `db.old`, `db.next` → `db`, then
/// `db.old` is deleted.
fn swap_in_rewrite(dir: &Path) -> std::io::Result<()> {
    std::fs::rename(dir.join(DB), dir.join(OLD_DB))?;
    std::fs::rename(dir.join(NEXT_DB), dir.join(DB))?;
    std::fs::File::open(dir)?.sync_all()?;
    std::fs::remove_dir_all(dir.join(OLD_DB))
}

/// Finishes or forgets a rewrite that a crash interrupted: a `db.next` without a `db` is the
/// new database half swapped in; a `db.next` beside a `db` never was.
fn finish_rewrite(dir: &Path) -> std::io::Result<()> {
    let (db, next, old) = (dir.join(DB), dir.join(NEXT_DB), dir.join(OLD_DB));
    if !db.exists() && next.exists() {
        std::fs::rename(&next, &db)?;
        std::fs::File::open(dir)?.sync_all()?;
    }
    if next.exists() {
        std::fs::remove_dir_all(&next)?;
    }
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
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
        if dir.exists() {
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

    /// Locks the store with `passphrase` (or changes it), or with `None` stores its secrets
    /// unsealed again, and returns the store reopened.
    ///
    /// Every secret is sealed again under a new store key into a new database beside the old one
    /// (counters copied as they are), which then replaces it: sled keeps overwritten values in its
    /// log, so sealing in place would leave the old plaintext in the files. A crash before the
    /// swap leaves the old store whole; one during it is finished at the next opening. The old
    /// files are deleted, not shredded: for secrets that never touch the disk unsealed, lock a
    /// store before its first token.
    pub fn set_passphrase(self, passphrase: Option<&Passphrase>) -> Result<Store> {
        if let Some(name) = self
            .in_use
            .lock()
            .ok()
            .and_then(|set| set.iter().next().cloned())
        {
            return Err(StoreError::TokenBusy(name));
        }
        let (vault, lock) = match passphrase {
            Some(p) if p.is_empty() => {
                return Err(StoreError::Crypto(
                    "an empty passphrase locks nothing".into(),
                ))
            }
            Some(p) => {
                let (vault, lock) = Vault::lock(p, &self.rng)?;
                (vault, Some(encode(&lock)?))
            }
            None => (Vault::Plain, None),
        };
        let next_path = self.dir.join(NEXT_DB);
        if next_path.exists() {
            std::fs::remove_dir_all(&next_path).map_err(|source| StoreError::Dir {
                path: next_path.clone(),
                source,
            })?;
        }
        let next = open_db(&self.dir, &next_path)?;
        // Everything but the secrets as it is; the secrets written once, sealed anew: a value
        // written and then overwritten would stay in the new log too.
        for name in self.db.tree_names() {
            if name == TOKENS {
                continue;
            }
            let to = next.open_tree(&name)?;
            for entry in self.db.open_tree(&name)?.iter() {
                let (key, value) = entry?;
                if name == META && matches!(&*key, ATTESTATION_KEY | LOCK_KEY) {
                    continue;
                }
                to.insert(key, value)?;
            }
        }
        let meta = next.open_tree(META)?;
        if let Some(lock) = &lock {
            meta.insert(LOCK_KEY, lock.as_slice())?;
        }
        let attestation = match self.db.open_tree(META)?.get(ATTESTATION_KEY)? {
            Some(bytes) => decode::<StoredAttestation>(&bytes, "attestation")?
                .open(&self.vault)?
                .seal(&vault, &self.rng)?,
            None => {
                return Err(StoreError::Corrupt {
                    what: "attestation".into(),
                    detail: "missing".into(),
                })
            }
        };
        meta.insert(ATTESTATION_KEY, encode(&attestation)?)?;
        let tokens = next.open_tree(TOKENS)?;
        for name in self.names()? {
            tokens.insert(name.as_bytes(), encode(&self.reseal(&name, &vault)?)?)?;
        }
        next.flush()?;
        drop((meta, tokens, next));
        // The database closes; the lock file stays held across the swap.
        let Store {
            dir,
            counter_block: block,
            _lock: lock_file,
            db,
            tokens,
            counters,
            ..
        } = self;
        drop((tokens, counters, db));
        swap_in_rewrite(&dir).map_err(|source| StoreError::Dir {
            path: dir.clone(),
            source,
        })?;
        let mut store = Self::open_with(&dir, Some(lock_file), |_| Ok(vault))?;
        store.set_counter_block(block);
        Ok(store)
    }

    /// The record of token `name` with its secrets opened by the current vault and sealed by
    /// `vault`.
    fn reseal(&self, name: &str, vault: &Vault) -> Result<TokenRecord> {
        let mut record = self.record(name)?;
        let master_key =
            self.vault
                .open(&record.master_key, record.sealed, &master_key_place(name))?;
        record.master_key = vault.seal(&master_key, &master_key_place(name), &self.rng)?;
        if let Some(certificate) = &mut record.certificate {
            let key = self.vault.open(
                &certificate.key_pkcs8,
                record.sealed,
                &certificate_place(name),
            )?;
            certificate.set_key(vault.seal(&key, &certificate_place(name), &self.rng)?);
        }
        record.sealed = vault.is_sealed();
        Ok(record)
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

    /// Every file under `dir`, whole.
    fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(contents(&path));
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
        out
    }

    /// The secrets of a plain store: master keys and attestation private keys.
    fn secrets(store: &Store) -> Vec<Vec<u8>> {
        let mut secrets: Vec<Vec<u8>> = store
            .names()
            .unwrap()
            .iter()
            .map(|name| store.record(name).unwrap().master_key.clone())
            .collect();
        let meta = store.db.open_tree(META).unwrap();
        let stored: StoredAttestation =
            decode(&meta.get(ATTESTATION_KEY).unwrap().unwrap(), "attestation").unwrap();
        secrets.push(stored.ca.key().to_vec());
        secrets.push(stored.batch.key().to_vec());
        secrets
    }

    fn passphrase(text: &str) -> Passphrase {
        Passphrase::new(text.as_bytes().to_vec())
    }

    #[test]
    fn a_locked_store_keeps_no_secret_readable_and_opens_only_with_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::open(&path).unwrap();
        store.create_token("a", TokenOptions::default()).unwrap();
        store
            .create_token(
                "own",
                TokenOptions {
                    own_certificate: true,
                },
            )
            .unwrap();
        let plain_secrets = secrets(&store);
        let app = [7u8; 32];
        let rng = SystemRandom::new();
        let credential = crate::CredentialKey::generate(&rng).unwrap();
        let handle = store
            .load("a")
            .unwrap()
            .wrapper
            .wrap(&credential, &app, &rng)
            .unwrap();
        let locked = store
            .set_passphrase(Some(&passphrase("correct horse")))
            .unwrap();
        assert!(locked.is_locked());
        drop(locked);
        for (file, bytes) in contents(&path) {
            for secret in &plain_secrets {
                let hex = hex::encode(secret);
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_slice())
                        && !bytes.windows(hex.len()).any(|w| w == hex.as_bytes()),
                    "a secret is readable in {}",
                    file.display()
                );
            }
        }

        assert!(matches!(Store::open(&path), Err(StoreError::Locked(_))));
        assert!(matches!(
            Store::open_unlocking(&path, || Ok(passphrase("wrong horse"))),
            Err(StoreError::WrongPassphrase)
        ));
        let unlocked = Store::open_unlocking(&path, || Ok(passphrase("correct horse"))).unwrap();
        let keys = unlocked.load("a").unwrap();
        assert!(
            keys.wrapper.unwrap(&handle, &app).is_ok(),
            "a handle made before locking"
        );
        drop(keys);
        unlocked.load("own").unwrap();
        let plain = unlocked.set_passphrase(None).unwrap();
        assert!(!plain.is_locked());
        assert_eq!(
            secrets(&plain),
            plain_secrets,
            "the same secrets, unsealed again"
        );
    }

    #[test]
    fn the_plain_store_files_do_hold_the_secrets_the_scan_looks_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::open(&path).unwrap();
        store.create_token("a", TokenOptions::default()).unwrap();
        let secrets = secrets(&store);
        drop(store);
        let all: Vec<u8> = contents(&path).into_iter().flat_map(|(_, b)| b).collect();
        let hex = hex::encode(&secrets[0]);
        assert!(all.windows(hex.len()).any(|w| w == hex.as_bytes()));
    }

    #[test]
    fn counters_survive_locking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::open(&path).unwrap();
        store.create_token("a", TokenOptions::default()).unwrap();
        let mut keys = store.load("a").unwrap();
        let last = (0..5)
            .map(|_| keys.counter.next_value().unwrap())
            .last()
            .unwrap();
        drop(keys);
        let locked = store.set_passphrase(Some(&passphrase("p"))).unwrap();
        let mut keys = locked.load("a").unwrap();
        assert!(keys.counter.next_value().unwrap() > last);
    }

    #[test]
    fn a_store_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        drop(Store::open(&path).unwrap());
        let set = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        set(&path, 0o750);
        let refused = Store::open(&path)
            .err()
            .expect("a group-readable store is refused");
        assert!(matches!(refused, StoreError::NotPrivate { .. }));
        assert!(refused.to_string().contains("chmod -R go="), "{refused}");
        set(&path, 0o700);
        let conf = path.join("db").join("conf");
        set(&conf, 0o644);
        drop(Store::open(&path).expect("a 0644 file in a 0700 store is out of reach"));
        set(&conf, 0o644);
        set(&path, 0o711);
        set(&path.join("db"), 0o711);
        let refused = Store::open(&path)
            .err()
            .expect("searchable and readable by others");
        assert!(
            refused.to_string().contains("readable by everyone"),
            "{refused}"
        );
    }

    #[test]
    fn a_rewrite_cut_off_by_a_crash_is_finished_or_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::open(&path).unwrap();
        store.create_token("a", TokenOptions::default()).unwrap();
        drop(store);
        // Crashed between the two renames: only db.next is left.
        std::fs::rename(path.join(DB), path.join(NEXT_DB)).unwrap();
        assert_eq!(Store::open(&path).unwrap().names().unwrap(), ["a"]);
        // Crashed before the swap: an unfinished db.next beside the db.
        std::fs::create_dir(path.join(NEXT_DB)).unwrap();
        assert_eq!(Store::open(&path).unwrap().names().unwrap(), ["a"]);
        assert!(!path.join(NEXT_DB).exists());
    }
}
