//! # keystore — the bottom layer of vu2f: secrets and the signature counter
//!
//! Everything a virtual U2F token must keep across restarts lives here, in one directory with one
//! [`sled`] database (`DESIGN.md`, "Decisions"):
//!
//! ```text
//!  store dir (0700; refused if others can read into it)
//!  ├── lock        flock'ed by the process that has the store open
//!  └── db/ (sled) ── tree "meta"          attestation CA + batch certificate(s) (generated at first
//!                 │                       use), and "lock": the passphrase's KDF salt and wrapped
//!                 │                       store key
//!                 ├ tree "tokens"        name -> TokenRecord (master key, optional own certificate,
//!                 │                       profile, discoverable credential limit)
//!                 ├ tree "counters"      name -> persisted counter ceiling (u32, big-endian)
//!                 ├ tree "discoverable"  name ‖ 0x00 ‖ sequence -> one discoverable credential
//!                 ├ tree "pins"          name -> the token's PIN hash, its retry count and
//!                 │                       uvRetries (built-in UV attempts left)
//!                 ├ tree "config"        name -> authenticatorConfig's settings (alwaysUv, minimum
//!                 │                       PIN length and its RP IDs, forcePINChange), plain
//!                 └ tree "large_blobs"   name -> the token's serialized large-blob array
//! ```
//!
//! * [`key_handle`]: credential private keys are not stored; they are sealed into the key handle with
//!   the token's master key (AES-256-GCM) with the application parameter as associated data. U2F
//!   key handles and CTAP2 ES256 credential ids are the same 126-byte handles; Ed25519 credential
//!   ids are 61 bytes.
//! * [`discoverable`]: the records of discoverable credentials (CTAP 2.1 "rk"), per token.
//! * [`pin`]: a token's clientPIN: LEFT(SHA-256(PIN), 16) and its retry count, lowered durably
//!   before every comparison; and uvRetries, lowered durably before every built-in UV attempt.
//! * [`config`]: a token's authenticatorConfig settings.
//! * [`large_blob`]: a token's serialized large-blob array (CTAP 2.1 authenticatorLargeBlobs).
//! * [`profile`]: whether a token is a FIDO2 authenticator or a U2F-only key.
//! * [`counter`]: one global signature counter per token that never repeats and never goes back, even
//!   across `kill -9`, with one flush per block of values rather than one per signature.
//! * [`attestation`]: the store's own attestation CA, the batch certificate its tokens share, and
//!   the store's AAGUID.
//! * [`lock`]: a store locked with a passphrase keeps every secret above sealed (Argon2id, AES-GCM).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attestation;
pub mod config;
pub mod counter;
mod dirs;
pub mod discoverable;
pub mod error;
mod hex;
pub mod key_handle;
pub mod large_blob;
pub mod lock;
pub mod pin;
pub mod profile;
pub mod store;

pub use attestation::{Attestation, AttestationKey};
pub use config::{ConfigState, TokenConfig, DEFAULT_MIN_PIN_LENGTH, MAX_MIN_PIN_LENGTH_RP_IDS};
pub use counter::{Counter, DEFAULT_COUNTER_BLOCK};
pub use dirs::default_store_dir;
pub use discoverable::{
    DiscoverableCredential, DiscoverableCredentials, DEFAULT_DISCOVERABLE_LIMIT,
};
pub use error::StoreError;
pub use key_handle::{
    CredentialExtensions, CredentialKey, CredentialSecret, Ed25519Seed, KeyWrapper, Residency,
    UnwrapError, Unwrapped, WrappedKey, ED25519_HANDLE_LEN, KEY_HANDLE_LEN, MAX_CRED_BLOB_LEN,
    MAX_ISSUED_ID_LEN,
};
pub use large_blob::{LargeBlobArray, MAX_SERIALIZED_LARGE_BLOB_ARRAY};
pub use lock::Passphrase;
pub use pin::{PinCheck, PinState, UvAttempt, MAX_PIN_RETRIES, MAX_UV_RETRIES, PIN_HASH_LEN};
pub use profile::{AttestationType, Profile, UnknownAttestationType, UnknownProfile};
pub use store::{Store, TokenInfo, TokenKeys, TokenOptions};
