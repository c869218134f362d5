//! U2F enrollment and templates (PROTOCOLS.md 1.2: the template calls follow public client code,
//! the U2F rounds are inferred and shaped by [`crate::aa::enroll`]). A logon to an event that
//! permits enrollment opens the login session; `do_enroll` hands out a register request and
//! verifies the registration (section 4, registration); saving makes it a template.
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiJson, ApiQuery};
use super::records::{random_alphanumeric, random_hex_id, LoginSessionRecord, TemplateRecord};
use super::responses::{qualified_name, user_id};
use super::state::{EnrollProcess, Issued, SimState};
use super::u2f_check;
use crate::aa::api::SignRequest;
use crate::aa::enroll::{
    DoEnrollRequest, DoEnrollResponse, EnrollStarted, RegisterRequest, SaveTemplateRequest,
    StartEnrollRequest, TemplateList, TemplateSaved, TemplateSummary,
};
use crate::aa::outcome::{self, Outcome};
use crate::aa::U2F;
use crate::u2f::messages::{TYP_REGISTER, U2F_V2};

fn unknown_process() -> ApiError {
    ApiError::unknown_in_path("enroll_process_id", "unknown or finished enroll process")
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

fn answer(outcome: Outcome) -> DoEnrollResponse {
    DoEnrollResponse {
        status: outcome.status,
        msg: outcome.msg.into(),
        reason: outcome.reason.map(Into::into),
        msgid: outcome.msgid.map(Into::into),
        register_requests: Vec::new(),
        sign_requests: Vec::new(),
    }
}

/// `POST /api/v1/enroll`.
pub async fn start(
    State(state): State<Arc<SimState>>,
    ApiJson(request): ApiJson<StartEnrollRequest>,
) -> Result<Json<EnrollStarted>, ApiError> {
    let session = enrolling_session(&state, &request.login_session_id)?;
    if request.method_id != U2F {
        return Err(ApiError::bad_field(
            "method_id",
            "the emulator enrolls U2F:1 only",
        ));
    }
    let id = random_alphanumeric();
    let mut live = state.live();
    if live.enrolls.len() >= state.config.max_open_processes {
        return Err(ApiError::busy(
            "enroll_process_id",
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
            touched: Instant::now(),
        },
    );
    Ok(Json(EnrollStarted {
        enroll_process_id: id,
        extra: Map::new(),
    }))
}

/// `POST /api/v1/enroll/{id}/do_enroll`.
pub async fn do_enroll(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<DoEnrollRequest>,
) -> Result<Json<DoEnrollResponse>, ApiError> {
    enrolling_session(&state, &request.login_session_id)?;
    let process = {
        let mut live = state.live();
        let process = live.enrolls.get_mut(&id).ok_or_else(unknown_process)?;
        if process.login_session != request.login_session_id {
            return Err(ApiError::bad_field(
                "login_session_id",
                "the enroll process belongs to another login session",
            ));
        }
        process.touched = Instant::now();
        process.clone()
    };
    let Some(registration) = request.response.register_response else {
        return issue_challenge(&state, &id, &process).map(Json);
    };
    let verdict = check_registration(&state, &process, &registration);
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

fn issue_challenge(
    state: &SimState,
    id: &str,
    process: &EnrollProcess,
) -> Result<DoEnrollResponse, ApiError> {
    let mut random = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut random);
    let challenge = URL_SAFE_NO_PAD.encode(random);
    let enrolled = state.templates_of(&user_id(state, &process.user))?;
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
        .map(|t| SignRequest {
            version: U2F_V2.into(),
            app_id: t.app_id,
            key_handle: t.key_handle,
            challenge: challenge.clone(),
        })
        .collect();
    Ok(response)
}

/// Section 4, registration steps 1 to 4 and the duplicate check of step 6.
fn check_registration(
    state: &SimState,
    process: &EnrollProcess,
    response: &crate::aa::enroll::RegisterResponse,
) -> Result<TemplateRecord, Outcome> {
    let seen = u2f_check::client_data(&response.client_data, TYP_REGISTER)?;
    let issued = process
        .challenge
        .as_ref()
        .ok_or(outcome::U2F_CHALLENGE_MISMATCH)?;
    if seen.challenge != issued.challenge {
        return Err(outcome::U2F_CHALLENGE_MISMATCH);
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
    })
}

/// The login session of a template call, which must be the user's own.
fn session_of_user(
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
        let mut live = state.live();
        let process = live
            .enrolls
            .get(&request.enroll_process_id)
            .ok_or_else(|| {
                ApiError::bad_field("enroll_process_id", "unknown or finished enroll process")
            })?;
        if process.login_session != request.login_session_id {
            return Err(ApiError::bad_field(
                "enroll_process_id",
                "the enroll process belongs to another login session",
            ));
        }
        let template = process.registration.clone().ok_or_else(|| {
            ApiError::bad_field("enroll_process_id", "the enrollment has not completed")
        })?;
        live.enrolls.remove(&request.enroll_process_id);
        template
    };
    if state.key_handle_enrolled(&template.key_handle)? {
        return Err(ApiError::conflict(
            "enroll_process_id",
            "this authenticator is already enrolled",
        ));
    }
    template.comment = request.comment;
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
        .ok_or_else(|| ApiError::not_found("user_name", "no such user", "querystring"))?;
    Ok(Json(json!({
        "id": user_id(&state, &user.name),
        "user_name": qualified_name(&state, &user.name),
    })))
}
