//! `packed` attestation's certificate (WebAuthn Level 2 §8.2, §8.2.1), as the emulator and
//! `vu2f probe` check it: the signature over authData ‖ clientDataHash by `x5c[0]`'s key, and what
//! §8.2.1 asks of that certificate.
//!
//! ```text
//!  attStmt  {alg, sig, x5c: [leaf DER, intermediates…]}
//!  leaf     version 3; subject C, O, OU "Authenticator Attestation", CN;
//!           Basic Constraints cA false;
//!           id-fido-gen-ce-aaguid 1.3.6.1.4.1.45724.1.1.4 (if present): not critical,
//!           value 04 10 ‖ AAGUID = authData's
//! ```
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::X509Version;

use super::{AAGUID_EXTENSION, EDDSA, ES256};

/// Whether `signature` (of COSE algorithm `alg`) signs `signed` with `certificate`'s key.
pub fn x5c_signature_verifies(
    certificate: &X509Certificate,
    alg: i64,
    signed: &[u8],
    signature: &[u8],
) -> bool {
    let key = certificate.public_key().subject_public_key.data.as_ref();
    match alg {
        ES256 => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
            .verify(signed, signature)
            .is_ok(),
        EDDSA => UnparsedPublicKey::new(&ED25519, key)
            .verify(signed, signature)
            .is_ok(),
        _ => false,
    }
}

/// The id-fido-gen-ce-aaguid extension, if the certificate has one: not critical, and an OCTET
/// STRING of `aaguid` (authData's).
pub fn aaguid_extension(certificate: &X509Certificate, aaguid: &[u8; 16]) -> Result<(), String> {
    for extension in certificate.extensions() {
        if extension.oid.to_id_string() != AAGUID_EXTENSION {
            continue;
        }
        if extension.critical {
            return Err("the AAGUID extension is marked critical".into());
        }
        if extension.value.get(..2) != Some(&[0x04, 0x10][..])
            || extension.value.get(2..) != Some(&aaguid[..])
        {
            return Err("the AAGUID extension is not authData's AAGUID".into());
        }
    }
    Ok(())
}

/// The requirements of §8.2.1 on a packed attestation certificate: version 3; a subject with C,
/// O, OU "Authenticator Attestation" and CN; Basic Constraints present with cA false; and the
/// id-fido-gen-ce-aaguid extension, if present, not critical and equal to authData's AAGUID.
/// The error names the first requirement not met.
pub fn certificate_requirements(
    certificate: &X509Certificate,
    aaguid: &[u8; 16],
) -> Result<(), String> {
    if certificate.version() != X509Version::V3 {
        return Err(format!(
            "the certificate is version {}, not 3",
            certificate.version().0 + 1
        ));
    }
    let subject = certificate.subject();
    let present = [
        ("C", subject.iter_country().next().is_some()),
        ("O", subject.iter_organization().next().is_some()),
        (
            "OU \"Authenticator Attestation\"",
            subject
                .iter_organizational_unit()
                .any(|ou| ou.as_str() == Ok("Authenticator Attestation")),
        ),
        ("CN", subject.iter_common_name().next().is_some()),
    ];
    if let Some((missing, _)) = present.iter().find(|(_, present)| !present) {
        return Err(format!("the certificate's subject has no {missing}"));
    }
    match certificate.basic_constraints() {
        Ok(Some(constraints)) if !constraints.value.ca => {}
        Ok(Some(_)) => return Err("the certificate is a CA's (Basic Constraints cA true)".into()),
        _ => return Err("the certificate has no Basic Constraints".into()),
    }
    aaguid_extension(certificate, aaguid)
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::FromDer;

    use super::*;

    const AAGUID: [u8; 16] = *b"vu2f-test-aaguid";
    const AAGUID_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 45724, 1, 1, 4];

    /// A certificate as §8.2.1 wants it, changed by `edit` first.
    fn certificate(edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Vec<u8> {
        use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa};
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CountryName, "DE");
        name.push(DnType::OrganizationName, "vu2f");
        name.push(DnType::OrganizationalUnitName, "Authenticator Attestation");
        name.push(DnType::CommonName, "vu2f test batch");
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        let mut value = vec![0x04, 0x10];
        value.extend_from_slice(&AAGUID);
        params.custom_extensions = vec![CustomExtension::from_oid_content(AAGUID_OID, value)];
        edit(&mut params);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn requirement_refused(der: &[u8]) -> Result<(), String> {
        let (_, parsed) = X509Certificate::from_der(der).unwrap();
        certificate_requirements(&parsed, &AAGUID)
    }

    #[test]
    fn a_packed_attestation_certificate_meets_every_requirement_of_8_2_1() {
        use rcgen::{DnType, IsCa};
        requirement_refused(&certificate(|_| {})).unwrap();
        // Without the AAGUID extension, the certificate is taken too.
        requirement_refused(&certificate(|p| p.custom_extensions.clear())).unwrap();

        for (dropped, named) in [
            (DnType::CountryName, "no C"),
            (DnType::OrganizationName, "no O"),
            (DnType::OrganizationalUnitName, "no OU"),
            (DnType::CommonName, "no CN"),
        ] {
            let refused = requirement_refused(&certificate(|p| {
                p.distinguished_name.remove(dropped);
            }))
            .unwrap_err();
            assert!(refused.contains(named), "{named}: {refused}");
        }
        let refused = requirement_refused(&certificate(|p| {
            p.distinguished_name
                .push(rcgen::DnType::OrganizationalUnitName, "Something Else");
        }))
        .unwrap_err();
        assert!(refused.contains("no OU"), "{refused}");

        let refused = requirement_refused(&certificate(|p| {
            p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }))
        .unwrap_err();
        assert!(refused.contains("CA"), "{refused}");
        let refused = requirement_refused(&certificate(|p| p.is_ca = IsCa::NoCa)).unwrap_err();
        assert!(refused.contains("no Basic Constraints"), "{refused}");

        let refused = requirement_refused(&certificate(|p| {
            p.custom_extensions[0].set_criticality(true)
        }))
        .unwrap_err();
        assert!(refused.contains("critical"), "{refused}");
        let refused = requirement_refused(&certificate(|p| {
            let mut value = vec![0x04, 0x10];
            value.extend_from_slice(&[0u8; 16]);
            p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(AAGUID_OID, value)];
        }))
        .unwrap_err();
        assert!(refused.contains("not authData's AAGUID"), "{refused}");
    }

    #[test]
    fn a_certificate_of_version_2_is_refused() {
        let mut der = certificate(|_| {});
        // tbsCertificate's version: [0] EXPLICIT INTEGER 2 (v3); made 1 (v2).
        let at = der
            .windows(5)
            .position(|w| w == [0xA0, 0x03, 0x02, 0x01, 0x02])
            .unwrap();
        der[at + 4] = 0x01;
        let (_, parsed) =
            X509Certificate::from_der(&der).expect("x509-parser reads a v2 certificate");
        let refused = certificate_requirements(&parsed, &AAGUID).unwrap_err();
        assert!(refused.contains("version 2"), "{refused}");
    }
}
