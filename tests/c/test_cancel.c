/* Cancelling in-flight operations: by token (the recv completes -ECANCELED,
 * the cancel 0), by fd, every match of a shared token with CANCEL_ALL (the
 * cancel's result is the count), and an unknown token (-ENOENT). The socket
 * keeps working afterwards: cancelled recvs consumed nothing. */
#include "rl_net.h"

enum {
    T_RECV = 10,
    T_CANCEL,
    T_RECV_FD,
    T_CANCEL_FD,
    T_SHARED,
    T_CANCEL_ALL,
    T_CANCEL_NONE,
    T_RECV_FD2,
    T_CANCEL_FD_ALL,
    T_RECV_LAST,
};

static void check_pair(ringline_ring_t *ring, uint64_t op, uint64_t cancel,
                       int want_cancel_res, const char *what)
{
    ringline_cqe_t cs[2];
    rln_reap_n(ring, cs, 2, 3000);
    ringline_cqe_t o = rln_find(cs, 2, op);
    ringline_cqe_t k = rln_find(cs, 2, cancel);
    if (o.res != -ECANCELED)
        FAIL("%s: cancelled recv -> %d (%s), want -ECANCELED", what, o.res,
             rln_res(o.res));
    if (k.res != want_cancel_res)
        FAIL("%s: cancel -> %d (%s), want %d", what, k.res, rln_res(k.res),
             want_cancel_res);
}

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(0, 0);
    int a, b;
    rl_tcp_pair(&a, &b);
    char buf[4][64];

    /* ---- by token ---- */
    OK(ringline_op_recv(ring, b, buf[0], sizeof buf[0], 0, T_RECV));
    rln_expect_none(ring, 20); /* submitted, armed, nothing to read */
    CHECK(ringline_ring_inflight(ring) == 1);
    OK(ringline_op_cancel(ring, T_RECV, 0, T_CANCEL));
    check_pair(ring, T_RECV, T_CANCEL, 0, "by token");
    CHECK(ringline_ring_inflight(ring) == 0);

    /* ---- by fd ---- */
    OK(ringline_op_recv(ring, b, buf[0], sizeof buf[0], 0, T_RECV_FD));
    rln_expect_none(ring, 20);
    OK(ringline_op_cancel_fd(ring, b, 0, T_CANCEL_FD));
    check_pair(ring, T_RECV_FD, T_CANCEL_FD, 0, "by fd");

    /* ---- CANCEL_ALL: three ops sharing one token ---- */
    for (int i = 0; i < 3; i++)
        OK(ringline_op_recv(ring, b, buf[i], sizeof buf[i], 0, T_SHARED));
    rln_expect_none(ring, 20);
    CHECK(ringline_ring_inflight(ring) == 3);
    OK(ringline_op_cancel(ring, T_SHARED, RINGLINE_CANCEL_ALL, T_CANCEL_ALL));
    {
        ringline_cqe_t cs[4];
        rln_reap_n(ring, cs, 4, 3000);
        int shared = 0, cancel = 0;
        for (int i = 0; i < 4; i++) {
            if (cs[i].token == T_SHARED) {
                if (cs[i].res != -ECANCELED)
                    FAIL("CANCEL_ALL: op -> %d (%s), want -ECANCELED",
                         cs[i].res, rln_res(cs[i].res));
                shared++;
            } else if (cs[i].token == T_CANCEL_ALL) {
                if (cs[i].res != 3)
                    FAIL("CANCEL_ALL -> %d (%s), want 3", cs[i].res,
                         rln_res(cs[i].res));
                cancel++;
            } else {
                FAIL("unexpected token %llu",
                     (unsigned long long)cs[i].token);
            }
        }
        CHECK(shared == 3 && cancel == 1);
    }
    CHECK(ringline_ring_inflight(ring) == 0);

    /* ---- CANCEL_ALL by fd: two recvs on b ---- */
    OK(ringline_op_recv(ring, b, buf[0], sizeof buf[0], 0, T_RECV_FD2));
    OK(ringline_op_recv(ring, b, buf[1], sizeof buf[1], 0, T_RECV_FD2));
    rln_expect_none(ring, 20);
    OK(ringline_op_cancel_fd(ring, b, RINGLINE_CANCEL_ALL, T_CANCEL_FD_ALL));
    {
        ringline_cqe_t cs[3];
        rln_reap_n(ring, cs, 3, 3000);
        int ops = 0;
        for (int i = 0; i < 3; i++) {
            if (cs[i].token == T_RECV_FD2) {
                CHECK(cs[i].res == -ECANCELED);
                ops++;
            } else {
                CHECK(cs[i].token == T_CANCEL_FD_ALL);
                if (cs[i].res != 2)
                    FAIL("cancel_fd ALL -> %d (%s), want 2", cs[i].res,
                         rln_res(cs[i].res));
            }
        }
        CHECK(ops == 2);
    }

    /* ---- nothing to cancel ---- */
    OK(ringline_op_cancel(ring, 0x123456789ull, 0, T_CANCEL_NONE));
    ringline_cqe_t c = rl_wait_token(ring, T_CANCEL_NONE, 3000);
    if (c.res != -ENOENT)
        FAIL("cancel of an unknown token -> %d (%s), want -ENOENT", c.res,
             rln_res(c.res));
    OK(ringline_op_cancel_fd(ring, a, 0, T_CANCEL_NONE));
    c = rl_wait_token(ring, T_CANCEL_NONE, 3000);
    if (c.res != -ENOENT)
        FAIL("cancel_fd with nothing on it -> %d (%s), want -ENOENT", c.res,
             rln_res(c.res));

    /* reserved tokens are refused when queueing */
    EXPECT_ERR(ringline_op_cancel(ring, T_RECV, 0, RINGLINE_TOKEN_WAKE),
               -EINVAL);

    /* ---- the socket lost nothing to the cancelled recvs ---- */
    rl_write_all(a, "after-cancel", 12);
    OK(ringline_op_recv(ring, b, buf[3], 12, MSG_WAITALL,
                        T_RECV_LAST));
    c = rl_wait_token(ring, T_RECV_LAST, 3000);
    CHECK(c.res == 12);
    CHECK(memcmp(buf[3], "after-cancel", 12) == 0);

    CHECK(ringline_ring_inflight(ring) == 0);
    rln_expect_none(ring, 30);
    OK(ringline_ring_destroy(ring));
    close(a);
    close(b);
    printf("cancel: ok\n");
    return 0;
}
