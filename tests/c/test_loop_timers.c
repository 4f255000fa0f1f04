/* Loop timers: one-shots fire in deadline order and not early; every()
 * repeats until cancelled (then its id is dead: -EBADF); at() takes an
 * absolute CLOCK_MONOTONIC time; fired and cancelled ids give -EBADF, also
 * after their slot was reused; 60 shuffled timers fire in deadline order. */
#include "rl_looptest.h"

struct fired {
    ringline_id_t id;
    uint64_t tag;
    uint64_t at;
};

/* Collect TIMER events for ms milliseconds (or until n arrived). */
static int collect(ringline_loop_t *loop, struct fired *out, int max, int n,
                   int ms)
{
    struct lt_evq q = {.loop = loop};
    int got = 0;
    uint64_t end = rl_now_ns() + (uint64_t)ms * MS;
    while (rl_now_ns() < end && got < n) {
        ringline_event_t *e = lt_next(&q, 5);
        if (!e)
            continue;
        if (e->type != RINGLINE_EV_TIMER)
            FAIL("unexpected %s", lt_ev_name(e->type));
        if (got >= max)
            FAIL("more TIMER events than expected");
        out[got].id = e->id;
        out[got].tag = e->tag;
        out[got].at = rl_now_ns();
        got++;
    }
    /* nothing may be left half-taken in the batch */
    CHECK(q.i == q.n);
    return got;
}

int main(void)
{
    lt_watchdog(60);
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    struct fired f[128];

    printf("after(30), after(10), after(20)\n");
    ringline_id_t a30, a10, a20;
    uint64_t t0 = rl_now_ns();
    OK(ringline_timer_after(loop, 30 * MS, 30, &a30));
    OK(ringline_timer_after(loop, 10 * MS, 10, &a10));
    OK(ringline_timer_after(loop, 20 * MS, 20, &a20));
    CHECK(a30 && a10 && a20 && a30 != a10 && a10 != a20 && a30 != a20);
    int n = collect(loop, f, 128, 3, 3000);
    CHECK(n == 3);
    uint64_t want[3] = {10, 20, 30};
    ringline_id_t ids[3] = {a10, a20, a30};
    for (int i = 0; i < 3; i++) {
        if (f[i].tag != want[i] || f[i].id != ids[i])
            FAIL("timer %d: tag %llu, want %llu", i,
                 (unsigned long long)f[i].tag, (unsigned long long)want[i]);
        uint64_t el = f[i].at - t0;
        if (el + MS / 2 < want[i] * MS)
            FAIL("timer %llu fired early, after %llu us",
                 (unsigned long long)want[i], (unsigned long long)el / 1000);
    }
    /* fired one-shots are dead */
    EXPECT_ERR(ringline_timer_cancel(loop, a10), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(loop, a20), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(loop, a30), -EBADF);

    printf("every(10ms) and cancel\n");
    ringline_id_t ev;
    EXPECT_ERR(ringline_timer_every(loop, 0, 1, &ev), -EINVAL);
    t0 = rl_now_ns();
    OK(ringline_timer_every(loop, 10 * MS, 99, &ev));
    n = collect(loop, f, 128, 5, 3000);
    CHECK(n == 5);
    for (int i = 0; i < n; i++)
        CHECK(f[i].id == ev && f[i].tag == 99);
    uint64_t el = f[4].at - t0;
    if (el + MS / 2 < 50 * MS)
        FAIL("5 ticks of a 10 ms timer in %llu us", (unsigned long long)el / 1000);
    OK(ringline_timer_cancel(loop, ev));
    EXPECT_ERR(ringline_timer_cancel(loop, ev), -EBADF);
    n = collect(loop, f, 128, 1, 60);
    if (n)
        FAIL("%d TIMER events after cancel", n);
    EXPECT_ERR(ringline_timer_cancel(loop, ev), -EBADF);

    printf("at(now + 15ms)\n");
    ringline_id_t at;
    t0 = ringline_now_ns();
    CHECK(t0 > 0);
    OK(ringline_timer_at(loop, t0 + 15 * MS, 15, &at));
    n = collect(loop, f, 128, 1, 3000);
    CHECK(n == 1 && f[0].id == at && f[0].tag == 15);
    if (f[0].at < t0 + 15 * MS - MS / 2)
        FAIL("at() fired %lld us early",
             (long long)(t0 + 15 * MS - f[0].at) / 1000);
    EXPECT_ERR(ringline_timer_cancel(loop, at), -EBADF);
    /* a time in the past fires at once */
    OK(ringline_timer_at(loop, ringline_now_ns() - 5 * MS, 16, &at));
    n = collect(loop, f, 128, 1, 1000);
    CHECK(n == 1 && f[0].tag == 16);

    printf("cancel before firing; stale ids after slot reuse\n");
    ringline_id_t c1;
    OK(ringline_timer_after(loop, 20 * MS, 7, &c1));
    OK(ringline_timer_cancel(loop, c1));
    EXPECT_ERR(ringline_timer_cancel(loop, c1), -EBADF);
    n = collect(loop, f, 128, 1, 60);
    if (n)
        FAIL("a cancelled timer fired (tag %llu)", (unsigned long long)f[0].tag);
    ringline_id_t fresh[8];
    for (int i = 0; i < 8; i++)
        OK(ringline_timer_after(loop, 1000 * MS, 100 + (uint64_t)i, &fresh[i]));
    /* the old ids (whose slots these reuse) are still dead */
    EXPECT_ERR(ringline_timer_cancel(loop, a10), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(loop, c1), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(loop, ev), -EBADF);
    for (int i = 0; i < 8; i++) {
        CHECK(fresh[i] != a10 && fresh[i] != c1 && fresh[i] != ev);
        OK(ringline_timer_cancel(loop, fresh[i]));
    }
    /* wrong kinds and made-up ids */
    EXPECT_ERR(ringline_timer_cancel(loop, 0), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(loop, ~0ull), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(loop, fresh[0] + 1000), -EBADF);

    printf("60 shuffled timers\n");
    enum { NT = 60 };
    ringline_id_t tid[NT];
    int order[NT];
    for (int i = 0; i < NT; i++)
        order[i] = i;
    uint64_t r = 12345;
    for (int i = NT - 1; i > 0; i--) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((r >> 33) % (uint64_t)(i + 1));
        int tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    /* deadlines 3 ms apart, set up in shuffled order */
    t0 = ringline_now_ns() + 20 * MS;
    for (int i = 0; i < NT; i++) {
        int k = order[i];
        OK(ringline_timer_at(loop, t0 + (uint64_t)k * 3 * MS, (uint64_t)k,
                             &tid[k]));
    }
    n = collect(loop, f, 128, NT, 10000);
    CHECK(n == NT);
    for (int i = 0; i < NT; i++) {
        if (f[i].tag != (uint64_t)i)
            FAIL("timer #%d to fire was tag %llu, want %d", i,
                 (unsigned long long)f[i].tag, i);
        CHECK(f[i].id == tid[i]);
    }
    /* a pending repeating timer and a pending one-shot at destroy: no leak */
    OK(ringline_timer_every(loop, 5 * MS, 1, &ev));
    OK(ringline_timer_after(loop, 10000 * MS, 2, &c1));
    collect(loop, f, 128, 2, 30);
    /* A destroy racing a multishot tick fails with -ETIMEDOUT (ring-layer
     * bug, reproduced deterministically by test_loop_destroy.c); tolerated
     * here so this test stays about its own subject. */
    int dr = ringline_loop_destroy(loop);
    if (dr == -ETIMEDOUT)
        printf("note: destroy -> ETIMEDOUT (see test_loop_destroy)\n");
    else
        OK(dr);
    return lt_exit();
}
