//! AA's `FIDO2:1` method as **AA's own end-user portal** drives it (PROTOCOLS.md 1.9, tagged
//! `[CODE portal]`): read from a public copy of the portal's JavaScript, **not from official
//! documentation**. Every FIDO2:1 path and body lives here and only here, so that it can be
//! corrected in one place against a real server.
//!
//! ```text
//!  FIDO2:1 enrollment
//!  POST /api/v1/enroll                       {method_id:"FIDO2:1", login_session_id} -> enroll_process_id
//!  POST /api/v1/enroll/{id}/do_enroll        {login_session_id, response:{rp_id}}    -> MORE_DATA
//!  POST /api/v1/logon_method/FIDO2:1/enroll/{id}  {username, displayName}           -> creation options
//!  (navigator.credentials.create: the token's makeCredential)
//!  POST /api/v1/logon_method/FIDO2:1/enroll/{id}  {rawId, id, response:{attestationObject,
//!                                                   clientDataJSON}}           -> {status, errorMessage}
//!  POST /api/v1/enroll/{id}/do_enroll        {login_session_id, response:{rp_id}}    -> OK
//!  POST /api/v1/users/{user_id}/templates    (as for U2F, crate::aa::portal)
//!
//!  FIDO2:1 logon
//!  POST /api/v1/logon/{id}/do_logon          {endpoint_session_id}                   -> MORE_DATA
//!  POST /api/v1/logon_method/FIDO2:1/login/{id}   {username, displayName}           -> request options
//!  (navigator.credentials.get: the token's getAssertion)
//!  POST /api/v1/logon_method/FIDO2:1/login/{id}   {rawId, id, response:{authenticatorData,
//!                                   clientDataJSON, signature, userHandle}}    -> {status, errorMessage}
//!  POST /api/v1/logon/{id}/do_logon          {endpoint_session_id}                   -> NEXT | OK
//! ```
//!
//! * `rp_id`: the portal's code writes `rpId`; its fetch layer turns body keys into snake_case, so
//!   the wire has `rp_id`. The emulator takes both.
//! * The WebAuthn bodies are those of the webauthn-simple-app library the portal uses unchanged:
//!   every binary field base64url without padding, `attestation: "direct"` unless the server says
//!   otherwise (`[CODE library]`; that AA's endpoint uses them verbatim is inferred).
//! * What the options request of a logon carries, and what the second `do_enroll` and the last
//!   `do_logon` carry, the portal's code does not show (`[INF]`): vu2f sends the options request
//!   as at enrollment, `response:{rp_id}` again, and no `response` at all.
//! * The MORE_DATA reasons of either method were not seen (`[UNK]`); AA's FIDO2 policy settings
//!   (attestation trust, AAGUID allow-list, UV) were not found (`[UNK]`).
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST`: the WebAuthn exchange of an enrollment (options, then the attestation).
pub const ENROLL_EXCHANGE: &str = "/api/v1/logon_method/{method_id}/enroll/{enroll_process_id}";
/// `POST`: the WebAuthn exchange of a logon (options, then the assertion).
pub const LOGIN_EXCHANGE: &str = "/api/v1/logon_method/{method_id}/login/{logon_process_id}";

/// `response` of the `do_enroll` rounds: the RP id, the page's host name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRpId {
    /// The page's host name.
    #[serde(rename = "rp_id", alias = "rpId")]
    pub rp_id: String,
}

/// The options request of either exchange (webauthn-simple-app `CreateOptionsRequest`,
/// `GetOptionsRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionsRequest {
    /// The user name.
    pub username: String,
    /// The name shown.
    pub display_name: String,
}

/// The relying party of the creation options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelyingParty {
    /// Its name.
    pub name: String,
    /// Its id [default: the page's host].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The user of the creation options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user handle, base64url.
    pub id: String,
    /// The user name.
    pub name: String,
    /// The name shown.
    pub display_name: String,
}

/// One entry of `pubKeyCredParams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialParameter {
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A COSE algorithm (-7 ES256, -8 EdDSA).
    pub alg: i64,
}

/// A credential descriptor of `excludeCredentials` and `allowCredentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDescriptor {
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The credential id, base64url.
    pub id: String,
    /// Transports, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transports: Option<Vec<String>>,
}

/// `authenticatorSelection` of the creation options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// `platform` or `cross-platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_attachment: Option<String>,
    /// Level 1's discoverable credential switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_resident_key: Option<bool>,
    /// `discouraged`, `preferred` or `required` (Level 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident_key: Option<String>,
    /// `discouraged`, `preferred` or `required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verification: Option<String>,
}

/// The answer to an enrollment's options request (webauthn-simple-app `CreateOptions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationOptions {
    /// `ok` or `failed`.
    pub status: String,
    /// Why, when `failed`.
    #[serde(default)]
    pub error_message: String,
    /// The challenge, base64url.
    pub challenge: String,
    /// The relying party.
    pub rp: RelyingParty,
    /// The user.
    pub user: User,
    /// Algorithms, most preferred first.
    pub pub_key_cred_params: Vec<CredentialParameter>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Credentials the user has already.
    #[serde(default)]
    pub exclude_credentials: Vec<CredentialDescriptor>,
    /// Which authenticators, discoverable or not, verified or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator_selection: Option<AuthenticatorSelection>,
    /// `none`, `indirect` or `direct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
    /// Extensions.
    #[serde(default)]
    pub extensions: Map<String, Value>,
}

/// The answer to a logon's options request (webauthn-simple-app `GetOptions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestOptions {
    /// `ok` or `failed`.
    pub status: String,
    /// Why, when `failed`.
    #[serde(default)]
    pub error_message: String,
    /// The challenge, base64url.
    pub challenge: String,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// The RP id [default: the page's host].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rp_id: Option<String>,
    /// The user's credentials; empty: any discoverable one.
    #[serde(default)]
    pub allow_credentials: Vec<CredentialDescriptor>,
    /// `discouraged`, `preferred` or `required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_verification: Option<String>,
    /// Extensions.
    #[serde(default)]
    pub extensions: Map<String, Value>,
    /// The challenge as the server keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_challenge: Option<String>,
}

/// The token's registration (webauthn-simple-app `CredentialAttestation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialAttestation {
    /// The credential id, base64url.
    pub raw_id: String,
    /// The same.
    pub id: String,
    /// The attestation.
    pub response: AttestationResponse,
}

/// `response` of a [`CredentialAttestation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponse {
    /// CBOR `{fmt, attStmt, authData}`, base64url.
    pub attestation_object: String,
    /// The exact client data bytes, base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
}

/// The token's assertion (webauthn-simple-app `CredentialAssertion`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialAssertion {
    /// The credential id, base64url.
    pub raw_id: String,
    /// The same.
    pub id: String,
    /// The assertion.
    pub response: AssertionResponse,
}

/// `response` of a [`CredentialAssertion`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponse {
    /// Authenticator data, base64url.
    pub authenticator_data: String,
    /// The exact client data bytes, base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// The signature, base64url.
    pub signature: String,
    /// The user handle, base64url; `null` when the token did not return one.
    #[serde(default)]
    pub user_handle: Option<String>,
}

/// The answer to a result (webauthn-simple-app `ServerResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeResult {
    /// `ok` or `failed`.
    pub status: String,
    /// Why, when `failed`.
    #[serde(default)]
    pub error_message: String,
}

/// `status` of a successful exchange.
pub const STATUS_OK: &str = "ok";
/// `status` of a failed exchange.
pub const STATUS_FAILED: &str = "failed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rp_id_is_rp_id_on_the_wire_and_rpid_is_taken_too() {
        let wire = serde_json::to_value(EnrollRpId {
            rp_id: "aa.example".into(),
        })
        .unwrap();
        assert_eq!(wire, serde_json::json!({"rp_id": "aa.example"}));
        let camel: EnrollRpId = serde_json::from_str(r#"{"rpId":"aa.example"}"#).unwrap();
        assert_eq!(camel.rp_id, "aa.example");
    }

    #[test]
    fn the_webauthn_bodies_have_the_libraries_names() {
        let assertion = CredentialAssertion {
            raw_id: "AQ".into(),
            id: "AQ".into(),
            response: AssertionResponse {
                authenticator_data: "a".into(),
                client_data_json: "c".into(),
                signature: "s".into(),
                user_handle: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&assertion).unwrap(),
            serde_json::json!({"rawId":"AQ","id":"AQ","response":{"authenticatorData":"a",
                "clientDataJSON":"c","signature":"s","userHandle":null}})
        );
    }
}
