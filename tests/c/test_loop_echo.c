/* The event loop's ECHO mode against blocking clients in a thread:
 *  1. one connection, messages of 1, 7, 4096, 65536 and 1 MiB, each echoed
 *     byte for byte (a writer thread sends while the client reads);
 *  2. 2000 connections open at the same time, each echoing its own small
 *     message;
 *  3. pipelining: thousands of small writes of varied sizes before any read,
 *     all echoed in order.
 * At the end every connection is closed by its client, the server's
 * conns_open drops to 0, bytes in == bytes out, and the loop is destroyed
 * (LeakSanitizer checks that nothing was left behind). */
#include "rl_looptest.h"

#define NCONNS 2000

static uint16_t g_port;
static atomic_int g_done;
static atomic_int g_phase;

struct wjob {
    int fd;
    uint64_t seed;
    const uint8_t *buf;
    size_t len;
    size_t piece; /* 0: one write; else write in pieces of 1..piece bytes */
    int err;
};

static void *writer(void *arg)
{
    struct wjob *j = arg;
    size_t off = 0;
    uint64_t r = j->seed | 1;
    while (off < j->len) {
        size_t n = j->len - off;
        if (j->piece) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            size_t want = 1 + (size_t)(r % j->piece);
            if (n > want)
                n = want;
        }
        int e = lt_write_all(j->fd, j->buf + off, n);
        if (e < 0) {
            j->err = e;
            return NULL;
        }
        off += n;
    }
    return NULL;
}

/* Send len pattern bytes (from a writer thread) and read them back. */
static void roundtrip(int fd, uint64_t seed, size_t len, size_t piece)
{
    uint8_t *out = malloc(len), *in = malloc(len);
    CHECK(out && in);
    lt_fill(out, len, seed, 0);
    struct wjob j = {.fd = fd, .seed = seed, .buf = out, .len = len,
                     .piece = piece};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer, &j) == 0);
    int e = lt_read_exact(fd, in, len);
    pthread_join(t, NULL);
    if (j.err)
        FAIL("write of %zu bytes: %s", len, ringline_err_name(j.err));
    if (e < 0)
        FAIL("reading the echo of %zu bytes: %s", len, ringline_err_name(e));
    long long bad = lt_verify(in, len, seed, 0);
    if (bad >= 0)
        FAIL("echo of %zu bytes differs at byte %lld", len, bad);
    free(out);
    free(in);
}

static void *client(void *arg)
{
    (void)arg;
    /* 1. sizes */
    int fd = lt_client(g_port);
    static const size_t sizes[] = {1, 7, 4096, 65536, 1 << 20};
    for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        roundtrip(fd, 100 + i, sizes[i], 0);
        printf("  echoed %zu bytes\n", sizes[i]);
    }
    close(fd);

    /* 2. many connections at once */
    atomic_store(&g_phase, 2);
    static int fds[NCONNS];
    for (int i = 0; i < NCONNS; i++)
        fds[i] = lt_client(g_port);
    atomic_store(&g_phase, 3); /* all connected */
    for (int i = 0; i < NCONNS; i++) {
        uint8_t msg[32];
        lt_fill(msg, sizeof msg, 5000 + (uint64_t)i, 0);
        if (lt_write_all(fds[i], msg, sizeof msg) < 0)
            FAIL("write on connection %d: %s", i, strerror(errno));
    }
    for (int i = 0; i < NCONNS; i++) {
        uint8_t msg[32];
        int e = lt_read_exact(fds[i], msg, sizeof msg);
        if (e < 0)
            FAIL("read on connection %d: %s", i, ringline_err_name(e));
        if (lt_verify(msg, sizeof msg, 5000 + (uint64_t)i, 0) >= 0)
            FAIL("connection %d got another connection's bytes", i);
    }
    for (int i = 0; i < NCONNS; i++)
        close(fds[i]);
    printf("  %d concurrent connections echoed\n", NCONNS);

    /* 3. pipelining: ~5000 small writes, read only after */
    atomic_store(&g_phase, 4);
    fd = lt_client(g_port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    roundtrip(fd, 777, 500000, 200);
    /* a second burst on the same connection, larger pieces */
    roundtrip(fd, 778, 3 << 20, 70000);
    close(fd);
    printf("  pipelined writes echoed\n");

    atomic_store(&g_done, 1);
    return NULL;
}

int main(void)
{
    lt_watchdog(100);
    lt_raise_nofile(2 * NCONNS + 512);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * NCONNS + 256)
        SKIP("RLIMIT_NOFILE is %llu, need %d", (unsigned long long)rl.rlim_cur,
             2 * NCONNS + 256);

    ringline_loop_t *loop = lt_loop(4096, 0, 0, 0, 0);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 4096, 0, &lid));
    int port = OK(ringline_listener_port(loop, lid));
    CHECK(port > 0);
    g_port = (uint16_t)port;
    OK(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_ECHO, 0));

    pthread_t t;
    CHECK(pthread_create(&t, NULL, client, NULL) == 0);
    ringline_event_t ev[64];
    uint64_t deadline = rl_now_ns() + 60000 * MS;
    uint64_t peak = 0, accepted = 0;
    while (!atomic_load(&g_done)) {
        int n = lt_poll(loop, ev, 64, 20);
        for (int i = 0; i < n; i++) {
            switch (ev[i].type) {
            case RINGLINE_EV_ACCEPTED:
                accepted++;
                CHECK(ev[i].id2 == lid);
                break;
            case RINGLINE_EV_CLOSED:
                if (ev[i].res != 0)
                    FAIL("echo connection closed with %d (%s)", ev[i].res,
                         ringline_err_name(ev[i].res));
                break;
            case RINGLINE_EV_DATA:
            case RINGLINE_EV_FRAME:
                FAIL("an ECHO connection produced a %s event",
                     lt_ev_name(ev[i].type));
                break;
            case RINGLINE_EV_ERROR:
                FAIL("ERROR event res=%d (%s)", ev[i].res,
                     ringline_err_name(ev[i].res));
                break;
            default:
                break;
            }
        }
        ringline_stats_t s = lt_stats(loop);
        if (s.conns_open > peak)
            peak = s.conns_open;
        if (rl_now_ns() > deadline)
            FAIL("timed out in phase %d", atomic_load(&g_phase));
    }
    pthread_join(t, NULL);

    /* every client closed: the server side closes too */
    deadline = rl_now_ns() + 10000 * MS;
    for (;;) {
        ringline_stats_t s = lt_stats(loop);
        if (s.conns_open == 0)
            break;
        if (rl_now_ns() > deadline)
            FAIL("%llu connections still open after the clients left",
                 (unsigned long long)s.conns_open);
        lt_poll(loop, ev, 64, 20);
    }
    ringline_stats_t s = lt_stats(loop);
    printf("accepted %llu (events %llu), peak open %llu, in %llu out %llu, "
           "enobufs parks %llu\n",
           (unsigned long long)s.accepted, (unsigned long long)accepted,
           (unsigned long long)peak, (unsigned long long)s.bytes_in,
           (unsigned long long)s.bytes_out,
           (unsigned long long)s.enobufs_parks);
    CHECK(s.accepted == NCONNS + 2);
    CHECK(accepted == NCONNS + 2);
    CHECK(s.closed == NCONNS + 2);
    CHECK(peak >= NCONNS);
    CHECK(s.bytes_in == s.bytes_out);
    uint64_t expect = 1 + 7 + 4096 + 65536 + (1 << 20) + (uint64_t)NCONNS * 32 +
                      500000 + (3 << 20);
    CHECK(s.bytes_in == expect);
    OK(ringline_loop_destroy(loop));
    printf("ok\n");
    return 0;
}
