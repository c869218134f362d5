//! The FIDO U2F API of AA's local Device Service (PROTOCOLS.md 1.6), served by vu2f tokens:
//! `POST /api/v1/fidou2f/sign`, `POST /api/v1/fidou2f/register`, `GET /api/v1/fidou2f/abort`,
//! on HTTPS at 127.0.0.1:8441 by default like the vendor's. AA's web pages, and any HTTP load
//! tool, get signatures from vu2f tokens through it.
//!
//! `sign` answers a `SignResponse` that goes into `do_logon` unchanged. `register` answers the
//! `registerResponse` of AA's portal (PROTOCOLS.md 1.9): `registrationData` and `clientData`, with
//! the register request's `appId`, `challenge` and `version`, so that it too goes into
//! `do_enroll` unchanged (the portal adds those three itself; here they are already there).
//!
//! Errors are `{"errorCode": n, "errorMessage": "…"}` with the U2F JS API's numbers: 1 other,
//! 2 bad request (the page's origin is not the App ID's), 3 configuration unsupported, 4 device
//! ineligible (no token knows the handle, or the token is already registered), 5 timeout. They
//! come with HTTP 200, as the JS API delivers them (inferred: the vendor's status is not
//! documented). `?token=NAME` (a vu2f extension) picks the token; without it, `sign` asks every
//! token and `register` uses the first served. The tokens are serve's as they are at each
//! request: those the automation API adds or removes at run time too ([`ServedTokens`]).
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::SharedToken;
use crate::aa::api::SignRequest;
use crate::aa::portal::RegisterRequest;
use crate::client::{ClientError, OriginPolicy, TokenClient};

/// The vendor's address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8441";

/// How long to wait for a touch.
const TOUCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The U2F JS API error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Something else.
    Other = 1,
    /// The request is malformed or comes from another origin.
    BadRequest = 2,
    /// Not supported.
    ConfigurationUnsupported = 3,
    /// No token can answer (unknown handle, already registered).
    DeviceIneligible = 4,
    /// Nobody touched the token in time.
    Timeout = 5,
}

/// An error answer.
pub struct ServiceError(ErrorCode, String);

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        Json(json!({"errorCode": self.0 as u8, "errorMessage": self.1})).into_response()
    }
}

impl From<ClientError> for ServiceError {
    fn from(error: ClientError) -> Self {
        let code = match &error {
            ClientError::AppIdNotAllowed { .. } => ErrorCode::BadRequest,
            ClientError::NoTouch { .. } => ErrorCode::Timeout,
            ClientError::NotThisToken { .. } => ErrorCode::DeviceIneligible,
            _ => ErrorCode::Other,
        };
        ServiceError(code, error.to_string())
    }
}

/// The tokens the service answers with: serve's, as they are at each request (`serve
/// --control` adds and removes them at run time).
pub trait ServedTokens: Send + Sync {
    /// The token named `name`.
    fn named(&self, name: &str) -> Option<SharedToken>;
    /// Every token, in the order they were served.
    fn in_order(&self) -> Vec<SharedToken>;
}

/// What the routes answer with.
pub type Tokens = Arc<dyn ServedTokens>;

fn client(token: &SharedToken) -> TokenClient {
    TokenClient::new(Box::new(token.clone()), TOUCH_TIMEOUT)
}

/// The token `?token=` names, or every token.
fn chosen(tokens: &Tokens, query: &TokenQuery) -> Result<Vec<SharedToken>, ServiceError> {
    match &query.token {
        Some(name) => tokens.named(name).map(|token| vec![token]).ok_or_else(|| {
            ServiceError(
                ErrorCode::BadRequest,
                format!("no token {name:?} is served"),
            )
        }),
        None => Ok(tokens.in_order()),
    }
}

/// `?token=NAME`.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The body of `sign`.
#[derive(Debug, Deserialize)]
pub struct SignBody {
    #[serde(rename = "signRequests")]
    sign_requests: Vec<SignRequest>,
}

/// The body of `register`.
#[derive(Debug, Deserialize)]
pub struct RegisterBody {
    #[serde(rename = "registerRequests")]
    register_requests: Vec<RegisterRequest>,
    #[serde(rename = "signRequests", default)]
    sign_requests: Vec<SignRequest>,
}

/// The page's origin (the `Origin` header), or else the App ID's own: the policy a browser
/// would apply (PROTOCOLS.md 2.4).
fn policy(headers: &HeaderMap, app_id: &str) -> Result<OriginPolicy, ServiceError> {
    let app_origin = crate::aa::origin_of(app_id).ok_or_else(|| {
        ServiceError(
            ErrorCode::BadRequest,
            format!("appId {app_id:?} is not a URL"),
        )
    })?;
    let origin = headers
        .get("origin")
        .and_then(|o| o.to_str().ok())
        .map_or(app_origin, str::to_owned);
    Ok(OriginPolicy::new(origin, Vec::new(), None))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    serde_json::from_slice(body)
        .map_err(|e| ServiceError(ErrorCode::BadRequest, format!("request body: {e}")))
}

async fn sign(
    State(tokens): State<Tokens>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ServiceError> {
    let body: SignBody = parse(&body)?;
    let first = body
        .sign_requests
        .first()
        .ok_or_else(|| ServiceError(ErrorCode::BadRequest, "signRequests is empty".into()))?;
    let policy = policy(&headers, &first.app_id)?;
    let mut last = None;
    for token in chosen(&tokens, &query)? {
        match client(&token).sign(&body.sign_requests, &policy).await {
            Ok((response, _)) => return Ok(Json(response).into_response()),
            Err(error) => {
                let error = ServiceError::from(error);
                if error.0 != ErrorCode::DeviceIneligible {
                    return Err(error);
                }
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| ServiceError(ErrorCode::DeviceIneligible, "no token".into())))
}

async fn register(
    State(tokens): State<Tokens>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ServiceError> {
    let body: RegisterBody = parse(&body)?;
    let first = body
        .register_requests
        .first()
        .ok_or_else(|| ServiceError(ErrorCode::BadRequest, "registerRequests is empty".into()))?;
    let policy = policy(&headers, &first.app_id)?;
    let token = chosen(&tokens, &query)?
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError(ErrorCode::Other, "no token is served".into()))?;
    let mut client = client(&token);
    if client.knows_any(&body.sign_requests, &policy).await? {
        return Err(ServiceError(
            ErrorCode::DeviceIneligible,
            "the token is already registered".into(),
        ));
    }
    let response = client.register(&body.register_requests, &policy).await?;
    Ok(Json(response).into_response())
}

#[derive(Serialize)]
struct Aborted {
    result: &'static str,
}

async fn abort() -> Json<Aborted> {
    Json(Aborted { result: "ok" })
}

async fn no_route() -> ServiceError {
    ServiceError(ErrorCode::BadRequest, "no such call".into())
}

/// The service's routes, answered by `tokens`.
pub fn router(tokens: Tokens) -> Router {
    Router::new()
        .route("/api/v1/fidou2f/sign", post(sign))
        .route("/api/v1/fidou2f/register", post(register))
        .route("/api/v1/fidou2f/abort", get(abort))
        .fallback(no_route)
        .with_state(tokens)
}
