//! authenticatorGetAssertion and authenticatorGetNextAssertion (CTAP 2.1 sections 6.2 and 6.3;
//! CTAP2.md section 5).
//!
//! ```text
//!  reply  {1: credential {id, type}, 2: authData, 3: signature,
//!          4: user {id[, name, displayName]}   discoverable credentials; names only after UV
//!          5: numberOfCredentials}             no allowList and more than one credential
//!  signature = sign(credential key, authData ‖ clientDataHash)
//! ```
//! With an allowList the first listed credential that is ours for the rpIdHash signs (a U2F key
//! handle registered for an AppID included: WebAuthn's `appid` extension sends the AppID as the
//! rpId). Without one, the RP's discoverable credentials sign, most recent first: the first in
//! the getAssertion, the others one by one in getNextAssertions within 30 s of the last, each
//! with a fresh counter value. `up: false` signs without a touch and without the UP flag.
//!
//! credProtect (CTAP 2.1 §12.1, §6.2.2 step 7): without user verification a credential of level
//! 3 (userVerificationRequired) is never found, and one of level 2
//! (userVerificationOptionalWithCredentialIDList) only through an allowList; nothing left is
//! `NO_CREDENTIALS`. Extensions ([`super::extensions`]): hmac-secret's input is checked before
//! the touch (`up: false` with it: `UNSUPPORTED_OPTION`), its output and credBlob's go into
//! authData's extension map, largeBlobKey into member 0x07. A request without extensions takes
//! the path it always took: nothing more is read, allocated or hashed.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use keystore::{CredentialSecret, DiscoverableCredential, KeyWrapper};
use ring::signature::Signature;

use super::auth_data::{self, EXTENSION_DATA, USER_PRESENT, USER_VERIFIED};
use super::authenticator::{reply, written, Authenticator, Operation, Step};
use super::cbor::{self, Parameters, ReplyEncoder, WriteResult};
use super::client_pin::permission;
use super::cose::PUBLIC_KEY;
use super::credential::SigningKey;
use super::extensions::{self, GetExtensions};
use super::hmac_secret::HmacSecretRequest;
use super::make_credential::CRED_PROTECT_UV_REQUIRED;
use super::request::{CredentialList, GetAssertion, PinUvAuth};
use super::status::Status;

/// How long getNextAssertion may follow the last getAssertion or getNextAssertion.
pub const NEXT_ASSERTION_WINDOW: Duration = Duration::from_secs(30);

/// The user account of a discoverable credential.
#[derive(Debug)]
pub(super) struct Account {
    id: Vec<u8>,
    name: Option<String>,
    display_name: Option<String>,
}

/// A credential found for an assertion.
pub(super) struct Found {
    id: Vec<u8>,
    account: Option<Account>,
}

/// The credentials of one getAssertion still to sign, first one first.
pub(super) struct AssertionQueue {
    credentials: VecDeque<Found>,
    rp_id_hash: [u8; 32],
    client_data_hash: [u8; 32],
    /// Whether the request had an allowList (then no numberOfCredentials, no next).
    allow_list: bool,
    /// UP as asked (`up`, absent = true); UV comes from what the user did.
    user_present: bool,
    /// Set after the first signature: flags and when getNextAssertion may no longer follow.
    flags: u8,
    expires: Instant,
    /// The extensions asked for, if any.
    extensions: Option<Box<AssertionExtensions>>,
}

/// What a getAssertion's extensions need for each credential it signs with.
pub(super) struct AssertionExtensions {
    hmac_secret: Option<HmacSecretRequest>,
    cred_blob: bool,
    large_blob_key: bool,
}

/// A credential's extension outputs for one assertion.
struct Outputs {
    /// The authenticator data's extension map, CTAP2 canonical; empty: none.
    auth_data: Vec<u8>,
    large_blob_key: Option<zeroize::Zeroizing<[u8; 32]>>,
}

/// credProtect's userVerificationOptionalWithCredentialIDList (CTAP 2.1 §12.1).
const CRED_PROTECT_WITH_ID_LIST: u8 = 2;

impl AssertionExtensions {
    /// The outputs for the credential `id`, opened again for its extension state (version-3
    /// ids only; the others have none).
    fn outputs(
        &self,
        keys: &keystore::TokenKeys,
        id: &[u8],
        rp_id_hash: &[u8; 32],
        verified: bool,
        rng: &ring::rand::SystemRandom,
    ) -> Outputs {
        let wrapper = &keys.wrapper;
        let handle = keys.discoverable.handle_of(id).unwrap_or(id);
        let state = if KeyWrapper::is_extended(handle) {
            wrapper
                .unwrap_credential(handle, rp_id_hash)
                .ok()
                .and_then(|opened| opened.extensions)
        } else {
            None
        }
        .unwrap_or_default();
        let mut map = Vec::new();
        if self.cred_blob {
            map.push(("credBlob", cbor::Value::Bytes(state.cred_blob.clone())));
        }
        if let Some(request) = self.hmac_secret.as_ref().filter(|_| state.hmac_secret) {
            let output = request.output(wrapper, id, verified, rng);
            map.push(("hmac-secret", cbor::Value::Bytes(output)));
        }
        Outputs {
            auth_data: if map.is_empty() {
                Vec::new()
            } else {
                extensions::encode_outputs(map)
            },
            large_blob_key: (self.large_blob_key && state.large_blob_key)
                .then(|| wrapper.credential_secret(CredentialSecret::LargeBlobKey, id)),
        }
    }
}

impl Authenticator {
    pub(super) fn get_assertion(
        &mut self,
        params: &Parameters,
        now: Instant,
    ) -> Result<Step, Status> {
        let request = GetAssertion::try_from(params)?;
        if request.pin_uv_auth == PinUvAuth::Empty {
            return Ok(self.wait(Operation::PinProbe, false, now));
        }
        let pin_uv_auth = Self::pin_uv_auth_protocol(request.pin_uv_auth)?;
        if request.options.rk.is_some() {
            return Err(Status::UnsupportedOption);
        }
        let verify = request.options.uv.unwrap_or(false) && pin_uv_auth.is_none();
        let verify = self.always_uv(verify, pin_uv_auth.is_some())?;
        if verify && self.uv.is_none() {
            return Err(Status::InvalidOption);
        }
        let token = match pin_uv_auth {
            Some(auth) => Some(self.use_token(
                auth,
                &request.client_data_hash,
                permission::GET_ASSERTION,
                request.rp_id,
                now,
            )?),
            None => None,
        };
        let user_present = request.options.up.unwrap_or(true);
        if !user_present && request.extensions.hmac_secret.is_some() {
            return Err(Status::UnsupportedOption);
        }
        let rp_id_hash = self.last_rp_id.hash(request.rp_id);
        let verified = verify || token.is_some();
        let credentials = self.locate(request.allow_list, &rp_id_hash, verified);
        if credentials.is_empty() {
            return Err(Status::NoCredentials);
        }
        let extensions = if request.extensions.any() {
            Some(Box::new(self.assertion_extensions(&request.extensions)?))
        } else {
            None
        };
        let queue = AssertionQueue {
            credentials,
            rp_id_hash,
            client_data_hash: request.client_data_hash,
            allow_list: !request.allow_list.is_empty(),
            user_present,
            flags: 0,
            expires: now,
            extensions,
        };
        if user_present || verify {
            return Ok(self.wait_verified(Operation::Get(queue), verify, token, now));
        }
        Ok(Step::Done(reply(self.finish_get(
            queue,
            token.is_some(),
            now,
        ))))
    }

    /// The extensions' checked inputs.
    fn assertion_extensions(&self, asked: &GetExtensions) -> Result<AssertionExtensions, Status> {
        Ok(AssertionExtensions {
            hmac_secret: asked
                .hmac_secret
                .map(|input| self.hmac_secret_request(&input))
                .transpose()?,
            cred_blob: asked.cred_blob,
            large_blob_key: asked.large_blob_key == Some(true),
        })
    }

    /// The credentials that may sign: the first listed one that is ours, or without a list the
    /// RP's discoverable credentials, most recent first; without user verification
    /// (`verified`) none that credProtect keeps from it.
    fn locate(
        &self,
        allow_list: CredentialList,
        rp_id_hash: &[u8; 32],
        verified: bool,
    ) -> VecDeque<Found> {
        let stored = &self.u2f.keys().discoverable;
        let account = |c: &DiscoverableCredential| Account {
            id: c.user_id.clone(),
            name: c.user_name.clone(),
            display_name: c.user_display_name.clone(),
        };
        if allow_list.is_empty() {
            return stored
                .for_rp(rp_id_hash)
                .into_iter()
                .filter(|c| verified || c.cred_protect < CRED_PROTECT_WITH_ID_LIST)
                .map(|c| Found {
                    id: c.credential_id.clone(),
                    account: Some(account(c)),
                })
                .collect();
        }
        allow_list
            .ids()
            .find(|id| {
                self.protection_of(id, rp_id_hash)
                    .is_some_and(|level| verified || level < CRED_PROTECT_UV_REQUIRED)
            })
            .map(|id| Found {
                id: id.to_vec(),
                account: stored.find(id).map(account),
            })
            .into_iter()
            .collect()
    }

    /// Signs the first assertion once the user acted (or at once with `up: false`), and keeps
    /// the rest for getNextAssertion.
    pub(super) fn finish_get(
        &mut self,
        mut queue: AssertionQueue,
        verified: bool,
        now: Instant,
    ) -> Result<Vec<u8>, Status> {
        queue.flags = if queue.user_present { USER_PRESENT } else { 0 }
            | if verified { USER_VERIFIED } else { 0 };
        let total = queue.credentials.len();
        let first = queue.credentials.pop_front().ok_or(Status::NoCredentials)?;
        let count = (!queue.allow_list && total > 1).then_some(total);
        let signed = self.sign(&queue, &first, count)?;
        if !queue.credentials.is_empty() {
            queue.expires = now + NEXT_ASSERTION_WINDOW;
            self.next_assertions = Some(queue);
        }
        Ok(signed)
    }

    pub(super) fn get_next_assertion(&mut self, now: Instant) -> Result<Vec<u8>, Status> {
        let mut queue = self.next_assertions.take().ok_or(Status::NotAllowed)?;
        if now >= queue.expires {
            return Err(Status::NotAllowed);
        }
        let next = queue.credentials.pop_front().ok_or(Status::NotAllowed)?;
        let signed = self.sign(&queue, &next, None)?;
        if !queue.credentials.is_empty() {
            queue.expires = now + NEXT_ASSERTION_WINDOW;
            self.next_assertions = Some(queue);
        }
        Ok(signed)
    }

    fn sign(
        &mut self,
        queue: &AssertionQueue,
        found: &Found,
        count: Option<usize>,
    ) -> Result<Vec<u8>, Status> {
        let keys = self.u2f.keys_mut();
        let counter = keys.counter.next_value().map_err(|_| Status::Other)?;
        keys.discoverable
            .note_signature(&found.id, counter)
            .map_err(|_| Status::Other)?;
        let user_present = queue.flags & USER_PRESENT != 0;
        let counter = self.u2f.faults_mut().counter_for(counter, user_present);
        let plain = auth_data::plain(&queue.rp_id_hash, queue.flags, counter);
        let verified = queue.flags & USER_VERIFIED != 0;
        let Some(extensions) = &queue.extensions else {
            let mut signed = [0u8; auth_data::PLAIN_LEN + 32];
            let (auth_data, client_data_hash) = signed.split_at_mut(auth_data::PLAIN_LEN);
            auth_data.copy_from_slice(&plain);
            client_data_hash.copy_from_slice(&queue.client_data_hash);
            let signature = self.sign_with(&found.id, &queue.rp_id_hash, &signed, user_present)?;
            let reply = Assertion {
                id: &found.id,
                auth_data: &signed[..auth_data::PLAIN_LEN],
                signature: signature.as_ref(),
                account: found.account.as_ref(),
                verified,
                count,
                large_blob_key: None,
            };
            return Ok(reply.encode());
        };
        let outputs = extensions.outputs(
            self.u2f.keys(),
            &found.id,
            &queue.rp_id_hash,
            verified,
            &self.rng,
        );
        let mut signed = plain.to_vec();
        if !outputs.auth_data.is_empty() {
            signed[32] |= EXTENSION_DATA;
            signed.extend_from_slice(&outputs.auth_data);
        }
        let length = signed.len();
        signed.extend_from_slice(&queue.client_data_hash);
        let signature = self.sign_with(&found.id, &queue.rp_id_hash, &signed, user_present)?;
        let reply = Assertion {
            id: &found.id,
            auth_data: &signed[..length],
            signature: signature.as_ref(),
            account: found.account.as_ref(),
            verified,
            count,
            large_blob_key: outputs.large_blob_key.as_deref().map(|key| &key[..]),
        };
        Ok(reply.encode())
    }
}

/// The reply to one assertion, written straight into its buffer with `minicbor`'s encoder, in
/// CTAP2 canonical order by construction (a test holds it to the [`cbor::encode`] of the same
/// map): no tree of values to build and drop on the hottest path.
struct Assertion<'a> {
    id: &'a [u8],
    auth_data: &'a [u8],
    signature: &'a [u8],
    account: Option<&'a Account>,
    verified: bool,
    count: Option<usize>,
    /// The credential's largeBlobKey, when asked for (member 0x07).
    large_blob_key: Option<&'a [u8]>,
}

impl Assertion<'_> {
    fn encode(&self) -> Vec<u8> {
        written(|out| self.write(out))
    }

    fn write(&self, out: &mut ReplyEncoder) -> WriteResult {
        let members = 3
            + u64::from(self.account.is_some())
            + u64::from(self.count.is_some())
            + u64::from(self.large_blob_key.is_some());
        out.map(members)?;
        out.u8(1)?.map(2)?;
        out.str("id")?.bytes(self.id)?;
        out.str("type")?.str(PUBLIC_KEY)?;
        out.u8(2)?.bytes(self.auth_data)?;
        out.u8(3)?.bytes(self.signature)?;
        if let Some(account) = self.account {
            let name = account.name.as_deref().filter(|_| self.verified);
            let display_name = account.display_name.as_deref().filter(|_| self.verified);
            let members = 1 + u64::from(name.is_some()) + u64::from(display_name.is_some());
            out.u8(4)?.map(members)?;
            out.str("id")?.bytes(&account.id)?;
            if let Some(name) = name {
                out.str("name")?.str(name)?;
            }
            if let Some(display_name) = display_name {
                out.str("displayName")?.str(display_name)?;
            }
        }
        if let Some(count) = self.count {
            out.u8(5)?.u64(count as u64)?;
        }
        if let Some(key) = self.large_blob_key {
            out.u8(7)?.bytes(key)?;
        }
        Ok(())
    }
}

impl Authenticator {
    /// Signs `message` with the credential `id`. Non-discoverable ES256 ids are U2F key handles
    /// and go through the U2F engine's cache of opened keys: opening one costs ring a scalar
    /// multiplication, as much as the signature, and a host signs with the same credential again
    /// and again.
    /// An imported credential signs with the handle its record keeps, and an armed
    /// corrupt-signature fault spoils the message of one made with the user present
    /// (`crate::u2f::faults`).
    fn sign_with(
        &mut self,
        id: &[u8],
        rp_id_hash: &[u8; 32],
        message: &[u8],
        user_present: bool,
    ) -> Result<Signature, Status> {
        // Removed while the user was asked (the API may remove it meanwhile): refused.
        let opened_as = self
            .u2f
            .keys()
            .discoverable
            .handle_of(id)
            .ok_or(Status::InvalidCredential)?;
        let imported = (opened_as != id).then(|| opened_as.to_vec());
        let id = imported.as_deref().unwrap_or(id);
        let message = self.u2f.faults_mut().message_for(message, user_present);
        let message = &message[..];
        if keystore::KeyWrapper::is_u2f_handle(id) {
            let key = self
                .u2f
                .signing_key(rp_id_hash, id)
                .map_err(|_| Status::InvalidCredential)?;
            return key.sign(&self.rng, message).map_err(|_| Status::Other);
        }
        let keys = self.u2f.keys();
        SigningKey::open(&keys.wrapper, id, rp_id_hash, &self.rng)
            .ok_or(Status::InvalidCredential)?
            .sign(message, &self.rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cbor::{self, text_map, uint_map, Value};

    /// The same reply as a map of values, written by the canonical encoder.
    fn reference(reply: &Assertion) -> Vec<u8> {
        let mut members = vec![
            (
                1,
                text_map([
                    ("id", Value::Bytes(reply.id.to_vec())),
                    ("type", Value::Text(PUBLIC_KEY.into())),
                ]),
            ),
            (2, Value::Bytes(reply.auth_data.to_vec())),
            (3, Value::Bytes(reply.signature.to_vec())),
        ];
        if let Some(account) = reply.account {
            let mut user = vec![("id", Value::Bytes(account.id.clone()))];
            if reply.verified {
                if let Some(name) = &account.name {
                    user.push(("name", Value::Text(name.clone())));
                }
                if let Some(display_name) = &account.display_name {
                    user.push(("displayName", Value::Text(display_name.clone())));
                }
            }
            members.push((4, text_map(user)));
        }
        if let Some(count) = reply.count {
            members.push((5, Value::Integer((count as u64).into())));
        }
        if let Some(key) = reply.large_blob_key {
            members.push((7, Value::Bytes(key.to_vec())));
        }
        [vec![0], cbor::encode(&uint_map(members))].concat()
    }

    #[test]
    fn an_assertion_is_written_as_the_canonical_encoder_writes_it() {
        let named = Account {
            id: vec![7; 64],
            name: Some("alice@example.com".into()),
            display_name: Some("Alice".into()),
        };
        let nameless = Account {
            id: vec![8; 1],
            name: None,
            display_name: Some("Bob".into()),
        };
        let id = vec![1; 100];
        let auth_data = vec![2; 37];
        let signature = vec![3; 71];
        for account in [None, Some(&named), Some(&nameless)] {
            for verified in [false, true] {
                for (count, large_blob_key) in [
                    (None, None),
                    (Some(2), Some(&[5u8; 32][..])),
                    (Some(300), None),
                ] {
                    let reply = Assertion {
                        id: &id,
                        auth_data: &auth_data,
                        signature: &signature,
                        account,
                        verified,
                        count,
                        large_blob_key,
                    };
                    assert_eq!(
                        reply.encode(),
                        reference(&reply),
                        "user {account:?}, verified {verified}, count {count:?}"
                    );
                }
            }
        }
    }
}
