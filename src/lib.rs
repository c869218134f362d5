//! # vu2f — a software U2F security key for Linux
//!
//! Layers, from the bottom (`DESIGN.md`, "Data flow"); dependencies point one way:
//!
//! ```text
//!   device  (UDP today; uhid) ── bytes on a wire
//!   hid     CTAPHID / U2FHID framing and channels, sans-IO
//!   u2f     APDUs -> REGISTER / AUTHENTICATE / VERSION, sans-IO
//!   keystore (crate) master keys, key handles, attestation, the sled counter
//! ```
//! `transport` is the host side: how a client reaches a token (in-process or UDP).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aa;
pub mod aa_sim;
pub mod hid;
pub mod https;
pub mod u2f;

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
pub mod bench;
pub mod cli;
pub mod client;
pub mod demo;
pub mod device;
pub mod load;
pub mod probe;
pub mod transport;
