#!/usr/bin/env bash
# Every test zonewatch has: installs what the tests need (system packages,
# cargo-fuzz, the tansu Kafka broker), then format, lint, unit, integration,
# end-to-end and fuzz smoke tests. Tests that use ../shared skip cleanly
# without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never
echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings
echo "== cargo test (optimised: the heavy tests replay real captures)"
cargo test --workspace --release
if [ -x fuzz/smoke.sh ] || [ -f fuzz/smoke.sh ]; then
  echo "== fuzz smoke"
  bash fuzz/smoke.sh "${FUZZ_SECONDS:-30}"
fi
echo "== all tests passed"
