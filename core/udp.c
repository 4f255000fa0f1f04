/*
 * udp.c — UDP sockets: receives and an ordered queue of copied datagrams to
 * send.
 *
 * Receives: each socket keeps one multishot recvmsg armed on the loop's UDP
 * buffer group (a provided-buffer group of its own, made at the first bind),
 * so a burst of datagrams comes back as many completions — many DATAGRAM
 * events — in one poll. Each buffer holds a struct io_uring_recvmsg_out,
 * the sender's address (RL_UDP_NAMELEN bytes reserved), then the payload.
 * The group is separate from the TCP one so a tiny datagram does not pin a
 * 64 KiB TCP receive buffer, and so TCP and UDP cannot starve each other.
 *
 * A buffer shown to the script is held until the next poll (like TCP DATA
 * buffers, loop.c's held list); one whose datagram found the batch full
 * waits in a FIFO and is delivered first next poll, so nothing the kernel
 * delivered is dropped and order is kept. ENOBUFS (group empty) ends the
 * multishot: the socket re-arms at the next poll, after the held buffers
 * went back, and the unread datagrams wait in the socket buffer meanwhile —
 * never a busy re-arm against an empty group.
 *
 * Without multishot recvmsg (udp_buffers count 0, a failed group, or a
 * kernel refusing the flag) a socket falls back to one recvmsg at a time
 * into a private 64 KiB buffer, re-armed once the script saw the datagram.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

#define RL_UDP_BUF 65536
#define RL_UDP_BGID 0x7FFE /* next to the loop's TCP group (RL_BGID) */
/* the address area reserved in each buffer: any AF_INET/AF_INET6 address,
 * padded so the payload starts 16-byte aligned (16 + 32 = 48) */
#define RL_UDP_NAMELEN 32

struct rl_udp_stash {
    uint32_t idx;
    uint32_t gen;
    int32_t res;
    uint16_t bid;
};

struct rl_udp_pool {
    bool ready;   /* the group exists */
    bool failed;  /* no group (creation failed / count 0): single-shot */
    bool ms_worked;  /* a multishot recvmsg delivered a datagram */
    bool ms_refused; /* the kernel refused multishot recvmsg: single-shot */
    unsigned count, size;
    uint8_t *base; /* buffer bid is base + bid * size */
    /* the kernel reads msg_namelen / msg_controllen from this when each
     * multishot recvmsg is issued: it must outlive the submission */
    struct msghdr msg;
    uint16_t *held; /* buffers shown this batch: back at the next poll */
    unsigned held_n, held_cap;
    struct rl_udp_stash *fifo; /* datagrams that found the batch full */
    unsigned fifo_head, fifo_n, fifo_cap;
};

/* The pool, made at the first bind; NULL only when out of memory. */
static struct rl_udp_pool *rl_udp_pool(ringline_loop_t *l)
{
    struct rl_udp_pool *p = l->udp_pool;
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    l->udp_pool = p;
    p->failed = true;
    if (l->udp_buf_count == 0)
        return p;
    /* the loop exists only with multishot recv (loop_new checks): recvmsg
     * gained multishot in the same kernel (6.0); a kernel refusing it
     * anyway answers the first arm with -EINVAL (see rl_udp_on_recv) */
    if (ringline_bufring_create(l->ring, RL_UDP_BGID, l->udp_buf_count,
                                l->udp_buf_size) < 0)
        return p; /* e.g. a script took the group id: single-shot */
    void *base = NULL;
    if (ringline_bufring_addr(l->ring, RL_UDP_BGID, 0, &base) < 0) {
        ringline_bufring_destroy(l->ring, RL_UDP_BGID);
        return p;
    }
    p->base = base;
    p->count = l->udp_buf_count;
    p->size = l->udp_buf_size;
    p->msg.msg_namelen = RL_UDP_NAMELEN;
    p->ready = true;
    p->failed = false;
    return p;
}

/* A buffer of ours that nobody will look at: back to the kernel now. */
static void rl_udp_give_back(ringline_loop_t *l, uint16_t bid)
{
    ringline_bufring_return(l->ring, RL_UDP_BGID, &bid, 1);
}

static void rl_udp_hold(ringline_loop_t *l, uint16_t bid)
{
    struct rl_udp_pool *p = l->udp_pool;
    if (rl_grow((void **)&p->held, &p->held_cap, sizeof *p->held,
                    p->held_n + 1) < 0) {
        /* cannot remember it: the script's bytes may be overwritten by a
         * later datagram, but the buffer is not leaked (memory
         * exhaustion only) */
        rl_udp_give_back(l, bid);
        return;
    }
    p->held[p->held_n++] = bid;
}

static struct rl_udp *rl_udp_get(ringline_loop_t *l, ringline_id_t id)
{
    if (RL_ID_KIND(id) != RL_K_UDP)
        return NULL;
    uint32_t idx = RL_ID_IDX(id);
    if (idx >= 64)
        return NULL;
    struct rl_udp *u = &l->udps[idx];
    if (!u->used || u->closing || (u->gen & 0xFFFFFF) != RL_ID_GEN(id))
        return NULL;
    return u;
}

/* Single-shot: one recvmsg into the socket's private buffer. */
static void rl_udp_arm_single(ringline_loop_t *l, uint32_t idx)
{
    struct rl_udp *u = &l->udps[idx];
    if (u->recv_armed || u->closing || u->recv_delivered || u->stashed >= 0)
        return;
    memset(&u->msg, 0, sizeof u->msg);
    u->iov.iov_base = u->buf;
    u->iov.iov_len = RL_UDP_BUF;
    u->msg.msg_iov = &u->iov;
    u->msg.msg_iovlen = 1;
    u->msg.msg_name = &u->from;
    u->msg.msg_namelen = sizeof u->from;
    /* MSG_TRUNC: the result is the datagram's full length, so a
     * truncation is seen (cannot happen with 64 KiB, but costs nothing) */
    if (ringline_op_recvmsg(l->ring, u->fd, &u->msg, MSG_TRUNC,
                            RL_TOK(RL_OP_UDP_RECV, u->gen, idx)) == 0) {
        u->recv_armed = true;
        u->inflight++;
    }
}

/* Multishot: one recvmsg that keeps taking buffers from the UDP group
 * until it ends (ENOBUFS, an error, cancel). */
static void rl_udp_arm_multi(ringline_loop_t *l, uint32_t idx)
{
    struct rl_udp *u = &l->udps[idx];
    struct rl_udp_pool *p = l->udp_pool;
    if (u->recv_armed || u->closing)
        return;
    uint64_t tok = RL_TOK(RL_OP_UDP_RECV, u->gen, idx);
    /* the harvest names the group of this token's completions and marks
     * their buffers as ours */
    if (rl_group_use(l->ring, RL_UDP_BGID, tok) < 0) {
        u->rearm = true; /* try again next poll */
        return;
    }
    int err = 0;
    struct io_uring_sqe *sqe = rl_get_sqe(l->ring, &err);
    if (!sqe) {
        rl_group_unuse(l->ring, tok);
        u->rearm = true;
        return;
    }
    io_uring_prep_recvmsg_multishot(sqe, u->fd, &p->msg, MSG_TRUNC);
    rl_sqe_set_fd(sqe, u->fd);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RL_UDP_BGID;
    rl_commit_sqe(l->ring, sqe, tok);
    u->recv_armed = true;
    u->rearm = false;
    u->inflight++;
}

static void rl_udp_arm(ringline_loop_t *l, uint32_t idx)
{
    if (l->udps[idx].multishot)
        rl_udp_arm_multi(l, idx);
    else
        rl_udp_arm_single(l, idx);
}

static void rl_udp_kick(ringline_loop_t *l, uint32_t idx)
{
    struct rl_udp *u = &l->udps[idx];
    struct rl_udp_send *s = u->sq_head;
    if (u->sending || !s)
        return;
    if (ringline_op_sendmsg(l->ring, u->fd, &s->msg, 0,
                            RL_TOK(RL_OP_UDP_SEND, u->gen, idx)) == 0) {
        u->sending = true;
        u->inflight++;
    }
}

static void rl_udp_maybe_finish(ringline_loop_t *l, uint32_t idx)
{
    struct rl_udp *u = &l->udps[idx];
    if (!u->used || !u->closing || u->inflight > 0)
        return;
    close(u->fd);
    struct rl_udp_send *s = u->sq_head;
    while (s) {
        struct rl_udp_send *n = s->next;
        free(s);
        s = n;
    }
    if (u->buf) {
        if (u->recv_delivered)
            rl_defer_free(l, u->buf); /* the script may still read it */
        else
            free(u->buf);
    }
    /* multishot: buffers shown this batch stay held (valid) until the next
     * poll; stashed ones are given back when the FIFO reaches them (their
     * generation no longer matches) */
    u->buf = NULL;
    u->sq_head = u->sq_tail = NULL;
    ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_CLOSED, RL_ID(RL_K_UDP, u->gen, idx));
    if (e)
        e->res = 0;
    u->used = false;
    u->closing = false;
    rl_check_stopped(l);
}

static void rl_udp_deliver(ringline_loop_t *l, uint32_t idx, int len)
{
    struct rl_udp *u = &l->udps[idx];
    ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_DATAGRAM, RL_ID(RL_K_UDP, u->gen, idx));
    size_t got = (size_t)len;
    e->tag = (uint64_t)len; /* MSG_TRUNC: the full length */
    if (got > RL_UDP_BUF) {
        got = RL_UDP_BUF;
        e->res = -EMSGSIZE;
    }
    e->data = u->buf;
    e->len = got;
    e->addr = (const struct sockaddr *)&u->from;
    e->addrlen = u->msg.msg_namelen;
    l->stats.bytes_in += got;
    u->recv_delivered = true; /* re-armed at the next poll */
}

/* A multishot datagram in buffer bid (res: the completion's byte count)
 * becomes a DATAGRAM event; the caller checked there is room. */
static void rl_udp_deliver_ms(ringline_loop_t *l, uint32_t idx, uint16_t bid,
                              int res)
{
    struct rl_udp *u = &l->udps[idx];
    struct rl_udp_pool *p = l->udp_pool;
    uint8_t *buf = p->base + (size_t)bid * p->size;
    struct io_uring_recvmsg_out *o =
        io_uring_recvmsg_validate(buf, res, &p->msg);
    if (!o) {
        /* shorter than the header: cannot happen with a sane kernel */
        rl_udp_give_back(l, bid);
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_ERROR, RL_ID(RL_K_UDP, u->gen, idx));
        if (e)
            e->res = -EPROTO;
        return;
    }
    ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_DATAGRAM, RL_ID(RL_K_UDP, u->gen, idx));
    unsigned len = io_uring_recvmsg_payload_length(o, res, &p->msg);
    e->data = io_uring_recvmsg_payload(o, &p->msg);
    e->len = len;
    /* with MSG_TRUNC the kernel reports the datagram's full length */
    e->tag = o->payloadlen;
    if ((o->flags & MSG_TRUNC) || o->payloadlen > len)
        e->res = -EMSGSIZE;
    e->addr = (const struct sockaddr *)io_uring_recvmsg_name(o);
    e->addrlen = o->namelen < RL_UDP_NAMELEN ? o->namelen : RL_UDP_NAMELEN;
    l->stats.bytes_in += len;
    rl_udp_hold(l, bid);
}

static void rl_udp_stash(ringline_loop_t *l, uint32_t idx, uint16_t bid,
                         int res)
{
    struct rl_udp_pool *p = l->udp_pool;
    if (p->fifo_head && p->fifo_head == p->fifo_n) {
        p->fifo_head = p->fifo_n = 0;
    }
    if (p->fifo_head + p->fifo_n == p->fifo_cap && p->fifo_head) {
        /* slide the live part to the front before growing */
        memmove(p->fifo, p->fifo + p->fifo_head, p->fifo_n * sizeof *p->fifo);
        p->fifo_head = 0;
    }
    if (rl_grow((void **)&p->fifo, &p->fifo_cap, sizeof *p->fifo,
                    p->fifo_head + p->fifo_n + 1) < 0) {
        /* memory exhaustion: the datagram is lost, but said so */
        rl_udp_give_back(l, bid);
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_ERROR, RL_ID(RL_K_UDP, l->udps[idx].gen, idx));
        if (e)
            e->res = -ENOMEM;
        return;
    }
    struct rl_udp_stash *st = &p->fifo[p->fifo_head + p->fifo_n++];
    st->idx = idx;
    st->gen = l->udps[idx].gen;
    st->res = res;
    st->bid = bid;
}

void rl_udp_unstash(ringline_loop_t *l)
{
    struct rl_udp_pool *p = l->udp_pool;
    if (!p)
        return;
    /* multishot datagrams that found the last batch full, oldest first */
    while (p->fifo_n && rl_ev_room(l) > 0) {
        struct rl_udp_stash st = p->fifo[p->fifo_head++];
        p->fifo_n--;
        struct rl_udp *u = &l->udps[st.idx];
        if (!u->used || u->closing || u->gen != st.gen)
            rl_udp_give_back(l, st.bid); /* closed meanwhile */
        else
            rl_udp_deliver_ms(l, st.idx, st.bid, st.res);
    }
    if (!p->fifo_n)
        p->fifo_head = 0;
    for (uint32_t i = 0; i < 64; i++) {
        struct rl_udp *u = &l->udps[i];
        if (u->used && u->stashed >= 0 && rl_ev_room(l) > 0) {
            int len = u->stashed;
            u->stashed = -1;
            rl_udp_deliver(l, i, len);
        }
    }
}

static void rl_udp_on_recv_multi(ringline_loop_t *l, uint32_t idx,
                                 const ringline_cqe_t *cqe)
{
    struct rl_udp *u = &l->udps[idx];
    struct rl_udp_pool *p = l->udp_pool;
    bool more = cqe->flags & RINGLINE_CQE_F_MORE;
    bool has_buf = (cqe->flags & RINGLINE_CQE_F_BUFFER) && cqe->bgid == RL_UDP_BGID;
    if (!more) {
        u->recv_armed = false;
        u->inflight--;
    }
    if (u->closing) {
        if (has_buf)
            rl_udp_give_back(l, cqe->bid);
        rl_udp_maybe_finish(l, idx);
        return;
    }
    if (cqe->res >= 0 && has_buf) {
        p->ms_worked = true;
        /* keep the order: behind anything already waiting */
        if (!l->out || rl_ev_room(l) == 0 || p->fifo_n)
            rl_udp_stash(l, idx, cqe->bid, cqe->res);
        else
            rl_udp_deliver_ms(l, idx, cqe->bid, cqe->res);
        if (!more)
            rl_udp_arm_multi(l, idx); /* ended for another reason */
        return;
    }
    if (has_buf)
        rl_udp_give_back(l, cqe->bid);
    if (cqe->res == -ENOBUFS) {
        /* the group is empty: the datagrams stay in the socket buffer;
         * re-arm once held buffers went back (next poll), not now — now
         * would only earn another ENOBUFS */
        l->stats.enobufs_parks++;
        u->rearm = true;
        return;
    }
    if (cqe->res == -EINVAL && !p->ms_worked) {
        /* this kernel refuses multishot recvmsg: fall back for good */
        u->buf = malloc(RL_UDP_BUF);
        if (u->buf) {
            p->ms_refused = true;
            u->multishot = false;
            rl_udp_arm_single(l, idx);
            return;
        }
    }
    if (cqe->res < 0 && cqe->res != -ECANCELED) {
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_ERROR, RL_ID(RL_K_UDP, u->gen, idx));
        if (e)
            e->res = cqe->res;
    }
    if (!more)
        u->rearm = true; /* an error: at the next poll, never a tight loop */
}

void rl_udp_on_recv(ringline_loop_t *l, uint32_t idx,
                    const ringline_cqe_t *cqe)
{
    if (idx >= 64)
        return;
    struct rl_udp *u = &l->udps[idx];
    if (u->multishot) {
        rl_udp_on_recv_multi(l, idx, cqe);
        return;
    }
    u->recv_armed = false;
    u->inflight--;
    if (u->closing) {
        rl_udp_maybe_finish(l, idx);
        return;
    }
    if (cqe->res >= 0) {
        if (!l->out || rl_ev_room(l) == 0) {
            /* the batch is full: the datagram waits in the buffer (no
             * re-arm) and is delivered first thing next poll */
            u->stashed = cqe->res;
            return;
        }
        rl_udp_deliver(l, idx, cqe->res);
        return;
    } else if (cqe->res != -ECANCELED) {
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_ERROR, RL_ID(RL_K_UDP, u->gen, idx));
        if (e)
            e->res = cqe->res;
    }
    rl_udp_arm(l, idx);
}

void rl_udp_on_send(ringline_loop_t *l, uint32_t idx,
                    const ringline_cqe_t *cqe)
{
    if (idx >= 64)
        return;
    struct rl_udp *u = &l->udps[idx];
    u->sending = false;
    u->inflight--;
    struct rl_udp_send *s = u->sq_head;
    if (s) {
        u->sq_head = s->next;
        if (!u->sq_head)
            u->sq_tail = NULL;
        if (cqe->res >= 0)
            l->stats.bytes_out += (uint64_t)cqe->res;
        else {
            ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_ERROR, RL_ID(RL_K_UDP, u->gen, idx));
            if (e)
                e->res = cqe->res;
        }
        free(s);
    }
    if (u->closing)
        rl_udp_maybe_finish(l, idx);
    else
        rl_udp_kick(l, idx);
}

void rl_udp_settle(ringline_loop_t *l)
{
    struct rl_udp_pool *p = l->udp_pool;
    if (!p)
        return;
    /* the previous batch's datagrams are done with: their buffers first,
     * so the re-arms below find them */
    if (p->held_n) {
        ringline_bufring_return(l->ring, RL_UDP_BGID, p->held, p->held_n);
        p->held_n = 0;
    }
    bool have_bufs = p->ready &&
                     ringline_bufring_available(l->ring, RL_UDP_BGID) > 0;
    for (uint32_t i = 0; i < 64; i++) {
        struct rl_udp *u = &l->udps[i];
        if (!u->used)
            continue;
        if (u->recv_delivered) {
            u->recv_delivered = false;
            rl_udp_arm(l, i);
        } else if (u->rearm && have_bufs) {
            rl_udp_arm_multi(l, i);
        }
    }
}

void rl_udps_destroy(ringline_loop_t *l)
{
    /* the ring is gone: nothing is in flight any more */
    for (int i = 0; i < 64; i++) {
        struct rl_udp *u = &l->udps[i];
        if (!u->used)
            continue;
        close(u->fd);
        free(u->buf);
        struct rl_udp_send *s = u->sq_head;
        while (s) {
            struct rl_udp_send *n = s->next;
            free(s);
            s = n;
        }
    }
    struct rl_udp_pool *p = l->udp_pool;
    if (p) {
        free(p->held);
        free(p->fifo);
        free(p);
        l->udp_pool = NULL;
    }
}

int ringline_udp_bind(ringline_loop_t *loop, const char *host, uint16_t port,
                      ringline_id_t *out)
{
    RL_LOOP_CHECK(loop);
    if (!host || !out)
        return -EINVAL;
    if (loop->stopping)
        return -ESHUTDOWN;
    uint32_t idx = 0;
    while (idx < 64 && loop->udps[idx].used)
        idx++;
    if (idx == 64)
        return -ENFILE;
    struct sockaddr_storage ss;
    socklen_t len;
    int ret = rl_resolve(host, port, &ss, &len);
    if (ret < 0)
        return ret;
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    struct rl_udp_pool *p = rl_udp_pool(loop);
    if (!p) {
        close(fd);
        return -ENOMEM;
    }
    bool multishot = p->ready && !p->ms_refused;
    uint8_t *buf = NULL;
    if (!multishot) {
        buf = malloc(RL_UDP_BUF);
        if (!buf) {
            close(fd);
            return -ENOMEM;
        }
    }
    struct rl_udp *u = &loop->udps[idx];
    uint32_t gen = (u->gen + 1) & 0xFFFFFF;
    memset(u, 0, sizeof *u);
    u->gen = gen ? gen : 1;
    u->used = true;
    u->fd = fd;
    u->buf = buf;
    u->multishot = multishot;
    u->stashed = -1;
    u->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    rl_udp_arm(loop, idx);
    *out = RL_ID(RL_K_UDP, u->gen, idx);
    return 0;
}

int ringline_udp_port(ringline_loop_t *loop, ringline_id_t id)
{
    RL_LOOP_CHECK(loop);
    struct rl_udp *u = rl_udp_get(loop, id);
    return u ? u->port : -EBADF;
}

int ringline_udp_sendto(ringline_loop_t *loop, ringline_id_t id,
                        const void *buf, size_t len, const struct sockaddr *to,
                        socklen_t tolen)
{
    RL_LOOP_CHECK(loop);
    struct rl_udp *u = rl_udp_get(loop, id);
    if (!u)
        return -EBADF;
    if ((!buf && len) || len > 65507 || !to || tolen == 0 ||
        tolen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    struct rl_udp_send *s = malloc(sizeof *s + len);
    if (!s)
        return -ENOMEM;
    memset(s, 0, sizeof *s);
    memcpy(s->data, buf, len);
    memcpy(&s->to, to, tolen);
    s->len = len;
    s->tolen = tolen;
    s->iov.iov_base = s->data;
    s->iov.iov_len = len;
    s->msg.msg_iov = &s->iov;
    s->msg.msg_iovlen = 1;
    s->msg.msg_name = &s->to;
    s->msg.msg_namelen = tolen;
    if (u->sq_tail)
        u->sq_tail->next = s;
    else
        u->sq_head = s;
    u->sq_tail = s;
    rl_udp_kick(loop, (uint32_t)(u - loop->udps));
    return 0;
}

static void rl_udp_begin_close(ringline_loop_t *l, uint32_t idx)
{
    struct rl_udp *u = &l->udps[idx];
    if (!u->used || u->closing)
        return;
    u->closing = true;
    if (u->recv_armed)
        ringline_op_cancel(l->ring, RL_TOK(RL_OP_UDP_RECV, u->gen, idx), 0,
                           RL_TOK(RL_OP_CANCEL, 0, RL_IDX_NONE));
    rl_udp_maybe_finish(l, idx);
}

int ringline_udp_close(ringline_loop_t *loop, ringline_id_t id)
{
    RL_LOOP_CHECK(loop);
    struct rl_udp *u = rl_udp_get(loop, id);
    if (!u)
        return -EBADF;
    rl_udp_begin_close(loop, (uint32_t)(u - loop->udps));
    return 0;
}

void rl_udps_close_all(ringline_loop_t *l)
{
    for (uint32_t i = 0; i < 64; i++)
        rl_udp_begin_close(l, i);
}
