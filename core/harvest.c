/*
 * harvest.c — batched completion harvest.
 *
 * One call copies many CQEs into the caller's array of fixed POD records and
 * advances the CQ head once. This is the one crossing per loop iteration a
 * script pays, so it also does the bookkeeping the caller must never forget:
 * buffer ownership, in-flight accounting, and ringline's own completions.
 */
#include "loop.h" /* rl_cqe_take is declared with the loop, its other user */

/* A provided-buffer completion or the final completion of a buffer-select
 * operation: name the group, move the buffer to the caller, and retire the
 * operation's claim on its group. */
static void rl_buffer_account(ringline_ring_t *r, ringline_cqe_t *o,
                              uint32_t fl)
{
    struct rl_tokmap_entry *e = rl_tokmap_find(&r->tokmap, o->token);
    if (RL_UNLIKELY(!e)) {
        if (fl & IORING_CQE_F_BUFFER) {
            o->bgid = 0xFFFF; /* unknown group: should not happen */
            o->bid = (uint16_t)(fl >> IORING_CQE_BUFFER_SHIFT);
        }
        return;
    }
    struct rl_bufring *g = rl_group_find(r, e->bgid);
    if (fl & IORING_CQE_F_BUFFER) {
        o->bgid = e->bgid;
        o->bid = (uint16_t)(fl >> IORING_CQE_BUFFER_SHIFT);
        /* with incremental consumption the kernel keeps a partly used
         * buffer: it is not the caller's yet */
        if (g && !(fl & IORING_CQE_F_BUF_MORE))
            rl_group_taken(g, o->bid);
    }
    if (!(fl & IORING_CQE_F_MORE)) {
        if (g && g->users)
            g->users--;
        rl_tokmap_drop(&r->tokmap, e);
    }
}

/* ringline's own completions. Returns true if a record was written to *o. */
static bool rl_internal_cqe(ringline_ring_t *r, const struct io_uring_cqe *c,
                            ringline_cqe_t *o)
{
    if (!(c->flags & IORING_CQE_F_MORE))
        r->internal_inflight--;
    if (c->user_data != RL_TOKEN_WAKE_READ)
        return false;
    r->wake_armed = false; /* the next enter re-arms it */
    if (c->res == -ECANCELED)
        return false; /* torn down */
    o->token = RINGLINE_TOKEN_WAKE;
    o->res = 0;
    o->flags = 0;
    o->bgid = o->bid = 0;
    o->reserved = 0;
    o->big[0] = o->big[1] = 0;
    return true;
}

/* One kernel CQE into *o with its bookkeeping done. Returns false when it
 * was ringline's own and produced no record. The caller advances the CQ
 * head (once for many). */
bool rl_cqe_take(ringline_ring_t *r, const struct io_uring_cqe *c,
                 ringline_cqe_t *o)
{
    uint64_t tok = c->user_data;
    uint32_t fl = c->flags;
    uint64_t top = tok & RINGLINE_TOKEN_RESERVED_MASK;

    if (RL_UNLIKELY(top == RINGLINE_TOKEN_RESERVED))
        return rl_internal_cqe(r, c, o);
    o->token = tok;
    o->res = c->res;
    o->flags = fl & 0xFFFFu;
    o->bgid = 0;
    o->bid = 0;
    o->reserved = 0;
    if (r->big) {
        o->big[0] = c->big_cqe[0];
        o->big[1] = c->big_cqe[1];
    } else {
        o->big[0] = o->big[1] = 0;
    }
    /* msg_ring deliveries were not submitted here */
    if (RL_UNLIKELY(top == RINGLINE_TOKEN_MSG_TAG))
        return true;
    if ((fl & (IORING_CQE_F_BUFFER | IORING_CQE_F_MORE)) ==
            (IORING_CQE_F_BUFFER | IORING_CQE_F_MORE) &&
        r->ngroups == 1) {
        /* the common case (multishot data, one group): no lookup is
         * needed to know the group */
        struct rl_bufring *g = r->groups[0];
        o->bgid = g->bgid;
        o->bid = (uint16_t)(fl >> IORING_CQE_BUFFER_SHIFT);
        if (!(fl & IORING_CQE_F_BUF_MORE))
            rl_group_taken(g, o->bid);
    } else if (r->tokmap.used &&
               ((fl & IORING_CQE_F_BUFFER) ||
                /* a final completion without a buffer (every send's) ends
                 * a buffer-select operation only if its token is mapped:
                 * the inline filter rules most out without a probe */
                (!(fl & IORING_CQE_F_MORE) &&
                 rl_tokmap_may_hold(&r->tokmap, tok)))) {
        rl_buffer_account(r, o, fl);
    }
    if (!(fl & IORING_CQE_F_MORE))
        r->inflight--;
    return true;
}

int rl_harvest(ringline_ring_t *r, ringline_cqe_t *out, unsigned max,
               bool flush_taskrun)
{
    struct io_uring_cq *cq = &r->ring.cq;
    const unsigned shift = r->big ? 1 : 0;
    unsigned n = 0;
    bool flushed = false;

    for (;;) {
        unsigned head = *cq->khead;
        unsigned tail = io_uring_smp_load_acquire(cq->ktail);
        unsigned mask = cq->ring_mask;
        unsigned seen = 0;

        while (head != tail && n < max) {
            const struct io_uring_cqe *c = &cq->cqes[(head & mask) << shift];
            head++;
            seen++;
            if (rl_cqe_take(r, c, &out[n]))
                n++;
        }
        if (seen)
            io_uring_cq_advance(&r->ring, seen);
        if (n == max || flushed)
            break;
        /* Overflowed CQEs (kept by the kernel, NODROP) and deferred task
         * work only reach the CQ through io_uring_enter: flush once and
         * look again, so a full CQ never hides a completion. */
        unsigned kflags = IO_URING_READ_ONCE(*r->ring.sq.kflags);
        unsigned want = IORING_SQ_CQ_OVERFLOW;
        if (flush_taskrun)
            want |= IORING_SQ_TASKRUN;
        if (!(kflags & want))
            break;
        io_uring_get_events(&r->ring);
        flushed = true;
    }
    return (int)n;
}

int ringline_ring_harvest(ringline_ring_t *ring, ringline_cqe_t *out,
                          unsigned max)
{
    RL_RING_CHECK(ring);
    if (!out && max)
        return -EINVAL;
    return rl_harvest(ring, out, max, true);
}
