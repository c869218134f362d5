//! libFuzzer target `ctaphid_cbor`: see `tests/fuzz/checks.rs`, `checks::ctaphid_cbor`, for what must hold.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ctaphid_cbor(data));
