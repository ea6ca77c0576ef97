#!/usr/bin/env bash
# Seeds fuzz/corpus/decode/ with every distinct packet of fixtures/*.pcap
# (one file per packet, named after its capture and index) and the
# hand-made packets in fuzz/seeds/decode/. Needs only python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/corpus/decode"
mkdir -p "$out"
python3 - "$here/../fixtures" "$out" <<'PY'
import os, struct, sys

src, out = sys.argv[1], sys.argv[2]
n = 0
seen = set()
for name in sorted(os.listdir(src), key=lambda n: (n != "demo.pcap", n)):
    if not name.endswith(".pcap"):
        continue
    b = open(os.path.join(src, name), "rb").read()
    if b[:4] == b"\xd4\xc3\xb2\xa1" or b[:4] == b"\x4d\x3c\xb2\xa1":
        e = "<"
    elif b[:4] == b"\xa1\xb2\xc3\xd4" or b[:4] == b"\xa1\xb2\x3c\x4d":
        e = ">"
    else:
        continue
    at, i = 24, 0
    while at + 16 <= len(b):
        incl = struct.unpack(e + "I", b[at + 8 : at + 12])[0]
        data = b[at + 16 : at + 16 + incl]
        if len(data) < incl:
            break  # truncated.pcap: the last record is cut
        at += 16 + incl
        i += 1
        if data in seen:
            continue  # demo-be.pcap and truncated.pcap repeat demo.pcap
        seen.add(data)
        with open(os.path.join(out, f"{name[:-5]}-{i - 1:03}"), "wb") as f:
            f.write(data)
        n += 1
print(f"seed-corpus: {n} packets in {out}")
PY
# Hand-made packets of layers no fixture carries (e.g. NSH).
cp "$here"/seeds/decode/* "$out"/

# The capture readers: whole small captures (classic pcap, pcapng).
mkdir -p "$here/corpus/capture"
cp "$here"/seeds/capture/* "$here/corpus/capture/"
