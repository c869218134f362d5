//! What a token presents itself as (`shared/spec/CTAP2.md` §12, "CTAP1/U2F coexistence"): a
//! FIDO2 authenticator that speaks CTAP2 over CBOR (and U2F beside it), or a U2F-only key.
//!
//! Stored in each token's record as `"profile": "fido2"` or `"profile": "u2f"`. A record written
//! before profiles existed has no such field and reads as [`Profile::U2f`], whatever
//! [`Profile::default`] (the profile of new tokens) becomes: those tokens were U2F keys.
use serde::{Deserialize, Serialize};

/// A token's protocol profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A CTAP 2.1 authenticator (CBOR over CTAPHID), U2F included: the profile of new tokens,
    /// like a current hardware key.
    #[default]
    Fido2,
    /// A U2F (CTAP1) key only: CBOR requests are answered `INVALID_CMD`.
    U2f,
}

impl Profile {
    /// The profile of a record written before profiles existed.
    pub(crate) fn legacy() -> Self {
        Profile::U2f
    }

    /// The profile's name: `fido2` or `u2f`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Fido2 => "fido2",
            Profile::U2f => "u2f",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile name that is neither `fido2` nor `u2f`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile {0:?}: use fido2 or u2f")]
pub struct UnknownProfile(pub String);

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;

    /// `fido2` or `u2f`, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("fido2") {
            Ok(Profile::Fido2)
        } else if text.eq_ignore_ascii_case("u2f") {
            Ok(Profile::U2f)
        } else {
            Err(UnknownProfile(text.to_owned()))
        }
    }
}

/// How a `fido2` token attests the credentials it makes (WebAuthn Level 2 section 6.5.3, the
/// attestation types; CTAP2.md section 7). Chosen when the token is created; stored in its record
/// as `"attestation": "batch"` or `"self"`, absent (batch) in records made before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttestationType {
    /// Basic attestation: `packed` signed by the store's FIDO2 batch key, its certificate in
    /// `x5c` (verifiable up to `token export-ca`), the AAGUID in it.
    #[default]
    Batch,
    /// Self attestation: `packed` signed by the new credential's own key, no `x5c`, a zero AAGUID;
    /// nothing ties the credential to vu2f, or to any other credential of the token.
    #[serde(rename = "self")]
    SelfAttestation,
}

impl AttestationType {
    /// The type's name: `batch` or `self`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationType::Batch => "batch",
            AttestationType::SelfAttestation => "self",
        }
    }
}

impl std::fmt::Display for AttestationType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An attestation type that is neither `batch` nor `self`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attestation type {0:?}: use batch or self")]
pub struct UnknownAttestationType(pub String);

impl std::str::FromStr for AttestationType {
    type Err = UnknownAttestationType;

    /// `batch` or `self`, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("batch") {
            Ok(AttestationType::Batch)
        } else if text.eq_ignore_ascii_case("self") {
            Ok(AttestationType::SelfAttestation)
        } else {
            Err(UnknownAttestationType(text.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for profile in [Profile::Fido2, Profile::U2f] {
            assert_eq!(profile.to_string().parse::<Profile>(), Ok(profile));
            let json = serde_json::to_string(&profile).unwrap();
            assert_eq!(json, format!("\"{profile}\""));
            assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), profile);
        }
        assert_eq!("FIDO2".parse::<Profile>(), Ok(Profile::Fido2));
        for kind in [AttestationType::Batch, AttestationType::SelfAttestation] {
            assert_eq!(kind.as_str().parse::<AttestationType>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        assert!("none".parse::<AttestationType>().is_err());
        assert_eq!(Profile::default(), Profile::Fido2);
        assert_eq!(Profile::legacy(), Profile::U2f);
    }

    #[test]
    fn an_unknown_name_says_what_to_use() {
        let error = "ctap2".parse::<Profile>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown profile \"ctap2\": use fido2 or u2f"
        );
        assert!(serde_json::from_str::<Profile>("\"Fido2\"").is_err());
    }
}
