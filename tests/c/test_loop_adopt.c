/* Adopting sockets (ringline_conn_adopt / ringline_listener_adopt):
 *  1. a listening TCP socket made here: ACCEPTED for a client, echo through
 *     it, listener_port / listener_fd / conn_sockname agree with the kernel;
 *  2. a listening AF_UNIX socket: ACCEPTED, echo, port 0;
 *  3. a connected AF_UNIX socketpair end as a connection: bytes both ways,
 *     EOF, close -> CLOSED, and the loop closed the fd;
 *  4. a connected TCP client socket (made here, connected to a plain
 *     listener) as a connection: echo through it;
 *  5. refusals, each leaving the fd with the caller: closed/negative fd
 *     -EBADF, a regular file -ENOTSOCK, UDP and SOCK_SEQPACKET -EINVAL,
 *     listening vs connected swapped -EINVAL, unconnected -ENOTCONN;
 *  6. stale ids after close -> -EBADF for conn_fd / conn_sockname /
 *     listener_fd / send. */
#include "rl_looptest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>

static ringline_event_t *expect(struct lt_evq *q, uint32_t type, int ms)
{
    ringline_event_t *e = lt_next(q, ms);
    if (!e)
        FAIL("no %s within %d ms", lt_ev_name(type), ms);
    if (e->type != type)
        FAIL("want %s, got %s id=%llx res=%d (%s)", lt_ev_name(type),
             lt_ev_name(e->type), (unsigned long long)e->id, e->res,
             ringline_err_name(e->res));
    return e;
}

/* Client side: write a pattern through fd, the loop echoes every DATA
 * event of id back with conn_send, read it all back and compare. All in one
 * thread, so the client never blocks: it writes and reads with
 * MSG_DONTWAIT between polls. */
static void client_roundtrip(struct lt_evq *q, ringline_id_t id, int fd,
                             size_t len, uint64_t seed)
{
    uint8_t *out = malloc(len), *in = malloc(len);
    CHECK(out && in);
    lt_fill(out, len, seed, 0);
    size_t sent = 0, echoed = 0, have = 0;
    uint64_t deadline = rl_now_ns() + 10000 * MS;
    while (have < len) {
        if (rl_now_ns() > deadline)
            FAIL("round trip stuck: sent %zu echoed %zu got %zu", sent, echoed, have);
        if (sent < len) {
            ssize_t n = send(fd, out + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                FAIL("send: %s", strerror(errno));
        }
        ringline_event_t ev[16];
        int k = lt_poll(q->loop, ev, 16, 1);
        for (int i = 0; i < k; i++) {
            if (ev[i].type != RINGLINE_EV_DATA || ev[i].id != id)
                FAIL("unexpected %s id=%llx res=%d", lt_ev_name(ev[i].type),
                     (unsigned long long)ev[i].id, ev[i].res);
            OK(ringline_conn_send(q->loop, id, ev[i].data, ev[i].len, 0));
            echoed += ev[i].len;
        }
        for (;;) {
            ssize_t n = recv(fd, in + have, len - have, MSG_DONTWAIT);
            if (n > 0) {
                have += (size_t)n;
                continue;
            }
            if (n == 0)
                FAIL("EOF after %zu bytes", have);
            if (errno != EAGAIN)
                FAIL("recv: %s", strerror(errno));
            break;
        }
    }
    CHECK(echoed == len);
    CHECK(lt_verify(in, len, seed, 0) == -1);
    free(out);
    free(in);
}

static bool fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

static void close_and_wait(struct lt_evq *q, ringline_id_t id)
{
    OK(ringline_conn_close(q->loop, id));
    for (;;) {
        ringline_event_t *e = lt_expect_any(q, 5000);
        if (e->type == RINGLINE_EV_CLOSED && e->id == id)
            break;
    }
}

static void test_tcp_listener(ringline_loop_t *loop)
{
    struct lt_evq q = {.loop = loop};
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 16) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    uint16_t port = ntohs(a.sin_port);

    ringline_id_t lid = 0;
    OK(ringline_listener_adopt(loop, l, &lid));
    CHECK(ringline_listener_port(loop, lid) == port);
    CHECK(ringline_listener_fd(loop, lid) == l);

    int c = lt_client(port);
    ringline_event_t *e = expect(&q, RINGLINE_EV_ACCEPTED, 5000);
    CHECK(e->id2 == lid);
    ringline_id_t cid = e->id;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    OK(ringline_conn_sockname(loop, cid, &ss, &sl));
    CHECK(ss.ss_family == AF_INET && ntohs(((struct sockaddr_in *)&ss)->sin_port) == port);
    client_roundtrip(&q, cid, c, 100000, 1);
    close(c);
    expect(&q, RINGLINE_EV_EOF, 5000);
    close_and_wait(&q, cid);

    OK(ringline_listener_close(loop, lid));
    for (;;) {
        e = lt_expect_any(&q, 5000);
        if (e->type == RINGLINE_EV_CLOSED && e->id == lid)
            break;
    }
    CHECK(!fd_open(l) || ringline_listener_fd(loop, lid) == -EBADF);
    CHECK(ringline_listener_fd(loop, lid) == -EBADF);
    CHECK(ringline_conn_fd(loop, cid) == -EBADF);
    CHECK(ringline_conn_sockname(loop, cid, &ss, &sl) == -EBADF);
    CHECK(ringline_conn_send(loop, cid, "x", 1, 0) == -EBADF);
}

static void test_unix_listener(ringline_loop_t *loop)
{
    struct lt_evq q = {.loop = loop};
    char path[108];
    snprintf(path, sizeof path, "adopt-%d.sock", (int)getpid());
    unlink(path);
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    strcpy(u.sun_path, path);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    CHECK(bind(l, (struct sockaddr *)&u, sizeof u) == 0);
    CHECK(listen(l, 16) == 0);
    ringline_id_t lid = 0;
    OK(ringline_listener_adopt(loop, l, &lid));
    CHECK(ringline_listener_port(loop, lid) == 0);

    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    CHECK(connect(c, (struct sockaddr *)&u, sizeof u) == 0);
    lt_set_timeouts(c, 10);
    ringline_event_t *e = expect(&q, RINGLINE_EV_ACCEPTED, 5000);
    CHECK(e->id2 == lid);
    ringline_id_t cid = e->id;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    OK(ringline_conn_sockname(loop, cid, &ss, &sl));
    CHECK(ss.ss_family == AF_UNIX);
    CHECK(strcmp(((struct sockaddr_un *)&ss)->sun_path, path) == 0);
    client_roundtrip(&q, cid, c, 300000, 2);
    close(c);
    expect(&q, RINGLINE_EV_EOF, 5000);
    close_and_wait(&q, cid);
    OK(ringline_listener_close(loop, lid));
    for (;;) {
        e = lt_expect_any(&q, 5000);
        if (e->type == RINGLINE_EV_CLOSED && e->id == lid)
            break;
    }
    unlink(path);
}

static void test_socketpair_conn(ringline_loop_t *loop)
{
    struct lt_evq q = {.loop = loop};
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    lt_set_timeouts(sv[1], 10);
    ringline_id_t cid = 0;
    OK(ringline_conn_adopt(loop, sv[0], &cid));
    CHECK(ringline_conn_fd(loop, cid) == sv[0]);
    /* loop -> peer first: the adopted connection is usable at once */
    OK(ringline_conn_send(loop, cid, "hello", 5, 0));
    char buf[8];
    ringline_event_t ev[8];
    lt_poll(loop, ev, 8, 0);
    CHECK(lt_read_exact(sv[1], buf, 5) == 0 && memcmp(buf, "hello", 5) == 0);
    client_roundtrip(&q, cid, sv[1], 70000, 3);
    CHECK(shutdown(sv[1], SHUT_WR) == 0);
    expect(&q, RINGLINE_EV_EOF, 5000);
    close_and_wait(&q, cid);
    /* the loop closed its end: the peer sees EOF */
    CHECK(read(sv[1], buf, 1) == 0);
    CHECK(!fd_open(sv[0]) || ringline_conn_fd(loop, cid) == -EBADF);
    close(sv[1]);
}

static void test_tcp_conn(ringline_loop_t *loop)
{
    struct lt_evq q = {.loop = loop};
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 4) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
    int c = lt_client(ntohs(a.sin_port));
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(s >= 0);
    lt_set_timeouts(s, 10);
    ringline_id_t cid = 0;
    OK(ringline_conn_adopt(loop, c, &cid)); /* the loop is the client here */
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    OK(ringline_conn_peer(loop, cid, &ss, &sl));
    CHECK(((struct sockaddr_in *)&ss)->sin_port == a.sin_port);
    client_roundtrip(&q, cid, s, 200000, 4);
    close(s);
    expect(&q, RINGLINE_EV_EOF, 5000);
    close_and_wait(&q, cid);
    close(l);
}

static void test_refusals(ringline_loop_t *loop)
{
    ringline_id_t id = 0;
    CHECK(ringline_conn_adopt(loop, -1, &id) == -EBADF);
    CHECK(ringline_listener_adopt(loop, -1, &id) == -EBADF);
    int dead = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(dead >= 0);
    close(dead);
    CHECK(ringline_conn_adopt(loop, dead, &id) == -EBADF);
    CHECK(ringline_listener_adopt(loop, dead, &id) == -EBADF);
    CHECK(ringline_conn_adopt(NULL, 0, &id) == -EBADF);

    int f = open("adopt-file.tmp", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    CHECK(f >= 0);
    CHECK(ringline_conn_adopt(loop, f, &id) == -ENOTSOCK);
    CHECK(ringline_listener_adopt(loop, f, &id) == -ENOTSOCK);
    CHECK(fd_open(f));
    close(f);
    unlink("adopt-file.tmp");

    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(u >= 0);
    CHECK(ringline_conn_adopt(loop, u, &id) == -EINVAL);
    CHECK(ringline_listener_adopt(loop, u, &id) == -EINVAL);
    CHECK(fd_open(u));
    close(u);
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
    CHECK(ringline_conn_adopt(loop, sp[0], &id) == -EINVAL);
    close(sp[0]);
    close(sp[1]);

    /* unconnected and unlistening stream socket */
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(t >= 0);
    CHECK(ringline_conn_adopt(loop, t, &id) == -ENOTCONN);
    CHECK(ringline_listener_adopt(loop, t, &id) == -EINVAL);
    CHECK(ringline_conn_adopt(loop, t, NULL) == -EINVAL);
    /* a listening socket is not a connection */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(t, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(t, 1) == 0);
    CHECK(ringline_conn_adopt(loop, t, &id) == -EINVAL);
    CHECK(fd_open(t));
    close(t);
    /* a connected socket is not a listener */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(ringline_listener_adopt(loop, sv[0], &id) == -EINVAL);
    CHECK(fd_open(sv[0]));
    close(sv[0]);
    close(sv[1]);

    CHECK(ringline_conn_fd(loop, 0) == -EBADF);
    CHECK(ringline_listener_fd(loop, 0) == -EBADF);
    CHECK(ringline_listener_fd(loop, 0x02000000000000FFull) == -EBADF);
}

int main(void)
{
    lt_watchdog(60);
    signal(SIGPIPE, SIG_IGN);
    ringline_loop_t *loop = lt_loop(64, 16, 4096, 0, 0);
    test_tcp_listener(loop);
    test_unix_listener(loop);
    test_socketpair_conn(loop);
    test_tcp_conn(loop);
    test_refusals(loop);
    OK(ringline_loop_destroy(loop));
    return lt_exit();
}
