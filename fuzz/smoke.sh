#!/usr/bin/env bash
# CI smoke fuzz of the decoder: builds the `decode` target and runs it for
# N seconds (default 30) from the seed corpus. Exits non-zero on a crash
# (libFuzzer leaves the input in fuzz/artifacts/decode/).
#
#   fuzz/smoke.sh [SECONDS]
set -euo pipefail
secs="${1:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

bash "$here/seed-corpus.sh"

# cargo-fuzz needs nightly flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. Use the address sanitizer when it builds, else none.
export RUSTC_BOOTSTRAP=1
sanitizer=address
if ! cargo fuzz build decode >/dev/null 2>&1; then
    echo "smoke.sh: build with the address sanitizer failed; using --sanitizer none" >&2
    sanitizer=none
    cargo fuzz build --sanitizer none decode
fi

mkdir -p "$here/artifacts/decode"
cargo fuzz run --sanitizer "$sanitizer" decode "$here/corpus/decode" -- \
    -max_total_time="$secs" -print_final_stats=1
