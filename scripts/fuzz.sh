#!/usr/bin/env bash
# Runs each libFuzzer target of tests/fuzz for a fixed time budget (default 600 s each).
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     targets: apdu ctaphid key_handle server_reply
#                                              ctap2_request ctaphid_cbor manage_request
# The corpus grows in target/fuzz-corpus/<target> from the committed seeds (tests/fuzz/seeds);
# a crashing input lands in tests/fuzz/regressions/<target>/, which `cargo test --test
# fuzz_regressions` replays from then on: commit it with the fix. Exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps

seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(apdu ctaphid key_handle server_reply ctap2_request ctaphid_cbor manage_request)
fi

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# libFuzzer instrumentation needs nightly flags: the nightly toolchain if there is one, else the
# stable compiler told to accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

mkdir -p target/fuzz-logs
"${fuzz[@]}" build --fuzz-dir tests/fuzz -O 2>&1 | tail -1
failed=0
for target in "${targets[@]}"; do
    corpus="target/fuzz-corpus/$target"
    findings="tests/fuzz/regressions/$target"
    mkdir -p "$corpus" "$findings"
    log="target/fuzz-logs/$target.log"
    echo "fuzz $target for ${seconds} s (log: $log)"
    if "${fuzz[@]}" run --fuzz-dir tests/fuzz -O "$target" "$corpus" "tests/fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -artifact_prefix="$findings/" -print_final_stats=1 \
        -rss_limit_mb=4096 >"$log" 2>&1; then
        status=held
    else
        status=CRASHED
        failed=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    echo "  $target: $status; $runs executions, coverage $cov edges, corpus $(ls "$corpus" | wc -l) inputs"
done
exit "$failed"
