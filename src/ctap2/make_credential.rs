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
//! built-in UV or `up: false`: `INVALID_OPTION`), enterprise attestation (`INVALID_PARAMETER`),
//! a discoverable credential on a token with a PIN or built-in UV made without either
//! (`PUAT_REQUIRED`: makeCredUvNotRqd spares only non-discoverable ones), the pinUvAuthParam
//! against the pinUvAuthToken (`PIN_AUTH_INVALID`; UV set when it holds), room for a
//! discoverable credential (`KEY_STORE_FULL`), and the excludeList (one of ours: a touch, then
//! `CREDENTIAL_EXCLUDED`). After it: the key, the counter, the attestation, and a discoverable
//! credential stored durably before the reply.
use std::time::Instant;

use keystore::{AttestationType, DiscoverableCredential, Residency};

use super::auth_data::{self, AttestedCredential, USER_PRESENT, USER_VERIFIED};
use super::authenticator::{store_failure, written, Authenticator, Operation, Step};
use super::cbor::{self, text_map, Parameters, ReplyEncoder, Value, WriteResult};
use super::client_pin::permission;
use super::cose::{choose_algorithm, Algorithm};
use super::credential::{self, SigningKey};
use super::get_info::MIN_PIN_LENGTH_EXTENSION;
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
    /// The minPinLength extension's output, when asked for by an RP allowed to read it.
    min_pin_length: Option<u8>,
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
        if request.enterprise_attestation.is_some() {
            return Err(Status::InvalidParameter);
        }
        let discoverable = request.options.rk.unwrap_or(false);
        if discoverable && !verify && pin_uv_auth.is_none() && self.protected_by_uv() {
            return Err(Status::PuatRequired);
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
        if request
            .exclude_list
            .ids()
            .any(|id| self.is_ours(id, &rp_id_hash))
        {
            return Ok(self.wait_verified(Operation::Excluded, false, token, now));
        }
        let creation = Creation {
            client_data_hash: request.client_data_hash,
            algorithm,
            rp_id_hash,
            account: discoverable.then(|| Account::of(request.rp.id, &request.user)),
            min_pin_length: request
                .min_pin_length
                .then(|| self.min_pin_length_for(request.rp.id))
                .flatten(),
        };
        Ok(self.wait_verified(Operation::Make(Box::new(creation)), verify, token, now))
    }

    /// Whether `id` is one of this token's credentials for the RP: opened lately (in the U2F
    /// engine's key cache), or opening now; a discoverable one only while its record exists.
    pub(super) fn is_ours(&self, id: &[u8], rp_id_hash: &[u8; 32]) -> bool {
        if self.u2f.has_cached(rp_id_hash, id) {
            return true;
        }
        let keys = self.u2f.keys();
        match keys.wrapper.unwrap_credential(id, rp_id_hash) {
            Ok(opened) => {
                opened.residency == Residency::ServerSide || keys.discoverable.find(id).is_some()
            }
            Err(_) => false,
        }
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
            min_pin_length,
        } = creation;
        let residency = match account {
            Some(_) => Residency::Discoverable,
            None => Residency::ServerSide,
        };
        let keys = self.u2f.keys_mut();
        let (id, public_key) =
            credential::generate(algorithm, residency, &keys.wrapper, &rp_id_hash, &self.rng)?;
        let counter = keys.counter.next_value().map_err(|_| Status::Other)?;
        let flags = USER_PRESENT | if verified { USER_VERIFIED } else { 0 };
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
        if let Some(length) = min_pin_length {
            auth_data::extend(
                &mut auth_data,
                text_map([(MIN_PIN_LENGTH_EXTENSION, Value::Integer(length.into()))]),
            );
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
        if let Some(account) = account {
            let record = DiscoverableCredential {
                credential_id: id,
                rp_id: account.rp_id,
                user_id: account.user_id,
                user_name: account.user_name,
                user_display_name: account.user_display_name,
                public_key_cose: cbor::encode(&public_key),
                cred_protect: 0,
            };
            keys.discoverable.store(record).map_err(store_failure)?;
        }
        let reply = Packed {
            auth_data: &auth_data,
            alg,
            signature: &signature,
            certificate,
        };
        Ok(reply.encode())
    }
}

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
}

impl Packed<'_> {
    fn encode(&self) -> Vec<u8> {
        written(|out| self.write(out))
    }

    fn write(&self, out: &mut ReplyEncoder) -> WriteResult {
        out.map(3)?;
        out.u8(1)?.str("packed")?;
        out.u8(2)?.bytes(self.auth_data)?;
        out.u8(3)?.map(2 + u64::from(self.certificate.is_some()))?;
        out.str("alg")?.i64(self.alg)?;
        out.str("sig")?.bytes(self.signature)?;
        if let Some(certificate) = self.certificate {
            out.str("x5c")?.array(1)?.bytes(certificate)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::cbor::uint_map;

    #[test]
    fn a_packed_reply_is_written_as_the_canonical_encoder_writes_it() {
        let auth_data = vec![1; 37 + 18 + 100 + 77];
        let signature = vec![2; 72];
        let certificate = vec![3; 600];
        for (alg, certificate) in [(-7, Some(&certificate[..])), (-8, None)] {
            let reply = Packed {
                auth_data: &auth_data,
                alg,
                signature: &signature,
                certificate,
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
            let reference = uint_map([
                (1, Value::Text("packed".into())),
                (2, Value::Bytes(auth_data.clone())),
                (3, text_map(statement)),
            ]);
            assert_eq!(reply.encode(), [vec![0], cbor::encode(&reference)].concat());
        }
    }
}
