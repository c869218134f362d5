//! Authenticators added, listed and removed (WebDriver's Add and Remove Virtual Authenticator,
//! W3C WebAuthn Level 3 §11.3, §11.4; the list is vu2f's).
//!
//! `POST /webauthn/authenticator`, WebDriver's Authenticator Configuration (§11.2) and vu2f's
//! members:
//!
//! ```text
//!  protocol             "ctap1/u2f" | "ctap2" | "ctap2_1"   required
//!  transport            "usb"                               required; vu2f's devices are USB HID
//!  hasResidentKey       bool = false    discoverable credentials (false: rk → UNSUPPORTED_OPTION)
//!  hasUserVerification  bool = false    built-in UV
//!  isUserConsenting     bool = true     presence auto, else deny
//!  isUserVerified       bool = false    built-in UV auto, else deny
//!  extensions           [string]        of credBlob, credProtect, hmac-secret, largeBlob,
//!                                       minPinLength, prf: all always on in a ctap2 token
//!  name                 string          the id (default virtual-N)
//!  ephemeral            bool = true     in the temporary store, gone when removed; false: the
//!                                       user's token of that name (made when missing)
//!  udp                  false | true | "127.0.0.1:PORT"   also served over UDP (true: any port)
//!  → {"value": "<authenticatorId>"}
//! ```
//! A `ctap1/u2f` authenticator has neither discoverable credentials nor UV: those members are
//! taken (as clients send them) and have no effect. Its uhid device comes with serve `--uhid`.
//!
//! `GET /webauthn/authenticators` → `{"value": [DESCRIPTION, …]}`, `GET
//! /webauthn/authenticator/{id}` → `{"value": DESCRIPTION}`, with DESCRIPTION:
//!
//! ```text
//!  {"authenticatorId", "protocol", "transport": "usb", "hasResidentKey", "hasUserVerification",
//!   "isUserConsenting", "isUserVerified", "presence": POLICY, "uv": POLICY | null,
//!   "ephemeral", "hidraw": "/dev/hidrawN" | null, "udp": "ADDR" | null}
//! ```
//! `DELETE /webauthn/authenticator/{id}` → `{"value": null}` once its devices are gone.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::error::{parse_body, Answer, ApiError, ApiResult};
use super::fleet::{Fleet, Protocol, Spec, UdpBinding, VirtualAuthenticator};
use super::switches::policy_of;
use super::AuthenticatorPath;

/// The extensions a ctap2 token has, by their WebAuthn names and CTAP names both.
const EXTENSIONS: [&str; 7] = [
    "credBlob",
    "credProtect",
    "hmac-secret",
    "largeBlob",
    "largeBlobKey",
    "minPinLength",
    "prf",
];

/// `POST /webauthn/authenticator`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AddAuthenticator {
    protocol: Protocol,
    transport: String,
    #[serde(default)]
    has_resident_key: bool,
    #[serde(default)]
    has_user_verification: bool,
    #[serde(default = "yes")]
    is_user_consenting: bool,
    #[serde(default)]
    is_user_verified: bool,
    #[serde(default)]
    extensions: Vec<String>,
    name: Option<String>,
    #[serde(default = "yes")]
    ephemeral: bool,
    #[serde(default)]
    udp: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl AddAuthenticator {
    /// What the fleet adds, checked.
    pub fn spec(self) -> ApiResult<Spec> {
        if self.transport != "usb" {
            return Err(ApiError::invalid_argument(format!(
                "field `transport`: {:?} is not served; vu2f's authenticators are \"usb\"",
                self.transport
            )));
        }
        for extension in &self.extensions {
            if self.protocol == Protocol::U2f || !EXTENSIONS.contains(&extension.as_str()) {
                return Err(ApiError::unsupported(format!(
                    "field `extensions`: a {} authenticator has no extension {extension:?}",
                    self.protocol.name()
                )));
            }
        }
        Ok(Spec {
            name: self.name,
            protocol: self.protocol,
            ephemeral: self.ephemeral,
            resident_keys: self.has_resident_key,
            uv: self
                .has_user_verification
                .then(|| policy_of(self.is_user_verified)),
            presence: policy_of(self.is_user_consenting),
            udp: udp_binding(self.udp)?,
        })
    }
}

/// `udp`: false (or absent), true, or an address.
fn udp_binding(value: Option<serde_json::Value>) -> ApiResult<Option<UdpBinding>> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(UdpBinding::AnyPort)),
        Some(Value::String(text)) => text.parse().map(|a| Some(UdpBinding::At(a))).map_err(|_| {
            ApiError::invalid_argument(format!(
                "field `udp`: {text:?} is not an address such as \"127.0.0.1:8111\""
            ))
        }),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "field `udp`: expected false, true or \"127.0.0.1:PORT\", got {other}"
        ))),
    }
}

/// An authenticator as the list tells it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// Its id.
    pub authenticator_id: String,
    /// What it speaks.
    pub protocol: Protocol,
    /// Always "usb".
    pub transport: String,
    /// Whether it makes discoverable credentials.
    pub has_resident_key: bool,
    /// Whether it has built-in user verification.
    pub has_user_verification: bool,
    /// Whether presence is given at once (`presence` is `auto`).
    pub is_user_consenting: bool,
    /// Whether built-in UV verifies at once (`uv` is `auto`).
    pub is_user_verified: bool,
    /// The presence policy.
    pub presence: String,
    /// The policy of built-in UV, if it has it.
    pub uv: Option<String>,
    /// Whether its token goes when it is removed.
    pub ephemeral: bool,
    /// Its hidraw node, when served through uhid.
    pub hidraw: Option<PathBuf>,
    /// Its UDP address, when served over UDP.
    pub udp: Option<SocketAddr>,
}

impl VirtualAuthenticator {
    /// What the list tells of it now.
    pub fn describe(&self) -> Description {
        let (presence, uv, resident_keys) = {
            let engine = self.engine();
            (
                engine.u2f().presence().policy(),
                engine.uv_policy(),
                engine.resident_keys(),
            )
        };
        let auto = crate::u2f::PresencePolicy::Auto;
        Description {
            authenticator_id: self.id().to_owned(),
            protocol: self.protocol(),
            transport: "usb".into(),
            has_resident_key: resident_keys,
            has_user_verification: uv.is_some(),
            is_user_consenting: presence == auto,
            is_user_verified: uv == Some(auto),
            presence: presence.to_string(),
            uv: uv.map(|p| p.to_string()),
            ephemeral: self.is_ephemeral(),
            hidraw: self.hidraw(),
            udp: self.udp(),
        }
    }
}

pub(super) async fn add(State(fleet): State<Arc<Fleet>>, body: Bytes) -> ApiResult<Answer<String>> {
    let spec = parse_body::<AddAuthenticator>(&body)?.spec()?;
    let added = fleet.add(spec).await?;
    let shown = added.describe();
    tracing::info!(
        id = added.id(),
        hidraw = ?shown.hidraw,
        udp = ?shown.udp,
        "authenticator added"
    );
    Ok(Answer(added.id().to_owned()))
}

pub(super) async fn remove(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
) -> ApiResult<Answer<()>> {
    fleet.remove(&path.id).await?;
    tracing::info!(id = path.id, "authenticator removed");
    Ok(Answer(()))
}

pub(super) async fn list(State(fleet): State<Arc<Fleet>>) -> Answer<Vec<Description>> {
    Answer(fleet.list().iter().map(|a| a.describe()).collect())
}

pub(super) async fn show(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
) -> ApiResult<Answer<Description>> {
    Ok(Answer(fleet.get(&path.id)?.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::error::ErrorCode;
    use crate::u2f::PresencePolicy;

    fn spec(body: &str) -> ApiResult<Spec> {
        parse_body::<AddAuthenticator>(body.as_bytes())?.spec()
    }

    #[test]
    fn webdriver_defaults_and_vu2f_members_map_to_a_spec() {
        let plain = spec(r#"{"protocol": "ctap2", "transport": "usb"}"#).unwrap();
        assert_eq!(plain.protocol, Protocol::Ctap2);
        assert!(plain.ephemeral && !plain.resident_keys && plain.udp.is_none());
        assert_eq!((plain.uv, plain.presence), (None, PresencePolicy::Auto));
        let full = spec(
            r#"{"protocol": "ctap2_1", "transport": "usb", "hasResidentKey": true,
                "hasUserVerification": true, "isUserConsenting": false, "isUserVerified": true,
                "extensions": ["credBlob", "prf"], "name": "n", "ephemeral": false,
                "udp": "127.0.0.1:9"}"#,
        )
        .unwrap();
        assert!(full.resident_keys && !full.ephemeral);
        assert_eq!(full.uv, Some(PresencePolicy::Auto));
        assert_eq!(full.presence, PresencePolicy::Deny);
        assert_eq!(full.name.as_deref(), Some("n"));
        assert_eq!(
            full.udp,
            Some(UdpBinding::At("127.0.0.1:9".parse().unwrap()))
        );
        let unverified = spec(
            r#"{"protocol": "ctap2", "transport": "usb", "hasUserVerification": true,
                "udp": true}"#,
        )
        .unwrap();
        assert_eq!(unverified.uv, Some(PresencePolicy::Deny));
        assert_eq!(unverified.udp, Some(UdpBinding::AnyPort));
    }

    #[test]
    fn what_vu2f_cannot_serve_is_refused_naming_the_field() {
        let refused = |body: &str, code: ErrorCode, field: &str| {
            let error = spec(body).unwrap_err();
            assert_eq!(error.code(), code, "{error}");
            assert!(error.message().contains(field), "{error}");
        };
        let invalid = ErrorCode::InvalidArgument;
        refused(
            r#"{"protocol": "ctap2", "transport": "nfc"}"#,
            invalid,
            "`transport`",
        );
        refused(
            r#"{"protocol": "ctap3", "transport": "usb"}"#,
            invalid,
            "`protocol`",
        );
        refused(r#"{"transport": "usb"}"#, invalid, "`protocol`");
        refused(
            r#"{"protocol": "ctap2", "transport": "usb", "udp": "anywhere"}"#,
            invalid,
            "`udp`",
        );
        refused(
            r#"{"protocol": "ctap2", "transport": "usb", "udp": 5}"#,
            invalid,
            "`udp`",
        );
        refused(
            r#"{"protocol": "ctap2", "transport": "usb", "hasResidentKeys": true}"#,
            invalid,
            "`hasResidentKeys`",
        );
        let unsupported = ErrorCode::UnsupportedOperation;
        refused(
            r#"{"protocol": "ctap2", "transport": "usb", "extensions": ["uvm"]}"#,
            unsupported,
            "`extensions`",
        );
        refused(
            r#"{"protocol": "ctap1/u2f", "transport": "usb", "extensions": ["credBlob"]}"#,
            unsupported,
            "`extensions`",
        );
    }
}
