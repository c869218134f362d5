//! The logon flow (PROTOCOLS.md 1.1 to 1.4, and section 4 for U2F): `POST /logon` starts a
//! process on the chains of the event that begin with the method; `do_logon` runs the current
//! method (`PASSWORD:1`, or `U2F:1` in two rounds: the sign request, then the sign response); a
//! passed method gives `NEXT` (then `/next`) or `OK` with a login session. A failed method ends
//! the process with `FAILED` and the reason of the check that failed. The chains call (1.2, and
//! the portal's form of 1.9) lists what a user may use for an event.
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Map};

use super::error::{ApiError, ApiJson, ApiQuery};
use super::records::{random_alphanumeric, TemplateRecord};
use super::responses::{chain_object, complete, logon_object, user_id};
use super::state::{decode, encode, ChallengeOwner, Issued, LogonProcess, ProcessOwner, SimState};
use super::u2f_check;
use crate::aa::api::{
    AllowCredential, Chain, ChainList, DoLogonRequest, LogonResponse, MethodResponse,
    NextMethodRequest, SignRequest, SignResponse, StartLogonRequest, WebauthChallenge,
};
use crate::aa::errors;
use crate::aa::outcome::{self, Outcome};
use crate::aa::portal::ChainsQuery;
use crate::aa::{FIDO2, PASSWORD, U2F};
use crate::u2f::messages::{TYP_SIGN, U2F_V2};

type Answer = Result<Json<LogonResponse>, ApiError>;

pub(super) fn unknown_process() -> ApiError {
    ApiError::aa(errors::LOGON_PROCESS_NOT_FOUND)
}

/// The configured user called `name`, or AA's `USER_NOT_FOUND`.
fn known_user(state: &SimState, name: &str) -> Result<String, ApiError> {
    state
        .user(name)
        .map(|u| u.name.clone())
        .ok_or_else(|| ApiError::aa(errors::USER_NOT_FOUND))
}

/// `GET` or `POST /api/v1/logon/chains?user_name=…&event=…&endpoint_session_id=…`: the chains of
/// the event, in order (PWM's form, with `username` and no event, gets those of every event).
pub async fn chains(
    State(state): State<Arc<SimState>>,
    ApiQuery(query): ApiQuery<ChainsQuery>,
) -> Result<Json<ChainList>, ApiError> {
    state.check_endpoint_session(&query.endpoint_session_id)?;
    known_user(&state, &query.user_name)?;
    let names: Vec<&String> = match &query.event {
        Some(name) => {
            let event = state.config.event(name).ok_or_else(|| {
                ApiError::with(
                    errors::emulator::BAD_REQUEST,
                    "querystring",
                    format!("event: no such event {name:?}"),
                )
            })?;
            event.chains.iter().collect()
        }
        None => state.config.chains.iter().map(|c| &c.name).collect(),
    };
    let mut chains: Vec<Chain> = Vec::new();
    for name in names {
        if let Some((i, chain)) = state.config.chain(name) {
            if !chains.iter().any(|c| c.name == chain.name) {
                chains.push(chain_object(i, chain));
            }
        }
    }
    Ok(Json(ChainList { chains }))
}

/// `POST /api/v1/logon`.
pub async fn start(
    State(state): State<Arc<SimState>>,
    ApiJson(request): ApiJson<StartLogonRequest>,
) -> Answer {
    state.check_endpoint_session(&request.endpoint_session_id)?;
    let user = known_user(&state, &request.user_name)?;
    let event = state
        .config
        .event(&request.event)
        .ok_or_else(|| ApiError::bad_field("event", "no such event"))?;
    let chains: Vec<usize> = event
        .chains
        .iter()
        .filter_map(|name| state.config.chain(name))
        .filter(|(_, chain)| chain.methods.first() == Some(&request.method_id))
        .map(|(i, _)| i)
        .collect();
    if chains.is_empty() {
        return Err(ApiError::bad_field(
            "method_id",
            format!(
                "no chain of event {:?} starts with {}",
                event.name, request.method_id
            ),
        ));
    }
    let process = LogonProcess {
        owner: ProcessOwner::Endpoint(request.endpoint_session_id),
        user,
        event: event.name.clone(),
        chains,
        completed: Vec::new(),
        current: Some(request.method_id),
        challenge: None,
        fido2: None,
        touched: Instant::now(),
    };
    let id = random_alphanumeric();
    let response = logon_object(&state, &id, &process, outcome::PROCESS_STARTED);
    let mut live = state.live();
    if live.logons.len() >= state.config.max_open_processes {
        return Err(ApiError::busy(
            "too many logon processes are open; finish some or retry later",
        ));
    }
    live.logons.insert(id, process);
    Ok(Json(response))
}

/// `POST /api/v1/logon/{id}/next`.
pub async fn next(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<NextMethodRequest>,
) -> Answer {
    state.check_endpoint_session(&request.endpoint_session_id)?;
    let mut live = state.live();
    let process = live.logons.get_mut(&id).ok_or_else(unknown_process)?;
    check_owner(process, &request.endpoint_session_id)?;
    if process.current.is_some() {
        return Err(ApiError::wrong_step(
            "method_id: the current method has not passed yet",
        ));
    }
    let done = process.completed.len();
    let chains = &state.config.chains;
    let candidates: Vec<usize> = process
        .chains
        .iter()
        .copied()
        .filter(|&i| chains[i].methods.get(done) == Some(&request.method_id))
        .collect();
    if candidates.is_empty() {
        return Err(ApiError::bad_field(
            "method_id",
            format!("{} is not the next method of a chain", request.method_id),
        ));
    }
    process.chains = candidates;
    process.current = Some(request.method_id);
    process.touched = Instant::now();
    Ok(Json(logon_object(
        &state,
        &id,
        process,
        outcome::PROCESS_STARTED,
    )))
}

pub(super) fn check_owner(process: &LogonProcess, endpoint_session: &str) -> Result<(), ApiError> {
    match &process.owner {
        ProcessOwner::Endpoint(owner) if owner == endpoint_session => Ok(()),
        ProcessOwner::Endpoint(_) => Err(ApiError::with(
            errors::LOGON_PROCESS_NOT_FOUND,
            "body",
            "the logon process belongs to another endpoint session",
        )),
        ProcessOwner::TemplateTest { .. } => Err(ApiError::with(
            errors::LOGON_PROCESS_NOT_FOUND,
            "body",
            "the process is a template test: go on with …/templates/{id}/test",
        )),
    }
}

/// `POST /api/v1/logon/{id}/do_logon`.
pub async fn do_logon(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<DoLogonRequest>,
) -> Answer {
    state.check_endpoint_session(&request.endpoint_session_id)?;
    let (process, method) = {
        let mut live = state.live();
        let process = live.logons.get_mut(&id).ok_or_else(unknown_process)?;
        check_owner(process, &request.endpoint_session_id)?;
        process.touched = Instant::now();
        let method = process.current.clone().ok_or_else(|| {
            ApiError::wrong_step("method_id: the method passed: call next with the next one")
        })?;
        (process.clone(), method)
    };
    let verdict =
        match (method.as_str(), request.response) {
            (PASSWORD, Some(MethodResponse::Password { password })) => {
                check_password(&state, &process.user, &password)
            }
            (PASSWORD, _) => {
                return Err(ApiError::bad_field(
                    "response.password",
                    "PASSWORD:1 needs the password",
                ))
            }
            (U2F, None) => {
                let templates: Vec<TemplateRecord> = state
                    .templates_of(&user_id(&state, &process.user))?
                    .into_iter()
                    .filter(|t| t.method_id == U2F)
                    .collect();
                if templates.is_empty() {
                    return Ok(Json(end(&state, &id, &process, outcome::U2F_NOT_ENROLLED)));
                }
                return issue_challenge(&state, &id, &templates).map(Json);
            }
            (U2F, Some(MethodResponse::U2f { sign_response })) => {
                check_sign_response(&state, &id, &sign_response)
            }
            (U2F, Some(_)) => {
                return Err(ApiError::bad_field(
                    "response.signResponse",
                    "U2F:1 needs a sign response",
                ))
            }
            (FIDO2, None) => match process.fido2.clone() {
                None => {
                    if super::fido2::credentials_of(&state, &process.user)?.is_empty() {
                        return Ok(Json(end(
                            &state,
                            &id,
                            &process,
                            outcome::FIDO2_NOT_ENROLLED,
                        )));
                    }
                    return Ok(Json(logon_object(
                        &state,
                        &id,
                        &process,
                        outcome::FIDO2_WAITING_ASSERTION,
                    )));
                }
                Some(Ok(template_id)) => Ok(Some(template_id)),
                Some(Err(refused)) => {
                    let mut reply = end(&state, &id, &process, refused.outcome);
                    reply.msg = refused.message();
                    return Ok(Json(reply));
                }
            },
            (FIDO2, Some(_)) => return Err(ApiError::bad_field(
                "response",
                "FIDO2:1 takes no response in do_logon: the assertion goes to the login exchange",
            )),
            (other, _) => {
                return Err(ApiError::bad_field(
                    "method_id",
                    format!("the emulator cannot run {other}"),
                ))
            }
        };
    match verdict {
        Ok(template_id) => {
            if template_id.is_some() {
                state.persist().await?;
            }
            pass(&state, &id, template_id)
        }
        Err(failed) => Ok(Json(end(&state, &id, &process, failed))),
    }
}

fn check_password(state: &SimState, user: &str, password: &str) -> Result<Option<String>, Outcome> {
    match state.user(user) {
        Some(u) if u.password == password => Ok(None),
        _ => Err(outcome::PASSWORD_WRONG),
    }
}

/// Ends the process with `outcome`: `FAILED`, or the `OK` of a template test.
pub(super) fn end(
    state: &SimState,
    id: &str,
    process: &LogonProcess,
    failed: Outcome,
) -> LogonResponse {
    let mut live = state.live();
    let latest = live.logons.remove(id);
    logon_object(state, id, latest.as_ref().unwrap_or(process), failed)
}

/// The first round of U2F: one sign request per template, with a fresh single-use challenge
/// recorded on the process `id`.
pub(super) fn issue_challenge(
    state: &SimState,
    id: &str,
    templates: &[TemplateRecord],
) -> Result<LogonResponse, ApiError> {
    let mut random = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut random);
    let challenge = URL_SAFE_NO_PAD.encode(&random[..32]);
    let issued = Issued {
        challenge: challenge.clone(),
        at: Instant::now(),
    };
    let handles: Vec<String> = templates.iter().map(|t| t.key_handle.clone()).collect();
    let mut live = state.live();
    let process = live.logons.get_mut(id).ok_or_else(unknown_process)?;
    let previous = process.challenge.replace((issued.clone(), handles));
    let mut response = logon_object(state, id, process, outcome::U2F_WAITING_AUTH_RESPONSE);
    if let Some((previous, _)) = previous {
        live.challenges.remove(&previous.challenge);
    }
    live.challenges.insert(
        challenge.clone(),
        ChallengeOwner {
            at: issued.at,
            used: false,
        },
    );
    drop(live);
    response.sign_requests = templates
        .iter()
        .map(|t| SignRequest {
            version: U2F_V2.into(),
            app_id: t.app_id.clone(),
            key_handle: t.key_handle.clone(),
            challenge: challenge.clone(),
        })
        .collect();
    let mut extensions = Map::new();
    extensions.insert("appid".into(), json!(state.app_id));
    response.webauth_challenge = Some(WebauthChallenge {
        challenge: hex::encode(&random[32..]),
        allow_credentials: templates
            .iter()
            .map(|t| AllowCredential {
                kind: "public-key".into(),
                id: URL_SAFE_NO_PAD
                    .decode(&t.key_handle)
                    .map(hex::encode)
                    .unwrap_or_default(),
                transports: vec!["usb".into()],
            })
            .collect(),
        user_verification: "discouraged".into(),
        extensions,
    });
    Ok(response)
}

/// The second round of U2F: every check of PROTOCOLS.md section 4, in its order. The challenge
/// is consumed whatever the outcome.
pub(super) fn check_sign_response(
    state: &SimState,
    id: &str,
    response: &SignResponse,
) -> Result<Option<String>, Outcome> {
    let seen = u2f_check::client_data(&response.client_data, TYP_SIGN);
    let (issued, user) = {
        let mut live = state.live();
        let Some(process) = live.logons.get_mut(id) else {
            return Err(outcome::U2F_CHALLENGE_MISMATCH);
        };
        let taken = process.challenge.take();
        let user = process.user.clone();
        if let Some((issued, _)) = &taken {
            if let Some(owner) = live.challenges.get_mut(&issued.challenge) {
                owner.used = true;
            }
        }
        let seen = seen.as_ref().map_err(|e| *e)?;
        let Some((issued, handles)) = taken else {
            return Err(outcome::U2F_CHALLENGE_MISMATCH);
        };
        if !handles.contains(&response.key_handle) {
            return Err(outcome::U2F_UNKNOWN_KEY_HANDLE);
        }
        if seen.challenge != issued.challenge {
            let replayed = live
                .challenges
                .get(&seen.challenge)
                .is_some_and(|owner| owner.used);
            return Err(if replayed {
                outcome::U2F_CHALLENGE_REUSED
            } else {
                outcome::U2F_CHALLENGE_MISMATCH
            });
        }
        (issued, user)
    };
    let seen = seen?;
    if issued.at.elapsed() > state.challenge_ttl() {
        return Err(outcome::U2F_CHALLENGE_EXPIRED);
    }
    u2f_check::origin(&seen, &state.facets)?;
    let owner = user_id(state, &user);
    let template = state
        .templates_of(&owner)
        .map_err(|_| outcome::U2F_UNKNOWN_KEY_HANDLE)?
        .into_iter()
        .find(|t| t.key_handle == response.key_handle)
        .ok_or(outcome::U2F_UNKNOWN_KEY_HANDLE)?;
    let public_key = hex::decode(&template.public_key).map_err(|_| outcome::U2F_BAD_SIGNATURE)?;
    let counter = u2f_check::assertion(response, &seen, &template.app_id, &public_key)?;
    raise_counter(state, &owner, &template.id, counter)?;
    Ok(Some(template.id))
}

/// Stores `counter` if it is above the stored one, atomically (section 4, logon step 5).
fn raise_counter(
    state: &SimState,
    owner: &str,
    template_id: &str,
    counter: u32,
) -> Result<(), Outcome> {
    let key = format!("{owner}/{template_id}");
    loop {
        let stored = state
            .templates
            .get(&key)
            .ok()
            .flatten()
            .ok_or(outcome::U2F_UNKNOWN_KEY_HANDLE)?;
        let mut template: TemplateRecord =
            decode(&stored).map_err(|_| outcome::U2F_UNKNOWN_KEY_HANDLE)?;
        if counter <= template.counter {
            return Err(outcome::U2F_COUNTER_NOT_INCREASED);
        }
        template.counter = counter;
        match state
            .templates
            .compare_and_swap(&key, Some(stored), Some(encode(&template)))
        {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => continue,
            Err(_) => return Err(outcome::U2F_UNKNOWN_KEY_HANDLE),
        }
    }
}

/// A method passed: `NEXT` while a chain goes on, `OK` with a login session when one is complete.
pub(super) fn pass(state: &SimState, id: &str, template_id: Option<String>) -> Answer {
    let mut live = state.live();
    let process = live.logons.get_mut(id).ok_or_else(unknown_process)?;
    let Some(method) = process.current.take() else {
        return Err(unknown_process());
    };
    process.fido2 = None;
    process.challenge = None;
    process.completed.push(method);
    let chains = &state.config.chains;
    let completed = process.completed.clone();
    process
        .chains
        .retain(|&i| chains[i].methods.starts_with(&completed));
    let done = process
        .chains
        .iter()
        .copied()
        .find(|&i| chains[i].methods.len() == completed.len());
    let Some(done) = done else {
        return Ok(Json(logon_object(state, id, process, outcome::NEXT)));
    };
    let process = live.logons.remove(id).ok_or_else(unknown_process)?;
    drop(live);
    let session = random_alphanumeric();
    state.open_login_session(&session, &process.user, &process.event)?;
    let mut response = logon_object(state, id, &process, outcome::OK);
    complete(
        state,
        &mut response,
        &process.user,
        session,
        chain_object(done, &chains[done]),
        template_id,
    );
    Ok(Json(response))
}
