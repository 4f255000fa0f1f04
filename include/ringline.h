/*
 * ringline.h — the one public header of libringline.
 *
 * libringline makes Linux io_uring usable from C and from scripting languages
 * (Lua, Python) through a stable C ABI:
 *
 *   - opaque handles only (ringline_ring_t, ringline_config_t); the one fixed
 *     struct layout is the completion record ringline_cqe_t (and the NVMe
 *     command record, which mirrors the kernel's);
 *   - every int-returning function returns >= 0 on success or -errno, never
 *     touches the global errno as its way of reporting, and never aborts,
 *     whatever it is given (NULL, destroyed handles, absurd sizes);
 *   - no static inline functions: every entry point is an exported symbol, so
 *     FFI layers (cffi, LuaJIT, ...) can call all of it.
 *
 * Thread rules: a ring belongs to the thread that created it. Every function
 * taking a ringline_ring_t must be called from that thread, except
 * ringline_ring_wake(), which any thread may call at any time while the ring
 * exists. Distinct rings may be used concurrently from distinct threads.
 *
 * Tokens: every operation carries a caller-chosen 64-bit token that comes back
 * in its completion(s). Tokens whose top byte is 0xFF are reserved for
 * ringline itself (RINGLINE_TOKEN_RESERVED), and those whose top byte is
 * 0xFE mark msg_ring deliveries (RINGLINE_TOKEN_IS_MSG): operations refuse
 * both with -EINVAL, so any token below 2^56 is the caller's to choose.
 *
 * A token used by an in-flight buffer-select operation (recv_select,
 * recv_multishot) belongs to it until its final completion: other
 * operations are refused that token with -EBUSY (buffer-select operations
 * on the same group may share it).
 *
 * Fixed files: an fd argument is either a plain file descriptor (>= 0) or a
 * slot of the ring's fixed-file table written as RINGLINE_FIXED(slot).
 *
 * Full reference: docs/c-api.md. Lifetimes: docs/lifetimes.md.
 */
#ifndef RINGLINE_H
#define RINGLINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RINGLINE_BUILDING) && defined(__GNUC__)
#define RINGLINE_API __attribute__((visibility("default")))
#else
#define RINGLINE_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

/* Versions with the same major number are ABI compatible: symbols are only
 * ever added (each release gets a new node in the symbol map), never changed. */
#define RINGLINE_VERSION_MAJOR 0
#define RINGLINE_VERSION_MINOR 1
#define RINGLINE_VERSION_PATCH 0
#define RINGLINE_VERSION_HEX                                                   \
    ((RINGLINE_VERSION_MAJOR << 16) | (RINGLINE_VERSION_MINOR << 8) |          \
     RINGLINE_VERSION_PATCH)

/* The version of the library actually loaded, as RINGLINE_VERSION_HEX. */
RINGLINE_API unsigned ringline_version(void);
/* The same as "MAJOR.MINOR.PATCH". Static storage; never NULL. */
RINGLINE_API const char *ringline_version_string(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Human-readable text for an error code; accepts errno or -errno.
 * Static storage, never NULL, thread-safe. */
RINGLINE_API const char *ringline_strerror(int err);
/* Symbolic name such as "ECONNRESET" for errno or -errno; "EUNKNOWN" for
 * codes it does not know. Static storage, never NULL, thread-safe. */
RINGLINE_API const char *ringline_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Tokens and fixed-file descriptors                                        */
/* ------------------------------------------------------------------------ */

#define RINGLINE_TOKEN_RESERVED_MASK 0xFF00000000000000ULL
#define RINGLINE_TOKEN_RESERVED 0xFF00000000000000ULL
/* The completion a ringline_ring_wake() produces carries this token. */
#define RINGLINE_TOKEN_WAKE 0xFF00000000000001ULL
/* msg_ring deliveries carry 0xFE in the top byte and the sender's 56-bit
 * payload below it. */
#define RINGLINE_TOKEN_MSG_TAG 0xFE00000000000000ULL
#define RINGLINE_TOKEN_IS_MSG(t)                                               \
    (((uint64_t)(t) & RINGLINE_TOKEN_RESERVED_MASK) == RINGLINE_TOKEN_MSG_TAG)
#define RINGLINE_TOKEN_MSG_PAYLOAD(t) ((uint64_t)(t) & 0x00FFFFFFFFFFFFFFULL)

/* A fixed-file slot passed where an fd is expected. Plain fds never have
 * bit 30 set (the kernel caps descriptors far below 2^30). */
#define RINGLINE_FIXED_BIT 0x40000000
#define RINGLINE_FIXED(slot) ((int)((unsigned)(slot) | RINGLINE_FIXED_BIT))
#define RINGLINE_IS_FIXED(fd) ((fd) >= 0 && ((fd) & RINGLINE_FIXED_BIT))
#define RINGLINE_FIXED_SLOT(fd) ((unsigned)(fd) & ~(unsigned)RINGLINE_FIXED_BIT)

/* For "direct" operations (accept, openat): let the kernel pick a free slot
 * in the table's auto-allocation range; the chosen slot is the result. */
#define RINGLINE_FILE_ALLOC 0xFFFFFFFFu
/* For "direct" operations: do not install into the table (plain fd result). */
#define RINGLINE_NO_SLOT 0xFFFFFFFEu

/* ------------------------------------------------------------------------ */
/* The completion record                                                    */
/* ------------------------------------------------------------------------ */

/* Flags in ringline_cqe_t.flags. These are the kernel's IORING_CQE_F_* bits
 * (bits 0-15 only; the buffer id is moved to .bid). */
#define RINGLINE_CQE_F_BUFFER 0x1u   /* .bgid/.bid name a provided buffer */
#define RINGLINE_CQE_F_MORE 0x2u     /* more completions follow for the op */
#define RINGLINE_CQE_F_SOCK_NONEMPTY 0x4u
#define RINGLINE_CQE_F_NOTIF 0x8u    /* zero-copy notification: buffer free */
#define RINGLINE_CQE_F_BUF_MORE 0x10u /* incremental buffer stays with kernel */

/*
 * One completion, 40 bytes, fixed layout (part of the ABI):
 *   token  the token given when the operation was queued
 *   res    the result: >= 0 success (bytes, fd, slot, ...), < 0 -errno;
 *          for NVMe passthrough > 0 is an NVMe status (see nvme section)
 *   flags  RINGLINE_CQE_F_*
 *   bgid   buffer group of the provided buffer, when F_BUFFER is set
 *   bid    buffer id of the provided buffer, when F_BUFFER is set
 *   big    the extra 16 bytes of a 32-byte CQE (CQE32 rings; NVMe result
 *          dwords), zero otherwise
 */
typedef struct ringline_cqe {
    uint64_t token;
    int32_t res;
    uint32_t flags;
    uint16_t bgid;
    uint16_t bid;
    uint32_t reserved;
    uint64_t big[2];
} ringline_cqe_t;

/* ------------------------------------------------------------------------ */
/* Ring configuration (setters over an opaque object: extensible without    */
/* breaking the ABI)                                                        */
/* ------------------------------------------------------------------------ */

typedef struct ringline_config ringline_config_t;
typedef struct ringline_ring ringline_ring_t;

/* Defaults: 256 SQ entries, CQ = 4 x SQ, COOP_TASKRUN + SINGLE_ISSUER +
 * DEFER_TASKRUN (each dropped if the kernel refuses it), no SQPOLL,
 * 64-byte SQEs and 16-byte CQEs. */
RINGLINE_API int ringline_config_new(ringline_config_t **out);
RINGLINE_API int ringline_config_free(ringline_config_t *cfg);
/* 1..32768, rounded up to a power of two by the kernel. */
RINGLINE_API int ringline_config_set_sq_entries(ringline_config_t *cfg,
                                                unsigned entries);
/* 0 = 4 x SQ (the default); otherwise >= SQ entries, <= 65536. */
RINGLINE_API int ringline_config_set_cq_entries(ringline_config_t *cfg,
                                                unsigned entries);
/* Kernel-side submission polling. idle_ms: thread idle time before sleeping;
 * cpu: pin the poll thread to this CPU, or -1. SQPOLL excludes
 * DEFER_TASKRUN and COOP_TASKRUN (the kernel refuses both with it), so
 * enabling it drops those. */
RINGLINE_API int ringline_config_set_sqpoll(ringline_config_t *cfg, int on,
                                            unsigned idle_ms, int cpu);
/* 128-byte SQEs + 32-byte CQEs, required for NVMe passthrough. */
RINGLINE_API int ringline_config_set_big(ringline_config_t *cfg, int on);
/* on=0 turns off SINGLE_ISSUER and DEFER_TASKRUN (for rings submitted to
 * from more than one thread under the caller's own lock). */
RINGLINE_API int ringline_config_set_single_issuer(ringline_config_t *cfg,
                                                   int on);
/* on=0 keeps SINGLE_ISSUER but turns off DEFER_TASKRUN. */
RINGLINE_API int ringline_config_set_defer_taskrun(ringline_config_t *cfg,
                                                   int on);

/* ------------------------------------------------------------------------ */
/* Rings                                                                    */
/* ------------------------------------------------------------------------ */

/* Create a ring; cfg may be NULL for the defaults. Flags the kernel refuses
 * (EINVAL) are dropped one by one in the order DEFER_TASKRUN, SINGLE_ISSUER,
 * COOP_TASKRUN, SUBMIT_ALL; SQPOLL and big SQE/CQE are never silently
 * dropped (creation fails instead). */
RINGLINE_API int ringline_ring_new(const ringline_config_t *cfg,
                                   ringline_ring_t **out);
/* Cancel every operation, wait (bounded, about 3 s) for their final completions so
 * no kernel write can land in freed memory, unregister buffer rings and
 * files, unmap and close. The handle is invalid afterwards; using it gives
 * -EBADF for as long as its memory has not been reused by a later ring.
 * Returns 0, or -ETIMEDOUT if some operation refused to finish (the ring is
 * still torn down). */
RINGLINE_API int ringline_ring_destroy(ringline_ring_t *ring);

/* The io_uring file descriptor (for epoll integration or msg_ring). */
RINGLINE_API int ringline_ring_fd(ringline_ring_t *ring);
/* Number of SQ / CQ entries actually granted. */
RINGLINE_API int ringline_ring_sq_entries(ringline_ring_t *ring);
RINGLINE_API int ringline_ring_cq_entries(ringline_ring_t *ring);
/* Operations queued or submitted whose final completion has not yet been
 * harvested. */
RINGLINE_API int ringline_ring_inflight(ringline_ring_t *ring);
/* SQEs queued but not yet submitted. */
RINGLINE_API int ringline_ring_sq_pending(ringline_ring_t *ring);

/* Feature bits reported by ringline_ring_features(). Setup bits say what
 * this ring was really created with; the others come from probing the
 * running kernel (opcode probe plus trial operations), never from uname. */
#define RINGLINE_FEAT_COOP_TASKRUN (1ULL << 0)
#define RINGLINE_FEAT_SINGLE_ISSUER (1ULL << 1)
#define RINGLINE_FEAT_DEFER_TASKRUN (1ULL << 2)
#define RINGLINE_FEAT_SQPOLL (1ULL << 3)
#define RINGLINE_FEAT_BIG_SQE_CQE (1ULL << 4)
#define RINGLINE_FEAT_NODROP (1ULL << 5)
#define RINGLINE_FEAT_EXT_ARG (1ULL << 6)
#define RINGLINE_FEAT_FAST_POLL (1ULL << 7)
#define RINGLINE_FEAT_BUF_RING (1ULL << 8)
#define RINGLINE_FEAT_RECV_MULTISHOT (1ULL << 9)
#define RINGLINE_FEAT_ACCEPT_MULTISHOT (1ULL << 10)
#define RINGLINE_FEAT_SEND_ZC (1ULL << 11)
#define RINGLINE_FEAT_SENDMSG_ZC (1ULL << 12)
#define RINGLINE_FEAT_URING_CMD (1ULL << 13)
#define RINGLINE_FEAT_MSG_RING (1ULL << 14)
#define RINGLINE_FEAT_TIMEOUT_MULTISHOT (1ULL << 15)
#define RINGLINE_FEAT_SPARSE_FILES (1ULL << 16)
#define RINGLINE_FEAT_FILE_ALLOC_RANGE (1ULL << 17)
#define RINGLINE_FEAT_SYNC_CANCEL (1ULL << 18)
#define RINGLINE_FEAT_RECVSEND_BUNDLE (1ULL << 19)
#define RINGLINE_FEAT_BUF_RING_INC (1ULL << 20)
#define RINGLINE_FEAT_SOCKET (1ULL << 21)
#define RINGLINE_FEAT_POLL_MULTISHOT (1ULL << 22)

RINGLINE_API int ringline_ring_features(ringline_ring_t *ring, uint64_t *out);
/* 1 if the kernel supports io_uring opcode `op` (IORING_OP_* number), 0 if
 * not, -EINVAL for numbers beyond what the kernel reports. */
RINGLINE_API int ringline_ring_opcode_supported(ringline_ring_t *ring,
                                                unsigned op);
/* Name of a feature bit ("defer_taskrun", ...); NULL for unknown bits. */
RINGLINE_API const char *ringline_feature_name(uint64_t bit);

/* ------------------------------------------------------------------------ */
/* Submitting and harvesting                                                */
/* ------------------------------------------------------------------------ */

/* Submit queued SQEs. Returns the number submitted, or -errno. */
RINGLINE_API int ringline_ring_submit(ringline_ring_t *ring);

/* Submit queued SQEs and wait until at least wait_nr completions are ready
 * or timeout_ns nanoseconds pass (timeout_ns < 0: no limit; 0: do not wait).
 * Returns the number of SQEs submitted (>= 0). A timeout is not an error
 * (returns the count). A signal arriving before anything was submitted or
 * completed gives -EINTR, which is not fatal: call again. A CQ overflow
 * backlog (EBUSY) is flushed and reported as success: harvest, then call
 * again. */
RINGLINE_API int ringline_ring_submit_and_wait(ringline_ring_t *ring,
                                               unsigned wait_nr,
                                               int64_t timeout_ns);

/* Copy up to max ready completions into out[] and advance the CQ once.
 * Overflowed completions (kept by the kernel under NODROP) and deferred task
 * work are flushed first, so none is lost. Internal completions (reserved
 * tokens other than RINGLINE_TOKEN_WAKE) are consumed and not returned.
 * Provided-buffer completions fill .bgid/.bid and hand that buffer to the
 * caller until ringline_bufring_return(). Returns the number copied. */
RINGLINE_API int ringline_ring_harvest(ringline_ring_t *ring,
                                       ringline_cqe_t *out, unsigned max);

/* submit_and_wait(wait_nr, timeout_ns) followed by harvest(out, max), in one
 * call: one language-boundary crossing per loop iteration. Returns the
 * number of completions copied (>= 0) or -errno (-EINTR as above). */
RINGLINE_API int ringline_ring_reap(ringline_ring_t *ring, ringline_cqe_t *out,
                                    unsigned max, unsigned wait_nr,
                                    int64_t timeout_ns);

/* Wake the ring from any thread: a completion with token RINGLINE_TOKEN_WAKE
 * is posted (several wakes before a harvest may merge into one). The only
 * function that may be called from a thread other than the ring's owner. */
RINGLINE_API int ringline_ring_wake(ringline_ring_t *ring);

/* ------------------------------------------------------------------------ */
/* Operations. Each queues one SQE (submitting first if the SQ is full) and */
/* returns 0 or -errno. Memory passed in must stay valid until the          */
/* operation's final completion (one without F_MORE; for zero-copy sends    */
/* the F_NOTIF one) unless the function says otherwise.                     */
/* ------------------------------------------------------------------------ */

/* SQE flags for ringline_op_set_flags(); the kernel's IOSQE_* values. */
#define RINGLINE_SQE_IO_DRAIN 0x02u
#define RINGLINE_SQE_IO_LINK 0x04u
#define RINGLINE_SQE_IO_HARDLINK 0x08u
#define RINGLINE_SQE_ASYNC 0x10u
/* Add flags to the SQE queued last (before it is submitted). Only the flags
 * above are accepted; CQE_SKIP_SUCCESS is refused because it hides short
 * sends and breaks in-flight accounting. -EALREADY if the last SQE was
 * already submitted. */
RINGLINE_API int ringline_op_set_flags(ringline_ring_t *ring, unsigned flags);

RINGLINE_API int ringline_op_nop(ringline_ring_t *ring, uint64_t token);

/* accept modes */
#define RINGLINE_ACCEPT_MULTISHOT 0x1u /* keep accepting: F_MORE completions */
#define RINGLINE_ACCEPT_DIRECT 0x2u    /* install into the fixed-file table */
/* Accept on listening socket fd. addr/addrlen may be NULL (must be NULL for
 * multishot). sock_flags: SOCK_NONBLOCK / SOCK_CLOEXEC (not CLOEXEC with
 * DIRECT: table entries have no such flag). Without DIRECT the result is
 * the new fd. With DIRECT, slot is either a table slot (result 0 on
 * success) or RINGLINE_FILE_ALLOC (required with MULTISHOT; the result is
 * the slot the kernel picked). */
RINGLINE_API int ringline_op_accept(ringline_ring_t *ring, int fd,
                                    struct sockaddr *addr, socklen_t *addrlen,
                                    int sock_flags, unsigned mode,
                                    unsigned slot, uint64_t token);
RINGLINE_API int ringline_op_connect(ringline_ring_t *ring, int fd,
                                     const struct sockaddr *addr,
                                     socklen_t addrlen, uint64_t token);
/* recv into caller memory. */
RINGLINE_API int ringline_op_recv(ringline_ring_t *ring, int fd, void *buf,
                                  size_t len, int msg_flags, uint64_t token);
/* One recv into a buffer the kernel picks from group bgid (len 0: the whole
 * buffer). */
RINGLINE_API int ringline_op_recv_select(ringline_ring_t *ring, int fd,
                                         uint16_t bgid, size_t len,
                                         int msg_flags, uint64_t token);
/* Multishot recv into group bgid: one completion per chunk, F_MORE while it
 * stays armed. It ends (no F_MORE) with res 0 (EOF), -ENOBUFS (the group ran
 * dry: return buffers, then re-arm; no data is lost), another error, or a
 * last data completion (the kernel may stop a multishot, e.g. when the CQ
 * overflows): re-arm to go on. */
RINGLINE_API int ringline_op_recv_multishot(ringline_ring_t *ring, int fd,
                                            uint16_t bgid, int msg_flags,
                                            uint64_t token);
RINGLINE_API int ringline_op_send(ringline_ring_t *ring, int fd,
                                  const void *buf, size_t len, int msg_flags,
                                  uint64_t token);
/* Zero-copy send: a result completion (F_MORE set when a notification will
 * follow) and then an F_NOTIF completion; buf may be reused only after the
 * notification. */
RINGLINE_API int ringline_op_send_zc(ringline_ring_t *ring, int fd,
                                     const void *buf, size_t len,
                                     int msg_flags, uint64_t token);
/* msg, its iovecs, name and control must live until the final completion. */
RINGLINE_API int ringline_op_sendmsg(ringline_ring_t *ring, int fd,
                                     const struct msghdr *msg, int msg_flags,
                                     uint64_t token);
RINGLINE_API int ringline_op_sendmsg_zc(ringline_ring_t *ring, int fd,
                                        const struct msghdr *msg,
                                        int msg_flags, uint64_t token);
RINGLINE_API int ringline_op_recvmsg(ringline_ring_t *ring, int fd,
                                     struct msghdr *msg, int msg_flags,
                                     uint64_t token);
/* A plain fd is closed like close(2); RINGLINE_FIXED(slot) empties the slot
 * (the slot's allocator reservation is released by ringline_files_release
 * once the completion arrives). */
RINGLINE_API int ringline_op_close(ringline_ring_t *ring, int fd,
                                   uint64_t token);
RINGLINE_API int ringline_op_shutdown(ringline_ring_t *ring, int fd, int how,
                                      uint64_t token);

/* Timeout flags */
#define RINGLINE_TIMEOUT_ABS 0x1u       /* ns is CLOCK_MONOTONIC absolute */
#define RINGLINE_TIMEOUT_REALTIME 0x2u  /* with ABS: CLOCK_REALTIME */
#define RINGLINE_TIMEOUT_BOOTTIME 0x4u  /* with ABS: CLOCK_BOOTTIME */
#define RINGLINE_TIMEOUT_MULTISHOT 0x8u /* fire every ns (relative only) */
#define RINGLINE_TIMEOUT_ETIME_SUCCESS 0x10u
/* A timer. Completes with -ETIME when it fires, 0 when count other
 * completions arrived first (count 0: pure timer), -ECANCELED when removed.
 * MULTISHOT: fires every ns, count times (0 = until removed), each with
 * F_MORE but the last. The timespec is ring-owned: nothing to keep alive. */
RINGLINE_API int ringline_op_timeout(ringline_ring_t *ring, uint64_t ns,
                                     unsigned count, unsigned flags,
                                     uint64_t token);
RINGLINE_API int ringline_op_timeout_remove(ringline_ring_t *ring,
                                            uint64_t target_token,
                                            uint64_t token);
/* Re-arm the pending timeout target_token with a new ns/flags (ABS honoured). */
RINGLINE_API int ringline_op_timeout_update(ringline_ring_t *ring,
                                            uint64_t target_token, uint64_t ns,
                                            unsigned flags, uint64_t token);
/* Must be queued directly after the operation it guards, inside a chain
 * (see ringline_chain_begin): cancels that operation after ns (its
 * completion then gives -ECANCELED; this one -ETIME or -EALREADY/-ECANCELED).
 * flags: RINGLINE_TIMEOUT_ABS etc. */
RINGLINE_API int ringline_op_link_timeout(ringline_ring_t *ring, uint64_t ns,
                                          unsigned flags, uint64_t token);

/* Cancel flags */
#define RINGLINE_CANCEL_ALL 0x1u /* every match, not just the first */
#define RINGLINE_CANCEL_ANY 0x4u /* match any operation (token ignored) */
/* Cancel the operation(s) carrying target_token. Result: 0 (or the number
 * cancelled with ALL), -ENOENT nothing matched, -EALREADY already running.
 * ANY implies ALL and also matches ringline's internal wake-up read, which
 * is re-armed transparently but counted in the result. */
RINGLINE_API int ringline_op_cancel(ringline_ring_t *ring,
                                    uint64_t target_token, unsigned flags,
                                    uint64_t token);
/* Cancel operations on fd (plain or RINGLINE_FIXED). */
RINGLINE_API int ringline_op_cancel_fd(ringline_ring_t *ring, int fd,
                                       unsigned flags, uint64_t token);

RINGLINE_API int ringline_op_read(ringline_ring_t *ring, int fd, void *buf,
                                  size_t len, uint64_t offset, uint64_t token);
RINGLINE_API int ringline_op_write(ringline_ring_t *ring, int fd,
                                   const void *buf, size_t len,
                                   uint64_t offset, uint64_t token);
/* buf..buf+len must lie inside registered buffer buf_index. */
RINGLINE_API int ringline_op_read_fixed(ringline_ring_t *ring, int fd,
                                        void *buf, size_t len, uint64_t offset,
                                        unsigned buf_index, uint64_t token);
RINGLINE_API int ringline_op_write_fixed(ringline_ring_t *ring, int fd,
                                         const void *buf, size_t len,
                                         uint64_t offset, unsigned buf_index,
                                         uint64_t token);
RINGLINE_API int ringline_op_readv(ringline_ring_t *ring, int fd,
                                   const struct iovec *iov, unsigned iovcnt,
                                   uint64_t offset, uint64_t token);
RINGLINE_API int ringline_op_writev(ringline_ring_t *ring, int fd,
                                    const struct iovec *iov, unsigned iovcnt,
                                    uint64_t offset, uint64_t token);
#define RINGLINE_FSYNC_DATASYNC 0x1u
RINGLINE_API int ringline_op_fsync(ringline_ring_t *ring, int fd,
                                   unsigned flags, uint64_t token);
/* openat(2). slot: RINGLINE_NO_SLOT (the result is the new fd), a table
 * slot (result 0 on success; O_CLOEXEC is refused for table entries), or
 * RINGLINE_FILE_ALLOC (the result is the slot the kernel picked). path must
 * stay valid until the completion. */
RINGLINE_API int ringline_op_openat(ringline_ring_t *ring, int dfd,
                                    const char *path, int flags,
                                    unsigned mode, unsigned slot,
                                    uint64_t token);
/* poll for events (POLLIN, POLLOUT, ...). multishot: keep reporting. */
RINGLINE_API int ringline_op_poll(ringline_ring_t *ring, int fd,
                                  unsigned events, int multishot,
                                  uint64_t token);
RINGLINE_API int ringline_op_poll_remove(ringline_ring_t *ring,
                                         uint64_t target_token, uint64_t token);
/* Post a completion on another ring (which may belong to another thread):
 * it receives res and token RINGLINE_TOKEN_MSG_TAG | payload (56 bits). */
RINGLINE_API int ringline_op_msg_ring(ringline_ring_t *ring,
                                      ringline_ring_t *target, int32_t res,
                                      uint64_t payload, uint64_t token);

/* ------------------------------------------------------------------------ */
/* Linked chains                                                            */
/* ------------------------------------------------------------------------ */

/* Reserve n SQEs (submitting earlier ones if needed) so that the next n
 * operations go to the kernel together, each linked to the next
 * (IOSQE_IO_LINK, or IOSQE_IO_HARDLINK with hard != 0: the chain then goes
 * on after a failure): a chain is never split by an automatic submit. The
 * chain closes by itself after the n-th operation. -EBUSY while another
 * chain is open; -EINVAL for n < 2 or n > SQ entries. */
RINGLINE_API int ringline_chain_begin(ringline_ring_t *ring, unsigned n,
                                      int hard);
/* Check that the chain opened last is complete: 0 if n operations were
 * queued. Otherwise the chain is cut after the operations queued so far (the
 * last one loses its link flag, so nothing queued later joins it) and
 * -EINVAL is returned. */
RINGLINE_API int ringline_chain_end(ringline_ring_t *ring);

/* ------------------------------------------------------------------------ */
/* Provided-buffer rings                                                    */
/* ------------------------------------------------------------------------ */

/* Create buffer group bgid of count buffers (power of two, 1..32768) of
 * size bytes each (1..1 GiB), register it and hand every buffer to the
 * kernel. Memory is mapped lazily (pages are touched on demand).
 * -EEXIST if bgid is taken. */
RINGLINE_API int ringline_bufring_create(ringline_ring_t *ring, uint16_t bgid,
                                         unsigned count, unsigned size);
/* Address of buffer bid; returns its size. */
RINGLINE_API int ringline_bufring_addr(ringline_ring_t *ring, uint16_t bgid,
                                       uint16_t bid, void **out);
/* Give buffers back to the kernel in one batch (one tail update). A bid the
 * kernel already holds (a double return) fails the whole call with -EINVAL
 * and returns nothing. */
RINGLINE_API int ringline_bufring_return(ringline_ring_t *ring, uint16_t bgid,
                                         const uint16_t *bids, unsigned n);
/* Buffers currently held by the kernel (available for it to fill). */
RINGLINE_API int ringline_bufring_available(ringline_ring_t *ring,
                                            uint16_t bgid);
RINGLINE_API int ringline_bufring_count(ringline_ring_t *ring, uint16_t bgid);
RINGLINE_API int ringline_bufring_size(ringline_ring_t *ring, uint16_t bgid);
/* Unregister (first) then unmap. -EBUSY while an operation selecting from
 * this group is in flight (cancel it and harvest its final completion
 * first). Pointers obtained from ringline_bufring_addr become invalid. */
RINGLINE_API int ringline_bufring_destroy(ringline_ring_t *ring,
                                          uint16_t bgid);

/* ------------------------------------------------------------------------ */
/* Fixed files                                                              */
/* ------------------------------------------------------------------------ */

/* Register a sparse table of total slots. The last auto_count slots form the
 * kernel's allocation range (RINGLINE_FILE_ALLOC, multishot accept direct);
 * the first total - auto_count are handed out by ringline_files_alloc.
 * Raises RLIMIT_NOFILE's soft limit if the table needs it. */
RINGLINE_API int ringline_files_register(ringline_ring_t *ring, unsigned total,
                                         unsigned auto_count);
RINGLINE_API int ringline_files_unregister(ringline_ring_t *ring);
/* Reserve a free slot of the caller-managed range (for openat/accept into a
 * chosen slot). -ENFILE when none is free. */
RINGLINE_API int ringline_files_alloc(ringline_ring_t *ring);
/* Give back a reservation without touching the kernel table (after a
 * close-direct completed, or an op into the slot failed). */
RINGLINE_API int ringline_files_release(ringline_ring_t *ring, unsigned slot);
/* Install a duplicate reference to fd into a newly reserved slot and return
 * the slot. The caller may close fd afterwards. */
RINGLINE_API int ringline_files_install(ringline_ring_t *ring, int fd);
/* Point slot at fd (-1 to empty it), synchronously. */
RINGLINE_API int ringline_files_update(ringline_ring_t *ring, unsigned slot,
                                       int fd);
/* Empty slot and release its reservation (if in the caller range). */
RINGLINE_API int ringline_files_remove(ringline_ring_t *ring, unsigned slot);
RINGLINE_API int ringline_files_count(ringline_ring_t *ring);

/* ------------------------------------------------------------------------ */
/* Registered buffers and aligned memory                                    */
/* ------------------------------------------------------------------------ */

/* Register n iovecs as fixed buffers 0..n-1. The memory must stay mapped
 * until ringline_buffers_unregister or ring destruction. */
RINGLINE_API int ringline_buffers_register(ringline_ring_t *ring,
                                           const struct iovec *iov,
                                           unsigned n);
RINGLINE_API int ringline_buffers_unregister(ringline_ring_t *ring);
/* Allocate size bytes aligned to align (a power of two >= sizeof(void*);
 * 0 means the page size), zero-filled. For O_DIRECT and registered buffers. */
RINGLINE_API int ringline_aligned_alloc(size_t size, size_t align, void **out);
RINGLINE_API int ringline_aligned_free(void *p);
/* The alignment O_DIRECT needs on fd (memory and offset/length), from
 * statx(STATX_DIOALIGN) or BLKSSZGET for block devices. -EINVAL if the file
 * does not support O_DIRECT. */
RINGLINE_API int ringline_dio_alignment(int fd, unsigned *mem_align,
                                        unsigned *offset_align);

/* ------------------------------------------------------------------------ */
/* NVMe passthrough                                                         */
/* ------------------------------------------------------------------------ */

/* Mirrors the kernel's struct nvme_uring_cmd (linux/nvme_ioctl.h), 72 bytes:
 * it is copied into the 128-byte SQE, so it need not outlive the call; the
 * data buffer it points to must live until the completion. */
typedef struct ringline_nvme_cmd {
    uint8_t opcode;
    uint8_t flags;
    uint16_t rsvd1;
    uint32_t nsid;
    uint32_t cdw2;
    uint32_t cdw3;
    uint64_t metadata;
    uint64_t addr;
    uint32_t metadata_len;
    uint32_t data_len;
    uint32_t cdw10;
    uint32_t cdw11;
    uint32_t cdw12;
    uint32_t cdw13;
    uint32_t cdw14;
    uint32_t cdw15;
    uint32_t timeout_ms;
    uint32_t rsvd2;
} ringline_nvme_cmd_t;

/* The ioctl-encoded command numbers (_IOWR('N', 0x80 / 0x82, 72 bytes)). */
#define RINGLINE_NVME_URING_CMD_IO 0xC0484E80u
#define RINGLINE_NVME_URING_CMD_ADMIN 0xC0484E82u

/* NVMe opcodes used by the builders. */
#define RINGLINE_NVME_OP_FLUSH 0x00
#define RINGLINE_NVME_OP_WRITE 0x01
#define RINGLINE_NVME_OP_READ 0x02
#define RINGLINE_NVME_OP_WRITE_ZEROES 0x08
#define RINGLINE_NVME_ADMIN_IDENTIFY 0x06
#define RINGLINE_NVME_CNS_NAMESPACE 0x00
#define RINGLINE_NVME_CNS_CONTROLLER 0x01

/* Builders fill *cmd completely (zeroing what they do not set). nlb is the
 * number of logical blocks (1-based; encoded 0-based in CDW12 per the spec);
 * data_len must equal nlb * lba_size for read/write. -EINVAL on nlb 0 or
 * > 65536, or a NULL cmd. */
RINGLINE_API int ringline_nvme_cmd_read(ringline_nvme_cmd_t *cmd,
                                        uint32_t nsid, uint64_t slba,
                                        uint32_t nlb, void *buf,
                                        uint32_t data_len);
RINGLINE_API int ringline_nvme_cmd_write(ringline_nvme_cmd_t *cmd,
                                         uint32_t nsid, uint64_t slba,
                                         uint32_t nlb, const void *buf,
                                         uint32_t data_len);
RINGLINE_API int ringline_nvme_cmd_flush(ringline_nvme_cmd_t *cmd,
                                         uint32_t nsid);
RINGLINE_API int ringline_nvme_cmd_write_zeroes(ringline_nvme_cmd_t *cmd,
                                                uint32_t nsid, uint64_t slba,
                                                uint32_t nlb);
/* The checked read (write = 0) / write (write != 0): the plain builders
 * cannot know the LBA size, so they cannot check data_len against nlb and a
 * short buffer lets the device transfer past its end; given lba_size (from
 * ringline_nvme_ns_geometry) this one refuses (-EINVAL) any data_len other
 * than nlb * lba_size and LBA sizes that are not a power of two >= 512. */
RINGLINE_API int ringline_nvme_cmd_rw_lba(ringline_nvme_cmd_t *cmd, int write,
                                          uint32_t nsid, uint64_t slba,
                                          uint32_t nlb, uint32_t lba_size,
                                          void *buf, uint32_t data_len);
/* Identify (admin): cns RINGLINE_NVME_CNS_*; buf must hold 4096 bytes. */
RINGLINE_API int ringline_nvme_cmd_identify(ringline_nvme_cmd_t *cmd,
                                            uint32_t nsid, uint32_t cns,
                                            void *buf);
/* Queue an NVMe command on a big-SQE ring (-EINVAL otherwise). I/O
 * commands go to the namespace's generic char device (/dev/ngXnY); admin
 * commands (admin != 0: RINGLINE_NVME_URING_CMD_ADMIN, e.g. Identify) to
 * the controller's (/dev/nvmeX) — /dev/ngXnY answers those with -ENOTTY.
 * fd is plain or fixed. Completion: res 0 success; res > 0 the NVMe status
 * field without its phase bit: SC = res & 0xFF, SCT = (res >> 8) & 7, plus
 * More (0x2000) and Do Not Retry (0x4000) — an LBA out of range is 0x4080;
 * res < 0 -errno. big[0] holds the command's result dword(s). */
RINGLINE_API int ringline_op_nvme(ringline_ring_t *ring, int fd,
                                  const ringline_nvme_cmd_t *cmd, int admin,
                                  uint64_t token);


/* ======================================================================== */
/* Framers: pure functions over bytes (no I/O), used by the loop's FRAMED   */
/* mode and callable directly.                                              */
/* ======================================================================== */

#define RINGLINE_FRAMER_LINE 1      /* up to '\n'; payload drops "\r\n"/"\n" */
#define RINGLINE_FRAMER_U16BE 2     /* 2-byte big-endian length, then payload */
#define RINGLINE_FRAMER_U32BE 3     /* 4-byte big-endian length, then payload */
#define RINGLINE_FRAMER_RESP 4      /* one complete RESP value (or inline cmd) */
#define RINGLINE_FRAMER_HTTP_HEAD 5 /* HTTP/1.x head through CRLFCRLF, plus a
                                     * Content-Length body if one is declared */

/* Look for the first complete frame of kind `framer` in buf[0..len).
 * Returns 1 and fills *frame_len (bytes the frame occupies, to consume),
 * *payload_off and *payload_len (the payload inside it); 0 if more bytes
 * are needed; -EMSGSIZE if the frame is or would be larger than max_frame
 * (0: no limit beyond 1 GiB); -EPROTO if the bytes cannot be this framing;
 * -EINVAL for an unknown framer or NULL pointers. For HTTP_HEAD the payload
 * is the head (request line and headers, without the blank line) and any
 * body follows it inside the frame; chunked bodies give -EPROTO. */
RINGLINE_API int ringline_frame(int framer, const void *buf, size_t len,
                                size_t max_frame, size_t *frame_len,
                                size_t *payload_off, size_t *payload_len);

/* Parse a complete RESP command (an array of bulk strings, or an inline
 * command line) at the start of buf. Returns the argument count (>= 0) and
 * fills offs[i]/lens[i] with each argument's position in buf, for up to
 * max_args arguments (-E2BIG beyond); *frame_len gets the bytes consumed.
 * 0 with *frame_len 0 means incomplete; -EPROTO malformed; -EMSGSIZE for
 * a command that would exceed 1 GiB. */
RINGLINE_API int ringline_resp_parse_command(const void *buf, size_t len,
                                             uint32_t *offs, uint32_t *lens,
                                             unsigned max_args,
                                             size_t *frame_len);

/* ======================================================================== */
/* The event loop: connections, listeners, UDP, timers, signals.            */
/*                                                                          */
/* A loop owns one ring and a table of objects addressed by 64-bit ids that */
/* carry a generation: a stale id (closed object, reused slot) gives        */
/* -EBADF, never another object. Scripts call ringline_loop_poll() to get a */
/* batch of events; hot paths (echo, forward, framing) run inside the loop  */
/* without producing events for every byte. Thread rules are the ring's: a  */
/* loop belongs to the thread that created it; ringline_loop_wake() is the  */
/* only call allowed from other threads.                                    */
/* ======================================================================== */

typedef struct ringline_loop ringline_loop_t;
typedef uint64_t ringline_id_t; /* 0 is never a valid id */

/* Loop options, set on the same config object as the ring's. */
/* Maximum simultaneous connections (default 4096, at most 1M); sizes the
 * connection table (lazily touched) and raises RLIMIT_NOFILE to match. A
 * loop also has up to 64 listeners and 64 UDP sockets. */
RINGLINE_API int ringline_config_set_max_conns(ringline_config_t *cfg,
                                               unsigned n);
/* Receive buffers shared by all connections: count (power of two, default
 * 256) of size bytes (default 64 KiB). The default was picked by measuring
 * (BENCHMARKS.md): against 1024 x 16 KiB, the same 16 MiB of address space
 * (touched as used) cost 9-14 % less server CPU per 64 KiB message and the
 * same for small ones. */
RINGLINE_API int ringline_config_set_recv_buffers(ringline_config_t *cfg,
                                                  unsigned count,
                                                  unsigned size);
/* Per-connection send-queue limits: above high bytes queued, receiving is
 * paused (and ringline_conn_send keeps accepting, so scripts see the
 * pressure through ringline_conn_queued and WRITABLE events); below low it
 * resumes. Defaults 1 MiB / 256 KiB. */
RINGLINE_API int ringline_config_set_send_limits(ringline_config_t *cfg,
                                                 size_t high, size_t low);
/* Sends from caller memory of at least this many bytes go zero-copy
 * (SEND_ZC); 0 disables zero-copy. Default 16 KiB. */
RINGLINE_API int ringline_config_set_zc_threshold(ringline_config_t *cfg,
                                                  size_t bytes);
/* on != 0: accepted connections live in the ring's fixed-file table
 * (multishot accept straight into kernel-picked slots, sized by
 * max_conns), which saves a file lookup per operation. Such connections
 * have no plain descriptor: ringline_conn_peer gives -EOPNOTSUPP, and an
 * abort that drops queued bytes ends with FIN rather than RST. Outbound
 * (ringline_connect) connections keep plain descriptors. Default off. */
RINGLINE_API int ringline_config_set_fixed_files(ringline_config_t *cfg,
                                                 int on);
/* Close connections idle (nothing received or sent) for ms; 0 = never. */
RINGLINE_API int ringline_config_set_idle_timeout(ringline_config_t *cfg,
                                                  uint64_t ms);
/* The loop's UDP receive buffers: one provided-buffer group of count
 * (power of two <= 32768) buffers of size bytes (64 .. 1 MiB), shared by
 * the loop's UDP sockets, each armed with one multishot recvmsg, so a burst
 * arrives as many DATAGRAM events per poll. A buffer holds a 48-byte header
 * and the sender's address before the payload: datagrams longer than
 * size - 48 are truncated and reported (DATAGRAM res -EMSGSIZE, tag = full
 * length). count 0: one single-shot receive per socket per poll into a
 * private 64 KiB buffer (the behaviour of kernels without multishot
 * recvmsg). Default 64 x 69632 (every datagram fits; buffers are touched
 * lazily, so a small datagram costs one page). -EINVAL otherwise. */
RINGLINE_API int ringline_config_set_udp_buffers(ringline_config_t *cfg,
                                                 unsigned count,
                                                 unsigned size);

RINGLINE_API int ringline_loop_new(const ringline_config_t *cfg,
                                   ringline_loop_t **out);
/* Close everything at once (no draining), wait for the kernel to let go of
 * every buffer, free the loop. */
RINGLINE_API int ringline_loop_destroy(ringline_loop_t *loop);
/* The loop's ring, for raw operations next to the loop's own: use tokens
 * below 2^55 (the loop's own have bit 55 set); their completions come back
 * from ringline_loop_poll as RINGLINE_EV_CQE events. */
RINGLINE_API int ringline_loop_ring(ringline_loop_t *loop,
                                    ringline_ring_t **out);

/* Event types */
#define RINGLINE_EV_ACCEPTED 1  /* id: new conn; id2: its listener */
#define RINGLINE_EV_CONNECTED 2 /* id: conn from ringline_connect; res 0 or -errno (then CLOSED follows) */
#define RINGLINE_EV_DATA 3      /* id: conn; data/len: received bytes */
#define RINGLINE_EV_FRAME 4     /* id: conn in FRAMED mode; data/len: payload; tag: frame_len */
#define RINGLINE_EV_EOF 5       /* id: conn; the peer shut down its sending side */
#define RINGLINE_EV_SENT 6      /* id: conn; tag: the send's tag; res: bytes or -errno */
#define RINGLINE_EV_WRITABLE 7  /* id: conn; queue fell below the low-water mark */
#define RINGLINE_EV_CLOSED 8    /* id: conn/listener/udp; res: 0 clean, -errno why */
#define RINGLINE_EV_TIMER 9     /* id: timer; tag: its tag */
#define RINGLINE_EV_DATAGRAM 10 /* id: udp socket; data/len; addr/addrlen: sender;
                                 * tag: the datagram's full length; res 0,
                                 * or -EMSGSIZE: truncated to len bytes */
#define RINGLINE_EV_WAKE 11     /* ringline_loop_wake() was called */
#define RINGLINE_EV_SIGNAL 12   /* res: signal number */
#define RINGLINE_EV_ERROR 13    /* id: object; res: -errno (e.g. accept EMFILE) */
#define RINGLINE_EV_STOPPED 14  /* graceful stop finished; the loop is empty */
#define RINGLINE_EV_CQE 15      /* a raw operation's completion on the loop's
                                 * ring: tag = token, res, id2 = flags |
                                 * bgid << 32 | bid << 48 */

/*
 * One event, 64 bytes, fixed layout (part of the ABI). data/addr point into
 * loop-owned memory valid until the next ringline_loop_poll() on this loop.
 */
typedef struct ringline_event {
    uint32_t type;
    int32_t res;
    ringline_id_t id;
    ringline_id_t id2;
    uint64_t tag;
    const uint8_t *data;
    uint64_t len;
    const struct sockaddr *addr;
    uint32_t addrlen;
    uint32_t reserved;
} ringline_event_t;

/* Submit pending work, wait up to timeout_ns (< 0 forever, 0 not at all)
 * for at least one event, and copy up to max events to out (max >= 8, or
 * -EINVAL: one completion can produce several events). Returns the
 * count, or -errno (-EINTR: a signal not handled by the loop arrived; not
 * fatal). Calling it also ends the validity of the previous batch: data the
 * script did not keep (see ringline_conn_consume) is released then. */
RINGLINE_API int ringline_loop_poll(ringline_loop_t *loop,
                                    ringline_event_t *out, unsigned max,
                                    int64_t timeout_ns);
/* Batched delivery for bindings (Python's cffi): one foreign call per
 * batch instead of several per event. Same arguments, return value and batch
 * validity as ringline_loop_poll(), and additionally flattens the batch:
 * for event i (0 <= i < return value) meta[3*i] = its type, meta[3*i+1] =
 * its id, meta[3*i+2] = the end offset in buf of its copied payload. The
 * payload of every DATA event is copied to buf back to back, so event i's
 * bytes are buf[end of event i-1 (0 for i == 0), meta[3*i+2]); events
 * without a copied payload repeat the previous end (so meta[3*n-1] is the
 * total copied). A DATA event larger than RINGLINE_PACKED_COPY_MAX bytes
 * (bulk: reading it from out[i] directly copies it once instead of twice),
 * or that does not fit in the rest of buf, is not copied: its type word is
 * RINGLINE_EV_DATA | RINGLINE_PACKED_NOCOPY and its bytes are read from
 * out[i].data/len as with ringline_loop_poll().
 * Other payloads (FRAME, DATAGRAM) and fields (res, id2, tag, addr) are
 * read from out[i]. Errors: -EINVAL as ringline_loop_poll(), or buf NULL
 * with cap > 0, or meta NULL; -ENOBUFS if meta_words < 3 * max (nothing is
 * polled then). */
#define RINGLINE_PACKED_NOCOPY 0x10000
#define RINGLINE_PACKED_COPY_MAX 16384
RINGLINE_API int ringline_loop_poll_packed(ringline_loop_t *loop,
                                           ringline_event_t *out, unsigned max,
                                           int64_t timeout_ns, uint64_t *meta,
                                           size_t meta_words, void *buf,
                                           size_t cap);
/* One dispatch round of a binding in one foreign call (with few arguments,
 * which is what a libffi call costs by): first the sends of the previous
 * round, as ringline_conn_send_batch(send_ids, send_buf, send_ends, send_n,
 * send_res) (send_failed = its result; send_n is reset to 0 so a stale
 * count is never sent twice), then ringline_loop_poll_packed(out, max,
 * timeout_ns, meta, meta_words, buf, cap), whose result it returns. The
 * struct's pointers are set once by the binding and stay the caller's;
 * reserved must be zero. A send_batch -EINVAL stops the round before
 * polling (returned as such). */
typedef struct ringline_round {
    ringline_event_t *out;
    unsigned max;
    unsigned send_n;
    uint64_t *meta;
    size_t meta_words;
    void *buf;
    size_t cap;
    const ringline_id_t *send_ids;
    const void *send_buf;
    const uint64_t *send_ends;
    int64_t *send_res;
    int32_t send_failed;
    uint32_t reserved;
} ringline_round_t;
RINGLINE_API int ringline_loop_round(ringline_loop_t *loop,
                                     ringline_round_t *round,
                                     int64_t timeout_ns);
/* Run until stopped, discarding events: for loops whose connections all
 * run C hot paths (echo, forward). Returns 0 after STOPPED. */
RINGLINE_API int ringline_loop_run(ringline_loop_t *loop);
/* Thread-safe: make a blocked poll return with a WAKE event. */
RINGLINE_API int ringline_loop_wake(ringline_loop_t *loop);
/* Graceful stop: stop accepting, let send queues drain for up to
 * deadline_ms, then close everything; a STOPPED event ends it. */
RINGLINE_API int ringline_loop_stop(ringline_loop_t *loop,
                                    uint64_t deadline_ms);
/* 1 once the STOPPED event was produced (a stop of an empty loop
 * produces it at once). */
RINGLINE_API int ringline_loop_stopped(ringline_loop_t *loop);
/* Deliver SIGINT and SIGTERM as SIGNAL events through a signalfd, and
 * begin a graceful stop (deadline_ms) on the first. Blocks both signals in
 * the calling thread: call it before starting other threads so they
 * inherit the mask. */
RINGLINE_API int ringline_loop_handle_signals(ringline_loop_t *loop,
                                              uint64_t deadline_ms);

/* Listeners. host: a numeric IPv4/IPv6 address ("127.0.0.1", "::1",
 * "0.0.0.0"); other names go through getaddrinfo(), which may block (fine
 * for "localhost"). The same holds for ringline_connect and
 * ringline_udp_bind. port 0 picks one (see ringline_listener_port). */
#define RINGLINE_LISTEN_REUSEPORT 0x1u /* share the port between loops */
RINGLINE_API int ringline_listen(ringline_loop_t *loop, const char *host,
                                 uint16_t port, int backlog, unsigned flags,
                                 ringline_id_t *out);
RINGLINE_API int ringline_listener_port(ringline_loop_t *loop,
                                        ringline_id_t id);
/* Connections accepted later start in this mode (default EVENTS). */
RINGLINE_API int ringline_listener_set_mode(ringline_loop_t *loop,
                                            ringline_id_t id, int mode,
                                            uint64_t arg);
/* Stop accepting (cancels the multishot accept first, so the port is free
 * again at once) and close; CLOSED follows. */
RINGLINE_API int ringline_listener_close(ringline_loop_t *loop,
                                         ringline_id_t id);

/* Outbound TCP connection; CONNECTED (res 0 or -errno, -ETIMEDOUT after
 * timeout_ms; 0 = no limit) follows, unless the connection is closed (or
 * the loop stopped) first: then only CLOSED comes. Sends and shutdown may
 * be queued while connecting. */
RINGLINE_API int ringline_connect(ringline_loop_t *loop, const char *host,
                                  uint16_t port, uint64_t timeout_ms,
                                  ringline_id_t *out);

/* Connection modes */
#define RINGLINE_MODE_EVENTS 0  /* DATA events to the script (default) */
#define RINGLINE_MODE_ECHO 1    /* every byte received is sent back, in C */
#define RINGLINE_MODE_FORWARD 2 /* bytes go to connection arg, in C */
#define RINGLINE_MODE_FRAMED 3  /* FRAME events; arg = RINGLINE_FRAMER_* |
                                 * (max_frame << 8) */
RINGLINE_API int ringline_conn_set_mode(ringline_loop_t *loop,
                                        ringline_id_t id, int mode,
                                        uint64_t arg);

/* Queue a copy of buf (the caller may reuse it at once). tag != 0 asks for
 * a SENT event once the bytes are all written. Sends are ordered and at
 * most one is in flight per connection; short writes are resumed. */
RINGLINE_API int ringline_conn_send(ringline_loop_t *loop, ringline_id_t id,
                                    const void *buf, size_t len, uint64_t tag);
/* The same for several pieces, copied into one queue entry. */
RINGLINE_API int ringline_conn_sendv(ringline_loop_t *loop, ringline_id_t id,
                                     const struct iovec *iov, unsigned n,
                                     uint64_t tag);
/* Many sends in one call (bindings batch a dispatch round's replies): for
 * i < n, queue a copy of buf[ends[i-1], ends[i]) (ends[-1] = 0) on
 * connection ids[i], in order, exactly as ringline_conn_send(tag 0) would.
 * One failing send does not stop the others; res (may be NULL, else n
 * entries) gets each send's result: the bytes now queued on that
 * connection, or -errno (-EBADF stale id, -EPIPE closing or shut down).
 * Returns how many sends failed (0: all queued), or -EINVAL with nothing
 * sent (ids/ends NULL with n > 0, ends decreasing, buf NULL with bytes). */
RINGLINE_API int ringline_conn_send_batch(ringline_loop_t *loop,
                                          const ringline_id_t *ids,
                                          const void *buf,
                                          const uint64_t *ends, unsigned n,
                                          int64_t *res);
/* Send from caller memory without copying: buf must stay valid and
 * unchanged until the SENT event with this tag (tag != 0 required), which
 * for zero-copy sends comes after the kernel's notification. */
RINGLINE_API int ringline_conn_send_ref(ringline_loop_t *loop,
                                        ringline_id_t id, const void *buf,
                                        size_t len, uint64_t tag);
/* Bytes queued and not yet written. */
RINGLINE_API int64_t ringline_conn_queued(ringline_loop_t *loop,
                                          ringline_id_t id);
/* Of the DATA event just delivered for id, only n bytes were used: the rest
 * is kept and comes again, followed by newer bytes, in the next DATA event.
 * Without this call all bytes count as consumed. */
RINGLINE_API int ringline_conn_consume(ringline_loop_t *loop,
                                       ringline_id_t id, size_t n);
/* Stop / restart receiving on this connection (script backpressure). */
RINGLINE_API int ringline_conn_pause(ringline_loop_t *loop, ringline_id_t id);
RINGLINE_API int ringline_conn_resume(ringline_loop_t *loop, ringline_id_t id);
/* shutdown(SHUT_WR) once the send queue is empty. */
RINGLINE_API int ringline_conn_shutdown(ringline_loop_t *loop,
                                        ringline_id_t id);
/* Close once the send queue is empty; CLOSED follows. The id stays valid
 * (for queries) until CLOSED. */
RINGLINE_API int ringline_conn_close(ringline_loop_t *loop, ringline_id_t id);
/* Close now, dropping queued bytes (RST if any were unsent). */
RINGLINE_API int ringline_conn_abort(ringline_loop_t *loop, ringline_id_t id);
/* The peer's address. */
RINGLINE_API int ringline_conn_peer(ringline_loop_t *loop, ringline_id_t id,
                                    struct sockaddr_storage *out,
                                    socklen_t *len);
/* The local address (getsockname) of a connection. */
RINGLINE_API int ringline_conn_sockname(ringline_loop_t *loop,
                                        ringline_id_t id,
                                        struct sockaddr_storage *out,
                                        socklen_t *len);

/* Adopting sockets made elsewhere (any family: TCP, AF_UNIX, ...), for
 * what ringline_listen / ringline_connect cannot express (Unix sockets,
 * binding a local address first, sockets handed over by an application).
 * ringline_conn_adopt takes a connected SOCK_STREAM socket (no event
 * follows: it is open at once); ringline_listener_adopt a listening one
 * (ACCEPTED events follow; ringline_listener_port gives 0 for families
 * without ports). On success the loop owns fd and closes it after CLOSED;
 * on failure the caller keeps it: -EBADF (not open), -ENOTSOCK, -EINVAL
 * (not SOCK_STREAM, or listening / not listening the wrong way round),
 * -ENOTCONN (conn_adopt of an unconnected socket), -ENFILE (table full),
 * -ESHUTDOWN (the loop is stopping). */
RINGLINE_API int ringline_conn_adopt(ringline_loop_t *loop, int fd,
                                     ringline_id_t *out);
RINGLINE_API int ringline_listener_adopt(ringline_loop_t *loop, int fd,
                                         ringline_id_t *out);
/* The descriptor under a connection / listener, for socket options and
 * queries (still the loop's: do not close it; dup() it to keep one).
 * -EOPNOTSUPP for fixed-file connections. */
RINGLINE_API int ringline_conn_fd(ringline_loop_t *loop, ringline_id_t id);
RINGLINE_API int ringline_listener_fd(ringline_loop_t *loop,
                                      ringline_id_t id);

/* UDP */
RINGLINE_API int ringline_udp_bind(ringline_loop_t *loop, const char *host,
                                   uint16_t port, ringline_id_t *out);
RINGLINE_API int ringline_udp_port(ringline_loop_t *loop, ringline_id_t id);
/* Copies buf; one datagram. */
RINGLINE_API int ringline_udp_sendto(ringline_loop_t *loop, ringline_id_t id,
                                     const void *buf, size_t len,
                                     const struct sockaddr *to,
                                     socklen_t tolen);
RINGLINE_API int ringline_udp_close(ringline_loop_t *loop, ringline_id_t id);

/* Timers: TIMER events carrying tag. after/every: relative nanoseconds;
 * at: absolute CLOCK_MONOTONIC nanoseconds. */
RINGLINE_API int ringline_timer_after(ringline_loop_t *loop, uint64_t ns,
                                      uint64_t tag, ringline_id_t *out);
RINGLINE_API int ringline_timer_every(ringline_loop_t *loop, uint64_t ns,
                                      uint64_t tag, ringline_id_t *out);
RINGLINE_API int ringline_timer_at(ringline_loop_t *loop, uint64_t mono_ns,
                                   uint64_t tag, ringline_id_t *out);
/* -EBADF if it already fired (one-shot) or was cancelled. */
RINGLINE_API int ringline_timer_cancel(ringline_loop_t *loop,
                                       ringline_id_t id);
/* CLOCK_MONOTONIC now, in nanoseconds. */
RINGLINE_API uint64_t ringline_now_ns(void);

/* Per-loop counters; size = sizeof(ringline_stats_t) of the caller, so
 * the struct can grow at the end. */
typedef struct ringline_stats {
    uint64_t accepted;
    uint64_t connected;
    uint64_t closed;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t enobufs_parks;
    uint64_t sends_queued;
    uint64_t sends_zc;
    uint64_t cqes;
    uint64_t events;
    uint64_t polls;
    uint64_t conns_open;
    uint64_t accept_errors;
} ringline_stats_t;
RINGLINE_API int ringline_loop_stats(ringline_loop_t *loop,
                                     ringline_stats_t *out, size_t size);

/* Pin the calling thread to one CPU (thread-per-core). */
RINGLINE_API int ringline_thread_pin(int cpu);

/* ======================================================================== */
/* Storage batches: many file reads/writes or NVMe commands queued in one   */
/* call, so a script keeps a deep queue (QD 32+) full at one crossing of    */
/* the language boundary per batch.                                         */
/* ======================================================================== */

/* Request kinds (ringline_rw_req_t.op). File kinds take a plain fd or
 * RINGLINE_FIXED(slot) and a byte offset; NVMe kinds take the generic char
 * device (/dev/ngXnY) on a big-SQE ring, a namespace id and a starting LBA
 * in .offset, and complete like ringline_op_nvme (res 0 success, > 0 NVMe
 * status, < 0 -errno).
 *
 * What the Linux NVMe driver does with them (seen on Linux 6.1 against
 * QEMU's controller, tests/vm): a positive res is the completion's status
 * field without its phase bit, so besides SC (res & 0xFF) and SCT
 * ((res >> 8) & 7) it may carry More (0x2000) and Do Not Retry (0x4000):
 * an LBA out of range comes back as 0x4080. An nsid other than the
 * device's own is refused by the driver (-EINVAL), command flags too;
 * admin commands (ringline_op_nvme with admin = 1, e.g. Identify) go to
 * the controller's char device /dev/nvmeX: /dev/ngXnY answers them with
 * -ENOTTY. */
#define RINGLINE_RW_READ 1        /* read len bytes at offset into buf */
#define RINGLINE_RW_WRITE 2       /* write len bytes from buf at offset */
#define RINGLINE_RW_READ_FIXED 3  /* the same, buf inside registered */
#define RINGLINE_RW_WRITE_FIXED 4 /*   buffer buf_index */
#define RINGLINE_RW_FSYNC 5       /* flags: RINGLINE_FSYNC_DATASYNC */
#define RINGLINE_RW_NVME_READ 6   /* nlb blocks from LBA offset; len must be
                                   * nlb * LBA size: a batch refuses a len
                                   * that is not a multiple of nlb or gives
                                   * under 512 bytes a block (the device
                                   * would transfer past the buffer); the
                                   * exact LBA size is the caller's to get
                                   * right (ringline_nvme_ns_geometry) */
#define RINGLINE_RW_NVME_WRITE 7
#define RINGLINE_RW_NVME_FLUSH 8         /* nsid only */
#define RINGLINE_RW_NVME_WRITE_ZEROES 9  /* nlb blocks from LBA offset */

/*
 * One request, 48 bytes, fixed layout (part of the ABI):
 *   token      comes back in the completion
 *   offset     byte offset (files) or starting LBA (NVMe)
 *   buf, len   the data (len in bytes; not used by FSYNC, NVME_FLUSH,
 *              NVME_WRITE_ZEROES)
 *   nlb        NVMe logical blocks, 1..65536 (not used by file kinds)
 *   fd         plain fd or RINGLINE_FIXED(slot)
 *   nsid       NVMe namespace id (not used by file kinds)
 *   op         RINGLINE_RW_*
 *   buf_index  registered buffer for the _FIXED kinds
 *   flags      RINGLINE_FSYNC_DATASYNC for FSYNC; must be 0 otherwise
 * Memory the requests point to must stay valid until each one's
 * completion; the request array itself may be reused as soon as the call
 * returns.
 */
typedef struct ringline_rw_req {
    uint64_t token;
    uint64_t offset;
    void *buf;
    uint32_t len;
    uint32_t nlb;
    int32_t fd;
    uint32_t nsid;
    uint16_t op;
    uint16_t buf_index;
    uint32_t flags;
} ringline_rw_req_t;

/* Queue reqs[0..n) in order (submitting as the SQ fills, as every op
 * does). Every request is checked before any is queued: one invalid
 * request (bad op, token, fd, length, buffer index, flags, nlb, an NVMe
 * kind on a ring without big SQEs) fails the call with -errno and nothing
 * is queued. Returns n, or fewer only if the ring itself could take no
 * more SQEs (then reqs[returned..n) were not queued). */
RINGLINE_API int ringline_rw_batch(ringline_ring_t *ring,
                                   const ringline_rw_req_t *reqs, unsigned n);
/* One call per batch: ringline_rw_batch(reqs, n) (n may be 0), then
 * submit, wait for wait_nr completions or timeout_ns (as
 * ringline_ring_reap) and harvest up to max into out. wait_nr is capped
 * to max and to the operations in flight, so asking for a whole batch
 * back never sleeps forever. *queued (may be NULL) gets the number of
 * requests queued. Returns the number of completions copied, or -errno
 * (an invalid batch: nothing queued and nothing harvested; -EINTR only
 * when a signal came and nothing was queued). Keeping QD 32: call it
 * with 32 requests, then each time with as many new requests as
 * completions came back. */
RINGLINE_API int ringline_rw_reap(ringline_ring_t *ring,
                                  const ringline_rw_req_t *reqs, unsigned n,
                                  unsigned *queued, ringline_cqe_t *out,
                                  unsigned max, unsigned wait_nr,
                                  int64_t timeout_ns);
/* Run reqs[0..n) to completion, keeping up to qd (capped to the CQ size)
 * in flight and refilling as completions come: the whole QD-driven loop in
 * one call, for bindings whose per-completion cost would dominate. Each
 * request's .token is overwritten with its index, and res[i] receives its
 * completion's res (as ringline_rw_reap; -ECANCELED for requests never
 * queued after a ring failure). The ring must have nothing else in flight
 * (-EBUSY). Blocks until done. Returns the number of requests that
 * completed (n normally), or -errno: an invalid request fails the whole
 * call before anything is queued; a ring failure midway is returned after
 * what was in flight has completed (or, if the ring cannot enter the kernel
 * at all, with it still in flight: destroy the ring before freeing the
 * buffers). */
RINGLINE_API int ringline_rw_run(ringline_ring_t *ring,
                                 ringline_rw_req_t *reqs, unsigned n,
                                 unsigned qd, int32_t *res);
/* Read an Identify Namespace page (4096 bytes from
 * ringline_nvme_cmd_identify with RINGLINE_NVME_CNS_NAMESPACE): the LBA
 * size of the format in use, the namespace size and capacity in LBAs
 * (each pointer may be NULL). -EPROTO if the page names no valid
 * format. */
RINGLINE_API int ringline_nvme_ns_geometry(const void *id_ns,
                                           uint32_t *lba_size, uint64_t *nsze,
                                           uint64_t *ncap);

#ifdef __cplusplus
}
#endif

#endif /* RINGLINE_H */
