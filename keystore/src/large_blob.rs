//! A token's serialized large-blob array (CTAP 2.1 §6.10 "authenticatorLargeBlobs"; §12.3
//! largeBlobKey; `shared/spec/CTAP2.md` §10).
//!
//! The platform owns the array's contents: CBOR entries, each AES-256-GCM under some
//! credential's largeBlobKey, which the token never reads. The token keeps the bytes and checks
//! only the trailer:
//!
//! ```text
//!  serialized array = CBOR array of entries ‖ LEFT(SHA-256(CBOR array), 16)
//!  initial value    = 80 ‖ 76be8b528d0075f7aae98d6fa57a6d3c           (the empty array)
//! ```
//!
//! One record per token that has written one, in the sled tree `large_blobs`, apart from the
//! token's other state so that authenticatorReset erases it with one call
//! ([`LargeBlobArray::erase`]):
//!
//! ```text
//!  key:    token name
//!  value:  the serialized array, as the platform wrote it (at most
//!          MAX_SERIALIZED_LARGE_BLOB_ARRAY bytes)
//! ```
//!
//! The value is not sealed when the store is locked: its entries are ciphertext already, under
//! keys only the credentials give (`crate::key_handle`, largeBlobKey). Every change is flushed
//! before it returns, so an acknowledged write survives `kill -9`.
use ring::digest::{digest, SHA256};

use crate::error::{Result, StoreError};

/// The sled tree of the arrays.
pub(crate) const LARGE_BLOBS: &str = "large_blobs";
/// The longest serialized array a token keeps (getInfo's maxSerializedLargeBlobArray, CTAP 2.1
/// §6.4: at least 1024).
pub const MAX_SERIALIZED_LARGE_BLOB_ARRAY: usize = 4096;
/// The length of the array's trailer: LEFT(SHA-256(array), 16).
pub const LARGE_BLOB_TRAILER_LEN: usize = 16;

/// The trailer of `array`: LEFT(SHA-256(array), 16).
pub fn large_blob_trailer(array: &[u8]) -> [u8; LARGE_BLOB_TRAILER_LEN] {
    let mut trailer = [0u8; LARGE_BLOB_TRAILER_LEN];
    trailer.copy_from_slice(&digest(&SHA256, array).as_ref()[..LARGE_BLOB_TRAILER_LEN]);
    trailer
}

/// Whether `serialized` ends with the trailer of what comes before it.
pub fn has_valid_trailer(serialized: &[u8]) -> bool {
    serialized
        .len()
        .checked_sub(LARGE_BLOB_TRAILER_LEN)
        .is_some_and(|split| {
            let (array, trailer) = serialized.split_at(split);
            large_blob_trailer(array) == trailer
        })
}

/// The serialized empty array, every token's until it writes one.
pub fn initial_large_blob_array() -> Vec<u8> {
    let mut initial = vec![0x80];
    initial.extend_from_slice(&large_blob_trailer(&[0x80]));
    initial
}

/// One token's serialized large-blob array: in memory, written through to the store.
pub struct LargeBlobArray {
    token: String,
    tree: sled::Tree,
    serialized: Vec<u8>,
}

impl std::fmt::Debug for LargeBlobArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LargeBlobArray")
            .field("token", &self.token)
            .field("len", &self.serialized.len())
            .finish_non_exhaustive()
    }
}

impl LargeBlobArray {
    /// Reads `token`'s array, or the initial one.
    pub(crate) fn load(tree: sled::Tree, token: &str) -> Result<Self> {
        let serialized = match tree.get(token.as_bytes())? {
            Some(value) if has_valid_trailer(&value) => value.to_vec(),
            Some(_) => {
                return Err(StoreError::Corrupt {
                    what: format!("token/{token}/large_blobs"),
                    detail: "a serialized large-blob array without its trailer".into(),
                })
            }
            None => initial_large_blob_array(),
        };
        Ok(Self {
            token: token.to_owned(),
            tree,
            serialized,
        })
    }

    /// The serialized array, trailer included.
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }

    /// Replaces the array with `serialized`, durably (flushed) before it returns. One longer
    /// than [`MAX_SERIALIZED_LARGE_BLOB_ARRAY`] or whose trailer does not match is refused
    /// ([`StoreError::Corrupt`]) and nothing is written: the engine checks both first.
    pub fn replace(&mut self, serialized: Vec<u8>) -> Result<()> {
        if serialized.len() > MAX_SERIALIZED_LARGE_BLOB_ARRAY || !has_valid_trailer(&serialized) {
            return Err(StoreError::Corrupt {
                what: format!("token/{}/large_blobs", self.token),
                detail: "a serialized large-blob array too long or without its trailer".into(),
            });
        }
        self.tree
            .insert(self.token.as_bytes(), serialized.as_slice())?;
        self.serialized = serialized;
        self.tree.flush()?;
        Ok(())
    }

    /// The initial array again in memory, after [`crate::TokenKeys::factory_reset`] removed the
    /// stored one in its transaction.
    pub(crate) fn forget(&mut self) {
        self.serialized = initial_large_blob_array();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary_tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree(LARGE_BLOBS).unwrap()
    }

    fn serialized(array: &[u8]) -> Vec<u8> {
        [array, &large_blob_trailer(array)].concat()
    }

    #[test]
    fn the_initial_array_is_the_spec_s_empty_one() {
        assert_eq!(
            hex::encode(initial_large_blob_array()),
            "8076be8b528d0075f7aae98d6fa57a6d3c"
        );
        let tree = temporary_tree();
        let array = LargeBlobArray::load(tree.clone(), "t").unwrap();
        assert_eq!(array.serialized(), initial_large_blob_array());
        assert!(tree.is_empty());
    }

    #[test]
    fn a_replaced_array_is_durable_and_per_token() {
        let tree = temporary_tree();
        let mut a = LargeBlobArray::load(tree.clone(), "a").unwrap();
        let written = serialized(&[0x81, 0x43, 1, 2, 3]);
        a.replace(written.clone()).unwrap();
        assert_eq!(a.serialized(), written);
        assert_eq!(
            LargeBlobArray::load(tree.clone(), "a")
                .unwrap()
                .serialized(),
            written
        );
        assert_eq!(
            LargeBlobArray::load(tree.clone(), "ab")
                .unwrap()
                .serialized(),
            initial_large_blob_array()
        );
    }

    #[test]
    fn a_bad_trailer_or_an_oversized_array_is_refused_and_nothing_written() {
        let tree = temporary_tree();
        let mut array = LargeBlobArray::load(tree.clone(), "t").unwrap();
        let mut bad = serialized(&[0x80]);
        bad[5] ^= 1;
        assert!(array.replace(bad).is_err());
        let long = serialized(&vec![0u8; MAX_SERIALIZED_LARGE_BLOB_ARRAY - 15]);
        assert!(array.replace(long).is_err());
        assert!(tree.is_empty());
        assert_eq!(array.serialized(), initial_large_blob_array());
        let full = serialized(&vec![0u8; MAX_SERIALIZED_LARGE_BLOB_ARRAY - 16]);
        array.replace(full).unwrap();
    }
}
