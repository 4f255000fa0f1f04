/* TCP over 127.0.0.1 through the ring: single-shot accept reporting the peer
 * address, multishot accept, recv into caller memory, send, connect,
 * shutdown and close, with every byte checked. */
#include "rl_net.h"

enum {
    T_ACCEPT = 1,
    T_RECV,
    T_SEND,
    T_MACCEPT,
    T_CANCEL,
    T_CONNECT,
    T_SHUT,
    T_CLOSE,
    T_CLOSE2,
    T_RECV2,
    T_RECV_EOF,
};

#define MSG_LEN 3000
#define REPLY_LEN 20000

static void recv_exact(ringline_ring_t *ring, int fd, uint8_t *buf,
                       size_t len, uint64_t token)
{
    size_t got = 0;
    while (got < len) {
        OK(ringline_op_recv(ring, fd, buf + got, len - got, 0, token));
        ringline_cqe_t c = rl_wait_token(ring, token, 3000);
        if (c.res <= 0)
            FAIL("recv -> %d (%s) with %zu of %zu bytes", c.res,
                 rln_res(c.res), got, len);
        CHECK(!(c.flags & RINGLINE_CQE_F_MORE));
        CHECK((size_t)c.res <= len - got);
        got += (size_t)c.res;
    }
}

static void send_exact(ringline_ring_t *ring, int fd, const uint8_t *buf,
                       size_t len, uint64_t token)
{
    size_t done = 0;
    while (done < len) {
        OK(ringline_op_send(ring, fd, buf + done, len - done, MSG_NOSIGNAL,
                            token));
        ringline_cqe_t c = rl_wait_token(ring, token, 3000);
        if (c.res <= 0)
            FAIL("send -> %d (%s)", c.res, rln_res(c.res));
        CHECK((size_t)c.res <= len - done);
        done += (size_t)c.res;
    }
}

/* A thread reading exactly REPLY_LEN bytes, so large sends cannot block. */
struct reader {
    int fd;
    size_t len;
    uint64_t seed;
    long bad; /* -1 all good */
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    uint8_t *buf = malloc(r->len);
    rln_read_all(r->fd, buf, r->len);
    r->bad = rln_check_pattern(buf, r->len, r->seed, 0);
    free(buf);
    return NULL;
}

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(0, 0);
    uint64_t feat = 0;
    OK(ringline_ring_features(ring, &feat));

    uint16_t port;
    int lfd = rl_listen_tcp(&port);

    /* ---- single-shot accept with peer address ---- */
    struct sockaddr_in peer;
    memset(&peer, 0xAB, sizeof peer);
    socklen_t peerlen = sizeof peer;
    OK(ringline_op_accept(ring, lfd, (struct sockaddr *)&peer, &peerlen,
                          SOCK_CLOEXEC, 0, 0, T_ACCEPT));
    rln_submit(ring);
    CHECK(ringline_ring_inflight(ring) == 1);
    int cli = rl_connect_tcp(port);
    rln_sock_timeout(cli, 5000);
    ringline_cqe_t c = rl_wait_token(ring, T_ACCEPT, 3000);
    if (c.res < 0)
        FAIL("accept -> %d (%s)", c.res, rln_res(c.res));
    CHECK(!(c.flags & RINGLINE_CQE_F_MORE));
    int srv = c.res;
    CHECK(fcntl(srv, F_GETFD) & FD_CLOEXEC);

    struct sockaddr_in cliaddr;
    socklen_t clilen = sizeof cliaddr;
    CHECK(getsockname(cli, (struct sockaddr *)&cliaddr, &clilen) == 0);
    CHECK(peerlen == sizeof(struct sockaddr_in));
    CHECK(peer.sin_family == AF_INET);
    CHECK(peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    CHECK(peer.sin_port == cliaddr.sin_port);

    /* ---- recv into caller memory ---- */
    uint8_t *msg = malloc(MSG_LEN);
    rln_fill_pattern(msg, MSG_LEN, 11, 0);
    rl_write_all(cli, msg, MSG_LEN);
    uint8_t *rbuf = malloc(MSG_LEN);
    memset(rbuf, 0, MSG_LEN);
    recv_exact(ring, srv, rbuf, MSG_LEN, T_RECV);
    long bad = rln_check_pattern(rbuf, MSG_LEN, 11, 0);
    if (bad >= 0)
        FAIL("recv data differs at byte %ld", bad);

    /* ---- send (large enough that a reader thread is needed) ---- */
    uint8_t *reply = malloc(REPLY_LEN);
    rln_fill_pattern(reply, REPLY_LEN, 12, 0);
    struct reader rd = {.fd = cli, .len = REPLY_LEN, .seed = 12, .bad = -2};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, reader_main, &rd) == 0);
    send_exact(ring, srv, reply, REPLY_LEN, T_SEND);
    pthread_join(th, NULL);
    if (rd.bad != -1)
        FAIL("peer got wrong data (first bad byte %ld)", rd.bad);

    /* ---- close both ends of this connection through the ring ---- */
    OK(ringline_op_close(ring, srv, T_CLOSE));
    c = rl_wait_token(ring, T_CLOSE, 3000);
    if (c.res != 0)
        FAIL("close -> %d (%s)", c.res, rln_res(c.res));
    CHECK(fcntl(srv, F_GETFD) == -1 && errno == EBADF);
    char ch;
    CHECK(read(cli, &ch, 1) == 0); /* EOF: the server end is gone */
    close(cli);

    /* ---- multishot accept ---- */
    if (feat & RINGLINE_FEAT_ACCEPT_MULTISHOT) {
        enum { NCLI = 4 };
        OK(ringline_op_accept(ring, lfd, NULL, NULL, SOCK_CLOEXEC,
                              RINGLINE_ACCEPT_MULTISHOT, 0, T_MACCEPT));
        rln_submit(ring);
        int clis[NCLI], srvs[NCLI];
        for (int i = 0; i < NCLI; i++) {
            clis[i] = rl_connect_tcp(port);
            rln_sock_timeout(clis[i], 5000);
        }
        ringline_cqe_t cs[NCLI];
        rln_reap_n(ring, cs, NCLI, 3000);
        for (int i = 0; i < NCLI; i++) {
            CHECK(cs[i].token == T_MACCEPT);
            if (cs[i].res < 0)
                FAIL("multishot accept -> %d (%s)", cs[i].res,
                     rln_res(cs[i].res));
            if (!(cs[i].flags & RINGLINE_CQE_F_MORE))
                FAIL("multishot accept completion %d lacks F_MORE", i);
            srvs[i] = cs[i].res;
            for (int j = 0; j < i; j++)
                CHECK(srvs[j] != srvs[i]);
        }
        CHECK(ringline_ring_inflight(ring) == 1);
        /* Each accepted socket is connected to one distinct client. */
        int matched = 0;
        for (int i = 0; i < NCLI; i++) {
            uint8_t b = (uint8_t)(0x40 + i);
            rl_write_all(clis[i], &b, 1);
        }
        for (int i = 0; i < NCLI; i++) {
            uint8_t b;
            rln_sock_timeout(srvs[i], 3000);
            rln_read_all(srvs[i], &b, 1);
            CHECK(b >= 0x40 && b < 0x40 + NCLI);
            CHECK(!(matched & (1 << (b - 0x40))));
            matched |= 1 << (b - 0x40);
        }
        CHECK(matched == (1 << NCLI) - 1);
        /* Cancel ends it: -ECANCELED without F_MORE; cancel gives 0. */
        OK(ringline_op_cancel(ring, T_MACCEPT, 0, T_CANCEL));
        ringline_cqe_t cc[2];
        rln_reap_n(ring, cc, 2, 3000);
        ringline_cqe_t a = rln_find(cc, 2, T_MACCEPT);
        ringline_cqe_t k = rln_find(cc, 2, T_CANCEL);
        if (a.res != -ECANCELED || (a.flags & RINGLINE_CQE_F_MORE))
            FAIL("cancelled multishot accept -> %d (%s) flags %#x", a.res,
                 rln_res(a.res), a.flags);
        if (k.res != 0)
            FAIL("cancel -> %d (%s)", k.res, rln_res(k.res));
        CHECK(ringline_ring_inflight(ring) == 0);
        for (int i = 0; i < NCLI; i++) {
            close(clis[i]);
            close(srvs[i]);
        }
    } else {
        fprintf(stderr, "note: multishot accept not supported, part skipped\n");
    }

    /* ---- connect through the ring, shutdown, half-close, close ---- */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    struct sockaddr_in dst = {.sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    OK(ringline_op_connect(ring, s, (struct sockaddr *)&dst, sizeof dst,
                           T_CONNECT));
    c = rl_wait_token(ring, T_CONNECT, 3000);
    if (c.res != 0)
        FAIL("connect -> %d (%s)", c.res, rln_res(c.res));
    int p = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(p >= 0);
    rln_sock_timeout(p, 5000);
    {
        struct sockaddr_in mine, theirs;
        socklen_t l1 = sizeof mine, l2 = sizeof theirs;
        CHECK(getsockname(s, (struct sockaddr *)&mine, &l1) == 0);
        CHECK(getpeername(p, (struct sockaddr *)&theirs, &l2) == 0);
        CHECK(mine.sin_port == theirs.sin_port);
    }

    /* ring -> peer */
    send_exact(ring, s, msg, MSG_LEN, T_SEND);
    memset(rbuf, 0, MSG_LEN);
    rln_read_all(p, rbuf, MSG_LEN);
    bad = rln_check_pattern(rbuf, MSG_LEN, 11, 0);
    if (bad >= 0)
        FAIL("peer got wrong data at byte %ld", bad);

    /* shutdown(SHUT_WR): the peer sees EOF, the other direction still works */
    OK(ringline_op_shutdown(ring, s, SHUT_WR, T_SHUT));
    c = rl_wait_token(ring, T_SHUT, 3000);
    if (c.res != 0)
        FAIL("shutdown -> %d (%s)", c.res, rln_res(c.res));
    CHECK(read(p, &ch, 1) == 0);

    uint8_t back[1000];
    rln_fill_pattern(back, sizeof back, 13, 0);
    rl_write_all(p, back, sizeof back);
    uint8_t back_in[1000];
    recv_exact(ring, s, back_in, sizeof back_in, T_RECV2);
    CHECK(memcmp(back, back_in, sizeof back) == 0);

    /* peer closes: a recv then completes with 0 (EOF) */
    close(p);
    OK(ringline_op_recv(ring, s, back_in, sizeof back_in, 0, T_RECV_EOF));
    c = rl_wait_token(ring, T_RECV_EOF, 3000);
    if (c.res != 0)
        FAIL("recv at EOF -> %d (%s), want 0", c.res, rln_res(c.res));

    OK(ringline_op_close(ring, s, T_CLOSE2));
    c = rl_wait_token(ring, T_CLOSE2, 3000);
    if (c.res != 0)
        FAIL("close -> %d (%s)", c.res, rln_res(c.res));
    CHECK(fcntl(s, F_GETFD) == -1 && errno == EBADF);

    CHECK(ringline_ring_inflight(ring) == 0);
    rln_expect_none(ring, 50);
    OK(ringline_ring_destroy(ring));
    close(lfd);
    free(msg);
    free(rbuf);
    free(reply);
    printf("tcp: ok\n");
    return 0;
}
