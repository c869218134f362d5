//! The browser's part of a WebAuthn ceremony (WebAuthn Level 2 §5.1.3, §5.1.4), done by the
//! companion for AA's `FIDO2:1`: it reads the server's options, checks the RP id against the
//! page's origin as a browser does, builds the client data JSON, and asks the token over CTAP2
//! (makeCredential, getAssertion; CBOR written with the crate's canonical writer), then shapes
//! the token's answer as the portal sends it (base64url fields, [`crate::aa::fido2`]).
//!
//! ```text
//!  options ──► Creation / Request (RP id checked) ──► clientDataJSON, its SHA-256
//!          ──► token: 0x01 makeCredential / 0x02 getAssertion ──► attestationObject / assertion
//! ```
use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::token::TokenClient;
use super::ClientError;
use crate::aa::fido2::{
    AssertionResponse, AttestationResponse, CreationOptions, CredentialAssertion,
    CredentialAttestation, RequestOptions,
};
use crate::ctap2::cbor::{self, text_map, uint_map, Arena, Item, Parameters, Value};
use crate::webauthn::{self, AuthData, PublicKey};

/// CTAP2 command bytes (CTAP 2.1 section 6).
const MAKE_CREDENTIAL: u8 = 0x01;
const GET_ASSERTION: u8 = 0x02;
const GET_INFO: u8 = 0x04;
const PUBLIC_KEY: &str = "public-key";

/// What getInfo told of the token, as far as a ceremony needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctap2Info {
    /// Built-in user verification (option `uv: true`).
    pub uv: bool,
    /// Discoverable credentials (option `rk: true`).
    pub rk: bool,
}

/// Whether `rp_id` is one a page of `origin` may use (WebAuthn Level 2 §5.1.3 step 8, §5.1.4
/// step 8): the origin must be a secure context (https, or http on a loopback host), and the RP
/// id its host or a registrable suffix of it. Without the Public Suffix List a suffix must still
/// hold a dot; an IP address only as itself (browsers refuse IP addresses altogether: this is the
/// one leniency, for an emulator on loopback).
pub fn check_rp_id(rp_id: &str, origin: &str) -> Result<(), ClientError> {
    let refuse = |why: &str| ClientError::RpIdNotAllowed {
        rp_id: rp_id.to_owned(),
        origin: origin.to_owned(),
        why: why.to_owned(),
    };
    let url = reqwest::Url::parse(origin).map_err(|_| refuse("the origin is not a URL"))?;
    let host = url
        .host_str()
        .ok_or_else(|| refuse("the origin has no host"))?
        .to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = bare.parse::<IpAddr>().ok();
    let loopback = host == "localhost" || ip.is_some_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(refuse(
                "the origin is not a secure context (https, or http on loopback)",
            ))
        }
    }
    let rp_id = rp_id.to_ascii_lowercase();
    if rp_id == host || (ip.is_some() && rp_id == bare) {
        return Ok(());
    }
    if ip.is_some() {
        return Err(refuse("an IP address origin allows only itself as RP id"));
    }
    if !rp_id.contains('.') || !host.ends_with(&format!(".{rp_id}")) {
        return Err(refuse(
            "it is neither the origin's host nor a registrable suffix of it",
        ));
    }
    Ok(())
}

/// The origin's host: the RP id when the options name none.
fn default_rp_id(origin: &str) -> String {
    reqwest::Url::parse(origin)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        })
        .unwrap_or_default()
}

fn bad_reply(call: &str, detail: impl Into<String>) -> ClientError {
    ClientError::BadReply {
        call: call.to_owned(),
        detail: detail.into(),
    }
}

/// Base64url as a browser takes it: with or without padding.
fn base64url(text: &str, call: &str, field: &str) -> Result<Vec<u8>, ClientError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|e| bad_reply(call, format!("{field}: not base64url: {e}")))
}

/// A registration, as the browser prepares it from the creation options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// The challenge, base64url without padding, as the client data carries it.
    pub challenge: String,
    /// The RP id.
    pub rp_id: String,
    /// The RP's name.
    pub rp_name: String,
    /// The user handle.
    pub user_id: Vec<u8>,
    /// The user name.
    pub user_name: String,
    /// The name shown.
    pub display_name: String,
    /// COSE algorithms, most preferred first.
    pub algorithms: Vec<i64>,
    /// Credential ids the token must not register again.
    pub exclude: Vec<Vec<u8>>,
    /// `discouraged`, `preferred` or `required`.
    pub resident_key: String,
    /// `discouraged`, `preferred` or `required`.
    pub user_verification: String,
}

impl Creation {
    /// Reads `options` (the answer to `call`) for a page of `origin`, checking its RP id.
    pub fn from_options(
        options: &CreationOptions,
        origin: &str,
        call: &str,
    ) -> Result<Self, ClientError> {
        let challenge = base64url(&options.challenge, call, "challenge")?;
        if challenge.len() < 16 {
            return Err(bad_reply(call, "challenge: shorter than 16 bytes"));
        }
        let rp_id = options
            .rp
            .id
            .clone()
            .unwrap_or_else(|| default_rp_id(origin));
        check_rp_id(&rp_id, origin)?;
        let user_id = base64url(&options.user.id, call, "user.id")?;
        if user_id.is_empty() || user_id.len() > 64 {
            return Err(bad_reply(call, "user.id: not 1 to 64 bytes"));
        }
        let algorithms: Vec<i64> = options
            .pub_key_cred_params
            .iter()
            .filter(|p| p.kind == PUBLIC_KEY)
            .map(|p| p.alg)
            .collect();
        if algorithms.is_empty() {
            return Err(bad_reply(call, "pubKeyCredParams: no public-key algorithm"));
        }
        let exclude = options
            .exclude_credentials
            .iter()
            .enumerate()
            .map(|(i, c)| base64url(&c.id, call, &format!("excludeCredentials[{i}].id")))
            .collect::<Result<_, _>>()?;
        let selection = options.authenticator_selection.clone().unwrap_or_default();
        let resident_key = match (selection.resident_key, selection.require_resident_key) {
            (Some(level), _) => level,
            (None, Some(true)) => "required".into(),
            (None, _) => "discouraged".into(),
        };
        Ok(Self {
            challenge: URL_SAFE_NO_PAD.encode(challenge),
            rp_id,
            rp_name: options.rp.name.clone(),
            user_id,
            user_name: options.user.name.clone(),
            display_name: options.user.display_name.clone(),
            algorithms,
            exclude,
            resident_key,
            user_verification: selection
                .user_verification
                .unwrap_or_else(|| "preferred".into()),
        })
    }
}

/// An authentication, as the browser prepares it from the request options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The challenge, base64url without padding, as the client data carries it.
    pub challenge: String,
    /// The RP id.
    pub rp_id: String,
    /// The credentials offered; empty: a discoverable one.
    pub allow: Vec<Vec<u8>>,
    /// `discouraged`, `preferred` or `required`.
    pub user_verification: String,
}

impl Request {
    /// Reads `options` (the answer to `call`) for a page of `origin`, checking its RP id.
    pub fn from_options(
        options: &RequestOptions,
        origin: &str,
        call: &str,
    ) -> Result<Self, ClientError> {
        let challenge = base64url(&options.challenge, call, "challenge")?;
        if challenge.len() < 16 {
            return Err(bad_reply(call, "challenge: shorter than 16 bytes"));
        }
        let rp_id = options
            .rp_id
            .clone()
            .unwrap_or_else(|| default_rp_id(origin));
        check_rp_id(&rp_id, origin)?;
        let allow = options
            .allow_credentials
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == PUBLIC_KEY)
            .map(|(i, c)| base64url(&c.id, call, &format!("allowCredentials[{i}].id")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            challenge: URL_SAFE_NO_PAD.encode(challenge),
            rp_id,
            allow,
            user_verification: options
                .user_verification
                .clone()
                .unwrap_or_else(|| "preferred".into()),
        })
    }
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

/// The name of a CTAP2 status byte a ceremony may meet (CTAP 2.1 section 8.2).
fn status_name(status: u8) -> &'static str {
    match status {
        0x01 => "INVALID_COMMAND",
        0x02 => "INVALID_PARAMETER",
        0x11 => "CBOR_UNEXPECTED_TYPE",
        0x12 => "INVALID_CBOR",
        0x14 => "MISSING_PARAMETER",
        0x19 => "CREDENTIAL_EXCLUDED",
        0x26 => "UNSUPPORTED_ALGORITHM",
        0x27 => "OPERATION_DENIED",
        0x2B => "UNSUPPORTED_OPTION",
        0x2C => "INVALID_OPTION",
        0x2D => "KEEPALIVE_CANCEL",
        0x2E => "NO_CREDENTIALS",
        0x2F => "USER_ACTION_TIMEOUT",
        0x7F => "OTHER",
        _ => "an error",
    }
}

/// A successful reply's map, or the token's status as an error.
fn reply_map<'a>(
    reply: &'a [u8],
    arena: &'a Arena,
    command: &str,
) -> Result<Parameters<'a>, ClientError> {
    let (&status, body) = reply
        .split_first()
        .ok_or_else(|| ClientError::Token(format!("{command}: an empty reply")))?;
    if status != 0 {
        return Err(ClientError::Token(format!(
            "{command}: status 0x{status:02X} ({})",
            status_name(status)
        )));
    }
    Parameters::decode(body, arena)
        .map_err(|e| ClientError::Token(format!("{command}: the reply is not one CBOR map: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rp_id_is_checked_against_the_origin_as_a_browser_does() {
        for (rp_id, origin) in [
            ("aa.example.com", "https://aa.example.com"),
            ("example.com", "https://aa.example.com:8443"),
            ("localhost", "http://localhost:8440"),
            ("127.0.0.1", "http://127.0.0.1:8440"),
        ] {
            assert!(check_rp_id(rp_id, origin).is_ok(), "{rp_id} {origin}");
        }
        for (rp_id, origin) in [
            ("evil.example", "https://aa.example.com"),
            ("ample.com", "https://aa.example.com"),
            ("com", "https://aa.example.com"),
            ("aa.example.com", "http://aa.example.com"),
            ("0.0.1", "http://127.0.0.1:8440"),
            ("localhost", "http://127.0.0.1:8440"),
            ("x", "not a url"),
        ] {
            let error = check_rp_id(rp_id, origin).unwrap_err().to_string();
            assert!(error.starts_with("refusing RP id"), "{error}");
        }
    }
}
