/* Helpers shared by the networking / completion-queue tests: ring creation
 * with a small config, reaping loops that retry -EINTR and bound the time,
 * and blocking socket utilities. Header-only, like rl_test.h. */
#ifndef RL_NET_H
#define RL_NET_H

#include "rl_test.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

/* A ring with sq/cq entries (0 = library default). */
static inline ringline_ring_t *rln_ring(unsigned sq, unsigned cq)
{
    ringline_ring_t *ring = NULL;
    ringline_config_t *cfg = NULL;
    OK(ringline_config_new(&cfg));
    if (sq)
        OK(ringline_config_set_sq_entries(cfg, sq));
    if (cq)
        OK(ringline_config_set_cq_entries(cfg, cq));
    OK(ringline_ring_new(cfg, &ring));
    OK(ringline_config_free(cfg));
    CHECK(ring != NULL);
    return ring;
}

/* One ringline_ring_reap call, retrying -EINTR; fails on other errors. */
static inline int rln_reap(ringline_ring_t *ring, ringline_cqe_t *out,
                           unsigned max, unsigned wait_nr, int64_t timeout_ns)
{
    for (;;) {
        int n = ringline_ring_reap(ring, out, max, wait_nr, timeout_ns);
        if (n == -EINTR)
            continue;
        if (n < 0)
            FAIL("ringline_ring_reap -> %d (%s)", n, ringline_err_name(n));
        if ((unsigned)n > max)
            FAIL("ringline_ring_reap returned %d > max %u", n, max);
        return n;
    }
}

/* Submit what is queued (without harvesting anything). */
static inline void rln_submit(ringline_ring_t *ring)
{
    for (;;) {
        int n = ringline_ring_submit(ring);
        if (n == -EINTR)
            continue;
        if (n < 0)
            FAIL("ringline_ring_submit -> %d (%s)", n, ringline_err_name(n));
        return;
    }
}

/* Collect exactly n completions into out[]; fails after timeout_ms. */
static inline void rln_reap_n(ringline_ring_t *ring, ringline_cqe_t *out,
                              unsigned n, int timeout_ms)
{
    uint64_t deadline = rl_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    unsigned got = 0;
    while (got < n) {
        got += (unsigned)rln_reap(ring, out + got, n - got, 1, 20 * 1000000ll);
        if (got < n && rl_now_ns() > deadline)
            FAIL("timed out: got %u of %u completions", got, n);
    }
}

/* The unique completion carrying token among c[0..n). */
static inline ringline_cqe_t rln_find(const ringline_cqe_t *c, unsigned n,
                                      uint64_t token)
{
    int at = -1;
    for (unsigned i = 0; i < n; i++) {
        if (c[i].token == token) {
            if (at >= 0)
                FAIL("token %llu completed twice", (unsigned long long)token);
            at = (int)i;
        }
    }
    if (at < 0)
        FAIL("no completion for token %llu", (unsigned long long)token);
    return c[at];
}

/* Nothing at all may complete within ms milliseconds. */
static inline void rln_expect_none(ringline_ring_t *ring, int ms)
{
    uint64_t deadline = rl_now_ns() + (uint64_t)ms * 1000000ull;
    ringline_cqe_t c;
    while (rl_now_ns() < deadline) {
        int n = rln_reap(ring, &c, 1, 1, 10 * 1000000ll);
        if (n)
            FAIL("unexpected completion token=%llu res=%d (%s) flags=%#x",
                 (unsigned long long)c.token, c.res,
                 c.res < 0 ? ringline_err_name(c.res) : "ok", c.flags);
    }
}

/* Blocking read of exactly len bytes (fails on EOF/error/timeout). */
static inline void rln_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            FAIL("read: %s", strerror(errno));
        if (n == 0)
            FAIL("read: unexpected EOF with %zu bytes missing", len);
        p += n;
        len -= (size_t)n;
    }
}

/* SO_RCVTIMEO / SO_SNDTIMEO so blocking socket calls cannot hang a test. */
static inline void rln_sock_timeout(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Hard upper bound on a test's run time (SIGALRM kills it: a failure). */
static inline void rln_watchdog(unsigned seconds)
{
    signal(SIGALRM, SIG_DFL);
    alarm(seconds);
}

static inline void rln_fill_pattern(void *buf, size_t len, uint64_t seed,
                                    uint64_t start)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = rl_pattern(seed, start + i);
}

/* Index of the first byte that differs from the pattern, or -1. */
static inline long rln_check_pattern(const void *buf, size_t len,
                                     uint64_t seed, uint64_t start)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != rl_pattern(seed, start + i))
            return (long)i;
    return -1;
}

static inline const char *rln_res(int res)
{
    return res < 0 ? ringline_err_name(res) : "ok";
}

#endif
