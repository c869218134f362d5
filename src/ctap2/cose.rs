//! The credential algorithms and their COSE keys (RFC 9053 sections 2.1, 2.2 and 7; CTAP 2.1
//! section 6.1, `pubKeyCredParams`; CTAP2.md section 6).
//!
//! ```text
//!  ES256  {1: 2 (EC2), 3: -7, -1: 1 (P-256), -2: x (32), -3: y (32)}
//!         a5 01 02 03 26 20 01 21 58 20 <x> 22 58 20 <y>              77 bytes
//!  EdDSA  {1: 1 (OKP), 3: -8, -1: 6 (Ed25519), -2: x (32)}
//!         a4 01 01 03 27 20 06 21 58 20 <x>                           42 bytes
//! ```
//! ES256 signatures are DER `SEQUENCE { r, s }`; EdDSA signatures the raw 64 bytes `R ‖ S`.
use super::cbor::{self, int_map, Item, Value};
use super::status::Status;

/// A credential algorithm this token can make keys for, with its COSE identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA over P-256 with SHA-256.
    Es256,
    /// EdDSA over Ed25519 (PureEdDSA).
    EdDsa,
}

impl Algorithm {
    /// Every algorithm the token supports, in the order of preference getInfo lists them (ES256
    /// first: every host knows it).
    pub const SUPPORTED: [Algorithm; 2] = [Algorithm::Es256, Algorithm::EdDsa];

    /// The COSE algorithm identifier.
    pub fn cose(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::EdDsa => -8,
        }
    }

    /// The algorithm of a COSE identifier, if this token supports it.
    pub fn from_cose(alg: i64) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|a| a.cose() == alg)
    }

    /// The `PublicKeyCredentialParameters` entry getInfo lists for it.
    pub fn parameters(self) -> Value {
        cbor::text_map([
            ("alg", Value::Integer(self.cose().into())),
            ("type", Value::Text(PUBLIC_KEY.into())),
        ])
    }
}

/// The only credential type: `"public-key"`.
pub const PUBLIC_KEY: &str = "public-key";

/// The first of a request's `pubKeyCredParams` that this token supports (CTAP 2.1 section 6.1.2,
/// step 3). Each entry must be a map with an integer `alg` and a text `type`; entries of another
/// type or an unknown algorithm are skipped; none left is `UNSUPPORTED_ALGORITHM`.
pub fn choose_algorithm(parameters: &[Item]) -> Result<Algorithm, Status> {
    let mut chosen = None;
    for entry in parameters {
        let members = cbor::map(entry)?;
        let kind = cbor::text(cbor::member(members, "type").ok_or(Status::MissingParameter)?)?;
        let alg = cbor::integer(cbor::member(members, "alg").ok_or(Status::MissingParameter)?)?;
        if chosen.is_none() && kind == PUBLIC_KEY {
            chosen = Algorithm::from_cose(alg);
        }
    }
    chosen.ok_or(Status::UnsupportedAlgorithm)
}

/// The COSE_Key of an ES256 public key given as an uncompressed SEC1 point (`04 ‖ x ‖ y`).
pub fn es256_key(point: &[u8; 65]) -> Value {
    int_map([
        (1, Value::Integer(2.into())),
        (3, Value::Integer((-7).into())),
        (-1, Value::Integer(1.into())),
        (-2, Value::Bytes(point[1..33].to_vec())),
        (-3, Value::Bytes(point[33..].to_vec())),
    ])
}

/// The COSE_Key of an Ed25519 public key.
pub fn ed25519_key(public: &[u8; 32]) -> Value {
    int_map([
        (1, Value::Integer(1.into())),
        (3, Value::Integer((-8).into())),
        (-1, Value::Integer(6.into())),
        (-2, Value::Bytes(public.to_vec())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(entries: &[(&str, i64)]) -> Vec<Value> {
        entries
            .iter()
            .map(|(kind, alg)| {
                cbor::text_map([
                    ("alg", Value::Integer((*alg).into())),
                    ("type", Value::Text((*kind).into())),
                ])
            })
            .collect()
    }

    /// The algorithm chosen from `entries`, as a request would carry them.
    fn chosen(entries: Vec<Value>) -> Result<Algorithm, Status> {
        let bytes = cbor::encode(&Value::Array(entries));
        let arena = cbor::Arena::new();
        let (list, _) = Item::decode_prefix(&bytes, &arena).unwrap();
        choose_algorithm(list.as_array().unwrap())
    }

    #[test]
    fn the_first_supported_algorithm_wins_and_unknown_ones_are_skipped() {
        let chosen_of = |entries: &[(&str, i64)]| chosen(params(entries));
        assert_eq!(
            chosen_of(&[("public-key", -257), ("public-key", -8)]),
            Ok(Algorithm::EdDsa)
        );
        assert_eq!(
            chosen_of(&[("other", -7), ("public-key", -7)]),
            Ok(Algorithm::Es256)
        );
        assert_eq!(
            chosen_of(&[("public-key", -257)]),
            Err(Status::UnsupportedAlgorithm)
        );
        assert_eq!(chosen_of(&[]), Err(Status::UnsupportedAlgorithm));
    }

    #[test]
    fn malformed_parameters_get_the_cbor_statuses() {
        let no_alg = cbor::text_map([("type", Value::Text(PUBLIC_KEY.into()))]);
        assert_eq!(chosen(vec![no_alg]), Err(Status::MissingParameter));
        let text_alg = cbor::text_map([
            ("alg", Value::Text("-7".into())),
            ("type", Value::Text(PUBLIC_KEY.into())),
        ]);
        assert_eq!(chosen(vec![text_alg]), Err(Status::CborUnexpectedType));
        assert_eq!(
            chosen(vec![Value::Integer(1.into())]),
            Err(Status::CborUnexpectedType)
        );
    }

    #[test]
    fn keys_encode_as_the_spec_draws_them() {
        let mut point = [0x04; 65];
        point[1..33].fill(0xAA);
        point[33..].fill(0xBB);
        let es256 = cbor::encode(&es256_key(&point));
        assert_eq!(
            es256[..10],
            [0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]
        );
        assert_eq!(es256.len(), 77);
        let eddsa = cbor::encode(&ed25519_key(&[0xCC; 32]));
        assert_eq!(
            eddsa[..10],
            [0xA4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20]
        );
        assert_eq!(eddsa.len(), 42);
    }
}
