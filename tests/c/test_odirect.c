/* O_DIRECT file I/O: ringline_dio_alignment, ringline_aligned_alloc, 1 MiB
 * written in aligned pieces, fsync, read back and compared; misaligned
 * requests fail with -EINVAL in their completion; openat into a fixed slot
 * (and the allocation range) and reads through RINGLINE_FIXED(slot).
 * The file lives in the current directory (the build tree); a filesystem
 * without O_DIRECT (tmpfs) makes the test skip. */
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>

#include "rl_test.h"

#define MS 1000000ull
#define FILE_SIZE (1u << 20)
#define SEED 0x0D1EC7ull

static char path[64];

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

static const ringline_cqe_t *find(const ringline_cqe_t *c, int n,
                                  uint64_t token)
{
    for (int i = 0; i < n; i++)
        if (c[i].token == token)
            return &c[i];
    FAIL("no completion for token %llu", (unsigned long long)token);
}

static int one(ringline_ring_t *ring, uint64_t token)
{
    return rl_wait_token(ring, token, 10000).res;
}

static void cleanup_file(void)
{
    if (path[0])
        unlink(path);
}

static void check_pattern(const uint8_t *buf, size_t len, uint64_t file_off,
                          const char *what)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] != rl_pattern(SEED, file_off + i))
            FAIL("%s: byte %zu (file offset %llu) is 0x%02x, want 0x%02x",
                 what, i, (unsigned long long)(file_off + i), buf[i],
                 rl_pattern(SEED, file_off + i));
}

static int is_pow2(unsigned x) { return x && !(x & (x - 1)); }

int main(void)
{
    alarm(60);
    snprintf(path, sizeof path, "rl_odirect_%d.dat", (int)getpid());
    atexit(cleanup_file);

    struct statfs sfs;
    if (statfs(".", &sfs) == 0)
        printf("cwd filesystem type 0x%lx\n", (unsigned long)sfs.f_type);

    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC,
                  0600);
    if (fd < 0 && errno == EINVAL) {
        unlink(path);
        SKIP("the filesystem of the working directory lacks O_DIRECT");
    }
    if (fd < 0)
        FAIL("open %s: %s", path, strerror(errno));

    /* ---- alignment ---- */
    unsigned mem_align = 0, off_align = 0;
    int rc = ringline_dio_alignment(fd, &mem_align, &off_align);
    if (rc < 0)
        FAIL("dio_alignment -> %d (%s)", rc, ringline_err_name(rc));
    printf("O_DIRECT alignment: memory %u, offset/length %u\n", mem_align,
           off_align);
    CHECK(is_pow2(mem_align) && mem_align <= 4096);
    CHECK(is_pow2(off_align) && off_align <= 4096);

    /* ---- aligned buffers ---- */
    uint8_t *wbuf = NULL, *rbuf = NULL;
    OK(ringline_aligned_alloc(FILE_SIZE, 0, (void **)&wbuf));
    CHECK(wbuf != NULL);
    CHECK(((uintptr_t)wbuf & 4095) == 0); /* 0 = page size */
    size_t align = off_align > mem_align ? off_align : mem_align;
    if (align < sizeof(void *))
        align = sizeof(void *);
    if (align < 4096)
        align = 4096; /* page-aligned: the misaligned check relies on it */
    OK(ringline_aligned_alloc(FILE_SIZE, align, (void **)&rbuf));
    CHECK(((uintptr_t)rbuf & (align - 1)) == 0);
    for (size_t i = 0; i < FILE_SIZE; i++)
        if (wbuf[i] || rbuf[i])
            FAIL("aligned_alloc memory not zero-filled at %zu", i);
    for (size_t i = 0; i < FILE_SIZE; i++)
        wbuf[i] = rl_pattern(SEED, i);

    ringline_ring_t *ring = NULL;
    OK(ringline_ring_new(NULL, &ring));
    ringline_cqe_t cq[16];

    /* ---- 1 MiB in eight 128 KiB writes, all in flight at once ---- */
    const unsigned piece = FILE_SIZE / 8;
    for (unsigned i = 0; i < 8; i++)
        OK(ringline_op_write(ring, fd, wbuf + i * piece, piece,
                             (uint64_t)i * piece, 1 + i));
    CHECK(collect(ring, cq, 8, 10000) == 8);
    for (unsigned i = 0; i < 8; i++) {
        int res = find(cq, 8, 1 + i)->res;
        if (res != (int)piece)
            FAIL("write %u -> %d (%s), want %u", i, res,
                 ringline_err_name(res), piece);
    }
    OK(ringline_op_fsync(ring, fd, 0, 20));
    EXPECT_ERR(one(ring, 20), 0);
    OK(ringline_op_fsync(ring, fd, RINGLINE_FSYNC_DATASYNC, 21));
    EXPECT_ERR(one(ring, 21), 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == FILE_SIZE);

    /* ---- read back in four 256 KiB reads ---- */
    for (unsigned i = 0; i < 4; i++)
        OK(ringline_op_read(ring, fd, rbuf + i * (FILE_SIZE / 4),
                            FILE_SIZE / 4, (uint64_t)i * (FILE_SIZE / 4),
                            30 + i));
    CHECK(collect(ring, cq, 4, 10000) == 4);
    for (unsigned i = 0; i < 4; i++)
        CHECK(find(cq, 4, 30 + i)->res == (int)(FILE_SIZE / 4));
    check_pattern(rbuf, FILE_SIZE, 0, "read back");

    /* readv: two 4 KiB iovecs from offset 8 KiB. */
    memset(rbuf, 0, 8192);
    struct iovec iov[2] = {{rbuf, 4096}, {rbuf + 4096, 4096}};
    OK(ringline_op_readv(ring, fd, iov, 2, 8192, 35));
    EXPECT_ERR(one(ring, 35), 8192);
    check_pattern(rbuf, 8192, 8192, "readv");

    /* At EOF: 0 bytes. */
    OK(ringline_op_read(ring, fd, rbuf, 4096, FILE_SIZE, 36));
    EXPECT_ERR(one(ring, 36), 0);

    /* ---- misaligned requests fail in their completion ---- */
    if (mem_align > 1) {
        /* Linux 6.18 only rejects misaligned memory when the pages it spans
         * give non-block-sized pieces (512 bytes at buf+1 inside one page
         * is accepted), so read 4 KiB at page + 1: pieces 4095 + 1. */
        OK(ringline_op_read(ring, fd, rbuf + 1, 4096, 0, 40));
        EXPECT_ERR(one(ring, 40), -EINVAL);
    } else {
        printf("memory alignment 1: misaligned-buffer check skipped\n");
    }
    if (off_align > 1) {
        OK(ringline_op_read(ring, fd, rbuf, off_align, 1, 41));
        EXPECT_ERR(one(ring, 41), -EINVAL);
        OK(ringline_op_read(ring, fd, rbuf, off_align - 1, 0, 42));
        EXPECT_ERR(one(ring, 42), -EINVAL);
        OK(ringline_op_write(ring, fd, wbuf, off_align, off_align / 2, 43));
        EXPECT_ERR(one(ring, 43), -EINVAL);
    } else {
        printf("offset alignment 1: misaligned-offset check skipped\n");
    }
    /* The failed write must not have touched the file. */
    memset(rbuf, 0, 4096);
    OK(ringline_op_read(ring, fd, rbuf, 4096, 0, 44));
    EXPECT_ERR(one(ring, 44), 4096);
    check_pattern(rbuf, 4096, 0, "after misaligned write");

    /* ---- openat into a fixed slot, read through RINGLINE_FIXED ---- */
    OK(ringline_files_register(ring, 4, 2));
    int slot = OK(ringline_files_alloc(ring));
    CHECK(slot < 2);
    OK(ringline_op_openat(ring, AT_FDCWD, path, O_RDONLY | O_DIRECT, 0,
                          (unsigned)slot, 50));
    rc = one(ring, 50);
    if (rc < 0)
        FAIL("openat into slot %d -> %d (%s)", slot, rc, ringline_err_name(rc));
    memset(rbuf, 0, 65536);
    OK(ringline_op_read(ring, RINGLINE_FIXED(slot), rbuf, 65536, 512 * 1024,
                        51));
    EXPECT_ERR(one(ring, 51), 65536);
    check_pattern(rbuf, 65536, 512 * 1024, "fixed-slot read");

    /* Kernel-chosen slot from the allocation range (slots 2..3). */
    OK(ringline_op_openat(ring, AT_FDCWD, path, O_RDONLY | O_DIRECT, 0,
                          RINGLINE_FILE_ALLOC, 52));
    int aslot = one(ring, 52);
    if (aslot < 2 || aslot > 3)
        FAIL("openat FILE_ALLOC -> %d (%s), want slot 2 or 3", aslot,
             ringline_err_name(aslot));
    memset(rbuf, 0, 4096);
    OK(ringline_op_read(ring, RINGLINE_FIXED(aslot), rbuf, 4096,
                        FILE_SIZE - 4096, 53));
    EXPECT_ERR(one(ring, 53), 4096);
    check_pattern(rbuf, 4096, FILE_SIZE - 4096, "allocated-slot read");

    /* Plain fd result. */
    OK(ringline_op_openat(ring, AT_FDCWD, path, O_RDONLY | O_DIRECT |
                          O_CLOEXEC, 0, RINGLINE_NO_SLOT, 54));
    int pfd = one(ring, 54);
    if (pfd < 0)
        FAIL("openat NO_SLOT -> %d (%s)", pfd, ringline_err_name(pfd));
    OK(ringline_op_read(ring, pfd, rbuf, 4096, 4096, 55));
    EXPECT_ERR(one(ring, 55), 4096);
    check_pattern(rbuf, 4096, 4096, "plain-fd read");
    OK(ringline_op_close(ring, pfd, 56));
    EXPECT_ERR(one(ring, 56), 0);

    /* A missing file fails in the completion. */
    OK(ringline_op_openat(ring, AT_FDCWD, "rl_odirect_does_not_exist", O_RDONLY,
                          0, RINGLINE_NO_SLOT, 57));
    EXPECT_ERR(one(ring, 57), -ENOENT);

    /* Close both slots. */
    OK(ringline_op_close(ring, RINGLINE_FIXED(slot), 60));
    EXPECT_ERR(one(ring, 60), 0);
    OK(ringline_files_release(ring, (unsigned)slot));
    OK(ringline_op_close(ring, RINGLINE_FIXED(aslot), 61));
    EXPECT_ERR(one(ring, 61), 0);
    /* The emptied slot no longer reads. */
    OK(ringline_op_read(ring, RINGLINE_FIXED(slot), rbuf, 4096, 0, 62));
    EXPECT_ERR(one(ring, 62), -EBADF);
    CHECK(ringline_ring_inflight(ring) == 0);

    OK(ringline_ring_destroy(ring));
    close(fd);
    CHECK(unlink(path) == 0);
    path[0] = 0;
    OK(ringline_aligned_free(wbuf));
    OK(ringline_aligned_free(rbuf));
    printf("odirect OK\n");
    return 0;
}
