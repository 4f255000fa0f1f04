/*
 * timeout.c — timers: relative, absolute, multishot, count-based; removal,
 * update and link timeouts.
 *
 * The kernel copies the timespec when it consumes the SQE, so each SQ slot
 * has one ring-owned timespec: callers keep nothing alive.
 */
#include "internal.h"

#define RL_TIMEOUT_ALL                                                         \
    (RINGLINE_TIMEOUT_ABS | RINGLINE_TIMEOUT_REALTIME |                        \
     RINGLINE_TIMEOUT_BOOTTIME | RINGLINE_TIMEOUT_MULTISHOT |                  \
     RINGLINE_TIMEOUT_ETIME_SUCCESS)

/* Translate ringline's timeout flags into the kernel's; -EINVAL on
 * combinations the kernel would refuse anyway. */
static int rl_timeout_kflags(unsigned flags, unsigned *out)
{
    if (flags & ~RL_TIMEOUT_ALL)
        return -EINVAL;
    if ((flags & RINGLINE_TIMEOUT_REALTIME) && (flags & RINGLINE_TIMEOUT_BOOTTIME))
        return -EINVAL;
    if ((flags & RINGLINE_TIMEOUT_MULTISHOT) && (flags & RINGLINE_TIMEOUT_ABS))
        return -EINVAL;
    unsigned k = 0;
    if (flags & RINGLINE_TIMEOUT_ABS)
        k |= IORING_TIMEOUT_ABS;
    if (flags & RINGLINE_TIMEOUT_REALTIME)
        k |= IORING_TIMEOUT_REALTIME;
    if (flags & RINGLINE_TIMEOUT_BOOTTIME)
        k |= IORING_TIMEOUT_BOOTTIME;
    if (flags & RINGLINE_TIMEOUT_MULTISHOT)
        k |= IORING_TIMEOUT_MULTISHOT;
    if (flags & RINGLINE_TIMEOUT_ETIME_SUCCESS)
        k |= IORING_TIMEOUT_ETIME_SUCCESS;
    *out = k;
    return 0;
}

static struct __kernel_timespec *rl_ts(ringline_ring_t *r,
                                       struct io_uring_sqe *sqe, uint64_t ns)
{
    struct __kernel_timespec *ts = rl_sqe_timespec(r, sqe);
    ts->tv_sec = (long long)(ns / 1000000000ull);
    ts->tv_nsec = (long long)(ns % 1000000000ull);
    return ts;
}

int ringline_op_timeout(ringline_ring_t *ring, uint64_t ns, unsigned count,
                        unsigned flags, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    unsigned kf;
    int ret = rl_timeout_kflags(flags, &kf);
    if (ret)
        return ret;
    if ((flags & RINGLINE_TIMEOUT_MULTISHOT) && ns == 0)
        return -EINVAL; /* would fire in a tight loop */
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_timeout(sqe, rl_ts(ring, sqe, ns), count, kf);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_timeout_remove(ringline_ring_t *ring, uint64_t target_token,
                               uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (rl_check_token(target_token))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_timeout_remove(sqe, target_token, 0);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_timeout_update(ringline_ring_t *ring, uint64_t target_token,
                               uint64_t ns, unsigned flags, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (rl_check_token(target_token))
        return -EINVAL;
    unsigned kf;
    int ret = rl_timeout_kflags(flags & ~RINGLINE_TIMEOUT_MULTISHOT, &kf);
    if (ret || (flags & RINGLINE_TIMEOUT_MULTISHOT))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_timeout_update(sqe, rl_ts(ring, sqe, ns), target_token, kf);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_link_timeout(ringline_ring_t *ring, uint64_t ns,
                             unsigned flags, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    unsigned kf;
    int ret = rl_timeout_kflags(flags, &kf);
    if (ret || (flags & RINGLINE_TIMEOUT_MULTISHOT))
        return -EINVAL;
    /* it guards the operation queued just before it, which must link to it */
    struct io_uring_sqe *prev = ring->last_sqe;
    if (!prev || !(prev->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_link_timeout(sqe, rl_ts(ring, sqe, ns), kf);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}
