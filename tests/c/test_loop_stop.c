/* Graceful stop.
 *  1. ringline_loop_stop with data queued to a (slow) reader: the client
 *     reads every byte and then EOF; the connection and the listener close
 *     with res 0, STOPPED comes last, ringline_loop_stopped() says 1, new
 *     objects are refused with -ESHUTDOWN, and the listener's port can be
 *     bound and listened on again at once.
 *  2. The drain deadline passes (the client never reads): the connection is
 *     cut (CLOSED res < 0) and STOPPED follows soon after the deadline.
 *  3. stop(0): everything closes at once.
 *  4. ringline_loop_handle_signals + raise(SIGTERM) in the same thread:
 *     a SIGNAL event with SIGTERM, then STOPPED. */
#include "rl_looptest.h"

#define BIG (8u << 20)

static uint16_t g_port;
static atomic_int g_go;

static void *reader(void *arg)
{
    int fd = lt_client(g_port);
    atomic_store(&g_go, 1);
    uint8_t *buf = malloc(1 << 16);
    CHECK(buf);
    uint64_t got = 0;
    unsigned reads = 0;
    for (;;) {
        ssize_t n = read(fd, buf, 1 << 16);
        if (n < 0)
            FAIL("reader: %s after %llu bytes", strerror(errno),
                 (unsigned long long)got);
        if (n == 0)
            break;
        long long bad = lt_verify(buf, (size_t)n, 3, got);
        if (bad >= 0)
            FAIL("reader: byte %llu differs", (unsigned long long)got + bad);
        got += (uint64_t)n;
        if (++reads % 16 == 0 && got < (2u << 20))
            usleep(5000); /* slow at first: the stop begins with a queue */
    }
    if (got != BIG)
        FAIL("reader: %llu bytes before EOF, want %u", (unsigned long long)got,
             BIG);
    close(fd);
    free(buf);
    return arg;
}

static void *no_reader(void *arg)
{
    int fd = lt_client(g_port);
    atomic_store(&g_go, 1);
    while (atomic_load(&g_go) != 2)
        usleep(1000);
    close(fd);
    return arg;
}

static ringline_loop_t *server(ringline_id_t *lid)
{
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, lid));
    g_port = (uint16_t)OK(ringline_listener_port(loop, *lid));
    return loop;
}

static ringline_id_t accept_one(struct lt_evq *q)
{
    ringline_event_t *e = lt_expect_any(q, 10000);
    if (e->type != RINGLINE_EV_ACCEPTED)
        FAIL("want ACCEPTED, got %s", lt_ev_name(e->type));
    return e->id;
}

/* Events until STOPPED; fills in CLOSED results; STOPPED must be last. */
static void until_stopped(struct lt_evq *q, ringline_id_t cid, int *cres,
                          ringline_id_t lid, int *lres, int timeout_ms)
{
    *cres = *lres = 1;
    for (;;) {
        ringline_event_t *e = lt_next(q, timeout_ms);
        if (!e)
            FAIL("no STOPPED within %d ms", timeout_ms);
        switch (e->type) {
        case RINGLINE_EV_CLOSED:
            if (e->id == cid)
                *cres = e->res;
            else if (e->id == lid)
                *lres = e->res;
            else
                FAIL("CLOSED for an unknown id");
            break;
        case RINGLINE_EV_STOPPED:
            if (q->i != q->n)
                SOFT_FAIL("events after STOPPED in its batch");
            return;
        case RINGLINE_EV_SENT:
        case RINGLINE_EV_WRITABLE:
        case RINGLINE_EV_EOF:
        case RINGLINE_EV_DATA:
            break;
        default:
            FAIL("unexpected %s res=%d", lt_ev_name(e->type), e->res);
        }
    }
}

static void check_refusals(ringline_loop_t *loop)
{
    ringline_id_t x;
    EXPECT_ERR(ringline_listen(loop, "127.0.0.1", 0, 8, 0, &x), -ESHUTDOWN);
    EXPECT_ERR(ringline_connect(loop, "127.0.0.1", g_port, 100, &x),
               -ESHUTDOWN);
    EXPECT_ERR(ringline_udp_bind(loop, "127.0.0.1", 0, &x), -ESHUTDOWN);
    EXPECT_ERR(ringline_timer_after(loop, MS, 1, &x), -ESHUTDOWN);
    CHECK(ringline_loop_stopped(loop) == 1);
    /* polling a stopped loop returns at once, without blocking */
    ringline_event_t ev[8];
    uint64_t t0 = rl_now_ns();
    int n = ringline_loop_poll(loop, ev, 8, -1);
    CHECK(n >= 0);
    CHECK(rl_now_ns() - t0 < 1000 * MS);
}

static void test_drain(void)
{
    printf("1: graceful stop delivers the queue\n");
    ringline_id_t lid;
    ringline_loop_t *loop = server(&lid);
    uint16_t port = g_port;
    struct lt_evq q = {.loop = loop};
    atomic_store(&g_go, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, reader, NULL) == 0);
    ringline_id_t id = accept_one(&q);
    uint8_t *src = malloc(BIG);
    CHECK(src);
    lt_fill(src, BIG, 3, 0);
    for (unsigned off = 0; off < BIG; off += BIG / 8)
        OK(ringline_conn_send(loop, id, src + off, BIG / 8, 0));
    free(src);
    CHECK(ringline_loop_stopped(loop) == 0);
    OK(ringline_loop_stop(loop, 20000));
    OK(ringline_loop_stop(loop, 20000)); /* again: no-op */
    int cres, lres;
    until_stopped(&q, id, &cres, lid, &lres, 20000);
    pthread_join(t, NULL);
    if (cres != 0)
        SOFT_FAIL("connection CLOSED %d (%s), want 0", cres,
                  ringline_err_name(cres));
    if (lres != 0)
        SOFT_FAIL("listener CLOSED %d, want 0", lres);
    check_refusals(loop);
    /* the port is free again at once (a restarting server sets
     * SO_REUSEADDR, as ringline_listen does, because of TIME_WAIT) */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        SOFT_FAIL("bind to the stopped listener's port: %s", strerror(errno));
    else if (listen(fd, 8) < 0)
        SOFT_FAIL("listen on the stopped listener's port: %s",
                  strerror(errno));
    close(fd);
    /* and a new loop can listen there */
    ringline_loop_t *l2 = lt_loop(0, 0, 0, 0, 0);
    ringline_id_t lid2;
    int r = ringline_listen(l2, "127.0.0.1", port, 8, 0, &lid2);
    if (r < 0)
        SOFT_FAIL("ringline_listen on the old port: %s", ringline_err_name(r));
    OK(ringline_loop_destroy(l2));
    ringline_stats_t s = lt_stats(loop);
    CHECK(s.conns_open == 0 && s.closed == 1);
    OK(ringline_loop_destroy(loop));
}

static void test_deadline(uint64_t deadline_ms)
{
    printf("%d: stop(%llu) with a peer that does not read\n",
           deadline_ms ? 2 : 3, (unsigned long long)deadline_ms);
    ringline_id_t lid;
    ringline_loop_t *loop = server(&lid);
    struct lt_evq q = {.loop = loop};
    atomic_store(&g_go, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, no_reader, NULL) == 0);
    ringline_id_t id = accept_one(&q);
    uint8_t *src = calloc(1, BIG);
    CHECK(src);
    for (int i = 0; i < 4; i++)
        OK(ringline_conn_send(loop, id, src, BIG, (uint64_t)i + 1));
    free(src);
    /* let the first send block */
    for (int i = 0; i < 5; i++)
        lt_next(&q, 20) ? (void)0 : (void)0;
    uint64_t t0 = rl_now_ns();
    OK(ringline_loop_stop(loop, deadline_ms));
    int cres, lres;
    until_stopped(&q, id, &cres, lid, &lres, 10000);
    uint64_t ms = (rl_now_ns() - t0) / MS;
    atomic_store(&g_go, 2);
    pthread_join(t, NULL);
    printf("   STOPPED after %llu ms; connection CLOSED %d (%s)\n",
           (unsigned long long)ms, cres, ringline_err_name(cres));
    if (deadline_ms && cres >= 0)
        SOFT_FAIL("connection cut by the deadline CLOSED %d, want < 0", cres);
    if (!deadline_ms && cres == 0)
        printf("   note: stop(0) dropped queued bytes but CLOSED says 0 "
               "(clean)\n");
    if (deadline_ms && ms + 5 < deadline_ms)
        SOFT_FAIL("STOPPED after %llu ms, before the %llu ms deadline",
                  (unsigned long long)ms, (unsigned long long)deadline_ms);
    if (ms > deadline_ms + 3000)
        SOFT_FAIL("STOPPED %llu ms after stop(%llu)", (unsigned long long)ms,
                  (unsigned long long)deadline_ms);
    check_refusals(loop);
    OK(ringline_loop_destroy(loop));
}

static void test_signal(void)
{
    printf("4: SIGTERM\n");
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 8, 0, &lid));
    OK(ringline_loop_handle_signals(loop, 1000));
    EXPECT_ERR(ringline_loop_handle_signals(loop, 1000), -EBUSY);
    struct lt_evq q = {.loop = loop};
    /* nothing yet */
    CHECK(lt_next(&q, 50) == NULL);
    CHECK(raise(SIGTERM) == 0);
    ringline_event_t *e = lt_next(&q, 5000);
    if (!e)
        FAIL("no event after raise(SIGTERM)");
    if (e->type != RINGLINE_EV_SIGNAL || e->res != SIGTERM)
        FAIL("want SIGNAL %d, got %s res=%d", SIGTERM, lt_ev_name(e->type),
             e->res);
    bool listener_closed = false;
    for (;;) {
        e = lt_next(&q, 5000);
        if (!e)
            FAIL("no STOPPED after the signal");
        if (e->type == RINGLINE_EV_CLOSED && e->id == lid) {
            listener_closed = true;
            continue;
        }
        if (e->type == RINGLINE_EV_STOPPED)
            break;
        FAIL("unexpected %s", lt_ev_name(e->type));
    }
    CHECK(listener_closed);
    CHECK(ringline_loop_stopped(loop) == 1);
    OK(ringline_loop_destroy(loop));
    /* the signal was consumed by the loop: nothing is left pending */
    sigset_t pend;
    sigpending(&pend);
    CHECK(!sigismember(&pend, SIGTERM));
}

int main(void)
{
    lt_watchdog(100);
    test_drain();
    test_deadline(300);
    test_deadline(0);
    test_signal();
    return lt_exit();
}
