/*
 * loop.c — the event loop: one poll call submits, waits, turns completions
 * into a batch of events, and settles the previous batch (buffers go back to
 * the kernel only when the script asks for the next batch, so the data it
 * was shown stays valid until then).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

uint64_t ringline_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- small growable arrays ---- */

/* grows *arr to hold need elements, doubling */
int rl_grow(void **arr, unsigned *cap, size_t elem, unsigned need)
{
    if (need <= *cap)
        return 0;
    unsigned ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*arr, (size_t)ncap * elem);
    if (!n)
        return -ENOMEM;
    *arr = n;
    *cap = ncap;
    return 0;
}

int rl_push_u32(uint32_t **arr, unsigned *n, unsigned *cap, uint32_t v)
{
    if (rl_grow((void **)arr, cap, sizeof **arr, *n + 1) < 0)
        return -ENOMEM;
    (*arr)[(*n)++] = v;
    return 0;
}

static inline void rl_buf_list_add(ringline_loop_t *l, uint16_t **arr,
                                   unsigned *n, unsigned *cap, uint16_t bid)
{
    if (RL_LIKELY(*n < *cap)) { /* every echoed buffer comes through here */
        (*arr)[(*n)++] = bid;
        return;
    }
    if (rl_grow((void **)arr, cap, sizeof **arr, *n + 1) < 0) {
        /* cannot remember it: give it back now rather than leak it */
        ringline_bufring_return(l->ring, RL_BGID, &bid, 1);
        return;
    }
    (*arr)[(*n)++] = bid;
}

/* A buffer nobody looks at any more: back to the kernel this round. */
void rl_return_buf(ringline_loop_t *l, uint16_t bid)
{
    rl_buf_list_add(l, &l->ret_bids, &l->ret_n, &l->ret_cap, bid);
}

/* A buffer whose bytes the script was shown: back at the next poll. */
void rl_hold_buf(ringline_loop_t *l, uint16_t bid)
{
    rl_buf_list_add(l, &l->held_bids, &l->held_n, &l->held_cap, bid);
}

void rl_flush_bufs(ringline_loop_t *l)
{
    if (l->ret_n) {
        ringline_bufring_return(l->ring, RL_BGID, l->ret_bids, l->ret_n);
        l->ret_n = 0;
    }
}

void rl_defer_free(ringline_loop_t *l, void *p)
{
    if (rl_grow((void **)&l->defer_free, &l->defer_cap, sizeof(void *),
                l->defer_n + 1) < 0) {
        /* no room to defer: leak rather than free memory a script may
         * still be reading; only under memory exhaustion */
        return;
    }
    l->defer_free[l->defer_n++] = p;
}

/* ---- events ---- */

unsigned rl_ev_room(ringline_loop_t *l) { return l->out_max - l->out_n; }

/* A new event in the batch, or in the overflow queue when the batch is full
 * (only for events without data pointers: callers check rl_ev_room before
 * producing DATA/FRAME/DATAGRAM). */
ringline_event_t *rl_ev_push(ringline_loop_t *l, uint32_t type,
                             ringline_id_t id)
{
    ringline_event_t *e;
    if (l->out && l->out_n < l->out_max) {
        e = &l->out[l->out_n++];
    } else {
        if (rl_grow((void **)&l->ovf, &l->ovf_cap, sizeof *l->ovf,
                    l->ovf_n + 1) < 0)
            return NULL;
        /* keep it a simple array: the overflow is drained from the front
         * at the next poll, and is rarely more than a few events */
        e = &l->ovf[l->ovf_n++];
    }
    memset(e, 0, sizeof *e);
    e->type = type;
    e->id = id;
    l->stats.events++;
    return e;
}

/* ---- creation ---- */

int ringline_loop_new(const ringline_config_t *cfg, ringline_loop_t **out)
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
    ringline_loop_t *l = rl_handle_alloc(sizeof *l, RL_MAGIC_LOOP);
    if (!l)
        return -ENOMEM;
    l->max_conns = cfg->max_conns;
    l->buf_count = cfg->buf_count;
    l->buf_size = cfg->buf_size;
    l->high = cfg->send_high;
    l->low = cfg->send_low;
    l->zc_threshold = cfg->zc_threshold;
    l->idle_ns = cfg->idle_ms * 1000000ull;
    l->udp_buf_count = cfg->udp_buf_count;
    l->udp_buf_size = cfg->udp_buf_size;
    l->sig_fd = -1;

    int ret = ringline_ring_new(cfg, &l->ring);
    if (ret < 0)
        goto fail;
    uint64_t feat = 0;
    ringline_ring_features(l->ring, &feat);
    if (!(feat & RINGLINE_FEAT_RECV_MULTISHOT) ||
        !(feat & RINGLINE_FEAT_ACCEPT_MULTISHOT)) {
        ret = -EOPNOTSUPP; /* the loop is built on multishot recv/accept */
        goto fail;
    }
    ret = ringline_bufring_create(l->ring, RL_BGID, l->buf_count, l->buf_size);
    if (ret < 0)
        goto fail;
    /* calloc'd pages are only touched when a slot is first used, so a large
     * max_conns costs address space, not memory */
    l->conns = calloc(l->max_conns, sizeof *l->conns);
    if (!l->conns) {
        ret = -ENOMEM;
        goto fail;
    }
    rl_raise_nofile(l->max_conns + 128);
    if (cfg->fixed_files) {
        /* the whole table is the kernel's allocation range: multishot
         * accept picks the slots, close-direct frees them */
        ret = ringline_files_register(l->ring, l->max_conns, l->max_conns);
        if (ret < 0)
            goto fail;
        l->fixed_files = true;
    }
    *out = l;
    return 0;
fail:
    if (l->ring)
        ringline_ring_destroy(l->ring);
    free(l->conns);
    rl_handle_free(l, sizeof *l);
    return ret;
}

int ringline_loop_ring(ringline_loop_t *loop, ringline_ring_t **out)
{
    RL_LOOP_CHECK(loop);
    if (!out)
        return -EINVAL;
    *out = loop->ring;
    return 0;
}

/* ---- settling the previous batch ---- */

static void rl_settle(ringline_loop_t *l)
{
    for (unsigned i = 0; i < l->data_n; i++) {
        uint32_t idx = l->data_conns[i];
        struct rl_conn *c = &l->conns[idx];
        rl_conn_settle(l, c);
    }
    l->data_n = 0;
    rl_udp_settle(l);
    if (l->held_n) {
        ringline_bufring_return(l->ring, RL_BGID, l->held_bids, l->held_n);
        l->held_n = 0;
    }
    rl_flush_bufs(l);
    for (unsigned i = 0; i < l->defer_n; i++)
        free(l->defer_free[i]);
    l->defer_n = 0;
}

/* Parked connections (ENOBUFS) re-arm when buffers are back; connections
 * with frames left over from a full batch continue. FIFO, for fairness. */
static void rl_run_pending(ringline_loop_t *l)
{
    if (!l->pending_n)
        return;
    uint32_t *list = l->pending;
    unsigned n = l->pending_n;
    l->pending = NULL;
    l->pending_n = 0;
    l->pending_cap = 0;
    unsigned i = 0;
    for (; i < n; i++) {
        struct rl_conn *c = &l->conns[list[i]];
        c->in_list = false;
        if (c->state == RL_CONN_FREE)
            continue;
        if (rl_ev_room(l) < RL_EV_ROOM)
            break;
        rl_conn_pending_work(l, c);
    }
    /* whatever did not get its turn stays, ahead of newcomers */
    for (; i < n; i++) {
        struct rl_conn *c = &l->conns[list[i]];
        if (c->state == RL_CONN_FREE || c->in_list)
            continue;
        c->in_list = true;
        rl_push_u32(&l->pending, &l->pending_n, &l->pending_cap, list[i]);
    }
    free(list);
}

void rl_pending_add(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->in_list)
        return;
    if (rl_push_u32(&l->pending, &l->pending_n, &l->pending_cap,
                    (uint32_t)(c - l->conns)) == 0)
        c->in_list = true;
}

/* ---- completion dispatch ---- */

static void rl_on_signal(ringline_loop_t *l, const ringline_cqe_t *c)
{
    l->sig_armed = false;
    if (c->res == (int)sizeof(struct signalfd_siginfo)) {
        /* sig_buf is a byte array with no alignment guarantee: copy it
         * out instead of casting (UBSan: misaligned member access, seen
         * in tests/c/test_loop_stop.c) */
        struct signalfd_siginfo si;
        memcpy(&si, l->sig_buf, sizeof si);
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_SIGNAL, 0);
        if (e)
            e->res = (int)si.ssi_signo;
        if (!l->stopping)
            ringline_loop_stop(l, l->stop_deadline_ms);
    }
}

static void rl_arm_signal(ringline_loop_t *l)
{
    if (l->sig_fd < 0 || l->sig_armed || l->stopped)
        return;
    if (ringline_op_read(l->ring, l->sig_fd, l->sig_buf,
                         sizeof(struct signalfd_siginfo), (uint64_t)-1,
                         RL_TOK(RL_OP_SIGNAL, 0, 0)) == 0)
        l->sig_armed = true;
}

static void rl_dispatch(ringline_loop_t *l, const ringline_cqe_t *c)
{
    l->stats.cqes++;
    uint64_t t = c->token;
    if (t == RINGLINE_TOKEN_WAKE) {
        rl_ev_push(l, RINGLINE_EV_WAKE, 0);
        return;
    }
    if (!(t & RL_TOK_LOOP)) {
        /* a script's raw operation on the loop's ring: hand it over as is
         * (a provided buffer in it is the script's to return) */
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_CQE, 0);
        if (e) {
            e->tag = t;
            e->res = c->res;
            e->id2 = (uint64_t)c->flags | ((uint64_t)c->bgid << 32) |
                     ((uint64_t)c->bid << 48);
        }
        return;
    }
    uint32_t idx = RL_TOK_IDX(t);
    switch (RL_TOK_OP(t)) {
    case RL_OP_RECV:
    case RL_OP_SEND:
    case RL_OP_CONNECT:
    case RL_OP_SHUTDOWN:
    case RL_OP_CANCEL: {
        if (idx >= l->max_conns)
            return;
        struct rl_conn *c2 = &l->conns[idx];
        /* a slot is reused only once all its operations completed, so a
         * generation mismatch means a bug, never a late completion */
        if (c2->state == RL_CONN_FREE || (c2->gen & 0xFFFF) != RL_TOK_GEN(t)) {
            if ((c->flags & RINGLINE_CQE_F_BUFFER) && c->bgid == RL_BGID)
                rl_return_buf(l, c->bid);
            return;
        }
        switch (RL_TOK_OP(t)) {
        case RL_OP_RECV:
            rl_conn_on_recv(l, c2, c);
            break;
        case RL_OP_SEND:
            rl_sendq_on_send(l, c2, c);
            break;
        case RL_OP_CONNECT:
            rl_conn_on_connect(l, c2, c->res);
            break;
        default:
            break;
        }
        if (!(c->flags & RINGLINE_CQE_F_MORE))
            rl_conn_op_done(l, c2);
        return;
    }
    case RL_OP_CONNECT_TIMEOUT:
    case RL_OP_CLOSE:
        return; /* informational: the connection side handles the outcome */
    case RL_OP_ACCEPT:
        rl_listener_on_accept(l, idx, c);
        return;
    case RL_OP_ACCEPT_RETRY:
        if (idx < 64)
            rl_listener_rearm(l, idx);
        return;
    case RL_OP_UDP_RECV:
        rl_udp_on_recv(l, idx, c);
        return;
    case RL_OP_UDP_SEND:
        rl_udp_on_send(l, idx, c);
        return;
    case RL_OP_TIMER:
        rl_timer_on_cqe(l, idx, c);
        return;
    case RL_OP_SIGNAL:
        rl_on_signal(l, c);
        return;
    case RL_OP_IDLE_SWEEP:
        if (!(c->flags & RINGLINE_CQE_F_MORE))
            l->idle_armed = false;
        if (c->res == -ETIME)
            rl_conns_idle_sweep(l);
        return;
    case RL_OP_STOP_DEADLINE:
        if (c->res == -ETIME) {
            /* the drain deadline passed: whatever is left goes now */
            for (uint32_t i = 0; i < l->conns_hwm; i++)
                if (l->conns[i].state != RL_CONN_FREE)
                    rl_conn_begin_close(l, &l->conns[i], -ETIMEDOUT, true);
            rl_check_stopped(l);
        }
        return;
    default:
        return;
    }
}

static void rl_arm_idle(ringline_loop_t *l)
{
    if (!l->idle_ns || l->idle_armed || l->stopped)
        return;
    uint64_t period = l->idle_ns / 4;
    if (period < 1000000)
        period = 1000000;
    if (ringline_op_timeout(l->ring, period, 0, RINGLINE_TIMEOUT_MULTISHOT,
                            RL_TOK(RL_OP_IDLE_SWEEP, 0, 0)) == 0)
        l->idle_armed = true;
}

/* Harvest and dispatch completions while there is room for their events:
 * one pass over the CQ ring, each CQE dispatched as it is taken (no copy
 * into an array first and a second loop over it), the head advanced once. */
static int rl_harvest_round(ringline_loop_t *l)
{
    ringline_ring_t *r = l->ring;
    struct io_uring *ring = &r->ring;
    struct io_uring_cq *cq = &ring->cq;
    const unsigned shift = r->big ? 1 : 0;
    int total = 0;
    bool flushed = false;

    for (;;) {
        unsigned head = *cq->khead;
        unsigned tail = io_uring_smp_load_acquire(cq->ktail);
        unsigned seen = 0;
        /* every completion may need a DATA slot: never take one the batch
         * cannot hold */
        while (head != tail && rl_ev_room(l) >= RL_EV_ROOM) {
            const struct io_uring_cqe *kc =
                &cq->cqes[(head & cq->ring_mask) << shift];
            head++;
            seen++;
            ringline_cqe_t c;
            if (!rl_cqe_take(r, kc, &c))
                continue;
            /* the head is ours to advance only after the CQE was read:
             * give the kernel its slots back before dispatch (which may
             * submit, and an inline completion wants room in the CQ) */
            io_uring_cq_advance(ring, seen);
            seen = 0;
            rl_dispatch(l, &c);
            total++;
            if (head == tail)
                tail = io_uring_smp_load_acquire(cq->ktail);
        }
        if (seen)
            io_uring_cq_advance(ring, seen);
        if (head != tail || flushed)
            break; /* the batch is full, or flushed once already */
        /* Most rounds of a request/response loop find the CQ empty;
         * overflowed CQEs (NODROP) only come back through an enter: flush
         * once and look again, so a full CQ never hides a completion. No
         * task-work flush here: the wait that follows runs it anyway, and
         * an extra io_uring_enter per round costs more than it saves. */
        if (!(IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_CQ_OVERFLOW))
            break;
        io_uring_get_events(ring);
        flushed = true;
    }
    /* hot paths finished with these: parked receivers need them now */
    if (total)
        rl_flush_bufs(l);
    return total;
}

int ringline_loop_poll(ringline_loop_t *loop, ringline_event_t *out,
                       unsigned max, int64_t timeout_ns)
{
    RL_LOOP_CHECK(loop);
    ringline_loop_t *l = loop;
    if (!out || max < 8)
        return -EINVAL;
    l->stats.polls++;
    rl_settle(l);
    l->batch++;
    l->out = out;
    l->out_n = 0;
    l->out_max = max;

    /* events that did not fit last time come first */
    unsigned take = l->ovf_n < max ? l->ovf_n : max;
    if (take) {
        memcpy(out, l->ovf, take * sizeof *out);
        memmove(l->ovf, l->ovf + take, (l->ovf_n - take) * sizeof *out);
        l->ovf_n -= take;
        l->out_n = take;
    }
    rl_udp_unstash(l);

    uint64_t deadline = 0;
    if (timeout_ns > 0)
        deadline = ringline_now_ns() + (uint64_t)timeout_ns;
    int ret = 0;
    bool harvested = false;
    for (;;) {
        rl_run_pending(l);
        rl_arm_signal(l);
        rl_arm_idle(l);
        /* After a wait the CQ was just drained (a harvest that found the
         * batch full returned above): looking again would find it empty.
         * The wait cannot sleep over completions that arrived since, as it
         * enters without waiting when the CQ holds any, and the harvest
         * after it takes them. Two empty rounds per ping-pong message. */
        if (!harvested)
            rl_harvest_round(l);
        if (l->out_n || l->stopped_event)
            break;
        int64_t wait;
        if (timeout_ns == 0) {
            wait = 0;
        } else if (timeout_ns < 0) {
            wait = -1;
        } else {
            uint64_t now = ringline_now_ns();
            if (now >= deadline)
                wait = 0;
            else
                wait = (int64_t)(deadline - now);
        }
        /* parked connections waiting for buffers must not make us sleep
         * while their buffers sit in ret_bids: those were returned above */
        ret = ringline_ring_submit_and_wait(l->ring, wait ? 1 : 0, wait);
        if (ret < 0 && ret != -EINTR)
            break;
        rl_harvest_round(l);
        harvested = true;
        if (l->out_n || wait == 0)
            break;
        if (ret == -EINTR)
            break;
    }
    /* submit what the events' processing queued (sends, re-arms) */
    int sret = ringline_ring_submit(l->ring);
    (void)sret;
    l->out = NULL;
    if (l->out_n)
        return (int)l->out_n;
    if (ret == -EINTR)
        return -EINTR;
    return ret < 0 ? ret : 0;
}

int ringline_loop_run(ringline_loop_t *loop)
{
    RL_LOOP_CHECK(loop);
    ringline_event_t ev[64];
    while (!loop->stopped_event) {
        int n = ringline_loop_poll(loop, ev, 64, -1);
        if (n < 0 && n != -EINTR)
            return n;
        /* a loop without a script: scripts' events have no one to go to,
         * but data must still be released (consumed) — poll does that */
        for (int i = 0; i < n; i++)
            if (ev[i].type == RINGLINE_EV_STOPPED)
                return 0;
    }
    return 0;
}

int ringline_loop_wake(ringline_loop_t *loop)
{
    RL_LOOP_CHECK(loop);
    return ringline_ring_wake(loop->ring);
}

void rl_check_stopped(ringline_loop_t *l)
{
    if (!l->stopping || l->stopped_event)
        return;
    if (l->stats.conns_open)
        return;
    for (int i = 0; i < 64; i++)
        if (l->listeners[i].used || l->udps[i].used)
            return;
    l->stopped = true;
    l->stopped_event = true;
    rl_ev_push(l, RINGLINE_EV_STOPPED, 0);
}

int ringline_loop_stop(ringline_loop_t *loop, uint64_t deadline_ms)
{
    RL_LOOP_CHECK(loop);
    ringline_loop_t *l = loop;
    if (l->stopping)
        return 0;
    l->stopping = true;
    rl_listeners_close_all(l);
    rl_udps_close_all(l);
    rl_timers_cancel_all(l);
    if (l->idle_armed)
        ringline_op_timeout_remove(l->ring, RL_TOK(RL_OP_IDLE_SWEEP, 0, 0),
                                   RL_TOK(RL_OP_CANCEL, 0, RL_IDX_NONE));
    for (uint32_t i = 0; i < l->conns_hwm; i++) {
        struct rl_conn *c = &l->conns[i];
        if (c->state != RL_CONN_FREE)
            rl_conn_begin_close(l, c, 0, deadline_ms == 0);
    }
    if (deadline_ms)
        ringline_op_timeout(l->ring, deadline_ms * 1000000ull, 0, 0,
                            RL_TOK(RL_OP_STOP_DEADLINE, 0, 0));
    rl_check_stopped(l);
    return 0;
}

int ringline_loop_stopped(ringline_loop_t *loop)
{
    RL_LOOP_CHECK(loop);
    return loop->stopped_event ? 1 : 0;
}

int ringline_loop_handle_signals(ringline_loop_t *loop, uint64_t deadline_ms)
{
    RL_LOOP_CHECK(loop);
    if (loop->sig_fd >= 0)
        return -EBUSY;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int ret = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (ret)
        return -ret;
    /* blocking on purpose: io_uring reads of O_NONBLOCK files give EAGAIN
     * instead of waiting */
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    loop->sig_fd = fd;
    loop->stop_deadline_ms = deadline_ms;
    return 0;
}

int ringline_loop_stats(ringline_loop_t *loop, ringline_stats_t *out,
                        size_t size)
{
    RL_LOOP_CHECK(loop);
    if (!out || size == 0)
        return -EINVAL;
    size_t n = size < sizeof loop->stats ? size : sizeof loop->stats;
    memcpy(out, &loop->stats, n);
    return 0;
}

int ringline_loop_destroy(ringline_loop_t *loop)
{
    RL_LOOP_CHECK(loop);
    ringline_loop_t *l = loop;
    /* Destroying the ring cancels every operation and waits for their
     * final completions: only then is connection memory freed. */
    int ret = ringline_ring_destroy(l->ring);
    for (uint32_t i = 0; i < l->conns_hwm; i++) {
        struct rl_conn *c = &l->conns[i];
        if (c->state == RL_CONN_FREE)
            continue;
        struct rl_chunk *k = c->sq_head;
        while (k) {
            struct rl_chunk *n = k->next;
            free(k);
            k = n;
        }
        k = c->x ? c->x->zc_head : NULL;
        while (k) {
            struct rl_chunk *n = k->next;
            free(k);
            k = n;
        }
        if (c->x) {
            free(c->x->rx);
            free(c->x->sv);
            free(c->x->addr);
            free(c->x);
        }
        /* fixed slots went with the ring's file table */
        if (c->fd >= 0 && !RINGLINE_IS_FIXED(c->fd))
            close(c->fd);
    }
    for (int i = 0; i < 64; i++) {
        if (l->listeners[i].used)
            close(l->listeners[i].fd);
    }
    rl_udps_destroy(l);
    if (l->sig_fd >= 0)
        close(l->sig_fd);
    for (unsigned i = 0; i < l->defer_n; i++)
        free(l->defer_free[i]);
    free(l->conns);
    free(l->timers);
    free(l->ovf);
    free(l->ret_bids);
    free(l->held_bids);
    free(l->data_conns);
    free(l->defer_free);
    free(l->pending);
    for (int cls = 0; cls < 2; cls++)
        while (l->chunk_cache[cls]) {
            struct rl_chunk *n = l->chunk_cache[cls]->next;
            free(l->chunk_cache[cls]);
            l->chunk_cache[cls] = n;
        }
    rl_handle_free(l, sizeof *l);
    return ret;
}
