//! U2F enrollment (PROTOCOLS.md 1.2; the U2F part is inferred, its shape lives in
//! [`crate::aa::enroll`]): a password logon to an enrollment event gives a `login_session_id`; the
//! enroll process hands out a register request; the token registers (unless it already knows one
//! of the user's handles); the registration is sent back and saved as a template.
use serde::Deserialize;

use super::logon::{status_name, LogonRequest, PASSWORD, U2F};
use super::{AaHttp, ClientError, Endpoint, OriginPolicy, Step, StepSink, TokenClient};
use crate::aa::api::LogonStatus;
use crate::aa::enroll::{
    DoEnrollRequest, DoEnrollResponse, EnrollResponse, EnrollStarted, SaveTemplateRequest,
    StartEnrollRequest, TemplateSaved,
};
use crate::aa::paths;

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

/// Enrolls `token` for a user.
pub async fn enroll(
    http: &AaHttp,
    endpoint: &Endpoint,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    request: &EnrollRequest,
    steps: StepSink<'_>,
) -> Result<Enrolled, ClientError> {
    let logged_on = super::logon::Logon::new(http, endpoint, None, policy, &mut *steps)
        .run(&LogonRequest {
            user: request.user.clone(),
            event: request.event.clone(),
            password: Some(request.password.clone()),
            first_method: Some(PASSWORD.into()),
        })
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
    let started: EnrollStarted = http
        .post(
            paths::ENROLL,
            &StartEnrollRequest {
                method_id: U2F.into(),
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
    let path = paths::fill(
        paths::DO_ENROLL,
        &[("enroll_process_id", &started.enroll_process_id)],
    );
    let asked = do_enroll(http, &path, &session, EnrollResponse::default(), steps).await?;
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
        &session,
        EnrollResponse {
            register_response: Some(register_response),
        },
        steps,
    )
    .await?;
    if answered.status != LogonStatus::Ok {
        return Err(ClientError::BadReply {
            call: format!("POST {}", paths::DO_ENROLL),
            detail: format!("expected OK, got {}", status_name(answered.status)),
        });
    }
    let templates = paths::fill(paths::TEMPLATES, &[("user_id", &user_id)]);
    let saved: TemplateSaved = http
        .post(
            &templates,
            &SaveTemplateRequest {
                login_session_id: session,
                enroll_process_id: started.enroll_process_id,
                category_id: String::new(),
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

async fn do_enroll(
    http: &AaHttp,
    path: &str,
    session: &str,
    response: EnrollResponse,
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
    let status = status_name(answer.status);
    steps(&Step {
        request: format!("POST {}", paths::DO_ENROLL),
        status: status.clone(),
        reason: answer.reason.clone(),
        msgid: answer.msgid.clone(),
    });
    if answer.status == LogonStatus::Failed {
        return Err(ClientError::Refused {
            call: format!("POST {}", paths::DO_ENROLL),
            status,
            reason: answer.reason,
            msg: answer.msg,
        });
    }
    Ok(answer)
}
