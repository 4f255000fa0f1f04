/*
 * files.c — the fixed-file table.
 *
 * The table is split in two so that two allocators never hand out the same
 * slot: the first total - auto_count slots belong to ringline's allocator
 * (ringline_files_alloc, for operations into a chosen slot), the last
 * auto_count are the kernel's allocation range (RINGLINE_FILE_ALLOC, as
 * multishot accept needs).
 */
#include <stdlib.h>
#include <sys/resource.h>

#include "internal.h"

#define RL_FILES_MAX (1u << 20)

/* Each installed file counts against RLIMIT_NOFILE; raise the soft limit
 * to what the table needs, within the hard limit. */
void rl_raise_nofile(unsigned need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)need + 1024;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int ringline_files_register(ringline_ring_t *ring, unsigned total,
                            unsigned auto_count)
{
    RL_RING_CHECK(ring);
    if (total == 0 || total > RL_FILES_MAX || auto_count > total)
        return -EINVAL;
    if (ring->files_total)
        return -EBUSY;
    unsigned user = total - auto_count;
    uint64_t *used = calloc((user + 63) / 64 + 1, sizeof(uint64_t));
    if (!used)
        return -ENOMEM;
    rl_raise_nofile(total);
    int ret = io_uring_register_files_sparse(&ring->ring, total);
    if (ret < 0) {
        free(used);
        return ret;
    }
    if (auto_count) {
        ret = io_uring_register_file_alloc_range(&ring->ring, user, auto_count);
        if (ret < 0) {
            io_uring_unregister_files(&ring->ring);
            free(used);
            return ret;
        }
    }
    ring->files_total = total;
    ring->files_auto = auto_count;
    ring->files_used = used;
    ring->files_next = 0;
    return 0;
}

void rl_files_fini(ringline_ring_t *r)
{
    if (r->files_total)
        io_uring_unregister_files(&r->ring);
    free(r->files_used);
    r->files_used = NULL;
    r->files_total = r->files_auto = 0;
}

int ringline_files_unregister(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    if (!ring->files_total)
        return -ENXIO;
    rl_files_fini(ring);
    return 0;
}

static inline unsigned rl_files_user(ringline_ring_t *r)
{
    return r->files_total - r->files_auto;
}

int ringline_files_alloc(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    if (!ring->files_total)
        return -ENXIO;
    unsigned n = rl_files_user(ring);
    /* next-fit from the last allocation: a just-freed slot is not handed
     * out again at once, which keeps late completions for it unambiguous */
    for (unsigned k = 0; k < n; k++) {
        unsigned i = (ring->files_next + k) % n;
        if (!(ring->files_used[i >> 6] & (1ull << (i & 63)))) {
            ring->files_used[i >> 6] |= 1ull << (i & 63);
            ring->files_next = (i + 1) % n;
            return (int)i;
        }
    }
    return -ENFILE;
}

int ringline_files_release(ringline_ring_t *ring, unsigned slot)
{
    RL_RING_CHECK(ring);
    if (!ring->files_total)
        return -ENXIO;
    if (slot >= ring->files_total)
        return -EINVAL;
    if (slot >= rl_files_user(ring))
        return 0; /* the kernel's range: it tracks its own slots */
    uint64_t bit = 1ull << (slot & 63);
    if (!(ring->files_used[slot >> 6] & bit))
        return -EINVAL; /* not reserved: a double release */
    ring->files_used[slot >> 6] &= ~bit;
    return 0;
}

int ringline_files_update(ringline_ring_t *ring, unsigned slot, int fd)
{
    RL_RING_CHECK(ring);
    if (!ring->files_total)
        return -ENXIO;
    if (slot >= ring->files_total || fd < -1)
        return -EINVAL;
    int ret = io_uring_register_files_update(&ring->ring, slot, &fd, 1);
    if (ret < 0)
        return ret;
    return ret == 1 ? 0 : -EIO;
}

int ringline_files_install(ringline_ring_t *ring, int fd)
{
    RL_RING_CHECK(ring);
    if (fd < 0)
        return -EBADF;
    int slot = ringline_files_alloc(ring);
    if (slot < 0)
        return slot;
    int ret = ringline_files_update(ring, (unsigned)slot, fd);
    if (ret < 0) {
        ringline_files_release(ring, (unsigned)slot);
        return ret;
    }
    return slot;
}

int ringline_files_remove(ringline_ring_t *ring, unsigned slot)
{
    RL_RING_CHECK(ring);
    int ret = ringline_files_update(ring, slot, -1);
    if (ret < 0)
        return ret;
    if (slot < rl_files_user(ring)) {
        uint64_t bit = 1ull << (slot & 63);
        ring->files_used[slot >> 6] &= ~bit;
    }
    return 0;
}

int ringline_files_count(ringline_ring_t *ring)
{
    RL_RING_CHECK(ring);
    return (int)ring->files_total;
}
