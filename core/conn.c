/*
 * conn.c — connections: the id table, the receive path and its modes
 * (events, echo, forward, framed), backpressure, closing, connect.
 *
 * A connection slot is reused only after every operation on it reached its
 * final completion, so memory the kernel may write (the connection's
 * iovecs, address) is never freed early, and a stale id meets a new
 * generation and gets -EBADF.
 */
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

#define RL_DEFAULT_MAX_FRAME (1u << 20)

/* ---- the table ---- */

ringline_id_t rl_conn_id(ringline_loop_t *l, struct rl_conn *c)
{
    return RL_ID(RL_K_CONN, c->gen, (uint32_t)(c - l->conns));
}

struct rl_conn *rl_conn_get(ringline_loop_t *l, ringline_id_t id)
{
    if (RL_ID_KIND(id) != RL_K_CONN)
        return NULL;
    uint32_t idx = RL_ID_IDX(id);
    if (idx >= l->conns_hwm)
        return NULL;
    struct rl_conn *c = &l->conns[idx];
    if (c->state == RL_CONN_FREE || (c->gen & 0xFFFFFF) != RL_ID_GEN(id))
        return NULL;
    return c;
}

struct rl_conn *rl_conn_alloc(ringline_loop_t *l, int fd)
{
    struct rl_conn *c;
    if (l->conn_free) {
        c = &l->conns[l->conn_free - 1];
        l->conn_free = c->next_free;
    } else if (l->conns_hwm < l->max_conns) {
        c = &l->conns[l->conns_hwm++];
    } else {
        return NULL;
    }
    uint32_t gen = (c->gen + 1) & 0xFFFFFF;
    memset(c, 0, sizeof *c);
    c->gen = gen ? gen : 1;
    c->fd = fd;
    c->state = RL_CONN_OPEN;
    if (l->idle_ns)
        c->last_active = RL_ACTIVE_NOW();
    l->stats.conns_open++;
    /* replies should leave at once: request/response latency matters more
     * than packet count here, and the send queue batches already */
    /* a fixed slot has no descriptor: it inherited TCP_NODELAY from its
     * listener instead */
    if (!RINGLINE_IS_FIXED(fd)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return c;
}

/* The connection's out-of-line record, made on first use (NULL: out of
 * memory). */
struct rl_conn_x *rl_conn_x(struct rl_conn *c)
{
    if (RL_LIKELY(c->x != NULL))
        return c->x;
    c->x = calloc(1, sizeof *c->x);
    if (c->x)
        c->x->ev_idx = -1;
    return c->x;
}

/* With the slot: the rx buffer may back events of the batch the script
 * holds, so it goes at the next poll then. */
void rl_conn_x_free(ringline_loop_t *l, struct rl_conn *c)
{
    struct rl_conn_x *x = c->x;
    if (!x)
        return;
    if (c->ev_batch == l->batch && x->rx)
        rl_defer_free(l, x->rx);
    else
        free(x->rx);
    free(x->sv);
    free(x->addr);
    free(x);
    c->x = NULL;
}

/* ---- receive accumulator ---- */

static int rl_rx_append(ringline_loop_t *l, struct rl_conn *c,
                        const uint8_t *data, size_t len)
{
    struct rl_conn_x *x = rl_conn_x(c);
    if (!x)
        return -ENOMEM;
    size_t end = x->rx_off + x->rx_len;
    /* events of this batch may point into rx: then it must neither move
     * nor be freed until the next poll */
    bool pinned = c->ev_batch == l->batch;
    if (end + len > x->rx_cap) {
        if (!pinned && x->rx_off && x->rx_len + len <= x->rx_cap) {
            memmove(x->rx, x->rx + x->rx_off, x->rx_len);
            x->rx_off = 0;
        } else {
            size_t ncap = x->rx_cap ? x->rx_cap * 2 : 4096;
            while (ncap < x->rx_len + len)
                ncap *= 2;
            uint8_t *n = malloc(ncap);
            if (!n)
                return -ENOMEM;
            if (x->rx_len)
                memcpy(n, x->rx + x->rx_off, x->rx_len);
            if (pinned)
                rl_defer_free(l, x->rx);
            else
                free(x->rx);
            x->rx = n;
            x->rx_off = 0;
            x->rx_cap = ncap;
        }
    }
    memcpy(x->rx + x->rx_off + x->rx_len, data, len);
    x->rx_len += len;
    return 0;
}

/* Back to the free list; the slot's next user bumps the generation. */
static void rl_conn_release_slot(ringline_loop_t *l, struct rl_conn *c)
{
    c->state = RL_CONN_FREE;
    c->next_free = l->conn_free;
    l->conn_free = (uint32_t)(c - l->conns) + 1;
    l->stats.conns_open--;
}

/* The connection takes part in this batch (its x exists from here on
 * while ev_batch == l->batch). NULL: out of memory. */
static struct rl_conn_x *rl_mark_data(ringline_loop_t *l, struct rl_conn *c)
{
    struct rl_conn_x *x = rl_conn_x(c);
    if (!x)
        return NULL;
    if (c->ev_batch != l->batch) {
        c->ev_batch = l->batch;
        x->ev_idx = -1;
        x->fr_pos = 0;
        rl_push_u32(&l->data_conns, &l->data_n, &l->data_cap,
                    (uint32_t)(c - l->conns));
    }
    return x;
}

/* ---- modes ---- */

static void rl_deliver_data(ringline_loop_t *l, struct rl_conn *c,
                            uint16_t bid, const uint8_t *data, size_t len)
{
    struct rl_conn_x *x = rl_mark_data(l, c);
    if (!x) {
        rl_return_buf(l, bid);
        rl_conn_begin_close(l, c, -ENOMEM, true);
        return;
    }
    if (x->ev_idx >= 0) {
        /* a second chunk in the same batch: one DATA event per connection
         * per batch keeps "consume n bytes" unambiguous */
        ringline_event_t *e = &l->out[x->ev_idx];
        if (c->ev_pbuf) {
            rl_rx_append(l, c, e->data, e->len);
            c->ev_pbuf = false;
        }
        rl_rx_append(l, c, data, len);
        rl_return_buf(l, bid);
        e->data = x->rx + x->rx_off;
        e->len = x->rx_len;
        x->ev_data = e->data;
        x->ev_len = x->ev_consumed = x->rx_len;
        return;
    }
    if (!l->out || rl_ev_room(l) == 0) {
        /* no slot in this batch: keep the bytes, deliver them next time */
        rl_rx_append(l, c, data, len);
        rl_return_buf(l, bid);
        c->data_pending = true;
        rl_pending_add(l, c);
        return;
    }
    ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_DATA, rl_conn_id(l, c));
    x->ev_idx = (int)(e - l->out);
    c->data_pending = false;
    if (x->rx_len == 0) {
        /* the common case: the script reads the kernel's buffer itself */
        e->data = data;
        e->len = len;
        c->ev_pbuf = true;
    } else {
        rl_rx_append(l, c, data, len);
        e->data = x->rx + x->rx_off;
        e->len = x->rx_len;
        c->ev_pbuf = false;
    }
    /* given back at the next poll, once the script is done with it */
    rl_hold_buf(l, bid);
    x->ev_data = e->data;
    x->ev_len = x->ev_consumed = e->len;
}

/* Hand out complete frames from rx while the batch has room. */
static void rl_run_framer(ringline_loop_t *l, struct rl_conn *c)
{
    int kind = (int)(c->mode_arg & 0xFF);
    size_t max = (size_t)(c->mode_arg >> 8);
    if (!max)
        max = RL_DEFAULT_MAX_FRAME;
    struct rl_conn_x *x = rl_mark_data(l, c);
    if (!x) {
        rl_conn_begin_close(l, c, -ENOMEM, true);
        return;
    }
    while (c->state == RL_CONN_OPEN || c->state == RL_CONN_CLOSING) {
        if (rl_ev_room(l) < 2) {
            rl_pending_add(l, c); /* continue in the next batch */
            return;
        }
        const uint8_t *p = x->rx + x->rx_off + x->fr_pos;
        size_t avail = x->rx_len - x->fr_pos;
        if (!avail)
            return;
        size_t flen, poff, plen;
        int r = ringline_frame(kind, p, avail, max, &flen, &poff, &plen);
        if (r == 0)
            return;
        if (r < 0) {
            rl_conn_begin_close(l, c, r, true);
            return;
        }
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_FRAME, rl_conn_id(l, c));
        if (!e)
            return;
        e->data = p + poff;
        e->len = plen;
        e->tag = flen;
        x->fr_pos += flen;
    }
}

/* Bytes received while in `mode` (also used for leftovers on a switch). */
static void rl_conn_consume_bytes(ringline_loop_t *l, struct rl_conn *c,
                                  int bid, const uint8_t *data, size_t len)
{
    switch (c->mode) {
    case RINGLINE_MODE_ECHO:
        if (bid >= 0)
            rl_sendq_pbuf(l, c, (uint16_t)bid, data, len);
        else
            rl_sendq_copy(l, c, &(struct iovec){(void *)data, len}, 1, 0);
        return;
    case RINGLINE_MODE_FORWARD: {
        struct rl_conn *t = rl_conn_get(l, c->mode_arg);
        if (!t || t->state != RL_CONN_OPEN) {
            if (bid >= 0)
                rl_return_buf(l, (uint16_t)bid);
            rl_conn_begin_close(l, c, -EPIPE, true);
            return;
        }
        if (bid >= 0)
            rl_sendq_pbuf(l, t, (uint16_t)bid, data, len);
        else
            rl_sendq_copy(l, t, &(struct iovec){(void *)data, len}, 1, 0);
        return;
    }
    case RINGLINE_MODE_FRAMED:
        rl_rx_append(l, c, data, len);
        if (bid >= 0)
            rl_return_buf(l, (uint16_t)bid);
        rl_run_framer(l, c);
        return;
    default:
        if (bid >= 0 && !c->paused) {
            rl_deliver_data(l, c, (uint16_t)bid, data, len);
        } else {
            rl_rx_append(l, c, data, len);
            if (bid >= 0) {
                /* Paused by the script, but these bytes were received
                 * before the cancel of the receive took effect: hold them
                 * in rx until ringline_conn_resume (or a switch to
                 * ECHO/FORWARD sends them on). A DATA event after
                 * ringline_conn_pause surprised scripts, and one that
                 * ignores it (examples/proxy.c) lost the bytes. Found by
                 * tests/c/test_loop_misc.c. */
                rl_return_buf(l, (uint16_t)bid);
                c->data_pending = true;
            }
        }
        return;
    }
}

void rl_conn_arm_recv(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->recv_armed || c->recv_parked || c->paused || c->bp_paused ||
        c->eof || c->state != RL_CONN_OPEN || c->aborting)
        return;
    uint32_t idx = (uint32_t)(c - l->conns);
    int ret = ringline_op_recv_multishot(l->ring, c->fd, RL_BGID, 0,
                                         RL_TOK(RL_OP_RECV, c->gen, idx));
    if (ret == 0) {
        c->recv_armed = true;
        c->inflight++;
    } else {
        rl_conn_begin_close(l, c, ret, true);
    }
}

static void rl_conn_stop_recv(ringline_loop_t *l, struct rl_conn *c)
{
    if (!c->recv_armed)
        return;
    uint32_t idx = (uint32_t)(c - l->conns);
    if (ringline_op_cancel(l->ring, RL_TOK(RL_OP_RECV, c->gen, idx), 0,
                           RL_TOK(RL_OP_CANCEL, c->gen, idx)) == 0)
        c->inflight++;
}

/* The connection whose receiving fills c's send queue. */
static struct rl_conn *rl_bp_source(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->x && c->x->forward_from) {
        struct rl_conn *s = rl_conn_get(l, c->x->forward_from);
        if (s && s->mode == RINGLINE_MODE_FORWARD && s->mode_arg == rl_conn_id(l, c))
            return s;
    }
    return c;
}

void rl_conn_update_bp_slow(ringline_loop_t *l, struct rl_conn *c)
{
    struct rl_conn *src = rl_bp_source(l, c);
    if (c->queued > l->high) {
        if (!src->bp_paused) {
            src->bp_paused = true;
            rl_conn_stop_recv(l, src);
        }
        c->want_writable = true;
    } else if (c->queued <= l->low) {
        if (src->bp_paused) {
            src->bp_paused = false;
            rl_conn_arm_recv(l, src);
        }
        if (c->want_writable) {
            c->want_writable = false;
            if (c->state == RL_CONN_OPEN)
                rl_ev_push(l, RINGLINE_EV_WRITABLE, rl_conn_id(l, c));
        }
    }
}

void rl_conn_on_recv(ringline_loop_t *l, struct rl_conn *c,
                     const ringline_cqe_t *cqe)
{
    int res = cqe->res;
    if (!(cqe->flags & RINGLINE_CQE_F_MORE))
        c->recv_armed = false;
    if (cqe->flags & RINGLINE_CQE_F_BUFFER) {
        void *p = NULL;
        if (res <= 0 || c->state != RL_CONN_OPEN || c->aborting ||
            ringline_bufring_addr(l->ring, RL_BGID, cqe->bid, &p) < 0) {
            rl_return_buf(l, cqe->bid);
        } else {
            l->stats.bytes_in += (uint64_t)res;
            if (l->idle_ns) /* a clock read per completion only if used */
                c->last_active = RL_ACTIVE_NOW();
            rl_conn_consume_bytes(l, c, cqe->bid, p, (size_t)res);
        }
    }
    if (res == 0) {
        c->eof = true;
        switch (c->mode) {
        case RINGLINE_MODE_ECHO:
            rl_conn_begin_close(l, c, 0, false);
            break;
        case RINGLINE_MODE_FORWARD: {
            /* pass the half-close on: the other side sees EOF once
             * everything before it was written */
            ringline_conn_shutdown(l, c->mode_arg);
            struct rl_conn *t = rl_conn_get(l, c->mode_arg);
            if (!t || t->eof) {
                rl_conn_begin_close(l, c, 0, false);
                if (t)
                    rl_conn_begin_close(l, t, 0, false);
            }
            break;
        }
        default:
            /* Bytes (DATA) or frames that found the batch full wait on the
             * pending list; an EOF pushed now would overtake them (it goes
             * to the overflow queue, delivered first next poll), and a
             * script closing on EOF would lose them. Hold it until they are
             * out (rl_conn_pending_work). Found by
             * tests/c/test_loop_framed.c (FRAMED, batch of 8). */
            if (c->state == RL_CONN_OPEN && (c->in_list || c->data_pending))
                c->eof_owed = true;
            else if (c->state == RL_CONN_OPEN)
                rl_ev_push(l, RINGLINE_EV_EOF, rl_conn_id(l, c));
            break;
        }
    } else if (res == -ENOBUFS) {
        /* the group ran dry: wait for buffers instead of spinning */
        c->recv_parked = true;
        l->stats.enobufs_parks++;
        rl_pending_add(l, c);
    } else if (res < 0 && res != -ECANCELED) {
        rl_conn_begin_close(l, c, res, true);
    }
    if (!c->recv_armed)
        rl_conn_arm_recv(l, c);
}

/* A DATA event for bytes already in rx (they found the last batch full). */
static void rl_deliver_rx(ringline_loop_t *l, struct rl_conn *c)
{
    if (!rl_rx_len(c) || rl_ev_room(l) == 0)
        return;
    struct rl_conn_x *x = rl_mark_data(l, c); /* x exists: rx_len > 0 */
    if (x->ev_idx >= 0)
        return;
    ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_DATA, rl_conn_id(l, c));
    x->ev_idx = (int)(e - l->out);
    e->data = x->rx + x->rx_off;
    e->len = x->rx_len;
    c->ev_pbuf = false;
    x->ev_data = e->data;
    x->ev_len = x->ev_consumed = e->len;
    c->data_pending = false;
}

void rl_conn_pending_work(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->state == RL_CONN_CLOSING) {
        /* a close deferred by rl_conn_maybe_finish */
        rl_conn_maybe_finish(l, c);
        if (c->state == RL_CONN_FREE)
            return;
    }
    if (c->data_pending && c->paused && c->mode == RINGLINE_MODE_EVENTS) {
        /* held: ringline_conn_resume puts it back on the list */
    } else if (c->data_pending) {
        if (c->mode == RINGLINE_MODE_EVENTS && rl_ev_room(l) > 0)
            rl_deliver_rx(l, c);
        else if (c->mode == RINGLINE_MODE_EVENTS)
            rl_pending_add(l, c);
        else
            c->data_pending = false;
    }
    if (c->recv_parked) {
        if (ringline_bufring_available(l->ring, RL_BGID) > 0) {
            c->recv_parked = false;
            rl_conn_arm_recv(l, c);
        } else {
            rl_pending_add(l, c);
        }
    }
    if (c->mode == RINGLINE_MODE_FRAMED)
        rl_run_framer(l, c);
    /* everything received before the EOF is out: now the EOF */
    if (c->eof_owed && !c->in_list && !c->data_pending) {
        c->eof_owed = false;
        if (c->state == RL_CONN_OPEN)
            rl_ev_push(l, RINGLINE_EV_EOF, rl_conn_id(l, c));
    }
}

/* The script is done with this batch: keep what it did not consume. */
void rl_conn_settle(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->ev_batch != l->batch || c->state == RL_CONN_FREE)
        return;
    struct rl_conn_x *x = c->x; /* made by rl_mark_data */
    if (!x)
        return;
    if (c->mode == RINGLINE_MODE_FRAMED || x->fr_pos) {
        x->rx_off += x->fr_pos;
        x->rx_len -= x->fr_pos;
        x->fr_pos = 0;
    }
    if (x->ev_idx >= 0) {
        size_t used = x->ev_consumed < x->ev_len ? x->ev_consumed : x->ev_len;
        if (c->ev_pbuf) {
            /* the provided buffer goes back after this: keep the rest */
            if (used < x->ev_len)
                rl_rx_append(l, c, x->ev_data + used, x->ev_len - used);
            c->ev_pbuf = false;
        } else {
            x->rx_off += used;
            x->rx_len -= used;
        }
    }
    if (x->rx_len == 0)
        x->rx_off = 0;
    x->ev_idx = -1;
    c->ev_batch = 0;
    if (c->mode == RINGLINE_MODE_FRAMED && x->rx_len)
        rl_pending_add(l, c); /* frames may be complete already */
    if ((c->mode == RINGLINE_MODE_ECHO || c->mode == RINGLINE_MODE_FORWARD) &&
        x->rx_len && c->state == RL_CONN_OPEN) {
        /* The script kept bytes of a DATA event (consume) and switched to
         * ECHO/FORWARD in the same batch: set_mode left them to us, and
         * nothing else would ever send them. They go the new way now,
         * ahead of anything received later. Found by
         * tests/c/test_loop_forward.c. */
        size_t n = x->rx_len;
        x->rx_len = 0;
        rl_conn_consume_bytes(l, c, -1, x->rx + x->rx_off, n);
        x->rx_off = 0;
    }
}

void rl_conn_op_done(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->inflight > 0)
        c->inflight--;
    if (c->state == RL_CONN_CLOSING)
        rl_conn_maybe_finish(l, c);
}

void rl_conn_begin_close(ringline_loop_t *l, struct rl_conn *c, int reason,
                         bool abort)
{
    if (c->state == RL_CONN_FREE)
        return;
    bool was_connecting = c->state == RL_CONN_CONNECTING;
    if (c->state != RL_CONN_CLOSING) {
        c->state = RL_CONN_CLOSING;
        c->close_reason = reason;
    } else if (reason && !c->close_reason) {
        c->close_reason = reason;
    }
    uint32_t idx = (uint32_t)(c - l->conns);
    /* Closing (or stopping the loop) while a connect is still in flight:
     * cancel it, or CLOSED (and STOPPED) would wait for the kernel to give
     * up on the handshake, minutes without a timeout_ms. Found by
     * tests/c/test_loop_connect.c. */
    if (was_connecting &&
        ringline_op_cancel(l->ring, RL_TOK(RL_OP_CONNECT, c->gen, idx), 0,
                           RL_TOK(RL_OP_CANCEL, c->gen, idx)) == 0)
        c->inflight++;
    rl_conn_stop_recv(l, c);
    if (abort && !c->aborting) {
        c->aborting = true;
        rl_sendq_drop(l, c);
        /* a send blocked on a peer that does not read must not hold the
         * close forever */
        if (c->send_inflight &&
            ringline_op_cancel(l->ring, RL_TOK(RL_OP_SEND, c->gen, idx), 0,
                               RL_TOK(RL_OP_CANCEL, c->gen, idx)) == 0)
            c->inflight++;
    }
    rl_conn_maybe_finish(l, c);
}

void rl_conn_maybe_finish(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->state != RL_CONN_CLOSING || c->inflight > 0)
        return;
    if (!c->aborting && (c->sq_head || c->send_inflight))
        return; /* graceful: let the queue drain */
    if (c->x && c->x->zc_head)
        return; /* zero-copy buffers still referenced */
    if (!l->out) {
        /* A script call between polls (close, abort, stop) with nothing in
         * flight: finish at the next poll instead (rl_conn_pending_work),
         * so the id stays valid for queries until CLOSED is delivered, as
         * the header promises. Found by tests/c/test_loop_events.c. */
        rl_pending_add(l, c);
        if (c->in_list)
            return;
    }

    uint32_t idx = (uint32_t)(c - l->conns);
    /* bytes thrown away without another reason (stop with no deadline)
     * must not look like a clean close */
    if (c->dropped_unsent && c->close_reason == 0)
        c->close_reason = -ECANCELED;
    ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_CLOSED, rl_conn_id(l, c));
    if (e)
        e->res = c->close_reason;
    if (c->dropped_unsent && !RINGLINE_IS_FIXED(c->fd)) {
        /* bytes were thrown away: tell the peer with a reset, not a FIN */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (ringline_op_close(l->ring, c->fd, RL_TOK(RL_OP_CLOSE, c->gen, idx)) < 0) {
        if (RINGLINE_IS_FIXED(c->fd))
            ringline_files_remove(l->ring, RINGLINE_FIXED_SLOT(c->fd));
        else
            close(c->fd);
    }
    /* a FORWARD pair closes together */
    ringline_id_t other = c->mode == RINGLINE_MODE_FORWARD ? c->mode_arg
                          : c->x                           ? c->x->forward_from
                                                           : 0;
    rl_conn_x_free(l, c);
    c->ev_batch = 0;
    rl_conn_release_slot(l, c);
    l->stats.closed++;
    if (other) {
        struct rl_conn *o = rl_conn_get(l, other);
        if (o)
            rl_conn_begin_close(l, o, 0, false);
    }
    rl_check_stopped(l);
}

void rl_conns_idle_sweep(ringline_loop_t *l)
{
    uint32_t now = RL_ACTIVE_NOW();
    for (uint32_t i = 0; i < l->conns_hwm; i++) {
        struct rl_conn *c = &l->conns[i];
        /* d units is up to one unit more than the time elapsed: d - 1
         * is a lower bound, so no connection closes early */
        uint32_t d = now - c->last_active;
        if (c->state == RL_CONN_OPEN && d && ((uint64_t)(d - 1) << 20) >= l->idle_ns)
            rl_conn_begin_close(l, c, -ETIMEDOUT, false);
    }
}

/* ---- connect ---- */

void rl_conn_on_connect(ringline_loop_t *l, struct rl_conn *c, int res)
{
    if (c->state != RL_CONN_CONNECTING)
        return;
    if (res == -ECANCELED)
        res = -ETIMEDOUT; /* the link timeout cut it */
    ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_CONNECTED, rl_conn_id(l, c));
    if (e)
        e->res = res;
    if (res < 0) {
        /* the connect is over: CLOSING first, so begin_close does not try
         * to cancel it */
        c->state = RL_CONN_CLOSING;
        c->close_reason = res;
        rl_conn_begin_close(l, c, res, true);
        return;
    }
    c->state = RL_CONN_OPEN;
    l->stats.connected++;
    rl_conn_arm_recv(l, c);
    rl_sendq_kick(l, c);
    rl_conn_maybe_shutdown(l, c); /* requested while connecting */
}

int ringline_connect(ringline_loop_t *loop, const char *host, uint16_t port,
                     uint64_t timeout_ms, ringline_id_t *out)
{
    RL_LOOP_CHECK(loop);
    ringline_loop_t *l = loop;
    if (!host || !out || port == 0)
        return -EINVAL;
    if (l->stopping)
        return -ESHUTDOWN;
    struct sockaddr_storage ss;
    socklen_t len;
    int ret = rl_resolve(host, port, &ss, &len);
    if (ret < 0)
        return ret;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct rl_conn *c = rl_conn_alloc(l, fd);
    if (!c) {
        close(fd);
        return -ENFILE;
    }
    c->state = RL_CONN_CONNECTING;
    struct rl_conn_x *x = rl_conn_x(c);
    if (x)
        x->addr = malloc(sizeof *x->addr);
    if (!x || !x->addr) {
        free(c->x);
        c->x = NULL;
        rl_conn_release_slot(l, c);
        close(fd);
        return -ENOMEM;
    }
    memcpy(x->addr, &ss, len);
    x->addrlen = len;
    uint32_t idx = (uint32_t)(c - l->conns);
    if (timeout_ms) {
        ret = ringline_chain_begin(l->ring, 2, 0);
        if (ret == 0)
            ret = ringline_op_connect(l->ring, fd, (struct sockaddr *)x->addr,
                                      x->addrlen, RL_TOK(RL_OP_CONNECT, c->gen, idx));
        if (ret == 0)
            ret = ringline_op_link_timeout(l->ring, timeout_ms * 1000000ull, 0,
                                           RL_TOK(RL_OP_CONNECT_TIMEOUT, c->gen, idx));
        ringline_chain_end(l->ring);
    } else {
        ret = ringline_op_connect(l->ring, fd, (struct sockaddr *)x->addr,
                                  x->addrlen, RL_TOK(RL_OP_CONNECT, c->gen, idx));
    }
    if (ret < 0) {
        rl_conn_x_free(l, c);
        rl_conn_release_slot(l, c);
        close(fd);
        return ret;
    }
    c->inflight++;
    *out = rl_conn_id(l, c);
    return 0;
}

/* ---- the public connection calls ---- */

#define RL_CONN_GET(l, id, c)                                                  \
    RL_LOOP_CHECK(l);                                                          \
    struct rl_conn *c = rl_conn_get((l), (id));                                \
    if (!c)                                                                    \
        return -EBADF

int ringline_conn_set_mode(ringline_loop_t *loop, ringline_id_t id, int mode,
                           uint64_t arg)
{
    RL_CONN_GET(loop, id, c);
    switch (mode) {
    case RINGLINE_MODE_EVENTS:
    case RINGLINE_MODE_ECHO:
        break;
    case RINGLINE_MODE_FORWARD: {
        struct rl_conn *t = rl_conn_get(loop, arg);
        if (!t || t == c)
            return -EINVAL;
        if (!rl_conn_x(t))
            return -ENOMEM;
        t->x->forward_from = id;
        break;
    }
    case RINGLINE_MODE_FRAMED: {
        int k = (int)(arg & 0xFF);
        if (k < RINGLINE_FRAMER_LINE || k > RINGLINE_FRAMER_HTTP_HEAD)
            return -EINVAL;
        break;
    }
    default:
        return -EINVAL;
    }
    if (c->state != RL_CONN_OPEN && c->state != RL_CONN_CONNECTING)
        return -EBADF;
    /* a DATA event of this batch stays the script's; the switch applies to
     * bytes after it */
    int old = c->mode;
    c->mode = (uint8_t)mode;
    c->mode_arg = arg;
    if (old == RINGLINE_MODE_EVENTS && mode != RINGLINE_MODE_EVENTS &&
        mode != RINGLINE_MODE_FRAMED && rl_rx_len(c) && c->ev_batch != loop->batch) {
        /* leftovers the script kept go the new way */
        struct rl_conn_x *x = c->x;
        size_t n = x->rx_len;
        x->rx_len = 0;
        rl_conn_consume_bytes(loop, c, -1, x->rx + x->rx_off, n);
        x->rx_off = 0;
    }
    if (mode == RINGLINE_MODE_FRAMED && rl_rx_len(c))
        rl_pending_add(loop, c);
    if (mode == RINGLINE_MODE_EVENTS && old != RINGLINE_MODE_EVENTS && rl_rx_len(c)) {
        /* bytes the framer had not cut yet come as DATA at the next poll,
         * not only once more bytes arrive (a request/response peer would
         * wait forever) */
        c->data_pending = true;
        rl_pending_add(loop, c);
    }
    return 0;
}

int ringline_conn_send(ringline_loop_t *loop, ringline_id_t id,
                       const void *buf, size_t len, uint64_t tag)
{
    RL_CONN_GET(loop, id, c);
    if (!buf && len)
        return -EINVAL;
    if (c->state == RL_CONN_CLOSING || c->shut_wr)
        return -EPIPE;
    struct iovec v = {(void *)buf, len};
    return rl_sendq_copy(loop, c, &v, 1, tag);
}

int ringline_conn_sendv(ringline_loop_t *loop, ringline_id_t id,
                        const struct iovec *iov, unsigned n, uint64_t tag)
{
    RL_CONN_GET(loop, id, c);
    if ((!iov && n) || n > 1024)
        return -EINVAL;
    if (c->state == RL_CONN_CLOSING || c->shut_wr)
        return -EPIPE;
    return rl_sendq_copy(loop, c, iov, n, tag);
}

int ringline_conn_send_ref(ringline_loop_t *loop, ringline_id_t id,
                           const void *buf, size_t len, uint64_t tag)
{
    RL_CONN_GET(loop, id, c);
    if (!tag || (!buf && len) || len > RL_MAX_LEN)
        return -EINVAL;
    if (c->state == RL_CONN_CLOSING || c->shut_wr)
        return -EPIPE;
    return rl_sendq_ref(loop, c, buf, len, tag);
}

int64_t ringline_conn_queued(ringline_loop_t *loop, ringline_id_t id)
{
    RL_CONN_GET(loop, id, c);
    return (int64_t)c->queued;
}

int ringline_conn_consume(ringline_loop_t *loop, ringline_id_t id, size_t n)
{
    RL_CONN_GET(loop, id, c);
    /* (ev_batch == batch also holds for every connection before the
     * first poll, when batch is still 0: hence the x check) */
    if (c->ev_batch != loop->batch || !c->x || c->x->ev_idx < 0)
        return -EINVAL; /* no DATA event for it in the current batch */
    if (n > c->x->ev_len)
        return -EINVAL;
    c->x->ev_consumed = n;
    return 0;
}

int ringline_conn_pause(ringline_loop_t *loop, ringline_id_t id)
{
    RL_CONN_GET(loop, id, c);
    c->paused = true;
    rl_conn_stop_recv(loop, c);
    return 0;
}

int ringline_conn_resume(ringline_loop_t *loop, ringline_id_t id)
{
    RL_CONN_GET(loop, id, c);
    c->paused = false;
    rl_conn_arm_recv(loop, c);
    if (c->data_pending || c->eof_owed)
        rl_pending_add(loop, c); /* bytes (and EOF) held while paused */
    return 0;
}

/* shutdown(SHUT_WR) once requested, connected and the queue is empty. */
void rl_conn_maybe_shutdown(ringline_loop_t *l, struct rl_conn *c)
{
    if (!c->shut_wr || c->shut_done || c->sq_head || c->send_inflight ||
        c->state != RL_CONN_OPEN)
        return;
    uint32_t idx = (uint32_t)(c - l->conns);
    if (ringline_op_shutdown(l->ring, c->fd, SHUT_WR,
                             RL_TOK(RL_OP_SHUTDOWN, c->gen, idx)) == 0) {
        c->shut_done = true;
        c->inflight++;
    }
}

int ringline_conn_shutdown(ringline_loop_t *loop, ringline_id_t id)
{
    RL_CONN_GET(loop, id, c);
    if (c->shut_wr)
        return 0;
    c->shut_wr = true;
    rl_conn_maybe_shutdown(loop, c);
    return 0;
}

int ringline_conn_close(ringline_loop_t *loop, ringline_id_t id)
{
    RL_CONN_GET(loop, id, c);
    if (c->state == RL_CONN_CLOSING)
        return 0;
    rl_conn_begin_close(loop, c, 0, c->state == RL_CONN_CONNECTING);
    return 0;
}

int ringline_conn_abort(ringline_loop_t *loop, ringline_id_t id)
{
    RL_CONN_GET(loop, id, c);
    rl_conn_begin_close(loop, c, -ECONNABORTED, true);
    return 0;
}

int ringline_conn_peer(ringline_loop_t *loop, ringline_id_t id,
                       struct sockaddr_storage *out, socklen_t *len)
{
    RL_CONN_GET(loop, id, c);
    if (!out || !len)
        return -EINVAL;
    *len = sizeof *out;
    if (RINGLINE_IS_FIXED(c->fd))
        return -EOPNOTSUPP; /* a fixed slot has no descriptor to ask */
    if (getpeername(c->fd, (struct sockaddr *)out, len) < 0)
        return -errno;
    return 0;
}

/* every slot of the table costs this much once touched: keep it small
 * (idle RSS per connection, bench/run.sh idle shape) */
_Static_assert(sizeof(struct rl_conn) <= 72, "struct rl_conn grew");
