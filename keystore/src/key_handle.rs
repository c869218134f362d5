//! Wrapped key handles and credential ids (`DESIGN.md`, "Key handles are wrapped"; CTAP 2.1
//! §6.1 steps 16–18 in `shared/spec/CTAP2.md` §4: "rk false: non-discoverable (key sealed in the
//! credential ID)").
//!
//! A U2F key handle is opaque to the host (U2F raw message formats v1.2, section 4.3), and so is a
//! CTAP2 credential id. vu2f stores no per-credential state for non-discoverable credentials: the
//! credential key travels inside the handle, sealed with the token's master key (AES-256-GCM), with
//! the application parameter (U2F) or rpIdHash (CTAP2, the same SHA-256 of the RP id or AppID) as
//! associated data, so a handle presented for another RP, forged, or from another token fails to
//! open. Two versions, told apart by length and first byte:
//!
//! ```text
//!  version 1: P-256 (U2F key handles, and the ids of CTAP2 ES256 credentials: the same bytes)
//!  +---------+-----------+---------------------------------------------+----------+
//!  | 0x01    | nonce     | AES-256-GCM( private scalar ‖ public point)  | GCM tag  |
//!  | 1 byte  | 12 bytes  | 32 + 65 bytes                                | 16 bytes |  = 126 bytes
//!  +---------+-----------+---------------------------------------------+----------+
//!  associated data: 0x01 ‖ application parameter (32 bytes)
//!
//!  version 2: Ed25519 (ids of CTAP2 EdDSA credentials, §6: COSE alg -8)
//!  +---------+-----------+---------------------------------------------+----------+
//!  | 0x02    | nonce     | AES-256-GCM( Ed25519 seed )                  | GCM tag  |
//!  | 1 byte  | 12 bytes  | 32 bytes                                     | 16 bytes |  = 61 bytes
//!  +---------+-----------+---------------------------------------------+----------+
//!  associated data: 0x02 ‖ rpIdHash (32 bytes)
//!
//!  version 3: either key with the credential's extension state (CTAP 2.1 §12.1 credProtect,
//!  §12.2 credBlob, §12.3 largeBlobKey, §12.5 hmac-secret), for credentials made with any of them
//!  +---------+-----------+--------------------------------------------------------+----------+
//!  | 0x03    | nonce     | AES-256-GCM( header ‖ credBlob ‖ key )                  | GCM tag  |
//!  | 1 byte  | 12 bytes  | 4 + 0..32 + (P-256: 32 + 65 | Ed25519: 32) bytes       | 16 bytes |
//!  +---------+-----------+--------------------------------------------------------+----------+
//!  header: algorithm (1 P-256, 2 Ed25519) ‖ credProtect (0 none, 1..3) ‖ flags ‖ credBlob length
//!          flags: 0x01 hmac-secret, 0x02 largeBlobKey
//!  associated data: 0x03 ‖ rpIdHash (32 bytes)          130..162 bytes (P-256), 65..97 (Ed25519)
//! ```
//!
//! A credential made without extensions keeps version 1 or 2: a plain ES256 credential id stays
//! the U2F key handle. Version 3 ids are never U2F key handles (the U2F engine refuses them as
//! not its own), so a credProtect level cannot be stepped around over U2F.
//!
//! The secrets of hmac-secret (CredRandomWithUV, CredRandomWithoutUV) and the largeBlobKey are
//! not stored anywhere: [`KeyWrapper::credential_secret`] derives them from the master key and
//! the credential id (HMAC-SHA-256 under a subkey of the master key), so they cost no bytes in
//! the id, need no record, are the same for every assertion, and change when the master key
//! does (a reset):
//!
//! ```text
//!  subkey = HMAC-SHA-256(master key, "vu2f credential secrets v1")
//!  secret = HMAC-SHA-256(subkey, purpose label ‖ 0x00 ‖ credential id)
//!           labels: "hmac-secret/uv", "hmac-secret/no-uv", "largeBlobKey"
//! ```
//!
//! A discoverable credential's id has the version's top bit set (`0x81`, `0x82`; [`Residency`]),
//! so the CTAP2 engine knows to look for its record: once the record is replaced or deleted, the
//! id no longer counts as the token's, though it still opens. The U2F engine opens `0x01` only.
//!
//! The version byte is in the associated data too, so a handle cannot be replayed as another
//! version. The P-256 public point rides along because ring builds a signing key from both
//! halves; carrying it saves a scalar multiplication in software on every cache miss. An Ed25519
//! key is its 32-byte seed (RFC 8032 §5.1.5): ring derives the public key from it.
//!
//! [`KeyWrapper::unwrap`] (the U2F engine) opens version 1 only; [`KeyWrapper::unwrap_any`] and
//! [`KeyWrapper::unwrap_credential`] (the CTAP2 engine) open all three.
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use crate::error::{Result, StoreError};
use zeroize::Zeroize;

const VERSION: u8 = 1;
const ED25519_VERSION: u8 = 2;
const EXTENDED_VERSION: u8 = 3;
/// The bytes before credBlob in a version-3 id's sealed body.
const HEADER_LEN: usize = 4;
const HMAC_SECRET_FLAG: u8 = 0x01;
const LARGE_BLOB_KEY_FLAG: u8 = 0x02;
/// The most credBlob bytes a credential keeps (getInfo's maxCredBlobLength, CTAP 2.1 §12.2: at
/// least 32).
pub const MAX_CRED_BLOB_LEN: usize = 32;
/// Set in the version byte of a discoverable credential's id.
const DISCOVERABLE_BIT: u8 = 0x80;
const PRIVATE_LEN: usize = 32;
/// Length of an uncompressed P-256 point: `0x04 ‖ X ‖ Y`.
pub const PUBLIC_KEY_LEN: usize = 65;
const TAG_LEN: usize = 16;
/// The length of every P-256 key handle (version 1) this token issues: U2F key handles and the
/// credential ids of CTAP2 ES256 credentials.
pub const KEY_HANDLE_LEN: usize = 1 + NONCE_LEN + PRIVATE_LEN + PUBLIC_KEY_LEN + TAG_LEN;
/// Length of an Ed25519 seed (RFC 8032 §5.1.5: the private key).
pub const ED25519_SEED_LEN: usize = 32;
/// The length of every Ed25519 credential id (version 2) this token issues.
pub const ED25519_HANDLE_LEN: usize = 1 + NONCE_LEN + ED25519_SEED_LEN + TAG_LEN;
/// The longest credential id this token issues: a version-3 P-256 id with a full credBlob
/// (getInfo's maxCredentialIdLength).
pub const MAX_ISSUED_ID_LEN: usize =
    1 + NONCE_LEN + HEADER_LEN + MAX_CRED_BLOB_LEN + PRIVATE_LEN + PUBLIC_KEY_LEN + TAG_LEN;

/// What a credential keeps of the extensions it was made with, sealed in a version-3 id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialExtensions {
    /// The credProtect level (1 to 3); 0: none asked for, which acts as 1.
    pub cred_protect: u8,
    /// Made with `hmac-secret: true`.
    pub hmac_secret: bool,
    /// Made with `largeBlobKey: true`.
    pub large_blob_key: bool,
    /// The credBlob, at most [`MAX_CRED_BLOB_LEN`] bytes.
    pub cred_blob: Vec<u8>,
}

impl CredentialExtensions {
    /// Whether nothing is kept: the credential's id needs no version 3.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// What a secret [`KeyWrapper::credential_secret`] derives is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSecret {
    /// hmac-secret's CredRandomWithUV.
    HmacSecretWithUv,
    /// hmac-secret's CredRandomWithoutUV.
    HmacSecretWithoutUv,
    /// The largeBlobKey (CTAP 2.1 §12.3).
    LargeBlobKey,
}

impl CredentialSecret {
    fn label(self) -> &'static [u8] {
        match self {
            Self::HmacSecretWithUv => b"hmac-secret/uv",
            Self::HmacSecretWithoutUv => b"hmac-secret/no-uv",
            Self::LargeBlobKey => b"largeBlobKey",
        }
    }
}

/// A credential key pair in raw form: what a key handle carries.
pub struct CredentialKey {
    /// The private scalar, big-endian.
    pub private_key: [u8; PRIVATE_LEN],
    /// The public point, uncompressed SEC1.
    pub public_key: [u8; PUBLIC_KEY_LEN],
}

impl Drop for CredentialKey {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

impl CredentialKey {
    /// Generates a fresh P-256 key pair.
    pub fn generate(rng: &SystemRandom) -> Result<Self> {
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
            .map_err(|_| StoreError::Crypto("credential key generation: no randomness".into()))?;
        match Self::from_ring_layout(document.as_ref()) {
            Some(key) => Ok(key),
            None => Self::from_pkcs8(document.as_ref()),
        }
    }

    /// The two halves of a PKCS#8 document in the one layout ring writes for P-256 (its template
    /// `ecPublicKey_p256_pkcs8_v1_template.der`), read where they lie; `None` for any other
    /// document. Parsing the DER costs about 1 µs, 3 % of a makeCredential.
    ///
    /// ```text
    ///  0   30 81 87 02 01 00 30 13 06 07 2a 86 48 ce 3d 02 01     PrivateKeyInfo, ecPublicKey,
    ///  17  06 08 2a 86 48 ce 3d 03 01 07 04 6d 30 6b 02 01 01     prime256v1, ECPrivateKey v1
    ///  34  04 20 <private scalar, 32>                              at 36
    ///  68  a1 44 03 42 00 <public point 04 ‖ x ‖ y, 65>            at 73; 138 bytes in all
    /// ```
    fn from_ring_layout(document: &[u8]) -> Option<Self> {
        const HEAD: [u8; 36] = [
            0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
            0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04,
            0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
        ];
        const MIDDLE: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];
        let (head, rest) = document.split_first_chunk::<36>()?;
        let (private_key, rest) = rest.split_first_chunk::<PRIVATE_LEN>()?;
        let (middle, public_key) = rest.split_first_chunk::<5>()?;
        let public_key: [u8; PUBLIC_KEY_LEN] = public_key.try_into().ok()?;
        (*head == HEAD && *middle == MIDDLE).then_some(Self {
            private_key: *private_key,
            public_key,
        })
    }

    /// The two halves of any PKCS#8 document of a P-256 key, parsed as DER.
    fn from_pkcs8(document: &[u8]) -> Result<Self> {
        let crypto = |what: &str| StoreError::Crypto(format!("credential key generation: {what}"));
        let info = pkcs8::PrivateKeyInfo::try_from(document)
            .map_err(|e| crypto(&format!("PKCS#8: {e}")))?;
        let ec = sec1::EcPrivateKey::try_from(info.private_key)
            .map_err(|e| crypto(&format!("SEC1: {e}")))?;
        let private_key = ec
            .private_key
            .try_into()
            .map_err(|_| crypto("scalar length"))?;
        let public_key = ec
            .public_key
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| crypto("public key missing"))?;
        Ok(Self {
            private_key,
            public_key,
        })
    }

    /// Builds ring's signing key from the two halves (ring checks that they belong together).
    pub fn signing_key(&self, rng: &SystemRandom) -> Result<EcdsaKeyPair> {
        EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &self.private_key,
            &self.public_key,
            rng,
        )
        .map_err(|e| StoreError::Crypto(format!("credential key rejected: {e}")))
    }

    /// The public key of a ring key pair, uncompressed.
    pub fn public_key_of(pair: &EcdsaKeyPair) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(pair.public_key().as_ref());
        out
    }
}

/// An Ed25519 private key: its 32-byte seed (RFC 8032 §5.1.5), zeroized when dropped.
pub struct Ed25519Seed(pub [u8; ED25519_SEED_LEN]);

impl Drop for Ed25519Seed {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Ed25519Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ed25519Seed(…)")
    }
}

impl Ed25519Seed {
    /// A fresh random seed: every 32-byte string is a valid Ed25519 private key.
    pub fn generate(rng: &SystemRandom) -> Result<Self> {
        let mut seed = Self([0u8; ED25519_SEED_LEN]);
        rng.fill(&mut seed.0)
            .map_err(|_| StoreError::Crypto("no randomness for an Ed25519 key".into()))?;
        Ok(seed)
    }

    /// ring's signing key (PureEdDSA: `sign` gives the raw 64-byte R ‖ S of CTAP2 §6).
    pub fn signing_key(&self) -> Result<Ed25519KeyPair> {
        Ed25519KeyPair::from_seed_unchecked(&self.0)
            .map_err(|e| StoreError::Crypto(format!("Ed25519 key rejected: {e}")))
    }

    /// The 32-byte public key (the COSE_Key's x, CTAP2 §6).
    pub fn public_key(&self) -> Result<[u8; 32]> {
        let pair = self.signing_key()?;
        let mut out = [0u8; 32];
        out.copy_from_slice(pair.public_key().as_ref());
        Ok(out)
    }
}

/// The credential key a handle carried, by algorithm ([`KeyWrapper::unwrap_any`]).
pub enum WrappedKey {
    /// A version-1 handle: a P-256 key pair (COSE ES256, -7).
    P256(CredentialKey),
    /// A version-2 handle: an Ed25519 seed (COSE EdDSA, -8).
    Ed25519(Ed25519Seed),
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WrappedKey::P256(_) => "WrappedKey::P256(…)",
            WrappedKey::Ed25519(_) => "WrappedKey::Ed25519(…)",
        })
    }
}

/// Whether a credential id belongs to a discoverable credential (one with a record in the
/// store) or is the whole credential (a U2F key handle, a non-discoverable CTAP2 credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residency {
    /// The id is the whole credential.
    ServerSide,
    /// The id names a record of [`crate::DiscoverableCredentials`].
    Discoverable,
}

impl Residency {
    fn version(self, base: u8) -> u8 {
        match self {
            Self::ServerSide => base,
            Self::Discoverable => base | DISCOVERABLE_BIT,
        }
    }
}

/// What a credential id held: its key, whether it is discoverable, and its extension state.
#[derive(Debug)]
pub struct Unwrapped {
    /// The credential key.
    pub key: WrappedKey,
    /// Whether the id is a discoverable credential's.
    pub residency: Residency,
    /// The extension state of a version-3 id; none for versions 1 and 2.
    pub extensions: Option<CredentialExtensions>,
}

/// Why a key handle was refused. The U2F layer answers all of them with `0x6A80`, except a
/// length this token never issues, which real keys answer with `0x6700`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    /// The handle's length is none this token issues ([`KEY_HANDLE_LEN`], [`ED25519_HANDLE_LEN`]).
    #[error("key handle has the wrong length")]
    WrongLength,
    /// The handle is not ours, was altered, or is bound to another application parameter.
    #[error("key handle was not issued by this token for this application")]
    NotOurs,
}

/// Seals and opens key handles with one token's master key.
///
/// It keeps the 32-byte key and expands it for each operation (well under a microsecond with
/// AES-NI) rather than keeping ring's 544-byte expanded key: a token is opened only on a key
/// cache miss or a registration, and a process may hold 100,000 tokens.
pub struct KeyWrapper {
    master_key: [u8; 32],
}

impl Drop for KeyWrapper {
    fn drop(&mut self) {
        self.master_key.zeroize();
    }
}

impl KeyWrapper {
    /// A wrapper over a 32-byte master key.
    pub fn new(master_key: &[u8; 32]) -> Self {
        Self {
            master_key: *master_key,
        }
    }

    fn key(&self) -> LessSafeKey {
        let unbound =
            UnboundKey::new(&AES_256_GCM, &self.master_key).expect("AES-256 takes 32-byte keys");
        LessSafeKey::new(unbound)
    }

    fn aad(version: u8, app_param: &[u8; 32]) -> [u8; 33] {
        let mut aad = [0u8; 33];
        aad[0] = version;
        aad[1..].copy_from_slice(app_param);
        aad
    }

    /// Seals `credential` into a key handle bound to `app_param`: a U2F key handle, or the id of
    /// a non-discoverable ES256 credential.
    pub fn wrap(
        &self,
        credential: &CredentialKey,
        app_param: &[u8; 32],
        rng: &SystemRandom,
    ) -> Result<[u8; KEY_HANDLE_LEN]> {
        self.wrap_as(credential, app_param, Residency::ServerSide, rng)
    }

    /// Seals `credential` into the id of an ES256 credential of `residency`.
    pub fn wrap_as(
        &self,
        credential: &CredentialKey,
        app_param: &[u8; 32],
        residency: Residency,
        rng: &SystemRandom,
    ) -> Result<[u8; KEY_HANDLE_LEN]> {
        let version = residency.version(VERSION);
        let mut handle = [0u8; KEY_HANDLE_LEN];
        handle[0] = version;
        rng.fill(&mut handle[1..1 + NONCE_LEN])
            .map_err(|_| StoreError::Crypto("no randomness for a nonce".into()))?;
        let nonce = Nonce::try_assume_unique_for_key(&handle[1..1 + NONCE_LEN])
            .map_err(|_| StoreError::Crypto("nonce length".into()))?;
        let body_start = 1 + NONCE_LEN;
        let tag_start = KEY_HANDLE_LEN - TAG_LEN;
        let body = &mut handle[body_start..tag_start];
        body[..PRIVATE_LEN].copy_from_slice(&credential.private_key);
        body[PRIVATE_LEN..].copy_from_slice(&credential.public_key);
        let tag = self
            .key()
            .seal_in_place_separate_tag(nonce, Aad::from(Self::aad(version, app_param)), body)
            .map_err(|_| StoreError::Crypto("sealing a key handle".into()))?;
        handle[tag_start..].copy_from_slice(tag.as_ref());
        Ok(handle)
    }

    /// Whether `handle` has the form of a U2F key handle (version 1, [`KEY_HANDLE_LEN`] bytes),
    /// which [`KeyWrapper::unwrap`] may open; says nothing of whose it is.
    pub fn is_u2f_handle(handle: &[u8]) -> bool {
        handle.len() == KEY_HANDLE_LEN && handle[0] == VERSION
    }

    /// Opens a P-256 key handle (version 1) presented with `app_param`: the U2F engine's view.
    /// An Ed25519 credential id (version 2, [`ED25519_HANDLE_LEN`] bytes) is [`UnwrapError::NotOurs`]:
    /// a length this token issues, but no key U2F can sign with.
    pub fn unwrap(
        &self,
        handle: &[u8],
        app_param: &[u8; 32],
    ) -> Result<CredentialKey, UnwrapError> {
        if handle.len() == ED25519_HANDLE_LEN {
            return Err(UnwrapError::NotOurs);
        }
        if Self::is_extended(handle) {
            return Err(UnwrapError::NotOurs);
        }
        if handle.len() != KEY_HANDLE_LEN {
            return Err(UnwrapError::WrongLength);
        }
        if handle[0] != VERSION {
            return Err(UnwrapError::NotOurs);
        }
        self.open_p256(handle, app_param)
    }

    /// Opens a 126-byte handle of either residency (its version byte checked by the caller).
    fn open_p256(&self, handle: &[u8], app_param: &[u8; 32]) -> Result<CredentialKey, UnwrapError> {
        let nonce = Nonce::try_assume_unique_for_key(&handle[1..1 + NONCE_LEN])
            .map_err(|_| UnwrapError::NotOurs)?;
        let mut sealed = [0u8; PRIVATE_LEN + PUBLIC_KEY_LEN + TAG_LEN];
        sealed.copy_from_slice(&handle[1 + NONCE_LEN..]);
        let plain = self
            .key()
            .open_in_place(
                nonce,
                Aad::from(Self::aad(handle[0], app_param)),
                &mut sealed,
            )
            .map_err(|_| UnwrapError::NotOurs)?;
        let mut credential = CredentialKey {
            private_key: [0u8; PRIVATE_LEN],
            public_key: [0u8; PUBLIC_KEY_LEN],
        };
        credential
            .private_key
            .copy_from_slice(&plain[..PRIVATE_LEN]);
        credential.public_key.copy_from_slice(&plain[PRIVATE_LEN..]);
        sealed.zeroize();
        Ok(credential)
    }

    /// Seals an Ed25519 `seed` into a version-2 credential id bound to `app_param` (the rpIdHash).
    pub fn wrap_ed25519(
        &self,
        seed: &Ed25519Seed,
        app_param: &[u8; 32],
        rng: &SystemRandom,
    ) -> Result<[u8; ED25519_HANDLE_LEN]> {
        self.wrap_ed25519_as(seed, app_param, Residency::ServerSide, rng)
    }

    /// Seals an Ed25519 `seed` into the id of an EdDSA credential of `residency`.
    pub fn wrap_ed25519_as(
        &self,
        seed: &Ed25519Seed,
        app_param: &[u8; 32],
        residency: Residency,
        rng: &SystemRandom,
    ) -> Result<[u8; ED25519_HANDLE_LEN]> {
        let version = residency.version(ED25519_VERSION);
        let mut handle = [0u8; ED25519_HANDLE_LEN];
        handle[0] = version;
        rng.fill(&mut handle[1..1 + NONCE_LEN])
            .map_err(|_| StoreError::Crypto("no randomness for a nonce".into()))?;
        let nonce = Nonce::try_assume_unique_for_key(&handle[1..1 + NONCE_LEN])
            .map_err(|_| StoreError::Crypto("nonce length".into()))?;
        let tag_start = ED25519_HANDLE_LEN - TAG_LEN;
        let body = &mut handle[1 + NONCE_LEN..tag_start];
        body.copy_from_slice(&seed.0);
        let tag = self
            .key()
            .seal_in_place_separate_tag(nonce, Aad::from(Self::aad(version, app_param)), body)
            .map_err(|_| StoreError::Crypto("sealing a credential id".into()))?;
        handle[tag_start..].copy_from_slice(tag.as_ref());
        Ok(handle)
    }

    /// Opens a handle of either version presented with `app_param` (the rpIdHash): the CTAP2
    /// engine's view. A length this token never issues is [`UnwrapError::WrongLength`]; anything
    /// else that does not open (wrong version byte, other token, other RP, altered) is
    /// [`UnwrapError::NotOurs`].
    pub fn unwrap_any(
        &self,
        handle: &[u8],
        app_param: &[u8; 32],
    ) -> Result<WrappedKey, UnwrapError> {
        self.unwrap_credential(handle, app_param).map(|u| u.key)
    }

    /// Opens a credential id of any version and residency presented with `app_param`, and says
    /// which residency it has: a discoverable one counts only while its record exists.
    pub fn unwrap_credential(
        &self,
        handle: &[u8],
        app_param: &[u8; 32],
    ) -> Result<Unwrapped, UnwrapError> {
        let version = *handle.first().ok_or(UnwrapError::WrongLength)?;
        let residency = if version & DISCOVERABLE_BIT == 0 {
            Residency::ServerSide
        } else {
            Residency::Discoverable
        };
        let key = match (handle.len(), version & !DISCOVERABLE_BIT) {
            (_, EXTENDED_VERSION) => return self.open_extended(handle, app_param, residency),
            (KEY_HANDLE_LEN, VERSION) => WrappedKey::P256(self.open_p256(handle, app_param)?),
            (ED25519_HANDLE_LEN, ED25519_VERSION) => {
                WrappedKey::Ed25519(self.unwrap_ed25519(handle, app_param)?)
            }
            (KEY_HANDLE_LEN | ED25519_HANDLE_LEN, _) => return Err(UnwrapError::NotOurs),
            _ => return Err(UnwrapError::WrongLength),
        };
        Ok(Unwrapped {
            key,
            residency,
            extensions: None,
        })
    }

    /// Whether `handle` has the form of a discoverable credential's id (the version's top bit),
    /// which counts as the token's only while its record is there; says nothing of whose it is.
    pub fn is_discoverable(handle: &[u8]) -> bool {
        handle.first().is_some_and(|v| v & DISCOVERABLE_BIT != 0)
    }

    /// Whether `handle` is a version-3 id (of either residency): one with extension state.
    pub fn is_extended(handle: &[u8]) -> bool {
        handle
            .first()
            .is_some_and(|v| v & !DISCOVERABLE_BIT == EXTENDED_VERSION)
    }

    /// Seals `key` with `extensions` into a version-3 id of `residency` bound to `app_param`
    /// (module docs). A credBlob over [`MAX_CRED_BLOB_LEN`] bytes or a credProtect level over
    /// 3 is [`StoreError::Crypto`]: the engine checks both before.
    pub fn wrap_extended(
        &self,
        key: &WrappedKey,
        extensions: &CredentialExtensions,
        app_param: &[u8; 32],
        residency: Residency,
        rng: &SystemRandom,
    ) -> Result<Vec<u8>> {
        let blob = &extensions.cred_blob;
        if blob.len() > MAX_CRED_BLOB_LEN || extensions.cred_protect > 3 {
            return Err(StoreError::Crypto(
                "credential extension state out of range".into(),
            ));
        }
        let version = residency.version(EXTENDED_VERSION);
        let flags = if extensions.hmac_secret {
            HMAC_SECRET_FLAG
        } else {
            0
        } | if extensions.large_blob_key {
            LARGE_BLOB_KEY_FLAG
        } else {
            0
        };
        let mut body = zeroize::Zeroizing::new(Vec::with_capacity(
            HEADER_LEN + blob.len() + PRIVATE_LEN + PUBLIC_KEY_LEN + TAG_LEN,
        ));
        let algorithm = match key {
            WrappedKey::P256(_) => VERSION,
            WrappedKey::Ed25519(_) => ED25519_VERSION,
        };
        // The length fits a byte: at most MAX_CRED_BLOB_LEN.
        body.extend_from_slice(&[algorithm, extensions.cred_protect, flags, blob.len() as u8]);
        body.extend_from_slice(blob);
        match key {
            WrappedKey::P256(p256) => {
                body.extend_from_slice(&p256.private_key);
                body.extend_from_slice(&p256.public_key);
            }
            WrappedKey::Ed25519(seed) => body.extend_from_slice(&seed.0),
        }
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("no randomness for a nonce".into()))?;
        let tag = self
            .key()
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(version, app_param)),
                body.as_mut_slice(),
            )
            .map_err(|_| StoreError::Crypto("sealing a credential id".into()))?;
        let mut id = Vec::with_capacity(1 + NONCE_LEN + body.len() + TAG_LEN);
        id.push(version);
        id.extend_from_slice(&nonce);
        id.extend_from_slice(&body);
        id.extend_from_slice(tag.as_ref());
        Ok(id)
    }

    /// Opens a version-3 id: its key and its extension state.
    fn open_extended(
        &self,
        handle: &[u8],
        app_param: &[u8; 32],
        residency: Residency,
    ) -> Result<Unwrapped, UnwrapError> {
        let shortest = 1 + NONCE_LEN + HEADER_LEN + ED25519_SEED_LEN + TAG_LEN;
        if handle.len() < shortest || handle.len() > MAX_ISSUED_ID_LEN {
            return Err(UnwrapError::NotOurs);
        }
        let (nonce, sealed) = handle[1..].split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| UnwrapError::NotOurs)?;
        let mut sealed = zeroize::Zeroizing::new(sealed.to_vec());
        let plain = self
            .key()
            .open_in_place(
                nonce,
                Aad::from(Self::aad(handle[0], app_param)),
                sealed.as_mut_slice(),
            )
            .map_err(|_| UnwrapError::NotOurs)?;
        // Sealed by this token: a malformed body is a bug of an older build, not ours either.
        let (header, rest) = plain
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(UnwrapError::NotOurs)?;
        let [algorithm, cred_protect, flags, blob_len] = *header;
        let blob_len = usize::from(blob_len);
        if blob_len > MAX_CRED_BLOB_LEN || blob_len > rest.len() || cred_protect > 3 {
            return Err(UnwrapError::NotOurs);
        }
        let (cred_blob, key) = rest.split_at(blob_len);
        let key = match (algorithm, key.len()) {
            (VERSION, len) if len == PRIVATE_LEN + PUBLIC_KEY_LEN => {
                let mut p256 = CredentialKey {
                    private_key: [0u8; PRIVATE_LEN],
                    public_key: [0u8; PUBLIC_KEY_LEN],
                };
                p256.private_key.copy_from_slice(&key[..PRIVATE_LEN]);
                p256.public_key.copy_from_slice(&key[PRIVATE_LEN..]);
                WrappedKey::P256(p256)
            }
            (ED25519_VERSION, ED25519_SEED_LEN) => {
                let mut seed = Ed25519Seed([0u8; ED25519_SEED_LEN]);
                seed.0.copy_from_slice(key);
                WrappedKey::Ed25519(seed)
            }
            _ => return Err(UnwrapError::NotOurs),
        };
        Ok(Unwrapped {
            key,
            residency,
            extensions: Some(CredentialExtensions {
                cred_protect,
                hmac_secret: flags & HMAC_SECRET_FLAG != 0,
                large_blob_key: flags & LARGE_BLOB_KEY_FLAG != 0,
                cred_blob: cred_blob.to_vec(),
            }),
        })
    }

    /// The secret `purpose` of the credential `credential_id`, derived from the master key
    /// (module docs): hmac-secret's CredRandoms and the largeBlobKey.
    pub fn credential_secret(
        &self,
        purpose: CredentialSecret,
        credential_id: &[u8],
    ) -> zeroize::Zeroizing<[u8; 32]> {
        let master = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.master_key);
        let subkey = ring::hmac::sign(&master, b"vu2f credential secrets v1");
        let subkey = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, subkey.as_ref());
        let mut context = ring::hmac::Context::with_key(&subkey);
        context.update(purpose.label());
        context.update(&[0]);
        context.update(credential_id);
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(context.sign().as_ref());
        secret
    }

    fn unwrap_ed25519(
        &self,
        handle: &[u8],
        app_param: &[u8; 32],
    ) -> Result<Ed25519Seed, UnwrapError> {
        let (&version, rest) = handle.split_first().ok_or(UnwrapError::WrongLength)?;
        if version & !DISCOVERABLE_BIT != ED25519_VERSION
            || rest.len() != NONCE_LEN + ED25519_SEED_LEN + TAG_LEN
        {
            return Err(UnwrapError::NotOurs);
        }
        let (nonce, sealed_in) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| UnwrapError::NotOurs)?;
        let mut sealed = [0u8; ED25519_SEED_LEN + TAG_LEN];
        sealed.copy_from_slice(sealed_in);
        let opened = self
            .key()
            .open_in_place(nonce, Aad::from(Self::aad(version, app_param)), &mut sealed)
            .map(|plain| {
                let mut seed = Ed25519Seed([0u8; ED25519_SEED_LEN]);
                seed.0.copy_from_slice(plain);
                seed
            })
            .map_err(|_| UnwrapError::NotOurs);
        sealed.zeroize();
        opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_s_pkcs8_layout_is_read_as_the_der_parser_reads_it() {
        let rng = SystemRandom::new();
        for _ in 0..20 {
            let document =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let fast = CredentialKey::from_ring_layout(document.as_ref()).expect("ring's layout");
            let parsed = CredentialKey::from_pkcs8(document.as_ref()).unwrap();
            assert_eq!(fast.private_key, parsed.private_key);
            assert_eq!(fast.public_key, parsed.public_key);
        }
        let mut other = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        other[69] ^= 1;
        assert!(CredentialKey::from_ring_layout(&other).is_none());
        assert!(CredentialKey::from_ring_layout(&other[..137]).is_none());
    }

    fn wrapper(byte: u8) -> KeyWrapper {
        KeyWrapper::new(&[byte; 32])
    }

    #[test]
    fn round_trip_and_binding() {
        let rng = SystemRandom::new();
        let credential = CredentialKey::generate(&rng).unwrap();
        let app = [7u8; 32];
        let handle = wrapper(1).wrap(&credential, &app, &rng).unwrap();
        assert_eq!(handle.len(), KEY_HANDLE_LEN);

        let opened = wrapper(1).unwrap(&handle, &app).unwrap();
        assert_eq!(opened.private_key, credential.private_key);
        assert_eq!(opened.public_key, credential.public_key);
        opened.signing_key(&rng).expect("halves belong together");

        assert_eq!(
            wrapper(1).unwrap(&handle, &[8u8; 32]).err(),
            Some(UnwrapError::NotOurs)
        );
        assert_eq!(
            wrapper(2).unwrap(&handle, &app).err(),
            Some(UnwrapError::NotOurs)
        );
        assert_eq!(
            wrapper(1).unwrap(&handle[..KEY_HANDLE_LEN - 1], &app).err(),
            Some(UnwrapError::WrongLength)
        );
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let rng = SystemRandom::new();
        let credential = CredentialKey::generate(&rng).unwrap();
        let app = [3u8; 32];
        let handle = wrapper(9).wrap(&credential, &app, &rng).unwrap();
        for byte in 0..KEY_HANDLE_LEN {
            let mut forged = handle;
            forged[byte] ^= 0x01;
            assert_eq!(
                wrapper(9).unwrap(&forged, &app).err(),
                Some(UnwrapError::NotOurs),
                "byte {byte}"
            );
        }
    }

    #[test]
    fn generated_keys_sign_and_verify() {
        let rng = SystemRandom::new();
        let credential = CredentialKey::generate(&rng).unwrap();
        let pair = credential.signing_key(&rng).unwrap();
        assert_eq!(CredentialKey::public_key_of(&pair), credential.public_key);
        let sig = pair.sign(&rng, b"message").unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &credential.public_key,
        )
        .verify(b"message", sig.as_ref())
        .unwrap();
    }

    fn ed25519_handle(byte: u8, app: &[u8; 32]) -> (Ed25519Seed, [u8; ED25519_HANDLE_LEN]) {
        let rng = SystemRandom::new();
        let seed = Ed25519Seed::generate(&rng).unwrap();
        let handle = wrapper(byte).wrap_ed25519(&seed, app, &rng).unwrap();
        (seed, handle)
    }

    #[test]
    fn ed25519_round_trip_signs_and_verifies() {
        let app = [5u8; 32];
        let (seed, handle) = ed25519_handle(1, &app);
        assert_eq!(handle.len(), ED25519_HANDLE_LEN);
        assert_eq!(handle[0], 2);
        let Ok(WrappedKey::Ed25519(opened)) = wrapper(1).unwrap_any(&handle, &app) else {
            panic!("an Ed25519 handle opens as Ed25519");
        };
        assert_eq!(opened.0, seed.0);
        let pair = opened.signing_key().unwrap();
        let sig = pair.sign(b"authData || clientDataHash");
        assert_eq!(sig.as_ref().len(), 64, "raw R || S");
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            seed.public_key().unwrap(),
        )
        .verify(b"authData || clientDataHash", sig.as_ref())
        .unwrap();
    }

    #[test]
    fn ed25519_handles_are_bound_to_rp_and_token() {
        let app = [5u8; 32];
        let (_, handle) = ed25519_handle(1, &app);
        assert_eq!(
            wrapper(1).unwrap_any(&handle, &[6u8; 32]).err(),
            Some(UnwrapError::NotOurs),
            "another rpIdHash"
        );
        assert_eq!(
            wrapper(2).unwrap_any(&handle, &app).err(),
            Some(UnwrapError::NotOurs),
            "another token"
        );
        for len in [0, 1, ED25519_HANDLE_LEN - 1, ED25519_HANDLE_LEN + 1, 255] {
            let mut other = vec![2u8; len];
            other[..len.min(ED25519_HANDLE_LEN)]
                .copy_from_slice(&handle[..len.min(ED25519_HANDLE_LEN)]);
            assert_eq!(
                wrapper(1).unwrap_any(&other, &app).err(),
                Some(UnwrapError::WrongLength),
                "length {len}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_of_an_ed25519_handle_is_refused() {
        let app = [3u8; 32];
        let (_, handle) = ed25519_handle(9, &app);
        for byte in 0..ED25519_HANDLE_LEN {
            for bit in 0..8 {
                let mut forged = handle;
                forged[byte] ^= 1 << bit;
                assert_eq!(
                    wrapper(9).unwrap_any(&forged, &app).err(),
                    Some(UnwrapError::NotOurs),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn the_u2f_unwrap_refuses_an_ed25519_handle_as_not_ours() {
        let app = [4u8; 32];
        let (_, handle) = ed25519_handle(1, &app);
        assert_eq!(
            wrapper(1).unwrap(&handle, &app).err(),
            Some(UnwrapError::NotOurs)
        );
    }

    #[test]
    fn residency_is_sealed_into_the_id_and_u2f_opens_only_server_side_handles() {
        let rng = SystemRandom::new();
        let w = wrapper(9);
        let app = [4u8; 32];
        let key = CredentialKey::generate(&rng).unwrap();
        let seed = Ed25519Seed::generate(&rng).unwrap();
        for residency in [Residency::ServerSide, Residency::Discoverable] {
            let p256 = w.wrap_as(&key, &app, residency, &rng).unwrap();
            let ed = w.wrap_ed25519_as(&seed, &app, residency, &rng).unwrap();
            for handle in [&p256[..], &ed[..]] {
                let opened = w.unwrap_credential(handle, &app).unwrap();
                assert_eq!(opened.residency, residency);
                // The residency bit is bound: flipping it makes the id no one's.
                let mut flipped = handle.to_vec();
                flipped[0] ^= DISCOVERABLE_BIT;
                assert_eq!(
                    w.unwrap_credential(&flipped, &app).unwrap_err(),
                    UnwrapError::NotOurs
                );
            }
            let u2f = w.unwrap(&p256, &app);
            assert_eq!(u2f.is_ok(), residency == Residency::ServerSide);
        }
    }

    #[test]
    fn unwrap_any_opens_p256_handles_and_keeps_versions_apart() {
        let rng = SystemRandom::new();
        let app = [8u8; 32];
        let credential = CredentialKey::generate(&rng).unwrap();
        let handle = wrapper(1).wrap(&credential, &app, &rng).unwrap();
        let Ok(WrappedKey::P256(opened)) = wrapper(1).unwrap_any(&handle, &app) else {
            panic!("a P-256 handle opens as P-256");
        };
        assert_eq!(opened.public_key, credential.public_key);
        assert_eq!(
            wrapper(2).unwrap_any(&handle, &app).err(),
            Some(UnwrapError::NotOurs)
        );
        // The version byte is authenticated: relabelling a handle does not open it.
        let (_, mut ed) = ed25519_handle(1, &app);
        ed[0] = 1;
        assert_eq!(
            wrapper(1).unwrap_any(&ed, &app).err(),
            Some(UnwrapError::NotOurs)
        );
        let mut p = handle;
        p[0] = 2;
        assert_eq!(
            wrapper(1).unwrap_any(&p, &app).err(),
            Some(UnwrapError::NotOurs)
        );
    }

    #[test]
    fn extended_ids_carry_their_state_and_key_and_are_bound() {
        let rng = SystemRandom::new();
        let w = wrapper(5);
        let app = [6u8; 32];
        let state = CredentialExtensions {
            cred_protect: 3,
            hmac_secret: true,
            large_blob_key: true,
            cred_blob: vec![0x42; MAX_CRED_BLOB_LEN],
        };
        let p256 = CredentialKey::generate(&rng).unwrap();
        let public = p256.public_key;
        let seed = Ed25519Seed::generate(&rng).unwrap();
        let seed_bytes = seed.0;
        for residency in [Residency::ServerSide, Residency::Discoverable] {
            for key in [
                WrappedKey::P256(CredentialKey {
                    private_key: p256.private_key,
                    public_key: public,
                }),
                WrappedKey::Ed25519(Ed25519Seed(seed_bytes)),
            ] {
                let id = w
                    .wrap_extended(&key, &state, &app, residency, &rng)
                    .unwrap();
                assert!(id.len() <= MAX_ISSUED_ID_LEN);
                assert!(KeyWrapper::is_extended(&id));
                assert!(!KeyWrapper::is_u2f_handle(&id));
                assert_eq!(
                    w.unwrap(&id, &app).err(),
                    Some(UnwrapError::NotOurs),
                    "not U2F's"
                );
                let opened = w.unwrap_credential(&id, &app).unwrap();
                assert_eq!(opened.residency, residency);
                assert_eq!(opened.extensions.as_ref(), Some(&state));
                match (opened.key, &key) {
                    (WrappedKey::P256(k), WrappedKey::P256(_)) => assert_eq!(k.public_key, public),
                    (WrappedKey::Ed25519(s), WrappedKey::Ed25519(_)) => assert_eq!(s.0, seed_bytes),
                    _ => panic!("another algorithm"),
                }
                assert!(w.unwrap_credential(&id, &[7u8; 32]).is_err(), "another RP");
                assert!(
                    wrapper(6).unwrap_credential(&id, &app).is_err(),
                    "another token"
                );
                for byte in 0..id.len() {
                    let mut forged = id.clone();
                    forged[byte] ^= 0x10;
                    assert!(w.unwrap_credential(&forged, &app).is_err(), "byte {byte}");
                }
            }
        }
        let too_much = CredentialExtensions {
            cred_blob: vec![0; MAX_CRED_BLOB_LEN + 1],
            ..CredentialExtensions::default()
        };
        assert!(w
            .wrap_extended(
                &WrappedKey::Ed25519(seed),
                &too_much,
                &app,
                Residency::ServerSide,
                &rng
            )
            .is_err());
    }

    #[test]
    fn credential_secrets_differ_by_purpose_id_and_master_key() {
        let id = [1u8; 70];
        let a = wrapper(1);
        let secrets = [
            CredentialSecret::HmacSecretWithUv,
            CredentialSecret::HmacSecretWithoutUv,
            CredentialSecret::LargeBlobKey,
        ]
        .map(|purpose| *a.credential_secret(purpose, &id));
        assert_ne!(secrets[0], secrets[1]);
        assert_ne!(secrets[1], secrets[2]);
        assert_ne!(secrets[0], secrets[2]);
        assert_eq!(
            *a.credential_secret(CredentialSecret::HmacSecretWithUv, &id),
            secrets[0]
        );
        assert_ne!(
            *a.credential_secret(CredentialSecret::HmacSecretWithUv, &[2; 70]),
            secrets[0]
        );
        assert_ne!(
            *wrapper(2).credential_secret(CredentialSecret::HmacSecretWithUv, &id),
            secrets[0],
            "a reset (new master key) changes them"
        );
    }
}
