/* Bad input for the event-loop layer, the framers and the loop options
 * (the ring layer's functions are covered by test_bad_input.c): NULL and
 * destroyed loops, NULL out-pointers, absurd option values, ids that are 0,
 * made up, of the wrong kind or stale, bad hosts, bad modes. Every call must
 * return; where the header documents the error, that error is required. */
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>

#include "rl_test.h"

#define MS 1000000ull

#define ANY_ERR(expr)                                                          \
    do {                                                                       \
        long long rl__r = (long long)(expr);                                   \
        printf("  %s -> %lld (%s)\n", #expr, rl__r,                            \
               ringline_err_name((int)rl__r));                                 \
        if (rl__r >= 0)                                                        \
            FAIL("%s succeeded (%lld), want an error", #expr, rl__r);          \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Framers                                                                  */
/* ------------------------------------------------------------------------ */

static void test_frame(void)
{
    printf("framers\n");
    size_t fl = 7, po = 7, pl = 7;
    const char line[] = "ab\r\ncd";
    EXPECT_ERR(ringline_frame(0, line, 6, 0, &fl, &po, &pl), -EINVAL);
    EXPECT_ERR(ringline_frame(6, line, 6, 0, &fl, &po, &pl), -EINVAL);
    EXPECT_ERR(ringline_frame(-1, line, 6, 0, &fl, &po, &pl), -EINVAL);
    EXPECT_ERR(ringline_frame(INT_MAX, line, 6, 0, &fl, &po, &pl), -EINVAL);
    for (int f = RINGLINE_FRAMER_LINE; f <= RINGLINE_FRAMER_HTTP_HEAD; f++) {
        EXPECT_ERR(ringline_frame(f, line, 6, 0, NULL, &po, &pl), -EINVAL);
        EXPECT_ERR(ringline_frame(f, line, 6, 0, &fl, NULL, &pl), -EINVAL);
        EXPECT_ERR(ringline_frame(f, line, 6, 0, &fl, &po, NULL), -EINVAL);
        EXPECT_ERR(ringline_frame(f, NULL, 6, 0, &fl, &po, &pl), -EINVAL);
        int r = ringline_frame(f, NULL, 0, 0, &fl, &po, &pl);
        if (r != 0 && r != -EINVAL)
            FAIL("frame(%d, NULL, 0) -> %d", f, r);
        /* Empty input: more bytes needed. */
        EXPECT_ERR(ringline_frame(f, line, 0, 0, &fl, &po, &pl), 0);
    }
    /* The good case, to be sure the checks above are not blanket refusals. */
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_LINE, line, 6, 0, &fl, &po, &pl),
               1);
    CHECK(fl == 4 && po == 0 && pl == 2);
    /* Larger than max_frame. */
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_LINE, "abcdefgh", 8, 4, &fl, &po,
                              &pl),
               -EMSGSIZE);
    const uint8_t u16[] = {0xFF, 0xFF, 'x'};
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_U16BE, u16, 3, 100, &fl, &po,
                              &pl),
               -EMSGSIZE);
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_U16BE, u16, 1, 0, &fl, &po, &pl),
               0);
    /* A 4 GiB length prefix with no limit: beyond the 1 GiB cap. */
    const uint8_t u32[] = {0xFF, 0xFF, 0xFF, 0xFF, 'x'};
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_U32BE, u32, 5, 0, &fl, &po, &pl),
               -EMSGSIZE);
    /* With an explicit limit above 4 GiB the header does not say whether
     * the 1 GiB cap still applies: only "needs more" or -EMSGSIZE. */
    int r32 = ringline_frame(RINGLINE_FRAMER_U32BE, u32, 5, SIZE_MAX, &fl, &po,
                             &pl);
    CHECK(r32 == 0 || r32 == -EMSGSIZE);
    /* Chunked HTTP bodies are refused. */
    const char chunked[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_HTTP_HEAD, chunked,
                              strlen(chunked), 0, &fl, &po, &pl),
               -EPROTO);
    /* An absurd Content-Length. */
    const char huge[] = "POST / HTTP/1.1\r\nContent-Length: "
                        "99999999999999999999999\r\n\r\n";
    int r = ringline_frame(RINGLINE_FRAMER_HTTP_HEAD, huge, strlen(huge), 0,
                           &fl, &po, &pl);
    printf("  HTTP Content-Length 10^23 -> %d (%s)\n", r, ringline_err_name(r));
    CHECK(r == -EMSGSIZE || r == -EPROTO);
    const char neg[] = "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n";
    r = ringline_frame(RINGLINE_FRAMER_HTTP_HEAD, neg, strlen(neg), 0, &fl, &po,
                       &pl);
    printf("  HTTP Content-Length -5 -> %d (%s)\n", r, ringline_err_name(r));
    CHECK(r == -EPROTO);
    /* RESP garbage. */
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_RESP, "*abc\r\n", 6, 0, &fl, &po,
                              &pl),
               -EPROTO);
    r = ringline_frame(RINGLINE_FRAMER_RESP, "*99999999999999999999\r\n", 23, 0,
                       &fl, &po, &pl);
    printf("  RESP *10^20 -> %d (%s)\n", r, ringline_err_name(r));
    CHECK(r < 0);
    r = ringline_frame(RINGLINE_FRAMER_RESP, "$99999999999999999999\r\n", 23, 0,
                       &fl, &po, &pl);
    printf("  RESP $10^20 -> %d (%s)\n", r, ringline_err_name(r));
    CHECK(r < 0);
}

static void test_resp(void)
{
    printf("resp_parse_command\n");
    const char cmd[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    size_t n = strlen(cmd), fl = 99;
    uint32_t offs[4], lens[4];
    EXPECT_ERR(ringline_resp_parse_command(NULL, n, offs, lens, 4, &fl),
               -EINVAL);
    EXPECT_ERR(ringline_resp_parse_command(cmd, n, NULL, lens, 4, &fl),
               -EINVAL);
    EXPECT_ERR(ringline_resp_parse_command(cmd, n, offs, NULL, 4, &fl),
               -EINVAL);
    EXPECT_ERR(ringline_resp_parse_command(cmd, n, offs, lens, 4, NULL),
               -EINVAL);
    EXPECT_ERR(ringline_resp_parse_command(cmd, n, offs, lens, 1, &fl), -E2BIG);
    EXPECT_ERR(ringline_resp_parse_command(cmd, n, offs, lens, 0, &fl), -E2BIG);
    EXPECT_ERR(ringline_resp_parse_command(cmd, n, offs, lens, 4, &fl), 2);
    CHECK(fl == n);
    CHECK(offs[0] == 8 && lens[0] == 3 && offs[1] == 17 && lens[1] == 1);
    /* Incomplete at every length: 0 with frame_len 0. */
    for (size_t k = 0; k < n; k++) {
        fl = 99;
        int r = ringline_resp_parse_command(cmd, k, offs, lens, 4, &fl);
        if (r != 0 || fl != 0)
            FAIL("prefix of %zu bytes -> %d, frame_len %zu", k, r, fl);
    }
    struct {
        const char *s;
        const char *what;
    } bad[] = {
        {"*2\r\n$x\r\nGET\r\n", "bad bulk length"},
        {"*1\r\n$-5\r\n", "negative bulk length"},
        {"*1\r\n$3\r\nGETXX\r\n", "bulk without CRLF"},
        {"*1\r\n:5\r\n", "integer inside a command"},
        {"*-3\r\n", "negative array"},
        {"*99999999999999999999\r\n", "array count 10^20"},
        {"*1\r\n$99999999999999999999\r\n", "bulk length 10^20"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fl = 99;
        int r = ringline_resp_parse_command(bad[i].s, strlen(bad[i].s), offs,
                                            lens, 4, &fl);
        printf("  %s -> %d (%s)\n", bad[i].what, r, ringline_err_name(r));
        if (r > 0)
            FAIL("%s parsed as %d arguments", bad[i].what, r);
    }
    /* An inline command. */
    fl = 0;
    EXPECT_ERR(ringline_resp_parse_command("PING\r\n", 6, offs, lens, 4, &fl),
               1);
    CHECK(fl == 6 && offs[0] == 0 && lens[0] == 4);
}

/* ------------------------------------------------------------------------ */
/* Loop options                                                             */
/* ------------------------------------------------------------------------ */

static void test_options(void)
{
    printf("loop options\n");
    int null_code = ringline_config_free(NULL);
    EXPECT_ERR(ringline_config_set_max_conns(NULL, 16), null_code);
    EXPECT_ERR(ringline_config_set_recv_buffers(NULL, 16, 4096), null_code);
    EXPECT_ERR(ringline_config_set_send_limits(NULL, 1 << 20, 1 << 10),
               null_code);
    EXPECT_ERR(ringline_config_set_zc_threshold(NULL, 0), null_code);
    EXPECT_ERR(ringline_config_set_idle_timeout(NULL, 0), null_code);

    ringline_config_t *cfg;
    ringline_loop_t *loop = NULL;
    /* Values a buffer ring cannot have: refused by the setter or by
     * loop_new. */
    struct {
        unsigned count, size;
    } rb[] = {{65536, 4096}, {16, 1u << 31}, {1u << 31, 16}};
    for (int i = 0; i < 3; i++) {
        OK(ringline_config_new(&cfg));
        int r = ringline_config_set_recv_buffers(cfg, rb[i].count, rb[i].size);
        if (r == 0) {
            loop = NULL;
            r = ringline_loop_new(cfg, &loop);
            if (r >= 0) {
                ringline_loop_destroy(loop);
                FAIL("loop_new with recv_buffers(%u, %u) succeeded",
                     rb[i].count, rb[i].size);
            }
            printf("  recv_buffers(%u, %u): loop_new -> %d (%s)\n",
                   rb[i].count, rb[i].size, r, ringline_err_name(r));
        } else {
            EXPECT_ERR(r, -EINVAL);
        }
        OK(ringline_config_free(cfg));
    }

    OK(ringline_config_new(&cfg));
    int r0 = ringline_config_set_max_conns(cfg, 0);
    printf("  set_max_conns(0) -> %d (%s)\n", r0, ringline_err_name(r0));
    CHECK(r0 == 0 || r0 == -EINVAL);
    EXPECT_ERR(ringline_config_set_max_conns(cfg, (1u << 20) + 1), -EINVAL);
    EXPECT_ERR(ringline_config_set_max_conns(cfg, UINT_MAX), -EINVAL);
    EXPECT_ERR(ringline_config_set_recv_buffers(cfg, 0, 4096), -EINVAL);
    EXPECT_ERR(ringline_config_set_recv_buffers(cfg, 3, 4096), -EINVAL);
    EXPECT_ERR(ringline_config_set_recv_buffers(cfg, 16, 0), -EINVAL);
    ANY_ERR(ringline_config_set_send_limits(cfg, 1024, 4096));
    OK(ringline_config_set_zc_threshold(cfg, 0));
    OK(ringline_config_set_idle_timeout(cfg, 0));
    /* Refused values left the defaults: a loop can be made from it. */
    OK(ringline_loop_new(cfg, &loop));
    CHECK(loop != NULL);
    OK(ringline_loop_destroy(loop));
    OK(ringline_config_free(cfg));

    /* Freed config. */
    EXPECT_ERR(ringline_config_set_max_conns(cfg, 16), -EBADF);
    EXPECT_ERR(ringline_config_set_recv_buffers(cfg, 16, 4096), -EBADF);
    EXPECT_ERR(ringline_config_set_send_limits(cfg, 1 << 20, 1 << 10), -EBADF);
    EXPECT_ERR(ringline_config_set_zc_threshold(cfg, 0), -EBADF);
    EXPECT_ERR(ringline_config_set_idle_timeout(cfg, 0), -EBADF);
    loop = NULL;
    EXPECT_ERR(ringline_loop_new(cfg, &loop), -EBADF);
    CHECK(loop == NULL);
    EXPECT_ERR(ringline_loop_new(NULL, NULL), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Every function taking a loop, with a bad handle                          */
/* ------------------------------------------------------------------------ */

static void all_loop_calls(ringline_loop_t *l, const char *label)
{
    printf("all loop calls on %s loop\n", label);
    const int want = -EBADF;
    ringline_ring_t *ring = NULL;
    ringline_event_t ev[4];
    ringline_id_t id = 0;
    char buf[8] = {0};
    struct iovec iov = {buf, 1};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons(9),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ringline_stats_t st;
    const ringline_id_t x = 1;

    EXPECT_ERR(ringline_loop_ring(l, &ring), want);
    EXPECT_ERR(ringline_loop_poll(l, ev, 4, 0), want);
    EXPECT_ERR(ringline_loop_poll(l, ev, 4, 1000000), want);
    EXPECT_ERR(ringline_loop_run(l), want);
    EXPECT_ERR(ringline_loop_wake(l), want);
    EXPECT_ERR(ringline_loop_stop(l, 0), want);
    EXPECT_ERR(ringline_loop_stopped(l), want);
    EXPECT_ERR(ringline_loop_handle_signals(l, 0), want);
    EXPECT_ERR(ringline_listen(l, "127.0.0.1", 0, 16, 0, &id), want);
    EXPECT_ERR(ringline_listener_port(l, x), want);
    EXPECT_ERR(ringline_listener_set_mode(l, x, RINGLINE_MODE_ECHO, 0), want);
    EXPECT_ERR(ringline_listener_close(l, x), want);
    EXPECT_ERR(ringline_connect(l, "127.0.0.1", 9, 0, &id), want);
    EXPECT_ERR(ringline_conn_set_mode(l, x, RINGLINE_MODE_ECHO, 0), want);
    EXPECT_ERR(ringline_conn_send(l, x, buf, 1, 0), want);
    EXPECT_ERR(ringline_conn_sendv(l, x, &iov, 1, 0), want);
    EXPECT_ERR(ringline_conn_send_ref(l, x, buf, 1, 1), want);
    CHECK(ringline_conn_queued(l, x) == -EBADF);
    EXPECT_ERR(ringline_conn_consume(l, x, 0), want);
    EXPECT_ERR(ringline_conn_pause(l, x), want);
    EXPECT_ERR(ringline_conn_resume(l, x), want);
    EXPECT_ERR(ringline_conn_shutdown(l, x), want);
    EXPECT_ERR(ringline_conn_close(l, x), want);
    EXPECT_ERR(ringline_conn_abort(l, x), want);
    EXPECT_ERR(ringline_conn_peer(l, x, &ss, &sl), want);
    EXPECT_ERR(ringline_udp_bind(l, "127.0.0.1", 0, &id), want);
    EXPECT_ERR(ringline_udp_port(l, x), want);
    EXPECT_ERR(ringline_udp_sendto(l, x, buf, 1, (struct sockaddr *)&to,
                                   sizeof to),
               want);
    EXPECT_ERR(ringline_udp_close(l, x), want);
    EXPECT_ERR(ringline_timer_after(l, MS, 1, &id), want);
    EXPECT_ERR(ringline_timer_every(l, MS, 1, &id), want);
    EXPECT_ERR(ringline_timer_at(l, ringline_now_ns() + MS, 1, &id), want);
    EXPECT_ERR(ringline_timer_cancel(l, x), want);
    EXPECT_ERR(ringline_loop_stats(l, &st, sizeof st), want);
    EXPECT_ERR(ringline_loop_destroy(l), want);
    CHECK(ring == NULL && id == 0);
}

/* ------------------------------------------------------------------------ */
/* A live loop                                                              */
/* ------------------------------------------------------------------------ */

/* Poll until an event of type arrives for id (0: any id); other events are
 * dropped. Fails after 5 s. */
static ringline_event_t wait_event(ringline_loop_t *l, uint32_t type,
                                   ringline_id_t id)
{
    uint64_t deadline = rl_now_ns() + 5000 * MS;
    ringline_event_t ev[16];
    while (rl_now_ns() < deadline) {
        int n = ringline_loop_poll(l, ev, 16, 50 * (int64_t)MS);
        if (n == -EINTR)
            continue;
        if (n < 0)
            FAIL("loop_poll -> %d (%s)", n, ringline_err_name(n));
        for (int i = 0; i < n; i++)
            if (ev[i].type == type && (!id || ev[i].id == id))
                return ev[i];
    }
    FAIL("no event of type %u within 5 s", type);
}

static void test_live_loop(void)
{
    printf("live loop\n");
    ringline_loop_t *l = NULL;
    OK(ringline_loop_new(NULL, &l));
    ringline_ring_t *ring = NULL;
    EXPECT_ERR(ringline_loop_ring(l, NULL), -EINVAL);
    OK(ringline_loop_ring(l, &ring));
    CHECK(ring != NULL && ringline_ring_fd(ring) >= 0);
    EXPECT_ERR(ringline_loop_poll(l, NULL, 4, 0), -EINVAL);
    int r = ringline_loop_poll(l, NULL, 0, 0);
    CHECK(r == 0 || r == -EINVAL);
    ringline_event_t ev[16];
    r = ringline_loop_poll(l, ev, 0, 0);
    CHECK(r == 0 || r == -EINVAL);
    uint64_t t0 = rl_now_ns();
    OK(ringline_loop_poll(l, ev, 16, 20 * (int64_t)MS));
    CHECK(rl_now_ns() - t0 < 3000 * MS);
    EXPECT_ERR(ringline_loop_stats(l, NULL, sizeof(ringline_stats_t)), -EINVAL);
    ringline_stats_t st;
    OK(ringline_loop_stats(l, &st, sizeof st));
    r = ringline_loop_stats(l, &st, 0);
    printf("  loop_stats(size 0) -> %d (%s)\n", r, ringline_err_name(r));
    r = ringline_loop_stats(l, &st, 3); /* not a whole field */
    printf("  loop_stats(size 3) -> %d (%s)\n", r, ringline_err_name(r));
    EXPECT_ERR(ringline_loop_stopped(l), 0);

    /* Out-pointers and hosts. */
    ringline_id_t id = 0;
    EXPECT_ERR(ringline_listen(l, "127.0.0.1", 0, 16, 0, NULL), -EINVAL);
    EXPECT_ERR(ringline_listen(l, NULL, 0, 16, 0, &id), -EINVAL);
    /* (Only the empty string: other non-numeric hosts reach the system
     * resolver in this implementation, which may be slow offline.) */
    ANY_ERR(ringline_listen(l, "", 0, 16, 0, &id));
    EXPECT_ERR(ringline_connect(l, "127.0.0.1", 9, 0, NULL), -EINVAL);
    EXPECT_ERR(ringline_connect(l, NULL, 9, 0, &id), -EINVAL);
    ANY_ERR(ringline_connect(l, "", 9, 0, &id));
    EXPECT_ERR(ringline_udp_bind(l, "127.0.0.1", 0, NULL), -EINVAL);
    EXPECT_ERR(ringline_udp_bind(l, NULL, 0, &id), -EINVAL);
    ANY_ERR(ringline_udp_bind(l, "", 0, &id));
    EXPECT_ERR(ringline_timer_after(l, MS, 1, NULL), -EINVAL);
    EXPECT_ERR(ringline_timer_every(l, MS, 1, NULL), -EINVAL);
    EXPECT_ERR(ringline_timer_at(l, MS, 1, NULL), -EINVAL);
    CHECK(id == 0);

    /* Ids that were never valid: 0, made up, huge. */
    ringline_id_t bogus[] = {0, 1, 0xDEADBEEFull, ~0ull, 1ull << 56};
    char buf[8] = "abcdefg";
    struct iovec iov = {buf, 1};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
        ringline_id_t b = bogus[i];
        EXPECT_ERR(ringline_listener_port(l, b), -EBADF);
        EXPECT_ERR(ringline_listener_set_mode(l, b, 0, 0), -EBADF);
        EXPECT_ERR(ringline_listener_close(l, b), -EBADF);
        EXPECT_ERR(ringline_conn_set_mode(l, b, 0, 0), -EBADF);
        EXPECT_ERR(ringline_conn_send(l, b, buf, 1, 0), -EBADF);
        EXPECT_ERR(ringline_conn_sendv(l, b, &iov, 1, 0), -EBADF);
        EXPECT_ERR(ringline_conn_send_ref(l, b, buf, 1, 1), -EBADF);
        CHECK(ringline_conn_queued(l, b) == -EBADF);
        EXPECT_ERR(ringline_conn_consume(l, b, 0), -EBADF);
        EXPECT_ERR(ringline_conn_pause(l, b), -EBADF);
        EXPECT_ERR(ringline_conn_resume(l, b), -EBADF);
        EXPECT_ERR(ringline_conn_shutdown(l, b), -EBADF);
        EXPECT_ERR(ringline_conn_close(l, b), -EBADF);
        EXPECT_ERR(ringline_conn_abort(l, b), -EBADF);
        EXPECT_ERR(ringline_conn_peer(l, b, &ss, &sl), -EBADF);
        EXPECT_ERR(ringline_udp_port(l, b), -EBADF);
        EXPECT_ERR(ringline_udp_close(l, b), -EBADF);
        EXPECT_ERR(ringline_timer_cancel(l, b), -EBADF);
    }

    /* Real objects used as the wrong kind. */
    ringline_id_t lid = 0, uid = 0, tid = 0;
    OK(ringline_listen(l, "127.0.0.1", 0, 16, 0, &lid));
    CHECK(lid != 0);
    int port = OK(ringline_listener_port(l, lid));
    CHECK(port > 0 && port < 65536);
    OK(ringline_udp_bind(l, "127.0.0.1", 0, &uid));
    OK(ringline_timer_after(l, 60000 * MS, 5, &tid));
    CHECK(uid != 0 && tid != 0 && uid != lid && tid != lid && tid != uid);
    EXPECT_ERR(ringline_conn_send(l, lid, buf, 1, 0), -EBADF);
    EXPECT_ERR(ringline_conn_close(l, uid), -EBADF);
    EXPECT_ERR(ringline_conn_abort(l, tid), -EBADF);
    EXPECT_ERR(ringline_udp_port(l, lid), -EBADF);
    EXPECT_ERR(ringline_udp_close(l, tid), -EBADF);
    EXPECT_ERR(ringline_listener_port(l, uid), -EBADF);
    EXPECT_ERR(ringline_listener_close(l, tid), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(l, lid), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(l, uid), -EBADF);
    /* Same index and kind, other generation. */
    EXPECT_ERR(ringline_listener_port(l, lid ^ (1ull << 32)), -EBADF);
    EXPECT_ERR(ringline_timer_cancel(l, tid ^ (1ull << 32)), -EBADF);

    /* Bad modes and arguments on real objects. */
    ANY_ERR(ringline_listener_set_mode(l, lid, 99, 0));
    ANY_ERR(ringline_listener_set_mode(l, lid, -1, 0));
    ANY_ERR(ringline_listener_set_mode(l, lid, RINGLINE_MODE_FRAMED, 0));
    ANY_ERR(ringline_listener_set_mode(l, lid, RINGLINE_MODE_FRAMED, 77));
    EXPECT_ERR(ringline_udp_sendto(l, uid, buf, 1, NULL, 0), -EINVAL);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    EXPECT_ERR(ringline_udp_sendto(l, uid, NULL, 5, (struct sockaddr *)&to,
                                   sizeof to),
               -EINVAL);
    /* A too-short address may be refused now or fail in the kernel later
     * (reported by an event): it only has to return. */
    r = ringline_udp_sendto(l, uid, buf, 1, (struct sockaddr *)&to, 3);
    printf("  udp_sendto(tolen 3) -> %d (%s)\n", r, ringline_err_name(r));
    /* An address longer than any sockaddr: refused, not copied. */
    static uint8_t bigaddr[512];
    memcpy(bigaddr, &to, sizeof to);
    ANY_ERR(ringline_udp_sendto(l, uid, buf, 1, (struct sockaddr *)bigaddr,
                                sizeof bigaddr));

    /* A real connection: connect to our own listener. */
    ringline_id_t cid = 0;
    OK(ringline_connect(l, "127.0.0.1", (uint16_t)port, 2000, &cid));
    CHECK(cid != 0);
    ringline_event_t acc = wait_event(l, RINGLINE_EV_ACCEPTED, 0);
    ringline_id_t sid = acc.id;
    CHECK(acc.id2 == lid);
    /* CONNECTED may have been dropped while waiting for ACCEPTED; the conn
     * is usable either way once the peer was accepted. */
    EXPECT_ERR(ringline_conn_send(l, sid, NULL, 5, 0), -EINVAL);
    EXPECT_ERR(ringline_conn_sendv(l, sid, NULL, 1, 0), -EINVAL);
    EXPECT_ERR(ringline_conn_send_ref(l, sid, buf, 1, 0), -EINVAL);
    EXPECT_ERR(ringline_conn_send_ref(l, sid, NULL, 1, 1), -EINVAL);
    ANY_ERR(ringline_conn_set_mode(l, sid, 99, 0));
    ANY_ERR(ringline_conn_set_mode(l, sid, RINGLINE_MODE_FRAMED, 77));
    ANY_ERR(ringline_conn_set_mode(l, sid, RINGLINE_MODE_FORWARD, 0));
    ANY_ERR(ringline_conn_set_mode(l, sid, RINGLINE_MODE_FORWARD, lid));
    ANY_ERR(ringline_conn_set_mode(l, sid, RINGLINE_MODE_FORWARD, 0xDEADBEEF));
    EXPECT_ERR(ringline_conn_peer(l, sid, NULL, &sl), -EINVAL);
    EXPECT_ERR(ringline_conn_peer(l, sid, &ss, NULL), -EINVAL);
    sl = sizeof ss;
    OK(ringline_conn_peer(l, sid, &ss, &sl));
    CHECK(ss.ss_family == AF_INET);
    /* Consuming more than the last DATA event held. */
    OK(ringline_conn_send(l, cid, "hello", 5, 0));
    ringline_event_t d = wait_event(l, RINGLINE_EV_DATA, sid);
    CHECK(d.len >= 1 && d.len <= 5);
    ANY_ERR(ringline_conn_consume(l, sid, d.len + 1));
    ANY_ERR(ringline_conn_consume(l, sid, SIZE_MAX));

    /* Stale ids: closed objects. */
    OK(ringline_conn_abort(l, cid));
    wait_event(l, RINGLINE_EV_CLOSED, cid);
    EXPECT_ERR(ringline_conn_send(l, cid, buf, 1, 0), -EBADF);
    EXPECT_ERR(ringline_conn_close(l, cid), -EBADF);
    OK(ringline_timer_cancel(l, tid));
    EXPECT_ERR(ringline_timer_cancel(l, tid), -EBADF);
    ringline_id_t t2 = 0;
    OK(ringline_timer_after(l, 1 * MS, 6, &t2));
    wait_event(l, RINGLINE_EV_TIMER, t2);
    EXPECT_ERR(ringline_timer_cancel(l, t2), -EBADF); /* fired */
    OK(ringline_listener_close(l, lid));
    wait_event(l, RINGLINE_EV_CLOSED, lid);
    EXPECT_ERR(ringline_listener_port(l, lid), -EBADF);
    EXPECT_ERR(ringline_listener_close(l, lid), -EBADF);
    OK(ringline_udp_close(l, uid));
    wait_event(l, RINGLINE_EV_CLOSED, uid);
    EXPECT_ERR(ringline_udp_port(l, uid), -EBADF);

    /* The header asks for max >= 8: smaller batches are refused, not
     * overrun. */
    for (unsigned m = 0; m < 8; m++)
        EXPECT_ERR(ringline_loop_poll(l, ev, m, 0), -EINVAL);
    r = ringline_loop_poll(l, ev, 8, 0);
    CHECK(r >= 0 && r <= 8);

    OK(ringline_loop_destroy(l));
    /* The loop's ring went with it. */
    EXPECT_ERR(ringline_ring_fd(ring), -EBADF);
    EXPECT_ERR(ringline_loop_destroy(l), -EBADF);
}

static void *pin_thread(void *arg)
{
    (void)arg;
    int *res = malloc(4 * sizeof(int));
    res[0] = ringline_thread_pin(-1);
    res[1] = ringline_thread_pin(INT_MIN);
    res[2] = ringline_thread_pin(1 << 20);
    res[3] = ringline_thread_pin(0);
    return res;
}

int main(void)
{
    alarm(60);
    uint64_t a = ringline_now_ns(), b = rl_now_ns(), c = ringline_now_ns();
    CHECK(a != 0 && c >= a);
    CHECK(b + 1000 * MS > a && a + 1000 * MS > b);

    /* thread_pin from a scratch thread, so the test's own affinity stays. */
    pthread_t th;
    void *res = NULL;
    CHECK(pthread_create(&th, NULL, pin_thread, NULL) == 0);
    pthread_join(th, &res);
    int *pr = res;
    EXPECT_ERR(pr[0], -EINVAL);
    EXPECT_ERR(pr[1], -EINVAL);
    EXPECT_ERR(pr[2], -EINVAL);
    EXPECT_ERR(pr[3], 0);
    free(pr);

    test_frame();
    test_resp();
    test_options();

    all_loop_calls(NULL, "NULL");
    ringline_loop_t *dead = NULL;
    OK(ringline_loop_new(NULL, &dead));
    ringline_id_t tid;
    OK(ringline_timer_after(dead, 60000 * MS, 1, &tid)); /* pending at death */
    OK(ringline_loop_destroy(dead));
    all_loop_calls(dead, "destroyed");
    /* A ring handle is not a loop, a loop handle is not a ring. */
    ringline_ring_t *ring = NULL;
    OK(ringline_ring_new(NULL, &ring));
    EXPECT_ERR(ringline_loop_wake((ringline_loop_t *)ring), -EBADF);
    EXPECT_ERR(ringline_loop_destroy((ringline_loop_t *)ring), -EBADF);
    OK(ringline_ring_destroy(ring));

    test_live_loop();
    printf("bad_input_loop OK\n");
    return 0;
}
