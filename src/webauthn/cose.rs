//! COSE_Key public keys (RFC 8152 §13, WebAuthn Level 2 §6.5.1.1) of the algorithms vu2f
//! verifies, each checked to be a valid key when read:
//!
//! ```text
//!  ES256  {1 kty: 2 (EC2), 3 alg: -7, -1 crv: 1 (P-256), -2 x: 32 bytes, -3 y: 32 bytes}
//!  EdDSA  {1 kty: 1 (OKP), 3 alg: -8, -1 crv: 6 (Ed25519), -2 x: 32 bytes}
//! ```
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};

use super::{EDDSA, ES256};
use crate::ctap2::cbor::{self, Arena, Item};

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

#[cfg(test)]
mod tests {
    use super::*;

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
