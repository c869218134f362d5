//! libFuzzer target `apdu`: see `tests/fuzz/checks.rs`, `checks::apdu`, for what must hold.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::apdu(data));
