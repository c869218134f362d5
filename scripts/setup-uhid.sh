#!/usr/bin/env bash
# Lets a normal user run `vu2f serve --uhid` and use FIDO tokens through hidraw, once per machine
# (run as root, or with sudo): loads uhid now and at boot, installs scripts/udev/70-vu2f.rules
# (/dev/uhid for the group uhid; hidraw nodes of FIDO tokens for the logged-in user and the group
# plugdev), and adds the user to both groups. Log out and in again for the groups to apply.
#   usage: sudo scripts/setup-uhid.sh [USER]
set -euo pipefail
cd "$(dirname "$0")"
user=${1:-${SUDO_USER:-}}
[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo $0 [USER]" >&2; exit 1; }
modprobe uhid
echo uhid > /etc/modules-load.d/vu2f-uhid.conf
getent group uhid >/dev/null || groupadd --system uhid
getent group plugdev >/dev/null || groupadd --system plugdev
install -m 0644 udev/70-vu2f.rules /etc/udev/rules.d/70-vu2f.rules
udevadm control --reload-rules
udevadm trigger --subsystem-match=misc --subsystem-match=hidraw
if [ -n "$user" ]; then
  usermod -aG uhid,plugdev "$user"
  echo "added $user to the groups uhid and plugdev: log out and in again"
fi
