#!/bin/sh
# Side-by-side echo servers per server CPU-second: ringline's Lua servers
# (callback, coroutine and C-echo modes) against luv and cqueues, with the C
# echo_server as the reference. Each server runs pinned to CPU 0, the load
# generator (bench/loadgen, closed loop) pinned to CPU 1; the figure is
# messages echoed per CPU-second the server consumed (utime+stime over the
# measured window), the median of ROUNDS interleaved rounds.
#
#   lua/bench/compare.sh BUILD_DIR [ROUNDS] [SIZE] [CONNS] [SECONDS]
set -eu
BUILD=${1:?usage: compare.sh BUILD_DIR [ROUNDS] [SIZE] [CONNS] [SECONDS]}
ROUNDS=${2:-5}; SIZE=${3:-64}; CONNS=${4:-50}; SECS=${5:-4}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
LOADGEN=$BUILD/bench/loadgen
[ -x "$LOADGEN" ] || { echo "build bench/loadgen first (cmake --build $BUILD --target loadgen)" >&2; exit 1; }
export RINGLINE_BUILD=$BUILD
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

servers="c-echo_server|$BUILD/examples/echo_server PORT
lua-callback|lua5.4 $SRC/examples/echo_server.lua PORT --mode callback
lua-coroutine|lua5.4 $SRC/examples/echo_server.lua PORT --mode coro
lua-c-echo|lua5.4 $SRC/examples/echo_server.lua PORT --mode c
luv|lua5.4 $SRC/lua/bench/luv_echo.lua PORT
cqueues|lua5.4 $SRC/lua/bench/cqueues_echo.lua PORT"

port=17600
r=1
while [ $r -le "$ROUNDS" ]; do
  echo "$servers" | while IFS='|' read -r name cmd; do
    port=$((port + 1))
    c=$(echo "$cmd" | sed "s/PORT/$port/")
    taskset -c 0 $c >"$OUT/server.log" 2>&1 &
    pid=$!
    i=0
    while ! grep -q "listening" "$OUT/server.log" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    sleep 0.2
    line=$(taskset -c 1 "$LOADGEN" --port "$port" --conns "$CONNS" --size "$SIZE" --duration "$SECS" \
             --warmup 1 --server-pid "$pid" --quiet 2>/dev/null | tail -1) || true
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    ops=$(echo "$line" | sed -n 's/.*"ops":\([0-9]*\).*/\1/p')
    cpu=$(echo "$line" | sed -n 's/.*"server_cpu_s":\([0-9.]*\).*/\1/p')
    rate=$(echo "$line" | sed -n 's/.*"ops_per_s":\([0-9.]*\).*/\1/p')
    if [ -n "$ops" ] && [ -n "$cpu" ]; then
      echo "$name $ops $cpu $rate" >>"$OUT/results"
    else
      echo "$name FAILED: $line" >&2
    fi
  done
  port=$((port + 10))
  r=$((r + 1))
done

echo "echo, $CONNS connections, $SIZE-byte messages, $ROUNDS rounds of ${SECS}s (median):"
printf "%-16s %14s %12s %10s\n" server "msgs/CPU-s" "msgs/s" "vs C"
lua5.4 - "$OUT/results" <<'LUA'
local rows, order = {}, {}
for line in io.lines(arg[1]) do
  local name, ops, cpu, rate = line:match("^(%S+) (%d+) ([%d.]+) ([%d.]+)")
  if name then
    if not rows[name] then rows[name] = { eff = {}, rate = {} }; order[#order + 1] = name end
    local c = tonumber(cpu)
    if c > 0 then table.insert(rows[name].eff, tonumber(ops) / c) end
    table.insert(rows[name].rate, tonumber(rate))
  end
end
local function median(t)
  table.sort(t)
  if #t == 0 then return 0 end
  return t[(#t + 1) // 2]
end
local ref = rows["c-echo_server"] and median(rows["c-echo_server"].eff) or nil
for _, n in ipairs(order) do
  local e = median(rows[n].eff)
  print(("%-16s %14.0f %12.0f %10s"):format(n, e, median(rows[n].rate), ref and ("%.2fx"):format(e / ref) or "-"))
end
LUA
