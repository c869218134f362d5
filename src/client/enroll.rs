//! U2F enrollment as AA's own portal does it (PROTOCOLS.md 1.9; the shapes live in
//! [`crate::aa::portal`]): a logon to an enrollment event (a chain the client can complete without
//! the token being enrolled) gives a `login_session_id`; the enroll process, told the server's
//! origin as appId and the user's id, hands out a register request; the token registers (unless it
//! already knows one of the user's handles); the registration goes back with the register
//! request's appId, challenge and version, and is saved as a template. An enrollment that cannot
//! complete after its process started is aborted (`DELETE /api/v1/enroll/{id}`), as the portal
//! does, so the server holds nothing half-done.
use serde::Deserialize;

use super::logon::{status_name, LogonRequest};
use super::{
    report_answer, AaHttp, Answered, ClientError, Endpoint, OriginPolicy, Step, StepSink,
    TokenClient,
};
use crate::aa::api::LogonStatus;
use crate::aa::fido2::EnrollRpId;
use crate::aa::portal::{
    DoEnrollRequest, DoEnrollResponse, EnrollBegin, EnrollRegistered, EnrollStarted,
    SaveTemplateRequest, StartEnrollRequest, TemplateSaved,
};
use crate::aa::{paths, FIDO2, U2F};

/// The event the documentation uses for managing one's authenticators.
pub const DEFAULT_ENROLL_EVENT: &str = "Authenticators Management";

/// Who enrolls, through which event.
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    /// The user name.
    pub user: String,
    /// The user's password, for the logon that opens the enrollment.
    pub password: String,
    /// The event that permits enrollment.
    pub event: String,
    /// The chain of that logon [default: the first the client can complete with the password].
    pub chain: Option<String>,
    /// The template's category (empty: the default); a user has one U2F template per category.
    pub category: String,
    /// The template's comment.
    pub comment: String,
}

/// A saved U2F template.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The template id (`auth_t_id`).
    pub template_id: String,
    /// The user's id.
    pub user_id: String,
}

#[derive(Deserialize)]
struct UserFound {
    id: String,
}

/// A logon that opens a login session, for enrollment or template calls: the session and the
/// user's id (from the `OK`, else looked up by name).
pub(super) async fn login_session(
    http: &AaHttp,
    endpoint: &Endpoint,
    token: Option<&mut TokenClient>,
    policy: &OriginPolicy,
    request: &LogonRequest,
    steps: StepSink<'_>,
) -> Result<(String, String), ClientError> {
    let logged_on = super::logon::Logon::new(http, endpoint, token, policy, &mut *steps)
        .run(request)
        .await?;
    let session = logged_on.login_session_id;
    let user_id = match logged_on.user_id {
        Some(id) => id,
        None => {
            let user: UserFound = http
                .get(
                    paths::USERS,
                    &[("user_name", &request.user), ("login_session_id", &session)],
                )
                .await?;
            user.id
        }
    };
    Ok((session, user_id))
}

/// Enrolls `token` for a user with `U2F:1`.
pub async fn enroll(
    http: &AaHttp,
    endpoint: &Endpoint,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    request: &EnrollRequest,
    steps: StepSink<'_>,
) -> Result<Enrolled, ClientError> {
    enroll_method(http, endpoint, token, policy, request, U2F, steps).await
}

/// Enrolls `token` for a user with `FIDO2:1`: `do_enroll` with the page's host as `rp_id`, the
/// enroll exchange (creation options, makeCredential, the attestation), `do_enroll` again.
pub async fn enroll_fido2(
    http: &AaHttp,
    endpoint: &Endpoint,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    request: &EnrollRequest,
    steps: StepSink<'_>,
) -> Result<Enrolled, ClientError> {
    enroll_method(http, endpoint, token, policy, request, FIDO2, steps).await
}

/// Enrolls `token` for a user with `method` (`U2F:1` or `FIDO2:1`).
pub async fn enroll_method(
    http: &AaHttp,
    endpoint: &Endpoint,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    request: &EnrollRequest,
    method: &str,
    steps: StepSink<'_>,
) -> Result<Enrolled, ClientError> {
    if method != U2F && method != FIDO2 {
        return Err(ClientError::Config(format!(
            "--method {}: vu2f enrolls {U2F} and {FIDO2}",
            super::one_line(method)
        )));
    }
    let (session, user_id) = login_session(
        http,
        endpoint,
        None,
        policy,
        &LogonRequest {
            user: request.user.clone(),
            event: request.event.clone(),
            password: Some(request.password.clone()),
            chain: request.chain.clone(),
        },
        &mut *steps,
    )
    .await?;
    let started: EnrollStarted = http
        .post(
            paths::ENROLL,
            &StartEnrollRequest {
                method_id: method.into(),
                login_session_id: session.clone(),
            },
        )
        .await?;
    steps(&Step {
        request: format!("POST {}", paths::ENROLL),
        status: "enroll process started".into(),
        reason: None,
        msgid: None,
    });
    let process = started.enroll_process_id;
    let registered = if method == FIDO2 {
        register_fido2(http, &process, &session, token, policy, request, steps).await
    } else {
        register(
            http, &process, &session, &user_id, token, policy, request, steps,
        )
        .await
    };
    if let Err(error) = registered {
        abort(http, &process, &session, steps).await;
        return Err(error);
    }
    let templates = paths::fill(paths::TEMPLATES, &[("user_id", &user_id)]);
    let saved: TemplateSaved = http
        .post(
            &templates,
            &SaveTemplateRequest {
                login_session_id: session,
                enroll_process_id: process,
                category_id: request.category.clone(),
                comment: request.comment.clone(),
            },
        )
        .await?;
    steps(&Step {
        request: format!("POST {}", paths::TEMPLATES),
        status: format!("template {} saved", saved.auth_t_id),
        reason: None,
        msgid: None,
    });
    Ok(Enrolled {
        template_id: saved.auth_t_id,
        user_id,
    })
}

/// The two `do_enroll` rounds and the token's registration between them.
#[allow(clippy::too_many_arguments)]
async fn register(
    http: &AaHttp,
    process: &str,
    session: &str,
    user_id: &str,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    request: &EnrollRequest,
    steps: StepSink<'_>,
) -> Result<(), ClientError> {
    let path = paths::fill(paths::DO_ENROLL, &[("enroll_process_id", process)]);
    let begin = EnrollBegin {
        app_id: http.origin(),
        user_id: user_id.into(),
    };
    let asked = do_enroll(http, &path, session, begin, steps).await?;
    if asked.status != LogonStatus::MoreData {
        return Err(ClientError::BadReply {
            call: format!("POST {}", paths::DO_ENROLL),
            detail: format!(
                "expected MORE_DATA with registerRequests, got {}",
                status_name(asked.status)
            ),
        });
    }
    if token.knows_any(&asked.sign_requests, policy).await? {
        return Err(ClientError::Token(format!(
            "this token is already enrolled for {}",
            request.user
        )));
    }
    let register_response = token.register(&asked.register_requests, policy).await?;
    steps(&Step {
        request: "token REGISTER".into(),
        status: "registered".into(),
        reason: None,
        msgid: None,
    });
    let answered = do_enroll(
        http,
        &path,
        session,
        EnrollRegistered { register_response },
        steps,
    )
    .await?;
    if answered.status != LogonStatus::Ok {
        return Err(ClientError::BadReply {
            call: format!("POST {}", paths::DO_ENROLL),
            detail: format!("expected OK, got {}", status_name(answered.status)),
        });
    }
    Ok(())
}

/// The `FIDO2:1` rounds: `do_enroll {rp_id}`, the enroll exchange, `do_enroll {rp_id}` again.
async fn register_fido2(
    http: &AaHttp,
    process: &str,
    session: &str,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    request: &EnrollRequest,
    steps: StepSink<'_>,
) -> Result<(), ClientError> {
    let path = paths::fill(paths::DO_ENROLL, &[("enroll_process_id", process)]);
    let origin = super::fido2::origin(http, policy)?;
    let rp_id = EnrollRpId {
        rp_id: super::fido2::page_host(&origin),
    };
    let asked = do_enroll(http, &path, session, rp_id.clone(), steps).await?;
    if asked.status != LogonStatus::MoreData {
        return Err(ClientError::BadReply {
            call: format!("POST {}", paths::DO_ENROLL),
            detail: format!("expected MORE_DATA, got {}", status_name(asked.status)),
        });
    }
    let exchanged =
        super::fido2::enroll(http, process, &request.user, token, policy, steps).await?;
    let answered = do_enroll(http, &path, session, rp_id, steps).await?;
    if let super::fido2::Exchanged::Refused { message } = exchanged {
        return Err(ClientError::Refused {
            call: format!("POST {}", crate::aa::fido2::ENROLL_EXCHANGE),
            status: "failed".into(),
            reason: None,
            msgid: None,
            msg: message,
        });
    }
    if answered.status != LogonStatus::Ok {
        return Err(ClientError::BadReply {
            call: format!("POST {}", paths::DO_ENROLL),
            detail: format!("expected OK, got {}", status_name(answered.status)),
        });
    }
    Ok(())
}

/// `DELETE /api/v1/enroll/{id}`: a failed enrollment is given up. Best effort: the error that
/// made it fail is the one worth reporting, so this one is only shown as a step.
async fn abort(http: &AaHttp, process: &str, session: &str, steps: StepSink<'_>) {
    let path = paths::fill(paths::ENROLL_PROCESS, &[("enroll_process_id", process)]);
    let status = match http
        .delete_query(&path, &[("login_session_id", session)])
        .await
    {
        Ok(()) => "enroll process aborted".to_owned(),
        Err(e) => format!("could not abort: {e}"),
    };
    steps(&Step {
        request: format!("DELETE {}", paths::ENROLL_PROCESS),
        status,
        reason: None,
        msgid: None,
    });
}

async fn do_enroll<R: serde::Serialize>(
    http: &AaHttp,
    path: &str,
    session: &str,
    response: R,
    steps: StepSink<'_>,
) -> Result<DoEnrollResponse, ClientError> {
    let answer: DoEnrollResponse = http
        .post(
            path,
            &DoEnrollRequest {
                response,
                login_session_id: session.into(),
            },
        )
        .await?;
    report_answer(
        steps,
        paths::DO_ENROLL,
        Answered {
            status: answer.status,
            reason: &answer.reason,
            msgid: &answer.msgid,
            msg: &answer.msg,
        },
    )?;
    Ok(answer)
}
