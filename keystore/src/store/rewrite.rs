//! Locking, changing or removing a store's passphrase (issue 6, "Secrets at rest"; [`crate::lock`]):
//! [`Store::set_passphrase`] rewrites the whole database, and its tests scan the files it leaves.
//! What it seals anew: token master keys and certificate keys, the attestation keys (the FIDO2
//! batch's included), the records of discoverable credentials ([`crate::discoverable`]) and the
//! PIN records ([`crate::pin`]).
use crate::attestation::StoredAttestation;
use crate::discoverable::{self, DISCOVERABLE};
use crate::error::{Result, StoreError};
use crate::lock::{Passphrase, Vault};
use crate::pin::{self, PINS};

use super::files::{open_db, swap_in_rewrite, NEXT_DB};
use super::{
    certificate_place, decode, encode, master_key_place, Store, TokenRecord, ATTESTATION_KEY,
    LOCK_KEY, META, TOKENS,
};

impl Store {
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
            if name == TOKENS || name == DISCOVERABLE || name == PINS {
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
        let credentials = next.open_tree(DISCOVERABLE)?;
        for entry in self.discoverable.iter() {
            let (key, value) = entry?;
            let value = discoverable::reseal(&key, &value, &self.vault, &vault, &self.rng)?;
            credentials.insert(key, value)?;
        }
        let pins = next.open_tree(PINS)?;
        for entry in self.pins.iter() {
            let (key, value) = entry?;
            pins.insert(
                key.clone(),
                pin::reseal(&key, &value, &self.vault, &vault, &self.rng)?,
            )?;
        }
        next.flush()?;
        drop((meta, tokens, credentials, pins, next));
        // The database closes; the lock file stays held across the swap.
        let Store {
            dir,
            counter_block: block,
            _lock: lock_file,
            db,
            tokens,
            counters,
            discoverable,
            pins,
            config,
            large_blobs,
            ..
        } = self;
        drop((
            tokens,
            counters,
            discoverable,
            pins,
            config,
            large_blobs,
            db,
        ));
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
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use ring::rand::SystemRandom;

    use super::*;
    use crate::store::files::DB;
    use crate::store::TokenOptions;

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

    /// The secrets of a plain store: master keys and attestation private keys (the FIDO2 batch's
    /// of a store made before FIDO2 included).
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
        if let Some(fido2) = &stored.fido2_batch {
            secrets.push(fido2.key().to_vec());
        }
        secrets
    }

    /// A new store in a temporary directory, with one token "a".
    fn store_with_token_a() -> (tempfile::TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::open(&path).unwrap();
        store.create_token("a", TokenOptions::default()).unwrap();
        (dir, path, store)
    }

    fn passphrase(text: &str) -> Passphrase {
        Passphrase::new(text.as_bytes().to_vec())
    }

    #[test]
    fn a_locked_store_keeps_no_secret_readable_and_opens_only_with_its_passphrase() {
        let (_dir, path, store) = store_with_token_a();
        store
            .create_token(
                "own",
                TokenOptions {
                    own_certificate: true,
                    ..TokenOptions::default()
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

    /// A PIN set before locking: its hash is nowhere in the files of the locked store, the
    /// retry count survives, and the PIN still checks after unlocking; a removed token takes
    /// its PIN with it.
    #[test]
    fn a_pin_is_sealed_by_locking_and_goes_with_its_token() {
        let (_dir, path, store) = store_with_token_a();
        let digest = ring::digest::digest(&ring::digest::SHA256, b"4711");
        let hash: [u8; 16] = digest.as_ref()[..16].try_into().unwrap();
        let mut keys = store.load("a").unwrap();
        keys.pin.set(&hash, 4).unwrap();
        assert_eq!(
            keys.pin.check(&[0; 16]).unwrap(),
            crate::PinCheck::Wrong { retries: 7 }
        );
        drop(keys);
        let info = store.info("a").unwrap();
        assert_eq!((info.pin_set, info.pin_retries), (true, 7));
        let locked = store.set_passphrase(Some(&passphrase("p"))).unwrap();
        drop(locked);
        let hex = hex::encode(hash);
        for (file, bytes) in contents(&path) {
            assert!(
                !bytes.windows(16).any(|w| w == hash)
                    && !bytes.windows(32).any(|w| w == hex.as_bytes()),
                "the PIN hash is readable in {}",
                file.display()
            );
        }
        let unlocked = Store::open_unlocking(&path, || Ok(passphrase("p"))).unwrap();
        let mut keys = unlocked.load("a").unwrap();
        assert_eq!(keys.pin.retries(), 7);
        assert_eq!(keys.pin.check(&hash).unwrap(), crate::PinCheck::Correct);
        drop(keys);
        unlocked.remove("a").unwrap();
        unlocked.create_token("a", TokenOptions::default()).unwrap();
        assert!(
            !unlocked.load("a").unwrap().pin.is_set(),
            "a new token a has no PIN"
        );
    }

    #[test]
    fn the_plain_store_files_do_hold_the_secrets_the_scan_looks_for() {
        let (_dir, path, store) = store_with_token_a();
        let secrets = secrets(&store);
        drop(store);
        let all: Vec<u8> = contents(&path).into_iter().flat_map(|(_, b)| b).collect();
        let hex = hex::encode(&secrets[0]);
        assert!(all.windows(hex.len()).any(|w| w == hex.as_bytes()));
    }

    #[test]
    fn counters_survive_locking() {
        let (_dir, _, store) = store_with_token_a();
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
    fn a_rewrite_cut_off_by_a_crash_is_finished_or_forgotten() {
        let (_dir, path, store) = store_with_token_a();
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
