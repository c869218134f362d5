//! AA's `FIDO2:1` exchanges, as the portal runs them (PROTOCOLS.md 1.9; the shapes and paths are
//! in [`crate::aa::fido2`]): on the enroll or login path of a process, the options request, the
//! token's ceremony ([`super::webauthn`]), then the result. The `do_enroll` / `do_logon` rounds
//! around them are the callers'.
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::webauthn::{Creation, Request};
use super::{one_line, AaHttp, ClientError, OriginPolicy, Step, StepSink, TokenClient};
use crate::aa::fido2::{
    CreationOptions, ExchangeResult, OptionsRequest, RequestOptions, ENROLL_EXCHANGE,
    LOGIN_EXCHANGE, STATUS_OK,
};
use crate::aa::{paths, FIDO2};

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchanged {
    /// The server took the token's answer; its counter.
    Passed {
        /// The counter in the authenticator data.
        counter: u32,
    },
    /// The server said `failed`, with this message; the `do_*` that follows says why.
    Refused {
        /// `errorMessage`.
        message: String,
    },
}

/// The origin the client data claims: the server's (or `--origin`).
pub fn origin(http: &AaHttp, policy: &OriginPolicy) -> Result<String, ClientError> {
    policy.origin_for(&http.origin())
}

/// The page's host name: the `rp_id` of the `do_enroll` rounds.
pub fn page_host(origin: &str) -> String {
    reqwest::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

fn step(steps: StepSink<'_>, request: String, status: String) {
    steps(&Step {
        request,
        status,
        reason: None,
        msgid: None,
    });
}

/// The result's answer as a step, and as [`Exchanged`].
fn judged(steps: StepSink<'_>, pattern: &str, result: ExchangeResult, counter: u32) -> Exchanged {
    let status = if result.status == STATUS_OK {
        "ok".to_owned()
    } else {
        format!(
            "{}: {}",
            one_line(&result.status),
            one_line(&result.error_message)
        )
    };
    step(steps, format!("POST {pattern}"), status);
    if result.status == STATUS_OK {
        Exchanged::Passed { counter }
    } else {
        Exchanged::Refused {
            message: result.error_message,
        }
    }
}

/// Asks the exchange at `path` for `user`'s options: the options, or the server's refusal. A
/// refusal is the bare `{status, errorMessage}` of webauthn-simple-app, without any option, so
/// the status is read before the options are.
async fn ask_options<T: DeserializeOwned>(
    http: &AaHttp,
    path: &str,
    call: &str,
    user: &str,
) -> Result<Result<T, ExchangeResult>, ClientError> {
    let request = OptionsRequest {
        username: user.into(),
        display_name: user.into(),
    };
    let reply: Value = http.post(path, &request).await?;
    let bad_reply = |error: serde_json::Error| ClientError::BadReply {
        call: call.to_owned(),
        detail: error.to_string(),
    };
    let envelope: ExchangeResult = serde_json::from_value(reply.clone()).map_err(bad_reply)?;
    if envelope.status != STATUS_OK {
        return Ok(Err(envelope));
    }
    serde_json::from_value(reply).map(Ok).map_err(bad_reply)
}

/// The enroll exchange of process `process` for `user`: creation options, makeCredential, the
/// attestation.
pub async fn enroll(
    http: &AaHttp,
    process: &str,
    user: &str,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    steps: StepSink<'_>,
) -> Result<Exchanged, ClientError> {
    let path = paths::fill(
        ENROLL_EXCHANGE,
        &[("method_id", FIDO2), ("enroll_process_id", process)],
    );
    let call = format!("POST {ENROLL_EXCHANGE}");
    let origin = origin(http, policy)?;
    let options: CreationOptions = match ask_options(http, &path, &call, user).await? {
        Ok(options) => options,
        Err(refused) => return Ok(judged(steps, ENROLL_EXCHANGE, refused, 0)),
    };
    let creation = Creation::from_options(&options, &origin, &call)?;
    step(
        steps,
        format!("POST {ENROLL_EXCHANGE}"),
        format!("creation options for {}", one_line(&creation.rp_id)),
    );
    let made = token.make_credential(&creation, &origin).await?;
    step(
        steps,
        "token makeCredential".into(),
        format!(
            "{} credential, counter {}",
            crate::webauthn::algorithm_name(made.algorithm),
            made.counter
        ),
    );
    let result: ExchangeResult = http.post(&path, &made.attestation).await?;
    Ok(judged(steps, ENROLL_EXCHANGE, result, made.counter))
}

/// The login exchange of process `process` for `user`: request options, getAssertion, the
/// assertion.
pub async fn login(
    http: &AaHttp,
    process: &str,
    user: &str,
    token: &mut TokenClient,
    policy: &OriginPolicy,
    steps: StepSink<'_>,
) -> Result<Exchanged, ClientError> {
    let path = paths::fill(
        LOGIN_EXCHANGE,
        &[("method_id", FIDO2), ("logon_process_id", process)],
    );
    let call = format!("POST {LOGIN_EXCHANGE}");
    let origin = origin(http, policy)?;
    let options: RequestOptions = match ask_options(http, &path, &call, user).await? {
        Ok(options) => options,
        Err(refused) => return Ok(judged(steps, LOGIN_EXCHANGE, refused, 0)),
    };
    let request = Request::from_options(&options, &origin, &call)?;
    step(
        steps,
        format!("POST {LOGIN_EXCHANGE}"),
        format!(
            "request options, {} credential(s) offered",
            request.allow.len()
        ),
    );
    let asserted = token.get_assertion(&request, &origin).await?;
    step(
        steps,
        "token getAssertion".into(),
        format!("signed, counter {}", asserted.counter),
    );
    let result: ExchangeResult = http.post(&path, &asserted.assertion).await?;
    Ok(judged(steps, LOGIN_EXCHANGE, result, asserted.counter))
}
