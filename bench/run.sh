#!/usr/bin/env bash
# bench/run.sh BUILD_DIR [--quick] [--reps N] [--servers FILE] [--only a,b]
#              [--shapes x,y] [--no-idle] [--out DIR] [--build] [--nice N]
#              [--from-json FILE]
#
# --build first runs `cmake --build BUILD_DIR` for the servers and loadgen.
# --from-json FILE only re-renders the report from a latest.json's runs.
# Runs every echo server of the table below against bench/loadgen, for every
# shape, and writes bench/results/latest.md (Markdown tables, ratios against
# the first server) and bench/results/latest.json.
#
#   - the server runs pinned to CPU 0 (taskset -c 0), the load generator to
#     CPU 1 (taskset -c 1); 127.0.0.1, ports 18100-18999, a fresh port per run;
#   - the load generator verifies every echoed byte and samples the server's
#     utime+stime (/proc/PID/stat, all threads) at the end of the warmup and
#     at the end of the run, so CPU-seconds cover exactly the measured window;
#   - which binary served is checked: the listening socket's owner (ss -p) must
#     be the pid we started, and /proc/PID/exe (plus any libringline mapped)
#     is recorded for every run;
#   - this machine may be shared: before every run the script waits (boundedly)
#     for both CPUs to be quiet, and afterwards it takes the interference,
#     the time the server and the loadgen spent runnable but waiting for a
#     CPU (schedstat run_delay) as a share of the window; a run disturbed by
#     more than 5 % is tried again (at most 4 attempts, within a time budget).
#     --nice N (e.g. -10) runs the whole suite in its own session whose
#     autogroup gets nice N, so background jobs of other sessions yield the
#     CPUs (they get little CPU for those minutes: use it knowingly).
#     Each shape runs --reps rounds, servers interleaved within a round; per
#     round the last attempt counts. The tables show medians over rounds, and
#     the ratios are paired: each round's value divided by the reference's
#     value in the same round, then the median (min-max) over rounds. Every
#     attempt stays in latest.json.
#
# Full mode: warmup 0.5 s + 2 s measured, 3 rounds (~3-4 minutes, more when
# the machine is busy and runs are retried).
# --quick: warmup 0.5 s + 1.5 s measured, 1 repetition (~45 s).
#
# Servers: "name|command" entries; {build} is BUILD_DIR, {repo} the
# repository, {port} the port. More entries (Lua, Python servers) can be
# added to SERVERS below or given in a file with --servers FILE (one entry a
# line, # comments allowed); RINGLINE_BENCH_SERVERS (entries separated by
# newlines) works too. The first entry is the reference for the ratios.
set -euo pipefail

SERVERS=(
  "ringline_c|{build}/examples/echo_server {port}"
  "uring_baseline|{build}/bench/baseline_uring_echo {port}"
  "epoll_baseline|{build}/bench/baseline_epoll_echo {port}"
  "ringline_lua|lua5.4 {repo}/examples/echo_server.lua {port}"
  "luv|lua5.4 {repo}/lua/bench/luv_echo.lua {port}"
  "cqueues|lua5.4 {repo}/lua/bench/cqueues_echo.lua {port}"
  "ringline_py|/usr/bin/python3 {repo}/examples/echo_server.py {port}"
  "ringline_asyncio|/usr/bin/python3 {repo}/examples/asyncio_echo.py {port}"
  "asyncio|/usr/bin/python3 {repo}/examples/asyncio_echo.py {port} --loop asyncio"
  "uvloop|/usr/bin/python3 {repo}/examples/asyncio_echo.py {port} --loop uvloop"
)

# name|conns|size|depth|label
SHAPES=(
  "c64_64B_d1|64|64|1|64 conns x 64 B, depth 1"
  "c64_64B_d16|64|64|16|64 conns x 64 B, depth 16 (pipelined)"
  "c256_1KiB_d1|256|1024|1|256 conns x 1 KiB, depth 1"
  "c8_64KiB_d1|8|65536|1|8 conns x 64 KiB, depth 1 (bulk)"
  "c1_16B_d1|1|16|1|1 conn x 16 B, depth 1 (latency)"
)
IDLE_CONNS=2000
ALL_SHAPES=("${SHAPES[@]}")

SERVER_CPU=0
CLIENT_CPU=1
PORT_LO=18100
PORT_HI=18999
MAX_INTERFERENCE=0.05 # runs disturbed more than this are tried again

die() { echo "run.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: bench/run.sh BUILD_DIR [--quick] [--reps N] [--servers FILE] [--only a,b] [--shapes x,y] [--no-idle] [--out DIR]"
BUILD=$(cd "$1" && pwd) || die "no build dir $1"
shift
ORIG_ARGS=("$@")
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/bench/results"
QUICK=0
REPS=""
ONLY=""
ONLY_SHAPES=""
DO_IDLE=1
DO_BUILD=0
NICE=0
FROM_JSON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS=$2; shift ;;
    --servers)
      [ -r "$2" ] || die "cannot read $2"
      while IFS= read -r line; do
        line=${line%%#*}
        [ -n "${line// /}" ] && SERVERS+=("$line")
      done <"$2"
      shift ;;
    --only) ONLY=$2; shift ;;
    --shapes) ONLY_SHAPES=$2; shift ;;
    --no-idle) DO_IDLE=0 ;;
    --out) OUT=$2; shift ;;
    --build) DO_BUILD=1 ;;
    --nice) NICE=$2; shift ;;
    --from-json) FROM_JSON=$2; shift ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
if [ -n "${RINGLINE_BENCH_SERVERS:-}" ]; then
  while IFS= read -r line; do
    [ -n "${line// /}" ] && SERVERS+=("$line")
  done <<<"$RINGLINE_BENCH_SERVERS"
fi
if [ "$NICE" != 0 ]; then
  if [ -z "${RINGLINE_BENCH_SESSION:-}" ] && command -v setsid >/dev/null; then
    # a new session gets its own scheduler autogroup; nice it, not the others
    export RINGLINE_BENCH_SESSION=1
    exec setsid -w "$0" "$BUILD" "${ORIG_ARGS[@]}"
  fi
  if [ -w /proc/self/autogroup ]; then
    echo "$NICE" >/proc/$$/autogroup || die "cannot set autogroup nice $NICE"
  fi
  renice -n "$NICE" -p $$ >/dev/null 2>&1 || true
fi
if [ "$QUICK" = 1 ]; then
  WARMUP=0.5; DURATION=1.5; : "${REPS:=1}"; MODE=quick; QUIET_WAIT=3; RETRY_BUDGET=60
else
  WARMUP=0.5; DURATION=2; : "${REPS:=3}"; MODE=full; QUIET_WAIT=10; RETRY_BUDGET=220
fi

if [ "$DO_BUILD" = 1 ]; then
  cmake --build "$BUILD" -j2 --target echo_server loadgen baseline_uring_echo baseline_epoll_echo >/dev/null ||
    die "build failed"
fi
LOADGEN="$BUILD/bench/loadgen"
[ -x "$LOADGEN" ] || die "$LOADGEN not built (cmake --build $BUILD --target loadgen)"
command -v taskset >/dev/null || die "taskset missing (util-linux)"
command -v jq >/dev/null || die "jq missing"
command -v python3 >/dev/null || die "python3 missing (for the report)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs"

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/ringline-bench.XXXXXX)
RUNS="$WORK/runs.jsonl"
: >"$RUNS"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

selected() { # selected LIST NAME
  [ -z "$1" ] && return 0
  case ",$1," in *",$2,"*) return 0 ;; esac
  return 1
}

NEXT_PORT=$((PORT_LO + RANDOM % 200))
next_port() {
  local tries=0
  while :; do
    NEXT_PORT=$((NEXT_PORT + 1))
    [ "$NEXT_PORT" -gt "$PORT_HI" ] && NEXT_PORT=$PORT_LO
    if [ -z "$(ss -Htan "( sport = :$NEXT_PORT or dport = :$NEXT_PORT )" 2>/dev/null)" ]; then
      PORT=$NEXT_PORT
      return 0
    fi
    tries=$((tries + 1))
    [ "$tries" -gt 900 ] && die "no free port in $PORT_LO-$PORT_HI"
  done
}

# busy ticks (user nice system irq softirq steal) and total ticks of cpuN
cpu_ticks() {
  awk -v c="cpu$1" '$1 == c { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat
}
# fraction of the two benchmark CPUs busy with other work over 0.3 s
background_load() {
  local a0 a1 b0 b1
  a0=$(cpu_ticks $SERVER_CPU); b0=$(cpu_ticks $CLIENT_CPU)
  sleep 0.3
  a1=$(cpu_ticks $SERVER_CPU); b1=$(cpu_ticks $CLIENT_CPU)
  echo "$a0 $a1 $b0 $b1" | awk '{
    db = ($3-$1) + ($7-$5); dt = ($4-$2) + ($8-$6);
    printf "%.2f", (dt > 0 ? db / dt : 0) }'
}
# wait (at most QUIET_WAIT s) for the machine to be quiet; prints the last sample
wait_quiet() {
  local bg t0=$SECONDS
  if [ "$NICE" != 0 ]; then background_load; return; fi
  while :; do
    bg=$(background_load)
    awk -v b="$bg" 'BEGIN { exit !(b < 0.10) }' && break
    [ $((SECONDS - t0)) -ge "$QUIET_WAIT" ] && break
    # past the suite's time budget, do not wait any more
    [ $((SECONDS - ${SUITE_T0:-$SECONDS})) -ge "$RETRY_BUDGET" ] && break
    sleep 0.5
  done
  echo "$bg"
}

start_server() { # start_server NAME CMD -> SERVER_PID, SERVER_LOG
  local name=$1 cmd=$2
  next_port
  cmd=${cmd//\{build\}/$BUILD}
  cmd=${cmd//\{repo\}/$REPO}
  cmd=${cmd//\{port\}/$PORT}
  SERVER_LOG="$WORK/$name.$PORT.log"
  SERVER_CMD=$cmd
  # exec chain: subshell -> taskset -> server, so $! is the server's pid
  ( eval "exec taskset -c $SERVER_CPU $cmd" ) >"$SERVER_LOG" 2>&1 </dev/null &
  SERVER_PID=$!
  local i
  for i in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server $name exited at start:" >&2; cat "$SERVER_LOG" >&2; SERVER_PID=""; return 1; }
    if [ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]; then
      # the listener must belong to the process we started
      if ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -q "pid=$SERVER_PID,"; then
        SERVER_EXE=$(readlink "/proc/$SERVER_PID/exe")
        SERVER_LIB=$(awk '$6 ~ /libringline/ { print $6; exit }' "/proc/$SERVER_PID/maps")
        SERVER_LIB_SHA=""
        [ -n "$SERVER_LIB" ] && SERVER_LIB_SHA=$(sha256sum "$SERVER_LIB" | cut -c1-16)
        return 0
      fi
      echo "port $PORT is served by another process:" >&2
      ss -Hltnp "sport = :$PORT" >&2
      stop_server
      return 1
    fi
    sleep 0.05
  done
  echo "server $name did not listen on $PORT within 5 s" >&2
  stop_server
  return 1
}

stop_server() { # -> SERVER_EXIT
  SERVER_EXIT=""
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 60); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    SERVER_EXIT="killed (no exit 3 s after SIGTERM)"
  fi
  set +e
  wait "$SERVER_PID" 2>/dev/null
  local rc=$?
  set -e
  [ -z "$SERVER_EXIT" ] && SERVER_EXIT=$rc
  SERVER_PID=""
}

record() { # record JSON_FROM_LOADGEN extra jq args...
  local json=$1
  shift
  echo "$json" | jq -c "$@" >>"$RUNS"
}

# Interference during a run: the time the server's threads and the loadgen
# spent runnable but waiting for a CPU (schedstat run_delay), as a share of
# 2 x the window. Other processes' CPU use on the two CPUs (/proc/stat busy
# time neither of them used) is recorded too, as other_cpu.
interference() { # interference JSON
  echo "$1" | jq -r 'if .ok and (.server_runq_wait_ms // -1) >= 0 and (.client_runq_wait_ms // -1) >= 0 then
      (.server_runq_wait_ms + .client_runq_wait_ms) / 1000 / (2 * .duration_s)
    else 0 end'
}
other_cpu() { # other_cpu JSON
  echo "$1" | jq -r 'if .ok and .server_cpu_busy_s >= 0 and .client_cpu_busy_s >= 0 then
      (([.server_cpu_busy_s - .server_cpu_s, 0] | max) + ([.client_cpu_busy_s - .client_cpu_s, 0] | max))
        / (2 * .duration_s)
    else 0 end'
}

run_one() { # run_one REP NAME CMD SHAPE CONNS SIZE DEPTH
  local rep=$1 name=$2 cmd=$3 shape=$4 conns=$5 size=$6 depth=$7
  local bg out rc json attempt inter other summary
  for attempt in 1 2 3 4; do
    bg=$(wait_quiet)
    if ! start_server "$name" "$cmd"; then
      record '{"ok":false,"error":"server-start"}' --arg s "$name" --arg sh "$shape" \
        --argjson rep "$rep" '. + {server:$s, shape:$sh, rep:$rep}'
      return 0
    fi
    set +e
    out=$(taskset -c $CLIENT_CPU "$LOADGEN" --port "$PORT" --conns "$conns" --size "$size" \
          --depth "$depth" --warmup "$WARMUP" --duration "$DURATION" \
          --server-pid "$SERVER_PID" --stall-timeout 3 --quiet 2>"$WORK/loadgen.err")
    rc=$?
    set -e
    local exe=$SERVER_EXE lib=$SERVER_LIB libsha=$SERVER_LIB_SHA port=$PORT
    stop_server
    json=$(echo "$out" | tail -n1)
    if ! echo "$json" | jq -e . >/dev/null 2>&1; then
      json="{\"ok\":false,\"error\":\"loadgen-rc-$rc\"}"
    fi
    inter=$(interference "$json")
    other=$(other_cpu "$json")
    record "$json" --arg s "$name" --arg sh "$shape" --argjson rep "$rep" \
      --argjson attempt "$attempt" \
      --arg exe "$exe" --arg lib "$lib" --arg libsha "$libsha" --arg cmd "$SERVER_CMD" \
      --argjson port "$port" --argjson bg "$bg" --argjson inter "$inter" --argjson other "$other" --argjson rc "$rc" \
      --arg sexit "$SERVER_EXIT" --arg lgerr "$(tail -c 300 "$WORK/loadgen.err")" \
      '. + {server:$s, shape:$sh, rep:$rep, attempt:$attempt, exe:$exe, lib:$lib,
            lib_sha256_16:$libsha, command:$cmd, port:$port, background_before:$bg,
            background_load:$inter, other_cpu:$other, nice:'"$NICE"', loadgen_rc:$rc, server_exit:$sexit, loadgen_stderr:$lgerr}'
    summary=$(tail -n1 "$RUNS" | jq -r 'if .ok then
        "\(.ops_per_s|floor) ops/s  \(.mb_per_s*100|floor/100) MB/s  p50 \(.p50_us) us  p99 \(.p99_us) us  srv \(.server_cpu_s) CPU-s"
      else "FAILED: \(.error) \(.message // "")" end')
    printf '  %-16s %-14s rep %d.%d  bg before %.2f, run-queue wait %.2f, other CPU %.2f  %s\n    -> %s\n' \
      "$name" "$shape" "$rep" "$attempt" "$bg" "$inter" "$other" "$exe" "$summary"
    # a disturbed run is tried again while the time budget allows
    awk -v b="$inter" -v m="$MAX_INTERFERENCE" 'BEGIN { exit !(b >= m) }' || break
    [ $((SECONDS - SUITE_T0)) -lt "$RETRY_BUDGET" ] || break
  done
}

run_idle() { # run_idle NAME CMD
  local name=$1 cmd=$2 out rc json
  if ! start_server "$name" "$cmd"; then
    return 0
  fi
  sleep 0.3
  set +e
  out=$(taskset -c $CLIENT_CPU "$LOADGEN" --port "$PORT" --conns 0 --idle "$IDLE_CONNS" \
        --duration 0.5 --warmup 0 --server-pid "$SERVER_PID" --quiet 2>"$WORK/loadgen.err")
  rc=$?
  set -e
  local exe=$SERVER_EXE lib=$SERVER_LIB libsha=$SERVER_LIB_SHA
  stop_server
  json=$(echo "$out" | tail -n1)
  echo "$json" | jq -e . >/dev/null 2>&1 || json="{\"ok\":false,\"error\":\"loadgen-rc-$rc\"}"
  record "$json" --arg s "$name" --arg exe "$exe" --arg lib "$lib" --arg libsha "$libsha" \
    --argjson rc "$rc" \
    '. + {server:$s, shape:"idle", rep:1, exe:$exe, lib:$lib, lib_sha256_16:$libsha, loadgen_rc:$rc}'
  tail -n1 "$RUNS" | jq -r --arg n "$name" '"  \($n|.+"                "|.[0:16]) idle          \(.idle_conns) conns: RSS \(.rss_before_idle_kb) -> \(.rss_after_idle_kb) KiB"'
}

echo "ringline bench ($MODE): warmup ${WARMUP}s + ${DURATION}s, $REPS rep(s); server on CPU $SERVER_CPU, loadgen on CPU $CLIENT_CPU"
echo "build: $BUILD"
START=$(date +%s)
SUITE_T0=$SECONDS
if [ -n "$FROM_JSON" ]; then
  jq -c '.runs[]' "$FROM_JSON" >"$RUNS"
  SHAPES=()
  DO_IDLE=0
fi
# Rounds of one shape follow each other, servers interleaved inside a round,
# so that each round's ratios compare runs seconds apart (this VM has slow and
# fast phases that last longer than a run; see BENCHMARKS.md).
for sh in ${SHAPES[@]+"${SHAPES[@]}"}; do
  IFS='|' read -r shape conns size depth label <<<"$sh"
  selected "$ONLY_SHAPES" "$shape" || continue
  for rep in $(seq 1 "$REPS"); do
    for entry in "${SERVERS[@]}"; do
      name=${entry%%|*}
      cmd=${entry#*|}
      selected "$ONLY" "$name" || continue
      run_one "$rep" "$name" "$cmd" "$shape" "$conns" "$size" "$depth"
    done
  done
done
if [ "$DO_IDLE" = 1 ]; then
  for entry in "${SERVERS[@]}"; do
    name=${entry%%|*}
    cmd=${entry#*|}
    selected "$ONLY" "$name" || continue
    run_idle "$name" "$cmd"
  done
fi
END=$(date +%s)

# machine facts for the report
MACHINE=$(jq -n --arg nproc "$(nproc)" \
  --arg cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
  --arg kernel "$(uname -r)" \
  --arg liburing "$(pkg-config --modversion liburing 2>/dev/null || echo unknown)" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg mode "$MODE" --arg warmup "$WARMUP" --arg duration "$DURATION" --arg reps "$REPS" \
  --arg elapsed "$((END - START))" --arg maxi "$MAX_INTERFERENCE" --arg nice "$NICE" \
  '{nproc:($nproc|tonumber), cpu:$cpu, kernel:$kernel, liburing:$liburing, date:$date,
    mode:$mode, warmup_s:($warmup|tonumber), duration_s:($duration|tonumber),
    reps:($reps|tonumber), elapsed_s:($elapsed|tonumber), max_interference:($maxi|tonumber), nice:($nice|tonumber)}')

if [ -n "$FROM_JSON" ]; then
  SHAPES=("${ALL_SHAPES[@]}")
  MACHINE=$(jq -c '.machine' "$FROM_JSON")
fi
SHAPES_JSON=$(printf '%s\n' "${SHAPES[@]}" | jq -R -s -c 'split("\n") | map(select(length>0) | split("|") |
  {name:.[0], conns:(.[1]|tonumber), size:(.[2]|tonumber), depth:(.[3]|tonumber), label:.[4]})')
SERVERS_JSON=$(printf '%s\n' "${SERVERS[@]}" | jq -R -s -c 'split("\n") | map(select(length>0) |
  {name:(split("|")[0]), command:(split("|")[1:]|join("|"))})')

python3 - "$RUNS" "$OUT" "$MACHINE" "$SHAPES_JSON" "$SERVERS_JSON" "$ONLY" <<'PY'
import json, statistics, sys
runs_path, out, machine, shapes, servers, only = sys.argv[1:7]
machine = json.loads(machine)
shapes = json.loads(shapes)
servers = [s for s in json.loads(servers) if not only or s["name"] in only.split(",")]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
names = [s["name"] for s in servers]
ref = names[0] if names else None
MAXI = float(machine.get("max_interference", 0.05))

def enrich(r):
    d = dict(r)
    cpu = r.get("server_cpu_s", -1)
    ok = r.get("ok") and cpu is not None and cpu > 0 and r.get("ops")
    d["ops_per_server_cpu_s"] = r["ops"] / cpu if ok else None
    d["server_us_per_op"] = cpu * 1e6 / r["ops"] if ok else None
    dur = r.get("duration_s") or 0
    d["server_cpu_util"] = cpu / dur if ok and dur else None
    d["client_cpu_util"] = r.get("client_cpu_s", 0) / dur if r.get("ok") and dur else None
    return d

def counted(shape, server):
    """Per repetition, the last attempt (the clean one, or the last try)."""
    rs = [r for r in runs if r.get("shape") == shape and r.get("server") == server]
    by_rep = {}
    for r in rs:
        by_rep[r.get("rep", 1)] = r  # attempts are appended in order
    return [enrich(by_rep[k]) for k in sorted(by_rep)], rs

KEYS = ["ops_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us", "server_cpu_s",
        "ops_per_server_cpu_s", "server_us_per_op", "server_rss_kb", "server_cpu_util",
        "client_cpu_util", "background_load", "other_cpu"]

def summarize(reps):
    ok = [r for r in reps if r.get("ok")]
    if not ok:
        return None
    s = {k: statistics.median([r[k] for r in ok if r.get(k) is not None])
         for k in KEYS if any(r.get(k) is not None for r in ok)}
    vals = [r["ops_per_server_cpu_s"] for r in ok if r.get("ops_per_server_cpu_s")]
    s["spread"] = (max(vals) - min(vals)) / statistics.mean(vals) if len(vals) > 1 else 0.0
    s["reps_ok"] = len(ok)
    s["reps"] = len(reps)
    s["disturbed"] = sum(1 for r in ok if r.get("background_load", 0) >= MAXI)
    s["failed"] = [f"{r.get('error')}: {r.get('message', '')}" for r in reps if not r.get("ok")]
    return s

result = {"machine": machine, "servers": servers, "shapes": shapes, "reference": ref,
          "summary": {}, "idle": {}, "runs": [enrich(r) for r in runs]}
md = [f"# ringline echo benchmarks ({machine['mode']})\n",
      f"{machine['date']} · {machine['nproc']} CPUs ({machine['cpu']}) · kernel {machine['kernel']} · "
      f"liburing {machine['liburing']} · warmup {machine['warmup_s']} s + {machine['duration_s']} s measured · "
      f"{machine['reps']} round(s), servers interleaved · server on CPU 0, loadgen on CPU 1 · "
      f"autogroup nice {machine.get('nice', 0)} · suite {machine['elapsed_s']} s\n",
      "Absolute columns are medians over the rounds. ops/CPU-s = messages echoed per second of server CPU "
      "(utime+stime of all its threads over the measured window); µs/op = server CPU per message; bg = interference: share of the window the server and the loadgen sat runnable "
      "waiting for a CPU taken by other processes (a * marks a repetition still above 5 % after its "
      "retries); other = share of the two CPUs that other processes used while ours were idle (a † above "
      "10 %: the CPUs were kept from idling, which changes wake-up costs, mostly for the latency shape). "
      "srv%/cli% = CPU utilisation of server/loadgen. "
      f"Ratios (×) are paired against `{ref}`: each round's value over `{ref}`'s value in the same round, "
      "median (min–max) over rounds; > 1 means more than it (better for ops/s and ops/CPU-s, worse for p99).\n"]

def fmt(v, nd=0):
    if v is None:
        return "–"
    return f"{v:,.{nd}f}"

def paired(shape, server, key):
    """Per round: server's value / reference's value in the same round."""
    mine, _ = counted(shape, server)
    theirs, _ = counted(shape, ref)
    t = {r.get("rep"): r for r in theirs if r.get("ok") and r.get(key)}
    out = [r[key] / t[r["rep"]][key] for r in mine if r.get("ok") and r.get(key) and r.get("rep") in t]
    return out

def pr(vals):
    if not vals:
        return "–"
    m = statistics.median(vals)
    if len(vals) == 1 or min(vals) == max(vals):
        return f"{m:.2f}"
    return f"{m:.2f} ({min(vals):.2f}–{max(vals):.2f})"

for sh in shapes:
    sums = {}
    for n in names:
        reps, allr = counted(sh["name"], n)
        if not allr:
            continue
        s = summarize(reps)
        if s:
            for k in ("ops_per_s", "ops_per_server_cpu_s", "p99_us"):
                s["paired_ratio_" + k] = paired(sh["name"], n, k)
        sums[n] = s
        result["summary"].setdefault(sh["name"], {})[n] = s if s else {
            "ok": False, "failed": [f"{r.get('error')}: {r.get('message', '')}" for r in reps]}
    if not sums:
        continue
    md.append(f"\n## {sh['label']}\n")
    md.append("| server | ops/s | MB/s | p50 µs | p99 µs | p99.9 µs | ops/CPU-s | µs/op | RSS KiB | srv% | cli% | bg | other | ops/s × | ops/CPU-s × | p99 × |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in names:
        if n not in sums:
            continue
        s = sums[n]
        if not s:
            reps, _ = counted(sh["name"], n)
            err = "; ".join(f"{r.get('error')}: {r.get('message', '')}" for r in reps)
            md.append(f"| {n} | **FAILED** {err} |" + " |" * 15)
            continue
        mark = "*" if s["disturbed"] else ""
        fail = f" ({len(s['failed'])} round failed)" if s["failed"] else ""
        md.append(f"| {n}{fail} | {fmt(s['ops_per_s'])} | {fmt(s['mb_per_s'], 2)} | {fmt(s['p50_us'], 1)} | "
                  f"{fmt(s['p99_us'], 1)} | {fmt(s['p999_us'], 1)} | {fmt(s['ops_per_server_cpu_s'])} | "
                  f"{fmt(s['server_us_per_op'], 2)} | {s['server_rss_kb']:.0f} | "
                  f"{100 * s['server_cpu_util']:.0f} | {100 * s['client_cpu_util']:.0f} | "
                  f"{s['background_load']:.2f}{mark} | {s.get('other_cpu', 0):.2f}{'†' if s.get('other_cpu', 0) > 0.10 else ''} | "
                  f"{pr(s['paired_ratio_ops_per_s'])} | "
                  f"{pr(s['paired_ratio_ops_per_server_cpu_s'])} | {pr(s['paired_ratio_p99_us'])} |")

idle = [r for r in runs if r.get("shape") == "idle"]
if idle:
    md.append("\n## Idle connections: server RSS\n")
    md.append("| server | idle conns | RSS before KiB | RSS after KiB | bytes per conn |")
    md.append("|---|---:|---:|---:|---:|")
    for n in names:
        rs = [r for r in idle if r.get("server") == n]
        if not rs:
            continue
        r = rs[-1]
        if not r.get("ok") or r.get("rss_after_idle_kb", -1) < 0:
            md.append(f"| {n} | **FAILED: {r.get('error', '?')}** {r.get('message', '')} | | | |")
            result["idle"][n] = r
            continue
        per = (r["rss_after_idle_kb"] - r["rss_before_idle_kb"]) * 1024 / r["idle_conns"]
        result["idle"][n] = {"idle_conns": r["idle_conns"], "rss_before_kb": r["rss_before_idle_kb"],
                             "rss_after_kb": r["rss_after_idle_kb"], "bytes_per_conn": per}
        md.append(f"| {n} | {r['idle_conns']} | {r['rss_before_idle_kb']} | {r['rss_after_idle_kb']} | {per:,.0f} |")

md.append("\n## Binaries that served (from /proc/PID/exe and /proc/PID/maps)\n")
seen = {}
for r in runs:
    if r.get("exe"):
        k = (r.get("server"), r["exe"])
        if not seen.get(k) and r.get("lib"):
            seen[k] = f" + `{r['lib']}` (sha256 {r['lib_sha256_16']}…)"
        seen.setdefault(k, "")
for (srv, exe), lib in seen.items():
    md.append(f"- `{srv}`: `{exe}`{lib}")
failed = [r for r in runs if not r.get("ok")]
if failed:
    md.append("\n## Failed runs\n")
    for r in failed:
        md.append(f"- {r.get('server')} / {r.get('shape')} rep {r.get('rep')}: {r.get('error')} "
                  f"{r.get('message', '')} (loadgen exit {r.get('loadgen_rc')}, server exit {r.get('server_exit')})")
retried = [r for r in runs if r.get("attempt", 1) > 1]
md.append(f"\n{len(runs)} runs in all, {len(retried)} of them retries of disturbed runs; every attempt is in latest.json.")

open(f"{out}/latest.md", "w").write("\n".join(md) + "\n")
json.dump(result, open(f"{out}/latest.json", "w"), indent=1)
print(f"wrote {out}/latest.md and {out}/latest.json")
PY
echo "suite took $((END - START)) s"
