#!/usr/bin/env bash
# bench/storage.sh BUILD_DIR [--reps N] [--seconds S] [--size-mb M] [--cpu C]
#                            [--no-vm] [--vm-only] [--vm-seconds S] [--vm-reps N]
#                            [--no-fixed] [--no-scripts]
#
# 4 KiB random reads, ringline's storage batches (bench/storage_bench.c, one
# ringline_rw_reap call per batch) against fio's io_uring engine, at queue
# depth 1 and 32:
#
#   host  an O_DIRECT file of --size-mb (default 1024) on the build tree's
#         filesystem (ext4 here), written once and kept in
#         BUILD_DIR/bench-storage; both tools pinned to CPU --cpu (default 1)
#         with taskset; pairs: plain buffers (ringline READ vs fio defaults)
#         and registered buffers (ringline READ_FIXED vs fio --fixedbufs=1).
#         The plain group also runs the Lua and Python storage objects
#         (bench/storage_bench.lua / .py: ringline.open_direct, one call per
#         I/O at QD 1, read_batch of 1024 offsets with QD in flight at QD 32)
#         in the same rotation, each compared with that round's fio
#         (--no-scripts skips them, --no-fixed the registered-buffer pair).
#   vm    inside the NVMe VM of tests/vm/vm.sh (Debian's kernel, QEMU's
#         emulated NVMe controller, fio and the static storage_bench in the
#         initramfs): ringline NVMe passthrough on /dev/ng0n1 against fio's
#         io_uring_cmd engine (--cmd_type=nvme), and ringline O_DIRECT on
#         /dev/nvme0n1 against fio's io_uring engine. When the host's KVM
#         cannot boot a stock kernel the VM runs under TCG emulation (vm.sh
#         says so): those numbers compare the two tools on one emulated
#         device, not the device.
#
# Every pair alternates which tool goes first from one round to the next;
# the report gives medians over rounds and the paired ratio ringline/fio
# of each round's IOPS (median and range). Results: BUILD_DIR/bench-storage/
# results.tsv and storage.md (printed at the end).
set -euo pipefail

BUILD=${1:?usage: bench/storage.sh BUILD_DIR [options]}
shift
REPS=3
SECONDS_RUN=5
SIZE_MB=1024
CPU=1
DO_HOST=1
DO_VM=1
DO_FIXED=1
DO_SCRIPTS=1
VM_SECONDS=3
VM_REPS=2
while [ $# -gt 0 ]; do
    case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --seconds) SECONDS_RUN=$2; shift 2 ;;
    --size-mb) SIZE_MB=$2; shift 2 ;;
    --cpu) CPU=$2; shift 2 ;;
    --no-vm) DO_VM=0; shift ;;
    --vm-only) DO_HOST=0; shift ;;
    --vm-seconds) VM_SECONDS=$2; shift 2 ;;
    --vm-reps) VM_REPS=$2; shift 2 ;;
    --no-fixed) DO_FIXED=0; shift ;;
    --no-scripts) DO_SCRIPTS=0; shift ;;
    *) echo "storage.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
for t in fio taskset python3; do
    command -v $t >/dev/null || { echo "storage.sh: $t missing (make deps installs fio from tools/deps-extra.txt)" >&2; exit 1; }
done
cmake --build "$BUILD" --target storage_bench storage_bench_static >/dev/null
BENCH=$BUILD/tests/vm/storage_bench
BENCH_STATIC=$BUILD/tests/vm/storage_bench_static
[ -x "$BENCH" ] || { echo "storage.sh: $BENCH not built" >&2; exit 1; }

DIR=$BUILD/bench-storage
mkdir -p "$DIR"
RES=$DIR/results.tsv
printf 'where\ttool\tqd\trep\tiops\tlat_mean_us\tlat_p50_us\tlat_p99_us\tcpu_us_per_io\n' >"$RES"

# key=value line of storage_bench -> TSV fields
ringline_row() { # where tool qd rep < storage_bench output
    python3 -c '
import sys
where, tool, qd, rep = sys.argv[1:5]
line = [l for l in sys.stdin.read().splitlines() if l.startswith("storage_bench:")]
if not line:
    sys.exit("storage_bench printed no result")
kv = dict(p.split("=", 1) for p in line[-1].split()[1:] if "=" in p)
print("\t".join([where, tool, qd, rep, kv["iops"], kv["lat_mean_us"],
                 kv["lat_p50_us"], kv["lat_p99_us"], kv["cpu_us_per_io"]]))
' "$@"
}
# fio --minimal (terse v3) -> TSV fields: 8 read IOPS, 40 read latency mean
# (us), 24 / 30 clat p50 / p99 ("50.000000%=N"), 88 / 89 usr / sys CPU %
fio_row() { # where tool qd rep < fio terse output
    python3 -c '
import sys
where, tool, qd, rep = sys.argv[1:5]
lines = [l for l in sys.stdin.read().splitlines() if l.startswith("3;fio-")]
if not lines:
    sys.exit("fio printed no terse result")
f = lines[-1].split(";")
iops = float(f[7])
pct = lambda s: s.split("=")[1]
cpu = (float(f[87].rstrip("%")) + float(f[88].rstrip("%"))) / 100.0
cpu_per_io = cpu * 1e6 / iops if iops else 0.0
print("\t".join([where, tool, qd, rep, "%.0f" % iops, f[39], pct(f[23]),
                 pct(f[29]), "%.3f" % cpu_per_io]))
' "$@"
}

FIO_COMMON=(--name=rr --rw=randread --bs=4k --direct=1 --time_based
    --ramp_time=1 --norandommap --randrepeat=0 --minimal)

# ---------------------------------------------------------------- host ---
if [ $DO_HOST = 1 ]; then
    FILE=$DIR/rr.dat
    want=$((SIZE_MB * 1024 * 1024))
    if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" != "$want" ]; then
        echo "storage.sh: writing $FILE (${SIZE_MB} MiB, O_DIRECT)"
        rm -f "$FILE"
        fio --name=prep --filename="$FILE" --rw=write --bs=1M --size=${SIZE_MB}M \
            --direct=1 --ioengine=io_uring --iodepth=8 --minimal >/dev/null
    fi
    fs=$(stat -f -c %T "$DIR")
    echo "storage.sh: host: $FILE on $fs, ${SECONDS_RUN}s runs, $REPS rounds, CPU $CPU"
    run_pair() { # rep qd ringline-tool ringline-args fio-tool fio-args
        local rep=$1 qd=$2 rt=$3 ra=$4 ft=$5 fa=$6 first
        for first in 0 1; do
            if [ $(((rep + first) % 2)) = 0 ]; then
                # shellcheck disable=SC2086
                taskset -c "$CPU" "$BENCH" --file "$FILE" --qd "$qd" \
                    --seconds "$SECONDS_RUN" --warmup 1 $ra |
                    ringline_row host "$rt" "$qd" "$rep" >>"$RES"
            else
                # shellcheck disable=SC2086
                taskset -c "$CPU" fio "${FIO_COMMON[@]}" --filename="$FILE" \
                    --ioengine=io_uring --iodepth="$qd" --runtime="$SECONDS_RUN" \
                    --size=${SIZE_MB}M $fa |
                    fio_row host "$ft" "$qd" "$rep" >>"$RES"
            fi
            tail -1 "$RES" | cut -f2-5 | tr '\t' ' ' | sed 's/^/  /'
        done
    }
    # one run of C / Lua / Python / fio (plain buffers)
    run_tool() { # tool rep qd
        local tool=$1 rep=$2 qd=$3
        case $tool in
        ringline)
            taskset -c "$CPU" "$BENCH" --file "$FILE" --qd "$qd" \
                --seconds "$SECONDS_RUN" --warmup 1 |
                ringline_row host ringline "$qd" "$rep" >>"$RES" ;;
        lua)
            LUA_PATH="$SRC/lua/?.lua;;" LUA_CPATH="$BUILD/lua/?.so;;" \
                taskset -c "$CPU" lua5.4 "$SRC/bench/storage_bench.lua" "$FILE" "$qd" \
                "$SECONDS_RUN" 1 | ringline_row host lua "$qd" "$rep" >>"$RES" ;;
        python)
            PYTHONPATH="$SRC/python" RINGLINE_LIBRARY="$BUILD/libringline.so.0" \
                taskset -c "$CPU" /usr/bin/python3 "$SRC/bench/storage_bench.py" "$FILE" "$qd" \
                "$SECONDS_RUN" 1 | ringline_row host python "$qd" "$rep" >>"$RES" ;;
        fio)
            taskset -c "$CPU" fio "${FIO_COMMON[@]}" --filename="$FILE" \
                --ioengine=io_uring --iodepth="$qd" --runtime="$SECONDS_RUN" \
                --size=${SIZE_MB}M | fio_row host fio-io_uring "$qd" "$rep" >>"$RES" ;;
        esac
        tail -1 "$RES" | cut -f2-5 | tr '\t' ' ' | sed 's/^/  /'
    }
    TOOLS=(ringline fio)
    if [ $DO_SCRIPTS = 1 ]; then
        command -v lua5.4 >/dev/null || { echo "storage.sh: lua5.4 missing" >&2; exit 1; }
        [ -f "$BUILD/lua/ringline/core.so" ] || { echo "storage.sh: $BUILD/lua/ringline/core.so not built" >&2; exit 1; }
        TOOLS=(ringline lua fio python)
    fi
    for rep in $(seq 1 "$REPS"); do
        for qd in 1 32; do
            # rotate the order each round so no tool always goes first
            n=${#TOOLS[@]}
            for k in $(seq 0 $((n - 1))); do
                run_tool "${TOOLS[$(((k + rep) % n))]}" "$rep" "$qd"
            done
            if [ $DO_FIXED = 1 ]; then
                run_pair "$rep" "$qd" ringline-fixed "--fixed" fio-io_uring-fixedbufs "--fixedbufs=1"
            fi
        done
    done
fi

# ------------------------------------------------------------------ vm ---
if [ $DO_VM = 1 ]; then
    VMW=$DIR/vm
    mkdir -p "$VMW"
    # the Lua and Python storage objects on the same namespace, after the C
    # and fio pair of each depth: Debian's lua5.4 / python3 with the built
    # module and exactly the stdlib files `import ringline.storage` loads
    # (as tests/vm/vm_test.sh does)
    SCRIPT_ARGS=()
    RLLIB=
    CORE=$BUILD/lua/ringline/core.so
    if [ $DO_SCRIPTS = 1 ] && command -v lua5.4 >/dev/null && [ -f "$CORE" ]; then
        RLLIB=$(ldd "$CORE" | awk '/libringline\.so/ {print $3}')
        SCRIPT_ARGS+=(--dynamic "$(command -v lua5.4):/bin/lua5.4"
            --dynamic "$CORE:/rl/lua/ringline/core.so"
            --file "$SRC/lua/ringline.lua:/rl/lua/ringline.lua"
            --file "$SRC/bench/storage_bench.lua:/rl/storage_bench.lua")
        if pyargs=$(bash "$SRC/tests/vm/py_payload.sh" "$SRC" "$RLLIB"); then
            mapfile -t pyargs <<<"$pyargs"
            SCRIPT_ARGS+=("${pyargs[@]}"
                --file "$SRC/bench/storage_bench.py:/rl/storage_bench.py")
        fi
    fi
    cat >"$VMW/bench_in_vm.sh" <<EOF
#!/bin/sh
# runs inside the VM: $VM_REPS rounds of $VM_SECONDS s per run
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
export LUA_PATH="/rl/lua/?.lua;;" LUA_CPATH="/rl/lua/?.so;;"
RLLIB=$RLLIB
echo "RLBENCH-INFO \$(/rl/fio --version) cpus=\$(nproc)"
/rl/fio --name=fill --filename=/dev/nvme0n1 --rw=write --bs=1M --size=256M \
    --direct=1 --ioengine=io_uring --iodepth=4 --minimal >/dev/null ||
    { echo "RLBENCH-FAIL fill"; exit 1; }
F="--name=rr --rw=randread --bs=4k --time_based --ramp_time=1 --norandommap --randrepeat=0 --minimal --size=256M"
for rep in \$(seq 1 $VM_REPS); do
  for qd in 1 32; do
    for first in 0 1; do
      if [ \$(( (rep + first) % 2 )) = 0 ]; then
        taskset -c 1 /rl/storage_bench_static --nvme /dev/ng0n1 --ctrl /dev/nvme0 --nsid 1 \
          --qd \$qd --seconds $VM_SECONDS --warmup 1 --span 268435456 | sed "s/^/RLBENCH vm ringline-nvme-passthrough \$qd \$rep /"
      else
        taskset -c 1 /rl/fio \$F --filename=/dev/ng0n1 --ioengine=io_uring_cmd --cmd_type=nvme \
          --iodepth=\$qd --runtime=$VM_SECONDS | sed "s/^/RLBENCH vm fio-io_uring_cmd \$qd \$rep /"
      fi
    done
    if [ -x /bin/lua5.4 ]; then
      taskset -c 1 /bin/lua5.4 /rl/storage_bench.lua /dev/ng0n1 \$qd $VM_SECONDS 1 4096 268435456 |
        sed "s/^/RLBENCH vm lua-nvme-passthrough \$qd \$rep /"
    fi
    if [ -x /usr/bin/python3 ]; then
      PYTHONPATH=/rl/py:/usr/lib/python3/dist-packages RINGLINE_LIBRARY=\$RLLIB PYTHONDONTWRITEBYTECODE=1 \
        taskset -c 1 /usr/bin/python3 -S /rl/storage_bench.py /dev/ng0n1 \$qd $VM_SECONDS 1 4096 268435456 |
        sed "s/^/RLBENCH vm python-nvme-passthrough \$qd \$rep /"
    fi
    for first in 0 1; do
      if [ \$(( (rep + first) % 2 )) = 0 ]; then
        taskset -c 1 /rl/storage_bench_static --file /dev/nvme0n1 \
          --qd \$qd --seconds $VM_SECONDS --warmup 1 --span 268435456 | sed "s/^/RLBENCH vm ringline-odirect-bdev \$qd \$rep /"
      else
        taskset -c 1 /rl/fio \$F --filename=/dev/nvme0n1 --ioengine=io_uring --direct=1 \
          --iodepth=\$qd --runtime=$VM_SECONDS | sed "s/^/RLBENCH vm fio-io_uring-bdev \$qd \$rep /"
      fi
    done
  done
done
echo "RLBENCH-DONE"
EOF
    chmod +x "$VMW/bench_in_vm.sh"
    per_run=$((VM_SECONDS + 3))
    budget=$((60 + VM_REPS * 2 * 6 * per_run * 2))
    echo "storage.sh: vm: booting (bound ${budget}s)"
    if bash "$SRC/tests/vm/vm.sh" --work "$VMW" --cache "$BUILD/vm-kernel" \
        --timeout "$budget" --mem 2048 --ns 1024:512 --nvme-opts ioeventfd=on \
        --file "$BENCH_STATIC:/rl/storage_bench_static" \
        --dynamic "$(command -v fio):/rl/fio" \
        --file "$VMW/bench_in_vm.sh:/rl/bench_in_vm.sh" "${SCRIPT_ARGS[@]}" \
        --expect RLBENCH-DONE -- /rl/bench_in_vm.sh >"$VMW/run.log" 2>&1; then
        grep -E "RLVM-ACCEL|RLBENCH-INFO|vm.sh: (this host|booting|qemu)" "$VMW/run.log" | sed 's/^/  /'
        grep '^RLBENCH vm ' "$VMW/run.log" | while read -r _ where tool qd rep rest; do
            case "$tool" in
            fio-*) echo "$rest" | fio_row "$where" "$tool" "$qd" "$rep" ;;
            *) echo "$rest" | ringline_row "$where" "$tool" "$qd" "$rep" ;;
            esac
        done >>"$RES"
        accel=$(sed -n 's/^RLVM-ACCEL //p' "$VMW/run.log" | tail -1)
        echo "$accel" >"$DIR/vm_accel"
    else
        tail -40 "$VMW/run.log"
        echo "storage.sh: the VM benchmark failed (log: $VMW/run.log)" >&2
        DO_VM=0
    fi
fi

# -------------------------------------------------------------- report ---
python3 - "$RES" "$DIR/storage.md" "$(cat "$DIR/vm_accel" 2>/dev/null || true)" <<'EOF'
import csv, statistics, sys
res, out, accel = sys.argv[1], sys.argv[2], sys.argv[3]
rows = list(csv.DictReader(open(res), delimiter="\t"))
pairs = [("host", "ringline", "fio-io_uring"),
         ("host", "lua", "fio-io_uring"),
         ("host", "python", "fio-io_uring"),
         ("host", "ringline-fixed", "fio-io_uring-fixedbufs"),
         ("vm", "ringline-nvme-passthrough", "fio-io_uring_cmd"),
         ("vm", "lua-nvme-passthrough", "fio-io_uring_cmd"),
         ("vm", "python-nvme-passthrough", "fio-io_uring_cmd"),
         ("vm", "ringline-odirect-bdev", "fio-io_uring-bdev")]
def med(xs):
    return statistics.median(xs) if xs else float("nan")
lines = ["| where | qd | ringline | IOPS | fio | IOPS | ratio (median, range) | lat mean µs r / f | p99 µs r / f | CPU µs/IO r / f |",
         "|---|---|---|---|---|---|---|---|---|---|"]
for where, rt, ft in pairs:
    for qd in ("1", "32"):
        r = [x for x in rows if x["where"] == where and x["tool"] == rt and x["qd"] == qd]
        f = [x for x in rows if x["where"] == where and x["tool"] == ft and x["qd"] == qd]
        if not r or not f:
            continue
        fr = {x["rep"]: float(x["iops"]) for x in f}
        ratios = [float(x["iops"]) / fr[x["rep"]] for x in r if fr.get(x["rep"])]
        g = lambda xs, k: med([float(x[k]) for x in xs])
        lines.append("| %s | %s | %s | %.0f | %s | %.0f | %.2f (%.2f–%.2f) | %.1f / %.1f | %.0f / %.0f | %.2f / %.2f |" % (
            where + (" (%s)" % accel if where == "vm" and accel else ""), qd,
            rt, g(r, "iops"), ft, g(f, "iops"), med(ratios), min(ratios),
            max(ratios), g(r, "lat_mean_us"), g(f, "lat_mean_us"),
            g(r, "lat_p99_us"), g(f, "lat_p99_us"), g(r, "cpu_us_per_io"),
            g(f, "cpu_us_per_io")))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "storage.sh: results in $RES and $DIR/storage.md"
