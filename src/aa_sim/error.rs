//! Request-level errors as AA answers them (PROTOCOLS.md 1.5 and 1.9, [`crate::aa::errors`]):
//! `{"status":"error","errors":[{location, name:"AuError", msgid, description}],"reason"}` with
//! AA's HTTP status for each kind (433 endpoint session, 434 login session, 444 logon process, …).
//! A failed *method* is not an error: it is an HTTP 200 `FAILED` logon object.
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::aa::errors::{emulator, AaError, ErrorBody};

/// An error answered as an AA error body.
#[derive(Debug)]
pub struct ApiError {
    kind: AaError,
    location: &'static str,
    detail: Option<String>,
}

impl ApiError {
    /// `kind`, found by the server itself (`location: server`), in AA's own words.
    pub fn aa(kind: AaError) -> Self {
        Self {
            kind,
            location: "server",
            detail: None,
        }
    }

    /// `kind`, with `detail` in place of its standard description.
    pub fn with(kind: AaError, location: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            location,
            detail: Some(detail.into()),
        }
    }

    /// 400: the field `name` of the body is wrong or missing.
    pub fn bad_field(name: &str, description: impl std::fmt::Display) -> Self {
        Self::with(
            emulator::BAD_REQUEST,
            "body",
            format!("{name}: {description}"),
        )
    }

    /// 400: the request is sound but not what this step of the process takes.
    pub fn wrong_step(description: impl Into<String>) -> Self {
        Self::with(emulator::WRONG_STEP, "body", description)
    }

    /// 401: credentials (`name`) were wrong.
    pub fn unauthorized(name: &str, description: impl std::fmt::Display) -> Self {
        Self::with(
            emulator::UNAUTHORIZED,
            "body",
            format!("{name}: {description}"),
        )
    }

    /// 403: allowed credentials, not allowed here.
    pub fn forbidden(name: &str, description: impl std::fmt::Display) -> Self {
        Self::with(
            emulator::FORBIDDEN,
            "body",
            format!("{name}: {description}"),
        )
    }

    /// 404: the object `name` does not exist.
    pub fn not_found(
        name: &str,
        description: impl std::fmt::Display,
        location: &'static str,
    ) -> Self {
        Self::with(
            emulator::NOT_FOUND,
            location,
            format!("{name}: {description}"),
        )
    }

    /// 503: too many processes are open; the client should come back later.
    pub fn busy(description: impl Into<String>) -> Self {
        Self::with(emulator::BUSY, "server", description)
    }

    /// 500: the emulator's own storage failed.
    pub fn storage(error: impl std::fmt::Display) -> Self {
        Self::with(emulator::STORAGE, "server", error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody::new(self.kind, self.location, self.detail);
        (status, Json(body)).into_response()
    }
}

/// A JSON body whose every failure (not JSON, a missing field, a wrong type) is an [`ApiError`]
/// naming the field. The `Content-Type` is not insisted on.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                emulator::TOO_LARGE
            } else {
                emulator::BAD_REQUEST
            };
            ApiError::with(kind, "body", e.body_text())
        })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut deserializer)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." || path == "?" {
                    ApiError::with(emulator::BAD_REQUEST, "body", inner.to_string())
                } else {
                    ApiError::bad_field(&path, inner)
                }
            })
    }
}

/// A query string whose failures are an [`ApiError`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| ApiError::with(emulator::BAD_REQUEST, "querystring", e.body_text()))
    }
}

/// The answer to a path no route matches.
pub async fn no_route() -> ApiError {
    ApiError::not_found("path", "no such API call", "path")
}
