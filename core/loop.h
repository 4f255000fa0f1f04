/*
 * loop.h — the event loop's private structures, shared by loop.c, conn.c,
 * sendq.c, listener.c, udp.c and timer.c.
 *
 * The loop is a user of the ring layer like any other: it speaks to the
 * kernel only through ringline_op_* and ringline_ring_*, with tokens that
 * have bit 55 set, so a script's raw operations on the same ring never
 * collide with the loop's.
 */
#ifndef RINGLINE_LOOP_H
#define RINGLINE_LOOP_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "internal.h"

#define RL_MAGIC_LOOP 0x4C4F4F50u /* "LOOP" */

/* ---- ids: index (32) | generation (24) | kind (4) ---- */
enum rl_kind { RL_K_CONN = 1, RL_K_LISTENER = 2, RL_K_UDP = 3, RL_K_TIMER = 4 };
#define RL_ID(kind, gen, idx)                                                  \
    (((uint64_t)(kind) << 56) | ((uint64_t)((gen) & 0xFFFFFF) << 32) |         \
     (uint64_t)(idx))
#define RL_ID_KIND(id) ((unsigned)((id) >> 56) & 0xF)
#define RL_ID_GEN(id) ((uint32_t)((id) >> 32) & 0xFFFFFF)
#define RL_ID_IDX(id) ((uint32_t)(id))

/* ---- tokens: bit 55 | op (7 bits) | generation (16) | index (32) ---- */
enum rl_op {
    RL_OP_RECV = 1,
    RL_OP_SEND,
    RL_OP_CLOSE,
    RL_OP_ACCEPT,
    RL_OP_CONNECT,
    RL_OP_CONNECT_TIMEOUT,
    RL_OP_CANCEL,
    RL_OP_TIMER,
    RL_OP_UDP_RECV,
    RL_OP_UDP_SEND,
    RL_OP_SIGNAL,
    RL_OP_SHUTDOWN,
    RL_OP_IDLE_SWEEP,
    RL_OP_STOP_DEADLINE,
    RL_OP_ACCEPT_RETRY,
};
#define RL_TOK_LOOP (1ULL << 55)
#define RL_TOK(op, gen, idx)                                                   \
    (RL_TOK_LOOP | ((uint64_t)(op) << 48) | ((uint64_t)((gen) & 0xFFFF) << 32) | \
     (uint64_t)(idx))
#define RL_TOK_OP(t) ((unsigned)((t) >> 48) & 0x7F)
#define RL_TOK_GEN(t) ((uint32_t)((t) >> 32) & 0xFFFF)
#define RL_TOK_IDX(t) ((uint32_t)(t))
/* the index of loop-wide operations (cancels of listeners, timers, ...):
 * never a connection slot */
#define RL_IDX_NONE 0xFFFFFFFFu

#define RL_BGID 0x7FFF  /* the loop's receive buffer group */
#define RL_SENDV_MAX 16 /* chunks gathered into one sendmsg */
#define RL_EV_ROOM 4    /* harvest only while this many event slots are free */

/* ---- send queue ---- */
enum rl_chunk_kind { RL_CHUNK_OWNED, RL_CHUNK_PBUF, RL_CHUNK_REF };
struct rl_chunk {
    struct rl_chunk *next;
    const uint8_t *data;
    size_t len; /* bytes in the chunk */
    size_t off; /* bytes already written */
    size_t cap; /* OWNED: room at data (inline storage) */
    uint64_t tag;
    size_t tag_len; /* the tagged send's own size, for its SENT event */
    uint8_t kind;
    bool inflight; /* covered by the send in flight */
    uint16_t bid; /* PBUF: buffer to give back once written */
    uint8_t storage[];
};

/* What the kernel reads during a gathered send; kept out of line so an
 * idle connection stays small. Lives until the connection is freed (only
 * after every operation on it completed). */
struct rl_sendv {
    struct msghdr msg;
    struct iovec iov[RL_SENDV_MAX];
};

enum rl_conn_state {
    RL_CONN_FREE = 0,
    RL_CONN_CONNECTING,
    RL_CONN_OPEN,
    RL_CONN_CLOSING, /* waiting for the queue to drain / ops to finish */
};

/* What only some connections need: the receive accumulator and the DATA
 * event of the batch (EVENTS/FRAMED), gathered sends, zero-copy
 * notifications, forwarding, a connect target. Made on first use, freed
 * with the slot: an idle echo connection is the 72-byte struct rl_conn
 * alone (bench/run.sh idle shape). */
struct rl_conn_x {
    /* receive accumulator (leftovers, framing) */
    uint8_t *rx;
    size_t rx_off, rx_len, rx_cap;
    /* this batch's DATA event, if any (valid while ev_batch == l->batch) */
    const uint8_t *ev_data;
    size_t ev_len;
    size_t ev_consumed;
    size_t fr_pos; /* FRAMED: bytes of rx handed out as frames */
    int ev_idx;
    socklen_t addrlen;
    ringline_id_t forward_from; /* FORWARD: who sends into us */
    struct rl_sendv *sv; /* gathered-send record, made on first use */
    /* zero-copy chunks awaiting their notifications, oldest first (TCP
     * completes them in order) */
    struct rl_chunk *zc_head, *zc_tail;
    struct sockaddr_storage *addr; /* connect target, while connecting */
};

/* One per slot of the connection table, so kept small: the flags are bit
 * fields and everything rarely used lives in struct rl_conn_x. */
struct rl_conn {
    uint32_t gen;
    uint8_t state;
    uint8_t mode;
    uint8_t sending;   /* chunks covered by the send in flight (<= RL_SENDV_MAX) */
    bool recv_armed : 1;   /* multishot recv in flight */
    bool recv_parked : 1;  /* ended by ENOBUFS, waiting for buffers */
    bool paused : 1;       /* by the script */
    bool bp_paused : 1;    /* by backpressure (queue above high water) */
    bool eof : 1;          /* peer shut down its side */
    bool shut_wr : 1;      /* shutdown(SHUT_WR) requested */
    bool shut_done : 1;    /* ... and submitted */
    bool close_req : 1;    /* close once the queue drains */
    bool aborting : 1;     /* drop everything */
    bool send_inflight : 1;
    bool want_writable : 1;
    bool in_list : 1;      /* on the parked / pending list */
    bool data_pending : 1; /* bytes in rx wait for a DATA event (batch was full) */
    bool eof_owed : 1;     /* EOF event held back behind pending DATA/FRAMEs */
    bool closed_event : 1; /* CLOSED already produced */
    bool ev_pbuf : 1;      /* the DATA event points into a provided buffer */
    bool sending_zc : 1;
    bool dropped_unsent : 1; /* an abort threw queued bytes away: RST */
    uint16_t inflight;     /* loop operations in flight on this connection */
    union {
        int fd;             /* while in use */
        uint32_t next_free; /* while free: the free list (index + 1) */
    };
    int close_reason;
    uint32_t ev_batch;    /* batch number of the DATA event, 0 = none */
    uint32_t last_active; /* RL_ACTIVE_NOW units, only with idle_ms */
    uint64_t mode_arg;
    /* send queue */
    struct rl_chunk *sq_head, *sq_tail;
    size_t queued;
    struct rl_conn_x *x; /* NULL until needed */
};

/* A coarse clock for idle timeouts, 2^20 ns (~1.05 ms) units in 32 bits:
 * wraps after ~52 days, and the sweep compares differences. */
#define RL_ACTIVE_NOW() ((uint32_t)(ringline_now_ns() >> 20))


struct rl_listener {
    uint32_t gen;
    bool used;
    bool accept_armed;
    bool closing;
    int fd;
    int inflight;
    int mode;
    uint64_t mode_arg;
    uint16_t port;
};

struct rl_udp {
    uint32_t gen;
    bool used;
    bool recv_armed;
    bool closing;
    bool recv_delivered; /* single-shot: the buffer is lent this batch */
    bool multishot;      /* receives into the loop's UDP buffer group */
    bool rearm;          /* multishot ended (ENOBUFS, error): re-arm at
                          * the next poll, once buffers are back */
    int stashed;         /* single-shot: a datagram that found the batch
                          * full, or -1 */
    int fd;
    int inflight;
    uint16_t port;
    struct msghdr msg;
    struct iovec iov;
    struct sockaddr_storage from;
    uint8_t *buf;
    struct rl_udp_send *sq_head, *sq_tail; /* one datagram in flight */
    bool sending;
};

struct rl_udp_send {
    struct rl_udp_send *next;
    size_t len;
    socklen_t tolen;
    struct msghdr msg;
    struct iovec iov;
    struct sockaddr_storage to;
    uint8_t data[];
};

struct rl_timer {
    uint32_t gen;
    bool used;
    bool repeating;
    bool cancelled;
    uint64_t tag;
};

struct ringline_loop {
    uint32_t magic;
    ringline_ring_t *ring;

    /* options */
    unsigned max_conns;
    unsigned buf_count, buf_size;
    size_t high, low, zc_threshold;
    uint64_t idle_ns;
    bool fixed_files; /* accepted connections are fixed-file slots */

    /* objects */
    struct rl_conn *conns;
    uint32_t conn_free; /* free list head (index + 1; 0 = empty) */
    uint32_t conns_hwm; /* entries ever used */
    struct rl_listener listeners[64];
    struct rl_udp udps[64];
    struct rl_udp_pool *udp_pool; /* udp.c: the UDP buffer group, made at
                                   * the first ringline_udp_bind */
    unsigned udp_buf_count, udp_buf_size; /* from the config */
    struct rl_timer *timers;
    unsigned ntimers, timers_cap;

    /* the batch being built */
    ringline_event_t *out;
    unsigned out_n, out_max;
    uint32_t batch;
    ringline_event_t *ovf; /* pointer-free events that did not fit */
    unsigned ovf_head, ovf_n, ovf_cap;

    /* buffers to give back: ret_now at the end of each harvest round (hot
     * paths are done with them), held ones at the next poll (a script was
     * shown their bytes) */
    uint16_t *ret_bids;
    unsigned ret_n, ret_cap;
    uint16_t *held_bids;
    unsigned held_n, held_cap;
    uint32_t *data_conns; /* connections given a DATA event */
    unsigned data_n, data_cap;
    void **defer_free;
    unsigned defer_n, defer_cap;
    uint32_t *pending; /* parked (ENOBUFS) or frames-pending connections */
    unsigned pending_n, pending_cap;

    /* stop and signals */
    bool stopping;
    bool stopped;
    bool stopped_event;
    bool idle_armed;
    uint64_t stop_deadline_ms;
    int sig_fd;
    bool sig_armed;
    uint8_t sig_buf[128];

    /* chunks for reuse, by class: [0] header-only (REF/PBUF), [1] owned
     * with the minimum 4 KiB of room — a small send into an empty queue
     * would otherwise malloc and free one per message */
    struct rl_chunk *chunk_cache[2];
    unsigned chunk_cache_n[2];

    ringline_stats_t stats;
};

#define RL_LOOP_CHECK(l)                                                       \
    do {                                                                       \
        if (RL_UNLIKELY(!(l) || (l)->magic != RL_MAGIC_LOOP))                  \
            return -EBADF;                                                     \
    } while (0)

/* loop.c */
RL_HIDDEN ringline_event_t *rl_ev_push(ringline_loop_t *l, uint32_t type,
                                       ringline_id_t id);
RL_HIDDEN unsigned rl_ev_room(ringline_loop_t *l);
RL_HIDDEN int rl_push_u32(uint32_t **arr, unsigned *n, unsigned *cap,
                          uint32_t v);
RL_HIDDEN void rl_return_buf(ringline_loop_t *l, uint16_t bid);
RL_HIDDEN void rl_hold_buf(ringline_loop_t *l, uint16_t bid);
RL_HIDDEN void rl_flush_bufs(ringline_loop_t *l);
RL_HIDDEN void rl_defer_free(ringline_loop_t *l, void *p);
RL_HIDDEN void rl_check_stopped(ringline_loop_t *l);
RL_HIDDEN void rl_pending_add(ringline_loop_t *l, struct rl_conn *c);

/* harvest.c: one kernel CQE into a record, bookkeeping done; false for
 * ringline's own completions that produce none. The caller advances the CQ
 * head. The loop dispatches each straight away (loop.c). */
RL_HIDDEN bool rl_cqe_take(ringline_ring_t *r, const struct io_uring_cqe *c,
                           ringline_cqe_t *o);

/* conn.c */
RL_HIDDEN struct rl_conn *rl_conn_get(ringline_loop_t *l, ringline_id_t id);
RL_HIDDEN ringline_id_t rl_conn_id(ringline_loop_t *l, struct rl_conn *c);
RL_HIDDEN struct rl_conn *rl_conn_alloc(ringline_loop_t *l, int fd);
RL_HIDDEN struct rl_conn_x *rl_conn_x(struct rl_conn *c);
RL_HIDDEN void rl_conn_x_free(ringline_loop_t *l, struct rl_conn *c);
static inline size_t rl_rx_len(const struct rl_conn *c)
{
    return c->x ? c->x->rx_len : 0;
}
RL_HIDDEN void rl_conn_arm_recv(ringline_loop_t *l, struct rl_conn *c);
RL_HIDDEN void rl_conn_on_recv(ringline_loop_t *l, struct rl_conn *c,
                               const ringline_cqe_t *cqe);
RL_HIDDEN void rl_conn_on_connect(ringline_loop_t *l, struct rl_conn *c,
                                  int res);
RL_HIDDEN void rl_conn_op_done(ringline_loop_t *l, struct rl_conn *c);
RL_HIDDEN void rl_conn_begin_close(ringline_loop_t *l, struct rl_conn *c,
                                   int reason, bool abort);
RL_HIDDEN void rl_conn_maybe_finish(ringline_loop_t *l, struct rl_conn *c);
RL_HIDDEN void rl_conn_settle(ringline_loop_t *l, struct rl_conn *c);
RL_HIDDEN void rl_conn_pending_work(ringline_loop_t *l, struct rl_conn *c);
RL_HIDDEN void rl_conns_idle_sweep(ringline_loop_t *l);
RL_HIDDEN void rl_conn_update_bp_slow(ringline_loop_t *l, struct rl_conn *c);
/* Backpressure after the queue changed. Inline for the common case, on
 * every send and send completion: a short queue with nothing paused or
 * waiting and no forwarder feeding it needs nothing. */
static inline void rl_conn_update_bp(ringline_loop_t *l, struct rl_conn *c)
{
    if (c->queued <= l->low && !c->want_writable && !c->bp_paused &&
        !(c->x && c->x->forward_from))
        return;
    rl_conn_update_bp_slow(l, c);
}
RL_HIDDEN void rl_conn_maybe_shutdown(ringline_loop_t *l, struct rl_conn *c);

/* sendq.c */
RL_HIDDEN int rl_sendq_copy(ringline_loop_t *l, struct rl_conn *c,
                            const struct iovec *iov, unsigned n,
                            uint64_t tag);
RL_HIDDEN int rl_sendq_ref(ringline_loop_t *l, struct rl_conn *c,
                           const void *buf, size_t len, uint64_t tag);
RL_HIDDEN int rl_sendq_pbuf(ringline_loop_t *l, struct rl_conn *c,
                            uint16_t bid, const uint8_t *data, size_t len);
RL_HIDDEN void rl_sendq_kick(ringline_loop_t *l, struct rl_conn *c);
RL_HIDDEN void rl_sendq_on_send(ringline_loop_t *l, struct rl_conn *c,
                                const ringline_cqe_t *cqe);
RL_HIDDEN void rl_sendq_drop(ringline_loop_t *l, struct rl_conn *c);

/* listener.c */
RL_HIDDEN void rl_listener_on_accept(ringline_loop_t *l, uint32_t idx,
                                     const ringline_cqe_t *cqe);
RL_HIDDEN void rl_listener_op_done(ringline_loop_t *l, uint32_t idx);
RL_HIDDEN void rl_listener_rearm(ringline_loop_t *l, uint32_t idx);
RL_HIDDEN void rl_listeners_close_all(ringline_loop_t *l);
RL_HIDDEN int rl_resolve(const char *host, uint16_t port,
                         struct sockaddr_storage *ss, socklen_t *len);

/* udp.c */
RL_HIDDEN void rl_udp_on_recv(ringline_loop_t *l, uint32_t idx,
                              const ringline_cqe_t *cqe);
RL_HIDDEN void rl_udp_on_send(ringline_loop_t *l, uint32_t idx,
                              const ringline_cqe_t *cqe);
RL_HIDDEN int rl_listener_free_slot(ringline_loop_t *l);
RL_HIDDEN int rl_listener_install(ringline_loop_t *l, uint32_t idx, int fd,
                                  ringline_id_t *out);
RL_HIDDEN int rl_grow(void **arr, unsigned *cap, size_t elem, unsigned need);
RL_HIDDEN void rl_udp_settle(ringline_loop_t *l);
RL_HIDDEN void rl_udp_unstash(ringline_loop_t *l);
RL_HIDDEN void rl_udps_close_all(ringline_loop_t *l);
RL_HIDDEN void rl_udps_destroy(ringline_loop_t *l);

/* timer.c */
RL_HIDDEN void rl_timer_on_cqe(ringline_loop_t *l, uint32_t idx,
                               const ringline_cqe_t *cqe);
RL_HIDDEN void rl_timers_cancel_all(ringline_loop_t *l);

#endif
