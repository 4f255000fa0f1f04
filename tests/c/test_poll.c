/* Multishot poll (POLLIN) on a socket: each of two separate writes gives one
 * completion with F_MORE; with the data consumed nothing more arrives;
 * poll_remove ends it (-ECANCELED without F_MORE, remove 0). Also a
 * single-shot poll. */
#include "rl_net.h"

#include <poll.h>

enum { T_POLL = 1, T_REMOVE, T_ONE, T_REMOVE_NONE };

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(0, 0);
    rl_require(ring, RINGLINE_FEAT_POLL_MULTISHOT, "multishot poll");

    int a, b;
    rl_tcp_pair(&a, &b);
    rln_sock_timeout(b, 3000);

    /* ---- single-shot ---- */
    OK(ringline_op_poll(ring, b, POLLIN, 0, T_ONE));
    rln_expect_none(ring, 20);
    rl_write_all(a, "x", 1);
    ringline_cqe_t c = rl_wait_token(ring, T_ONE, 3000);
    if (c.res < 0 || !(c.res & POLLIN))
        FAIL("poll -> %d (%s), want POLLIN", c.res, rln_res(c.res));
    CHECK(!(c.flags & RINGLINE_CQE_F_MORE));
    char ch;
    CHECK(read(b, &ch, 1) == 1 && ch == 'x');
    CHECK(ringline_ring_inflight(ring) == 0);

    /* ---- multishot ---- */
    OK(ringline_op_poll(ring, b, POLLIN, 1, T_POLL));
    rln_expect_none(ring, 30); /* nothing readable yet */
    CHECK(ringline_ring_inflight(ring) == 1);
    for (int i = 0; i < 2; i++) {
        char w = (char)('a' + i);
        rl_write_all(a, &w, 1);
        c = rl_wait_token(ring, T_POLL, 3000);
        if (c.res < 0 || !(c.res & POLLIN))
            FAIL("multishot poll event %d -> %d (%s), want POLLIN", i, c.res,
                 rln_res(c.res));
        if (!(c.flags & RINGLINE_CQE_F_MORE))
            FAIL("multishot poll event %d without F_MORE", i);
        CHECK(read(b, &ch, 1) == 1 && ch == w);
        rln_expect_none(ring, 30); /* consumed: no further events */
        CHECK(ringline_ring_inflight(ring) == 1);
    }

    OK(ringline_op_poll_remove(ring, T_POLL, T_REMOVE));
    ringline_cqe_t cs[2];
    rln_reap_n(ring, cs, 2, 3000);
    ringline_cqe_t p = rln_find(cs, 2, T_POLL);
    ringline_cqe_t r = rln_find(cs, 2, T_REMOVE);
    if (p.res != -ECANCELED || (p.flags & RINGLINE_CQE_F_MORE))
        FAIL("removed multishot poll -> %d (%s) flags %#x, want -ECANCELED "
             "without F_MORE",
             p.res, rln_res(p.res), p.flags);
    if (r.res != 0)
        FAIL("poll_remove -> %d (%s)", r.res, rln_res(r.res));
    CHECK(ringline_ring_inflight(ring) == 0);

    /* after removal, writes produce nothing */
    rl_write_all(a, "z", 1);
    rln_expect_none(ring, 30);

    /* removing a poll that is not there */
    OK(ringline_op_poll_remove(ring, T_POLL, T_REMOVE_NONE));
    c = rl_wait_token(ring, T_REMOVE_NONE, 3000);
    if (c.res != -ENOENT)
        FAIL("poll_remove of nothing -> %d (%s), want -ENOENT", c.res,
             rln_res(c.res));

    OK(ringline_ring_destroy(ring));
    close(a);
    close(b);
    printf("poll: ok\n");
    return 0;
}
