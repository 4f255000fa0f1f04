/*
 * sendq.c — the per-connection ordered send queue.
 *
 * io_uring does not order two sends on one socket, so exactly one send is
 * in flight per connection; what queues up behind it is gathered into one
 * sendmsg (up to RL_SENDV_MAX pieces) when it completes. Short writes resume
 * where they stopped. Small copies append to the queue's last chunk, so a
 * script's many small replies become one system call.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "loop.h"

#define RL_CHUNK_MIN_CAP 4096
/* at most 1024 header-only chunks (48 KiB) and 256 small ones (1 MiB)
 * wait for reuse */
static const unsigned rl_chunk_cache_max[2] = {1024, 256};

/* the cache class of a chunk of this capacity, or -1: not cached */
static inline int rl_chunk_class(size_t cap)
{
    return cap == 0 ? 0 : cap == RL_CHUNK_MIN_CAP ? 1 : -1;
}

/* Inline (with rl_chunk_release): one of each per echoed message, and the
 * calls cost about as much as the bodies. */
static inline __attribute__((always_inline)) struct rl_chunk *
rl_chunk_new(ringline_loop_t *l, size_t cap)
{
    struct rl_chunk *k;
    int cls = rl_chunk_class(cap);
    if (cls >= 0 && l->chunk_cache[cls]) {
        k = l->chunk_cache[cls];
        l->chunk_cache[cls] = k->next;
        l->chunk_cache_n[cls]--;
    } else {
        k = malloc(sizeof *k + cap);
        if (!k)
            return NULL;
    }
    memset(k, 0, sizeof *k);
    k->cap = cap;
    return k;
}

/* Let go of a chunk whose bytes are all written (or dropped). */
static inline __attribute__((always_inline)) void
rl_chunk_release(ringline_loop_t *l, struct rl_conn *c, struct rl_chunk *k,
                 int res)
{
    if (k->tag) {
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_SENT, rl_conn_id(l, c));
        if (e) {
            e->tag = k->tag;
            e->res = res;
        }
    }
    if (k->kind == RL_CHUNK_PBUF)
        rl_return_buf(l, k->bid);
    int cls = rl_chunk_class(k->cap);
    if (cls >= 0 && l->chunk_cache_n[cls] < rl_chunk_cache_max[cls]) {
        k->next = l->chunk_cache[cls];
        l->chunk_cache[cls] = k;
        l->chunk_cache_n[cls]++;
    } else {
        free(k);
    }
}

static void rl_sendq_append(ringline_loop_t *l, struct rl_conn *c,
                            struct rl_chunk *k)
{
    k->next = NULL;
    if (c->sq_tail)
        c->sq_tail->next = k;
    else
        c->sq_head = k;
    c->sq_tail = k;
    c->queued += k->len - k->off;
    l->stats.sends_queued++;
}

/* Is the last queued chunk outside the send in flight? (The old way
 * walked the queue: quadratic for a long queue of small sends.) */
static bool rl_tail_free(struct rl_conn *c)
{
    return c->sq_tail && !c->sq_tail->inflight;
}

int rl_sendq_copy(ringline_loop_t *l, struct rl_conn *c,
                  const struct iovec *iov, unsigned n, uint64_t tag)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        total += iov[i].iov_len;
        if (total > RL_MAX_LEN)
            return -EINVAL;
    }
    if (total == 0 && !tag)
        return 0;
    struct rl_chunk *t = c->sq_tail;
    /* a tagged chunk takes no more bytes: its SENT event reports its own */
    if (t && t->kind == RL_CHUNK_OWNED && t->tag == 0 &&
        t->cap - t->len >= total && rl_tail_free(c)) {
        /* coalesce into the last chunk; its tag (if any) now fires after
         * these bytes too, which is still after its own */
        for (unsigned i = 0; i < n; i++) {
            memcpy(t->storage + t->len, iov[i].iov_base, iov[i].iov_len);
            t->len += iov[i].iov_len;
        }
        if (tag) {
            t->tag = tag;
            t->tag_len = total;
        }
        c->queued += total;
    } else {
        size_t cap = total < RL_CHUNK_MIN_CAP ? RL_CHUNK_MIN_CAP : total;
        struct rl_chunk *k = rl_chunk_new(l, cap);
        if (!k)
            return -ENOMEM;
        k->kind = RL_CHUNK_OWNED;
        k->data = k->storage;
        k->tag = tag;
        k->tag_len = total;
        for (unsigned i = 0; i < n; i++) {
            memcpy(k->storage + k->len, iov[i].iov_base, iov[i].iov_len);
            k->len += iov[i].iov_len;
        }
        rl_sendq_append(l, c, k);
    }
    rl_sendq_kick(l, c);
    rl_conn_update_bp(l, c);
    return 0;
}

int rl_sendq_ref(ringline_loop_t *l, struct rl_conn *c, const void *buf,
                 size_t len, uint64_t tag)
{
    struct rl_chunk *k = rl_chunk_new(l, 0);
    if (!k)
        return -ENOMEM;
    k->kind = RL_CHUNK_REF;
    k->data = buf;
    k->len = len;
    k->tag = tag;
    k->tag_len = len;
    rl_sendq_append(l, c, k);
    rl_sendq_kick(l, c);
    rl_conn_update_bp(l, c);
    return 0;
}

int rl_sendq_pbuf(ringline_loop_t *l, struct rl_conn *c, uint16_t bid,
                  const uint8_t *data, size_t len)
{
    struct rl_chunk *k = rl_chunk_new(l, 0);
    if (!k) {
        rl_return_buf(l, bid);
        return -ENOMEM;
    }
    k->kind = RL_CHUNK_PBUF;
    k->bid = bid;
    k->data = data;
    k->len = len;
    rl_sendq_append(l, c, k);
    rl_sendq_kick(l, c);
    rl_conn_update_bp(l, c);
    return 0;
}

void rl_sendq_kick(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->send_inflight || !c->sq_head || c->aborting ||
        c->state == RL_CONN_FREE || c->state == RL_CONN_CONNECTING)
        return;
    uint32_t idx = (uint32_t)(c - l->conns);
    uint64_t tok = RL_TOK(RL_OP_SEND, c->gen, idx);
    struct rl_chunk *k = c->sq_head;
    int ret;
    /* MSG_NOSIGNAL: a peer that went away must give EPIPE, not kill the
     * process. MSG_WAITALL: the kernel retries short stream writes. */
    const int mflags = MSG_NOSIGNAL | MSG_WAITALL;
    size_t first = k->len - k->off;

    if (k->kind == RL_CHUNK_REF && l->zc_threshold && first >= l->zc_threshold) {
        /* its chunk waits on x's zero-copy list after the send */
        if (!rl_conn_x(c)) {
            rl_conn_begin_close(l, c, -ENOMEM, true);
            return;
        }
        ret = ringline_op_send_zc(l->ring, c->fd, k->data + k->off, first,
                                  mflags, tok);
        if (ret == 0) {
            c->sending = 1;
            c->sending_zc = true;
            l->stats.sends_zc++;
        }
    } else if (!k->next ||
               (k->next->kind == RL_CHUNK_REF && l->zc_threshold &&
                k->next->len - k->next->off >= l->zc_threshold)) {
        /* alone: nothing follows, or what follows goes zero-copy on its
         * own (caller-memory chunks below the threshold are gathered) */
        ret = ringline_op_send(l->ring, c->fd, k->data + k->off, first, mflags,
                               tok);
        if (ret == 0) {
            c->sending = 1;
            c->sending_zc = false;
        }
    } else {
        struct rl_conn_x *x = rl_conn_x(c);
        if (x && !x->sv)
            x->sv = malloc(sizeof *x->sv);
        if (!x || !x->sv) {
            rl_conn_begin_close(l, c, -ENOMEM, true);
            return;
        }
        struct rl_sendv *sv = x->sv;
        unsigned n = 0;
        size_t total = 0;
        for (; k && n < RL_SENDV_MAX; k = k->next) {
            /* a big caller-memory chunk goes alone, zero-copy */
            if (n && k->kind == RL_CHUNK_REF && l->zc_threshold &&
                k->len - k->off >= l->zc_threshold)
                break;
            sv->iov[n].iov_base = (void *)(k->data + k->off);
            sv->iov[n].iov_len = k->len - k->off;
            total += k->len - k->off;
            n++;
        }
        memset(&sv->msg, 0, sizeof sv->msg);
        sv->msg.msg_iov = sv->iov;
        sv->msg.msg_iovlen = n;
        ret = ringline_op_sendmsg(l->ring, c->fd, &sv->msg, mflags, tok);
        if (ret == 0) {
            c->sending = (uint8_t)n;
            c->sending_zc = false;
        }
    }
    if (ret == 0) {
        c->send_inflight = true;
        c->inflight++;
        /* no more bytes may be appended to these (one, usually) */
        struct rl_chunk *q = c->sq_head;
        q->inflight = true;
        for (unsigned seen = 1; seen < c->sending; seen++) {
            q = q->next;
            q->inflight = true;
        }
    } else {
        rl_conn_begin_close(l, c, ret, true);
    }
}

void rl_sendq_on_send(ringline_loop_t *l, struct rl_conn *c,
                      const ringline_cqe_t *cqe)
{
    if (cqe->flags & RINGLINE_CQE_F_NOTIF) {
        /* the kernel let go of a zero-copy buffer */
        struct rl_chunk *k = c->x ? c->x->zc_head : NULL;
        if (k) {
            c->x->zc_head = k->next;
            if (!c->x->zc_head)
                c->x->zc_tail = NULL;
            rl_chunk_release(l, c, k, (int)k->tag_len);
        }
        return;
    }
    int res = cqe->res;
    bool zc_pending = c->sending_zc && (cqe->flags & RINGLINE_CQE_F_MORE);
    unsigned sending = c->sending;
    c->send_inflight = false;
    c->sending = 0;
    if (res < 0) {
        /* the chunks the send covered stay queued: open them again */
        unsigned seen = 0;
        for (struct rl_chunk *q = c->sq_head; q && seen < sending;
             q = q->next, seen++)
            q->inflight = false;
        if ((res == -EAGAIN || res == -EINTR) && !c->aborting) {
            /* nothing was written: send the same bytes again */
            rl_sendq_kick(l, c);
            return;
        }
        rl_conn_begin_close(l, c, res, true);
        /* An abort that came while this send was in flight (a receive
         * error, ringline_conn_abort, the stop deadline) left the chunks
         * it covered in the queue for this completion; nothing sends them
         * now, so let them go here, or they leak (with their SENT events
         * and, for echo, their receive buffers). Found by
         * tests/c/test_loop_reset.c. */
        rl_sendq_drop(l, c);
        return;
    }
    l->stats.bytes_out += (uint64_t)res;
    if (l->idle_ns)
        c->last_active = RL_ACTIVE_NOW();
    size_t left = (size_t)res;
    for (unsigned i = 0; i < sending && c->sq_head; i++) {
        struct rl_chunk *k = c->sq_head;
        size_t take = k->len - k->off;
        if (take > left)
            take = left;
        k->off += take;
        left -= take;
        c->queued -= take;
        if (k->off < k->len) {
            /* short write: resume here; this chunk and the rest the send
             * covered are open again (written chunks were let go above,
             * so their inflight marks need no clearing) */
            for (; i < sending && k; i++, k = k->next)
                k->inflight = false;
            break;
        }
        c->sq_head = k->next;
        if (!c->sq_head)
            c->sq_tail = NULL;
        if (zc_pending) {
            /* reusable only after the notification */
            k->next = NULL;
            struct rl_conn_x *x = c->x; /* made by the zero-copy kick */
            if (x->zc_tail)
                x->zc_tail->next = k;
            else
                x->zc_head = k;
            x->zc_tail = k;
        } else {
            rl_chunk_release(l, c, k, (int)k->tag_len);
        }
    }
    rl_conn_update_bp(l, c);
    if (c->aborting) {
        /* see above: the rest of the queue will never be sent */
        rl_sendq_drop(l, c);
    } else if (c->sq_head) {
        rl_sendq_kick(l, c);
    } else if (RL_UNLIKELY(c->shut_wr)) {
        rl_conn_maybe_shutdown(l, c); /* it needs shut_wr too */
    }
}

/* Abort: throw away everything not handed to the kernel. */
void rl_sendq_drop(ringline_loop_t *l, struct rl_conn *c)
{
    struct rl_chunk *k = c->sq_head;
    struct rl_chunk **link = &c->sq_head;
    unsigned i = 0;
    /* chunks covered by the send in flight stay until it completes */
    while (k && c->send_inflight && i < c->sending) {
        link = &k->next;
        k = k->next;
        i++;
    }
    c->sq_tail = NULL;
    if (link != &c->sq_head) {
        /* find the new tail */
        struct rl_chunk *t = c->sq_head;
        while (t && t->next != k)
            t = t->next;
        c->sq_tail = t;
    }
    *link = NULL;
    while (k) {
        struct rl_chunk *n = k->next;
        c->queued -= k->len - k->off;
        c->dropped_unsent = true;
        rl_chunk_release(l, c, k, -ECANCELED);
        k = n;
    }
}
