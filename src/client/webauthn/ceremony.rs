//! The token's part of a ceremony, asked over CTAP2 (CTAP 2.1 §6.1 authenticatorMakeCredential,
//! §6.2 authenticatorGetAssertion, §6.4 authenticatorGetInfo), and its reply shaped as the portal
//! sends it (WebAuthn Level 2 §5.2.1 AuthenticatorAttestationResponse, §5.2.2
//! AuthenticatorAssertionResponse; every binary field base64url):
//!
//! ```text
//!  makeCredential {1 clientDataHash, 2 rp, 3 user, 4 pubKeyCredParams, 5 excludeList, 7 options}
//!    → {1 fmt, 2 authData, 3 attStmt} → attestationObject {fmt, attStmt, authData}
//!  getAssertion   {1 rpId, 2 clientDataHash, 3 allowList, 5 options}
//!    → {1 credential, 2 authData, 3 signature, 4 user} → {authenticatorData, signature, userHandle}
//! ```
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{Creation, Request};
use crate::aa::fido2::{
    AssertionResponse, AttestationResponse, CredentialAssertion, CredentialAttestation,
};
use crate::client::token::TokenClient;
use crate::client::ClientError;
use crate::ctap2::cbor::{self, text_map, uint_map, Arena, Item, Parameters, Value};
use crate::webauthn::ctap2_reply::{self, ReplyError};
use crate::webauthn::{self, AuthData, PublicKey, PUBLIC_KEY};

/// CTAP2 command bytes (CTAP 2.1 section 6).
const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;
const GET_INFO: u8 = 0x04;

/// What getInfo told of the token, as far as a ceremony needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctap2Info {
    /// Built-in user verification (option `uv: true`).
    pub uv: bool,
    /// Discoverable credentials (option `rk: true`).
    pub rk: bool,
}

/// A registration the token made.
#[derive(Debug, Clone)]
pub struct Made {
    /// What goes to the server.
    pub attestation: CredentialAttestation,
    /// The credential's algorithm.
    pub algorithm: i64,
    /// The counter in its authenticator data.
    pub counter: u32,
}

/// An assertion the token made.
#[derive(Debug, Clone)]
pub struct Asserted {
    /// What goes to the server.
    pub assertion: CredentialAssertion,
    /// The counter in its authenticator data.
    pub counter: u32,
}

/// A successful reply's map, or the token's status as an error.
fn reply_map<'a>(
    reply: &'a [u8],
    arena: &'a Arena,
    command: &str,
) -> Result<Parameters<'a>, ClientError> {
    ctap2_reply::reply_map(reply, arena).map_err(|e| {
        ClientError::Token(match e {
            ReplyError::Empty => format!("{command}: an empty reply"),
            ReplyError::Status(status) => format!(
                "{command}: status 0x{status:02X} ({})",
                ctap2_reply::status_name(status)
            ),
            ReplyError::NotAMap(e) => format!("{command}: the reply is not one CBOR map: {e}"),
        })
    })
}

fn token_field(command: &str, detail: impl std::fmt::Display) -> ClientError {
    ClientError::Token(format!("{command}: {detail}"))
}

/// `item` as a value to write again (an attestation statement into the attestation object).
fn value_of(item: &Item) -> Result<Value, String> {
    Ok(match item {
        Item::Unsigned(n) => Value::Integer((*n).into()),
        Item::Negative(n) => Value::Integer(
            ciborium::value::Integer::try_from(-1 - i128::from(*n))
                .map_err(|_| "an integer out of range")?,
        ),
        Item::Bytes(b) => Value::Bytes(b.to_vec()),
        Item::Text(t) => Value::Text((*t).to_owned()),
        Item::Bool(b) => Value::Bool(*b),
        Item::Array(items) => Value::Array(items.iter().map(value_of).collect::<Result<_, _>>()?),
        Item::Map(members) => Value::Map(
            members
                .iter()
                .map(|(k, v)| Ok((value_of(k)?, value_of(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Item::Other(_) => return Err("a CBOR item outside CTAP2's types".into()),
    })
}

impl TokenClient {
    /// What getInfo tells, asked once; `None` when the token (or its transport) speaks no CTAP2.
    pub async fn ctap2_info(&mut self) -> Result<Option<Ctap2Info>, ClientError> {
        if let Some(known) = self.ctap2 {
            return Ok(known);
        }
        let reply = self
            .with_transport(|t| t.cbor(&[GET_INFO]))
            .await?
            .map_err(|e| ClientError::Token(format!("getInfo: {e}")))?;
        let info = match reply {
            None => None,
            Some(reply) => {
                let arena = Arena::new();
                let params = reply_map(&reply, &arena, "getInfo")?;
                let option = |name: &str| {
                    params
                        .get(0x04)
                        .and_then(Item::as_map)
                        .and_then(|options| cbor::member(options, name))
                        .and_then(Item::as_bool)
                        .unwrap_or(false)
                };
                Some(Ctap2Info {
                    uv: option("uv"),
                    rk: option("rk"),
                })
            }
        };
        self.ctap2 = Some(info);
        Ok(info)
    }

    async fn require_ctap2(&mut self) -> Result<Ctap2Info, ClientError> {
        self.ctap2_info().await?.ok_or_else(|| {
            ClientError::Token(
                "the token speaks no CTAP2 (a u2f token, or a transport without CBOR): FIDO2:1 needs a fido2 token".into(),
            )
        })
    }

    /// Sends one CTAP2 request, waiting for the user as long as the token does.
    async fn ctap2(&mut self, request: Vec<u8>, command: &str) -> Result<Vec<u8>, ClientError> {
        self.with_transport(move |t| t.cbor(&request))
            .await?
            .map_err(|e| token_field(command, e))?
            .ok_or_else(|| token_field(command, "the token no longer takes CTAP2 requests"))
    }

    /// Whether `level` (`required`, `preferred`) asks for UV of this token; `required` from a
    /// token without it is an error, as in a browser.
    fn wants(level: &str, supported: bool, what: &str) -> Result<bool, ClientError> {
        match level {
            "required" if !supported => Err(ClientError::Token(format!(
                "the server requires {what} and the token has none"
            ))),
            "required" => Ok(true),
            "preferred" => Ok(supported),
            _ => Ok(false),
        }
    }

    /// `navigator.credentials.create` on a page of `origin`: makeCredential, and the attestation
    /// object and client data as the portal sends them.
    pub async fn make_credential(
        &mut self,
        creation: &Creation,
        origin: &str,
    ) -> Result<Made, ClientError> {
        let command = "makeCredential";
        let info = self.require_ctap2().await?;
        let uv = Self::wants(&creation.user_verification, info.uv, "user verification")?;
        let rk = Self::wants(&creation.resident_key, info.rk, "a discoverable credential")?;
        let client_data =
            webauthn::client_data_json(webauthn::TYPE_CREATE, &creation.challenge, origin);
        let mut members = vec![
            (1, Value::Bytes(webauthn::sha256(&client_data).to_vec())),
            (
                2,
                text_map([
                    ("id", Value::Text(creation.rp_id.clone())),
                    ("name", Value::Text(creation.rp_name.clone())),
                ]),
            ),
            (
                3,
                text_map([
                    ("id", Value::Bytes(creation.user_id.clone())),
                    ("name", Value::Text(creation.user_name.clone())),
                    ("displayName", Value::Text(creation.display_name.clone())),
                ]),
            ),
            (
                4,
                Value::Array(
                    creation
                        .algorithms
                        .iter()
                        .map(|&alg| {
                            text_map([
                                ("alg", Value::Integer(alg.into())),
                                ("type", Value::Text(PUBLIC_KEY.into())),
                            ])
                        })
                        .collect(),
                ),
            ),
        ];
        if !creation.exclude.is_empty() {
            members.push((5, descriptor_list(&creation.exclude)));
        }
        let mut options = Vec::new();
        if rk {
            options.push(("rk", Value::Bool(true)));
        }
        if uv {
            options.push(("uv", Value::Bool(true)));
        }
        if !options.is_empty() {
            members.push((7, text_map(options)));
        }
        let request = [vec![MAKE_CREDENTIAL], cbor::encode(&uint_map(members))].concat();
        let reply = self.ctap2(request, command).await?;
        if reply.first() == Some(&0x19) {
            return Err(ClientError::Token(
                "makeCredential: this token is already enrolled (CREDENTIAL_EXCLUDED)".into(),
            ));
        }
        let arena = Arena::new();
        let params = reply_map(&reply, &arena, command)?;
        let field = |key: u64, name: &str| {
            params
                .get(key)
                .ok_or_else(|| token_field(command, format!("{name} (0x{key:02X}): missing")))
        };
        let fmt =
            cbor::text(field(1, "fmt")?).map_err(|_| token_field(command, "fmt: not text"))?;
        let auth_data = cbor::bytes(field(2, "authData")?)
            .map_err(|_| token_field(command, "authData: not bytes"))?;
        let statement = value_of(field(3, "attStmt")?)
            .map_err(|e| token_field(command, format!("attStmt: {e}")))?;
        let parsed = AuthData::parse(auth_data).map_err(|e| token_field(command, e))?;
        let attested = parsed
            .attested
            .as_ref()
            .ok_or_else(|| token_field(command, "authData: no attested credential data"))?;
        let algorithm = PublicKey::from_cose(attested.public_key)
            .map_err(|e| token_field(command, format!("authData: {e}")))?
            .algorithm();
        let object = cbor::encode(&text_map([
            ("fmt", Value::Text(fmt.to_owned())),
            ("attStmt", statement),
            ("authData", Value::Bytes(auth_data.to_vec())),
        ]));
        let id = URL_SAFE_NO_PAD.encode(attested.id);
        Ok(Made {
            attestation: CredentialAttestation {
                raw_id: id.clone(),
                id,
                response: AttestationResponse {
                    attestation_object: URL_SAFE_NO_PAD.encode(object),
                    client_data_json: URL_SAFE_NO_PAD.encode(&client_data),
                },
            },
            algorithm,
            counter: parsed.counter,
        })
    }

    /// `navigator.credentials.get` on a page of `origin`: getAssertion, and the assertion as the
    /// portal sends it.
    pub async fn get_assertion(
        &mut self,
        request: &Request,
        origin: &str,
    ) -> Result<Asserted, ClientError> {
        let command = "getAssertion";
        let info = self.require_ctap2().await?;
        let uv = Self::wants(&request.user_verification, info.uv, "user verification")?;
        let client_data =
            webauthn::client_data_json(webauthn::TYPE_GET, &request.challenge, origin);
        let mut members = vec![
            (1, Value::Text(request.rp_id.clone())),
            (2, Value::Bytes(webauthn::sha256(&client_data).to_vec())),
        ];
        if !request.allow.is_empty() {
            members.push((3, descriptor_list(&request.allow)));
        }
        if uv {
            members.push((5, text_map([("uv", Value::Bool(true))])));
        }
        let message = [vec![GET_ASSERTION], cbor::encode(&uint_map(members))].concat();
        let reply = self.ctap2(message, command).await?;
        if reply.first() == Some(&0x2E) {
            return Err(ClientError::NotThisToken {
                offered: request.allow.len(),
            });
        }
        let arena = Arena::new();
        let params = reply_map(&reply, &arena, command)?;
        let credential_id = match params.get(1) {
            Some(credential) => cbor::map(credential)
                .ok()
                .and_then(|c| cbor::member(c, "id"))
                .and_then(Item::as_bytes)
                .ok_or_else(|| token_field(command, "credential (0x01): no id"))?
                .to_vec(),
            None if request.allow.len() == 1 => request.allow[0].clone(),
            None => return Err(token_field(command, "credential (0x01): missing")),
        };
        let auth_data = params
            .get(2)
            .and_then(Item::as_bytes)
            .ok_or_else(|| token_field(command, "authData (0x02): missing or not bytes"))?;
        let signature = params
            .get(3)
            .and_then(Item::as_bytes)
            .ok_or_else(|| token_field(command, "signature (0x03): missing or not bytes"))?;
        let user_handle = params
            .get(4)
            .and_then(Item::as_map)
            .and_then(|user| cbor::member(user, "id"))
            .and_then(Item::as_bytes)
            .map(|id| URL_SAFE_NO_PAD.encode(id));
        let counter = AuthData::parse(auth_data)
            .map_err(|e| token_field(command, e))?
            .counter;
        let id = URL_SAFE_NO_PAD.encode(&credential_id);
        Ok(Asserted {
            assertion: CredentialAssertion {
                raw_id: id.clone(),
                id,
                response: AssertionResponse {
                    authenticator_data: URL_SAFE_NO_PAD.encode(auth_data),
                    client_data_json: URL_SAFE_NO_PAD.encode(&client_data),
                    signature: URL_SAFE_NO_PAD.encode(signature),
                    user_handle,
                },
            },
            counter,
        })
    }
}

fn descriptor_list(ids: &[Vec<u8>]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| {
                text_map([
                    ("id", Value::Bytes(id.clone())),
                    ("type", Value::Text(PUBLIC_KEY.into())),
                ])
            })
            .collect(),
    )
}
