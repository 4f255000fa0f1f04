/* Feature reporting: ringline_ring_features on default / big / non-single-
 * issuer / no-defer / SQPOLL rings, ringline_feature_name, opcode probing
 * and the granted SQ/CQ sizes. Written for a 6.x kernel (6.18 here): every
 * kernel-probed bit is expected. */
#include <linux/io_uring.h>

#include "rl_test.h"

#define FEAT_LAST_BIT 22 /* RINGLINE_FEAT_POLL_MULTISHOT */

static void print_features(const char *label, uint64_t f)
{
    printf("%s features = 0x%llx:\n", label, (unsigned long long)f);
    for (int b = 0; b <= FEAT_LAST_BIT; b++) {
        uint64_t bit = 1ULL << b;
        const char *n = ringline_feature_name(bit);
        printf("  %-2d %-20s %s\n", b, n ? n : "(null)",
               (f & bit) ? "yes" : "no");
    }
}

/* One nop, submitted and reaped, token echoed, res 0. */
static void nop_round_trip(ringline_ring_t *ring, uint64_t token)
{
    OK(ringline_op_nop(ring, token));
    ringline_cqe_t c = rl_wait_token(ring, token, 5000);
    CHECK(c.res == 0);
    CHECK(c.flags == 0);
    CHECK(c.big[0] == 0 && c.big[1] == 0);
    CHECK(ringline_ring_inflight(ring) == 0);
}

static ringline_ring_t *ring_with(ringline_config_t *cfg)
{
    ringline_ring_t *ring = NULL;
    OK(ringline_ring_new(cfg, &ring));
    CHECK(ring != NULL);
    return ring;
}

int main(void)
{
    alarm(60);

    /* ---- feature names ---- */
    for (int b = 0; b <= FEAT_LAST_BIT; b++) {
        const char *n = ringline_feature_name(1ULL << b);
        if (!n || !*n)
            FAIL("feature_name(1<<%d) is NULL/empty", b);
        for (int c = 0; c < b; c++)
            if (strcmp(n, ringline_feature_name(1ULL << c)) == 0)
                FAIL("feature bits %d and %d share the name %s", c, b, n);
    }
    CHECK(strcmp(ringline_feature_name(RINGLINE_FEAT_DEFER_TASKRUN),
                 "defer_taskrun") == 0);
    CHECK(ringline_feature_name(0) == NULL);
    CHECK(ringline_feature_name(1ULL << (FEAT_LAST_BIT + 1)) == NULL);
    CHECK(ringline_feature_name(1ULL << 63) == NULL);
    /* Two bits at once are not one feature. */
    CHECK(ringline_feature_name(RINGLINE_FEAT_NODROP |
                                RINGLINE_FEAT_EXT_ARG) == NULL);

    /* ---- default ring ---- */
    ringline_ring_t *ring = ring_with(NULL);
    uint64_t f = 0;
    OK(ringline_ring_features(ring, &f));
    print_features("default ring", f);
    int missing = 0;
    for (int b = 0; b <= FEAT_LAST_BIT; b++) {
        uint64_t bit = 1ULL << b;
        if (bit == RINGLINE_FEAT_SQPOLL || bit == RINGLINE_FEAT_BIG_SQE_CQE) {
            if (f & bit)
                FAIL("default ring reports %s", ringline_feature_name(bit));
            continue;
        }
        if (!(f & bit)) {
            fprintf(stderr, "default ring lacks %s (bit %d)\n",
                    ringline_feature_name(bit), b);
            missing++;
        }
    }
    if (missing)
        FAIL("%d feature bit(s) missing on a 6.18 kernel", missing);
    CHECK((f >> (FEAT_LAST_BIT + 1)) == 0); /* no undefined bits */

    /* Sizes: 256 SQ entries, CQ = 4 x SQ by default. */
    CHECK(ringline_ring_sq_entries(ring) == 256);
    CHECK(ringline_ring_cq_entries(ring) == 4 * 256);
    CHECK(ringline_ring_fd(ring) >= 0);
    CHECK(ringline_ring_inflight(ring) == 0);
    CHECK(ringline_ring_sq_pending(ring) == 0);

    /* Opcode probing. */
    CHECK(ringline_ring_opcode_supported(ring, IORING_OP_NOP) == 1);
    CHECK(ringline_ring_opcode_supported(ring, IORING_OP_READ) == 1);
    CHECK(ringline_ring_opcode_supported(ring, IORING_OP_SEND_ZC) == 1);
    CHECK(ringline_ring_opcode_supported(ring, IORING_OP_URING_CMD) == 1);
    int r255 = ringline_ring_opcode_supported(ring, 255);
    if (r255 != -EINVAL && r255 != 0)
        FAIL("opcode_supported(255) = %d, want -EINVAL or 0", r255);
    EXPECT_ERR(ringline_ring_opcode_supported(ring, 4096), -EINVAL);
    EXPECT_ERR(ringline_ring_opcode_supported(ring, 0xFFFFFFFFu), -EINVAL);

    nop_round_trip(ring, 1);
    OK(ringline_ring_destroy(ring));

    /* ---- explicit sizes ---- */
    ringline_config_t *cfg = NULL;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_sq_entries(cfg, 100)); /* rounded up to 128 */
    ring = ring_with(cfg);
    CHECK(ringline_ring_sq_entries(ring) == 128);
    CHECK(ringline_ring_cq_entries(ring) == 4 * 128);
    nop_round_trip(ring, 2);
    OK(ringline_ring_destroy(ring));
    OK(ringline_config_set_cq_entries(cfg, 300)); /* rounded up to 512 */
    ring = ring_with(cfg);
    CHECK(ringline_ring_sq_entries(ring) == 128);
    int cqn = ringline_ring_cq_entries(ring);
    if (cqn < 300)
        FAIL("cq_entries %d < 300 asked", cqn);
    printf("sq 128 / cq 300 asked -> cq %d granted\n", cqn);
    OK(ringline_ring_destroy(ring));
    OK(ringline_config_free(cfg));

    /* ---- big SQE/CQE ring ---- */
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_big(cfg, 1));
    ring = ring_with(cfg);
    OK(ringline_ring_features(ring, &f));
    print_features("big ring", f);
    CHECK(f & RINGLINE_FEAT_BIG_SQE_CQE);
    CHECK(!(f & RINGLINE_FEAT_SQPOLL));
    CHECK(f & RINGLINE_FEAT_DEFER_TASKRUN);
    nop_round_trip(ring, 3);
    OK(ringline_ring_destroy(ring));
    OK(ringline_config_free(cfg));

    /* ---- single_issuer off: drops SINGLE_ISSUER and DEFER_TASKRUN ---- */
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_single_issuer(cfg, 0));
    ring = ring_with(cfg);
    OK(ringline_ring_features(ring, &f));
    print_features("single_issuer=0 ring", f);
    CHECK(!(f & RINGLINE_FEAT_SINGLE_ISSUER));
    CHECK(!(f & RINGLINE_FEAT_DEFER_TASKRUN));
    CHECK(f & RINGLINE_FEAT_COOP_TASKRUN);
    CHECK(f & RINGLINE_FEAT_BUF_RING); /* kernel bits unaffected */
    nop_round_trip(ring, 4);
    OK(ringline_ring_destroy(ring));
    OK(ringline_config_free(cfg));

    /* ---- defer_taskrun off: keeps SINGLE_ISSUER ---- */
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_defer_taskrun(cfg, 0));
    ring = ring_with(cfg);
    OK(ringline_ring_features(ring, &f));
    CHECK(f & RINGLINE_FEAT_SINGLE_ISSUER);
    CHECK(!(f & RINGLINE_FEAT_DEFER_TASKRUN));
    nop_round_trip(ring, 5);
    OK(ringline_ring_destroy(ring));
    OK(ringline_config_free(cfg));

    /* ---- SQPOLL (last: the only part that may be skipped) ---- */
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_sqpoll(cfg, 1, 100, -1));
    int rc = ringline_ring_new(cfg, &ring);
    OK(ringline_config_free(cfg));
    if (rc == -EPERM)
        SKIP("everything else passed; SQPOLL ring creation gives -EPERM");
    if (rc < 0)
        FAIL("SQPOLL ring_new -> %d (%s)", rc, ringline_err_name(rc));
    OK(ringline_ring_features(ring, &f));
    print_features("sqpoll ring", f);
    CHECK(f & RINGLINE_FEAT_SQPOLL);
    CHECK(!(f & RINGLINE_FEAT_DEFER_TASKRUN));
    for (uint64_t t = 10; t < 15; t++)
        nop_round_trip(ring, t);
    /* Several at once. */
    for (uint64_t t = 20; t < 28; t++)
        OK(ringline_op_nop(ring, t));
    ringline_cqe_t cq[8];
    int got = 0;
    uint64_t deadline = rl_now_ns() + 5000000000ull;
    while (got < 8 && rl_now_ns() < deadline) {
        int n = ringline_ring_reap(ring, cq + got, 8 - got, 1, 50000000);
        if (n == -EINTR)
            continue;
        OK(n);
        got += n;
    }
    CHECK(got == 8);
    for (int i = 0; i < 8; i++)
        CHECK(cq[i].res == 0 && cq[i].token >= 20 && cq[i].token < 28);
    CHECK(ringline_ring_inflight(ring) == 0);
    OK(ringline_ring_destroy(ring));

    printf("features OK\n");
    return 0;
}
