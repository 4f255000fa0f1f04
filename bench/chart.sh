#!/usr/bin/env bash
# bench/chart.sh [LATEST_JSON] [OUT_PNG]
#
# Grouped bar chart of bench/run.sh results: for every shape, one bar per
# server, height = echoes per server CPU-second (median over rounds, log
# scale). Defaults: bench/results/latest.json -> bench/results/latest.png.
# Needs gnuplot (Debian gnuplot-nox, pngcairo terminal) and python3.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
IN=${1:-$REPO/bench/results/latest.json}
OUT=${2:-$REPO/bench/results/latest.png}
command -v gnuplot >/dev/null || { echo "missing gnuplot (apt-get install gnuplot-nox)" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# data: one row per shape, one column per server; NaN where a run failed
python3 - "$IN" "$TMP/data.tsv" "$TMP/meta" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
servers = [s["name"] for s in d["servers"]]
with open(sys.argv[2], "w") as f:
    f.write("shape\t" + "\t".join(servers) + "\n")
    for sh in d["shapes"]:
        row = d["summary"].get(sh["name"], {})
        vals = []
        for s in servers:
            v = (row.get(s) or {}).get("ops_per_server_cpu_s")
            vals.append(f"{v:.1f}" if v else "NaN")
        label = f'{sh["conns"]}c {sh["size"] if sh["size"] < 1024 else str(sh["size"]//1024)+"Ki"}B d{sh["depth"]}'
        f.write(f'"{label}"\t' + "\t".join(vals) + "\n")
m = d.get("machine", {})
with open(sys.argv[3], "w") as f:
    f.write(f'{len(servers)}\n{m.get("date","?")} {m.get("mode","?")}, {m.get("reps","?")} round(s), '
            f'{m.get("nproc","?")} CPUs, kernel {m.get("kernel","?")}\n')
PY
NS=$(sed -n 1p "$TMP/meta"); SUB=$(sed -n 2p "$TMP/meta")

cat > "$TMP/plot.gp" <<GP
set terminal pngcairo size 1500,760 font "DejaVu Sans,11" noenhanced
set output "$OUT"
set title "Echo servers (bench/run.sh): echoes per server CPU-second, median\n$SUB  -  higher is better" font ",13"
set style data histograms
set style histogram clustered gap 1.5
set style fill solid 0.9 border rgb "#333333"
set boxwidth 0.95
set logscale y 10
set yrange [5000:4000000]
set format y "%.0s%c"
set ytics ("10k" 10000, "20k" 20000, "50k" 50000, "100k" 100000, "200k" 200000, "500k" 500000, "1M" 1000000, "2M" 2000000)
set grid ytics lc rgb "#bbbbbb" lw 1 dt 2
set ylabel "echoes per server CPU-second (log scale)"
set xlabel "shape: connections, message size, pipeline depth"
set key outside right top vertical title "server" box
set xtics nomirror
set ytics nomirror
set xrange [-0.6:$(( $(wc -l < "$TMP/data.tsv") - 2 )).6]
set border 3
# C: blues, Lua: greens, Python (ringline): reds/oranges, uvloop purple; bench/run.sh order
array C[10] = ["#08306b", "#4292c6", "#9ecae1", "#006d2c", "#41ab5d", "#a1d99b", "#7f2704", "#d94801", "#fdae6b", "#756bb1"]
plot for [i=2:$((NS + 1))] "$TMP/data.tsv" using i:xtic(1) title columnheader(i) lc rgb C[i-1]
GP
gnuplot "$TMP/plot.gp"
echo "wrote $OUT" >&2
