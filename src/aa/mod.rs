//! # aa — the NetIQ / OpenText Advanced Authentication REST API (PROTOCOLS.md section 1)
//!
//! What the companion client sends and the embedded emulator answers, in one place, so that field
//! names, statuses, reasons and msgids follow the documentation's samples (`tests/fixtures/aa`).
//!
//! * [`api`]: the request and response bodies of the logon flow (PROTOCOLS.md 1.2 and 1.3).
//! * [`portal`]: what only AA's own portal shows (PROTOCOLS.md 1.9, not documented): U2F
//!   enrollment, testing and aborting, the chains query. Every undocumented shape is there.
//! * [`fido2`]: the `FIDO2:1` method as the portal drives it (PROTOCOLS.md 1.9, not documented):
//!   its paths and its WebAuthn bodies.
//! * [`errors`]: AA's request-error bodies, HTTP statuses and msgids (PROTOCOLS.md 1.5, 1.9).
//! * [`outcome`]: status, reason, msgid and msg of each answer (PROTOCOLS.md 1.4).
//! * [`paths`]: the REST paths.
//! * [`endpoint_secret_hash`]: the salted proof of the endpoint secret (PROTOCOLS.md 1.2).
//! * [`U2F`], [`FIDO2`], [`PASSWORD`]: the method ids; [`origin_of`]: the origin of an appId or facet.
pub mod api;
pub mod errors;
pub mod fido2;
pub mod outcome;
pub mod paths;
pub mod portal;

use sha2::{Digest, Sha256};

/// The U2F method.
pub const U2F: &str = "U2F:1";
/// The FIDO2 (WebAuthn) method.
pub const FIDO2: &str = "FIDO2:1";
/// The password method.
pub const PASSWORD: &str = "PASSWORD:1";

/// `scheme://host[:port]` of a URL (an appId, a facet), if `text` is one with a host.
pub fn origin_of(text: &str) -> Option<String> {
    let url = reqwest::Url::parse(text).ok()?;
    url.host_str()?;
    Some(url.origin().ascii_serialization())
}

/// `endpoint_secret_hash` of `POST /api/v1/endpoints/{id}/sessions`:
/// `hex(SHA256(secret ‖ hex(SHA256(endpoint_id ‖ salt))))`, lowercase hex throughout.
pub fn endpoint_secret_hash(endpoint_id: &str, secret: &str, salt: &str) -> String {
    let inner = hex::encode(Sha256::digest(format!("{endpoint_id}{salt}").as_bytes()));
    hex::encode(Sha256::digest(format!("{secret}{inner}").as_bytes()))
}

#[cfg(test)]
mod tests {
    /// The test vector of PROTOCOLS.md section 1.2.
    #[test]
    fn secret_hash_matches_the_test_vector() {
        assert_eq!(
            super::endpoint_secret_hash(
                "178fa64ebafe11eaa1fb0242ac110003",
                "hVqFAFfQmfUqfrLMRf6y86Heslm3GtGt",
                "i_am_salt"
            ),
            "f72f4f69212deed77d2127e532826aa0ad341b8ca523d76947f274abbf61a075"
        );
    }
}
