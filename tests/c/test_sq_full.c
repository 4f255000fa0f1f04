/* A 4-entry SQ and 1000 nops queued without ever calling submit: queueing
 * into a full SQ submits by itself, nothing is refused, and reaping returns
 * all 1000 completions exactly once. */
#include "rl_net.h"

#define N 1000
#define BASE 0xABC000ull

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(4, 0);
    CHECK(ringline_ring_sq_entries(ring) == 4);

    for (unsigned i = 0; i < N; i++) {
        int r;
        while ((r = ringline_op_nop(ring, BASE + i)) == -EINTR)
            ;
        if (r < 0)
            FAIL("nop #%u -> %d (%s): a full SQ must be submitted, not "
                 "refused",
                 i, r, ringline_err_name(r));
        int pending = ringline_ring_sq_pending(ring);
        if (pending < 1 || pending > 4)
            FAIL("sq_pending %d after nop #%u, want 1..4", pending, i);
    }
    if (ringline_ring_inflight(ring) != N)
        FAIL("inflight %d, want %d", ringline_ring_inflight(ring), N);

    unsigned char seen[N] = {0};
    unsigned got = 0;
    uint64_t deadline = rl_now_ns() + 10ull * 1000000000ull;
    while (got < N) {
        ringline_cqe_t cs[32];
        int n = rln_reap(ring, cs, 32, 1, 10 * 1000000ll);
        for (int k = 0; k < n; k++) {
            uint64_t t = cs[k].token;
            if (t < BASE || t >= BASE + N)
                FAIL("unexpected token %#llx", (unsigned long long)t);
            if (seen[t - BASE])
                FAIL("token #%llu delivered twice",
                     (unsigned long long)(t - BASE));
            CHECK(cs[k].res == 0);
            seen[t - BASE] = 1;
            got++;
        }
        if (got < N && rl_now_ns() > deadline) {
            unsigned first = 0;
            while (seen[first])
                first++;
            FAIL("only %u of %d completions (first missing #%u), "
                 "inflight %d, sq_pending %d",
                 got, N, first, ringline_ring_inflight(ring),
                 ringline_ring_sq_pending(ring));
        }
    }
    CHECK(ringline_ring_sq_pending(ring) == 0);
    CHECK(ringline_ring_inflight(ring) == 0);
    rln_expect_none(ring, 30);
    OK(ringline_ring_destroy(ring));
    printf("sq_full: ok\n");
    return 0;
}
