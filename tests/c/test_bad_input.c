/* Bad input everywhere: every public function is called with a NULL ring, a
 * destroyed ring, a handle of the wrong kind, NULL pointers, absurd sizes,
 * reserved tokens, negative fds and unknown buffer groups. Every call must
 * return (>= 0 or -errno), never crash or hang. Where the header documents
 * the error, that exact error is required; elsewhere any clean error is
 * accepted and printed. */
#include <limits.h>
#include <poll.h>
#include <sys/uio.h>

#include "rl_test.h"

/* Huge allocations must come back as errors, not ASan aborts (no effect
 * without ASan). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

#define MS 1000000ull
#define RESERVED_TOK (RINGLINE_TOKEN_RESERVED | 5)

static int g_rfd, g_wfd;  /* a pipe */
static int g_sv[2];       /* a unix socketpair */
static int g_lfd;         /* a listening TCP socket */
static struct sockaddr_in g_addr; /* its address */

/* ------------------------------------------------------------------------ */

static int collect(ringline_ring_t *ring, ringline_cqe_t *out, int n,
                   int timeout_ms)
{
    uint64_t deadline = rl_now_ns() + (uint64_t)timeout_ms * MS;
    int got = 0;
    while (got < n) {
        uint64_t now = rl_now_ns();
        if (now >= deadline)
            break;
        int64_t left = (int64_t)(deadline - now);
        if (left > 50 * (int64_t)MS)
            left = 50 * (int64_t)MS;
        int r = ringline_ring_reap(ring, out + got, (unsigned)(n - got), 1,
                                   left);
        if (r == -EINTR)
            continue;
        if (r < 0)
            FAIL("reap -> %d (%s)", r, ringline_err_name(r));
        got += r;
    }
    return got;
}

/* The completion of token, which must be the only one outstanding. */
static int result_of(ringline_ring_t *ring, uint64_t token, const char *what)
{
    ringline_cqe_t c;
    if (collect(ring, &c, 1, 3000) != 1)
        FAIL("%s: no completion within 3 s", what);
    if (c.token != token)
        FAIL("%s: completion for token %llu, want %llu", what,
             (unsigned long long)c.token, (unsigned long long)token);
    if (c.flags & RINGLINE_CQE_F_MORE)
        FAIL("%s: unexpected F_MORE", what);
    return c.res;
}

/* An operation that must fail, either when queued or in its completion.
 * If allowed is non-zero, the error must be one of allowed/allowed2. */
static int must_fail(ringline_ring_t *ring, int queued, uint64_t token,
                     const char *what, int allowed, int allowed2)
{
    int err = queued;
    const char *where = "when queued";
    if (queued == 0) {
        err = result_of(ring, token, what);
        where = "in its completion";
    }
    if (err >= 0)
        FAIL("%s succeeded (%d)", what, err);
    printf("  %s -> %d (%s) %s\n", what, err, ringline_err_name(err), where);
    if (allowed && err != allowed && err != allowed2)
        FAIL("%s: %d (%s), want %d (%s) or %d (%s)", what, err,
             ringline_err_name(err), allowed, ringline_err_name(allowed),
             allowed2, ringline_err_name(allowed2));
    if (ringline_ring_inflight(ring) != 0)
        FAIL("%s: inflight %d after its failure", what,
             ringline_ring_inflight(ring));
    return err;
}
#define MUST_FAIL(ring, expr, token, a1, a2)                                   \
    must_fail(ring, (expr), token, #expr, a1, a2)

/* An operation that must succeed with exactly want. */
#define MUST_COMPLETE(ring, expr, token, want)                                 \
    do {                                                                       \
        OK(expr);                                                              \
        int rl__res = result_of(ring, token, #expr);                           \
        if (rl__res != (want))                                                 \
            FAIL("%s completed %d (%s), want %d", #expr, rl__res,              \
                 ringline_err_name(rl__res), (int)(want));                     \
    } while (0)

/* A call whose error the header does not fix: must return, must be < 0. */
#define ANY_ERR(expr)                                                          \
    do {                                                                       \
        int rl__r = (expr);                                                    \
        printf("  %s -> %d (%s)\n", #expr, rl__r, ringline_err_name(rl__r));   \
        if (rl__r >= 0)                                                        \
            FAIL("%s succeeded (%d), want an error", #expr, rl__r);            \
    } while (0)

static void quiet(ringline_ring_t *ring)
{
    if (ringline_ring_inflight(ring) != 0 || ringline_ring_sq_pending(ring))
        FAIL("ring not idle: inflight %d, sq pending %d",
             ringline_ring_inflight(ring), ringline_ring_sq_pending(ring));
}

/* ------------------------------------------------------------------------ */
/* Every function taking a ring, with otherwise valid arguments.            */
/* ------------------------------------------------------------------------ */

static void all_ring_calls(ringline_ring_t *r, ringline_ring_t *live,
                           const char *label)
{
    printf("all ring calls on %s ring\n", label);
    const int want = -EBADF;
    char buf[16] = {0};
    ringline_cqe_t cq[4];
    uint64_t f = 0;
    void *addr = NULL;
    uint16_t bids[1] = {0};
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ringline_nvme_cmd_t cmd;
    OK(ringline_nvme_cmd_flush(&cmd, 1));
    int s = g_sv[0];

    EXPECT_ERR(ringline_ring_fd(r), want);
    EXPECT_ERR(ringline_ring_sq_entries(r), want);
    EXPECT_ERR(ringline_ring_cq_entries(r), want);
    EXPECT_ERR(ringline_ring_inflight(r), want);
    EXPECT_ERR(ringline_ring_sq_pending(r), want);
    EXPECT_ERR(ringline_ring_features(r, &f), want);
    EXPECT_ERR(ringline_ring_opcode_supported(r, 0), want);
    EXPECT_ERR(ringline_ring_submit(r), want);
    EXPECT_ERR(ringline_ring_submit_and_wait(r, 1, 0), want);
    EXPECT_ERR(ringline_ring_submit_and_wait(r, 1, 1000000), want);
    EXPECT_ERR(ringline_ring_harvest(r, cq, 4), want);
    EXPECT_ERR(ringline_ring_reap(r, cq, 4, 0, 0), want);
    EXPECT_ERR(ringline_ring_reap(r, cq, 4, 1, 1000000), want);
    EXPECT_ERR(ringline_ring_wake(r), want);
    EXPECT_ERR(ringline_op_set_flags(r, RINGLINE_SQE_IO_LINK), want);
    EXPECT_ERR(ringline_op_nop(r, 1), want);
    EXPECT_ERR(ringline_op_accept(r, g_lfd, NULL, NULL, 0, 0,
                                  RINGLINE_NO_SLOT, 1),
               want);
    EXPECT_ERR(ringline_op_connect(r, s, (struct sockaddr *)&g_addr,
                                   sizeof g_addr, 1),
               want);
    EXPECT_ERR(ringline_op_recv(r, s, buf, sizeof buf, 0, 1), want);
    EXPECT_ERR(ringline_op_recv_select(r, s, 1, 0, 0, 1), want);
    EXPECT_ERR(ringline_op_recv_multishot(r, s, 1, 0, 1), want);
    EXPECT_ERR(ringline_op_send(r, s, buf, 1, 0, 1), want);
    EXPECT_ERR(ringline_op_send_zc(r, s, buf, 1, 0, 1), want);
    EXPECT_ERR(ringline_op_sendmsg(r, s, &msg, 0, 1), want);
    EXPECT_ERR(ringline_op_sendmsg_zc(r, s, &msg, 0, 1), want);
    EXPECT_ERR(ringline_op_recvmsg(r, s, &msg, 0, 1), want);
    EXPECT_ERR(ringline_op_close(r, g_rfd, 1), want);
    EXPECT_ERR(ringline_op_shutdown(r, s, SHUT_RDWR, 1), want);
    EXPECT_ERR(ringline_op_timeout(r, 1000, 0, 0, 1), want);
    EXPECT_ERR(ringline_op_timeout_remove(r, 1, 2), want);
    EXPECT_ERR(ringline_op_timeout_update(r, 1, 1000, 0, 2), want);
    EXPECT_ERR(ringline_op_link_timeout(r, 1000, 0, 1), want);
    EXPECT_ERR(ringline_op_cancel(r, 1, 0, 2), want);
    EXPECT_ERR(ringline_op_cancel_fd(r, s, 0, 2), want);
    EXPECT_ERR(ringline_op_read(r, g_rfd, buf, 1, 0, 1), want);
    EXPECT_ERR(ringline_op_write(r, g_wfd, buf, 1, 0, 1), want);
    EXPECT_ERR(ringline_op_read_fixed(r, g_rfd, buf, 1, 0, 0, 1), want);
    EXPECT_ERR(ringline_op_write_fixed(r, g_wfd, buf, 1, 0, 0, 1), want);
    EXPECT_ERR(ringline_op_readv(r, g_rfd, &iov, 1, 0, 1), want);
    EXPECT_ERR(ringline_op_writev(r, g_wfd, &iov, 1, 0, 1), want);
    EXPECT_ERR(ringline_op_fsync(r, g_wfd, 0, 1), want);
    EXPECT_ERR(ringline_op_openat(r, AT_FDCWD, ".", O_RDONLY, 0,
                                  RINGLINE_NO_SLOT, 1),
               want);
    EXPECT_ERR(ringline_op_poll(r, g_rfd, POLLIN, 0, 1), want);
    EXPECT_ERR(ringline_op_poll_remove(r, 1, 2), want);
    EXPECT_ERR(ringline_op_msg_ring(r, live, 0, 1, 1), want);
    /* A bad target from a good ring. */
    EXPECT_ERR(ringline_op_msg_ring(live, r, 0, 1, 1), want);
    EXPECT_ERR(ringline_op_nvme(r, g_rfd, &cmd, 0, 1), want);
    EXPECT_ERR(ringline_chain_begin(r, 2, 0), want);
    EXPECT_ERR(ringline_chain_end(r), want);
    EXPECT_ERR(ringline_bufring_create(r, 1, 4, 64), want);
    EXPECT_ERR(ringline_bufring_addr(r, 1, 0, &addr), want);
    EXPECT_ERR(ringline_bufring_return(r, 1, bids, 1), want);
    EXPECT_ERR(ringline_bufring_available(r, 1), want);
    EXPECT_ERR(ringline_bufring_count(r, 1), want);
    EXPECT_ERR(ringline_bufring_size(r, 1), want);
    EXPECT_ERR(ringline_bufring_destroy(r, 1), want);
    EXPECT_ERR(ringline_files_register(r, 4, 0), want);
    EXPECT_ERR(ringline_files_unregister(r), want);
    EXPECT_ERR(ringline_files_alloc(r), want);
    EXPECT_ERR(ringline_files_release(r, 0), want);
    EXPECT_ERR(ringline_files_install(r, g_rfd), want);
    EXPECT_ERR(ringline_files_update(r, 0, g_rfd), want);
    EXPECT_ERR(ringline_files_remove(r, 0), want);
    EXPECT_ERR(ringline_files_count(r), want);
    EXPECT_ERR(ringline_buffers_register(r, &iov, 1), want);
    EXPECT_ERR(ringline_buffers_unregister(r), want);
    EXPECT_ERR(ringline_ring_destroy(r), want);
    CHECK(addr == NULL);

    /* Nothing leaked onto the live ring, no fd was touched. */
    quiet(live);
    CHECK(fcntl(g_rfd, F_GETFD) >= 0 && fcntl(g_wfd, F_GETFD) >= 0);
    CHECK(fcntl(g_sv[0], F_GETFD) >= 0);
}

/* ------------------------------------------------------------------------ */
/* Configurations                                                           */
/* ------------------------------------------------------------------------ */

static void test_config(ringline_ring_t *live)
{
    printf("config\n");
    ringline_ring_t *ring = NULL;
    EXPECT_ERR(ringline_config_new(NULL), -EINVAL);
    EXPECT_ERR(ringline_ring_new(NULL, NULL), -EINVAL);

    /* NULL config: the header does not fix the code; it must be -EBADF or
     * -EINVAL, the same for every function. */
    int codes[7];
    codes[0] = ringline_config_free(NULL);
    codes[1] = ringline_config_set_sq_entries(NULL, 64);
    codes[2] = ringline_config_set_cq_entries(NULL, 0);
    codes[3] = ringline_config_set_sqpoll(NULL, 1, 10, -1);
    codes[4] = ringline_config_set_big(NULL, 1);
    codes[5] = ringline_config_set_single_issuer(NULL, 0);
    codes[6] = ringline_config_set_defer_taskrun(NULL, 0);
    printf("  config functions on NULL -> %d (%s)\n", codes[0],
           ringline_err_name(codes[0]));
    if (codes[0] != -EBADF && codes[0] != -EINVAL)
        FAIL("config_free(NULL) -> %d", codes[0]);
    for (int i = 1; i < 7; i++)
        if (codes[i] != codes[0])
            FAIL("config function %d on NULL -> %d, config_free -> %d", i,
                 codes[i], codes[0]);

    /* Sizes. */
    ringline_config_t *cfg = NULL;
    OK(ringline_config_new(&cfg));
    CHECK(cfg != NULL);
    EXPECT_ERR(ringline_config_set_sq_entries(cfg, 0), -EINVAL);
    EXPECT_ERR(ringline_config_set_sq_entries(cfg, 1u << 20), -EINVAL);
    EXPECT_ERR(ringline_config_set_sq_entries(cfg, 32769), -EINVAL);
    EXPECT_ERR(ringline_config_set_sq_entries(cfg, UINT_MAX), -EINVAL);
    EXPECT_ERR(ringline_config_set_cq_entries(cfg, 65537), -EINVAL);
    EXPECT_ERR(ringline_config_set_cq_entries(cfg, 1u << 20), -EINVAL);
    EXPECT_ERR(ringline_config_set_cq_entries(cfg, UINT_MAX), -EINVAL);
    /* Refused values leave the config usable with its defaults. */
    OK(ringline_ring_new(cfg, &ring));
    CHECK(ringline_ring_sq_entries(ring) == 256);
    CHECK(ringline_ring_cq_entries(ring) == 1024);
    OK(ringline_ring_destroy(ring));

    /* CQ smaller than SQ: refused by the setter or by ring_new. */
    OK(ringline_config_set_sq_entries(cfg, 256));
    int rc = ringline_config_set_cq_entries(cfg, 128);
    if (rc == 0) {
        ring = NULL;
        EXPECT_ERR(ringline_ring_new(cfg, &ring), -EINVAL);
    } else {
        EXPECT_ERR(rc, -EINVAL);
    }
    OK(ringline_config_free(cfg));
    /* ... also when the SQ size is raised after the CQ size was set. */
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_sq_entries(cfg, 64));
    OK(ringline_config_set_cq_entries(cfg, 128));
    rc = ringline_config_set_sq_entries(cfg, 256);
    if (rc == 0) {
        ring = NULL;
        EXPECT_ERR(ringline_ring_new(cfg, &ring), -EINVAL);
    } else {
        EXPECT_ERR(rc, -EINVAL);
    }
    OK(ringline_config_free(cfg));

    /* The smallest and largest documented sizes work. */
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_sq_entries(cfg, 1));
    OK(ringline_ring_new(cfg, &ring));
    CHECK(ringline_ring_sq_entries(ring) == 1);
    CHECK(ringline_ring_cq_entries(ring) >= 1);
    EXPECT_ERR(ringline_chain_begin(ring, 2, 0), -EINVAL); /* n > SQ */
    MUST_COMPLETE(ring, ringline_op_nop(ring, 7), 7, 0);
    /* Two ops on a one-entry SQ: the second submits the first. */
    OK(ringline_op_nop(ring, 8));
    OK(ringline_op_nop(ring, 9));
    ringline_cqe_t cq2[2];
    CHECK(collect(ring, cq2, 2, 3000) == 2);
    OK(ringline_ring_destroy(ring));
    OK(ringline_config_set_sq_entries(cfg, 32768));
    rc = ringline_ring_new(cfg, &ring);
    printf("  ring_new with sq 32768 (default cq) -> %d (%s)\n", rc,
           ringline_err_name(rc));
    if (rc == -EINVAL)
        FAIL("sq_entries 32768 is documented as valid, ring_new -> -EINVAL");
    if (rc >= 0) {
        CHECK(ringline_ring_sq_entries(ring) == 32768);
        int cqn = ringline_ring_cq_entries(ring);
        printf("  granted cq %d\n", cqn);
        CHECK(cqn >= 32768 && cqn <= 65536 * 2);
        OK(ringline_ring_destroy(ring));
    }
    OK(ringline_config_set_sq_entries(cfg, 64));
    OK(ringline_config_set_cq_entries(cfg, 65536));
    OK(ringline_ring_new(cfg, &ring));
    CHECK(ringline_ring_cq_entries(ring) == 65536);
    OK(ringline_ring_destroy(ring));
    OK(ringline_config_free(cfg));

    /* SQPOLL pinned to a CPU that does not exist. */
    OK(ringline_config_new(&cfg));
    rc = ringline_config_set_sqpoll(cfg, 1, 10, 100000);
    if (rc == 0) {
        ring = NULL;
        rc = ringline_ring_new(cfg, &ring);
        printf("  ring_new sqpoll cpu 100000 -> %d (%s)\n", rc,
               ringline_err_name(rc));
        if (rc >= 0) {
            OK(ringline_ring_destroy(ring));
            FAIL("SQPOLL on cpu 100000 created a ring");
        }
    } else {
        EXPECT_ERR(rc, -EINVAL);
    }
    OK(ringline_config_free(cfg));

    /* Freed config: -EBADF everywhere, including a second free. */
    OK(ringline_config_new(&cfg));
    OK(ringline_config_free(cfg));
    EXPECT_ERR(ringline_config_free(cfg), -EBADF);
    EXPECT_ERR(ringline_config_set_sq_entries(cfg, 64), -EBADF);
    EXPECT_ERR(ringline_config_set_cq_entries(cfg, 0), -EBADF);
    EXPECT_ERR(ringline_config_set_sqpoll(cfg, 1, 10, -1), -EBADF);
    EXPECT_ERR(ringline_config_set_big(cfg, 1), -EBADF);
    EXPECT_ERR(ringline_config_set_single_issuer(cfg, 0), -EBADF);
    EXPECT_ERR(ringline_config_set_defer_taskrun(cfg, 0), -EBADF);
    ring = NULL;
    EXPECT_ERR(ringline_ring_new(cfg, &ring), -EBADF);
    CHECK(ring == NULL);

    /* Handles of the wrong kind. */
    OK(ringline_config_new(&cfg));
    EXPECT_ERR(ringline_ring_fd((ringline_ring_t *)cfg), -EBADF);
    EXPECT_ERR(ringline_op_nop((ringline_ring_t *)cfg, 1), -EBADF);
    EXPECT_ERR(ringline_ring_destroy((ringline_ring_t *)cfg), -EBADF);
    rc = ringline_config_set_big((ringline_config_t *)live, 1);
    if (rc != -EBADF && rc != -EINVAL)
        FAIL("config_set_big(ring handle) -> %d", rc);
    rc = ringline_config_free((ringline_config_t *)live);
    if (rc != -EBADF && rc != -EINVAL)
        FAIL("config_free(ring handle) -> %d", rc);
    ring = NULL;
    rc = ringline_ring_new((ringline_config_t *)live, &ring);
    if (rc != -EBADF && rc != -EINVAL)
        FAIL("ring_new(ring handle as config) -> %d", rc);
    OK(ringline_config_free(cfg));
    /* The live ring survived all of that. */
    MUST_COMPLETE(live, ringline_op_nop(live, 3), 3, 0);
}

/* ------------------------------------------------------------------------ */
/* Functions without a ring                                                 */
/* ------------------------------------------------------------------------ */

static void test_ringless(void)
{
    printf("ring-less functions\n");
    void *p = (void *)1;
    EXPECT_ERR(ringline_aligned_alloc(4096, 4096, NULL), -EINVAL);
    EXPECT_ERR(ringline_aligned_alloc(4096, 3, &p), -EINVAL);
    EXPECT_ERR(ringline_aligned_alloc(4096, 12288, &p), -EINVAL);
    EXPECT_ERR(ringline_aligned_alloc(4096, 2, &p), -EINVAL); /* < ptr */
    ANY_ERR(ringline_aligned_alloc(SIZE_MAX, 4096, &p));
    ANY_ERR(ringline_aligned_alloc(SIZE_MAX - 4096, 0, &p));
    p = NULL;
    int rc = ringline_aligned_alloc(0, 64, &p);
    printf("  aligned_alloc(0) -> %d, %p\n", rc, p);
    if (rc >= 0 && p)
        OK(ringline_aligned_free(p));
    p = NULL;
    OK(ringline_aligned_alloc(100, sizeof(void *), &p));
    CHECK(p && ((uintptr_t)p % sizeof(void *)) == 0);
    OK(ringline_aligned_free(p));
    rc = ringline_aligned_free(NULL);
    printf("  aligned_free(NULL) -> %d (%s)\n", rc, ringline_err_name(rc));

    unsigned ma = 0, oa = 0;
    EXPECT_ERR(ringline_dio_alignment(-1, &ma, &oa), -EBADF);
    EXPECT_ERR(ringline_dio_alignment(INT_MIN, &ma, &oa), -EBADF);
    EXPECT_ERR(ringline_dio_alignment(g_rfd, NULL, &oa), -EINVAL);
    EXPECT_ERR(ringline_dio_alignment(g_rfd, &ma, NULL), -EINVAL);
    /* A pipe does not do O_DIRECT. */
    EXPECT_ERR(ringline_dio_alignment(g_rfd, &ma, &oa), -EINVAL);
    /* A closed descriptor. */
    int tmp = dup(g_rfd);
    close(tmp);
    EXPECT_ERR(ringline_dio_alignment(tmp, &ma, &oa), -EBADF);

    ringline_nvme_cmd_t cmd;
    char buf[4096];
    EXPECT_ERR(ringline_nvme_cmd_read(NULL, 1, 0, 1, buf, 512), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write(NULL, 1, 0, 1, buf, 512), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_flush(NULL, 1), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write_zeroes(NULL, 1, 0, 1), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_identify(NULL, 1, 0, buf), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_read(&cmd, 1, 0, 0, buf, 0), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_read(&cmd, 1, 0, 65537, buf, 512), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write(&cmd, 1, 0, 0, buf, 0), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write(&cmd, 1, 0, 65537, buf, 512), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write_zeroes(&cmd, 1, 0, 0), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write_zeroes(&cmd, 1, 0, 65537), -EINVAL);

    CHECK(ringline_feature_name(0) == NULL);
    CHECK(ringline_feature_name(~0ULL) == NULL);
    CHECK(ringline_strerror(INT_MIN) != NULL);
    CHECK(ringline_err_name(INT_MIN) != NULL);
    CHECK(ringline_version_string() != NULL);
    CHECK(ringline_version() == RINGLINE_VERSION_HEX);
}

/* ------------------------------------------------------------------------ */
/* A live ring given bad arguments                                          */
/* ------------------------------------------------------------------------ */

static void test_null_pointers(ringline_ring_t *r)
{
    printf("NULL pointers\n");
    ringline_cqe_t cq[2];
    char buf[16];
    EXPECT_ERR(ringline_ring_features(r, NULL), -EINVAL);
    EXPECT_ERR(ringline_ring_harvest(r, NULL, 4), -EINVAL);
    EXPECT_ERR(ringline_ring_reap(r, NULL, 4, 0, 0), -EINVAL);
    OK(ringline_bufring_create(r, 9, 4, 64));
    EXPECT_ERR(ringline_bufring_addr(r, 9, 0, NULL), -EINVAL);
    EXPECT_ERR(ringline_bufring_return(r, 9, NULL, 1), -EINVAL);
    OK(ringline_bufring_destroy(r, 9));
    EXPECT_ERR(ringline_buffers_register(r, NULL, 1), -EINVAL);
    struct iovec iov = {buf, sizeof buf};
    EXPECT_ERR(ringline_buffers_register(r, &iov, 0), -EINVAL);
    EXPECT_ERR(ringline_op_msg_ring(r, NULL, 0, 1, 1), -EBADF);
    quiet(r);

    /* NULL data pointers: refused, or -EFAULT from the kernel. */
    MUST_FAIL(r, ringline_op_sendmsg(r, g_sv[0], NULL, 0, 10), 10, -EINVAL,
              -EFAULT);
    MUST_FAIL(r, ringline_op_sendmsg_zc(r, g_sv[0], NULL, 0, 11), 11, 0, 0);
    MUST_FAIL(r, ringline_op_recvmsg(r, g_sv[0], NULL, 0, 12), 12, -EINVAL,
              -EFAULT);
    MUST_FAIL(r, ringline_op_readv(r, g_rfd, NULL, 1, 0, 13), 13, -EINVAL,
              -EFAULT);
    MUST_FAIL(r, ringline_op_writev(r, g_wfd, NULL, 1, 0, 14), 14, -EINVAL,
              -EFAULT);
    MUST_FAIL(r, ringline_op_openat(r, AT_FDCWD, NULL, O_RDONLY, 0,
                                    RINGLINE_NO_SLOT, 15),
              15, -EINVAL, -EFAULT);
    MUST_FAIL(r, ringline_op_connect(r, g_sv[0], NULL, sizeof g_addr, 16), 16,
              -EINVAL, -EFAULT);
    MUST_FAIL(r, ringline_op_write(r, g_wfd, NULL, 16, 0, 17), 17, -EINVAL,
              -EFAULT);
    MUST_FAIL(r, ringline_op_send(r, g_sv[0], NULL, 16, 0, 18), 18, -EINVAL,
              -EFAULT);
    /* A huge iovec count. */
    static struct iovec many[1100];
    for (int i = 0; i < 1100; i++)
        many[i] = (struct iovec){buf, 1};
    MUST_FAIL(r, ringline_op_readv(r, g_rfd, many, 1100, 0, 19), 19, -EINVAL,
              0);
    MUST_FAIL(r, ringline_op_readv(r, g_rfd, many, UINT_MAX, 0, 20), 20,
              -EINVAL, 0);
    (void)cq;
}

static void test_reserved_tokens(ringline_ring_t *r, ringline_ring_t *other,
                                 uint16_t bgid)
{
    printf("reserved tokens\n");
    const int want = -EINVAL;
    char buf[16] = {0};
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    int s = g_sv[0];
    uint64_t toks[] = {RESERVED_TOK, RINGLINE_TOKEN_WAKE,
                       RINGLINE_TOKEN_RESERVED, ~0ULL};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        uint64_t t = toks[i];
        EXPECT_ERR(ringline_op_nop(r, t), want);
        EXPECT_ERR(ringline_op_accept(r, g_lfd, NULL, NULL, 0, 0,
                                      RINGLINE_NO_SLOT, t),
                   want);
        EXPECT_ERR(ringline_op_connect(r, s, (struct sockaddr *)&g_addr,
                                       sizeof g_addr, t),
                   want);
        EXPECT_ERR(ringline_op_recv(r, s, buf, sizeof buf, 0, t), want);
        EXPECT_ERR(ringline_op_recv_select(r, s, bgid, 0, 0, t), want);
        EXPECT_ERR(ringline_op_recv_multishot(r, s, bgid, 0, t), want);
        EXPECT_ERR(ringline_op_send(r, s, buf, 1, 0, t), want);
        EXPECT_ERR(ringline_op_send_zc(r, s, buf, 1, 0, t), want);
        EXPECT_ERR(ringline_op_sendmsg(r, s, &msg, 0, t), want);
        EXPECT_ERR(ringline_op_sendmsg_zc(r, s, &msg, 0, t), want);
        EXPECT_ERR(ringline_op_recvmsg(r, s, &msg, 0, t), want);
        EXPECT_ERR(ringline_op_close(r, g_rfd, t), want);
        EXPECT_ERR(ringline_op_shutdown(r, s, SHUT_RDWR, t), want);
        EXPECT_ERR(ringline_op_timeout(r, 1000, 0, 0, t), want);
        EXPECT_ERR(ringline_op_timeout_remove(r, 1, t), want);
        EXPECT_ERR(ringline_op_timeout_update(r, 1, 1000, 0, t), want);
        EXPECT_ERR(ringline_op_link_timeout(r, 1000, 0, t), want);
        EXPECT_ERR(ringline_op_cancel(r, 1, 0, t), want);
        EXPECT_ERR(ringline_op_cancel_fd(r, s, 0, t), want);
        EXPECT_ERR(ringline_op_read(r, g_rfd, buf, 1, 0, t), want);
        EXPECT_ERR(ringline_op_write(r, g_wfd, buf, 1, 0, t), want);
        EXPECT_ERR(ringline_op_read_fixed(r, g_rfd, buf, 1, 0, 0, t), want);
        EXPECT_ERR(ringline_op_write_fixed(r, g_wfd, buf, 1, 0, 0, t), want);
        EXPECT_ERR(ringline_op_readv(r, g_rfd, &iov, 1, 0, t), want);
        EXPECT_ERR(ringline_op_writev(r, g_wfd, &iov, 1, 0, t), want);
        EXPECT_ERR(ringline_op_fsync(r, g_wfd, 0, t), want);
        EXPECT_ERR(ringline_op_openat(r, AT_FDCWD, ".", O_RDONLY, 0,
                                      RINGLINE_NO_SLOT, t),
                   want);
        EXPECT_ERR(ringline_op_poll(r, g_rfd, POLLIN, 0, t), want);
        EXPECT_ERR(ringline_op_poll_remove(r, 1, t), want);
        EXPECT_ERR(ringline_op_msg_ring(r, other, 0, 1, t), want);
        quiet(r);
    }
    /* A reserved token inside a chain is refused too and does not leave a
     * half-built chain behind: the chain is still open for valid ops. */
    OK(ringline_chain_begin(r, 2, 0));
    EXPECT_ERR(ringline_op_nop(r, RESERVED_TOK), want);
    OK(ringline_op_nop(r, 30));
    OK(ringline_op_nop(r, 31));
    EXPECT_ERR(ringline_chain_end(r), 0);
    ringline_cqe_t cq[2];
    CHECK(collect(r, cq, 2, 3000) == 2);
    CHECK(cq[0].token == 30 && cq[0].res == 0);
    CHECK(cq[1].token == 31 && cq[1].res == 0);
    /* 56-bit tokens are fine. */
    MUST_COMPLETE(r, ringline_op_nop(r, 0x00FFFFFFFFFFFFFFULL),
                  0x00FFFFFFFFFFFFFFULL, 0);
    quiet(r);
}

static void test_negative_fds(ringline_ring_t *r, uint16_t bgid)
{
    printf("negative fds\n");
    char buf[16] = {0};
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    int fds[] = {-1, -2, INT_MIN};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        int fd = fds[i];
        const int want = -EBADF;
        EXPECT_ERR(ringline_op_accept(r, fd, NULL, NULL, 0, 0,
                                      RINGLINE_NO_SLOT, 1),
                   want);
        EXPECT_ERR(ringline_op_connect(r, fd, (struct sockaddr *)&g_addr,
                                       sizeof g_addr, 1),
                   want);
        EXPECT_ERR(ringline_op_recv(r, fd, buf, sizeof buf, 0, 1), want);
        EXPECT_ERR(ringline_op_recv_select(r, fd, bgid, 0, 0, 1), want);
        EXPECT_ERR(ringline_op_recv_multishot(r, fd, bgid, 0, 1), want);
        EXPECT_ERR(ringline_op_send(r, fd, buf, 1, 0, 1), want);
        EXPECT_ERR(ringline_op_send_zc(r, fd, buf, 1, 0, 1), want);
        EXPECT_ERR(ringline_op_sendmsg(r, fd, &msg, 0, 1), want);
        EXPECT_ERR(ringline_op_sendmsg_zc(r, fd, &msg, 0, 1), want);
        EXPECT_ERR(ringline_op_recvmsg(r, fd, &msg, 0, 1), want);
        EXPECT_ERR(ringline_op_close(r, fd, 1), want);
        EXPECT_ERR(ringline_op_shutdown(r, fd, SHUT_RDWR, 1), want);
        EXPECT_ERR(ringline_op_cancel_fd(r, fd, 0, 1), want);
        EXPECT_ERR(ringline_op_read(r, fd, buf, 1, 0, 1), want);
        EXPECT_ERR(ringline_op_write(r, fd, buf, 1, 0, 1), want);
        EXPECT_ERR(ringline_op_read_fixed(r, fd, buf, 1, 0, 0, 1), want);
        EXPECT_ERR(ringline_op_write_fixed(r, fd, buf, 1, 0, 0, 1), want);
        EXPECT_ERR(ringline_op_readv(r, fd, &iov, 1, 0, 1), want);
        EXPECT_ERR(ringline_op_writev(r, fd, &iov, 1, 0, 1), want);
        EXPECT_ERR(ringline_op_fsync(r, fd, 0, 1), want);
        EXPECT_ERR(ringline_op_poll(r, fd, POLLIN, 0, 1), want);
        quiet(r);
    }
    /* openat: AT_FDCWD (-100) is a valid negative dfd; others fail. */
    MUST_FAIL(r, ringline_op_openat(r, -5, "x", O_RDONLY, 0, RINGLINE_NO_SLOT,
                                    2),
              2, -EBADF, 0);
    OK(ringline_op_openat(r, AT_FDCWD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                          0, RINGLINE_NO_SLOT, 3));
    int dfd = result_of(r, 3, "openat(AT_FDCWD, \".\")");
    if (dfd < 0)
        FAIL("openat(AT_FDCWD, \".\") -> %d (%s)", dfd, ringline_err_name(dfd));
    close(dfd);
    /* A descriptor number that is not open: the kernel says -EBADF. */
    MUST_FAIL(r, ringline_op_read(r, 999999, buf, 1, 0, 4), 4, -EBADF, 0);
    /* Fixed slots without a table. */
    MUST_FAIL(r, ringline_op_read(r, RINGLINE_FIXED(0), buf, 1, 0, 5), 5, 0,
              0);
    MUST_FAIL(r, ringline_op_read(r, RINGLINE_FIXED(0x3FFFFFFF), buf, 1, 0, 6),
              6, 0, 0);
    MUST_FAIL(r, ringline_op_close(r, RINGLINE_FIXED(0), 7), 7, 0, 0);
    quiet(r);
}

static void test_bufrings(ringline_ring_t *r)
{
    printf("buffer rings\n");
    EXPECT_ERR(ringline_bufring_create(r, 20, 0, 64), -EINVAL);
    EXPECT_ERR(ringline_bufring_create(r, 20, 3, 64), -EINVAL);
    EXPECT_ERR(ringline_bufring_create(r, 20, 65536, 64), -EINVAL);
    EXPECT_ERR(ringline_bufring_create(r, 20, 1u << 31, 64), -EINVAL);
    EXPECT_ERR(ringline_bufring_create(r, 20, UINT_MAX, 64), -EINVAL);
    EXPECT_ERR(ringline_bufring_create(r, 20, 4, 0), -EINVAL);
    EXPECT_ERR(ringline_bufring_create(r, 20, 4, 1u << 31), -EINVAL);
    EXPECT_ERR(ringline_bufring_create(r, 20, 4, (1u << 30) + 1), -EINVAL);
    EXPECT_ERR(ringline_bufring_create(r, 20, 4, UINT_MAX), -EINVAL);
    /* Nothing was created by the refusals. */
    EXPECT_ERR(ringline_bufring_count(r, 20), -ENOENT);

    /* Edge sizes that are valid. */
    OK(ringline_bufring_create(r, 21, 1, 1));
    OK(ringline_bufring_create(r, 22, 32768, 1));
    CHECK(ringline_bufring_count(r, 22) == 32768);
    CHECK(ringline_bufring_available(r, 22) == 32768);
    OK(ringline_bufring_destroy(r, 22));
    OK(ringline_bufring_destroy(r, 21));
    OK(ringline_bufring_create(r, 65535, 2, 16)); /* largest bgid */
    OK(ringline_bufring_destroy(r, 65535));

    /* Duplicate group. */
    OK(ringline_bufring_create(r, 23, 4, 64));
    EXPECT_ERR(ringline_bufring_create(r, 23, 4, 64), -EEXIST);
    EXPECT_ERR(ringline_bufring_create(r, 23, 8, 128), -EEXIST);
    CHECK(ringline_bufring_count(r, 23) == 4);
    CHECK(ringline_bufring_size(r, 23) == 64);
    CHECK(ringline_bufring_available(r, 23) == 4);
    void *a = NULL;
    CHECK(ringline_bufring_addr(r, 23, 3, &a) == 64 && a != NULL);
    ANY_ERR(ringline_bufring_addr(r, 23, 4, &a));
    ANY_ERR(ringline_bufring_addr(r, 23, 0xFFFF, &a));
    /* Every buffer is with the kernel: returning one is a double return. */
    uint16_t bids[4] = {0, 1, 2, 3};
    EXPECT_ERR(ringline_bufring_return(r, 23, bids, 1), -EINVAL);
    EXPECT_ERR(ringline_bufring_return(r, 23, bids, 4), -EINVAL);
    uint16_t badbid[1] = {4};
    ANY_ERR(ringline_bufring_return(r, 23, badbid, 1));
    uint16_t many[8] = {0};
    ANY_ERR(ringline_bufring_return(r, 23, many, 8)); /* n > count */
    int rc = ringline_bufring_return(r, 23, bids, 0);
    printf("  bufring_return(n=0) -> %d (%s)\n", rc, ringline_err_name(rc));
    CHECK(ringline_bufring_available(r, 23) == 4);

    /* Unknown groups. */
    const uint16_t unk = 77;
    a = NULL;
    EXPECT_ERR(ringline_bufring_addr(r, unk, 0, &a), -ENOENT);
    EXPECT_ERR(ringline_bufring_return(r, unk, bids, 1), -ENOENT);
    EXPECT_ERR(ringline_bufring_available(r, unk), -ENOENT);
    EXPECT_ERR(ringline_bufring_count(r, unk), -ENOENT);
    EXPECT_ERR(ringline_bufring_size(r, unk), -ENOENT);
    EXPECT_ERR(ringline_bufring_destroy(r, unk), -ENOENT);
    CHECK(a == NULL);
    /* Selecting from an unknown group: refused with -ENOENT, or the kernel
     * finds no buffer (-ENOBUFS). Data is waiting so nothing blocks. */
    rl_write_all(g_sv[1], "data", 4);
    MUST_FAIL(r, ringline_op_recv_select(r, g_sv[0], unk, 0, 0, 40), 40,
              -ENOENT, -ENOBUFS);
    MUST_FAIL(r, ringline_op_recv_multishot(r, g_sv[0], unk, 0, 41), 41,
              -ENOENT, -ENOBUFS);
    char drain[8];
    CHECK(read(g_sv[0], drain, sizeof drain) == 4);

    OK(ringline_bufring_destroy(r, 23));
    EXPECT_ERR(ringline_bufring_destroy(r, 23), -ENOENT);
    quiet(r);
}

static void test_files(ringline_ring_t *r)
{
    printf("fixed files\n");
    /* Before any table. */
    ANY_ERR(ringline_files_alloc(r));
    ANY_ERR(ringline_files_install(r, g_rfd));
    ANY_ERR(ringline_files_update(r, 0, g_rfd));
    ANY_ERR(ringline_files_remove(r, 0));
    ANY_ERR(ringline_files_unregister(r));
    int rc = ringline_files_release(r, 0);
    printf("  files_release(0) without a table -> %d (%s)\n", rc,
           ringline_err_name(rc));
    rc = ringline_files_count(r);
    printf("  files_count without a table -> %d\n", rc);
    CHECK(rc <= 0);

    EXPECT_ERR(ringline_files_register(r, 0, 0), -EINVAL);
    EXPECT_ERR(ringline_files_register(r, 4, 5), -EINVAL);
    ANY_ERR(ringline_files_register(r, UINT_MAX, 0));
    ANY_ERR(ringline_files_register(r, UINT_MAX, UINT_MAX));

    OK(ringline_files_register(r, 4, 2));
    ANY_ERR(ringline_files_register(r, 4, 2)); /* already registered */
    EXPECT_ERR(ringline_files_install(r, -1), -EBADF);
    EXPECT_ERR(ringline_files_install(r, INT_MIN), -EBADF);
    int s0 = OK(ringline_files_alloc(r));
    int s1 = OK(ringline_files_alloc(r));
    CHECK(s0 != s1 && s0 < 2 && s1 < 2);
    EXPECT_ERR(ringline_files_alloc(r), -ENFILE);
    EXPECT_ERR(ringline_files_install(r, g_rfd), -ENFILE);
    ANY_ERR(ringline_files_update(r, 4, g_rfd));
    ANY_ERR(ringline_files_update(r, UINT_MAX, g_rfd));
    ANY_ERR(ringline_files_remove(r, 4));
    ANY_ERR(ringline_files_remove(r, UINT_MAX));
    ANY_ERR(ringline_files_release(r, 4));
    ANY_ERR(ringline_files_release(r, UINT_MAX));
    /* update with a closed descriptor number */
    int tmp = dup(g_rfd);
    close(tmp);
    ANY_ERR(ringline_files_update(r, (unsigned)s0, tmp));
    OK(ringline_files_update(r, (unsigned)s0, g_rfd));
    OK(ringline_files_update(r, (unsigned)s0, -1)); /* empty it */
    OK(ringline_files_release(r, (unsigned)s0));
    int s2 = OK(ringline_files_install(r, g_rfd));
    CHECK(s2 == s0);
    OK(ringline_files_remove(r, (unsigned)s2));
    OK(ringline_files_release(r, (unsigned)s1));
    /* openat into a slot beyond the table. */
    MUST_FAIL(r, ringline_op_openat(r, AT_FDCWD, ".", O_RDONLY, 0, 4, 50), 50,
              0, 0);
    MUST_FAIL(r, ringline_op_openat(r, AT_FDCWD, ".", O_RDONLY, 0, 100000, 51),
              51, 0, 0);
    OK(ringline_files_unregister(r));
    ANY_ERR(ringline_files_unregister(r));
    quiet(r);
}

static void test_flags_and_modes(ringline_ring_t *r)
{
    printf("flags and modes\n");
    char buf[16];
    /* op_set_flags: nothing queued since the last submit. */
    OK(ringline_ring_submit(r));
    ANY_ERR(ringline_op_set_flags(r, RINGLINE_SQE_IO_LINK));
    MUST_COMPLETE(r, ringline_op_nop(r, 60), 60, 0);
    EXPECT_ERR(ringline_op_set_flags(r, RINGLINE_SQE_IO_LINK), -EALREADY);
    /* Flags outside the accepted set. */
    OK(ringline_op_nop(r, 61));
    EXPECT_ERR(ringline_op_set_flags(r, 0x01), -EINVAL); /* FIXED_FILE */
    EXPECT_ERR(ringline_op_set_flags(r, 0x20), -EINVAL); /* BUFFER_SELECT */
    EXPECT_ERR(ringline_op_set_flags(r, 0x40), -EINVAL); /* CQE_SKIP */
    EXPECT_ERR(ringline_op_set_flags(r, 0x80), -EINVAL);
    EXPECT_ERR(ringline_op_set_flags(r, ~0u), -EINVAL);
    OK(ringline_op_set_flags(r, RINGLINE_SQE_ASYNC));
    CHECK(result_of(r, 61, "nop after refused flags") == 0);

    /* Timeout flag combinations the kernel refuses. */
    MUST_FAIL(r, ringline_op_timeout(r, 1000000, 0, 0x100, 62), 62, -EINVAL, 0);
    MUST_FAIL(r, ringline_op_timeout(r, rl_now_ns() + 1000000, 0,
                                     RINGLINE_TIMEOUT_ABS |
                                         RINGLINE_TIMEOUT_MULTISHOT,
                                     63),
              63, -EINVAL, 0);
    MUST_FAIL(r, ringline_op_timeout(r, 1000000, 0,
                                     RINGLINE_TIMEOUT_ABS |
                                         RINGLINE_TIMEOUT_REALTIME |
                                         RINGLINE_TIMEOUT_BOOTTIME,
                                     64),
              64, -EINVAL, 0);
    /* A link timeout outside any chain. */
    MUST_FAIL(r, ringline_op_link_timeout(r, 1000000, 0, 65), 65, -EINVAL, 0);
    /* Cancel with an unknown flag. */
    MUST_FAIL(r, ringline_op_cancel(r, 1, 0x80000000u, 66), 66, -EINVAL, 0);
    /* Shutdown with a bad 'how'. */
    MUST_FAIL(r, ringline_op_shutdown(r, g_sv[0], 99, 67), 67, -EINVAL, 0);
    /* Multishot accept must not take an address; multishot direct needs
     * RINGLINE_FILE_ALLOC. */
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    MUST_FAIL(r, ringline_op_accept(r, g_lfd, (struct sockaddr *)&sa, &sl, 0,
                                    RINGLINE_ACCEPT_MULTISHOT,
                                    RINGLINE_NO_SLOT, 68),
              68, -EINVAL, 0);
    OK(ringline_files_register(r, 4, 2));
    MUST_FAIL(r, ringline_op_accept(r, g_lfd, NULL, NULL, 0,
                                    RINGLINE_ACCEPT_MULTISHOT |
                                        RINGLINE_ACCEPT_DIRECT,
                                    0, 69),
              69, -EINVAL, 0);
    OK(ringline_files_unregister(r));
    /* NVMe on a normal ring. */
    ringline_nvme_cmd_t cmd;
    OK(ringline_nvme_cmd_flush(&cmd, 1));
    EXPECT_ERR(ringline_op_nvme(r, g_rfd, &cmd, 0, 70), -EINVAL);
    /* Opcode numbers far out of range. */
    EXPECT_ERR(ringline_ring_opcode_supported(r, 100000), -EINVAL);
    EXPECT_ERR(ringline_ring_opcode_supported(r, UINT_MAX), -EINVAL);
    /* chain_end with no chain ever opened on this ring: just returns. */
    int rc = ringline_chain_end(r);
    printf("  chain_end without a chain -> %d (%s)\n", rc,
           ringline_err_name(rc));
    (void)buf;
    quiet(r);
}

static void test_nvme_big_ring(void)
{
    printf("nvme on a big ring\n");
    ringline_config_t *cfg;
    ringline_ring_t *r;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_big(cfg, 1));
    OK(ringline_ring_new(cfg, &r));
    OK(ringline_config_free(cfg));
    ringline_nvme_cmd_t cmd;
    OK(ringline_nvme_cmd_flush(&cmd, 1));
    EXPECT_ERR(ringline_op_nvme(r, g_rfd, NULL, 0, 1), -EINVAL);
    EXPECT_ERR(ringline_op_nvme(r, -1, &cmd, 0, 1), -EBADF);
    EXPECT_ERR(ringline_op_nvme(r, INT_MIN, &cmd, 1, 1), -EBADF);
    EXPECT_ERR(ringline_op_nvme(r, g_rfd, &cmd, 0, RESERVED_TOK), -EINVAL);
    /* A pipe is no NVMe device: the kernel refuses the command. */
    MUST_FAIL(r, ringline_op_nvme(r, g_rfd, &cmd, 0, 2), 2, 0, 0);
    quiet(r);
    OK(ringline_ring_destroy(r));
}

static void test_zero_length(ringline_ring_t *r)
{
    printf("zero-length operations\n");
    char buf[16];
    /* Empty pipe, 0 bytes: completes at once with 0. */
    MUST_COMPLETE(r, ringline_op_read(r, g_rfd, buf, 0, 0, 80), 80, 0);
    MUST_COMPLETE(r, ringline_op_write(r, g_wfd, buf, 0, 0, 81), 81, 0);
    MUST_COMPLETE(r, ringline_op_send(r, g_sv[0], buf, 0, 0, 82), 82, 0);
    /* recv of 0 bytes with data waiting: 0, and the data stays. */
    rl_write_all(g_sv[1], "abc", 3);
    MUST_COMPLETE(r, ringline_op_recv(r, g_sv[0], buf, 0, 0, 83), 83, 0);
    MUST_COMPLETE(r, ringline_op_recv(r, g_sv[0], buf, sizeof buf, 0, 84), 84,
                  3);
    CHECK(memcmp(buf, "abc", 3) == 0);

    /* Harvest / reap / wait with degenerate counts return promptly. */
    ringline_cqe_t cq[4];
    uint64_t t0 = rl_now_ns();
    EXPECT_ERR(ringline_ring_harvest(r, cq, 0), 0);
    int rc = ringline_ring_reap(r, cq, 0, 0, 0);
    if (rc != 0 && rc != -EINVAL)
        FAIL("reap(max 0) -> %d", rc);
    OK(ringline_ring_submit_and_wait(r, 0, 0));
    OK(ringline_ring_submit_and_wait(r, 1, 0));
    rc = ringline_ring_submit_and_wait(r, 1000000, 20 * MS);
    if (rc < 0 && rc != -EINVAL)
        FAIL("submit_and_wait(huge wait_nr, 20 ms) -> %d (%s)", rc,
             ringline_err_name(rc));
    rc = ringline_ring_reap(r, cq, 1, 4, 20 * MS);
    if (rc != 0 && rc != -EINVAL)
        FAIL("reap(max 1, wait 4, 20 ms) -> %d (%s)", rc,
             ringline_err_name(rc));
    rc = ringline_ring_reap(r, cq, 4, 1, 20 * MS);
    CHECK(rc == 0);
    CHECK(rl_now_ns() - t0 < 3000 * MS);
    quiet(r);
}

int main(void)
{
    alarm(90);
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    g_rfd = p[0];
    g_wfd = p[1];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g_sv) == 0);
    uint16_t port;
    g_lfd = rl_listen_tcp(&port);
    g_addr = (struct sockaddr_in){.sin_family = AF_INET,
                                  .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    ringline_ring_t *live = NULL, *other = NULL, *dead = NULL;
    OK(ringline_ring_new(NULL, &live));
    OK(ringline_ring_new(NULL, &other));

    /* NULL ring, and a destroyed ring (its pointer kept). */
    all_ring_calls(NULL, live, "NULL");
    OK(ringline_ring_new(NULL, &dead));
    OK(ringline_op_timeout(dead, 60000 * MS, 0, 0, 1)); /* pending at death */
    OK(ringline_ring_submit(dead));
    OK(ringline_ring_destroy(dead));
    EXPECT_ERR(ringline_ring_destroy(dead), -EBADF);
    all_ring_calls(dead, live, "destroyed");

    test_ringless();
    test_config(live);
    test_null_pointers(live);
    OK(ringline_bufring_create(live, 5, 4, 64));
    test_reserved_tokens(live, other, 5);
    test_negative_fds(live, 5);
    OK(ringline_bufring_destroy(live, 5));
    test_bufrings(live);
    test_files(live);
    test_flags_and_modes(live);
    test_nvme_big_ring();
    test_zero_length(live);

    /* The live ring still works. */
    MUST_COMPLETE(live, ringline_op_nop(live, 99), 99, 0);
    OK(ringline_ring_destroy(live));
    OK(ringline_ring_destroy(other));
    EXPECT_ERR(ringline_ring_destroy(live), -EBADF);
    EXPECT_ERR(ringline_ring_destroy(other), -EBADF);
    close(g_rfd);
    close(g_wfd);
    close(g_sv[0]);
    close(g_sv[1]);
    close(g_lfd);
    printf("bad_input OK\n");
    return 0;
}
