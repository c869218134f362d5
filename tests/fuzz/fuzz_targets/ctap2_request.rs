//! libFuzzer target `ctap2_request`: see `tests/fuzz/checks.rs`, `checks::ctap2_request`, for what must hold.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ctap2_request(data));
