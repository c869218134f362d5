#!/usr/bin/env bash
# The uhid tests, where /dev/uhid is (or can be made) writable: in the VM of scripts/vm-test.sh,
# or on a machine whose kernel has uhid. A missing /dev/uhid, browser or tool is a failure here,
# not a skip.
#   usage: scripts/uhid-tests.sh UHID_TEST_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
test_binary=$1
[ -e /dev/uhid ] || modprobe uhid
# vu2f as `cargo build --release` made it: under CARGO_TARGET_DIR where that is set
# (scripts/vm-test.sh gives it to the VM, which inherits no environment), under target/ otherwise.
export VU2F_REQUIRE_UHID=1 VU2F_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/vu2f" PYTHONDONTWRITEBYTECODE=1
# Xvfb, the browsers and vu2f (its control socket, for `vu2f replug`) need a /tmp that holds Unix
# sockets. The VM's does not (an overlay on the host's 9p share): there, and only where it fails,
# a tmpfs of its own.
if ! python3 -c 'import os, socket, tempfile
with tempfile.TemporaryDirectory() as d: socket.socket(socket.AF_UNIX).bind(os.path.join(d, "s"))' 2>/dev/null; then
  mount -t tmpfs -o mode=1777 tmpfs /tmp
fi
echo "== tests/uhid.rs: libfido2's tools, 16 tokens, probe, kill and restart, replug, the companion"
"$test_binary" --test-threads=1 --nocapture
echo "== python-fido2 through hidraw: Ctap1; Ctap2 and Fido2Client with Fido2Server; ClientPin, CredentialManagement, Config, reset, extensions and LargeBlobs"
target/venv/bin/pytest -q -p no:cacheprovider --durations=10 tests/python/*_hidraw.py
echo "== Chromium and Firefox ESR register and sign (u2f and fido2 tokens), Chromium with a passkey, as a relying party's python-fido2 verifies"
browsers_started=$SECONDS
target/venv/bin/pytest -q -s -p no:cacheprovider tests/python/test_browsers.py
echo "browser tests took $((SECONDS - browsers_started)) s"
echo "uhid tests passed"
