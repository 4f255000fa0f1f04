#!/bin/sh
# make demo — real traffic through ringline, in about a minute.
#
#  1. a C proxy (ringline FORWARD mode) in front of the C echo server
#     (ringline ECHO mode): the load generator pushes verified bytes
#     through both;
#  2. a short side-by-side benchmark: ringline's servers against hand-written
#     liburing and epoll servers (and the Lua/Python peers where present),
#     server pinned to CPU 0 and load generator to CPU 1, printing ops/s and
#     server CPU per operation.
set -eu
BUILD=${1:-build}
REPO=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$BUILD" && pwd)
LOADGEN="$B/bench/loadgen"
[ -x "$LOADGEN" ] || { echo "demo: $LOADGEN missing (run make)"; exit 1; }

pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_port() {
    i=0
    while ! (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 100 ] && { echo "demo: port $1 never opened"; exit 1; }
        sleep 0.05
    done
}

echo "== 1. proxy -> echo: 32 connections, 4 KiB messages, every byte verified"
"$B/examples/echo_server" 18011 2>/dev/null & pids="$pids $!"
"$B/examples/proxy" 18010 18011 2>/dev/null & pids="$pids $!"
bash -c "$(declare -f wait_port); wait_port 18011; wait_port 18010"
"$LOADGEN" --port 18010 --conns 32 --size 4096 --depth 4 --duration 2 --warmup 0.3 --quiet |
    tail -1 | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("   ok=%s  %.0f msgs/s  %.1f MB/s  p50 %.0f us  p99 %.0f us" % (
    r["ok"], r["ops_per_s"], r["mb_per_s"], r["p50_us"], r["p99_us"]))
sys.exit(0 if r["ok"] else 1)'
cleanup; pids=""

echo
echo "== 2. side by side, 64 connections x 64 B (quick run; full: make bench, BENCHMARKS.md)"
# the issue's short version: ringline's C, Lua and Python servers against
# the lean baselines, luv and uvloop, on one shape
# into the build tree: bench/results/ holds the recorded full run
bash "$REPO/bench/run.sh" "$B" --quick --no-idle --shapes c64_64B_d1 --out "$B/demo-bench" \
    --only ringline_c,uring_baseline,epoll_baseline,ringline_lua,luv,ringline_py,ringline_asyncio,uvloop >/dev/null
cat "$B/demo-bench/latest.md"
