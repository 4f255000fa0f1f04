/* Loop UDP sockets: two bound sockets exchange 100 datagrams (sizes 0 to
 * 60000) in both directions, each DATAGRAM carrying the exact payload and
 * the sender's address, in order; replies go to the address an event gave;
 * a plain UDP socket talks to a loop socket; bad arguments are refused;
 * udp_close gives CLOSED and kills the id. */
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

int main(void)
{
    lt_watchdog(60);
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
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
    return lt_exit();
}
