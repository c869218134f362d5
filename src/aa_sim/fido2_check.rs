//! What a WebAuthn relying party verifies of a `FIDO2:1` registration and assertion (WebAuthn
//! Level 2 §7.1 and §7.2, attestation §8.2 `packed` and §8.7 `none`), as pure functions that
//! answer the [`Refusal`] of the first check that fails, with what exactly was wrong where it is
//! known. The challenge's bookkeeping (single use, owner, expiry), the credential's owner and the
//! counter's storage need the emulator's state and are the callers' ([`super::fido2`]).
use serde::Deserialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::config::AttestationPolicy;
use crate::aa::fido2::AssertionResponse;
use crate::aa::outcome::{self, Outcome, Refusal};
use crate::ctap2::cbor::{self, Arena, Item};
use crate::webauthn::{self, attestation, AuthData, CoseKeyError, PublicKey, FLAG_UP, FLAG_UV};

/// Base64url, with or without padding.
pub fn base64url(text: &str) -> Result<Vec<u8>, Outcome> {
    webauthn::base64url(text).map_err(|_| outcome::FIDO2_MALFORMED_RESPONSE)
}

/// The client data, as received and as parsed.
#[derive(Debug, Clone)]
pub struct ClientDataSeen {
    /// The exact bytes, whose hash was signed.
    pub raw: Vec<u8>,
    /// `challenge`.
    pub challenge: String,
    /// `origin`.
    pub origin: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientDataFields {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(default)]
    cross_origin: Option<bool>,
}

/// Decodes the client data JSON and checks its `type` and `crossOrigin` (§7.1 steps 5-7, §7.2
/// steps 9-11; a ceremony in a cross-origin frame is refused, as AA's portal runs in none).
pub fn client_data(encoded: &str, expected_type: &str) -> Result<ClientDataSeen, Outcome> {
    let raw = base64url(encoded)?;
    let fields: ClientDataFields =
        serde_json::from_slice(&raw).map_err(|_| outcome::FIDO2_MALFORMED_RESPONSE)?;
    if fields.kind != expected_type {
        return Err(outcome::FIDO2_WRONG_TYPE);
    }
    if fields.cross_origin == Some(true) {
        return Err(outcome::FIDO2_CROSS_ORIGIN);
    }
    Ok(ClientDataSeen {
        raw,
        challenge: fields.challenge,
        origin: fields.origin,
    })
}

/// `origin` as a browser serialises an origin (RFC 6454 §6.2, HTML's ASCII serialisation):
/// scheme, lowercase host and the port unless it is the scheme's default; `None` for what is no
/// origin (not a URL, a path, a query, a fragment, user info).
pub fn normalised_origin(origin: &str) -> Option<String> {
    let url = reqwest::Url::parse(origin).ok()?;
    let bare = matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    let serialised = url.origin().ascii_serialization();
    (bare && serialised != "null").then_some(serialised)
}

/// Checks that `origin` is one of the server's (§7.1 step 9, §7.2 step 13), both compared as
/// origins ([`normalised_origin`]), not as strings.
pub fn origin(seen: &ClientDataSeen, origins: &[String]) -> Result<(), Refusal> {
    let Some(given) = normalised_origin(&seen.origin) else {
        return Err(Refusal::new(
            outcome::FIDO2_ORIGIN_MISMATCH,
            format!("{:?} is not an origin", seen.origin),
        ));
    };
    if origins
        .iter()
        .any(|o| normalised_origin(o).as_deref() == Some(&given))
    {
        Ok(())
    } else {
        Err(Refusal::new(
            outcome::FIDO2_ORIGIN_MISMATCH,
            format!("{given} is not one of the server's origins"),
        ))
    }
}

/// What the method's policy asks of every ceremony.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The RP id.
    pub rp_id: &'a str,
    /// Whether the UV flag is required.
    pub requires_uv: bool,
}

/// rpIdHash, UP and UV (§7.1 steps 13-15, §7.2 steps 15-17).
fn check_flags(auth_data: &AuthData, policy: Policy) -> Result<(), Outcome> {
    if auth_data.rp_id_hash != webauthn::sha256(policy.rp_id.as_bytes()) {
        return Err(outcome::FIDO2_RP_ID_MISMATCH);
    }
    if auth_data.flags & FLAG_UP == 0 {
        return Err(outcome::FIDO2_USER_NOT_PRESENT);
    }
    if policy.requires_uv && auth_data.flags & FLAG_UV == 0 {
        return Err(outcome::FIDO2_USER_NOT_VERIFIED);
    }
    Ok(())
}

/// A verified registration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// Its public key, COSE_Key bytes.
    pub public_key: Vec<u8>,
    /// The counter at registration.
    pub counter: u32,
    /// The attestation certificate, DER, if there was one.
    pub certificate: Option<Vec<u8>>,
}

/// Which attestations are taken.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    /// `any` or `trusted`.
    pub policy: AttestationPolicy,
    /// The trusted CA certificates, DER.
    pub cas: &'a [Vec<u8>],
    /// The algorithms the server asked for.
    pub algorithms: &'a [i64],
}

/// Verifies a registration's attestation object (§7.1 steps 11-21) against its client data.
pub fn registration(
    attestation_object: &str,
    seen: &ClientDataSeen,
    policy: Policy,
    trust: Trust,
) -> Result<Registration, Refusal> {
    let malformed = outcome::FIDO2_MALFORMED_RESPONSE;
    let bytes = base64url(attestation_object)?;
    let arena = Arena::new();
    let (item, length) = Item::decode_prefix(&bytes, &arena)
        .map_err(|e| Refusal::new(malformed, format!("attestationObject: not CBOR: {e}")))?;
    if length != bytes.len() {
        return Err(Refusal::new(
            malformed,
            "attestationObject: bytes after the map",
        ));
    }
    let members = cbor::map(&item).map_err(|_| malformed)?;
    let field = |name: &str| {
        cbor::member(members, name)
            .ok_or_else(|| Refusal::new(malformed, format!("attestationObject: no {name}")))
    };
    let fmt = cbor::text(field("fmt")?).map_err(|_| malformed)?;
    let statement = cbor::map(field("attStmt")?).map_err(|_| malformed)?;
    let raw_auth_data = cbor::bytes(field("authData")?).map_err(|_| malformed)?;
    let auth_data = AuthData::parse(raw_auth_data).map_err(|e| Refusal::new(malformed, e))?;
    check_flags(&auth_data, policy)?;
    let attested = auth_data
        .attested
        .as_ref()
        .ok_or_else(|| Refusal::new(malformed, "authData: no attested credential data"))?;
    if attested.id.is_empty() {
        return Err(Refusal::new(malformed, "authData: an empty credential id"));
    }
    let public_key = PublicKey::from_cose(attested.public_key).map_err(|e| match e {
        CoseKeyError::Unsupported(detail) => {
            Refusal::new(outcome::FIDO2_UNSUPPORTED_ALGORITHM, detail)
        }
        CoseKeyError::Invalid(detail) => Refusal::new(outcome::FIDO2_BAD_PUBLIC_KEY, detail),
    })?;
    if !trust.algorithms.contains(&public_key.algorithm()) {
        return Err(Refusal::new(
            outcome::FIDO2_UNSUPPORTED_ALGORITHM,
            format!(
                "{} was not asked for",
                webauthn::algorithm_name(public_key.algorithm())
            ),
        ));
    }
    let signed = [raw_auth_data, &webauthn::sha256(&seen.raw)[..]].concat();
    let certificate = match fmt {
        "none" => {
            if !statement.is_empty() {
                return Err(Refusal::new(
                    outcome::FIDO2_BAD_ATTESTATION,
                    "none: attStmt is not empty",
                ));
            }
            None
        }
        "packed" => packed(statement, &signed, &public_key, &attested.aaguid)?,
        other => {
            return Err(Refusal::new(
                outcome::FIDO2_ATTESTATION_UNSUPPORTED,
                format!("fmt {other:?}"),
            ))
        }
    };
    if trust.policy == AttestationPolicy::Trusted {
        let chain = match cbor::member(statement, "x5c") {
            Some(x5c) if fmt == "packed" => der_chain(x5c)?,
            _ => {
                return Err(Refusal::new(
                    outcome::FIDO2_ATTESTATION_UNTRUSTED,
                    "no certificate chain: the policy takes only trusted ones",
                ))
            }
        };
        chains_to_trusted(&chain, trust.cas)?;
    }
    Ok(Registration {
        credential_id: attested.id.to_vec(),
        public_key: attested.public_key.to_vec(),
        counter: auth_data.counter,
        certificate,
    })
}

/// The `x5c` array's certificates, DER.
fn der_chain<'a>(x5c: &Item<'a>) -> Result<Vec<&'a [u8]>, Outcome> {
    let chain = cbor::array(x5c).map_err(|_| outcome::FIDO2_BAD_ATTESTATION)?;
    if chain.is_empty() {
        return Err(outcome::FIDO2_BAD_ATTESTATION);
    }
    chain
        .iter()
        .map(|c| cbor::bytes(c).map_err(|_| outcome::FIDO2_BAD_ATTESTATION))
        .collect()
}

/// `packed` (§8.2): with `x5c`, the signature by the certificate's key and the certificate's
/// requirements (§8.2.1); without, self attestation by the credential's own key.
fn packed(
    statement: &[(Item, Item)],
    signed: &[u8],
    credential_key: &PublicKey,
    aaguid: &[u8; 16],
) -> Result<Option<Vec<u8>>, Refusal> {
    let bad =
        |detail: &str| Refusal::new(outcome::FIDO2_BAD_ATTESTATION, format!("packed: {detail}"));
    let alg = cbor::member(statement, "alg")
        .and_then(Item::as_i64)
        .ok_or_else(|| bad("no alg"))?;
    let signature = cbor::member(statement, "sig")
        .and_then(Item::as_bytes)
        .ok_or_else(|| bad("no sig"))?;
    let Some(x5c) = cbor::member(statement, "x5c") else {
        if alg != credential_key.algorithm() {
            return Err(bad(
                "self attestation with an alg other than the credential's",
            ));
        }
        if !credential_key.verify(signed, signature) {
            return Err(bad("the self attestation signature does not verify"));
        }
        return Ok(None);
    };
    let chain = der_chain(x5c)?;
    let (_, certificate) =
        X509Certificate::from_der(chain[0]).map_err(|_| bad("x5c[0] is not a certificate"))?;
    if !attestation::x5c_signature_verifies(&certificate, alg, signed, signature) {
        return Err(bad("the signature does not verify with x5c[0]'s key"));
    }
    attestation::certificate_requirements(&certificate, aaguid).map_err(|e| bad(&e))?;
    Ok(Some(chain[0].to_vec()))
}

/// Whether `chain` (leaf first) is valid now and ends at one of `cas` (§7.1 steps 20-21): each
/// certificate signed by the next, the last by a trusted CA (or itself one).
fn chains_to_trusted(chain: &[&[u8]], cas: &[Vec<u8>]) -> Result<(), Outcome> {
    let untrusted = outcome::FIDO2_ATTESTATION_UNTRUSTED;
    let parsed: Vec<X509Certificate> = chain
        .iter()
        .map(|der| X509Certificate::from_der(der).map(|(_, c)| c))
        .collect::<Result<_, _>>()
        .map_err(|_| outcome::FIDO2_BAD_ATTESTATION)?;
    for (i, certificate) in parsed.iter().enumerate() {
        if !certificate.validity().is_valid() {
            return Err(untrusted);
        }
        if let Some(issuer) = parsed.get(i + 1) {
            let signed_by_next = issuer.is_ca()
                && certificate.issuer() == issuer.subject()
                && certificate
                    .verify_signature(Some(issuer.public_key()))
                    .is_ok();
            if !signed_by_next {
                return Err(untrusted);
            }
        }
    }
    let last = parsed.last().ok_or(untrusted)?;
    let anchored = cas.iter().any(|der| {
        if der.as_slice() == chain[chain.len() - 1] {
            return true;
        }
        let Ok((_, ca)) = X509Certificate::from_der(der) else {
            return false;
        };
        ca.is_ca()
            && ca.validity().is_valid()
            && last.issuer() == ca.subject()
            && last.verify_signature(Some(ca.public_key())).is_ok()
    });
    if anchored {
        Ok(())
    } else {
        Err(untrusted)
    }
}

/// Verifies an assertion (§7.2 steps 15-20) with the credential's stored COSE key; returns its
/// counter. The counter's own check (step 21) is the caller's.
pub fn assertion(
    response: &AssertionResponse,
    seen: &ClientDataSeen,
    policy: Policy,
    public_key: &PublicKey,
) -> Result<u32, Refusal> {
    let raw_auth_data = base64url(&response.authenticator_data)?;
    let signature = base64url(&response.signature)?;
    let auth_data = AuthData::parse(&raw_auth_data)
        .map_err(|e| Refusal::new(outcome::FIDO2_MALFORMED_RESPONSE, e))?;
    check_flags(&auth_data, policy)?;
    let signed = [&raw_auth_data[..], &webauthn::sha256(&seen.raw)[..]].concat();
    if !public_key.verify(&signed, &signature) {
        return Err(outcome::FIDO2_BAD_SIGNATURE.into());
    }
    Ok(auth_data.counter)
}

/// §7.2 step 21: a counter that is not zero must be above the stored one; one that went back (or
/// stayed) is a cloned or restored authenticator. Zero on both sides means the authenticator
/// keeps no counter.
pub fn counter_rises(stored: u32, seen: u32) -> bool {
    (stored == 0 && seen == 0) || seen > stored
}

/// The DER certificates of PEM `text` (a CA file), in order.
pub fn pem_certificates(text: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certificates = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text) {
        let pem = pem.map_err(|e| format!("not PEM: {e}"))?;
        if pem.label == "CERTIFICATE" {
            X509Certificate::from_der(&pem.contents)
                .map_err(|e| format!("a certificate does not parse: {e}"))?;
            certificates.push(pem.contents);
        }
    }
    if certificates.is_empty() {
        return Err("no CERTIFICATE in it".into());
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    fn encoded(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn client_data_type_and_cross_origin_are_checked() {
        let get = r#"{"type":"webauthn.get","challenge":"c","origin":"https://aa.example"}"#;
        let seen = client_data(&encoded(get), webauthn::TYPE_GET).unwrap();
        assert_eq!(seen.raw, get.as_bytes());
        assert_eq!(
            client_data(&encoded(get), webauthn::TYPE_CREATE).unwrap_err(),
            outcome::FIDO2_WRONG_TYPE
        );
        let framed = r#"{"type":"webauthn.get","challenge":"c","origin":"o","crossOrigin":true}"#;
        assert_eq!(
            client_data(&encoded(framed), webauthn::TYPE_GET).unwrap_err(),
            outcome::FIDO2_CROSS_ORIGIN
        );
        for bad in ["%%", &encoded("[]"), &encoded(r#"{"type":"webauthn.get"}"#)] {
            assert_eq!(
                client_data(bad, webauthn::TYPE_GET).unwrap_err(),
                outcome::FIDO2_MALFORMED_RESPONSE
            );
        }
    }

    fn seen_from(origin: &str) -> ClientDataSeen {
        ClientDataSeen {
            raw: Vec::new(),
            challenge: String::new(),
            origin: origin.into(),
        }
    }

    #[test]
    fn origins_are_compared_as_a_browser_serialises_them() {
        assert_eq!(
            normalised_origin("HTTPS://AA.Example:443").as_deref(),
            Some("https://aa.example")
        );
        assert_eq!(
            normalised_origin("http://127.0.0.1:80/").as_deref(),
            Some("http://127.0.0.1")
        );
        for not_an_origin in [
            "aa.example",
            "https://aa.example/login",
            "https://u@aa.example",
        ] {
            assert_eq!(normalised_origin(not_an_origin), None, "{not_an_origin}");
        }
        let server = [
            "https://aa.example".to_owned(),
            "http://127.0.0.1:8443".into(),
        ];
        for taken in [
            "https://AA.example",
            "https://aa.example:443",
            "http://127.0.0.1:8443",
        ] {
            origin(&seen_from(taken), &server).unwrap();
        }
        for refused in [
            "https://aa.example:8443",
            "http://aa.example",
            "http://127.0.0.1",
            "https://aa.example.evil",
            "https://aa.example/path",
        ] {
            let refusal = origin(&seen_from(refused), &server).unwrap_err();
            assert_eq!(refusal.outcome, outcome::FIDO2_ORIGIN_MISMATCH, "{refused}");
        }
    }

    #[test]
    fn the_counter_must_rise_unless_the_authenticator_keeps_none() {
        assert!(counter_rises(0, 0));
        assert!(counter_rises(0, 1));
        assert!(counter_rises(5, 6));
        assert!(!counter_rises(5, 5));
        assert!(!counter_rises(5, 4));
        assert!(!counter_rises(5, 0));
    }
}
