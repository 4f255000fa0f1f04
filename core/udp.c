/*
 * udp.c — UDP sockets: one recvmsg armed per socket into a loop-owned
 * 64 KiB buffer (re-armed once the script has seen the datagram), and an
 * ordered queue of copied datagrams to send.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

#define RL_UDP_BUF 65536

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

static void rl_udp_arm(ringline_loop_t *l, uint32_t idx)
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
    if (ringline_op_recvmsg(l->ring, u->fd, &u->msg, 0,
                            RL_TOK(RL_OP_UDP_RECV, u->gen, idx)) == 0) {
        u->recv_armed = true;
        u->inflight++;
    }
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
    if (u->recv_delivered)
        rl_defer_free(l, u->buf); /* the script may still read it */
    else
        free(u->buf);
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
    e->data = u->buf;
    e->len = (uint64_t)len;
    e->addr = (const struct sockaddr *)&u->from;
    e->addrlen = u->msg.msg_namelen;
    u->recv_delivered = true; /* re-armed at the next poll */
}

void rl_udp_unstash(ringline_loop_t *l)
{
    for (uint32_t i = 0; i < 64; i++) {
        struct rl_udp *u = &l->udps[i];
        if (u->used && u->stashed >= 0 && rl_ev_room(l) > 0) {
            int len = u->stashed;
            u->stashed = -1;
            rl_udp_deliver(l, i, len);
        }
    }
}

void rl_udp_on_recv(ringline_loop_t *l, uint32_t idx,
                    const ringline_cqe_t *cqe)
{
    if (idx >= 64)
        return;
    struct rl_udp *u = &l->udps[idx];
    u->recv_armed = false;
    u->inflight--;
    if (u->closing) {
        rl_udp_maybe_finish(l, idx);
        return;
    }
    if (cqe->res >= 0) {
        l->stats.bytes_in += (uint64_t)cqe->res;
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
    for (uint32_t i = 0; i < 64; i++) {
        struct rl_udp *u = &l->udps[i];
        if (u->used && u->recv_delivered) {
            u->recv_delivered = false;
            rl_udp_arm(l, i);
        }
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
    uint8_t *buf = malloc(RL_UDP_BUF);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    struct rl_udp *u = &loop->udps[idx];
    uint32_t gen = (u->gen + 1) & 0xFFFFFF;
    memset(u, 0, sizeof *u);
    u->gen = gen ? gen : 1;
    u->used = true;
    u->fd = fd;
    u->buf = buf;
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
