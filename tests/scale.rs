//! 100,000 tokens in one process: created, each registers and authenticates once (every
//! signature verified), and the heap they take stays at or below 2 KiB per token beyond the
//! store's cache. Measured by the `vu2f` binary, whose allocator counts the bytes in use.
mod common;

#[test]
fn a_hundred_thousand_tokens_take_at_most_two_kib_each() {
    let stdout =
        common::succeeded(common::vu2f_storeless().args(["--json", "bench", "--scale", "100000"]));
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["tokens"], 100_000);
    let per_token = report["bytes_per_token"].as_f64().unwrap();
    println!("100,000 tokens: {per_token:.0} bytes of heap each after use; {report}");
    assert!(per_token > 0.0, "the measurement saw the tokens");
    assert!(per_token <= 2048.0, "{per_token:.0} bytes per token");
}
