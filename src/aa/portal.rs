//! The calls AA's official documentation does not describe, shaped as **AA's own end-user portal**
//! sends them (PROTOCOLS.md 1.9, tagged `[CODE portal]`: read from a public copy of the portal's
//! JavaScript, not from a specification). Every such shape lives here and only here, so that it
//! can be corrected in one place against a real server.
//!
//! ```text
//!  U2F enrollment
//!  POST /api/v1/enroll                     {method_id:"U2F:1", login_session_id}       -> enroll_process_id
//!  POST /api/v1/enroll/{id}/do_enroll      {login_session_id, response:{appId, userId}} -> MORE_DATA,
//!                                                                  registerRequests, signRequests
//!  (token REGISTER)
//!  POST /api/v1/enroll/{id}/do_enroll      {login_session_id, response:{registerResponse:
//!            {registrationData, clientData, appId, challenge, version}}}               -> OK
//!  POST /api/v1/users/{user_id}/templates  {login_session_id, enroll_process_id, category_id, comment}
//!                                                                                      -> auth_t_id
//!  DELETE /api/v1/enroll/{id}?login_session_id=…                                      (abort)
//!
//!  Testing an enrolled template
//!  POST /api/v1/users/{uid}/templates/{tid}/test  {login_session_id, response:{app_id}}
//!                                                   -> MORE_DATA, signRequests, logon_process_id
//!  POST /api/v1/users/{uid}/templates/{tid}/test  {login_session_id, logon_process_id,
//!                                                   response:{signResponse}}           -> OK | FAILED
//!
//!  Chains of a user for an event
//!  GET  /api/v1/logon/chains?user_name=…&is_trusted=true&event=…&endpoint_session_id=…  (portal)
//!  POST /api/v1/logon/chains?username=…&application=…&is_trusted=true&endpoint_session_id=… (PWM)
//!                                                                          -> {chains:[chain…]}
//! ```
//!
//! Key case, as the portal's fetch layer makes it: it turns body and query keys into snake_case
//! unless a call asks to keep them. The U2F enrollment rounds and the second test round keep
//! camelCase (`appId`, `userId`, `registerResponse`, `signResponse`); the first test round does not,
//! so its `appId` is sent as `app_id` (the emulator takes both spellings).
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::api::{LogonStatus, SignRequest, SignResponse};

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

/// The token's registration as the portal sends it: the U2F JS API `RegisterResponse`
/// (`registrationData`, `clientData`, base64url without padding) with `appId`, `challenge` and
/// `version` copied from the register request that was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// The registration response bytes (without the status word).
    pub registration_data: String,
    /// The exact client data bytes that were hashed.
    pub client_data: String,
    /// The register request's appId.
    pub app_id: String,
    /// The register request's challenge.
    pub challenge: String,
    /// The register request's version (`U2F_V2`).
    pub version: String,
}

/// The first round's `response`: who enrolls, for which appId.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollBegin {
    /// The server's origin, `scheme://host[:port]` without a trailing slash.
    pub app_id: String,
    /// The AA user id of the user who enrolls.
    pub user_id: String,
}

/// The second round's `response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRegistered {
    /// The token's registration.
    #[serde(rename = "registerResponse")]
    pub register_response: RegisterResponse,
}

/// The body of `POST /api/v1/enroll/{id}/do_enroll`, `response` being [`EnrollBegin`] or
/// [`EnrollRegistered`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoEnrollRequest<R> {
    /// What the method needs.
    pub response: R,
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

/// The query of `DELETE /api/v1/enroll/{id}` (abort) and of the template calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSessionQuery {
    /// The login session.
    pub login_session_id: String,
}

/// The body of `POST /api/v1/users/{user_id}/templates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveTemplateRequest {
    /// The login session.
    pub login_session_id: String,
    /// The enroll process whose registration is saved.
    pub enroll_process_id: String,
    /// Category (empty: the default). A user has at most one template of a method per category.
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
    /// Category (empty: the default).
    #[serde(default)]
    pub category_id: String,
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

/// The first test round's `response`: the page's origin as the U2F appId. The portal's fetch layer
/// sends it as `app_id`; `appId` is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestBegin {
    /// The server's origin.
    #[serde(rename = "app_id", alias = "appId")]
    pub app_id: String,
}

/// The second test round's `response`: the token's signature, as in a logon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSigned {
    /// The sign response.
    #[serde(rename = "signResponse")]
    pub sign_response: SignResponse,
}

/// The body of `POST /api/v1/users/{uid}/templates/{tid}/test`, `response` being [`TestBegin`]
/// or [`TestSigned`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestTemplateRequest<R> {
    /// The login session of the template's owner.
    pub login_session_id: String,
    /// The test's process, from the first round's answer; absent in the first round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logon_process_id: Option<String>,
    /// What the method needs.
    pub response: R,
}

/// The query of the chains call, in the portal's form (`GET`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainsQuery {
    /// The user, as typed at the logon (`user_name`; PWM's form says `username`).
    #[serde(alias = "username")]
    pub user_name: String,
    /// The event.
    #[serde(default)]
    pub event: Option<String>,
    /// `true`.
    #[serde(default)]
    pub is_trusted: Option<String>,
    /// PWM's form names the application (`NAM`) instead of the event.
    #[serde(default)]
    pub application: Option<String>,
    /// The endpoint session.
    pub endpoint_session_id: String,
}
