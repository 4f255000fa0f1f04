/*
 * loop_batch.c — batched entry points for script bindings.
 *
 * A binding that goes through a foreign-function layer (Python's cffi) pays
 * far more per call and per struct-field access than for the work the call
 * does: reading type, id, data and len of one event costs more than the C
 * loop spends producing it. These two functions move whole dispatch rounds
 * across the boundary at once: ringline_loop_poll_packed() hands back a
 * batch as a flat array of words plus one contiguous copy of every DATA
 * payload (one buffer object in Python, sliced per event), and
 * ringline_conn_send_batch() queues all replies of a round in one call.
 * Both only use loop.h's internals read-only, next to the public calls.
 */
#include "loop.h"

#include <errno.h>
#include <string.h>

int ringline_loop_poll_packed(ringline_loop_t *loop, ringline_event_t *out,
                              unsigned max, int64_t timeout_ns, uint64_t *meta,
                              size_t meta_words, void *buf, size_t cap)
{
    RL_LOOP_CHECK(loop);
    if (!meta || (!buf && cap) || !out || max < 8)
        return -EINVAL;
    /* checked before polling: a too-small meta array must not cost events */
    if (meta_words / 3 < max)
        return -ENOBUFS;
    int n = ringline_loop_poll(loop, out, max, timeout_ns);
    if (n <= 0)
        return n;
    uint8_t *dst = buf;
    uint64_t end = 0;
    for (int i = 0; i < n; i++) {
        const ringline_event_t *e = &out[i];
        uint64_t type = e->type;
        if (e->type == RINGLINE_EV_DATA && e->len) {
            if (e->len > RINGLINE_PACKED_COPY_MAX) {
                type |= RINGLINE_PACKED_NOCOPY;
            } else if (e->len <= cap - end) {
                memcpy(dst + end, e->data, e->len);
                end += e->len;
            } else {
                /* the rest of the batch may still fit smaller payloads, but
                 * keeping the copies in event order is simpler for callers
                 * and costs nothing they would notice: once full, stay
                 * full */
                type |= RINGLINE_PACKED_NOCOPY;
                cap = end;
            }
        }
        meta[3 * (size_t)i] = type;
        meta[3 * (size_t)i + 1] = e->id;
        meta[3 * (size_t)i + 2] = end;
    }
    return n;
}

int ringline_conn_send_batch(ringline_loop_t *loop, const ringline_id_t *ids,
                             const void *buf, const uint64_t *ends, unsigned n,
                             int64_t *res)
{
    RL_LOOP_CHECK(loop);
    if (n == 0)
        return 0;
    if (!ids || !ends)
        return -EINVAL;
    /* validate everything first, so -EINVAL means nothing was queued */
    uint64_t prev = 0;
    for (unsigned i = 0; i < n; i++) {
        if (ends[i] < prev || ends[i] - prev > RL_MAX_LEN)
            return -EINVAL;
        prev = ends[i];
    }
    if (prev && !buf)
        return -EINVAL;
    const uint8_t *src = buf;
    int failed = 0;
    prev = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t len = ends[i] - prev;
        int64_t r;
        struct rl_conn *c = rl_conn_get(loop, ids[i]);
        if (!c) {
            r = -EBADF;
        } else if (c->state == RL_CONN_CLOSING || c->shut_wr) {
            r = -EPIPE;
        } else {
            struct iovec v = {(void *)(src + prev), (size_t)len};
            int rc = rl_sendq_copy(loop, c, &v, 1, 0);
            r = rc < 0 ? rc : (int64_t)c->queued;
        }
        if (r < 0)
            failed++;
        if (res)
            res[i] = r;
        prev = ends[i];
    }
    return failed;
}

int ringline_loop_round(ringline_loop_t *loop, ringline_round_t *r,
                        int64_t timeout_ns)
{
    RL_LOOP_CHECK(loop);
    if (!r || r->reserved)
        return -EINVAL;
    unsigned n = r->send_n;
    r->send_n = 0;
    r->send_failed = 0;
    if (n) {
        int f = ringline_conn_send_batch(loop, r->send_ids, r->send_buf,
                                         r->send_ends, n, r->send_res);
        r->send_failed = f;
        if (f < 0)
            return f;
    }
    return ringline_loop_poll_packed(loop, r->out, r->max, timeout_ns,
                                     r->meta, r->meta_words, r->buf, r->cap);
}
