/*
 * baseline_epoll_echo — a lean epoll echo server, the classic reference.
 *
 *   baseline_epoll_echo PORT        (listens on 127.0.0.1:PORT)
 *
 * One thread, level-triggered epoll, nonblocking sockets. On a readable
 * socket: read into one shared 64 KiB buffer and write straight back; bytes
 * the socket would not take go to a per-connection pending buffer, EPOLLOUT
 * is armed and reading stops until the pending bytes are written (so a
 * client that does not read cannot make the server buffer without bound).
 * SIGINT/SIGTERM end it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF 65536
#define MAX_FDS 65536
#define READS_PER_EVENT 4 /* fairness: at most this many full reads per wakeup */

struct conn {
    uint8_t *pend; /* bytes not yet written */
    size_t plen, pcap, poff;
};

static struct conn *conns;
static int epfd, lfd;
static uint8_t rbuf[RBUF];
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void conn_close(int fd)
{
    free(conns[fd].pend);
    memset(&conns[fd], 0, sizeof conns[fd]);
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static void set_events(int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Write what is pending; 1 when all is out, 0 when the socket is full,
 * -1 on error. */
static int flush_pending(int fd)
{
    struct conn *c = &conns[fd];
    while (c->poff < c->plen) {
        ssize_t w = send(fd, c->pend + c->poff, c->plen - c->poff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->poff += (size_t)w;
    }
    c->poff = c->plen = 0;
    return 1;
}

static int keep_pending(int fd, const uint8_t *p, size_t n)
{
    struct conn *c = &conns[fd];
    if (c->plen + n > c->pcap) {
        size_t ncap = c->pcap ? c->pcap : 4096;
        while (ncap < c->plen + n)
            ncap *= 2;
        uint8_t *np = realloc(c->pend, ncap);
        if (!np)
            return -1;
        c->pend = np;
        c->pcap = ncap;
    }
    memcpy(c->pend + c->plen, p, n);
    c->plen += n;
    return 0;
}

static void on_readable(int fd)
{
    for (int round = 0; round < READS_PER_EVENT; round++) {
        ssize_t r = recv(fd, rbuf, RBUF, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(fd);
            return;
        }
        if (r == 0) {
            conn_close(fd);
            return;
        }
        size_t off = 0;
        while (off < (size_t)r) {
            ssize_t w = send(fd, rbuf + off, (size_t)r - off, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                conn_close(fd);
                return;
            }
            off += (size_t)w;
        }
        if (off < (size_t)r) {
            /* partial write: keep the rest, wait for EPOLLOUT, stop reading */
            if (keep_pending(fd, rbuf + off, (size_t)r - off) < 0) {
                conn_close(fd);
                return;
            }
            set_events(fd, EPOLLOUT);
            return;
        }
        if (r < RBUF)
            return; /* drained */
    }
}

static void on_writable(int fd)
{
    int ret = flush_pending(fd);
    if (ret < 0)
        conn_close(fd);
    else if (ret > 0)
        set_events(fd, EPOLLIN);
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or an error the next wakeup retries */
        if (fd >= MAX_FDS) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            close(fd);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    conns = calloc(MAX_FDS, sizeof *conns);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (!conns || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(lfd, 4096) < 0) {
        perror("bind/listen");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    fprintf(stderr, "baseline_epoll_echo: listening on 127.0.0.1:%d\n", port);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                on_accept();
            else if (evs[i].events & EPOLLOUT)
                on_writable(fd);
            else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(fd);
        }
    }
    fprintf(stderr, "baseline_epoll_echo: stopping\n");
    close(epfd);
    close(lfd);
    return 0;
}
