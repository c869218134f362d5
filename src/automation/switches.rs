//! What a test flips on a served authenticator while hosts use it (WebDriver's Set User
//! Verified, W3C WebAuthn Level 3 §11.9; the others are vu2f's), at
//! `/webauthn/authenticator/{authenticatorId}/…`:
//!
//! ```text
//!  POST …/uv          {"isUserVerified": bool}    built-in UV answers yes (auto) or no (deny)
//!  POST …/consenting  {"isUserConsenting": bool}  presence auto, or deny (like --presence deny)
//!  POST …/presence    {"policy": "auto" | "deny" | "delay:MS" | "touch"}
//!  POST …/press       {}                          the button, like `vu2f touch`
//!  POST …/replug      {}                          like `vu2f replug`: answered once the token is
//!                                                 back (its new hidraw node there)
//! ```
//! Each answers `{"value": null}`. A refusal by the policy is the token's own answer: CTAP2
//! `OPERATION_DENIED`, U2F `0x6985` until the host gives up.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::error::{parse_body, Answer, ApiError, ApiResult};
use super::fleet::{Fleet, VirtualAuthenticator};
use super::AuthenticatorPath;
use crate::device::replug::replug_all;
use crate::u2f::PresencePolicy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserVerified {
    is_user_verified: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserConsenting {
    is_user_consenting: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceSwitch {
    policy: String,
}

/// The policy that answers a switch's yes or no.
pub fn policy_of(yes: bool) -> PresencePolicy {
    if yes {
        PresencePolicy::Auto
    } else {
        PresencePolicy::Deny
    }
}

impl VirtualAuthenticator {
    /// Built-in user verification answers yes (`auto`) or no (`deny`) from now on.
    pub fn set_user_verified(&self, verified: bool) -> ApiResult<()> {
        if self.engine().set_uv_policy(policy_of(verified)) {
            Ok(())
        } else {
            Err(ApiError::invalid_argument(format!(
                "authenticator {:?} has no user verification (hasUserVerification was false)",
                self.id()
            )))
        }
    }

    /// Presence answers under `policy` from now on (`prompt` is serve's terminal's alone).
    pub fn set_presence(&self, policy: PresencePolicy) -> ApiResult<()> {
        if policy == PresencePolicy::Prompt {
            return Err(ApiError::invalid_argument(
                "field `policy`: prompt asks on serve's terminal; use touch and …/press",
            ));
        }
        self.engine().u2f_mut().presence_mut().set_policy(policy);
        Ok(())
    }

    /// Unplugs it and plugs it in again; returns once every device of it is back.
    pub async fn replug(&self) -> ApiResult<()> {
        replug_all(&self.controlled().plugs)
            .await
            .map_err(ApiError::unknown)
    }
}

pub(super) async fn user_verified(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
    body: Bytes,
) -> ApiResult<Answer<()>> {
    let switch: UserVerified = parse_body(&body)?;
    fleet
        .get(&path.id)?
        .set_user_verified(switch.is_user_verified)?;
    Ok(Answer(()))
}

pub(super) async fn user_consenting(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
    body: Bytes,
) -> ApiResult<Answer<()>> {
    let switch: UserConsenting = parse_body(&body)?;
    fleet
        .get(&path.id)?
        .set_presence(policy_of(switch.is_user_consenting))?;
    Ok(Answer(()))
}

pub(super) async fn presence(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
    body: Bytes,
) -> ApiResult<Answer<()>> {
    let switch: PresenceSwitch = parse_body(&body)?;
    let policy = switch
        .policy
        .parse()
        .map_err(|e| ApiError::invalid_argument(format!("field `policy`: {e}")))?;
    fleet.get(&path.id)?.set_presence(policy)?;
    Ok(Answer(()))
}

pub(super) async fn press(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
) -> ApiResult<Answer<()>> {
    fleet.get(&path.id)?.button().press();
    Ok(Answer(()))
}

pub(super) async fn replug(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
) -> ApiResult<Answer<()>> {
    fleet.get(&path.id)?.replug().await?;
    Ok(Answer(()))
}
