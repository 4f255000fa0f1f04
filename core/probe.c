/*
 * probe.c — what the running kernel can do, found by asking and by trying.
 *
 * Never uname: distributions backport features and strip others. Once per
 * process, on a small scratch ring (no special setup flags, so any thread
 * may do it): the opcode probe, plus trial operations for features that
 * are flags on existing opcodes and so invisible to the opcode probe
 * (multishot timeouts, recv and accept; provided-buffer rings; incremental
 * buffer consumption; sparse tables; sync cancel).
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static uint64_t probe_mask;

/* Wait for one CQE with a 1 s bound; copy it out and mark it seen. */
static int rl_probe_wait(struct io_uring *ring, struct io_uring_cqe *out)
{
    struct io_uring_cqe *c;
    struct __kernel_timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    int ret = io_uring_wait_cqe_timeout(ring, &c, &ts);
    if (ret < 0)
        return ret;
    *out = *c;
    io_uring_cqe_seen(ring, c);
    return 0;
}

static bool rl_probe_timeout_multishot(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
    io_uring_prep_timeout(sqe, &ts, 2, IORING_TIMEOUT_MULTISHOT);
    sqe->user_data = 1;
    io_uring_submit(ring);
    struct io_uring_cqe c;
    if (rl_probe_wait(ring, &c) < 0)
        return false;
    bool ok = c.res == -ETIME && (c.flags & IORING_CQE_F_MORE);
    if (ok)
        rl_probe_wait(ring, &c); /* the second and last expiry */
    return ok;
}

/* Register a one-page buffer ring for group bgid; returns its memory. */
static void *rl_probe_bufring(struct io_uring *ring, uint16_t bgid,
                              unsigned flags, int *err)
{
    void *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        *err = -ENOMEM;
        return NULL;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = 4;
    reg.bgid = bgid;
    *err = io_uring_register_buf_ring(ring, &reg, flags);
    if (*err < 0) {
        munmap(mem, 4096);
        return NULL;
    }
    return mem;
}

static bool rl_probe_recv_multishot(struct io_uring *ring)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return false;
    int err;
    char bufs[2][64];
    struct io_uring_buf_ring *br = rl_probe_bufring(ring, 1, 0, &err);
    bool ok = false;
    if (br) {
        io_uring_buf_ring_init(br);
        for (int i = 0; i < 2; i++)
            io_uring_buf_ring_add(br, bufs[i], 64, (unsigned short)i, 3, i);
        io_uring_buf_ring_advance(br, 2);
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = 1;
        sqe->user_data = 2;
        io_uring_submit(ring);
        if (write(sv[1], "x", 1) == 1) {
            struct io_uring_cqe c;
            if (rl_probe_wait(ring, &c) == 0)
                ok = c.res == 1 && (c.flags & IORING_CQE_F_BUFFER) &&
                     (c.flags & IORING_CQE_F_MORE);
            /* end it: EOF terminates the multishot */
            shutdown(sv[1], SHUT_WR);
            while (c.flags & IORING_CQE_F_MORE)
                if (rl_probe_wait(ring, &c) < 0)
                    break;
        }
        io_uring_unregister_buf_ring(ring, 1);
        munmap(br, 4096);
    }
    close(sv[0]);
    close(sv[1]);
    return ok;
}

static bool rl_probe_accept_multishot(struct io_uring *ring)
{
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return false;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    bool ok = false;
    socklen_t alen = sizeof a;
    /* autobind: an abstract address nobody else can collide with */
    if (bind(l, (struct sockaddr *)&a, sizeof(sa_family_t)) == 0 &&
        listen(l, 4) == 0 && getsockname(l, (struct sockaddr *)&a, &alen) == 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        io_uring_prep_multishot_accept(sqe, l, NULL, NULL, SOCK_CLOEXEC);
        sqe->user_data = 3;
        io_uring_submit(ring);
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c >= 0 && connect(c, (struct sockaddr *)&a, alen) == 0) {
            struct io_uring_cqe cq;
            if (rl_probe_wait(ring, &cq) == 0) {
                ok = cq.res >= 0 && (cq.flags & IORING_CQE_F_MORE);
                if (cq.res >= 0)
                    close(cq.res);
            }
        }
        if (c >= 0)
            close(c);
        /* stop the multishot accept before closing the listener */
        sqe = io_uring_get_sqe(ring);
        io_uring_prep_cancel64(sqe, 3, 0);
        sqe->user_data = 4;
        io_uring_submit(ring);
        struct io_uring_cqe cq;
        for (int i = 0; i < 2; i++)
            if (rl_probe_wait(ring, &cq) < 0)
                break;
    }
    close(l);
    return ok;
}

static bool rl_probe_poll_multishot(struct io_uring *ring)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return false;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_poll_multishot(sqe, efd, POLLIN);
    sqe->user_data = 5;
    io_uring_submit(ring);
    uint64_t one = 1;
    bool ok = false;
    if (write(efd, &one, sizeof one) == sizeof one) {
        struct io_uring_cqe c;
        if (rl_probe_wait(ring, &c) == 0)
            ok = (c.res & POLLIN) && (c.flags & IORING_CQE_F_MORE);
    }
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_poll_remove(sqe, 5);
    sqe->user_data = 6;
    io_uring_submit(ring);
    struct io_uring_cqe c;
    for (int i = 0; i < 2; i++)
        if (rl_probe_wait(ring, &c) < 0)
            break;
    close(efd);
    return ok;
}

static void rl_probe_run(void)
{
    struct io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0)
        return; /* io_uring unavailable: no features */

    uint64_t f = 0;
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    if (p) {
#define OP(op) (p->last_op >= (op) && (p->ops[op].flags & IO_URING_OP_SUPPORTED))
        if (OP(IORING_OP_SEND_ZC))
            f |= RINGLINE_FEAT_SEND_ZC;
        if (OP(IORING_OP_SENDMSG_ZC))
            f |= RINGLINE_FEAT_SENDMSG_ZC;
        if (OP(IORING_OP_URING_CMD))
            f |= RINGLINE_FEAT_URING_CMD;
        if (OP(IORING_OP_MSG_RING))
            f |= RINGLINE_FEAT_MSG_RING;
        if (OP(IORING_OP_SOCKET))
            f |= RINGLINE_FEAT_SOCKET;
#undef OP
        io_uring_free_probe(p);
    }

    int err;
    void *m = rl_probe_bufring(&ring, 7, 0, &err);
    if (m) {
        f |= RINGLINE_FEAT_BUF_RING;
        io_uring_unregister_buf_ring(&ring, 7);
        munmap(m, 4096);
    }
    m = rl_probe_bufring(&ring, 8, IOU_PBUF_RING_INC, &err);
    if (m) {
        f |= RINGLINE_FEAT_BUF_RING_INC;
        io_uring_unregister_buf_ring(&ring, 8);
        munmap(m, 4096);
    }
    if ((f & RINGLINE_FEAT_BUF_RING) && rl_probe_recv_multishot(&ring))
        f |= RINGLINE_FEAT_RECV_MULTISHOT;
    if (rl_probe_accept_multishot(&ring))
        f |= RINGLINE_FEAT_ACCEPT_MULTISHOT;
    if (rl_probe_timeout_multishot(&ring))
        f |= RINGLINE_FEAT_TIMEOUT_MULTISHOT;
    if (rl_probe_poll_multishot(&ring))
        f |= RINGLINE_FEAT_POLL_MULTISHOT;

    if (io_uring_register_files_sparse(&ring, 8) == 0) {
        f |= RINGLINE_FEAT_SPARSE_FILES;
        if (io_uring_register_file_alloc_range(&ring, 4, 4) == 0)
            f |= RINGLINE_FEAT_FILE_ALLOC_RANGE;
        io_uring_unregister_files(&ring);
    }
    struct io_uring_sync_cancel_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.addr = 0x5eed;
    reg.fd = -1;
    reg.timeout.tv_sec = -1;
    reg.timeout.tv_nsec = -1;
    /* nothing carries that token: a kernel that knows sync cancel says
     * ENOENT, one that does not says EINVAL */
    if (io_uring_register_sync_cancel(&ring, &reg) == -ENOENT)
        f |= RINGLINE_FEAT_SYNC_CANCEL;

    io_uring_queue_exit(&ring);
    probe_mask = f;
}

uint64_t rl_probe_kernel(void)
{
    pthread_once(&probe_once, rl_probe_run);
    return probe_mask;
}
