/* Accept straight into the fixed-file table: multishot accept direct lands in
 * the kernel's allocation range [32, 64), single-shot accept direct into a
 * slot from ringline_files_alloc; I/O and close through RINGLINE_FIXED(slot);
 * the caller-range allocator (install / update / remove / release, -ENFILE). */
#include "rl_net.h"

#define TOTAL 64
#define AUTO 32
#define CALLER (TOTAL - AUTO)

enum {
    T_MACC = 1,
    T_CANCEL,
    T_ACC1,
    T_SEND_BAD,
    T_RECV_BAD,
    T_RECV_BASE = 100,
    T_SEND_BASE = 200,
    T_CLOSE_BASE = 300,
};

static void recv_fixed_exact(ringline_ring_t *ring, unsigned slot, char *buf,
                             size_t len, uint64_t token)
{
    size_t got = 0;
    while (got < len) {
        OK(ringline_op_recv(ring, RINGLINE_FIXED(slot), buf + got, len - got,
                            0, token));
        ringline_cqe_t c = rl_wait_token(ring, token, 3000);
        if (c.res <= 0)
            FAIL("recv on fixed slot %u -> %d (%s)", slot, c.res,
                 rln_res(c.res));
        got += (size_t)c.res;
    }
}

static void send_fixed_exact(ringline_ring_t *ring, unsigned slot,
                             const char *buf, size_t len, uint64_t token)
{
    size_t done = 0;
    while (done < len) {
        OK(ringline_op_send(ring, RINGLINE_FIXED(slot), buf + done,
                            len - done, MSG_NOSIGNAL, token));
        ringline_cqe_t c = rl_wait_token(ring, token, 3000);
        if (c.res <= 0)
            FAIL("send on fixed slot %u -> %d (%s)", slot, c.res,
                 rln_res(c.res));
        done += (size_t)c.res;
    }
}

static void close_fixed(ringline_ring_t *ring, unsigned slot, uint64_t token)
{
    OK(ringline_op_close(ring, RINGLINE_FIXED(slot), token));
    ringline_cqe_t c = rl_wait_token(ring, token, 3000);
    if (c.res != 0)
        FAIL("close of fixed slot %u -> %d (%s)", slot, c.res,
             rln_res(c.res));
}

/* The client must see EOF once the only reference (the slot) is closed. */
static void expect_eof(int fd)
{
    char ch;
    ssize_t n;
    do
        n = read(fd, &ch, 1);
    while (n < 0 && errno == EINTR);
    if (n != 0)
        FAIL("client expected EOF after close-direct, read -> %zd (%s)", n,
             n < 0 ? strerror(errno) : "data");
}

int main(void)
{
    rln_watchdog(60);
    ringline_ring_t *ring = rln_ring(0, 0);
    rl_require(ring, RINGLINE_FEAT_ACCEPT_MULTISHOT | RINGLINE_FEAT_SPARSE_FILES |
                         RINGLINE_FEAT_FILE_ALLOC_RANGE,
               "multishot accept / sparse files / file alloc range");

    OK(ringline_files_register(ring, TOTAL, AUTO));
    CHECK(ringline_files_count(ring) == TOTAL);

    uint16_t port;
    int lfd = rl_listen_tcp(&port);

    /* ---- multishot accept direct into the auto range ---- */
    enum { NCLI = 3 };
    OK(ringline_op_accept(ring, lfd, NULL, NULL, 0,
                          RINGLINE_ACCEPT_DIRECT | RINGLINE_ACCEPT_MULTISHOT,
                          RINGLINE_FILE_ALLOC, T_MACC));
    rln_submit(ring);
    int clis[NCLI];
    for (int i = 0; i < NCLI; i++) {
        clis[i] = rl_connect_tcp(port);
        rln_sock_timeout(clis[i], 3000);
    }
    ringline_cqe_t cs[NCLI];
    rln_reap_n(ring, cs, NCLI, 3000);
    unsigned slots[NCLI];
    for (int i = 0; i < NCLI; i++) {
        CHECK(cs[i].token == T_MACC);
        if (cs[i].res < 0)
            FAIL("multishot accept direct -> %d (%s)", cs[i].res,
                 rln_res(cs[i].res));
        if (!(cs[i].flags & RINGLINE_CQE_F_MORE))
            FAIL("multishot accept direct completion lacks F_MORE");
        if (cs[i].res < CALLER || cs[i].res >= TOTAL)
            FAIL("accepted into slot %d, outside the auto range [%d,%d)",
                 cs[i].res, CALLER, TOTAL);
        slots[i] = (unsigned)cs[i].res;
        for (int j = 0; j < i; j++)
            CHECK(slots[j] != slots[i]);
    }

    /* Each client says who it is; the slot answers that client. */
    for (int i = 0; i < NCLI; i++) {
        char m[5] = {'c', 'l', 'i', '-', (char)('0' + i)};
        rl_write_all(clis[i], m, 5);
    }
    for (int i = 0; i < NCLI; i++) {
        char m[6] = {0};
        recv_fixed_exact(ring, slots[i], m, 5, T_RECV_BASE + i);
        CHECK(memcmp(m, "cli-", 4) == 0);
        int who = m[4] - '0';
        CHECK(who >= 0 && who < NCLI);
        char r[5] = {'s', 'r', 'v', '-', (char)('0' + who)};
        send_fixed_exact(ring, slots[i], r, 5, T_SEND_BASE + i);
        char in[6] = {0};
        rln_read_all(clis[who], in, 5);
        CHECK(memcmp(in, r, 5) == 0);
    }
    for (int i = 0; i < NCLI; i++)
        close_fixed(ring, slots[i], T_CLOSE_BASE + i);
    for (int i = 0; i < NCLI; i++) {
        expect_eof(clis[i]);
        close(clis[i]);
    }

    /* Closed slots are empty: I/O on them fails with -EBADF. */
    {
        char b[4];
        OK(ringline_op_recv(ring, RINGLINE_FIXED(slots[0]), b, sizeof b, 0,
                            T_RECV_BAD));
        ringline_cqe_t c = rl_wait_token(ring, T_RECV_BAD, 3000);
        if (c.res != -EBADF)
            FAIL("recv on closed slot -> %d (%s), want -EBADF", c.res,
                 rln_res(c.res));
    }

    /* The multishot accept is still armed: one more client, then cancel. */
    {
        int c4 = rl_connect_tcp(port);
        ringline_cqe_t c = rl_wait_token(ring, T_MACC, 3000);
        CHECK(c.res >= CALLER && c.res < TOTAL);
        CHECK(c.flags & RINGLINE_CQE_F_MORE);
        OK(ringline_op_cancel(ring, T_MACC, 0, T_CANCEL));
        ringline_cqe_t cc[2];
        rln_reap_n(ring, cc, 2, 3000);
        ringline_cqe_t a = rln_find(cc, 2, T_MACC);
        ringline_cqe_t k = rln_find(cc, 2, T_CANCEL);
        if (a.res != -ECANCELED || (a.flags & RINGLINE_CQE_F_MORE))
            FAIL("cancelled accept -> %d (%s) flags %#x", a.res,
                 rln_res(a.res), a.flags);
        CHECK(k.res == 0);
        close_fixed(ring, (unsigned)c.res, T_CLOSE_BASE + 10);
        close(c4);
    }

    /* ---- single-shot accept direct into a caller-chosen slot ---- */
    {
        int s0 = OK(ringline_files_alloc(ring));
        int s1 = OK(ringline_files_alloc(ring));
        CHECK(s0 >= 0 && s0 < CALLER && s1 >= 0 && s1 < CALLER && s0 != s1);
        /* use the second so "result is the slot" differs from a plain 0 */
        unsigned slot = (unsigned)s1;
        OK(ringline_op_accept(ring, lfd, NULL, NULL, 0, RINGLINE_ACCEPT_DIRECT,
                              slot, T_ACC1));
        rln_submit(ring);
        int cli = rl_connect_tcp(port);
        rln_sock_timeout(cli, 3000);
        ringline_cqe_t c = rl_wait_token(ring, T_ACC1, 3000);
        if (c.res < 0)
            FAIL("accept direct into slot %u -> %d (%s)", slot, c.res,
                 rln_res(c.res));
        /* The kernel reports 0 for an explicit slot (the slot itself only
         * for RINGLINE_FILE_ALLOC); the header's wording for accept ("the
         * result is then the slot") is ambiguous, so accept both. */
        if (c.res != 0 && c.res != (int)slot)
            FAIL("accept direct into slot %u -> %d, want 0 or the slot", slot,
                 c.res);
        rl_write_all(cli, "ping", 4);
        char m[5] = {0};
        recv_fixed_exact(ring, slot, m, 4, T_RECV_BASE + 20);
        CHECK(memcmp(m, "ping", 4) == 0);
        send_fixed_exact(ring, slot, "pong", 4, T_SEND_BASE + 20);
        rln_read_all(cli, m, 4);
        CHECK(memcmp(m, "pong", 4) == 0);
        close_fixed(ring, slot, T_CLOSE_BASE + 20);
        expect_eof(cli);
        close(cli);
        OK(ringline_files_release(ring, slot));
        OK(ringline_files_release(ring, (unsigned)s0));
    }

    /* ---- install / update / remove / release ---- */
    {
        int sp1[2], sp2[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp1) == 0);
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp2) == 0);
        rln_sock_timeout(sp1[1], 3000);
        rln_sock_timeout(sp2[1], 3000);

        int slot = OK(ringline_files_install(ring, sp1[0]));
        CHECK(slot >= 0 && slot < CALLER);
        close(sp1[0]); /* the table holds its own reference */
        send_fixed_exact(ring, (unsigned)slot, "one", 3, T_SEND_BASE + 30);
        char m[4] = {0};
        rln_read_all(sp1[1], m, 3);
        CHECK(memcmp(m, "one", 3) == 0);

        /* update: the slot now points at the second pair */
        OK(ringline_files_update(ring, (unsigned)slot, sp2[0]));
        /* the first pair's only reference is gone: EOF */
        expect_eof(sp1[1]);
        send_fixed_exact(ring, (unsigned)slot, "two", 3, T_SEND_BASE + 31);
        rln_read_all(sp2[1], m, 3);
        CHECK(memcmp(m, "two", 3) == 0);

        /* update to -1 empties it: sends fail with -EBADF */
        OK(ringline_files_update(ring, (unsigned)slot, -1));
        OK(ringline_op_send(ring, RINGLINE_FIXED(slot), "x", 1, MSG_NOSIGNAL,
                            T_SEND_BAD));
        ringline_cqe_t c = rl_wait_token(ring, T_SEND_BAD, 3000);
        if (c.res != -EBADF)
            FAIL("send on emptied slot -> %d (%s), want -EBADF", c.res,
                 rln_res(c.res));

        /* point it back, then remove: empty and reservation released */
        OK(ringline_files_update(ring, (unsigned)slot, sp2[0]));
        OK(ringline_files_remove(ring, (unsigned)slot));
        OK(ringline_op_send(ring, RINGLINE_FIXED(slot), "x", 1, MSG_NOSIGNAL,
                            T_SEND_BAD));
        c = rl_wait_token(ring, T_SEND_BAD, 3000);
        if (c.res != -EBADF)
            FAIL("send on removed slot -> %d (%s), want -EBADF", c.res,
                 rln_res(c.res));
        close(sp2[0]);
        expect_eof(sp2[1]); /* removal dropped the table's reference */
        close(sp1[1]);
        close(sp2[1]);
    }

    /* ---- exhausting the caller range: -ENFILE ---- */
    {
        int got[CALLER];
        uint64_t seen = 0;
        for (int i = 0; i < CALLER; i++) {
            got[i] = ringline_files_alloc(ring);
            if (got[i] < 0)
                FAIL("files_alloc #%d -> %d (%s): the caller range should "
                     "have %d free slots",
                     i, got[i], ringline_err_name(got[i]), CALLER);
            CHECK(got[i] < CALLER);
            CHECK(!(seen & (1ull << got[i])));
            seen |= 1ull << got[i];
        }
        EXPECT_ERR(ringline_files_alloc(ring), -ENFILE);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        EXPECT_ERR(ringline_files_install(ring, fd), -ENFILE);
        /* one released slot is handed out again */
        OK(ringline_files_release(ring, (unsigned)got[7]));
        int again = OK(ringline_files_alloc(ring));
        CHECK(again == got[7]);
        EXPECT_ERR(ringline_files_alloc(ring), -ENFILE);
        /* release everything; install then succeeds */
        for (int i = 0; i < CALLER; i++)
            OK(ringline_files_release(ring, (unsigned)got[i]));
        int slot = OK(ringline_files_install(ring, fd));
        CHECK(slot < CALLER);
        OK(ringline_files_remove(ring, (unsigned)slot));
        close(fd);
    }

    CHECK(ringline_ring_inflight(ring) == 0);
    rln_expect_none(ring, 30);
    OK(ringline_files_unregister(ring));
    CHECK(ringline_files_count(ring) == 0);
    OK(ringline_ring_destroy(ring));
    close(lfd);
    printf("accept_direct: ok\n");
    return 0;
}
