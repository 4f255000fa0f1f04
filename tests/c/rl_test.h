/* Shared helpers for the C tests: assertions that report file:line, the
 * 77-means-skipped convention, and loopback socket set-up. Header-only so each
 * test stays one self-contained program. */
#ifndef RL_TEST_H
#define RL_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringline.h"

#define RL_SKIP 77

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        exit(1);                                                               \
    } while (0)

#define SKIP(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "SKIP: ");                                             \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        exit(RL_SKIP);                                                         \
    } while (0)

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            FAIL("check failed: %s", #cond);                                   \
    } while (0)

/* An int call that must return >= 0. */
#define OK(expr)                                                               \
    ({                                                                         \
        int rl__r = (expr);                                                    \
        if (rl__r < 0)                                                         \
            FAIL("%s -> %d (%s)", #expr, rl__r, ringline_err_name(rl__r));     \
        rl__r;                                                                 \
    })

/* An int call that must return exactly the negative errno `want`. */
#define EXPECT_ERR(expr, want)                                                 \
    do {                                                                       \
        int rl__r = (expr);                                                    \
        if (rl__r != (want))                                                   \
            FAIL("%s -> %d (%s), want %d (%s)", #expr, rl__r,                  \
                 ringline_err_name(rl__r), (int)(want),                        \
                 ringline_err_name(want));                                     \
    } while (0)

static inline uint64_t rl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Skip unless the ring reports all of `bits`. */
static inline void rl_require(ringline_ring_t *ring, uint64_t bits,
                              const char *what)
{
    uint64_t f = 0;
    OK(ringline_ring_features(ring, &f));
    if ((f & bits) != bits)
        SKIP("kernel lacks %s", what);
}

/* A listening TCP socket on 127.0.0.1, ephemeral port; *port gets it. */
static inline int rl_listen_tcp(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        FAIL("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        FAIL("bind: %s", strerror(errno));
    if (listen(fd, 4096) < 0)
        FAIL("listen: %s", strerror(errno));
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    if (port)
        *port = ntohs(a.sin_port);
    return fd;
}

/* A blocking client socket connected to 127.0.0.1:port. */
static inline int rl_connect_tcp(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        FAIL("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        FAIL("connect: %s", strerror(errno));
    return fd;
}

/* A connected TCP pair over loopback: *a is the client, *b the accepted end. */
static inline void rl_tcp_pair(int *a, int *b)
{
    uint16_t port;
    int l = rl_listen_tcp(&port);
    *a = rl_connect_tcp(port);
    *b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (*b < 0)
        FAIL("accept: %s", strerror(errno));
    close(l);
}

/* Write all of buf with blocking writes. */
static inline void rl_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            FAIL("write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Deterministic test pattern: byte i of stream `seed`. */
static inline uint8_t rl_pattern(uint64_t seed, uint64_t i)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29;
    return (uint8_t)(x * 0xBF58476D1CE4E5B9ull >> 56);
}

/* Reap completions until one with `token` arrives (others are stored into
 * extra[] if given, else failure). Fails after timeout_ms. */
static inline ringline_cqe_t rl_wait_token(ringline_ring_t *ring,
                                           uint64_t token, int timeout_ms)
{
    uint64_t deadline = rl_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        ringline_cqe_t c;
        int n = ringline_ring_reap(ring, &c, 1, 1, 10 * 1000000ll);
        if (n == -EINTR)
            continue;
        if (n < 0)
            FAIL("reap: %s", ringline_err_name(n));
        if (n == 1) {
            if (c.token == token)
                return c;
            FAIL("unexpected completion token=%llu res=%d flags=%x",
                 (unsigned long long)c.token, c.res, c.flags);
        }
        if (rl_now_ns() > deadline)
            FAIL("timed out waiting for token %llu",
                 (unsigned long long)token);
    }
}

#endif
