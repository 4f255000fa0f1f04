/* FRAMED mode for every framer (LINE, U16BE, U32BE, RESP, HTTP_HEAD): a
 * client sends a stream of frames written byte by byte, then all at once;
 * the FRAME events must carry exactly the payloads ringline_frame() finds in
 * each frame (tag = frame length), in order, none lost or repeated, also
 * with a small event batch (8) so frames continue in later batches. Input
 * that cannot be the framing (RESP, HTTP: -EPROTO) or a frame over
 * max_frame (-EMSGSIZE) closes the connection with that CLOSED res, after
 * the good frames before it were delivered. */
#include "rl_looptest.h"

#define MAXF 8192 /* max_frame used for every framer */

struct stream {
    uint8_t *buf;
    size_t len, cap;
    size_t off[1024], flen[1024];
    unsigned n;
};

static void add(struct stream *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2 + 4096;
        s->buf = realloc(s->buf, s->cap);
        CHECK(s->buf);
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static void frame(struct stream *s, const void *p, size_t n)
{
    CHECK(s->n < 1024);
    s->off[s->n] = s->len;
    s->flen[s->n] = n;
    s->n++;
    add(s, p, n);
}

static void lenpfx(struct stream *s, int bytes, size_t plen, uint64_t seed)
{
    uint8_t *f = malloc(4 + plen);
    CHECK(f);
    if (bytes == 2) {
        f[0] = (uint8_t)(plen >> 8);
        f[1] = (uint8_t)plen;
    } else {
        f[0] = (uint8_t)(plen >> 24);
        f[1] = (uint8_t)(plen >> 16);
        f[2] = (uint8_t)(plen >> 8);
        f[3] = (uint8_t)plen;
    }
    lt_fill(f + bytes, plen, seed, 0);
    frame(s, f, (size_t)bytes + plen);
    free(f);
}

static void str(struct stream *s, const char *p) { frame(s, p, strlen(p)); }

struct tcase {
    const char *name;
    int kind;
    struct stream s;
    const uint8_t *bad; /* appended after the frames, or NULL */
    size_t bad_len;
    int bad_err;
};

static void build(struct tcase *t, int kind)
{
    struct stream *s = &t->s;
    memset(s, 0, sizeof *s);
    t->kind = kind;
    static uint8_t big_line[200];
    static uint8_t huge_u16[2] = {0xFF, 0xFF};
    static uint8_t huge_u32[4] = {0x00, 0x10, 0x00, 0x00};
    switch (kind) {
    case RINGLINE_FRAMER_LINE:
        t->name = "LINE";
        str(s, "hello\r\n");
        str(s, "\n");
        str(s, "\r\n");
        str(s, "world\n");
        str(s, "tab\there \r\n");
        for (int i = 0; i < 40; i++) {
            char b[64];
            snprintf(b, sizeof b, "line %d of many\n", i);
            str(s, b);
        }
        /* a line longer than max_frame */
        memset(big_line, 'x', sizeof big_line);
        t->bad = big_line;
        t->bad_len = sizeof big_line; /* with max_frame 100 below */
        t->bad_err = -EMSGSIZE;
        break;
    case RINGLINE_FRAMER_U16BE:
        t->name = "U16BE";
        lenpfx(s, 2, 5, 1);
        lenpfx(s, 2, 0, 2);
        lenpfx(s, 2, 256, 3);
        lenpfx(s, 2, 3000, 4);
        for (int i = 0; i < 40; i++)
            lenpfx(s, 2, (size_t)i, 100 + (uint64_t)i);
        t->bad = huge_u16;
        t->bad_len = 2;
        t->bad_err = -EMSGSIZE;
        break;
    case RINGLINE_FRAMER_U32BE:
        t->name = "U32BE";
        lenpfx(s, 4, 3, 5);
        lenpfx(s, 4, 0, 6);
        lenpfx(s, 4, 4000, 7);
        for (int i = 0; i < 40; i++)
            lenpfx(s, 4, (size_t)i * 3, 200 + (uint64_t)i);
        t->bad = huge_u32;
        t->bad_len = 4;
        t->bad_err = -EMSGSIZE;
        break;
    case RINGLINE_FRAMER_RESP:
        t->name = "RESP";
        str(s, "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
        str(s, "+OK\r\n");
        str(s, ":12345\r\n");
        str(s, "$0\r\n\r\n");
        str(s, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n*1\r\n$2\r\nab\r\n");
        str(s, "-ERR bad\r\n");
        str(s, "PING\r\n"); /* inline command */
        for (int i = 0; i < 40; i++) {
            char b[64], v[16];
            snprintf(v, sizeof v, "%0*d", i % 9 + 2, i);
            snprintf(b, sizeof b, "*1\r\n$%zu\r\n%s\r\n", strlen(v), v);
            str(s, b);
        }
        t->bad = (const uint8_t *)"*2\r\n$x\r\n";
        t->bad_len = 8;
        t->bad_err = -EPROTO;
        break;
    case RINGLINE_FRAMER_HTTP_HEAD:
        t->name = "HTTP_HEAD";
        str(s, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        str(s, "POST /p HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello");
        str(s, "GET /x?y=1 HTTP/1.0\r\n\r\n");
        for (int i = 0; i < 20; i++) {
            char b[128], v[16];
            snprintf(v, sizeof v, "%0*d", i % 7 + 2, i);
            snprintf(b, sizeof b,
                     "PUT /%d HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s", i,
                     strlen(v), v);
            str(s, b);
        }
        t->bad = (const uint8_t *)
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        t->bad_len = strlen((const char *)t->bad);
        t->bad_err = -EPROTO;
        break;
    }
}

static size_t max_for(int kind)
{
    return kind == RINGLINE_FRAMER_LINE ? 100 : MAXF;
}

/* ---- the client ---- */

static uint16_t g_port;

struct cjob {
    const struct tcase *t;
    bool bytewise;
    bool send_bad;
};

static void *client(void *arg)
{
    struct cjob *j = arg;
    int fd = lt_client(g_port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const struct stream *s = &j->t->s;
    if (j->bytewise) {
        for (size_t i = 0; i < s->len; i++) {
            CHECK(lt_write_all(fd, s->buf + i, 1) == 0);
            if (i % 64 == 0)
                usleep(100);
        }
    } else {
        CHECK(lt_write_all(fd, s->buf, s->len) == 0);
    }
    if (j->send_bad)
        CHECK(lt_write_all(fd, j->t->bad, j->t->bad_len) == 0);
    else
        shutdown(fd, SHUT_WR);
    /* the server closes (cleanly, or with a reset after bad input) */
    char b[64];
    for (;;) {
        ssize_t n = read(fd, b, sizeof b);
        if (n <= 0)
            break;
    }
    close(fd);
    return NULL;
}

static void run_case(ringline_loop_t *loop, ringline_id_t lid,
                     const struct tcase *t, bool bytewise, bool bad,
                     unsigned batch)
{
    OK(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_FRAMED,
                                  (uint64_t)t->kind |
                                      ((uint64_t)max_for(t->kind) << 8)));
    struct cjob j = {.t = t, .bytewise = bytewise, .send_bad = bad};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, client, &j) == 0);
    struct lt_evq q = {.loop = loop, .max = batch};
    ringline_event_t *e = lt_expect_any(&q, 10000);
    CHECK(e->type == RINGLINE_EV_ACCEPTED);
    ringline_id_t id = e->id;
    const struct stream *s = &t->s;
    unsigned got = 0;
    for (;;) {
        e = lt_expect_any(&q, 10000);
        CHECK(e->id == id);
        if (e->type == RINGLINE_EV_FRAME) {
            if (got >= s->n)
                FAIL("%s: frame %u beyond the %u sent", t->name, got, s->n);
            const uint8_t *f = s->buf + s->off[got];
            size_t fl, po, pl;
            CHECK(ringline_frame(t->kind, f, s->flen[got], max_for(t->kind),
                                 &fl, &po, &pl) == 1);
            CHECK(fl == s->flen[got]);
            if (e->tag != fl)
                FAIL("%s: frame %u tag (frame_len) %llu, want %zu", t->name,
                     got, (unsigned long long)e->tag, fl);
            if (e->len != pl || (pl && memcmp(e->data, f + po, pl) != 0))
                FAIL("%s: frame %u payload differs (len %llu, want %zu)",
                     t->name, got, (unsigned long long)e->len, pl);
            got++;
            continue;
        }
        if (e->type == RINGLINE_EV_EOF) {
            CHECK(!bad);
            OK(ringline_conn_close(loop, id));
            continue;
        }
        if (e->type == RINGLINE_EV_CLOSED) {
            int want = bad ? t->bad_err : 0;
            if (e->res != want)
                SOFT_FAIL("%s: CLOSED res %d (%s), want %d (%s)", t->name,
                          e->res, ringline_err_name(e->res), want,
                          ringline_err_name(want));
            break;
        }
        FAIL("%s: unexpected %s", t->name, lt_ev_name(e->type));
    }
    if (got != s->n)
        SOFT_FAIL("%s (%s%s, batch %u): %u frames of %u", t->name,
                  bytewise ? "byte by byte" : "coalesced", bad ? ", bad" : "",
                  batch, got, s->n);
    pthread_join(th, NULL);
}

int main(void)
{
    lt_watchdog(100);
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, &lid));
    g_port = (uint16_t)OK(ringline_listener_port(loop, lid));
    /* bad framer numbers are refused */
    EXPECT_ERR(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_FRAMED, 0),
               -EINVAL);
    EXPECT_ERR(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_FRAMED, 6),
               -EINVAL);
    static struct tcase cases[5];
    for (int k = RINGLINE_FRAMER_LINE; k <= RINGLINE_FRAMER_HTTP_HEAD; k++) {
        struct tcase *t = &cases[k - 1];
        build(t, k);
        /* the test's own frames must be frames */
        for (unsigned i = 0; i < t->s.n; i++) {
            size_t fl, po, pl;
            int r = ringline_frame(k, t->s.buf + t->s.off[i], t->s.flen[i],
                                   max_for(k), &fl, &po, &pl);
            if (r != 1 || fl != t->s.flen[i])
                FAIL("%s: test frame %u is not one frame (%d)", t->name, i, r);
        }
        size_t fl, po, pl;
        int r = ringline_frame(k, t->bad, t->bad_len, max_for(k), &fl, &po, &pl);
        CHECK(r == t->bad_err);
        printf("%s: %u frames, %zu bytes\n", t->name, t->s.n, t->s.len);
        run_case(loop, lid, t, true, false, 64);
        run_case(loop, lid, t, false, false, 64);
        run_case(loop, lid, t, false, false, 8);
        run_case(loop, lid, t, true, true, 64);
        run_case(loop, lid, t, false, true, 8);
    }
    /* FRAMED set on an accepted EVENTS connection keeps earlier bytes */
    printf("switch from EVENTS to FRAMED\n");
    {
        OK(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_EVENTS, 0));
        int fd = lt_client(g_port);
        struct lt_evq q = {.loop = loop};
        ringline_event_t *e = lt_expect_any(&q, 5000);
        CHECK(e->type == RINGLINE_EV_ACCEPTED);
        ringline_id_t id = e->id;
        CHECK(lt_write_all(fd, "ab", 2) == 0);
        e = lt_expect_any(&q, 5000);
        CHECK(e->type == RINGLINE_EV_DATA && e->len == 2);
        OK(ringline_conn_consume(loop, id, 0)); /* keep "ab" */
        OK(ringline_conn_set_mode(loop, id, RINGLINE_MODE_FRAMED,
                                  RINGLINE_FRAMER_LINE));
        CHECK(lt_write_all(fd, "c\nd", 3) == 0);
        e = lt_expect_any(&q, 5000);
        CHECK(e->type == RINGLINE_EV_FRAME);
        if (e->len != 3 || memcmp(e->data, "abc", 3) != 0)
            SOFT_FAIL("first frame after the switch is \"%.*s\", want \"abc\"",
                      (int)e->len, (const char *)e->data);
        CHECK(lt_write_all(fd, "\n", 1) == 0);
        e = lt_expect_any(&q, 5000);
        CHECK(e->type == RINGLINE_EV_FRAME && e->len == 1 && e->data[0] == 'd');
        close(fd);
        for (;;) {
            e = lt_expect_any(&q, 5000);
            if (e->type == RINGLINE_EV_EOF) {
                OK(ringline_conn_close(loop, id));
                continue;
            }
            CHECK(e->type == RINGLINE_EV_CLOSED);
            break;
        }
    }
    for (int k = 0; k < 5; k++)
        free(cases[k].s.buf);
    CHECK(lt_stats(loop).conns_open == 0);
    OK(ringline_loop_destroy(loop));
    return lt_exit();
}
