/*
 * ops_file.c — file operations: read/write (plain, fixed-buffer, vectored)
 * at offsets, fsync and openat.
 */
#include <fcntl.h>
#include <limits.h>

#include "internal.h"

enum rl_rw { RL_READ, RL_WRITE, RL_READ_FIXED, RL_WRITE_FIXED };

static int rl_rw_op(ringline_ring_t *ring, int fd, const void *buf,
                    size_t len, uint64_t offset, unsigned buf_index,
                    enum rl_rw kind, uint64_t token)
{
    if (fd < 0)
        return -EBADF;
    if (len > RL_MAX_LEN || (!buf && len))
        return -EINVAL;
    bool fixed = kind == RL_READ_FIXED || kind == RL_WRITE_FIXED;
    if (fixed && buf_index >= ring->buffers_registered)
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    switch (kind) {
    case RL_READ:
        io_uring_prep_read(sqe, fd, (void *)buf, (unsigned)len, offset);
        break;
    case RL_WRITE:
        io_uring_prep_write(sqe, fd, buf, (unsigned)len, offset);
        break;
    case RL_READ_FIXED:
        io_uring_prep_read_fixed(sqe, fd, (void *)buf, (unsigned)len, offset,
                                 (int)buf_index);
        break;
    case RL_WRITE_FIXED:
        io_uring_prep_write_fixed(sqe, fd, buf, (unsigned)len, offset,
                                  (int)buf_index);
        break;
    }
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_read(ringline_ring_t *ring, int fd, void *buf, size_t len,
                     uint64_t offset, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_rw_op(ring, fd, buf, len, offset, 0, RL_READ, token);
}

int ringline_op_write(ringline_ring_t *ring, int fd, const void *buf,
                      size_t len, uint64_t offset, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_rw_op(ring, fd, buf, len, offset, 0, RL_WRITE, token);
}

int ringline_op_read_fixed(ringline_ring_t *ring, int fd, void *buf,
                           size_t len, uint64_t offset, unsigned buf_index,
                           uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_rw_op(ring, fd, buf, len, offset, buf_index, RL_READ_FIXED,
                    token);
}

int ringline_op_write_fixed(ringline_ring_t *ring, int fd, const void *buf,
                            size_t len, uint64_t offset, unsigned buf_index,
                            uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_rw_op(ring, fd, buf, len, offset, buf_index, RL_WRITE_FIXED,
                    token);
}

static int rl_rwv_op(ringline_ring_t *ring, int fd, const struct iovec *iov,
                     unsigned iovcnt, uint64_t offset, bool write,
                     uint64_t token)
{
    if (fd < 0)
        return -EBADF;
    if (!iov || iovcnt == 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    if (write)
        io_uring_prep_writev(sqe, fd, iov, iovcnt, offset);
    else
        io_uring_prep_readv(sqe, fd, iov, iovcnt, offset);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_readv(ringline_ring_t *ring, int fd, const struct iovec *iov,
                      unsigned iovcnt, uint64_t offset, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_rwv_op(ring, fd, iov, iovcnt, offset, false, token);
}

int ringline_op_writev(ringline_ring_t *ring, int fd, const struct iovec *iov,
                       unsigned iovcnt, uint64_t offset, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    return rl_rwv_op(ring, fd, iov, iovcnt, offset, true, token);
}

int ringline_op_fsync(ringline_ring_t *ring, int fd, unsigned flags,
                      uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (fd < 0)
        return -EBADF;
    if (flags & ~RINGLINE_FSYNC_DATASYNC)
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    io_uring_prep_fsync(sqe, fd,
                        (flags & RINGLINE_FSYNC_DATASYNC) ? IORING_FSYNC_DATASYNC : 0);
    rl_sqe_set_fd(sqe, fd);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}

int ringline_op_openat(ringline_ring_t *ring, int dfd, const char *path,
                       int flags, unsigned mode, unsigned slot, uint64_t token)
{
    RL_OP_CHECK(ring, token);
    if (dfd < 0 && dfd != AT_FDCWD)
        return -EBADF;
    if (dfd != AT_FDCWD && RINGLINE_IS_FIXED(dfd))
        return -EINVAL; /* the kernel resolves paths against plain fds only */
    if (!path)
        return -EINVAL;
    bool direct = slot != RINGLINE_NO_SLOT;
    /* table entries have no close-on-exec flag; the kernel refuses it */
    if (direct && (flags & O_CLOEXEC))
        return -EINVAL;
    struct io_uring_sqe *sqe;
    RL_OP_SQE(ring, sqe);
    if (direct) {
        io_uring_prep_openat_direct(sqe, dfd, path, flags, mode, slot);
        /* liburing 2.3 stores slot + 1 without special-casing the
         * allocation value (which must reach the kernel as ~0U) */
        if (slot == RINGLINE_FILE_ALLOC)
            sqe->file_index = IORING_FILE_INDEX_ALLOC;
    } else
        io_uring_prep_openat(sqe, dfd, path, flags, mode);
    rl_commit_sqe(ring, sqe, token);
    return 0;
}
