//! Faults for testing relying parties and hosts (`crate::u2f::faults` has what each does):
//! `POST /webauthn/authenticator/{id}/faults` arms them, `GET` reads what is still armed.
//!
//! ```text
//!  { "corruptSignature": true,     the next signature does not verify
//!    "counter": 1,                 the next signature reports this counter value
//!    "delayMs": 3000,              the next CTAPHID answer comes this late
//!    "busy": true }                the next CTAPHID request is answered CHANNEL_BUSY
//! ```
//! Every member is optional; each armed fault spoils one operation and disarms itself.
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::error::{parse_body, Answer, ApiError, ApiResult};
use super::fleet::Fleet;
use super::AuthenticatorPath;
use crate::u2f::Faults;

/// The longest delay a fault may hold an answer: longer than any host waits.
pub const MAX_DELAY: Duration = Duration::from_secs(120);

/// The faults to arm, as the request has them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArmFaults {
    #[serde(default)]
    corrupt_signature: bool,
    #[serde(default)]
    counter: Option<u32>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    busy: bool,
}

impl ArmFaults {
    /// The faults, or what is wrong with them (naming the field).
    pub fn checked(self) -> Result<Faults, String> {
        let delay = self.delay_ms.map(Duration::from_millis);
        if delay.is_some_and(|d| d > MAX_DELAY) {
            return Err(format!(
                "field `delayMs`: at most {} ms",
                MAX_DELAY.as_millis()
            ));
        }
        Ok(Faults {
            corrupt_signature: self.corrupt_signature,
            counter: self.counter,
            delay,
            busy: self.busy,
        })
    }
}

pub(super) async fn arm(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
    body: Bytes,
) -> ApiResult<Answer<Faults>> {
    let faults = parse_body::<ArmFaults>(&body)?
        .checked()
        .map_err(ApiError::invalid_argument)?;
    let authenticator = fleet.get(&path.id)?;
    let mut engine = authenticator.engine();
    engine.u2f_mut().faults_mut().arm(&faults);
    Ok(Answer(engine.u2f_mut().faults_mut().clone()))
}

pub(super) async fn armed(
    State(fleet): State<Arc<Fleet>>,
    Path(path): Path<AuthenticatorPath>,
) -> ApiResult<Answer<Faults>> {
    let authenticator = fleet.get(&path.id)?;
    let faults = authenticator.engine().u2f_mut().faults_mut().clone();
    Ok(Answer(faults))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_arms_what_it_names_and_refuses_what_is_out_of_range() {
        let armed: ArmFaults =
            serde_json::from_str(r#"{"counter": 2, "delayMs": 10, "busy": true}"#).unwrap();
        let faults = armed.checked().unwrap();
        assert_eq!(faults.counter, Some(2));
        assert_eq!(faults.delay, Some(Duration::from_millis(10)));
        assert!(faults.busy && !faults.corrupt_signature);
        let too_long: ArmFaults = serde_json::from_str(r#"{"delayMs": 999999}"#).unwrap();
        assert!(too_long
            .checked()
            .unwrap_err()
            .starts_with("field `delayMs`"));
        assert!(serde_json::from_str::<ArmFaults>(r#"{"corrupt": true}"#).is_err());
    }
}
