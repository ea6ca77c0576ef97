#!/usr/bin/env bash
# The demo: build zonewatch and run it on the bundled capture and SSH log,
# with the demo signatures, the anomaly detectors and the Sigma rules; events
# (flows, anomalies, signature/detector/Sigma alerts, stats) to stdout.
# Extra arguments go to `zonewatch run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --quiet
exec ./target/release/zonewatch run --config zonewatch.example.yaml \
  --pcap fixtures/demo.pcap --syslog-file fixtures/logs/auth.log \
  --rules fixtures/rules/demo.rules --rules rules/detectors --rules rules/sigma \
  --output - "$@"
