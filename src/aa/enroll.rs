//! U2F enrollment through the API: **inferred** (PROTOCOLS.md 1.2, "U2F enrollment via the API —
//! not documented in any public source found"). Its paths and field names live here and only here,
//! so that they can be corrected in one place against a real server; the template calls around it
//! (`/users`, `/templates`) follow public client code.
//!
//! ```text
//!  POST /api/v1/enroll                        {method_id:"U2F:1", login_session_id}    -> enroll_process_id
//!  POST /api/v1/enroll/{id}/do_enroll         {login_session_id, response:{}}          -> MORE_DATA, registerRequests, signRequests
//!  (token REGISTER)
//!  POST /api/v1/enroll/{id}/do_enroll         {login_session_id, response:{registerResponse}} -> OK
//!  POST /api/v1/users/{user_id}/templates     {login_session_id, enroll_process_id, …} -> auth_t_id
//! ```
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::api::{LogonStatus, SignRequest};

/// The body of `POST /api/v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartEnrollRequest {
    /// `U2F:1`.
    pub method_id: String,
    /// The session of a logon to an event that permits enrollment.
    pub login_session_id: String,
}

/// The answer of `POST /api/v1/enroll`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollStarted {
    /// The enroll process.
    pub enroll_process_id: String,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One U2F register request (U2F JS API `RegisterRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// `U2F_V2`.
    pub version: String,
    /// The appId whose SHA-256 is the application parameter.
    pub app_id: String,
    /// The challenge, base64url without padding; goes verbatim into the client data.
    pub challenge: String,
}

/// One U2F register response (U2F JS API `RegisterResponse`), base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// `U2F_V2`.
    pub version: String,
    /// The registration response bytes (without the status word).
    pub registration_data: String,
    /// The exact client data bytes that were hashed.
    pub client_data: String,
}

/// The `response` of a `do_enroll`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The token's registration; absent when asking for the register request.
    #[serde(
        rename = "registerResponse",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub register_response: Option<RegisterResponse>,
}

/// The body of `POST /api/v1/enroll/{id}/do_enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoEnrollRequest {
    /// What the method needs.
    pub response: EnrollResponse,
    /// The login session.
    pub login_session_id: String,
}

/// The answer of a `do_enroll`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoEnrollResponse {
    /// Where the enrollment stands.
    pub status: LogonStatus,
    /// Text for people.
    pub msg: String,
    /// Machine reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `AUCORE-nnnn`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// What to register.
    #[serde(
        rename = "registerRequests",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub register_requests: Vec<RegisterRequest>,
    /// The handles already enrolled: a token that knows one must not register again.
    #[serde(
        rename = "signRequests",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sign_requests: Vec<SignRequest>,
}

/// The body of `POST /api/v1/users/{user_id}/templates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveTemplateRequest {
    /// The login session.
    pub login_session_id: String,
    /// The enroll process whose registration is saved.
    pub enroll_process_id: String,
    /// Category (empty: the default).
    pub category_id: String,
    /// Comment shown to administrators.
    pub comment: String,
}

/// The answer of `POST /api/v1/users/{user_id}/templates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSaved {
    /// The new template.
    pub auth_t_id: String,
}

/// One template of `GET /api/v1/users/{user_id}/templates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSummary {
    /// Template id.
    pub id: String,
    /// `U2F:1`.
    pub method_id: String,
    /// Comment.
    #[serde(default)]
    pub comment: String,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `GET /api/v1/users/{user_id}/templates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateList {
    /// The templates.
    pub templates: Vec<TemplateSummary>,
}
