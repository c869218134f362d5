//! The extensions of makeCredential and getAssertion (CTAP 2.1 §12; CTAP2.md §11): their inputs,
//! read and typed, and their outputs, in the authenticator data's extension map (the ED flag)
//! or, for largeBlobKey, in the reply itself.
//!
//! ```text
//!  makeCredential  in  {"credProtect": 1..3, "hmac-secret": true, "credBlob": bytes,
//!                       "largeBlobKey": true (rk only), "hmac-secret-mc": hmac-secret input,
//!                       "minPinLength": true}
//!                  out {"credBlob": stored?, "credProtect": level, "hmac-secret": true,
//!                       "hmac-secret-mc": encrypted output,
//!                       "minPinLength": the minimum (RPs authenticatorConfig allowed only)}
//!                                                                     reply 0x05 largeBlobKey
//!  getAssertion    in  {"hmac-secret": input, "credBlob": true, "largeBlobKey": true}
//!                  out {"credBlob": bytes, "hmac-secret": encrypted output}   reply 0x07
//!  hmac-secret input   {1: keyAgreement (COSE_Key), 2: saltEnc, 3: saltAuth, 4: pinUvAuthProtocol}
//! ```
//! An output is there only when its input was (§12: "outputs ⊆ inputs"). Unknown extensions are
//! ignored; a known one of the wrong type is `CBOR_UNEXPECTED_TYPE`, a credProtect level other
//! than 1 to 3 `INVALID_PARAMETER`, an hmac-secret input without one of its members
//! `MISSING_PARAMETER`. A request without extensions reads nothing here and allocates nothing.
use keystore::CredentialExtensions;

use super::cbor::{self, text_map, Item, Value};
use super::status::Status;

/// The minPinLength extension's identifier (CTAP 2.1 §12.4).
pub const MIN_PIN_LENGTH: &str = "minPinLength";

/// The extensions getInfo lists (CTAP 2.1 §6.4 member 0x02), sorted as python-fido2 shows them.
pub const SUPPORTED: [&str; 6] = [
    "credBlob",
    "credProtect",
    "hmac-secret",
    "hmac-secret-mc",
    "largeBlobKey",
    MIN_PIN_LENGTH,
];

/// The hmac-secret input of a getAssertion, or hmac-secret-mc's of a makeCredential (§12.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HmacSecretInput<'a> {
    /// The platform's key-agreement key, a COSE_Key.
    pub key_agreement: &'a Item<'a>,
    /// encrypt(shared secret, salt1 [‖ salt2]).
    pub salt_enc: &'a [u8],
    /// authenticate(shared secret, saltEnc).
    pub salt_auth: &'a [u8],
    /// The PIN/UV auth protocol (absent: one).
    pub protocol: Option<i64>,
}

/// The extensions of a makeCredential.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MakeExtensions<'a> {
    /// credProtect's level, 1 to 3.
    pub cred_protect: Option<u8>,
    /// `hmac-secret: true`.
    pub hmac_secret: bool,
    /// hmac-secret-mc (CTAP 2.2): the secret at creation.
    pub hmac_secret_mc: Option<HmacSecretInput<'a>>,
    /// credBlob's bytes, of any length (too long ones are not stored: output `false`).
    pub cred_blob: Option<&'a [u8]>,
    /// largeBlobKey's value, `true` or `false`.
    pub large_blob_key: Option<bool>,
    /// `minPinLength: true` (§12.4).
    pub min_pin_length: bool,
}

/// The extensions of a getAssertion.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GetExtensions<'a> {
    /// hmac-secret's input.
    pub hmac_secret: Option<HmacSecretInput<'a>>,
    /// `credBlob: true` (getCredBlob).
    pub cred_blob: bool,
    /// largeBlobKey's value, `true` or `false`.
    pub large_blob_key: Option<bool>,
}

impl<'a> GetExtensions<'a> {
    /// Whether any extension asks for something.
    pub fn any(&self) -> bool {
        self.hmac_secret.is_some() || self.cred_blob || self.large_blob_key == Some(true)
    }
}

/// The members of an extensions map, if there is one.
fn members<'a>(extensions: Option<&'a Item<'a>>) -> Result<&'a [(Item<'a>, Item<'a>)], Status> {
    extensions.map_or(Ok(&[]), cbor::map)
}

impl<'a> MakeExtensions<'a> {
    /// Reads makeCredential's member 0x06.
    pub fn read(extensions: Option<&'a Item<'a>>) -> Result<Self, Status> {
        let members = members(extensions)?;
        if members.is_empty() {
            return Ok(Self::default());
        }
        let cred_protect = match cbor::member(members, "credProtect") {
            Some(level) => match cbor::integer(level)? {
                level @ 1..=3 => Some(level as u8),
                _ => return Err(Status::InvalidParameter),
            },
            None => None,
        };
        let boolean = |key| cbor::member(members, key).map(cbor::boolean).transpose();
        Ok(Self {
            cred_protect,
            hmac_secret: boolean("hmac-secret")?.unwrap_or(false),
            hmac_secret_mc: cbor::member(members, "hmac-secret-mc")
                .map(HmacSecretInput::read)
                .transpose()?,
            cred_blob: cbor::member(members, "credBlob")
                .map(cbor::bytes)
                .transpose()?,
            large_blob_key: boolean("largeBlobKey")?,
            min_pin_length: boolean(MIN_PIN_LENGTH)?.unwrap_or(false),
        })
    }
}

impl<'a> GetExtensions<'a> {
    /// Reads getAssertion's member 0x04.
    pub fn read(extensions: Option<&'a Item<'a>>) -> Result<Self, Status> {
        let members = members(extensions)?;
        if members.is_empty() {
            return Ok(Self::default());
        }
        let boolean = |key| cbor::member(members, key).map(cbor::boolean).transpose();
        Ok(Self {
            hmac_secret: cbor::member(members, "hmac-secret")
                .map(HmacSecretInput::read)
                .transpose()?,
            cred_blob: boolean("credBlob")?.unwrap_or(false),
            large_blob_key: boolean("largeBlobKey")?,
        })
    }
}

impl<'a> HmacSecretInput<'a> {
    fn read(input: &'a Item<'a>) -> Result<Self, Status> {
        let members = cbor::map(input)?;
        let member = |label| cbor::int_member(members, label);
        let required = |label| member(label).ok_or(Status::MissingParameter);
        let key_agreement = required(1)?;
        cbor::map(key_agreement)?;
        Ok(Self {
            key_agreement,
            salt_enc: cbor::bytes(required(2)?)?,
            salt_auth: cbor::bytes(required(3)?)?,
            protocol: member(4).map(cbor::integer).transpose()?,
        })
    }
}

/// What a new credential keeps of its makeCredential's extensions, and whether its credBlob
/// fitted. `discoverable`: largeBlobKey is kept only for discoverable credentials.
pub fn kept(extensions: &MakeExtensions, discoverable: bool) -> (CredentialExtensions, bool) {
    let blob = extensions.cred_blob.unwrap_or_default();
    let blob_fits = blob.len() <= keystore::MAX_CRED_BLOB_LEN;
    let kept = CredentialExtensions {
        cred_protect: extensions.cred_protect.unwrap_or(0),
        hmac_secret: extensions.hmac_secret,
        large_blob_key: discoverable && extensions.large_blob_key == Some(true),
        cred_blob: if blob_fits { blob.to_vec() } else { Vec::new() },
    };
    (kept, blob_fits)
}

/// The extension outputs of a makeCredential, as a map (empty: none). `min_pin_length`: the
/// minimum PIN length when the RP asked for it and may read it.
pub fn make_outputs(
    extensions: &MakeExtensions,
    blob_stored: bool,
    hmac_secret_mc: Option<Vec<u8>>,
    min_pin_length: Option<u8>,
) -> Vec<(&'static str, Value)> {
    let mut outputs = Vec::new();
    if extensions.cred_blob.is_some() {
        outputs.push(("credBlob", Value::Bool(blob_stored)));
    }
    if let Some(level) = extensions.cred_protect {
        outputs.push(("credProtect", Value::Integer(level.into())));
    }
    if extensions.hmac_secret {
        outputs.push(("hmac-secret", Value::Bool(true)));
    }
    if let Some(output) = hmac_secret_mc {
        outputs.push(("hmac-secret-mc", Value::Bytes(output)));
    }
    if let Some(length) = min_pin_length {
        outputs.push((MIN_PIN_LENGTH, Value::Integer(length.into())));
    }
    outputs
}

/// `outputs` as the authenticator data's extension map, CTAP2 canonical.
pub fn encode_outputs(outputs: Vec<(&'static str, Value)>) -> Vec<u8> {
    cbor::encode(&text_map(outputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cbor::{int_map, Arena, Parameters};

    fn with_extensions<T>(extensions: Value, check: impl FnOnce(Option<&Item>) -> T) -> T {
        let bytes = cbor::encode(&cbor::uint_map([(6, extensions)]));
        let arena = Arena::new();
        let params = Parameters::decode(&bytes, &arena).unwrap();
        check(params.get(6))
    }

    fn hmac_input() -> Value {
        int_map([
            (1, int_map([(1, Value::Integer(2.into()))])),
            (2, Value::Bytes(vec![1; 32])),
            (3, Value::Bytes(vec![2; 16])),
        ])
    }

    #[test]
    fn make_credential_extensions_are_read_typed() {
        let extensions = text_map([
            ("credProtect", Value::Integer(3.into())),
            ("hmac-secret", Value::Bool(true)),
            ("credBlob", Value::Bytes(vec![9; 5])),
            ("largeBlobKey", Value::Bool(true)),
            ("hmac-secret-mc", hmac_input()),
            ("unknown", Value::Text("ignored".into())),
        ]);
        with_extensions(extensions, |item| {
            let read = MakeExtensions::read(item).unwrap();
            assert_eq!(read.cred_protect, Some(3));
            assert!(read.hmac_secret);
            assert_eq!(read.cred_blob, Some(&[9u8; 5][..]));
            assert_eq!(read.large_blob_key, Some(true));
            let mc = read.hmac_secret_mc.unwrap();
            assert_eq!(mc.salt_enc, [1; 32]);
            assert_eq!(mc.salt_auth, [2; 16]);
            assert_eq!(mc.protocol, None);
        });
    }

    #[test]
    fn each_bad_extension_input_gets_its_status() {
        let cases = [
            (
                text_map([("credProtect", Value::Integer(0.into()))]),
                Status::InvalidParameter,
            ),
            (
                text_map([("credProtect", Value::Integer(4.into()))]),
                Status::InvalidParameter,
            ),
            (
                text_map([("credProtect", Value::Bool(true))]),
                Status::CborUnexpectedType,
            ),
            (
                text_map([("hmac-secret", Value::Integer(1.into()))]),
                Status::CborUnexpectedType,
            ),
            (
                text_map([("credBlob", Value::Text("x".into()))]),
                Status::CborUnexpectedType,
            ),
            (
                text_map([("largeBlobKey", Value::Bytes(vec![]))]),
                Status::CborUnexpectedType,
            ),
            (Value::Array(vec![]), Status::CborUnexpectedType),
        ];
        for (extensions, status) in cases {
            let described = format!("{extensions:?}");
            with_extensions(extensions, |item| {
                assert_eq!(
                    MakeExtensions::read(item).err(),
                    Some(status),
                    "{described}"
                );
            });
        }
        let mut missing = hmac_input();
        for label in 1..=3 {
            if let Value::Map(members) = &mut missing {
                members.retain(|(k, _)| k.as_integer() != Some(label.into()));
            }
            let extensions = text_map([("hmac-secret", missing.clone())]);
            with_extensions(extensions, |item| {
                assert_eq!(
                    GetExtensions::read(item).err(),
                    Some(Status::MissingParameter),
                    "label {label}"
                );
            });
            missing = hmac_input();
        }
        let wrong = text_map([(
            "hmac-secret",
            int_map([
                (1, Value::Bytes(vec![])),
                (2, Value::Bytes(vec![1; 32])),
                (3, Value::Bytes(vec![2; 16])),
            ]),
        )]);
        with_extensions(wrong, |item| {
            assert_eq!(
                GetExtensions::read(item).err(),
                Some(Status::CborUnexpectedType)
            );
        });
    }

    #[test]
    fn get_assertion_extensions_are_read_and_absent_ones_ask_nothing() {
        with_extensions(text_map([]), |item| {
            assert!(!GetExtensions::read(item).unwrap().any());
        });
        let extensions = text_map([
            ("hmac-secret", hmac_input()),
            ("credBlob", Value::Bool(true)),
            ("largeBlobKey", Value::Bool(false)),
        ]);
        with_extensions(extensions, |item| {
            let read = GetExtensions::read(item).unwrap();
            assert!(read.any());
            assert!(read.cred_blob);
            assert_eq!(read.large_blob_key, Some(false));
            assert!(read.hmac_secret.is_some());
        });
        assert_eq!(GetExtensions::read(None), Ok(GetExtensions::default()));
    }

    #[test]
    fn outputs_follow_inputs_and_keep_only_blobs_that_fit() {
        let long = [1u8; 33];
        let extensions = MakeExtensions {
            cred_blob: Some(&long),
            cred_protect: Some(2),
            ..MakeExtensions::default()
        };
        let (kept, fits) = kept(&extensions, false);
        assert!(!fits);
        assert!(kept.cred_blob.is_empty());
        assert_eq!(kept.cred_protect, 2);
        let encoded = encode_outputs(make_outputs(&extensions, fits, None, None));
        let reference = cbor::encode(&text_map([
            ("credBlob", Value::Bool(false)),
            ("credProtect", Value::Integer(2.into())),
        ]));
        assert_eq!(encoded, reference);
        let large = MakeExtensions {
            large_blob_key: Some(true),
            ..MakeExtensions::default()
        };
        assert!(!kept_flag(&large, false));
        assert!(kept_flag(&large, true));
        assert!(make_outputs(&MakeExtensions::default(), true, None, None).is_empty());
    }

    fn kept_flag(extensions: &MakeExtensions, discoverable: bool) -> bool {
        kept(extensions, discoverable).0.large_blob_key
    }
}
