//! The browser's part of a WebAuthn ceremony (WebAuthn Level 2 §5.1.3, §5.1.4), done by the
//! companion for AA's `FIDO2:1`: it reads the server's options, checks the RP id against the
//! page's origin as a browser does, builds the client data JSON, and asks the token over CTAP2
//! (makeCredential, getAssertion; CBOR written with the crate's canonical writer), then shapes
//! the token's answer as the portal sends it (base64url fields, [`crate::aa::fido2`]).
//!
//! ```text
//!  options ──► Creation / Request (RP id checked) ──► clientDataJSON, its SHA-256
//!          ──► token: 0x01 makeCredential / 0x02 getAssertion ──► attestationObject / assertion
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`rp_id`] | the RP id a page of an origin may use (§5.1.3 step 8) |
//! | [`options`] | the server's options read as a browser reads them: [`Creation`], [`Request`] |
//! | [`ceremony`] | the token asked over CTAP2, its reply shaped for the portal: [`Made`], [`Asserted`] |
use super::ClientError;
use crate::webauthn;

pub mod ceremony;
pub mod options;
pub mod rp_id;

pub use ceremony::{Asserted, Ctap2Info, Made};
pub use options::{Creation, Request};
pub use rp_id::check_rp_id;

pub(crate) fn bad_reply(call: &str, detail: impl Into<String>) -> ClientError {
    ClientError::BadReply {
        call: call.to_owned(),
        detail: detail.into(),
    }
}

/// Base64url as a browser takes it: with or without padding.
pub(crate) fn base64url(text: &str, call: &str, field: &str) -> Result<Vec<u8>, ClientError> {
    webauthn::base64url(text).map_err(|e| bad_reply(call, format!("{field}: not base64url: {e}")))
}
