/*
 * bufring.c — provided-buffer rings (kernel-picked receive buffers).
 *
 * A group is a ring of buffer descriptors shared with the kernel plus one
 * lazily-touched mapping holding every buffer. ringline tracks which side
 * owns each buffer: a completion hands one to the caller, and returning a
 * buffer the kernel already holds (a double return) is refused, because the
 * kernel would then hand the same memory out twice.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define RL_BUF_MAX_COUNT 32768u
#define RL_BUF_MAX_SIZE (1u << 30)
#define RL_BUF_MAX_TOTAL (1ull << 38)

static inline bool rl_bit_get(const uint64_t *b, unsigned i)
{
    return (b[i >> 6] >> (i & 63)) & 1;
}
static inline void rl_bit_set(uint64_t *b, unsigned i)
{
    b[i >> 6] |= 1ull << (i & 63);
}
static inline void rl_bit_clear(uint64_t *b, unsigned i)
{
    b[i >> 6] &= ~(1ull << (i & 63));
}

struct rl_bufring *rl_group_find(ringline_ring_t *r, uint16_t bgid)
{
    struct rl_bufring *g = r->last_group;
    if (RL_LIKELY(g && g->bgid == bgid))
        return g;
    for (unsigned i = 0; i < r->ngroups; i++) {
        if (r->groups[i]->bgid == bgid) {
            r->last_group = r->groups[i];
            return r->groups[i];
        }
    }
    return NULL;
}

int rl_group_use(ringline_ring_t *r, uint16_t bgid, uint64_t token)
{
    struct rl_bufring *g = rl_group_find(r, bgid);
    if (!g)
        return -ENOENT;
    int ret = rl_tokmap_add(&r->tokmap, token, bgid);
    if (ret < 0)
        return ret;
    g->users++;
    return 0;
}

void rl_group_unuse(ringline_ring_t *r, uint64_t token)
{
    struct rl_tokmap_entry *e = rl_tokmap_find(&r->tokmap, token);
    if (!e)
        return;
    struct rl_bufring *g = rl_group_find(r, e->bgid);
    if (g && g->users)
        g->users--;
    rl_tokmap_drop(&r->tokmap, e);
}

void rl_group_taken(struct rl_bufring *g, uint16_t bid)
{
    if (bid < g->count && rl_bit_get(g->kernel_owned, bid)) {
        rl_bit_clear(g->kernel_owned, bid);
        g->kernel_count--;
    }
}

static void rl_group_free(ringline_ring_t *r, struct rl_bufring *g,
                          bool registered)
{
    if (registered)
        io_uring_unregister_buf_ring(&r->ring, g->bgid);
    if (g->br)
        munmap(g->br, g->br_bytes);
    if (g->mem)
        munmap(g->mem, g->mem_bytes);
    free(g->kernel_owned);
    free(g);
}

int ringline_bufring_create(ringline_ring_t *ring, uint16_t bgid,
                            unsigned count, unsigned size)
{
    RL_RING_CHECK(ring);
    if (count == 0 || count > RL_BUF_MAX_COUNT || (count & (count - 1)))
        return -EINVAL;
    if (size == 0 || size > RL_BUF_MAX_SIZE)
        return -EINVAL;
    if ((uint64_t)count * size > RL_BUF_MAX_TOTAL)
        return -EINVAL;
    if (rl_group_find(ring, bgid))
        return -EEXIST;
    if (ring->ngroups == ring->groups_cap) {
        unsigned ncap = ring->groups_cap ? ring->groups_cap * 2 : 4;
        struct rl_bufring **ng = realloc(ring->groups, ncap * sizeof *ng);
        if (!ng)
            return -ENOMEM;
        ring->groups = ng;
        ring->groups_cap = ncap;
    }

    struct rl_bufring *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    long page = sysconf(_SC_PAGESIZE);
    g->bgid = bgid;
    g->count = count;
    g->size = size;
    g->mask = count - 1;
    g->br_bytes = ((size_t)count * sizeof(struct io_uring_buf) + (size_t)page - 1) &
                  ~((size_t)page - 1);
    g->mem_bytes = ((size_t)count * size + (size_t)page - 1) & ~((size_t)page - 1);
    g->kernel_owned = calloc((count + 63) / 64, sizeof(uint64_t));
    void *br = mmap(NULL, g->br_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* NORESERVE: big groups cost address space, not memory, until used */
    void *mem = mmap(NULL, g->mem_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g->br = br == MAP_FAILED ? NULL : br;
    g->mem = mem == MAP_FAILED ? NULL : mem;
    if (!g->kernel_owned || !g->br || !g->mem) {
        rl_group_free(ring, g, false);
        return -ENOMEM;
    }

    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)g->br;
    reg.ring_entries = count;
    reg.bgid = bgid;
    int ret = io_uring_register_buf_ring(&ring->ring, &reg, 0);
    if (ret < 0) {
        rl_group_free(ring, g, false);
        return ret;
    }
    io_uring_buf_ring_init(g->br);
    for (unsigned i = 0; i < count; i++) {
        io_uring_buf_ring_add(g->br, g->mem + (size_t)i * size, size,
                              (unsigned short)i, (int)g->mask, (int)i);
        rl_bit_set(g->kernel_owned, i);
    }
    io_uring_buf_ring_advance(g->br, (int)count);
    g->kernel_count = count;
    ring->groups[ring->ngroups++] = g;
    return 0;
}

int ringline_bufring_addr(ringline_ring_t *ring, uint16_t bgid, uint16_t bid,
                          void **out)
{
    RL_RING_CHECK(ring);
    if (!out)
        return -EINVAL;
    struct rl_bufring *g = rl_group_find(ring, bgid);
    if (!g)
        return -ENOENT;
    if (bid >= g->count)
        return -EINVAL;
    *out = g->mem + (size_t)bid * g->size;
    return (int)g->size;
}

int ringline_bufring_return(ringline_ring_t *ring, uint16_t bgid,
                            const uint16_t *bids, unsigned n)
{
    RL_RING_CHECK(ring);
    if (!bids && n)
        return -EINVAL;
    struct rl_bufring *g = rl_group_find(ring, bgid);
    if (!g)
        return -ENOENT;
    if (n > g->count - g->kernel_count)
        return -EINVAL;
    /* validate the whole batch first (marking as we go to catch a bid
     * repeated inside it), and roll back on any error: all or nothing */
    for (unsigned i = 0; i < n; i++) {
        uint16_t b = bids[i];
        if (b >= g->count || rl_bit_get(g->kernel_owned, b)) {
            for (unsigned j = 0; j < i; j++)
                rl_bit_clear(g->kernel_owned, bids[j]);
            return -EINVAL;
        }
        rl_bit_set(g->kernel_owned, b);
    }
    for (unsigned i = 0; i < n; i++)
        io_uring_buf_ring_add(g->br, g->mem + (size_t)bids[i] * g->size,
                              g->size, bids[i], (int)g->mask, (int)i);
    io_uring_buf_ring_advance(g->br, (int)n);
    g->kernel_count += n;
    return 0;
}

int ringline_bufring_available(ringline_ring_t *ring, uint16_t bgid)
{
    RL_RING_CHECK(ring);
    struct rl_bufring *g = rl_group_find(ring, bgid);
    return g ? (int)g->kernel_count : -ENOENT;
}

int ringline_bufring_count(ringline_ring_t *ring, uint16_t bgid)
{
    RL_RING_CHECK(ring);
    struct rl_bufring *g = rl_group_find(ring, bgid);
    return g ? (int)g->count : -ENOENT;
}

int ringline_bufring_size(ringline_ring_t *ring, uint16_t bgid)
{
    RL_RING_CHECK(ring);
    struct rl_bufring *g = rl_group_find(ring, bgid);
    return g ? (int)g->size : -ENOENT;
}

static void rl_group_remove(ringline_ring_t *r, struct rl_bufring *g)
{
    for (unsigned i = 0; i < r->ngroups; i++) {
        if (r->groups[i] == g) {
            r->groups[i] = r->groups[--r->ngroups];
            break;
        }
    }
    if (r->last_group == g)
        r->last_group = NULL;
    rl_group_free(r, g, true);
}

int ringline_bufring_destroy(ringline_ring_t *ring, uint16_t bgid)
{
    RL_RING_CHECK(ring);
    struct rl_bufring *g = rl_group_find(ring, bgid);
    if (!g)
        return -ENOENT;
    if (g->users)
        return -EBUSY;
    rl_group_remove(ring, g);
    return 0;
}

void rl_groups_destroy_all(ringline_ring_t *r)
{
    while (r->ngroups)
        rl_group_remove(r, r->groups[r->ngroups - 1]);
    free(r->groups);
    r->groups = NULL;
    r->groups_cap = 0;
}
