//! libFuzzer target `manage_request`: see `tests/fuzz/checks.rs`, `checks::manage_request`, for what must hold.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::manage_request(data));
