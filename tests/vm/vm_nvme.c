/* vm_nvme — ringline against the real Linux NVMe driver, run inside a VM
 * (tests/vm/vm.sh) whose emulated controller has namespaces of different
 * LBA sizes. Statically linked: the initramfs has no libc.
 *
 *   vm_nvme CTRL NSID:LBA_SIZE:MIB [...]
 *     CTRL   the controller char device (/dev/nvme0): admin commands
 *     each namespace is reached as /dev/ng0n<NSID> (passthrough) and
 *     /dev/nvme0n<NSID> (block device, O_DIRECT); LBA_SIZE and MIB are
 *     what the VM was given, checked against what Identify reports.
 *
 * Per namespace: Identify Namespace (LBA size, capacity) cross-checked
 * with the block layer; a pattern written through passthrough at queue
 * depth 32 with ringline_rw_reap (every completion checked, the depth
 * checked to reach 32 and never pass it); flush; read back through
 * passthrough in random order at QD 32 and through O_DIRECT reads on the
 * block device with ringline ops; O_DIRECT writes read back through
 * passthrough; write-zeroes; a 128 KiB command; a fixed-file slot; and
 * the error paths: LBA out of range (a positive NVMe status in res), a
 * bad nsid, nlb disagreeing with data_len, an unknown opcode, reserved
 * flags, admin on the I/O device; then a good command still works.
 * Prints "vm_nvme: PASS" at the end; any failure prints FAIL and exits 1. */
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "rl_test.h"

#define MS 1000000ll
#define QD 32u
#define CHUNK 4096u
#define REGION (4u << 20) /* bytes exercised at the start of each namespace */
#define NCHUNKS (REGION / CHUNK)
#define MAX_NS 8

#define SC(res) ((unsigned)(res) & 0xFFu)
#define SCT(res) (((unsigned)(res) >> 8) & 0x7u)

struct ns {
    uint32_t nsid;
    uint32_t want_lba;
    uint64_t want_mib;
    uint32_t lba;
    uint64_t nsze;
    int ng;   /* /dev/ng0nN */
    int bdev; /* /dev/nvme0nN, O_DIRECT */
    char ngpath[32], bpath[32];
};

static ringline_ring_t *ring;
static int ctrl_fd = -1;
static uint64_t next_token = 1;

/* ---- patterns: one 64-bit word per 8 bytes of the namespace ---- */
static uint64_t pat_word(uint32_t nsid, uint32_t gen, uint64_t byte_off)
{
    uint64_t x = (byte_off >> 3) * 0x9E3779B97F4A7C15ull ^
                 ((uint64_t)nsid << 48) ^ ((uint64_t)gen << 40) ^ 0x5A5Aull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x;
}

static void pat_fill(void *buf, size_t len, uint32_t nsid, uint32_t gen,
                     uint64_t off)
{
    uint64_t *w = buf;
    for (size_t i = 0; i < len / 8; i++)
        w[i] = pat_word(nsid, gen, off + i * 8);
}

static void pat_check(const void *buf, size_t len, uint32_t nsid,
                      uint32_t gen, uint64_t off, const char *what)
{
    const uint64_t *w = buf;
    for (size_t i = 0; i < len / 8; i++) {
        uint64_t want = gen ? pat_word(nsid, gen, off + i * 8) : 0;
        if (w[i] != want)
            FAIL("ns%u %s: word at byte %llu is %016llx, want %016llx "
                 "(generation %u)",
                 nsid, what, (unsigned long long)(off + i * 8),
                 (unsigned long long)w[i], (unsigned long long)want, gen);
    }
}

/* ---- one command, waited for ---- */
static ringline_cqe_t wait_for(uint64_t token)
{
    uint64_t deadline = rl_now_ns() + 20000ull * MS;
    for (;;) {
        ringline_cqe_t c;
        int n = ringline_ring_reap(ring, &c, 1, 1, 100 * MS);
        if (n == -EINTR)
            continue;
        if (n < 0)
            FAIL("reap -> %d (%s)", n, ringline_err_name(n));
        if (n == 1) {
            if (c.token != token)
                FAIL("completion for token %llu while waiting for %llu",
                     (unsigned long long)c.token,
                     (unsigned long long)token);
            return c;
        }
        if (rl_now_ns() > deadline)
            FAIL("no completion for token %llu in 20 s",
                 (unsigned long long)token);
    }
}

static ringline_cqe_t nvme_sync(int fd, const ringline_nvme_cmd_t *cmd,
                                int admin)
{
    uint64_t t = next_token++;
    OK(ringline_op_nvme(ring, fd, cmd, admin, t));
    return wait_for(t);
}

static int file_sync(int fd, void *buf, size_t len, uint64_t off, int write)
{
    uint64_t t = next_token++;
    if (write)
        OK(ringline_op_write(ring, fd, buf, len, off, t));
    else
        OK(ringline_op_read(ring, fd, buf, len, off, t));
    return wait_for(t).res;
}

static void expect_ok(ringline_cqe_t c, const char *what)
{
    if (c.res < 0)
        FAIL("%s -> %d (%s)", what, c.res, ringline_err_name(c.res));
    if (c.res > 0)
        FAIL("%s -> NVMe status 0x%x (SCT %u SC 0x%02x)", what,
             (unsigned)c.res, SCT(c.res), SC(c.res));
}

/* ---- a queue kept 32 deep with one ringline_rw_reap call per batch ---- */
struct qd_job {
    const char *what;
    unsigned total;
    /* fill request seq into r (slot's buffer given); check a completion */
    void (*fill)(struct qd_job *, ringline_rw_req_t *, uint8_t *buf,
                 unsigned seq);
    void (*check)(struct qd_job *, const ringline_cqe_t *, uint8_t *buf,
                  unsigned seq);
    struct ns *ns;
    uint8_t *bufs; /* QD slots of slot_bytes */
    size_t slot_bytes;
    const unsigned *order; /* chunk index per seq */
    uint32_t gen;
    unsigned max_depth, calls;
};

static void qd_run(struct qd_job *j)
{
    ringline_rw_req_t reqs[QD];
    ringline_cqe_t cqes[QD];
    unsigned free_slots[QD], nfree = 0, inflight = 0, next = 0, done = 0;
    unsigned slot_seq[QD];
    uint8_t *seen = calloc(j->total, 1);
    CHECK(seen);
    for (unsigned s = 0; s < QD; s++)
        free_slots[nfree++] = QD - 1 - s;
    uint64_t deadline = rl_now_ns() + 60000ull * MS;
    j->max_depth = j->calls = 0;
    while (done < j->total) {
        unsigned n = 0;
        while (nfree && next < j->total) {
            unsigned slot = free_slots[--nfree];
            memset(&reqs[n], 0, sizeof reqs[n]);
            j->fill(j, &reqs[n], j->bufs + slot * j->slot_bytes, next);
            reqs[n].token = (uint64_t)next << 8 | slot;
            slot_seq[slot] = next;
            n++;
            next++;
        }
        unsigned queued = 0;
        int got = ringline_rw_reap(ring, reqs, n, &queued, cqes, QD, 1,
                                   1000 * MS);
        j->calls++;
        if (got < 0 && !(got == -EINTR && queued == n))
            FAIL("ns%u %s: rw_reap -> %d (%s), queued %u of %u",
                 j->ns->nsid, j->what, got, ringline_err_name(got), queued,
                 n);
        if (got < 0)
            got = 0;
        if (queued != n)
            FAIL("ns%u %s: queued %u of %u", j->ns->nsid, j->what, queued, n);
        inflight += n;
        if (inflight > j->max_depth)
            j->max_depth = inflight;
        if (inflight > QD)
            FAIL("%s: %u in flight", j->what, inflight);
        for (int i = 0; i < got; i++) {
            unsigned slot = (unsigned)(cqes[i].token & 0xFF);
            unsigned seq = (unsigned)(cqes[i].token >> 8);
            if (slot >= QD || seq >= j->total || slot_seq[slot] != seq)
                FAIL("ns%u %s: unknown token 0x%llx", j->ns->nsid, j->what,
                     (unsigned long long)cqes[i].token);
            if (seen[seq]++)
                FAIL("ns%u %s: token 0x%llx completed twice", j->ns->nsid,
                     j->what, (unsigned long long)cqes[i].token);
            j->check(j, &cqes[i], j->bufs + slot * j->slot_bytes, seq);
            free_slots[nfree++] = slot;
            inflight--;
            done++;
        }
        if (rl_now_ns() > deadline)
            FAIL("ns%u %s: %u of %u done after 60 s", j->ns->nsid, j->what,
                 done, j->total);
    }
    for (unsigned i = 0; i < j->total; i++)
        CHECK(seen[i] == 1);
    free(seen);
    CHECK(ringline_ring_inflight(ring) == 0);
    unsigned want = j->total < QD ? j->total : QD;
    if (j->max_depth != want)
        FAIL("ns%u %s: depth reached %u, want %u", j->ns->nsid, j->what,
             j->max_depth, want);
    printf("vm_nvme: ns%u %s: %u requests, QD %u, %u rw_reap calls\n",
           j->ns->nsid, j->what, j->total, j->max_depth, j->calls);
}

/* passthrough write / read of one chunk (order[seq]) */
static void fill_nvme(struct qd_job *j, ringline_rw_req_t *r, uint8_t *buf,
                      unsigned seq, uint16_t op, int fd)
{
    unsigned chunk = j->order ? j->order[seq] : seq;
    uint64_t off = (uint64_t)chunk * CHUNK;
    r->op = op;
    r->fd = fd;
    r->nsid = j->ns->nsid;
    r->offset = off / j->ns->lba;
    r->nlb = CHUNK / j->ns->lba;
    r->buf = buf;
    r->len = CHUNK;
    if (op == RINGLINE_RW_NVME_WRITE)
        pat_fill(buf, CHUNK, j->ns->nsid, j->gen, off);
    else
        memset(buf, 0xEE, CHUNK);
}
static void fill_nvme_write(struct qd_job *j, ringline_rw_req_t *r,
                            uint8_t *buf, unsigned seq)
{
    fill_nvme(j, r, buf, seq, RINGLINE_RW_NVME_WRITE, j->ns->ng);
}
static void fill_nvme_read(struct qd_job *j, ringline_rw_req_t *r,
                           uint8_t *buf, unsigned seq)
{
    fill_nvme(j, r, buf, seq, RINGLINE_RW_NVME_READ, j->ns->ng);
}
static int fixed_ng = -1;
static void fill_nvme_read_fixed(struct qd_job *j, ringline_rw_req_t *r,
                                 uint8_t *buf, unsigned seq)
{
    fill_nvme(j, r, buf, seq, RINGLINE_RW_NVME_READ, fixed_ng);
}
static void check_nvme(struct qd_job *j, const ringline_cqe_t *c,
                       uint8_t *buf, unsigned seq)
{
    unsigned chunk = j->order ? j->order[seq] : seq;
    uint64_t off = (uint64_t)chunk * CHUNK;
    if (c->res != 0)
        FAIL("ns%u %s: chunk %u -> res %d%s%s", j->ns->nsid, j->what, chunk,
             c->res, c->res < 0 ? " " : " (NVMe status)",
             c->res < 0 ? ringline_err_name(c->res) : "");
    if (j->fill != fill_nvme_write)
        pat_check(buf, CHUNK, j->ns->nsid, j->gen, off, j->what);
}

/* O_DIRECT on the block device, through a batch */
static void fill_dio_read(struct qd_job *j, ringline_rw_req_t *r,
                          uint8_t *buf, unsigned seq)
{
    unsigned chunk = j->order ? j->order[seq] : seq;
    r->op = RINGLINE_RW_READ;
    r->fd = j->ns->bdev;
    r->offset = (uint64_t)chunk * CHUNK;
    r->buf = buf;
    r->len = CHUNK;
    memset(buf, 0xEE, CHUNK);
}
static void check_dio(struct qd_job *j, const ringline_cqe_t *c,
                      uint8_t *buf, unsigned seq)
{
    unsigned chunk = j->order ? j->order[seq] : seq;
    if (c->res != (int)CHUNK)
        FAIL("ns%u %s: chunk %u -> %d (%s)", j->ns->nsid, j->what, chunk,
             c->res, ringline_err_name(c->res));
    pat_check(buf, CHUNK, j->ns->nsid, j->gen, (uint64_t)chunk * CHUNK,
              j->what);
}

static void shuffle(unsigned *a, unsigned n, uint64_t seed)
{
    for (unsigned i = 0; i < n; i++)
        a[i] = i;
    for (unsigned i = n - 1; i > 0; i--) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        unsigned k = (unsigned)(seed % (i + 1));
        unsigned t = a[i];
        a[i] = a[k];
        a[k] = t;
    }
}

/* ---- controller ---- */
static unsigned ctrl_mdts, ctrl_oncs, ctrl_nn;
static void identify_controller(unsigned want_ns)
{
    uint8_t *id = NULL;
    OK(ringline_aligned_alloc(4096, 0, (void **)&id));
    ringline_nvme_cmd_t cmd;
    OK(ringline_nvme_cmd_identify(&cmd, 0, RINGLINE_NVME_CNS_CONTROLLER, id));
    ringline_cqe_t c = nvme_sync(ctrl_fd, &cmd, 1);
    expect_ok(c, "Identify Controller (admin, /dev/nvme0)");
    char sn[21] = {0}, mn[41] = {0};
    memcpy(sn, id + 4, 20);
    memcpy(mn, id + 24, 40);
    for (int i = 19; i >= 0 && sn[i] == ' '; i--)
        sn[i] = 0;
    for (int i = 39; i >= 0 && mn[i] == ' '; i--)
        mn[i] = 0;
    unsigned vid = id[0] | id[1] << 8;
    ctrl_mdts = id[77];
    ctrl_oncs = id[520] | id[521] << 8;
    ctrl_nn = id[516] | id[517] << 8 | id[518] << 16 | (unsigned)id[519] << 24;
    printf("vm_nvme: controller: vid 0x%04x model '%s' serial '%s' mdts %u "
           "oncs 0x%x nn %u\n",
           vid, mn, sn, ctrl_mdts, ctrl_oncs, ctrl_nn);
    if (strcmp(sn, "ringline-vm") != 0)
        FAIL("Identify Controller serial '%s', want 'ringline-vm' (the "
             "serial QEMU was given)", sn);
    if (ctrl_nn < want_ns)
        FAIL("controller reports %u namespaces, want >= %u", ctrl_nn,
             want_ns);

    /* Identify of a namespace that does not exist: the controller answers
     * with an NVMe status (Invalid Namespace or Format, SC 0x0B), which
     * must arrive as a positive res. */
    OK(ringline_nvme_cmd_identify(&cmd, 0x7777, RINGLINE_NVME_CNS_NAMESPACE,
                                  id));
    c = nvme_sync(ctrl_fd, &cmd, 1);
    printf("vm_nvme: Identify Namespace nsid 0x7777 -> res 0x%x (SCT %u SC "
           "0x%02x)\n",
           (unsigned)c.res, SCT(c.res), SC(c.res));
    if (c.res <= 0 || SCT(c.res) != 0 || SC(c.res) != 0x0B)
        FAIL("Identify of a missing namespace -> res %d, want a positive "
             "NVMe status with SC 0x0B", c.res);
    OK(ringline_aligned_free(id));
}

/* ---- one namespace ---- */
static void test_namespace(struct ns *ns)
{
    printf("vm_nvme: ---- namespace %u (%s, %s) ----\n", ns->nsid,
           ns->ngpath, ns->bpath);
    uint8_t *id = NULL;
    OK(ringline_aligned_alloc(4096, 0, (void **)&id));
    ringline_nvme_cmd_t cmd;
    OK(ringline_nvme_cmd_identify(&cmd, ns->nsid, RINGLINE_NVME_CNS_NAMESPACE,
                                  id));
    expect_ok(nvme_sync(ctrl_fd, &cmd, 1), "Identify Namespace");
    uint64_t ncap = 0;
    OK(ringline_nvme_ns_geometry(id, &ns->lba, &ns->nsze, &ncap));
    printf("vm_nvme: ns%u: LBA size %u, %llu LBAs (%llu MiB), capacity %llu "
           "LBAs\n",
           ns->nsid, ns->lba, (unsigned long long)ns->nsze,
           (unsigned long long)(ns->nsze * ns->lba >> 20),
           (unsigned long long)ncap);
    if (ns->lba != ns->want_lba)
        FAIL("ns%u: LBA size %u, the VM was given %u", ns->nsid, ns->lba,
             ns->want_lba);
    if (ns->nsze * ns->lba != ns->want_mib << 20)
        FAIL("ns%u: %llu bytes, the VM was given %llu MiB", ns->nsid,
             (unsigned long long)(ns->nsze * ns->lba),
             (unsigned long long)ns->want_mib);
    /* the block layer agrees */
    int ssz = 0;
    uint64_t bytes = 0;
    CHECK(ioctl(ns->bdev, BLKSSZGET, &ssz) == 0);
    CHECK(ioctl(ns->bdev, BLKGETSIZE64, &bytes) == 0);
    if ((uint32_t)ssz != ns->lba || bytes != ns->nsze * ns->lba)
        FAIL("ns%u: block layer says %d-byte sectors, %llu bytes", ns->nsid,
             ssz, (unsigned long long)bytes);
    unsigned mem_align = 0, off_align = 0;
    OK(ringline_dio_alignment(ns->bdev, &mem_align, &off_align));
    printf("vm_nvme: ns%u: O_DIRECT alignment memory %u, offset %u\n",
           ns->nsid, mem_align, off_align);
    CHECK(off_align == ns->lba);

    uint8_t *bufs = NULL;
    OK(ringline_aligned_alloc((size_t)QD * CHUNK, 0, (void **)&bufs));
    unsigned *order = malloc(NCHUNKS * sizeof *order);
    CHECK(order);

    /* ---- 1. pattern written through passthrough, QD 32 ---- */
    struct qd_job j = {.ns = ns, .bufs = bufs, .slot_bytes = CHUNK,
                       .gen = 1};
    j.what = "passthrough write";
    j.total = NCHUNKS;
    j.fill = fill_nvme_write;
    j.check = check_nvme;
    qd_run(&j);

    /* ---- 2. flush: through a batch and through the builder ---- */
    ringline_rw_req_t fl = {.token = next_token++, .fd = ns->ng,
                            .nsid = ns->nsid, .op = RINGLINE_RW_NVME_FLUSH};
    CHECK(ringline_rw_batch(ring, &fl, 1) == 1);
    expect_ok(wait_for(fl.token), "flush (batch)");
    OK(ringline_nvme_cmd_flush(&cmd, ns->nsid));
    expect_ok(nvme_sync(ns->ng, &cmd, 0), "flush");

    /* ---- 3. read back through passthrough, random order, QD 32 ---- */
    shuffle(order, NCHUNKS, 0xC0FFEEull + ns->nsid);
    j.what = "passthrough read (random order)";
    j.order = order;
    j.fill = fill_nvme_read;
    qd_run(&j);

    /* ---- 4. read back through O_DIRECT on the block device ---- */
    shuffle(order, NCHUNKS, 0xBEEFull + ns->nsid);
    j.what = "O_DIRECT read of the block device";
    j.fill = fill_dio_read;
    j.check = check_dio;
    qd_run(&j);
    /* and one plain op covering 128 KiB */
    uint8_t *big = NULL;
    OK(ringline_aligned_alloc(128 * 1024, 0, (void **)&big));
    CHECK(file_sync(ns->bdev, big, 128 * 1024, 256 * 1024, 0) == 128 * 1024);
    pat_check(big, 128 * 1024, ns->nsid, 1, 256 * 1024, "O_DIRECT 128 KiB");
    /* misaligned for this device: -EINVAL in the completion */
    if (ns->lba > 512) {
        EXPECT_ERR(file_sync(ns->bdev, big, 512, 0, 0), -EINVAL);
        EXPECT_ERR(file_sync(ns->bdev, big, ns->lba, 512, 0), -EINVAL);
    }
    EXPECT_ERR(file_sync(ns->bdev, big, ns->lba, ns->lba / 2, 0), -EINVAL);

    /* ---- 5. O_DIRECT writes, read back through passthrough ---- */
    const uint64_t half = REGION / 2;
    for (uint64_t off = half; off < REGION; off += 128 * 1024) {
        pat_fill(big, 128 * 1024, ns->nsid, 2, off);
        CHECK(file_sync(ns->bdev, big, 128 * 1024, off, 1) == 128 * 1024);
    }
    uint64_t t = next_token++;
    OK(ringline_op_fsync(ring, ns->bdev, 0, t));
    CHECK(wait_for(t).res == 0);
    for (uint64_t off = half; off < REGION; off += 64 * 1024) {
        memset(big, 0xEE, 64 * 1024);
        OK(ringline_nvme_cmd_read(&cmd, ns->nsid, off / ns->lba,
                                  64 * 1024 / ns->lba, big, 64 * 1024));
        expect_ok(nvme_sync(ns->ng, &cmd, 0), "passthrough read of O_DIRECT data");
        pat_check(big, 64 * 1024, ns->nsid, 2, off,
                  "passthrough read of O_DIRECT writes");
    }
    printf("vm_nvme: ns%u: O_DIRECT writes read back through passthrough\n",
           ns->nsid);

    /* ---- 6. one 128 KiB passthrough command each way ---- */
    pat_fill(big, 128 * 1024, ns->nsid, 3, 0);
    OK(ringline_nvme_cmd_write(&cmd, ns->nsid, 0, 128 * 1024 / ns->lba, big,
                               128 * 1024));
    expect_ok(nvme_sync(ns->ng, &cmd, 0), "128 KiB passthrough write");
    memset(big, 0, 128 * 1024);
    OK(ringline_nvme_cmd_read(&cmd, ns->nsid, 0, 128 * 1024 / ns->lba, big,
                              128 * 1024));
    expect_ok(nvme_sync(ns->ng, &cmd, 0), "128 KiB passthrough read");
    pat_check(big, 128 * 1024, ns->nsid, 3, 0, "128 KiB passthrough read");
    CHECK(file_sync(ns->bdev, big, 128 * 1024, 0, 0) == 128 * 1024);
    pat_check(big, 128 * 1024, ns->nsid, 3, 0, "O_DIRECT read of 128 KiB");
    printf("vm_nvme: ns%u: 128 KiB passthrough write/read (%u LBAs)\n",
           ns->nsid, 128 * 1024 / ns->lba);

    /* ---- 7. write-zeroes: chunks 40..49 (generation 1 data) ---- */
    if (ctrl_oncs & (1u << 3)) {
        OK(ringline_nvme_cmd_write_zeroes(&cmd, ns->nsid,
                                          40 * CHUNK / ns->lba,
                                          10 * CHUNK / ns->lba));
        expect_ok(nvme_sync(ns->ng, &cmd, 0), "write zeroes");
        for (unsigned ch = 39; ch <= 50; ch++) {
            unsigned gen = ch >= 40 && ch <= 49 ? 0 : 1;
            OK(ringline_nvme_cmd_read(&cmd, ns->nsid, ch * CHUNK / ns->lba,
                                      CHUNK / ns->lba, bufs, CHUNK));
            expect_ok(nvme_sync(ns->ng, &cmd, 0), "read after write zeroes");
            pat_check(bufs, CHUNK, ns->nsid, gen, (uint64_t)ch * CHUNK,
                      "passthrough read after write zeroes");
            CHECK(file_sync(ns->bdev, bufs, CHUNK, (uint64_t)ch * CHUNK, 0) ==
                  (int)CHUNK);
            pat_check(bufs, CHUNK, ns->nsid, gen, (uint64_t)ch * CHUNK,
                      "O_DIRECT read after write zeroes");
        }
        /* the same through a batch: chunk 60 */
        ringline_rw_req_t wz = {.token = next_token++,
                                .offset = 60 * CHUNK / ns->lba,
                                .nlb = CHUNK / ns->lba, .fd = ns->ng,
                                .nsid = ns->nsid,
                                .op = RINGLINE_RW_NVME_WRITE_ZEROES};
        CHECK(ringline_rw_batch(ring, &wz, 1) == 1);
        expect_ok(wait_for(wz.token), "write zeroes (batch)");
        CHECK(file_sync(ns->bdev, bufs, CHUNK, 60 * CHUNK, 0) == (int)CHUNK);
        pat_check(bufs, CHUNK, ns->nsid, 0, 60 * CHUNK,
                  "O_DIRECT read after batch write zeroes");
        printf("vm_nvme: ns%u: write zeroes ok (neighbours intact)\n",
               ns->nsid);
    } else {
        printf("vm_nvme: ns%u: controller lacks Write Zeroes (ONCS 0x%x): "
               "skipped\n", ns->nsid, ctrl_oncs);
    }

    /* ---- 8. error paths ---- */
    /* LBA out of range: starting at the end, and crossing it */
    OK(ringline_nvme_cmd_read(&cmd, ns->nsid, ns->nsze, 1, bufs, ns->lba));
    ringline_cqe_t c = nvme_sync(ns->ng, &cmd, 0);
    printf("vm_nvme: ns%u: read at LBA %llu (= size) -> res 0x%x (SCT %u SC "
           "0x%02x)\n",
           ns->nsid, (unsigned long long)ns->nsze, (unsigned)c.res,
           SCT(c.res), SC(c.res));
    if (c.res <= 0 || SCT(c.res) != 0 || SC(c.res) != 0x80)
        FAIL("ns%u: out-of-range read -> res %d, want NVMe status LBA Out "
             "of Range (SC 0x80)", ns->nsid, c.res);
    OK(ringline_nvme_cmd_write(&cmd, ns->nsid, ns->nsze - 1, 2, bufs,
                               2 * ns->lba));
    c = nvme_sync(ns->ng, &cmd, 0);
    if (c.res <= 0 || SC(c.res) != 0x80)
        FAIL("ns%u: write crossing the end -> res %d, want SC 0x80",
             ns->nsid, c.res);
    /* the same through a batch, next to a good request */
    ringline_rw_req_t two[2] = {
        {.token = next_token++, .offset = ns->nsze + 100, .buf = bufs,
         .len = ns->lba, .nlb = 1, .fd = ns->ng, .nsid = ns->nsid,
         .op = RINGLINE_RW_NVME_READ},
        {.token = next_token++, .offset = 0, .buf = bufs + CHUNK,
         .len = CHUNK, .nlb = CHUNK / ns->lba, .fd = ns->ng,
         .nsid = ns->nsid, .op = RINGLINE_RW_NVME_READ},
    };
    CHECK(ringline_rw_batch(ring, two, 2) == 2);
    {
        ringline_cqe_t cc[2];
        int got = 0;
        while (got < 2) {
            int r = ringline_ring_reap(ring, cc + got, 2 - (unsigned)got, 1,
                                       1000 * MS);
            CHECK(r >= 0);
            got += r;
        }
        for (int i = 0; i < 2; i++) {
            if (cc[i].token == two[0].token)
                CHECK(cc[i].res > 0 && SC(cc[i].res) == 0x80);
            else
                CHECK(cc[i].token == two[1].token && cc[i].res == 0);
        }
        pat_check(bufs + CHUNK, CHUNK, ns->nsid, 3, 0,
                  "good read next to an out-of-range one");
    }

    /* a bad nsid: the driver checks it against the device's namespace */
    OK(ringline_nvme_cmd_read(&cmd, 0x7777, 0, 1, bufs, ns->lba));
    c = nvme_sync(ns->ng, &cmd, 0);
    printf("vm_nvme: ns%u: read with nsid 0x7777 -> res %d (%s)\n", ns->nsid,
           c.res, c.res < 0 ? ringline_err_name(c.res) : "NVMe status");
    if (c.res == 0)
        FAIL("ns%u: a read with nsid 0x7777 succeeded", ns->nsid);
    if (c.res > 0 && SC(c.res) != 0x0B)
        FAIL("ns%u: bad nsid -> NVMe status 0x%x, want SC 0x0B", ns->nsid,
             (unsigned)c.res);

    /* nlb and data_len disagree. More blocks than the buffer holds: the
     * transfer must not run past what the buffer's pages allow, and must
     * end in a well-defined result (0, an NVMe status or -errno). */
    memset(big, 0xA5, 128 * 1024);
    OK(ringline_nvme_cmd_read(&cmd, ns->nsid, 0, 2 * CHUNK / ns->lba, big,
                              CHUNK));
    c = nvme_sync(ns->ng, &cmd, 0);
    unsigned beyond = 0;
    for (unsigned i = CHUNK; i < 128 * 1024; i++)
        beyond += big[i] != 0xA5;
    printf("vm_nvme: ns%u: read nlb %u into data_len %u -> res %d (%s); "
           "%u bytes changed past data_len\n",
           ns->nsid, 2 * CHUNK / ns->lba, CHUNK, c.res,
           c.res < 0 ? ringline_err_name(c.res)
                     : c.res ? "NVMe status" : "success",
           beyond);
    if (c.res == 0)
        pat_check(big, CHUNK, ns->nsid, 3, 0, "nlb > data_len read");
    /* A batch refuses what it can tell is wrong: 16 blocks of 512 bytes
     * cannot come from a 4096-byte buffer. */
    ringline_rw_req_t mis = {.token = next_token++, .buf = big,
                             .len = CHUNK, .nlb = 2 * CHUNK / 512,
                             .fd = ns->ng, .nsid = ns->nsid,
                             .op = RINGLINE_RW_NVME_READ};
    EXPECT_ERR(ringline_rw_batch(ring, &mis, 1), -EINVAL);
    /* Fewer blocks than the buffer: only nlb blocks arrive. */
    memset(big, 0xA5, 2 * CHUNK);
    OK(ringline_nvme_cmd_read(&cmd, ns->nsid, 0, 1, big, 2 * CHUNK));
    c = nvme_sync(ns->ng, &cmd, 0);
    printf("vm_nvme: ns%u: read nlb 1 into data_len %u -> res %d\n",
           ns->nsid, 2 * CHUNK, c.res);
    if (c.res == 0) {
        pat_check(big, ns->lba, ns->nsid, 3, 0, "nlb < data_len read");
        for (unsigned i = ns->lba; i < 2 * CHUNK; i++)
            if (big[i] != 0xA5)
                FAIL("ns%u: nlb 1 read wrote byte %u past the block",
                     ns->nsid, i);
    } else if (c.res < 0 && c.res != -EINVAL) {
        FAIL("ns%u: nlb < data_len -> %d (%s)", ns->nsid, c.res,
             ringline_err_name(c.res));
    }

    /* an opcode the controller does not implement */
    memset(&cmd, 0, sizeof cmd);
    cmd.opcode = 0x7C;
    cmd.nsid = ns->nsid;
    c = nvme_sync(ns->ng, &cmd, 0);
    printf("vm_nvme: ns%u: I/O opcode 0x7c -> res 0x%x (SCT %u SC 0x%02x)\n",
           ns->nsid, (unsigned)c.res, SCT(c.res), SC(c.res));
    if (c.res <= 0 || SCT(c.res) != 0 || SC(c.res) != 0x01)
        FAIL("ns%u: unknown opcode -> res %d, want Invalid Command Opcode",
             ns->nsid, c.res);

    /* reserved command flags: refused by the driver */
    OK(ringline_nvme_cmd_read(&cmd, ns->nsid, 0, 1, bufs, ns->lba));
    cmd.flags = 0x40;
    c = nvme_sync(ns->ng, &cmd, 0);
    if (c.res >= 0)
        FAIL("ns%u: command flags 0x40 -> res %d, want -errno", ns->nsid,
             c.res);

    /* admin on the I/O (namespace) device */
    OK(ringline_nvme_cmd_identify(&cmd, ns->nsid, RINGLINE_NVME_CNS_NAMESPACE,
                                  id));
    c = nvme_sync(ns->ng, &cmd, 1);
    printf("vm_nvme: ns%u: admin command on %s -> res %d (%s)\n", ns->nsid,
           ns->ngpath, c.res, c.res < 0 ? ringline_err_name(c.res) : "ok");
    if (c.res > 0)
        FAIL("ns%u: admin on the namespace device -> NVMe status %d",
             ns->nsid, c.res);

    /* the controller still works */
    OK(ringline_nvme_cmd_read(&cmd, ns->nsid, 0, CHUNK / ns->lba, bufs,
                              CHUNK));
    expect_ok(nvme_sync(ns->ng, &cmd, 0), "read after the error paths");
    pat_check(bufs, CHUNK, ns->nsid, 3, 0, "read after the error paths");
    printf("vm_nvme: ns%u: error paths ok\n", ns->nsid);

    /* ---- 9. random reads at QD 32 through a fixed-file slot ---- */
    /* chunks 0..31 hold generation 3 now, 40..49 and 60 zeroes; read the
     * generation-1 middle */
    int slot = OK(ringline_files_install(ring, ns->ng));
    fixed_ng = RINGLINE_FIXED(slot);
    unsigned lo = 64, hi = (unsigned)(half / CHUNK); /* generation 1 */
    unsigned n = hi - lo;
    for (unsigned i = 0; i < n; i++)
        order[i] = lo + i;
    uint64_t seed = 0x1234567ull + ns->nsid;
    for (unsigned i = n - 1; i > 0; i--) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        unsigned k = (unsigned)(seed % (i + 1)), tmp = order[i];
        order[i] = order[k];
        order[k] = tmp;
    }
    j.what = "passthrough read via fixed file";
    j.total = n;
    j.order = order;
    j.gen = 1;
    j.fill = fill_nvme_read_fixed;
    j.check = check_nvme;
    qd_run(&j);
    OK(ringline_files_remove(ring, (unsigned)slot));

    OK(ringline_aligned_free(big));
    OK(ringline_aligned_free(bufs));
    OK(ringline_aligned_free(id));
    free(order);
    printf("vm_nvme: ns%u: ok\n", ns->nsid);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(240);
    if (argc < 3) {
        fprintf(stderr, "usage: vm_nvme /dev/nvme0 NSID:LBA:MIB...\n");
        return 2;
    }
    struct ns nss[MAX_NS];
    int nns = 0;
    for (int i = 2; i < argc && nns < MAX_NS; i++) {
        struct ns *ns = &nss[nns++];
        memset(ns, 0, sizeof *ns);
        unsigned long long mib = 0;
        if (sscanf(argv[i], "%u:%u:%llu", &ns->nsid, &ns->want_lba, &mib) != 3)
            FAIL("bad namespace spec '%s'", argv[i]);
        ns->want_mib = mib;
        snprintf(ns->ngpath, sizeof ns->ngpath, "/dev/ng0n%u", ns->nsid);
        snprintf(ns->bpath, sizeof ns->bpath, "/dev/nvme0n%u", ns->nsid);
    }

    ringline_config_t *cfg = NULL;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_big(cfg, 1));
    OK(ringline_ring_new(cfg, &ring));
    OK(ringline_config_free(cfg));
    uint64_t feat = 0;
    OK(ringline_ring_features(ring, &feat));
    printf("vm_nvme: ringline %s, ring features 0x%llx (uring_cmd %s, big "
           "%s)\n",
           ringline_version_string(), (unsigned long long)feat,
           feat & RINGLINE_FEAT_URING_CMD ? "yes" : "no",
           feat & RINGLINE_FEAT_BIG_SQE_CQE ? "yes" : "no");
    CHECK(feat & RINGLINE_FEAT_BIG_SQE_CQE);
    OK(ringline_files_register(ring, 8, 0));

    ctrl_fd = open(argv[1], O_RDWR | O_CLOEXEC);
    if (ctrl_fd < 0)
        FAIL("open %s: %s", argv[1], strerror(errno));
    for (int i = 0; i < nns; i++) {
        nss[i].ng = open(nss[i].ngpath, O_RDWR | O_CLOEXEC);
        if (nss[i].ng < 0)
            FAIL("open %s: %s", nss[i].ngpath, strerror(errno));
        nss[i].bdev = open(nss[i].bpath, O_RDWR | O_DIRECT | O_CLOEXEC);
        if (nss[i].bdev < 0)
            FAIL("open %s O_DIRECT: %s", nss[i].bpath, strerror(errno));
    }

    identify_controller((unsigned)nns);
    for (int i = 0; i < nns; i++)
        test_namespace(&nss[i]);

    /* the NVMe kinds need a big-SQE ring: refused on a plain one */
    ringline_ring_t *small = NULL;
    OK(ringline_ring_new(NULL, &small));
    ringline_rw_req_t r = {.token = 1, .buf = &r, .len = 512, .nlb = 1,
                           .fd = nss[0].ng, .nsid = nss[0].nsid,
                           .op = RINGLINE_RW_NVME_READ};
    EXPECT_ERR(ringline_rw_batch(small, &r, 1), -EINVAL);
    ringline_nvme_cmd_t cmd;
    OK(ringline_nvme_cmd_flush(&cmd, 1));
    EXPECT_ERR(ringline_op_nvme(small, nss[0].ng, &cmd, 0, 1), -EINVAL);
    OK(ringline_ring_destroy(small));

    for (int i = 0; i < nns; i++) {
        close(nss[i].ng);
        close(nss[i].bdev);
    }
    close(ctrl_fd);
    OK(ringline_ring_destroy(ring));
    printf("vm_nvme: PASS (%d namespaces)\n", nns);
    return 0;
}
