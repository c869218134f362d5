//! libFuzzer target `key_handle`: see `tests/fuzz/checks.rs`, `checks::key_handle`, for what must hold.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::key_handle(data));
