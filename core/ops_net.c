/*
 * ops_net.c — socket operations: accept, connect, recv, send, close,
 * shutdown, poll and cancel.
 *
 * The data operations (send, sendmsg, recv and their variants) are on every
 * message's path: they take their SQE with RL_OP_SQE_RW (not zeroed first,
 * the prep helper writes every field) and check the token map through its
 * inline filter.
 */
#include <poll.h>

#include "internal.h"

int ringline_op_nop(ringline_ring_t *ring, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_nop(sqe);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_accept(ringline_ring_t *ring, int fd, struct sockaddr *addr,
                       socklen_t *addrlen, int sock_flags, unsigned mode,
                       unsigned slot, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (mode & ~(RINGLINE_ACCEPT_MULTISHOT | RINGLINE_ACCEPT_DIRECT))
        return -EINVAL;
    if (sock_flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
        return -EINVAL;
    bool multi = mode & RINGLINE_ACCEPT_MULTISHOT;
    bool direct = mode & RINGLINE_ACCEPT_DIRECT;
    /* one address buffer cannot serve many accepts */
    if (multi && (addr || addrlen))
        return -EINVAL;
    if (!addr != !addrlen)
        return -EINVAL;
    if (direct) {
        if (multi && slot != RINGLINE_FILE_ALLOC)
            return -EINVAL;
        if (slot == RINGLINE_NO_SLOT)
            return -EINVAL;
        /* table entries have no close-on-exec flag; the kernel refuses it */
        if (sock_flags & SOCK_CLOEXEC)
            return -EINVAL;
    }
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    if (multi && direct)
        io_uring_prep_multishot_accept_direct(sqe, fd, NULL, NULL, sock_flags);
    else if (multi)
        io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, sock_flags);
    else if (direct) {
        io_uring_prep_accept_direct(sqe, fd, addr, addrlen, sock_flags, slot);
        /* liburing 2.3 stores slot + 1, wrapping the allocation value to
         * 0 ("no slot"): the kernel must see ~0U itself */
        if (slot == RINGLINE_FILE_ALLOC)
            sqe->file_index = IORING_FILE_INDEX_ALLOC;
    }
    else
        io_uring_prep_accept(sqe, fd, addr, addrlen, sock_flags);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_connect(ringline_ring_t *ring, int fd,
                        const struct sockaddr *addr, socklen_t addrlen,
                        uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (!addr || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_connect(sqe, fd, addr, addrlen);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_recv(ringline_ring_t *ring, int fd, void *buf, size_t len,
                     int msg_flags, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (len > RL_MAX_LEN || (!buf && len))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE_RW(ring, sqe);
    io_uring_prep_recv(sqe, fd, buf, len, msg_flags);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

/* A recv that takes its buffer from group bgid, single or multishot. */
static int rl_recv_buffered(ringline_ring_t *ring, int fd, uint16_t bgid,
                            size_t len, int msg_flags, bool multishot,
                            uint64_t token)
{
    if (fd < 0)
        return -EBADF;
    if (len > RL_MAX_LEN)
        return -EINVAL;
    int ret = rl_group_use(ring, bgid, token);
    if (ret < 0)
        return ret;
    struct io_uring_sqe *sqe = rl_get_sqe_rw(ring, &ret);
    if (!sqe) {
        rl_group_unuse(ring, token);
        return ret;
    }
    if (multishot)
        io_uring_prep_recv_multishot(sqe, fd, NULL, 0, msg_flags);
    else
        io_uring_prep_recv(sqe, fd, NULL, len, msg_flags);
    rl_sqe_set_fd(sqe, fd);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = bgid;
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

/* Buffer-select operations may share a token with each other (same group:
 * rl_group_use counts them), so they skip RL_OP_CHECK's exclusivity test. */
#define RL_BUFSEL_CHECK(r, token)                                              \
    do {                                                                       \
        RL_RING_CHECK(r);                                                      \
        int rl__e = rl_check_token(token);                                     \
        if (rl__e)                                                             \
            return rl__e;                                                      \
    } while (0)

int ringline_op_recv_select(ringline_ring_t *ring, int fd, uint16_t bgid,
                            size_t len, int msg_flags, uint64_t token)
{
    RL_BUFSEL_CHECK(ring, token);
    return rl_recv_buffered(ring, fd, bgid, len, msg_flags, false, token);
}

int ringline_op_recv_multishot(ringline_ring_t *ring, int fd, uint16_t bgid,
                               int msg_flags, uint64_t token)
{
    RL_BUFSEL_CHECK(ring, token);
    return rl_recv_buffered(ring, fd, bgid, 0, msg_flags, true, token);
}

int ringline_op_send(ringline_ring_t *ring, int fd, const void *buf,
                     size_t len, int msg_flags, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (len > RL_MAX_LEN || (!buf && len))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE_RW(ring, sqe);
    io_uring_prep_send(sqe, fd, buf, len, msg_flags);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_send_zc(ringline_ring_t *ring, int fd, const void *buf,
                        size_t len, int msg_flags, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (len > RL_MAX_LEN || (!buf && len))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE_RW(ring, sqe);
    io_uring_prep_send_zc(sqe, fd, buf, len, msg_flags, 0);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

/* sendmsg, sendmsg_zc and recvmsg share their checks and shape. */
static int rl_msg_op(ringline_ring_t *ring, int fd, const struct msghdr *msg,
                     int msg_flags, uint8_t opcode, uint64_t token)
{
    if (fd < 0)
        return -EBADF;
    if (!msg || (msg->msg_iovlen && !msg->msg_iov) || msg->msg_iovlen > 1024)
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE_RW(ring, sqe);
    if (opcode == IORING_OP_RECVMSG)
        io_uring_prep_recvmsg(sqe, fd, (struct msghdr *)msg, (unsigned)msg_flags);
    else if (opcode == IORING_OP_SENDMSG_ZC)
        io_uring_prep_sendmsg_zc(sqe, fd, msg, (unsigned)msg_flags);
    else
        io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)msg_flags);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_sendmsg(ringline_ring_t *ring, int fd,
                        const struct msghdr *msg, int msg_flags,
                        uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_msg_op(ring, fd, msg, msg_flags, IORING_OP_SENDMSG, token);
}

int ringline_op_sendmsg_zc(ringline_ring_t *ring, int fd,
                           const struct msghdr *msg, int msg_flags,
                           uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_msg_op(ring, fd, msg, msg_flags, IORING_OP_SENDMSG_ZC, token);
}

int ringline_op_recvmsg(ringline_ring_t *ring, int fd, struct msghdr *msg,
                        int msg_flags, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_msg_op(ring, fd, msg, msg_flags, IORING_OP_RECVMSG, token);
}

int ringline_op_close(ringline_ring_t *ring, int fd, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    if (RINGLINE_IS_FIXED(fd))
        io_uring_prep_close_direct(sqe, RINGLINE_FIXED_SLOT(fd));
    else
        io_uring_prep_close(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_shutdown(ringline_ring_t *ring, int fd, int how,
                         uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_shutdown(sqe, fd, how);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_poll(ringline_ring_t *ring, int fd, unsigned events,
                     int multishot, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (events == 0 || events > 0xFFFF)
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    if (multishot)
        io_uring_prep_poll_multishot(sqe, fd, events);
    else
        io_uring_prep_poll_add(sqe, fd, events);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_poll_remove(ringline_ring_t *ring, uint64_t target_token,
                            uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (rl_check_token(target_token))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_poll_remove(sqe, target_token);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_cancel(ringline_ring_t *ring, uint64_t target_token,
                       unsigned flags, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (flags & ~(RINGLINE_CANCEL_ALL | RINGLINE_CANCEL_ANY))
        return -EINVAL;
    if (!(flags & RINGLINE_CANCEL_ANY) && rl_check_token(target_token))
        return -EINVAL; /* ringline's own operations are not the caller's */
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    unsigned kf = 0;
    if (flags & RINGLINE_CANCEL_ALL)
        kf |= IORING_ASYNC_CANCEL_ALL;
    if (flags & RINGLINE_CANCEL_ANY)
        kf |= IORING_ASYNC_CANCEL_ANY;
    io_uring_prep_cancel64(sqe, target_token, (int)kf);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_cancel_fd(ringline_ring_t *ring, int fd, unsigned flags,
                          uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (flags & ~RINGLINE_CANCEL_ALL)
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    unsigned kf = 0;
    if (flags & RINGLINE_CANCEL_ALL)
        kf |= IORING_ASYNC_CANCEL_ALL;
    if (RINGLINE_IS_FIXED(fd)) {
        io_uring_prep_cancel_fd(sqe, (int)RINGLINE_FIXED_SLOT(fd),
                                kf | IORING_ASYNC_CANCEL_FD_FIXED);
    } else {
        io_uring_prep_cancel_fd(sqe, fd, kf);
    }
    rl_commit_sqe(ring, sqe, token);
    return 0;
}
