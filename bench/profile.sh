#!/usr/bin/env bash
# bench/profile.sh BUILD_DIR [SHAPE...] — where does each echo server spend
# its CPU, per message?
#
# SHAPE is conns:size:depth (default: 64:64:1 1:16:1 8:65536:1 64:64:16).
# For every server of run.sh's table and every shape, two bounded runs
# (warmup 1 s, measured 3 s, server on CPU 0, loadgen on CPU 1):
#   1. perf stat over 2 s of the measured window, software events only
#      (this VM has no hardware counters): system calls by kind, io_uring
#      submissions/completions/task-work runs, context switches, CPU time;
#      divided by the messages echoed in the same 2 s;
#   2. perf record -e cpu-clock (4 kHz, 2 s): the share of samples per DSO,
#      the hottest symbols, and the hottest user-space symbols.
# Output: bench/results/profile.md (plus raw perf output in
# bench/results/profile/). Needs perf; takes ~10 s per server and shape.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/profile.sh BUILD_DIR [conns:size:depth ...]" >&2; exit 1; }
BUILD=$(cd "$1" && pwd)
shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/bench/results"
RAW="$OUT/profile"
mkdir -p "$RAW"
SHAPES=("$@")
[ ${#SHAPES[@]} -gt 0 ] || SHAPES=(64:64:1 1:16:1 8:65536:1 64:64:16)
SERVERS=(
  "ringline_c|$BUILD/examples/echo_server"
  "uring_baseline|$BUILD/bench/baseline_uring_echo"
  "epoll_baseline|$BUILD/bench/baseline_epoll_echo"
)
command -v perf >/dev/null || { echo "perf missing" >&2; exit 1; }
EV="task-clock,context-switches,raw_syscalls:sys_enter"
EV+=",syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait"
EV+=",syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg"
EV+=",syscalls:sys_enter_epoll_ctl"
EV+=",io_uring:io_uring_submit_req,io_uring:io_uring_complete"
EV+=",io_uring:io_uring_local_work_run,io_uring:io_uring_task_work_run"
EV+=",io_uring:io_uring_poll_arm,io_uring:io_uring_queue_async_work"
EV+=",io_uring:io_uring_short_write,io_uring:io_uring_req_failed"

PORT=$((18700 + RANDOM % 100))
SPID=""
trap '[ -n "$SPID" ] && kill -KILL $SPID 2>/dev/null; true' EXIT

start() { # start BIN
  PORT=$((PORT + 1))
  taskset -c 0 "$1" "$PORT" >/dev/null 2>&1 </dev/null &
  SPID=$!
  for _ in $(seq 1 100); do
    [ -n "$(ss -Hltn "sport = :$PORT")" ] && return 0
    sleep 0.05
  done
  echo "server $1 did not start" >&2
  exit 1
}
stop() {
  kill -TERM "$SPID" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=""
}
loadgen() { # loadgen CONNS SIZE DEPTH OUTFILE
  taskset -c 1 "$BUILD/bench/loadgen" --port "$PORT" --conns "$1" --size "$2" --depth "$3" \
    --warmup 1 --duration 3 --server-pid "$SPID" --quiet >"$4"
}

MD="$OUT/profile.md"
{
  echo "# Per-message profile of the echo servers"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) · $(nproc) CPUs · kernel $(uname -r) · bench/profile.sh"
  echo
  echo "Counts are per echoed message, over 2 s inside the measured window (perf stat, software"
  echo "events; messages = loadgen ops/s × 2 s). Profiles: perf record -e cpu-clock -F 4000."
} >"$MD"

for shape in "${SHAPES[@]}"; do
  IFS=: read -r conns size depth <<<"$shape"
  {
    echo
    echo "## $conns conns × $size B, depth $depth"
    echo
    echo "| server | ops/s | CPU µs/op | syscalls/op | io_uring_enter/op | recv/op | send(msg)/op | epoll_wait/op | SQEs/op | CQEs/op | local task-work runs/op | ctx switches/op | user % | psi ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  } >>"$MD"
  PROFILES=""
  for entry in "${SERVERS[@]}"; do
    name=${entry%%|*}
    bin=${entry#*|}
    tag="$name.$conns-$size-$depth"
    # 1. perf stat
    start "$bin"
    loadgen "$conns" "$size" "$depth" "$RAW/$tag.loadgen.json" &
    lg=$!
    sleep 1.3
    perf stat -e "$EV" -p "$SPID" -x, -o "$RAW/$tag.stat.csv" -- sleep 2 >/dev/null 2>&1 || true
    wait $lg || true
    stop
    # 2. perf record
    start "$bin"
    loadgen "$conns" "$size" "$depth" "$RAW/$tag.loadgen2.json" &
    lg=$!
    sleep 1.3
    perf record -q -e cpu-clock -F 4000 -p "$SPID" -o "$RAW/$tag.perf.data" -- sleep 2 >/dev/null 2>&1 || true
    wait $lg || true
    stop
    perf report -i "$RAW/$tag.perf.data" --no-children --sort dso --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -12 >"$RAW/$tag.dso.txt" || true
    perf report -i "$RAW/$tag.perf.data" --no-children --sort sym --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -30 >"$RAW/$tag.sym.txt" || true
    perf report -i "$RAW/$tag.perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | grep -v 'kernel' | head -15 >"$RAW/$tag.usersym.txt" || true
    user=$(perf report -i "$RAW/$tag.perf.data" --no-children --sort dso --stdio 2>/dev/null |
      awk '/^ +[0-9.]+%/ { p=$1; sub("%","",p); if ($2 !~ /kernel/) u += p } END { printf "%.0f", u }')
    ops=$(jq -r '.ops_per_s // 0' "$RAW/$tag.loadgen.json")
    psi=$(jq -r '.psi_cpu_some_ms // -1' "$RAW/$tag.loadgen.json")
    awk -F, -v ops="$ops" -v name="$name" -v user="$user" -v psi="$psi" '
      /^[0-9]/ { v[$3] = $1 }
      END {
        n = ops * 2; if (n <= 0) n = 1
        printf "| %s | %.0f | %.2f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.4f | %s | %.0f |\n",
          name, ops, v["task-clock"] * 1000 / n, v["raw_syscalls:sys_enter"] / n,
          v["syscalls:sys_enter_io_uring_enter"] / n, v["syscalls:sys_enter_recvfrom"] / n,
          (v["syscalls:sys_enter_sendto"] + v["syscalls:sys_enter_sendmsg"]) / n,
          v["syscalls:sys_enter_epoll_wait"] / n, v["io_uring:io_uring_submit_req"] / n,
          v["io_uring:io_uring_complete"] / n, v["io_uring:io_uring_local_work_run"] / n,
          v["context-switches"] / n, user, psi
      }' "$RAW/$tag.stat.csv" >>"$MD"
    PROFILES+=$'\n'"<details><summary>$name: CPU by DSO and hottest symbols</summary>"$'\n\n```\n'
    PROFILES+="$(cat "$RAW/$tag.dso.txt")"$'\n\n'"$(head -25 "$RAW/$tag.sym.txt")"$'\n\nuser space:\n'
    PROFILES+="$(cat "$RAW/$tag.usersym.txt")"$'\n```\n</details>\n'
    echo "profiled $name $shape (ops/s $ops)" >&2
  done
  echo "$PROFILES" >>"$MD"
done
rm -f "$RAW"/*.perf.data
echo "wrote $MD" >&2
