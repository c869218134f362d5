//! # automation — the automation API of `vu2f serve --control`
//!
//! * [`credentials`]: WebDriver's credential operations on a served token.
//! * [`faults`]: one-shot faults for testing relying parties and hosts.
//! * [`large_blob`]: a credential's large blob in the token's array, as a platform writes it.
pub mod credentials;
pub mod faults;
pub mod large_blob;
