/*
 * buffers.c — registered (fixed) buffers and aligned memory for O_DIRECT.
 */
#include <linux/fs.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define RL_MAX_REG_BUFFERS 16384u

/* <linux/fs.h> brings the kernel's struct statx, which (unlike glibc
 * 2.36's) has the direct-I/O alignment fields. */
#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN 0x00002000U
#endif

int ringline_buffers_register(ringline_ring_t *ring, const struct iovec *iov,
                              unsigned n)
{
    RL_RING_CHECK(ring);
    if (!iov || n == 0 || n > RL_MAX_REG_BUFFERS)
        return -EINVAL;
    if (ring->buffers_registered)
        return -EBUSY;
    int ret = io_uring_register_buffers(&ring->ring, iov, n);
    if (ret < 0)
        return ret;
    ring->buffers_registered = n;
    return 0;
}

int ringline_buffers_unregister(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    if (!ring->buffers_registered)
        return -ENXIO;
    int ret = io_uring_unregister_buffers(&ring->ring);
    if (ret < 0)
        return ret;
    ring->buffers_registered = 0;
    return 0;
}

int ringline_aligned_alloc(size_t size, size_t align, void **out)
{
    if (!out)
        return -EINVAL;
    if (align == 0)
        align = (size_t)sysconf(_SC_PAGESIZE);
    if (align < sizeof(void *) || (align & (align - 1)) || align > (1u << 30))
        return -EINVAL;
    if (size == 0 || size > ((size_t)1 << 40))
        return -EINVAL;
    void *p = NULL;
    int ret = posix_memalign(&p, align, size);
    if (ret)
        return -ret;
    memset(p, 0, size);
    *out = p;
    return 0;
}

int ringline_aligned_free(void *p)
{
    free(p);
    return 0;
}

int ringline_dio_alignment(int fd, unsigned *mem_align, unsigned *offset_align)
{
    if (fd < 0)
        return -EBADF;
    if (!mem_align || !offset_align)
        return -EINVAL;
    struct statx sx;
    memset(&sx, 0, sizeof sx);
    if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_DIOALIGN, &sx) < 0)
        return -errno;
    if (S_ISBLK(sx.stx_mode)) {
        /* block devices: the logical block size governs both */
        int lbs = 0;
        if (ioctl(fd, BLKSSZGET, &lbs) < 0)
            return -errno;
        *mem_align = *offset_align = (unsigned)lbs;
        return 0;
    }
    if (!(sx.stx_mask & STATX_DIOALIGN) || sx.stx_dio_offset_align == 0)
        return -EINVAL; /* the filesystem does not do O_DIRECT (tmpfs) */
    *mem_align = sx.stx_dio_mem_align;
    *offset_align = sx.stx_dio_offset_align;
    return 0;
}
