/* A tiny receive-buffer ring (4 buffers of 4 KiB) shared by 32 clients that
 * each stream 1 MiB into an ECHO server: connections run the ring dry, park
 * on ENOBUFS, and must resume when buffers come back. Every byte must be
 * echoed in order on every connection. The server runs in its own thread
 * with ringline_loop_poll(..., -1) (no timeout), so a loop that goes to
 * sleep while parked connections wait for buffers it holds itself hangs
 * here (and the watchdog fails the test) instead of being rescued by a
 * poll timeout. stats.enobufs_parks should be > 0 (a note is printed if
 * not; the data is verified either way). */
#include "rl_looptest.h"

#define NCLIENTS 32
#define PER (1u << 20)

static uint16_t g_port;
static ringline_loop_t *g_loop;
static atomic_int g_ready, g_stop, g_clients_done;
static ringline_stats_t g_stats;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* wake vs destroy */

static void *server(void *arg)
{
    ringline_loop_t *loop = lt_loop(0, 4, 4096, 0, 0);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 256, 0, &lid));
    g_port = (uint16_t)OK(ringline_listener_port(loop, lid));
    OK(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_ECHO, 0));
    g_loop = loop;
    atomic_store(&g_ready, 1);
    ringline_event_t ev[64];
    while (!atomic_load(&g_stop)) {
        int n = ringline_loop_poll(loop, ev, 64, -1);
        if (n < 0 && n != -EINTR)
            FAIL("server poll: %s", ringline_err_name(n));
        for (int i = 0; i < n; i++) {
            if (ev[i].type == RINGLINE_EV_ERROR)
                FAIL("ERROR event res %d", ev[i].res);
            if (ev[i].type == RINGLINE_EV_CLOSED && ev[i].res != 0)
                FAIL("echo connection CLOSED %d (%s)", ev[i].res,
                     ringline_err_name(ev[i].res));
        }
    }
    /* the clients are gone: their connections close */
    uint64_t deadline = rl_now_ns() + 10000 * MS;
    while (lt_stats(loop).conns_open) {
        if (rl_now_ns() > deadline)
            FAIL("connections still open");
        lt_poll(loop, ev, 64, 20);
    }
    g_stats = lt_stats(loop);
    pthread_mutex_lock(&g_mu);
    g_loop = NULL;
    pthread_mutex_unlock(&g_mu);
    OK(ringline_loop_destroy(loop));
    return arg;
}

struct cl {
    int idx;
    int fd;
};

static void *cl_writer(void *arg)
{
    struct cl *c = arg;
    uint8_t buf[8192];
    for (uint64_t off = 0; off < PER; off += sizeof buf) {
        lt_fill(buf, sizeof buf, 1000 + (uint64_t)c->idx, off);
        int e = lt_write_all(c->fd, buf, sizeof buf);
        if (e < 0)
            FAIL("client %d write: %s", c->idx, ringline_err_name(e));
    }
    shutdown(c->fd, SHUT_WR);
    return NULL;
}

static void *client(void *arg)
{
    struct cl c = {.idx = (int)(intptr_t)arg};
    c.fd = lt_client(g_port);
    lt_set_timeouts(c.fd, 30);
    pthread_t w;
    CHECK(pthread_create(&w, NULL, cl_writer, &c) == 0);
    uint8_t buf[16384];
    uint64_t got = 0;
    while (got < PER) {
        ssize_t n = read(c.fd, buf, sizeof buf);
        if (n <= 0)
            FAIL("client %d: read -> %zd (%s) after %llu bytes", c.idx, n,
                 strerror(errno), (unsigned long long)got);
        long long bad = lt_verify(buf, (size_t)n, 1000 + (uint64_t)c.idx, got);
        if (bad >= 0)
            FAIL("client %d: byte %llu differs", c.idx,
                 (unsigned long long)(got + bad));
        got += (uint64_t)n;
    }
    char x;
    ssize_t n = read(c.fd, &x, 1);
    if (n != 0)
        FAIL("client %d: want EOF after the echo, read -> %zd", c.idx, n);
    pthread_join(w, NULL);
    close(c.fd);
    atomic_fetch_add(&g_clients_done, 1);
    return NULL;
}

int main(void)
{
    lt_watchdog(60);
    pthread_t st;
    CHECK(pthread_create(&st, NULL, server, NULL) == 0);
    while (!atomic_load(&g_ready))
        usleep(1000);
    pthread_t ct[NCLIENTS];
    uint64_t t0 = rl_now_ns();
    for (int i = 0; i < NCLIENTS; i++)
        CHECK(pthread_create(&ct[i], NULL, client, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(ct[i], NULL);
    uint64_t ms = (rl_now_ns() - t0) / MS;
    CHECK(atomic_load(&g_clients_done) == NCLIENTS);
    atomic_store(&g_stop, 1);
    pthread_mutex_lock(&g_mu);
    if (g_loop)
        OK(ringline_loop_wake(g_loop));
    pthread_mutex_unlock(&g_mu);
    pthread_join(st, NULL);
    printf("%d clients x %u bytes echoed in %llu ms; enobufs parks %llu, "
           "in %llu out %llu\n",
           NCLIENTS, PER, (unsigned long long)ms,
           (unsigned long long)g_stats.enobufs_parks,
           (unsigned long long)g_stats.bytes_in,
           (unsigned long long)g_stats.bytes_out);
    CHECK(g_stats.bytes_in == (uint64_t)NCLIENTS * PER);
    CHECK(g_stats.bytes_out == (uint64_t)NCLIENTS * PER);
    CHECK(g_stats.accepted == NCLIENTS && g_stats.closed == NCLIENTS);
    if (g_stats.enobufs_parks == 0)
        printf("note: no ENOBUFS park happened; the data was verified "
               "anyway\n");
    return lt_exit();
}
