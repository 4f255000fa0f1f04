/* Destroying a loop (and a bare ring) while a multishot timeout has a tick
 * waiting to be processed: the next tick fired while the owner thread was
 * away (sleeping, not in the kernel), so with DEFER_TASKRUN its completion
 * work is still queued when the destroy cancels everything. The destroy
 * must still cancel it and return 0 promptly (documented: -ETIMEDOUT only
 * "if some operation refused to finish").
 *  1. ringline_timer_every, a tick pending, ringline_loop_destroy;
 *  2. the idle-timeout sweep (a loop-internal multishot timeout), same;
 *  3. a raw ring: ringline_op_timeout(MULTISHOT), same, ringline_ring_destroy.
 * Also a plain destroy of a loop with live connections, listener, UDP
 * socket and timers, right after creating them (no poll), frees
 * everything (LeakSanitizer). */
#include "rl_looptest.h"

static int timed_destroy(const char *what, ringline_loop_t *loop,
                         ringline_ring_t *ring)
{
    uint64_t t0 = rl_now_ns();
    int r = loop ? ringline_loop_destroy(loop) : ringline_ring_destroy(ring);
    uint64_t ms = (rl_now_ns() - t0) / MS;
    printf("   %s: destroy -> %d (%s) in %llu ms\n", what, r,
           ringline_err_name(r), (unsigned long long)ms);
    if (r != 0)
        SOFT_FAIL("%s: destroy -> %d (%s) after %llu ms: a multishot timeout "
                  "survived the cancel",
                  what, r, ringline_err_name(r), (unsigned long long)ms);
    return r;
}

int main(void)
{
    lt_watchdog(60);

    printf("1: every() with a tick pending\n");
    {
        ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
        ringline_id_t t;
        OK(ringline_timer_every(loop, 20 * MS, 1, &t));
        struct lt_evq q = {.loop = loop};
        ringline_event_t *e = lt_expect_any(&q, 2000);
        CHECK(e->type == RINGLINE_EV_TIMER);
        usleep(30 * 1000); /* the next tick fires while we are away */
        timed_destroy("every", loop, NULL);
    }

    printf("2: idle sweep with a tick pending\n");
    {
        ringline_config_t *cfg;
        OK(ringline_config_new(&cfg));
        OK(ringline_config_set_idle_timeout(cfg, 80)); /* sweep every 20 ms */
        ringline_loop_t *loop;
        int r = ringline_loop_new(cfg, &loop);
        OK(ringline_config_free(cfg));
        OK(r);
        ringline_event_t ev[8];
        lt_poll(loop, ev, 8, 50); /* arms the sweep; a tick or two pass */
        usleep(30 * 1000);
        timed_destroy("idle sweep", loop, NULL);
    }

    printf("3: raw ring, multishot timeout with a tick pending\n");
    {
        ringline_ring_t *ring;
        OK(ringline_ring_new(NULL, &ring));
        uint64_t f = 0;
        OK(ringline_ring_features(ring, &f));
        if (!(f & RINGLINE_FEAT_TIMEOUT_MULTISHOT)) {
            printf("   (no multishot timeouts: skipped)\n");
            OK(ringline_ring_destroy(ring));
        } else {
            OK(ringline_op_timeout(ring, 20 * MS, 0, RINGLINE_TIMEOUT_MULTISHOT,
                                   42));
            ringline_cqe_t c;
            int n = 0;
            uint64_t deadline = rl_now_ns() + 2000 * MS;
            while (n == 0 && rl_now_ns() < deadline) {
                n = ringline_ring_reap(ring, &c, 1, 1, 100 * (int64_t)MS);
                if (n < 0 && n != -EINTR)
                    FAIL("reap: %s", ringline_err_name(n));
                if (n < 0)
                    n = 0;
            }
            CHECK(n == 1 && c.token == 42 && c.res == -ETIME);
            usleep(30 * 1000);
            timed_destroy("raw ring", NULL, ring);
        }
    }

    printf("4: destroy right after creating everything\n");
    {
        ringline_loop_t *loop = lt_loop(0, 0, 0, 0, 0);
        ringline_id_t lid, uid, t1, t2, cid;
        OK(ringline_listen(loop, "127.0.0.1", 0, 8, 0, &lid));
        uint16_t port = (uint16_t)OK(ringline_listener_port(loop, lid));
        OK(ringline_udp_bind(loop, "127.0.0.1", 0, &uid));
        OK(ringline_timer_after(loop, 10000 * MS, 1, &t1));
        OK(ringline_timer_every(loop, 10000 * MS, 2, &t2));
        OK(ringline_connect(loop, "127.0.0.1", port, 1000, &cid));
        OK(ringline_conn_send(loop, cid, "queued", 6, 3));
        int fd = lt_client(port); /* accepted during destroy, or not */
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(
                                    (uint16_t)OK(ringline_udp_port(loop, uid))),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        OK(ringline_udp_sendto(loop, uid, "dg", 2, (struct sockaddr *)&a,
                               sizeof a));
        timed_destroy("fresh objects", loop, NULL);
        close(fd);
    }
    return lt_exit();
}
