#!/bin/bash
# The C examples as a user runs them: echo_server (1 and 2 workers) and the
# proxy in front of it carry verified traffic from the real load generator,
# and each server exits 0 within 2 s of SIGINT / SIGTERM.
set -u
B=$1
fail() { echo "FAIL: $*"; exit 1; }
port_open() { (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null; }
wait_port() {
    for _ in $(seq 100); do port_open "$1" && return 0; sleep 0.05; done
    fail "port $1 never opened"
}
# exits 0 within 2 s of the signal?
stop_within_2s() {
    local pid=$1 sig=$2 what=$3
    kill -"$sig" "$pid"
    for _ in $(seq 40); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"; local rc=$?
            [ $rc -eq 0 ] || fail "$what exited $rc after SIG$sig"
            echo "$what: exit 0 after SIG$sig"
            return 0
        fi
        sleep 0.05
    done
    kill -9 "$pid"; fail "$what still running 2 s after SIG$sig"
}
load() {
    "$B/bench/loadgen" --port "$1" --conns 16 --size "$2" --depth 2 --duration 0.7 \
        --warmup 0.1 --quiet | tail -1 | grep -q '"ok":true' || fail "traffic through port $1"
    echo "port $1: $2-byte messages verified"
}
P=$((20000 + RANDOM % 5000))

"$B/examples/echo_server" $P 2>/dev/null & E=$!
wait_port $P
load $P 64
load $P 200000
"$B/examples/proxy" $((P + 1)) $P 2>/dev/null & X=$!
wait_port $((P + 1))
load $((P + 1)) 4096
stop_within_2s $X INT proxy
stop_within_2s $E TERM echo_server

"$B/examples/echo_server" $((P + 2)) --workers 2 2>/dev/null & E=$!
wait_port $((P + 2))
load $((P + 2)) 1000
stop_within_2s $E INT "echo_server --workers 2"
echo "c examples: ok"
