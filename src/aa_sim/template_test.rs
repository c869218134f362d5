//! Testing an enrolled template, as AA's portal does it (PROTOCOLS.md 1.9, shaped by
//! [`crate::aa::portal`]): the first round names the appId and gets the template's sign request
//! and a process id; the second carries the signature, verified as a logon's (section 4, with the
//! counter raised), and answers `OK` or `FAILED`. The login session must be the template owner's.
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;

use super::enroll::{app_id_of_this_server, response_as, session_of_user};
use super::error::{ApiError, ApiJson};
use super::logon::{check_sign_response, end, issue_challenge};
use super::records::random_alphanumeric;
use super::state::{LogonProcess, ProcessOwner, SimState};
use crate::aa::api::LogonResponse;
use crate::aa::errors;
use crate::aa::outcome;
use crate::aa::portal::{TestBegin, TestSigned, TestTemplateRequest};
use crate::aa::U2F;

/// `POST /api/v1/users/{user_id}/templates/{template_id}/test`.
pub async fn test(
    State(state): State<Arc<SimState>>,
    Path((owner, template_id)): Path<(String, String)>,
    ApiJson(request): ApiJson<TestTemplateRequest<Value>>,
) -> Result<Json<LogonResponse>, ApiError> {
    let user = session_of_user(&state, &request.login_session_id, &owner)?;
    let template = state
        .templates_of(&owner)?
        .into_iter()
        .find(|t| t.id == template_id)
        .ok_or_else(|| ApiError::not_found("template_id", "no such template", "path"))?;
    if template.method_id != U2F {
        return Err(ApiError::wrong_step(format!(
            "template_id: the emulator tests {U2F} templates only"
        )));
    }
    let test_owner = ProcessOwner::TemplateTest {
        login_session: request.login_session_id.clone(),
        template_id: template_id.clone(),
    };
    let Some(id) = request.logon_process_id else {
        let begin: TestBegin = response_as(request.response)?;
        let id = random_alphanumeric();
        let process = LogonProcess {
            owner: test_owner,
            user,
            event: String::new(),
            chains: Vec::new(),
            completed: Vec::new(),
            current: Some(U2F.into()),
            challenge: None,
            fido2: None,
            touched: Instant::now(),
        };
        {
            let mut live = state.live();
            if live.logons.len() >= state.config.max_open_processes {
                return Err(ApiError::busy(
                    "too many logon processes are open; finish some or retry later",
                ));
            }
            live.logons.insert(id.clone(), process.clone());
        }
        if !app_id_of_this_server(&state, &begin.app_id) {
            return Ok(Json(end(
                &state,
                &id,
                &process,
                outcome::U2F_APPID_MISMATCH,
            )));
        }
        return issue_challenge(&state, &id, std::slice::from_ref(&template)).map(Json);
    };
    let process = {
        let mut live = state.live();
        let process = live
            .logons
            .get_mut(&id)
            .filter(|p| p.owner == test_owner)
            .ok_or_else(|| ApiError::aa(errors::LOGON_PROCESS_NOT_FOUND))?;
        process.touched = Instant::now();
        process.clone()
    };
    let signed: TestSigned = response_as(request.response)?;
    let verdict = check_sign_response(&state, &id, &signed.sign_response);
    if verdict.is_ok() {
        state.persist().await?;
    }
    let outcome = verdict.map_or_else(|failed| failed, |_| outcome::TEST_PASSED);
    Ok(Json(end(&state, &id, &process, outcome)))
}
