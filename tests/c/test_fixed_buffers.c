/* Registered (fixed) buffers: ringline_buffers_register of two aligned
 * buffers, write_fixed / read_fixed on a regular file, bad buffer indexes
 * and ranges give an error completion (or a refusal) instead of a crash,
 * unregister, double unregister, re-register.
 *
 * Observed (Linux 6.18): ringline refuses an out-of-range buf_index when the
 * op is queued (-EINVAL; raw liburing would get -EFAULT in the completion);
 * memory outside the named buffer completes with -EFAULT from the kernel; a
 * second register gives -EBUSY and a second unregister -ENXIO. */
#include <sys/uio.h>

#include "rl_test.h"

#define MS 1000000ull
#define BUFSZ 65536u

static char path[64];

static void cleanup_file(void)
{
    if (path[0])
        unlink(path);
}

static int collect(ringline_ring_t *ring, ringline_cqe_t *out, int n,
                   int timeout_ms)
{
    uint64_t deadline = rl_now_ns() + (uint64_t)timeout_ms * MS;
    int got = 0;
    while (got < n) {
        uint64_t now = rl_now_ns();
        if (now >= deadline)
            break;
        int64_t left = (int64_t)(deadline - now);
        if (left > 50 * (int64_t)MS)
            left = 50 * (int64_t)MS;
        int r = ringline_ring_reap(ring, out + got, (unsigned)(n - got), 1,
                                   left);
        if (r == -EINTR)
            continue;
        if (r < 0)
            FAIL("reap -> %d (%s)", r, ringline_err_name(r));
        got += r;
    }
    return got;
}

static int one(ringline_ring_t *ring, uint64_t token)
{
    return rl_wait_token(ring, token, 5000).res;
}

/* An operation that must fail: either refused when queued (a negative
 * return), or failing in its completion. Returns the error seen. */
static int must_fail(ringline_ring_t *ring, int queued, uint64_t token,
                     const char *what)
{
    int err = queued;
    const char *where = "when queued";
    if (queued == 0) {
        err = one(ring, token);
        where = "in the completion";
    }
    if (err >= 0)
        FAIL("%s succeeded (%d)", what, err);
    printf("%s: %d (%s) %s\n", what, err, ringline_err_name(err), where);
    return err;
}

int main(void)
{
    alarm(60);
    snprintf(path, sizeof path, "rl_fixedbuf_%d.dat", (int)getpid());
    atexit(cleanup_file);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        FAIL("open %s: %s", path, strerror(errno));

    uint8_t *b0 = NULL, *b1 = NULL;
    OK(ringline_aligned_alloc(BUFSZ, 4096, (void **)&b0));
    OK(ringline_aligned_alloc(BUFSZ, 4096, (void **)&b1));
    for (unsigned i = 0; i < BUFSZ; i++)
        b0[i] = rl_pattern(1, i);

    ringline_ring_t *ring = NULL;
    OK(ringline_ring_new(NULL, &ring));
    struct iovec iov[2] = {{b0, BUFSZ}, {b1, BUFSZ}};
    OK(ringline_buffers_register(ring, iov, 2));
    /* The iovec array itself need not outlive the call. */
    memset(iov, 0, sizeof iov);

    /* ---- whole buffers ---- */
    OK(ringline_op_write_fixed(ring, fd, b0, BUFSZ, 0, 0, 1));
    EXPECT_ERR(one(ring, 1), (int)BUFSZ);
    OK(ringline_op_read_fixed(ring, fd, b1, BUFSZ, 0, 1, 2));
    EXPECT_ERR(one(ring, 2), (int)BUFSZ);
    if (memcmp(b0, b1, BUFSZ) != 0)
        FAIL("read_fixed data differs from write_fixed data");

    /* ---- sub-ranges at odd addresses and offsets ---- */
    for (unsigned i = 0; i < 1000; i++)
        b0[100 + i] = rl_pattern(2, i);
    OK(ringline_op_write_fixed(ring, fd, b0 + 100, 1000, BUFSZ + 3, 0, 3));
    EXPECT_ERR(one(ring, 3), 1000);
    memset(b1, 0, BUFSZ);
    OK(ringline_op_read_fixed(ring, fd, b1 + 7, 1000, BUFSZ + 3, 1, 4));
    EXPECT_ERR(one(ring, 4), 1000);
    for (unsigned i = 0; i < 1000; i++)
        if (b1[7 + i] != rl_pattern(2, i))
            FAIL("sub-range byte %u differs", i);
    CHECK(b1[6] == 0 && b1[1007] == 0);

    /* The last byte of a buffer is inside it. */
    OK(ringline_op_read_fixed(ring, fd, b1 + BUFSZ - 1, 1, 0, 1, 5));
    EXPECT_ERR(one(ring, 5), 1);

    /* Several fixed ops in flight at once. */
    for (unsigned i = 0; i < 8; i++)
        OK(ringline_op_read_fixed(ring, fd, b1 + i * 4096, 4096, i * 4096,
                                  1, 10 + i));
    ringline_cqe_t cq[8];
    CHECK(collect(ring, cq, 8, 5000) == 8);
    for (int i = 0; i < 8; i++)
        CHECK(cq[i].res == 4096);
    for (unsigned i = 0; i < 8 * 4096; i++)
        if (b1[i] != rl_pattern(1, i))
            FAIL("parallel read_fixed byte %u differs", i);

    /* ---- bad index / bad range: error, not a crash ---- */
    int e;
    e = must_fail(ring, ringline_op_read_fixed(ring, fd, b1, 16, 0, 2, 20),
                  20, "read_fixed buf_index 2 of 2");
    CHECK(e == -EFAULT || e == -EINVAL);
    e = must_fail(ring,
                  ringline_op_read_fixed(ring, fd, b1, 16, 0, 0xFFFFFFFFu, 21),
                  21, "read_fixed buf_index 0xFFFFFFFF");
    CHECK(e == -EFAULT || e == -EINVAL);
    e = must_fail(ring, ringline_op_write_fixed(ring, fd, b0, 16, 0, 65536, 22),
                  22, "write_fixed buf_index 65536");
    CHECK(e == -EFAULT || e == -EINVAL);
    /* Memory of buffer 1 named as buffer 0. */
    e = must_fail(ring, ringline_op_read_fixed(ring, fd, b1, 16, 0, 0, 23),
                  23, "read_fixed buffer 1 memory under index 0");
    CHECK(e == -EFAULT || e == -EINVAL);
    /* Running past the end of the registered buffer. */
    e = must_fail(ring,
                  ringline_op_read_fixed(ring, fd, b0 + BUFSZ - 10, 20, 0, 0,
                                         24),
                  24, "read_fixed past the buffer's end");
    CHECK(e == -EFAULT || e == -EINVAL);
    /* Bad fd still -EBADF. */
    EXPECT_ERR(ringline_op_read_fixed(ring, -1, b0, 16, 0, 0, 25), -EBADF);
    CHECK(ringline_ring_inflight(ring) == 0);

    /* The registration is intact after all of that. */
    OK(ringline_op_read_fixed(ring, fd, b0, 4096, 0, 0, 26));
    EXPECT_ERR(one(ring, 26), 4096);

    /* ---- register twice without unregistering: refused ---- */
    struct iovec iov1[1] = {{b0, BUFSZ}};
    int r2 = ringline_buffers_register(ring, iov1, 1);
    printf("second register while registered: %d (%s)\n", r2,
           ringline_err_name(r2));
    CHECK(r2 < 0);

    /* ---- unregister, double unregister ---- */
    OK(ringline_buffers_unregister(ring));
    int u2 = ringline_buffers_unregister(ring);
    printf("second unregister: %d (%s)\n", u2, ringline_err_name(u2));
    if (u2 >= 0)
        FAIL("second unregister succeeded (%d)", u2);

    /* Fixed ops with nothing registered fail. */
    must_fail(ring, ringline_op_read_fixed(ring, fd, b1, 16, 0, 0, 30), 30,
              "read_fixed after unregister");

    /* ---- re-register (one buffer) and use it ---- */
    struct iovec iov2[1] = {{b1, BUFSZ}};
    OK(ringline_buffers_register(ring, iov2, 1));
    memset(b1, 0, BUFSZ);
    OK(ringline_op_read_fixed(ring, fd, b1, BUFSZ, 0, 0, 31));
    EXPECT_ERR(one(ring, 31), (int)BUFSZ);
    for (unsigned i = 0; i < BUFSZ; i++)
        if (b1[i] != rl_pattern(1, i))
            FAIL("re-registered read byte %u differs", i);
    e = must_fail(ring, ringline_op_read_fixed(ring, fd, b1, 16, 0, 1, 32),
                  32, "read_fixed index 1 after re-registering one buffer");
    CHECK(e == -EFAULT || e == -EINVAL);

    /* Destroy with buffers still registered: the ring cleans up. */
    CHECK(ringline_ring_inflight(ring) == 0);
    OK(ringline_ring_destroy(ring));

    close(fd);
    CHECK(unlink(path) == 0);
    path[0] = 0;
    OK(ringline_aligned_free(b0));
    OK(ringline_aligned_free(b1));
    printf("fixed_buffers OK\n");
    return 0;
}
