//! The token side of the companion (PROTOCOLS.md 2.4 and 3.4): it builds the client data, asks the
//! token to AUTHENTICATE each offered key handle until one is its own (`6A80` means "not mine"), or
//! to REGISTER, and checks first that the appId is one the user allowed.
//!
//! A token is reached through [`TokenTransport`], which blocks; calls run on tokio's blocking pool.
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::ClientError;
use crate::aa::api::{SignRequest, SignResponse};
use crate::aa::origin_of;
use crate::aa::portal::{RegisterRequest, RegisterResponse};
use crate::transport::{exchange_awaiting_presence, TokenTransport, TransportError};
use crate::u2f::authenticator::Control;
use crate::u2f::messages::{
    self, AuthenticationResponse, ClientData, TYP_REGISTER, TYP_SIGN, U2F_V2,
};
use crate::u2f::StatusWord;

/// How often a request that waits for a touch is repeated (PROTOCOLS.md 2.1).
const PRESENCE_POLL: Duration = Duration::from_millis(100);

/// Which appIds the client signs for, and the origin it puts in the client data.
///
/// An appId is allowed when its origin is the server's own (the U2F same-origin rule), or when
/// the user allowed it by name (`--appid`). The origin is `--origin` if given; else the server's
/// own, or, for an appId allowed by name on another host, that appId's origin.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    server_origin: String,
    allowed_app_ids: Vec<String>,
    origin_override: Option<String>,
}

impl OriginPolicy {
    /// A policy for a server whose origin is `server_origin`.
    pub fn new(
        server_origin: String,
        allowed_app_ids: Vec<String>,
        origin_override: Option<String>,
    ) -> Self {
        Self {
            server_origin,
            allowed_app_ids,
            origin_override,
        }
    }

    /// The origin to claim for `app_id`, or an error if it must not be signed for.
    pub fn origin_for(&self, app_id: &str) -> Result<String, ClientError> {
        let app_origin = origin_of(app_id);
        let same_origin = app_origin.as_deref() == Some(self.server_origin.as_str());
        let allowed = self.allowed_app_ids.iter().any(|a| a == app_id);
        if !same_origin && !allowed {
            return Err(ClientError::AppIdNotAllowed {
                app_id: app_id.to_owned(),
                origin: self.server_origin.clone(),
            });
        }
        Ok(match (&self.origin_override, same_origin, app_origin) {
            (Some(origin), _, _) => origin.clone(),
            (None, false, Some(app_origin)) => app_origin,
            _ => self.server_origin.clone(),
        })
    }
}

/// A token, as the companion uses it.
pub struct TokenClient {
    transport: Option<Box<dyn TokenTransport + Send>>,
    touch_timeout: Duration,
    /// What getInfo told, once asked (`Some(None)`: no CTAP2), for [`super::webauthn`].
    pub(super) ctap2: Option<Option<super::webauthn::Ctap2Info>>,
}

/// What the token answered to one AUTHENTICATE, decided on the blocking pool.
enum SignAttempt {
    Signed(Vec<u8>),
    NotMine,
    Failed(ClientError),
}

impl TokenClient {
    /// A client of the token behind `transport`, which waits at most `touch_timeout` for a touch.
    pub fn new(transport: Box<dyn TokenTransport + Send>, touch_timeout: Duration) -> Self {
        Self {
            transport: Some(transport),
            touch_timeout,
            ctap2: None,
        }
    }

    /// Runs `f` with the transport: on the blocking pool when it may block, else right here.
    pub(super) async fn with_transport<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn TokenTransport) -> T + Send + 'static,
    ) -> Result<T, ClientError> {
        let lost = || ClientError::Token("the token was lost by an earlier failure".into());
        if let Some(transport) = self.transport.as_mut().filter(|t| !t.may_block()) {
            return Ok(f(transport.as_mut()));
        }
        let mut transport = self.transport.take().ok_or_else(lost)?;
        let (transport, result) = tokio::task::spawn_blocking(move || {
            let result = f(transport.as_mut());
            (transport, result)
        })
        .await
        .map_err(|e| ClientError::Token(format!("token task failed: {e}")))?;
        self.transport = Some(transport);
        Ok(result)
    }

    /// Signs the first of `requests` whose key handle belongs to the token.
    pub async fn sign(
        &mut self,
        requests: &[SignRequest],
        policy: &OriginPolicy,
    ) -> Result<(SignResponse, u32), ClientError> {
        if requests.is_empty() {
            return Err(ClientError::Token(
                "the server offered no key handle (signRequests is empty)".into(),
            ));
        }
        for (i, request) in requests.iter().enumerate() {
            let origin = policy.origin_for(&request.app_id)?;
            let key_handle = URL_SAFE_NO_PAD.decode(&request.key_handle).map_err(|e| {
                ClientError::Token(format!("signRequests[{i}].keyHandle is not base64url: {e}"))
            })?;
            let client_data = ClientData {
                typ: TYP_SIGN,
                challenge: &request.challenge,
                origin: &origin,
            }
            .to_bytes();
            let apdu = messages::authenticate_request(
                Control::EnforcePresenceAndSign,
                &messages::challenge_param(&client_data),
                &messages::app_param(&request.app_id),
                &key_handle,
            );
            let timeout = self.touch_timeout;
            let attempt = self
                .with_transport(move |t| authenticate(t, &apdu, timeout))
                .await?;
            match attempt {
                SignAttempt::NotMine => continue,
                SignAttempt::Failed(error) => return Err(error),
                SignAttempt::Signed(data) => {
                    let counter = AuthenticationResponse::try_from(&data[..])
                        .map_err(|e| ClientError::Token(format!("authentication response: {e}")))?
                        .counter;
                    let response = SignResponse {
                        signature_data: URL_SAFE_NO_PAD.encode(&data),
                        client_data: URL_SAFE_NO_PAD.encode(&client_data),
                        key_handle: request.key_handle.clone(),
                    };
                    return Ok((response, counter));
                }
            }
        }
        Err(ClientError::NotThisToken {
            offered: requests.len(),
        })
    }

    /// Whether the token recognises one of `requests`' key handles (check-only, `0x07`): the
    /// exclude list of an enrollment.
    pub async fn knows_any(
        &mut self,
        requests: &[SignRequest],
        policy: &OriginPolicy,
    ) -> Result<bool, ClientError> {
        for request in requests {
            policy.origin_for(&request.app_id)?;
            let Ok(key_handle) = URL_SAFE_NO_PAD.decode(&request.key_handle) else {
                continue;
            };
            let apdu = messages::authenticate_request(
                Control::CheckOnly,
                &[0; 32],
                &messages::app_param(&request.app_id),
                &key_handle,
            );
            let response = self
                .with_transport(move |t| t.exchange(&apdu))
                .await?
                .map_err(token_error)?;
            if messages::status_of(&response) == Some(StatusWord::ConditionsNotSatisfied as u16) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Registers the token for the first of `requests` of version `U2F_V2`; the answer carries
    /// that request's appId, challenge and version, as AA's portal sends it (PROTOCOLS.md 1.9).
    pub async fn register(
        &mut self,
        requests: &[RegisterRequest],
        policy: &OriginPolicy,
    ) -> Result<RegisterResponse, ClientError> {
        let request = requests
            .iter()
            .find(|r| r.version == U2F_V2)
            .ok_or_else(|| {
                ClientError::Token(format!(
                    "the server sent no {U2F_V2} register request ({} in registerRequests)",
                    requests.len()
                ))
            })?;
        let origin = policy.origin_for(&request.app_id)?;
        let client_data = ClientData {
            typ: TYP_REGISTER,
            challenge: &request.challenge,
            origin: &origin,
        }
        .to_bytes();
        let apdu = messages::register_request(
            &messages::challenge_param(&client_data),
            &messages::app_param(&request.app_id),
        );
        let timeout = self.touch_timeout;
        let response = self
            .with_transport(move |t| exchange_awaiting_presence(t, &apdu, PRESENCE_POLL, timeout))
            .await?
            .map_err(token_error)?;
        let data = messages::split_status(&response).map_err(|e| sw_error("REGISTER", e))?;
        Ok(RegisterResponse {
            registration_data: URL_SAFE_NO_PAD.encode(data),
            client_data: URL_SAFE_NO_PAD.encode(&client_data),
            app_id: request.app_id.clone(),
            challenge: request.challenge.clone(),
            version: request.version.clone(),
        })
    }
}

fn authenticate(transport: &mut dyn TokenTransport, apdu: &[u8], timeout: Duration) -> SignAttempt {
    let response = match exchange_awaiting_presence(transport, apdu, PRESENCE_POLL, timeout) {
        Ok(response) => response,
        Err(e) => return SignAttempt::Failed(token_error(e)),
    };
    match messages::split_status(&response) {
        Ok(data) => SignAttempt::Signed(data.to_vec()),
        Err(messages::MessageError::Status(0x6A80 | 0x6700)) => SignAttempt::NotMine,
        Err(e) => SignAttempt::Failed(sw_error("AUTHENTICATE", e)),
    }
}

fn token_error(error: TransportError) -> ClientError {
    ClientError::Token(error.to_string())
}

fn sw_error(operation: &'static str, error: messages::MessageError) -> ClientError {
    match error {
        messages::MessageError::Status(0x6985) => ClientError::NoTouch { operation },
        other => ClientError::Token(format!("{operation}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_data_has_the_u2f_field_order() {
        let bytes = ClientData {
            typ: TYP_SIGN,
            challenge: "abc",
            origin: "https://aa.example",
        }
        .to_bytes();
        assert_eq!(
            bytes,
            br#"{"typ":"navigator.id.getAssertion","challenge":"abc","origin":"https://aa.example"}"#
        );
    }

    #[test]
    fn only_the_servers_origin_and_allowed_app_ids_are_signed_for() {
        let policy = OriginPolicy::new(
            "https://aa.example".into(),
            vec!["https://sso.example/app-id.json".into()],
            None,
        );
        assert_eq!(
            policy.origin_for("https://aa.example").unwrap(),
            "https://aa.example"
        );
        assert_eq!(
            policy
                .origin_for("https://aa.example:443/tenant/app-id.json")
                .unwrap(),
            "https://aa.example"
        );
        assert_eq!(
            policy
                .origin_for("https://sso.example/app-id.json")
                .unwrap(),
            "https://sso.example"
        );
        for refused in ["https://evil.example", "http://aa.example", "NetIQ", ""] {
            assert!(
                matches!(
                    policy.origin_for(refused),
                    Err(ClientError::AppIdNotAllowed { .. })
                ),
                "{refused}"
            );
        }
    }
}
