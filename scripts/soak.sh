#!/usr/bin/env bash
# Soak: `vu2f load` against the embedded emulator for a long time (default 1h), the process's
# resident memory (VmRSS) sampled every minute, to see that memory levels off. Not part of the
# tests: it takes the machine for the whole run. Writes target/soak/rss.csv (minute, MB, logons
# so far) and the load report target/soak/report.json, and prints the samples as they come.
#   usage: scripts/soak.sh [DURATION [TOKENS [LOAD OPTIONS...]]]
#   e.g.   scripts/soak.sh 1h 1000 --rate 1000      (default: 1h, 1000 tokens, --concurrency 32)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-1h}
tokens=${2:-1000}
shift $(($# < 2 ? $# : 2))
model=("$@")
[ ${#model[@]} -gt 0 ] || model=(--concurrency 32)
source scripts/deps.sh
ensure_build_deps
cargo build --release --quiet
out=target/soak
rm -rf "$out"
mkdir -p "$out"
"${CARGO_TARGET_DIR:-target}/release/vu2f" --store "$out/store" --json load --tokens "$tokens" \
  --duration "$duration" "${model[@]}" > "$out/report.json" &
load=$!
trap 'kill $load 2>/dev/null || true' EXIT
echo "minute,rss_mb" > "$out/rss.csv"
minute=0
while kill -0 "$load" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$load/status" 2>/dev/null || true)
  [ -n "$rss" ] && echo "$minute,$rss" | tee -a "$out/rss.csv"
  for _ in $(seq 60); do kill -0 "$load" 2>/dev/null || break; sleep 1; done
  minute=$((minute + 1))
done
wait "$load"
trap - EXIT
python3 - "$out" <<'PY'
import csv, json, sys
out = sys.argv[1]
report = json.load(open(f"{out}/report.json"))
rows = list(csv.DictReader(open(f"{out}/rss.csv")))
print(f"{report['completed']} logons in {report['elapsed_s']:.0f} s ({report['logons_per_s']:.0f}/s), "
      f"{report['failed']} failed; RSS MB by minute: " + " ".join(r["rss_mb"] for r in rows))
PY
