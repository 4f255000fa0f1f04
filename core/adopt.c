/*
 * adopt.c — taking over sockets the caller created: a connected stream
 * socket becomes a connection, a listening stream socket a listener, of any
 * address family (TCP over IPv4/IPv6, AF_UNIX, ...). Bindings need this for
 * what ringline_listen / ringline_connect cannot express: Unix sockets,
 * sockets bound to a local address first, sockets with options set by the
 * application, or a socket handed over by another component (asyncio's
 * sock= arguments).
 *
 * Everything is checked before the loop takes the descriptor, so a refused
 * fd is still the caller's to close; an accepted one belongs to the loop
 * (closed when its CLOSED event comes).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

/* The descriptor must be an open socket of type SOCK_STREAM; returns its
 * SO_ACCEPTCONN (0/1) or -errno. */
static int rl_stream_socket_check(int fd)
{
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
        return -errno; /* ENOTSOCK for files, pipes, ... */
    /* datagram and seqpacket sockets keep message boundaries the loop's
     * byte-stream receive path would lose */
    if (type != SOCK_STREAM)
        return -EINVAL;
    int acc = 0;
    socklen_t al = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0)
        return -errno;
    return acc ? 1 : 0;
}

int ringline_conn_adopt(ringline_loop_t *loop, int fd, ringline_id_t *out)
{
    RL_LOOP_CHECK(loop);
    if (!out)
        return -EINVAL;
    int acc = rl_stream_socket_check(fd);
    if (acc < 0)
        return acc;
    if (acc)
        return -EINVAL; /* a listening socket: ringline_listener_adopt */
    /* only connected sockets: the loop has no state to finish a connect */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno; /* ENOTCONN */
    if (loop->stopping)
        return -ESHUTDOWN;
    struct rl_conn *c = rl_conn_alloc(loop, fd);
    if (!c)
        return -ENFILE;
    rl_conn_arm_recv(loop, c);
    *out = rl_conn_id(loop, c);
    return 0;
}

int ringline_listener_adopt(ringline_loop_t *loop, int fd, ringline_id_t *out)
{
    RL_LOOP_CHECK(loop);
    if (!out)
        return -EINVAL;
    int acc = rl_stream_socket_check(fd);
    if (acc < 0)
        return acc;
    if (!acc)
        return -EINVAL; /* listen() was not called on it */
    if (loop->stopping)
        return -ESHUTDOWN;
    int idx = rl_listener_free_slot(loop);
    if (idx < 0)
        return idx;
    return rl_listener_install(loop, (uint32_t)idx, fd, out); /* the caller
                                                    keeps fd on failure */
}

int ringline_conn_sockname(ringline_loop_t *loop, ringline_id_t id,
                           struct sockaddr_storage *out, socklen_t *len)
{
    RL_LOOP_CHECK(loop);
    struct rl_conn *c = rl_conn_get(loop, id);
    if (!c)
        return -EBADF;
    if (!out || !len)
        return -EINVAL;
    *len = sizeof *out;
    if (RINGLINE_IS_FIXED(c->fd))
        return -EOPNOTSUPP; /* a fixed slot has no descriptor to ask */
    if (getsockname(c->fd, (struct sockaddr *)out, len) < 0)
        return -errno;
    return 0;
}

int ringline_conn_fd(ringline_loop_t *loop, ringline_id_t id)
{
    RL_LOOP_CHECK(loop);
    struct rl_conn *c = rl_conn_get(loop, id);
    if (!c)
        return -EBADF;
    if (RINGLINE_IS_FIXED(c->fd))
        return -EOPNOTSUPP;
    return c->fd;
}

int ringline_listener_fd(ringline_loop_t *loop, ringline_id_t id)
{
    RL_LOOP_CHECK(loop);
    if (RL_ID_KIND(id) != RL_K_LISTENER || RL_ID_IDX(id) >= 64)
        return -EBADF;
    struct rl_listener *s = &loop->listeners[RL_ID_IDX(id)];
    if (!s->used || s->closing || (s->gen & 0xFFFFFF) != RL_ID_GEN(id))
        return -EBADF;
    return s->fd;
}
