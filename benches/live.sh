#!/usr/bin/env bash
# Live-interface benchmark (issue #15): zonewatch (libpcap and AF_PACKET) and
# the reference Suricata 7.0.17 (AF_PACKET, workers run mode) capture one end
# of a veth pair while tcpreplay writes the benchmark capture into the other.
# Everything runs in a network namespace made for the run (no addresses, no
# routes), removed at the end.
#
# For each engine, worker count (1, 2) and rule set (none, all ET Open):
#   - top speed: tcpreplay --topspeed; the rate it reached and the drop ratio
#     (kernel ring/buffer drops + zonewatch queue drops, over packets sent);
#   - the highest rate with zero drops: fixed-rate replays (--pps), from 90 %
#     of the top-speed rate down, at most $PROBES probes;
#   - with rules: the alert set of the zero-drop run compared with a file run
#     (zonewatch --pcap) of the same capture: alerts per signature id, same or not.
#
# Needs root. Prints a Markdown table (also written to $OUT_DIR/live.md).
# Environment: PACKETS (200000: packets of the capture replayed), PROBES (5),
#   WORKERS ("1 2"), ENGINES ("zw-pcap zw-afp suricata"), RULESETS ("none et"),
#   CAPTURE (bench-data/bench-400m.pcap, made by gen-bench-pcap.sh if absent).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="$ROOT/../shared"
PACKETS="${PACKETS:-200000}"
PROBES="${PROBES:-5}"
WORKERS="${WORKERS:-1 2}"
ENGINES="${ENGINES:-zw-pcap zw-afp suricata}"
RULESETS="${RULESETS:-none et}"
CAPTURE="${CAPTURE:-$ROOT/bench-data/bench-400m.pcap}"
OUT_DIR="${OUT_DIR:-$ROOT/target/live-bench}"
NS="zwlive-$$"

[ "$(id -u)" = 0 ] || { echo "live.sh: needs root (namespaces, raw sockets)" >&2; exit 1; }
for t in tcpreplay editcap jq; do
    command -v "$t" >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tcpreplay tshark jq >/dev/null
        break
    }
done
if [ ! -s "$CAPTURE" ]; then
    SIZE_MB=400 OUT="$CAPTURE" bash benches/gen-bench-pcap.sh
fi
cargo build --release --bin zonewatch >/dev/null
ZW="$ROOT/target/release/zonewatch"
SURICATA="$SHARED/tools/suricata/suricata.sh"
"$SURICATA" --build-info >/dev/null # installs its libraries while the network is there

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
REPLAY="$OUT_DIR/replay.pcap"
editcap -r "$CAPTURE" "$REPLAY" "1-$PACKETS" >/dev/null
: > "$OUT_DIR/empty.rules"
cat "$SHARED"/data/rules/et-open/*.rules > "$OUT_DIR/et.rules"

cleanup() {
    pkill -INT -f "$OUT_DIR/run" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link add zwl0 type veth peer name zwl1
ip -n "$NS" link set zwl0 up
ip -n "$NS" link set zwl1 up
for d in zwl0 zwl1; do ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$d.disable_ipv6=1"; done

sids() { # DIR -> "count sid" lines
    local f="$1/eve.json"
    jq -r 'select(.event_type=="alert") | .alert.signature_id' "$f" 2>/dev/null | sort | uniq -c | sort -k2
}

# The file runs: the alerts a zero-drop live run of the same engine must match.
file_alerts() {
    local w=$1 out="$OUT_DIR/file-zw-$w"
    mkdir -p "$out" "$OUT_DIR/file-suricata-$w"
    "$ZW" run --pcap "$REPLAY" --rules "$SHARED/data/rules/et-open" --workers "$w" \
        --set output.types=[alert,stats] --output "$out/eve.json" 2>/dev/null
    sids "$out" >"$OUT_DIR/file-zw-$w.sids"
    if [[ " $ENGINES " == *" suricata "* ]]; then
        "$SURICATA" --alert-only -r "$REPLAY" -S "$OUT_DIR/et.rules" -l "$OUT_DIR/file-suricata-$w" -k none \
            --runmode autofp --set unix-command.enabled=no >/dev/null 2>&1
        sids "$OUT_DIR/file-suricata-$w" >"$OUT_DIR/file-suricata-$w.sids"
    fi
}

# start ENGINE WORKERS RULESET DIR: starts the engine capturing zwl1 and
# waits until it captures; leaves its pid in $PID.
start() {
    local engine=$1 w=$2 rs=$3 dir=$4 rules=()
    mkdir -p "$dir"
    case $engine in
    zw-*)
        [ "$rs" = et ] && rules=(--rules "$SHARED/data/rules/et-open")
        local method=pcap
        [ "$engine" = zw-afp ] && method=af-packet
        ip netns exec "$NS" "$ZW" run --interface zwl1 --workers "$w" "${rules[@]}" --set "capture.method=$method" \
            --set output.types=[alert,stats] --output "$dir/eve.json" 2>"$dir/log" &
        PID=$!
        ;;
    suricata)
        local r="$OUT_DIR/empty.rules"
        [ "$rs" = et ] && r="$OUT_DIR/et.rules"
        ip netns exec "$NS" "$SURICATA" --alert-only --af-packet=zwl1 -S "$r" -l "$dir" -k none --runmode workers \
            --set af-packet.0.interface=zwl1 --set "af-packet.0.threads=$w" \
            --set af-packet.0.tpacket-v3=yes --set unix-command.enabled=no >"$dir/log" 2>&1 &
        PID=$!
        ;;
    esac
    for _ in $(seq 600); do
        grep -qE "Engine started|capture started" "$dir/log" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$dir/log" >&2; return 1; }
        sleep 0.1
    done
    echo "live.sh: $engine did not start" >&2
    return 1
}

# stop ENGINE DIR: stops the engine and waits for it; prints "packets drops"
# (zonewatch: packets sent; Suricata: the packets it counted, as in its own ratio).
stop() {
    local engine=$1 dir=$2
    sleep 1 # let the last packets through
    kill -INT "$PID"
    wait "$PID" || true
    while kill -0 "$PID" 2>/dev/null; do sleep 0.1; done
    case $engine in
    zw-*)
        jq -r 'select(.event_type=="stats") | .stats |
            "'"$PACKETS"' \(.capture.kernel_drops + .pipeline.queue_drops)"' "$dir/eve.json" | tail -1
        ;;
    suricata)
        # i: device: zwl1: packets: N, drops: M (x%), invalid chksum: 0
        sed -nE 's/.*device: zwl1: packets: ([0-9]+), drops: ([0-9]+).*/\1 \2/p' "$dir/log" | tail -1
        ;;
    esac
}

# replay ARGS...: replays the capture into zwl0; prints "pps mbps".
replay() {
    ip netns exec "$NS" tcpreplay -i zwl0 "$@" "$REPLAY" 2>&1 |
        sed -nE 's/.*Rated: [0-9.]+ Bps, ([0-9.]+) Mbps, ([0-9.]+) pps.*/\2 \1/p'
}

# one ENGINE WORKERS RULESET RATE(topspeed|PPS): runs once; sets RESULT to
# "pps mbps packets drops dir" (packets: what the drop ratio is taken over).
one() {
    local engine=$1 w=$2 rs=$3 rate=$4 dir r s
    dir="$OUT_DIR/$engine-$w-$rs-$rate"
    start "$engine" "$w" "$rs" "$dir"
    if [ "$rate" = topspeed ]; then r=$(replay --topspeed); else r=$(replay --pps="$rate"); fi
    s=$(stop "$engine" "$dir")
    [ -n "$r" ] && [ -n "$s" ] || { echo "live.sh: no figures from $dir" >&2; exit 1; }
    RESULT="$r $s $dir"
}

table="| engine | workers | rules | top speed: pps (Gbit/s) | drops at top speed | highest zero-drop rate: pps (Gbit/s) | alerts vs file run |
|---|---|---|---|---|---|---|"
for w in $WORKERS; do
    [[ " $RULESETS " == *" et "* ]] && file_alerts "$w"
    for rs in $RULESETS; do
        for engine in $ENGINES; do
            one "$engine" "$w" "$rs" topspeed
            read -r pps mbps sent drops dir <<<"$RESULT"
            ratio=$(awk -v d="$drops" -v s="$sent" 'BEGIN { printf "%.2f %%", 100 * d / s }')
            best="-" best_dir=""
            if [ "$drops" = 0 ]; then
                best="$pps ($(awk -v m="$mbps" 'BEGIN { printf "%.2f", m / 1000 }'))" best_dir=$dir
            else
                rate=$(awk -v p="$pps" 'BEGIN { printf "%d", p * 0.9 }')
                for _ in $(seq "$PROBES"); do
                    one "$engine" "$w" "$rs" "$rate"
                    read -r p m _ d pdir <<<"$RESULT"
                    if [ "$d" = 0 ]; then
                        best="$p ($(awk -v m="$m" 'BEGIN { printf "%.2f", m / 1000 }'))" best_dir=$pdir
                        break
                    fi
                    rate=$(awk -v r="$rate" 'BEGIN { printf "%d", r * 0.6 }')
                done
            fi
            cmp="-"
            if [ "$rs" = et ] && [ -n "$best_dir" ]; then
                family=zw
                [ "$engine" = suricata ] && family=suricata
                want="$OUT_DIR/file-$family-$w.sids"
                n_want=$(awk '{ n += $1 } END { print n + 0 }' "$want")
                n_got=$(sids "$best_dir" | awk '{ n += $1 } END { print n + 0 }')
                if diff -q <(sids "$best_dir") "$want" >/dev/null; then
                    cmp="same ($n_want alerts)"
                else
                    cmp="differs: $n_got live vs $n_want file, $(diff <(sids "$best_dir") "$want" | grep -c '^[<>]') sid lines"
                fi
            fi
            line="| $engine | $w | $rs | $pps ($(awk -v m="$mbps" 'BEGIN { printf "%.2f", m / 1000 }')) | $ratio | $best | $cmp |"
            echo "$line" >&2
            table+=$'\n'"$line"
        done
    done
done
echo "$table" | tee "$OUT_DIR/live.md"
echo "capture: $PACKETS packets of $(basename "$CAPTURE"); $(nproc) cores; tcpreplay shares them with the engine" | tee -a "$OUT_DIR/live.md"
