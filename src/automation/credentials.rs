//! Credentials of a served authenticator, as WebDriver's virtual authenticators have them (W3C
//! WebAuthn Level 3 §11.7 to §11.10: Add Credential, Get Credentials, Remove Credential, Remove
//! All Credentials), on a real token:
//!
//! ```text
//!  Credential Parameters (JSON; bytes in base64url, with or without padding)
//!  {
//!    "credentialId":          bytes, 1 to 255      the id hosts will present, any bytes
//!    "isResidentCredential":  bool                 discoverable (found by rpId alone) or not
//!    "rpId":                  string               its rpIdHash is the U2F application parameter
//!    "privateKey":            bytes                PKCS#8 of a P-256 or an Ed25519 key
//!    "userHandle":            bytes, 1 to 64       required for a resident credential
//!    "signCount":             u32                  the next signature counts above it
//!    "userName", "userDisplayName": string         optional, a resident credential's user
//!    "largeBlob":             bytes                optional: written into the token's
//!                                                  large-blob array under the credential's
//!                                                  largeBlobKey (`super::large_blob`)
//!  }
//! ```
//! An added credential is the token's own from then on: its key is wrapped into a handle of the
//! token (so it is sealed like every other key, and a reset kills it), and the record keeps the
//! test's id beside that handle (`keystore::discoverable`). The token's counter is global: a
//! signCount raises it (it never goes back), and each credential's record keeps the value of
//! its last signature, which Get Credentials reports.
//!
//! Get Credentials lists the discoverable credentials, the added ones, and on a token that tracks
//! its credentials (one added through this API) the non-discoverable ones it made; private keys
//! come back only from an exportable token (ephemeral ones are). A U2F REGISTER names no RP id,
//! so U2F registrations are not listed.
//! Not supported: the backup flags (vu2f's credentials are device-bound: BE and BS stay 0).
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keystore::{
    CredentialExtensions, CredentialKey, CredentialSecret, DiscoverableCredential, Ed25519Seed,
    Residency, WrappedKey,
};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};

use super::error::{parse_body, Answer, ApiError, ApiResult};
use super::fleet::Fleet;
use super::large_blob;
use super::AuthenticatorPath;
use crate::ctap2::cose;
use crate::ctap2::Authenticator;

/// The DER of PKCS#8 v1 for Ed25519 (RFC 8410 §7) up to the 32-byte seed.
const ED25519_PKCS8_HEAD: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// id-Ed25519 (RFC 8410 §3).
const ED25519_OID: &str = "1.3.101.112";

/// Why a credential operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A field of the request is wrong: the message names it.
    #[error("{0}")]
    InvalidArgument(String),
    /// No credential of that id.
    #[error("no credential with id {0}")]
    NoSuchCredential(String),
    /// The store failed.
    #[error("the key store: {0}")]
    Store(#[from] keystore::StoreError),
}

fn invalid(field: &str, what: impl std::fmt::Display) -> Refused {
    Refused::InvalidArgument(format!("field `{field}`: {what}"))
}

/// WebDriver's Credential Parameters, as Add Credential takes them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCredential {
    /// base64url.
    pub credential_id: String,
    /// Discoverable or not.
    pub is_resident_credential: bool,
    /// The relying party.
    pub rp_id: String,
    /// base64url PKCS#8.
    pub private_key: String,
    /// base64url; required when resident.
    #[serde(default)]
    pub user_handle: Option<String>,
    /// The counter value the credential starts from.
    #[serde(default)]
    pub sign_count: u32,
    /// base64url: the credential's large blob.
    #[serde(default)]
    pub large_blob: Option<String>,
    /// A resident credential's user name.
    #[serde(default)]
    pub user_name: Option<String>,
    /// A resident credential's user display name.
    #[serde(default)]
    pub user_display_name: Option<String>,
    /// Accepted as false only (vu2f's credentials are device-bound).
    #[serde(default)]
    pub backup_eligibility: bool,
    /// Accepted as false only.
    #[serde(default)]
    pub backup_state: bool,
}

/// A credential as Get Credentials returns it.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// base64url.
    pub credential_id: String,
    /// Discoverable or not.
    pub is_resident_credential: bool,
    /// The relying party.
    pub rp_id: String,
    /// base64url PKCS#8; only from an exportable token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// base64url; resident credentials only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_handle: Option<String>,
    /// The counter value of the credential's last signature (or, on a token that does not keep
    /// it, the token's last counter value, which is at least that).
    pub sign_count: u32,
    /// A resident credential's user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// A resident credential's user display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_display_name: Option<String>,
    /// base64url: the credential's large blob, when the array holds one for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub large_blob: Option<String>,
}

fn bytes_of(field: &str, text: &str) -> Result<Vec<u8>, Refused> {
    crate::webauthn::base64url(text).map_err(|e| invalid(field, format!("not base64url ({e})")))
}

/// The key of a PKCS#8 document: P-256 or Ed25519.
fn key_of(document: &[u8]) -> Result<WrappedKey, Refused> {
    if let Ok(secret) = p256::SecretKey::from_pkcs8_der(document) {
        let mut private_key = [0u8; 32];
        private_key.copy_from_slice(&secret.to_bytes());
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        let public_key: [u8; 65] = point
            .as_bytes()
            .try_into()
            .map_err(|_| invalid("privateKey", "a P-256 point that is not 65 bytes"))?;
        return Ok(WrappedKey::P256(CredentialKey {
            private_key,
            public_key,
        }));
    }
    let info = p256::pkcs8::PrivateKeyInfo::try_from(document)
        .map_err(|e| invalid("privateKey", format!("not PKCS#8 ({e})")))?;
    if info.algorithm.oid.to_string() != ED25519_OID {
        return Err(invalid(
            "privateKey",
            format!(
                "a key of algorithm {}: only P-256 (ES256) and Ed25519 (EdDSA)",
                info.algorithm.oid
            ),
        ));
    }
    match info.private_key {
        [0x04, 0x20, seed @ ..] if seed.len() == 32 => {
            let mut key = Ed25519Seed([0; 32]);
            key.0.copy_from_slice(seed);
            Ok(WrappedKey::Ed25519(key))
        }
        _ => Err(invalid("privateKey", "an Ed25519 key that is not 32 bytes")),
    }
}

/// The COSE_Key of `key`'s public half.
fn public_key_cose(key: &WrappedKey) -> Result<Vec<u8>, Refused> {
    let value = match key {
        WrappedKey::P256(key) => cose::es256_key(&key.public_key),
        WrappedKey::Ed25519(seed) => cose::ed25519_key(
            &seed
                .public_key()
                .map_err(|e| invalid("privateKey", e.to_string()))?,
        ),
    };
    Ok(crate::ctap2::cbor::encode(&value))
}

/// `key` as PKCS#8 DER.
fn pkcs8_of(key: &WrappedKey) -> Option<Vec<u8>> {
    match key {
        WrappedKey::P256(key) => {
            let secret = p256::SecretKey::from_slice(&key.private_key).ok()?;
            Some(secret.to_pkcs8_der().ok()?.as_bytes().to_vec())
        }
        WrappedKey::Ed25519(seed) => Some([&ED25519_PKCS8_HEAD[..], &seed.0].concat()),
    }
}

/// Add Credential: `new` becomes one of `token`'s credentials, durably (flushed) before it
/// returns.
pub fn add(token: &mut Authenticator, new: NewCredential) -> Result<(), Refused> {
    let id = bytes_of("credentialId", &new.credential_id)?;
    if id.is_empty() || id.len() > keystore::discoverable::MAX_CREDENTIAL_ID_LEN {
        return Err(invalid(
            "credentialId",
            format!("{} bytes (1 to 255)", id.len()),
        ));
    }
    if new.rp_id.is_empty() {
        return Err(invalid("rpId", "empty"));
    }
    if new.backup_eligibility || new.backup_state {
        return Err(invalid(
            "backupEligibility",
            "vu2f's credentials are device-bound (BE and BS are 0)",
        ));
    }
    let document = zeroize::Zeroizing::new(bytes_of("privateKey", &new.private_key)?);
    let key = key_of(&document)?;
    let user_id = match (&new.user_handle, new.is_resident_credential) {
        (Some(handle), _) => bytes_of("userHandle", handle)?,
        (None, true) => return Err(invalid("userHandle", "required for a resident credential")),
        (None, false) => Vec::new(),
    };
    if new.is_resident_credential && !(1..=64).contains(&user_id.len()) {
        return Err(invalid(
            "userHandle",
            format!("{} bytes (1 to 64)", user_id.len()),
        ));
    }
    let speaks_ctap2 = token.speaks_ctap2();
    if matches!(key, WrappedKey::Ed25519(_)) && !speaks_ctap2 {
        return Err(invalid(
            "privateKey",
            "Ed25519 on a U2F-only token, which signs with P-256",
        ));
    }
    if new.is_resident_credential && !speaks_ctap2 {
        return Err(invalid(
            "isResidentCredential",
            "a U2F-only token keeps no discoverable credentials",
        ));
    }
    let large_blob = match &new.large_blob {
        Some(_) if !speaks_ctap2 => {
            return Err(invalid(
                "largeBlob",
                "a U2F-only token has no large-blob array",
            ))
        }
        Some(text) => Some(bytes_of("largeBlob", text)?),
        None => None,
    };
    let rp_id_hash = crate::u2f::messages::app_param(&new.rp_id);
    let residency = if new.is_resident_credential {
        Residency::Discoverable
    } else {
        Residency::ServerSide
    };
    let rng = SystemRandom::new();
    let keys = token.u2f_mut().keys_mut();
    let handle = match (&key, &large_blob) {
        (key, Some(_)) => {
            let extensions = CredentialExtensions {
                large_blob_key: true,
                ..CredentialExtensions::default()
            };
            keys.wrapper
                .wrap_extended(key, &extensions, &rp_id_hash, residency, &rng)?
        }
        (WrappedKey::P256(key), None) => keys
            .wrapper
            .wrap_as(key, &rp_id_hash, residency, &rng)?
            .to_vec(),
        (WrappedKey::Ed25519(seed), None) => keys
            .wrapper
            .wrap_ed25519_as(seed, &rp_id_hash, residency, &rng)?
            .to_vec(),
    };
    // The array is made before anything is written: a blob that does not fit leaves the token
    // as it was.
    let array = match &large_blob {
        Some(data) => Some(array_with(keys, &id, data, &rng)?),
        None => None,
    };
    let record = DiscoverableCredential {
        credential_id: id.clone(),
        rp_id: new.rp_id,
        user_id,
        user_name: new.user_name,
        user_display_name: new.user_display_name,
        public_key_cose: public_key_cose(&key)?,
        cred_protect: 0,
        handle: Some(handle),
        sign_count: Some(new.sign_count),
        removed: false,
    };
    // Either replaces a record of the same id in the batch that adds this one (a token at its
    // limit refuses before anything changes).
    if new.is_resident_credential {
        keys.discoverable.store(record)?;
    } else {
        keys.discoverable.track(record)?;
    }
    if let Some(array) = array {
        keys.large_blobs.replace(array)?;
    }
    keys.counter.skip_past(new.sign_count)?;
    token.u2f_mut().forget_cached_keys();
    Ok(())
}

/// The token's serialized large-blob array with `data` added for the credential `id`.
fn array_with(
    keys: &keystore::TokenKeys,
    id: &[u8],
    data: &[u8],
    rng: &SystemRandom,
) -> Result<Vec<u8>, Refused> {
    let blob_key = keys
        .wrapper
        .credential_secret(CredentialSecret::LargeBlobKey, id);
    let entry = large_blob::seal(&blob_key, data, rng)
        .ok_or_else(|| invalid("largeBlob", "could not be sealed"))?;
    let mut entries = large_blob::entries(keys.large_blobs.serialized());
    entries.push(entry);
    let serialized = large_blob::serialize(entries);
    let room = keystore::MAX_SERIALIZED_LARGE_BLOB_ARRAY;
    if serialized.len() > room {
        return Err(invalid(
            "largeBlob",
            format!(
                "the token's large-blob array would take {} bytes (at most {room})",
                serialized.len()
            ),
        ));
    }
    Ok(serialized)
}

/// The large blob the array holds for the credential `id`, if it has a largeBlobKey.
fn blob_of(
    keys: &keystore::TokenKeys,
    id: &[u8],
    opened: &keystore::Unwrapped,
    entries: &[crate::ctap2::cbor::Value],
) -> Option<Vec<u8>> {
    if !opened.extensions.as_ref().is_some_and(|e| e.large_blob_key) {
        return None;
    }
    let blob_key = keys
        .wrapper
        .credential_secret(CredentialSecret::LargeBlobKey, id);
    entries
        .iter()
        .find_map(|entry| large_blob::open(&blob_key, entry))
}

/// Get Credentials: every credential `token` keeps a record of (module docs).
pub fn list(token: &Authenticator) -> Vec<Credential> {
    let keys = token.u2f().keys();
    let last = keys.counter.last_value();
    let entries = large_blob::entries(keys.large_blobs.serialized());
    keys.discoverable
        .records()
        .map(|(record, resident)| {
            let opened = keys
                .open_credential(&record.credential_id, &record.rp_id_hash())
                .ok();
            let private_key = opened
                .as_ref()
                .filter(|_| keys.exportable)
                .and_then(|opened| pkcs8_of(&opened.key))
                .map(|der| URL_SAFE_NO_PAD.encode(der));
            let large_blob = opened
                .as_ref()
                .and_then(|opened| blob_of(keys, &record.credential_id, opened, &entries))
                .map(|data| URL_SAFE_NO_PAD.encode(data));
            Credential {
                credential_id: URL_SAFE_NO_PAD.encode(&record.credential_id),
                is_resident_credential: resident,
                rp_id: record.rp_id.clone(),
                private_key,
                user_handle: resident.then(|| URL_SAFE_NO_PAD.encode(&record.user_id)),
                sign_count: record.sign_count.unwrap_or(last),
                user_name: record.user_name.clone().filter(|_| resident),
                user_display_name: record.user_display_name.clone().filter(|_| resident),
                large_blob,
            }
        })
        .collect()
}

/// Remove Credential: the credential whose base64url id is `credential_id` ends, durably: its
/// record goes, or for a non-discoverable one the token made (whose id is the whole credential)
/// stays marked removed, and the engines refuse that id (`keystore::discoverable`).
pub fn remove(token: &mut Authenticator, credential_id: &str) -> Result<(), Refused> {
    let id = bytes_of("credentialId", credential_id)?;
    let removed = token.u2f_mut().keys_mut().discoverable.remove(&id)?;
    if !removed {
        return Err(Refused::NoSuchCredential(credential_id.to_owned()));
    }
    token.u2f_mut().forget_cached_keys();
    Ok(())
}

/// Remove All Credentials: every credential of `token` ends, as [`remove`] ends one, durably;
/// returns how many.
pub fn remove_all(token: &mut Authenticator) -> Result<usize, Refused> {
    let removed = token.u2f_mut().keys_mut().discoverable.remove_all()?;
    token.u2f_mut().forget_cached_keys();
    Ok(removed)
}

/// The path of a route on one credential of one authenticator.
#[derive(Debug, Deserialize)]
pub struct CredentialPath {
    /// The authenticator's id.
    #[serde(rename = "authenticatorId")]
    pub authenticator: String,
    /// The credential's id, base64url.
    #[serde(rename = "credentialId")]
    pub credential: String,
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::InvalidArgument(message) => ApiError::invalid_argument(message),
            Refused::NoSuchCredential(_) => ApiError::invalid_argument(refused.to_string()),
            Refused::Store(e) => ApiError::unknown(e.to_string()),
        }
    }
}

pub(super) async fn add_route(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
    body: Bytes,
) -> ApiResult<Answer<()>> {
    let new: NewCredential = parse_body(&body)?;
    add(&mut fleet.get(&path.id)?.engine(), new)?;
    Ok(Answer(()))
}

pub(super) async fn list_route(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
) -> ApiResult<Answer<Vec<Credential>>> {
    Ok(Answer(list(&fleet.get(&path.id)?.engine())))
}

pub(super) async fn remove_route(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<CredentialPath>,
) -> ApiResult<Answer<()>> {
    remove(
        &mut fleet.get(&path.authenticator)?.engine(),
        &path.credential,
    )?;
    Ok(Answer(()))
}

pub(super) async fn remove_all_route(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
) -> ApiResult<Answer<()>> {
    remove_all(&mut fleet.get(&path.id)?.engine())?;
    Ok(Answer(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_through_pkcs8_and_back() {
        let rng = SystemRandom::new();
        let p256 = CredentialKey::generate(&rng).unwrap();
        let public = p256.public_key;
        let document = pkcs8_of(&WrappedKey::P256(p256)).unwrap();
        match key_of(&document).unwrap() {
            WrappedKey::P256(back) => assert_eq!(back.public_key, public),
            other => panic!("{other:?}"),
        }
        let seed = Ed25519Seed::generate(&rng).unwrap();
        let public = seed.public_key().unwrap();
        let document = pkcs8_of(&WrappedKey::Ed25519(seed)).unwrap();
        let ring_pair =
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&document).unwrap();
        assert_eq!(
            ring::signature::KeyPair::public_key(&ring_pair).as_ref(),
            public
        );
        match key_of(&document).unwrap() {
            WrappedKey::Ed25519(back) => assert_eq!(back.public_key().unwrap(), public),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_that_is_neither_is_refused_naming_the_field() {
        for document in [&b"not der"[..], &[0x30, 0x03, 0x02, 0x01, 0x00][..]] {
            let error = key_of(document).err().unwrap().to_string();
            assert!(error.starts_with("field `privateKey`: "), "{error}");
        }
    }
}
