/* Smaller loop features:
 *  1. ringline_loop_wake from another thread ends a poll(-1) with WAKE;
 *  2. pause / resume: no DATA while paused, everything after resume;
 *  3. send_ref (copy-free, small and zero-copy sized): SENT per tag, bytes
 *     intact at the client;
 *  4. a full connection table (max_conns 8): extra connections give ERROR
 *     events (the listener keeps working once slots free up);
 *  5. idle timeout: a silent connection closes with -ETIMEDOUT, a chatty
 *     one stays;
 *  6. ringline_listener_close: CLOSED, the id dies, new connects are
 *     refused. */
#include "rl_looptest.h"

static uint16_t g_port;

struct waker {
    ringline_loop_t *loop;
    int delay_ms;
};

static void *waker(void *arg)
{
    struct waker *w = arg;
    usleep((useconds_t)w->delay_ms * 1000);
    OK(ringline_loop_wake(w->loop));
    return NULL;
}

static ringline_id_t accept_one(struct lt_evq *q)
{
    ringline_event_t *e = lt_expect_any(q, 5000);
    if (e->type != RINGLINE_EV_ACCEPTED)
        FAIL("want ACCEPTED, got %s", lt_ev_name(e->type));
    return e->id;
}

static void close_and_wait(struct lt_evq *q, ringline_id_t id)
{
    OK(ringline_conn_close(q->loop, id));
    for (;;) {
        ringline_event_t *e = lt_expect_any(q, 5000);
        if (e->type == RINGLINE_EV_CLOSED && e->id == id)
            return;
    }
}

static void test_wake(ringline_loop_t *loop)
{
    printf("1: wake\n");
    struct waker w = {.loop = loop, .delay_ms = 100};
    pthread_t t;
    uint64_t t0 = rl_now_ns();
    CHECK(pthread_create(&t, NULL, waker, &w) == 0);
    ringline_event_t ev[8];
    int n;
    do {
        n = ringline_loop_poll(loop, ev, 8, -1);
    } while (n == -EINTR);
    uint64_t ms = (rl_now_ns() - t0) / MS;
    pthread_join(t, NULL);
    CHECK(n >= 1);
    CHECK(ev[0].type == RINGLINE_EV_WAKE);
    CHECK(ms >= 50 && ms < 5000);
    /* a wake before the poll is not lost */
    OK(ringline_loop_wake(loop));
    n = lt_poll(loop, ev, 8, 2000);
    CHECK(n >= 1 && ev[0].type == RINGLINE_EV_WAKE);
}

static void test_pause(ringline_loop_t *loop)
{
    printf("2: pause / resume\n");
    struct lt_evq q = {.loop = loop};
    int fd = lt_client(g_port);
    ringline_id_t id = accept_one(&q);
    CHECK(lt_write_all(fd, "abc", 3) == 0);
    ringline_event_t *e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_DATA && e->len == 3);
    OK(ringline_conn_pause(loop, id));
    OK(ringline_conn_pause(loop, id)); /* twice: fine */
    CHECK(lt_write_all(fd, "def", 3) == 0);
    e = lt_next(&q, 200);
    if (e)
        FAIL("%s event while paused", lt_ev_name(e->type));
    OK(ringline_conn_resume(loop, id));
    e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_DATA && e->len == 3 &&
          memcmp(e->data, "def", 3) == 0);
    /* paused while the peer sends and closes: nothing until resume, then
     * the bytes, then EOF */
    OK(ringline_conn_pause(loop, id));
    e = lt_next(&q, 50);
    CHECK(e == NULL);
    CHECK(lt_write_all(fd, "ghi", 3) == 0);
    close(fd);
    e = lt_next(&q, 200);
    if (e)
        FAIL("%s event while paused", lt_ev_name(e->type));
    OK(ringline_conn_resume(loop, id));
    e = lt_expect_any(&q, 5000);
    if (e->type != RINGLINE_EV_DATA || e->len != 3 ||
        memcmp(e->data, "ghi", 3) != 0)
        FAIL("after resume: %s len %llu, want DATA \"ghi\"",
             lt_ev_name(e->type), (unsigned long long)e->len);
    e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_EOF);
    close_and_wait(&q, id);
}

#define REF_BIG (2u << 20)

static void *ref_reader(void *arg)
{
    int fd = *(int *)arg;
    static uint8_t buf[100 + REF_BIG];
    CHECK(lt_read_exact(fd, buf, sizeof buf) == 0);
    long long bad = lt_verify(buf, 100, 41, 0);
    if (bad >= 0)
        FAIL("send_ref small: byte %lld", bad);
    bad = lt_verify(buf + 100, REF_BIG, 42, 0);
    if (bad >= 0)
        FAIL("send_ref big: byte %lld", bad);
    return NULL;
}

static void test_send_ref(ringline_loop_t *loop)
{
    printf("3: send_ref\n");
    struct lt_evq q = {.loop = loop};
    int fd = lt_client(g_port);
    ringline_id_t id = accept_one(&q);
    uint8_t *small = malloc(100), *big = malloc(REF_BIG);
    CHECK(small && big);
    lt_fill(small, 100, 41, 0);
    lt_fill(big, REF_BIG, 42, 0);
    EXPECT_ERR(ringline_conn_send_ref(loop, id, small, 100, 0), -EINVAL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, ref_reader, &fd) == 0);
    OK(ringline_conn_send_ref(loop, id, small, 100, 1));
    OK(ringline_conn_send_ref(loop, id, big, REF_BIG, 2));
    int seen = 0;
    while (seen != 3) {
        ringline_event_t *e = lt_expect_any(&q, 10000);
        if (e->type == RINGLINE_EV_WRITABLE)
            continue;
        CHECK(e->type == RINGLINE_EV_SENT && e->id == id);
        CHECK(e->tag == 1 || e->tag == 2);
        CHECK(!(seen & (int)e->tag));
        if (e->tag == 2)
            CHECK(seen & 1); /* in order */
        if (e->res <= 0)
            FAIL("SENT tag %llu res %d", (unsigned long long)e->tag, e->res);
        seen |= (int)e->tag;
        if (e->tag == 1) /* the caller may reuse it now */
            memset(small, 0, 100);
    }
    pthread_join(t, NULL);
    free(small);
    free(big);
    ringline_stats_t s = lt_stats(loop);
    printf("   zero-copy sends: %llu\n", (unsigned long long)s.sends_zc);
    close(fd);
    ringline_event_t *e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_EOF);
    close_and_wait(&q, id);
}

static void test_full_table(void)
{
    printf("4: full connection table\n");
    ringline_loop_t *loop = lt_loop(8, 0, 0, 0, 0);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, &lid));
    uint16_t port = (uint16_t)OK(ringline_listener_port(loop, lid));
    struct lt_evq q = {.loop = loop};
    int fds[12];
    for (int i = 0; i < 12; i++)
        fds[i] = lt_client(port);
    int acc = 0, err = 0;
    ringline_id_t ids[12];
    uint64_t deadline = rl_now_ns() + 5000 * MS;
    while (acc + err < 12 && rl_now_ns() < deadline) {
        ringline_event_t *e = lt_next(&q, 20);
        if (!e)
            continue;
        if (e->type == RINGLINE_EV_ACCEPTED)
            ids[acc++] = e->id;
        else if (e->type == RINGLINE_EV_ERROR) {
            CHECK(e->id == lid);
            CHECK(e->res < 0);
            err++;
        } else
            FAIL("unexpected %s", lt_ev_name(e->type));
    }
    printf("   %d accepted, %d ERROR events\n", acc, err);
    CHECK(acc + err == 12);
    CHECK(acc <= 8 && acc >= 7);
    CHECK(lt_stats(loop).accept_errors == (uint64_t)err);
    for (int i = 0; i < 12; i++)
        close(fds[i]);
    for (int i = 0; i < acc; i++)
        OK(ringline_conn_abort(loop, ids[i]));
    int closed = 0;
    while (closed < acc) {
        ringline_event_t *e = lt_expect_any(&q, 5000);
        if (e->type == RINGLINE_EV_CLOSED)
            closed++;
    }
    /* slots are free again: the listener still accepts */
    int fd = lt_client(port);
    ringline_id_t id = accept_one(&q);
    close(fd);
    ringline_event_t *e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_EOF && e->id == id);
    OK(ringline_loop_destroy(loop));
}

static void test_idle(void)
{
    printf("5: idle timeout\n");
    ringline_config_t *cfg;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_idle_timeout(cfg, 200));
    ringline_loop_t *loop;
    int r = ringline_loop_new(cfg, &loop);
    OK(ringline_config_free(cfg));
    OK(r);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, &lid));
    uint16_t port = (uint16_t)OK(ringline_listener_port(loop, lid));
    struct lt_evq q = {.loop = loop};
    int quiet = lt_client(port);
    ringline_id_t qid = accept_one(&q);
    int chatty = lt_client(port);
    ringline_id_t cid = accept_one(&q);
    uint64_t t0 = rl_now_ns();
    bool quiet_closed = false;
    uint64_t quiet_ms = 0;
    while (rl_now_ns() - t0 < 700 * MS) {
        CHECK(lt_write_all(chatty, "x", 1) == 0);
        ringline_event_t *e = lt_next(&q, 40);
        if (!e)
            continue;
        if (e->type == RINGLINE_EV_DATA) {
            CHECK(e->id == cid);
            continue;
        }
        if (e->type == RINGLINE_EV_CLOSED && e->id == qid) {
            CHECK(!quiet_closed);
            quiet_closed = true;
            quiet_ms = (rl_now_ns() - t0) / MS;
            if (e->res != -ETIMEDOUT)
                SOFT_FAIL("idle close res %d (%s), want ETIMEDOUT", e->res,
                          ringline_err_name(e->res));
            continue;
        }
        FAIL("unexpected %s for %s", lt_ev_name(e->type),
             e->id == cid ? "the chatty connection" : "?");
    }
    if (!quiet_closed)
        SOFT_FAIL("the idle connection was not closed within 700 ms");
    else
        printf("   idle connection closed after %llu ms\n",
               (unsigned long long)quiet_ms);
    CHECK(!quiet_closed || quiet_ms >= 150);
    /* the quiet client sees the close */
    char b[4];
    CHECK(lt_read_to_eof(quiet, b, sizeof b) == 0);
    close(quiet);
    close(chatty);
    /* (a destroy that races a sweep tick fails with -ETIMEDOUT until the
     * ring layer's destroy is fixed: see test_loop_destroy.c) */
    /* A destroy racing a multishot tick fails with -ETIMEDOUT (ring-layer
     * bug, reproduced deterministically by test_loop_destroy.c); tolerated
     * here so this test stays about its own subject. */
    int dr = ringline_loop_destroy(loop);
    if (dr == -ETIMEDOUT)
        printf("note: destroy -> ETIMEDOUT (see test_loop_destroy)\n");
    else
        OK(dr);
}

static void test_listener_close(ringline_loop_t *loop, ringline_id_t lid)
{
    printf("6: listener close\n");
    struct lt_evq q = {.loop = loop};
    OK(ringline_listener_close(loop, lid));
    EXPECT_ERR(ringline_listener_close(loop, lid), -EBADF);
    ringline_event_t *e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_CLOSED && e->id == lid && e->res == 0);
    EXPECT_ERR(ringline_listener_port(loop, lid), -EBADF);
    EXPECT_ERR(ringline_listener_set_mode(loop, lid, RINGLINE_MODE_ECHO, 0),
               -EBADF);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(g_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    CHECK(r < 0 && errno == ECONNREFUSED);
    close(fd);
    /* a new listener on the same port at once */
    ringline_id_t lid2;
    OK(ringline_listen(loop, "127.0.0.1", g_port, 8, 0, &lid2));
    CHECK(lid2 != lid);
    fd = lt_client(g_port);
    ringline_id_t id = accept_one(&q);
    close(fd);
    e = lt_expect_any(&q, 5000);
    CHECK(e->type == RINGLINE_EV_EOF && e->id == id);
    close_and_wait(&q, id);
}

/* Calls on a connection made before the loop was ever polled: the batch
 * number is still 0 then, like the "no DATA event" mark of every
 * connection, and a connection keeps its rarely used state out of line
 * (struct rl_conn_x, made on first use), so consume must not take the mark
 * for a DATA event and read state that does not exist. */
static void test_before_first_poll(void)
{
    printf("7: calls before the first poll\n");
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    ringline_id_t lid, cid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 8, 0, &lid));
    uint16_t port = (uint16_t)OK(ringline_listener_port(loop, lid));
    OK(ringline_connect(loop, "127.0.0.1", port, 0, &cid));
    EXPECT_ERR(ringline_conn_consume(loop, cid, 0), -EINVAL);
    /* an adopted connection has no out-of-line state at all yet (a
     * connecting one has: its target address) */
    int cfd = lt_client(port); /* completed by the backlog, unaccepted */
    ringline_id_t aid;
    OK(ringline_conn_adopt(loop, cfd, &aid));
    EXPECT_ERR(ringline_conn_consume(loop, aid, 0), -EINVAL);
    CHECK(ringline_conn_queued(loop, aid) == 0);
    CHECK(ringline_conn_queued(loop, cid) == 0);
    /* queued while connecting, written once connected */
    OK(ringline_conn_send(loop, cid, "hi", 2, 0));
    CHECK(ringline_conn_queued(loop, cid) == 2);
    /* two connections reach the listener (the adopted one's peer and the
     * connecting one's): the bytes arrive on one of them */
    struct lt_evq q = {.loop = loop};
    int accepted = 0;
    bool connected = false, got = false;
    for (int i = 0; i < 40 && !(connected && got); i++) {
        ringline_event_t *e = lt_next(&q, 250);
        if (!e)
            continue;
        if (e->type == RINGLINE_EV_ACCEPTED) {
            accepted++;
        } else if (e->type == RINGLINE_EV_CONNECTED && e->id == cid) {
            CHECK(e->res == 0);
            connected = true;
        } else if (e->type == RINGLINE_EV_DATA) {
            CHECK(e->len == 2 && memcmp(e->data, "hi", 2) == 0);
            got = true;
        }
    }
    CHECK(connected && got && accepted >= 1);
    OK(ringline_loop_destroy(loop));
}

int main(void)
{
    lt_watchdog(60);
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 64, 0, &lid));
    g_port = (uint16_t)OK(ringline_listener_port(loop, lid));
    test_wake(loop);
    test_pause(loop);
    test_send_ref(loop);
    test_listener_close(loop, lid);
    OK(ringline_loop_destroy(loop));
    test_full_table();
    test_idle();
    test_before_first_poll();
    return lt_exit();
}
