#!/usr/bin/env bash
# CI smoke fuzz: builds every target (decode, defrag, ...) and runs each for
# N seconds (default 30), the decoder from the seed corpus. Exits non-zero on a crash
# (libFuzzer leaves the input in fuzz/artifacts/decode/).
#
#   fuzz/smoke.sh [SECONDS]
set -euo pipefail
secs="${1:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

bash "$here/seed-corpus.sh"

# cargo-fuzz needs nightly flags; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. Use the address sanitizer when it builds, else none.
export RUSTC_BOOTSTRAP=1
# Every target listed in Cargo.toml, each for the given time.
targets=$(awk '/^\[\[bin\]\]/ { getline; if ($1 == "name") { gsub(/"/, "", $3); print $3 } }' Cargo.toml)
sanitizer=address
if ! cargo fuzz build decode >/dev/null 2>&1; then
    echo "smoke.sh: build with the address sanitizer failed; using --sanitizer none" >&2
    sanitizer=none
fi
for t in $targets; do
    echo "smoke.sh: fuzzing $t for ${secs}s"
    mkdir -p "$here/artifacts/$t" "$here/corpus/$t"
    cargo fuzz run --sanitizer "$sanitizer" "$t" "$here/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1
done
