//! Replays every seed and every finding of the fuzz targets (`tests/fuzz/seeds/<target>/`,
//! `tests/fuzz/regressions/<target>/`) through the same checks the fuzzer runs
//! (`tests/fuzz/checks.rs`), so that what once broke stays fixed and CI needs no nightly.
#[path = "fuzz/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut inputs = 0;
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} breaks {target}", path.display());
            inputs += 1;
        }
    }
    assert!(inputs >= 3, "{target}: only {inputs} inputs to replay");
}

#[test]
fn apdu() {
    replay("apdu", checks::apdu);
}

#[test]
fn ctaphid() {
    replay("ctaphid", checks::ctaphid);
}

#[test]
fn key_handle() {
    replay("key_handle", checks::key_handle);
}

#[test]
fn server_reply() {
    replay("server_reply", checks::server_reply);
}
