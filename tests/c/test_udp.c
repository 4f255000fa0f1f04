/* UDP round trips on 127.0.0.1 with ringline_op_sendmsg / ringline_op_recvmsg:
 * gathered iovecs on send, scattered on receive, and the source address
 * reported by recvmsg used to answer. */
#include "rl_net.h"

#define ROUNDS 8

static int udp_sock(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t l = sizeof *addr;
    CHECK(getsockname(fd, (struct sockaddr *)addr, &l) == 0);
    return fd;
}

/* One datagram from `from` to `to_addr`, received on `to`. Returns the source
 * address recvmsg reported. */
static struct sockaddr_in one_way(ringline_ring_t *ring, int from, int to,
                                  const struct sockaddr_in *to_addr,
                                  int round, uint64_t tok)
{
    char head[32], body[200];
    int hl = snprintf(head, sizeof head, "round %d: ", round);
    size_t bl = 50 + (size_t)(round % 8) * 17; /* <= 169 */
    for (size_t i = 0; i < bl; i++)
        body[i] = (char)rl_pattern((uint64_t)round, i);
    size_t total = (size_t)hl + bl;

    /* receive side first: scattered into two pieces (7 bytes, rest) */
    char r1[7], r2[300];
    memset(r2, 0, sizeof r2);
    struct iovec riov[2] = {{r1, sizeof r1}, {r2, sizeof r2}};
    struct sockaddr_in src;
    memset(&src, 0, sizeof src);
    struct msghdr rmh = {.msg_name = &src,
                         .msg_namelen = sizeof src,
                         .msg_iov = riov,
                         .msg_iovlen = 2};
    OK(ringline_op_recvmsg(ring, to, &rmh, 0, tok + 1));
    rln_submit(ring);

    struct iovec siov[2] = {{head, (size_t)hl}, {body, bl}};
    struct msghdr smh = {.msg_name = (void *)to_addr,
                         .msg_namelen = sizeof *to_addr,
                         .msg_iov = siov,
                         .msg_iovlen = 2};
    OK(ringline_op_sendmsg(ring, from, &smh, 0, tok));

    ringline_cqe_t cs[2];
    rln_reap_n(ring, cs, 2, 3000);
    ringline_cqe_t s = rln_find(cs, 2, tok);
    ringline_cqe_t r = rln_find(cs, 2, tok + 1);
    if (s.res != (int)total)
        FAIL("sendmsg -> %d (%s), want %zu", s.res, rln_res(s.res), total);
    if (r.res != (int)total)
        FAIL("recvmsg -> %d (%s), want %zu", r.res, rln_res(r.res), total);
    CHECK(!(s.flags & RINGLINE_CQE_F_MORE) && !(r.flags & RINGLINE_CQE_F_MORE));
    CHECK(!(rmh.msg_flags & MSG_TRUNC));

    char got[400];
    memcpy(got, r1, sizeof r1);
    memcpy(got + sizeof r1, r2, total - sizeof r1);
    CHECK(memcmp(got, head, (size_t)hl) == 0);
    CHECK(memcmp(got + hl, body, bl) == 0);

    CHECK(rmh.msg_namelen == sizeof(struct sockaddr_in));
    CHECK(src.sin_family == AF_INET);
    return src;
}

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(0, 0);

    struct sockaddr_in a_addr, b_addr;
    int a = udp_sock(&a_addr);
    int b = udp_sock(&b_addr);
    CHECK(a_addr.sin_port != b_addr.sin_port);

    for (int i = 0; i < ROUNDS; i++) {
        uint64_t tok = 1000 + (uint64_t)i * 10;
        /* a -> b: b learns a's address from recvmsg */
        struct sockaddr_in from = one_way(ring, a, b, &b_addr, i, tok);
        if (from.sin_port != a_addr.sin_port ||
            from.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
            FAIL("recvmsg reported %s:%u, want 127.0.0.1:%u",
                 inet_ntoa(from.sin_addr), ntohs(from.sin_port),
                 ntohs(a_addr.sin_port));
        /* b -> a, addressed with what recvmsg reported */
        struct sockaddr_in back = one_way(ring, b, a, &from, i + 100, tok + 5);
        if (back.sin_port != b_addr.sin_port ||
            back.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
            FAIL("reply came from %s:%u, want 127.0.0.1:%u",
                 inet_ntoa(back.sin_addr), ntohs(back.sin_port),
                 ntohs(b_addr.sin_port));
    }

    /* A truncated datagram: MSG_TRUNC in msg_flags, res = bytes copied. */
    {
        char small[4];
        struct iovec riov = {small, sizeof small};
        struct sockaddr_in src;
        struct msghdr rmh = {.msg_name = &src,
                             .msg_namelen = sizeof src,
                             .msg_iov = &riov,
                             .msg_iovlen = 1};
        OK(ringline_op_recvmsg(ring, b, &rmh, 0, 51));
        char big[10] = "0123456789";
        struct iovec siov = {big, sizeof big};
        struct msghdr smh = {.msg_name = &b_addr,
                             .msg_namelen = sizeof b_addr,
                             .msg_iov = &siov,
                             .msg_iovlen = 1};
        OK(ringline_op_sendmsg(ring, a, &smh, 0, 50));
        ringline_cqe_t cs[2];
        rln_reap_n(ring, cs, 2, 3000);
        CHECK(rln_find(cs, 2, 50).res == 10);
        ringline_cqe_t r = rln_find(cs, 2, 51);
        CHECK(r.res == 4);
        CHECK(rmh.msg_flags & MSG_TRUNC);
        CHECK(memcmp(small, "0123", 4) == 0);
    }

    CHECK(ringline_ring_inflight(ring) == 0);
    rln_expect_none(ring, 30);
    OK(ringline_ring_destroy(ring));
    close(a);
    close(b);
    printf("udp: ok\n");
    return 0;
}
