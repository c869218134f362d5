//! A credential's key: made, sealed into its id, opened again, and signing (CTAP 2.1 section 6.1,
//! steps 16 to 18; DESIGN.md, "FIDO2": credential ids).
//!
//! Credential ids carry the private key sealed with the token's master key and bound to the
//! rpIdHash (`keystore::key_handle`), so a non-discoverable credential costs no storage:
//!
//! ```text
//!  ES256  the U2F key handle: 01 ‖ nonce ‖ AES-GCM(P-256 private ‖ public) ‖ tag   126 bytes
//!  EdDSA                      02 ‖ nonce ‖ AES-GCM(Ed25519 seed)            ‖ tag    61 bytes
//!  discoverable: the same with the version's top bit set (81, 82)
//!  with extension state (credProtect, hmac-secret, credBlob, largeBlobKey): version 3 (03, 83)
//! ```
//! A non-discoverable ES256 credential id is a U2F key handle and a U2F key handle one: a
//! credential registered over U2F signs over CTAP2, and the other way round. A discoverable
//! credential's id counts only while its record is in the store: a replaced or deleted one is
//! gone, though its id still opens.
use keystore::{
    CredentialExtensions, CredentialKey, Ed25519Seed, KeyWrapper, Residency, WrappedKey,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, Signature};

use super::cbor::Value;
use super::cose::{self, Algorithm};
use super::status::Status;

/// A credential's signing key, opened.
pub enum SigningKey {
    /// ECDSA P-256.
    Es256(EcdsaKeyPair),
    /// Ed25519.
    EdDsa(Ed25519KeyPair),
}

/// Makes a new key pair for `algorithm` and seals it into a credential id bound to
/// `rp_id_hash`, with `extensions` when there are any (a version-3 id; without, the id is a
/// version 1 or 2 one as ever). Returns the id and the public key as a COSE_Key. No signing key is built (ring
/// would check the pair with a scalar multiplication): a batch-attested makeCredential signs
/// nothing with the new key; a self-attested one opens it from its id, paying that once.
pub fn generate(
    algorithm: Algorithm,
    residency: Residency,
    extensions: &CredentialExtensions,
    wrapper: &KeyWrapper,
    rp_id_hash: &[u8; 32],
    rng: &SystemRandom,
) -> Result<(Vec<u8>, Value), Status> {
    let extended = |key: WrappedKey| {
        wrapper
            .wrap_extended(&key, extensions, rp_id_hash, residency, rng)
            .map_err(|_| Status::Other)
    };
    match algorithm {
        Algorithm::Es256 => {
            let key = CredentialKey::generate(rng).map_err(|_| Status::Other)?;
            let public_key = cose::es256_key(&key.public_key);
            let id = if extensions.is_none() {
                wrapper
                    .wrap_as(&key, rp_id_hash, residency, rng)
                    .map_err(|_| Status::Other)?
                    .to_vec()
            } else {
                extended(WrappedKey::P256(key))?
            };
            Ok((id, public_key))
        }
        Algorithm::EdDsa => {
            let mut seed = Ed25519Seed([0; 32]);
            rng.fill(&mut seed.0).map_err(|_| Status::Other)?;
            let pair = ed25519_pair(&seed)?;
            let mut public = [0u8; 32];
            public.copy_from_slice(pair.public_key().as_ref());
            let id = if extensions.is_none() {
                wrapper
                    .wrap_ed25519_as(&seed, rp_id_hash, residency, rng)
                    .map_err(|_| Status::Other)?
                    .to_vec()
            } else {
                extended(WrappedKey::Ed25519(seed))?
            };
            Ok((id, cose::ed25519_key(&public)))
        }
    }
}

impl SigningKey {
    /// Opens a credential id presented for `rp_id_hash`; `None` when it is not one of this
    /// token's credentials for that RP (another token's, another RP's, forged, or not an id).
    pub fn open(
        wrapper: &KeyWrapper,
        id: &[u8],
        rp_id_hash: &[u8; 32],
        rng: &SystemRandom,
    ) -> Option<Self> {
        match wrapper.unwrap_any(id, rp_id_hash).ok()? {
            WrappedKey::P256(key) => key.signing_key(rng).ok().map(Self::Es256),
            WrappedKey::Ed25519(seed) => ed25519_pair(&seed).ok().map(Self::EdDsa),
        }
    }

    /// Signs `message`: DER ECDSA for ES256, raw `R ‖ S` for EdDSA.
    pub fn sign(&self, message: &[u8], rng: &SystemRandom) -> Result<Signature, Status> {
        match self {
            Self::Es256(pair) => pair.sign(rng, message).map_err(|_| Status::Other),
            Self::EdDsa(pair) => Ok(pair.sign(message)),
        }
    }
}

fn ed25519_pair(seed: &Ed25519Seed) -> Result<Ed25519KeyPair, Status> {
    Ed25519KeyPair::from_seed_unchecked(&seed.0).map_err(|_| Status::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};

    fn public_key_bytes(key: &SigningKey) -> Vec<u8> {
        match key {
            SigningKey::Es256(pair) => pair.public_key().as_ref().to_vec(),
            SigningKey::EdDsa(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// The key of a COSE_Key as ring takes it: `04 ‖ x ‖ y` for EC2, `x` for OKP.
    fn cose_public_key_bytes(key: &Value) -> Vec<u8> {
        let members = key.as_map().unwrap();
        let coordinate = |k: i64| {
            members
                .iter()
                .find(|(key, _)| key.as_integer() == Some(k.into()))
                .and_then(|(_, v)| v.as_bytes().cloned())
        };
        match coordinate(-3) {
            Some(y) => [vec![4], coordinate(-2).unwrap(), y].concat(),
            None => coordinate(-2).unwrap(),
        }
    }

    #[test]
    fn a_credential_id_opens_only_for_its_rp_and_signs_verifiably() {
        let rng = SystemRandom::new();
        let wrapper = KeyWrapper::new(&[3; 32]);
        let other = KeyWrapper::new(&[4; 32]);
        for algorithm in Algorithm::SUPPORTED {
            let (id, cose_key) = generate(
                algorithm,
                Residency::ServerSide,
                &CredentialExtensions::default(),
                &wrapper,
                &[1; 32],
                &rng,
            )
            .unwrap();
            let opened = SigningKey::open(&wrapper, &id, &[1; 32], &rng).expect("opens");
            assert!(matches!(
                (algorithm, &opened),
                (Algorithm::Es256, SigningKey::Es256(_)) | (Algorithm::EdDsa, SigningKey::EdDsa(_))
            ));
            assert_eq!(public_key_bytes(&opened), cose_public_key_bytes(&cose_key));
            assert!(SigningKey::open(&wrapper, &id, &[2; 32], &rng).is_none());
            assert!(SigningKey::open(&other, &id, &[1; 32], &rng).is_none());
            let signature = opened.sign(b"message", &rng).unwrap();
            let verifier = match algorithm {
                Algorithm::Es256 => {
                    &ECDSA_P256_SHA256_ASN1 as &dyn ring::signature::VerificationAlgorithm
                }
                Algorithm::EdDsa => &ED25519,
            };
            UnparsedPublicKey::new(verifier, public_key_bytes(&opened))
                .verify(b"message", signature.as_ref())
                .expect("the signature verifies");
        }
    }
}
