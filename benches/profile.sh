#!/usr/bin/env bash
# Where zonewatch's CPU goes: perf profiles of `zonewatch run` (1 worker) on
# the bench capture with no rules, the first 1,000 ET Open rules and all of
# them; a flame graph of each (docs/perf/flame-*.svg) and a table of the
# share of CPU samples per stage (benches/profile-stages.py).
#
# Needs perf (Debian linux-perf) and inferno (`cargo install inferno`), a
# release build (`cargo build --release`) and the bench capture
# (benches/gen-bench-pcap.sh). Not run in CI.
#
# Environment: ZW_BENCH_PCAP (default bench-data/bench-mix-400m.pcap),
# ZW_BENCH_RULES (default ../shared/data/rules/et-open), OUT (default
# docs/perf), FREQ (sampling Hz, default 499), WORKERS (default 1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CAP="${ZW_BENCH_PCAP:-$ROOT/bench-data/bench-mix-400m.pcap}"
ET="${ZW_BENCH_RULES:-$ROOT/../shared/data/rules/et-open}"
OUT="${OUT:-$ROOT/docs/perf}"
FREQ="${FREQ:-499}"
WORKERS="${WORKERS:-1}"
ZW="$ROOT/target/release/zonewatch"
for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || { echo "profile: $tool not found" >&2; exit 1; }
done
[ -x "$ZW" ] || { echo "profile: build first (cargo build --release)" >&2; exit 1; }
[ -f "$CAP" ] || { echo "profile: $CAP missing (benches/gen-bench-pcap.sh)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"
cat "$ET"/*.rules > "$work/all.rules"
awk '!/^[[:space:]]*(#|$)/ && n++ < 1000' "$work/all.rules" > "$work/1000.rules"
: > "$work/none.rules"
for n in none 1000 all; do
    perf record -q -F "$FREQ" --call-graph dwarf,16384 -o "$work/$n.data" -- \
        "$ZW" run --pcap "$CAP" --rules "$work/$n.rules" --workers "$WORKERS" \
        --checksum-checks none --set 'output.types=[alert]' --output /dev/null \
        2> "$work/$n.log"
    grep 'bytes in' "$work/$n.log" | sed "s/^/$n rules: /"
    perf script -i "$work/$n.data" 2>/dev/null | inferno-collapse-perf > "$work/$n.folded"
    inferno-flamegraph --title "zonewatch run, $n rules, $WORKERS worker(s)" --minwidth 1 \
        < "$work/$n.folded" > "$OUT/flame-$n.svg"
    cp "$work/$n.folded" "$OUT/$n.folded.tmp"
done
python3 "$ROOT/benches/profile-stages.py" "$OUT/none.folded.tmp" "$OUT/1000.folded.tmp" "$OUT/all.folded.tmp"
rm -f "$OUT"/*.folded.tmp
