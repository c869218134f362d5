//! # webauthn — what a WebAuthn client and a relying party both read (WebAuthn Level 2 §5.8.1,
//! §6.1, §6.5.1): the client data JSON, authenticator data and COSE public keys.
//!
//! The companion builds client data and reads authenticator data as a browser does; the emulator
//! reads the same bytes as a relying party (§7.1, §7.2). Parsers take bytes from outside and
//! answer an error naming the field, never a panic.
//!
//! ```text
//!  authData  rpIdHash (32) ‖ flags (1) ‖ signCount (4, BE)
//!            [ ‖ AAGUID (16) ‖ credIdLen (2, BE) ‖ credId ‖ COSE key ]   AT (0x40)
//!            [ ‖ extensions (CBOR map) ]                                  ED (0x80)
//!  flags     UP 0x01, UV 0x04, AT 0x40, ED 0x80
//! ```
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};

use crate::ctap2::cbor::{self, Arena, Item};

/// `type` of the client data of a registration.
pub const TYPE_CREATE: &str = "webauthn.create";
/// `type` of the client data of an assertion.
pub const TYPE_GET: &str = "webauthn.get";
/// User present.
pub const FLAG_UP: u8 = 0x01;
/// User verified.
pub const FLAG_UV: u8 = 0x04;
/// Attested credential data included.
pub const FLAG_AT: u8 = 0x40;
/// Extension data included.
pub const FLAG_ED: u8 = 0x80;
/// COSE algorithm ES256 (ECDSA P-256 with SHA-256).
pub const ES256: i64 = -7;
/// COSE algorithm EdDSA (Ed25519).
pub const EDDSA: i64 = -8;

/// The client data JSON as a browser serialises it (WebAuthn Level 2 §5.8.1.1): `type`,
/// `challenge` (base64url without padding), `origin`, `crossOrigin`, in that order.
pub fn client_data_json(typ: &str, challenge: &str, origin: &str) -> Vec<u8> {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"type\":{},\"challenge\":{},\"origin\":{},\"crossOrigin\":false}}",
        quote(typ),
        quote(challenge),
        quote(origin)
    )
    .into_bytes()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    hash
}

/// Authenticator data, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData<'a> {
    /// SHA-256 of the RP id.
    pub rp_id_hash: [u8; 32],
    /// UP, UV, AT, ED.
    pub flags: u8,
    /// The signature counter.
    pub counter: u32,
    /// The new credential, when the AT flag is set.
    pub attested: Option<AttestedCredential<'a>>,
}

/// Attested credential data: AAGUID ‖ id length ‖ id ‖ COSE key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential<'a> {
    /// The authenticator's model.
    pub aaguid: [u8; 16],
    /// The credential id.
    pub id: &'a [u8],
    /// The credential's public key, as COSE_Key bytes.
    pub public_key: &'a [u8],
}

impl<'a> AuthData<'a> {
    /// Splits authenticator data; an error names what is wrong.
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        if data.len() < 37 {
            return Err(format!(
                "authData: {} bytes, shorter than rpIdHash ‖ flags ‖ signCount",
                data.len()
            ));
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(&data[..32]);
        let flags = data[32];
        let counter = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
        let mut rest = &data[37..];
        let attested = if flags & FLAG_AT != 0 {
            if rest.len() < 18 {
                return Err(
                    "authData: AT is set but the attested credential data is cut short".into(),
                );
            }
            let mut aaguid = [0u8; 16];
            aaguid.copy_from_slice(&rest[..16]);
            let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            rest = &rest[18..];
            if rest.len() < id_len {
                return Err(format!(
                    "authData: credentialId: {id_len} bytes announced, {} there",
                    rest.len()
                ));
            }
            let (id, after) = rest.split_at(id_len);
            let (_, length) = Item::decode_prefix(after, &Arena::new())
                .map_err(|e| format!("authData: credentialPublicKey: not CBOR: {e}"))?;
            let (public_key, after) = after.split_at(length);
            rest = after;
            Some(AttestedCredential {
                aaguid,
                id,
                public_key,
            })
        } else {
            None
        };
        if flags & FLAG_ED != 0 {
            let (_, length) = Item::decode_prefix(rest, &Arena::new())
                .map_err(|e| format!("authData: extensions: not CBOR: {e}"))?;
            rest = &rest[length..];
        }
        if !rest.is_empty() {
            return Err(format!("authData: {} bytes left over", rest.len()));
        }
        Ok(Self {
            rp_id_hash,
            flags,
            counter,
            attested,
        })
    }
}

/// A credential public key of an algorithm vu2f verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ES256: an uncompressed P-256 point.
    Es256([u8; 65]),
    /// EdDSA: an Ed25519 public key.
    EdDsa([u8; 32]),
}

/// Why a COSE_Key is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKeyError {
    /// Not a COSE_Key, or one of a key type or algorithm vu2f does not verify.
    Unsupported(String),
    /// ES256 or EdDSA, but not a valid key: a coordinate of the wrong length, a point that is
    /// not on P-256.
    Invalid(String),
}

impl std::fmt::Display for CoseKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unsupported(detail) | Self::Invalid(detail) => f.write_str(detail),
        }
    }
}

impl PublicKey {
    /// Reads a COSE_Key (RFC 8152 §13, WebAuthn Level 2 §6.5.1.1): EC2 P-256 with ES256, its
    /// point checked to be on the curve (SEC 1 §3.2.2.1), or OKP Ed25519 with EdDSA, its key 32
    /// bytes (RFC 8032 §5.1.5).
    pub fn from_cose(bytes: &[u8]) -> Result<Self, CoseKeyError> {
        let name = "credentialPublicKey";
        let unsupported = |detail: String| CoseKeyError::Unsupported(format!("{name}: {detail}"));
        let arena = Arena::new();
        let (item, length) = Item::decode_prefix(bytes, &arena)
            .map_err(|e| unsupported(format!("not CBOR: {e}")))?;
        if length != bytes.len() {
            return Err(unsupported("bytes after the key".into()));
        }
        let members = cbor::map(&item).map_err(|_| unsupported("not a map".into()))?;
        let get = |label: i64| {
            members
                .iter()
                .find(|(k, _)| k.as_i64() == Some(label))
                .map(|(_, v)| v)
        };
        let int = |label: i64, field: &str| {
            get(label)
                .and_then(Item::as_i64)
                .ok_or_else(|| unsupported(format!("{field} ({label}): missing or not an integer")))
        };
        let coordinate = |label: i64, field: &str| {
            get(label)
                .and_then(Item::as_bytes)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    CoseKeyError::Invalid(format!(
                        "{name}: {field} ({label}): missing or not 32 bytes"
                    ))
                })
        };
        let (kty, alg, crv) = (int(1, "kty")?, int(3, "alg")?, int(-1, "crv")?);
        match (kty, alg, crv) {
            (2, ES256, 1) => {
                let mut point = [0x04u8; 65];
                point[1..33].copy_from_slice(&coordinate(-2, "x")?);
                point[33..].copy_from_slice(&coordinate(-3, "y")?);
                p256::PublicKey::from_sec1_bytes(&point).map_err(|_| {
                    CoseKeyError::Invalid(format!("{name}: the point (x, y) is not on P-256"))
                })?;
                Ok(Self::Es256(point))
            }
            (1, EDDSA, 6) => Ok(Self::EdDsa(coordinate(-2, "x")?)),
            _ => Err(unsupported(format!(
                "kty {kty}, alg {alg}, crv {crv} is neither ES256 on P-256 nor EdDSA on Ed25519"
            ))),
        }
    }

    /// The COSE algorithm.
    pub fn algorithm(&self) -> i64 {
        match self {
            Self::Es256(_) => ES256,
            Self::EdDsa(_) => EDDSA,
        }
    }

    /// Whether `signature` (DER for ES256, 64 bytes for EdDSA) signs `message` with this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Es256(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point[..])
                .verify(message, signature)
                .is_ok(),
            Self::EdDsa(key) => UnparsedPublicKey::new(&ED25519, &key[..])
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// The name of a COSE algorithm, for people.
pub fn algorithm_name(alg: i64) -> &'static str {
    match alg {
        ES256 => "ES256",
        EDDSA => "EdDSA",
        _ => "an algorithm vu2f does not verify",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_data_is_written_as_a_browser_writes_it() {
        assert_eq!(
            client_data_json(TYPE_GET, "abc", "https://aa.example"),
            br#"{"type":"webauthn.get","challenge":"abc","origin":"https://aa.example","crossOrigin":false}"#
        );
        let quoted = client_data_json(TYPE_CREATE, "a\"b", "x");
        assert!(serde_json::from_slice::<serde_json::Value>(&quoted).is_ok());
    }

    #[test]
    fn short_or_cut_authenticator_data_is_an_error_not_a_panic() {
        for length in 0..120 {
            let mut data = vec![0u8; length];
            if length > 32 {
                data[32] = FLAG_AT | FLAG_ED;
            }
            let _ = AuthData::parse(&data);
        }
        let mut data = vec![0u8; 37];
        data[32] = FLAG_UP;
        data[36] = 7;
        let parsed = AuthData::parse(&data).unwrap();
        assert_eq!((parsed.flags, parsed.counter), (FLAG_UP, 7));
        data.push(0);
        assert!(AuthData::parse(&data).unwrap_err().contains("left over"));
    }

    #[test]
    fn a_cose_key_of_another_algorithm_is_refused_by_name() {
        // {1: 2, 3: -35, -1: 2}: ES384, not verified by vu2f.
        let key = [0xA3, 0x01, 0x02, 0x03, 0x38, 0x22, 0x20, 0x02];
        let refused = PublicKey::from_cose(&key).unwrap_err();
        assert!(matches!(&refused, CoseKeyError::Unsupported(d) if d.contains("alg -35")));
        assert!(PublicKey::from_cose(&[0xA0, 0x00]).is_err());
    }

    /// {1: 2, 3: -7, -1: 1, -2: x, -3: y}.
    fn es256_cose(point: &[u8]) -> Vec<u8> {
        let mut key = vec![0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        key.extend_from_slice(&point[1..33]);
        key.extend_from_slice(&[0x22, 0x58, 0x20]);
        key.extend_from_slice(&point[33..]);
        key
    }

    #[test]
    fn an_es256_point_off_the_curve_is_an_invalid_key() {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!(
            PublicKey::from_cose(&es256_cose(&point))
                .unwrap()
                .algorithm(),
            ES256
        );
        let mut off = point.clone();
        off[64] ^= 0x01;
        let refused = PublicKey::from_cose(&es256_cose(&off)).unwrap_err();
        assert!(
            matches!(&refused, CoseKeyError::Invalid(d) if d.contains("not on P-256")),
            "{refused:?}"
        );
    }

    #[test]
    fn an_ed25519_key_of_the_wrong_length_is_an_invalid_key() {
        // {1: 1, 3: -8, -1: 6, -2: 31 bytes}.
        let mut key = vec![0xA4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x1F];
        key.extend_from_slice(&[7u8; 31]);
        let refused = PublicKey::from_cose(&key).unwrap_err();
        assert!(
            matches!(&refused, CoseKeyError::Invalid(d) if d.contains("not 32 bytes")),
            "{refused:?}"
        );
        key[9] = 0x20;
        key.push(7);
        assert_eq!(PublicKey::from_cose(&key).unwrap().algorithm(), EDDSA);
    }
}
