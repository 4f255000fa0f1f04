/* Cross-thread wake-up: another thread calls ringline_ring_wake while the
 * owner blocks in ringline_ring_reap (5 s timeout); a RINGLINE_TOKEN_WAKE
 * completion must end the wait quickly. Several wakes before a harvest may
 * merge. Then msg_ring between two rings owned by two threads. */
#include "rl_net.h"

#define ROUNDS 5

struct waker {
    ringline_ring_t *ring;
    int delay_ms;
    int times;
    int err;
};

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    struct timespec ts = {0, (long)w->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    for (int i = 0; i < w->times; i++) {
        int r = ringline_ring_wake(w->ring);
        if (r < 0)
            w->err = r;
    }
    return NULL;
}

/* ---- msg_ring between two threads ---- */
#define PAYLOAD_AB 0x00123456789ABCDEull
#define PAYLOAD_BA 0x00FEDCBA98765432ull
#define RES_AB 42
#define RES_BA -7
#define T_MSG_A 0xA1
#define T_MSG_B 0xB1

struct peer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ringline_ring_t *ring_a;
    ringline_ring_t *ring_b; /* set by the thread once created */
    int ready;
    int done_a; /* ring A finished sending: B may destroy its ring */
    const char *fail;
};

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    ringline_ring_t *rb = rln_ring(0, 0);
    pthread_mutex_lock(&p->mu);
    p->ring_b = rb;
    p->ready = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);

    /* wait for A's message */
    ringline_cqe_t c;
    uint64_t deadline = rl_now_ns() + 5ull * 1000000000ull;
    for (;;) {
        int n = rln_reap(rb, &c, 1, 1, 20 * 1000000ll);
        if (n == 1)
            break;
        if (rl_now_ns() > deadline) {
            p->fail = "B: no message from A within 5 s";
            goto out;
        }
    }
    if (!RINGLINE_TOKEN_IS_MSG(c.token) ||
        c.token != (RINGLINE_TOKEN_MSG_TAG | PAYLOAD_AB) || c.res != RES_AB) {
        fprintf(stderr, "B got token %#llx res %d\n",
                (unsigned long long)c.token, c.res);
        p->fail = "B: wrong message token/res";
        goto out;
    }
    if (RINGLINE_TOKEN_MSG_PAYLOAD(c.token) != PAYLOAD_AB) {
        p->fail = "B: wrong payload";
        goto out;
    }
    if (ringline_ring_inflight(rb) != 0) {
        p->fail = "B: a received message counted as in flight";
        goto out;
    }
    /* answer A */
    if (ringline_op_msg_ring(rb, p->ring_a, RES_BA, PAYLOAD_BA, T_MSG_B) < 0) {
        p->fail = "B: msg_ring queue failed";
        goto out;
    }
    deadline = rl_now_ns() + 5ull * 1000000000ull;
    for (;;) {
        int n = rln_reap(rb, &c, 1, 1, 20 * 1000000ll);
        if (n == 1)
            break;
        if (rl_now_ns() > deadline) {
            p->fail = "B: own msg_ring completion missing";
            goto out;
        }
    }
    if (c.token != T_MSG_B || c.res != 0) {
        fprintf(stderr, "B got token %#llx res %d\n",
                (unsigned long long)c.token, c.res);
        p->fail = "B: msg_ring completion wrong";
        goto out;
    }
out:
    /* keep ring B alive until A no longer targets it */
    pthread_mutex_lock(&p->mu);
    while (!p->done_a)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    if (ringline_ring_destroy(rb) != 0 && !p->fail)
        p->fail = "B: destroy failed";
    return NULL;
}

static void test_msg_ring(ringline_ring_t *ra)
{
    struct peer p = {.mu = PTHREAD_MUTEX_INITIALIZER,
                     .cv = PTHREAD_COND_INITIALIZER,
                     .ring_a = ra};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, peer_main, &p) == 0);
    pthread_mutex_lock(&p.mu);
    while (!p.ready)
        pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);

    OK(ringline_op_msg_ring(ra, p.ring_b, RES_AB, PAYLOAD_AB, T_MSG_A));
    int own = 0, reply = 0;
    uint64_t deadline = rl_now_ns() + 5ull * 1000000000ull;
    while (!(own && reply)) {
        ringline_cqe_t c;
        int n = rln_reap(ra, &c, 1, 1, 20 * 1000000ll);
        if (n == 0) {
            if (rl_now_ns() > deadline) {
                pthread_mutex_lock(&p.mu);
                p.done_a = 1;
                pthread_cond_broadcast(&p.cv);
                pthread_mutex_unlock(&p.mu);
                pthread_join(th, NULL);
                FAIL("msg_ring: own %d reply %d after 5 s (B: %s)", own,
                     reply, p.fail ? p.fail : "no error");
            }
            continue;
        }
        if (c.token == T_MSG_A) {
            if (c.res != 0)
                FAIL("msg_ring -> %d (%s)", c.res, rln_res(c.res));
            CHECK(!own);
            own = 1;
        } else if (RINGLINE_TOKEN_IS_MSG(c.token)) {
            if (RINGLINE_TOKEN_MSG_PAYLOAD(c.token) != PAYLOAD_BA ||
                c.res != RES_BA)
                FAIL("A got message token %#llx res %d",
                     (unsigned long long)c.token, c.res);
            CHECK(!reply);
            reply = 1;
        } else {
            FAIL("A: unexpected token %#llx", (unsigned long long)c.token);
        }
    }
    pthread_mutex_lock(&p.mu);
    p.done_a = 1;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    pthread_join(th, NULL);
    if (p.fail)
        FAIL("%s", p.fail);
    CHECK(ringline_ring_inflight(ra) == 0);
}

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(0, 0);

    /* ---- a wake from another thread ends a blocking reap quickly ---- */
    for (int i = 0; i < ROUNDS; i++) {
        struct waker w = {.ring = ring, .delay_ms = 30 + 10 * i, .times = 1};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, waker_main, &w) == 0);
        uint64_t t0 = rl_now_ns();
        ringline_cqe_t cs[4];
        int n;
        do
            n = rln_reap(ring, cs, 4, 1, 5ll * 1000000000ll);
        while (n == 0 && rl_now_ns() - t0 < 5500ull * 1000000ull);
        uint64_t dt = rl_now_ns() - t0;
        pthread_join(th, NULL);
        if (w.err)
            FAIL("ringline_ring_wake -> %d (%s)", w.err,
                 ringline_err_name(w.err));
        if (n != 1)
            FAIL("round %d: reap returned %d completions after %.3f s, want "
                 "one wake",
                 i, n, dt / 1e9);
        if (cs[0].token != RINGLINE_TOKEN_WAKE)
            FAIL("round %d: token %#llx, want RINGLINE_TOKEN_WAKE", i,
                 (unsigned long long)cs[0].token);
        if (dt > 1000000000ull)
            FAIL("round %d: the wake took %.3f s to end the wait", i,
                 dt / 1e9);
        CHECK(ringline_ring_inflight(ring) == 0);
    }

    /* ---- several wakes before a harvest: at least one, at most three,
     * and then quiet ---- */
    {
        struct waker w = {.ring = ring, .delay_ms = 0, .times = 3};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, waker_main, &w) == 0);
        pthread_join(th, NULL);
        CHECK(w.err == 0);
        ringline_cqe_t cs[8];
        int total = 0;
        uint64_t t0 = rl_now_ns();
        while (rl_now_ns() - t0 < 200ull * 1000000ull) {
            int n = rln_reap(ring, cs, 8, 1, 20 * 1000000ll);
            for (int k = 0; k < n; k++)
                if (cs[k].token != RINGLINE_TOKEN_WAKE)
                    FAIL("unexpected token %#llx",
                         (unsigned long long)cs[k].token);
            total += n;
        }
        if (total < 1 || total > 3)
            FAIL("3 wakes gave %d wake completions, want 1..3", total);
    }

    /* ---- the owner may wake its own ring too; it still works after ---- */
    OK(ringline_ring_wake(ring));
    {
        ringline_cqe_t c = rl_wait_token(ring, RINGLINE_TOKEN_WAKE, 2000);
        (void)c;
        OK(ringline_op_nop(ring, 5));
        c = rl_wait_token(ring, 5, 2000);
        CHECK(c.res == 0);
    }

    /* ---- msg_ring between two rings in two threads ---- */
    uint64_t feat = 0;
    OK(ringline_ring_features(ring, &feat));
    int skip_msg = !(feat & RINGLINE_FEAT_MSG_RING);
    if (!skip_msg)
        test_msg_ring(ring);

    rln_expect_none(ring, 30);
    OK(ringline_ring_destroy(ring));
    if (skip_msg)
        SKIP("kernel lacks msg_ring (the wake part passed)");
    printf("wake: ok\n");
    return 0;
}
