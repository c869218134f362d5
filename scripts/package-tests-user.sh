#!/usr/bin/env bash
# The non-root half of scripts/package-tests.sh: runs as a user who only got the groups uhid and
# plugdev, with nothing but the installed package (and python-fido2, pytest and selenium in $VENV,
# made from Debian's python3 so that any user can run it; the browser tests in $TESTS).
set -euo pipefail
[ "$(id -u)" -ne 0 ] || { echo "must not run as root" >&2; exit 1; }
cd "$HOME"
work=$(mktemp -d)
vu2f token create alice >/dev/null

# The unit's own command, as `systemctl --user start vu2f` would run it.
exec_start=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/user/vu2f.service)
$exec_start --json > "$work/served" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/served" ] && break; sleep 0.1; done
device=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["hidraw"])' "$work/served")
echo "served on $device by $(id -un), groups: $(id -Gn)"
[ -r "$device" ] && [ -w "$device" ] || { ls -l "$device" >&2; exit 1; }

fido2-token -L | grep -q "^$device: vendor=0x1209, product=0x0001" \
  || { fido2-token -L >&2; echo "fido2-token -L does not list $device" >&2; exit 1; }
hash=$(head -c 32 /dev/urandom | base64)
printf '%s\npackage.vu2f.test\nalice\n%s\n' "$hash" "$(head -c 32 /dev/urandom | base64)" > "$work/cred_param"
fido2-cred -M -u -i "$work/cred_param" -o "$work/cred" "$device"
fido2-cred -V -i "$work/cred" -o "$work/verified"
credential=$(head -n 1 "$work/verified")
tail -n +2 "$work/verified" > "$work/key.pem"
printf '%s\npackage.vu2f.test\n%s\n' "$hash" "$credential" > "$work/assert_param"
fido2-assert -G -u -p -i "$work/assert_param" -o "$work/assertion" "$device"
fido2-assert -V -p -i "$work/assertion" "$work/key.pem" es256
echo "libfido2: fido2-token lists the token; a credential and an assertion verify"

"$VENV/bin/python" - "$device" <<'PY'
import hashlib, os, sys
from fido2.ctap1 import Ctap1
from fido2.hid import CtapHidDevice

device = [d for d in CtapHidDevice.list_devices() if d.descriptor.path == sys.argv[1]]
assert len(device) == 1, list(CtapHidDevice.list_devices())
ctap1 = Ctap1(device[0])
app = hashlib.sha256(b"https://package.vu2f.test").digest()
client = hashlib.sha256(os.urandom(32)).digest()
registration = ctap1.register(client, app)
registration.verify(app, client)
counters = []
for _ in range(2):
    challenge = hashlib.sha256(os.urandom(32)).digest()
    signature = ctap1.authenticate(challenge, app, registration.key_handle)
    signature.verify(app, challenge, registration.public_key)
    counters.append(signature.counter)
assert counters[1] > counters[0], counters
print("python-fido2: list_devices finds the token; Ctap1 registers and signs, counters", counters)
PY

kill $server
wait $server 2>/dev/null || true
trap - EXIT
echo "== Chromium as $(id -un): a passkey on a fido2 token it serves with /usr/bin/vu2f"
# The browser test's own fixture serves the token (`vu2f serve --uhid`, this user's store) and
# starts Xvfb and Chromium; its relying party verifies the registration and both sign-ins.
VU2F_BIN=/usr/bin/vu2f "$VENV/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$TESTS" \
  "$TESTS/test_browsers.py" -k TestChromiumWithAFido2Token
