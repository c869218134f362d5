//! # vu2f — a software U2F security key for Linux
//!
//! Layers of the token, from the wire down (`DESIGN.md`, "Data flow"); dependencies point one way:
//!
//! ```text
//!   device   bytes on a wire: uhid (/dev/hidrawN for every host), UDP, the Device Service
//!   hid      CTAPHID / U2FHID framing and channels, sans-IO
//!   u2f      APDUs -> REGISTER / AUTHENTICATE / VERSION, sans-IO
//!   ctap2    CTAP 2.1 beside it: canonical CBOR and status codes so far, sans-IO
//!   keystore (crate) master keys, key handles, attestation, the sled counter
//! ```
//!
//! Beside the token: `transport` (how a host reaches one: in-process, UDP or hidraw), `client`
//! (the companion for NetIQ / OpenText Advanced Authentication), `aa` (that REST API's shapes),
//! `aa_sim` (the embedded AA emulator), `webauthn` (what a WebAuthn client and relying party
//! both read), `automation` (the HTTP API that adds and drives served tokens, as WebDriver does
//! virtual authenticators), `load` and `bench`, `probe`, `demo`, and `cli`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aa;
pub mod aa_sim;
pub mod automation;
pub mod bench;
pub mod cli;
pub mod client;
pub mod ctap2;
pub mod demo;
pub mod device;
pub mod hid;
pub mod https;
pub mod load;
pub mod probe;
pub mod transport;
pub mod u2f;
pub mod webauthn;

/// The version of vu2f (from Cargo.toml) as the INIT reply's major, minor and build bytes.
pub const VERSION_TRIPLE: (u8, u8, u8) = (
    version_byte(env!("CARGO_PKG_VERSION_MAJOR")),
    version_byte(env!("CARGO_PKG_VERSION_MINOR")),
    version_byte(env!("CARGO_PKG_VERSION_PATCH")),
);

/// A decimal version component as a byte, saturating at 255.
const fn version_byte(decimal: &str) -> u8 {
    let digits = decimal.as_bytes();
    let mut value: u32 = 0;
    let mut i = 0;
    while i < digits.len() {
        value = value * 10 + (digits[i] - b'0') as u32;
        i += 1;
    }
    if value > 255 {
        255
    } else {
        value as u8
    }
}
