/* Storage batches (ringline_rw_batch / ringline_rw_reap) on an O_DIRECT file
 * in the build tree: 8 MiB written in 4 KiB blocks at queue depth 32 with
 * one call per batch, fsync through a batch, then 4096 random reads at QD
 * 32 (plain, fixed buffers, a fixed-file slot), every completion checked
 * (token seen once, result, every byte against the pattern of its file
 * offset), the depth checked to really reach 32 and never exceed it.
 * Argument checking: one bad request refuses the whole batch and queues
 * nothing. NVMe kinds: refused on a ring without big SQEs, completed with an
 * errno against a non-NVMe file on a big one. ringline_nvme_ns_geometry on
 * hand-made Identify Namespace pages. */
#include <sys/stat.h>

#include "rl_test.h"

#define MS 1000000ll
#define BS 4096u
#define FILE_SIZE (8u << 20)
#define NBLOCKS (FILE_SIZE / BS)
#define QD 32u
#define NREADS 4096u
#define SEED 0x5708A6Eull

static char path[64];
static void cleanup_file(void)
{
    if (path[0])
        unlink(path);
}

static void check_block(const uint8_t *buf, uint64_t off, const char *what)
{
    for (unsigned i = 0; i < BS; i++)
        if (buf[i] != rl_pattern(SEED, off + i))
            FAIL("%s: byte %u of block at %llu is 0x%02x, want 0x%02x", what,
                 i, (unsigned long long)off, buf[i],
                 rl_pattern(SEED, off + i));
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Drive `total` requests at depth QD through ringline_rw_reap: one call
 * per batch, the batch being exactly as many new requests as completions
 * came back. Slot s owns bufs + s * BS; tokens are seq << 8 | slot. */
enum kind { K_WRITE, K_READ, K_READ_FIXED };
struct qd_run {
    ringline_ring_t *ring;
    int fd;
    enum kind kind;
    uint8_t *bufs;
    unsigned total;
    /* per slot: what is in flight there */
    uint64_t slot_off[QD];
    uint64_t slot_seq[QD];
    unsigned max_depth;
    unsigned calls;
};

static void fill_req(struct qd_run *q, ringline_rw_req_t *r, unsigned slot,
                     uint64_t seq)
{
    uint64_t off = q->kind == K_WRITE ? seq * BS
                                      : (next_rand() % NBLOCKS) * BS;
    uint8_t *buf = q->bufs + (size_t)slot * BS;
    memset(r, 0, sizeof *r);
    r->token = seq << 8 | slot;
    r->offset = off;
    r->buf = buf;
    r->len = BS;
    r->fd = q->fd;
    switch (q->kind) {
    case K_WRITE:
        r->op = RINGLINE_RW_WRITE;
        for (unsigned i = 0; i < BS; i++)
            buf[i] = rl_pattern(SEED, off + i);
        break;
    case K_READ:
        r->op = RINGLINE_RW_READ;
        memset(buf, 0xEE, BS);
        break;
    case K_READ_FIXED:
        r->op = RINGLINE_RW_READ_FIXED;
        r->buf_index = 0; /* all slots live in registered buffer 0 */
        memset(buf, 0xEE, BS);
        break;
    }
    q->slot_off[slot] = off;
    q->slot_seq[slot] = seq;
}

static void run_qd(struct qd_run *q, const char *what)
{
    ringline_rw_req_t reqs[QD];
    ringline_cqe_t cqes[QD];
    unsigned free_slots[QD], nfree = 0;
    uint8_t *seen = calloc(q->total, 1);
    CHECK(seen);
    for (unsigned s = 0; s < QD; s++)
        free_slots[nfree++] = QD - 1 - s;
    uint64_t next_seq = 0, done = 0;
    uint64_t deadline = rl_now_ns() + 30000ull * MS;
    unsigned inflight = 0;
    q->max_depth = 0;
    q->calls = 0;

    while (done < q->total) {
        unsigned n = 0;
        while (nfree && next_seq < q->total) {
            unsigned slot = free_slots[--nfree];
            fill_req(q, &reqs[n++], slot, next_seq++);
        }
        unsigned queued = 12345;
        int got = ringline_rw_reap(q->ring, reqs, n, &queued, cqes, QD, 1,
                                   1000 * MS);
        q->calls++;
        if (got == -EINTR)
            FAIL("%s: EINTR with %u queued", what, queued);
        if (got < 0)
            FAIL("%s: rw_reap -> %d (%s)", what, got, ringline_err_name(got));
        if (queued != n)
            FAIL("%s: queued %u of %u", what, queued, n);
        inflight += n;
        if (inflight > q->max_depth)
            q->max_depth = inflight;
        if (inflight > QD)
            FAIL("%s: %u in flight, more than QD %u", what, inflight, QD);
        if ((unsigned)ringline_ring_inflight(q->ring) + (unsigned)got !=
            inflight)
            FAIL("%s: ring says %d in flight + %d harvested, test says %u",
                 what, ringline_ring_inflight(q->ring), got, inflight);
        for (int i = 0; i < got; i++) {
            const ringline_cqe_t *c = &cqes[i];
            unsigned slot = (unsigned)(c->token & 0xFF);
            uint64_t seq = c->token >> 8;
            if (slot >= QD || seq >= q->total || q->slot_seq[slot] != seq)
                FAIL("%s: completion with unknown token 0x%llx", what,
                     (unsigned long long)c->token);
            if (seen[seq]++)
                FAIL("%s: token 0x%llx completed twice", what,
                     (unsigned long long)c->token);
            if (c->res != (int)BS)
                FAIL("%s: request %llu at %llu -> %d (%s)", what,
                     (unsigned long long)seq,
                     (unsigned long long)q->slot_off[slot], c->res,
                     ringline_err_name(c->res));
            if (c->flags & RINGLINE_CQE_F_MORE)
                FAIL("%s: F_MORE on a file completion", what);
            if (q->kind != K_WRITE)
                check_block(q->bufs + (size_t)slot * BS, q->slot_off[slot],
                            what);
            free_slots[nfree++] = slot;
            inflight--;
            done++;
        }
        if (rl_now_ns() > (uint64_t)deadline)
            FAIL("%s: timed out with %llu of %u done", what,
                 (unsigned long long)done, q->total);
    }
    CHECK(inflight == 0);
    CHECK(ringline_ring_inflight(q->ring) == 0);
    for (unsigned i = 0; i < q->total; i++)
        if (!seen[i])
            FAIL("%s: request %u never completed", what, i);
    free(seen);
    if (q->max_depth != QD)
        FAIL("%s: depth reached %u, want %u", what, q->max_depth, QD);
    printf("%s: %u requests, depth %u, %u calls\n", what, q->total,
           q->max_depth, q->calls);
}

static int wait_one(ringline_ring_t *ring, uint64_t token)
{
    return rl_wait_token(ring, token, 10000).res;
}

static void bad_batches(ringline_ring_t *ring, int fd, uint8_t *buf)
{
    ringline_rw_req_t good = {.token = 1, .offset = 0, .buf = buf, .len = BS,
                              .fd = fd, .op = RINGLINE_RW_READ};
    ringline_rw_req_t r[2];
    ringline_cqe_t c[4];
    unsigned queued = 99;

    /* n = 0: nothing to do */
    CHECK(ringline_rw_batch(ring, NULL, 0) == 0);
    EXPECT_ERR(ringline_rw_batch(ring, NULL, 1), -EINVAL);
    EXPECT_ERR(ringline_rw_batch(NULL, &good, 1), -EBADF);

    /* one bad request after a good one: the whole batch is refused */
    struct {
        const char *what;
        ringline_rw_req_t req;
        int want;
    } bad[] = {
        {"op 0", {.token = 2, .buf = buf, .len = BS, .fd = fd, .op = 0},
         -EINVAL},
        {"op 99", {.token = 2, .buf = buf, .len = BS, .fd = fd, .op = 99},
         -EINVAL},
        {"reserved token",
         {.token = RINGLINE_TOKEN_RESERVED | 5, .buf = buf, .len = BS,
          .fd = fd, .op = RINGLINE_RW_READ},
         -EINVAL},
        {"msg token",
         {.token = RINGLINE_TOKEN_MSG_TAG | 5, .buf = buf, .len = BS,
          .fd = fd, .op = RINGLINE_RW_READ},
         -EINVAL},
        {"fd -1", {.token = 2, .buf = buf, .len = BS, .fd = -1,
                   .op = RINGLINE_RW_READ},
         -EBADF},
        {"NULL buf", {.token = 2, .buf = NULL, .len = BS, .fd = fd,
                      .op = RINGLINE_RW_WRITE},
         -EINVAL},
        {"huge len", {.token = 2, .buf = buf, .len = 0xFFFFFFFFu, .fd = fd,
                      .op = RINGLINE_RW_READ},
         -EINVAL},
        {"flags on read", {.token = 2, .buf = buf, .len = BS, .fd = fd,
                           .op = RINGLINE_RW_READ, .flags = 1},
         -EINVAL},
        {"fsync flags", {.token = 2, .fd = fd, .op = RINGLINE_RW_FSYNC,
                         .flags = 0x80},
         -EINVAL},
        {"fixed, none registered",
         {.token = 2, .buf = buf, .len = BS, .fd = fd,
          .op = RINGLINE_RW_READ_FIXED},
         -EINVAL},
        {"nvme read, small ring",
         {.token = 2, .buf = buf, .len = BS, .nlb = 8, .fd = fd, .nsid = 1,
          .op = RINGLINE_RW_NVME_READ},
         -EINVAL},
        {"nvme flush, small ring",
         {.token = 2, .fd = fd, .nsid = 1, .op = RINGLINE_RW_NVME_FLUSH},
         -EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r[0] = good;
        r[1] = bad[i].req;
        int got = ringline_rw_batch(ring, r, 2);
        if (got != bad[i].want)
            FAIL("batch with %s -> %d (%s), want %d", bad[i].what, got,
                 ringline_err_name(got), bad[i].want);
        queued = 99;
        got = ringline_rw_reap(ring, r, 2, &queued, c, 4, 1, 0);
        if (got != bad[i].want || queued != 0)
            FAIL("rw_reap with %s -> %d, queued %u", bad[i].what, got,
                 queued);
        if (ringline_ring_inflight(ring) != 0 ||
            ringline_ring_sq_pending(ring) != 0)
            FAIL("batch with %s left something queued", bad[i].what);
    }
    EXPECT_ERR(ringline_rw_reap(ring, &good, 1, NULL, NULL, 4, 1, 0),
               -EINVAL);
    CHECK(ringline_ring_inflight(ring) == 0);

    /* wait_nr beyond what is in flight is capped: returns, never hangs */
    uint64_t t0 = rl_now_ns();
    int got = ringline_rw_reap(ring, &good, 1, &queued, c, 4, 100, -1);
    CHECK(queued == 1);
    while (got == 0) /* the cap is in-flight, so this returns promptly */
        got = ringline_rw_reap(ring, NULL, 0, NULL, c, 4, 100, -1);
    CHECK(got == 1 && c[0].token == 1 && c[0].res == (int)BS);
    CHECK(rl_now_ns() - t0 < 5000ull * MS);
    got = ringline_rw_reap(ring, NULL, 0, &queued, c, 4, 100, -1);
    CHECK(got == 0 && queued == 0);

    /* the kernel's errors come back in completions, the batch goes on:
     * a misaligned O_DIRECT read between two good ones */
    unsigned off_align = 0, mem_align = 0;
    OK(ringline_dio_alignment(fd, &mem_align, &off_align));
    ringline_rw_req_t three[3] = {good, good, good};
    three[0].token = 10;
    three[1].token = 11;
    three[2].token = 12;
    three[1].offset = off_align > 1 ? 1 : 0;
    three[2].buf = buf + BS;
    CHECK(ringline_rw_batch(ring, three, 3) == 3);
    int seen = 0;
    while (seen != 7) {
        got = ringline_rw_reap(ring, NULL, 0, NULL, c, 4, 1, 1000 * MS);
        CHECK(got >= 0);
        for (int i = 0; i < got; i++) {
            int bit = (int)(c[i].token - 10);
            CHECK(bit >= 0 && bit < 3 && !(seen & (1 << bit)));
            seen |= 1 << bit;
            if (c[i].token == 11 && off_align > 1)
                EXPECT_ERR(c[i].res, -EINVAL);
            else
                CHECK(c[i].res == (int)BS);
        }
    }
    check_block(buf, 0, "good read around a misaligned one");
    check_block(buf + BS, 0, "good read around a misaligned one");
}

static void geometry(void)
{
    static uint8_t page[4096];
    uint32_t lba = 0;
    uint64_t nsze = 0, ncap = 0;
    memset(page, 0, sizeof page);
    /* NSZE 0x1_0000_0002 at byte 0, NCAP at 8, NLBAF 1 (two formats),
     * FLBAS 1: format 1 = LBADS 12 (4096); format 0 = 512 */
    page[0] = 2;
    page[4] = 1;
    page[8] = 0x34;
    page[9] = 0x12;
    page[25] = 1;
    page[26] = 0x11; /* bit 4 (metadata at end) must not change the index */
    page[128 + 2] = 9;
    page[132 + 2] = 12;
    OK(ringline_nvme_ns_geometry(page, &lba, &nsze, &ncap));
    CHECK(lba == 4096 && nsze == 0x100000002ull && ncap == 0x1234);
    page[26] = 0;
    OK(ringline_nvme_ns_geometry(page, &lba, NULL, NULL));
    CHECK(lba == 512);
    page[26] = 2; /* beyond NLBAF */
    EXPECT_ERR(ringline_nvme_ns_geometry(page, &lba, &nsze, &ncap), -EPROTO);
    page[25] = 2; /* now in range, but LBADS 0: format not available */
    EXPECT_ERR(ringline_nvme_ns_geometry(page, &lba, &nsze, &ncap), -EPROTO);
    EXPECT_ERR(ringline_nvme_ns_geometry(NULL, &lba, &nsze, &ncap), -EINVAL);
}

/* NVMe kinds on a big ring against a regular file: no uring_cmd handler
 * there, so every one completes with a negative errno (never a crash,
 * never a positive NVMe status). */
static void nvme_kinds_on_a_file(int fd, uint8_t *buf)
{
    ringline_config_t *cfg = NULL;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_big(cfg, 1));
    ringline_ring_t *big = NULL;
    int rc = ringline_ring_new(cfg, &big);
    ringline_config_free(cfg);
    if (rc < 0) {
        printf("big-SQE ring refused (%s): NVMe batch kinds skipped\n",
               ringline_err_name(rc));
        return;
    }
    ringline_rw_req_t r[4] = {
        {.token = 1, .offset = 0, .buf = buf, .len = BS, .nlb = 8, .fd = fd,
         .nsid = 1, .op = RINGLINE_RW_NVME_READ},
        {.token = 2, .offset = 8, .buf = buf, .len = BS, .nlb = 8, .fd = fd,
         .nsid = 1, .op = RINGLINE_RW_NVME_WRITE},
        {.token = 3, .fd = fd, .nsid = 1, .op = RINGLINE_RW_NVME_FLUSH},
        {.token = 4, .offset = 16, .nlb = 8, .fd = fd, .nsid = 1,
         .op = RINGLINE_RW_NVME_WRITE_ZEROES},
    };
    /* builder limits hold inside batches too */
    ringline_rw_req_t b = r[0];
    b.nlb = 0;
    EXPECT_ERR(ringline_rw_batch(big, &b, 1), -EINVAL);
    b.nlb = 65537;
    EXPECT_ERR(ringline_rw_batch(big, &b, 1), -EINVAL);
    b = r[1];
    b.buf = NULL;
    EXPECT_ERR(ringline_rw_batch(big, &b, 1), -EINVAL);
    b = r[0];
    b.len = 0;
    EXPECT_ERR(ringline_rw_batch(big, &b, 1), -EINVAL);
    /* more blocks than the buffer can hold at 512 bytes a block */
    b = r[0];
    b.len = 512; /* nlb 8 */
    EXPECT_ERR(ringline_rw_batch(big, &b, 1), -EINVAL);
    b.len = 4097; /* not a whole number of blocks */
    EXPECT_ERR(ringline_rw_batch(big, &b, 1), -EINVAL);
    b.len = 8 * 520; /* extended LBAs (512 + 8 bytes metadata) are fine */
    b.token = 77;
    CHECK(ringline_rw_batch(big, &b, 1) == 1);
    CHECK(rl_wait_token(big, 77, 5000).res < 0);
    CHECK(ringline_ring_inflight(big) == 0);

    ringline_cqe_t c[8];
    unsigned queued = 0, seen = 0;
    int got = ringline_rw_reap(big, r, 4, &queued, c, 8, 4, 5000 * MS);
    CHECK(queued == 4);
    for (;;) {
        CHECK(got >= 0);
        for (int i = 0; i < got; i++) {
            CHECK(c[i].token >= 1 && c[i].token <= 4);
            CHECK(!(seen & (1u << c[i].token)));
            seen |= 1u << c[i].token;
            if (c[i].res >= 0)
                FAIL("NVMe kind %llu on a regular file -> %d, want -errno",
                     (unsigned long long)c[i].token, c[i].res);
        }
        if (seen == 0x1E)
            break;
        got = ringline_rw_reap(big, NULL, 0, NULL, c, 8, 1, 1000 * MS);
    }
    printf("NVMe kinds on a regular file: errno completions (%s)\n",
           ringline_err_name(c[0].res));
    OK(ringline_ring_destroy(big));
}

/* ringline_rw_run: 512 random reads kept at QD 32 by one call, every block
 * checked; per-request errors land in res[] without failing the call; bad
 * arguments and a ring with other work in flight are refused with nothing
 * queued. And the LBA-size-checked NVMe builder. */
static void rw_run(ringline_ring_t *ring, int fd)
{
    enum { N = 512 };
    uint8_t *buf = NULL;
    OK(ringline_aligned_alloc((size_t)N * BS, 0, (void **)&buf));
    ringline_rw_req_t *r = calloc(N, sizeof *r);
    int32_t *res = calloc(N, sizeof *res);
    CHECK(r && res);
    for (unsigned i = 0; i < N; i++) {
        r[i].op = RINGLINE_RW_READ;
        r[i].fd = fd;
        r[i].buf = buf + (size_t)i * BS;
        r[i].len = BS;
        r[i].offset = (next_rand() % NBLOCKS) * BS;
    }
    CHECK(ringline_rw_run(ring, r, N, QD, res) == N);
    CHECK(ringline_ring_inflight(ring) == 0);
    for (unsigned i = 0; i < N; i++) {
        if (res[i] != (int32_t)BS)
            FAIL("rw_run request %u -> %d", i, res[i]);
        CHECK(r[i].token == i);
        check_block(buf + (size_t)i * BS, r[i].offset, "rw_run");
    }
    /* a misaligned O_DIRECT offset fails in its completion only */
    r[5].offset = 1;
    memset(res, 0x55, 8 * sizeof *res);
    CHECK(ringline_rw_run(ring, r, 8, 4, res) == 8);
    CHECK(res[5] == -EINVAL && res[4] == (int32_t)BS && res[6] == (int32_t)BS);
    r[5].offset = 0;
    /* refusals */
    EXPECT_ERR(ringline_rw_run(NULL, r, 1, 1, res), -EBADF);
    EXPECT_ERR(ringline_rw_run(ring, NULL, 1, 1, res), -EINVAL);
    EXPECT_ERR(ringline_rw_run(ring, r, 1, 1, NULL), -EINVAL);
    CHECK(ringline_rw_run(ring, r, 0, 1, res) == 0);
    r[3].op = 77;
    EXPECT_ERR(ringline_rw_run(ring, r, 8, 4, res), -EINVAL);
    CHECK(ringline_ring_inflight(ring) == 0);
    r[3].op = RINGLINE_RW_READ;
    r[2].op = RINGLINE_RW_NVME_READ; /* not on a ring without big SQEs */
    r[2].nlb = 8;
    EXPECT_ERR(ringline_rw_run(ring, r, 8, 4, res), -EINVAL);
    r[2].op = RINGLINE_RW_READ;
    r[2].nlb = 0;
    OK(ringline_op_nop(ring, 4242));
    EXPECT_ERR(ringline_rw_run(ring, r, 1, 1, res), -EBUSY);
    CHECK(wait_one(ring, 4242) == 0);
    CHECK(ringline_rw_run(ring, r, 1, 1, res) == 1 && res[0] == (int32_t)BS);

    /* the checked builder */
    ringline_nvme_cmd_t cmd;
    OK(ringline_nvme_cmd_rw_lba(&cmd, 0, 1, 7, 2, 512, buf, 1024));
    CHECK(cmd.opcode == RINGLINE_NVME_OP_READ && cmd.nsid == 1 &&
          cmd.cdw10 == 7 && cmd.cdw12 == 1 && cmd.data_len == 1024 &&
          cmd.addr == (uint64_t)(uintptr_t)buf);
    OK(ringline_nvme_cmd_rw_lba(&cmd, 1, 2, 1ull << 33, 3, 4096, buf, 3 * 4096));
    CHECK(cmd.opcode == RINGLINE_NVME_OP_WRITE && cmd.cdw11 == 2 &&
          cmd.cdw12 == 2);
    EXPECT_ERR(ringline_nvme_cmd_rw_lba(&cmd, 0, 1, 0, 2, 512, buf, 512),
               -EINVAL); /* the buffer holds one block of two */
    CHECK(cmd.opcode == 0 && cmd.addr == 0); /* refused: left inert */
    EXPECT_ERR(ringline_nvme_cmd_rw_lba(&cmd, 0, 1, 0, 1, 1000, buf, 1000),
               -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_rw_lba(&cmd, 0, 1, 0, 1, 256, buf, 256),
               -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_rw_lba(&cmd, 0, 1, 0, 1, 512, NULL, 512),
               -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_rw_lba(NULL, 0, 1, 0, 1, 512, buf, 512),
               -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_rw_lba(&cmd, 0, 1, 0, 0, 512, buf, 0),
               -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_rw_lba(&cmd, 0, 1, 0, 65537, 512, buf,
                                        65537u * 512),
               -EINVAL);
    free(r);
    free(res);
    OK(ringline_aligned_free(buf));
    printf("rw_run: %d reads at QD %u checked; refusals ok\n", N, QD);
}

int main(void)
{
    alarm(90);
    snprintf(path, sizeof path, "rl_storage_batch_%d.dat", (int)getpid());
    atexit(cleanup_file);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC,
                  0600);
    if (fd < 0 && errno == EINVAL) {
        unlink(path);
        SKIP("the filesystem of the working directory lacks O_DIRECT");
    }
    if (fd < 0)
        FAIL("open %s: %s", path, strerror(errno));
    unsigned mem_align = 0, off_align = 0;
    OK(ringline_dio_alignment(fd, &mem_align, &off_align));
    if (off_align > BS || mem_align > BS)
        SKIP("O_DIRECT alignment %u/%u is above 4 KiB", mem_align, off_align);

    geometry();

    uint8_t *bufs = NULL;
    OK(ringline_aligned_alloc((size_t)QD * BS, 0, (void **)&bufs));
    ringline_ring_t *ring = NULL;
    OK(ringline_ring_new(NULL, &ring));

    struct qd_run q = {.ring = ring, .fd = fd, .bufs = bufs};

    /* ---- write the whole file at QD 32 ---- */
    q.kind = K_WRITE;
    q.total = NBLOCKS;
    run_qd(&q, "write QD32");

    /* fsync and fdatasync, in one batch */
    ringline_rw_req_t sync[2] = {
        {.token = 900, .fd = fd, .op = RINGLINE_RW_FSYNC},
        {.token = 901, .fd = fd, .op = RINGLINE_RW_FSYNC,
         .flags = RINGLINE_FSYNC_DATASYNC},
    };
    CHECK(ringline_rw_batch(ring, sync, 2) == 2);
    ringline_cqe_t c[4];
    int got = 0;
    while (got < 2) {
        int r = ringline_ring_reap(ring, c + got, 2 - (unsigned)got, 1,
                                   1000 * MS);
        CHECK(r >= 0);
        got += r;
    }
    for (int i = 0; i < 2; i++)
        if (c[i].res != 0)
            FAIL("fsync %llu -> %d (%s)", (unsigned long long)c[i].token,
                 c[i].res, ringline_err_name(c[i].res));
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == FILE_SIZE);

    /* refused batches, and errors in completions, on the written file */
    bad_batches(ring, fd, bufs);

    /* ---- the whole-batch runner ---- */
    rw_run(ring, fd);

    /* ---- random reads at QD 32 ---- */
    q.kind = K_READ;
    q.total = NREADS;
    run_qd(&q, "random read QD32");

    /* ---- the same into registered buffers ---- */
    struct iovec iov = {bufs, (size_t)QD * BS};
    OK(ringline_buffers_register(ring, &iov, 1));
    q.kind = K_READ_FIXED;
    run_qd(&q, "random read_fixed QD32");

    /* ---- and through a fixed-file slot ---- */
    OK(ringline_files_register(ring, 4, 0));
    int slot = OK(ringline_files_install(ring, fd));
    q.fd = RINGLINE_FIXED(slot);
    q.kind = K_READ;
    run_qd(&q, "random read fixed-file QD32");

    /* a write through a batch, read back through a batch */
    ringline_rw_req_t w = {.token = 950, .offset = 3 * BS, .buf = bufs,
                           .len = BS, .fd = q.fd, .op = RINGLINE_RW_WRITE};
    for (unsigned i = 0; i < BS; i++)
        bufs[i] = (uint8_t)(i * 7 + 3);
    CHECK(ringline_rw_batch(ring, &w, 1) == 1);
    CHECK(wait_one(ring, 950) == (int)BS);
    memset(bufs, 0, BS);
    w.token = 951;
    w.op = RINGLINE_RW_READ_FIXED;
    CHECK(ringline_rw_batch(ring, &w, 1) == 1);
    CHECK(wait_one(ring, 951) == (int)BS);
    for (unsigned i = 0; i < BS; i++)
        CHECK(bufs[i] == (uint8_t)(i * 7 + 3));

    OK(ringline_files_remove(ring, (unsigned)slot));
    OK(ringline_ring_destroy(ring));

    nvme_kinds_on_a_file(fd, bufs);

    close(fd);
    OK(ringline_aligned_free(bufs));
    printf("storage_batch OK\n");
    return 0;
}
