# Sourced by the other scripts: installs what the project needs from Debian and PyPI, once.
# shellcheck shell=bash

# ensure_debian_packages PKG...: installs the packages that are not installed yet.
ensure_debian_packages() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The packages of target/venv. The list is the venv's marker, compared for equality: every script
# that ensures target/venv gives this one, or the venv would be rebuilt back and forth.
VU2F_VENV_PACKAGES=('fido2>=2.0,<3' 'pytest>=8' 'locust>=2.20,<3' 'selenium>=4.20,<5')

# What tests/python/test_browsers.py drives: Chromium and its driver, Firefox ESR, the X server
# they run on, certutil for Chromium's NSS database, and xdotool for a key press in Chromium's
# own dialog (the account of a passkey sign-in).
VU2F_BROWSER_PACKAGES=(chromium chromium-driver firefox-esr xvfb libnss3-tools xdotool)

# ensure_python_venv DIR PACKAGE...: a virtual environment in DIR with the packages, made with
# $VU2F_VENV_PYTHON (default: the python3 on PATH).
ensure_python_venv() {
  local venv=$1
  shift
  if [ ! -f "$venv/.vu2f-packages" ] || [ "$(cat "$venv/.vu2f-packages")" != "$*" ]; then
    echo "== installing $* into $venv"
    "${VU2F_VENV_PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
    echo "$*" > "$venv/.vu2f-packages"
  fi
}

# The build needs libclang for uhid-virt's bindings to <linux/uhid.h>.
ensure_build_deps() {
  ensure_debian_packages libclang-dev
}

# vm_console: filters a VM's console output (stdin) down to the lines its programs printed: the
# serial console pads with blanks, returns the carriage and sends escape sequences.
vm_console() {
  python3 -u -c '
import re, sys
escape = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")
for raw in sys.stdin.buffer:
    line = escape.sub("", raw.decode("utf-8", "replace")).rstrip("\r\n")
    # What a carriage return wrote over is gone from the screen: keep the last text written.
    parts = [part.rstrip() for part in line.split("\r") if part.strip()]
    if parts:
        print(parts[-1], flush=True)
'
}
