//! # ctap2 — the CTAP 2.1 (FIDO2) authenticator beside `u2f` (CTAP 2.1 sections 6 and 8;
//! `../shared/spec/CTAP2.md`; DESIGN.md, "FIDO2")
//!
//! Sans-IO like `u2f`: fed by the same `hid` framing (CTAPHID_CBOR), on the same `keystore`. A
//! request comes in as bytes with the time; a reply comes out, or the request waits for the user
//! and is polled (see [`authenticator`]).
//!
//! * [`authenticator`]: the engine: command dispatch, waiting for the user, CANCEL.
//! * [`get_info`]: authenticatorGetInfo (6.4).
//! * [`make_credential`]: authenticatorMakeCredential (6.1) and `packed` attestation.
//! * [`get_assertion`]: authenticatorGetAssertion and GetNextAssertion (6.2, 6.3).
//! * [`client_pin`]: authenticatorClientPIN and the pinUvAuthToken (6.5).
//! * [`built_in_uv`]: built-in user verification that can fail, and uvRetries (performBuiltInUv).
//! * [`reset`]: authenticatorReset (6.6).
//! * [`credential_management`]: authenticatorCredentialManagement (6.8).
//! * [`config`]: authenticatorConfig (6.11) and what alwaysUv changes.
//! * [`large_blobs`]: authenticatorLargeBlobs (6.10).
//! * [`extensions`]: credProtect, hmac-secret, credBlob, largeBlobKey (12): inputs and outputs.
//! * [`hmac_secret`]: hmac-secret and hmac-secret-mc (12.5).
//! * [`pin_protocol`]: PIN/UV auth protocols one and two (6.5.6, 6.5.7).
//! * [`request`]: the requests of those commands, decoded and typed.
//! * [`credential`]: credential keys (ES256, EdDSA) sealed into credential ids.
//! * [`auth_data`]: the authenticator data layout.
//! * [`cose`]: algorithms and COSE keys.
//! * [`status`]: the status byte of every reply, with its wire value.
//! * [`cbor`]: CTAP2 canonical CBOR out, strict CBOR in, each failure its status.
pub mod auth_data;
pub mod authenticator;
pub mod built_in_uv;
pub mod cbor;
pub mod client_pin;
pub mod config;
pub mod cose;
pub mod credential;
pub mod credential_management;
pub mod extensions;
pub mod get_assertion;
pub mod get_info;
pub mod hmac_secret;
pub mod large_blobs;
pub mod make_credential;
pub mod pin_protocol;
pub mod request;
pub mod reset;
pub mod status;

pub use authenticator::{Authenticator, Step};
pub use status::Status;
