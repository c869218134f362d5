//! Bodies of the AA logon flow (PROTOCOLS.md sections 1.2 to 1.4), as the documentation's samples
//! show them. Unknown fields are kept in `extra`, so a response read and written again loses
//! nothing (the user attributes of an `OK` differ between deployments).
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `status` of a logon response (PROTOCOLS.md 1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogonStatus {
    /// The method needs another round (`PROCESS_STARTED`, `U2F_WAITING_AUTH_RESPONSE`).
    MoreData,
    /// A method passed; the chain goes on with `/next`.
    Next,
    /// The chain is complete: `login_session_id` is set.
    Ok,
    /// The method failed; a new logon process must be started.
    Failed,
}

/// A chain of methods (PROTOCOLS.md 1.3, "Chain object"). Only `name` and `methods` are required
/// when reading one: servers differ in the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    /// Chain id, 32 lowercase hex.
    #[serde(default)]
    pub id_hex: String,
    /// Tenant id.
    #[serde(default)]
    pub tenant_id: String,
    /// Whether the chain is trusted (`null` in the samples).
    #[serde(default)]
    pub is_trusted: Option<bool>,
    /// Whether the chain is enabled.
    #[serde(default = "enabled")]
    pub is_enabled: bool,
    /// Name.
    pub name: String,
    /// Short name.
    #[serde(default)]
    pub short_name: String,
    /// Method ids, in order (`U2F:1`, `PASSWORD:1`, ...).
    pub methods: Vec<String>,
    /// Position in the event's list.
    #[serde(default)]
    pub position: i64,
    /// Whether it applies to the endpoint owner.
    #[serde(default)]
    pub apply_for_ep_owner: bool,
    /// Image name.
    #[serde(default)]
    pub image_name: String,
    /// Required chain id.
    #[serde(default)]
    pub required_chain_id_hex: Option<String>,
    /// Grace period.
    #[serde(default)]
    pub grace_period: Option<Value>,
    /// MFA tags.
    #[serde(default)]
    pub mfa_tags: Vec<Value>,
    /// Risk level (`NONE`).
    #[serde(default)]
    pub risk_level: String,
}

fn enabled() -> bool {
    true
}

/// The answer of the chains call (PROTOCOLS.md 1.2, "Read chains"; its query is in
/// [`super::portal::ChainsQuery`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainList {
    /// The user's chains for the event, in the server's order.
    pub chains: Vec<Chain>,
}

/// One U2F sign request (U2F JS API `SignRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignRequest {
    /// `U2F_V2`.
    pub version: String,
    /// The appId whose SHA-256 is the application parameter.
    pub app_id: String,
    /// The key handle, base64url without padding.
    pub key_handle: String,
    /// The challenge, base64url without padding; goes verbatim into the client data.
    pub challenge: String,
}

/// One U2F sign response (U2F JS API `SignResponse`), base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignResponse {
    /// The authentication response bytes: flags ‖ counter ‖ signature.
    pub signature_data: String,
    /// The exact client data bytes that were hashed.
    pub client_data: String,
    /// The key handle that signed.
    pub key_handle: String,
}

/// The WebAuthn view of the same challenge, sent alongside `signRequests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebauthChallenge {
    /// 32 random bytes, lowercase hex (not the U2F challenge).
    pub challenge: String,
    /// The credentials, ids in lowercase hex of the key handles.
    pub allow_credentials: Vec<AllowCredential>,
    /// `discouraged`.
    pub user_verification: String,
    /// Extensions (`appid`).
    pub extensions: Map<String, Value>,
}

/// An entry of `allowCredentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowCredential {
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The key handle, lowercase hex.
    pub id: String,
    /// `["usb"]`.
    pub transports: Vec<String>,
}

/// The common logon response object (PROTOCOLS.md 1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogonResponse {
    /// Where the logon stands.
    pub status: LogonStatus,
    /// Text for people.
    pub msg: String,
    /// Machine reason (`PROCESS_STARTED`, `U2F_WAITING_AUTH_RESPONSE`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `AUCORE-nnnn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// The logon process this answer belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logon_process_id: Option<String>,
    /// The method being run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_method: Option<String>,
    /// Methods passed so far.
    #[serde(default)]
    pub completed_methods: Vec<String>,
    /// The U2F sign requests, one per enrolled authenticator.
    #[serde(
        rename = "signRequests",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sign_requests: Vec<SignRequest>,
    /// The WebAuthn view of the challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauth_challenge: Option<WebauthChallenge>,
    /// The session of a completed logon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_session_id: Option<String>,
    /// The chain that completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_chain: Option<Chain>,
    /// The chains of the event.
    #[serde(default)]
    pub chains: Vec<Chain>,
    /// Every other field (user attributes, event fields, ...), kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `POST /api/v1/logon/{id}/do_logon`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoLogonRequest {
    /// The method's answer; absent when gathering the sign request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<MethodResponse>,
    /// The endpoint session.
    pub endpoint_session_id: String,
}

/// The `response` of a do_logon: what the method needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MethodResponse {
    /// U2F: the token's sign response.
    U2f {
        /// The sign response.
        #[serde(rename = "signResponse")]
        sign_response: SignResponse,
    },
    /// PASSWORD: the password.
    Password {
        /// The password.
        password: String,
    },
}

/// The body of `POST /api/v1/logon` (PROTOCOLS.md 1.2, "Start logon").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartLogonRequest {
    /// The first method of the chain (`U2F:1`, `PASSWORD:1`).
    pub method_id: String,
    /// The user, as the repository names it.
    pub user_name: String,
    /// The event (`Search Card`, `Authenticators Management`, ...).
    pub event: String,
    /// The endpoint session.
    pub endpoint_session_id: String,
}

/// The body of `POST /api/v1/logon/{id}/next` (PROTOCOLS.md 1.1, step 8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextMethodRequest {
    /// The next method of the chain.
    pub method_id: String,
    /// The endpoint session.
    pub endpoint_session_id: String,
}

/// The credentials of an administrator, sent in the body for endpoint management.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthData {
    /// `PASSWORD:1`.
    pub method_id: String,
    /// `REPO\user`, or a local name.
    pub user_name: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for AuthData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthData")
            .field("method_id", &self.method_id)
            .field("user_name", &self.user_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The body of `POST /api/v1/endpoints` (PROTOCOLS.md 1.2, "Register endpoint").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterEndpointRequest {
    /// Name of the endpoint.
    pub name: String,
    /// Endpoint type (3 in the documentation's sample).
    pub typ: i64,
    /// Description.
    pub desc: String,
    /// Whether the endpoint is trusted.
    pub is_trusted: bool,
    /// Tenant (`TOP`).
    pub tenant_name: String,
    /// The administrator's credentials.
    pub auth_data: AuthData,
}

/// The body of `DELETE /api/v1/endpoints/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteEndpointRequest {
    /// The administrator's credentials.
    pub auth_data: AuthData,
}

/// An endpoint's id and secret: the answer of `POST /api/v1/endpoints`, and what a client keeps.
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCredentials {
    /// Endpoint id, 32 lowercase hex.
    pub id: String,
    /// Endpoint secret.
    pub secret: String,
}

impl std::fmt::Debug for EndpointCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointCredentials")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The body of `POST /api/v1/endpoints/{id}/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateSessionRequest {
    /// A string chosen by the client.
    pub salt: String,
    /// [`super::endpoint_secret_hash`] of the endpoint id, secret and salt.
    pub endpoint_secret_hash: String,
    /// Optional data of the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_data: Option<Value>,
}

/// The answer of `POST /api/v1/endpoints/{id}/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSession {
    /// The endpoint session, sent with every logon call.
    pub endpoint_session_id: String,
}
