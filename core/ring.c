/*
 * ring.c — creating and destroying rings, and what they report.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define RL_MAX_CQ 65536u
#define RL_DESTROY_WAIT_NS (2 * 1000000000LL)

/* Flags the kernel may refuse, in the order ringline gives them up. */
static const unsigned rl_optional_flags[] = {
    IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_SINGLE_ISSUER,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    IORING_SETUP_SUBMIT_ALL,
};

static int rl_ring_init(ringline_ring_t *r, const ringline_config_t *c)
{
    unsigned sq = c->sq_entries;
    unsigned cq = c->cq_entries ? c->cq_entries : sq * 4;
    if (cq < sq)
        return -EINVAL;
    if (cq > RL_MAX_CQ)
        cq = RL_MAX_CQ;

    unsigned flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    /* COOP_TASKRUN is meaningless (and refused) with SQPOLL: the kernel
     * thread runs task work itself */
    if (!c->sqpoll)
        flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    if (c->single_issuer) {
        flags |= IORING_SETUP_SINGLE_ISSUER;
        /* the kernel refuses SQPOLL together with DEFER_TASKRUN */
        if (c->defer_taskrun && !c->sqpoll)
            flags |= IORING_SETUP_DEFER_TASKRUN;
    }
    if (c->big)
        flags |= IORING_SETUP_SQE128 | IORING_SETUP_CQE32;
    if (c->sqpoll) {
        flags |= IORING_SETUP_SQPOLL;
        if (c->sqpoll_cpu >= 0)
            flags |= IORING_SETUP_SQ_AFF;
    }

    size_t next_drop = 0;
    struct io_uring_params p;
    int ret;
    for (;;) {
        memset(&p, 0, sizeof p);
        p.flags = flags;
        p.cq_entries = cq;
        if (c->sqpoll) {
            p.sq_thread_idle = c->sqpoll_idle_ms;
            if (c->sqpoll_cpu >= 0)
                p.sq_thread_cpu = (unsigned)c->sqpoll_cpu;
        }
        ret = io_uring_queue_init_params(sq, &r->ring, &p);
        if (ret != -EINVAL)
            break;
        /* drop the next optional flag this ring still asks for */
        while (next_drop < sizeof rl_optional_flags / sizeof rl_optional_flags[0] &&
               !(flags & rl_optional_flags[next_drop]))
            next_drop++;
        if (next_drop == sizeof rl_optional_flags / sizeof rl_optional_flags[0])
            break;
        flags &= ~rl_optional_flags[next_drop++];
    }
    if (ret < 0)
        return ret;

    r->setup_flags = flags;
    r->sq_entries = p.sq_entries;
    r->cq_entries = p.cq_entries;
    r->big = c->big;
    r->enter_fd = r->ring.ring_fd;
    r->enter_flags = 0;
    /* A registered ring fd saves an fget/fput per io_uring_enter, but the
     * registration belongs to the calling thread: only for rings that only
     * their creator may drive. */
    if ((flags & IORING_SETUP_SINGLE_ISSUER) &&
        io_uring_register_ring_fd(&r->ring) == 1) {
        r->enter_fd = r->ring.enter_ring_fd;
        r->enter_flags = IORING_ENTER_REGISTERED_RING;
    }

    uint64_t f = rl_probe_kernel();
    if (flags & IORING_SETUP_COOP_TASKRUN)
        f |= RINGLINE_FEAT_COOP_TASKRUN;
    if (flags & IORING_SETUP_SINGLE_ISSUER)
        f |= RINGLINE_FEAT_SINGLE_ISSUER;
    if (flags & IORING_SETUP_DEFER_TASKRUN)
        f |= RINGLINE_FEAT_DEFER_TASKRUN;
    if (flags & IORING_SETUP_SQPOLL)
        f |= RINGLINE_FEAT_SQPOLL;
    if (flags & IORING_SETUP_SQE128)
        f |= RINGLINE_FEAT_BIG_SQE_CQE;
    if (p.features & IORING_FEAT_NODROP)
        f |= RINGLINE_FEAT_NODROP;
    if (p.features & IORING_FEAT_EXT_ARG)
        f |= RINGLINE_FEAT_EXT_ARG;
    if (p.features & IORING_FEAT_FAST_POLL)
        f |= RINGLINE_FEAT_FAST_POLL;
    if (p.features & IORING_FEAT_RECVSEND_BUNDLE)
        f |= RINGLINE_FEAT_RECVSEND_BUNDLE;
    r->features = f;

    r->ts = calloc(r->sq_entries, sizeof *r->ts);
    if (!r->ts) {
        io_uring_queue_exit(&r->ring);
        return -ENOMEM;
    }
    r->wake_fd = -1;
    ret = rl_wake_init(r);
    if (ret >= 0)
        ret = rl_enter(r, 0, 0, false); /* the wake read goes in now */
    if (ret < 0) {
        rl_wake_fini(r);
        free(r->ts);
        io_uring_queue_exit(&r->ring);
        return ret;
    }
    return 0;
}

int ringline_ring_new(const ringline_config_t *cfg, ringline_ring_t **out)
{
    if (!out)
        return -EINVAL;
    ringline_config_t defaults;
    if (cfg) {
        if (cfg->magic != RL_MAGIC_CONFIG)
            return -EBADF;
    } else {
        rl_config_defaults(&defaults);
        cfg = &defaults;
    }
    ringline_ring_t *r = rl_handle_alloc(sizeof *r, RL_MAGIC_RING);
    if (!r)
        return -ENOMEM;
    int ret = rl_ring_init(r, cfg);
    if (ret < 0) {
        rl_handle_free(r, sizeof *r);
        return ret;
    }
    *out = r;
    return 0;
}

/* Wait, bounded, until every operation has posted its final completion, so
 * that no kernel write can land in memory the caller frees next. */
/* Cancel everything in flight. Deferred task work runs first: a repeating
 * timeout whose expiry is still queued there is off the kernel's timeout
 * list and would escape the cancel, then re-arm itself. */
static void rl_cancel_all(ringline_ring_t *r)
{
    io_uring_get_events(&r->ring);
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.flags = IORING_ASYNC_CANCEL_ANY;
    reg.fd = -1;
    reg.timeout.tv_sec = 1;
    int ret = io_uring_register_sync_cancel(&r->ring, &reg);
    if (ret == -EINVAL || ret == -EOPNOTSUPP) {
        /* older kernel: an async cancel-any does the same */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        if (sqe) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            rl_commit_internal_sqe(r, sqe, RL_TOKEN_INTERNAL);
        }
    }
}

static int rl_drain(ringline_ring_t *r)
{
    ringline_cqe_t scratch[64];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t start = (int64_t)t0.tv_sec * 1000000000LL + t0.tv_nsec;
    int rounds = 0;
    while (r->inflight > 0 || r->internal_inflight > 0) {
        /* again every 100 ms: whatever re-armed between cancel and drain */
        if (rounds++ % 10 == 0)
            rl_cancel_all(r);
        int ret = rl_enter(r, 1, 10 * 1000000LL, true);
        if (ret < 0 && ret != -EINTR)
            return ret;
        /* buffer and accounting bookkeeping runs as usual */
        rl_harvest(r, scratch, 64, true);
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        int64_t now = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
        if (now - start > RL_DESTROY_WAIT_NS)
            return -ETIMEDOUT;
    }
    return 0;
}

int ringline_ring_destroy(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    ringline_ring_t *r = ring;
    r->closing = true;
    r->chain_left = 0;
    int result = 0;

    /* Submit whatever is queued (its memory is referenced already), then
     * cancel everything and collect the final completions. */
    rl_enter(r, 0, 0, false);
    if (r->inflight > 0 || r->internal_inflight > 0)
        result = rl_drain(r);

    /* unregister before unmapping: the kernel must stop picking buffers
     * before their memory goes away */
    rl_groups_destroy_all(r);
    rl_files_fini(r);
    if (r->buffers_registered)
        io_uring_unregister_buffers(&r->ring);
    rl_tokmap_free(&r->tokmap);
    io_uring_queue_exit(&r->ring);
    rl_wake_fini(r);
    free(r->ts);
    rl_handle_free(r, sizeof *r);
    return result;
}

int ringline_ring_fd(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    return ring->ring.ring_fd;
}

int ringline_ring_sq_entries(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    return (int)ring->sq_entries;
}

int ringline_ring_cq_entries(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    return (int)ring->cq_entries;
}

int ringline_ring_inflight(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    return ring->inflight;
}

int ringline_ring_sq_pending(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    return (int)io_uring_sq_ready(&ring->ring);
}

int ringline_ring_features(ringline_ring_t *ring, uint64_t *out)
{
    RL_RING_CHECK(ring);
    if (!out)
        return -EINVAL;
    *out = ring->features;
    return 0;
}

int ringline_ring_opcode_supported(ringline_ring_t *ring, unsigned op)
{
    RL_RING_CHECK(ring);
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring->ring);
    if (!p)
        return -ENOMEM;
    int ret;
    if (op > p->last_op)
        ret = -EINVAL;
    else
        ret = (p->ops[op].flags & IO_URING_OP_SUPPORTED) ? 1 : 0;
    io_uring_free_probe(p);
    return ret;
}

static const char *const rl_feature_names[] = {
    "coop_taskrun",   "single_issuer",     "defer_taskrun",  "sqpoll",
    "big_sqe_cqe",    "nodrop",            "ext_arg",        "fast_poll",
    "buf_ring",       "recv_multishot",    "accept_multishot", "send_zc",
    "sendmsg_zc",     "uring_cmd",         "msg_ring",       "timeout_multishot",
    "sparse_files",   "file_alloc_range",  "sync_cancel",    "recvsend_bundle",
    "buf_ring_inc",   "socket",            "poll_multishot",
};

const char *ringline_feature_name(uint64_t bit)
{
    if (!bit || (bit & (bit - 1)))
        return NULL;
    unsigned i = (unsigned)__builtin_ctzll(bit);
    if (i >= sizeof rl_feature_names / sizeof rl_feature_names[0])
        return NULL;
    return rl_feature_names[i];
}
