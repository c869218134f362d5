//! # webauthn — what a WebAuthn client and a relying party both read (WebAuthn Level 2 §5.8.1,
//! §6.1, §6.5.1, §8.2): the client data JSON, authenticator data, COSE public keys, packed
//! attestation certificates, and a CTAP2 reply's status and map.
//!
//! The companion builds client data and reads authenticator data as a browser does; the emulator
//! reads the same bytes as a relying party (§7.1, §7.2), and `vu2f probe` as a relying party
//! checking a token. Parsers take bytes from outside and answer an error naming the field, never
//! a panic. One home for each piece:
//!
//! | module | what |
//! |---|---|
//! | this one | client data JSON, SHA-256, base64url, constants (flags, algorithms, `public-key`) |
//! | [`auth_data`] | authenticator data, split |
//! | [`cose`] | COSE_Key → a public key checked to be valid |
//! | [`attestation`] | `packed`'s x5c signature and the certificate requirements of §8.2.1 |
//! | [`ctap2_reply`] | a CTAP2 reply's status byte (named) and its CBOR map |
//!
//! ```text
//!  authData  rpIdHash (32) ‖ flags (1) ‖ signCount (4, BE)
//!            [ ‖ AAGUID (16) ‖ credIdLen (2, BE) ‖ credId ‖ COSE key ]   AT (0x40)
//!            [ ‖ extensions (CBOR map) ]                                  ED (0x80)
//!  flags     UP 0x01, UV 0x04, AT 0x40, ED 0x80
//! ```
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

pub mod attestation;
pub mod auth_data;
pub mod cose;
pub mod ctap2_reply;

pub use auth_data::{AttestedCredential, AuthData};
pub use cose::{CoseKeyError, PublicKey};

/// `type` of the client data of a registration.
pub const TYPE_CREATE: &str = "webauthn.create";
/// `type` of the client data of an assertion.
pub const TYPE_GET: &str = "webauthn.get";
/// User present.
pub const FLAG_UP: u8 = 0x01;
/// User verified.
pub const FLAG_UV: u8 = 0x04;
/// Attested credential data included.
pub const FLAG_AT: u8 = 0x40;
/// Extension data included.
pub const FLAG_ED: u8 = 0x80;
/// COSE algorithm ES256 (ECDSA P-256 with SHA-256).
pub const ES256: i64 = -7;
/// COSE algorithm EdDSA (Ed25519).
pub const EDDSA: i64 = -8;
/// The credential type of every WebAuthn credential (`PublicKeyCredentialType`, §5.8.2).
pub const PUBLIC_KEY: &str = "public-key";
/// The certificate extension id-fido-gen-ce-aaguid (§8.2.1).
pub const AAGUID_EXTENSION: &str = "1.3.6.1.4.1.45724.1.1.4";

/// The client data JSON as a browser serialises it (WebAuthn Level 2 §5.8.1.1): `type`,
/// `challenge` (base64url without padding), `origin`, `crossOrigin`, in that order.
pub fn client_data_json(typ: &str, challenge: &str, origin: &str) -> Vec<u8> {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"type\":{},\"challenge\":{},\"origin\":{},\"crossOrigin\":false}}",
        quote(typ),
        quote(challenge),
        quote(origin)
    )
    .into_bytes()
}

/// Base64url `text`, with or without padding (WebAuthn's binary fields in JSON).
pub fn base64url(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    hash
}

/// The name of a COSE algorithm, for people.
pub fn algorithm_name(alg: i64) -> &'static str {
    match alg {
        ES256 => "ES256",
        EDDSA => "EdDSA",
        _ => "an algorithm vu2f does not verify",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_data_is_written_as_a_browser_writes_it() {
        assert_eq!(
            client_data_json(TYPE_GET, "abc", "https://aa.example"),
            br#"{"type":"webauthn.get","challenge":"abc","origin":"https://aa.example","crossOrigin":false}"#
        );
        let quoted = client_data_json(TYPE_CREATE, "a\"b", "x");
        assert!(serde_json::from_slice::<serde_json::Value>(&quoted).is_ok());
    }
}
