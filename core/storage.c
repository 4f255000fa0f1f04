/*
 * storage.c — storage batches: many file reads/writes or NVMe passthrough
 * commands queued (and, with ringline_rw_reap, submitted and harvested) in
 * one call, so a script keeps a deep queue full at one language-boundary
 * crossing per batch; and the parse of Identify Namespace a script needs to
 * address an NVMe namespace (LBA size, capacity).
 *
 * A batch is checked whole before anything is queued: an invalid request
 * leaves the ring untouched, so the caller never has to work out which
 * half of a batch reached the kernel.
 */
#include <string.h>

#include "internal.h"

_Static_assert(sizeof(ringline_rw_req_t) == 48, "rw req must be 48 bytes");
_Static_assert(offsetof(ringline_rw_req_t, token) == 0, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, offset) == 8, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, buf) == 16, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, len) == 24, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, nlb) == 28, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, fd) == 32, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, nsid) == 36, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, op) == 40, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, buf_index) == 42, "rw req layout");
_Static_assert(offsetof(ringline_rw_req_t, flags) == 44, "rw req layout");

#define RL_NVME_MAX_NLB 65536u

/* Everything the queueing step could refuse, checked up front. */
static int rl_rw_check(ringline_ring_t *r, const ringline_rw_req_t *q)
{
    int err = rl_check_token(q->token);
    if (err)
        return err;
    if (RL_UNLIKELY(r->tokmap.used) && rl_tokmap_find(&r->tokmap, q->token))
        return -EBUSY;
    if (q->fd < 0)
        return -EBADF;
    switch (q->op) {
    case RINGLINE_RW_READ:
    case RINGLINE_RW_WRITE:
    case RINGLINE_RW_READ_FIXED:
    case RINGLINE_RW_WRITE_FIXED:
        if (q->len > RL_MAX_LEN || (!q->buf && q->len) || q->flags)
            return -EINVAL;
        if ((q->op == RINGLINE_RW_READ_FIXED ||
             q->op == RINGLINE_RW_WRITE_FIXED) &&
            q->buf_index >= r->buffers_registered)
            return -EINVAL;
        return 0;
    case RINGLINE_RW_FSYNC:
        if (q->flags & ~RINGLINE_FSYNC_DATASYNC)
            return -EINVAL;
        return 0;
    case RINGLINE_RW_NVME_READ:
    case RINGLINE_RW_NVME_WRITE:
        /* a transfer with no buffer would have the controller DMA to or
         * from address 0 */
        if (!q->buf || q->len == 0)
            return -EINVAL;
        /* len must be nlb LBAs, and no LBA is smaller than 512 bytes: a
         * len the blocks cannot fill means the device would transfer past
         * the buffer (neither the kernel nor the device checks; the VM
         * test saw such a read succeed) */
        if (q->nlb == 0 || q->len % q->nlb || q->len / q->nlb < 512)
            return -EINVAL;
        /* fall through */
    case RINGLINE_RW_NVME_WRITE_ZEROES:
        if (!r->big)
            return -EINVAL;
        if (q->nlb == 0 || q->nlb > RL_NVME_MAX_NLB || q->flags)
            return -EINVAL;
        return 0;
    case RINGLINE_RW_NVME_FLUSH:
        if (!r->big || q->flags)
            return -EINVAL;
        return 0;
    default:
        return -EINVAL;
    }
}

static int rl_rw_queue(ringline_ring_t *r, const ringline_rw_req_t *q)
{
    ringline_nvme_cmd_t cmd;
    switch (q->op) {
    case RINGLINE_RW_READ:
        return ringline_op_read(r, q->fd, q->buf, q->len, q->offset, q->token);
    case RINGLINE_RW_WRITE:
        return ringline_op_write(r, q->fd, q->buf, q->len, q->offset,
                                 q->token);
    case RINGLINE_RW_READ_FIXED:
        return ringline_op_read_fixed(r, q->fd, q->buf, q->len, q->offset,
                                      q->buf_index, q->token);
    case RINGLINE_RW_WRITE_FIXED:
        return ringline_op_write_fixed(r, q->fd, q->buf, q->len, q->offset,
                                       q->buf_index, q->token);
    case RINGLINE_RW_FSYNC:
        return ringline_op_fsync(r, q->fd, q->flags, q->token);
    case RINGLINE_RW_NVME_READ:
        ringline_nvme_cmd_read(&cmd, q->nsid, q->offset, q->nlb, q->buf,
                               q->len);
        break;
    case RINGLINE_RW_NVME_WRITE:
        ringline_nvme_cmd_write(&cmd, q->nsid, q->offset, q->nlb, q->buf,
                                q->len);
        break;
    case RINGLINE_RW_NVME_FLUSH:
        ringline_nvme_cmd_flush(&cmd, q->nsid);
        break;
    case RINGLINE_RW_NVME_WRITE_ZEROES:
        ringline_nvme_cmd_write_zeroes(&cmd, q->nsid, q->offset, q->nlb);
        break;
    default:
        return -EINVAL;
    }
    return ringline_op_nvme(r, q->fd, &cmd, 0, q->token);
}

/* Check all, then queue all. Returns the number queued, or -errno with
 * nothing queued. */
static int rl_rw_batch(ringline_ring_t *r, const ringline_rw_req_t *reqs,
                       unsigned n)
{
    if (n == 0)
        return 0;
    if (!reqs || n > (unsigned)INT32_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        int err = rl_rw_check(r, &reqs[i]);
        if (err)
            return err;
    }
    for (unsigned i = 0; i < n; i++) {
        int err = rl_rw_queue(r, &reqs[i]);
        if (RL_UNLIKELY(err < 0))
            /* only the ring itself can refuse now (no SQE could be had) */
            return i ? (int)i : err;
    }
    return (int)n;
}

int ringline_rw_batch(ringline_ring_t *ring, const ringline_rw_req_t *reqs,
                      unsigned n)
{
    RL_RING_CHECK(ring);
    return rl_rw_batch(ring, reqs, n);
}

int ringline_rw_reap(ringline_ring_t *ring, const ringline_rw_req_t *reqs,
                     unsigned n, unsigned *queued, ringline_cqe_t *out,
                     unsigned max, unsigned wait_nr, int64_t timeout_ns)
{
    RL_RING_CHECK(ring);
    if (queued)
        *queued = 0;
    if (!out && max)
        return -EINVAL;
    int q = rl_rw_batch(ring, reqs, n);
    if (q < 0)
        return q;
    if (queued)
        *queued = (unsigned)q;
    /* Never wait for more than can come: a script asking for a full batch
     * back while fewer are in flight would otherwise sleep forever. */
    if (wait_nr > (unsigned)ring->inflight)
        wait_nr = (unsigned)ring->inflight;
    if (wait_nr > max)
        wait_nr = max;
    int ret = ringline_ring_submit_and_wait(ring, wait_nr, timeout_ns);
    if (ret < 0 && !(ret == -EINTR && q > 0))
        return ret;
    /* A signal after the batch went in is not worth losing track of what
     * was queued: harvest what is there and let the caller call again. */
    return rl_harvest(ring, out, max, true);
}

/* Run a whole batch to completion keeping up to qd in flight: the loop a
 * script would otherwise drive one boundary crossing per completion. The
 * tokens are the request indexes, so the ring must have nothing else in
 * flight (else a foreign completion could be taken for a request). */
#define RL_RW_RUN_MAX (1u << 24)
int ringline_rw_run(ringline_ring_t *ring, ringline_rw_req_t *reqs,
                    unsigned n, unsigned qd, int32_t *res)
{
    RL_RING_CHECK(ring);
    if (n == 0)
        return 0;
    if (!reqs || !res || n > RL_RW_RUN_MAX)
        return -EINVAL;
    if (ring->inflight || ring->tokmap.used)
        return -EBUSY;
    if (qd == 0)
        qd = 1;
    /* the CQ must be able to hold every completion of what is in flight */
    if (qd > ring->cq_entries)
        qd = ring->cq_entries;
    for (unsigned i = 0; i < n; i++) {
        reqs[i].token = i;
        int err = rl_rw_check(ring, &reqs[i]);
        if (err)
            return err;
    }
    ringline_cqe_t cq[64];
    unsigned next = 0, done = 0, hard = 0;
    int err = 0;
    while (done < n) {
        while (!err && next < n && (unsigned)ring->inflight < qd) {
            int e = rl_rw_queue(ring, &reqs[next]);
            if (e < 0) {
                err = e;
                break;
            }
            next++;
        }
        if (ring->inflight == 0)
            break; /* nothing left that could complete (after an error) */
        int ret = ringline_ring_submit_and_wait(ring, 1, -1);
        if (ret < 0 && ret != -EINTR) {
            if (!err)
                err = ret;
            /* a ring that cannot enter the kernel any more: give up rather
             * than spin; what is in flight is the ring's to cancel when it
             * is destroyed */
            if (++hard > 3)
                break;
        } else {
            hard = 0;
        }
        int k = rl_harvest(ring, cq, 64, true);
        for (int j = 0; j < k; j++) {
            uint64_t t = cq[j].token;
            if (t < n) {
                res[t] = cq[j].res;
                done++;
            }
        }
    }
    for (unsigned i = next; i < n; i++)
        res[i] = -ECANCELED;
    return err ? err : (int)done;
}

/* ---- Identify Namespace (NVM command set, CNS 0) ---- */
int ringline_nvme_ns_geometry(const void *id_ns, uint32_t *lba_size,
                              uint64_t *nsze, uint64_t *ncap)
{
    if (!id_ns)
        return -EINVAL;
    const uint8_t *p = id_ns;
    uint64_t size = 0, cap = 0;
    memcpy(&size, p + 0, 8); /* NSZE, little-endian like the host */
    memcpy(&cap, p + 8, 8);  /* NCAP */
    uint8_t flbas = p[26];
    uint8_t nlbaf = p[25]; /* 0-based count of formats */
    /* FLBAS bits 3:0 index the format, bits 6:5 extend it (NVMe 2.0) */
    unsigned idx = (flbas & 0x0F) | ((unsigned)((flbas >> 5) & 0x3) << 4);
    if (idx > nlbaf || idx >= 64)
        return -EPROTO;
    /* LBA format descriptors from byte 128, 4 bytes each: MS (16 bits),
     * LBADS (8 bits, log2 of the data size), RP */
    uint8_t lbads = p[128 + 4 * idx + 2];
    if (lbads < 9 || lbads > 31)
        return -EPROTO; /* 0 means "format not available" */
    if (lba_size)
        *lba_size = 1u << lbads;
    if (nsze)
        *nsze = size;
    if (ncap)
        *ncap = cap;
    return 0;
}
