/* EVENTS mode, driven by the test's own poll loop against blocking clients in
 * threads:
 *  A. ACCEPTED -> DATA -> EOF -> (close) CLOSED, in that order; the peer
 *     address; after CLOSED every ringline_conn_* call on the id is -EBADF;
 *  B. a line protocol that consumes only complete lines
 *     (ringline_conn_consume): the stream is written split at every
 *     position and every byte must arrive exactly once, in order, with the
 *     unconsumed rest coming back first;
 *  C. tagged sends -> SENT events (in order, positive res), sendv;
 *  D. ringline_conn_close on an open connection -> send gives -EPIPE;
 *  E. the client half-closes: EOF event, the server still sends, then closes;
 *  F. ringline_conn_shutdown: the client reads all data, then EOF, and can
 *     still send to the server;
 *  G. a DATA event backed by the connection's accumulator stays readable
 *     after the script closes the connection in the same batch (ASan);
 *  H. batches of 8 events: each connection's DATA comes before its EOF.
 * Also: after ringline_conn_close the id stays valid for queries until
 * CLOSED is delivered, even when nothing was in flight. */
#include "rl_looptest.h"

static uint16_t g_port;
static atomic_int g_step;

static void wait_step(int want)
{
    uint64_t deadline = rl_now_ns() + 20000 * MS;
    while (atomic_load(&g_step) < want) {
        if (rl_now_ns() > deadline)
            FAIL("client: timed out waiting for step %d", want);
        usleep(1000);
    }
}

static void expect_type(ringline_event_t *e, uint32_t type, ringline_id_t id)
{
    if (e->type != type || (id && e->id != id))
        FAIL("expected %s for %llx, got %s id=%llx res=%d (%s)",
             lt_ev_name(type), (unsigned long long)id, lt_ev_name(e->type),
             (unsigned long long)e->id, e->res, ringline_err_name(e->res));
}

/* Every connection call on a dead id gives -EBADF. */
static void check_stale(ringline_loop_t *loop, ringline_id_t id)
{
    char b[4] = "abc";
    struct iovec v = {b, 3};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    EXPECT_ERR(ringline_conn_send(loop, id, b, 3, 0), -EBADF);
    EXPECT_ERR(ringline_conn_send(loop, id, b, 3, 9), -EBADF);
    EXPECT_ERR(ringline_conn_sendv(loop, id, &v, 1, 0), -EBADF);
    EXPECT_ERR(ringline_conn_send_ref(loop, id, b, 3, 9), -EBADF);
    CHECK(ringline_conn_queued(loop, id) == -EBADF);
    EXPECT_ERR(ringline_conn_consume(loop, id, 0), -EBADF);
    EXPECT_ERR(ringline_conn_pause(loop, id), -EBADF);
    EXPECT_ERR(ringline_conn_resume(loop, id), -EBADF);
    EXPECT_ERR(ringline_conn_shutdown(loop, id), -EBADF);
    EXPECT_ERR(ringline_conn_close(loop, id), -EBADF);
    EXPECT_ERR(ringline_conn_abort(loop, id), -EBADF);
    EXPECT_ERR(ringline_conn_peer(loop, id, &ss, &sl), -EBADF);
    EXPECT_ERR(ringline_conn_set_mode(loop, id, RINGLINE_MODE_ECHO, 0), -EBADF);
    EXPECT_ERR(ringline_conn_set_mode(loop, id, RINGLINE_MODE_EVENTS, 0), -EBADF);
}

/* ---- A: the basic sequence ---- */

static struct sockaddr_in g_a_local;

static void *client_a(void *arg)
{
    int fd = lt_client(g_port);
    socklen_t l = sizeof g_a_local;
    getsockname(fd, (struct sockaddr *)&g_a_local, &l);
    atomic_store(&g_step, 1);
    CHECK(lt_write_all(fd, "hello", 5) == 0);
    shutdown(fd, SHUT_WR);
    char buf[16];
    /* the server closes after EOF: we read EOF */
    ssize_t n = lt_read_to_eof(fd, buf, sizeof buf);
    if (n != 0)
        FAIL("client A: read %zd, want EOF", n);
    close(fd);
    return arg;
}

static ringline_id_t expect_accept(struct lt_evq *q, ringline_id_t lid)
{
    ringline_event_t *e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_ACCEPTED, 0);
    CHECK(e->id != 0);
    CHECK(e->id2 == lid);
    CHECK(e->res == 0);
    return e->id;
}

static void test_sequence(struct lt_evq *q, ringline_id_t lid)
{
    printf("A: ACCEPTED/DATA/EOF/CLOSED\n");
    atomic_store(&g_step, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_a, NULL) == 0);
    ringline_id_t id = expect_accept(q, lid);
    wait_step(1);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    OK(ringline_conn_peer(q->loop, id, &ss, &sl));
    CHECK(ss.ss_family == AF_INET);
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    CHECK(a->sin_port == g_a_local.sin_port);
    CHECK(a->sin_addr.s_addr == g_a_local.sin_addr.s_addr);
    CHECK(ringline_conn_queued(q->loop, id) == 0);

    char got[16];
    size_t n = 0;
    for (;;) {
        ringline_event_t *e = lt_expect_any(q, 10000);
        if (e->type == RINGLINE_EV_DATA) {
            CHECK(e->id == id);
            CHECK(n + e->len <= 5);
            memcpy(got + n, e->data, e->len);
            n += e->len;
            continue;
        }
        expect_type(e, RINGLINE_EV_EOF, id);
        break;
    }
    CHECK(n == 5 && memcmp(got, "hello", 5) == 0);
    /* still open after EOF: queries work */
    CHECK(ringline_conn_queued(q->loop, id) == 0);
    OK(ringline_conn_close(q->loop, id));
    /* "The id stays valid (for queries) until CLOSED": nothing is in
     * flight here (EOF ended the receive), so this checks that closing does
     * not retire the id before the CLOSED event is delivered */
    int64_t qd = ringline_conn_queued(q->loop, id);
    if (qd != 0)
        SOFT_FAIL("queued() right after close (before CLOSED) -> %lld (%s)",
                  (long long)qd, ringline_err_name((int)qd));
    int r = ringline_conn_send(q->loop, id, "x", 1, 0);
    if (r != -EPIPE)
        SOFT_FAIL("send after close (before CLOSED) -> %d (%s), want EPIPE",
                  r, ringline_err_name(r));
    r = ringline_conn_close(q->loop, id);
    if (r != 0)
        SOFT_FAIL("second close (before CLOSED) -> %d (%s), want 0", r,
                  ringline_err_name(r));
    ringline_event_t *e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_CLOSED, id);
    if (e->res != 0)
        FAIL("CLOSED res %d (%s), want 0", e->res, ringline_err_name(e->res));
    check_stale(q->loop, id);
    pthread_join(t, NULL);
    /* nothing more for this connection */
    ringline_event_t *x = lt_next(q, 100);
    if (x)
        FAIL("unexpected %s after CLOSED", lt_ev_name(x->type));
    /* made-up ids of the connection kind */
    check_stale(q->loop, id + (1ull << 32)); /* another generation */
    check_stale(q->loop, (id & ~0xFFFFFFFFull) | 4000);
    check_stale(q->loop, lid);
}

/* ---- B: line protocol with partial consumption ---- */

#define NLINES 24
static char g_stream[4096];
static size_t g_stream_len;

static void build_stream(void)
{
    size_t n = 0;
    for (int i = 0; i < NLINES; i++) {
        int len = (i * 7) % 23; /* includes empty lines */
        n += (size_t)sprintf(g_stream + n, "L%02d:", i);
        for (int k = 0; k < len; k++)
            g_stream[n++] = (char)('a' + (i + k) % 26);
        g_stream[n++] = '\n';
    }
    g_stream_len = n;
}

static void *client_b(void *arg)
{
    int fd = lt_client(g_port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (size_t p = 0; p <= g_stream_len; p++) {
        if (p)
            CHECK(lt_write_all(fd, g_stream, p) == 0);
        usleep(300); /* let the first piece arrive on its own */
        if (p < g_stream_len)
            CHECK(lt_write_all(fd, g_stream + p, g_stream_len - p) == 0);
    }
    /* the server answers once everything was parsed */
    char c;
    CHECK(lt_read_exact(fd, &c, 1) == 0 && c == '!');
    close(fd);
    return arg;
}

static void test_consume(struct lt_evq *q, ringline_id_t lid)
{
    printf("B: partial consumption (%zu split positions)\n", g_stream_len + 1);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_b, NULL) == 0);
    ringline_id_t id = expect_accept(q, lid);
    size_t total = (g_stream_len + 1) * g_stream_len;
    size_t parsed = 0;     /* bytes of complete lines seen */
    char kept[4096];       /* what we left unconsumed */
    size_t kept_n = 0;
    unsigned events = 0, partial = 0;
    while (parsed < total) {
        ringline_event_t *e = lt_expect_any(q, 10000);
        if (e->type != RINGLINE_EV_DATA)
            FAIL("B: unexpected %s res=%d", lt_ev_name(e->type), e->res);
        CHECK(e->id == id);
        CHECK(e->len > 0);
        events++;
        /* the unconsumed rest comes first, exactly once */
        if (e->len < kept_n || memcmp(e->data, kept, kept_n) != 0)
            FAIL("B: DATA does not start with the %zu kept bytes", kept_n);
        if (e->len == kept_n)
            FAIL("B: DATA event with no new bytes");
        /* complete lines only */
        size_t last = 0;
        for (size_t i = 0; i < e->len; i++)
            if (e->data[i] == '\n')
                last = i + 1;
        for (size_t i = 0; i < last; i++) {
            size_t at = (parsed + i) % g_stream_len;
            if (e->data[i] != g_stream[at])
                FAIL("B: byte %zu of the stream is '%c', want '%c'",
                     parsed + i, e->data[i], g_stream[at]);
        }
        parsed += last;
        kept_n = e->len - last;
        CHECK(kept_n < sizeof kept);
        memcpy(kept, e->data + last, kept_n);
        if (last < e->len)
            partial++;
        EXPECT_ERR(ringline_conn_consume(q->loop, id, e->len + 1), -EINVAL);
        OK(ringline_conn_consume(q->loop, id, last));
    }
    CHECK(kept_n == 0);
    printf("   %u DATA events, %u with a partial line kept\n", events, partial);
    CHECK(partial > 0);
    OK(ringline_conn_send(q->loop, id, "!", 1, 0));
    /* EOF then close */
    ringline_event_t *e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_EOF, id);
    OK(ringline_conn_close(q->loop, id));
    e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_CLOSED, id);
    CHECK(e->res == 0);
    pthread_join(t, NULL);
}

/* ---- C: tagged sends ---- */

#define C_BYTES (100 + 10 + 20 + 30 + 40 + 6 + 300000)

static void *client_c(void *arg)
{
    int fd = lt_client(g_port);
    static uint8_t buf[C_BYTES];
    CHECK(lt_read_exact(fd, buf, C_BYTES) == 0);
    long long bad = lt_verify(buf, C_BYTES, 33, 0);
    if (bad >= 0)
        FAIL("client C: byte %lld differs", bad);
    ssize_t n = lt_read_to_eof(fd, buf, 16);
    CHECK(n == 0);
    close(fd);
    return arg;
}

static void test_tags(struct lt_evq *q, ringline_id_t lid)
{
    printf("C: SENT events\n");
    static uint8_t src[C_BYTES];
    lt_fill(src, C_BYTES, 33, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_c, NULL) == 0);
    ringline_id_t id = expect_accept(q, lid);
    ringline_loop_t *loop = q->loop;
    OK(ringline_conn_send(loop, id, src, 100, 1));
    ringline_event_t *e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_SENT, id);
    CHECK(e->tag == 1);
    if (e->res != 100)
        FAIL("SENT res %d, want 100", e->res);
    /* several queued at once; tags come back in order */
    size_t off = 100;
    OK(ringline_conn_send(loop, id, src + off, 10, 0));
    off += 10;
    OK(ringline_conn_send(loop, id, src + off, 20, 2));
    off += 20;
    OK(ringline_conn_send(loop, id, src + off, 30, 0));
    off += 30;
    OK(ringline_conn_send(loop, id, src + off, 40, 3));
    off += 40;
    struct iovec v[3] = {{src + off, 1}, {src + off + 1, 0}, {src + off + 1, 5}};
    OK(ringline_conn_sendv(loop, id, v, 3, 4));
    off += 6;
    /* a big one (more than the default zero-copy threshold; copied) */
    OK(ringline_conn_send(loop, id, src + off, 300000, 5));
    off += 300000;
    CHECK(off == C_BYTES);
    int64_t qd = ringline_conn_queued(loop, id);
    CHECK(qd >= 0 && qd <= (int64_t)(C_BYTES - 100));
    uint64_t want = 2;
    while (want <= 5) {
        e = lt_expect_any(q, 10000);
        expect_type(e, RINGLINE_EV_SENT, id);
        if (e->tag != want)
            FAIL("SENT tag %llu, want %llu", (unsigned long long)e->tag,
                 (unsigned long long)want);
        if (e->res <= 0)
            FAIL("SENT tag %llu res %d", (unsigned long long)want, e->res);
        printf("   SENT tag %llu res %d\n", (unsigned long long)want, e->res);
        want++;
    }
    CHECK(ringline_conn_queued(loop, id) == 0);
    OK(ringline_conn_close(loop, id));
    e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_CLOSED, id);
    CHECK(e->res == 0);
    pthread_join(t, NULL);
}

/* ---- D: close on an open connection, then send ---- */

static void *client_d(void *arg)
{
    int fd = lt_client(g_port);
    char buf[64];
    ssize_t n = lt_read_to_eof(fd, buf, sizeof buf);
    if (n != 4 || memcmp(buf, "last", 4) != 0)
        FAIL("client D: read %zd bytes, want \"last\" then EOF", n);
    close(fd);
    return arg;
}

static void test_send_after_close(struct lt_evq *q, ringline_id_t lid)
{
    printf("D: send after close\n");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_d, NULL) == 0);
    ringline_id_t id = expect_accept(q, lid);
    OK(ringline_conn_send(q->loop, id, "last", 4, 0));
    OK(ringline_conn_close(q->loop, id));
    EXPECT_ERR(ringline_conn_send(q->loop, id, "more", 4, 0), -EPIPE);
    EXPECT_ERR(ringline_conn_send(q->loop, id, "more", 4, 7), -EPIPE);
    struct iovec v = {"x", 1};
    EXPECT_ERR(ringline_conn_sendv(q->loop, id, &v, 1, 0), -EPIPE);
    EXPECT_ERR(ringline_conn_send_ref(q->loop, id, "x", 1, 8), -EPIPE);
    ringline_event_t *e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_CLOSED, id);
    CHECK(e->res == 0);
    check_stale(q->loop, id);
    pthread_join(t, NULL);
}

/* ---- E: the client half-closes ---- */

#define E_BYTES 200000

static void *client_e(void *arg)
{
    int fd = lt_client(g_port);
    CHECK(lt_write_all(fd, "req", 3) == 0);
    CHECK(shutdown(fd, SHUT_WR) == 0);
    static uint8_t buf[E_BYTES + 16];
    ssize_t n = lt_read_to_eof(fd, buf, sizeof buf);
    if (n != E_BYTES)
        FAIL("client E: read %zd bytes before EOF, want %d", n, E_BYTES);
    long long bad = lt_verify(buf, E_BYTES, 55, 0);
    if (bad >= 0)
        FAIL("client E: byte %lld differs", bad);
    close(fd);
    return arg;
}

static void test_half_close_in(struct lt_evq *q, ringline_id_t lid)
{
    printf("E: client half-close\n");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_e, NULL) == 0);
    ringline_id_t id = expect_accept(q, lid);
    char got[8];
    size_t n = 0;
    ringline_event_t *e;
    for (;;) {
        e = lt_expect_any(q, 10000);
        if (e->type != RINGLINE_EV_DATA)
            break;
        CHECK(n + e->len <= 3);
        memcpy(got + n, e->data, e->len);
        n += e->len;
    }
    expect_type(e, RINGLINE_EV_EOF, id);
    CHECK(n == 3 && memcmp(got, "req", 3) == 0);
    static uint8_t src[E_BYTES];
    lt_fill(src, E_BYTES, 55, 0);
    for (int i = 0; i < 4; i++)
        OK(ringline_conn_send(q->loop, id, src + i * (E_BYTES / 4), E_BYTES / 4,
                              0));
    OK(ringline_conn_close(q->loop, id));
    e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_CLOSED, id);
    CHECK(e->res == 0);
    pthread_join(t, NULL);
}

/* ---- F: the server half-closes ---- */

#define F_BYTES (1 << 20)

static void *client_f(void *arg)
{
    int fd = lt_client(g_port);
    static uint8_t buf[F_BYTES + 16];
    ssize_t n = lt_read_to_eof(fd, buf, sizeof buf);
    if (n != F_BYTES)
        FAIL("client F: read %zd bytes before EOF, want %d", n, F_BYTES);
    long long bad = lt_verify(buf, F_BYTES, 66, 0);
    if (bad >= 0)
        FAIL("client F: byte %lld differs", bad);
    /* our side is still open */
    CHECK(lt_write_all(fd, "after", 5) == 0);
    CHECK(shutdown(fd, SHUT_WR) == 0);
    n = lt_read_to_eof(fd, buf, sizeof buf);
    CHECK(n == 0);
    close(fd);
    return arg;
}

static void test_half_close_out(struct lt_evq *q, ringline_id_t lid)
{
    printf("F: ringline_conn_shutdown\n");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_f, NULL) == 0);
    ringline_id_t id = expect_accept(q, lid);
    uint8_t *src = malloc(F_BYTES);
    CHECK(src);
    lt_fill(src, F_BYTES, 66, 0);
    OK(ringline_conn_send(q->loop, id, src, F_BYTES / 2, 0));
    OK(ringline_conn_send(q->loop, id, src + F_BYTES / 2, F_BYTES / 2, 0));
    free(src); /* copied */
    OK(ringline_conn_shutdown(q->loop, id));
    OK(ringline_conn_shutdown(q->loop, id)); /* again: no-op */
    EXPECT_ERR(ringline_conn_send(q->loop, id, "x", 1, 0), -EPIPE);
    char got[8];
    size_t n = 0;
    ringline_event_t *e;
    for (;;) {
        e = lt_expect_any(q, 10000);
        if (e->type == RINGLINE_EV_WRITABLE)
            continue;
        if (e->type != RINGLINE_EV_DATA)
            break;
        CHECK(n + e->len <= 5);
        memcpy(got + n, e->data, e->len);
        n += e->len;
    }
    expect_type(e, RINGLINE_EV_EOF, id);
    CHECK(n == 5 && memcmp(got, "after", 5) == 0);
    OK(ringline_conn_close(q->loop, id));
    e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_CLOSED, id);
    CHECK(e->res == 0);
    pthread_join(t, NULL);
}


/* ---- G: data of the current batch stays readable after a close ---- */

static void *client_g(void *arg)
{
    int fd = lt_client(g_port);
    CHECK(lt_write_all(fd, "ab", 2) == 0);
    wait_step(11);
    CHECK(lt_write_all(fd, "cdef", 4) == 0);
    CHECK(shutdown(fd, SHUT_WR) == 0);
    char buf[8];
    CHECK(lt_read_to_eof(fd, buf, sizeof buf) == 0);
    close(fd);
    return arg;
}

/* A DATA event whose bytes live in the connection's accumulator (a kept
 * rest plus new bytes), then EOF in the same batch; closing in response to
 * the EOF must not free memory the batch's DATA event still points to
 * ("valid until the next ringline_loop_poll"). ASan reports it if it does. */
static void test_data_valid_after_close(struct lt_evq *q, ringline_id_t lid)
{
    printf("G: batch data after close\n");
    atomic_store(&g_step, 10);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client_g, NULL) == 0);
    ringline_id_t id = expect_accept(q, lid);
    ringline_event_t *e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_DATA, id);
    CHECK(e->len == 2 && memcmp(e->data, "ab", 2) == 0);
    OK(ringline_conn_consume(q->loop, id, 0)); /* keep it */
    CHECK(q->i == q->n); /* nothing else in this batch */
    atomic_store(&g_step, 11);
    usleep(100 * 1000); /* both the bytes and the FIN arrive */
    ringline_event_t *data = NULL;
    bool same_batch = false;
    for (;;) {
        e = lt_expect_any(q, 10000);
        if (e->type == RINGLINE_EV_DATA) {
            CHECK(e->id == id);
            data = e;
            continue;
        }
        expect_type(e, RINGLINE_EV_EOF, id);
        same_batch = data && data >= q->ev && data < q->ev + q->n;
        break;
    }
    CHECK(data != NULL);
    OK(ringline_conn_close(q->loop, id));
    if (same_batch) {
        /* still this batch: the DATA event's bytes must be intact */
        if (data->len != 6 || memcmp(data->data, "abcdef", 6) != 0)
            SOFT_FAIL("DATA event bytes changed after close");
    } else {
        printf("   note: DATA and EOF came in different batches; not checked\n");
    }
    e = lt_expect_any(q, 10000);
    expect_type(e, RINGLINE_EV_CLOSED, id);
    pthread_join(t, NULL);
}

/* ---- H: small batches: each connection's DATA comes before its EOF ---- */

#define H_CONNS 12
static atomic_int g_h_connected;

static void *client_h(void *arg)
{
    int i = (int)(intptr_t)arg;
    int fd = lt_client(g_port);
    atomic_fetch_add(&g_h_connected, 1);
    wait_step(21);
    uint8_t m[300];
    lt_fill(m, sizeof m, 900 + (uint64_t)i, 0);
    CHECK(lt_write_all(fd, m, sizeof m) == 0);
    CHECK(shutdown(fd, SHUT_WR) == 0);
    char b[8];
    CHECK(lt_read_to_eof(fd, b, sizeof b) == 0);
    close(fd);
    return NULL;
}

static void test_small_batches(struct lt_evq *q0, ringline_id_t lid)
{
    printf("H: DATA before EOF with batches of 8\n");
    struct lt_evq q = {.loop = q0->loop, .max = 8};
    atomic_store(&g_step, 20);
    pthread_t t[H_CONNS];
    for (int i = 0; i < H_CONNS; i++)
        CHECK(pthread_create(&t[i], NULL, client_h, (void *)(intptr_t)i) == 0);
    ringline_id_t ids[H_CONNS];
    int n_acc = 0;
    while (n_acc < H_CONNS) {
        ringline_event_t *e = lt_expect_any(&q, 10000);
        CHECK(e->type == RINGLINE_EV_ACCEPTED);
        ids[n_acc++] = e->id;
    }
    while (atomic_load(&g_h_connected) < H_CONNS)
        usleep(1000);
    atomic_store(&g_step, 21);
    usleep(200 * 1000); /* everything arrives before the next poll */
    size_t got[H_CONNS] = {0};
    bool eof[H_CONNS] = {0}, closed[H_CONNS] = {0};
    int n_closed = 0;
    while (n_closed < H_CONNS) {
        ringline_event_t *e = lt_expect_any(&q, 10000);
        int k = -1;
        for (int i = 0; i < H_CONNS; i++)
            if (ids[i] == e->id)
                k = i;
        CHECK(k >= 0);
        switch (e->type) {
        case RINGLINE_EV_DATA:
            if (eof[k])
                SOFT_FAIL("connection %d: DATA (%llu bytes) after its EOF", k,
                          (unsigned long long)e->len);
            got[k] += e->len;
            break;
        case RINGLINE_EV_EOF:
            if (got[k] != 300)
                SOFT_FAIL("connection %d: EOF after %zu of 300 bytes", k,
                          got[k]);
            eof[k] = true;
            OK(ringline_conn_close(q.loop, e->id));
            break;
        case RINGLINE_EV_CLOSED:
            closed[k] = true;
            n_closed++;
            break;
        default:
            FAIL("H: unexpected %s", lt_ev_name(e->type));
        }
    }
    for (int i = 0; i < H_CONNS; i++) {
        pthread_join(t[i], NULL);
        CHECK(eof[i] && closed[i]);
    }
}

int main(void)
{
    lt_watchdog(100);
    build_stream();
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, &lid));
    g_port = (uint16_t)OK(ringline_listener_port(loop, lid));
    struct lt_evq q = {.loop = loop};

    test_sequence(&q, lid);
    test_consume(&q, lid);
    test_tags(&q, lid);
    test_send_after_close(&q, lid);
    test_half_close_in(&q, lid);
    test_half_close_out(&q, lid);
    test_data_valid_after_close(&q, lid);
    test_small_batches(&q, lid);

    ringline_stats_t s = lt_stats(loop);
    CHECK(s.conns_open == 0);
    CHECK(s.accepted == 7 + H_CONNS && s.closed == 7 + H_CONNS);
    OK(ringline_loop_destroy(loop));
    return lt_exit();
}
