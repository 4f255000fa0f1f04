/* Timeouts: relative, absolute, count-based, multishot, remove and update.
 * Only lower bounds on elapsed time are checked (timers never fire early);
 * upper bounds are a generous few seconds. */
#include <sys/socket.h>

#include "rl_test.h"

#define MS 1000000ull

/* Collect completions until n arrived or timeout_ms passed; returns count. */
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

/* Expect that nothing completes within ms milliseconds. */
static void expect_quiet(ringline_ring_t *ring, int ms)
{
    ringline_cqe_t c;
    if (collect(ring, &c, 1, ms) != 0)
        FAIL("unexpected completion token=%llu res=%d flags=%x",
             (unsigned long long)c.token, c.res, c.flags);
}

static const ringline_cqe_t *find(const ringline_cqe_t *c, int n,
                                  uint64_t token)
{
    for (int i = 0; i < n; i++)
        if (c[i].token == token)
            return &c[i];
    FAIL("no completion for token %llu", (unsigned long long)token);
}

static void test_relative(ringline_ring_t *ring)
{
    uint64_t t0 = rl_now_ns();
    OK(ringline_op_timeout(ring, 50 * MS, 0, 0, 100));
    ringline_cqe_t c = rl_wait_token(ring, 100, 5000);
    uint64_t el = rl_now_ns() - t0;
    if (c.res != -ETIME)
        FAIL("relative timeout res %d (%s), want -ETIME", c.res,
             ringline_err_name(c.res));
    CHECK(!(c.flags & RINGLINE_CQE_F_MORE));
    if (el < 50 * MS)
        FAIL("relative 50 ms timeout fired after %.3f ms", el / 1e6);
    printf("relative 50 ms timeout fired after %.3f ms\n", el / 1e6);
}

static void test_absolute(ringline_ring_t *ring)
{
    uint64_t target = rl_now_ns() + 20 * MS;
    OK(ringline_op_timeout(ring, target, 0, RINGLINE_TIMEOUT_ABS, 101));
    ringline_cqe_t c = rl_wait_token(ring, 101, 5000);
    uint64_t now = rl_now_ns();
    if (c.res != -ETIME)
        FAIL("absolute timeout res %d (%s), want -ETIME", c.res,
             ringline_err_name(c.res));
    if (now < target)
        FAIL("absolute timeout fired %.3f ms early", (target - now) / 1e6);
    printf("absolute timeout fired %.3f ms after its deadline\n",
           (now - target) / 1e6);

    /* An absolute deadline in the past fires (almost) at once. */
    OK(ringline_op_timeout(ring, rl_now_ns() - 1000 * MS, 0,
                           RINGLINE_TIMEOUT_ABS, 102));
    c = rl_wait_token(ring, 102, 2000);
    CHECK(c.res == -ETIME);

    /* A huge relative value does not overflow into "already expired":
     * it stays pending until removed. */
    OK(ringline_op_timeout(ring, UINT64_MAX / 2, 0, 0, 103));
    OK(ringline_ring_submit(ring));
    expect_quiet(ring, 30);
    OK(ringline_op_timeout_remove(ring, 103, 104));
    ringline_cqe_t cc[2];
    CHECK(collect(ring, cc, 2, 2000) == 2);
    CHECK(find(cc, 2, 103)->res == -ECANCELED);
    CHECK(find(cc, 2, 104)->res == 0);
}

static void test_count(ringline_ring_t *ring)
{
    /* count 3: completes with 0 as soon as 3 other completions arrived,
     * long before its 5 s timer. */
    uint64_t t0 = rl_now_ns();
    OK(ringline_op_timeout(ring, 5000 * MS, 3, 0, 200));
    OK(ringline_op_nop(ring, 201));
    OK(ringline_op_nop(ring, 202));
    OK(ringline_op_nop(ring, 203));
    ringline_cqe_t c[4];
    int n = collect(ring, c, 4, 3000);
    if (n != 4)
        FAIL("count timeout: %d of 4 completions within 3 s", n);
    CHECK(rl_now_ns() - t0 < 3000 * MS);
    const ringline_cqe_t *t = find(c, 4, 200);
    if (t->res != 0)
        FAIL("count timeout res %d (%s), want 0", t->res,
             ringline_err_name(t->res));
    for (uint64_t tok = 201; tok <= 203; tok++)
        CHECK(find(c, 4, tok)->res == 0);

    /* Fewer completions than count: the timer fires with -ETIME. */
    t0 = rl_now_ns();
    OK(ringline_op_timeout(ring, 30 * MS, 10, 0, 210));
    OK(ringline_op_nop(ring, 211));
    n = collect(ring, c, 2, 3000);
    CHECK(n == 2);
    CHECK(find(c, 2, 211)->res == 0);
    CHECK(find(c, 2, 210)->res == -ETIME);
    CHECK(rl_now_ns() - t0 >= 30 * MS);
}

static void test_multishot(ringline_ring_t *ring)
{
    /* count = 4, every 20 ms: four -ETIME completions, F_MORE on the first
     * three only. */
    enum { N = 4 };
    uint64_t t0 = rl_now_ns();
    OK(ringline_op_timeout(ring, 20 * MS, N, RINGLINE_TIMEOUT_MULTISHOT,
                           300));
    ringline_cqe_t c[N];
    int n = collect(ring, c, N, 5000);
    uint64_t el = rl_now_ns() - t0;
    if (n != N)
        FAIL("multishot timeout: %d of %d completions", n, N);
    for (int i = 0; i < N; i++) {
        CHECK(c[i].token == 300);
        if (c[i].res != -ETIME)
            FAIL("multishot shot %d res %d (%s)", i, c[i].res,
                 ringline_err_name(c[i].res));
        int more = !!(c[i].flags & RINGLINE_CQE_F_MORE);
        if (more != (i < N - 1))
            FAIL("multishot shot %d of %d: F_MORE=%d", i + 1, N, more);
    }
    if (el < N * 20 * MS)
        FAIL("%d shots of 20 ms in %.3f ms", N, el / 1e6);
    CHECK(ringline_ring_inflight(ring) == 0);
    expect_quiet(ring, 60); /* no fifth shot */

    /* count = 0: fires until removed; removal ends it with -ECANCELED and
     * no F_MORE. */
    OK(ringline_op_timeout(ring, 10 * MS, 0, RINGLINE_TIMEOUT_MULTISHOT,
                           310));
    n = collect(ring, c, 2, 5000);
    CHECK(n == 2);
    for (int i = 0; i < 2; i++) {
        CHECK(c[i].token == 310 && c[i].res == -ETIME);
        CHECK(c[i].flags & RINGLINE_CQE_F_MORE);
    }
    CHECK(ringline_ring_inflight(ring) >= 1);
    OK(ringline_op_timeout_remove(ring, 310, 311));
    int removed = 0, final = 0;
    uint64_t deadline = rl_now_ns() + 3000 * MS;
    while ((!removed || !final) && rl_now_ns() < deadline) {
        ringline_cqe_t x;
        if (collect(ring, &x, 1, 100) != 1)
            continue;
        if (x.token == 311) {
            CHECK(x.res == 0);
            removed = 1;
        } else if (x.token == 310) {
            if (x.flags & RINGLINE_CQE_F_MORE) {
                CHECK(x.res == -ETIME); /* a shot before the removal */
                continue;
            }
            if (x.res != -ECANCELED)
                FAIL("removed multishot timeout ends with %d (%s)", x.res,
                     ringline_err_name(x.res));
            final = 1;
        } else {
            FAIL("unexpected token %llu", (unsigned long long)x.token);
        }
    }
    CHECK(removed && final);
    CHECK(ringline_ring_inflight(ring) == 0);
    expect_quiet(ring, 40);
}

static void test_remove(ringline_ring_t *ring)
{
    OK(ringline_op_timeout(ring, 10000 * MS, 0, 0, 400));
    OK(ringline_ring_submit(ring));
    CHECK(ringline_ring_inflight(ring) == 1);
    OK(ringline_op_timeout_remove(ring, 400, 401));
    ringline_cqe_t c[2];
    uint64_t t0 = rl_now_ns();
    CHECK(collect(ring, c, 2, 3000) == 2);
    CHECK(rl_now_ns() - t0 < 3000 * MS);
    const ringline_cqe_t *t = find(c, 2, 400), *r = find(c, 2, 401);
    if (t->res != -ECANCELED)
        FAIL("removed timeout res %d (%s)", t->res, ringline_err_name(t->res));
    if (r->res != 0)
        FAIL("timeout_remove res %d (%s)", r->res, ringline_err_name(r->res));
    CHECK(ringline_ring_inflight(ring) == 0);

    /* Unknown target. */
    OK(ringline_op_timeout_remove(ring, 0x123456, 402));
    ringline_cqe_t x = rl_wait_token(ring, 402, 2000);
    if (x.res != -ENOENT)
        FAIL("remove of unknown timeout res %d (%s), want -ENOENT", x.res,
             ringline_err_name(x.res));

    /* Already fired: also -ENOENT. */
    OK(ringline_op_timeout(ring, 1 * MS, 0, 0, 403));
    x = rl_wait_token(ring, 403, 2000);
    CHECK(x.res == -ETIME);
    OK(ringline_op_timeout_remove(ring, 403, 404));
    x = rl_wait_token(ring, 404, 2000);
    CHECK(x.res == -ENOENT);

    /* Removal queued in the same batch as the timeout. */
    OK(ringline_op_timeout(ring, 10000 * MS, 0, 0, 405));
    OK(ringline_op_timeout_remove(ring, 405, 406));
    CHECK(collect(ring, c, 2, 3000) == 2);
    CHECK(find(c, 2, 405)->res == -ECANCELED);
    CHECK(find(c, 2, 406)->res == 0);
}

static void test_update(ringline_ring_t *ring)
{
    /* 100 ms timeout, pushed out to 400 ms from the update. */
    OK(ringline_op_timeout(ring, 100 * MS, 0, 0, 500));
    OK(ringline_ring_submit(ring));
    uint64_t t_upd = rl_now_ns();
    OK(ringline_op_timeout_update(ring, 500, 400 * MS, 0, 501));
    OK(ringline_ring_submit(ring));
    ringline_cqe_t c[2];
    CHECK(collect(ring, c, 2, 5000) == 2);
    uint64_t el = rl_now_ns() - t_upd;
    const ringline_cqe_t *u = find(c, 2, 501), *t = find(c, 2, 500);
    if (u->res != 0)
        FAIL("timeout_update res %d (%s)", u->res, ringline_err_name(u->res));
    if (t->res != -ETIME)
        FAIL("updated timeout res %d (%s)", t->res, ringline_err_name(t->res));
    if (el < 400 * MS)
        FAIL("updated timeout (400 ms) fired %.3f ms after the update",
             el / 1e6);
    printf("timeout updated 100 -> 400 ms fired %.3f ms after the update\n",
           el / 1e6);

    /* Update to an absolute deadline 30 ms out (ABS honoured). */
    OK(ringline_op_timeout(ring, 10000 * MS, 0, 0, 510));
    OK(ringline_ring_submit(ring));
    uint64_t target = rl_now_ns() + 30 * MS;
    OK(ringline_op_timeout_update(ring, 510, target, RINGLINE_TIMEOUT_ABS,
                                  511));
    CHECK(collect(ring, c, 2, 3000) == 2);
    CHECK(rl_now_ns() >= target);
    CHECK(find(c, 2, 511)->res == 0);
    CHECK(find(c, 2, 510)->res == -ETIME);

    /* Update of an unknown timeout. */
    OK(ringline_op_timeout_update(ring, 0x654321, 10 * MS, 0, 520));
    ringline_cqe_t x = rl_wait_token(ring, 520, 2000);
    if (x.res != -ENOENT)
        FAIL("update of unknown timeout res %d (%s), want -ENOENT", x.res,
             ringline_err_name(x.res));
    CHECK(ringline_ring_inflight(ring) == 0);
}

/* Other clocks for absolute deadlines. */
static void test_clocks(ringline_ring_t *ring)
{
    struct {
        clockid_t id;
        unsigned flag;
        const char *name;
    } clocks[] = {{CLOCK_REALTIME, RINGLINE_TIMEOUT_REALTIME, "REALTIME"},
                  {CLOCK_BOOTTIME, RINGLINE_TIMEOUT_BOOTTIME, "BOOTTIME"}};
    for (int i = 0; i < 2; i++) {
        struct timespec ts;
        clock_gettime(clocks[i].id, &ts);
        uint64_t target = (uint64_t)ts.tv_sec * 1000000000ull +
                          (uint64_t)ts.tv_nsec + 20 * MS;
        OK(ringline_op_timeout(ring, target, 0,
                               RINGLINE_TIMEOUT_ABS | clocks[i].flag,
                               600 + (uint64_t)i));
        ringline_cqe_t c = rl_wait_token(ring, 600 + (uint64_t)i, 5000);
        clock_gettime(clocks[i].id, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        if (c.res != -ETIME)
            FAIL("ABS|%s timeout res %d (%s)", clocks[i].name, c.res,
                 ringline_err_name(c.res));
        if (now < target)
            FAIL("ABS|%s timeout fired %.3f ms early", clocks[i].name,
                 (target - now) / 1e6);
    }
}

/* ETIME_SUCCESS: a timer firing inside a chain does not cancel the rest. */
static void test_etime_success(ringline_ring_t *ring)
{
    ringline_cqe_t c[2];
    OK(ringline_chain_begin(ring, 2, 0));
    OK(ringline_op_timeout(ring, 10 * MS, 0, 0, 700));
    OK(ringline_op_nop(ring, 701));
    CHECK(collect(ring, c, 2, 3000) == 2);
    CHECK(find(c, 2, 700)->res == -ETIME);
    CHECK(find(c, 2, 701)->res == -ECANCELED);

    OK(ringline_chain_begin(ring, 2, 0));
    OK(ringline_op_timeout(ring, 10 * MS, 0, RINGLINE_TIMEOUT_ETIME_SUCCESS,
                           702));
    OK(ringline_op_nop(ring, 703));
    CHECK(collect(ring, c, 2, 3000) == 2);
    CHECK(find(c, 2, 702)->res == -ETIME);
    if (find(c, 2, 703)->res != 0)
        FAIL("op linked after an ETIME_SUCCESS timeout -> %d (%s), want 0",
             find(c, 2, 703)->res, ringline_err_name(find(c, 2, 703)->res));
}

/* More timeouts than SQ entries, queued without explicit submits: each
 * keeps its own value although the ring-owned timespecs sit in reused SQ
 * slots. They must fire in value order, none before its time. Run on a
 * normal and on a big-SQE ring (128-byte SQEs). */
static void test_many(int big)
{
    enum { SQ = 4, N = 11 };
    ringline_config_t *cfg = NULL;
    ringline_ring_t *ring = NULL;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_sq_entries(cfg, SQ));
    if (big)
        OK(ringline_config_set_big(cfg, 1));
    OK(ringline_ring_new(cfg, &ring));
    OK(ringline_config_free(cfg));
    CHECK(ringline_ring_sq_entries(ring) == SQ);

    /* Values queued in a scrambled order: 7, 2, 9, 4, 11, 6, 1, 8, 3, 10, 5
     * (x 15 ms). */
    uint64_t t0 = rl_now_ns();
    for (int i = 0; i < N; i++) {
        uint64_t k = (uint64_t)((i * 7) % N) + 1;
        OK(ringline_op_timeout(ring, k * 15 * MS, 0, 0, 800 + k));
    }
    /* A link timeout and an update also use the ring-owned timespecs. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    char buf[8];
    OK(ringline_chain_begin(ring, 2, 0));
    OK(ringline_op_recv(ring, sv[0], buf, sizeof buf, 0, 850));
    OK(ringline_op_link_timeout(ring, 40 * MS, 0, 851));
    ringline_cqe_t c[N + 3];
    uint64_t when[N + 1] = {0};
    int seen = 0, order_ok = 1, last = 0;
    uint64_t deadline = rl_now_ns() + 5000 * MS;
    while (seen < N + 2 && rl_now_ns() < deadline) {
        int n = collect(ring, c, 1, 100);
        if (n != 1)
            continue;
        uint64_t now = rl_now_ns();
        if (c[0].token == 850) {
            CHECK(c[0].res == -ECANCELED);
            seen++;
            continue;
        }
        if (c[0].token == 851) {
            CHECK(c[0].res == -ETIME);
            CHECK(now - t0 >= 40 * MS);
            seen++;
            continue;
        }
        int k = (int)(c[0].token - 800);
        if (k < 1 || k > N || when[k])
            FAIL("unexpected completion token %llu",
                 (unsigned long long)c[0].token);
        if (c[0].res != -ETIME)
            FAIL("timeout %d res %d (%s)", k, c[0].res,
                 ringline_err_name(c[0].res));
        when[k] = now;
        if ((uint64_t)(now - t0) < (uint64_t)k * 15 * MS)
            FAIL("%s ring: timeout of %d ms fired after %.3f ms",
                 big ? "big" : "normal", k * 15, (now - t0) / 1e6);
        if (k < last)
            order_ok = 0;
        last = k;
        seen++;
    }
    if (seen != N + 2)
        FAIL("%d of %d completions", seen, N + 2);
    if (!order_ok)
        FAIL("%s ring: timeouts fired out of value order",
             big ? "big" : "normal");
    CHECK(ringline_ring_inflight(ring) == 0);
    close(sv[0]);
    close(sv[1]);
    OK(ringline_ring_destroy(ring));
}

int main(void)
{
    alarm(60);
    ringline_ring_t *ring = NULL;
    OK(ringline_ring_new(NULL, &ring));
    uint64_t f = 0;
    OK(ringline_ring_features(ring, &f));

    test_relative(ring);
    test_absolute(ring);
    test_count(ring);
    if (f & RINGLINE_FEAT_TIMEOUT_MULTISHOT)
        test_multishot(ring);
    else
        printf("multishot timeout part skipped: kernel lacks "
               "RINGLINE_FEAT_TIMEOUT_MULTISHOT\n");
    test_remove(ring);
    test_update(ring);
    test_clocks(ring);
    test_etime_success(ring);
    test_many(0);
    test_many(1);

    /* Timers still pending at destroy time are cancelled by it. */
    OK(ringline_op_timeout(ring, 60000 * MS, 0, 0, 900));
    OK(ringline_op_timeout(ring, 5 * MS, 0, RINGLINE_TIMEOUT_MULTISHOT, 901));
    OK(ringline_ring_submit(ring));
    CHECK(ringline_ring_inflight(ring) == 2);
    uint64_t t0 = rl_now_ns();
    int d = ringline_ring_destroy(ring);
    if (d != 0)
        FAIL("destroy with pending timeouts -> %d (%s)", d,
             ringline_err_name(d));
    CHECK(rl_now_ns() - t0 < 3000 * MS);
    printf("timeouts OK\n");
    return 0;
}
