/* NVMe passthrough encoding: the command builders against the NVMe base / NVM
 * command set layout, written out here byte by byte (never by asking the code
 * under test what it thinks); the uring_cmd numbers and struct layout against
 * the kernel's own header; argument checking; and ringline_op_nvme end to end
 * on a big-SQE ring against files that are not NVMe devices (/dev/zero, whose
 * lack of a uring_cmd handler must come back as a negative errno, and
 * /dev/null), which must complete cleanly rather than crash anything.
 *
 * The SQE that ringline_op_nvme queues is also read back through a second
 * mapping of the ring's SQE array: a runtime once shipped with cmd_op 0, and
 * every command then failed with -ENOTTY, which no completion on a non-NVMe
 * fd can reveal.
 *
 * Optional: RINGLINE_TEST_NVME_DEV=/dev/ngXnY also sends Identify Controller
 * to a real NVMe generic char device. */
#include <linux/io_uring.h>
#include <linux/nvme_ioctl.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "rl_test.h"

#define CMD_BYTES 72
#define SQE128_BYTES 128
#define SQE_CMD_OFF 48

/* Buffers are only recorded in the command, never touched, on every path
 * except the optional real-device one, so a fixed fake address keeps the
 * expected images literal. */
#define FAKE_ADDR 0x00007F0012345000ull

static void hexdump(const char *what, const uint8_t *p, size_t n)
{
    fprintf(stderr, "  %-5s", what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%02x", i && i % 8 == 0 ? " | " : " ", p[i]);
    fprintf(stderr, "\n");
}

static void expect_bytes(const char *what, const void *got, const void *want,
                         size_t n)
{
    const uint8_t *g = got, *w = want;
    for (size_t i = 0; i < n; i++) {
        if (g[i] != w[i]) {
            fprintf(stderr, "%s: byte %zu is 0x%02x, want 0x%02x\n", what, i,
                    g[i], w[i]);
            hexdump("got", g, n);
            hexdump("want", w, n);
            FAIL("%s: encoding differs from the NVMe layout", what);
        }
    }
}

static void put_le(uint8_t *img, size_t off, uint64_t v, int nbytes)
{
    for (int i = 0; i < nbytes; i++)
        img[off + (size_t)i] = (uint8_t)(v >> (8 * i));
}

/* The NVMe submission-queue-entry fields the passthrough record carries, at
 * the offsets of struct nvme_uring_cmd: byte 0 opcode (CDW0 bits 7:0), 4
 * NSID, 24 data pointer, 36 data length, 40.. CDW10-CDW15, everything else
 * (flags, CDW2/3, metadata, timeout, reserved) zero. */
struct spec_fields {
    uint8_t opcode;
    uint32_t nsid;
    uint64_t addr;
    uint32_t data_len;
    uint32_t cdw10, cdw11, cdw12;
};

static void spec_image(uint8_t img[CMD_BYTES], struct spec_fields f)
{
    memset(img, 0, CMD_BYTES);
    img[0] = f.opcode;
    put_le(img, 4, f.nsid, 4);
    put_le(img, 24, f.addr, 8);
    put_le(img, 36, f.data_len, 4);
    put_le(img, 40, f.cdw10, 4);
    put_le(img, 44, f.cdw11, 4);
    put_le(img, 48, f.cdw12, 4);
}

/* Builders must overwrite every byte, so each starts from garbage. */
static void garbage(ringline_nvme_cmd_t *c)
{
    memset(c, 0xA5, sizeof *c);
}

static void check_spec(const char *what, const ringline_nvme_cmd_t *c,
                       struct spec_fields f)
{
    uint8_t want[CMD_BYTES];
    spec_image(want, f);
    expect_bytes(what, c, want, CMD_BYTES);
}

static void test_kernel_abi(void)
{
    /* The numbers FFI users see must be the kernel's, and decode as
     * _IOWR('N', 0x80 / 0x82, 72 bytes). */
    CHECK(RINGLINE_NVME_URING_CMD_IO == NVME_URING_CMD_IO);
    CHECK(RINGLINE_NVME_URING_CMD_ADMIN == NVME_URING_CMD_ADMIN);
    CHECK(RINGLINE_NVME_URING_CMD_IO == 0xC0484E80u);
    CHECK(RINGLINE_NVME_URING_CMD_ADMIN == 0xC0484E82u);
    CHECK(_IOC_DIR(RINGLINE_NVME_URING_CMD_IO) == (_IOC_READ | _IOC_WRITE));
    CHECK(_IOC_TYPE(RINGLINE_NVME_URING_CMD_IO) == 'N');
    CHECK(_IOC_NR(RINGLINE_NVME_URING_CMD_IO) == 0x80);
    CHECK(_IOC_SIZE(RINGLINE_NVME_URING_CMD_IO) == CMD_BYTES);
    CHECK(_IOC_DIR(RINGLINE_NVME_URING_CMD_ADMIN) == (_IOC_READ | _IOC_WRITE));
    CHECK(_IOC_TYPE(RINGLINE_NVME_URING_CMD_ADMIN) == 'N');
    CHECK(_IOC_NR(RINGLINE_NVME_URING_CMD_ADMIN) == 0x82);
    CHECK(_IOC_SIZE(RINGLINE_NVME_URING_CMD_ADMIN) == CMD_BYTES);

    CHECK(sizeof(ringline_nvme_cmd_t) == CMD_BYTES);
    CHECK(sizeof(struct nvme_uring_cmd) == CMD_BYTES);
#define SAME_AT(field, off)                                                    \
    do {                                                                       \
        CHECK(offsetof(ringline_nvme_cmd_t, field) == (off));                  \
        CHECK(offsetof(struct nvme_uring_cmd, field) == (off));                \
        CHECK(sizeof(((ringline_nvme_cmd_t *)0)->field) ==                     \
              sizeof(((struct nvme_uring_cmd *)0)->field));                    \
    } while (0)
    SAME_AT(opcode, 0);
    SAME_AT(flags, 1);
    SAME_AT(rsvd1, 2);
    SAME_AT(nsid, 4);
    SAME_AT(cdw2, 8);
    SAME_AT(cdw3, 12);
    SAME_AT(metadata, 16);
    SAME_AT(addr, 24);
    SAME_AT(metadata_len, 32);
    SAME_AT(data_len, 36);
    SAME_AT(cdw10, 40);
    SAME_AT(cdw11, 44);
    SAME_AT(cdw12, 48);
    SAME_AT(cdw13, 52);
    SAME_AT(cdw14, 56);
    SAME_AT(cdw15, 60);
    SAME_AT(timeout_ms, 64);
    SAME_AT(rsvd2, 68);
#undef SAME_AT

    /* Where the kernel reads cmd_op and the command in a 128-byte SQE. */
    CHECK(offsetof(struct io_uring_sqe, cmd_op) == 8);
    CHECK(offsetof(struct io_uring_sqe, cmd) == SQE_CMD_OFF);
    CHECK(SQE_CMD_OFF + CMD_BYTES <= SQE128_BYTES);
    CHECK(IORING_OP_URING_CMD == 46);

    CHECK(RINGLINE_NVME_OP_FLUSH == 0x00);
    CHECK(RINGLINE_NVME_OP_WRITE == 0x01);
    CHECK(RINGLINE_NVME_OP_READ == 0x02);
    CHECK(RINGLINE_NVME_OP_WRITE_ZEROES == 0x08);
    CHECK(RINGLINE_NVME_ADMIN_IDENTIFY == 0x06);
    CHECK(RINGLINE_NVME_CNS_NAMESPACE == 0x00);
    CHECK(RINGLINE_NVME_CNS_CONTROLLER == 0x01);
}

static void test_literal_images(void)
{
    ringline_nvme_cmd_t c;
    void *buf = (void *)(uintptr_t)FAKE_ADDR;

    /* Read, NSID 1, SLBA 0x1_2345_6789, 8 blocks of 512 (NLB 0-based: 7). */
    static const uint8_t read_img[CMD_BYTES] = {
        0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* opc, nsid      */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw2, cdw3     */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* metadata       */
        0x00, 0x50, 0x34, 0x12, 0x00, 0x7F, 0x00, 0x00, /* addr           */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, /* md_len, len    */
        0x89, 0x67, 0x45, 0x23, 0x01, 0x00, 0x00, 0x00, /* cdw10, cdw11   */
        0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw12, cdw13   */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw14, cdw15   */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* timeout, rsvd2 */
    };
    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_read(&c, 1, 0x123456789ull, 8, buf, 4096), 0);
    expect_bytes("read literal", &c, read_img, CMD_BYTES);

    /* The same as a write: only the opcode differs. */
    uint8_t write_img[CMD_BYTES];
    memcpy(write_img, read_img, CMD_BYTES);
    write_img[0] = 0x01;
    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_write(&c, 1, 0x123456789ull, 8, buf, 4096),
               0);
    expect_bytes("write literal", &c, write_img, CMD_BYTES);

    /* Write Zeroes, NSID 0xA1B2C3D4, SLBA 0xFEDC_BA98_7654_3210, 65536
     * blocks (NLB 0xFFFF); no data pointer, no length, DEAC/FUA clear. */
    static const uint8_t wz_img[CMD_BYTES] = {
        0x08, 0x00, 0x00, 0x00, 0xD4, 0xC3, 0xB2, 0xA1, /* opc, nsid      */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw2, cdw3     */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* metadata       */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* addr           */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* md_len, len    */
        0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE, /* cdw10, cdw11   */
        0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw12, cdw13   */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw14, cdw15   */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* timeout, rsvd2 */
    };
    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_write_zeroes(&c, 0xA1B2C3D4u,
                                              0xFEDCBA9876543210ull, 65536),
               0);
    expect_bytes("write_zeroes literal", &c, wz_img, CMD_BYTES);

    /* Identify Controller (admin 0x06, CNS 01h in CDW10 7:0), NSID 0,
     * 4096-byte data buffer. */
    static const uint8_t id_img[CMD_BYTES] = {
        0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* opc, nsid      */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw2, cdw3     */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* metadata       */
        0x00, 0x50, 0x34, 0x12, 0x00, 0x7F, 0x00, 0x00, /* addr           */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, /* md_len, len    */
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw10, cdw11   */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw12, cdw13   */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* cdw14, cdw15   */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* timeout, rsvd2 */
    };
    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_identify(&c, 0, RINGLINE_NVME_CNS_CONTROLLER,
                                          buf),
               0);
    expect_bytes("identify literal", &c, id_img, CMD_BYTES);

    /* Flush of every namespace (NSID FFFFFFFFh): opcode and NSID only. */
    static const uint8_t flush_img[CMD_BYTES] = {
        0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF,
    };
    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_flush(&c, 0xFFFFFFFFu), 0);
    expect_bytes("flush literal", &c, flush_img, CMD_BYTES);
}

static void test_field_images(void)
{
    ringline_nvme_cmd_t c;
    void *buf = (void *)(uintptr_t)FAKE_ADDR;

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_read(&c, 1, 0, 1, buf, 512), 0);
    check_spec("read nlb 1 slba 0", &c,
               (struct spec_fields){.opcode = 0x02, .nsid = 1,
                                    .addr = FAKE_ADDR, .data_len = 512,
                                    .cdw12 = 0});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_read(&c, 7, UINT64_MAX, 1, buf, 4096), 0);
    check_spec("read slba max", &c,
               (struct spec_fields){.opcode = 0x02, .nsid = 7,
                                    .addr = FAKE_ADDR, .data_len = 4096,
                                    .cdw10 = 0xFFFFFFFFu,
                                    .cdw11 = 0xFFFFFFFFu, .cdw12 = 0});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_read(&c, 2, 1ull << 32, 65536, buf,
                                      65536u * 512u),
               0);
    check_spec("read nlb 65536 slba 2^32", &c,
               (struct spec_fields){.opcode = 0x02, .nsid = 2,
                                    .addr = FAKE_ADDR,
                                    .data_len = 65536u * 512u, .cdw10 = 0,
                                    .cdw11 = 1, .cdw12 = 0xFFFF});

    /* The low/high split exactly at the 32-bit boundary. */
    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_write(&c, 3, 0xFFFFFFFFull, 2, buf, 1024), 0);
    check_spec("write slba 2^32-1", &c,
               (struct spec_fields){.opcode = 0x01, .nsid = 3,
                                    .addr = FAKE_ADDR, .data_len = 1024,
                                    .cdw10 = 0xFFFFFFFFu, .cdw11 = 0,
                                    .cdw12 = 1});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_write(&c, 1, 0x0000ABCD00001234ull, 65536,
                                       buf, 0x02000000u),
               0);
    check_spec("write nlb 65536 slba > 2^32", &c,
               (struct spec_fields){.opcode = 0x01, .nsid = 1,
                                    .addr = FAKE_ADDR,
                                    .data_len = 0x02000000u,
                                    .cdw10 = 0x00001234u,
                                    .cdw11 = 0x0000ABCDu, .cdw12 = 0xFFFF});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_write(&c, 1, 5, 1, buf, 4096), 0);
    check_spec("write nlb 1", &c,
               (struct spec_fields){.opcode = 0x01, .nsid = 1,
                                    .addr = FAKE_ADDR, .data_len = 4096,
                                    .cdw10 = 5, .cdw12 = 0});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_write_zeroes(&c, 1, (1ull << 40) + 5, 1), 0);
    check_spec("write_zeroes nlb 1", &c,
               (struct spec_fields){.opcode = 0x08, .nsid = 1, .cdw10 = 5,
                                    .cdw11 = 0x100, .cdw12 = 0});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_write_zeroes(&c, 9, 0, 300), 0);
    check_spec("write_zeroes nlb 300", &c,
               (struct spec_fields){.opcode = 0x08, .nsid = 9,
                                    .cdw12 = 299});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_flush(&c, 1), 0);
    check_spec("flush nsid 1", &c,
               (struct spec_fields){.opcode = 0x00, .nsid = 1});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_identify(&c, 1, RINGLINE_NVME_CNS_NAMESPACE,
                                          buf),
               0);
    check_spec("identify namespace", &c,
               (struct spec_fields){.opcode = 0x06, .nsid = 1,
                                    .addr = FAKE_ADDR, .data_len = 4096,
                                    .cdw10 = 0x00});

    garbage(&c);
    EXPECT_ERR(ringline_nvme_cmd_identify(&c, 0xFFFFFFFFu, 0xFF, buf), 0);
    check_spec("identify cns 0xff", &c,
               (struct spec_fields){.opcode = 0x06, .nsid = 0xFFFFFFFFu,
                                    .addr = FAKE_ADDR, .data_len = 4096,
                                    .cdw10 = 0xFF});
}

static void test_builder_errors(void)
{
    ringline_nvme_cmd_t c;
    char buf[512];
    static const uint8_t zero[CMD_BYTES];

    EXPECT_ERR(ringline_nvme_cmd_read(NULL, 1, 0, 1, buf, 512), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write(NULL, 1, 0, 1, buf, 512), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_flush(NULL, 1), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write_zeroes(NULL, 1, 0, 1), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_identify(NULL, 0, 1, buf), -EINVAL);

    const uint32_t bad_nlb[] = {0, 65537, 0x10000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_nlb / sizeof bad_nlb[0]; i++) {
        uint32_t n = bad_nlb[i];
        /* A refused build leaves an inert all-zero record, not garbage or a
         * half-built command. */
        garbage(&c);
        EXPECT_ERR(ringline_nvme_cmd_read(&c, 1, 0, n, buf, 512), -EINVAL);
        expect_bytes("refused read", &c, zero, CMD_BYTES);
        garbage(&c);
        EXPECT_ERR(ringline_nvme_cmd_write(&c, 1, 0, n, buf, 512), -EINVAL);
        expect_bytes("refused write", &c, zero, CMD_BYTES);
        garbage(&c);
        EXPECT_ERR(ringline_nvme_cmd_write_zeroes(&c, 1, 0, n), -EINVAL);
        expect_bytes("refused write_zeroes", &c, zero, CMD_BYTES);
    }

    EXPECT_ERR(ringline_nvme_cmd_read(&c, 1, 0, 1, NULL, 512), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write(&c, 1, 0, 1, NULL, 512), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_read(&c, 1, 0, 1, buf, 0), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_write(&c, 1, 0, 1, buf, 0), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_read(&c, 1, 0, 1, NULL, 0), -EINVAL);
    /* Identify always transfers 4096 bytes, and CNS is an 8-bit field. */
    EXPECT_ERR(ringline_nvme_cmd_identify(&c, 0, 1, NULL), -EINVAL);
    EXPECT_ERR(ringline_nvme_cmd_identify(&c, 0, 0x100, buf), -EINVAL);
}

static ringline_ring_t *new_ring(int big)
{
    ringline_config_t *cfg;
    ringline_ring_t *ring = NULL;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_sq_entries(cfg, 8));
    OK(ringline_config_set_big(cfg, big));
    int r = ringline_ring_new(cfg, &ring);
    OK(ringline_config_free(cfg));
    if (r == -ENOSYS || r == -EPERM)
        SKIP("io_uring unavailable (%s)", ringline_err_name(r));
    if (r == -EINVAL && big)
        SKIP("kernel refuses SQE128/CQE32 rings");
    if (r < 0)
        FAIL("ringline_ring_new(big=%d) -> %s", big, ringline_err_name(r));
    return ring;
}

static void test_op_errors(void)
{
    ringline_nvme_cmd_t c;
    ringline_nvme_cmd_flush(&c, 1);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(devnull >= 0);

    EXPECT_ERR(ringline_op_nvme(NULL, devnull, &c, 0, 1), -EBADF);

    /* Compared with the counts before, not with 0: the ring may hold an
     * SQE of its own (its wake-up read) until the first submit. */
    ringline_ring_t *small = new_ring(0);
    int pending0 = ringline_ring_sq_pending(small);
    CHECK(pending0 >= 0);
    EXPECT_ERR(ringline_op_nvme(small, devnull, &c, 0, 1), -EINVAL);
    EXPECT_ERR(ringline_op_nvme(small, devnull, &c, 1, 1), -EINVAL);
    EXPECT_ERR(ringline_op_nvme(small, devnull, NULL, 0, 1), -EINVAL);
    CHECK(ringline_ring_sq_pending(small) == pending0);
    CHECK(ringline_ring_inflight(small) == 0);
    OK(ringline_ring_destroy(small));
    EXPECT_ERR(ringline_op_nvme(small, devnull, &c, 0, 1), -EBADF);

    ringline_ring_t *big = new_ring(1);
    pending0 = ringline_ring_sq_pending(big);
    CHECK(pending0 >= 0);
    EXPECT_ERR(ringline_op_nvme(big, devnull, NULL, 0, 1), -EINVAL);
    EXPECT_ERR(ringline_op_nvme(big, devnull, &c, 0, RINGLINE_TOKEN_RESERVED),
               -EINVAL);
    EXPECT_ERR(ringline_op_nvme(big, devnull, &c, 0, RINGLINE_TOKEN_WAKE),
               -EINVAL);
    EXPECT_ERR(ringline_op_nvme(big, -1, &c, 0, 1), -EBADF);
    EXPECT_ERR(ringline_op_nvme(big, -100, &c, 0, 1), -EBADF);
    /* Refused calls must not leave an SQE behind. */
    CHECK(ringline_ring_sq_pending(big) == pending0);
    CHECK(ringline_ring_inflight(big) == 0);
    OK(ringline_ring_destroy(big));
    EXPECT_ERR(ringline_op_nvme(big, devnull, &c, 0, 1), -EBADF);
    close(devnull);
}

/* Find the unsubmitted SQE carrying token in a read-only mapping of the
 * ring's SQE array, and compare it with the SQE the kernel expects. */
static void check_queued_sqe(const uint8_t *sqes, unsigned n, uint64_t token,
                             int fd, uint8_t sqe_flags, uint32_t cmd_op,
                             const ringline_nvme_cmd_t *cmd, const char *what)
{
    const uint8_t *s = NULL;
    for (unsigned i = 0; i < n; i++) {
        uint64_t ud;
        memcpy(&ud, sqes + (size_t)i * SQE128_BYTES + 32, sizeof ud);
        if (ud == token && sqes[(size_t)i * SQE128_BYTES] ==
                               IORING_OP_URING_CMD) {
            s = sqes + (size_t)i * SQE128_BYTES;
            break;
        }
    }
    if (!s)
        FAIL("%s: no queued URING_CMD SQE with token %llu", what,
             (unsigned long long)token);

    uint8_t want[SQE128_BYTES] = {0};
    want[0] = IORING_OP_URING_CMD;
    want[1] = sqe_flags;
    put_le(want, 4, (uint32_t)fd, 4);
    put_le(want, 8, cmd_op, 4); /* __pad1 (12..15) must stay 0 */
    put_le(want, 32, token, 8);
    memcpy(want + SQE_CMD_OFF, cmd, CMD_BYTES);
    expect_bytes(what, s, want, SQE128_BYTES);
}

static ringline_cqe_t wait_for(ringline_ring_t *ring, ringline_cqe_t *seen,
                               unsigned *nseen, uint64_t token)
{
    for (unsigned i = 0; i < *nseen; i++)
        if (seen[i].token == token)
            return seen[i];
    uint64_t deadline = rl_now_ns() + 5000000000ull;
    for (;;) {
        ringline_cqe_t c[4];
        int n = ringline_ring_reap(ring, c, 4, 1, 50 * 1000000ll);
        if (n == -EINTR)
            continue;
        if (n < 0)
            FAIL("reap: %s", ringline_err_name(n));
        ringline_cqe_t *hit = NULL;
        for (int i = 0; i < n; i++) {
            if (*nseen >= 8)
                FAIL("too many completions");
            seen[(*nseen)++] = c[i];
            if (c[i].token == token)
                hit = &seen[*nseen - 1];
        }
        if (hit)
            return *hit;
        if (rl_now_ns() > deadline)
            FAIL("timed out waiting for token %llu",
                 (unsigned long long)token);
    }
}

static void test_op_not_nvme(void)
{
    ringline_ring_t *ring = new_ring(1);
    uint64_t f = 0;
    OK(ringline_ring_features(ring, &f));
    CHECK(f & RINGLINE_FEAT_BIG_SQE_CQE);
    int supported = ringline_ring_opcode_supported(ring, IORING_OP_URING_CMD);

    /* /dev/zero has no uring_cmd handler at all. /dev/null, since Linux
     * 6.0, has one that accepts any command and returns 0 (it exists for
     * LSM tests), so there success is right and only a crash or a
     * positive "NVMe status" is wrong. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int devzero = open("/dev/zero", O_RDWR | O_CLOEXEC);
    CHECK(devnull >= 0 && devzero >= 0);
    static char data[4096];

    ringline_nvme_cmd_t rd, id, fl;
    OK(ringline_nvme_cmd_read(&rd, 1, 0x123456789ull, 8, data, 4096));
    OK(ringline_nvme_cmd_identify(&id, 0, RINGLINE_NVME_CNS_CONTROLLER, data));
    OK(ringline_nvme_cmd_flush(&fl, 1));
    /* Every byte distinct, so a partial or shifted copy into the SQE shows;
     * /dev/null accepts whatever it is given. */
    ringline_nvme_cmd_t pat;
    for (size_t i = 0; i < sizeof pat; i++)
        ((uint8_t *)&pat)[i] = (uint8_t)(i + 1);
    ringline_nvme_cmd_t rd_copy = rd, id_copy = id, fl_copy = fl,
                        pat_copy = pat;
    int pending0 = ringline_ring_sq_pending(ring);
    CHECK(pending0 >= 0);

    const uint64_t t_null_io = 0x1111, t_null_admin = 0x00FE00000000002Aull,
                   t_zero_io = 0x2222, t_zero_admin = 0x2223,
                   t_fixed = 0x3333, t_pat = 0x4444;
    OK(ringline_op_nvme(ring, devnull, &rd, 0, t_null_io));
    OK(ringline_op_nvme(ring, devnull, &id, 1, t_null_admin));
    OK(ringline_op_nvme(ring, devzero, &rd, 0, t_zero_io));
    OK(ringline_op_nvme(ring, devzero, &id, 1, t_zero_admin));
    /* No file table is registered: the kernel must refuse the slot. */
    OK(ringline_op_nvme(ring, RINGLINE_FIXED(0), &fl, 0, t_fixed));
    OK(ringline_op_nvme(ring, devnull, &pat, 0, t_pat));
    /* The command is copied into the SQE: the caller's record is free to
     * change (or die) right after the call. */
    memset(&rd, 0xEE, sizeof rd);
    memset(&id, 0xEE, sizeof id);
    memset(&fl, 0xEE, sizeof fl);
    memset(&pat, 0xEE, sizeof pat);
    CHECK(ringline_ring_inflight(ring) == 6);
    CHECK(ringline_ring_sq_pending(ring) == pending0 + 6);

    int nsq = ringline_ring_sq_entries(ring);
    CHECK(nsq > 0);
    size_t len = (size_t)nsq * SQE128_BYTES;
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, ringline_ring_fd(ring),
                     IORING_OFF_SQES);
    if (map == MAP_FAILED) {
        fprintf(stderr, "note: cannot map the SQE array (%s); SQE bytes not "
                        "checked\n", strerror(errno));
    } else {
        check_queued_sqe(map, (unsigned)nsq, t_null_io, devnull, 0,
                         NVME_URING_CMD_IO, &rd_copy, "io SQE");
        check_queued_sqe(map, (unsigned)nsq, t_null_admin, devnull, 0,
                         NVME_URING_CMD_ADMIN, &id_copy, "admin SQE");
        check_queued_sqe(map, (unsigned)nsq, t_zero_io, devzero, 0,
                         NVME_URING_CMD_IO, &rd_copy, "io SQE (/dev/zero)");
        check_queued_sqe(map, (unsigned)nsq, t_fixed, 0, IOSQE_FIXED_FILE,
                         NVME_URING_CMD_IO, &fl_copy, "fixed-file SQE");
        check_queued_sqe(map, (unsigned)nsq, t_pat, devnull, 0,
                         NVME_URING_CMD_IO, &pat_copy, "patterned SQE");
        munmap(map, len);
    }

    ringline_cqe_t seen[8];
    unsigned nseen = 0;
    ringline_cqe_t c_null_io = wait_for(ring, seen, &nseen, t_null_io);
    ringline_cqe_t c_null_admin = wait_for(ring, seen, &nseen, t_null_admin);
    ringline_cqe_t c_zero_io = wait_for(ring, seen, &nseen, t_zero_io);
    ringline_cqe_t c_zero_admin = wait_for(ring, seen, &nseen, t_zero_admin);
    ringline_cqe_t c_fixed = wait_for(ring, seen, &nseen, t_fixed);
    ringline_cqe_t c_pat = wait_for(ring, seen, &nseen, t_pat);
    fprintf(stderr, "/dev/null io -> %d (%s), admin -> %d (%s)\n",
            c_null_io.res, ringline_err_name(c_null_io.res), c_null_admin.res,
            ringline_err_name(c_null_admin.res));
    fprintf(stderr, "/dev/zero io -> %d (%s), admin -> %d (%s)\n",
            c_zero_io.res, ringline_err_name(c_zero_io.res), c_zero_admin.res,
            ringline_err_name(c_zero_admin.res));
    fprintf(stderr, "unregistered fixed slot -> %d (%s)\n", c_fixed.res,
            ringline_err_name(c_fixed.res));
    CHECK(c_null_io.token == t_null_io && c_null_io.res <= 0);
    CHECK(c_null_admin.token == t_null_admin && c_null_admin.res <= 0);
    CHECK(c_zero_io.token == t_zero_io && c_zero_io.res < 0);
    CHECK(c_zero_admin.token == t_zero_admin && c_zero_admin.res < 0);
    CHECK(c_fixed.token == t_fixed && c_fixed.res < 0);
    CHECK(c_pat.token == t_pat && c_pat.res <= 0);
    for (unsigned i = 0; i < nseen; i++)
        CHECK(!(seen[i].flags & RINGLINE_CQE_F_MORE));
    if (supported == 1) {
        /* A well-formed SQE gets past prep (which refuses junk in __pad1 or
         * uring_cmd_flags with -EINVAL) and reaches the file. */
        EXPECT_ERR(c_zero_io.res, -EOPNOTSUPP);
        EXPECT_ERR(c_zero_admin.res, -EOPNOTSUPP);
        CHECK(c_null_io.res == 0 || c_null_io.res == -EOPNOTSUPP);
        CHECK(c_null_admin.res == 0 || c_null_admin.res == -EOPNOTSUPP);
        EXPECT_ERR(c_fixed.res, -EBADF);
    }
    CHECK(nseen == 6);
    CHECK(ringline_ring_inflight(ring) == 0);

    close(devnull);
    close(devzero);
    OK(ringline_ring_destroy(ring));
}

/* Opt-in: Identify Controller against a real /dev/ngXnY. */
static void test_real_device(void)
{
    const char *dev = getenv("RINGLINE_TEST_NVME_DEV");
    if (!dev || !*dev)
        return;
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        FAIL("open %s: %s", dev, strerror(errno));
    void *buf = NULL;
    OK(ringline_aligned_alloc(4096, 4096, &buf));
    ringline_ring_t *ring = new_ring(1);
    ringline_nvme_cmd_t c;
    OK(ringline_nvme_cmd_identify(&c, 0, RINGLINE_NVME_CNS_CONTROLLER, buf));
    OK(ringline_op_nvme(ring, fd, &c, 1, 77));
    ringline_cqe_t seen[8];
    unsigned nseen = 0;
    ringline_cqe_t r = wait_for(ring, seen, &nseen, 77);
    fprintf(stderr, "identify controller on %s -> %d (%s)\n", dev, r.res,
            r.res < 0 ? ringline_err_name(r.res) : "NVMe status");
    /* -ENOTTY is the driver refusing the cmd_op itself. */
    if (r.res == -ENOTTY || r.res == -EINVAL)
        FAIL("driver rejected the passthrough command: %s",
             ringline_err_name(r.res));
    if (r.res == 0) {
        /* Model number, bytes 24..63: ASCII, space padded. */
        const unsigned char *p = buf;
        for (int i = 24; i < 64; i++)
            CHECK(p[i] >= 0x20 && p[i] < 0x7F);
        fprintf(stderr, "model: %.40s\n", (const char *)p + 24);
    }
    OK(ringline_ring_destroy(ring));
    OK(ringline_aligned_free(buf));
    close(fd);
}

int main(void)
{
    test_kernel_abi();
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && UINTPTR_MAX > 0xFFFFFFFFu
    test_literal_images();
    test_field_images();
#else
    fprintf(stderr, "note: byte images assume a 64-bit little-endian host; "
                    "skipped\n");
#endif
    test_builder_errors();
    test_op_errors();
    test_op_not_nvme();
    test_real_device();
    printf("nvme encoding: ok\n");
    return 0;
}
