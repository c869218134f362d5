//! A user's templates, and testing an enrolled U2F template as AA's portal does (PROTOCOLS.md 1.9;
//! the shapes live in [`crate::aa::portal`]): a logon opens a login session; the first test round
//! names the server's origin as appId and gets the template's sign request and a process id; the
//! token signs; the second round sends the sign response and the server answers `OK` or `FAILED`.
use super::enroll::login_session;
use super::logon::{answered, status_name, LogonRequest};
use super::{
    report_answer, AaHttp, ClientError, Endpoint, OriginPolicy, Step, StepSink, TokenClient,
};
use crate::aa::api::{LogonResponse, LogonStatus};
use crate::aa::portal::{
    TemplateList, TemplateSummary, TestBegin, TestSigned, TestTemplateRequest,
};
use crate::aa::{paths, U2F};

/// The user's templates, after a logon with `logon`.
pub async fn list(
    http: &AaHttp,
    endpoint: &Endpoint,
    token: Option<&mut TokenClient>,
    policy: &OriginPolicy,
    logon: &LogonRequest,
    steps: StepSink<'_>,
) -> Result<(String, Vec<TemplateSummary>), ClientError> {
    let (session, user_id) = login_session(http, endpoint, token, policy, logon, steps).await?;
    let templates = list_in(http, &session, &user_id, steps).await?;
    Ok((user_id, templates))
}

async fn list_in(
    http: &AaHttp,
    session: &str,
    user_id: &str,
    steps: StepSink<'_>,
) -> Result<Vec<TemplateSummary>, ClientError> {
    let path = paths::fill(paths::TEMPLATES, &[("user_id", user_id)]);
    let list: TemplateList = http.get(&path, &[("login_session_id", session)]).await?;
    steps(&Step {
        request: format!("GET {}", paths::TEMPLATES),
        status: match list.templates.len() {
            1 => "1 template".into(),
            n => format!("{n} templates"),
        },
        reason: None,
        msgid: None,
    });
    Ok(list.templates)
}

/// A template that passed its test.
#[derive(Debug, Clone)]
pub struct Tested {
    /// The template.
    pub template_id: String,
    /// Its owner.
    pub user_id: String,
    /// The token's counter in the test's signature.
    pub counter: u32,
}

/// Logs on with `logon`, then tests the U2F template `template` (default: the first of the user's
/// U2F templates that belongs to `token`).
pub async fn test(
    http: &AaHttp,
    endpoint: &Endpoint,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    logon: &LogonRequest,
    template: Option<&str>,
    steps: StepSink<'_>,
) -> Result<Tested, ClientError> {
    let (session, user_id) =
        login_session(http, endpoint, Some(&mut *token), policy, logon, steps).await?;
    let candidates: Vec<String> = match template {
        Some(id) => vec![id.to_owned()],
        None => list_in(http, &session, &user_id, steps)
            .await?
            .into_iter()
            .filter(|t| t.method_id == U2F)
            .map(|t| t.id)
            .collect(),
    };
    if candidates.is_empty() {
        return Err(ClientError::Config(format!(
            "{} has no {U2F} template to test",
            logon.user
        )));
    }
    let count = candidates.len();
    for template_id in candidates {
        let path = paths::fill(
            paths::TEMPLATE_TEST,
            &[("user_id", &user_id), ("template_id", &template_id)],
        );
        let first = TestTemplateRequest {
            login_session_id: session.clone(),
            logon_process_id: None,
            response: TestBegin {
                app_id: http.origin(),
            },
        };
        let asked = call(http, &path, &first, steps).await?;
        if asked.status != LogonStatus::MoreData {
            return Err(unexpected(&asked, "MORE_DATA with signRequests"));
        }
        if template.is_none() && !token.knows_any(&asked.sign_requests, policy).await? {
            continue;
        }
        let process = asked
            .logon_process_id
            .ok_or_else(|| ClientError::BadReply {
                call: format!("POST {}", paths::TEMPLATE_TEST),
                detail: "field `logon_process_id` is missing".into(),
            })?;
        let (sign_response, counter) = token.sign(&asked.sign_requests, policy).await?;
        steps(&Step {
            request: "token AUTHENTICATE".into(),
            status: format!("signed, counter {counter}"),
            reason: None,
            msgid: None,
        });
        let second = TestTemplateRequest {
            login_session_id: session.clone(),
            logon_process_id: Some(process),
            response: TestSigned { sign_response },
        };
        let answer = call(http, &path, &second, steps).await?;
        if answer.status != LogonStatus::Ok {
            return Err(unexpected(&answer, "OK"));
        }
        return Ok(Tested {
            template_id,
            user_id,
            counter,
        });
    }
    Err(ClientError::NotThisToken { offered: count })
}

/// One test round; `FAILED` becomes [`ClientError::Refused`].
async fn call<B: serde::Serialize>(
    http: &AaHttp,
    path: &str,
    body: &B,
    steps: StepSink<'_>,
) -> Result<LogonResponse, ClientError> {
    let answer: LogonResponse = http.post(path, body).await?;
    report_answer(steps, paths::TEMPLATE_TEST, answered(&answer))?;
    Ok(answer)
}

fn unexpected(answer: &LogonResponse, expected: &str) -> ClientError {
    ClientError::BadReply {
        call: format!("POST {}", paths::TEMPLATE_TEST),
        detail: format!(
            "expected {expected}, got status {}: {}",
            status_name(answer.status),
            answer.msg
        ),
    }
}
