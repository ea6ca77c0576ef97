#!/usr/bin/env python3
"""Shares of CPU samples per pipeline stage, from folded perf stacks
(inferno-collapse-perf output), one column per file: how benches/profile.sh
turns flame graphs into the table in docs/perf.md.

A sample belongs to the first stage (in the order below) whose pattern one
of its frames matches; "allocation" is counted separately, over samples
whose innermost frames are the allocator, so it overlaps the stages."""
import re
import sys

# (stage, pattern over the whole stack), checked in order.
STAGES = [
    ("rule loading", r"zonewatch_detect::engine::(Engine::(load|from_texts)|compile)|load_signatures|rules_for"),
    ("reader thread (read, decode, dispatch)", r"zonewatch_pipeline::reader::"),
    ("output thread", r"zonewatch_pipeline::output::"),
    ("detect: transactions", r"inspect_tx|tx_candidates"),
    ("detect: packets and streams", r"DetectStage::|zonewatch_detect::"),
    ("app layer: parse + build transactions", r"AppStage::|zonewatch_applayer::"),
    ("stream reassembly", r"StreamStage::|zonewatch_stream::"),
    ("flow table", r"FlowStage::|zonewatch_flow::"),
    ("events to the output thread", r"Worker::emit|close_ended|end_flows"),
    ("other worker work", r"zonewatch_pipeline::worker::"),
]
ALLOC = re.compile(r"(^|;)(_?int_malloc|malloc|_int_free|cfree@GLIBC[^;]*|free|realloc|_int_realloc|malloc_consolidate|unlink_chunk[^;]*)(;|$)")


def shares(path):
    totals = {name: 0 for name, _ in STAGES}
    other = alloc = all_ = 0
    pats = [(n, re.compile(p)) for n, p in STAGES]
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            try:
                n = int(count)
            except ValueError:
                continue
            all_ += n
            for name, pat in pats:
                if pat.search(stack):
                    totals[name] += n
                    break
            else:
                other += n
            leaf = ";".join(stack.split(";")[-3:])
            if ALLOC.search(leaf):
                alloc += n
    totals["elsewhere (kernel, libc, threads starting)"] = other
    totals["of which: allocator (malloc/free/realloc)"] = alloc
    return {k: 100.0 * v / max(all_, 1) for k, v in totals.items()}, all_


def main():
    files = sys.argv[1:]
    cols = [shares(f) for f in files]
    names = list(cols[0][0].keys())
    heads = [f.split("/")[-1].split(".")[0] for f in files]
    print("| stage | " + " | ".join(f"{h} rules" for h in heads) + " |")
    print("|---|" + "---:|" * len(heads))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{c[0][name]:.1f} %" for c in cols) + " |")
    # cpu-clock samples are weighted in nanoseconds.
    print("| CPU seconds sampled | " + " | ".join(f"{c[1] / 1e9:.2f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
