#!/usr/bin/env bash
# Builds the Debian package target/debian/vu2f_VERSION-1_amd64.deb with cargo-deb (installed from
# crates.io when missing): the release binary, the udev rules, uhid loaded at boot, a systemd user
# unit, and the man pages and shell completions that the binary generates from its own clap
# definitions. The binary is stripped (the release profile keeps line tables for profiling).
# Prints the package's path on its last line.
#   usage: scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_build_deps
ensure_debian_packages dpkg-dev
command -v cargo-deb >/dev/null || cargo install --locked --quiet cargo-deb@^3
cargo build --release --quiet
# Where cargo put it: under CARGO_TARGET_DIR where that is set (cargo-deb looks there too).
target_dir=${CARGO_TARGET_DIR:-target}
vu2f=$target_dir/release/vu2f
assets=target/package
rm -rf "$assets"
mkdir -p "$assets/completions"
"$vu2f" manpages "$assets/man"
gzip -9n "$assets"/man/*.1
"$vu2f" completions bash > "$assets/completions/vu2f"
"$vu2f" completions zsh > "$assets/completions/_vu2f"
"$vu2f" completions fish > "$assets/completions/vu2f.fish"
cargo deb --no-build --strip --quiet
ls "$target_dir"/debian/vu2f_*_amd64.deb | sort -V | tail -n 1
