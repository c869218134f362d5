//! The requests of authenticatorMakeCredential and authenticatorGetAssertion, decoded and typed
//! (CTAP 2.1 sections 6.1 and 6.2; CTAP2.md sections 4 and 5).
//!
//! ```text
//!  makeCredential  1 clientDataHash  2 rp {id, name?}  3 user {id, name?, displayName?}
//!                  4 pubKeyCredParams [{alg, type}]  5 excludeList [{id, type}]  6 extensions
//!                  7 options {rk, up, uv}  8 pinUvAuthParam  9 pinUvAuthProtocol
//!                  10 enterpriseAttestation       extensions read: minPinLength
//!  getAssertion    1 rpId  2 clientDataHash  3 allowList [{id, type}]  4 extensions
//!                  5 options {up, uv, rk}  6 pinUvAuthParam  7 pinUvAuthProtocol
//! ```
//! Decoding checks presence and types only, with the CBOR statuses (`MISSING_PARAMETER`,
//! `CBOR_UNEXPECTED_TYPE`); what the values mean is checked by the commands in the spec's order.
//! Unknown members, options and extensions are ignored; known extensions are read by
//! [`super::extensions`].
use super::cbor::{self, Item, Parameters};
use super::cose::PUBLIC_KEY;
use super::extensions::{GetExtensions, MakeExtensions};
use super::status::Status;

/// The longest user id a request may carry (WebAuthn: at most 64 bytes).
pub const MAX_USER_ID_LEN: usize = 64;
/// Names are kept to this many bytes (cut at a character boundary), as real keys keep them.
pub const MAX_NAME_LEN: usize = 64;

/// The relying party of a makeCredential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty<'a> {
    /// The RP ID.
    pub id: &'a str,
}

/// The user account of a makeCredential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User<'a> {
    /// The user handle: opaque bytes, at most 64.
    pub id: &'a [u8],
    /// The account name, cut to [`MAX_NAME_LEN`] bytes.
    pub name: Option<&'a str>,
    /// The name to show, cut to [`MAX_NAME_LEN`] bytes.
    pub display_name: Option<&'a str>,
}

/// Whether, and how, a request carried a pinUvAuthParam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinUvAuth<'a> {
    /// No pinUvAuthParam.
    Absent,
    /// A zero-length pinUvAuthParam: a platform asking the user to pick this token.
    Empty,
    /// A pinUvAuthParam, with the pinUvAuthProtocol if one was given.
    Given {
        /// The pinUvAuthProtocol.
        protocol: Option<i64>,
        /// The pinUvAuthParam: authenticate(pinUvAuthToken, clientDataHash).
        param: &'a [u8],
    },
}

/// The options map: each present only if the request sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `rk`: make a discoverable credential.
    pub rk: Option<bool>,
    /// `up`: test for user presence.
    pub up: Option<bool>,
    /// `uv`: verify the user.
    pub uv: Option<bool>,
}

/// An authenticatorMakeCredential request, borrowing from the request's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct MakeCredential<'a> {
    /// The hash of the client data, signed with the authenticator data.
    pub client_data_hash: [u8; 32],
    /// The relying party.
    pub rp: RelyingParty<'a>,
    /// The user account.
    pub user: User<'a>,
    /// `pubKeyCredParams`, chosen from by [`super::cose::choose_algorithm`].
    pub algorithms: &'a [Item<'a>],
    /// The ids of `excludeList` entries of type `public-key`.
    pub exclude_list: CredentialList<'a>,
    /// The options.
    pub options: Options,
    /// The pinUvAuthParam.
    pub pin_uv_auth: PinUvAuth<'a>,
    /// `enterpriseAttestation`, if asked for.
    pub enterprise_attestation: Option<i64>,
    /// The extensions.
    pub extensions: MakeExtensions<'a>,
}

/// An authenticatorGetAssertion request, borrowing from the request's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct GetAssertion<'a> {
    /// The RP ID (or, for WebAuthn's `appid` extension, the U2F AppID).
    pub rp_id: &'a str,
    /// The hash of the client data.
    pub client_data_hash: [u8; 32],
    /// The ids of `allowList` entries of type `public-key`; empty when absent.
    pub allow_list: CredentialList<'a>,
    /// The options.
    pub options: Options,
    /// The pinUvAuthParam.
    pub pin_uv_auth: PinUvAuth<'a>,
    /// The extensions.
    pub extensions: GetExtensions<'a>,
}

impl<'a> TryFrom<&'a Parameters<'a>> for MakeCredential<'a> {
    type Error = Status;
    fn try_from(params: &'a Parameters<'a>) -> Result<Self, Status> {
        let client_data_hash = client_data_hash(params.required(0x01)?)?;
        let rp = cbor::map(params.required(0x02)?)?;
        let rp = RelyingParty {
            id: cbor::text(cbor::member(rp, "id").ok_or(Status::MissingParameter)?)?,
        };
        let user = cbor::map(params.required(0x03)?)?;
        let user_id = cbor::bytes(cbor::member(user, "id").ok_or(Status::MissingParameter)?)?;
        if user_id.len() > MAX_USER_ID_LEN {
            return Err(Status::InvalidLength);
        }
        let user = User {
            id: user_id,
            name: optional_name(user, "name")?,
            display_name: optional_name(user, "displayName")?,
        };
        let algorithms = cbor::array(params.required(0x04)?)?;
        let exclude_list = CredentialList::read(params.get(0x05))?;
        let extensions = MakeExtensions::read(params.get(0x06))?;
        let enterprise_attestation = params.get(0x0A).map(cbor::integer).transpose()?;
        Ok(Self {
            client_data_hash,
            rp,
            user,
            algorithms,
            exclude_list,
            options: options(params.get(0x07))?,
            pin_uv_auth: pin_uv_auth(params.get(0x08), params.get(0x09))?,
            enterprise_attestation,
            extensions,
        })
    }
}

impl<'a> TryFrom<&'a Parameters<'a>> for GetAssertion<'a> {
    type Error = Status;
    fn try_from(params: &'a Parameters<'a>) -> Result<Self, Status> {
        let rp_id = cbor::text(params.required(0x01)?)?;
        let client_data_hash = client_data_hash(params.required(0x02)?)?;
        let allow_list = CredentialList::read(params.get(0x03))?;
        let extensions = GetExtensions::read(params.get(0x04))?;
        Ok(Self {
            rp_id,
            client_data_hash,
            allow_list,
            options: options(params.get(0x05))?,
            pin_uv_auth: pin_uv_auth(params.get(0x06), params.get(0x07))?,
            extensions,
        })
    }
}

fn client_data_hash(value: &Item) -> Result<[u8; 32], Status> {
    cbor::bytes(value)?
        .try_into()
        .map_err(|_| Status::InvalidParameter)
}

/// A text member that may be absent, kept to [`MAX_NAME_LEN`] bytes.
pub(super) fn optional_name<'a>(
    members: &[(Item<'a>, Item<'a>)],
    key: &str,
) -> Result<Option<&'a str>, Status> {
    let Some(value) = cbor::member(members, key) else {
        return Ok(None);
    };
    let text = cbor::text(value)?;
    let mut end = text.len().min(MAX_NAME_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Some(&text[..end]))
}

/// A credential list (excludeList, allowList) whose entries were checked: each a map with a byte
/// string `id` and a text `type`. It borrows the request's entries rather than copying their ids.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CredentialList<'a>(&'a [Item<'a>]);

impl<'a> CredentialList<'a> {
    /// The list of a request's member, empty when absent.
    fn read(list: Option<&'a Item<'a>>) -> Result<Self, Status> {
        let Some(list) = list else {
            return Ok(Self::default());
        };
        let entries = cbor::array(list)?;
        for entry in entries {
            descriptor(entry)?;
        }
        Ok(Self(entries))
    }

    /// The ids of its `public-key` entries, in order.
    pub fn ids(self) -> impl Iterator<Item = &'a [u8]> {
        self.0.iter().filter_map(|entry| match descriptor(entry) {
            Ok((id, PUBLIC_KEY)) => Some(id),
            _ => None,
        })
    }

    /// Whether it has no `public-key` entry.
    pub fn is_empty(self) -> bool {
        self.ids().next().is_none()
    }
}

/// A credential descriptor's id and type.
pub(super) fn descriptor<'a>(entry: &Item<'a>) -> Result<(&'a [u8], &'a str), Status> {
    let members = cbor::map(entry)?;
    let id = cbor::bytes(cbor::member(members, "id").ok_or(Status::MissingParameter)?)?;
    let kind = cbor::text(cbor::member(members, "type").ok_or(Status::MissingParameter)?)?;
    Ok((id, kind))
}

fn options(value: Option<&Item>) -> Result<Options, Status> {
    let Some(value) = value else {
        return Ok(Options::default());
    };
    let members = cbor::map(value)?;
    let option = |key| cbor::member(members, key).map(cbor::boolean).transpose();
    Ok(Options {
        rk: option("rk")?,
        up: option("up")?,
        uv: option("uv")?,
    })
}

fn pin_uv_auth<'a>(
    param: Option<&Item<'a>>,
    protocol: Option<&Item>,
) -> Result<PinUvAuth<'a>, Status> {
    let protocol = protocol.map(cbor::integer).transpose()?;
    match param.map(cbor::bytes).transpose()? {
        None => Ok(PinUvAuth::Absent),
        Some([]) => Ok(PinUvAuth::Empty),
        Some(param) => Ok(PinUvAuth::Given { protocol, param }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cbor::{text_map, uint_map, Value};

    fn make_request() -> Vec<(u64, Value)> {
        vec![
            (1, Value::Bytes(vec![1; 32])),
            (2, text_map([("id", Value::Text("example.com".into()))])),
            (
                3,
                text_map([
                    ("id", Value::Bytes(vec![2; 8])),
                    ("name", Value::Text("é".repeat(40))),
                ]),
            ),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Value::Integer((-7).into())),
                    ("type", Value::Text("public-key".into())),
                ])]),
            ),
        ]
    }

    /// Decodes a makeCredential of `members` and hands the outcome to `check`.
    fn decoded<T>(
        members: Vec<(u64, Value)>,
        check: impl FnOnce(Result<MakeCredential, Status>) -> T,
    ) -> T {
        let bytes = cbor::encode(&uint_map(members));
        match Parameters::decode(&bytes, &cbor::Arena::new()) {
            Ok(params) => check(MakeCredential::try_from(&params)),
            Err(status) => check(Err(status)),
        }
    }

    /// The status a makeCredential of `members` fails with, if it does.
    fn failure(members: Vec<(u64, Value)>) -> Option<Status> {
        decoded(members, |request| request.err())
    }

    #[test]
    fn a_minimal_make_credential_decodes_with_names_cut_at_a_character() {
        decoded(make_request(), |request| {
            let request = request.unwrap();
            assert_eq!(request.rp.id, "example.com");
            assert_eq!(request.user.id, [2; 8]);
            let name = request.user.name.unwrap();
            assert_eq!(name.len(), 64);
            assert_eq!(name, "é".repeat(32));
            assert_eq!(request.options, Options::default());
            assert_eq!(request.pin_uv_auth, PinUvAuth::Absent);
        });
    }

    #[test]
    fn each_missing_or_mistyped_member_gets_its_status() {
        for key in 1..=4 {
            let mut members = make_request();
            members.retain(|(k, _)| *k != key);
            assert_eq!(
                failure(members),
                Some(Status::MissingParameter),
                "key {key}"
            );
            let mut members = make_request();
            members.retain(|(k, _)| *k != key);
            members.push((key, Value::Bool(true)));
            assert_eq!(
                failure(members),
                Some(Status::CborUnexpectedType),
                "key {key}"
            );
        }
        let mut members = make_request();
        members.push((7, text_map([("rk", Value::Integer(1.into()))])));
        assert_eq!(failure(members), Some(Status::CborUnexpectedType));
        let mut members = make_request();
        members[0] = (1, Value::Bytes(vec![1; 31]));
        assert_eq!(failure(members), Some(Status::InvalidParameter));
        let mut members = make_request();
        members[2] = (3, text_map([("id", Value::Bytes(vec![2; 65]))]));
        assert_eq!(failure(members), Some(Status::InvalidLength));
    }

    #[test]
    fn lists_keep_public_key_entries_and_pin_params_are_told_apart() {
        let mut members = make_request();
        let entry = |kind: &str, id: u8| {
            text_map([
                ("id", Value::Bytes(vec![id; 4])),
                ("type", Value::Text(kind.into())),
            ])
        };
        members.push((
            5,
            Value::Array(vec![entry("public-key", 1), entry("other", 2)]),
        ));
        members.push((8, Value::Bytes(Vec::new())));
        decoded(members, |request| {
            let request = request.unwrap();
            assert_eq!(request.exclude_list.ids().collect::<Vec<_>>(), [[1; 4]]);
            assert_eq!(request.pin_uv_auth, PinUvAuth::Empty);
        });

        let mut members = make_request();
        members.push((8, Value::Bytes(vec![1; 16])));
        members.push((9, Value::Integer(1.into())));
        decoded(members, |request| {
            assert_eq!(
                request.unwrap().pin_uv_auth,
                PinUvAuth::Given {
                    protocol: Some(1),
                    param: &[1; 16]
                }
            );
        });
    }

    #[test]
    fn get_assertion_decodes_and_checks_its_members() {
        let request = uint_map([
            (1, Value::Text("example.com".into())),
            (2, Value::Bytes(vec![3; 32])),
            (5, text_map([("up", Value::Bool(false))])),
        ]);
        let arena = cbor::Arena::new();
        let bytes = cbor::encode(&request);
        let params = Parameters::decode(&bytes, &arena).unwrap();
        let request = GetAssertion::try_from(&params).unwrap();
        assert_eq!(request.rp_id, "example.com");
        assert!(request.allow_list.is_empty());
        assert_eq!(request.options.up, Some(false));
        let bytes = cbor::encode(&uint_map([(2, Value::Bytes(vec![3; 32]))]));
        let missing = Parameters::decode(&bytes, &arena).unwrap();
        assert_eq!(
            GetAssertion::try_from(&missing),
            Err(Status::MissingParameter)
        );
    }
}
