//! authenticatorMakeCredential (CTAP 2.1 section 6.1; CTAP2.md section 4), its checks in the
//! spec's order, and `packed` attestation (WebAuthn Level 2 section 8.2).
//!
//! ```text
//!  reply  {1: fmt "packed", 2: authData (AT set), 3: attStmt}
//!  batch  attStmt {alg: -7, sig, x5c: [batch cert]}   sig = ECDSA(batch key, authData ‖ clientDataHash)
//!  self   attStmt {alg: the credential's, sig}        sig = the new credential's own signature
//! ```
//! Which one is the token's choice at creation (`token create --attestation batch|self`).
//! Before the touch: a zero-length pinUvAuthParam (a touch, then `PIN_NOT_SET` or
//! `PIN_INVALID`), the pinUvAuthProtocol (absent `MISSING_PARAMETER`, unsupported
//! `INVALID_PARAMETER`), the algorithm (`UNSUPPORTED_ALGORITHM`), the options (`uv` without
//! built-in UV or `up: false`: `INVALID_OPTION`; `rk` on a token whose discoverable credentials
//! are turned off: `UNSUPPORTED_OPTION`), enterprise attestation (`INVALID_PARAMETER`),
//! a discoverable credential on a token with a PIN or built-in UV made without either
//! (`PUAT_REQUIRED`: makeCredUvNotRqd spares only non-discoverable ones), the pinUvAuthParam
//! against the pinUvAuthToken (`PIN_AUTH_INVALID`; UV set when it holds), room for a
//! discoverable credential (`KEY_STORE_FULL`), and the excludeList (one of ours: a touch, then
//! `CREDENTIAL_EXCLUDED`; one with credProtect 3 only when the user is verified). After it: the
//! key, the counter, the attestation, and a discoverable credential stored durably before the
//! reply.
//!
//! Extensions ([`super::extensions`]): credProtect, hmac-secret, credBlob and largeBlobKey are
//! sealed into a version-3 credential id (and credProtect into the discoverable record too);
//! largeBlobKey only for a discoverable credential (`false`, or without rk: `INVALID_OPTION`);
//! hmac-secret-mc only beside `hmac-secret: true` (`MISSING_PARAMETER`), its input checked
//! before the touch. The outputs go into authData's extension map (ED), largeBlobKey into the
//! reply's member 0x05.
use std::time::Instant;

use keystore::{AttestationType, CredentialSecret, DiscoverableCredential, Residency};

use super::auth_data::{self, AttestedCredential, EXTENSION_DATA, USER_PRESENT, USER_VERIFIED};
use super::authenticator::{store_failure, written, Authenticator, Operation, Step};
use super::cbor::{self, Parameters, ReplyEncoder, WriteResult};
use super::client_pin::permission;
use super::cose::{choose_algorithm, Algorithm};
use super::credential::{self, SigningKey};
use super::extensions::{self, MakeExtensions};
use super::hmac_secret::HmacSecretRequest;
use super::request::{MakeCredential, PinUvAuth, User};
use super::status::Status;

/// A makeCredential that passed its checks and waits for the user: what it needs of the request,
/// copied out of it.
pub(super) struct Creation {
    client_data_hash: [u8; 32],
    algorithm: Algorithm,
    rp_id_hash: [u8; 32],
    /// For a discoverable credential, the account stored with it.
    account: Option<Account>,
    /// For a non-discoverable credential of a token that tracks its credentials, the RP id its
    /// record names (`keystore::discoverable`).
    tracked_rp_id: Option<String>,
    /// The extensions asked for, if any.
    extensions: Option<Box<CreationExtensions>>,
}

/// What a makeCredential's extensions need after the touch.
struct CreationExtensions {
    /// The extension inputs, kept as the outputs need them (the credBlob copied).
    cred_protect: Option<u8>,
    hmac_secret: bool,
    cred_blob: Option<Vec<u8>>,
    large_blob_key: bool,
    /// hmac-secret-mc's checked input.
    hmac_secret_mc: Option<HmacSecretRequest>,
    /// The minPinLength extension's output, when asked for by an RP allowed to read it.
    min_pin_length: Option<u8>,
}

impl CreationExtensions {
    fn of(
        request: &MakeExtensions,
        hmac_secret_mc: Option<HmacSecretRequest>,
        min_pin_length: Option<u8>,
    ) -> Self {
        Self {
            cred_protect: request.cred_protect,
            hmac_secret: request.hmac_secret,
            cred_blob: request.cred_blob.map(<[u8]>::to_vec),
            large_blob_key: request.large_blob_key == Some(true),
            hmac_secret_mc,
            min_pin_length,
        }
    }

    fn inputs(&self) -> MakeExtensions<'_> {
        MakeExtensions {
            cred_protect: self.cred_protect,
            hmac_secret: self.hmac_secret,
            hmac_secret_mc: None,
            cred_blob: self.cred_blob.as_deref(),
            large_blob_key: Some(self.large_blob_key),
            min_pin_length: false,
        }
    }
}

/// The relying party and user of a discoverable credential about to be made.
struct Account {
    rp_id: String,
    user_id: Vec<u8>,
    user_name: Option<String>,
    user_display_name: Option<String>,
}

impl Account {
    fn of(rp_id: &str, user: &User) -> Self {
        Self {
            rp_id: rp_id.to_owned(),
            user_id: user.id.to_vec(),
            user_name: user.name.map(str::to_owned),
            user_display_name: user.display_name.map(str::to_owned),
        }
    }

    /// The record of a tracked non-discoverable credential, which names no user.
    fn nameless(rp_id: String) -> Self {
        Self {
            rp_id,
            user_id: Vec::new(),
            user_name: None,
            user_display_name: None,
        }
    }
}

impl Authenticator {
    pub(super) fn make_credential(
        &mut self,
        params: &Parameters,
        now: Instant,
    ) -> Result<Step, Status> {
        let request = MakeCredential::try_from(params)?;
        if request.pin_uv_auth == PinUvAuth::Empty {
            return Ok(self.wait(Operation::PinProbe, false, now));
        }
        let pin_uv_auth = Self::pin_uv_auth_protocol(request.pin_uv_auth)?;
        let algorithm = choose_algorithm(request.algorithms)?;
        // A pinUvAuthParam stands for the uv option (§6.1.2 step 5).
        let verify = request.options.uv.unwrap_or(false) && pin_uv_auth.is_none();
        let verify = self.always_uv(verify, pin_uv_auth.is_some())?;
        if (verify && self.uv.is_none()) || request.options.up == Some(false) {
            return Err(Status::InvalidOption);
        }
        if request.options.rk == Some(true) && !self.resident_keys {
            return Err(Status::UnsupportedOption);
        }
        if request.enterprise_attestation.is_some() {
            return Err(Status::InvalidParameter);
        }
        let discoverable = request.options.rk.unwrap_or(false);
        if discoverable && !verify && pin_uv_auth.is_none() && self.protected_by_uv() {
            return Err(Status::PuatRequired);
        }
        let asked = &request.extensions;
        if asked.large_blob_key == Some(false) || (asked.large_blob_key.is_some() && !discoverable)
        {
            return Err(Status::InvalidOption);
        }
        if asked.hmac_secret_mc.is_some() && !asked.hmac_secret {
            return Err(Status::MissingParameter);
        }
        let token = match pin_uv_auth {
            Some(auth) => Some(self.use_token(
                auth,
                &request.client_data_hash,
                permission::MAKE_CREDENTIAL,
                request.rp.id,
                now,
            )?),
            None => None,
        };
        let rp_id_hash = self.last_rp_id.hash(request.rp.id);
        let stored = &self.u2f.keys().discoverable;
        let replaces = || {
            stored
                .for_rp(&rp_id_hash)
                .iter()
                .any(|c| c.user_id == request.user.id)
        };
        if discoverable && stored.remaining() == 0 && !replaces() {
            return Err(Status::KeyStoreFull);
        }
        let verified = verify || token.is_some();
        if request.exclude_list.ids().any(|id| {
            self.protection_of(id, &rp_id_hash)
                .is_some_and(|level| verified || level < CRED_PROTECT_UV_REQUIRED)
        }) {
            return Ok(self.wait_verified(Operation::Excluded, false, token, now));
        }
        let extensions = if *asked == MakeExtensions::default() {
            None
        } else {
            let hmac_secret_mc = asked
                .hmac_secret_mc
                .map(|input| self.hmac_secret_request(&input))
                .transpose()?;
            let min_pin_length = asked
                .min_pin_length
                .then(|| self.min_pin_length_for(request.rp.id))
                .flatten();
            Some(Box::new(CreationExtensions::of(
                asked,
                hmac_secret_mc,
                min_pin_length,
            )))
        };
        let creation = Creation {
            client_data_hash: request.client_data_hash,
            algorithm,
            rp_id_hash,
            account: discoverable.then(|| Account::of(request.rp.id, &request.user)),
            tracked_rp_id: (!discoverable && self.u2f.keys().tracks_credentials)
                .then(|| request.rp.id.to_owned()),
            extensions,
        };
        Ok(self.wait_verified(Operation::Make(Box::new(creation)), verify, token, now))
    }

    /// The credProtect level of `id` (0: none) when it is one of this token's credentials for
    /// the RP: opened lately (in the U2F engine's key cache: a U2F key handle, which has none),
    /// or opening now; a discoverable one only while its record exists. `None`: not ours.
    pub(super) fn protection_of(&self, id: &[u8], rp_id_hash: &[u8; 32]) -> Option<u8> {
        if self.u2f.has_cached(rp_id_hash, id) {
            return Some(0);
        }
        let keys = self.u2f.keys();
        let opened = keys.open_credential(id, rp_id_hash).ok()?;
        let ours =
            opened.residency == Residency::ServerSide || keys.discoverable.find(id).is_some();
        ours.then(|| opened.extensions.map_or(0, |e| e.cred_protect))
    }

    pub(super) fn finish_make(
        &mut self,
        creation: Creation,
        verified: bool,
    ) -> Result<Vec<u8>, Status> {
        let Creation {
            client_data_hash,
            algorithm,
            rp_id_hash,
            account,
            tracked_rp_id,
            extensions: asked,
        } = creation;
        let residency = match account {
            Some(_) => Residency::Discoverable,
            None => Residency::ServerSide,
        };
        let inputs = asked.as_ref().map(|a| a.inputs()).unwrap_or_default();
        let (kept, blob_stored) = extensions::kept(&inputs, account.is_some());
        let keys = self.u2f.keys_mut();
        let (id, public_key) = credential::generate(
            algorithm,
            residency,
            &kept,
            &keys.wrapper,
            &rp_id_hash,
            &self.rng,
        )?;
        let counter = keys.counter.next_value().map_err(|_| Status::Other)?;
        let outputs = match &asked {
            Some(asked) => {
                let hmac_secret_mc = asked
                    .hmac_secret_mc
                    .as_ref()
                    .map(|request| request.output(&keys.wrapper, &id, verified, &self.rng));
                extensions::make_outputs(&inputs, blob_stored, hmac_secret_mc, asked.min_pin_length)
            }
            None => Vec::new(),
        };
        let large_blob_key = kept.large_blob_key.then(|| {
            keys.wrapper
                .credential_secret(CredentialSecret::LargeBlobKey, &id)
        });
        let flags = USER_PRESENT
            | if verified { USER_VERIFIED } else { 0 }
            | if outputs.is_empty() {
                0
            } else {
                EXTENSION_DATA
            };
        // Self attestation names no model: its AAGUID is zero (CTAP2.md section 4, as clients
        // expect of it), where a batch attestation's is the one in its certificate.
        let aaguid = match keys.attestation_type {
            AttestationType::Batch => keys.aaguid,
            AttestationType::SelfAttestation => [0; 16],
        };
        let credential = AttestedCredential {
            aaguid: &aaguid,
            id: &id,
            public_key: &public_key,
        };
        let mut auth_data = auth_data::attested(&rp_id_hash, flags, counter, &credential);
        if !outputs.is_empty() {
            auth_data.extend_from_slice(&extensions::encode_outputs(outputs));
        }
        let length = auth_data.len();
        auth_data.extend_from_slice(&client_data_hash);
        let (alg, signature, certificate) = match keys.attestation_type {
            AttestationType::Batch => {
                let batch = &keys.fido2_attestation;
                let signature = batch
                    .sign(&self.rng, &auth_data)
                    .map_err(|_| Status::Other)?;
                let certificate = Some(batch.certificate_der());
                (Algorithm::Es256.cose(), signature, certificate)
            }
            AttestationType::SelfAttestation => {
                let own = SigningKey::open(&keys.wrapper, &id, &rp_id_hash, &self.rng)
                    .ok_or(Status::Other)?;
                let signature = own.sign(&auth_data, &self.rng)?.as_ref().to_vec();
                (algorithm.cose(), signature, None)
            }
        };
        auth_data.truncate(length);
        // A discoverable credential's record, or a tracked one's, which names no user.
        let kept_record = match (account, tracked_rp_id) {
            (Some(account), _) => Some((account, true)),
            (None, Some(rp_id)) => Some((Account::nameless(rp_id), false)),
            (None, None) => None,
        };
        if let Some((account, discoverable)) = kept_record {
            let record = DiscoverableCredential {
                credential_id: id,
                rp_id: account.rp_id,
                user_id: account.user_id,
                user_name: account.user_name,
                user_display_name: account.user_display_name,
                public_key_cose: cbor::encode(&public_key),
                cred_protect: kept.cred_protect,
                handle: None,
                sign_count: keys.tracks_credentials.then_some(counter),
                removed: false,
            };
            let kept = if discoverable {
                keys.discoverable.store(record)
            } else {
                keys.discoverable.track(record)
            };
            kept.map_err(store_failure)?;
        }
        let reply = Packed {
            auth_data: &auth_data,
            alg,
            signature: &signature,
            certificate,
            large_blob_key: large_blob_key.as_deref().map(|key| &key[..]),
        };
        Ok(reply.encode())
    }
}

/// credProtect's userVerificationRequired (CTAP 2.1 §12.1): the credential is used only after
/// user verification, and is not even excluded without it.
pub(super) const CRED_PROTECT_UV_REQUIRED: u8 = 3;

/// The reply to a makeCredential with `packed` attestation, written straight into its buffer
/// with `minicbor`'s encoder, in CTAP2 canonical order by construction (a test holds it to the
/// [`cbor::encode`] of the same map).
struct Packed<'a> {
    auth_data: &'a [u8],
    /// The COSE algorithm of the signature.
    alg: i64,
    signature: &'a [u8],
    /// The batch certificate; none for self attestation.
    certificate: Option<&'a [u8]>,
    /// The credential's largeBlobKey, when asked for (member 0x05).
    large_blob_key: Option<&'a [u8]>,
}

impl Packed<'_> {
    fn encode(&self) -> Vec<u8> {
        written(|out| self.write(out))
    }

    fn write(&self, out: &mut ReplyEncoder) -> WriteResult {
        out.map(3 + u64::from(self.large_blob_key.is_some()))?;
        out.u8(1)?.str("packed")?;
        out.u8(2)?.bytes(self.auth_data)?;
        out.u8(3)?.map(2 + u64::from(self.certificate.is_some()))?;
        out.str("alg")?.i64(self.alg)?;
        out.str("sig")?.bytes(self.signature)?;
        if let Some(certificate) = self.certificate {
            out.str("x5c")?.array(1)?.bytes(certificate)?;
        }
        if let Some(key) = self.large_blob_key {
            out.u8(5)?.bytes(key)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cbor::{text_map, uint_map, Value};

    #[test]
    fn a_packed_reply_is_written_as_the_canonical_encoder_writes_it() {
        let auth_data = vec![1; 37 + 18 + 100 + 77];
        let signature = vec![2; 72];
        let certificate = vec![3; 600];
        let key = [4u8; 32];
        for (alg, certificate, large_blob_key) in [
            (-7, Some(&certificate[..]), None),
            (-8, None, Some(&key[..])),
        ] {
            let reply = Packed {
                auth_data: &auth_data,
                alg,
                signature: &signature,
                certificate,
                large_blob_key,
            };
            let mut statement = vec![
                ("alg", Value::Integer(alg.into())),
                ("sig", Value::Bytes(signature.clone())),
            ];
            if let Some(certificate) = certificate {
                statement.push((
                    "x5c",
                    Value::Array(vec![Value::Bytes(certificate.to_vec())]),
                ));
            }
            let mut members = vec![
                (1, Value::Text("packed".into())),
                (2, Value::Bytes(auth_data.clone())),
                (3, text_map(statement)),
            ];
            if let Some(key) = large_blob_key {
                members.push((5, Value::Bytes(key.to_vec())));
            }
            let reference = uint_map(members);
            assert_eq!(reply.encode(), [vec![0], cbor::encode(&reference)].concat());
        }
    }
}
