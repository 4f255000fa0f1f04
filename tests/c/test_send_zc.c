/* Zero-copy sends of 64 KiB over loopback TCP: the result completion (all
 * bytes, F_MORE) comes first, then the F_NOTIF completion that frees the
 * buffer; the peer receives every byte. Then the same with sendmsg_zc and two
 * iovecs. */
#include "rl_net.h"

#define LEN (64 * 1024)
#define T_ZC 0x100
#define T_MSGZC 0x200

struct reader {
    int fd;
    uint64_t seed;
    long bad; /* -1: all bytes right */
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    uint8_t *buf = malloc(LEN);
    rln_read_all(r->fd, buf, LEN);
    r->bad = rln_check_pattern(buf, LEN, r->seed, 0);
    free(buf);
    return NULL;
}

/* Reap the op's completions until its notification: checks their order and
 * flags; returns the total bytes reported by result completions. */
static size_t wait_zc(ringline_ring_t *ring, uint64_t token, const char *what)
{
    int have_result = 0, have_notif = 0;
    size_t bytes = 0;
    uint64_t deadline = rl_now_ns() + 5ull * 1000000000ull;
    while (!have_notif) {
        ringline_cqe_t c;
        int n = rln_reap(ring, &c, 1, 1, 20 * 1000000ll);
        if (!n) {
            if (rl_now_ns() > deadline)
                FAIL("%s: timed out (result %d, notif %d)", what, have_result,
                     have_notif);
            continue;
        }
        if (c.token != token)
            FAIL("%s: unexpected token %llu", what,
                 (unsigned long long)c.token);
        if (c.flags & RINGLINE_CQE_F_NOTIF) {
            if (!have_result)
                FAIL("%s: notification before the result completion", what);
            if (c.flags & RINGLINE_CQE_F_MORE)
                FAIL("%s: notification with F_MORE", what);
            if (c.res != 0)
                FAIL("%s: notification res %d", what, c.res);
            have_notif = 1;
        } else {
            if (have_result)
                FAIL("%s: two result completions", what);
            if (c.res < 0)
                FAIL("%s -> %d (%s)", what, c.res, rln_res(c.res));
            if (!(c.flags & RINGLINE_CQE_F_MORE))
                FAIL("%s: result completion (res %d) without F_MORE: no "
                     "notification would follow",
                     what, c.res);
            have_result = 1;
            bytes = (size_t)c.res;
            /* the notification is the final completion: still in flight */
            if (ringline_ring_inflight(ring) != 1)
                FAIL("%s: inflight %d after the result, want 1 until the "
                     "notification", what, ringline_ring_inflight(ring));
        }
    }
    return bytes;
}

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(0, 0);
    rl_require(ring, RINGLINE_FEAT_SEND_ZC, "zero-copy send");
    uint64_t feat = 0;
    OK(ringline_ring_features(ring, &feat));

    int cli, srv;
    rl_tcp_pair(&cli, &srv);
    rln_sock_timeout(srv, 5000);

    uint8_t *buf = malloc(LEN);
    rln_fill_pattern(buf, LEN, 21, 0);

    /* ---- send_zc ---- */
    struct reader rd = {.fd = srv, .seed = 21, .bad = -2};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, reader_main, &rd) == 0);
    OK(ringline_op_send_zc(ring, cli, buf, LEN, MSG_NOSIGNAL, T_ZC));
    CHECK(ringline_ring_inflight(ring) == 1);
    size_t sent = wait_zc(ring, T_ZC, "send_zc");
    if (sent != LEN)
        FAIL("send_zc sent %zu of %d bytes (stream sockets retry short sends)",
             sent, LEN);
    CHECK(ringline_ring_inflight(ring) == 0);
    pthread_join(th, NULL);
    if (rd.bad != -1)
        FAIL("peer got wrong data (first bad byte %ld)", rd.bad);

    /* ---- sendmsg_zc with two iovecs ---- */
    if (feat & RINGLINE_FEAT_SENDMSG_ZC) {
        uint8_t *a = malloc(LEN / 2), *b = malloc(LEN / 2);
        rln_fill_pattern(a, LEN / 2, 22, 0);
        rln_fill_pattern(b, LEN / 2, 22, LEN / 2);
        struct iovec iov[2] = {{a, LEN / 2}, {b, LEN / 2}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        struct reader rd2 = {.fd = srv, .seed = 22, .bad = -2};
        CHECK(pthread_create(&th, NULL, reader_main, &rd2) == 0);
        OK(ringline_op_sendmsg_zc(ring, cli, &mh, MSG_NOSIGNAL, T_MSGZC));
        sent = wait_zc(ring, T_MSGZC, "sendmsg_zc");
        if (sent != LEN)
            FAIL("sendmsg_zc sent %zu of %d bytes", sent, LEN);
        pthread_join(th, NULL);
        if (rd2.bad != -1)
            FAIL("peer got wrong sendmsg_zc data (first bad byte %ld)",
                 rd2.bad);
        CHECK(ringline_ring_inflight(ring) == 0);
        free(a);
        free(b);
    } else {
        fprintf(stderr, "note: sendmsg_zc not supported, part skipped\n");
    }

    rln_expect_none(ring, 30);
    OK(ringline_ring_destroy(ring));
    close(cli);
    close(srv);
    free(buf);
    printf("send_zc: ok\n");
    return 0;
}
