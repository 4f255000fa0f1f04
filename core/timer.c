/*
 * timer.c — the loop's timers: one io_uring timeout each (multishot for
 * `every`), identified by generation-carrying ids so a fired or cancelled
 * timer's id is dead.
 */
#include <stdlib.h>
#include <string.h>

#include "loop.h"

static struct rl_timer *rl_timer_get(ringline_loop_t *l, ringline_id_t id)
{
    if (RL_ID_KIND(id) != RL_K_TIMER)
        return NULL;
    uint32_t idx = RL_ID_IDX(id);
    if (idx >= l->ntimers)
        return NULL;
    struct rl_timer *t = &l->timers[idx];
    if (!t->used || t->cancelled || (t->gen & 0xFFFFFF) != RL_ID_GEN(id))
        return NULL;
    return t;
}

static int rl_timer_start(ringline_loop_t *l, uint64_t ns, unsigned flags,
                          bool repeating, uint64_t tag, ringline_id_t *out)
{
    if (!out)
        return -EINVAL;
    if (l->stopping)
        return -ESHUTDOWN;
    uint32_t idx = 0;
    while (idx < l->ntimers && l->timers[idx].used)
        idx++;
    if (idx == l->ntimers) {
        if (l->ntimers == l->timers_cap) {
            unsigned ncap = l->timers_cap ? l->timers_cap * 2 : 16;
            struct rl_timer *n = realloc(l->timers, ncap * sizeof *n);
            if (!n)
                return -ENOMEM;
            memset(n + l->timers_cap, 0, (ncap - l->timers_cap) * sizeof *n);
            l->timers = n;
            l->timers_cap = ncap;
        }
        l->ntimers++;
    }
    struct rl_timer *t = &l->timers[idx];
    uint32_t gen = (t->gen + 1) & 0xFFFFFF;
    gen = gen ? gen : 1;
    int ret = ringline_op_timeout(l->ring, ns, 0, flags,
                                  RL_TOK(RL_OP_TIMER, gen, idx));
    if (ret < 0)
        return ret;
    t->gen = gen;
    t->used = true;
    t->cancelled = false;
    t->repeating = repeating;
    t->tag = tag;
    *out = RL_ID(RL_K_TIMER, t->gen, idx);
    return 0;
}

int ringline_timer_after(ringline_loop_t *loop, uint64_t ns, uint64_t tag,
                         ringline_id_t *out)
{
    RL_LOOP_CHECK(loop);
    return rl_timer_start(loop, ns, 0, false, tag, out);
}

int ringline_timer_every(ringline_loop_t *loop, uint64_t ns, uint64_t tag,
                         ringline_id_t *out)
{
    RL_LOOP_CHECK(loop);
    if (ns == 0)
        return -EINVAL;
    return rl_timer_start(loop, ns, RINGLINE_TIMEOUT_MULTISHOT, true, tag, out);
}

int ringline_timer_at(ringline_loop_t *loop, uint64_t mono_ns, uint64_t tag,
                      ringline_id_t *out)
{
    RL_LOOP_CHECK(loop);
    return rl_timer_start(loop, mono_ns, RINGLINE_TIMEOUT_ABS, false, tag, out);
}

int ringline_timer_cancel(ringline_loop_t *loop, ringline_id_t id)
{
    RL_LOOP_CHECK(loop);
    struct rl_timer *t = rl_timer_get(loop, id);
    if (!t)
        return -EBADF;
    uint32_t idx = RL_ID_IDX(id);
    int ret = ringline_op_timeout_remove(loop->ring,
                                         RL_TOK(RL_OP_TIMER, t->gen, idx),
                                         RL_TOK(RL_OP_CANCEL, 0, RL_IDX_NONE));
    if (ret < 0)
        return ret;
    /* no TIMER event after this, even if it fires before the removal */
    t->cancelled = true;
    return 0;
}

void rl_timer_on_cqe(ringline_loop_t *l, uint32_t idx,
                     const ringline_cqe_t *cqe)
{
    if (idx >= l->ntimers)
        return;
    struct rl_timer *t = &l->timers[idx];
    if (!t->used || (t->gen & 0xFFFF) != RL_TOK_GEN(cqe->token))
        return;
    bool last = !(cqe->flags & RINGLINE_CQE_F_MORE);
    if (cqe->res == -ETIME && !t->cancelled) {
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_TIMER, RL_ID(RL_K_TIMER, t->gen, idx));
        if (e)
            e->tag = t->tag;
    }
    if (last)
        t->used = false; /* the id dies with its final completion */
}

void rl_timers_cancel_all(ringline_loop_t *l)
{
    for (uint32_t i = 0; i < l->ntimers; i++) {
        struct rl_timer *t = &l->timers[i];
        if (t->used && !t->cancelled)
            ringline_timer_cancel(l, RL_ID(RL_K_TIMER, t->gen, i));
    }
}
