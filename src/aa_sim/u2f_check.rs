//! What a relying party verifies of a U2F answer (PROTOCOLS.md section 4), as pure functions that
//! answer the [`Outcome`] of the first check that fails. The challenge's own bookkeeping (single
//! use, owner, expiry) needs the emulator's state and is done by the callers.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use crate::aa::api::SignResponse;
use crate::aa::outcome::{self, Outcome};
use crate::aa::portal::RegisterResponse;
use crate::u2f::messages::{self, AuthenticationResponse, RegistrationResponse};

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
struct ClientDataFields {
    typ: String,
    challenge: String,
    origin: String,
}

/// Decodes base64url client data and checks its `typ`.
pub fn client_data(encoded: &str, expected_typ: &str) -> Result<ClientDataSeen, Outcome> {
    let raw = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| outcome::U2F_MALFORMED_RESPONSE)?;
    let fields: ClientDataFields =
        serde_json::from_slice(&raw).map_err(|_| outcome::U2F_MALFORMED_RESPONSE)?;
    if fields.typ != expected_typ {
        return Err(outcome::U2F_WRONG_TYP);
    }
    Ok(ClientDataSeen {
        raw,
        challenge: fields.challenge,
        origin: fields.origin,
    })
}

/// Checks that `origin` is one of the accepted facets.
pub fn origin(seen: &ClientDataSeen, facets: &[String]) -> Result<(), Outcome> {
    if facets.iter().any(|f| f == &seen.origin) {
        Ok(())
    } else {
        Err(outcome::U2F_ORIGIN_MISMATCH)
    }
}

/// Checks a sign response's flags and signature against the stored public key (section 4,
/// logon steps 3 and 4) and returns its counter. The counter's own check is the caller's.
pub fn assertion(
    response: &SignResponse,
    seen: &ClientDataSeen,
    app_id: &str,
    public_key: &[u8],
) -> Result<u32, Outcome> {
    let data = URL_SAFE_NO_PAD
        .decode(response.signature_data.trim_end_matches('='))
        .map_err(|_| outcome::U2F_MALFORMED_RESPONSE)?;
    let parsed =
        AuthenticationResponse::try_from(&data[..]).map_err(|_| outcome::U2F_MALFORMED_RESPONSE)?;
    if parsed.flags & 0x01 == 0 {
        return Err(outcome::U2F_USER_NOT_PRESENT);
    }
    parsed
        .verify(
            &messages::app_param(app_id),
            &messages::challenge_param(&seen.raw),
            public_key,
        )
        .map_err(|_| outcome::U2F_BAD_SIGNATURE)?;
    Ok(parsed.counter)
}

/// Parses and verifies a registration (section 4, registration steps 2 to 4).
pub fn registration(
    response: &RegisterResponse,
    seen: &ClientDataSeen,
    app_id: &str,
) -> Result<RegistrationResponse, Outcome> {
    let data = URL_SAFE_NO_PAD
        .decode(response.registration_data.trim_end_matches('='))
        .map_err(|_| outcome::U2F_BAD_REGISTRATION)?;
    let parsed =
        RegistrationResponse::try_from(&data[..]).map_err(|_| outcome::U2F_BAD_REGISTRATION)?;
    parsed
        .verify(
            &messages::app_param(app_id),
            &messages::challenge_param(&seen.raw),
        )
        .map_err(|e| match e {
            messages::MessageError::Signature => outcome::U2F_BAD_SIGNATURE,
            _ => outcome::U2F_BAD_REGISTRATION,
        })?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn client_data_is_read_as_sent_and_its_typ_checked() {
        let sample = r#"{ "challenge": "abc", "origin": "https:\/\/aa.example", "typ": "navigator.id.getAssertion" }"#;
        let seen = client_data(&encoded(sample), "navigator.id.getAssertion").unwrap();
        assert_eq!(seen.raw, sample.as_bytes(), "hashed as received");
        assert_eq!(seen.origin, "https://aa.example");
        assert_eq!(
            client_data(&encoded(sample), "navigator.id.finishEnrollment").unwrap_err(),
            outcome::U2F_WRONG_TYP
        );
        for bad in ["%%%", &encoded("not json"), &encoded(r#"{"typ":"x"}"#)] {
            assert_eq!(
                client_data(bad, "x").unwrap_err(),
                outcome::U2F_MALFORMED_RESPONSE
            );
        }
    }

    #[test]
    fn only_listed_facets_are_accepted() {
        let seen = client_data(
            &encoded(r#"{"typ":"t","challenge":"c","origin":"https://evil.example"}"#),
            "t",
        )
        .unwrap();
        assert_eq!(
            origin(&seen, &["https://aa.example".into()]).unwrap_err(),
            outcome::U2F_ORIGIN_MISMATCH
        );
        assert!(origin(&seen, &["https://evil.example".into()]).is_ok());
    }
}
