/* The token map's filter (core/tokmap.c) must never hide a token held by an
 * in-flight buffer-select operation. Many recvs (more than one filter word's
 * worth, enough to grow the table twice, some sharing a token) are armed with
 * tokens shaped like the loop's (bit 55 | op | generation | index); then:
 * every held token is refused for other operations (-EBUSY) and tokens
 * differing only in the op bits are accepted; half the recvs complete with
 * data and only their tokens become free; the other half are cancelled (a
 * final completion without a buffer, which harvest finds through the filter)
 * and the group, with no operation left on it, can be destroyed.
 * Each odd token is chosen to share its filter bit with the even one before
 * it (the same Fibonacci hash as core/internal.h's rl_tokmap_fhash), so
 * freeing it must not clear the bit its neighbour still needs. */
#include "rl_net.h"

#define BGID 5
#define N 150    /* recvs with distinct tokens */
#define SHARED 3 /* extra recvs sharing token 0's */

static uint64_t tok_raw(unsigned op, unsigned i)
{
    return (1ULL << 55) | ((uint64_t)op << 48) |
           ((uint64_t)((i * 40503u) & 0xFFFF) << 32) | i;
}

static unsigned fhash(uint64_t t)
{
    return (unsigned)((t * 0x9E3779B97F4A7C15ULL) >> 52);
}

static uint64_t tk[N];

/* token i with op bits `op` (1: the recvs; 2, 3: other operations) */
static uint64_t tok(unsigned op, unsigned i)
{
    return (tk[i] & ~(0x7FULL << 48)) | ((uint64_t)op << 48);
}

static void make_tokens(void)
{
    unsigned j = 1000000;
    for (unsigned i = 0; i < N; i++) {
        if (i % 2 == 0) {
            tk[i] = tok_raw(1, i);
            continue;
        }
        while (fhash(tok_raw(1, j)) != fhash(tk[i - 1]))
            j++;
        tk[i] = tok_raw(1, j++);
    }
}

static void expect_held(ringline_ring_t *ring, int fd, unsigned i, int held)
{
    static const uint8_t b = 'x';
    if (held) {
        EXPECT_ERR(ringline_op_nop(ring, tok(1, i)), -EBUSY);
        EXPECT_ERR(ringline_op_send(ring, fd, &b, 1, 0, tok(1, i)), -EBUSY);
    } else {
        OK(ringline_op_nop(ring, tok(1, i)));
    }
}

int main(void)
{
    rln_watchdog(60);
    make_tokens();
    ringline_ring_t *ring = rln_ring(64, 1024);
    rl_require(ring, RINGLINE_FEAT_BUF_RING, "buffer rings");
    OK(ringline_bufring_create(ring, BGID, 256, 64));

    static int sv[N][2];
    for (unsigned i = 0; i < N; i++)
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]) == 0);

    /* more SQEs than the SQ holds: the ring submits as it goes */
    for (unsigned i = 0; i < N; i++)
        OK(ringline_op_recv_select(ring, sv[i][0], BGID, 64, 0, tok(1, i)));
    for (unsigned k = 0; k < SHARED; k++)
        OK(ringline_op_recv_select(ring, sv[0][0], BGID, 64, 0, tok(1, 0)));
    rln_submit(ring);

    /* every held token refused; the send-shaped tokens next to them
     * (op 2) pass */
    for (unsigned i = 0; i < N; i++)
        expect_held(ring, sv[i][1], i, 1);
    static ringline_cqe_t cq[2 * N + 16];
    for (unsigned i = 0; i < N; i++)
        OK(ringline_op_nop(ring, tok(2, i)));
    rln_reap_n(ring, cq, N, 5000);
    for (unsigned i = 0; i < N; i++)
        CHECK(cq[i].res == 0 && (cq[i].token >> 48 & 0x7F) == 2);

    /* data for the odd ones: their recvs end, with a buffer */
    unsigned odd = 0;
    for (unsigned i = 1; i < N; i += 2, odd++)
        rl_write_all(sv[i][1], "y", 1);
    rln_reap_n(ring, cq, odd, 5000);
    for (unsigned k = 0; k < odd; k++) {
        CHECK(cq[k].res == 1);
        CHECK(cq[k].flags & RINGLINE_CQE_F_BUFFER);
        CHECK(cq[k].bgid == BGID);
        {
            unsigned i = 0;
            while (i < N && tok(1, i) != cq[k].token)
                i++;
            CHECK(i < N && i % 2 == 1);
        }
        uint16_t bid = cq[k].bid;
        OK(ringline_bufring_return(ring, BGID, &bid, 1));
    }
    /* only the odd tokens are free now (each freed token shared a filter
     * bit with others in the table: deletion must keep theirs) */
    unsigned nops = 0;
    for (unsigned i = 0; i < N; i++) {
        expect_held(ring, sv[i][1], i, i % 2 == 0);
        nops += i % 2;
    }
    rln_reap_n(ring, cq, nops, 5000);
    for (unsigned k = 0; k < nops; k++)
        CHECK(cq[k].res == 0);
    EXPECT_ERR(ringline_bufring_destroy(ring, BGID), -EBUSY);

    /* cancel the rest: final completions without a buffer */
    unsigned even = 0;
    for (unsigned i = 0; i < N; i += 2, even++)
        OK(ringline_op_cancel(ring, tok(1, i), RINGLINE_CANCEL_ALL, tok(3, i)));
    /* token 0 has 1 + SHARED recvs */
    rln_reap_n(ring, cq, 2 * even + SHARED, 5000);
    unsigned cancelled = 0;
    for (unsigned k = 0; k < 2 * even + SHARED; k++) {
        unsigned op = (unsigned)(cq[k].token >> 48) & 0x7F;
        if (op == 1) {
            CHECK(cq[k].res == -ECANCELED);
            CHECK(!(cq[k].flags & RINGLINE_CQE_F_BUFFER));
            cancelled++;
        } else {
            CHECK(op == 3 && cq[k].res >= 1);
        }
    }
    CHECK(cancelled == even + SHARED);
    for (unsigned i = 0; i < N; i++)
        expect_held(ring, sv[i][1], i, 0);
    rln_reap_n(ring, cq, N, 5000);
    /* no operation selects from the group any more */
    OK(ringline_bufring_destroy(ring, BGID));

    for (unsigned i = 0; i < N; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    OK(ringline_ring_destroy(ring));
    printf("ok\n");
    return 0;
}
