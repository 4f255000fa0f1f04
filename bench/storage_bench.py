"""storage_bench.py — 4 KiB random reads through ringline.storage's
DirectFile, for bench/storage.sh next to storage_bench.c and fio. Prints the
same key=value line as storage_bench.c.

    python3 storage_bench.py FILE QD SECONDS WARMUP [BS [SPAN_BYTES]]

FILE /dev/ngXnY: NVMe passthrough (storage.nvme_open) instead.

QD 1: one f.read(off, bs) per I/O (bytes back; per-call latency recorded).
QD > 1: f.read_batch(offsets, bs, into=buf) with 1024 random offsets per
call into one aligned buffer, the object's C loop keeping QD in flight;
latency is reported as QD / IOPS (Little's law), p50/p99 as nan.
"""
import random
import sys
import time

from ringline import storage

path, qd, secs, warm = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
bs = int(sys.argv[5]) if len(sys.argv) > 5 else 4096
# a namespace's generic char device (/dev/ngXnY): NVMe passthrough, the same
# reads addressed in LBAs (bs / lba_size blocks each)
if path.startswith("/dev/ng"):
    f = storage.nvme_open(path, qd=qd)
    g = f.identify()
    unit = cnt = bs // g.lba_size
    nblk = g.nsze * g.lba_size // bs
else:
    f = storage.open_direct(path, readonly=True, qd=qd)
    unit, cnt = bs, bs
    nblk = f.size() // bs
if len(sys.argv) > 6:  # only the first SPAN bytes (what the other tools read)
    nblk = min(nblk, int(sys.argv[6]) // bs)
rnd = random.randrange
now = time.perf_counter

if qd == 1:
    read = f.read

    def run(limit, lats):
        n = 0
        while True:
            t0 = now()
            if t0 >= limit:
                return n
            s = read(rnd(nblk) * unit, cnt)
            if len(s) != bs:
                raise SystemExit("short read")
            if lats is not None:
                lats.append(now() - t0)
            n += 1

    run(now() + warm, None)
    lats = []
    c0, t0 = time.process_time(), now()
    ios = run(t0 + secs, lats)
    el = now() - t0
    cpu = time.process_time() - c0
    lats.sort()
    print("storage_bench: iops=%.0f lat_mean_us=%.1f lat_p50_us=%.0f lat_p99_us=%.0f cpu_us_per_io=%.3f" % (
        ios / el, sum(lats) / len(lats) * 1e6, lats[len(lats) // 2] * 1e6,
        lats[int(len(lats) * 0.99)] * 1e6, cpu * 1e6 / ios))
else:
    per = 1024
    buf = storage.aligned_buffer(per * bs, 4096)
    rb = f.read_batch

    def run(limit):
        n = 0
        while now() < limit:
            rb([rnd(nblk) * unit for _ in range(per)], cnt, into=buf)
            n += per
        return n

    run(now() + warm)
    c0, t0 = time.process_time(), now()
    ios = run(t0 + secs)
    el = now() - t0
    cpu = time.process_time() - c0
    print("storage_bench: iops=%.0f lat_mean_us=%.1f lat_p50_us=nan lat_p99_us=nan cpu_us_per_io=%.3f" % (
        ios / el, qd / (ios / el) * 1e6, cpu * 1e6 / ios))
f.close()
