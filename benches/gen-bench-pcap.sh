#!/usr/bin/env bash
# Builds zw-pcapgen in release mode and writes bench-data/bench-1g.pcap
# (a deterministic ~1 GiB HTTP/TLS/DNS/SSH mix, ~60k flows) unless it already
# exists. bench-data/ is git-ignored.
#
# Environment overrides: SIZE_MB (1024), FLOWS (60000), SEED (1), OUT (path).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT="${OUT:-$ROOT/bench-data/bench-1g.pcap}"
SIZE_MB="${SIZE_MB:-1024}"
FLOWS="${FLOWS:-60000}"
SEED="${SEED:-1}"
NEED_KB=$((3 * 1024 * 1024)) # 3 GiB free before we start

if [ -s "$OUT" ]; then
    echo "gen-bench-pcap: $OUT already exists ($(du -h "$OUT" | cut -f1)); nothing to do"
    exit 0
fi

OUT_DIR="$(dirname "$OUT")"
mkdir -p "$OUT_DIR"
avail_kb="$(df -Pk "$OUT_DIR" | awk 'NR == 2 { print $4 }')"
if [ -z "$avail_kb" ] || [ "$avail_kb" -lt "$NEED_KB" ]; then
    echo "gen-bench-pcap: need at least 3 GiB free on $(df -P "$OUT_DIR" | awk 'NR == 2 { print $6 }'), have $((${avail_kb:-0} / 1024)) MiB" >&2
    exit 1
fi

cargo build --release -p zonewatch-pcapgen

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in
    /*) ;;
    *) TARGET_DIR="$ROOT/$TARGET_DIR" ;;
esac
BIN="$TARGET_DIR/release/zw-pcapgen"
if [ ! -x "$BIN" ]; then
    echo "gen-bench-pcap: built binary not found at $BIN" >&2
    exit 1
fi

echo "gen-bench-pcap: writing $OUT (${SIZE_MB} MiB, >= ${FLOWS} flows, seed ${SEED})"
start="$(date +%s.%N)"
"$BIN" bench --out "$OUT" --size-mb "$SIZE_MB" --flows "$FLOWS" --seed "$SEED"
end="$(date +%s.%N)"
awk -v s="$start" -v e="$end" 'BEGIN { printf "gen-bench-pcap: generated in %.2f s\n", e - s }'

if command -v capinfos >/dev/null 2>&1; then
    capinfos "$OUT"
fi
