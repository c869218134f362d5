//! The logon flow (PROTOCOLS.md 1.1): the user's chains for the event, and the first one the
//! client can complete ([`super::chains`]); `POST /logon` with its first method, `do_logon` for
//! each method (for U2F: once to gather the sign request, once with the sign response), `/next`
//! with the chain's next method while the server answers `NEXT`, until `OK` with a
//! `login_session_id`.
use super::chains::{self, Abilities};
use super::{
    report_answer, AaHttp, Answered, ClientError, Endpoint, OriginPolicy, Step, StepSink,
    TokenClient,
};
use crate::aa::api::{
    Chain, DoLogonRequest, LogonResponse, LogonStatus, MethodResponse, NextMethodRequest,
    StartLogonRequest,
};
use crate::aa::paths;

pub use crate::aa::{FIDO2, PASSWORD, U2F};

/// More methods than any sane chain has: a server that keeps answering `NEXT` is broken.
const MAX_METHODS: usize = 16;

/// Who logs on, to what, with what.
#[derive(Debug, Clone)]
pub struct LogonRequest {
    /// The user name.
    pub user: String,
    /// The event.
    pub event: String,
    /// The password, for `PASSWORD:1` in the chain.
    pub password: Option<String>,
    /// The chain to use, by name [default: the first the client can complete].
    pub chain: Option<String>,
}

/// A completed logon.
#[derive(Debug, Clone)]
pub struct LoggedOn {
    /// The session the server opened.
    pub login_session_id: String,
    /// The user's id, when the server says it.
    pub user_id: Option<String>,
    /// The methods passed, in order.
    pub completed_methods: Vec<String>,
    /// The chain used.
    pub chain: String,
    /// The token's counter in the last signature, when U2F was one of the methods.
    pub counter: Option<u32>,
    /// The server's last answer, whole.
    pub response: LogonResponse,
}

/// One logon process, from start to `OK`.
pub struct Logon<'a> {
    http: &'a AaHttp,
    endpoint: &'a Endpoint,
    token: Option<&'a mut TokenClient>,
    policy: &'a OriginPolicy,
    steps: StepSink<'a>,
    counter: Option<u32>,
}

impl<'a> Logon<'a> {
    /// A logon through `endpoint`, with `token` for `U2F:1`.
    pub fn new(
        http: &'a AaHttp,
        endpoint: &'a Endpoint,
        token: Option<&'a mut TokenClient>,
        policy: &'a OriginPolicy,
        steps: StepSink<'a>,
    ) -> Self {
        Self {
            http,
            endpoint,
            token,
            policy,
            steps,
            counter: None,
        }
    }

    /// Reads the user's chains for the event, chooses one, and runs the logon to the end.
    pub async fn run(mut self, request: &LogonRequest) -> Result<LoggedOn, ClientError> {
        let listed = chains::read(self.http, self.endpoint, &request.user, &request.event).await?;
        // Whether the token speaks CTAP2 is asked only when a chain has FIDO2:1.
        let fido2 = match self.token.as_deref_mut() {
            Some(token) if listed.iter().any(|c| c.methods.iter().any(|m| m == FIDO2)) => {
                token.ctap2_info().await?.is_some()
            }
            _ => false,
        };
        let abilities = Abilities {
            u2f: self.token.is_some(),
            fido2,
            password: request.password.is_some(),
        };
        let chosen = chains::choose(
            &listed,
            abilities,
            request.chain.as_deref(),
            &request.user,
            &request.event,
        );
        (self.steps)(&Step {
            request: format!("GET {}", paths::CHAINS),
            status: match &chosen {
                Ok(chain) => format!("chain {}", chains::describe(chain)),
                Err(_) => format!("{} chains, none usable", listed.len()),
            },
            reason: None,
            msgid: None,
        });
        self.run_chain(request, &chosen?).await
    }

    /// Runs the logon through `chain` to the end.
    pub async fn run_chain(
        mut self,
        request: &LogonRequest,
        chain: &Chain,
    ) -> Result<LoggedOn, ClientError> {
        let first = chain.methods.first().cloned().ok_or_else(|| {
            ClientError::NoChain(format!("chain {} has no methods", chains::describe(chain)))
        })?;
        let started = self
            .call(
                paths::LOGON,
                paths::LOGON.into(),
                &StartLogonRequest {
                    method_id: first.clone(),
                    user_name: request.user.clone(),
                    event: request.event.clone(),
                    endpoint_session_id: self.endpoint.session_id().into(),
                },
            )
            .await?;
        let mut process_id = require_more_data(&started, paths::LOGON)?;
        let mut method = first;
        for _ in 0..MAX_METHODS {
            let answer = self.run_method(&process_id, &method, request).await?;
            if let Some(id) = &answer.logon_process_id {
                process_id = id.clone();
            }
            match answer.status {
                LogonStatus::Ok => return self.finish(answer, chain),
                LogonStatus::Next => {
                    method = next_method(&answer, chain)?;
                    let path = paths::fill(paths::NEXT, &[("logon_process_id", &process_id)]);
                    let started = self
                        .call(
                            paths::NEXT,
                            path,
                            &NextMethodRequest {
                                method_id: method.clone(),
                                endpoint_session_id: self.endpoint.session_id().into(),
                            },
                        )
                        .await?;
                    if let Some(id) = &started.logon_process_id {
                        process_id = id.clone();
                    }
                    if started.status != LogonStatus::MoreData {
                        return Err(unexpected(paths::NEXT, &started, "MORE_DATA"));
                    }
                }
                LogonStatus::MoreData | LogonStatus::Failed => {
                    return Err(unexpected(paths::DO_LOGON, &answer, "OK or NEXT"))
                }
            }
        }
        Err(ClientError::BadReply {
            call: format!("POST {}", paths::NEXT),
            detail: format!("the chain did not end after {MAX_METHODS} methods"),
        })
    }

    /// One method of the chain, up to the answer that passes it.
    async fn run_method(
        &mut self,
        process_id: &str,
        method: &str,
        request: &LogonRequest,
    ) -> Result<LogonResponse, ClientError> {
        let path = paths::fill(paths::DO_LOGON, &[("logon_process_id", process_id)]);
        if method == FIDO2 {
            return self.fido2(process_id, &path, request).await;
        }
        let response = match method {
            U2F => MethodResponse::U2f {
                sign_response: self.u2f_sign_response(&path).await?,
            },
            PASSWORD => MethodResponse::Password {
                password: request.password.clone().ok_or_else(|| {
                    ClientError::Config(
                        "the chain asks for PASSWORD:1: give the password (--password-file or VU2F_PASSWORD)".into(),
                    )
                })?,
            },
            other => {
                return Err(ClientError::Config(format!(
                    "the chain asks for {other}, which vu2f cannot answer (it answers {U2F}, {FIDO2} and {PASSWORD})"
                )))
            }
        };
        self.call(
            paths::DO_LOGON,
            path,
            &DoLogonRequest {
                response: Some(response),
                endpoint_session_id: self.endpoint.session_id().into(),
            },
        )
        .await
    }

    /// `FIDO2:1`: `do_logon` for `MORE_DATA`, the login exchange, then `do_logon` for the verdict.
    /// A result the server refused still goes on to `do_logon`, whose `FAILED` names the reason.
    async fn fido2(
        &mut self,
        process_id: &str,
        path: &str,
        request: &LogonRequest,
    ) -> Result<LogonResponse, ClientError> {
        let bare = DoLogonRequest {
            response: None,
            endpoint_session_id: self.endpoint.session_id().into(),
        };
        let gathered = self.call(paths::DO_LOGON, path.into(), &bare).await?;
        if gathered.status != LogonStatus::MoreData {
            return Err(unexpected(paths::DO_LOGON, &gathered, "MORE_DATA"));
        }
        let token = self.token.as_deref_mut().ok_or_else(|| {
            ClientError::Config("the chain asks for FIDO2:1: give a token (--token)".into())
        })?;
        let exchanged = super::fido2::login(
            self.http,
            process_id,
            &request.user,
            token,
            self.policy,
            &mut *self.steps,
        )
        .await?;
        let verdict = self.call(paths::DO_LOGON, path.into(), &bare).await?;
        match exchanged {
            super::fido2::Exchanged::Passed { counter } => {
                self.counter = Some(counter);
                Ok(verdict)
            }
            super::fido2::Exchanged::Refused { message } => Err(ClientError::Refused {
                call: format!("POST {}", crate::aa::fido2::LOGIN_EXCHANGE),
                status: "failed".into(),
                reason: None,
                msgid: None,
                msg: message,
            }),
        }
    }

    /// Gathers the sign request and has the token answer it.
    async fn u2f_sign_response(
        &mut self,
        path: &str,
    ) -> Result<crate::aa::api::SignResponse, ClientError> {
        let gathered = self
            .call(
                paths::DO_LOGON,
                path.into(),
                &DoLogonRequest {
                    response: None,
                    endpoint_session_id: self.endpoint.session_id().into(),
                },
            )
            .await?;
        if gathered.status != LogonStatus::MoreData {
            return Err(unexpected(paths::DO_LOGON, &gathered, "MORE_DATA"));
        }
        let token = self.token.as_deref_mut().ok_or_else(|| {
            ClientError::Config("the chain asks for U2F:1: give a token (--token)".into())
        })?;
        let (sign_response, counter) = token.sign(&gathered.sign_requests, self.policy).await?;
        self.counter = Some(counter);
        (self.steps)(&Step {
            request: "token AUTHENTICATE".into(),
            status: format!("signed, counter {counter}"),
            reason: None,
            msgid: None,
        });
        Ok(sign_response)
    }

    /// `POST path` and record the answer; `FAILED` becomes [`ClientError::Refused`].
    async fn call<B: serde::Serialize>(
        &mut self,
        pattern: &str,
        path: String,
        body: &B,
    ) -> Result<LogonResponse, ClientError> {
        let response: LogonResponse = self.http.post(&path, body).await?;
        report_answer(self.steps, pattern, answered(&response))?;
        Ok(response)
    }

    fn finish(self, response: LogonResponse, chain: &Chain) -> Result<LoggedOn, ClientError> {
        let login_session_id =
            response
                .login_session_id
                .clone()
                .ok_or_else(|| ClientError::BadReply {
                    call: format!("POST {}", paths::DO_LOGON),
                    detail: "status OK without a login_session_id".into(),
                })?;
        let user_id = response
            .extra
            .get("user_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        Ok(LoggedOn {
            login_session_id,
            user_id,
            completed_methods: response.completed_methods.clone(),
            chain: chain.name.clone(),
            counter: self.counter,
            response,
        })
    }
}

/// The status fields of a logon object.
pub(crate) fn answered(response: &LogonResponse) -> Answered<'_> {
    Answered {
        status: response.status,
        reason: &response.reason,
        msgid: &response.msgid,
        msg: &response.msg,
    }
}

/// The JSON name of a status.
pub fn status_name(status: LogonStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn require_more_data(response: &LogonResponse, pattern: &str) -> Result<String, ClientError> {
    if response.status != LogonStatus::MoreData {
        return Err(unexpected(pattern, response, "MORE_DATA"));
    }
    response
        .logon_process_id
        .clone()
        .ok_or_else(|| ClientError::BadReply {
            call: format!("POST {pattern}"),
            detail: "field `logon_process_id` is missing".into(),
        })
}

fn unexpected(pattern: &str, response: &LogonResponse, expected: &str) -> ClientError {
    ClientError::BadReply {
        call: format!("POST {pattern}"),
        detail: format!(
            "expected {expected}, got status {}{}: {}",
            status_name(response.status),
            response
                .reason
                .as_deref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default(),
            response.msg
        ),
    }
}

/// After `NEXT`: the method of `chain` that follows the completed ones; if the server completed
/// methods that are not the chain's start, the first chain of its answer that goes on from them.
fn next_method(response: &LogonResponse, chain: &Chain) -> Result<String, ClientError> {
    let done = &response.completed_methods;
    std::iter::once(chain)
        .chain(&response.chains)
        .filter(|chain| chain.methods.len() > done.len() && chain.methods.starts_with(done))
        .map(|chain| chain.methods[done.len()].clone())
        .next()
        .ok_or_else(|| ClientError::BadReply {
            call: format!("POST {}", paths::DO_LOGON),
            detail: format!(
                "status NEXT after {}, but neither the chain {} nor one in `chains` goes on",
                done.join(", "),
                chains::describe(chain)
            ),
        })
}
