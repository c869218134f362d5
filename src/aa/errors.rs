//! AA's request errors (PROTOCOLS.md 1.5 and 1.9): what a server answers, with a 4xx status, when a
//! request cannot be served at all (an unknown id, an expired session, a malformed body). A
//! *method* that fails is not one of these: it is an HTTP 200 `FAILED` (see [`super::outcome`]).
//!
//! ```text
//!  HTTP 433
//!  {"status":"error",
//!   "errors":[{"location":"server","name":"AuError","msgid":"AUCORE-1063",
//!              "description":"Endpoint session is not found"}],
//!   "reason":"ENDPOINT_SESSION_NOT_FOUND"}
//! ```
//!
//! The catalogue below gives, for each error, the HTTP status and msgid the portal's code shows
//! (`[CODE portal]`); the reason is documented only for `USER_NOT_FOUND`, the others are the
//! emulator's own words, as are the `VU2FSIM-` msgids of errors the portal never showed.
use serde::{Deserialize, Serialize};

/// `name` of every error item AA answers.
pub const AU_ERROR: &str = "AuError";

/// One kind of request error: its status, msgid, reason and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AaError {
    /// The HTTP status.
    pub http: u16,
    /// `AUCORE-nnnn` as AA numbers it, or `VU2FSIM-nnnn` where AA's was not seen.
    pub msgid: &'static str,
    /// The machine reason.
    pub reason: &'static str,
    /// The text for people.
    pub description: &'static str,
}

const fn error(
    http: u16,
    msgid: &'static str,
    reason: &'static str,
    description: &'static str,
) -> AaError {
    AaError {
        http,
        msgid,
        reason,
        description,
    }
}

/// 400 AUCORE-1056: no such user (documented by the portal, reason included).
pub const USER_NOT_FOUND: AaError =
    error(400, "AUCORE-1056", "USER_NOT_FOUND", "User is not found");
/// 433 AUCORE-1063: the endpoint session is unknown or expired (the portal opens a new one).
pub const ENDPOINT_SESSION_NOT_FOUND: AaError = error(
    433,
    "AUCORE-1063",
    "ENDPOINT_SESSION_NOT_FOUND",
    "Endpoint session is not found",
);
/// 434 AUCORE-1066: the login session is unknown.
pub const LOGIN_SESSION_NOT_FOUND: AaError = error(
    434,
    "AUCORE-1066",
    "LOGIN_SESSION_NOT_FOUND",
    "Login session is not found",
);
/// 434 AUCORE-1067: the login session has expired.
pub const LOGIN_SESSION_EXPIRED: AaError = error(
    434,
    "AUCORE-1067",
    "LOGIN_SESSION_EXPIRED",
    "Login session is expired",
);
/// 444 AUCORE-1001: the logon process is unknown or finished.
pub const LOGON_PROCESS_NOT_FOUND: AaError = error(
    444,
    "AUCORE-1001",
    "LOGON_PROCESS_NOT_FOUND",
    "Logon process is not found",
);
/// 400 AUCORE-1015: the enroll process is unknown, finished or expired.
pub const ENROLL_PROCESS_NOT_FOUND: AaError = error(
    400,
    "AUCORE-1015",
    "PROCESS_NOT_FOUND_OR_EXPIRED",
    "Enroll process is not found or expired",
);
/// 409 AUCORE-3047: the user has a template of this method in this category already.
pub const METHOD_ALREADY_ENROLLED: AaError = error(
    409,
    "AUCORE-3047",
    "METHOD_ALREADY_ENROLLED",
    "The method is already enrolled in this category",
);

/// The emulator's own, for requests AA's portal never showed failing.
pub mod emulator {
    use super::{error, AaError};

    /// 400: the body, path or query is malformed or misses a field.
    pub const BAD_REQUEST: AaError = error(
        400,
        "VU2FSIM-0400",
        "BAD_REQUEST",
        "The request is malformed",
    );
    /// 400: the request is well-formed but not what this step of the process takes.
    pub const WRONG_STEP: AaError = error(
        400,
        "VU2FSIM-0409",
        "WRONG_STEP",
        "The request does not fit the process",
    );
    /// 401: an administrator's credentials or an endpoint's secret are wrong.
    pub const UNAUTHORIZED: AaError = error(
        401,
        "VU2FSIM-0401",
        "UNAUTHORIZED",
        "The credentials are wrong",
    );
    /// 403: the credentials are right but do not allow this.
    pub const FORBIDDEN: AaError = error(
        403,
        "VU2FSIM-0403",
        "FORBIDDEN",
        "The request is not allowed",
    );
    /// 404: no such object (endpoint, template) or no such call.
    pub const NOT_FOUND: AaError = error(404, "VU2FSIM-0404", "NOT_FOUND", "Not found");
    /// 409: the authenticator is enrolled already (for this or another user).
    pub const AUTHENTICATOR_ENROLLED: AaError = error(
        409,
        "VU2FSIM-0410",
        "AUTHENTICATOR_ALREADY_ENROLLED",
        "This authenticator is already enrolled",
    );
    /// 413: the body is larger than the emulator takes.
    pub const TOO_LARGE: AaError = error(
        413,
        "VU2FSIM-0413",
        "REQUEST_TOO_LARGE",
        "The request body is too large",
    );
    /// 503: too many processes are open.
    pub const BUSY: AaError = error(503, "VU2FSIM-0503", "BUSY", "Too many open processes");
    /// 500: the emulator's storage failed.
    pub const STORAGE: AaError = error(500, "VU2FSIM-0500", "STORAGE", "Storage failed");
}

/// A request-level error body: `{"status":"error","errors":[…],"reason":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `error`.
    pub status: String,
    /// What was wrong.
    pub errors: Vec<ErrorItem>,
    /// The machine reason (`USER_NOT_FOUND`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One entry of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorItem {
    /// Where the fault lies: `server`, or the part of the request (`body`, `path`, `querystring`).
    #[serde(default)]
    pub location: String,
    /// `AuError` (older servers name the field here).
    pub name: String,
    /// `AUCORE-nnnn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// What is wrong.
    pub description: String,
}

impl ErrorBody {
    /// The body AA answers for `kind`, its text made precise by `detail` when given.
    pub fn new(kind: AaError, location: &str, detail: Option<String>) -> Self {
        Self {
            status: "error".into(),
            errors: vec![ErrorItem {
                location: location.into(),
                name: AU_ERROR.into(),
                msgid: Some(kind.msgid.into()),
                description: detail.unwrap_or_else(|| kind.description.into()),
            }],
            reason: Some(kind.reason.into()),
        }
    }

    /// One line for people: `msgid reason: description`, or `name: description` for an item
    /// without msgid; items joined with `; `.
    pub fn summary(&self) -> String {
        let mut reason = self.reason.as_deref();
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|e| {
                let mut line = String::new();
                if let Some(msgid) = &e.msgid {
                    line.push_str(msgid);
                }
                if let Some(reason) = reason.take() {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(reason);
                }
                if line.is_empty() || e.name != AU_ERROR {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(&e.name);
                }
                format!("{line}: {}", e.description)
            })
            .collect();
        parts.join("; ")
    }

    /// The msgid of the first item.
    pub fn msgid(&self) -> Option<&str> {
        self.errors.first().and_then(|e| e.msgid.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portal's own mock data (PROTOCOLS.md 1.9), read and summarised.
    #[test]
    fn the_portal_sample_reads_as_one_line() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"status":"error","errors":[{"location":"server","name":"AuError",
                "msgid":"AUCORE-1056","description":"User is not found"}],"reason":"USER_NOT_FOUND"}"#,
        )
        .unwrap();
        assert_eq!(body, ErrorBody::new(USER_NOT_FOUND, "server", None));
        assert_eq!(
            body.summary(),
            "AUCORE-1056 USER_NOT_FOUND: User is not found"
        );
    }

    #[test]
    fn an_older_body_names_its_field() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"status":"error","errors":[{"name":"salt","description":"must not be empty","location":"body"}]}"#,
        )
        .unwrap();
        assert_eq!(body.summary(), "salt: must not be empty");
    }
}
