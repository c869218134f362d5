#!/usr/bin/env bash
# Runs every test of vu2f, installing what they need first:
#   formatting and lints, the Rust tests of the workspace (unit, integration, properties, kill -9),
#   python-fido2 (PyPI, in a virtual environment under target/) driving `vu2f serve --udp`,
#   and the README's first command.
# A test that cannot run fails; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/venv
if [ ! -x "$venv/bin/pytest" ] || ! "$venv/bin/python" -c 'import fido2' 2>/dev/null; then
  echo "== installing python-fido2 and pytest into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'fido2>=2.0,<3' 'pytest>=8'
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings

echo "== cargo test (workspace)"
cargo test --workspace --release

echo "== python-fido2 over UDP"
VU2F_BIN="$PWD/target/release/vu2f" "$venv/bin/pytest" -q tests/python

echo "== README first command: vu2f demo"
cargo run --release --quiet -- demo >/dev/null
echo "all tests passed"
