/* ringline_loop_poll_packed() and ringline_conn_send_batch() (core/loop_batch.c):
 *  1. bad input: NULL/closed loop -> -EBADF, NULL meta / NULL buf with a
 *     capacity / max < 8 -> -EINVAL, a meta array too small for max events
 *     -> -ENOBUFS (and no event is lost by that call), decreasing ends or
 *     NULL arrays -> -EINVAL with nothing queued;
 *  2. a packed batch matches the plain event fields: types and ids, and
 *     every DATA payload copied back to back at the offsets given;
 *  3. a buffer too small for a payload flags it NOCOPY (the bytes are still
 *     in out[i]) and keeps later events in order;
 *  4. one send_batch answers two clients byte for byte, and reports a stale
 *     id as -EBADF and a shut-down connection as -EPIPE without stopping the
 *     other sends;
 *  5. ringline_loop_round(): bad input (NULL, reserved set, bad ends ->
 *     -EINVAL before polling), a round's send reaches the client, send_n is
 *     reset, a stale id is counted in send_failed;
 *  6. a DATA payload above RINGLINE_PACKED_COPY_MAX is flagged NOCOPY even
 *     with room in buf, and its bytes are intact in out[i]. */
#include "rl_looptest.h"

#define MAXEV 64

static ringline_event_t ev[MAXEV];
static uint64_t meta[3 * MAXEV];
static uint8_t buf[1 << 16];

/* Poll packed until an event of type t for id (0: any id) arrives; checks
 * the meta words of every event seen on the way. Returns its index. */
static int wait_event(ringline_loop_t *loop, uint32_t t, ringline_id_t id,
                      size_t cap, int *nout)
{
    for (int tries = 0; tries < 200; tries++) {
        int n = ringline_loop_poll_packed(loop, ev, MAXEV, 50 * MS, meta,
                                          3 * MAXEV, buf, cap);
        if (n == -EINTR)
            continue;
        if (n < 0)
            FAIL("poll_packed -> %d (%s)", n, ringline_err_name(n));
        uint64_t prev = 0;
        for (int i = 0; i < n; i++) {
            CHECK((meta[3 * i] & 0xFFFF) == ev[i].type);
            CHECK(meta[3 * i + 1] == ev[i].id);
            uint64_t end = meta[3 * i + 2];
            CHECK(end >= prev && end <= cap);
            if (ev[i].type == RINGLINE_EV_DATA && !(meta[3 * i] & RINGLINE_PACKED_NOCOPY)) {
                CHECK(end - prev == ev[i].len);
                CHECK(memcmp(buf + prev, ev[i].data, ev[i].len) == 0);
            } else {
                CHECK(end == prev);
            }
            prev = end;
        }
        for (int i = 0; i < n; i++)
            if (ev[i].type == t && (!id || ev[i].id == id)) {
                *nout = n;
                return i;
            }
    }
    FAIL("no %s event", lt_ev_name(t));
}

/* Collect want bytes of DATA for conn id into dst via the packed copies. */
static void collect(ringline_loop_t *loop, ringline_id_t id, uint8_t *dst,
                    size_t want)
{
    size_t got = 0;
    for (int tries = 0; got < want && tries < 400; tries++) {
        int n = ringline_loop_poll_packed(loop, ev, MAXEV, 50 * MS, meta,
                                          3 * MAXEV, buf, sizeof buf);
        if (n == -EINTR)
            continue;
        if (n < 0)
            FAIL("poll_packed -> %d", n);
        uint64_t prev = 0;
        for (int i = 0; i < n; i++) {
            uint64_t end = meta[3 * i + 2];
            if (meta[3 * i] == RINGLINE_EV_DATA && meta[3 * i + 1] == id) {
                CHECK(got + (end - prev) <= want);
                memcpy(dst + got, buf + prev, end - prev);
                got += end - prev;
            }
            prev = end;
        }
    }
    if (got != want)
        FAIL("collected %zu of %zu bytes", got, want);
}

int main(void)
{
    lt_watchdog(60);
    ringline_loop_t *loop = lt_loop(64, 32, 4096, 0, 0);
    ringline_id_t ids[4];
    uint64_t ends[4];
    int64_t res[4];

    /* 1. bad input */
    EXPECT_ERR(ringline_loop_poll_packed(NULL, ev, MAXEV, 0, meta, 3 * MAXEV, buf, 1), -EBADF);
    EXPECT_ERR(ringline_loop_poll_packed(loop, ev, MAXEV, 0, NULL, 3 * MAXEV, buf, 1), -EINVAL);
    EXPECT_ERR(ringline_loop_poll_packed(loop, ev, MAXEV, 0, meta, 3 * MAXEV, NULL, 1), -EINVAL);
    EXPECT_ERR(ringline_loop_poll_packed(loop, NULL, MAXEV, 0, meta, 3 * MAXEV, buf, 1), -EINVAL);
    EXPECT_ERR(ringline_loop_poll_packed(loop, ev, 4, 0, meta, 3 * MAXEV, buf, 1), -EINVAL);
    EXPECT_ERR(ringline_loop_poll_packed(loop, ev, MAXEV, 0, meta, 3 * MAXEV - 1, buf, 1), -ENOBUFS);
    /* a NULL buffer with no capacity is valid: nothing gets copied */
    CHECK(ringline_loop_poll_packed(loop, ev, MAXEV, 0, meta, 3 * MAXEV, NULL, 0) >= 0);
    EXPECT_ERR(ringline_conn_send_batch(NULL, ids, buf, ends, 1, res), -EBADF);
    CHECK(ringline_conn_send_batch(loop, NULL, NULL, NULL, 0, NULL) == 0);
    EXPECT_ERR(ringline_conn_send_batch(loop, NULL, buf, ends, 1, res), -EINVAL);
    EXPECT_ERR(ringline_conn_send_batch(loop, ids, buf, NULL, 1, res), -EINVAL);

    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, &lid));
    uint16_t port = (uint16_t)OK(ringline_listener_port(loop, lid));
    int fa = lt_client(port), fb = lt_client(port);
    ringline_id_t ca = 0, cb = 0;
    /* 2. accepts come through the packed path with their ids */
    while (!ca || !cb) {
        int n, i = wait_event(loop, RINGLINE_EV_ACCEPTED, 0, sizeof buf, &n);
        for (; i < n; i++)
            if (ev[i].type == RINGLINE_EV_ACCEPTED) {
                CHECK(ev[i].id2 == lid);
                if (!ca)
                    ca = ev[i].id;
                else if (!cb && ev[i].id != ca)
                    cb = ev[i].id;
            }
    }
    /* which accepted id is which client: ask for the peer ports */
    {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        struct sockaddr_in me;
        socklen_t ml = sizeof me;
        OK(ringline_conn_peer(loop, ca, &ss, &sl));
        CHECK(getsockname(fa, (struct sockaddr *)&me, &ml) == 0);
        if (((struct sockaddr_in *)&ss)->sin_port != me.sin_port) {
            ringline_id_t t = ca;
            ca = cb;
            cb = t;
        }
    }

    /* decreasing ends: -EINVAL and nothing queued on either connection */
    ids[0] = ca;
    ids[1] = cb;
    ends[0] = 5;
    ends[1] = 3;
    EXPECT_ERR(ringline_conn_send_batch(loop, ids, "abcde", ends, 2, res), -EINVAL);
    ends[1] = 8;
    EXPECT_ERR(ringline_conn_send_batch(loop, ids, NULL, ends, 2, res), -EINVAL);
    CHECK(ringline_conn_queued(loop, ca) == 0 && ringline_conn_queued(loop, cb) == 0);

    /* payloads of both clients, then one batched reply */
    uint8_t a_out[100], b_out[3000], a_in[100], b_in[3000];
    lt_fill(a_out, sizeof a_out, 1, 0);
    lt_fill(b_out, sizeof b_out, 2, 0);
    CHECK(lt_write_all(fa, a_out, sizeof a_out) == 0);
    collect(loop, ca, a_in, sizeof a_in);
    CHECK(memcmp(a_in, a_out, sizeof a_out) == 0);
    CHECK(lt_write_all(fb, b_out, sizeof b_out) == 0);
    collect(loop, cb, b_in, sizeof b_in);
    CHECK(memcmp(b_in, b_out, sizeof b_out) == 0);

    static uint8_t joined[3100];
    memcpy(joined, a_in, 100);
    memcpy(joined + 100, b_in, 3000);
    ids[0] = ca;
    ids[1] = cb;
    ids[2] = ca ^ ((ringline_id_t)1 << 40); /* same slot, other generation */
    ends[0] = 100;
    ends[1] = 3100;
    ends[2] = 3100;
    int failed = ringline_conn_send_batch(loop, ids, joined, ends, 3, res);
    CHECK(failed == 1);
    CHECK(res[0] >= 0 && res[0] <= 100);
    CHECK(res[1] >= 0 && res[1] <= 3000);
    CHECK(res[2] == -EBADF);
    /* the sends go out on the next poll */
    for (int k = 0; k < 5; k++)
        ringline_loop_poll_packed(loop, ev, MAXEV, 10 * MS, meta, 3 * MAXEV, buf, sizeof buf);
    CHECK(lt_read_exact(fa, a_in, 100) == 0 && memcmp(a_in, a_out, 100) == 0);
    CHECK(lt_read_exact(fb, b_in, 3000) == 0 && memcmp(b_in, b_out, 3000) == 0);

    /* 3. a buffer too small: the 100-byte payload is flagged, not copied */
    CHECK(lt_write_all(fa, a_out, sizeof a_out) == 0);
    {
        size_t got = 0;
        for (int tries = 0; got < 100 && tries < 200; tries++) {
            int n = ringline_loop_poll_packed(loop, ev, MAXEV, 50 * MS, meta,
                                              3 * MAXEV, buf, 10);
            for (int i = 0; i < n; i++) {
                if (ev[i].type != RINGLINE_EV_DATA || ev[i].id != ca)
                    continue;
                if (ev[i].len > 10 - meta[3 * i + 2]) {
                    CHECK(meta[3 * i] == (RINGLINE_EV_DATA | RINGLINE_PACKED_NOCOPY));
                    CHECK(meta[3 * i + 2] == (i ? meta[3 * i - 1] : 0));
                }
                memcpy(a_in + got, ev[i].data, ev[i].len);
                got += ev[i].len;
            }
        }
        CHECK(got == 100 && memcmp(a_in, a_out, 100) == 0);
    }

    /* 4. a shut-down connection: -EPIPE; the other send still goes out */
    OK(ringline_conn_shutdown(loop, cb));
    ids[0] = cb;
    ids[1] = ca;
    ends[0] = 1;
    ends[1] = 2;
    failed = ringline_conn_send_batch(loop, ids, "xy", ends, 2, res);
    CHECK(failed == 1 && res[0] == -EPIPE && res[1] >= 0);
    for (int k = 0; k < 5; k++)
        ringline_loop_poll_packed(loop, ev, MAXEV, 10 * MS, meta, 3 * MAXEV, buf, sizeof buf);
    CHECK(lt_read_exact(fa, a_in, 1) == 0 && a_in[0] == 'y');

    /* a closed connection's id is stale: -EBADF */
    OK(ringline_conn_abort(loop, ca));
    int n;
    wait_event(loop, RINGLINE_EV_CLOSED, ca, sizeof buf, &n);
    ids[0] = ca;
    ends[0] = 1;
    failed = ringline_conn_send_batch(loop, ids, "z", ends, 1, res);
    CHECK(failed == 1 && res[0] == -EBADF);

    close(fa);
    close(fb);
    ringline_loop_destroy(loop);

    /* 5 + 6: a loop with 64 KiB receive buffers, driven by rounds */
    loop = lt_loop(16, 16, 65536, 0, 0);
    ringline_round_t rd = {.out = ev, .max = MAXEV, .meta = meta,
                           .meta_words = 3 * MAXEV, .buf = buf,
                           .cap = sizeof buf, .send_ids = ids,
                           .send_ends = ends, .send_res = res};
    EXPECT_ERR(ringline_loop_round(NULL, &rd, 0), -EBADF);
    EXPECT_ERR(ringline_loop_round(loop, NULL, 0), -EINVAL);
    rd.reserved = 1;
    EXPECT_ERR(ringline_loop_round(loop, &rd, 0), -EINVAL);
    rd.reserved = 0;
    OK(ringline_listen(loop, "127.0.0.1", 0, 16, 0, &lid));
    port = (uint16_t)OK(ringline_listener_port(loop, lid));
    int fc = lt_client(port);
    ringline_id_t cc = 0;
    for (int tries = 0; !cc && tries < 100; tries++) {
        int k = ringline_loop_round(loop, &rd, 50 * MS);
        CHECK(k >= 0 || k == -EINTR);
        for (int i = 0; i < k; i++)
            if (ev[i].type == RINGLINE_EV_ACCEPTED)
                cc = ev[i].id;
    }
    CHECK(cc);
    /* bad ends: -EINVAL, nothing sent, nothing polled */
    ids[0] = cc;
    ends[0] = 0;
    ids[1] = cc;
    ends[1] = RINGLINE_PACKED_COPY_MAX; /* with a NULL buffer */
    rd.send_buf = NULL;
    rd.send_n = 2;
    EXPECT_ERR(ringline_loop_round(loop, &rd, 0), -EINVAL);
    CHECK(rd.send_n == 0);
    CHECK(ringline_conn_queued(loop, cc) == 0);
    /* a send (and a stale id) staged in the round; the poll sends it */
    rd.send_buf = "round!";
    ids[0] = cc;
    ends[0] = 6;
    ids[1] = cc ^ ((ringline_id_t)1 << 40);
    ends[1] = 6;
    rd.send_n = 2;
    int k = ringline_loop_round(loop, &rd, 10 * MS);
    CHECK(k >= 0 || k == -EINTR);
    CHECK(rd.send_n == 0 && rd.send_failed == 1);
    CHECK(res[0] >= 0 && res[1] == -EBADF);
    for (int j = 0; j < 3; j++)
        ringline_loop_round(loop, &rd, 10 * MS);
    uint8_t six[6];
    CHECK(lt_read_exact(fc, six, 6) == 0 && memcmp(six, "round!", 6) == 0);
    /* 6. 40000 bytes at once: any DATA event above the copy limit is not
     * copied though buf has room, and its bytes are intact */
    static uint8_t big[40000], back[40000];
    lt_fill(big, sizeof big, 7, 0);
    CHECK(lt_write_all(fc, big, sizeof big) == 0);
    size_t got = 0;
    int flagged = 0;
    for (int tries = 0; got < sizeof big && tries < 200; tries++) {
        k = ringline_loop_round(loop, &rd, 50 * MS);
        uint64_t prev = 0;
        for (int i = 0; i < k; i++) {
            uint64_t end = meta[3 * i + 2];
            if (ev[i].type == RINGLINE_EV_DATA && ev[i].id == cc) {
                CHECK(got + ev[i].len <= sizeof big);
                if (ev[i].len > RINGLINE_PACKED_COPY_MAX) {
                    CHECK(meta[3 * i] == (RINGLINE_EV_DATA | RINGLINE_PACKED_NOCOPY));
                    CHECK(end == prev);
                    flagged++;
                    memcpy(back + got, ev[i].data, ev[i].len);
                } else {
                    CHECK(meta[3 * i] == RINGLINE_EV_DATA);
                    CHECK(end - prev == ev[i].len);
                    memcpy(back + got, buf + prev, ev[i].len);
                }
                got += ev[i].len;
            }
            prev = end;
        }
    }
    CHECK(got == sizeof big && memcmp(back, big, sizeof big) == 0);
    if (!flagged)
        printf("note: the kernel delivered 40000 bytes in chunks <= %d\n",
               RINGLINE_PACKED_COPY_MAX);
    close(fc);
    ringline_loop_destroy(loop);
    return lt_exit();
}
