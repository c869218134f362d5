#!/usr/bin/env bash
# Inside the throwaway VM of scripts/vm-package-test.sh (as root, the root filesystem an overlay
# that is thrown away): installs the Debian package with apt-get, checks what it installed
# (systemd-analyze verify accepts its user unit; man page, completions, udev rules, uhid loaded),
# starts udevd, and makes a fresh non-root user a member of uhid and plugdev, as the README says.
# Everything after that runs as that user, from the installed files: a token, the user unit's own
# ExecStart serving it on uhid, libfido2's tools and python-fido2 finding and using the token, and
# Chromium creating and using a passkey on a token the user serves.
#   usage: scripts/package-tests.sh PACKAGE.deb
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$1
user=vu2f-tester

echo "== apt-get install ./$(basename "$deb")"
# man-db's trigger would rebuild the index of every man page: minutes under qemu without KVM.
rm -f /var/lib/man-db/auto-update
apt-get install -y -q --no-install-recommends "./$deb" >/dev/null
for file in /usr/bin/vu2f /usr/lib/udev/rules.d/70-vu2f.rules /usr/lib/modules-load.d/vu2f-uhid.conf \
  /usr/lib/systemd/user/vu2f.service /usr/share/bash-completion/completions/vu2f \
  /usr/share/zsh/vendor-completions/_vu2f /usr/share/fish/vendor_completions.d/vu2f.fish; do
  [ -f "$file" ] || { echo "not installed: $file" >&2; exit 1; }
done
man -w vu2f-serve >/dev/null
systemd-analyze verify /usr/lib/systemd/user/vu2f.service
echo "installed files present; systemd-analyze verify accepts vu2f.service"
grep -qw uhid /proc/modules || { echo "the package did not load uhid" >&2; exit 1; }

echo "== udevd applies the package's rules"
pgrep -x systemd-udevd >/dev/null || /lib/systemd/systemd-udevd --daemon
udevadm trigger --subsystem-match=misc --subsystem-match=hidraw
udevadm settle
[ "$(stat -c '%G %a' /dev/uhid)" = "uhid 660" ] || { stat /dev/uhid >&2; exit 1; }

echo "== a fresh user in the groups uhid and plugdev"
# virtme-ng bind-mounts its own /etc/shadow, so useradd's rename onto it fails: the user is
# written into /etc/passwd and /etc/group in place, which is what useradd and usermod amount to.
uid=1500
home=/home/$user
echo "$user:x:$uid:$uid:vu2f tester:$home:/bin/bash" >> /etc/passwd
echo "$user:x:$uid:" >> /etc/group
groups=$(awk -F: -v OFS=: -v u="$user" \
  '$1 == "uhid" || $1 == "plugdev" { $4 = ($4 == "" ? u : $4 "," u) } { print }' /etc/group)
printf '%s\n' "$groups" > /etc/group
install -d -m 0755 -o "$user" -g "$user" "$home"
[ "$(id -Gn "$user" | tr ' ' '\n' | grep -cx 'uhid\|plugdev')" = 2 ] || { id "$user" >&2; exit 1; }
install -d -m 0700 -o "$user" -g "$user" "/run/user/$uid"
install -d -m 0755 -o "$user" -g "$user" "$home/tmp"

echo "== as $user: a token served by the user unit's ExecStart, used by libfido2 and python-fido2"
runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$home" TMPDIR="$home/tmp" \
  XDG_RUNTIME_DIR="/run/user/$uid" PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 \
  VENV="$PWD/target/venv-system" TESTS="$PWD/tests/python" \
  bash -euo pipefail "$PWD/scripts/package-tests-user.sh"
echo "package tests passed"
