/* storage_bench — random reads through ringline's storage batches, for
 * bench/storage.sh (against fio's io_uring and io_uring_cmd engines).
 *
 *   storage_bench --file PATH [--fixed]            O_DIRECT reads of a file
 *                                                  or block device
 *   storage_bench --nvme /dev/ngXnY --ctrl /dev/nvmeX --nsid N
 *                                                  NVMe passthrough reads
 *   common: --qd N (default 32) --bs BYTES (4096) --seconds S (10)
 *           --warmup S (1) --cpu C (pin; default none) --seed N
 *           --no-defer-taskrun (ring without IORING_SETUP_DEFER_TASKRUN)
 *           --span BYTES (read only the first BYTES of the target)
 *
 * One ringline_rw_reap call per batch: the queue starts with qd random
 * reads, and each call hands in as many new ones as completions came back
 * (waiting for at least one), so the depth stays at qd. Per-I/O latency is
 * taken from queueing to harvest. Prints one line of key=value pairs:
 * iops, mean and p50/p99 latency in microseconds, CPU microseconds per
 * I/O (user + system, getrusage), and reap calls per I/O. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ringline.h"

#define HIST_US 20000 /* 1 µs buckets up to 20 ms, then one overflow */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void die(const char *what, int err)
{
    fprintf(stderr, "storage_bench: %s: %s\n", what,
            err < 0 ? ringline_strerror(err) : strerror(err));
    exit(1);
}

static uint64_t rng;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *nvme = NULL, *ctrl = NULL;
    unsigned qd = 32, bs = 4096, nsid = 1;
    double seconds = 10, warmup = 1;
    int cpu = -1, fixed = 0, defer = 1;
    uint64_t span_max = 0;
    rng = 0x9E3779B97F4A7C15ull;
    static const struct option opts[] = {
        {"file", 1, 0, 'f'}, {"nvme", 1, 0, 'n'}, {"ctrl", 1, 0, 'c'},
        {"nsid", 1, 0, 'i'}, {"qd", 1, 0, 'q'},   {"bs", 1, 0, 'b'},
        {"seconds", 1, 0, 's'}, {"warmup", 1, 0, 'w'}, {"cpu", 1, 0, 'p'},
        {"fixed", 0, 0, 'x'}, {"seed", 1, 0, 'r'},
        {"no-defer-taskrun", 0, 0, 'd'}, {"span", 1, 0, 'S'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'f': file = optarg; break;
        case 'n': nvme = optarg; break;
        case 'c': ctrl = optarg; break;
        case 'i': nsid = (unsigned)strtoul(optarg, NULL, 0); break;
        case 'q': qd = (unsigned)strtoul(optarg, NULL, 0); break;
        case 'b': bs = (unsigned)strtoul(optarg, NULL, 0); break;
        case 's': seconds = strtod(optarg, NULL); break;
        case 'w': warmup = strtod(optarg, NULL); break;
        case 'p': cpu = atoi(optarg); break;
        case 'x': fixed = 1; break;
        case 'd': defer = 0; break;
        case 'S': span_max = strtoull(optarg, NULL, 0); break;
        case 'r': rng = strtoull(optarg, NULL, 0) | 1; break;
        default:
            fprintf(stderr, "usage: see the comment in bench/storage_bench.c\n");
            return 2;
        }
    }
    if ((!file) == (!nvme) || qd == 0 || qd > 4096 || bs == 0 ||
        (nvme && !ctrl) || (nvme && fixed)) {
        fprintf(stderr, "storage_bench: give --file PATH or --nvme NG --ctrl "
                        "CTRL (--fixed is for files), qd 1..4096\n");
        return 2;
    }
    if (cpu >= 0) {
        int rc = ringline_thread_pin(cpu);
        if (rc < 0)
            die("pin", rc);
    }

    ringline_config_t *cfg = NULL;
    ringline_config_new(&cfg);
    ringline_config_set_sq_entries(cfg, qd < 64 ? 64 : qd);
    if (nvme)
        ringline_config_set_big(cfg, 1);
    if (!defer)
        ringline_config_set_defer_taskrun(cfg, 0);
    ringline_ring_t *ring = NULL;
    int rc = ringline_ring_new(cfg, &ring);
    ringline_config_free(cfg);
    if (rc < 0)
        die("ring", rc);

    int fd = open(file ? file : nvme, O_RDONLY | (file ? O_DIRECT : 0));
    if (fd < 0)
        die(file ? file : nvme, errno);
    uint64_t span = 0; /* bytes */
    uint32_t lba = 512;
    if (file) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            die("fstat", errno);
        if (S_ISBLK(st.st_mode)) {
            if (ioctl(fd, BLKGETSIZE64, &span) < 0)
                die("BLKGETSIZE64", errno);
        } else {
            span = (uint64_t)st.st_size;
        }
    } else {
        /* LBA size and capacity from Identify Namespace, through ringline */
        int cfd = open(ctrl, O_RDONLY);
        if (cfd < 0)
            die(ctrl, errno);
        void *id = NULL;
        ringline_aligned_alloc(4096, 0, &id);
        ringline_nvme_cmd_t cmd;
        ringline_nvme_cmd_identify(&cmd, nsid, RINGLINE_NVME_CNS_NAMESPACE, id);
        if ((rc = ringline_op_nvme(ring, cfd, &cmd, 1, 1)) < 0)
            die("identify", rc);
        ringline_cqe_t c;
        do
            rc = ringline_ring_reap(ring, &c, 1, 1, -1);
        while (rc == 0 || rc == -EINTR);
        if (rc < 0 || c.res != 0)
            die("identify namespace", rc < 0 ? rc : -EIO);
        uint64_t nsze = 0;
        if ((rc = ringline_nvme_ns_geometry(id, &lba, &nsze, NULL)) < 0)
            die("geometry", rc);
        span = nsze * lba;
        ringline_aligned_free(id);
        close(cfd);
        if (bs % lba)
            die("--bs is not a multiple of the LBA size", -EINVAL);
    }
    /* --span: only the first bytes (what a fill wrote, what fio reads) */
    if (span_max && span > span_max)
        span = span_max;
    uint64_t nblocks = span / bs;
    if (nblocks == 0)
        die("the target is smaller than one block", -EINVAL);

    uint8_t *bufs = NULL;
    if ((rc = ringline_aligned_alloc((size_t)qd * bs, 0, (void **)&bufs)) < 0)
        die("alloc", rc);
    if (fixed) {
        struct iovec iov = {bufs, (size_t)qd * bs};
        if ((rc = ringline_buffers_register(ring, &iov, 1)) < 0)
            die("buffers_register", rc);
    }

    ringline_rw_req_t *reqs = calloc(qd, sizeof *reqs);
    ringline_cqe_t *cqes = calloc(qd, sizeof *cqes);
    uint64_t *started = calloc(qd, sizeof *started);
    unsigned *free_slots = calloc(qd, sizeof *free_slots);
    uint64_t *hist = calloc(HIST_US + 1, sizeof *hist);
    if (!reqs || !cqes || !started || !free_slots || !hist)
        die("alloc", -ENOMEM);
    unsigned nfree = 0;
    for (unsigned s = 0; s < qd; s++)
        free_slots[nfree++] = s;

    uint64_t t0 = now_ns();
    uint64_t measure_from = t0 + (uint64_t)(warmup * 1e9);
    uint64_t end = measure_from + (uint64_t)(seconds * 1e9);
    uint64_t ios = 0, calls = 0, lat_sum = 0, cpu0 = 0, tstart = 0;
    int measuring = 0;
    unsigned inflight = 0;

    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= measure_from) {
            measuring = 1;
            tstart = now;
            cpu0 = cpu_us();
        }
        int stopping = now >= end;
        if (stopping && inflight == 0)
            break;
        unsigned n = 0;
        while (!stopping && nfree) {
            unsigned slot = free_slots[--nfree];
            ringline_rw_req_t *r = &reqs[n++];
            uint64_t blk = next_rand() % nblocks;
            memset(r, 0, sizeof *r);
            r->token = slot;
            r->buf = bufs + (size_t)slot * bs;
            r->len = bs;
            r->fd = fd;
            if (nvme) {
                r->op = RINGLINE_RW_NVME_READ;
                r->nsid = nsid;
                r->offset = blk * (bs / lba);
                r->nlb = bs / lba;
            } else {
                r->op = fixed ? RINGLINE_RW_READ_FIXED : RINGLINE_RW_READ;
                r->offset = blk * bs;
            }
            started[slot] = now;
        }
        unsigned queued = 0;
        int got = ringline_rw_reap(ring, reqs, n, &queued, cqes, qd, 1, -1);
        if (got < 0 && got != -EINTR)
            die("rw_reap", got);
        if (queued != n)
            die("rw_reap queued fewer than asked", -EAGAIN);
        inflight += queued;
        if (got < 0)
            got = 0;
        calls += measuring && !stopping;
        uint64_t done_at = now_ns();
        for (int i = 0; i < got; i++) {
            unsigned slot = (unsigned)cqes[i].token;
            int want = (int)(nvme ? 0 : bs);
            if (cqes[i].res != want) {
                fprintf(stderr, "storage_bench: read -> %d (%s)\n",
                        cqes[i].res, cqes[i].res < 0
                                         ? ringline_err_name(cqes[i].res)
                                         : "short read or NVMe status");
                return 1;
            }
            if (measuring && started[slot] >= tstart && done_at <= end) {
                uint64_t us = (done_at - started[slot]) / 1000;
                lat_sum += done_at - started[slot];
                hist[us < HIST_US ? us : HIST_US]++;
                ios++;
            }
            free_slots[nfree++] = slot;
            inflight--;
        }
    }
    uint64_t cpu1 = cpu_us();
    double window = (double)(end - tstart) / 1e9;
    /* percentiles from the histogram */
    double p50 = 0, p99 = 0;
    uint64_t acc = 0;
    for (unsigned i = 0; i <= HIST_US; i++) {
        acc += hist[i];
        if (!p50 && acc * 2 >= ios)
            p50 = i + 0.5;
        if (acc * 100 >= ios * 99) {
            p99 = i + 0.5;
            break;
        }
    }
    printf("storage_bench: mode=%s qd=%u bs=%u seconds=%.2f ios=%llu "
           "iops=%.0f lat_mean_us=%.2f lat_p50_us=%.1f lat_p99_us=%.1f "
           "cpu_us_per_io=%.3f cpu_pct=%.1f calls_per_io=%.3f\n",
           nvme ? "nvme-passthrough" : fixed ? "file-fixed" : "file", qd, bs,
           window, (unsigned long long)ios, (double)ios / window,
           ios ? (double)lat_sum / (double)ios / 1000.0 : 0.0, p50, p99,
           ios ? (double)(cpu1 - cpu0) / (double)ios : 0.0,
           (double)(cpu1 - cpu0) / 1e4 / window,
           ios ? (double)calls / (double)ios : 0.0);
    ringline_ring_destroy(ring);
    close(fd);
    return 0;
}
