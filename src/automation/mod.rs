//! # automation — the automation API of `vu2f serve --control`
//!
//! * [`credentials`]: WebDriver's credential operations on a served token.
//! * [`faults`]: one-shot faults for testing relying parties and hosts.
pub mod credentials;
pub mod faults;
