#!/usr/bin/env bash
# The Debian package, proven on a throwaway system: builds it (scripts/package.sh), boots
# Debian's kernel under qemu with virtme-ng (as scripts/vm-test.sh does) with writable overlays on
# /usr, /etc, /var and /home that vanish with the VM, and runs scripts/package-tests.sh there: the
# package installed with apt-get, then a fresh non-root user serving and using a token from the
# installed files only. Any failure, a VM that cannot boot included, fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps
ensure_debian_packages fido2-tools qemu-system-x86 linux-image-amd64 busybox-static udev systemd \
  man-db python3-venv "${VU2F_BROWSER_PACKAGES[@]}"
ensure_python_venv target/vng 'virtme-ng==1.42'
# python-fido2, pytest and selenium for the non-root user, from Debian's python3: the default
# venv's interpreter lives under /root, which other users cannot enter.
VU2F_VENV_PYTHON=/usr/bin/python3 ensure_python_venv target/venv-system \
  'fido2>=2.0,<3' 'pytest>=8' 'selenium>=4.20,<5'
deb=$(scripts/package.sh | tail -n 1)
kernel=$(ls /boot/vmlinuz-*-amd64 | sort -V | tail -n 1)
echo "== booting $kernel under qemu (no KVM) to install $deb"
PATH="$PWD/target/vng/bin:$PATH" timeout 1200 vng --run "$kernel" --disable-kvm --user root \
  --memory 2G --cpus 2 --overlay-rwdir=/usr --overlay-rwdir=/etc --overlay-rwdir=/var \
  --overlay-rwdir=/home --exec "$PWD/scripts/package-tests.sh $deb" 2>&1 | vm_console
