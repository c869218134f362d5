//! PIN/UV auth protocols one and two (CTAP 2.1 §6.5.4 "PIN/UV Auth Protocol Abstract
//! Definition", §6.5.6 "PIN/UV Auth Protocol One", §6.5.7 "PIN/UV Auth Protocol Two";
//! `shared/spec/CTAP2.md` §7).
//!
//! The platform and the token agree on a key with P-256 ECDH: the token's key-agreement key is
//! made at power-up, its public half handed out by getKeyAgreement as a COSE_Key, and the
//! platform sends its own (one-time) public key with each request. From the shared point's x
//! coordinate Z each protocol derives its keys:
//!
//! ```text
//!  getKeyAgreement reply  {1: {1: 2 (EC2), 3: -25 (ECDH-ES+HKDF-256), -1: 1 (P-256), -2: x, -3: y}}
//!
//!  protocol 1   key        = SHA-256(Z)                                   (HMAC key = AES key)
//!               encrypt    = AES-256-CBC(key, IV = 0¹²⁸, no padding)      length % 16 = 0
//!               authenticate = LEFT(HMAC-SHA-256(key, message), 16)
//!
//!  protocol 2   HMAC key   = HKDF-SHA-256(salt = 0²⁵⁶, Z, info = "CTAP2 HMAC key", L = 32)
//!               AES key    = HKDF-SHA-256(salt = 0²⁵⁶, Z, info = "CTAP2 AES key",  L = 32)
//!               encrypt    = ┌──────────────┬──────────────────────────────┐
//!                            │ IV (16, random) │ AES-256-CBC(AES key, IV, m) │
//!                            └──────────────┴──────────────────────────────┘
//!               authenticate = HMAC-SHA-256(HMAC key, message)            all 32 bytes
//! ```
//!
//! The same `authenticate` keyed by the pinUvAuthToken (32 random bytes, made anew at every
//! power-up) is what makeCredential and getAssertion carry as their pinUvAuthParam:
//! authenticate(pinUvAuthToken, clientDataHash).
//!
//! The primitives are RustCrypto's (`p256`, `aes`, `cbc`, `hmac`, `hkdf`); nothing here is
//! written by hand but the protocols' arrangement of them.
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::{EncodedPoint, PublicKey, SecretKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::cbor::{self, int_map, Item, Value};
use super::status::Status;

type HmacSha256 = Hmac<Sha256>;
type Aes256CbcEncryptor = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDecryptor = cbc::Decryptor<aes::Aes256>;

/// The length of a pinUvAuthToken (CTAP 2.1 §6.5.2: 32 bytes for both protocols).
pub const PIN_UV_AUTH_TOKEN_LEN: usize = 32;
/// COSE algorithm the key-agreement key names (CTAP 2.1 §6.5.6: "-25 (ECDH-ES+HKDF-256),
/// although this is NOT the algorithm actually used").
pub const ECDH_ES_HKDF_256: i64 = -25;
const AES_BLOCK: usize = 16;

/// A PIN/UV auth protocol, by its number on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PinUvAuthProtocol {
    /// Protocol one (CTAP 2.0's, §6.5.6).
    One = 1,
    /// Protocol two (§6.5.7), the one the token prefers.
    Two = 2,
}

impl PinUvAuthProtocol {
    /// The protocols getInfo lists (pinUvAuthProtocols), most preferred first.
    pub const SUPPORTED: [PinUvAuthProtocol; 2] = [Self::Two, Self::One];

    /// The length of authenticate's output: 16 bytes for one, 32 for two.
    pub fn tag_len(self) -> usize {
        match self {
            Self::One => 16,
            Self::Two => 32,
        }
    }

    /// authenticate(key, message) of this protocol (§6.5.6, §6.5.7): key is a shared secret's
    /// HMAC key or a pinUvAuthToken.
    pub fn authenticate(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(message);
        let mut tag = mac.finalize().into_bytes().to_vec();
        tag.truncate(self.tag_len());
        tag
    }

    /// verify(key, message, signature) of this protocol: a tag of exactly [`Self::tag_len`]
    /// bytes, compared in constant time.
    pub fn verify(self, key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.tag_len() {
            return false;
        }
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(message);
        mac.verify_truncated_left(signature).is_ok()
    }
}

impl TryFrom<i64> for PinUvAuthProtocol {
    type Error = Status;
    /// A protocol the token does not support is `INVALID_PARAMETER` (CTAP 2.1 §6.5.5.1 and
    /// §6.1.2 step 2).
    fn try_from(number: i64) -> Result<Self, Status> {
        match number {
            1 => Ok(Self::One),
            2 => Ok(Self::Two),
            _ => Err(Status::InvalidParameter),
        }
    }
}

/// 32 random bytes from `rng`.
pub fn random_32(rng: &SystemRandom) -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    // The system's randomness does not fail once the process runs.
    rng.fill(bytes.as_mut()).expect("system randomness");
    bytes
}

/// The token's key-agreement key of one power-up (§6.5.4 initialize / regenerate).
pub struct KeyAgreementKey {
    secret: SecretKey,
}

impl KeyAgreementKey {
    /// A new P-256 key pair.
    pub fn generate(rng: &SystemRandom) -> Self {
        loop {
            // A 32-byte string is a valid scalar but with probability about 2^-32.
            if let Ok(secret) = SecretKey::from_bytes(random_32(rng).as_ref().into()) {
                return Self { secret };
            }
        }
    }

    /// The key pair whose secret scalar is `bytes` (the tests' fixed vectors).
    #[cfg(test)]
    fn from_secret(bytes: &[u8; 32]) -> Self {
        Self {
            secret: SecretKey::from_bytes(bytes.into()).unwrap(),
        }
    }

    /// getPublicKey: the public half as getKeyAgreement answers it, a COSE_Key.
    pub fn cose_key(&self) -> Value {
        let point = self.secret.public_key().to_encoded_point(false);
        let coordinate =
            |c: Option<&p256::FieldBytes>| Value::Bytes(c.map_or(Vec::new(), |c| c.to_vec()));
        int_map([
            (1, Value::Integer(2.into())),
            (3, Value::Integer(ECDH_ES_HKDF_256.into())),
            (-1, Value::Integer(1.into())),
            (-2, coordinate(point.x())),
            (-3, coordinate(point.y())),
        ])
    }

    /// decapsulate(peerCoseKey): the shared secret with the platform key `peer` (a COSE_Key
    /// map), for `protocol`. Not an EC2 P-256 key, or not a point on the curve:
    /// `INVALID_PARAMETER`; a coordinate missing: `MISSING_PARAMETER`; of the wrong type:
    /// `CBOR_UNEXPECTED_TYPE`.
    pub fn decapsulate(
        &self,
        protocol: PinUvAuthProtocol,
        peer: &Item,
    ) -> Result<SharedSecret, Status> {
        let members = cbor::map(peer)?;
        let label = |label| cbor::int_member(members, label);
        let integer = |l: i64| label(l).map(cbor::integer).transpose();
        if integer(1)?.is_some_and(|kty| kty != 2) || integer(-1)?.is_some_and(|crv| crv != 1) {
            return Err(Status::InvalidParameter);
        }
        let coordinate = |l: i64| -> Result<&[u8; 32], Status> {
            cbor::bytes(label(l).ok_or(Status::MissingParameter)?)?
                .try_into()
                .map_err(|_| Status::InvalidParameter)
        };
        let point = EncodedPoint::from_affine_coordinates(
            coordinate(-2)?.into(),
            coordinate(-3)?.into(),
            false,
        );
        let peer = Option::<PublicKey>::from(PublicKey::from_encoded_point(&point))
            .ok_or(Status::InvalidParameter)?;
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        Ok(SharedSecret::derive(protocol, shared.raw_secret_bytes()))
    }
}

/// encapsulate(peerCoseKey), the platform's side (§6.5.4): a one-time key pair of its own, the
/// COSE_Key to send, and the shared secret with `peer` (the token's getKeyAgreement key). For
/// host code and tests driving a token.
pub fn encapsulate(
    protocol: PinUvAuthProtocol,
    peer: &Item,
    rng: &SystemRandom,
) -> Result<(Value, SharedSecret), Status> {
    let own = KeyAgreementKey::generate(rng);
    let shared = own.decapsulate(protocol, peer)?;
    Ok((own.cose_key(), shared))
}

/// The keys a protocol derives from Z (§6.5.6 and §6.5.7 "kdf"); zeroized when dropped.
pub struct SharedSecret {
    protocol: PinUvAuthProtocol,
    hmac_key: Zeroizing<[u8; 32]>,
    aes_key: Zeroizing<[u8; 32]>,
}

impl SharedSecret {
    fn derive(protocol: PinUvAuthProtocol, z: &[u8]) -> Self {
        let mut hmac_key = Zeroizing::new([0u8; 32]);
        let mut aes_key = Zeroizing::new([0u8; 32]);
        match protocol {
            PinUvAuthProtocol::One => {
                let key: [u8; 32] = Sha256::digest(z).into();
                hmac_key.copy_from_slice(&key);
                aes_key.copy_from_slice(&key);
            }
            PinUvAuthProtocol::Two => {
                let hkdf = hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), z);
                // 32 bytes is far below HKDF-SHA-256's limit of 8160.
                hkdf.expand(b"CTAP2 HMAC key", hmac_key.as_mut())
                    .expect("32-byte HKDF output");
                hkdf.expand(b"CTAP2 AES key", aes_key.as_mut())
                    .expect("32-byte HKDF output");
            }
        }
        Self {
            protocol,
            hmac_key,
            aes_key,
        }
    }

    /// The protocol it was derived for.
    pub fn protocol(&self) -> PinUvAuthProtocol {
        self.protocol
    }

    /// encrypt(key, demPlaintext): `plaintext` (a whole number of AES blocks: a PIN hash, a
    /// token) under the AES key; protocol two puts a random IV first.
    pub fn encrypt(&self, plaintext: &[u8], rng: &SystemRandom) -> Vec<u8> {
        debug_assert_eq!(plaintext.len() % AES_BLOCK, 0);
        let mut iv = [0u8; AES_BLOCK];
        if self.protocol == PinUvAuthProtocol::Two {
            rng.fill(&mut iv).expect("system randomness");
        }
        let mut body = plaintext.to_vec();
        let length = body.len();
        let encryptor = Aes256CbcEncryptor::new(self.aes_key.as_ref().into(), &iv.into());
        // Whole blocks encrypt without padding.
        let _ = encryptor.encrypt_padded_mut::<NoPadding>(&mut body, length);
        match self.protocol {
            PinUvAuthProtocol::One => body,
            PinUvAuthProtocol::Two => [&iv[..], &body].concat(),
        }
    }

    /// decrypt(key, demCiphertext): `None` when the ciphertext is not a whole number of blocks
    /// (after protocol two's IV), as the spec has it fail.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (iv, body) = match self.protocol {
            PinUvAuthProtocol::One => ([0u8; AES_BLOCK], ciphertext),
            PinUvAuthProtocol::Two => {
                let (iv, body) = ciphertext.split_first_chunk::<AES_BLOCK>()?;
                (*iv, body)
            }
        };
        if body.len() % AES_BLOCK != 0 {
            return None;
        }
        let mut plain = Zeroizing::new(body.to_vec());
        let decryptor = Aes256CbcDecryptor::new(self.aes_key.as_ref().into(), &iv.into());
        decryptor
            .decrypt_padded_mut::<NoPadding>(plain.as_mut_slice())
            .ok()?;
        Some(plain)
    }

    /// verify(key, message, signature) under the HMAC key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.protocol
            .verify(self.hmac_key.as_ref(), message, signature)
    }

    /// authenticate(key, message) under the HMAC key (what a platform sends; for tests).
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        self.protocol.authenticate(self.hmac_key.as_ref(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cbor::{self, Parameters};

    /// Fixed keys, and what python-fido2's own `PinProtocolV1` and `PinProtocolV2`
    /// (`fido2/ctap2/pin.py`, 2.2.1) make of them: the token's secret scalar is 01‖02‖…‖20, the
    /// platform's 21‖22‖…‖40; the plaintext is the PIN "1234" padded to 64 bytes.
    mod python_fido2 {
        pub const TOKEN_SECRET: &str =
            "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";
        pub const TOKEN_X: &str =
            "515c3d6eb9e396b904d3feca7f54fdcd0cc1e997bf375dca515ad0a6c3b4035f";
        pub const PLATFORM_X: &str =
            "1f140146bfb1b251f84f4ddbe0d4cdcfd77afd984a9520e35794021f8312bb9e";
        pub const PLATFORM_Y: &str =
            "ec995a08b1fa7704df3dcc0b50a9665263fb7711f95f9f8a449c5096e47c892b";
        pub const V1_PIN_ENC: &str = "caf3260121a03e361f6fe395b05ac096eab4274b2457f87df6bd8f33adb683daa4bfe68ee1d4abcefa873aebe3fe8f95152ad7c6cee91f5680c5f1a8cbf4250d";
        pub const V1_PARAM: &str = "aa513abdea0673d7f7ebd65edaa79636";
        pub const V2_PIN_ENC: &str = "d79a6fec53a0d55d72d7d6734d03a1861d945dcb1b8c21bc265ab5d8047670357091521f1f348e24ae68ca43414303457f37799bcc66c33dac7bbda65db36768f8c86fd5c02b23ecc4882f987c65e37b";
        pub const V2_PARAM: &str =
            "7edee8ba2a9d04458cd30ee5c4425936b92a1d20bc2edf2ed14c333d60b92e03";
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn token_key() -> KeyAgreementKey {
        KeyAgreementKey::from_secret(&unhex(python_fido2::TOKEN_SECRET).try_into().unwrap())
    }

    fn platform_key(x: &[u8], y: &[u8]) -> Vec<u8> {
        cbor::encode(&int_map([
            (1, Value::Integer(2.into())),
            (3, Value::Integer((-25).into())),
            (-1, Value::Integer(1.into())),
            (-2, Value::Bytes(x.to_vec())),
            (-3, Value::Bytes(y.to_vec())),
        ]))
    }

    /// Decapsulates the platform key `encoded` (a COSE_Key's CBOR) with the token's key.
    fn shared(protocol: PinUvAuthProtocol, encoded: &[u8]) -> Result<SharedSecret, Status> {
        let arena = cbor::Arena::new();
        let wrapped = [&[0xA1, 0x01][..], encoded].concat();
        let params = Parameters::decode(&wrapped, &arena)?;
        token_key().decapsulate(protocol, params.get(1).unwrap())
    }

    fn python_platform() -> Vec<u8> {
        platform_key(
            &unhex(python_fido2::PLATFORM_X),
            &unhex(python_fido2::PLATFORM_Y),
        )
    }

    /// 78 bytes: an ES256 key's 77, but -25 takes two bytes where -7 takes one.
    #[test]
    fn the_public_key_is_a_canonical_cose_key() {
        let encoded = cbor::encode(&token_key().cose_key());
        assert_eq!(encoded.len(), 78);
        assert_eq!(
            &encoded[..10],
            &[0xA5, 0x01, 0x02, 0x03, 0x38, 0x18, 0x20, 0x01, 0x21, 0x58]
        );
        assert_eq!(&encoded[11..43], unhex(python_fido2::TOKEN_X).as_slice());
    }

    #[test]
    fn protocol_one_agrees_with_python_fido2() {
        let secret = shared(PinUvAuthProtocol::One, &python_platform()).unwrap();
        let pin_enc = unhex(python_fido2::V1_PIN_ENC);
        let param = unhex(python_fido2::V1_PARAM);
        assert!(secret.verify(&pin_enc, &param));
        assert_eq!(secret.authenticate(&pin_enc), param);
        let padded = secret.decrypt(&pin_enc).unwrap();
        assert_eq!(&padded[..4], b"1234");
        assert!(padded[4..].iter().all(|&b| b == 0));
        assert_eq!(
            secret.encrypt(&padded, &SystemRandom::new()),
            pin_enc,
            "zero IV"
        );
        assert!(!secret.verify(&pin_enc, &param[..15]));
        assert!(!secret.verify(&pin_enc[1..], &param));
        assert!(secret.decrypt(&pin_enc[1..]).is_none(), "not whole blocks");
    }

    #[test]
    fn protocol_two_agrees_with_python_fido2() {
        let secret = shared(PinUvAuthProtocol::Two, &python_platform()).unwrap();
        let pin_enc = unhex(python_fido2::V2_PIN_ENC);
        let param = unhex(python_fido2::V2_PARAM);
        assert!(secret.verify(&pin_enc, &param));
        assert!(!secret.verify(&pin_enc, &param[..16]), "all 32 bytes");
        let padded = secret.decrypt(&pin_enc).unwrap();
        assert_eq!(padded.len(), 64);
        assert_eq!(&padded[..4], b"1234");
        let rng = SystemRandom::new();
        let (a, b) = (secret.encrypt(&padded, &rng), secret.encrypt(&padded, &rng));
        assert_eq!(a.len(), 80);
        assert_ne!(a[..16], b[..16], "a random IV each time");
        assert_eq!(secret.decrypt(&a).unwrap().as_slice(), padded.as_slice());
        assert!(
            secret.decrypt(&pin_enc[..15]).is_none(),
            "shorter than an IV"
        );
    }

    #[test]
    fn a_bad_platform_key_gets_the_specs_status() {
        let x = unhex(python_fido2::PLATFORM_X);
        let mut y = unhex(python_fido2::PLATFORM_Y);
        let protocol = PinUvAuthProtocol::Two;
        assert!(shared(protocol, &platform_key(&x, &y)).is_ok());
        assert_eq!(
            shared(protocol, &platform_key(&x, &y[1..])).err(),
            Some(Status::InvalidParameter)
        );
        y[31] ^= 1;
        assert_eq!(
            shared(protocol, &platform_key(&x, &y)).err(),
            Some(Status::InvalidParameter),
            "not on the curve"
        );
        let only_x = cbor::encode(&int_map([(-2, Value::Bytes(x.clone()))]));
        assert_eq!(
            shared(protocol, &only_x).err(),
            Some(Status::MissingParameter)
        );
        let okp = cbor::encode(&int_map([(1, Value::Integer(1.into()))]));
        assert_eq!(shared(protocol, &okp).err(), Some(Status::InvalidParameter));
        assert_eq!(
            shared(protocol, &[0x01]).err(),
            Some(Status::CborUnexpectedType)
        );
    }

    #[test]
    fn tokens_authenticate_by_protocol_and_protocols_by_number() {
        let token = [7u8; 32];
        let one = PinUvAuthProtocol::One.authenticate(&token, b"cdh");
        let two = PinUvAuthProtocol::Two.authenticate(&token, b"cdh");
        assert_eq!((one.len(), two.len()), (16, 32));
        assert_eq!(one, two[..16]);
        assert!(PinUvAuthProtocol::One.verify(&token, b"cdh", &one));
        assert!(!PinUvAuthProtocol::Two.verify(&token, b"cdh", &one));
        assert!(!PinUvAuthProtocol::Two.verify(&[8; 32], b"cdh", &two));
        assert_eq!(PinUvAuthProtocol::try_from(2), Ok(PinUvAuthProtocol::Two));
        assert_eq!(
            PinUvAuthProtocol::try_from(3),
            Err(Status::InvalidParameter)
        );
    }
}
