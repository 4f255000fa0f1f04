/*
 * submit.c — getting SQEs, committing them, and entering the kernel.
 *
 * The SQ is never a reason to fail: when it is full, what is queued is
 * submitted and the SQE taken again. A linked chain reserves its SQEs up
 * front (chain_begin), so that automatic submit can never cut it in two.
 */
#include <signal.h>
#include <string.h>

#include "internal.h"

int rl_check_fd(int fd) { return fd < 0 ? -EBADF : 0; }

static inline unsigned rl_sqe_index(ringline_ring_t *r,
                                    struct io_uring_sqe *sqe)
{
    return (unsigned)((sqe - r->ring.sq.sqes) >> (r->big ? 1 : 0));
}

struct __kernel_timespec *rl_sqe_timespec(ringline_ring_t *r,
                                          struct io_uring_sqe *sqe)
{
    return &r->ts[rl_sqe_index(r, sqe)];
}

/* Publish queued SQEs to the kernel: liburing 2.3 keeps this step private,
 * and ringline needs it to submit and wait in a single io_uring_enter. */
static unsigned rl_flush_sq(ringline_ring_t *r)
{
    struct io_uring_sq *sq = &r->ring.sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        if (!(r->setup_flags & IORING_SETUP_SQPOLL))
            IO_URING_WRITE_ONCE(*sq->ktail, tail);
        else
            io_uring_smp_store_release(sq->ktail, tail);
        r->last_sqe = NULL;
    }
    return tail - IO_URING_READ_ONCE(*sq->khead);
}

int rl_enter(ringline_ring_t *r, unsigned wait_nr, int64_t timeout_ns,
             bool getevents)
{
    if (RL_UNLIKELY(!r->wake_armed))
        rl_wake_arm(r);
    unsigned to_submit = rl_flush_sq(r);
    unsigned flags = r->enter_flags;
    bool sqpoll = r->setup_flags & IORING_SETUP_SQPOLL;

    if (sqpoll) {
        /* the kernel thread submits; wake it if it went to sleep */
        if (IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_NEED_WAKEUP)
            flags |= IORING_ENTER_SQ_WAKEUP;
        else if (!wait_nr && !getevents)
            return (int)to_submit;
    } else if (!to_submit && !wait_nr && !getevents) {
        return 0;
    }

    if (wait_nr || getevents)
        flags |= IORING_ENTER_GETEVENTS;

    struct __kernel_timespec ts;
    struct io_uring_getevents_arg arg;
    void *argp = NULL;
    size_t argsz = 0;
    if (wait_nr && timeout_ns >= 0) {
        if (timeout_ns == 0) {
            wait_nr = 0; /* "do not wait": still run deferred task work */
        } else if (r->features & RINGLINE_FEAT_EXT_ARG) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            memset(&arg, 0, sizeof arg);
            arg.sigmask_sz = _NSIG / 8;
            arg.ts = (uint64_t)(uintptr_t)&ts;
            argp = &arg;
            argsz = sizeof arg;
            flags |= IORING_ENTER_EXT_ARG;
        }
    }

    int ret = io_uring_enter2(r->enter_fd, sqpoll ? 0 : to_submit, wait_nr,
                              flags, argp, argsz);
    if (ret >= 0)
        return ret;
    switch (ret) {
    case -ETIME: /* the wait timed out: nothing is wrong */
        return 0;
    case -EBUSY: /* completions are backed up: the caller must harvest */
        return 0;
    default:
        return ret; /* -EINTR and real errors go to the caller */
    }
}

struct io_uring_sqe *rl_get_sqe(ringline_ring_t *r, int *err)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (RL_UNLIKELY(!sqe)) {
        if (r->chain_left) {
            /* cannot happen: chain_begin reserved the room */
            *err = -EBUSY;
            return NULL;
        }
        int ret = rl_enter(r, 0, 0, false);
        if (ret < 0 && ret != -EINTR) {
            *err = ret;
            return NULL;
        }
        sqe = io_uring_get_sqe(&r->ring);
        if (!sqe && (r->setup_flags & IORING_SETUP_SQPOLL)) {
            io_uring_sqring_wait(&r->ring);
            sqe = io_uring_get_sqe(&r->ring);
        }
        if (!sqe) {
            *err = -EBUSY;
            return NULL;
        }
    }
    memset(sqe, 0, r->big ? 128 : 64);
    return sqe;
}

void rl_commit_internal_sqe(ringline_ring_t *r, struct io_uring_sqe *sqe,
                            uint64_t token)
{
    /* never part of a caller's chain */
    sqe->user_data = token;
    r->internal_inflight++;
}

int ringline_ring_submit(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    if (ring->chain_left)
        return -EBUSY;
    return rl_enter(ring, 0, 0, false);
}

int ringline_ring_submit_and_wait(ringline_ring_t *ring, unsigned wait_nr,
                                  int64_t timeout_ns)
{
    RL_RING_CHECK(ring);
    if (ring->chain_left)
        return -EBUSY;
    if (wait_nr > ring->cq_entries)
        wait_nr = ring->cq_entries;
    /* completions already waiting: no need to sleep */
    if (wait_nr && io_uring_cq_ready(&ring->ring) >= wait_nr)
        return rl_enter(ring, 0, 0, false);
    return rl_enter(ring, wait_nr, timeout_ns, true);
}

int ringline_ring_reap(ringline_ring_t *ring, ringline_cqe_t *out,
                       unsigned max, unsigned wait_nr, int64_t timeout_ns)
{
    RL_RING_CHECK(ring);
    if (!out && max)
        return -EINVAL;
    int ret = ringline_ring_submit_and_wait(ring, wait_nr, timeout_ns);
    if (ret < 0)
        return ret;
    return rl_harvest(ring, out, max, true);
}

int ringline_op_set_flags(ringline_ring_t *ring, unsigned flags)
{
    RL_RING_CHECK(ring);
    const unsigned allowed = RINGLINE_SQE_IO_DRAIN | RINGLINE_SQE_IO_LINK |
                             RINGLINE_SQE_IO_HARDLINK | RINGLINE_SQE_ASYNC;
    if (flags & ~allowed)
        return -EINVAL;
    if (!ring->last_sqe)
        return -EALREADY;
    ring->last_sqe->flags |= (uint8_t)flags;
    return 0;
}

int ringline_chain_begin(ringline_ring_t *ring, unsigned n, int hard)
{
    RL_RING_CHECK(ring);
    if (ring->chain_left)
        return -EBUSY;
    if (n < 2 || n > ring->sq_entries)
        return -EINVAL;
    if (io_uring_sq_space_left(&ring->ring) < n) {
        int ret = rl_enter(ring, 0, 0, false);
        if (ret < 0 && ret != -EINTR)
            return ret;
        if (io_uring_sq_space_left(&ring->ring) < n &&
            (ring->setup_flags & IORING_SETUP_SQPOLL))
            io_uring_sqring_wait(&ring->ring);
        if (io_uring_sq_space_left(&ring->ring) < n)
            return -EBUSY;
    }
    ring->chain_left = n;
    ring->chain_flag = hard ? IOSQE_IO_HARDLINK : IOSQE_IO_LINK;
    ring->last_sqe = NULL;
    return 0;
}

int ringline_chain_end(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    if (!ring->chain_left)
        return 0;
    /* cut the partial chain so a later operation cannot join it */
    if (ring->last_sqe)
        ring->last_sqe->flags &= (uint8_t) ~(IOSQE_IO_LINK | IOSQE_IO_HARDLINK);
    ring->chain_left = 0;
    return -EINVAL;
}
