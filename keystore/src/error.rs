//! Errors of the key store, each naming what failed and, where it helps, what to do.
use std::path::PathBuf;

/// Everything that can go wrong opening or using a [`crate::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store directory could not be created or read.
    #[error("store directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another process (a running `vu2f serve`?) holds the store's database.
    #[error("store {0} is in use by another vu2f process (a running `vu2f serve`?); stop it or use another --store")]
    InUse(PathBuf),
    /// The database reported an error.
    #[error("store database: {0}")]
    Db(sled::Error),
    /// A record in the database could not be decoded.
    #[error("store record {what} is corrupt: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// No token of that name exists.
    #[error("no token named {0:?} in this store (see `vu2f token list`)")]
    NoSuchToken(String),
    /// A token of that name exists already.
    #[error("a token named {0:?} exists already")]
    TokenExists(String),
    /// The name is not acceptable as a token name.
    #[error("invalid token name {0:?}: use 1 to 64 characters among A-Z a-z 0-9 . _ -")]
    InvalidName(String),
    /// The token is already loaded by this process: two engines would share one counter.
    #[error("token {0:?} is already in use in this process")]
    TokenBusy(String),
    /// The signature counter reached its maximum value.
    #[error("the signature counter of token {0:?} is exhausted")]
    CounterExhausted(String),
    /// The store is locked with a passphrase and none was given.
    #[error("store {0} is locked with a passphrase: give it with --passphrase-file FILE, in VU2F_PASSPHRASE, or on a terminal")]
    Locked(PathBuf),
    /// The passphrase could not be had (an unreadable file, a failed prompt).
    #[error("cannot get the store's passphrase: {0}")]
    NoPassphrase(String),
    /// The passphrase does not open the store.
    #[error("wrong passphrase for this store")]
    WrongPassphrase,
    /// The directory holds other files and no vu2f database: not a store, and not to be made one.
    #[error("{path} is not a vu2f store (it holds {entry:?} and other files, but no vu2f database); pass a new or empty directory with --store")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// One of the entries found in it.
        entry: String,
    },
    /// The store's files can be read by other users.
    #[error("store {path} is not private: {detail}; fix it with `chmod -R go= {path}`")]
    NotPrivate {
        /// The store directory.
        path: PathBuf,
        /// Which file or directory others can reach, and its mode.
        detail: String,
    },
    /// The token keeps as many discoverable credentials as it may (`CTAP2_ERR_KEY_STORE_FULL`).
    #[error("token {token:?} keeps {limit} discoverable credentials already, its limit")]
    DiscoverableFull {
        /// The token.
        token: String,
        /// Its limit (`TokenOptions::discoverable_limit`).
        limit: usize,
    },
    /// A discoverable credential was refused before storing it (a field too long or empty).
    #[error("discoverable credential for token {token:?} refused: {detail}")]
    InvalidCredential {
        /// The token.
        token: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Key generation, certificate generation or another cryptographic step failed.
    #[error("cryptography: {0}")]
    Crypto(String),
}

/// Result of key store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        Self::Db(error)
    }
}
