/* Loop UDP sockets.
 *
 * exchange (multishot and single-shot configs): two bound sockets exchange
 * 100 datagrams (sizes 0 to 60000) in both directions, each DATAGRAM
 * carrying the exact payload and the sender's address, in order; replies go
 * to the address an event gave; a plain UDP socket talks to a loop socket;
 * bad arguments are refused; udp_close gives CLOSED and kills the id.
 *
 * burst: 500 datagrams of 1..1472 bytes from two client sockets arrive in
 * order, intact, with the right source port each, many per poll.
 * truncation: a datagram longer than a UDP buffer is cut and reported
 * (res -EMSGSIZE, tag = full length), the socket goes on.
 * exhaustion: a 4-buffer group and 300 queued datagrams: ENOBUFS parks the
 * receive, buffers come back every poll, every datagram arrives, polls and
 * completions stay proportional (no busy re-arming), an idle parked-free
 * loop makes no completions.
 * close: closing sockets with the multishot armed and datagrams waiting
 * (stashed behind a full batch), event bytes readable until the next poll
 * (ASan), every buffer back in the group afterwards. */
#include "rl_looptest.h"

#define NDG 100

static size_t dg_size(int i)
{
    if (i == 0)
        return 0;
    if (i == 50)
        return 60000;
    if (i == 75)
        return 8192;
    return (size_t)((i * 97) % 1400) + 1;
}

static uint16_t addr_port(const struct sockaddr *a, uint32_t len)
{
    CHECK(a != NULL);
    CHECK(len >= sizeof(struct sockaddr_in));
    CHECK(a->sa_family == AF_INET);
    const struct sockaddr_in *in = (const void *)a;
    CHECK(in->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    return ntohs(in->sin_port);
}

#define UDP_BGID 0x7FFE /* the loop's UDP group (core/udp.c) */

static ringline_loop_t *udp_loop(unsigned count, unsigned size, bool set)
{
    ringline_config_t *cfg = NULL;
    OK(ringline_config_new(&cfg));
    if (set)
        OK(ringline_config_set_udp_buffers(cfg, count, size));
    ringline_loop_t *loop = NULL;
    int r = ringline_loop_new(cfg, &loop);
    OK(ringline_config_free(cfg));
    if (r == -EOPNOTSUPP)
        SKIP("kernel lacks multishot recv/accept");
    OK(r);
    return loop;
}

/* The loop socket's fd (there is no accessor): the one datagram socket
 * bound to port. Used to enlarge its receive buffer, so any loss in the
 * tests below is the loop's, not the socket buffer's. */
static int find_udp_fd(int port)
{
    for (int fd = 3; fd < 4096; fd++) {
        int type = 0;
        socklen_t tl = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
            type != SOCK_DGRAM)
            continue;
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        if (getsockname(fd, (struct sockaddr *)&a, &al) == 0 &&
            a.sin_family == AF_INET && ntohs(a.sin_port) == port)
            return fd;
    }
    FAIL("no socket bound to port %d", port);
}

static void big_rcvbuf(int port)
{
    int fd = find_udp_fd(port);
    int want = 4 << 20;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want) == 0);
}

static int client_socket(struct sockaddr_in *me)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    *me = a;
    return fd;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return a;
}

static size_t burst_size(int i) { return (size_t)((i * 631) % 1472) + 1; }

static void test_burst(void)
{
    ringline_loop_t *loop = udp_loop(0, 0, false);
    ringline_id_t u;
    OK(ringline_udp_bind(loop, "127.0.0.1", 0, &u));
    int port = OK(ringline_udp_port(loop, u));
    big_rcvbuf(port);
    struct sockaddr_in to = loopback(port), me[2];
    int cfd[2] = {client_socket(&me[0]), client_socket(&me[1])};
    enum { N = 500 };
    static uint8_t buf[2048];
    ringline_event_t ev[64];
    ringline_stats_t s0 = lt_stats(loop);
    int sent = 0, got = 0, polls = 0, max_per_poll = 0;
    uint64_t deadline = rl_now_ns() + 20000 * MS;
    while (got < N) {
        /* a window of 64 queued datagrams (~300 KiB of socket buffer at
         * most, far under the 4 MiB set above) */
        while (sent < N && sent - got < 64) {
            size_t n = burst_size(sent);
            lt_fill(buf, n, 5000 + (uint64_t)sent, 0);
            int c = sent & 1;
            CHECK(sendto(cfd[c], buf, n, 0, (struct sockaddr *)&to,
                         sizeof to) == (ssize_t)n);
            sent++;
        }
        int n = lt_poll(loop, ev, 64, 20);
        polls++;
        int dg = 0;
        for (int i = 0; i < n; i++) {
            ringline_event_t *e = &ev[i];
            if (e->type != RINGLINE_EV_DATAGRAM || e->id != u)
                FAIL("burst: unexpected %s res=%d", lt_ev_name(e->type),
                     e->res);
            size_t want = burst_size(got);
            if (e->len != want || e->res != 0 || e->tag != want)
                FAIL("burst: datagram %d: len %llu res %d tag %llu, want %zu",
                     got, (unsigned long long)e->len, e->res,
                     (unsigned long long)e->tag, want);
            if (lt_verify(e->data, want, 5000 + (uint64_t)got, 0) >= 0)
                FAIL("burst: datagram %d payload differs", got);
            if (addr_port(e->addr, e->addrlen) != ntohs(me[got & 1].sin_port))
                FAIL("burst: datagram %d from port %u, want %u", got,
                     addr_port(e->addr, e->addrlen),
                     ntohs(me[got & 1].sin_port));
            got++;
            dg++;
        }
        if (dg > max_per_poll)
            max_per_poll = dg;
        if (rl_now_ns() > deadline)
            FAIL("burst: timed out, sent %d got %d", sent, got);
    }
    ringline_stats_t s1 = lt_stats(loop);
    printf("burst: %d datagrams in %d polls (max %d per poll), %llu cqes\n",
           N, polls, max_per_poll, (unsigned long long)(s1.cqes - s0.cqes));
    if (max_per_poll < 2)
        FAIL("burst: never more than one datagram per poll");
    if (polls > N / 4)
        FAIL("burst: %d polls for %d datagrams", polls, N);
    close(cfd[0]);
    close(cfd[1]);
    OK(ringline_loop_destroy(loop));
}

static void test_truncation(void)
{
    /* 256-byte buffers: 256 - 48 = 208 bytes of payload */
    ringline_loop_t *loop = udp_loop(8, 256, true);
    ringline_id_t u;
    OK(ringline_udp_bind(loop, "127.0.0.1", 0, &u));
    int port = OK(ringline_udp_port(loop, u));
    struct sockaddr_in to = loopback(port), me;
    int fd = client_socket(&me);
    static uint8_t buf[4096];
    size_t sizes[4] = {100, 208, 209, 3000};
    for (int i = 0; i < 4; i++) {
        lt_fill(buf, sizes[i], 90 + (uint64_t)i, 0);
        CHECK(sendto(fd, buf, sizes[i], 0, (struct sockaddr *)&to,
                     sizeof to) == (ssize_t)sizes[i]);
    }
    struct lt_evq q = {.loop = loop};
    for (int i = 0; i < 4; i++) {
        ringline_event_t *e = lt_expect_any(&q, 5000);
        CHECK(e->type == RINGLINE_EV_DATAGRAM && e->id == u);
        size_t keep = sizes[i] < 208 ? sizes[i] : 208;
        if (e->len != keep || e->tag != sizes[i])
            FAIL("trunc %d: len %llu tag %llu, want %zu/%zu", i,
                 (unsigned long long)e->len, (unsigned long long)e->tag, keep,
                 sizes[i]);
        if (sizes[i] > 208) {
            if (e->res != -EMSGSIZE)
                FAIL("trunc %d: res %d, want -EMSGSIZE", i, e->res);
        } else {
            CHECK(e->res == 0);
        }
        /* the kept part is the datagram's start */
        if (lt_verify(e->data, keep, 90 + (uint64_t)i, 0) >= 0)
            FAIL("trunc %d: payload differs", i);
        CHECK(addr_port(e->addr, e->addrlen) == ntohs(me.sin_port));
    }
    close(fd);
    OK(ringline_loop_destroy(loop));
}

static void test_exhaustion(void)
{
    enum { NB = 4, N = 300 };
    ringline_loop_t *loop = udp_loop(NB, 2048, true);
    ringline_ring_t *ring;
    OK(ringline_loop_ring(loop, &ring));
    ringline_id_t u;
    OK(ringline_udp_bind(loop, "127.0.0.1", 0, &u));
    int port = OK(ringline_udp_port(loop, u));
    big_rcvbuf(port);
    struct sockaddr_in to = loopback(port), me;
    int fd = client_socket(&me);
    static uint8_t buf[2048];
    /* all N queued at once: ~1 MiB of socket buffer, under the 4 MiB */
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i % 1000) + 1;
        lt_fill(buf, n, 300 + (uint64_t)i, 0);
        CHECK(sendto(fd, buf, n, 0, (struct sockaddr *)&to, sizeof to) ==
              (ssize_t)n);
    }
    ringline_stats_t s0 = lt_stats(loop);
    ringline_event_t ev[64];
    int got = 0, polls = 0;
    uint64_t deadline = rl_now_ns() + 20000 * MS;
    while (got < N) {
        int n = lt_poll(loop, ev, 64, 20);
        polls++;
        if (n > NB)
            FAIL("exhaustion: %d events from %d buffers", n, NB);
        for (int i = 0; i < n; i++) {
            ringline_event_t *e = &ev[i];
            if (e->type != RINGLINE_EV_DATAGRAM)
                FAIL("exhaustion: unexpected %s res=%d", lt_ev_name(e->type),
                     e->res);
            size_t want = (size_t)(got % 1000) + 1;
            if (e->len != want || e->res != 0)
                FAIL("exhaustion: datagram %d: %llu bytes res %d, want %zu",
                     got, (unsigned long long)e->len, e->res, want);
            if (lt_verify(e->data, want, 300 + (uint64_t)got, 0) >= 0)
                FAIL("exhaustion: datagram %d payload differs", got);
            CHECK(addr_port(e->addr, e->addrlen) == ntohs(me.sin_port));
            got++;
        }
        if (rl_now_ns() > deadline)
            FAIL("exhaustion: timed out with %d of %d", got, N);
    }
    ringline_stats_t s1 = lt_stats(loop);
    unsigned long long cqes = s1.cqes - s0.cqes;
    unsigned long long parks = s1.enobufs_parks - s0.enobufs_parks;
    printf("exhaustion: %d datagrams, %d buffers: %d polls, %llu cqes, "
           "%llu ENOBUFS parks\n",
           N, NB, polls, cqes, parks);
    if (parks == 0)
        FAIL("exhaustion: the group never ran dry");
    /* each poll gives back the buffers and re-arms once: at most one
     * ENOBUFS completion per NB datagrams, and no empty spinning */
    if (polls > N / NB + 10)
        FAIL("exhaustion: %d polls for %d datagrams of %d buffers", polls, N,
             NB);
    if (cqes > (unsigned long long)N + (unsigned long long)polls + 10)
        FAIL("exhaustion: %llu completions for %d datagrams", cqes, N);
    /* nothing left: a parked-then-re-armed socket sits quiet */
    ringline_stats_t s2 = lt_stats(loop);
    for (int i = 0; i < 5; i++)
        CHECK(lt_poll(loop, ev, 64, 20) == 0);
    ringline_stats_t s3 = lt_stats(loop);
    if (s3.cqes - s2.cqes > 1)
        FAIL("exhaustion: %llu completions while idle",
             (unsigned long long)(s3.cqes - s2.cqes));
    /* every buffer is back with the kernel */
    CHECK(ringline_bufring_available(ring, UDP_BGID) == NB);
    /* and the socket still works */
    CHECK(sendto(fd, "again", 5, 0, (struct sockaddr *)&to, sizeof to) == 5);
    struct lt_evq q = {.loop = loop};
    ringline_event_t *e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_DATAGRAM && e->len == 5 &&
          memcmp(e->data, "again", 5) == 0);
    close(fd);
    OK(ringline_loop_destroy(loop));
}

static void test_close_armed(void)
{
    enum { NB = 64 };
    ringline_loop_t *loop = udp_loop(NB, 2048, true);
    ringline_ring_t *ring;
    OK(ringline_loop_ring(loop, &ring));
    struct sockaddr_in me;
    int fd = client_socket(&me);
    static uint8_t buf[512];
    ringline_event_t ev[8];
    for (int round = 0; round < 3; round++) {
        ringline_id_t u;
        OK(ringline_udp_bind(loop, "127.0.0.1", 0, &u));
        int port = OK(ringline_udp_port(loop, u));
        struct sockaddr_in to = loopback(port);
        /* 40 datagrams against batches of 8: most wait behind the full
         * batch (stashed), some still in the socket */
        for (int i = 0; i < 40; i++) {
            lt_fill(buf, 100, 1000 + (uint64_t)i, 0);
            CHECK(sendto(fd, buf, 100, 0, (struct sockaddr *)&to, sizeof to) ==
                  100);
        }
        int n = 0;
        for (int t = 0; t < 100 && n == 0; t++)
            n = lt_poll(loop, ev, 8, 20);
        CHECK(n > 0);
        if (round == 1) {
            /* one more poll: the socket closes with the previous batch
             * returned and the stash partly drained */
            n = lt_poll(loop, ev, 8, 20);
            CHECK(n > 0);
        }
        CHECK(ev[0].type == RINGLINE_EV_DATAGRAM);
        OK(ringline_udp_close(loop, u));
        /* the batch's bytes and addresses stay readable until the next
         * poll, after close (ASan: no use after free / reuse) */
        for (int i = 0; i < n; i++) {
            CHECK(ev[i].type == RINGLINE_EV_DATAGRAM && ev[i].len == 100);
            CHECK(addr_port(ev[i].addr, ev[i].addrlen) == ntohs(me.sin_port));
            uint8_t copy[100];
            memcpy(copy, ev[i].data, 100);
            (void)copy;
        }
        if (round == 2) {
            /* destroy with the close (cancel) still in flight */
            break;
        }
        bool closed = false;
        uint64_t deadline = rl_now_ns() + 5000 * MS;
        while (!closed) {
            n = lt_poll(loop, ev, 8, 20);
            for (int i = 0; i < n; i++) {
                if (ev[i].type == RINGLINE_EV_CLOSED && ev[i].id == u)
                    closed = true;
                else if (ev[i].type != RINGLINE_EV_DATAGRAM || ev[i].id == u)
                    FAIL("close: unexpected %s after udp_close",
                         lt_ev_name(ev[i].type));
            }
            if (rl_now_ns() > deadline)
                FAIL("close: no CLOSED");
        }
        /* one more poll gives back the last held buffers: all home */
        lt_poll(loop, ev, 8, 0);
        int avail = ringline_bufring_available(ring, UDP_BGID);
        if (avail != NB)
            FAIL("close round %d: %d of %d buffers back", round, avail, NB);
    }
    close(fd);
    OK(ringline_loop_destroy(loop));
}

/* IPv6: the 28-byte sender address fits the buffer's address area. */
static void test_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 me = {.sin6_family = AF_INET6,
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof me) < 0) {
        printf("ipv6: no ::1 here, skipped\n");
        if (fd >= 0)
            close(fd);
        return;
    }
    socklen_t ml = sizeof me;
    CHECK(getsockname(fd, (struct sockaddr *)&me, &ml) == 0);
    ringline_loop_t *loop = udp_loop(0, 0, false);
    ringline_id_t u;
    OK(ringline_udp_bind(loop, "::1", 0, &u));
    struct sockaddr_in6 to = me;
    to.sin6_port = htons((uint16_t)OK(ringline_udp_port(loop, u)));
    for (int i = 0; i < 5; i++)
        CHECK(sendto(fd, "six", 3, 0, (struct sockaddr *)&to, sizeof to) == 3);
    struct lt_evq q = {.loop = loop};
    for (int i = 0; i < 5; i++) {
        ringline_event_t *e = lt_expect_any(&q, 5000);
        CHECK(e->type == RINGLINE_EV_DATAGRAM && e->len == 3 && e->res == 0);
        CHECK(memcmp(e->data, "six", 3) == 0);
        CHECK(e->addrlen == sizeof(struct sockaddr_in6));
        const struct sockaddr_in6 *a = (const void *)e->addr;
        CHECK(a->sin6_family == AF_INET6 && a->sin6_port == me.sin6_port);
        CHECK(memcmp(&a->sin6_addr, &in6addr_loopback, 16) == 0);
    }
    close(fd);
    OK(ringline_loop_destroy(loop));
    printf("ipv6 ok\n");
}

static void test_exchange(ringline_loop_t *loop);

int main(void)
{
    lt_watchdog(60);
    /* config checks */
    ringline_config_t *cfg;
    OK(ringline_config_new(&cfg));
    EXPECT_ERR(ringline_config_set_udp_buffers(cfg, 3, 2048), -EINVAL);
    EXPECT_ERR(ringline_config_set_udp_buffers(cfg, 65536, 2048), -EINVAL);
    EXPECT_ERR(ringline_config_set_udp_buffers(cfg, 64, 63), -EINVAL);
    EXPECT_ERR(ringline_config_set_udp_buffers(cfg, 64, (1u << 20) + 1),
               -EINVAL);
    EXPECT_ERR(ringline_config_set_udp_buffers(NULL, 64, 2048), -EBADF);
    OK(ringline_config_set_udp_buffers(cfg, 0, 0));
    OK(ringline_config_set_udp_buffers(cfg, 1, 64));
    OK(ringline_config_free(cfg));

    test_burst();
    printf("burst ok\n");
    test_truncation();
    printf("truncation ok\n");
    test_exhaustion();
    printf("exhaustion ok\n");
    test_close_armed();
    printf("close while armed ok\n");
    test_ipv6();
    /* the original exchange, multishot (default) and single-shot */
    test_exchange(udp_loop(0, 0, false));
    printf("exchange (multishot) ok\n");
    test_exchange(udp_loop(0, 0, true));
    printf("exchange (single-shot) ok\n");
    return lt_exit();
}

static void test_exchange(ringline_loop_t *loop)
{
    ringline_id_t ua, ub;
    OK(ringline_udp_bind(loop, "127.0.0.1", 0, &ua));
    OK(ringline_udp_bind(loop, "127.0.0.1", 0, &ub));
    CHECK(ua != ub);
    int pa = OK(ringline_udp_port(loop, ua));
    int pb = OK(ringline_udp_port(loop, ub));
    CHECK(pa > 0 && pb > 0 && pa != pb);
    struct sockaddr_in to_a = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)pa),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in to_b = to_a;
    to_b.sin_port = htons((uint16_t)pb);

    static uint8_t buf[65536];
    struct lt_evq q = {.loop = loop};

    /* A -> B in windows of 10 (UDP may drop when a buffer overflows; the
     * windows keep the socket buffer far from full); B echoes each datagram
     * back to the address its event named, A checks the echo. */
    int next_send = 0, got_b = 0, got_a = 0;
    uint64_t deadline = rl_now_ns() + 20000 * MS;
    while (got_a < NDG) {
        while (next_send < NDG && next_send - got_a < 10) {
            size_t n = dg_size(next_send);
            lt_fill(buf, n, 700 + (uint64_t)next_send, 0);
            OK(ringline_udp_sendto(loop, ua, buf, n,
                                   (struct sockaddr *)&to_b, sizeof to_b));
            next_send++;
        }
        ringline_event_t *e = lt_next(&q, 20);
        if (rl_now_ns() > deadline)
            FAIL("timed out: sent %d, B got %d, A got %d", next_send, got_b,
                 got_a);
        if (!e)
            continue;
        if (e->type != RINGLINE_EV_DATAGRAM)
            FAIL("unexpected %s res=%d (%s)", lt_ev_name(e->type), e->res,
                 ringline_err_name(e->res));
        if (e->id == ub) {
            size_t want = dg_size(got_b);
            if (e->len != want)
                FAIL("B: datagram %d has %llu bytes, want %zu", got_b,
                     (unsigned long long)e->len, want);
            if (lt_verify(e->data, want, 700 + (uint64_t)got_b, 0) >= 0)
                FAIL("B: datagram %d payload differs", got_b);
            if (addr_port(e->addr, e->addrlen) != pa)
                FAIL("B: datagram %d from port %u, want %d", got_b,
                     addr_port(e->addr, e->addrlen), pa);
            /* reply to the event's address, straight from the event data */
            OK(ringline_udp_sendto(loop, ub, e->data, e->len, e->addr,
                                   e->addrlen));
            got_b++;
        } else if (e->id == ua) {
            size_t want = dg_size(got_a);
            if (e->len != want)
                FAIL("A: echo %d has %llu bytes, want %zu", got_a,
                     (unsigned long long)e->len, want);
            if (lt_verify(e->data, want, 700 + (uint64_t)got_a, 0) >= 0)
                FAIL("A: echo %d payload differs", got_a);
            if (addr_port(e->addr, e->addrlen) != pb)
                FAIL("A: echo %d from the wrong port", got_a);
            got_a++;
        } else {
            FAIL("DATAGRAM for an unknown id");
        }
    }
    printf("%d datagrams each way\n", NDG);

    /* a plain socket <-> loop socket B */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&me, sizeof me) == 0);
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    lt_set_timeouts(fd, 5);
    CHECK(sendto(fd, "ping", 4, 0, (struct sockaddr *)&to_b, sizeof to_b) == 4);
    ringline_event_t *e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_DATAGRAM && e->id == ub);
    CHECK(e->len == 4 && memcmp(e->data, "ping", 4) == 0);
    CHECK(addr_port(e->addr, e->addrlen) == ntohs(me.sin_port));
    OK(ringline_udp_sendto(loop, ub, "pong", 4, e->addr, e->addrlen));
    lt_next(&q, 20); /* submit the send */
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    char r[8];
    ssize_t n = recvfrom(fd, r, sizeof r, 0, (struct sockaddr *)&from, &fl);
    CHECK(n == 4 && memcmp(r, "pong", 4) == 0);
    CHECK(ntohs(from.sin_port) == pb);
    close(fd);

    /* bad arguments */
    EXPECT_ERR(ringline_udp_sendto(loop, ua, buf, 65508,
                                   (struct sockaddr *)&to_b, sizeof to_b),
               -EINVAL);
    EXPECT_ERR(ringline_udp_sendto(loop, ua, buf, 1, NULL, sizeof to_b),
               -EINVAL);
    EXPECT_ERR(ringline_udp_sendto(loop, ua, NULL, 1, (struct sockaddr *)&to_b,
                                   sizeof to_b),
               -EINVAL);
    EXPECT_ERR(ringline_udp_sendto(loop, ua, buf, 1, (struct sockaddr *)&to_b,
                                   0),
               -EINVAL);
    EXPECT_ERR(ringline_udp_port(loop, ua + (1ull << 32)), -EBADF);
    ringline_id_t x;
    EXPECT_ERR(ringline_udp_bind(loop, "not-an-address!", 0, &x), -EINVAL);

    /* close: CLOSED, then the id is dead */
    OK(ringline_udp_close(loop, ua));
    EXPECT_ERR(ringline_udp_close(loop, ua), -EBADF);
    bool closed = false;
    for (int i = 0; i < 50 && !closed; i++) {
        e = lt_next(&q, 20);
        if (e && e->type == RINGLINE_EV_CLOSED && e->id == ua) {
            CHECK(e->res == 0);
            closed = true;
        } else if (e) {
            FAIL("unexpected %s", lt_ev_name(e->type));
        }
    }
    CHECK(closed);
    EXPECT_ERR(ringline_udp_port(loop, ua), -EBADF);
    EXPECT_ERR(ringline_udp_sendto(loop, ua, "x", 1, (struct sockaddr *)&to_b,
                                   sizeof to_b),
               -EBADF);
    /* a datagram to the closed port is simply not delivered; B still works */
    OK(ringline_udp_sendto(loop, ub, "self", 4, (struct sockaddr *)&to_b,
                           sizeof to_b));
    e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_DATAGRAM && e->id == ub && e->len == 4);
    /* closing B between polls while the script still holds its DATAGRAM:
     * the bytes stay readable until the next poll (ASan checks) */
    CHECK(e->data != NULL);
    OK(ringline_udp_close(loop, ub));
    if (memcmp(e->data, "self", 4) != 0)
        SOFT_FAIL("DATAGRAM bytes changed after udp_close");
    if (addr_port(e->addr, e->addrlen) != pb)
        SOFT_FAIL("DATAGRAM address changed after udp_close");
    e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_CLOSED && e->id == ub);
    /* a third socket, left open with a datagram delivered: destroy cleans
     * up */
    ringline_id_t uc;
    OK(ringline_udp_bind(loop, "127.0.0.1", 0, &uc));
    struct sockaddr_in to_c = to_a;
    to_c.sin_port = htons((uint16_t)OK(ringline_udp_port(loop, uc)));
    OK(ringline_udp_sendto(loop, uc, "last", 4, (struct sockaddr *)&to_c,
                           sizeof to_c));
    e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_DATAGRAM && e->id == uc && e->len == 4);
    OK(ringline_loop_destroy(loop));
}
