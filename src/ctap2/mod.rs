//! # ctap2 — the CTAP 2.1 (FIDO2) authenticator beside `u2f` (CTAP 2.1 sections 6 and 8;
//! `../shared/spec/CTAP2.md`; DESIGN.md, "FIDO2")
//!
//! Sans-IO like `u2f`: fed by the same `hid` framing (CTAPHID_CBOR), on the same `keystore`.
//! This is its foundation; the commands (getInfo, makeCredential, getAssertion, …) come on top.
//!
//! * [`status`]: the status byte of every reply, with its wire value.
//! * [`cbor`]: CTAP2 canonical CBOR out, strict CBOR in, each failure its status.
pub mod cbor;
pub mod status;

pub use status::Status;
