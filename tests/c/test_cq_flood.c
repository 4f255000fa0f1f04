/* CQ overflow never loses a completion: a ring with an 8-entry SQ and a
 * 16-entry CQ gets 2000 nops submitted over and over without any harvesting,
 * so almost all of them overflow; harvesting afterwards must deliver every
 * token exactly once, and the in-flight count must drop back to 0. */
#include "rl_net.h"

#define N 2000
#define BASE 0x10000ull

static void flood(ringline_ring_t *ring, unsigned char *seen, int round)
{
    for (unsigned i = 0; i < N; i++) {
        int r;
        while ((r = ringline_op_nop(ring, BASE + i)) == -EINTR)
            ;
        if (r < 0)
            FAIL("round %d: nop #%u -> %d (%s) (CQ overflow must not stop "
                 "submission)",
                 round, i, r, ringline_err_name(r));
        if (i % 8 == 7) {
            int s;
            while ((s = ringline_ring_submit(ring)) == -EINTR)
                ;
            if (s < 0)
                FAIL("round %d: submit after %u nops -> %d (%s)", round, i + 1,
                     s, ringline_err_name(s));
        }
    }
    rln_submit(ring);
    if (ringline_ring_inflight(ring) != N)
        FAIL("round %d: inflight %d after queueing %d", round,
             ringline_ring_inflight(ring), N);
    CHECK(ringline_ring_sq_pending(ring) == 0);

    memset(seen, 0, N);
    unsigned got = 0;
    uint64_t deadline = rl_now_ns() + 10ull * 1000000000ull;
    while (got < N && rl_now_ns() < deadline) {
        ringline_cqe_t cs[7]; /* odd batch size: partial copies */
        /* drain without waiting; wait briefly only when nothing is ready */
        int n = rln_reap(ring, cs, 7, 0, 0);
        if (n == 0)
            n = rln_reap(ring, cs, 7, 1, 10 * 1000000ll);
        for (int k = 0; k < n; k++) {
            uint64_t t = cs[k].token;
            if (t < BASE || t >= BASE + N)
                FAIL("round %d: unexpected token %#llx", round,
                     (unsigned long long)t);
            if (seen[t - BASE])
                FAIL("round %d: token %llu delivered twice", round,
                     (unsigned long long)(t - BASE));
            if (cs[k].res != 0)
                FAIL("round %d: nop -> %d (%s)", round, cs[k].res,
                     rln_res(cs[k].res));
            seen[t - BASE] = 1;
            got++;
        }
    }
    if (got != N) {
        unsigned missing = 0, first = N;
        for (unsigned i = 0; i < N; i++)
            if (!seen[i]) {
                missing++;
                if (first == N)
                    first = i;
            }
        FAIL("round %d: %u of %d completions lost (first missing #%u); "
             "inflight says %d",
             round, missing, N, first, ringline_ring_inflight(ring));
    }
    if (ringline_ring_inflight(ring) != 0)
        FAIL("round %d: inflight %d after harvesting everything", round,
             ringline_ring_inflight(ring));
}

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(8, 16);
    CHECK(ringline_ring_sq_entries(ring) == 8);
    CHECK(ringline_ring_cq_entries(ring) == 16);
    rl_require(ring, RINGLINE_FEAT_NODROP, "IORING_FEAT_NODROP");

    unsigned char *seen = malloc(N);
    flood(ring, seen, 1);
    rln_expect_none(ring, 30);
    /* the ring is fully usable again: do it once more */
    flood(ring, seen, 2);
    rln_expect_none(ring, 30);

    /* and plain use after the floods */
    OK(ringline_op_nop(ring, 7));
    ringline_cqe_t c = rl_wait_token(ring, 7, 2000);
    CHECK(c.res == 0);
    CHECK(ringline_ring_inflight(ring) == 0);

    OK(ringline_ring_destroy(ring));
    free(seen);
    printf("cq_flood: ok\n");
    return 0;
}
