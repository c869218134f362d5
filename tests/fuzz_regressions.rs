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

#[test]
fn ctap2_request() {
    replay("ctap2_request", checks::ctap2_request);
}

#[test]
fn ctaphid_cbor() {
    replay("ctaphid_cbor", checks::ctaphid_cbor);
}

/// The seeds of the CTAP2 targets are built in `checks.rs` (requests written by ciborium), so
/// that they follow the requests the targets know; `VU2F_WRITE_SEEDS=1` writes them out.
#[test]
fn ctap2_seeds_are_the_ones_checks_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds");
    let write = std::env::var_os("VU2F_WRITE_SEEDS").is_some();
    for (target, seeds) in [
        ("ctap2_request", checks::ctap2_request_seeds()),
        ("ctaphid_cbor", checks::ctaphid_cbor_seeds()),
        ("manage_request", checks::manage_request_seeds()),
    ] {
        let dir = root.join(target);
        for (name, bytes) in seeds {
            let path = dir.join(name);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                let on_disk = std::fs::read(&path).unwrap_or_default();
                assert!(
                    on_disk == bytes,
                    "{} is not the seed checks.rs builds: rerun with VU2F_WRITE_SEEDS=1",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn manage_request() {
    replay("manage_request", checks::manage_request);
}
