#!/usr/bin/env bash
# The uhid tests, where /dev/uhid is (or can be made) writable: in the VM of scripts/vm-test.sh,
# or on a machine whose kernel has uhid. A missing /dev/uhid is a failure here, not a skip.
#   usage: scripts/uhid-tests.sh UHID_TEST_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
test_binary=$1
[ -e /dev/uhid ] || modprobe uhid
export VU2F_REQUIRE_UHID=1 VU2F_BIN="$PWD/target/release/vu2f" PYTHONDONTWRITEBYTECODE=1
echo "== tests/uhid.rs: libfido2's tools, 16 tokens, probe, kill and restart, the companion"
"$test_binary" --test-threads=1 --nocapture
echo "== python-fido2 through hidraw"
target/venv/bin/pytest -q -p no:cacheprovider tests/python/test_ctap1_hidraw.py
echo "uhid tests passed"
