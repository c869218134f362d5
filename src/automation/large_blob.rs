//! A credential's large blob, as a platform writes it into the token's serialized large-blob
//! array (CTAP 2.1 §6.10.3, "large, per-credential blobs"), for WebDriver's `largeBlob` of Add
//! Credential and Get Credentials. The token never reads the array for itself
//! (`keystore::large_blob`); here the automation API plays the platform's part.
//!
//! ```text
//!  entry = { 1: ciphertext ‖ tag,   AES-256-GCM under the credential's largeBlobKey of
//!                                   DEFLATE(data) (raw, RFC 1951)
//!            2: nonce (12 bytes),
//!            3: origSize }          the length of data, uncompressed
//!  associated data = "blob" ‖ origSize as uint64, little-endian
//! ```
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::ctap2::cbor::{self, Value};

/// The longest blob taken uncompressed: no host writes more into a 4 KiB array.
pub const MAX_ORIGINAL_SIZE: usize = 64 * 1024;

fn associated_data(original_size: u64) -> [u8; 12] {
    let mut aad = [0u8; 12];
    aad[..4].copy_from_slice(b"blob");
    aad[4..].copy_from_slice(&original_size.to_le_bytes());
    aad
}

fn key_of(large_blob_key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, large_blob_key).expect("a 32-byte key"))
}

/// The array's entry that holds `data` for the credential whose largeBlobKey is given.
pub fn seal(large_blob_key: &[u8; 32], data: &[u8], rng: &SystemRandom) -> Option<Value> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).ok()?;
    let mut sealed = miniz_oxide::deflate::compress_to_vec(data, 6);
    let original_size = data.len() as u64;
    key_of(large_blob_key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(original_size)),
            &mut sealed,
        )
        .ok()?;
    Some(cbor::uint_map(vec![
        (1, Value::Bytes(sealed)),
        (2, Value::Bytes(nonce.to_vec())),
        (3, Value::Integer(original_size.into())),
    ]))
}

/// The data of `entry` if it is the credential's (it opens under its largeBlobKey).
pub fn open(large_blob_key: &[u8; 32], entry: &Value) -> Option<Vec<u8>> {
    let member = |key: u64| {
        entry
            .as_map()?
            .iter()
            .find(|(k, _)| k.as_integer() == Some(key.into()))
            .map(|(_, v)| v)
    };
    let mut sealed = member(1)?.as_bytes()?.clone();
    let nonce: [u8; NONCE_LEN] = member(2)?.as_bytes()?.as_slice().try_into().ok()?;
    let original_size = u64::try_from(member(3)?.as_integer()?).ok()?;
    let compressed = key_of(large_blob_key)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(original_size)),
            &mut sealed,
        )
        .ok()?;
    let data =
        miniz_oxide::inflate::decompress_to_vec_with_limit(compressed, MAX_ORIGINAL_SIZE).ok()?;
    (data.len() as u64 == original_size).then_some(data)
}

/// The entries of a serialized array (its CBOR array, the trailer cut off); none when it does
/// not parse.
pub fn entries(serialized: &[u8]) -> Vec<Value> {
    let array = &serialized[..serialized
        .len()
        .saturating_sub(keystore::large_blob::LARGE_BLOB_TRAILER_LEN)];
    ciborium::de::from_reader::<Value, _>(array)
        .ok()
        .and_then(|value| value.into_array().ok())
        .unwrap_or_default()
}

/// The serialized array of `entries`, with its trailer.
pub fn serialize(entries: Vec<Value>) -> Vec<u8> {
    let mut serialized = cbor::encode(&Value::Array(entries));
    let trailer = keystore::large_blob::large_blob_trailer(&serialized);
    serialized.extend_from_slice(&trailer);
    serialized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_opens_under_its_key_only_and_round_trips_through_the_array() {
        let rng = SystemRandom::new();
        let data = b"a large blob, repeated: a large blob".to_vec();
        let entry = seal(&[7; 32], &data, &rng).unwrap();
        let other = seal(&[8; 32], b"another's", &rng).unwrap();
        let serialized = serialize(vec![other, entry]);
        assert!(keystore::large_blob::has_valid_trailer(&serialized));
        let found: Vec<Vec<u8>> = entries(&serialized)
            .iter()
            .filter_map(|e| open(&[7; 32], e))
            .collect();
        assert_eq!(found, vec![data]);
        assert!(entries(b"junk").is_empty());
    }
}
