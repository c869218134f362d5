//! The API's answers as WebDriver shapes them (W3C WebDriver §6.6 "Handling errors", §6.5
//! "Processing model": a success is `{"value": …}`, an error an HTTP status with
//! `{"value": {"error": CODE, "message": TEXT}}`):
//!
//! ```text
//!  code                     status  when
//!  invalid argument          400    malformed JSON, a missing or mistyped field (named in the
//!                                   message), a value vu2f does not take
//!  unauthorized              401    no `Authorization: Bearer TOKEN`, or another token (vu2f's)
//!  no such authenticator     404    no served authenticator has that id (WebDriver says
//!                                   invalid argument here; vu2f tells the two apart)
//!  unknown command           404    no such resource
//!  unknown method            405    the resource takes another method
//!  unsupported operation     500    asked of an authenticator that cannot (an extension it lacks)
//!  unknown error             500    the store, the kernel or a device failed
//! ```
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

/// What kind of error, by WebDriver's error codes (and vu2f's `no such authenticator` and
/// `unauthorized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or asks for a value vu2f does not take.
    InvalidArgument,
    /// The bearer token is missing or wrong.
    Unauthorized,
    /// No served authenticator has that id.
    NoSuchAuthenticator,
    /// No such resource.
    UnknownCommand,
    /// The resource takes another method.
    UnknownMethod,
    /// The authenticator cannot do that.
    UnsupportedOperation,
    /// Something failed on the way.
    UnknownError,
}

impl ErrorCode {
    /// The code as the `error` member spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid argument",
            Self::Unauthorized => "unauthorized",
            Self::NoSuchAuthenticator => "no such authenticator",
            Self::UnknownCommand => "unknown command",
            Self::UnknownMethod => "unknown method",
            Self::UnsupportedOperation => "unsupported operation",
            Self::UnknownError => "unknown error",
        }
    }

    /// The HTTP status that carries it.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NoSuchAuthenticator | Self::UnknownCommand => StatusCode::NOT_FOUND,
            Self::UnknownMethod => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedOperation | Self::UnknownError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: its code and a message that names what was wrong (the field, the id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

/// What a route answers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `invalid argument`: say which field, and what it takes.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// `no such authenticator` for `id`.
    pub fn no_such_authenticator(id: &str) -> Self {
        Self::new(
            ErrorCode::NoSuchAuthenticator,
            format!("no authenticator {id:?} is served"),
        )
    }

    /// `unsupported operation`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedOperation, message)
    }

    /// `unknown error`: something failed on the way.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnknownError, message)
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"value": {"error": self.code.as_str(), "message": self.message}});
        let mut response = (self.code.status(), Json(body)).into_response();
        if self.code == ErrorCode::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A success: `{"value": …}` (`null` for `()`).
pub struct Answer<T>(pub T);

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        Json(json!({"value": self.0})).into_response()
    }
}

/// Reads a request body as `T`, with the error naming the field that was wrong: `invalid
/// argument` for malformed JSON, a missing, unknown or mistyped field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let not_json =
        |e: &serde_json::Error| ApiError::invalid_argument(format!("the body is not JSON: {e}"));
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            not_json(&inner)
        } else if path == "." {
            ApiError::invalid_argument(inner.to_string())
        } else {
            ApiError::invalid_argument(format!("field `{path}`: {inner}"))
        }
    })?;
    reader.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Probe {
        #[allow(dead_code)]
        is_user_verified: bool,
    }

    #[test]
    fn body_errors_name_the_field() {
        let wrong = parse_body::<Probe>(br#"{"isUserVerified": "yes"}"#).unwrap_err();
        assert_eq!(wrong.code(), ErrorCode::InvalidArgument);
        assert!(
            wrong
                .message()
                .starts_with("field `isUserVerified`: invalid type"),
            "{wrong}"
        );
        let missing = parse_body::<Probe>(b"{}").unwrap_err();
        assert!(
            missing.message().contains("missing field `isUserVerified`"),
            "{missing}"
        );
        let unknown = parse_body::<Probe>(br#"{"isUserVerified": true, "x": 1}"#).unwrap_err();
        assert!(unknown.message().contains("unknown field `x`"), "{unknown}");
        let broken = parse_body::<Probe>(br#"{"isUserVerified": tr"#).unwrap_err();
        assert!(
            broken.message().starts_with("the body is not JSON"),
            "{broken}"
        );
        let trailing = parse_body::<Probe>(br#"{"isUserVerified": true} x"#).unwrap_err();
        assert!(
            trailing.message().starts_with("the body is not JSON"),
            "{trailing}"
        );
        assert!(parse_body::<Probe>(br#"{"isUserVerified": true}"#).is_ok());
    }
}
