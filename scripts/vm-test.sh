#!/usr/bin/env bash
# Runs the uhid tests (tests/uhid.rs, tests/python/*_hidraw.py, and Chromium and Firefox
# in tests/python/test_browsers.py) against the kernel.
# Where /dev/uhid is writable they run here. Otherwise (CI's kernel has no CONFIG_UHID) they run
# in a throwaway VM: virtme-ng (PyPI) boots Debian's linux-image-amd64 kernel, where uhid is a
# module, under qemu without KVM, with this machine's filesystem shared read-only; it boots in
# about 20 s. Everything it needs is installed first. Any failure, including a VM that cannot
# boot, fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps
ensure_debian_packages fido2-tools "${VU2F_BROWSER_PACKAGES[@]}"
ensure_python_venv target/venv "${VU2F_VENV_PACKAGES[@]}"

cargo build --release --quiet
test_binary=$(cargo test --release --quiet --test uhid --no-run --message-format=json \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "uhid":
        print(m["executable"])')

if [ -w /dev/uhid ]; then
  exec scripts/uhid-tests.sh "$test_binary"
fi

ensure_debian_packages qemu-system-x86 linux-image-amd64 busybox-static
ensure_python_venv target/vng 'virtme-ng==1.42'
kernel=$(ls /boot/vmlinuz-*-amd64 | sort -V | tail -n 1)
# The VM inherits no environment: where cargo built vu2f goes in by name, for uhid-tests.sh.
target_dir=$(realpath "${CARGO_TARGET_DIR:-target}")
# Without KVM, and with other work on the machine, the run takes 20 to 25 minutes: a python-fido2
# test through hidraw 15 to 25 s (mostly starting vu2f processes), the 29 of them 7 to 13
# minutes, the browser tests 4 to 7 minutes. The limit is for a VM that hangs.
echo "== booting $kernel under qemu (no KVM) to run the uhid tests"
PATH="$PWD/target/vng/bin:$PATH" timeout 2400 vng --run "$kernel" --disable-kvm --user root \
  --memory 2G --cpus 2 \
  --exec "CARGO_TARGET_DIR=$target_dir $PWD/scripts/uhid-tests.sh $test_binary" 2>&1 | vm_console
