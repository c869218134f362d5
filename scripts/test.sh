#!/usr/bin/env bash
# Runs every test of vu2f, installing what they need first:
#   formatting and lints, the Rust tests of the workspace (unit, integration, properties, kill -9,
#   the AA flows), python-fido2 (PyPI, in a virtual environment under target/) driving
#   `vu2f serve --udp`, Locust against the emulator and the Device Service, the uhid tests against a real kernel (in a VM where this one has no uhid:
#   scripts/vm-test.sh; Chromium and Firefox among them), the Debian package installed on a
#   throwaway VM and used by a non-root user (scripts/vm-package-test.sh), and the README's first
#   command.
# A test that cannot run fails; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps
ensure_debian_packages chromium
venv=target/venv
ensure_python_venv "$venv" "${VU2F_VENV_PACKAGES[@]}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
# The fuzz crate is a workspace of its own (tests/fuzz); its sources are checked here too.
rustfmt --check --edition 2021 tests/fuzz/checks.rs tests/fuzz/fuzz_targets/*.rs
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings

echo "== cargo test (workspace)"
VU2F_REQUIRE_CHROMIUM=1 cargo test --workspace --release

echo "== python-fido2 over UDP; Locust through the Device Service"
VU2F_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/vu2f" "$venv/bin/pytest" -q tests/python \
  --ignore-glob='*_hidraw.py' --ignore=tests/python/test_browsers.py

echo "== uhid: libfido2, python-fido2 and vu2f through the kernel"
scripts/vm-test.sh

echo "== the Debian package: installed in a VM, used by a fresh non-root user"
scripts/vm-package-test.sh

echo "== README first command: vu2f demo"
cargo run --release --quiet -- demo >/dev/null
echo "all tests passed"
