//! The `FIDO2:1` method as AA's portal drives it (PROTOCOLS.md 1.9, shaped by
//! [`crate::aa::fido2`]): the `do_enroll` and `do_logon` rounds, and the WebAuthn exchanges on
//! `/api/v1/logon_method/FIDO2:1/{enroll,login}/{id}`, each an options request then a result.
//!
//! Every registration and assertion is verified as WebAuthn Level 2 §7.1 and §7.2 ask
//! ([`super::fido2_check`]), in this order (the first check that fails names the refusal):
//!
//! ```text
//!  registration (§7.1)                       assertion (§7.2)
//!  0  the challenge leaves the process        0  the challenge leaves the process
//!  1  clientData type, crossOrigin  (5-7)     1  clientData type, crossOrigin  (9-11)
//!  2  challenge: this process's, unused,      2  challenge: this process's, unused,
//!     unexpired                     (8)          unexpired                     (12)
//!  3  origin                        (9)       3  credential offered to the user (5)
//!  4  rpIdHash, UP, UV          (13-15)       4  user handle the user's         (6)
//!  5  algorithm asked for, key valid (16)     5  origin                        (13)
//!  6  fmt, attestation statement (18-19)      6  rpIdHash, UP, UV          (15-17)
//!  7  trust, if the policy asks  (20-21)      7  signature                     (20)
//!  8  rawId = the attested id                 8  counter rises                 (21)
//!  9  not enrolled already          (22)
//! ```
//!
//! Step 0 is the single use: a result takes the process's challenge out under the lock before
//! anything of it is read, so of two results racing for one challenge exactly one is checked;
//! the other finds none and is refused (`FIDO2_CHALLENGE_REUSED`) without touching the process.
//! A refused result answers `{status:"failed", errorMessage:"REASON: message: detail"}`, and the
//! `do_enroll` or `do_logon` that follows answers `FAILED` with the reason (the detail in `msg`)
//! and ends the process. A fault of the emulator's own storage is a 500 error body, not a refusal.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::config::Requirement;
use super::enroll::{answer, process_of, response_as};
use super::error::ApiError;
use super::fido2_check::{self, ClientDataSeen, Policy, Trust};
use super::records::{random_hex_id, TemplateRecord};
use super::responses::{qualified_name, user_id};
use super::state::{decode, encode, ChallengeOwner, Issued, ProcessOwner, SimState};
use crate::aa::errors;
use crate::aa::fido2::{
    AuthenticatorSelection, CreationOptions, CredentialAssertion, CredentialAttestation,
    CredentialDescriptor, CredentialParameter, EnrollRpId, ExchangeResult, OptionsRequest,
    RelyingParty, RequestOptions, User, STATUS_FAILED, STATUS_OK,
};
use crate::aa::outcome::{self, Outcome, Refusal};
use crate::aa::portal::DoEnrollResponse;
use crate::aa::FIDO2;
use crate::webauthn::{self, PUBLIC_KEY};

/// The user's FIDO2 templates.
pub(super) fn credentials_of(
    state: &SimState,
    user: &str,
) -> Result<Vec<TemplateRecord>, ApiError> {
    Ok(state
        .templates_of(&user_id(state, user))?
        .into_iter()
        .filter(|t| t.method_id == FIDO2)
        .collect())
}

/// The user handle of a configured user: the 16 bytes of its id.
fn user_handle(state: &SimState, user: &str) -> Vec<u8> {
    hex::decode(user_id(state, user)).unwrap_or_default()
}

fn policy(state: &SimState) -> Policy<'_> {
    Policy {
        rp_id: &state.rp_id,
        requires_uv: state.config.fido2.requires_uv(),
    }
}

/// `value` as `T`, or a 400 naming the field that is wrong.
fn body_as<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let name = if path == "." || path == "?" {
            "body".to_owned()
        } else {
            path
        };
        ApiError::bad_field(&name, e.into_inner())
    })
}

/// The method in the path must be `FIDO2:1`.
fn check_method(method_id: &str) -> Result<(), ApiError> {
    if method_id == FIDO2 {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "method_id",
            format!("the emulator runs no WebAuthn exchange for {method_id:?}"),
            "path",
        ))
    }
}

/// A result (`rawId`, `response`) rather than an options request.
fn is_result(body: &Value) -> bool {
    body.as_object()
        .is_some_and(|b| b.contains_key("response") || b.contains_key("rawId"))
}

/// A session id in the body, if the client sent one, must be `expected`.
fn check_session(body: &Value, key: &str, expected: &str) -> Result<(), ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(given)) if given == expected => Ok(()),
        Some(_) => Err(ApiError::bad_field(
            key,
            "not the session that started the process",
        )),
    }
}

/// `username`, if given, must name the process's user.
fn check_username(state: &SimState, body: &Value, user: &str) -> Result<(), ApiError> {
    match body.get("username") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(name)) if state.user(name).is_some_and(|u| u.name == user) => Ok(()),
        Some(_) => Err(ApiError::with(
            errors::USER_NOT_FOUND,
            "body",
            "username is not the user of the process",
        )),
    }
}

fn exchange_result(verdict: Result<(), Refusal>) -> Json<Value> {
    let result = match verdict {
        Ok(()) => ExchangeResult {
            status: STATUS_OK.into(),
            error_message: String::new(),
        },
        Err(refused) => ExchangeResult {
            status: STATUS_FAILED.into(),
            error_message: format!("{}: {}", refused.reason(), refused.message()),
        },
    };
    Json(serde_json::to_value(result).unwrap_or_default())
}

/// Why a result was not taken: refused (the exchange answers `failed`, the next round `FAILED`
/// with the reason), or the emulator's own storage failed (a 500 error body, as AA answers a
/// fault of its own; the client did nothing wrong).
enum Stop {
    Refused(Refusal),
    Server(ApiError),
}

impl From<Outcome> for Stop {
    fn from(outcome: Outcome) -> Self {
        Self::Refused(outcome.into())
    }
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<ApiError> for Stop {
    fn from(error: ApiError) -> Self {
        Self::Server(error)
    }
}

/// A server fault out of the verdict, to be answered as an error.
fn server_fault<T>(verdict: Result<T, Stop>) -> Result<Result<T, Refusal>, ApiError> {
    match verdict {
        Ok(value) => Ok(Ok(value)),
        Err(Stop::Refused(refusal)) => Ok(Err(refusal)),
        Err(Stop::Server(error)) => Err(error),
    }
}

/// A fresh challenge, base64url, recorded as issued so that a replay is recognised.
fn new_challenge(state: &SimState) -> Issued {
    let mut random = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut random);
    let issued = Issued {
        challenge: URL_SAFE_NO_PAD.encode(random),
        at: Instant::now(),
    };
    state.live().challenges.insert(
        issued.challenge.clone(),
        ChallengeOwner {
            at: issued.at,
            used: false,
        },
    );
    issued
}

/// Marks `issued` answered in the register of challenges, so that a replay of it to any process
/// is recognised as one.
fn mark_answered(challenges: &mut HashMap<String, ChallengeOwner>, issued: &Issued) {
    if let Some(owner) = challenges.get_mut(&issued.challenge) {
        owner.used = true;
    }
}

/// Checks the client data's challenge against `taken`, the challenge this result took out of its
/// process (under the lock, before anything of the result was read): none taken means another
/// result took it first, or none was issued. Another process's challenge is a mismatch, one
/// answered before a replay, an old one expired.
fn check_challenge(
    state: &SimState,
    taken: Option<&Issued>,
    seen: &ClientDataSeen,
) -> Result<(), Outcome> {
    let live = state.live();
    let answered_before = || {
        live.challenges
            .get(&seen.challenge)
            .is_some_and(|owner| owner.used)
    };
    let Some(issued) = taken else {
        return Err(if answered_before() {
            outcome::FIDO2_CHALLENGE_REUSED
        } else {
            outcome::FIDO2_CHALLENGE_MISMATCH
        });
    };
    if seen.challenge != issued.challenge {
        return Err(if answered_before() {
            outcome::FIDO2_CHALLENGE_REUSED
        } else {
            outcome::FIDO2_CHALLENGE_MISMATCH
        });
    }
    if issued.at.elapsed() > state.challenge_ttl() {
        return Err(outcome::FIDO2_CHALLENGE_EXPIRED);
    }
    Ok(())
}

/// Why a result that found no challenge in its process is refused: its client data does not
/// read, or its challenge was answered already (a replay) or never issued to it.
fn refusal_without_challenge(
    client_data_json: &str,
    expected_type: &str,
    state: &SimState,
) -> Refusal {
    let refused = match fido2_check::client_data(client_data_json, expected_type) {
        Ok(seen) => check_challenge(state, None, &seen)
            .err()
            .unwrap_or(outcome::FIDO2_CHALLENGE_MISMATCH),
        Err(failed) => failed,
    };
    Refusal::new(
        refused,
        "the process has no challenge waiting: another result took it, or none was issued",
    )
}

fn descriptors(templates: &[TemplateRecord]) -> Vec<CredentialDescriptor> {
    templates
        .iter()
        .map(|t| CredentialDescriptor {
            kind: PUBLIC_KEY.into(),
            id: t.key_handle.clone(),
            transports: None,
        })
        .collect()
}

/// `do_enroll` of a `FIDO2:1` enroll process: first `response:{rp_id}` (→ `MORE_DATA`), then,
/// after the exchange, `OK` or the exchange's `FAILED`.
pub(super) fn do_enroll(
    state: &SimState,
    id: &str,
    process: &super::state::EnrollProcess,
    response: Value,
) -> Result<DoEnrollResponse, ApiError> {
    if process.fido2.confirmed {
        return Ok(answer(outcome::ENROLLMENT_DONE));
    }
    let mut live = state.live();
    let stored = live
        .enrolls
        .get_mut(id)
        .ok_or_else(super::enroll::unknown_process)?;
    if let Some(failed) = stored.fido2.failed.take() {
        live.enrolls.remove(id);
        let mut reply = answer(failed.outcome);
        reply.msg = failed.message();
        return Ok(reply);
    }
    if stored.registration.is_some() {
        stored.fido2.confirmed = true;
        return Ok(answer(outcome::ENROLLED));
    }
    if !stored.fido2.begun {
        drop(live);
        let EnrollRpId { rp_id } = response_as(response)?;
        let mut live = state.live();
        if rp_id != state.rp_id {
            live.enrolls.remove(id);
            return Ok(answer(outcome::FIDO2_RP_ID_MISMATCH));
        }
        if let Some(stored) = live.enrolls.get_mut(id) {
            stored.fido2.begun = true;
        }
    }
    Ok(answer(outcome::FIDO2_WAITING_ATTESTATION))
}

/// `POST /api/v1/logon_method/FIDO2:1/enroll/{enroll_process_id}`: the creation options, then
/// the attestation.
pub async fn enroll_exchange(
    State(state): State<Arc<SimState>>,
    Path((method_id, id)): Path<(String, String)>,
    super::error::ApiJson(body): super::error::ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    check_method(&method_id)?;
    let process = {
        let live = state.live();
        live.enrolls
            .get(&id)
            .cloned()
            .ok_or_else(super::enroll::unknown_process)?
    };
    check_session(&body, "login_session_id", &process.login_session)?;
    let process = process_of(&state, &id, &process.login_session)?;
    if process.method != FIDO2 {
        return Err(ApiError::wrong_step(format!(
            "enroll_process_id: the process enrolls {}",
            process.method
        )));
    }
    if !is_result(&body) {
        if !process.fido2.begun || process.registration.is_some() || process.fido2.failed.is_some()
        {
            return Err(ApiError::wrong_step(
                "enroll_process_id: no WebAuthn exchange is due: do_enroll with response.rp_id first, once",
            ));
        }
        check_username(&state, &body, &process.user)?;
        let request: OptionsRequest = body_as(body)?;
        return creation_options(&state, &id, &process.user, request);
    }
    if !process.fido2.begun {
        return Err(ApiError::wrong_step(
            "enroll_process_id: no WebAuthn exchange is due: do_enroll with response.rp_id first",
        ));
    }
    let attestation: CredentialAttestation = body_as(body)?;
    // The challenge leaves the process before anything of the result is read: of two results
    // racing for it, one is checked and the other finds none.
    let taken = {
        let mut live = state.live();
        let live = &mut *live;
        let stored = live
            .enrolls
            .get_mut(&id)
            .ok_or_else(super::enroll::unknown_process)?;
        let taken = stored.challenge.take();
        if let Some(issued) = &taken {
            mark_answered(&mut live.challenges, issued);
        }
        taken
    };
    let Some(issued) = taken else {
        // Refused, and the process is left as the result that took the challenge left it.
        return Ok(exchange_result(Err(refusal_without_challenge(
            &attestation.response.client_data_json,
            webauthn::TYPE_CREATE,
            &state,
        ))));
    };
    let verdict = server_fault(check_attestation(&state, &issued, &attestation))?;
    let mut live = state.live();
    let stored = live
        .enrolls
        .get_mut(&id)
        .ok_or_else(super::enroll::unknown_process)?;
    Ok(exchange_result(match verdict {
        Ok(template) => {
            stored.registration = Some(template);
            Ok(())
        }
        Err(failed) => {
            stored.fido2.failed = Some(failed.clone());
            Err(failed)
        }
    }))
}

fn creation_options(
    state: &SimState,
    id: &str,
    user: &str,
    request: OptionsRequest,
) -> Result<Json<Value>, ApiError> {
    let config = &state.config.fido2;
    let issued = new_challenge(state);
    let enrolled = credentials_of(state, user)?;
    if let Some(stored) = state.live().enrolls.get_mut(id) {
        stored.challenge = Some(issued.clone());
    }
    let options = CreationOptions {
        status: STATUS_OK.into(),
        error_message: String::new(),
        challenge: issued.challenge,
        rp: RelyingParty {
            name: config.rp_name.clone(),
            id: Some(state.rp_id.clone()),
        },
        user: User {
            id: URL_SAFE_NO_PAD.encode(user_handle(state, user)),
            name: qualified_name(state, user),
            display_name: request.display_name,
        },
        pub_key_cred_params: config
            .algorithms
            .iter()
            .map(|&alg| CredentialParameter {
                kind: PUBLIC_KEY.into(),
                alg,
            })
            .collect(),
        timeout: Some(state.config.challenge_ttl_ms),
        exclude_credentials: descriptors(&enrolled),
        authenticator_selection: Some(AuthenticatorSelection {
            authenticator_attachment: None,
            require_resident_key: Some(config.resident_key == Requirement::Required),
            resident_key: Some(config.resident_key.as_str().into()),
            user_verification: Some(config.user_verification.as_str().into()),
        }),
        attestation: Some(config.attestation.as_str().into()),
        extensions: Map::new(),
    };
    Ok(Json(serde_json::to_value(options).unwrap_or_default()))
}

/// WebAuthn Level 2 §7.1, in the order of the module docs' table, from step 1 on.
fn check_attestation(
    state: &SimState,
    issued: &Issued,
    attestation: &CredentialAttestation,
) -> Result<TemplateRecord, Stop> {
    let seen = fido2_check::client_data(
        &attestation.response.client_data_json,
        webauthn::TYPE_CREATE,
    )?;
    check_challenge(state, Some(issued), &seen)?;
    fido2_check::origin(&seen, &state.facets)?;
    let config = &state.config.fido2;
    let registration = fido2_check::registration(
        &attestation.response.attestation_object,
        &seen,
        policy(state),
        Trust {
            policy: config.attestation_policy,
            cas: &state.trusted_cas,
            algorithms: &config.algorithms,
        },
    )?;
    let raw_id = fido2_check::base64url(&attestation.raw_id)?;
    if raw_id != registration.credential_id
        || fido2_check::base64url(&attestation.id)? != registration.credential_id
    {
        return Err(Refusal::new(
            outcome::FIDO2_MALFORMED_RESPONSE,
            "rawId and id are not the attested credential's id",
        )
        .into());
    }
    let credential_id = URL_SAFE_NO_PAD.encode(&registration.credential_id);
    if state.key_handle_enrolled(&credential_id)? {
        return Err(outcome::FIDO2_ALREADY_ENROLLED.into());
    }
    Ok(TemplateRecord {
        id: random_hex_id(),
        method_id: FIDO2.into(),
        key_handle: credential_id,
        public_key: hex::encode(&registration.public_key),
        counter: registration.counter,
        app_id: state.rp_id.clone(),
        certificate: registration
            .certificate
            .as_deref()
            .map(hex::encode)
            .unwrap_or_default(),
        comment: String::new(),
        category_id: String::new(),
    })
}

/// `POST /api/v1/logon_method/FIDO2:1/login/{logon_process_id}`: the request options, then the
/// assertion.
pub async fn login_exchange(
    State(state): State<Arc<SimState>>,
    Path((method_id, id)): Path<(String, String)>,
    super::error::ApiJson(body): super::error::ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    check_method(&method_id)?;
    let result = is_result(&body);
    // A result takes the challenge out of the process in the same lock that reads the process,
    // before anything of the result is read: of two results racing for it, one is checked and
    // the other finds none.
    let (process, taken) = {
        let mut live = state.live();
        let live = &mut *live;
        let process = live
            .logons
            .get_mut(&id)
            .ok_or_else(super::logon::unknown_process)?;
        match &process.owner {
            ProcessOwner::Endpoint(owner) => check_session(&body, "endpoint_session_id", owner)?,
            ProcessOwner::TemplateTest { .. } => {
                return Err(ApiError::with(
                    errors::LOGON_PROCESS_NOT_FOUND,
                    "body",
                    "the process is a template test",
                ))
            }
        }
        if process.current.as_deref() != Some(FIDO2) || (!result && process.fido2.is_some()) {
            return Err(ApiError::wrong_step(
                "logon_process_id: no FIDO2:1 exchange is due in this process",
            ));
        }
        process.touched = Instant::now();
        let taken = if result {
            process.challenge.take()
        } else {
            None
        };
        let process = process.clone();
        if let Some((issued, _)) = &taken {
            mark_answered(&mut live.challenges, issued);
        }
        (process, taken)
    };
    if !result {
        check_username(&state, &body, &process.user)?;
        return request_options(&state, &id, &process.user);
    }
    let assertion: CredentialAssertion = body_as(body)?;
    let Some(taken) = taken else {
        // Refused, and the process is left as the result that took the challenge left it.
        return Ok(exchange_result(Err(refusal_without_challenge(
            &assertion.response.client_data_json,
            webauthn::TYPE_GET,
            &state,
        ))));
    };
    let verdict = server_fault(check_assertion(&state, taken, &process, &assertion))?;
    if verdict.is_ok() {
        state.persist().await?;
    }
    let mut live = state.live();
    if let Some(stored) = live.logons.get_mut(&id) {
        stored.fido2 = Some(verdict.clone());
    }
    Ok(exchange_result(verdict.map(drop)))
}

fn request_options(state: &SimState, id: &str, user: &str) -> Result<Json<Value>, ApiError> {
    let config = &state.config.fido2;
    let templates = credentials_of(state, user)?;
    if templates.is_empty() {
        let failed = Refusal::from(outcome::FIDO2_NOT_ENROLLED);
        if let Some(stored) = state.live().logons.get_mut(id) {
            stored.fido2 = Some(Err(failed.clone()));
        }
        return Ok(exchange_result(Err(failed)));
    }
    let issued = new_challenge(state);
    let offered: Vec<String> = templates.iter().map(|t| t.key_handle.clone()).collect();
    {
        let mut live = state.live();
        let stored = live
            .logons
            .get_mut(id)
            .ok_or_else(super::logon::unknown_process)?;
        if let Some((previous, _)) = stored.challenge.replace((issued.clone(), offered)) {
            live.challenges.remove(&previous.challenge);
        }
    }
    let options = RequestOptions {
        status: STATUS_OK.into(),
        error_message: String::new(),
        raw_challenge: Some(issued.challenge.clone()),
        challenge: issued.challenge,
        timeout: Some(state.config.challenge_ttl_ms),
        rp_id: Some(state.rp_id.clone()),
        allow_credentials: if config.allow_credentials {
            descriptors(&templates)
        } else {
            Vec::new()
        },
        user_verification: Some(config.user_verification.as_str().into()),
        extensions: Map::new(),
    };
    Ok(Json(serde_json::to_value(options).unwrap_or_default()))
}

/// WebAuthn Level 2 §7.2, in the order of the module docs' table, from step 1 on; the counter
/// raised when every check passed. Returns the template that signed.
fn check_assertion(
    state: &SimState,
    (issued, offered): (Issued, Vec<String>),
    process: &super::state::LogonProcess,
    assertion: &CredentialAssertion,
) -> Result<String, Stop> {
    let seen = fido2_check::client_data(&assertion.response.client_data_json, webauthn::TYPE_GET)?;
    let challenge = check_challenge(state, Some(&issued), &seen);
    // §7.2 steps 5-6: the credential is one offered to this user, the user handle the user's.
    let raw_id = fido2_check::base64url(&assertion.raw_id)?;
    if fido2_check::base64url(&assertion.id)? != raw_id {
        return Err(Refusal::new(outcome::FIDO2_MALFORMED_RESPONSE, "rawId and id differ").into());
    }
    let credential_id = URL_SAFE_NO_PAD.encode(&raw_id);
    if challenge.is_ok() && !offered.contains(&credential_id) {
        return Err(outcome::FIDO2_UNKNOWN_CREDENTIAL.into());
    }
    challenge?;
    // The user handle, when given, must be the user's; with no allow list it must be given.
    let handle_ok = match &assertion.response.user_handle {
        Some(handle) => fido2_check::base64url(handle)? == user_handle(state, &process.user),
        None => state.config.fido2.allow_credentials,
    };
    if !handle_ok {
        return Err(outcome::FIDO2_USER_HANDLE_MISMATCH.into());
    }
    fido2_check::origin(&seen, &state.facets)?;
    let owner = user_id(state, &process.user);
    let template = state
        .templates_of(&owner)?
        .into_iter()
        .find(|t| t.method_id == FIDO2 && t.key_handle == credential_id)
        .ok_or(outcome::FIDO2_UNKNOWN_CREDENTIAL)?;
    let public_key = hex::decode(&template.public_key)
        .ok()
        .and_then(|cose| webauthn::PublicKey::from_cose(&cose).ok())
        .ok_or_else(|| {
            ApiError::storage(format!("stored template {}: no public key", template.id))
        })?;
    let counter = fido2_check::assertion(&assertion.response, &seen, policy(state), &public_key)?;
    raise_counter(state, &owner, &template.id, counter)?;
    Ok(template.id)
}

/// Stores `counter` if it rises (§7.2 step 21), atomically.
fn raise_counter(
    state: &SimState,
    owner: &str,
    template_id: &str,
    counter: u32,
) -> Result<(), Stop> {
    let key = format!("{owner}/{template_id}");
    loop {
        let stored = state
            .templates
            .get(&key)
            .map_err(ApiError::storage)?
            .ok_or(outcome::FIDO2_UNKNOWN_CREDENTIAL)?;
        let mut template: TemplateRecord = decode(&stored)?;
        if !fido2_check::counter_rises(template.counter, counter) {
            return Err(Refusal::new(
                outcome::FIDO2_COUNTER_NOT_INCREASED,
                format!("{counter} after {}", template.counter),
            )
            .into());
        }
        template.counter = counter;
        match state
            .templates
            .compare_and_swap(&key, Some(stored), Some(encode(&template)))
            .map_err(ApiError::storage)?
        {
            Ok(()) => return Ok(()),
            Err(_) => continue,
        }
    }
}
