#!/usr/bin/env bash
# bench/real_clients.sh BUILD_DIR [--quick] [--reps N] [--out DIR]
#
# Real-client workloads against ringline's example servers and their peers:
#
#   redis-benchmark (Debian redis-tools), one invocation per command of
#     -t ping,set,get,incr,mset -n N -c 50 -P 16 -q --csv
#   against  kv_lua        lua5.4 examples/kv_server.lua PORT
#            redis_server  redis-server --port P --save '' --appendonly no
#                                        --daemonize no   (Debian redis-server)
#   wrk (Debian wrk) -t1 -c64 -d5s (2 s with --quick) http://127.0.0.1:PORT/
#   against  ringline_http        /usr/bin/python3 examples/http_server.py
#            ringline_asyncio_http bench/peers/http_asyncio.py --loop ringline
#            asyncio_http          bench/peers/http_asyncio.py --loop asyncio
#            uvloop_http           bench/peers/http_asyncio.py --loop uvloop
#
# The server runs pinned to CPU 0 (taskset -c 0), the client to CPU 1;
# 127.0.0.1, a fresh port per run from 19000-19499. The listening socket's
# owner (ss -p) must be the pid we started. Server CPU-seconds are
# utime+stime of /proc/PID/stat (all threads, clock ticks) sampled right
# before and right after the client ran, so they cover the client's run
# (including its connects); requests per server CPU-second = requests the
# client completed / those CPU-seconds. Every run is bounded by timeout(1).
# The machine may be shared: before each client run the script waits (at most
# 10 s) for both CPUs to be quiet, and it takes the server's schedstat
# run_delay (time runnable but waiting for a CPU) as a share of the window;
# above MAX_INTERF (default 0.05) the run is tried again, at most 3 attempts,
# the last one counts. The client's run_delay (polled every 0.1 s while it
# runs) counts too, and its CPU utilisation is recorded (near 1.0 means the
# client, not the server, set the pace). Both are recorded per run in the JSON.
#
# redis-benchmark runs one command per invocation so that each command gets
# its own CPU window; "-t ping" runs PING_INLINE and PING_MBULK (2 x N
# requests in one window). Ratios are paired per round (kv_lua / redis_server,
# X / uvloop_http), then the median over rounds.
#
# Full: N = 1,000,000, wrk 5 s, 3 rounds (~3 min). --quick: N = 200,000,
# wrk 2 s, 1 round (~40 s). Writes OUT/real_clients.md and
# OUT/real_clients.json (OUT defaults to bench/results); raw client outputs,
# server logs and rows.tsv go to BUILD_DIR/bench-real-clients/.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: bench/real_clients.sh BUILD_DIR [--quick] [--reps N] [--out DIR]}
BUILD=$(cd "$BUILD" && pwd)
shift
QUICK=0; REPS=; OUT="$REPO/bench/results"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then N=200000; WRK_D=2; : "${REPS:=1}"; MODE=quick
else N=1000000; WRK_D=5; : "${REPS:=3}"; MODE=full; fi

for b in redis-benchmark redis-server wrk taskset ss lua5.4; do
  command -v "$b" >/dev/null || { echo "missing $b (see tools/deps-extra.txt)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import uvloop' 2>/dev/null || { echo "missing python3-uvloop" >&2; exit 1; }

mkdir -p "$OUT"
RAW="$BUILD/bench-real-clients"; rm -rf "$RAW"; mkdir -p "$RAW"
ROWS="$RAW/rows.tsv"; : > "$ROWS"
export RINGLINE_BUILD="$BUILD"
export PYTHONPATH="$REPO/python${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)

REDIS_SERVERS=(
  "kv_lua|lua5.4 {repo}/examples/kv_server.lua {port}"
  "redis_server|redis-server --port {port} --save '' --appendonly no --daemonize no"
)
HTTP_SERVERS=(
  "ringline_http|/usr/bin/python3 {repo}/examples/http_server.py {port}"
  "ringline_asyncio_http|/usr/bin/python3 {repo}/bench/peers/http_asyncio.py {port} --loop ringline"
  "asyncio_http|/usr/bin/python3 {repo}/bench/peers/http_asyncio.py {port} --loop asyncio"
  "uvloop_http|/usr/bin/python3 {repo}/bench/peers/http_asyncio.py {port} --loop uvloop"
)
REDIS_TESTS=(ping set get incr mset)

PORT=19000
SPID=
next_port() {
  PORT=$((PORT + 1)); [ $PORT -le 19499 ] || PORT=19000
  while ss -Htan "sport = :$PORT" | grep -q .; do PORT=$((PORT + 1)); done
}
cpu_ticks() {  # utime+stime of a process (all threads), clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
start_server() {  # $1 command template; sets SPID
  local cmd=${1//\{repo\}/$REPO}; cmd=${cmd//\{build\}/$BUILD}; cmd=${cmd//\{port\}/$PORT}
  eval "exec taskset -c 0 $cmd" >"$RAW/server.$PORT.log" 2>&1 &
  SPID=$!
  local i
  for i in $(seq 100); do
    if ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -q "pid=$SPID,"; then return 0; fi
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not listen on $PORT as pid $SPID: $cmd" >&2
  cat "$RAW/server.$PORT.log" >&2 || true
  stop_server; return 1
}
stop_server() {
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID" 2>/dev/null || true
  local i
  for i in $(seq 30); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=
}
trap stop_server EXIT
HZ=$(getconf CLK_TCK)
run_delay_ns() {  # time the server's threads spent runnable, waiting for a CPU
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%d", s }'
}
cpus_busy() {  # busy jiffies of cpu0 and cpu1: "b0 b1"
  awk '/^cpu[01] / { printf "%d ", $2+$3+$4+$7+$8+$9 }' /proc/stat
}
wait_quiet() {  # bounded (10 s): until both CPUs are < 10 % busy for 0.3 s
  local t a b
  for t in $(seq 20); do
    a=($(cpus_busy)); sleep 0.3; b=($(cpus_busy))
    [ $(( b[0] - a[0] )) -le 3 ] && [ $(( b[1] - a[1] )) -le 3 ] && return 0
    sleep 0.2
  done
  echo "   (CPUs not quiet after 10 s; running anyway)" >&2
}
exec {SLEEPFD}<> <(:)  # read -t on it is a fork-free sleep
poll_client() {  # PID: fork-free (builtins only) sample; sets CRD, CTK if readable
  local f a b c line rest x=0
  for f in /proc/"$1"/task/*/schedstat; do
    read -r a b c < "$f" 2>/dev/null || return 0
    x=$((x + b))
  done
  read -r line < /proc/"$1"/stat 2>/dev/null || return 0
  rest=${line##*) }
  set -- $rest
  [ "$x" -gt 0 ] && CRD=$x
  CTK=$(( ${12} + ${13} ))
}
run_client() {  # OUT ERR TIMEOUT cmd...: runs the client on CPU 1 in the background,
  # polling (every 0.1 s, without forking) its run_delay and CPU ticks: sets
  # CRD (ns) and CTK (the last sample before it exited, so up to 0.1 s short)
  local o=$1 e=$2 to=$3; shift 3
  timeout "$to" taskset -c 1 "$@" > "$o" 2> "$e" &
  local tp=$! cp= i
  CRD=0; CTK=0
  for i in $(seq 50); do cp=$(pgrep -P "$tp" | head -1); [ -n "$cp" ] && break; sleep 0.02; done
  while kill -0 "$tp" 2>/dev/null; do
    [ -n "$cp" ] && poll_client "$cp"
    read -t 0.1 -u "$SLEEPFD" _ || true
  done
  wait "$tp"
}
MAX_INTERF=${MAX_INTERF:-0.05}
interference() {  # d0 d1 seconds -> share
  echo "scale=4; ($2 - $1) / 1000000000 / $3" | bc
}
too_disturbed() { [ "$(echo "$1 > $MAX_INTERF" | bc)" = 1 ]; }

run_redis() {  # rep name cmd
  local rep=$1 name=$2 cmd=$3 t out c0 c1 ntests
  next_port
  start_server "$cmd" || return 0
  for t in "${REDIS_TESTS[@]}"; do
    out="$RAW/redis.$name.$t.r$rep.csv"
    for att in 1 2 3; do
      wait_quiet
      c0=$(cpu_ticks "$SPID"); d0=$(run_delay_ns "$SPID"); w0=$(date +%s.%N)
      run_client "$out" "$out.err" 120 redis-benchmark -h 127.0.0.1 -p "$PORT" -t "$t" -n "$N" \
        -c 50 -P 16 -q --csv || echo "redis-benchmark $name $t failed ($?)" >&2
      c1=$(cpu_ticks "$SPID"); d1=$(run_delay_ns "$SPID"); w1=$(date +%s.%N)
      win=$(echo "$w1 - $w0" | bc)
    intf=$(interference "$d0" "$d1" "$win"); cintf=$(interference 0 "$CRD" "$win")
          [ "$(echo "$cintf > $intf" | bc)" = 1 ] && intf=$cintf
      cutil=$(echo "scale=3; $CTK / $HZ / $win" | bc)
      too_disturbed "$intf" || break
      echo "   $name $t: interference $intf, again" >&2
    done
    ntests=$(grep -vc '^"test"' "$out" || true)
    grep -v '^"test"' "$out" | while IFS=, read -r test rps _; do
      test=${test//\"/}; rps=${rps//\"/}
      printf 'redis\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t0\t0\t%s\t%s\t%s\n' "$rep" "$name" "$t" "$test" \
        "$rps" $((ntests * N)) "$(echo "scale=4; ($c1 - $c0) / $HZ" | bc)" "$intf" "$att" "$cutil" >> "$ROWS"
    done
  done
  stop_server
}

run_wrk() {  # rep name cmd
  local rep=$1 name=$2 cmd=$3 out c0 c1 rps reqs serr non2xx
  next_port
  start_server "$cmd" || return 0
  out="$RAW/wrk.$name.r$rep.txt"
  for att in 1 2 3; do
    wait_quiet
    c0=$(cpu_ticks "$SPID"); d0=$(run_delay_ns "$SPID"); w0=$(date +%s.%N)
    run_client "$out" "$out.err" $((WRK_D + 20)) wrk -t1 -c64 -d${WRK_D}s "http://127.0.0.1:$PORT/" \
      || echo "wrk $name failed ($?)" >&2
    c1=$(cpu_ticks "$SPID"); d1=$(run_delay_ns "$SPID"); w1=$(date +%s.%N)
    win=$(echo "$w1 - $w0" | bc)
    intf=$(interference "$d0" "$d1" "$win"); cintf=$(interference 0 "$CRD" "$win")
          [ "$(echo "$cintf > $intf" | bc)" = 1 ] && intf=$cintf
      cutil=$(echo "scale=3; $CTK / $HZ / $win" | bc)
    too_disturbed "$intf" || break
    echo "   $name: interference $intf, again" >&2
  done
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  reqs=$(awk '/requests in/ {print $1}' "$out")
  serr=$(awk -F'[ ,]+' '/Socket errors:/ {print $5 + $7 + $9 + $11}' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
  printf 'wrk\t%s\t%s\t-\t-\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$name" "${rps:-0}" "${reqs:-0}" \
    "$(echo "scale=4; ($c1 - $c0) / $HZ" | bc)" "${serr:-0}" "${non2xx:-0}" "$intf" "$att" "$cutil" >> "$ROWS"
  stop_server
}

for rep in $(seq "$REPS"); do
  echo "== round $rep/$REPS ($MODE)" >&2
  for e in "${REDIS_SERVERS[@]}"; do
    echo "   redis-benchmark -> ${e%%|*}" >&2; run_redis "$rep" "${e%%|*}" "${e#*|}"
  done
  for e in "${HTTP_SERVERS[@]}"; do
    echo "   wrk -> ${e%%|*}" >&2; run_wrk "$rep" "${e%%|*}" "${e#*|}"
  done
done
ELAPSED=$(( $(date +%s) - START ))

/usr/bin/python3 - "$ROWS" "$OUT" "$MODE" "$N" "$WRK_D" "$REPS" "$ELAPSED" \
    "$(printf '%s\n' "${REDIS_SERVERS[@]}")" "$(printf '%s\n' "${HTTP_SERVERS[@]}")" <<'PY'
import json, statistics, sys, platform, os, subprocess, datetime
rows_f, out, mode, n, wrk_d, reps, elapsed, rsv, hsv = sys.argv[1:]
n, wrk_d, reps, elapsed = int(n), int(wrk_d), int(reps), int(elapsed)
rsv = [l.split("|", 1) for l in rsv.splitlines() if l]
hsv = [l.split("|", 1) for l in hsv.splitlines() if l]
runs = []
for line in open(rows_f):
    k, rep, name, tsel, test, rps, reqs, cpu, serr, non2xx, intf, att, cutil = line.rstrip("\n").split("\t")
    cpu = float(cpu); reqs = int(reqs)
    runs.append(dict(client=k, rep=int(rep), server=name, selector=tsel, test=test,
                     rps=float(rps), requests=reqs, server_cpu_s=cpu,
                     req_per_server_cpu_s=(reqs / cpu if cpu > 0 else None),
                     socket_errors=int(serr), non2xx=int(non2xx),
                     interference=float(intf), attempts=int(att),
                     client_cpu_util=float(cutil)))
med = lambda xs: statistics.median(xs) if xs else None
def paired(client, key, sel, name, ref):
    out = []
    for r in range(1, reps + 1):
        a = [x for x in runs if x["client"] == client and x["rep"] == r and x["server"] == name and sel(x)]
        b = [x for x in runs if x["client"] == client and x["rep"] == r and x["server"] == ref and sel(x)]
        if a and b and a[0][key] and b[0][key]:
            out.append(a[0][key] / b[0][key])
    return out
summary = {"redis": {}, "wrk": {}}
tests = []
for x in runs:
    if x["client"] == "redis" and x["test"] not in tests: tests.append(x["test"])
for t in tests:
    summary["redis"][t] = {}
    for name, _ in rsv:
        xs = [x for x in runs if x["client"] == "redis" and x["test"] == t and x["server"] == name]
        if not xs: continue
        sel = lambda x, t=t: x["test"] == t
        summary["redis"][t][name] = dict(
            rps=med([x["rps"] for x in xs]),
            server_cpu_s=med([x["server_cpu_s"] for x in xs]),
            req_per_server_cpu_s=med([x["req_per_server_cpu_s"] for x in xs if x["req_per_server_cpu_s"]]),
            client_cpu_util=med([x["client_cpu_util"] for x in xs]),
            interference=max(x["interference"] for x in xs),
            ratio_rps_vs_redis_server=paired("redis", "rps", sel, name, "redis_server"),
            ratio_req_per_cpu_vs_redis_server=paired("redis", "req_per_server_cpu_s", sel, name, "redis_server"),
            rounds=len(xs))
for name, _ in hsv:
    xs = [x for x in runs if x["client"] == "wrk" and x["server"] == name]
    if not xs: continue
    sel = lambda x: True
    summary["wrk"][name] = dict(
        rps=med([x["rps"] for x in xs]),
        requests=med([x["requests"] for x in xs]),
        server_cpu_s=med([x["server_cpu_s"] for x in xs]),
        req_per_server_cpu_s=med([x["req_per_server_cpu_s"] for x in xs if x["req_per_server_cpu_s"]]),
        socket_errors=sum(x["socket_errors"] for x in xs),
        non2xx=sum(x["non2xx"] for x in xs),
        client_cpu_util=med([x["client_cpu_util"] for x in xs]),
        interference=max(x["interference"] for x in xs),
        ratio_rps_vs_uvloop=paired("wrk", "rps", sel, name, "uvloop_http"),
        ratio_req_per_cpu_vs_uvloop=paired("wrk", "req_per_server_cpu_s", sel, name, "uvloop_http"),
        rounds=len(xs))
def ver(cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip().splitlines()[0]
    except Exception: return None
machine = dict(max_interference=float(os.environ.get("MAX_INTERF", "0.05")),
               max_interference_seen=max((x["interference"] for x in runs), default=None),
               retried_runs=sum(1 for x in runs if x["attempts"] > 1),
               nproc=os.cpu_count(), kernel=platform.release(),
               date=datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"), mode=mode,
               redis_benchmark_n=n, wrk_duration_s=wrk_d, reps=reps, elapsed_s=elapsed,
               redis_benchmark=ver(["redis-benchmark", "--version"]),
               redis_server=ver(["redis-server", "--version"]),
               wrk=ver(["sh", "-c", "wrk -v 2>&1 | head -1"]),
               python=ver(["/usr/bin/python3", "--version"]),
               lua=ver(["lua5.4", "-v"]))
doc = dict(machine=machine,
           redis_servers=[dict(name=a, command=b) for a, b in rsv],
           http_servers=[dict(name=a, command=b) for a, b in hsv],
           redis_benchmark_args=f"-t <cmd> -n {n} -c 50 -P 16 -q --csv",
           wrk_args=f"-t1 -c64 -d{wrk_d}s", summary=summary, runs=runs)
json.dump(doc, open(os.path.join(out, "real_clients.json"), "w"), indent=1)

def fr(xs):
    if not xs: return "–"
    m = statistics.median(xs)
    return f"{m:.2f}" if len(xs) == 1 else f"{m:.2f} ({min(xs):.2f}–{max(xs):.2f})"
k = lambda v: "–" if v is None else f"{v/1000:,.0f}k"
L = []
L.append(f"Mode {mode}: {reps} round(s), redis-benchmark -n {n} -c 50 -P 16 (one command per "
         f"invocation), wrk -t1 -c64 -d{wrk_d}s; server on CPU 0, client on CPU 1; "
         f"{machine['date']}, {elapsed} s. Medians over rounds; ratios paired per round, "
         f"median (min–max). CPU-s = server utime+stime while the client ran.")
L.append("")
L.append("### redis-benchmark: kv_server.lua (ringline Lua) vs redis-server")
L.append("")
L.append("| test | kv_lua req/s | redis-server req/s | ratio req/s | kv_lua req/CPU-s | redis-server req/CPU-s | ratio req/CPU-s |")
L.append("|---|---|---|---|---|---|---|")
for t in tests:
    a = summary["redis"][t].get("kv_lua", {}); b = summary["redis"][t].get("redis_server", {})
    L.append(f"| {t} | {k(a.get('rps'))} | {k(b.get('rps'))} | {fr(a.get('ratio_rps_vs_redis_server'))} "
             f"| {k(a.get('req_per_server_cpu_s'))} | {k(b.get('req_per_server_cpu_s'))} "
             f"| {fr(a.get('ratio_req_per_cpu_vs_redis_server'))} |")
L.append("")
L.append("(PING_INLINE and PING_MBULK share one invocation, so their req/CPU-s is the pair's.) "
         "redis-benchmark's own CPU utilisation (median): " + ", ".join(
         f"{name} {med([x['client_cpu_util'] for x in runs if x['client']=='redis' and x['server']==name]):.2f}"
         for name, _ in rsv if any(x['server']==name for x in runs)))
L.append("")
L.append(f"### wrk -t1 -c64 -d{wrk_d}s: HTTP/1.1 keep-alive \"hello\"")
L.append("")
L.append("| server | req/s | ratio req/s vs uvloop | server CPU-s | req/CPU-s | ratio req/CPU-s vs uvloop | socket errors | non-2xx | wrk CPU util |")
L.append("|---|---|---|---|---|---|---|---|---|")
for name, _ in hsv:
    a = summary["wrk"].get(name)
    if not a: continue
    L.append(f"| {name} | {k(a['rps'])} | {fr(a['ratio_rps_vs_uvloop'])} | {a['server_cpu_s']:.2f} "
             f"| {k(a['req_per_server_cpu_s'])} | {fr(a['ratio_req_per_cpu_vs_uvloop'])} "
             f"| {a['socket_errors']} | {a['non2xx']} | {a['client_cpu_util']:.2f} |")
L.append("")
L.append("Servers: " + "; ".join(f"`{a}` = `{b}`" for a, b in rsv + hsv))
open(os.path.join(out, "real_clients.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
