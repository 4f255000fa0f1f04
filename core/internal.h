/*
 * internal.h — what the core's files share. Never installed; the bindings
 * and the loop layer above see only include/ringline.h (the loop layer, in
 * core/ too, may use this header for the ring's SQE helpers).
 */
#ifndef RINGLINE_INTERNAL_H
#define RINGLINE_INTERNAL_H

#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringline.h"

#define RL_HIDDEN __attribute__((visibility("hidden")))
#define RL_LIKELY(x) __builtin_expect(!!(x), 1)
#define RL_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Opcodes, flags and setup bits newer than liburing 2.3's headers: the
 * running kernel (6.x) has them, so ringline sets them in the SQE by hand. */
#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif

/* Reserved tokens used inside the ring layer (top byte 0xFF). */
#define RL_TOKEN_WAKE_READ RINGLINE_TOKEN_WAKE
#define RL_TOKEN_INTERNAL 0xFF00000000000002ULL /* consumed silently */

/* ---- generic handle slab: memory is never returned to malloc, so a stale
 * handle reads a dead magic number (-EBADF) instead of freed memory. Dead
 * objects are reused FIFO only after a quarantine of RL_HANDLE_QUARANTINE
 * others, which keeps stale detection working in practice. ---- */
#define RL_HANDLE_QUARANTINE 32
RL_HIDDEN void *rl_handle_alloc(size_t size, uint32_t magic);
RL_HIDDEN void rl_handle_free(void *p, size_t size);
#define RL_MAGIC_DEAD 0xDEADDEADu
#define RL_MAGIC_RING 0x52494E47u   /* "RING" */
#define RL_MAGIC_CONFIG 0x43464721u /* "CFG!" */

struct ringline_config {
    uint32_t magic;
    unsigned sq_entries;
    unsigned cq_entries;
    bool sqpoll;
    unsigned sqpoll_idle_ms;
    int sqpoll_cpu;
    bool big;
    bool single_issuer;
    bool defer_taskrun;
    /* loop options */
    unsigned max_conns;
    unsigned buf_count;
    unsigned buf_size;
    size_t send_high;
    size_t send_low;
    size_t zc_threshold;
    uint64_t idle_ms;
    bool fixed_files;
    unsigned udp_buf_count; /* 0: single-shot UDP receives */
    unsigned udp_buf_size;
};
RL_HIDDEN void rl_config_defaults(ringline_config_t *c);

/* token -> buffer group of in-flight buffer-select operations, so a
 * completion can name its group and a group in use cannot be destroyed. */
struct rl_tokmap_entry {
    uint64_t token;
    uint32_t count; /* in-flight operations with this token; 0 = empty */
    uint16_t bgid;
};
#define RL_TOKMAP_FBITS 4096
struct rl_tokmap {
    struct rl_tokmap_entry *slots;
    unsigned cap; /* power of two or 0 */
    unsigned used;
    /* a filter in front of the table (tokmap.c): bit rl_tokmap_fhash(t)
     * is set while an entry hashing there exists, fcount[bit] counts them */
    uint32_t *fcount;
    uint64_t fbits[RL_TOKMAP_FBITS / 64];
};
/* Fibonacci hashing: the top 12 bits of token * 2^64/phi. */
static inline unsigned rl_tokmap_fhash(uint64_t token)
{
    return (unsigned)((token * 0x9E3779B97F4A7C15ULL) >> 52);
}
/* false: token is certainly not in the map (the common answer, so it is
 * inline); true: look it up. */
static inline bool rl_tokmap_may_hold(const struct rl_tokmap *m,
                                      uint64_t token)
{
    if (!m->used)
        return false;
    unsigned h = rl_tokmap_fhash(token);
    return (m->fbits[h >> 6] >> (h & 63)) & 1;
}

struct rl_bufring {
    uint16_t bgid;
    unsigned count;
    unsigned size;
    unsigned mask;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *mem;
    size_t mem_bytes;
    uint64_t *kernel_owned; /* bit set: the kernel holds this buffer */
    unsigned kernel_count;
    unsigned users; /* in-flight operations selecting from this group */
};

struct ringline_ring {
    uint32_t magic;
    struct io_uring ring;
    unsigned sq_entries;
    unsigned cq_entries;
    unsigned setup_flags; /* what the kernel accepted */
    unsigned enter_flags; /* IORING_ENTER_REGISTERED_RING when registered */
    int enter_fd;
    bool big;
    uint64_t features;

    /* accounting: user operations vs ringline's own */
    int inflight;
    int internal_inflight;

    /* the SQE queued last, while it is still unsubmitted */
    struct io_uring_sqe *last_sqe;

    /* linked chain in progress */
    unsigned chain_left;
    uint8_t chain_flag;

    /* one timespec per SQ slot: the kernel copies it when it consumes the
     * SQE, and the slot cannot be reused before that */
    struct __kernel_timespec *ts;

    /* cross-thread wake-up: eventfd read armed with RL_TOKEN_WAKE_READ */
    int wake_fd;
    uint64_t wake_buf;
    bool wake_armed;
    bool closing; /* destroy in progress: re-arm nothing */

    struct rl_tokmap tokmap;
    struct rl_bufring **groups;
    unsigned ngroups;
    unsigned groups_cap;
    struct rl_bufring *last_group; /* lookup cache */

    /* fixed files */
    unsigned files_total;
    unsigned files_auto;
    uint64_t *files_used; /* bitmap over the caller-managed range */
    unsigned files_next;
    unsigned buffers_registered;
};

/* Validate a ring handle: -EBADF for NULL, destroyed or foreign pointers. */
#define RL_RING_CHECK(r)                                                       \
    do {                                                                       \
        if (RL_UNLIKELY(!(r) || (r)->magic != RL_MAGIC_RING))                  \
            return -EBADF;                                                     \
    } while (0)

/* ---- submission (submit.c) ---- */
/* Get a free SQE, submitting queued ones first if the SQ is full. On failure
 * *err is set to -errno and NULL returned. The SQE is zeroed (64 or 128
 * bytes). */
RL_HIDDEN struct io_uring_sqe *rl_get_sqe(ringline_ring_t *r, int *err);
/* The same for operations prepared with a liburing helper built on
 * io_uring_prep_rw (send, sendmsg, recv, ...): that helper writes every
 * field of a 64-byte SQE but user_data, which the commit writes, so the
 * SQE is not zeroed first (the memset was ~20 instructions per send).
 * 128-byte SQEs are still zeroed: prep_rw leaves their second half. */
static inline struct io_uring_sqe *rl_get_sqe_rw(ringline_ring_t *r,
                                                 int *err)
{
    if (RL_LIKELY(!r->big)) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        if (RL_LIKELY(sqe != NULL))
            return sqe;
    }
    return rl_get_sqe(r, err);
}
/* Finish an SQE: set its token, apply the open chain's link flag, count it
 * in flight. Inline with rl_sqe_set_fd: both run for every operation. */
static inline void rl_commit_sqe(ringline_ring_t *r, struct io_uring_sqe *sqe,
                                 uint64_t token)
{
    sqe->user_data = token;
    if (RL_UNLIKELY(r->chain_left) && --r->chain_left)
        sqe->flags |= r->chain_flag;
    r->last_sqe = sqe;
    r->inflight++;
}
/* The same for ringline's own operations (not counted as the caller's). */
RL_HIDDEN void rl_commit_internal_sqe(ringline_ring_t *r,
                                      struct io_uring_sqe *sqe,
                                      uint64_t token);
/* -EINVAL for a reserved token. Inline: every operation checks it. */
static inline int rl_check_token(uint64_t token)
{
    uint64_t top = token & RINGLINE_TOKEN_RESERVED_MASK;
    /* 0xFF.. is ringline's own, 0xFE.. marks msg_ring deliveries: a caller
     * token there would be mistaken for either. */
    if (RL_UNLIKELY(top == RINGLINE_TOKEN_RESERVED ||
                    top == RINGLINE_TOKEN_MSG_TAG))
        return -EINVAL;
    return 0;
}
/* Point sqe at fd: plain, or a fixed slot (sets IOSQE_FIXED_FILE).
 * -EBADF for negative fds. */
RL_HIDDEN int rl_check_fd(int fd);
static inline void rl_sqe_set_fd(struct io_uring_sqe *sqe, int fd)
{
    if (fd & RINGLINE_FIXED_BIT) {
        sqe->fd = (int)RINGLINE_FIXED_SLOT(fd);
        sqe->flags |= IOSQE_FIXED_FILE;
    } else {
        sqe->fd = fd;
    }
}
/* The ring-owned timespec for this SQE's slot. */
RL_HIDDEN struct __kernel_timespec *rl_sqe_timespec(ringline_ring_t *r,
                                                    struct io_uring_sqe *sqe);
/* Flush the SQ tail and enter the kernel. */
RL_HIDDEN int rl_enter(ringline_ring_t *r, unsigned wait_nr,
                       int64_t timeout_ns, bool getevents);

/* The common head of every ringline_op_*: a live ring and a caller token. */
/* A token held by an in-flight buffer-select operation is refused
 * (-EBUSY): its final completion would otherwise be taken for that
 * operation's and release the group under the kernel. */
#define RL_OP_CHECK(r, token)                                                  \
    do {                                                                       \
        RL_RING_CHECK(r);                                                      \
        int rl__e = rl_check_token(token);                                     \
        if (rl__e)                                                             \
            return rl__e;                                                      \
        if (RL_UNLIKELY(rl_tokmap_may_hold(&(r)->tokmap, token)) &&            \
            rl_tokmap_find(&(r)->tokmap, token))                               \
            return -EBUSY;                                                     \
    } while (0)
/* RL_OP_SQE for operations prepared with io_uring_prep_rw helpers. */
#define RL_OP_SQE_RW(r, sqe)                                                   \
    do {                                                                       \
        int rl__e2 = 0;                                                        \
        (sqe) = rl_get_sqe_rw((r), &rl__e2);                                   \
        if (!(sqe))                                                            \
            return rl__e2;                                                     \
    } while (0)
/* Take an SQE or return the error; after all argument checks. */
#define RL_OP_SQE(r, sqe)                                                      \
    do {                                                                       \
        int rl__e2 = 0;                                                        \
        (sqe) = rl_get_sqe((r), &rl__e2);                                      \
        if (!(sqe))                                                            \
            return rl__e2;                                                     \
    } while (0)
/* Lengths travel in 32-bit SQE fields. */
#define RL_MAX_LEN 0x7FFFF000u

/* ---- harvest.c ---- */
/* flush_taskrun: also run deferred task work when the CQ looks empty
 * (callers about to wait with GETEVENTS need not). */
RL_HIDDEN int rl_harvest(ringline_ring_t *r, ringline_cqe_t *out,
                         unsigned max, bool flush_taskrun);

/* ---- wake.c ---- */
RL_HIDDEN int rl_wake_init(ringline_ring_t *r);
RL_HIDDEN int rl_wake_arm(ringline_ring_t *r);
RL_HIDDEN void rl_wake_fini(ringline_ring_t *r);

/* ---- tokmap.c ---- */
RL_HIDDEN int rl_tokmap_add(struct rl_tokmap *m, uint64_t token,
                            uint16_t bgid);
RL_HIDDEN struct rl_tokmap_entry *rl_tokmap_find(struct rl_tokmap *m,
                                                 uint64_t token);
RL_HIDDEN void rl_tokmap_drop(struct rl_tokmap *m,
                              struct rl_tokmap_entry *e);
RL_HIDDEN void rl_tokmap_free(struct rl_tokmap *m);

/* ---- bufring.c ---- */
RL_HIDDEN struct rl_bufring *rl_group_find(ringline_ring_t *r, uint16_t bgid);
/* Register an operation selecting from bgid under token (before its SQE is
 * taken). */
RL_HIDDEN int rl_group_use(ringline_ring_t *r, uint16_t bgid, uint64_t token);
/* Undo rl_group_use when the SQE could not be queued. */
RL_HIDDEN void rl_group_unuse(ringline_ring_t *r, uint64_t token);
/* A completion handed buffer bid of g to the caller. */
RL_HIDDEN void rl_group_taken(struct rl_bufring *g, uint16_t bid);
RL_HIDDEN void rl_groups_destroy_all(ringline_ring_t *r);

/* ---- files.c ---- */
RL_HIDDEN void rl_files_fini(ringline_ring_t *r);
RL_HIDDEN void rl_raise_nofile(unsigned need);

/* ---- probe.c ---- */
/* Kernel-wide capabilities, probed once per process on a scratch ring. */
RL_HIDDEN uint64_t rl_probe_kernel(void);

#endif
