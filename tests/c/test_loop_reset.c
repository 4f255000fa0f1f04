/* Connections that end badly in the middle of large sends:
 *  1. the peer resets (SO_LINGER 0, close) while the server has tens of MiB
 *     queued: CLOSED with a negative res (ECONNRESET / EPIPE), every tagged
 *     send gets exactly one SENT event, before CLOSED;
 *  2. the same with a zero-copy send_ref buffer in flight: its SENT comes
 *     (so the caller may free the buffer) before CLOSED;
 *  3. the server aborts (ringline_conn_abort) while a send is blocked on a
 *     peer that does not read: CLOSED -ECONNABORTED, the peer gets a reset,
 *     every tagged send gets its SENT;
 *  4. an ECHO connection whose client writes a lot without reading, then
 *     resets.
 * Then the loop is destroyed: LeakSanitizer (asan build) finds any send
 * chunk that was lost on the way. */
#include "rl_looptest.h"

#define CHUNK (1 << 20)
#define NCHUNKS 24

static uint16_t g_port;
static atomic_int g_go;

enum { C_READ_THEN_RESET, C_NO_READ_WAIT, C_ECHO_FLOOD };

struct cjob {
    int kind;
    size_t read_first; /* bytes to read before the reset */
    int result;        /* C_NO_READ_WAIT: errno of the final read */
};

static void reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void *client(void *arg)
{
    struct cjob *j = arg;
    int fd = lt_client(g_port);
    uint8_t *buf = malloc(1 << 16);
    CHECK(buf);
    switch (j->kind) {
    case C_READ_THEN_RESET: {
        size_t got = 0;
        while (got < j->read_first) {
            size_t want = j->read_first - got;
            if (want > (1 << 16))
                want = 1 << 16;
            ssize_t n = read(fd, buf, want);
            if (n <= 0)
                FAIL("client: read -> %zd (%s)", n, strerror(errno));
            got += (size_t)n;
        }
        reset_close(fd);
        break;
    }
    case C_NO_READ_WAIT: {
        /* wait for the server's abort without reading, then drain: the
         * stream must end with a reset, not a clean EOF */
        while (!atomic_load(&g_go))
            usleep(1000);
        int err = 0;
        for (;;) {
            ssize_t n = read(fd, buf, 1 << 16);
            if (n > 0)
                continue;
            err = n == 0 ? 0 : errno;
            break;
        }
        j->result = err;
        close(fd);
        break;
    }
    case C_ECHO_FLOOD: {
        memset(buf, 'e', 1 << 16);
        /* write until the pipe is full (nobody reads the echo), then reset */
        struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        size_t sent = 0;
        for (;;) {
            ssize_t n = send(fd, buf, 1 << 16, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            sent += (size_t)n;
            if (sent > (256u << 20))
                FAIL("client: the echo server never pushed back");
        }
        reset_close(fd);
        break;
    }
    }
    free(buf);
    return NULL;
}

/* Wait for ACCEPTED (ignoring nothing else). */
static ringline_id_t wait_accept(struct lt_evq *q)
{
    ringline_event_t *e = lt_expect_any(q, 10000);
    if (e->type != RINGLINE_EV_ACCEPTED)
        FAIL("want ACCEPTED, got %s", lt_ev_name(e->type));
    return e->id;
}

/* Collect SENT events (tags 1..ntags expected exactly once) until CLOSED;
 * returns CLOSED's res. */
static unsigned g_seen[64];

static int until_closed(struct lt_evq *q, ringline_id_t id, unsigned ntags,
                        int *sent_ok, int *sent_err)
{
    unsigned *seen = g_seen; /* tags seen before the call were counted */
    *sent_ok = *sent_err = 0;
    for (;;) {
        ringline_event_t *e = lt_expect_any(q, 10000);
        if (e->id != id)
            FAIL("event %s for another id", lt_ev_name(e->type));
        switch (e->type) {
        case RINGLINE_EV_SENT:
            CHECK(e->tag >= 1 && e->tag <= ntags);
            if (seen[e->tag]++)
                FAIL("SENT tag %llu twice", (unsigned long long)e->tag);
            if (e->res > 0)
                (*sent_ok)++;
            else
                (*sent_err)++;
            break;
        case RINGLINE_EV_CLOSED:
            for (unsigned t = 1; t <= ntags; t++)
                if (!seen[t])
                    SOFT_FAIL("no SENT event for tag %u before CLOSED "
                              "(res %d %s)", t, e->res,
                              ringline_err_name(e->res));
            return e->res;
        case RINGLINE_EV_WRITABLE:
        case RINGLINE_EV_DATA:
        case RINGLINE_EV_EOF:
            break;
        default:
            FAIL("unexpected %s res=%d", lt_ev_name(e->type), e->res);
        }
    }
}

static void queue_big(ringline_loop_t *loop, ringline_id_t id,
                      const uint8_t *src)
{
    memset(g_seen, 0, sizeof g_seen);
    for (unsigned i = 0; i < NCHUNKS; i++)
        OK(ringline_conn_send(loop, id, src, CHUNK, i + 1));
}

int main(void)
{
    lt_watchdog(100);
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, &lid));
    g_port = (uint16_t)OK(ringline_listener_port(loop, lid));
    struct lt_evq q = {.loop = loop};
    uint8_t *src = malloc(CHUNK);
    CHECK(src);
    lt_fill(src, CHUNK, 1, 0);
    int ok, err;

    /* 1. peer resets after reading various amounts */
    static const size_t reads[] = {0, 1, 100000, 3 * CHUNK + 17};
    for (unsigned i = 0; i < sizeof reads / sizeof *reads; i++) {
        struct cjob j = {.kind = C_READ_THEN_RESET, .read_first = reads[i]};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, client, &j) == 0);
        ringline_id_t id = wait_accept(&q);
        queue_big(loop, id, src);
        int res = until_closed(&q, id, NCHUNKS, &ok, &err);
        pthread_join(t, NULL);
        printf("reset after %zu bytes read: CLOSED %d (%s), SENT ok %d, "
               "failed %d\n", reads[i], res, ringline_err_name(res), ok, err);
        if (res >= 0)
            SOFT_FAIL("CLOSED res %d after a peer reset, want < 0", res);
        if (res != -ECONNRESET && res != -EPIPE)
            printf("  note: res is %s\n", ringline_err_name(res));
        EXPECT_ERR(ringline_conn_send(loop, id, "x", 1, 0), -EBADF);
    }

    /* 2. zero-copy send_ref in flight when the peer resets */
    {
        size_t big = 8u << 20;
        uint8_t *zbuf = malloc(big);
        CHECK(zbuf);
        memset(zbuf, 'z', big);
        struct cjob j = {.kind = C_READ_THEN_RESET, .read_first = 50000};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, client, &j) == 0);
        ringline_id_t id = wait_accept(&q);
        memset(g_seen, 0, sizeof g_seen);
        OK(ringline_conn_send_ref(loop, id, zbuf, big, 1));
        OK(ringline_conn_send_ref(loop, id, zbuf, big, 2));
        OK(ringline_conn_send(loop, id, src, 1000, 3));
        int res = until_closed(&q, id, 3, &ok, &err);
        pthread_join(t, NULL);
        printf("reset during send_ref: CLOSED %d (%s), SENT ok %d failed %d\n",
               res, ringline_err_name(res), ok, err);
        if (res >= 0)
            SOFT_FAIL("CLOSED res %d after a peer reset, want < 0", res);
        ringline_stats_t s = lt_stats(loop);
        printf("  zero-copy sends so far: %llu\n",
               (unsigned long long)s.sends_zc);
        /* every SENT came: the buffer is ours again */
        free(zbuf);
    }

    /* 3. the server aborts while its send is blocked */
    {
        atomic_store(&g_go, 0);
        ok = 0;
        struct cjob j = {.kind = C_NO_READ_WAIT};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, client, &j) == 0);
        ringline_id_t id = wait_accept(&q);
        queue_big(loop, id, src);
        /* let the first send block on the full socket buffers */
        uint64_t until = rl_now_ns() + 200 * MS;
        while (rl_now_ns() < until) {
            ringline_event_t *e = lt_next(&q, 20);
            if (e && e->type != RINGLINE_EV_SENT)
                FAIL("unexpected %s", lt_ev_name(e->type));
            if (e) {
                CHECK(e->res > 0 && e->tag >= 1 && e->tag <= NCHUNKS);
                CHECK(!g_seen[e->tag]++);
                ok++;
            }
        }
        int64_t qd = ringline_conn_queued(loop, id);
        printf("abort with %lld bytes queued\n", (long long)qd);
        CHECK(qd > 0);
        OK(ringline_conn_abort(loop, id));
        int ok0 = ok;
        int res = until_closed(&q, id, NCHUNKS, &ok, &err);
        ok += ok0;
        atomic_store(&g_go, 1);
        pthread_join(t, NULL);
        printf("abort: CLOSED %d (%s), SENT ok %d failed %d; peer saw %s\n",
               res, ringline_err_name(res), ok, err,
               j.result ? strerror(j.result) : "EOF");
        if (res != -ECONNABORTED)
            SOFT_FAIL("CLOSED res %d (%s) after abort, want ECONNABORTED", res,
                      ringline_err_name(res));
        if (j.result != ECONNRESET)
            SOFT_FAIL("peer saw %s after an abort with unsent bytes, want a "
                      "reset", j.result ? strerror(j.result) : "EOF");
    }

    /* 4. an echo connection flooded, then reset */
    OK(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_ECHO, 0));
    for (int i = 0; i < 3; i++) {
        memset(g_seen, 0, sizeof g_seen);
        struct cjob j = {.kind = C_ECHO_FLOOD};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, client, &j) == 0);
        ringline_id_t id = wait_accept(&q);
        int res = until_closed(&q, id, 0, &ok, &err);
        pthread_join(t, NULL);
        printf("echo flood + reset: CLOSED %d (%s)\n", res,
               ringline_err_name(res));
        if (res >= 0)
            SOFT_FAIL("CLOSED res %d after a peer reset, want < 0", res);
    }

    ringline_stats_t s = lt_stats(loop);
    CHECK(s.conns_open == 0);
    /* every receive buffer came back: a fresh echo still works */
    {
        int fd = lt_client(g_port);
        uint8_t m[100000], in[100000];
        lt_fill(m, sizeof m, 9, 0);
        CHECK(lt_write_all(fd, m, sizeof m) == 0);
        atomic_int done = 0;
        (void)done;
        /* pump the loop while reading */
        size_t got = 0;
        fcntl(fd, F_SETFL, O_NONBLOCK);
        uint64_t deadline = rl_now_ns() + 10000 * MS;
        while (got < sizeof in) {
            ringline_event_t ev[16];
            lt_poll(loop, ev, 16, 5);
            ssize_t n = read(fd, in + got, sizeof in - got);
            if (n > 0)
                got += (size_t)n;
            if (rl_now_ns() > deadline)
                FAIL("echo after the resets: got %zu bytes", got);
        }
        CHECK(memcmp(in, m, sizeof m) == 0);
        close(fd);
    }
    free(src);
    OK(ringline_loop_destroy(loop));
    return lt_exit();
}
