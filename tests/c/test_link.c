/* Linked chains: ringline_chain_begin/end, soft and hard links, link
 * timeouts, and the chain bookkeeping errors (-EINVAL, -EBUSY). */
#include <sys/socket.h>

#include "rl_test.h"

#define MS 1000000ull

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

static const ringline_cqe_t *find(const ringline_cqe_t *c, int n,
                                  uint64_t token)
{
    for (int i = 0; i < n; i++)
        if (c[i].token == token)
            return &c[i];
    FAIL("no completion for token %llu", (unsigned long long)token);
}

static void expect_res(const ringline_cqe_t *c, int n, uint64_t token,
                       int want)
{
    const ringline_cqe_t *x = find(c, n, token);
    if (x->res != want)
        FAIL("token %llu: res %d (%s), want %d (%s)",
             (unsigned long long)token, x->res, ringline_err_name(x->res),
             want, ringline_err_name(want));
}

/* Three writes to a pipe in one chain: completions in order, data in order. */
static void test_ordered_writes(ringline_ring_t *ring)
{
    int p[2];
    CHECK(pipe(p) == 0);
    static const char a[] = "first-", b[] = "second-", c[] = "third";
    OK(ringline_chain_begin(ring, 3, 0));
    OK(ringline_op_write(ring, p[1], a, strlen(a), 0, 10));
    OK(ringline_op_write(ring, p[1], b, strlen(b), 0, 11));
    OK(ringline_op_write(ring, p[1], c, strlen(c), 0, 12));
    EXPECT_ERR(ringline_chain_end(ring), 0);
    ringline_cqe_t cq[3];
    CHECK(collect(ring, cq, 3, 3000) == 3);
    /* A chain completes in order. */
    for (int i = 0; i < 3; i++)
        if (cq[i].token != (uint64_t)(10 + i))
            FAIL("completion %d has token %llu, want %d", i,
                 (unsigned long long)cq[i].token, 10 + i);
    CHECK(cq[0].res == (int)strlen(a));
    CHECK(cq[1].res == (int)strlen(b));
    CHECK(cq[2].res == (int)strlen(c));
    char buf[64] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    CHECK(n == (ssize_t)(strlen(a) + strlen(b) + strlen(c)));
    if (strcmp(buf, "first-second-third") != 0)
        FAIL("pipe got \"%s\"", buf);
    close(p[0]);
    close(p[1]);
}

/* Soft link: the first op fails, the rest are cancelled. Hard link: the
 * chain goes on. */
static void test_failure(ringline_ring_t *ring)
{
    int p[2];
    CHECK(pipe(p) == 0);
    char buf[8];
    /* Reading from a pipe's write end fails with -EBADF in the kernel. */
    OK(ringline_chain_begin(ring, 3, 0));
    OK(ringline_op_read(ring, p[1], buf, sizeof buf, 0, 20));
    OK(ringline_op_nop(ring, 21));
    OK(ringline_op_write(ring, p[1], "x", 1, 0, 22));
    EXPECT_ERR(ringline_chain_end(ring), 0);
    ringline_cqe_t cq[3];
    CHECK(collect(ring, cq, 3, 3000) == 3);
    expect_res(cq, 3, 20, -EBADF);
    expect_res(cq, 3, 21, -ECANCELED);
    expect_res(cq, 3, 22, -ECANCELED);

    OK(ringline_chain_begin(ring, 3, 1));
    OK(ringline_op_read(ring, p[1], buf, sizeof buf, 0, 30));
    OK(ringline_op_nop(ring, 31));
    OK(ringline_op_write(ring, p[1], "y", 1, 0, 32));
    EXPECT_ERR(ringline_chain_end(ring), 0);
    CHECK(collect(ring, cq, 3, 3000) == 3);
    expect_res(cq, 3, 30, -EBADF);
    expect_res(cq, 3, 31, 0);
    expect_res(cq, 3, 32, 1);
    CHECK(read(p[0], buf, sizeof buf) == 1 && buf[0] == 'y');

    /* A failure in the middle of a soft chain cancels only what follows. */
    OK(ringline_chain_begin(ring, 3, 0));
    OK(ringline_op_nop(ring, 40));
    OK(ringline_op_read(ring, p[1], buf, sizeof buf, 0, 41));
    OK(ringline_op_nop(ring, 42));
    CHECK(collect(ring, cq, 3, 3000) == 3);
    expect_res(cq, 3, 40, 0);
    expect_res(cq, 3, 41, -EBADF);
    expect_res(cq, 3, 42, -ECANCELED);
    CHECK(ringline_ring_inflight(ring) == 0);
    close(p[0]);
    close(p[1]);
}

static void test_link_timeout(ringline_ring_t *ring)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    char buf[16];

    /* recv with no data, guarded by 50 ms: the recv is cancelled. */
    uint64_t t0 = rl_now_ns();
    OK(ringline_chain_begin(ring, 2, 0));
    OK(ringline_op_recv(ring, sv[0], buf, sizeof buf, 0, 50));
    OK(ringline_op_link_timeout(ring, 50 * MS, 0, 51));
    EXPECT_ERR(ringline_chain_end(ring), 0);
    ringline_cqe_t cq[2];
    CHECK(collect(ring, cq, 2, 5000) == 2);
    uint64_t el = rl_now_ns() - t0;
    expect_res(cq, 2, 50, -ECANCELED);
    expect_res(cq, 2, 51, -ETIME);
    if (el < 50 * MS)
        FAIL("link timeout of 50 ms cancelled after %.3f ms", el / 1e6);
    printf("link timeout 50 ms: recv cancelled after %.3f ms\n", el / 1e6);

    /* The guarded op completes first: the timeout is cancelled. */
    rl_write_all(sv[1], "hello", 5);
    OK(ringline_chain_begin(ring, 2, 0));
    OK(ringline_op_recv(ring, sv[0], buf, sizeof buf, 0, 52));
    OK(ringline_op_link_timeout(ring, 5000 * MS, 0, 53));
    t0 = rl_now_ns();
    CHECK(collect(ring, cq, 2, 3000) == 2);
    CHECK(rl_now_ns() - t0 < 3000 * MS);
    expect_res(cq, 2, 52, 5);
    int tr = find(cq, 2, 53)->res;
    if (tr != -ECANCELED && tr != -EALREADY)
        FAIL("unfired link timeout res %d (%s)", tr, ringline_err_name(tr));
    CHECK(memcmp(buf, "hello", 5) == 0);

    /* Absolute link timeout. */
    uint64_t target = rl_now_ns() + 30 * MS;
    OK(ringline_chain_begin(ring, 2, 0));
    OK(ringline_op_recv(ring, sv[0], buf, sizeof buf, 0, 54));
    OK(ringline_op_link_timeout(ring, target, RINGLINE_TIMEOUT_ABS, 55));
    CHECK(collect(ring, cq, 2, 3000) == 2);
    CHECK(rl_now_ns() >= target);
    expect_res(cq, 2, 54, -ECANCELED);
    expect_res(cq, 2, 55, -ETIME);

    CHECK(ringline_ring_inflight(ring) == 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_bookkeeping(ringline_ring_t *ring)
{
    ringline_cqe_t cq[8];
    int sq = OK(ringline_ring_sq_entries(ring));

    EXPECT_ERR(ringline_chain_begin(ring, 0, 0), -EINVAL);
    EXPECT_ERR(ringline_chain_begin(ring, 1, 0), -EINVAL);
    EXPECT_ERR(ringline_chain_begin(ring, (unsigned)sq + 1, 0), -EINVAL);
    EXPECT_ERR(ringline_chain_begin(ring, 0xFFFFFFFFu, 1), -EINVAL);

    /* chain_begin while a chain is open; submit while a chain is open. */
    OK(ringline_chain_begin(ring, 2, 0));
    EXPECT_ERR(ringline_chain_begin(ring, 2, 0), -EBUSY);
    OK(ringline_op_nop(ring, 60));
    EXPECT_ERR(ringline_chain_begin(ring, 2, 0), -EBUSY);
    EXPECT_ERR(ringline_ring_submit(ring), -EBUSY);
    OK(ringline_op_nop(ring, 61));
    EXPECT_ERR(ringline_chain_end(ring), 0);
    /* The chain closed by itself: submitting works again. */
    int s = ringline_ring_submit(ring);
    if (s < 2)
        FAIL("submit after the chain -> %d, want >= 2", s);
    CHECK(collect(ring, cq, 2, 3000) == 2);
    CHECK(cq[0].token == 60 && cq[1].token == 61);
    CHECK(cq[0].res == 0 && cq[1].res == 0);

    /* chain_end with fewer ops than announced: -EINVAL, and the chain is
     * cut after the ops queued so far: a later op does not join it. */
    int p[2];
    CHECK(pipe(p) == 0);
    char buf[4];
    OK(ringline_chain_begin(ring, 4, 0));
    OK(ringline_op_nop(ring, 70));
    OK(ringline_op_read(ring, p[1], buf, 1, 0, 71)); /* fails: -EBADF */
    EXPECT_ERR(ringline_chain_end(ring), -EINVAL);
    OK(ringline_op_nop(ring, 72)); /* not linked to 71: must succeed */
    OK(ringline_chain_begin(ring, 2, 0)); /* a new chain may open */
    OK(ringline_op_nop(ring, 73));
    OK(ringline_op_nop(ring, 74));
    EXPECT_ERR(ringline_chain_end(ring), 0);
    CHECK(collect(ring, cq, 5, 3000) == 5);
    expect_res(cq, 5, 70, 0);
    expect_res(cq, 5, 71, -EBADF);
    expect_res(cq, 5, 72, 0);
    expect_res(cq, 5, 73, 0);
    expect_res(cq, 5, 74, 0);
    close(p[0]);
    close(p[1]);

    /* Explicit waits while a chain is open must not split it: either they
     * refuse (-EBUSY) or they leave the partial chain unsubmitted. */
    CHECK(pipe(p) == 0);
    OK(ringline_chain_begin(ring, 3, 0));
    OK(ringline_op_read(ring, p[1], buf, 1, 0, 76)); /* fails: -EBADF */
    int w = ringline_ring_submit_and_wait(ring, 0, 0);
    printf("submit_and_wait with a chain open -> %d (%s)\n", w,
           ringline_err_name(w));
    CHECK(w == -EBUSY || w >= 0);
    OK(ringline_op_nop(ring, 77));
    w = ringline_ring_reap(ring, cq, 8, 0, 0);
    printf("reap with a chain open -> %d (%s)\n", w, ringline_err_name(w));
    CHECK(w == -EBUSY || w == 0);
    OK(ringline_op_nop(ring, 78));
    CHECK(collect(ring, cq, 3, 3000) == 3);
    expect_res(cq, 3, 76, -EBADF);
    if (find(cq, 3, 77)->res != -ECANCELED || find(cq, 3, 78)->res != -ECANCELED)
        FAIL("chain split by an explicit wait: nops gave %d and %d",
             find(cq, 3, 77)->res, find(cq, 3, 78)->res);
    close(p[0]);
    close(p[1]);

    /* chain_end straight after chain_begin: -EINVAL, nothing queued. */
    OK(ringline_chain_begin(ring, 3, 1));
    EXPECT_ERR(ringline_chain_end(ring), -EINVAL);
    OK(ringline_op_nop(ring, 75));
    ringline_cqe_t one = rl_wait_token(ring, 75, 3000);
    CHECK(one.res == 0);
    CHECK(ringline_ring_inflight(ring) == 0);
}

/* On a small ring: a chain as long as the SQ, and a chain that does not fit
 * behind already-queued SQEs (they are submitted first, the chain is never
 * split). */
static void test_small_ring(void)
{
    ringline_config_t *cfg = NULL;
    ringline_ring_t *ring = NULL;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_sq_entries(cfg, 8));
    OK(ringline_ring_new(cfg, &ring));
    OK(ringline_config_free(cfg));
    CHECK(ringline_ring_sq_entries(ring) == 8);
    EXPECT_ERR(ringline_chain_begin(ring, 9, 0), -EINVAL);

    ringline_cqe_t cq[16];
    OK(ringline_chain_begin(ring, 8, 0));
    for (uint64_t t = 0; t < 8; t++)
        OK(ringline_op_nop(ring, 100 + t));
    EXPECT_ERR(ringline_chain_end(ring), 0);
    CHECK(collect(ring, cq, 8, 3000) == 8);
    for (int i = 0; i < 8; i++)
        CHECK(cq[i].token == (uint64_t)(100 + i) && cq[i].res == 0);

    int p[2];
    CHECK(pipe(p) == 0);
    char buf[4];
    for (uint64_t t = 0; t < 6; t++)
        OK(ringline_op_nop(ring, 200 + t));
    CHECK(ringline_ring_sq_pending(ring) >= 6);
    /* Needs 4 SQEs, 2 free: the 6 nops go first. */
    OK(ringline_chain_begin(ring, 4, 0));
    OK(ringline_op_read(ring, p[1], buf, 1, 0, 300)); /* -EBADF */
    OK(ringline_op_nop(ring, 301));
    OK(ringline_op_nop(ring, 302));
    OK(ringline_op_nop(ring, 303));
    EXPECT_ERR(ringline_chain_end(ring), 0);
    CHECK(collect(ring, cq, 10, 3000) == 10);
    for (uint64_t t = 0; t < 6; t++)
        expect_res(cq, 10, 200 + t, 0);
    expect_res(cq, 10, 300, -EBADF);
    /* Cancelled, not run: the chain reached the kernel in one piece. */
    expect_res(cq, 10, 301, -ECANCELED);
    expect_res(cq, 10, 302, -ECANCELED);
    expect_res(cq, 10, 303, -ECANCELED);
    CHECK(ringline_ring_inflight(ring) == 0);
    close(p[0]);
    close(p[1]);
    OK(ringline_ring_destroy(ring));
}

int main(void)
{
    alarm(60);
    ringline_ring_t *ring = NULL;
    OK(ringline_ring_new(NULL, &ring));

    test_ordered_writes(ring);
    test_failure(ring);
    test_link_timeout(ring);
    test_bookkeeping(ring);
    OK(ringline_ring_destroy(ring));

    test_small_ring();
    printf("link OK\n");
    return 0;
}
