//! Endpoints and endpoint sessions (PROTOCOLS.md 1.2): an administrator registers an endpoint and
//! gets its id and secret; the endpoint proves the secret with a salted hash to open a session.
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use subtle::ConstantTimeEq as _;

use super::error::{ApiError, ApiJson};
use super::records::{random_alphanumeric, random_hex_id, EndpointRecord};
use super::state::{decode, encode, SimState};
use crate::aa::api::{
    AuthData, CreateSessionRequest, DeleteEndpointRequest, EndpointCredentials, EndpointSession,
    RegisterEndpointRequest,
};
use crate::aa::endpoint_secret_hash;

/// Checks that `auth` names an administrator with the right password.
fn check_admin(state: &SimState, auth: &AuthData) -> Result<(), ApiError> {
    if auth.method_id != "PASSWORD:1" {
        return Err(ApiError::bad_field(
            "auth_data.method_id",
            "only PASSWORD:1 is accepted",
        ));
    }
    match state.user(&auth.user_name) {
        Some(user) if user.password == auth.password && user.admin => Ok(()),
        Some(user) if user.password == auth.password => Err(ApiError::forbidden(
            "auth_data.user_name",
            "not an administrator",
        )),
        _ => Err(ApiError::unauthorized(
            "auth_data",
            "wrong user name or password",
        )),
    }
}

/// `POST /api/v1/endpoints`.
pub async fn register(
    State(state): State<Arc<SimState>>,
    ApiJson(request): ApiJson<RegisterEndpointRequest>,
) -> Result<Json<EndpointCredentials>, ApiError> {
    check_admin(&state, &request.auth_data)?;
    let credentials = EndpointCredentials {
        id: random_hex_id(),
        secret: random_alphanumeric(),
    };
    let record = EndpointRecord {
        secret: credentials.secret.clone(),
        name: request.name,
    };
    state
        .endpoints
        .insert(&credentials.id, encode(&record))
        .map_err(ApiError::storage)?;
    Ok(Json(credentials))
}

/// `DELETE /api/v1/endpoints/{id}`.
pub async fn delete(
    State(state): State<Arc<SimState>>,
    Path(endpoint_id): Path<String>,
    ApiJson(request): ApiJson<DeleteEndpointRequest>,
) -> Result<Json<Value>, ApiError> {
    check_admin(&state, &request.auth_data)?;
    match state
        .endpoints
        .remove(&endpoint_id)
        .map_err(ApiError::storage)?
    {
        Some(_) => Ok(Json(json!({}))),
        None => Err(ApiError::not_found(
            "endpoint_id",
            "no such endpoint",
            "path",
        )),
    }
}

/// `POST /api/v1/endpoints/{id}/sessions`.
pub async fn open_session(
    State(state): State<Arc<SimState>>,
    Path(endpoint_id): Path<String>,
    ApiJson(request): ApiJson<CreateSessionRequest>,
) -> Result<Json<EndpointSession>, ApiError> {
    let bytes = state
        .endpoints
        .get(&endpoint_id)
        .map_err(ApiError::storage)?
        .ok_or_else(|| ApiError::not_found("endpoint_id", "no such endpoint", "path"))?;
    let endpoint: EndpointRecord = decode(&bytes)?;
    if request.salt.is_empty() {
        return Err(ApiError::bad_field("salt", "must not be empty"));
    }
    let expected = endpoint_secret_hash(&endpoint_id, &endpoint.secret, &request.salt);
    let matches = expected
        .as_bytes()
        .ct_eq(request.endpoint_secret_hash.as_bytes());
    if !bool::from(matches) {
        return Err(ApiError::unauthorized(
            "endpoint_secret_hash",
            "does not match the endpoint's secret",
        ));
    }
    let session = random_alphanumeric();
    state.open_endpoint_session(&session, &endpoint_id)?;
    Ok(Json(EndpointSession {
        endpoint_session_id: session,
    }))
}
