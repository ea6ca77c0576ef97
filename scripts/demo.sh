#!/usr/bin/env bash
# The demo: build zonewatch and run it on the bundled capture, events to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --quiet
exec ./target/release/zonewatch run --config zonewatch.example.yaml --pcap fixtures/demo.pcap --output - "$@"
