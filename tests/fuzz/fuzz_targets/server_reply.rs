//! libFuzzer target `server_reply`: see `tests/fuzz/checks.rs`, `checks::server_reply`, for what must hold.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::server_reply(data));
