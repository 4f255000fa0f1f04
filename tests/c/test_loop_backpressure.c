/* Backpressure.
 *  1. A script sends 64 MiB in 64 KiB ringline_conn_send calls to a slow
 *     reader, sending only while ringline_conn_queued <= high and otherwise
 *     waiting for WRITABLE: the queue never exceeds high + one message,
 *     WRITABLE events come, and the reader gets every byte in order.
 *  2. An ECHO connection whose client writes 24 MiB while reading slowly:
 *     the server's queue (ringline_conn_queued on the accepted id) stays
 *     bounded near the high-water mark, receiving resumes, and every byte
 *     comes back in order. */
#include "rl_looptest.h"

#define HIGH (1u << 20)
#define LOW (256u << 10)
#define MSG (64u << 10)
#define TOTAL1 (64ull << 20)
#define TOTAL2 (24ull << 20)

static uint16_t g_port;
static atomic_int g_done;

static void *slow_reader(void *arg)
{
    int fd = lt_client(g_port);
    int rcv = 64 << 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    uint8_t *buf = malloc(MSG);
    CHECK(buf);
    uint64_t got = 0;
    unsigned reads = 0;
    while (got < TOTAL1) {
        ssize_t n = read(fd, buf, MSG);
        if (n <= 0)
            FAIL("reader: read -> %zd (%s) after %llu bytes", n,
                 strerror(errno), (unsigned long long)got);
        long long bad = lt_verify(buf, (size_t)n, 11, got);
        if (bad >= 0)
            FAIL("reader: byte %llu differs", (unsigned long long)got + bad);
        got += (uint64_t)n;
        /* slow for the first 6 MiB, then full speed */
        if (got < (6u << 20) && (++reads % 4) == 0)
            usleep(2000);
    }
    char c;
    CHECK(read(fd, &c, 1) == 0);
    close(fd);
    free(buf);
    atomic_store(&g_done, 1);
    return arg;
}

static void test_script_sender(ringline_loop_t *loop, ringline_id_t lid)
{
    printf("1: script sender, slow reader\n");
    atomic_store(&g_done, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, slow_reader, NULL) == 0);
    struct lt_evq q = {.loop = loop};
    ringline_event_t *e = lt_expect_any(&q, 10000);
    CHECK(e->type == RINGLINE_EV_ACCEPTED);
    ringline_id_t id = e->id;
    uint8_t *msg = malloc(MSG);
    CHECK(msg);
    uint64_t sent = 0;
    int64_t max_q = 0;
    unsigned writable = 0, waits = 0;
    bool waiting = false;
    uint64_t deadline = rl_now_ns() + 60000 * MS;
    while (sent < TOTAL1) {
        while (!waiting && sent < TOTAL1) {
            int64_t qd = ringline_conn_queued(loop, id);
            CHECK(qd >= 0);
            if (qd > (int64_t)HIGH) {
                waiting = true;
                waits++;
                break;
            }
            lt_fill(msg, MSG, 11, sent);
            OK(ringline_conn_send(loop, id, msg, MSG, 0));
            sent += MSG;
            qd = ringline_conn_queued(loop, id);
            if (qd > max_q)
                max_q = qd;
        }
        if (sent >= TOTAL1)
            break;
        e = lt_next(&q, 50);
        if (rl_now_ns() > deadline)
            FAIL("timed out after sending %llu bytes", (unsigned long long)sent);
        if (!e)
            continue;
        if (e->type == RINGLINE_EV_WRITABLE) {
            CHECK(e->id == id);
            writable++;
            int64_t qd = ringline_conn_queued(loop, id);
            if (qd > (int64_t)LOW)
                SOFT_FAIL("WRITABLE with %lld bytes queued (low %u)",
                          (long long)qd, LOW);
            waiting = false;
        } else {
            FAIL("unexpected %s res=%d", lt_ev_name(e->type), e->res);
        }
    }
    free(msg);
    OK(ringline_conn_close(loop, id));
    for (;;) {
        e = lt_expect_any(&q, 20000);
        if (e->type == RINGLINE_EV_WRITABLE)
            continue;
        if (e->type == RINGLINE_EV_CLOSED && e->id == id) {
            CHECK(e->res == 0);
            break;
        }
        FAIL("unexpected %s", lt_ev_name(e->type));
    }
    pthread_join(t, NULL);
    CHECK(atomic_load(&g_done));
    printf("   max queued %lld (high %u + msg %u), %u waits, %u WRITABLE\n",
           (long long)max_q, HIGH, MSG, waits, writable);
    if (max_q > (int64_t)(HIGH + MSG))
        SOFT_FAIL("queue reached %lld > high + one message", (long long)max_q);
    if (writable == 0 || writable != waits)
        SOFT_FAIL("%u waits for WRITABLE but %u WRITABLE events", waits,
                  writable);
}

/* ---- 2: echo with a client that writes much and reads slowly ---- */

static void *flood_writer(void *arg)
{
    int fd = *(int *)arg;
    uint8_t *buf = malloc(MSG);
    CHECK(buf);
    for (uint64_t off = 0; off < TOTAL2; off += MSG) {
        lt_fill(buf, MSG, 22, off);
        int e = lt_write_all(fd, buf, MSG);
        if (e < 0)
            FAIL("flood writer: %s", ringline_err_name(e));
    }
    shutdown(fd, SHUT_WR);
    free(buf);
    return NULL;
}

static void *echo_client(void *arg)
{
    int fd = lt_client(g_port);
    lt_set_timeouts(fd, 20);
    pthread_t w;
    CHECK(pthread_create(&w, NULL, flood_writer, &fd) == 0);
    uint8_t *buf = malloc(MSG);
    CHECK(buf);
    uint64_t got = 0;
    unsigned reads = 0;
    while (got < TOTAL2) {
        ssize_t n = read(fd, buf, 16384);
        if (n <= 0)
            FAIL("echo client: read -> %zd (%s) after %llu", n,
                 strerror(errno), (unsigned long long)got);
        long long bad = lt_verify(buf, (size_t)n, 22, got);
        if (bad >= 0)
            FAIL("echo client: byte %llu differs", (unsigned long long)got + bad);
        got += (uint64_t)n;
        if (got < (8u << 20) && (++reads % 8) == 0)
            usleep(2000); /* slow at first */
    }
    char c;
    CHECK(read(fd, &c, 1) == 0); /* the server closes after our EOF */
    pthread_join(w, NULL);
    close(fd);
    free(buf);
    atomic_store(&g_done, 1);
    return arg;
}

static void test_echo(ringline_loop_t *loop, ringline_id_t lid)
{
    printf("2: echo, fast writer, slow reader\n");
    OK(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_ECHO, 0));
    atomic_store(&g_done, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, echo_client, NULL) == 0);
    struct lt_evq q = {.loop = loop};
    ringline_event_t *e = lt_expect_any(&q, 10000);
    CHECK(e->type == RINGLINE_EV_ACCEPTED);
    ringline_id_t id = e->id;
    int64_t max_q = 0;
    bool closed = false;
    uint64_t deadline = rl_now_ns() + 60000 * MS;
    while (!closed) {
        int64_t qd = ringline_conn_queued(loop, id);
        if (qd > max_q)
            max_q = qd;
        e = lt_next(&q, 5);
        if (rl_now_ns() > deadline)
            FAIL("echo: timed out");
        if (!e || e->type == RINGLINE_EV_WRITABLE)
            continue;
        if (e->type == RINGLINE_EV_CLOSED && e->id == id) {
            if (e->res != 0)
                SOFT_FAIL("echo connection CLOSED %d (%s)", e->res,
                          ringline_err_name(e->res));
            closed = true;
            continue;
        }
        FAIL("unexpected %s res=%d", lt_ev_name(e->type), e->res);
    }
    pthread_join(t, NULL);
    CHECK(atomic_load(&g_done));
    ringline_stats_t s = lt_stats(loop);
    printf("   max queued %lld, bytes in %llu out %llu\n", (long long)max_q,
           (unsigned long long)s.bytes_in, (unsigned long long)s.bytes_out);
    /* receiving pauses above high, but completions the multishot receive
     * already posted before its cancel lands still count (the kernel
     * retries a multishot receive up to 32 times per run, into 64 KiB
     * buffers by default, and two runs can land before the cancel):
     * measured overshoot is 0.3 .. 3.1 MiB. Bounded means far below the
     * 24 MiB the client pushes. */
    if (max_q > (int64_t)(HIGH + (4u << 20)))
        SOFT_FAIL("echo queue reached %lld (high %u)", (long long)max_q, HIGH);
    CHECK(max_q > 0);
}

int main(void)
{
    lt_watchdog(110);
    ringline_loop_t *loop = lt_loop(0, 0, 0, HIGH, LOW);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, &lid));
    g_port = (uint16_t)OK(ringline_listener_port(loop, lid));
    test_script_sender(loop, lid);
    test_echo(loop, lid);
    OK(ringline_loop_destroy(loop));
    return lt_exit();
}
