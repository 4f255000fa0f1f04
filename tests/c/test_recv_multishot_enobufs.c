/* Multishot recv over a tiny buffer ring (4 x 64 bytes) while the peer streams
 * 64 KiB: the recv runs dry (-ENOBUFS, no F_MORE), buffers go back in
 * batches, the recv is re-armed, and every byte must arrive exactly once and
 * in order. Also: bgid/bid in completions, the available count, double
 * returns (-EINVAL), and bufring_destroy refusing (-EBUSY) while the recv is
 * in flight. */
#include "rl_net.h"

#define BGID 7
#define NBUF 4
#define BSIZE 64
#define TOTAL (64 * 1024)
#define SEED 0x5EED
#define T_RECV 0x77

struct writer {
    int fd;
    int started;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    static uint8_t chunk[1500];
    size_t off = 0;
    unsigned step = 1;
    while (off < TOTAL) {
        /* varying write sizes: 1..1500 bytes */
        size_t n = (step * 397) % 1500 + 1;
        step++;
        if (n > TOTAL - off)
            n = TOTAL - off;
        rln_fill_pattern(chunk, n, SEED, off);
        rl_write_all(w->fd, chunk, n);
        off += n;
    }
    shutdown(w->fd, SHUT_WR);
    return NULL;
}

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(0, 0);
    rl_require(ring, RINGLINE_FEAT_BUF_RING | RINGLINE_FEAT_RECV_MULTISHOT,
               "buffer rings / multishot recv");

    OK(ringline_bufring_create(ring, BGID, NBUF, BSIZE));
    EXPECT_ERR(ringline_bufring_create(ring, BGID, NBUF, BSIZE), -EEXIST);
    CHECK(ringline_bufring_count(ring, BGID) == NBUF);
    CHECK(ringline_bufring_size(ring, BGID) == BSIZE);
    CHECK(ringline_bufring_available(ring, BGID) == NBUF);
    void *addrs[NBUF];
    for (uint16_t b = 0; b < NBUF; b++) {
        CHECK(ringline_bufring_addr(ring, BGID, b, &addrs[b]) == BSIZE);
        CHECK(addrs[b] != NULL);
    }
    /* Returning a buffer the kernel already holds is a double return. */
    {
        uint16_t b0 = 0;
        EXPECT_ERR(ringline_bufring_return(ring, BGID, &b0, 1), -EINVAL);
        CHECK(ringline_bufring_available(ring, BGID) == NBUF);
    }

    int cli, srv;
    rl_tcp_pair(&cli, &srv);
    rln_sock_timeout(cli, 10000);

    /* Armed before any data: destroying the group must be refused. */
    OK(ringline_op_recv_multishot(ring, srv, BGID, 0, T_RECV));
    rln_submit(ring);
    EXPECT_ERR(ringline_bufring_destroy(ring, BGID), -EBUSY);
    CHECK(ringline_bufring_count(ring, BGID) == NBUF); /* still there */

    struct writer w = {.fd = cli};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, writer_main, &w) == 0);

    size_t off = 0;
    int armed = 1, eof = 0;
    unsigned enobufs = 0, rearms = 0, chunks = 0, batches = 0;
    int double_checked = 0;
    uint16_t held[NBUF];
    unsigned nheld = 0;
    uint64_t deadline = rl_now_ns() + 20ull * 1000000000ull;

    while (!eof) {
        if (rl_now_ns() > deadline)
            FAIL("stuck: %zu of %d bytes, armed=%d held=%u enobufs=%u", off,
                 TOTAL, armed, nheld, enobufs);
        if (!armed) {
            OK(ringline_op_recv_multishot(ring, srv, BGID, 0, T_RECV));
            armed = 1;
            rearms++;
        }
        ringline_cqe_t cs[16];
        int n = rln_reap(ring, cs, 16, 1, 50 * 1000000ll);
        for (int i = 0; i < n; i++) {
            ringline_cqe_t *c = &cs[i];
            if (c->token != T_RECV)
                FAIL("unexpected token %llu", (unsigned long long)c->token);
            if (!armed)
                FAIL("completion after the multishot recv had ended");
            if (!(c->flags & RINGLINE_CQE_F_MORE))
                armed = 0;
            if (c->res > 0) {
                if (!(c->flags & RINGLINE_CQE_F_BUFFER))
                    FAIL("data completion without F_BUFFER");
                if (c->bgid != BGID)
                    FAIL("cqe.bgid %u, want %u", c->bgid, BGID);
                if (c->bid >= NBUF)
                    FAIL("cqe.bid %u out of range", c->bid);
                for (unsigned h = 0; h < nheld; h++)
                    if (held[h] == c->bid)
                        FAIL("bid %u handed out twice without a return",
                             c->bid);
                if (c->res > BSIZE)
                    FAIL("recv of %d bytes into a %d-byte buffer", c->res,
                         BSIZE);
                if (off + (size_t)c->res > TOTAL)
                    FAIL("more bytes than were sent");
                long bad = rln_check_pattern(addrs[c->bid], (size_t)c->res,
                                             SEED, off);
                if (bad >= 0)
                    FAIL("byte %zu wrong (bid %u): data lost, duplicated or "
                         "reordered",
                         off + (size_t)bad, c->bid);
                off += (size_t)c->res;
                chunks++;
                held[nheld++] = c->bid;
            } else if (c->res == -ENOBUFS) {
                if (c->flags & RINGLINE_CQE_F_MORE)
                    FAIL("-ENOBUFS with F_MORE");
                if (c->flags & RINGLINE_CQE_F_BUFFER)
                    FAIL("-ENOBUFS with F_BUFFER");
                enobufs++;
            } else if (c->res == 0) {
                if (c->flags & RINGLINE_CQE_F_MORE)
                    FAIL("EOF completion with F_MORE");
                if (off != TOTAL)
                    FAIL("EOF after %zu of %d bytes", off, TOTAL);
                eof = 1;
            } else {
                FAIL("multishot recv -> %d (%s)", c->res, rln_res(c->res));
            }
        }
        /* The library's count of kernel-held buffers matches ours. */
        int avail = ringline_bufring_available(ring, BGID);
        if (avail != (int)(NBUF - nheld))
            FAIL("bufring_available %d, but the caller holds %u of %d", avail,
                 nheld, NBUF);

        /* First half: give buffers back eagerly in pairs while armed.
         * Second half: hold them until the recv runs dry. */
        int give = 0;
        if (!armed && nheld)
            give = 1;
        else if (off < TOTAL / 2 && nheld >= 2)
            give = 1;
        if (!give)
            continue;

        if (!armed && enobufs && !double_checked && nheld >= 3) {
            /* Double returns fail as a whole and return nothing. */
            OK(ringline_bufring_return(ring, BGID, held, 1));
            CHECK(ringline_bufring_available(ring, BGID) ==
                  (int)(NBUF - nheld + 1));
            EXPECT_ERR(ringline_bufring_return(ring, BGID, held, 1), -EINVAL);
            uint16_t mixed[2] = {held[1], held[0]};
            EXPECT_ERR(ringline_bufring_return(ring, BGID, mixed, 2), -EINVAL);
            uint16_t twice[2] = {held[1], held[1]};
            EXPECT_ERR(ringline_bufring_return(ring, BGID, twice, 2), -EINVAL);
            CHECK(ringline_bufring_available(ring, BGID) ==
                  (int)(NBUF - nheld + 1));
            OK(ringline_bufring_return(ring, BGID, held + 1, nheld - 1));
            double_checked = 1;
        } else {
            OK(ringline_bufring_return(ring, BGID, held, nheld));
        }
        batches++;
        nheld = 0;
        CHECK(ringline_bufring_available(ring, BGID) == NBUF);
    }
    pthread_join(th, NULL);

    if (off != TOTAL)
        FAIL("got %zu of %d bytes", off, TOTAL);
    if (!enobufs)
        FAIL("the recv never ran dry (-ENOBUFS); the test did not test it");
    if (!double_checked)
        FAIL("double-return check never ran");
    CHECK(ringline_ring_inflight(ring) == 0);
    rln_expect_none(ring, 30);

    /* All buffers back with the kernel; nothing in flight: destroy works. */
    CHECK(ringline_bufring_available(ring, BGID) == NBUF);
    OK(ringline_bufring_destroy(ring, BGID));
    CHECK(ringline_bufring_count(ring, BGID) < 0); /* gone */
    /* the bgid can be created again */
    OK(ringline_bufring_create(ring, BGID, NBUF, BSIZE));
    OK(ringline_bufring_destroy(ring, BGID));

    OK(ringline_ring_destroy(ring));
    close(cli);
    close(srv);
    printf("recv_multishot_enobufs: ok (%u chunks, %u -ENOBUFS, %u re-arms, "
           "%u return batches)\n",
           chunks, enobufs, rearms, batches);
    return 0;
}
