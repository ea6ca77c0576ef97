#!/usr/bin/env bash
# Suricata's own test cases (../shared/data/suricata-verify), run through
# `zonewatch run` by ../shared/tools/sv_check.py exactly as they are judged.
# Every case listed in tests/suricata-verify.pass must pass: a regression
# fails. Cases that pass but are not listed are reported, to be added.
# Skips cleanly without ../shared.
#
#   scripts/sv-check.sh [path/to/zonewatch]
set -euo pipefail
cd "$(dirname "$0")/.."
shared="../shared"
if [ ! -f "$shared/tools/sv_check.py" ] || [ ! -d "$shared/data/suricata-verify" ]; then
  echo "sv-check: $shared absent; skipped"
  exit 0
fi
bin="$(realpath "${1:-target/release/zonewatch}")"
[ -x "$bin" ] || cargo build --release --bin zonewatch
tsv="$(mktemp)"
trap 'rm -f "$tsv"' EXIT
ZONEWATCH="$bin" python3 "$shared/tools/sv_check.py" --engine zonewatch \
  --tests "$shared/data/suricata-verify" --jobs 2 --tsv-out "$tsv" | tail -1
python3 - "$tsv" tests/suricata-verify.pass <<'PY'
import csv, sys
rows = {}
with open(sys.argv[1]) as f:
    for r in csv.reader(f, delimiter="\t"):
        if r and r[0] != "test":
            rows[r[0]] = r
expected = [l.split("#")[0].strip() for l in open(sys.argv[2])]
expected = [e for e in expected if e]
bad = [e for e in expected if rows.get(e, [e, "", "MISSING"])[2] != "PASS"]
new = sorted(t for t, r in rows.items() if r[2] == "PASS" and t not in expected)
counted = sum(1 for r in rows.values() if r[2] in ("PASS", "FAIL"))
passed = sum(1 for r in rows.values() if r[2] == "PASS")
print(f"sv-check: {passed}/{counted} counted cases pass; {len(expected)} expected")
for t in new:
    print(f"sv-check: newly passing (add to tests/suricata-verify.pass): {t}")
for t in bad:
    r = rows.get(t)
    print(f"sv-check: REGRESSION {t}: {r[2] + ' ' + r[3] if r else 'not run'}")
sys.exit(1 if bad else 0)
PY
