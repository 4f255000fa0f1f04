/*
 * nvme.c — NVMe passthrough over io_uring (IORING_OP_URING_CMD against the
 * generic char device /dev/ngXnY).
 *
 * The command record is the kernel's struct nvme_uring_cmd byte for byte: the
 * kernel reads it straight out of the second half of a 128-byte SQE, so any
 * drift in layout is a silent corruption of every command, and the asserts
 * below turn it into a build failure instead. The same goes for cmd_op: the
 * NVMe driver dispatches on the full ioctl-encoded number, and anything else
 * (a runtime once shipped with 0) fails every command with -ENOTTY.
 */
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h> /* _IOWR, which linux/nvme_ioctl.h uses unincluded */

#include <linux/nvme_ioctl.h>

#include "internal.h"

#define RL_NVME_SAME_FIELD(f)                                                  \
    _Static_assert(offsetof(ringline_nvme_cmd_t, f) ==                         \
                           offsetof(struct nvme_uring_cmd, f) &&               \
                       sizeof(((ringline_nvme_cmd_t *)0)->f) ==                \
                           sizeof(((struct nvme_uring_cmd *)0)->f),            \
                   "ringline_nvme_cmd_t." #f " drifted from the kernel's")

_Static_assert(sizeof(ringline_nvme_cmd_t) == 72, "nvme cmd must be 72 bytes");
_Static_assert(sizeof(ringline_nvme_cmd_t) == sizeof(struct nvme_uring_cmd),
               "nvme cmd size differs from struct nvme_uring_cmd");
RL_NVME_SAME_FIELD(opcode);
RL_NVME_SAME_FIELD(flags);
RL_NVME_SAME_FIELD(rsvd1);
RL_NVME_SAME_FIELD(nsid);
RL_NVME_SAME_FIELD(cdw2);
RL_NVME_SAME_FIELD(cdw3);
RL_NVME_SAME_FIELD(metadata);
RL_NVME_SAME_FIELD(addr);
RL_NVME_SAME_FIELD(metadata_len);
RL_NVME_SAME_FIELD(data_len);
RL_NVME_SAME_FIELD(cdw10);
RL_NVME_SAME_FIELD(cdw11);
RL_NVME_SAME_FIELD(cdw12);
RL_NVME_SAME_FIELD(cdw13);
RL_NVME_SAME_FIELD(cdw14);
RL_NVME_SAME_FIELD(cdw15);
RL_NVME_SAME_FIELD(timeout_ms);
RL_NVME_SAME_FIELD(rsvd2);

/* The public header spells the numbers out so FFI layers need no kernel
 * headers; they must still be the kernel's. */
_Static_assert(RINGLINE_NVME_URING_CMD_IO == NVME_URING_CMD_IO,
               "RINGLINE_NVME_URING_CMD_IO != NVME_URING_CMD_IO");
_Static_assert(RINGLINE_NVME_URING_CMD_ADMIN == NVME_URING_CMD_ADMIN,
               "RINGLINE_NVME_URING_CMD_ADMIN != NVME_URING_CMD_ADMIN");

/* Where the kernel looks: cmd_op overlays the 64-bit `off`, and the command
 * area starts at byte 48 and runs to the end of the 128-byte SQE. */
_Static_assert(offsetof(struct io_uring_sqe, cmd_op) == 8,
               "cmd_op must overlay sqe->off");
_Static_assert(offsetof(struct io_uring_sqe, cmd) == 48,
               "SQE128 command area must start at byte 48");
_Static_assert(sizeof(ringline_nvme_cmd_t) <= 128 - 48,
               "nvme cmd must fit the SQE128 command area");

/* NLB is a 16-bit 0-based field in CDW12. */
#define RL_NVME_MAX_NLB 65536u
#define RL_NVME_IDENTIFY_LEN 4096u

static int rl_nvme_rw(ringline_nvme_cmd_t *cmd, uint8_t opcode, uint32_t nsid,
                      uint64_t slba, uint32_t nlb, const void *buf,
                      uint32_t data_len)
{
    if (!cmd)
        return -EINVAL;
    /* Zeroed even when refused, so a caller that ignores the result submits
     * an inert command rather than whatever the struct held before. */
    memset(cmd, 0, sizeof *cmd);
    if (nlb == 0 || nlb > RL_NVME_MAX_NLB)
        return -EINVAL;
    /* The lba size is unknown here, so data_len cannot be checked against
     * nlb; but a transfer with no buffer would have the controller DMA
     * to or from address 0. */
    if (data_len == 0 || !buf)
        return -EINVAL;
    cmd->opcode = opcode;
    cmd->nsid = nsid;
    cmd->addr = (uint64_t)(uintptr_t)buf;
    cmd->data_len = data_len;
    cmd->cdw10 = (uint32_t)slba;
    cmd->cdw11 = (uint32_t)(slba >> 32);
    cmd->cdw12 = nlb - 1;
    return 0;
}

int ringline_nvme_cmd_read(ringline_nvme_cmd_t *cmd, uint32_t nsid,
                           uint64_t slba, uint32_t nlb, void *buf,
                           uint32_t data_len)
{
    return rl_nvme_rw(cmd, RINGLINE_NVME_OP_READ, nsid, slba, nlb, buf,
                      data_len);
}

int ringline_nvme_cmd_write(ringline_nvme_cmd_t *cmd, uint32_t nsid,
                            uint64_t slba, uint32_t nlb, const void *buf,
                            uint32_t data_len)
{
    return rl_nvme_rw(cmd, RINGLINE_NVME_OP_WRITE, nsid, slba, nlb, buf,
                      data_len);
}

/* The checked form: with the LBA size known, a data_len that is not
 * exactly nlb blocks is refused instead of letting the controller transfer
 * past the buffer (neither the kernel nor the device checks). */
int ringline_nvme_cmd_rw_lba(ringline_nvme_cmd_t *cmd, int write,
                             uint32_t nsid, uint64_t slba, uint32_t nlb,
                             uint32_t lba_size, void *buf, uint32_t data_len)
{
    if (cmd)
        memset(cmd, 0, sizeof *cmd);
    /* an LBA is a power of two of at least 512 bytes (LBADS >= 9) */
    if (lba_size < 512 || (lba_size & (lba_size - 1)) ||
        (uint64_t)nlb * lba_size != data_len)
        return -EINVAL;
    return rl_nvme_rw(cmd, write ? RINGLINE_NVME_OP_WRITE : RINGLINE_NVME_OP_READ,
                      nsid, slba, nlb, buf, data_len);
}

int ringline_nvme_cmd_flush(ringline_nvme_cmd_t *cmd, uint32_t nsid)
{
    if (!cmd)
        return -EINVAL;
    memset(cmd, 0, sizeof *cmd);
    cmd->opcode = RINGLINE_NVME_OP_FLUSH;
    cmd->nsid = nsid;
    return 0;
}

int ringline_nvme_cmd_write_zeroes(ringline_nvme_cmd_t *cmd, uint32_t nsid,
                                   uint64_t slba, uint32_t nlb)
{
    if (!cmd)
        return -EINVAL;
    memset(cmd, 0, sizeof *cmd);
    if (nlb == 0 || nlb > RL_NVME_MAX_NLB)
        return -EINVAL;
    cmd->opcode = RINGLINE_NVME_OP_WRITE_ZEROES;
    cmd->nsid = nsid;
    cmd->cdw10 = (uint32_t)slba;
    cmd->cdw11 = (uint32_t)(slba >> 32);
    /* DEAC/PRINFO/FUA (the upper CDW12 bits) stay clear: plain zeroes. */
    cmd->cdw12 = nlb - 1;
    return 0;
}

int ringline_nvme_cmd_identify(ringline_nvme_cmd_t *cmd, uint32_t nsid,
                               uint32_t cns, void *buf)
{
    if (!cmd)
        return -EINVAL;
    memset(cmd, 0, sizeof *cmd);
    /* CNS is 8 bits wide; CDW10's upper half is CNTID, which a truncated
     * cns would silently set. The controller always writes 4096 bytes. */
    if (cns > 0xFF || !buf)
        return -EINVAL;
    cmd->opcode = RINGLINE_NVME_ADMIN_IDENTIFY;
    cmd->nsid = nsid;
    cmd->addr = (uint64_t)(uintptr_t)buf;
    cmd->data_len = RL_NVME_IDENTIFY_LEN;
    cmd->cdw10 = cns;
    return 0;
}

int ringline_op_nvme(ringline_ring_t *r, int fd, const ringline_nvme_cmd_t *cmd,
                     int admin, uint64_t token)
{
    RL_RING_CHECK(r);
    /* In a 64-byte SQE the 72-byte command would spill over the next SQE
     * slot; and the driver refuses rings without SQE128 + CQE32 anyway, but
     * only at completion time. */
    if (!cmd || !r->big)
        return -EINVAL;
    RL_OP_CHECK(r, token);
    int err = rl_check_fd(fd);
    if (err < 0)
        return err;

    struct io_uring_sqe *sqe = rl_get_sqe(r, &err);
    if (!sqe)
        return err;
    sqe->opcode = IORING_OP_URING_CMD;
    rl_sqe_set_fd(sqe, fd);
    sqe->cmd_op = admin ? RINGLINE_NVME_URING_CMD_ADMIN
                        : RINGLINE_NVME_URING_CMD_IO;
    /* Copied now: the kernel may read the SQE after this call returns (at
     * submit), by which time the caller's cmd may be gone. */
    memcpy(sqe->cmd, cmd, sizeof *cmd);
    rl_commit_sqe(r, sqe, token);
    return 0;
}
