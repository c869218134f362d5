//! # client — the companion: logs a user on to NetIQ / OpenText Advanced Authentication with a
//! token (PROTOCOLS.md section 1; the U2F part follows sections 2.4 and 3.4)
//!
//! * [`http`]: JSON calls to the server, and what a bad reply looks like as an error.
//! * [`endpoint`]: registering an endpoint and opening an endpoint session (1.2).
//! * [`token`]: the token side: client data, AUTHENTICATE and REGISTER, the appId check.
//! * [`chains`]: reading the user's chains for an event and choosing one the client can complete.
//! * [`logon`]: the `do_logon` flow, through multi-method chains (1.1, 1.3).
//! * [`enroll`]: U2F and FIDO2 enrollment and saving the template, as AA's portal does it (1.9).
//! * [`webauthn`]: the browser's part of a WebAuthn ceremony: RP id check, client data, CTAP2.
//! * [`fido2`]: AA's `FIDO2:1` exchanges on the portal's paths (1.9).
//! * [`template`]: listing a user's templates and testing one, as the portal does (1.9).
//!
//! Every call made and every answer got is reported as a [`Step`], for `vu2f demo` and `--json`.
use std::time::Duration;

use serde::Serialize;

pub mod chains;
pub mod endpoint;
pub mod enroll;
pub mod fido2;
pub mod http;
pub mod logon;
pub mod template;
pub mod token;
pub mod webauthn;

pub use endpoint::{Endpoint, EndpointAccess};
pub use http::{AaHttp, TlsTrust};
pub use token::{OriginPolicy, TokenClient};

/// Why a logon or enrollment did not complete. Each is one line naming what the server (or the
/// token) said.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The options make no sense (an unparsable URL, an unreadable file).
    #[error("{0}")]
    Config(String),
    /// The server could not be reached.
    #[error("{call}: cannot reach the server: {}", one_line(detail))]
    Unreachable {
        /// `METHOD /path`.
        call: String,
        /// The cause.
        detail: String,
    },
    /// The server did not answer in time.
    #[error("{call}: no answer within {after:?}")]
    Timeout {
        /// `METHOD /path`.
        call: String,
        /// The timeout.
        after: Duration,
    },
    /// The server answered an HTTP error.
    #[error("{call}: HTTP {status}: {}", one_line(detail))]
    Http {
        /// `METHOD /path`.
        call: String,
        /// The HTTP status.
        status: u16,
        /// The msgid of AA's error body (`AUCORE-1063`), when it has one.
        msgid: Option<String>,
        /// The server's error body, summarised: `msgid reason: description`.
        detail: String,
    },
    /// The server answered something that is not what the call expects.
    #[error("{call}: bad reply: {}", one_line(detail))]
    BadReply {
        /// `METHOD /path`.
        call: String,
        /// What is wrong, naming the field.
        detail: String,
    },
    /// The server refused: `FAILED`, with its reason and msgid.
    #[error("{call}: {}{}{}: {}", one_line(status), reason.as_deref().map(|r| format!(" {}", one_line(r))).unwrap_or_default(), msgid.as_deref().map(|m| format!(" ({})", one_line(m))).unwrap_or_default(), one_line(msg))]
    Refused {
        /// `METHOD /path`.
        call: String,
        /// `FAILED`.
        status: String,
        /// The server's reason.
        reason: Option<String>,
        /// The server's msgid.
        msgid: Option<String>,
        /// The server's message.
        msg: String,
    },
    /// No chain of the event is one the client can complete, or the one asked for is not. The
    /// server's words in it are already made fit for one line.
    #[error("{0}")]
    NoChain(String),
    /// The server asks to sign for an appId the user did not allow.
    #[error("refusing to sign for appId {app_id:?}: it is neither the server's origin ({origin}) nor allowed with --appid")]
    AppIdNotAllowed {
        /// The appId asked for.
        app_id: String,
        /// The server's origin.
        origin: String,
    },
    /// The server asks for an RP id a page of the origin may not use (WebAuthn Level 2 §5.1.3).
    #[error("refusing RP id {rp_id:?} for origin {}: {why}", one_line(origin))]
    RpIdNotAllowed {
        /// The RP id asked for.
        rp_id: String,
        /// The origin claimed.
        origin: String,
        /// Why not.
        why: String,
    },
    /// The token failed or refused.
    #[error("token: {}", one_line(.0))]
    Token(String),
    /// Nobody touched the token in time (it kept answering `6985`).
    #[error("token: {operation}: nobody touched the token in time (6985)")]
    NoTouch {
        /// `REGISTER` or `AUTHENTICATE`.
        operation: &'static str,
    },
    /// None of the key handles the server offered belongs to the token.
    #[error("token: none of the {offered} key handles the server offered belongs to this token")]
    NotThisToken {
        /// How many were offered.
        offered: usize,
    },
}

/// Longest a server-supplied text may run in an error, in characters.
const MAX_QUOTED: usize = 240;

/// `text` fit for one line of a terminal: control characters (newlines, escape sequences) written
/// as escapes, and cut after [`MAX_QUOTED`] characters. Errors quote what a server said, and a
/// hostile or broken server must not be able to break the line or drive the terminal.
pub fn one_line(text: &str) -> String {
    let mut line = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_QUOTED {
            line.push('…');
            break;
        }
        if c.is_control() || is_bidi_control(c) {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// The invisible characters that reorder how a line reads (Trojan Source, CVE-2021-42574).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// One call to the server or the token, and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `POST /api/v1/logon`, or `token AUTHENTICATE`.
    pub request: String,
    /// `MORE_DATA`, `OK`, ..., or for the token what it did.
    pub status: String,
    /// The server's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The server's msgid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
}

impl Step {
    /// The step as one line for people.
    pub fn to_line(&self) -> String {
        let mut line = format!("{:<52} {}", one_line(&self.request), one_line(&self.status));
        if let Some(reason) = &self.reason {
            line.push(' ');
            line.push_str(&one_line(reason));
        }
        if let Some(msgid) = &self.msgid {
            line.push_str(&format!(" ({})", one_line(msgid)));
        }
        line
    }
}

/// Where steps go as they happen.
pub type StepSink<'a> = &'a mut (dyn FnMut(&Step) + Send);

/// What the server said of one step of a logon, an enrollment or a test.
pub(crate) struct Answered<'a> {
    /// `MORE_DATA`, `NEXT`, `OK` or `FAILED`.
    pub status: crate::aa::api::LogonStatus,
    /// The server's reason.
    pub reason: &'a Option<String>,
    /// The server's msgid.
    pub msgid: &'a Option<String>,
    /// The server's message.
    pub msg: &'a str,
}

/// Shows `answer` to `POST pattern` as a step, and turns a `FAILED` into
/// [`ClientError::Refused`] naming the call, the reason and the msgid.
pub(crate) fn report_answer(
    steps: StepSink<'_>,
    pattern: &str,
    answer: Answered<'_>,
) -> Result<(), ClientError> {
    let status = logon::status_name(answer.status);
    steps(&Step {
        request: format!("POST {pattern}"),
        status: status.clone(),
        reason: answer.reason.clone(),
        msgid: answer.msgid.clone(),
    });
    if answer.status == crate::aa::api::LogonStatus::Failed {
        return Err(ClientError::Refused {
            call: format!("POST {pattern}"),
            status,
            reason: answer.reason.clone(),
            msgid: answer.msgid.clone(),
            msg: answer.msg.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_in_an_error_stays_on_one_line() {
        let error = ClientError::Refused {
            call: "POST /api/v1/logon/1/do_logon".into(),
            status: "FAILED".into(),
            reason: Some("WRONG\nREASON".into()),
            msgid: Some("AUCORE-2007".into()),
            msg: "line one\r\n\u{1b}[31mred\u{202e}txet".into(),
        };
        let text = error.to_string();
        assert!(
            !text.chars().any(|c| c.is_control() || is_bidi_control(c)),
            "{text:?}"
        );
        assert_eq!(
            text,
            "POST /api/v1/logon/1/do_logon: FAILED WRONG\\nREASON (AUCORE-2007): \
             line one\\r\\n\\u{1b}[31mred\\u{202e}txet"
        );
    }

    #[test]
    fn a_long_server_text_is_cut() {
        let error = ClientError::BadReply {
            call: "GET /x".into(),
            detail: "é".repeat(10_000),
        };
        let text = error.to_string();
        assert_eq!(
            text.chars().count(),
            "GET /x: bad reply: ".len() + MAX_QUOTED + 1
        );
        assert!(text.ends_with("é…"));
    }

    #[test]
    fn a_step_shows_server_text_on_one_line() {
        let step = Step {
            request: "POST /api/v1/logon".into(),
            status: "MORE\nDATA".into(),
            reason: Some("\u{1b}]0;title\u{7}".into()),
            msgid: Some("AUTH\r1".into()),
        };
        let line = step.to_line();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(
            line.ends_with("MORE\\nDATA \\u{1b}]0;title\\u{7} (AUTH\\r1)"),
            "{line:?}"
        );
    }
}
