//! What the emulator keeps in its sled database (one tree each), and the ids it makes up
//! (PROTOCOLS.md 1.0, "Id formats").
use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A registered endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// Its secret (the server recomputes the salted hash from it).
    pub secret: String,
    /// Its name.
    pub name: String,
}

/// An open endpoint session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointSessionRecord {
    /// The endpoint.
    pub endpoint_id: String,
    /// When it stops being valid, in Unix seconds.
    pub expires_unix: u64,
}

/// A session opened by a completed logon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginSessionRecord {
    /// The user's canonical name.
    pub user: String,
    /// The event logged on to.
    pub event: String,
    /// When it stops being valid, in Unix seconds.
    pub expires_unix: u64,
}

/// A user's U2F template: what PROTOCOLS.md section 4 says to store at registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateRecord {
    /// Template id, 32 lowercase hex.
    pub id: String,
    /// `U2F:1`.
    pub method_id: String,
    /// The key handle, base64url without padding.
    pub key_handle: String,
    /// The credential's public key, uncompressed P-256, hex.
    pub public_key: String,
    /// The highest counter seen.
    pub counter: u32,
    /// The App ID it was registered for.
    pub app_id: String,
    /// The attestation certificate, DER, hex.
    pub certificate: String,
    /// The comment given when saving.
    pub comment: String,
    /// The category it was saved in (empty: the default); one template of a method per category.
    #[serde(default)]
    pub category_id: String,
}

/// 32 random `[A-Za-z0-9]`: secrets and session, process and challenge ids.
pub fn random_alphanumeric() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

/// 32 random lowercase hex: endpoint and template ids.
pub fn random_hex_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// 32 lowercase hex derived from `name`: the stable id of a configured user or chain.
pub fn stable_hex_id(name: &str) -> String {
    hex::encode(&Sha256::digest(name.as_bytes())[..16])
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
