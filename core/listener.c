/*
 * listener.c — listening sockets with a multishot accept each.
 *
 * Accept errors never stop a listener: EMFILE/ENFILE (or a full connection
 * table) back off for a moment and re-arm, so a burst of connections cannot
 * turn the server deaf.
 */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

#define RL_ACCEPT_BACKOFF_NS (50 * 1000000ull)

int rl_resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
               socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof *a6;
        return 0;
    }
    /* names go through the resolver, which may block: fine for
     * "localhost", documented for the rest */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return -EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (ss->ss_family == AF_INET)
        a4->sin_port = htons(port);
    else if (ss->ss_family == AF_INET6)
        a6->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
}

static struct rl_listener *rl_listener_get(ringline_loop_t *l,
                                           ringline_id_t id)
{
    if (RL_ID_KIND(id) != RL_K_LISTENER)
        return NULL;
    uint32_t idx = RL_ID_IDX(id);
    if (idx >= 64)
        return NULL;
    struct rl_listener *s = &l->listeners[idx];
    if (!s->used || s->closing || (s->gen & 0xFFFFFF) != RL_ID_GEN(id))
        return NULL;
    return s;
}

static void rl_listener_arm(ringline_loop_t *l, uint32_t idx)
{
    struct rl_listener *s = &l->listeners[idx];
    if (s->accept_armed || s->closing)
        return;
    /* plain fds by default (scripts can ask for the peer address, set
     * options, hand the socket elsewhere); with fixed_files straight into
     * kernel-picked table slots */
    int ret = l->fixed_files
                  ? ringline_op_accept(l->ring, s->fd, NULL, NULL, 0,
                                       RINGLINE_ACCEPT_MULTISHOT | RINGLINE_ACCEPT_DIRECT,
                                       RINGLINE_FILE_ALLOC,
                                       RL_TOK(RL_OP_ACCEPT, s->gen, idx))
                  : ringline_op_accept(l->ring, s->fd, NULL, NULL, SOCK_CLOEXEC,
                                       RINGLINE_ACCEPT_MULTISHOT, 0,
                                       RL_TOK(RL_OP_ACCEPT, s->gen, idx));
    if (ret == 0) {
        s->accept_armed = true;
        s->inflight++;
    }
}

void rl_listener_rearm(ringline_loop_t *l, uint32_t idx)
{
    struct rl_listener *s = &l->listeners[idx];
    if (s->inflight > 0)
        s->inflight--; /* the back-off timer */
    if (s->used)
        rl_listener_arm(l, idx);
    rl_listener_op_done(l, idx);
}

void rl_listener_op_done(ringline_loop_t *l, uint32_t idx)
{
    struct rl_listener *s = &l->listeners[idx];
    if (!s->used || !s->closing || s->inflight > 0)
        return;
    close(s->fd);
    ringline_event_t *e =
        rl_ev_push(l, RINGLINE_EV_CLOSED, RL_ID(RL_K_LISTENER, s->gen, idx));
    if (e)
        e->res = 0;
    s->used = false;
    s->closing = false;
    rl_check_stopped(l);
}

/* An accepted socket nobody will use: still ours to close. */
static void rl_drop_accepted(ringline_loop_t *l, int fd)
{
    if (RINGLINE_IS_FIXED(fd))
        ringline_files_remove(l->ring, RINGLINE_FIXED_SLOT(fd));
    else
        close(fd);
}

void rl_listener_on_accept(ringline_loop_t *l, uint32_t idx,
                           const ringline_cqe_t *cqe)
{
    if (idx >= 64)
        return;
    struct rl_listener *s = &l->listeners[idx];
    bool more = cqe->flags & RINGLINE_CQE_F_MORE;
    if (!more) {
        s->accept_armed = false;
        s->inflight--;
    }
    ringline_id_t lid = RL_ID(RL_K_LISTENER, s->gen, idx);
    int res = cqe->res;
    if (res >= 0) {
        /* with fixed_files the result is a table slot, not a descriptor */
        int fd = l->fixed_files ? RINGLINE_FIXED(res) : res;
        if (s->closing || l->stopping) {
            rl_drop_accepted(l, fd); /* lost the race with close */
        } else {
            struct rl_conn *c = rl_conn_alloc(l, fd);
            if (!c) {
                rl_drop_accepted(l, fd);
                l->stats.accept_errors++;
                ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_ERROR, lid);
                if (e)
                    e->res = -ENFILE;
            } else {
                l->stats.accepted++;
                c->mode = (uint8_t)s->mode;
                c->mode_arg = s->mode_arg;
                ringline_event_t *e =
                    rl_ev_push(l, RINGLINE_EV_ACCEPTED, rl_conn_id(l, c));
                if (e)
                    e->id2 = lid;
                rl_conn_arm_recv(l, c);
            }
        }
    } else if (res != -ECANCELED) {
        l->stats.accept_errors++;
        ringline_event_t *e = rl_ev_push(l, RINGLINE_EV_ERROR, lid);
        if (e)
            e->res = res;
    }
    if (!more && s->used) {
        if (s->closing) {
            rl_listener_op_done(l, idx);
        } else if (res == -EMFILE || res == -ENFILE || res == -ENOMEM ||
                   res == -ENOBUFS) {
            /* out of descriptors: retry shortly instead of spinning */
            if (ringline_op_timeout(l->ring, RL_ACCEPT_BACKOFF_NS, 0, 0,
                                    RL_TOK(RL_OP_ACCEPT_RETRY, s->gen, idx)) == 0)
                s->inflight++;
        } else {
            rl_listener_arm(l, idx);
        }
    }
}

/* A free listener slot's index, or -ENFILE: 64 listeners per loop. */
int rl_listener_free_slot(ringline_loop_t *l)
{
    for (uint32_t idx = 0; idx < 64; idx++)
        if (!l->listeners[idx].used)
            return (int)idx;
    return -ENFILE;
}

/* Puts listening socket fd into slot idx (a new generation) and arms its
 * multishot accept; shared by ringline_listen and ringline_listener_adopt.
 * On failure the slot is free again and the caller still owns fd. */
int rl_listener_install(ringline_loop_t *l, uint32_t idx, int fd,
                        ringline_id_t *out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    struct rl_listener *s = &l->listeners[idx];
    uint32_t gen = (s->gen + 1) & 0xFFFFFF;
    memset(s, 0, sizeof *s);
    s->gen = gen ? gen : 1;
    s->used = true;
    s->fd = fd;
    /* ringline_listener_port answers 0 for families without ports */
    if (ss.ss_family == AF_INET)
        s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
        s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    rl_listener_arm(l, idx);
    if (!s->accept_armed) {
        s->used = false;
        return -EBUSY;
    }
    *out = RL_ID(RL_K_LISTENER, s->gen, idx);
    return 0;
}

int ringline_listen(ringline_loop_t *loop, const char *host, uint16_t port,
                    int backlog, unsigned flags, ringline_id_t *out)
{
    RL_LOOP_CHECK(loop);
    if (!host || !out || (flags & ~RINGLINE_LISTEN_REUSEPORT))
        return -EINVAL;
    if (loop->stopping)
        return -ESHUTDOWN;
    int idx = rl_listener_free_slot(loop);
    if (idx < 0)
        return idx;
    struct sockaddr_storage ss;
    socklen_t len;
    int ret = rl_resolve(host, port, &ss, &len);
    if (ret < 0)
        return ret;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* accepted sockets inherit it: fixed slots cannot be set later */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if ((flags & RINGLINE_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        goto fail;
    if (listen(fd, backlog > 0 ? backlog : 4096) < 0)
        goto fail;
    ret = rl_listener_install(loop, (uint32_t)idx, fd, out);
    if (ret < 0)
        close(fd);
    return ret;
fail:
    ret = -errno;
    close(fd);
    return ret;
}

int ringline_listener_port(ringline_loop_t *loop, ringline_id_t id)
{
    RL_LOOP_CHECK(loop);
    struct rl_listener *s = rl_listener_get(loop, id);
    return s ? s->port : -EBADF;
}

int ringline_listener_set_mode(ringline_loop_t *loop, ringline_id_t id,
                               int mode, uint64_t arg)
{
    RL_LOOP_CHECK(loop);
    struct rl_listener *s = rl_listener_get(loop, id);
    if (!s)
        return -EBADF;
    if (mode == RINGLINE_MODE_FORWARD)
        return -EINVAL; /* a forward target is per connection */
    if (mode != RINGLINE_MODE_EVENTS && mode != RINGLINE_MODE_ECHO &&
        mode != RINGLINE_MODE_FRAMED)
        return -EINVAL;
    if (mode == RINGLINE_MODE_FRAMED &&
        ((arg & 0xFF) < RINGLINE_FRAMER_LINE || (arg & 0xFF) > RINGLINE_FRAMER_HTTP_HEAD))
        return -EINVAL;
    s->mode = mode;
    s->mode_arg = arg;
    return 0;
}

static void rl_listener_begin_close(ringline_loop_t *l, uint32_t idx)
{
    struct rl_listener *s = &l->listeners[idx];
    if (!s->used || s->closing)
        return;
    s->closing = true;
    /* cancel the multishot accept before closing, or a quick restart
     * meets EADDRINUSE */
    if (s->accept_armed)
        ringline_op_cancel(l->ring, RL_TOK(RL_OP_ACCEPT, s->gen, idx), 0,
                           RL_TOK(RL_OP_CANCEL, 0, RL_IDX_NONE));
    rl_listener_op_done(l, idx);
}

int ringline_listener_close(ringline_loop_t *loop, ringline_id_t id)
{
    RL_LOOP_CHECK(loop);
    struct rl_listener *s = rl_listener_get(loop, id);
    if (!s)
        return -EBADF;
    rl_listener_begin_close(loop, (uint32_t)(s - loop->listeners));
    return 0;
}

void rl_listeners_close_all(ringline_loop_t *l)
{
    for (uint32_t i = 0; i < 64; i++)
        rl_listener_begin_close(l, i);
}
