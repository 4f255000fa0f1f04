/* Outbound connections (ringline_connect):
 *  1. to a listening socket (a blocking echo thread): CONNECTED res 0, bytes
 *     queued before CONNECTED go out after it, data round trip, CLOSED 0;
 *  2. to a port nobody listens on: CONNECTED -ECONNREFUSED, then CLOSED;
 *  3. to a listener whose accept queue is full (backlog 0, filled with
 *     connects that are never accepted, so further SYNs are dropped):
 *     CONNECTED -ETIMEDOUT after timeout_ms=200, then CLOSED;
 *  4. the same without a timeout, closed by the script while connecting:
 *     CLOSED must still come (soon);
 *  5. bad arguments. */
#include "rl_looptest.h"

static void *echo_once(void *arg)
{
    int l = *(int *)arg;
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(fd >= 0);
    lt_set_timeouts(fd, 10);
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        CHECK(lt_write_all(fd, buf, (size_t)n) == 0);
    }
    close(fd);
    return NULL;
}

static ringline_event_t *expect(struct lt_evq *q, uint32_t type,
                                ringline_id_t id, int ms)
{
    ringline_event_t *e = lt_next(q, ms);
    if (!e)
        FAIL("no %s within %d ms", lt_ev_name(type), ms);
    if (e->type != type || e->id != id)
        FAIL("want %s for %llx, got %s for %llx res=%d (%s)", lt_ev_name(type),
             (unsigned long long)id, lt_ev_name(e->type),
             (unsigned long long)e->id, e->res, ringline_err_name(e->res));
    return e;
}

/* Is a nonblocking connect to port established within ms? Returns the fd
 * (kept open) and sets *ok. */
static int try_connect(uint16_t port, int ms, bool *ok)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    *ok = r == 0;
    if (r < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, ms) == 1) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            *ok = err == 0;
        }
    }
    return fd;
}

int main(void)
{
    lt_watchdog(60);
    ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
    struct lt_evq q = {.loop = loop};

    printf("1: connect to a listener\n");
    {
        uint16_t port;
        int l = rl_listen_tcp(&port);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, echo_once, &l) == 0);
        ringline_id_t id;
        OK(ringline_connect(loop, "127.0.0.1", port, 5000, &id));
        CHECK(id != 0);
        /* queued before the connection exists */
        OK(ringline_conn_send(loop, id, "early,", 6, 0));
        ringline_event_t *e = expect(&q, RINGLINE_EV_CONNECTED, id, 5000);
        if (e->res != 0)
            FAIL("CONNECTED res %d (%s)", e->res, ringline_err_name(e->res));
        OK(ringline_conn_send(loop, id, "late", 4, 1));
        char got[16];
        size_t n = 0;
        while (n < 10) {
            e = lt_expect_any(&q, 5000);
            if (e->type == RINGLINE_EV_SENT)
                continue;
            CHECK(e->type == RINGLINE_EV_DATA && e->id == id);
            CHECK(n + e->len <= 10);
            memcpy(got + n, e->data, e->len);
            n += e->len;
        }
        CHECK(memcmp(got, "early,late", 10) == 0);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        OK(ringline_conn_peer(loop, id, &ss, &sl));
        CHECK(ntohs(((struct sockaddr_in *)&ss)->sin_port) == port);
        OK(ringline_conn_close(loop, id));
        for (;;) {
            e = lt_expect_any(&q, 5000);
            if (e->type == RINGLINE_EV_SENT)
                continue;
            CHECK(e->type == RINGLINE_EV_CLOSED && e->id == id);
            CHECK(e->res == 0);
            break;
        }
        pthread_join(t, NULL);
        close(l);
        CHECK(lt_stats(loop).connected == 1);
    }

    printf("2: connect to a closed port\n");
    {
        uint16_t port;
        int l = rl_listen_tcp(&port);
        close(l); /* nobody listens there now */
        ringline_id_t id;
        OK(ringline_connect(loop, "127.0.0.1", port, 5000, &id));
        ringline_event_t *e = expect(&q, RINGLINE_EV_CONNECTED, id, 5000);
        if (e->res != -ECONNREFUSED)
            FAIL("CONNECTED res %d (%s), want ECONNREFUSED", e->res,
                 ringline_err_name(e->res));
        e = expect(&q, RINGLINE_EV_CLOSED, id, 5000);
        CHECK(e->res < 0);
        printf("   CLOSED res %d (%s)\n", e->res, ringline_err_name(e->res));
        EXPECT_ERR(ringline_conn_send(loop, id, "x", 1, 0), -EBADF);
    }

    printf("3: connect timeout\n");
    {
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
        CHECK(listen(l, 0) == 0);
        socklen_t al = sizeof a;
        getsockname(l, (struct sockaddr *)&a, &al);
        uint16_t port = ntohs(a.sin_port);
        /* fill the accept queue until a handshake no longer completes */
        int fds[32], nf = 0;
        bool full = false;
        while (nf < 32) {
            bool ok;
            fds[nf++] = try_connect(port, 200, &ok);
            if (!ok) {
                full = true;
                break;
            }
        }
        if (!full) {
            for (int i = 0; i < nf; i++)
                close(fds[i]);
            close(l);
            OK(ringline_loop_destroy(loop));
            SKIP("the kernel completed %d handshakes on a backlog-0 listener; "
                 "cannot make SYNs go unanswered",
                 nf);
        }
        printf("   accept queue full after %d connects\n", nf - 1);
        ringline_id_t id;
        uint64_t t0 = rl_now_ns();
        OK(ringline_connect(loop, "127.0.0.1", port, 200, &id));
        ringline_event_t *e = expect(&q, RINGLINE_EV_CONNECTED, id, 5000);
        uint64_t ms = (rl_now_ns() - t0) / MS;
        printf("   CONNECTED res %d (%s) after %llu ms\n", e->res,
               ringline_err_name(e->res), (unsigned long long)ms);
        if (e->res != -ETIMEDOUT)
            FAIL("CONNECTED res %d (%s), want ETIMEDOUT", e->res,
                 ringline_err_name(e->res));
        CHECK(ms >= 150 && ms < 3000);
        e = expect(&q, RINGLINE_EV_CLOSED, id, 5000);
        CHECK(e->res < 0);

        printf("4: close while connecting (no timeout)\n");
        OK(ringline_connect(loop, "127.0.0.1", port, 0, &id));
        CHECK(lt_next(&q, 100) == NULL); /* still connecting */
        int64_t qd = ringline_conn_queued(loop, id);
        CHECK(qd == 0);
        t0 = rl_now_ns();
        OK(ringline_conn_close(loop, id));
        e = lt_next(&q, 3000);
        ms = (rl_now_ns() - t0) / MS;
        if (!e) {
            SOFT_FAIL("no event within 3 s of closing a connecting "
                      "connection (the connect is not cancelled)");
        } else {
            /* CONNECTED (with an error) may come first */
            if (e->type == RINGLINE_EV_CONNECTED) {
                CHECK(e->id == id && e->res < 0);
                e = lt_expect_any(&q, 3000);
            }
            CHECK(e->type == RINGLINE_EV_CLOSED && e->id == id);
            printf("   CLOSED res %d after %llu ms\n", e->res,
                   (unsigned long long)ms);
        }

        printf("4b: loop stop while connecting (no timeout)\n");
        OK(ringline_connect(loop, "127.0.0.1", port, 0, &id));
        CHECK(lt_next(&q, 100) == NULL);
        t0 = rl_now_ns();
        OK(ringline_loop_stop(loop, 1000));
        bool stopped = false;
        while (!stopped) {
            e = lt_next(&q, 3000);
            if (!e) {
                SOFT_FAIL("no STOPPED within 3 s of stopping with a connect "
                          "in flight");
                break;
            }
            if (e->type == RINGLINE_EV_STOPPED)
                stopped = true;
            else
                CHECK(e->id == id && (e->type == RINGLINE_EV_CLOSED ||
                                      e->type == RINGLINE_EV_CONNECTED));
        }
        printf("   STOPPED after %llu ms\n",
               (unsigned long long)(rl_now_ns() - t0) / MS);
        for (int i = 0; i < nf; i++)
            close(fds[i]);
        close(l);
    }

    printf("5: bad arguments\n");
    ringline_id_t x;
    /* (the loop is stopped now: argument checks may come first or not) */
    int r = ringline_connect(loop, "127.0.0.1", 0, 100, &x);
    CHECK(r == -EINVAL || r == -ESHUTDOWN);
    r = ringline_connect(loop, NULL, 80, 100, &x);
    CHECK(r == -EINVAL || r == -ESHUTDOWN);
    r = ringline_connect(loop, "127.0.0.1", 80, 100, NULL);
    CHECK(r == -EINVAL || r == -ESHUTDOWN);

    ringline_event_t ev[16];
    lt_poll(loop, ev, 16, 10);
    OK(ringline_loop_destroy(loop));
    return lt_exit();
}
