//! Attestation: the store's own CA, the batch certificate its tokens share, and the store's AAGUID
//! (`DESIGN.md`, "Attestation"; U2F raw message formats v1.2, section 4.3: the registration
//! response carries an attestation certificate and a signature made with its key; CTAP 2.1 §6.1
//! step 19 and WebAuthn §8.2.1, summarised in `shared/spec/CTAP2.md` §4 "Attestation": `packed`
//! attestation with an x5c chain).
//!
//! ```text
//!   vu2f attestation CA <store id>     (self-signed, exportable: `vu2f token export-ca`)
//!     ├── vu2f U2F batch <store id>     shared by every token of the store (default, as real keys)
//!     ├── vu2f FIDO2 batch <store id>   only in stores made before FIDO2: their U2F batch lacks
//!     │                                 what packed attestation needs (below), so this one is
//!     │                                 issued once at the first opening and kept in meta
//!     └── vu2f U2F token <name>         optional per-token certificate
//! ```
//!
//! **AAGUID.** Each store is its own authenticator model: its AAGUID is derived from the CA
//! certificate, so a store has had one since its first day and nothing needs migrating:
//!
//! ```text
//!   h = SHA-256( "vu2f aaguid" ‖ CA certificate DER )
//!   AAGUID = h[0..16], with h[6] = 0x4_ (RFC 4122 version 4) and h[8] = 0b10xx_xxxx (variant)
//! ```
//!
//! **Leaf certificates** (issued from now on; WebAuthn §8.2.1 "Packed attestation statement
//! certificate requirements"): X.509 v3; Subject C = "ZZ", O = "vu2f", OU = "Authenticator
//! Attestation", CN; Basic Constraints with CA false; the FIDO transports extension
//! (1.3.6.1.4.1.45724.2.1.1, USB); and id-fido-gen-ce-aaguid, non-critical:
//!
//! ```text
//!   Extension ::= SEQUENCE { extnID  06 0b 2b 06 01 04 01 82 e5 1c 01 01 04   (1.3.6.1.4.1.45724.1.1.4)
//!                            extnValue 04 12 [ 04 10 <16 AAGUID bytes> ] }   (OCTET STRING in OCTET STRING)
//! ```
//!
//! The country must be present (python-fido2's packed verifier rejects a subject without C) and
//! be an ISO 3166-1 alpha-2 code; a store made on someone's machine has no vendor country, so it
//! says "ZZ", the code ISO 3166-1 leaves to users and CLDR uses for "unknown region".
//!
//! No private key is ever shipped with the source: each store generates its own on first use.
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CustomExtension, DistinguishedName, DnType,
    DnValue, IsCa, KeyPair, KeyUsagePurpose, PrintableString, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::lock::Vault;
use zeroize::Zeroize;

/// OID of the FIDO U2F transports extension.
const FIDO_TRANSPORTS_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 45724, 2, 1, 1];
/// BIT STRING, 5 unused bits, bit 2 (USB) set.
const FIDO_TRANSPORTS_USB: &[u8] = &[0x03, 0x02, 0x05, 0x20];
/// OID of Basic Constraints (RFC 5280 4.2.1.9).
const BASIC_CONSTRAINTS_OID: &[u64] = &[2, 5, 29, 19];
/// BasicConstraints with cA FALSE in DER: the default left out, an empty SEQUENCE.
const NOT_A_CA: &[u8] = &[0x30, 0x00];
/// OID of id-fido-gen-ce-aaguid (WebAuthn §8.2.1).
const FIDO_AAGUID_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4];
const FIDO_AAGUID_OID_TEXT: &str = "1.3.6.1.4.1.45724.1.1.4";
/// The subject country of leaf certificates: ISO 3166-1's user-assigned "ZZ" (module docs).
const COUNTRY: &str = "ZZ";
/// The subject OU that WebAuthn §8.2.1 requires, verbatim.
const ATTESTATION_OU: &str = "Authenticator Attestation";
/// Domain separation of the AAGUID derivation.
const AAGUID_LABEL: &[u8] = b"vu2f aaguid";

/// The AAGUID of the store whose CA certificate is `ca_certificate_der` (module docs).
pub(crate) fn aaguid_of(ca_certificate_der: &[u8]) -> [u8; 16] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(AAGUID_LABEL);
    context.update(ca_certificate_der);
    let digest = context.finish();
    let mut aaguid = [0u8; 16];
    aaguid.copy_from_slice(&digest.as_ref()[..16]);
    aaguid[6] = (aaguid[6] & 0x0f) | 0x40;
    aaguid[8] = (aaguid[8] & 0x3f) | 0x80;
    aaguid
}

/// 16 bytes in UUID form: 8-4-4-4-12 lowercase hex digits.
pub fn uuid_string(bytes: &[u8; 16]) -> String {
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The extnValue of id-fido-gen-ce-aaguid: an OCTET STRING holding the 16 bytes.
fn aaguid_extension_value(aaguid: &[u8; 16]) -> Vec<u8> {
    let mut value = vec![0x04, 0x10];
    value.extend_from_slice(aaguid);
    value
}

/// Whether `certificate_der` meets WebAuthn §8.2.1 for packed attestation by a store whose AAGUID
/// is `aaguid`: v3, subject C, O, OU "Authenticator Attestation" and CN, Basic Constraints CA
/// false in DER (the empty SEQUENCE: certificates issued before wrote the default out, which
/// python-fido2 refuses), and a non-critical id-fido-gen-ce-aaguid equal to `aaguid`.
pub(crate) fn is_fido2_capable(certificate_der: &[u8], aaguid: &[u8; 16]) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
    let Ok((_, cert)) = X509Certificate::from_der(certificate_der) else {
        return false;
    };
    let subject = cert.subject();
    let expected = aaguid_extension_value(aaguid);
    cert.version() == X509Version::V3
        && subject.iter_country().next().is_some()
        && subject.iter_organization().next().is_some()
        && subject
            .iter_organizational_unit()
            .any(|ou| ou.as_str() == Ok(ATTESTATION_OU))
        && subject.iter_common_name().next().is_some()
        && cert
            .extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == "2.5.29.19" && e.value == NOT_A_CA)
        && cert.extensions().iter().any(|e| {
            e.oid.to_id_string() == FIDO_AAGUID_OID_TEXT && !e.critical && e.value == expected
        })
}

fn crypto(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Crypto(format!("{what}: {e}"))
}

/// A certificate and the key that signs with it.
pub struct AttestationKey {
    certificate_der: Vec<u8>,
    key_pair: EcdsaKeyPair,
}

impl AttestationKey {
    pub(crate) fn from_stored(stored: &StoredCertificate, rng: &SystemRandom) -> Result<Self> {
        Self::from_der(stored.certificate_der.clone(), &stored.key_pkcs8, rng)
    }

    /// A certificate and its PKCS#8 key (opened from the store).
    pub(crate) fn from_der(
        certificate_der: Vec<u8>,
        key_pkcs8: &[u8],
        rng: &SystemRandom,
    ) -> Result<Self> {
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8, rng)
            .map_err(|e| crypto("attestation key", e))?;
        Ok(Self {
            certificate_der,
            key_pair,
        })
    }

    /// The X.509 certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// Signs `message` with ECDSA P-256 / SHA-256; DER signature.
    pub fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Vec<u8>> {
        self.key_pair
            .sign(rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| crypto("attestation signature", e))
    }
}

/// A certificate as stored: DER and the PKCS#8 of its key.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredCertificate {
    #[serde(with = "crate::hex")]
    pub certificate_der: Vec<u8>,
    #[serde(with = "crate::hex")]
    pub key_pkcs8: Vec<u8>,
}

/// What the store keeps under `meta/attestation`.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredAttestation {
    pub store_id: String,
    pub ca: StoredCertificate,
    pub batch: StoredCertificate,
    /// The FIDO2 batch of a store whose `batch` predates FIDO2 (module docs); `None` when `batch`
    /// serves both.
    #[serde(default)]
    pub fido2_batch: Option<StoredCertificate>,
    /// Whether the keys are sealed with the store key (`crate::lock`).
    #[serde(default)]
    pub sealed: bool,
}

impl StoredCertificate {
    /// The private key, PKCS#8 (or sealed, as stored).
    pub(crate) fn key(&self) -> &[u8] {
        &self.key_pkcs8
    }

    /// Replaces the private key (with its sealed or opened form).
    pub(crate) fn set_key(&mut self, key: Vec<u8>) {
        self.key_pkcs8.zeroize();
        self.key_pkcs8 = key;
    }
}

impl Drop for StoredCertificate {
    fn drop(&mut self) {
        self.key_pkcs8.zeroize();
    }
}

impl StoredAttestation {
    /// Every certificate with the place its key is sealed at.
    fn certificates_mut(&mut self) -> Vec<(&mut StoredCertificate, &'static str)> {
        let mut all = vec![(&mut self.ca, CA_PLACE), (&mut self.batch, BATCH_PLACE)];
        if let Some(fido2) = &mut self.fido2_batch {
            all.push((fido2, FIDO2_BATCH_PLACE));
        }
        all
    }

    /// With every key opened by `vault`.
    pub(crate) fn open(mut self, vault: &Vault) -> Result<Self> {
        let sealed = self.sealed;
        for (certificate, place) in self.certificates_mut() {
            let key = vault.open(certificate.key(), sealed, place)?;
            certificate.set_key(key.to_vec());
        }
        self.sealed = false;
        Ok(self)
    }

    /// With every key (opened) sealed by `vault`, as it is to be stored.
    pub(crate) fn seal(&self, vault: &Vault, rng: &SystemRandom) -> Result<Self> {
        let mut sealed = self.clone();
        for (certificate, place) in sealed.certificates_mut() {
            let key = vault.seal(certificate.key(), place, rng)?;
            certificate.set_key(key);
        }
        sealed.sealed = vault.is_sealed();
        Ok(sealed)
    }

    /// The store's AAGUID.
    pub(crate) fn aaguid(&self) -> [u8; 16] {
        aaguid_of(&self.ca.certificate_der)
    }

    /// Whether this store predates FIDO2 and has no FIDO2 batch yet.
    pub(crate) fn needs_fido2_batch(&self) -> bool {
        self.fido2_batch.is_none() && !is_fido2_capable(&self.batch.certificate_der, &self.aaguid())
    }

    /// Issues the FIDO2 batch of a store that predates FIDO2 (keys opened).
    pub(crate) fn add_fido2_batch(&mut self, rng: &SystemRandom) -> Result<()> {
        let store_id = self.store_id.clone();
        self.fido2_batch = Some(issue(
            &store_id,
            &self.ca,
            format!("vu2f FIDO2 batch {store_id}"),
            rng,
        )?);
        Ok(())
    }
}

const CA_PLACE: &str = "attestation/ca";
const BATCH_PLACE: &str = "attestation/batch";
const FIDO2_BATCH_PLACE: &str = "attestation/fido2-batch";

/// The store's attestation material, loaded.
pub struct Attestation {
    store_id: String,
    ca: StoredCertificate,
    aaguid: [u8; 16],
    batch: Arc<AttestationKey>,
    fido2: Arc<AttestationKey>,
}

fn ca_params(store_id: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "vu2f");
    name.push(
        DnType::CommonName,
        format!("vu2f attestation CA {store_id}"),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    params
}

/// A leaf certificate's parameters (module docs), for a store whose AAGUID is `aaguid`.
fn leaf_params(
    common_name: String,
    aaguid: &[u8; 16],
    rng: &SystemRandom,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    let country = PrintableString::try_from(COUNTRY).map_err(|e| crypto("country", e))?;
    name.push(DnType::CountryName, DnValue::PrintableString(country));
    name.push(DnType::OrganizationName, "vu2f");
    name.push(DnType::OrganizationalUnitName, ATTESTATION_OU);
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    // Basic Constraints with cA false, written by hand: rcgen 0.13's ExplicitNoCa writes the
    // default value out (`30 03 01 01 00`), which DER forbids (X.690 11.5) and python-fido2's
    // packed verifier refuses; cA FALSE is the empty SEQUENCE `30 00`.
    params.is_ca = IsCa::NoCa;
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let mut serial = [0u8; 16];
    rng.fill(&mut serial)
        .map_err(|e| crypto("serial number", e))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let mut basic_constraints =
        CustomExtension::from_oid_content(BASIC_CONSTRAINTS_OID, NOT_A_CA.to_vec());
    basic_constraints.set_criticality(true);
    params.custom_extensions = vec![
        basic_constraints,
        CustomExtension::from_oid_content(FIDO_TRANSPORTS_OID, FIDO_TRANSPORTS_USB.to_vec()),
        CustomExtension::from_oid_content(FIDO_AAGUID_OID, aaguid_extension_value(aaguid)),
    ];
    Ok(params)
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| crypto("attestation key generation", e))
}

impl StoredAttestation {
    /// Generates a CA and a batch certificate for a new store.
    pub(crate) fn generate(rng: &SystemRandom) -> Result<Self> {
        let mut id = [0u8; 6];
        rng.fill(&mut id).map_err(|e| crypto("store id", e))?;
        let store_id = hex::encode(id);
        let ca_key = new_key()?;
        let ca_cert = ca_params(&store_id)
            .self_signed(&ca_key)
            .map_err(|e| crypto("CA certificate", e))?;
        let ca = StoredCertificate {
            certificate_der: ca_cert.der().to_vec(),
            key_pkcs8: ca_key.serialize_der(),
        };
        let batch = issue(&store_id, &ca, format!("vu2f U2F batch {store_id}"), rng)?;
        Ok(Self {
            store_id,
            ca,
            batch,
            fido2_batch: None,
            sealed: false,
        })
    }
}

/// Issues a leaf certificate signed by the store's CA.
pub(crate) fn issue(
    store_id: &str,
    ca: &StoredCertificate,
    common_name: String,
    rng: &SystemRandom,
) -> Result<StoredCertificate> {
    let ca_key = KeyPair::try_from(ca.key_pkcs8.as_slice()).map_err(|e| crypto("CA key", e))?;
    // rcgen takes the issuer's name and key identifier from a Certificate value: re-create it from
    // the same parameters and key (the stored DER stays the published CA certificate).
    let issuer: Certificate = ca_params(store_id)
        .self_signed(&ca_key)
        .map_err(|e| crypto("CA certificate", e))?;
    let leaf_key = new_key()?;
    let leaf = leaf_params(common_name, &aaguid_of(&ca.certificate_der), rng)?
        .signed_by(&leaf_key, &issuer, &ca_key)
        .map_err(|e| crypto("attestation certificate", e))?;
    Ok(StoredCertificate {
        certificate_der: leaf.der().to_vec(),
        key_pkcs8: leaf_key.serialize_der(),
    })
}

impl Attestation {
    /// The loaded form of `stored` (keys opened). A store that predates FIDO2 has its FIDO2 batch
    /// by now (`Store::open`); without one, the U2F batch stands in.
    pub(crate) fn load(stored: &StoredAttestation, rng: &SystemRandom) -> Result<Self> {
        let batch = Arc::new(AttestationKey::from_stored(&stored.batch, rng)?);
        let fido2 = match &stored.fido2_batch {
            Some(fido2) => Arc::new(AttestationKey::from_stored(fido2, rng)?),
            None => Arc::clone(&batch),
        };
        Ok(Self {
            store_id: stored.store_id.clone(),
            aaguid: stored.aaguid(),
            ca: stored.ca.clone(),
            batch,
            fido2,
        })
    }

    pub(crate) fn issue_for_token(
        &self,
        token: &str,
        rng: &SystemRandom,
    ) -> Result<StoredCertificate> {
        issue(
            &self.store_id,
            &self.ca,
            format!("vu2f U2F token {token}"),
            rng,
        )
    }

    /// The batch attestation key every token without its own certificate uses for U2F.
    pub fn batch(&self) -> &Arc<AttestationKey> {
        &self.batch
    }

    /// The FIDO2-capable batch key (packed attestation, module docs): the batch itself in a store
    /// made since FIDO2, the extra FIDO2 batch in one made before.
    pub fn fido2(&self) -> &Arc<AttestationKey> {
        &self.fido2
    }

    /// The store's AAGUID (module docs): authData's AAGUID, and the one in its leaf certificates.
    pub fn aaguid(&self) -> [u8; 16] {
        self.aaguid
    }

    /// Whether `certificate_der` can sign packed attestations for this store (module docs).
    pub(crate) fn is_fido2_capable(&self, certificate_der: &[u8]) -> bool {
        is_fido2_capable(certificate_der, &self.aaguid)
    }

    /// The CA certificate, DER.
    pub fn ca_certificate_der(&self) -> &[u8] {
        &self.ca.certificate_der
    }

    /// The CA certificate, PEM: give it to a server that should trust this store's tokens.
    pub fn ca_certificate_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.ca.certificate_der)
    }
}

/// PEM armour (RFC 7468) around DER bytes.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

/// Stores as they were made before FIDO2, for the tests of the upgrade.
#[cfg(test)]
pub(crate) mod legacy {
    use super::*;

    /// A leaf as issued before FIDO2: no subject C and no AAGUID extension.
    fn issue_legacy(
        store_id: &str,
        ca: &StoredCertificate,
        common_name: String,
        rng: &SystemRandom,
    ) -> Result<StoredCertificate> {
        let ca_key = KeyPair::try_from(ca.key_pkcs8.as_slice()).map_err(|e| crypto("CA key", e))?;
        let issuer = ca_params(store_id)
            .self_signed(&ca_key)
            .map_err(|e| crypto("CA certificate", e))?;
        let mut params = leaf_params(common_name, &aaguid_of(&ca.certificate_der), rng)?;
        params.distinguished_name.remove(DnType::CountryName);
        params.custom_extensions.truncate(1);
        let leaf_key = new_key()?;
        let leaf = params
            .signed_by(&leaf_key, &issuer, &ca_key)
            .map_err(|e| crypto("attestation certificate", e))?;
        Ok(StoredCertificate {
            certificate_der: leaf.der().to_vec(),
            key_pkcs8: leaf_key.serialize_der(),
        })
    }

    /// The attestation of a store made before FIDO2 (keys unsealed).
    pub(crate) fn attestation(rng: &SystemRandom) -> Result<StoredAttestation> {
        let mut stored = StoredAttestation::generate(rng)?;
        let store_id = stored.store_id.clone();
        stored.batch = issue_legacy(
            &store_id,
            &stored.ca,
            format!("vu2f U2F batch {store_id}"),
            rng,
        )?;
        Ok(stored)
    }

    /// A token certificate as issued before FIDO2.
    pub(crate) fn token_certificate(
        stored: &StoredAttestation,
        token: &str,
        rng: &SystemRandom,
    ) -> Result<StoredCertificate> {
        issue_legacy(
            &stored.store_id,
            &stored.ca,
            format!("vu2f U2F token {token}"),
            rng,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aaguid_is_a_version_4_uuid_derived_from_the_ca() {
        let a = aaguid_of(b"ca one");
        assert_eq!(a, aaguid_of(b"ca one"), "deterministic");
        assert_ne!(a, aaguid_of(b"ca two"));
        assert_eq!(a[6] >> 4, 4, "version 4");
        assert_eq!(a[8] >> 6, 0b10, "RFC 4122 variant");
        let text = uuid_string(&a);
        assert_eq!(text.len(), 36);
        assert_eq!(
            text.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.replace('-', ""), hex::encode(a));
        assert_eq!(&text[14..15], "4");
    }

    #[test]
    fn new_batches_are_fido2_capable_and_legacy_ones_are_not() {
        let rng = SystemRandom::new();
        let new = StoredAttestation::generate(&rng).unwrap();
        assert!(!new.needs_fido2_batch());
        assert!(is_fido2_capable(&new.batch.certificate_der, &new.aaguid()));
        assert!(!is_fido2_capable(&new.batch.certificate_der, &[0u8; 16]));
        assert!(!is_fido2_capable(&new.ca.certificate_der, &new.aaguid()));
        assert!(!is_fido2_capable(b"not a certificate", &new.aaguid()));

        let mut old = legacy::attestation(&rng).unwrap();
        assert!(old.needs_fido2_batch());
        old.add_fido2_batch(&rng).unwrap();
        assert!(!old.needs_fido2_batch());
        let loaded = Attestation::load(&old, &rng).unwrap();
        assert!(loaded.is_fido2_capable(loaded.fido2().certificate_der()));
        assert!(!loaded.is_fido2_capable(loaded.batch().certificate_der()));
    }
}
