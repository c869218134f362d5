//! authenticatorMakeCredential (CTAP 2.1 section 6.1; CTAP2.md section 4), its checks in the
//! spec's order, and `packed` attestation (WebAuthn Level 2 section 8.2).
//!
//! ```text
//!  reply  {1: fmt "packed", 2: authData (AT set), 3: attStmt {alg: -7, sig, x5c: [batch cert]}}
//!         sig = ECDSA(attestation key, authData ‖ clientDataHash)
//! ```
//! Before the touch: the pinUvAuthParam (no PIN protocol yet: absent protocol
//! `MISSING_PARAMETER`, any other `INVALID_PARAMETER`), the algorithm (`UNSUPPORTED_ALGORITHM`),
//! the options (`uv` without built-in UV or `up: false`: `INVALID_OPTION`), enterprise
//! attestation (`INVALID_PARAMETER`), room for a discoverable credential (`KEY_STORE_FULL`), and
//! the excludeList (one of ours: a touch, then `CREDENTIAL_EXCLUDED`). After it: the key, the
//! counter, the attestation, and a discoverable credential stored durably before the reply.
use std::time::Instant;

use keystore::{DiscoverableCredential, Residency};

use super::auth_data::{self, AttestedCredential, USER_PRESENT, USER_VERIFIED};
use super::authenticator::{body, rp_id_hash, store_failure, Authenticator, Operation, Step};
use super::cbor::{self, text_map, uint_map, Parameters, Value};
use super::cose::{choose_algorithm, Algorithm};
use super::credential;
use super::request::{MakeCredential, PinUvAuth};
use super::status::Status;

/// A makeCredential that passed its checks and waits for the user.
pub(super) struct Creation {
    request: MakeCredential,
    algorithm: Algorithm,
    rp_id_hash: [u8; 32],
    discoverable: bool,
}

/// The checks of a pinUvAuthParam while the token has no PIN protocol (CTAP 2.1 section 6.1.2,
/// step 2): the protocol is missing, or not one the token supports.
pub(super) fn check_pin_uv_auth(pin_uv_auth: PinUvAuth) -> Result<(), Status> {
    match pin_uv_auth {
        PinUvAuth::Absent => Ok(()),
        PinUvAuth::Empty | PinUvAuth::Given { protocol: None } => Err(Status::MissingParameter),
        PinUvAuth::Given { protocol: Some(_) } => Err(Status::InvalidParameter),
    }
}

impl Authenticator {
    pub(super) fn make_credential(
        &mut self,
        params: &Parameters,
        now: Instant,
    ) -> Result<Step, Status> {
        let request = MakeCredential::try_from(params)?;
        check_pin_uv_auth(request.pin_uv_auth)?;
        let algorithm = choose_algorithm(&request.algorithms)?;
        let verify = request.options.uv.unwrap_or(false);
        if (verify && self.uv.is_none()) || request.options.up == Some(false) {
            return Err(Status::InvalidOption);
        }
        if request.enterprise_attestation.is_some() {
            return Err(Status::InvalidParameter);
        }
        let rp_id_hash = rp_id_hash(&request.rp.id);
        let discoverable = request.options.rk.unwrap_or(false);
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
            .iter()
            .any(|id| self.is_ours(id, &rp_id_hash))
        {
            return Ok(self.wait(Operation::Excluded, false, now));
        }
        let creation = Creation {
            request,
            algorithm,
            rp_id_hash,
            discoverable,
        };
        Ok(self.wait(Operation::Make(Box::new(creation)), verify, now))
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
            request,
            algorithm,
            rp_id_hash,
            discoverable,
        } = creation;
        let residency = if discoverable {
            Residency::Discoverable
        } else {
            Residency::ServerSide
        };
        let keys = self.u2f.keys_mut();
        let (id, public_key) =
            credential::generate(algorithm, residency, &keys.wrapper, &rp_id_hash, &self.rng)?;
        let counter = keys.counter.next_value().map_err(|_| Status::Other)?;
        let flags = USER_PRESENT | if verified { USER_VERIFIED } else { 0 };
        let credential = AttestedCredential {
            aaguid: &keys.aaguid,
            id: &id,
            public_key: &public_key,
        };
        let auth_data = auth_data::build(&rp_id_hash, flags, counter, Some(&credential));
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&request.client_data_hash);
        let attestation = &keys.fido2_attestation;
        let signature = attestation
            .sign(&self.rng, &signed)
            .map_err(|_| Status::Other)?;
        let statement = text_map([
            ("alg", Value::Integer(Algorithm::Es256.cose().into())),
            ("sig", Value::Bytes(signature)),
            (
                "x5c",
                Value::Array(vec![Value::Bytes(attestation.certificate_der().to_vec())]),
            ),
        ]);
        if discoverable {
            let record = DiscoverableCredential {
                credential_id: id,
                rp_id: request.rp.id,
                user_id: request.user.id,
                user_name: request.user.name,
                user_display_name: request.user.display_name,
                public_key_cose: cbor::encode(&public_key),
                cred_protect: 0,
            };
            keys.discoverable.store(record).map_err(store_failure)?;
        }
        Ok(body(uint_map([
            (1, Value::Text("packed".into())),
            (2, Value::Bytes(auth_data)),
            (3, statement),
        ])))
    }
}
