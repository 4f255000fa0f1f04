/*
 * baseline_uring_echo — a lean hand-written liburing echo server, the
 * reference ringline's echo is measured against.
 *
 *   baseline_uring_echo PORT        (listens on 127.0.0.1:PORT)
 *
 * One thread, one ring (COOP_TASKRUN | SINGLE_ISSUER | DEFER_TASKRUN),
 * multishot accept, multishot recv into a provided-buffer ring (1024 x 16 KiB,
 * the same as ringline's loop defaults). Each received buffer is sent straight
 * back from where the kernel put it; at most one send is in flight per
 * connection (io_uring does not order two sends on one socket), later buffers
 * wait in a small per-connection FIFO, short sends are resumed, and a buffer
 * goes back to the ring once its bytes are all written. Buffer returns are
 * published once per completion batch. SIGINT/SIGTERM end it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_COUNT 1024u
#define BUF_SIZE 16384u
#define BGID 0
#define SQ_ENTRIES 4096u
#define CQ_ENTRIES 16384u
#define MAX_FDS 65536

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };
#define UD(op, fd) (((uint64_t)(op) << 32) | (uint32_t)(fd))
#define UD_OP(u) ((unsigned)((u) >> 32))
#define UD_FD(u) ((int)(uint32_t)(u))

struct piece {
    uint16_t bid;
    uint32_t off, len;
};

struct conn {
    bool open;
    bool recv_armed;
    bool parked;      /* multishot recv ended with ENOBUFS */
    bool eof;         /* peer closed or error: close once idle */
    bool sending;     /* one send in flight */
    struct piece *q;  /* FIFO: q[0] is the one being sent */
    unsigned qh, qn, qcap;
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static uint8_t *bufs;
static unsigned br_mask, br_added;
static struct conn *conns;
static int *parked;
static unsigned nparked;
static int lfd;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    while (!s) {
        io_uring_submit(&ring);
        s = io_uring_get_sqe(&ring);
    }
    return s;
}

static void buf_return(uint16_t bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                          br_mask, (int)br_added);
    br_added++;
}

static void arm_accept(void)
{
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, UD(OP_ACCEPT, lfd));
}

static void arm_recv(int fd)
{
    struct conn *c = &conns[fd];
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
    io_uring_sqe_set_data64(s, UD(OP_RECV, fd));
    c->recv_armed = true;
}

static void send_head(int fd)
{
    struct conn *c = &conns[fd];
    struct piece *p = &c->q[c->qh];
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_send(s, fd, bufs + (size_t)p->bid * BUF_SIZE + p->off,
                       p->len - p->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, UD(OP_SEND, fd));
    c->sending = true;
}

static void maybe_close(int fd)
{
    struct conn *c = &conns[fd];
    if (!c->eof || c->recv_armed || c->sending)
        return;
    while (c->qn) { /* unsent data of a failed connection */
        buf_return(c->q[c->qh].bid);
        c->qh = (c->qh + 1) & (c->qcap - 1);
        c->qn--;
    }
    free(c->q);
    memset(c, 0, sizeof *c);
    close(fd);
}

static void enqueue(int fd, uint16_t bid, uint32_t len)
{
    struct conn *c = &conns[fd];
    if (c->qn == c->qcap) {
        unsigned ncap = c->qcap ? c->qcap * 2 : 8;
        struct piece *n = malloc(ncap * sizeof *n);
        if (!n) {
            perror("malloc");
            exit(1);
        }
        for (unsigned i = 0; i < c->qn; i++)
            n[i] = c->q[(c->qh + i) & (c->qcap - 1)];
        free(c->q);
        c->q = n;
        c->qh = 0;
        c->qcap = ncap;
    }
    c->q[(c->qh + c->qn) & (c->qcap - 1)] = (struct piece){bid, 0, len};
    c->qn++;
    if (!c->sending)
        send_head(fd);
}

static void on_recv(int fd, struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[fd];
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->recv_armed = false;
    if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->eof)
            buf_return(bid);
        else
            enqueue(fd, bid, (uint32_t)cqe->res);
    } else if (cqe->flags & IORING_CQE_F_BUFFER) {
        buf_return((uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    }
    if (cqe->res == -ENOBUFS) {
        if (!c->parked) {
            c->parked = true;
            parked[nparked++] = fd;
        }
    } else if (cqe->res <= 0) {
        c->eof = true; /* EOF or error */
    } else if (!c->recv_armed && !c->eof) {
        arm_recv(fd);
    }
    maybe_close(fd);
}

static void on_send(int fd, struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[fd];
    c->sending = false;
    if (cqe->res < 0) {
        c->eof = true;
        maybe_close(fd);
        return;
    }
    struct piece *p = &c->q[c->qh];
    p->off += (uint32_t)cqe->res;
    if (p->off < p->len) { /* short send: resume */
        send_head(fd);
        return;
    }
    buf_return(p->bid);
    c->qh = (c->qh + 1) & (c->qcap - 1);
    c->qn--;
    if (c->qn && !c->eof)
        send_head(fd);
    maybe_close(fd);
}

static void on_accept(struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE) && !stop)
        arm_accept();
    int fd = cqe->res;
    if (fd < 0)
        return;
    if (fd >= MAX_FDS) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conns[fd].open = true;
    arm_recv(fd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: the wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(lfd, 4096) < 0) {
        perror("bind/listen");
        return 1;
    }

    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
              IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    int ret = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    if (ret < 0) {
        fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
        return 1;
    }

    /* the provided-buffer ring (liburing 2.3 has no setup helper) */
    size_t rsz = BUF_COUNT * sizeof(struct io_uring_buf);
    br = mmap(NULL, rsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
              -1, 0);
    bufs = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    conns = calloc(MAX_FDS, sizeof *conns);
    parked = calloc(MAX_FDS, sizeof *parked);
    if (br == MAP_FAILED || bufs == MAP_FAILED || !conns || !parked) {
        perror("alloc");
        return 1;
    }
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br,
                                   .ring_entries = BUF_COUNT,
                                   .bgid = BGID};
    ret = io_uring_register_buf_ring(&ring, &reg, 0);
    if (ret < 0) {
        fprintf(stderr, "register_buf_ring: %s\n", strerror(-ret));
        return 1;
    }
    io_uring_buf_ring_init(br);
    br_mask = io_uring_buf_ring_mask(BUF_COUNT);
    for (unsigned i = 0; i < BUF_COUNT; i++)
        buf_return((uint16_t)i);
    io_uring_buf_ring_advance(br, (int)br_added);
    br_added = 0;

    arm_accept();
    fprintf(stderr, "baseline_uring_echo: listening on 127.0.0.1:%d\n", port);

    while (!stop) {
        ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY) {
            fprintf(stderr, "submit_and_wait: %s\n", strerror(-ret));
            break;
        }
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            int fd = UD_FD(ud);
            switch (UD_OP(ud)) {
            case OP_ACCEPT: on_accept(cqe); break;
            case OP_RECV: on_recv(fd, cqe); break;
            case OP_SEND: on_send(fd, cqe); break;
            }
            n++;
        }
        io_uring_cq_advance(&ring, n);
        if (br_added) {
            io_uring_buf_ring_advance(br, (int)br_added);
            br_added = 0;
            /* buffers are back: re-arm connections that ran dry */
            unsigned k = nparked;
            nparked = 0;
            for (unsigned i = 0; i < k; i++) {
                int fd = parked[i];
                conns[fd].parked = false;
                if (!conns[fd].eof && !conns[fd].recv_armed)
                    arm_recv(fd);
                maybe_close(fd);
            }
        }
    }
    fprintf(stderr, "baseline_uring_echo: stopping\n");
    io_uring_queue_exit(&ring);
    close(lfd);
    return 0;
}
