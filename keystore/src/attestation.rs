//! Attestation: the store's own CA and the batch certificate its tokens share (`DESIGN.md`,
//! "Attestation"; U2F raw message formats v1.2, section 4.3: the registration response carries an
//! attestation certificate and a signature made with its key).
//!
//! ```text
//!   vu2f attestation CA <store id>   (self-signed, exportable: `vu2f token export-ca`)
//!     ├── vu2f U2F batch <store id>   shared by every token of the store (default, as real keys)
//!     └── vu2f U2F token <name>       optional per-token certificate
//! ```
//!
//! Certificates carry the FIDO transports extension (1.3.6.1.4.1.45724.2.1.1, USB). No private key
//! is ever shipped with the source: each store generates its own on first use.
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CustomExtension, DistinguishedName, DnType,
    IsCa, KeyPair, KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
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
    /// Whether the two keys are sealed with the store key (`crate::lock`).
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
    /// With both keys opened by `vault`.
    pub(crate) fn open(mut self, vault: &Vault) -> Result<Self> {
        for (certificate, place) in [(&mut self.ca, CA_PLACE), (&mut self.batch, BATCH_PLACE)] {
            let key = vault.open(certificate.key(), self.sealed, place)?;
            certificate.set_key(key.to_vec());
        }
        self.sealed = false;
        Ok(self)
    }

    /// With both keys (opened) sealed by `vault`, as it is to be stored.
    pub(crate) fn seal(&self, vault: &Vault, rng: &SystemRandom) -> Result<Self> {
        let mut sealed = self.clone();
        for (certificate, place) in [(&mut sealed.ca, CA_PLACE), (&mut sealed.batch, BATCH_PLACE)] {
            let key = vault.seal(certificate.key(), place, rng)?;
            certificate.set_key(key);
        }
        sealed.sealed = vault.is_sealed();
        Ok(sealed)
    }
}

const CA_PLACE: &str = "attestation/ca";
const BATCH_PLACE: &str = "attestation/batch";

/// The store's attestation material, loaded.
pub struct Attestation {
    store_id: String,
    ca: StoredCertificate,
    batch: std::sync::Arc<AttestationKey>,
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

fn leaf_params(common_name: String, rng: &SystemRandom) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "vu2f");
    name.push(DnType::OrganizationalUnitName, "Authenticator Attestation");
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
    let mut serial = [0u8; 16];
    rng.fill(&mut serial)
        .map_err(|e| crypto("serial number", e))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        FIDO_TRANSPORTS_OID,
        FIDO_TRANSPORTS_USB.to_vec(),
    )];
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
    let leaf = leaf_params(common_name, rng)?
        .signed_by(&leaf_key, &issuer, &ca_key)
        .map_err(|e| crypto("attestation certificate", e))?;
    Ok(StoredCertificate {
        certificate_der: leaf.der().to_vec(),
        key_pkcs8: leaf_key.serialize_der(),
    })
}

impl Attestation {
    pub(crate) fn load(stored: &StoredAttestation, rng: &SystemRandom) -> Result<Self> {
        Ok(Self {
            store_id: stored.store_id.clone(),
            ca: stored.ca.clone(),
            batch: std::sync::Arc::new(AttestationKey::from_stored(&stored.batch, rng)?),
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

    /// The batch attestation key every token without its own certificate uses.
    pub fn batch(&self) -> &std::sync::Arc<AttestationKey> {
        &self.batch
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
