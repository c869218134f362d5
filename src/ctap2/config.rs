//! authenticatorConfig (0x0D; CTAP 2.1 §6.11; `shared/spec/CTAP2.md` §10), and what alwaysUv
//! changes in makeCredential, getAssertion and U2F.
//!
//! ```text
//!  request  {1: subCommand, 2: subCommandParams, 3: pinUvAuthProtocol, 4: pinUvAuthParam}
//!  0x01 enableEnterpriseAttestation    INVALID_PARAMETER: no enterprise attestation (no `ep`)
//!  0x02 toggleAlwaysUv                 alwaysUv ← ¬alwaysUv
//!  0x03 setMinPINLength {1: newMinPINLength, 2: minPinLengthRPIDs [text], 3: forceChangePin}
//!  0xFF vendorPrototype                INVALID_PARAMETER: none (no vendorPrototypeConfigCommands)
//!
//!  pinUvAuthParam = authenticate(pinUvAuthToken, 32×FF ‖ 0D ‖ subCommand ‖ subCommandParams)
//! ```
//! The checks, in the spec's order (§6.11 steps 1–4): subCommand (absent `MISSING_PARAMETER`,
//! unsupported `INVALID_PARAMETER`); then, when the token has a PIN or built-in UV, or alwaysUv
//! is on (except toggleAlwaysUv on a token with neither: it could never be turned off), the
//! pinUvAuthParam (absent `PUAT_REQUIRED`), its protocol (absent `MISSING_PARAMETER`, unknown
//! `INVALID_PARAMETER`), the param against the token in use and its `acfg` permission
//! (`PIN_AUTH_INVALID`). A token with neither and alwaysUv off is configured unauthenticated.
//!
//! setMinPINLength (§6.11.4): the minimum only grows (`PIN_POLICY_VIOLATION`; at most 63, the
//! longest PIN), at most [`keystore::MAX_MIN_PIN_LENGTH_RP_IDS`] RP IDs (`INVALID_LENGTH`),
//! which replace the list; forceChangePin without a PIN `PIN_NOT_SET`; forcePINChange is set by
//! forceChangePin or by a minimum longer than the current PIN. Every change is flushed
//! (`keystore::config`) before the reply.
//!
//! alwaysUv (§6.11.2, §6.1.2 step 4, §6.2.2 step 3; CTAP2.md §12): a makeCredential or
//! getAssertion without a pinUvAuthParam verifies the user with built-in UV when the token has
//! it, else is refused with `PUAT_REQUIRED`; U2F REGISTER and AUTHENTICATE answer `6986`, and
//! getInfo drops "U2F_V2" and says makeCredUvNotRqd false.
use std::time::Instant;

use keystore::{TokenConfig, MAX_MIN_PIN_LENGTH_RP_IDS};

use super::authenticator::{reply, Authenticator, Step};
use super::cbor::{self, raw_member, Item, Parameters};
use super::client_pin::{permission, PADDED_PIN_LEN};
use super::status::Status;

/// The subcommands this token has (§6.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SubCommand {
    /// toggleAlwaysUv.
    ToggleAlwaysUv = 0x02,
    /// setMinPINLength.
    SetMinPinLength = 0x03,
}

impl TryFrom<u64> for SubCommand {
    type Error = Status;
    /// enableEnterpriseAttestation (0x01), vendorPrototype (0xFF) and anything else:
    /// `INVALID_PARAMETER` (§6.11 step 2: not supported).
    fn try_from(value: u64) -> Result<Self, Status> {
        match value {
            0x02 => Ok(Self::ToggleAlwaysUv),
            0x03 => Ok(Self::SetMinPinLength),
            _ => Err(Status::InvalidParameter),
        }
    }
}

/// The prefix of the message a config pinUvAuthParam authenticates: 32 × 0xFF ‖ 0x0D.
fn message_prefix() -> Vec<u8> {
    let mut message = vec![0xFF; 32];
    message.push(0x0D);
    message
}

/// setMinPINLength's parameters.
struct MinPinLength<'a> {
    length: Option<u64>,
    rp_ids: Option<&'a [Item<'a>]>,
    force_change: bool,
}

impl<'a> MinPinLength<'a> {
    fn read(params: Option<&'a Item<'a>>) -> Result<Self, Status> {
        let members = params.map(cbor::map).transpose()?.unwrap_or_default();
        let member = |key| {
            members
                .iter()
                .find(|(k, _)| *k == Item::Unsigned(key))
                .map(|(_, v)| v)
        };
        let rp_ids = member(0x02).map(cbor::array).transpose()?;
        for rp_id in rp_ids.unwrap_or_default() {
            cbor::text(rp_id)?;
        }
        Ok(Self {
            length: member(0x01).map(cbor::unsigned).transpose()?,
            rp_ids,
            force_change: member(0x03)
                .map(cbor::boolean)
                .transpose()?
                .unwrap_or(false),
        })
    }
}

impl Authenticator {
    /// authenticatorConfig: `raw` is the request's CBOR as sent, for the pinUvAuthParam over
    /// its subCommandParams.
    pub(super) fn config(
        &mut self,
        params: &Parameters,
        raw: &[u8],
        now: Instant,
    ) -> Result<Step, Status> {
        let sub_command = SubCommand::try_from(cbor::unsigned(params.required(0x01)?)?)?;
        let sub_params = params.get(0x02);
        let protocol = params.get(0x03).map(cbor::integer).transpose()?;
        let param = params.get(0x04).map(cbor::bytes).transpose()?;
        let always_uv = self.settings().always_uv;
        let protected = self.protected_by_uv();
        if protected || (always_uv && sub_command != SubCommand::ToggleAlwaysUv) {
            let auth = Self::required_pin_uv_auth(param, protocol)?;
            let mut message = message_prefix();
            message.push(sub_command as u8);
            message.extend_from_slice(raw_member(raw, 0x02).unwrap_or_default());
            self.authorize(auth, &message, permission::AUTHENTICATOR_CONFIG, now)?;
        }
        let mut settings = self.settings().clone();
        match sub_command {
            SubCommand::ToggleAlwaysUv => settings.always_uv = !settings.always_uv,
            SubCommand::SetMinPinLength => self.set_min_pin_length(sub_params, &mut settings)?,
        }
        self.u2f
            .keys_mut()
            .config
            .set(settings)
            .map_err(|_| Status::Other)?;
        Ok(Step::Done(reply(Ok(Vec::new()))))
    }

    /// The token's settings now.
    pub(super) fn settings(&self) -> &TokenConfig {
        self.u2f.keys().config.get()
    }

    /// setMinPINLength (§6.11.4) applied to `settings`.
    fn set_min_pin_length(
        &self,
        params: Option<&Item>,
        settings: &mut TokenConfig,
    ) -> Result<(), Status> {
        let request = MinPinLength::read(params)?;
        let length = request.length.unwrap_or(settings.min_pin_length.into());
        if length < settings.min_pin_length.into() || length >= PADDED_PIN_LEN as u64 {
            return Err(Status::PinPolicyViolation);
        }
        if request
            .rp_ids
            .is_some_and(|ids| ids.len() > MAX_MIN_PIN_LENGTH_RP_IDS)
        {
            return Err(Status::InvalidLength);
        }
        let pin = &self.u2f.keys().pin;
        if request.force_change && !pin.is_set() {
            return Err(Status::PinNotSet);
        }
        // Below 64: fits.
        settings.min_pin_length = length as u8;
        let too_short = pin
            .code_points()
            .is_some_and(|have| u64::from(have) < length);
        if request.force_change || too_short {
            settings.force_pin_change = true;
        }
        if let Some(ids) = request.rp_ids {
            settings.min_pin_length_rp_ids = ids
                .iter()
                .filter_map(Item::as_text)
                .map(str::to_owned)
                .collect();
        }
        Ok(())
    }

    /// alwaysUv in makeCredential and getAssertion (§6.1.2 step 4, §6.2.2 step 3): whether the
    /// user must be verified by built-in UV, given `verify` (the uv option) and whether a
    /// pinUvAuthParam came; without either, built-in UV verifies, or `PUAT_REQUIRED`.
    pub(super) fn always_uv(&self, verify: bool, with_token: bool) -> Result<bool, Status> {
        if !self.settings().always_uv || verify || with_token {
            return Ok(verify);
        }
        if self.uv.is_some() {
            Ok(true)
        } else {
            Err(Status::PuatRequired)
        }
    }

    /// The minPinLength extension's output for `rp_id` (§12.4): the minimum, only for the RP
    /// IDs setMinPINLength listed.
    pub(super) fn min_pin_length_for(&self, rp_id: &str) -> Option<u8> {
        let settings = self.settings();
        settings
            .min_pin_length_rp_ids
            .iter()
            .any(|listed| listed == rp_id)
            .then_some(settings.min_pin_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_toggle_and_min_pin_length_are_supported() {
        assert_eq!(SubCommand::try_from(0x02), Ok(SubCommand::ToggleAlwaysUv));
        assert_eq!(SubCommand::try_from(0x03), Ok(SubCommand::SetMinPinLength));
        for unsupported in [0x01, 0x04, 0xFF] {
            assert_eq!(
                SubCommand::try_from(unsupported),
                Err(Status::InvalidParameter)
            );
        }
        assert_eq!(message_prefix().len(), 33);
    }
}
