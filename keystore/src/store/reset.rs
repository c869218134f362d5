//! A token back to its factory state (CTAP 2.1 §6.6 "authenticatorReset"; `shared/spec/CTAP2.md`
//! §8): [`TokenKeys::factory_reset`] gives the token a new master key, so that every credential
//! id and U2F key handle it ever issued stops opening, and removes its discoverable credentials,
//! its PIN (the retry count is back at 8 with it), its authenticatorConfig settings and its
//! large-blob array (the initial, empty one again), in one
//! sled transaction flushed before it returns. What stays: the name, the profile, the attestation
//! and the signature counter, which must never go back or repeat.
//!
//! ```text
//!  one transaction:  tokens[name]        master key ← new random 32 bytes (sealed if locked)
//!                    discoverable[name‖0‖*]  removed
//!                    pins[name], config[name], large_blobs[name] removed
//!  then:             db.flush()            the reset is acknowledged only after this
//! ```
//! A record kept per token by a later feature belongs in the same transaction.
use std::sync::Arc;

use ring::rand::SecureRandom;
use ring::rand::SystemRandom;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use zeroize::Zeroizing;

use super::{decode, encode, master_key_place, Store, TokenKeys, TokenRecord};
use crate::discoverable;
use crate::error::{Result, StoreError};
use crate::key_handle::KeyWrapper;
use crate::lock::Vault;

/// The trees a factory reset rewrites, held by a loaded token.
pub(crate) struct ResetHandle {
    pub(crate) db: sled::Db,
    pub(crate) tokens: sled::Tree,
    pub(crate) discoverable: sled::Tree,
    pub(crate) pins: sled::Tree,
    pub(crate) config: sled::Tree,
    pub(crate) large_blobs: sled::Tree,
    pub(crate) vault: Arc<Vault>,
}

impl TokenKeys {
    /// Resets the token to its factory state, durably (see the module docs): new master key, no
    /// discoverable credential, no PIN, default settings, the empty large-blob array; the counter goes on where it was. On an
    /// error before the transaction nothing changed; the view in memory changes only after the
    /// flush.
    pub fn factory_reset(&mut self) -> Result<()> {
        let handle = &self.reset;
        let name = self.name.as_str();
        let bytes = handle
            .tokens
            .get(name.as_bytes())?
            .ok_or_else(|| StoreError::NoSuchToken(name.to_owned()))?;
        let mut record: TokenRecord = decode(&bytes, &format!("token {name:?}"))?;
        let rng = SystemRandom::new();
        let mut master_key = Zeroizing::new([0u8; 32]);
        rng.fill(master_key.as_mut())
            .map_err(|_| StoreError::Crypto("no randomness for a master key".into()))?;
        record.master_key =
            handle
                .vault
                .seal(master_key.as_ref(), &master_key_place(name), &rng)?;
        record.sealed = handle.vault.is_sealed();
        let encoded = encode(&record)?;
        let credentials = handle
            .discoverable
            .scan_prefix(discoverable::prefix(name))
            .keys()
            .collect::<sled::Result<Vec<_>>>()?;
        let trees = (
            &handle.tokens,
            &handle.discoverable,
            &handle.pins,
            &handle.config,
            &handle.large_blobs,
        );
        trees
            .transaction(|(tokens, discoverable, pins, config, large_blobs)| {
                tokens.insert(name.as_bytes(), encoded.as_slice())?;
                for key in &credentials {
                    discoverable.remove(key.clone())?;
                }
                pins.remove(name.as_bytes())?;
                config.remove(name.as_bytes())?;
                large_blobs.remove(name.as_bytes())?;
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Db(e),
            })?;
        handle.db.flush()?;
        self.wrapper = KeyWrapper::new(&master_key);
        self.discoverable.forget_all();
        self.pin.forget();
        self.config.forget();
        self.large_blobs.forget();
        Ok(())
    }
}

impl Store {
    /// Resets token `name` to its factory state ([`TokenKeys::factory_reset`]) without serving
    /// it (`vu2f token reset`).
    pub fn reset_token(&self, name: &str) -> Result<()> {
        self.load(name)?.factory_reset()
    }
}

#[cfg(test)]
mod tests {
    use crate::discoverable::DiscoverableCredential;
    use crate::key_handle::{CredentialKey, Residency};
    use crate::{Passphrase, Store, TokenConfig, TokenOptions};
    use ring::rand::SystemRandom;

    fn credential(id: Vec<u8>) -> DiscoverableCredential {
        DiscoverableCredential {
            credential_id: id,
            rp_id: "x.example".into(),
            user_id: vec![1],
            user_name: None,
            user_display_name: None,
            public_key_cose: vec![0xa0],
            cred_protect: 0,
            handle: None,
            sign_count: None,
            removed: false,
        }
    }

    /// Everything the reset erases is gone after a reopening, old handles no longer open, the
    /// counter goes on above what it handed out, and another token is untouched.
    fn reset_erases_durably(locked: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let passphrase = || Passphrase::new(b"p".to_vec());
        let mut store = Store::open(&path).unwrap();
        if locked {
            store = store.set_passphrase(Some(&passphrase())).unwrap();
        }
        store
            .create_tokens(&["t", "other"], TokenOptions::default())
            .unwrap();
        let rng = SystemRandom::new();
        let app = [7u8; 32];
        let (handle, other_handle, last) = {
            let mut keys = store.load("t").unwrap();
            let mut other = store.load("other").unwrap();
            let key = CredentialKey::generate(&rng).unwrap();
            let handle = keys.wrapper.wrap(&key, &app, &rng).unwrap();
            let id = keys
                .wrapper
                .wrap_as(&key, &app, Residency::Discoverable, &rng)
                .unwrap();
            keys.discoverable.store(credential(id.to_vec())).unwrap();
            other.discoverable.store(credential(id.to_vec())).unwrap();
            keys.pin.set(&[1; 16], 4).unwrap();
            keys.pin.check(&[2; 16]).unwrap();
            keys.config
                .set(TokenConfig {
                    always_uv: true,
                    ..TokenConfig::default()
                })
                .unwrap();
            let mut blob = vec![0x81, 0x41, 7];
            blob.extend_from_slice(&crate::large_blob::large_blob_trailer(&blob));
            keys.large_blobs.replace(blob).unwrap();
            let last = keys.counter.next_value().unwrap();
            keys.factory_reset().unwrap();
            assert!(keys.wrapper.unwrap(&handle, &app).is_err(), "at once");
            assert!(keys.discoverable.is_empty() && !keys.pin.is_set());
            assert_eq!(keys.config.get(), &TokenConfig::default());
            assert_eq!(
                keys.large_blobs.serialized(),
                crate::large_blob::initial_large_blob_array()
            );
            assert!(keys.counter.next_value().unwrap() > last);
            let other_handle = other.wrapper.wrap(&key, &app, &rng).unwrap();
            (handle, other_handle, last)
        };
        drop(store);
        let store = if locked {
            Store::open_unlocking(&path, || Ok(passphrase())).unwrap()
        } else {
            Store::open(&path).unwrap()
        };
        let info = store.info("t").unwrap();
        assert_eq!(
            (info.discoverable, info.pin_set, info.pin_retries),
            (0, false, 8)
        );
        assert_eq!(info.config, TokenConfig::default());
        let mut keys = store.load("t").unwrap();
        assert_eq!(
            keys.large_blobs.serialized(),
            crate::large_blob::initial_large_blob_array()
        );
        assert!(keys.wrapper.unwrap(&handle, &app).is_err());
        assert!(keys.counter.next_value().unwrap() > last + 1);
        let other = store.load("other").unwrap();
        assert_eq!(other.discoverable.len(), 1, "another token keeps its own");
        assert!(other.wrapper.unwrap(&other_handle, &app).is_ok());
        drop((keys, other));
        store.reset_token("other").unwrap();
        assert_eq!(store.info("other").unwrap().discoverable, 0);
    }

    #[test]
    fn a_reset_erases_durably() {
        reset_erases_durably(false);
    }

    #[test]
    fn a_reset_erases_durably_in_a_locked_store() {
        reset_erases_durably(true);
    }
}
