//! Request-level errors (PROTOCOLS.md 1.5): `{"status":"error","errors":[{name, description,
//! location}]}` with a 4xx status, for unknown ids, bad credentials and malformed JSON. A failed
//! *method* is not an error: it is an HTTP 200 `FAILED` logon object.
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::aa::api::{ErrorBody, ErrorItem};

/// An error answered as an AA error body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    item: ErrorItem,
}

impl ApiError {
    fn new(status: StatusCode, name: &str, description: impl Into<String>, location: &str) -> Self {
        Self {
            status,
            item: ErrorItem {
                name: name.into(),
                description: description.into(),
                location: location.into(),
            },
        }
    }

    /// 400: a field of the body is wrong.
    pub fn bad_field(name: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, name, description, "body")
    }

    /// 400: an id in the path names nothing (a process that ended, a typo).
    pub fn unknown_in_path(name: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, name, description, "path")
    }

    /// 401: credentials were wrong.
    pub fn unauthorized(name: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, name, description, "body")
    }

    /// 403: allowed credentials, not allowed here.
    pub fn forbidden(name: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, name, description, "body")
    }

    /// 404: the object does not exist.
    pub fn not_found(name: &str, description: impl Into<String>, location: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, name, description, location)
    }

    /// 409: the object conflicts with one that exists.
    pub fn conflict(name: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, name, description, "body")
    }

    /// 503: too many processes are open; the client should come back later.
    pub fn busy(name: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, name, description, "server")
    }

    /// 500: the emulator's own storage failed.
    pub fn storage(error: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            error.to_string(),
            "server",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: "error".into(),
            errors: vec![self.item],
        };
        (self.status, Json(body)).into_response()
    }
}

/// A JSON body whose every failure (not JSON, a missing field, a wrong type) is an [`ApiError`]
/// naming the field. The `Content-Type` is not insisted on.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "body", e.body_text(), "body"))?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut deserializer)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                let name = if path == "." || path == "?" {
                    "body".into()
                } else {
                    path
                };
                ApiError::bad_field(&name, e.into_inner().to_string())
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
            .map_err(|e| ApiError {
                status: StatusCode::BAD_REQUEST,
                item: ErrorItem {
                    name: "querystring".into(),
                    description: e.body_text(),
                    location: "querystring".into(),
                },
            })
    }
}

/// The answer to a path no route matches.
pub async fn no_route() -> ApiError {
    ApiError::not_found("path", "no such API call", "path")
}
