//! The store: one directory, one sled database, any number of tokens (`DESIGN.md`, "Tokens are
//! cheap"; "One `sled::Db` for the whole store").
//!
//! * this module: opening the store, and creating, listing, loading and removing tokens (and, at
//!   the first opening of a store made before FIDO2, issuing its FIDO2 batch certificate:
//!   [`crate::attestation`]);
//! * `files`: the directory on disk, its permissions, its lock file and its database files;
//! * `rewrite`: locking the store with a passphrase, changing it or removing it.
use std::collections::HashSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::attestation::{
    uuid_string, Attestation, AttestationKey, StoredAttestation, StoredCertificate,
};
use crate::config::{self, ConfigState, TokenConfig, CONFIG};
use crate::counter::{self, Counter, DEFAULT_COUNTER_BLOCK};
use crate::discoverable::{
    self, DiscoverableCredentials, DEFAULT_DISCOVERABLE_LIMIT, DISCOVERABLE,
};
use crate::error::{Result, StoreError};
use crate::key_handle::KeyWrapper;
use crate::large_blob::{LargeBlobArray, LARGE_BLOBS};
use crate::lock::{LockRecord, Passphrase, Vault};
use crate::pin::{self, PinState, PINS};
use crate::profile::{AttestationType, Profile};

mod files;
mod reset;
mod rewrite;

pub(crate) use reset::ResetHandle;

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
#[derive(Debug, Clone, Copy)]
pub struct TokenOptions {
    /// Give the token its own attestation certificate instead of the store's batch certificate.
    pub own_certificate: bool,
    /// FIDO2 authenticator or U2F-only key.
    pub profile: Profile,
    /// How many discoverable credentials the token may keep ([`DEFAULT_DISCOVERABLE_LIMIT`]).
    pub discoverable_limit: u32,
    /// How its CTAP2 credentials are attested: the batch certificate, or self attestation.
    pub attestation: AttestationType,
    /// Keep a record of every credential the token makes, discoverable or not, with its sign
    /// count (the automation API's Get Credentials; `crate::discoverable`).
    pub tracks_credentials: bool,
    /// Let the automation API read the private keys of the token's credentials back.
    pub exportable: bool,
}

impl Default for TokenOptions {
    fn default() -> Self {
        Self {
            own_certificate: false,
            profile: Profile::default(),
            discoverable_limit: DEFAULT_DISCOVERABLE_LIMIT,
            attestation: AttestationType::default(),
            tracks_credentials: false,
            exportable: false,
        }
    }
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
    /// FIDO2 authenticator or U2F-only key.
    pub profile: Profile,
    /// The store's AAGUID, in UUID form (8-4-4-4-12 lowercase hex).
    pub aaguid: String,
    /// How many discoverable credentials the token keeps.
    pub discoverable: usize,
    /// How many it may keep.
    pub discoverable_limit: u32,
    /// How its CTAP2 credentials are attested.
    pub attestation: AttestationType,
    /// Whether the token has a clientPIN (the PIN itself is never told).
    pub pin_set: bool,
    /// PIN attempts left (8 without a PIN; 0: blocked).
    pub pin_retries: u8,
    /// Built-in user verification attempts left (uvRetries; 0: blocked until a PIN or a reset).
    pub uv_retries: u8,
    /// What authenticatorConfig set (alwaysUv, the minimum PIN length, forcePINChange).
    pub config: TokenConfig,
    /// Whether the token keeps a record of every credential it makes.
    pub tracks_credentials: bool,
    /// Whether its credentials' private keys may be read back.
    pub exportable: bool,
}

/// A token as the `tokens` tree keeps it (JSON).
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
    /// Absent in records made before profiles: those tokens were U2F keys.
    #[serde(default = "Profile::legacy")]
    profile: Profile,
    /// Absent in records made before discoverable credentials.
    #[serde(default = "default_discoverable_limit")]
    discoverable_limit: u32,
    /// Absent in records made before self attestation: batch.
    #[serde(default)]
    attestation: AttestationType,
    /// Absent in records made before the automation API: false.
    #[serde(default)]
    tracks_credentials: bool,
    /// Absent in records made before the automation API: false.
    #[serde(default)]
    exportable: bool,
}

fn default_discoverable_limit() -> u32 {
    DEFAULT_DISCOVERABLE_LIMIT
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

/// Everything the U2F and CTAP2 engines need to run one token.
pub struct TokenKeys {
    /// The token's name.
    pub name: String,
    /// Seals and opens the token's key handles.
    pub wrapper: KeyWrapper,
    /// The attestation key U2F registrations are signed with: the token's own certificate, else
    /// the store's batch.
    pub attestation: Arc<AttestationKey>,
    /// The token's signature counter.
    pub counter: Counter,
    /// FIDO2 authenticator or U2F-only key (as stored when the token was loaded).
    pub profile: Profile,
    /// The store's AAGUID, for authData's attested credential data.
    pub aaguid: [u8; 16],
    /// The attestation key of packed attestations: the token's own certificate when it has one
    /// that is FIDO2-capable (`crate::attestation`), else the store's FIDO2 batch.
    pub fido2_attestation: Arc<AttestationKey>,
    /// Whether packed attestations are signed with `fido2_attestation` or self attestations.
    pub attestation_type: AttestationType,
    /// The token's discoverable credentials.
    pub discoverable: DiscoverableCredentials,
    /// The token's clientPIN and its retry count.
    pub pin: PinState,
    /// The token's authenticatorConfig settings.
    pub config: ConfigState,
    /// What [`TokenKeys::factory_reset`] rewrites.
    pub(crate) reset: ResetHandle,
    /// The token's serialized large-blob array (authenticatorLargeBlobs).
    pub large_blobs: LargeBlobArray,
    /// Whether the token keeps a record of every credential it makes ([`TokenOptions`]).
    pub tracks_credentials: bool,
    /// Whether its credentials' private keys may be read back ([`TokenOptions`]).
    pub exportable: bool,
}

impl TokenKeys {
    /// Opens the credential id `id` presented for `app_param`: an imported credential's id as
    /// the handle its record keeps, any other id as itself ([`crate::discoverable`]); the id of a
    /// removed credential is not ours.
    pub fn open_credential(
        &self,
        id: &[u8],
        app_param: &[u8; 32],
    ) -> std::result::Result<crate::Unwrapped, crate::UnwrapError> {
        let handle = self
            .discoverable
            .handle_of(id)
            .ok_or(crate::UnwrapError::NotOurs)?;
        self.wrapper.unwrap_credential(handle, app_param)
    }
}

/// Marks a token as loaded in this process until dropped (inside its [`Counter`]).
pub(crate) struct TokenLease {
    name: String,
    in_use: Arc<Mutex<HashSet<String>>>,
}

#[cfg(test)]
impl TokenLease {
    /// A lease on nothing, for unit tests of the counter.
    pub(crate) fn for_tests(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            in_use: Arc::default(),
        }
    }
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
    discoverable: sled::Tree,
    pins: sled::Tree,
    config: sled::Tree,
    large_blobs: sled::Tree,
    attestation: Attestation,
    rng: SystemRandom,
    in_use: Arc<Mutex<HashSet<String>>>,
    counter_block: u32,
    vault: Arc<Vault>,
    /// The open lock file, flock'ed: the store belongs to this process until dropped.
    _lock: std::fs::File,
    /// A temporary store's directory, removed after everything above is dropped.
    _temporary: Option<tempfile::TempDir>,
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
            Some(bytes) => {
                let mut stored =
                    decode::<StoredAttestation>(&bytes, "attestation")?.open(&vault)?;
                if stored.needs_fido2_batch() {
                    stored.add_fido2_batch(&rng)?;
                    meta.insert(ATTESTATION_KEY, encode(&stored.seal(&vault, &rng)?)?)?;
                    db.flush()?;
                }
                stored
            }
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
            discoverable: db.open_tree(DISCOVERABLE)?,
            pins: db.open_tree(PINS)?,
            config: db.open_tree(CONFIG)?,
            large_blobs: db.open_tree(LARGE_BLOBS)?,
            attestation: Attestation::load(&stored, &rng)?,
            db,
            rng,
            in_use: Arc::default(),
            counter_block: DEFAULT_COUNTER_BLOCK,
            vault: Arc::new(vault),
            _lock: lock_file,
            _temporary: None,
        })
    }

    /// A new store in a private temporary directory under `parent`, removed with everything in
    /// it when the store is dropped: tokens that leave nothing behind (the automation API's
    /// ephemeral authenticators). It has its own attestation CA and AAGUID. The directory is
    /// named `ephemeral-PID-…` after this process, so that one a killed process left behind can
    /// be told apart.
    pub fn temporary_in(parent: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ephemeral-{}-", std::process::id()))
            .tempdir_in(parent)
            .map_err(|source| StoreError::Dir {
                path: parent.to_owned(),
                source,
            })?;
        let mut store = Self::open(dir.path())?;
        store._temporary = Some(dir);
        Ok(store)
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

    /// The store's attestation CA, batch certificates and AAGUID.
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
                profile: options.profile,
                discoverable_limit: options.discoverable_limit,
                attestation: options.attestation,
                tracks_credentials: options.tracks_credentials,
                exportable: options.exportable,
            };
            let json = encode(&record)?;
            batch.insert(name.as_bytes(), json);
            infos.push(TokenInfo {
                name: name.to_owned(),
                created_unix: record.created_unix,
                own_certificate: options.own_certificate,
                counter_ceiling: 0,
                profile: options.profile,
                aaguid: uuid_string(&self.attestation.aaguid()),
                discoverable: 0,
                discoverable_limit: options.discoverable_limit,
                attestation: options.attestation,
                pin_set: false,
                pin_retries: crate::pin::MAX_PIN_RETRIES,
                uv_retries: crate::pin::MAX_UV_RETRIES,
                config: TokenConfig::default(),
                tracks_credentials: options.tracks_credentials,
                exportable: options.exportable,
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
        let (pin, uv_retries) = pin::peek(&self.pins, &self.vault, name)?;
        Ok(TokenInfo {
            name: name.to_owned(),
            created_unix: record.created_unix,
            own_certificate: record.certificate.is_some(),
            counter_ceiling: counter::read_ceiling(&self.counters, name)?,
            profile: record.profile,
            aaguid: uuid_string(&self.attestation.aaguid()),
            discoverable: discoverable::count(&self.discoverable, name)?,
            discoverable_limit: record.discoverable_limit,
            attestation: record.attestation,
            pin_set: pin.is_some(),
            pin_retries: pin.unwrap_or(crate::pin::MAX_PIN_RETRIES),
            uv_retries,
            config: config::read(&self.config, name)?,
            tracks_credentials: record.tracks_credentials,
            exportable: record.exportable,
        })
    }

    /// Sets a token's profile (flushed). A token loaded now keeps the profile it was loaded with.
    pub fn set_profile(&self, name: &str, profile: Profile) -> Result<()> {
        let mut record = self.record(name)?;
        if record.profile == profile {
            return Ok(());
        }
        record.profile = profile;
        self.tokens.insert(name.as_bytes(), encode(&record)?)?;
        self.db.flush()?;
        Ok(())
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

    /// Deletes a token: its master key, counter, discoverable credentials, PIN, settings and
    /// large-blob array are gone (in one transaction), and so is every credential it made.
    pub fn remove(&self, name: &str) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        if self.in_use.lock().is_ok_and(|set| set.contains(name)) {
            return Err(StoreError::TokenBusy(name.to_owned()));
        }
        // The token is not loaded, and the store belongs to this process: nothing adds records
        // between this scan and the transaction.
        let records = self
            .discoverable
            .scan_prefix(discoverable::prefix(name))
            .keys()
            .collect::<sled::Result<Vec<_>>>()?;
        let trees = (
            &self.tokens,
            &self.counters,
            &self.discoverable,
            &self.pins,
            &self.config,
            &self.large_blobs,
        );
        trees
            .transaction(
                |(tokens, counters, credentials, pins, config, large_blobs)| {
                    if tokens.remove(name.as_bytes())?.is_none() {
                        return Err(ConflictableTransactionError::Abort(
                            StoreError::NoSuchToken(name.to_owned()),
                        ));
                    }
                    counters.remove(name.as_bytes())?;
                    pins.remove(name.as_bytes())?;
                    config.remove(name.as_bytes())?;
                    large_blobs.remove(name.as_bytes())?;
                    for key in &records {
                        credentials.remove(key.clone())?;
                    }
                    Ok(())
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Db(e),
            })?;
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
        let (attestation, fido2_attestation) = match &record.certificate {
            Some(own) => {
                let key = self
                    .vault
                    .open(own.key(), record.sealed, &certificate_place(name))?;
                let own_key = Arc::new(AttestationKey::from_der(
                    own.certificate_der.clone(),
                    &key,
                    &self.rng,
                )?);
                let fido2 = if self.attestation.is_fido2_capable(&own.certificate_der) {
                    Arc::clone(&own_key)
                } else {
                    Arc::clone(self.attestation.fido2())
                };
                (own_key, fido2)
            }
            None => (
                Arc::clone(self.attestation.batch()),
                Arc::clone(self.attestation.fido2()),
            ),
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
        let discoverable = DiscoverableCredentials::load(
            self.discoverable.clone(),
            name,
            record.discoverable_limit,
            Arc::clone(&self.vault),
        )?;
        Ok(TokenKeys {
            name: name.to_owned(),
            wrapper: KeyWrapper::new(&master_key),
            attestation,
            counter,
            profile: record.profile,
            aaguid: self.attestation.aaguid(),
            fido2_attestation,
            attestation_type: record.attestation,
            discoverable,
            pin: PinState::load(self.pins.clone(), name, Arc::clone(&self.vault))?,
            config: ConfigState::load(self.config.clone(), name)?,
            reset: ResetHandle {
                db: self.db.clone(),
                tokens: self.tokens.clone(),
                discoverable: self.discoverable.clone(),
                pins: self.pins.clone(),
                config: self.config.clone(),
                large_blobs: self.large_blobs.clone(),
                vault: Arc::clone(&self.vault),
            },
            large_blobs: LargeBlobArray::load(self.large_blobs.clone(), name)?,
            tracks_credentials: record.tracks_credentials,
            exportable: record.exportable,
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
    use crate::attestation::legacy;

    /// A temporary store works like any other, in a private directory of its own under the
    /// parent, and leaves nothing there once dropped.
    #[test]
    fn a_temporary_store_is_private_and_gone_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let store = Store::temporary_in(parent.path()).unwrap();
        let dir = store.dir().to_owned();
        assert!(dir.starts_with(parent.path()) && dir != parent.path());
        let name = dir.file_name().unwrap().to_str().unwrap();
        let pid = format!("ephemeral-{}-", std::process::id());
        assert!(name.starts_with(&pid), "{name}");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        store.create_token("e", TokenOptions::default()).unwrap();
        let keys = store.load("e").unwrap();
        assert_eq!(keys.name, "e");
        drop(keys);
        store.remove("e").unwrap();
        drop(store);
        assert!(!dir.exists(), "{} is left", dir.display());
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    /// A store whose attestation (and token "old", with its own certificate) were made before
    /// FIDO2, and whose token record has no profile or limit: as it was on disk before.
    pub(super) fn legacy_store() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::open(&path).unwrap();
        let rng = SystemRandom::new();
        let stored = legacy::attestation(&rng).unwrap();
        let meta = store.db.open_tree(META).unwrap();
        meta.insert(ATTESTATION_KEY, encode(&stored).unwrap())
            .unwrap();
        let record = TokenRecord {
            version: RECORD_VERSION,
            master_key: vec![7; 32],
            certificate: Some(legacy::token_certificate(&stored, "old", &rng).unwrap()),
            created_unix: 1,
            sealed: false,
            profile: Profile::U2f,
            discoverable_limit: 0,
            attestation: AttestationType::Batch,
            tracks_credentials: true,
            exportable: true,
        };
        let mut json: serde_json::Value = serde_json::to_value(&record).unwrap();
        let fields = json.as_object_mut().unwrap();
        for newer in [
            "profile",
            "discoverable_limit",
            "attestation",
            "tracks_credentials",
            "exportable",
        ] {
            fields.remove(newer);
        }
        store
            .tokens
            .insert("old", serde_json::to_vec(&json).unwrap())
            .unwrap();
        store.db.flush().unwrap();
        (dir, path)
    }

    fn stored_attestation(store: &Store) -> StoredAttestation {
        let meta = store.db.open_tree(META).unwrap();
        decode(&meta.get(ATTESTATION_KEY).unwrap().unwrap(), "attestation").unwrap()
    }

    #[test]
    fn a_store_made_before_fido2_gets_a_fido2_batch_once() {
        let (_dir, path) = legacy_store();
        let store = Store::open(&path).unwrap();
        let attestation = store.attestation();
        let (u2f, fido2) = (attestation.batch(), attestation.fido2());
        assert_ne!(u2f.certificate_der(), fido2.certificate_der());
        assert!(!attestation.is_fido2_capable(u2f.certificate_der()));
        assert!(attestation.is_fido2_capable(fido2.certificate_der()));
        let (_, cert) = x509_parser::parse_x509_certificate(fido2.certificate_der()).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        let stored = stored_attestation(&store);
        assert_eq!(
            cn.as_str().unwrap(),
            format!("vu2f FIDO2 batch {}", stored.store_id)
        );
        let issued = fido2.certificate_der().to_vec();
        let u2f_batch = u2f.certificate_der().to_vec();

        // The old token: its U2F attestation stays its own certificate; FIDO2 uses the batch.
        let keys = store.load("old").unwrap();
        assert_eq!(
            keys.profile,
            Profile::U2f,
            "a record without a profile is U2F"
        );
        assert_eq!(
            keys.discoverable.limit(),
            DEFAULT_DISCOVERABLE_LIMIT as usize
        );
        assert_ne!(keys.attestation.certificate_der(), u2f_batch.as_slice());
        assert_eq!(keys.fido2_attestation.certificate_der(), issued.as_slice());
        assert_eq!(keys.aaguid, store.attestation().aaguid());
        drop(keys);
        let info = store.info("old").unwrap();
        assert_eq!(
            (info.profile, info.discoverable_limit, info.attestation),
            (
                Profile::U2f,
                DEFAULT_DISCOVERABLE_LIMIT,
                AttestationType::Batch
            )
        );
        drop(store);

        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.attestation().fido2().certificate_der(),
            issued.as_slice(),
            "issued once, kept"
        );
        assert_eq!(
            store.attestation().batch().certificate_der(),
            u2f_batch.as_slice(),
            "the U2F batch stays"
        );
        // A token created now gets a FIDO2-capable own certificate.
        store
            .create_token(
                "new",
                TokenOptions {
                    own_certificate: true,
                    ..TokenOptions::default()
                },
            )
            .unwrap();
        let keys = store.load("new").unwrap();
        assert_eq!(
            keys.fido2_attestation.certificate_der(),
            keys.attestation.certificate_der()
        );
        assert!(store
            .attestation()
            .is_fido2_capable(keys.fido2_attestation.certificate_der()));
    }

    #[test]
    fn the_fido2_batch_is_sealed_when_the_store_is_locked() {
        let (_dir, path) = legacy_store();
        let store = Store::open(&path).unwrap();
        let issued = store.attestation().fido2().certificate_der().to_vec();
        let plain_key = stored_attestation(&store)
            .fido2_batch
            .unwrap()
            .key()
            .to_vec();
        let passphrase = || Passphrase::new(b"p".to_vec());
        let locked = store.set_passphrase(Some(&passphrase())).unwrap();
        let stored = stored_attestation(&locked);
        assert!(stored.sealed);
        let sealed_key = stored.fido2_batch.as_ref().unwrap().key().to_vec();
        assert!(!sealed_key.windows(plain_key.len()).any(|w| w == plain_key));
        drop(locked);
        let unlocked = Store::open_unlocking(&path, || Ok(passphrase())).unwrap();
        assert_eq!(
            unlocked.attestation().fido2().certificate_der(),
            issued.as_slice()
        );
        unlocked
            .load("old")
            .unwrap()
            .fido2_attestation
            .sign(&SystemRandom::new(), b"x")
            .unwrap();
        let plain = unlocked.set_passphrase(None).unwrap();
        assert_eq!(
            stored_attestation(&plain).fido2_batch.unwrap().key(),
            plain_key.as_slice()
        );
    }

    /// A locked store that predates FIDO2 gets its FIDO2 batch sealed at its first opening.
    #[test]
    fn a_locked_store_made_before_fido2_gets_a_sealed_fido2_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let passphrase = || Passphrase::new(b"p".to_vec());
        let locked = Store::open(&path)
            .unwrap()
            .set_passphrase(Some(&passphrase()))
            .unwrap();
        let rng = SystemRandom::new();
        let old = legacy::attestation(&rng)
            .unwrap()
            .seal(&locked.vault, &rng)
            .unwrap();
        assert!(old.sealed && old.fido2_batch.is_none());
        let meta = locked.db.open_tree(META).unwrap();
        meta.insert(ATTESTATION_KEY, encode(&old).unwrap()).unwrap();
        drop((meta, locked));

        let store = Store::open_unlocking(&path, || Ok(passphrase())).unwrap();
        let issued = store.attestation().fido2().certificate_der().to_vec();
        assert!(store.attestation().is_fido2_capable(&issued));
        let stored = stored_attestation(&store);
        assert!(stored.sealed);
        let sealed = stored.fido2_batch.as_ref().unwrap();
        assert!(
            store
                .vault
                .open(sealed.key(), false, "attestation/fido2-batch")
                .is_err(),
            "not stored unsealed"
        );
        drop(store);
        let store = Store::open_unlocking(&path, || Ok(passphrase())).unwrap();
        assert_eq!(
            store.attestation().fido2().certificate_der(),
            issued.as_slice()
        );
    }
}
