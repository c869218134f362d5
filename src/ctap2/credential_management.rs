//! authenticatorCredentialManagement (0x0A, and the preview's 0x41, answered alike; CTAP 2.1
//! §6.8; `shared/spec/CTAP2.md` §9): the discoverable credentials, counted, listed by RP and by
//! credential, deleted, their user renamed.
//!
//! ```text
//!  request  {1: subCommand, 2: subCommandParams {1: rpIDHash, 2: credentialID {id, type},
//!            3: user {id, name?, displayName?}}, 3: pinUvAuthProtocol, 4: pinUvAuthParam}
//!  reply    {1: existingResidentCredentialsCount, 2: maxPossibleRemainingResidentCredentialsCount,
//!            3: rp {id}, 4: rpIDHash, 5: totalRPs, 6: user, 7: credentialID {id, type},
//!            8: publicKey (COSE_Key), 9: totalCredentials, 10: credProtect (when set),
//!            11: largeBlobKey (when made with one)}
//!
//!  0x01 getCredsMetadata                      → {1, 2}          token without an RP ID
//!  0x02 enumerateRPsBegin                     → {3, 4, 5}       token without an RP ID
//!  0x03 enumerateRPsGetNextRP                 → {3, 4}          no pinUvAuthParam
//!  0x04 enumerateCredentialsBegin (rpIDHash)  → {6, 7, 8, 9, 10?, 11?}  token without an RP ID
//!  0x05 enumerateCredentialsGetNextCredential → {6, 7, 8, 10?, 11?}  no pinUvAuthParam  or for it
//!  0x06 deleteCredential (credentialID)       → status           ┘
//!  0x07 updateUserInformation (credentialID, user) → status      ┘
//!
//!  pinUvAuthParam = authenticate(pinUvAuthToken, subCommand ‖ subCommandParams as sent)
//! ```
//! The checks, in the spec's order: subCommand (absent `MISSING_PARAMETER`, unknown
//! `INVALID_SUBCOMMAND`); for all but the GetNext ones the pinUvAuthParam (absent `PUAT_REQUIRED`),
//! the protocol (absent `MISSING_PARAMETER`, unknown `INVALID_PARAMETER`), the param against the
//! token in use and its `cm` permission (`PIN_AUTH_INVALID`), then the subcommand's parameters
//! (`MISSING_PARAMETER`), the token's RP ID (`PIN_AUTH_INVALID` when it names another RP, or any
//! for getCredsMetadata and enumerateRPsBegin), and the credentials (`NO_CREDENTIALS`). A GetNext
//! without its Begin, after the last one, or after any other command is `NOT_ALLOWED`. Deletes
//! and updates are flushed before the reply (`keystore::discoverable`).
use std::collections::VecDeque;
use std::time::Instant;

use keystore::{CredentialSecret, DiscoverableCredential, TokenKeys};

use super::authenticator::{body, reply, rp_id_hash, Authenticator, Step};
use super::cbor::{self, raw_member, text_map, uint_map, Item, Parameters, Value};
use super::client_pin::permission;
use super::cose::PUBLIC_KEY;
use super::request::{descriptor, optional_name};
use super::status::Status;

/// The subcommands, with their wire values (§6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SubCommand {
    /// getCredsMetadata.
    GetCredsMetadata = 0x01,
    /// enumerateRPsBegin.
    EnumerateRpsBegin = 0x02,
    /// enumerateRPsGetNextRP.
    EnumerateRpsGetNextRp = 0x03,
    /// enumerateCredentialsBegin.
    EnumerateCredentialsBegin = 0x04,
    /// enumerateCredentialsGetNextCredential.
    EnumerateCredentialsGetNextCredential = 0x05,
    /// deleteCredential.
    DeleteCredential = 0x06,
    /// updateUserInformation.
    UpdateUserInformation = 0x07,
}

impl TryFrom<u64> for SubCommand {
    type Error = Status;
    fn try_from(value: u64) -> Result<Self, Status> {
        Ok(match value {
            0x01 => Self::GetCredsMetadata,
            0x02 => Self::EnumerateRpsBegin,
            0x03 => Self::EnumerateRpsGetNextRp,
            0x04 => Self::EnumerateCredentialsBegin,
            0x05 => Self::EnumerateCredentialsGetNextCredential,
            0x06 => Self::DeleteCredential,
            0x07 => Self::UpdateUserInformation,
            _ => return Err(Status::InvalidSubcommand),
        })
    }
}

/// What an enumeration has left for its GetNext subcommand.
pub(super) enum Enumeration {
    /// RP IDs not yet returned.
    Rps(VecDeque<String>),
    /// Ids of credentials not yet returned.
    Credentials(VecDeque<Vec<u8>>),
}

/// A credentialManagement request: types checked, meaning left to the subcommands.
struct Request<'a> {
    sub_command: SubCommand,
    params: Option<&'a [(Item<'a>, Item<'a>)]>,
    protocol: Option<i64>,
    pin_uv_auth_param: Option<&'a [u8]>,
}

impl<'a> TryFrom<&'a Parameters<'a>> for Request<'a> {
    type Error = Status;
    fn try_from(params: &'a Parameters<'a>) -> Result<Self, Status> {
        let sub_command = cbor::unsigned(params.required(0x01)?)?;
        let request = Self {
            sub_command: SubCommand::GetCredsMetadata,
            params: params.get(0x02).map(cbor::map).transpose()?,
            protocol: params.get(0x03).map(cbor::integer).transpose()?,
            pin_uv_auth_param: params.get(0x04).map(cbor::bytes).transpose()?,
        };
        Ok(Self {
            sub_command: SubCommand::try_from(sub_command)?,
            ..request
        })
    }
}

impl Request<'_> {
    /// A member of subCommandParams, or `MISSING_PARAMETER`.
    fn param(&self, key: u64) -> Result<&Item<'_>, Status> {
        self.params
            .and_then(|members| {
                members
                    .iter()
                    .find(|(k, _)| *k == Item::Unsigned(key))
                    .map(|(_, v)| v)
            })
            .ok_or(Status::MissingParameter)
    }

    /// The credential id of subCommandParams' credentialID descriptor.
    fn credential_id(&self) -> Result<&[u8], Status> {
        Ok(descriptor(self.param(0x02)?)?.0)
    }
}

/// The user entity of a credential: {id, name?, displayName?}.
fn user(credential: &DiscoverableCredential) -> Value {
    let mut members = vec![("id", Value::Bytes(credential.user_id.clone()))];
    if let Some(name) = &credential.user_name {
        members.push(("name", Value::Text(name.clone())));
    }
    if let Some(name) = &credential.user_display_name {
        members.push(("displayName", Value::Text(name.clone())));
    }
    text_map(members)
}

/// The members of one credential in an enumeration's reply: 6, 7, 8, 10 and 11 (9 is the
/// Begin's). The largeBlobKey (§6.8.3: "largeBlobKey, if the credential has one") is derived
/// again from the credential id, which says whether it was made with one; a record whose id no
/// longer opens is still listed (without one), so that it can be deleted.
fn credential_members(
    credential: &DiscoverableCredential,
    keys: &TokenKeys,
) -> Result<Vec<(u64, Value)>, Status> {
    let public_key: Value = ciborium::de::from_reader(credential.public_key_cose.as_slice())
        .map_err(|_| Status::Other)?;
    let mut members = vec![
        (0x06, user(credential)),
        (
            0x07,
            text_map([
                ("id", Value::Bytes(credential.credential_id.clone())),
                ("type", Value::Text(PUBLIC_KEY.into())),
            ]),
        ),
        (0x08, public_key),
    ];
    if credential.cred_protect != 0 {
        members.push((0x0A, Value::Integer(credential.cred_protect.into())));
    }
    let has_large_blob_key = keys
        .open_credential(&credential.credential_id, &credential.rp_id_hash())
        .is_ok_and(|opened| opened.extensions.is_some_and(|e| e.large_blob_key));
    if has_large_blob_key {
        let key = keys
            .wrapper
            .credential_secret(CredentialSecret::LargeBlobKey, &credential.credential_id);
        members.push((0x0B, Value::Bytes(key.to_vec())));
    }
    Ok(members)
}

/// The members of one RP in an enumeration's reply: 3 and 4.
fn rp_members(rp_id: &str) -> Vec<(u64, Value)> {
    vec![
        (0x03, text_map([("id", Value::Text(rp_id.to_owned()))])),
        (0x04, Value::Bytes(rp_id_hash(rp_id).to_vec())),
    ]
}

/// Whether a token bound to `bound` may act on the credentials of the RP whose hash is `rp`.
fn bound_to(bound: Option<&str>, rp: &[u8]) -> bool {
    bound.is_none_or(|bound| rp_id_hash(bound) == rp)
}

impl Authenticator {
    /// authenticatorCredentialManagement: `raw` is the request's CBOR as sent, for the
    /// pinUvAuthParam over its subCommandParams.
    pub(super) fn credential_management(
        &mut self,
        params: &Parameters,
        raw: &[u8],
        now: Instant,
    ) -> Result<Step, Status> {
        let request = Request::try_from(params)?;
        let enumeration = self.enumeration.take();
        let answer = match request.sub_command {
            SubCommand::EnumerateRpsGetNextRp => self.next_rp(enumeration),
            SubCommand::EnumerateCredentialsGetNextCredential => self.next_credential(enumeration),
            sub_command => {
                let auth = Self::required_pin_uv_auth(request.pin_uv_auth_param, request.protocol)?;
                let mut message = vec![sub_command as u8];
                message.extend_from_slice(raw_member(raw, 0x02).unwrap_or_default());
                let bound =
                    self.authorize(auth, &message, permission::CREDENTIAL_MANAGEMENT, now)?;
                let bound = bound.as_deref();
                match sub_command {
                    SubCommand::GetCredsMetadata => self.creds_metadata(bound),
                    SubCommand::EnumerateRpsBegin => self.rps_begin(bound),
                    SubCommand::EnumerateCredentialsBegin => {
                        self.credentials_begin(&request, bound)
                    }
                    SubCommand::DeleteCredential => self.delete_credential(&request, bound),
                    _ => self.update_user(&request, bound),
                }
            }
        };
        Ok(Step::Done(reply(answer)))
    }

    fn creds_metadata(&self, bound: Option<&str>) -> Result<Vec<u8>, Status> {
        if bound.is_some() {
            return Err(Status::PinAuthInvalid);
        }
        let stored = &self.u2f.keys().discoverable;
        Ok(body(uint_map([
            (0x01, Value::Integer((stored.len() as u64).into())),
            (0x02, Value::Integer((stored.remaining() as u64).into())),
        ])))
    }

    fn rps_begin(&mut self, bound: Option<&str>) -> Result<Vec<u8>, Status> {
        if bound.is_some() {
            return Err(Status::PinAuthInvalid);
        }
        let mut rps: VecDeque<String> = VecDeque::new();
        for credential in self.u2f.keys().discoverable.iter() {
            if !rps.contains(&credential.rp_id) {
                rps.push_back(credential.rp_id.clone());
            }
        }
        let total = rps.len() as u64;
        let first = rps.pop_front().ok_or(Status::NoCredentials)?;
        let mut members = rp_members(&first);
        members.push((0x05, Value::Integer(total.into())));
        if !rps.is_empty() {
            self.enumeration = Some(Enumeration::Rps(rps));
        }
        Ok(body(uint_map(members)))
    }

    fn next_rp(&mut self, enumeration: Option<Enumeration>) -> Result<Vec<u8>, Status> {
        let Some(Enumeration::Rps(mut rps)) = enumeration else {
            return Err(Status::NotAllowed);
        };
        let rp = rps.pop_front().ok_or(Status::NotAllowed)?;
        if !rps.is_empty() {
            self.enumeration = Some(Enumeration::Rps(rps));
        }
        Ok(body(uint_map(rp_members(&rp))))
    }

    fn credentials_begin(
        &mut self,
        request: &Request,
        bound: Option<&str>,
    ) -> Result<Vec<u8>, Status> {
        let rp = cbor::bytes(request.param(0x01)?)?;
        if !bound_to(bound, rp) {
            return Err(Status::PinAuthInvalid);
        }
        let rp: [u8; 32] = rp.try_into().map_err(|_| Status::NoCredentials)?;
        let keys = self.u2f.keys();
        let found = keys.discoverable.for_rp(&rp);
        let (first, rest) = found.split_first().ok_or(Status::NoCredentials)?;
        let mut members = credential_members(first, keys)?;
        members.push((0x09, Value::Integer((found.len() as u64).into())));
        let rest: VecDeque<Vec<u8>> = rest.iter().map(|c| c.credential_id.clone()).collect();
        if !rest.is_empty() {
            self.enumeration = Some(Enumeration::Credentials(rest));
        }
        Ok(body(uint_map(members)))
    }

    fn next_credential(&mut self, enumeration: Option<Enumeration>) -> Result<Vec<u8>, Status> {
        let Some(Enumeration::Credentials(mut ids)) = enumeration else {
            return Err(Status::NotAllowed);
        };
        let id = ids.pop_front().ok_or(Status::NotAllowed)?;
        let keys = self.u2f.keys();
        let credential = keys.discoverable.find(&id).ok_or(Status::NotAllowed)?;
        let members = credential_members(credential, keys)?;
        if !ids.is_empty() {
            self.enumeration = Some(Enumeration::Credentials(ids));
        }
        Ok(body(uint_map(members)))
    }

    /// The stored credential a delete or update names, for a token allowed to act on its RP.
    fn named_credential(
        &self,
        request: &Request,
        bound: Option<&str>,
    ) -> Result<&DiscoverableCredential, Status> {
        let id = request.credential_id()?;
        let credential = self
            .u2f
            .keys()
            .discoverable
            .find(id)
            .ok_or(Status::NoCredentials)?;
        if !bound_to(bound, &credential.rp_id_hash()) {
            return Err(Status::PinAuthInvalid);
        }
        Ok(credential)
    }

    fn delete_credential(
        &mut self,
        request: &Request,
        bound: Option<&str>,
    ) -> Result<Vec<u8>, Status> {
        let id = self.named_credential(request, bound)?.credential_id.clone();
        self.u2f
            .keys_mut()
            .discoverable
            .remove(&id)
            .map_err(|_| Status::Other)?;
        self.u2f.forget_cached_keys();
        Ok(Vec::new())
    }

    /// updateUserInformation: the user's id must be the credential's (`INVALID_PARAMETER`); its
    /// name and displayName replace the stored ones, an absent one removing it.
    fn update_user(&mut self, request: &Request, bound: Option<&str>) -> Result<Vec<u8>, Status> {
        let user = cbor::map(request.param(0x03)?)?;
        let user_id = cbor::bytes(cbor::member(user, "id").ok_or(Status::MissingParameter)?)?;
        let name = optional_name(user, "name")?.map(str::to_owned);
        let display_name = optional_name(user, "displayName")?.map(str::to_owned);
        let credential = self.named_credential(request, bound)?;
        if credential.user_id != user_id {
            return Err(Status::InvalidParameter);
        }
        let id = credential.credential_id.clone();
        self.u2f
            .keys_mut()
            .discoverable
            .update_user(&id, name, display_name)
            .map_err(|_| Status::Other)?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_have_their_wire_values() {
        assert_eq!(
            SubCommand::try_from(0x07),
            Ok(SubCommand::UpdateUserInformation)
        );
        assert_eq!(SubCommand::try_from(0x08), Err(Status::InvalidSubcommand));
        assert_eq!(SubCommand::EnumerateCredentialsBegin as u8, 0x04);
    }

    #[test]
    fn a_token_bound_to_an_rp_acts_only_on_it() {
        let rp = rp_id_hash("a.example");
        assert!(bound_to(None, &rp));
        assert!(bound_to(Some("a.example"), &rp));
        assert!(!bound_to(Some("b.example"), &rp));
    }
}
