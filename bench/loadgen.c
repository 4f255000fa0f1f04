/*
 * loadgen — a single-threaded epoll load generator for echo servers.
 *
 *   loadgen --port P [--host 127.0.0.1] [--conns N] [--size BYTES]
 *           [--depth D] [--duration S] [--warmup S] [--rate R]
 *           [--idle N] [--idle-ping] [--server-pid PID]
 *           [--stall-timeout S] [--quiet]
 *
 * Closed loop (default): every connection keeps D messages of BYTES bytes in
 * flight; a message's latency runs from the moment it was queued for sending
 * to the moment its last echoed byte arrived.
 *
 * Open loop (--rate R): R messages per second in total are scheduled at fixed
 * intended times (message k at t0 + k/R, round-robin over the connections),
 * whether or not earlier replies came back, and latency is measured from the
 * intended send time, so a stalled server is charged for every message it
 * delayed (no coordinated omission).
 *
 * Every connection sends a deterministic byte stream (a pseudo-random table
 * read at a per-connection offset), and every echoed byte is compared with
 * what was sent at that stream position: a mismatch, a byte the client never
 * sent, an early close or a stall (nothing received for --stall-timeout while
 * replies are owed) ends the run with a non-zero exit status and
 * "ok":false in the JSON line.
 *
 * --idle N opens N extra connections that never send (for RSS per
 * connection; --idle-ping makes each echo one byte first) and holds them for
 * the whole run; with --conns 0 it only holds them for --duration seconds.
 *
 * --server-pid PID samples the server's CPU time (utime+stime from
 * /proc/PID/stat, every thread of the process) and the whole machine's
 * per-CPU busy time (/proc/stat) exactly at the start and the end of the
 * measured window, and the server's VmRSS at the end, so the numbers belong
 * to the same interval as the throughput.
 *
 * Output: a human-readable summary, then one JSON line (always the last line
 * on stdout). Exit status: 0 ok, 1 usage/setup error, 2 verification error,
 * 3 stall/connection error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- options ---- */
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static int opt_conns = 1;
static size_t opt_size = 64;
static int opt_depth = 1;
static double opt_duration = 5.0;
static double opt_warmup = 1.0;
static double opt_rate = 0.0;
static int opt_idle = 0;
static bool opt_idle_ping = false;
static int opt_server_pid = 0;
static double opt_stall = 3.0;
static bool opt_quiet = false;

/* ---- the byte pattern ---- */
#define PAT_LEN 65521u            /* prime: streams of different conns differ */
#define PIECE_MAX (256u * 1024u)  /* longest contiguous slice ever needed */
static uint8_t *pat;              /* PAT_LEN + PIECE_MAX bytes, wrapping */

static inline const uint8_t *pat_at(uint64_t seed, uint64_t off)
{
    return pat + (size_t)((off + seed) % PAT_LEN);
}

/* ---- time ---- */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram: log-linear, <= 1/512 relative error ---- */
#define H_SUB 512u
#define H_BUCKETS (1024u + 54u * H_SUB)
static uint64_t hist[H_BUCKETS];
static uint64_t h_count, h_max, h_min = UINT64_MAX;
static double h_sum;

static unsigned h_index(uint64_t v)
{
    if (v < 1024)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 9u;
    unsigned top = (unsigned)(v >> shift); /* 512..1023 */
    unsigned idx = 1024u + (shift - 1u) * H_SUB + (top - H_SUB);
    return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

static uint64_t h_value(unsigned idx)
{
    if (idx < 1024)
        return idx;
    unsigned shift = (idx - 1024u) / H_SUB + 1u;
    uint64_t top = (idx - 1024u) % H_SUB + H_SUB;
    return (top << shift) + ((1ull << shift) >> 1); /* bucket middle */
}

static void h_record(uint64_t v)
{
    hist[h_index(v)]++;
    h_count++;
    h_sum += (double)v;
    if (v > h_max)
        h_max = v;
    if (v < h_min)
        h_min = v;
}

static void h_reset(void)
{
    memset(hist, 0, sizeof hist);
    h_count = 0;
    h_max = 0;
    h_min = UINT64_MAX;
    h_sum = 0;
}

static double h_pct(double p)
{
    if (!h_count)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h_count);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= want) {
            uint64_t v = h_value(i);
            return (double)(v > h_max ? h_max : v);
        }
    }
    return (double)h_max;
}

/* ---- connections ---- */
struct conn {
    int fd;
    int id;
    bool idle;
    bool want_out;       /* EPOLLOUT registered */
    uint64_t seed;       /* stream offset into the pattern */
    uint64_t sent;       /* stream bytes written */
    uint64_t target;     /* stream bytes queued (issued messages) */
    uint64_t recvd;      /* stream bytes received and verified */
    uint64_t issued;     /* messages queued */
    uint64_t done;       /* messages fully echoed */
    uint64_t *ts;        /* stamps of messages in flight, ring of cap */
    uint64_t cap;        /* power of two */
};

static struct conn *conns;
static int nconns;
static struct conn *idles;
static int epfd;
static uint8_t *rbuf;
#define RBUF_LEN (256u * 1024u)

/* measurement */
static bool measuring;
static uint64_t m_ops, m_bytes;
static uint64_t total_ops, total_bytes_verified;
static uint64_t last_progress_ns;

/* ---- failure reporting: always leave a JSON line ---- */
static void json_fail(int code, const char *kind, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "loadgen: FAILED (%s): %s\n", kind, msg);
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = ' ';
    fflush(stdout);
    printf("{\"ok\":false,\"error\":\"%s\",\"message\":\"%s\",\"conns\":%d,"
           "\"size\":%zu,\"depth\":%d,\"rate\":%.0f,\"ops_total\":%" PRIu64
           ",\"verified_bytes\":%" PRIu64 "}\n",
           kind, msg, opt_conns, opt_size, opt_depth, opt_rate, total_ops,
           total_bytes_verified);
    fflush(stdout);
    exit(code);
}

/* ---- /proc sampling ---- */
static double proc_cpu_s(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (!p)
        return -1;
    p += 2; /* field 3 (state) */
    unsigned long long ut = 0, st = 0;
    int field = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)hz;
}

static long proc_rss_kb(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* busy (non-idle, non-iowait) seconds of cpuN from /proc/stat */
static double cpu_busy_s(int cpu)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char want[16], line[512];
    snprintf(want, sizeof want, "cpu%d ", cpu);
    double res = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, strlen(want)) == 0) {
            unsigned long long v[10] = {0};
            sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu",
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
            /* user nice system idle iowait irq softirq steal */
            unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
            res = (double)busy / (double)sysconf(_SC_CLK_TCK);
            break;
        }
    }
    fclose(f);
    return res;
}

static int server_cpu_of(int pid)
{
    /* the CPU the server last ran on (field 39), to pick the /proc/stat line */
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2;
    int field = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++)
        if (field == 39)
            return atoi(tok);
    return -1;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* nanoseconds the threads of pid (0: this process) spent runnable but
 * waiting for a CPU (schedstat run_delay, summed over /proc/PID/task), or -1 */
static double run_delay_ns(int pid)
{
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/task", pid);
    else
        snprintf(path, sizeof path, "/proc/self/task");
    DIR *d = opendir(path);
    if (!d)
        return -1;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p2[64 + 256 + 16];
        snprintf(p2, sizeof p2, "%s/%s/schedstat", path, e->d_name);
        FILE *f = fopen(p2, "r");
        if (!f)
            continue;
        unsigned long long on = 0, wait = 0;
        if (fscanf(f, "%llu %llu", &on, &wait) == 2)
            sum += (double)wait;
        fclose(f);
    }
    closedir(d);
    return sum;
}

/* microseconds some task waited for a CPU, machine-wide (PSI), or -1 */
static double psi_cpu_some_us(void)
{
    FILE *f = fopen("/proc/pressure/cpu", "r");
    if (!f)
        return -1;
    char line[256];
    double res = -1;
    while (fgets(line, sizeof line, f)) {
        char *t = strstr(line, "total=");
        if (strncmp(line, "some", 4) == 0 && t) {
            res = strtod(t + 6, NULL);
            break;
        }
    }
    fclose(f);
    return res;
}

/* ---- socket helpers ---- */
static int open_conn(void)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_host, &sa.sin_addr) != 1)
        json_fail(1, "usage", "bad host %s (IPv4 numeric only)", opt_host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        json_fail(1, "setup", "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        json_fail(3, "connect", "connect %s:%d: %s", opt_host, opt_port,
                  strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void ep_mod(struct conn *c, bool out)
{
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
                             .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        json_fail(1, "setup", "epoll_ctl: %s", strerror(errno));
    c->want_out = out;
}

/* ---- the data path ---- */
static void flush_out(struct conn *c)
{
    while (c->sent < c->target) {
        uint64_t left = c->target - c->sent;
        size_t n = left > PIECE_MAX ? PIECE_MAX : (size_t)left;
        ssize_t w = send(c->fd, pat_at(c->seed, c->sent), n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ep_mod(c, true);
                return;
            }
            if (errno == EINTR)
                continue;
            json_fail(3, "conn", "conn %d: send: %s", c->id, strerror(errno));
        }
        c->sent += (uint64_t)w;
    }
    ep_mod(c, false);
}

static void issue(struct conn *c, uint64_t stamp)
{
    if (c->issued - c->done == c->cap) {
        /* open loop with a server that fell behind: grow the stamp ring */
        uint64_t ncap = c->cap * 2;
        uint64_t *n = malloc(ncap * sizeof *n);
        if (!n)
            json_fail(1, "setup", "out of memory for %" PRIu64 " stamps", ncap);
        for (uint64_t k = c->done; k < c->issued; k++)
            n[k & (ncap - 1)] = c->ts[k & (c->cap - 1)];
        free(c->ts);
        c->ts = n;
        c->cap = ncap;
    }
    c->ts[c->issued & (c->cap - 1)] = stamp;
    c->issued++;
    c->target += opt_size;
}

static void verify(struct conn *c, const uint8_t *got, size_t n)
{
    if (c->recvd + n > c->sent)
        json_fail(2, "verify",
                  "conn %d: received byte %" PRIu64 " but only %" PRIu64
                  " were sent",
                  c->id, c->recvd + n, c->sent);
    size_t off = 0;
    while (off < n) {
        size_t piece = n - off > PIECE_MAX ? PIECE_MAX : n - off;
        const uint8_t *exp = pat_at(c->seed, c->recvd + off);
        if (memcmp(exp, got + off, piece) != 0) {
            size_t i = 0;
            while (exp[i] == got[off + i])
                i++;
            json_fail(2, "verify",
                      "conn %d: stream byte %" PRIu64
                      " is 0x%02x, expected 0x%02x",
                      c->id, c->recvd + off + i, got[off + i], exp[i]);
        }
        off += piece;
    }
}

static void on_readable(struct conn *c, uint64_t now, bool closed_loop,
                        bool stopping)
{
    for (;;) {
        ssize_t r = recv(c->fd, rbuf, RBUF_LEN, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            json_fail(3, "conn", "conn %d: recv: %s", c->id, strerror(errno));
        }
        if (r == 0)
            json_fail(3, "conn", "conn %d: server closed the connection after %" PRIu64
                      " bytes", c->id, c->recvd);
        verify(c, rbuf, (size_t)r);
        c->recvd += (uint64_t)r;
        total_bytes_verified += (uint64_t)r;
        last_progress_ns = now;
        if (measuring)
            m_bytes += (uint64_t)r;
        if (c->idle)
            continue;
        while (c->done < c->issued && c->recvd >= (c->done + 1) * opt_size) {
            uint64_t st = c->ts[c->done & (c->cap - 1)];
            c->done++;
            total_ops++;
            if (measuring) {
                m_ops++;
                h_record(now > st ? now - st : 0);
            }
            if (closed_loop && !stopping)
                issue(c, now);
        }
        if ((size_t)r < RBUF_LEN)
            break; /* drained */
    }
    if (!c->idle)
        flush_out(c);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--conns N] [--size BYTES]\n"
            "               [--depth D] [--duration S] [--warmup S] [--rate R]\n"
            "               [--idle N] [--idle-ping] [--server-pid PID]\n"
            "               [--stall-timeout S] [--quiet]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                                \
    do {                                                                       \
        if (!v)                                                                \
            usage();                                                           \
        i++;                                                                   \
    } while (0)
        if (!strcmp(a, "--port")) { NEEDV(); opt_port = atoi(v); }
        else if (!strcmp(a, "--host")) { NEEDV(); opt_host = v; }
        else if (!strcmp(a, "--conns")) { NEEDV(); opt_conns = atoi(v); }
        else if (!strcmp(a, "--size")) { NEEDV(); opt_size = strtoull(v, NULL, 10); }
        else if (!strcmp(a, "--depth")) { NEEDV(); opt_depth = atoi(v); }
        else if (!strcmp(a, "--duration")) { NEEDV(); opt_duration = atof(v); }
        else if (!strcmp(a, "--warmup")) { NEEDV(); opt_warmup = atof(v); }
        else if (!strcmp(a, "--rate")) { NEEDV(); opt_rate = atof(v); }
        else if (!strcmp(a, "--idle")) { NEEDV(); opt_idle = atoi(v); }
        else if (!strcmp(a, "--idle-ping")) { opt_idle_ping = true; }
        else if (!strcmp(a, "--server-pid")) { NEEDV(); opt_server_pid = atoi(v); }
        else if (!strcmp(a, "--stall-timeout")) { NEEDV(); opt_stall = atof(v); }
        else if (!strcmp(a, "--quiet")) { opt_quiet = true; }
        else usage();
    }
    if (opt_port <= 0 || opt_port > 65535 || opt_conns < 0 || opt_idle < 0 ||
        opt_size < 1 || opt_size > (64u << 20) || opt_depth < 1 ||
        opt_depth > 65536 || opt_duration <= 0 || opt_duration > 3600 ||
        opt_warmup < 0 || opt_warmup > 600 || opt_rate < 0 || opt_stall <= 0 ||
        (opt_conns == 0 && opt_idle == 0))
        usage();
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* the pattern: xorshift bytes, the first PIECE_MAX repeated at the end */
    pat = malloc(PAT_LEN + PIECE_MAX);
    rbuf = malloc(RBUF_LEN);
    if (!pat || !rbuf)
        json_fail(1, "setup", "out of memory");
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < PAT_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pat[i] = (uint8_t)(x >> 24);
    }
    for (size_t i = 0; i < PIECE_MAX; i++)
        pat[PAT_LEN + i] = pat[i % PAT_LEN];

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        json_fail(1, "setup", "epoll_create1: %s", strerror(errno));

    /* idle connections first, so the RSS before/after sees only them */
    long rss_idle0 = proc_rss_kb(opt_server_pid), rss_idle1 = -1;
    if (opt_idle) {
        idles = calloc((size_t)opt_idle, sizeof *idles);
        if (!idles)
            json_fail(1, "setup", "out of memory");
        for (int i = 0; i < opt_idle; i++) {
            struct conn *c = &idles[i];
            c->fd = open_conn();
            c->id = -1 - i;
            c->idle = true;
            c->seed = (uint64_t)(100000 + i) * 7919u;
        }
        if (opt_idle_ping) {
            for (int i = 0; i < opt_idle; i++) {
                struct conn *c = &idles[i];
                if (send(c->fd, pat_at(c->seed, 0), 1, MSG_NOSIGNAL) != 1)
                    json_fail(3, "conn", "idle conn %d: send: %s", i,
                              strerror(errno));
                c->sent = 1;
            }
            struct timeval tv = {.tv_sec = (time_t)opt_stall,
                                 .tv_usec = (suseconds_t)((opt_stall - (time_t)opt_stall) * 1e6)};
            for (int i = 0; i < opt_idle; i++) {
                struct conn *c = &idles[i];
                setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                uint8_t b;
                ssize_t r = recv(c->fd, &b, 1, 0);
                if (r != 1)
                    json_fail(3, r < 0 && errno == EAGAIN ? "stall" : "conn",
                              "idle conn %d: no echo of its ping (%s)", i,
                              r < 0 ? strerror(errno) : "closed");
                verify(c, &b, 1);
                c->recvd = 1;
            }
        }
        for (int i = 0; i < opt_idle; i++) {
            struct conn *c = &idles[i];
            set_nonblock(c->fd);
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
        }
        /* let the server accept and settle before measuring */
        usleep(500000);
        rss_idle1 = proc_rss_kb(opt_server_pid);
        if (!opt_quiet)
            printf("idle: %d connections open; server RSS %ld -> %ld KiB\n",
                   opt_idle, rss_idle0, rss_idle1);
    }

    nconns = opt_conns;
    conns = calloc((size_t)(nconns ? nconns : 1), sizeof *conns);
    if (!conns)
        json_fail(1, "setup", "out of memory");
    bool closed_loop = opt_rate <= 0;
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->fd = open_conn();
        c->id = i;
        c->seed = (uint64_t)i * 7919u + 17u;
        c->cap = 1;
        while (c->cap < (uint64_t)(closed_loop ? opt_depth : 64))
            c->cap *= 2;
        c->ts = malloc(c->cap * sizeof *c->ts);
        if (!c->ts)
            json_fail(1, "setup", "out of memory");
        set_nonblock(c->fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            json_fail(1, "setup", "epoll_ctl: %s", strerror(errno));
    }

    uint64_t t0 = now_ns();
    uint64_t t_meas = t0 + (uint64_t)(opt_warmup * 1e9);
    uint64_t t_end = t_meas + (uint64_t)(opt_duration * 1e9);
    uint64_t stall_ns = (uint64_t)(opt_stall * 1e9);
    last_progress_ns = t0;

    /* open loop schedule */
    double period_ns = closed_loop ? 0 : 1e9 / opt_rate;
    uint64_t next_k = 0;

    if (closed_loop) {
        for (int i = 0; i < nconns; i++) {
            for (int d = 0; d < opt_depth; d++)
                issue(&conns[i], t0);
            flush_out(&conns[i]);
        }
    }

    int scpu = opt_server_pid > 0 ? server_cpu_of(opt_server_pid) : -1;
    double srv_cpu0 = -1, srv_cpu1 = -1, self0 = 0, self1 = 0;
    double busy0 = -1, busy1 = -1, cbusy0 = -1, cbusy1 = -1, psi0 = -1, psi1 = -1;
    double swait0 = -1, swait1 = -1, cwait0 = -1, cwait1 = -1;
    uint64_t tm0 = 0, tm1 = 0;
    int mycpu = sched_getcpu();
    if (!opt_quiet)
        printf("loadgen: %d conns x %zu B, depth %d, %s, warmup %.1fs, measure %.1fs\n",
               nconns, opt_size, opt_depth,
               closed_loop ? "closed loop" : "open loop", opt_warmup,
               opt_duration);
    if (opt_warmup == 0) {
        measuring = true;
        tm0 = now_ns();
        srv_cpu0 = proc_cpu_s(opt_server_pid);
        busy0 = scpu >= 0 ? cpu_busy_s(scpu) : -1;
        cbusy0 = cpu_busy_s(mycpu);
        self0 = self_cpu_s();
        psi0 = psi_cpu_some_us();
        swait0 = opt_server_pid > 0 ? run_delay_ns(opt_server_pid) : -1;
        cwait0 = run_delay_ns(0);
    }

    struct epoll_event evs[512];
    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= t_meas && now < t_end) {
            measuring = true;
            m_ops = m_bytes = 0;
            h_reset();
            srv_cpu0 = proc_cpu_s(opt_server_pid);
            busy0 = scpu >= 0 ? cpu_busy_s(scpu) : -1;
            cbusy0 = cpu_busy_s(mycpu);
            self0 = self_cpu_s();
            psi0 = psi_cpu_some_us();
            swait0 = opt_server_pid > 0 ? run_delay_ns(opt_server_pid) : -1;
            cwait0 = run_delay_ns(0);
            tm0 = now_ns();
        }
        if (now >= t_end) {
            tm1 = now_ns();
            srv_cpu1 = proc_cpu_s(opt_server_pid);
            busy1 = scpu >= 0 ? cpu_busy_s(scpu) : -1;
            cbusy1 = cpu_busy_s(mycpu);
            self1 = self_cpu_s();
            psi1 = psi_cpu_some_us();
            swait1 = opt_server_pid > 0 ? run_delay_ns(opt_server_pid) : -1;
            cwait1 = run_delay_ns(0);
            measuring = false;
            break;
        }
        /* stall: replies owed, nothing for too long */
        if (now - last_progress_ns > stall_ns) {
            uint64_t owed = 0;
            for (int i = 0; i < nconns; i++)
                owed += conns[i].sent - conns[i].recvd;
            if (owed)
                json_fail(3, "stall",
                          "no echoed byte for %.1f s while %" PRIu64
                          " bytes are owed (after %" PRIu64 " messages)",
                          opt_stall, owed, total_ops);
            last_progress_ns = now;
        }
        /* open loop: issue what is due, stamped with its intended time */
        uint64_t wait_ns = t_end - now;
        if (!closed_loop && nconns) {
            for (;;) {
                uint64_t due = t0 + (uint64_t)((double)next_k * period_ns);
                if (due > now) {
                    if (due - now < wait_ns)
                        wait_ns = due - now;
                    break;
                }
                struct conn *c = &conns[next_k % (uint64_t)nconns];
                issue(c, due);
                if (!c->want_out) /* else EPOLLOUT will carry it */
                    flush_out(c);
                next_k++;
            }
        }
        if (!measuring && t_meas > now && t_meas - now < wait_ns)
            wait_ns = t_meas - now;
        if (wait_ns > 100000000ull)
            wait_ns = 100000000ull; /* 100 ms: keep the stall check alive */
        struct timespec to = {.tv_sec = (time_t)(wait_ns / 1000000000ull),
                              .tv_nsec = (long)(wait_ns % 1000000000ull)};
        int n = epoll_pwait2(epfd, evs, 512, &to, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            json_fail(1, "setup", "epoll_pwait2: %s", strerror(errno));
        }
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c, now, closed_loop, false);
            else if (evs[i].events & EPOLLOUT)
                flush_out(c);
        }
    }

    double secs = (double)(tm1 - tm0) / 1e9;
    double ops_s = secs > 0 ? (double)m_ops / secs : 0;
    double mb_s = secs > 0 ? (double)m_bytes / secs / 1e6 : 0;
    double p50 = h_pct(50) / 1e3, p99 = h_pct(99) / 1e3,
           p999 = h_pct(99.9) / 1e3, pmax = (double)h_max / 1e3,
           mean = h_count ? h_sum / (double)h_count / 1e3 : 0;
    double srv_cpu = (srv_cpu0 >= 0 && srv_cpu1 >= 0) ? srv_cpu1 - srv_cpu0 : -1;
    double busy = (busy0 >= 0 && busy1 >= 0) ? busy1 - busy0 : -1;
    double cbusy = (cbusy0 >= 0 && cbusy1 >= 0) ? cbusy1 - cbusy0 : -1;
    double self = self1 - self0;
    double psi_ms = (psi0 >= 0 && psi1 >= 0) ? (psi1 - psi0) / 1e3 : -1;
    double swait_ms = (swait0 >= 0 && swait1 >= 0) ? (swait1 - swait0) / 1e6 : -1;
    double cwait_ms = (cwait0 >= 0 && cwait1 >= 0) ? (cwait1 - cwait0) / 1e6 : -1;
    long rss = proc_rss_kb(opt_server_pid);

    if (nconns && m_ops == 0)
        json_fail(3, "stall", "no message completed in the measured window");

    if (!opt_quiet) {
        printf("ops/s      %12.0f\n", ops_s);
        printf("MB/s       %12.2f   (echoed payload, 1e6 B)\n", mb_s);
        printf("latency us p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
               p50, p99, p999, pmax, mean);
        if (srv_cpu >= 0)
            printf("server     %.2f CPU-s in %.2f s (%.0f%%); %.0f ops per CPU-s; "
                   "%.2f us CPU per op; cpu%d busy %.2f s; RSS %ld KiB\n",
                   srv_cpu, secs, 100 * srv_cpu / secs,
                   srv_cpu > 0 ? (double)m_ops / srv_cpu : 0,
                   m_ops ? srv_cpu * 1e6 / (double)m_ops : 0, scpu, busy, rss);
        printf("client     %.2f CPU-s (%.0f%% of one CPU); CPU pressure (PSI some) %.1f ms\n",
               self, 100 * self / secs, psi_ms);
        printf("run-queue  waits: server %.1f ms, client %.1f ms\n", swait_ms, cwait_ms);
    }
    printf("{\"ok\":true,\"conns\":%d,\"size\":%zu,\"depth\":%d,\"rate\":%.0f,"
           "\"mode\":\"%s\",\"warmup_s\":%.3f,\"duration_s\":%.3f,"
           "\"ops\":%" PRIu64 ",\"ops_per_s\":%.1f,\"mb_per_s\":%.3f,"
           "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
           "\"mean_us\":%.2f,\"verified_bytes\":%" PRIu64 ","
           "\"server_pid\":%d,\"server_cpu_s\":%.3f,\"server_cpu_busy_s\":%.3f,"
           "\"server_cpu_index\":%d,\"server_rss_kb\":%ld,"
           "\"client_cpu_s\":%.3f,\"client_cpu_busy_s\":%.3f,"
           "\"psi_cpu_some_ms\":%.1f,\"server_runq_wait_ms\":%.1f,"
           "\"client_runq_wait_ms\":%.1f,"
           "\"idle_conns\":%d,\"rss_before_idle_kb\":%ld,\"rss_after_idle_kb\":%ld}\n",
           nconns, opt_size, opt_depth, opt_rate,
           closed_loop ? "closed" : "open", opt_warmup, secs, m_ops, ops_s,
           mb_s, p50, p99, p999, pmax, mean, total_bytes_verified,
           opt_server_pid, srv_cpu, busy, scpu, rss, self, cbusy, psi_ms, swait_ms, cwait_ms, opt_idle,
           rss_idle0, rss_idle1);
    fflush(stdout);
    return 0;
}
