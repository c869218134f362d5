//! U2F enrollment and templates, as AA's portal calls them (PROTOCOLS.md 1.9, shaped by
//! [`crate::aa::portal`]; the template list and delete follow public client code, 1.2). A logon to
//! an event that permits enrollment opens the login session; the first `do_enroll` names the appId
//! and the user and gets a register request; the second carries the registration, verified as
//! section 4 says; saving makes it a template, one per method and category. Old or partial shapes
//! are refused with AA's error body, naming the field.
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiJson, ApiQuery};
use super::records::{random_alphanumeric, random_hex_id, LoginSessionRecord, TemplateRecord};
use super::responses::{qualified_name, user_id};
use super::state::{EnrollProcess, Issued, SimState};
use super::u2f_check;
use crate::aa::api::SignRequest;
use crate::aa::errors::{self, emulator};
use crate::aa::outcome::{self, Outcome};
use crate::aa::portal::{
    DoEnrollRequest, DoEnrollResponse, EnrollBegin, EnrollRegistered, EnrollStarted,
    LoginSessionQuery, RegisterRequest, SaveTemplateRequest, StartEnrollRequest, TemplateList,
    TemplateSaved, TemplateSummary,
};
use crate::aa::{FIDO2, U2F};
use crate::u2f::messages::{TYP_REGISTER, U2F_V2};

pub(super) fn unknown_process() -> ApiError {
    ApiError::aa(errors::ENROLL_PROCESS_NOT_FOUND)
}

/// The login session `id`, if its event permits enrollment.
fn enrolling_session(state: &SimState, id: &str) -> Result<LoginSessionRecord, ApiError> {
    let session = state.login_session(id)?;
    let permitted = state.config.event(&session.event).is_some_and(|e| e.enroll);
    if !permitted {
        return Err(ApiError::forbidden(
            "login_session_id",
            format!(
                "a logon to event {:?} does not permit enrollment",
                session.event
            ),
        ));
    }
    Ok(session)
}

pub(super) fn answer(outcome: Outcome) -> DoEnrollResponse {
    DoEnrollResponse {
        status: outcome.status,
        msg: outcome.msg.into(),
        reason: outcome.reason.map(Into::into),
        msgid: outcome.msgid.map(Into::into),
        register_requests: Vec::new(),
        sign_requests: Vec::new(),
    }
}

/// `value` (the body's `response`) as `T`, or a 400 naming the field that is wrong.
pub fn response_as<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let name = if path == "." || path == "?" {
            "response".to_owned()
        } else {
            format!("response.{path}")
        };
        ApiError::bad_field(&name, e.into_inner())
    })
}

/// Whether `app_id` is what a page of this server would send: its App ID or one of its facets.
pub fn app_id_of_this_server(state: &SimState, app_id: &str) -> bool {
    app_id == state.app_id || state.facets.iter().any(|f| f == app_id)
}

/// `POST /api/v1/enroll`.
pub async fn start(
    State(state): State<Arc<SimState>>,
    ApiJson(request): ApiJson<StartEnrollRequest>,
) -> Result<Json<EnrollStarted>, ApiError> {
    let session = enrolling_session(&state, &request.login_session_id)?;
    if request.method_id != U2F && request.method_id != FIDO2 {
        return Err(ApiError::bad_field(
            "method_id",
            "the emulator enrolls U2F:1 and FIDO2:1 only",
        ));
    }
    let id = random_alphanumeric();
    let mut live = state.live();
    if live.enrolls.len() >= state.config.max_open_processes {
        return Err(ApiError::busy(
            "too many enroll processes are open; finish some or retry later",
        ));
    }
    live.enrolls.insert(
        id.clone(),
        EnrollProcess {
            login_session: request.login_session_id,
            user: session.user,
            challenge: None,
            registration: None,
            method: request.method_id,
            fido2: Default::default(),
            touched: Instant::now(),
        },
    );
    Ok(Json(EnrollStarted {
        enroll_process_id: id,
        extra: Map::new(),
    }))
}

/// The enroll process `id`, which must belong to `session`.
pub(super) fn process_of(
    state: &SimState,
    id: &str,
    session: &str,
) -> Result<EnrollProcess, ApiError> {
    let mut live = state.live();
    let process = live.enrolls.get_mut(id).ok_or_else(unknown_process)?;
    if process.login_session != session {
        return Err(ApiError::with(
            errors::ENROLL_PROCESS_NOT_FOUND,
            "body",
            "the enroll process belongs to another login session",
        ));
    }
    process.touched = Instant::now();
    Ok(process.clone())
}

/// `POST /api/v1/enroll/{id}/do_enroll`.
pub async fn do_enroll(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<DoEnrollRequest<Value>>,
) -> Result<Json<DoEnrollResponse>, ApiError> {
    enrolling_session(&state, &request.login_session_id)?;
    let process = process_of(&state, &id, &request.login_session_id)?;
    if process.method == FIDO2 {
        return super::fido2::do_enroll(&state, &id, &process, request.response).map(Json);
    }
    if process.registration.is_some() {
        return Ok(Json(answer(outcome::ENROLLMENT_DONE)));
    }
    let registered = request
        .response
        .as_object()
        .is_some_and(|r| r.contains_key("registerResponse"));
    if !registered {
        let begin: EnrollBegin = response_as(request.response)?;
        return issue_challenge(&state, &id, &process, &begin).map(Json);
    }
    let EnrollRegistered { register_response } = response_as(request.response)?;
    let verdict = check_registration(&state, &process, &register_response);
    let mut live = state.live();
    let Some(stored) = live.enrolls.get_mut(&id) else {
        return Err(unknown_process());
    };
    stored.challenge = None;
    match verdict {
        Ok(template) => {
            stored.registration = Some(template);
            Ok(Json(answer(outcome::ENROLLED)))
        }
        Err(failed) => {
            live.enrolls.remove(&id);
            Ok(Json(answer(failed)))
        }
    }
}

/// The first round: `userId` must be the session's user and `appId` this server's.
fn issue_challenge(
    state: &SimState,
    id: &str,
    process: &EnrollProcess,
    begin: &EnrollBegin,
) -> Result<DoEnrollResponse, ApiError> {
    let owner = user_id(state, &process.user);
    if begin.user_id != owner {
        return Err(ApiError::with(
            errors::USER_NOT_FOUND,
            "body",
            "response.userId is not the id of the login session's user",
        ));
    }
    if !app_id_of_this_server(state, &begin.app_id) {
        state.live().enrolls.remove(id);
        return Ok(answer(outcome::U2F_APPID_MISMATCH));
    }
    let mut random = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut random);
    let challenge = URL_SAFE_NO_PAD.encode(random);
    let enrolled = state.templates_of(&owner)?;
    if let Some(stored) = state.live().enrolls.get_mut(id) {
        stored.challenge = Some(Issued {
            challenge: challenge.clone(),
            at: Instant::now(),
        });
    }
    let mut response = answer(outcome::U2F_WAITING_REG_RESPONSE);
    response.register_requests = vec![RegisterRequest {
        version: U2F_V2.into(),
        app_id: state.app_id.clone(),
        challenge: challenge.clone(),
    }];
    response.sign_requests = enrolled
        .into_iter()
        .filter(|t| t.method_id == U2F)
        .map(|t| SignRequest {
            version: U2F_V2.into(),
            app_id: t.app_id,
            key_handle: t.key_handle,
            challenge: challenge.clone(),
        })
        .collect();
    Ok(response)
}

/// `DELETE /api/v1/enroll/{id}?login_session_id=…`: the process is forgotten.
pub async fn abort(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<LoginSessionQuery>,
) -> Result<Json<Value>, ApiError> {
    state.login_session(&query.login_session_id)?;
    process_of(&state, &id, &query.login_session_id)?;
    state.live().enrolls.remove(&id);
    Ok(Json(json!({})))
}

/// Section 4, registration steps 1 to 4 and the duplicate check of step 6.
fn check_registration(
    state: &SimState,
    process: &EnrollProcess,
    response: &crate::aa::portal::RegisterResponse,
) -> Result<TemplateRecord, Outcome> {
    let seen = u2f_check::client_data(&response.client_data, TYP_REGISTER)?;
    let issued = process
        .challenge
        .as_ref()
        .ok_or(outcome::U2F_CHALLENGE_MISMATCH)?;
    if seen.challenge != issued.challenge || response.challenge != issued.challenge {
        return Err(outcome::U2F_CHALLENGE_MISMATCH);
    }
    if response.app_id != state.app_id || response.version != U2F_V2 {
        return Err(outcome::U2F_APPID_MISMATCH);
    }
    if issued.at.elapsed() > state.challenge_ttl() {
        return Err(outcome::U2F_CHALLENGE_EXPIRED);
    }
    u2f_check::origin(&seen, &state.facets)?;
    let parsed = u2f_check::registration(response, &seen, &state.app_id)?;
    let key_handle = URL_SAFE_NO_PAD.encode(&parsed.key_handle);
    if state
        .key_handle_enrolled(&key_handle)
        .map_err(|_| outcome::U2F_ALREADY_ENROLLED)?
    {
        return Err(outcome::U2F_ALREADY_ENROLLED);
    }
    Ok(TemplateRecord {
        id: random_hex_id(),
        method_id: U2F.into(),
        key_handle,
        public_key: hex::encode(parsed.public_key),
        counter: 0,
        app_id: state.app_id.clone(),
        certificate: hex::encode(&parsed.attestation_certificate),
        comment: String::new(),
        category_id: String::new(),
    })
}

/// The login session of a template call, which must be the user's own.
pub(super) fn session_of_user(
    state: &SimState,
    session: &str,
    user_id_in_path: &str,
) -> Result<String, ApiError> {
    let record = state.login_session(session)?;
    if user_id(state, &record.user) != user_id_in_path {
        return Err(ApiError::forbidden(
            "user_id",
            "the login session belongs to another user",
        ));
    }
    Ok(record.user)
}

/// `POST /api/v1/users/{user_id}/templates`.
pub async fn save_template(
    State(state): State<Arc<SimState>>,
    Path(owner): Path<String>,
    ApiJson(request): ApiJson<SaveTemplateRequest>,
) -> Result<Json<TemplateSaved>, ApiError> {
    session_of_user(&state, &request.login_session_id, &owner)?;
    let mut template = {
        let live = state.live();
        let process = live
            .enrolls
            .get(&request.enroll_process_id)
            .ok_or_else(unknown_process)?;
        if process.login_session != request.login_session_id {
            return Err(ApiError::with(
                errors::ENROLL_PROCESS_NOT_FOUND,
                "body",
                "the enroll process belongs to another login session",
            ));
        }
        if process.method == FIDO2 && !process.fido2.confirmed {
            return Err(ApiError::wrong_step(
                "enroll_process_id: the enrollment has not completed: do_enroll after the WebAuthn exchange first",
            ));
        }
        process.registration.clone().ok_or_else(|| {
            ApiError::wrong_step("enroll_process_id: the enrollment has not completed")
        })?
    };
    // A conflict leaves the process as it was: the user may save it in another category.
    if state
        .templates_of(&owner)?
        .iter()
        .any(|t| t.method_id == template.method_id && t.category_id == request.category_id)
    {
        return Err(ApiError::aa(errors::METHOD_ALREADY_ENROLLED));
    }
    if state.key_handle_enrolled(&template.key_handle)? {
        return Err(ApiError::aa(emulator::AUTHENTICATOR_ENROLLED));
    }
    if state
        .live()
        .enrolls
        .remove(&request.enroll_process_id)
        .is_none()
    {
        return Err(unknown_process());
    }
    template.comment = request.comment;
    template.category_id = request.category_id;
    state.put_template(&owner, &template)?;
    state.persist().await?;
    Ok(Json(TemplateSaved {
        auth_t_id: template.id,
    }))
}

/// The query of the template and user calls.
#[derive(Debug, Deserialize)]
pub struct SessionQuery {
    login_session_id: String,
    user_name: Option<String>,
}

/// `GET /api/v1/users/{user_id}/templates`.
pub async fn list_templates(
    State(state): State<Arc<SimState>>,
    Path(owner): Path<String>,
    ApiQuery(query): ApiQuery<SessionQuery>,
) -> Result<Json<TemplateList>, ApiError> {
    session_of_user(&state, &query.login_session_id, &owner)?;
    let templates = state
        .templates_of(&owner)?
        .into_iter()
        .map(|t| {
            let mut extra = Map::new();
            extra.insert("counter".into(), json!(t.counter));
            extra.insert("app_id".into(), json!(t.app_id));
            TemplateSummary {
                id: t.id,
                method_id: t.method_id,
                comment: t.comment,
                category_id: t.category_id,
                extra,
            }
        })
        .collect();
    Ok(Json(TemplateList { templates }))
}

/// `DELETE /api/v1/users/{user_id}/templates/{template_id}`.
pub async fn delete_template(
    State(state): State<Arc<SimState>>,
    Path((owner, template_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<SessionQuery>,
) -> Result<Json<Value>, ApiError> {
    session_of_user(&state, &query.login_session_id, &owner)?;
    if state.remove_template(&owner, &template_id)? {
        state.persist().await?;
        Ok(Json(json!({})))
    } else {
        Err(ApiError::not_found(
            "template_id",
            "no such template",
            "path",
        ))
    }
}

/// `GET /api/v1/users?user_name=…&login_session_id=…`.
pub async fn find_user(
    State(state): State<Arc<SimState>>,
    ApiQuery(query): ApiQuery<SessionQuery>,
) -> Result<Json<Value>, ApiError> {
    state.login_session(&query.login_session_id)?;
    let name = query
        .user_name
        .ok_or_else(|| ApiError::bad_field("user_name", "missing"))?;
    let user = state
        .user(&name)
        .ok_or_else(|| ApiError::aa(errors::USER_NOT_FOUND))?;
    Ok(Json(json!({
        "id": user_id(&state, &user.name),
        "user_name": qualified_name(&state, &user.name),
    })))
}
