/* Helpers for the event-loop tests (test_loop_*.c): loop creation, a
 * bounded poll wrapper, blocking client sockets with timeouts, and a
 * watchdog so that no test can hang ctest. Header-only, like rl_test.h. */
#ifndef RL_LOOPTEST_H
#define RL_LOOPTEST_H

#include "rl_test.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/time.h>

#define MS 1000000ull

/* A failure that lets the rest of the test run; lt_exit() reports it. */
static int lt_soft_failures;
#define SOFT_FAIL(...)                                                         \
    do {                                                                       \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        lt_soft_failures++;                                                    \
    } while (0)

static inline int lt_exit(void)
{
    if (lt_soft_failures) {
        fprintf(stderr, "%d check(s) failed\n", lt_soft_failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}

/* Kill the test (as a failure) if it runs longer than `sec` seconds. */
static void lt_alarm_handler(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL: watchdog: test took too long\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(1);
}

static inline void lt_watchdog(unsigned sec)
{
    signal(SIGALRM, lt_alarm_handler);
    alarm(sec);
}

/* A loop with optional settings (0 = default). */
static inline ringline_loop_t *lt_loop(unsigned max_conns, unsigned buf_count,
                                       unsigned buf_size, size_t high,
                                       size_t low)
{
    ringline_config_t *cfg = NULL;
    OK(ringline_config_new(&cfg));
    if (max_conns)
        OK(ringline_config_set_max_conns(cfg, max_conns));
    if (buf_count)
        OK(ringline_config_set_recv_buffers(cfg, buf_count, buf_size));
    if (high)
        OK(ringline_config_set_send_limits(cfg, high, low));
    ringline_loop_t *loop = NULL;
    int r = ringline_loop_new(cfg, &loop);
    OK(ringline_config_free(cfg));
    if (r == -EOPNOTSUPP)
        SKIP("kernel lacks multishot recv/accept (ringline_loop_new: %s)",
             ringline_err_name(r));
    if (r < 0)
        FAIL("ringline_loop_new -> %d (%s)", r, ringline_err_name(r));
    return loop;
}

/* One poll that must not fail (-EINTR gives 0 events). */
static inline int lt_poll(ringline_loop_t *loop, ringline_event_t *ev,
                          unsigned max, int64_t timeout_ms)
{
    int n = ringline_loop_poll(loop, ev, max,
                               timeout_ms < 0 ? -1 : timeout_ms * (int64_t)MS);
    if (n == -EINTR)
        return 0;
    if (n < 0)
        FAIL("ringline_loop_poll -> %d (%s)", n, ringline_err_name(n));
    if ((unsigned)n > max)
        FAIL("ringline_loop_poll returned %d > max %u", n, max);
    return n;
}

static inline const char *lt_ev_name(uint32_t t)
{
    static const char *names[] = {"?",        "ACCEPTED", "CONNECTED", "DATA",
                                  "FRAME",    "EOF",      "SENT",      "WRITABLE",
                                  "CLOSED",   "TIMER",    "DATAGRAM",  "WAKE",
                                  "SIGNAL",   "ERROR",    "STOPPED"};
    return t < sizeof names / sizeof *names ? names[t] : "?";
}

static inline void lt_set_timeouts(int fd, int sec)
{
    struct timeval tv = {.tv_sec = sec};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A blocking client with 10 s send/receive timeouts. */
static inline int lt_client(uint16_t port)
{
    int fd = rl_connect_tcp(port);
    lt_set_timeouts(fd, 10);
    return fd;
}

/* Read exactly len bytes; returns 0, or -errno / -EPIPE on early EOF. */
static inline int lt_read_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write all; returns 0 or -errno. */
static inline int lt_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read until EOF, at most cap bytes; returns bytes read or -errno. */
static inline ssize_t lt_read_to_eof(int fd, void *buf, size_t cap)
{
    uint8_t *p = buf;
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, p + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return (ssize_t)got;
        got += (size_t)n;
        if (got == cap) {
            char c;
            n = read(fd, &c, 1);
            return n == 0 ? (ssize_t)got : -EMSGSIZE;
        }
    }
}

static inline void lt_fill(uint8_t *buf, size_t len, uint64_t seed,
                           uint64_t start)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = rl_pattern(seed, start + i);
}

/* Index of the first byte differing from the pattern, or -1. */
static inline long long lt_verify(const uint8_t *buf, size_t len,
                                  uint64_t seed, uint64_t start)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] != rl_pattern(seed, start + i))
            return (long long)i;
    return -1;
}

static inline void lt_raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static inline ringline_stats_t lt_stats(ringline_loop_t *loop)
{
    ringline_stats_t s;
    memset(&s, 0, sizeof s);
    OK(ringline_loop_stats(loop, &s, sizeof s));
    return s;
}

/* Run a loop (in the calling thread) until *done becomes nonzero, failing
 * after timeout_ms. Events are discarded (except that ERROR events fail). */
static inline void lt_run_until(ringline_loop_t *loop, atomic_int *done,
                                int timeout_ms)
{
    ringline_event_t ev[64];
    uint64_t deadline = rl_now_ns() + (uint64_t)timeout_ms * MS;
    while (!atomic_load(done)) {
        int n = lt_poll(loop, ev, 64, 20);
        for (int i = 0; i < n; i++)
            if (ev[i].type == RINGLINE_EV_ERROR)
                FAIL("ERROR event id=%llx res=%d (%s)",
                     (unsigned long long)ev[i].id, ev[i].res,
                     ringline_err_name(ev[i].res));
        if (rl_now_ns() > deadline)
            FAIL("lt_run_until: timed out after %d ms", timeout_ms);
    }
}

/* Events one at a time: a new poll happens only once every event of the
 * current batch was taken, so the data of the event returned stays valid
 * until the next lt_next() call that has to poll (and ringline_conn_consume
 * may be called for it until then). */
struct lt_evq {
    ringline_loop_t *loop;
    ringline_event_t ev[64];
    int n, i;
    unsigned max; /* batch size asked for (<= 64; 0 = 64) */
};

static inline ringline_event_t *lt_next(struct lt_evq *q, int timeout_ms)
{
    uint64_t deadline = rl_now_ns() + (uint64_t)timeout_ms * MS;
    while (q->i >= q->n) {
        q->i = 0;
        q->n = lt_poll(q->loop, q->ev, q->max ? q->max : 64, 20);
        if (q->n == 0 && rl_now_ns() > deadline)
            return NULL;
    }
    return &q->ev[q->i++];
}

/* The next event, which must come within timeout_ms. */
static inline ringline_event_t *lt_expect_any(struct lt_evq *q, int timeout_ms)
{
    ringline_event_t *e = lt_next(q, timeout_ms);
    if (!e)
        FAIL("no event within %d ms", timeout_ms);
    return e;
}

#endif
