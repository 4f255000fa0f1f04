/*
 * wake.c — waking a ring from another thread, and messaging another ring.
 *
 * Each ring keeps a read armed on its own eventfd. Any thread may write to
 * the eventfd (ringline_ring_wake); the read completes, harvest turns it into
 * a RINGLINE_TOKEN_WAKE record and re-arms it. An eventfd rather than
 * msg_ring because the waker need not own a ring at all.
 */
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

int rl_wake_init(ringline_ring_t *r)
{
    /* blocking on purpose: io_uring returns -EAGAIN for reads on O_NONBLOCK
     * files instead of arming a poll */
    r->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (r->wake_fd < 0)
        return -errno;
    return rl_wake_arm(r); /* the first enter submits it */
}

int rl_wake_arm(ringline_ring_t *r)
{
    if (r->wake_armed || r->wake_fd < 0 || r->closing)
        return 0;
    /* Called from rl_enter, before the SQ is flushed and never inside an
     * open chain (enter refuses those), so the read cannot join a chain.
     * No automatic submit here: with the SQ full, the next enter retries. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_read(sqe, r->wake_fd, &r->wake_buf, sizeof r->wake_buf, 0);
    rl_commit_internal_sqe(r, sqe, RL_TOKEN_WAKE_READ);
    r->wake_armed = true;
    return 0;
}

void rl_wake_fini(ringline_ring_t *r)
{
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    r->wake_fd = -1;
}

int ringline_ring_wake(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    int fd = ring->wake_fd;
    if (fd < 0)
        return -EBADF;
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(fd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
    return n == sizeof one ? 0 : -errno;
}

int ringline_op_msg_ring(ringline_ring_t *ring, ringline_ring_t *target,
                         int32_t res, uint64_t payload, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    RL_RING_CHECK(target);
    int ret;
    if (payload & RINGLINE_TOKEN_RESERVED_MASK)
        return -EINVAL;
    struct io_uring_sqe *sqe = rl_get_sqe(ring, &ret);
    if (!sqe)
        return ret;
    io_uring_prep_msg_ring(sqe, target->ring.ring_fd, (unsigned)res,
                           RINGLINE_TOKEN_MSG_TAG | payload, 0);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}
