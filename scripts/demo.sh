#!/usr/bin/env bash
# The README's first command: installs the build's one system dependency (libclang, for the uhid
# bindings) if it is missing, then runs `vu2f demo`: the AA emulator, a token, enrollment and
# logon, step by step. Arguments go to `vu2f demo` (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps
exec cargo run --release -- demo "$@"
