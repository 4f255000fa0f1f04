/* The loop with ringline_config_set_fixed_files: accepted connections live
 * in the fixed-file table (multishot accept into kernel-picked slots).
 * Echo through them byte for byte, recycle slots far beyond the table size
 * (500 sequential connections through a 32-slot table), run 24 at once,
 * and check what has no descriptor says so (conn_peer -> -EOPNOTSUPP). */
#include <pthread.h>
#include <stdatomic.h>

#include "rl_test.h"

static uint16_t port;
static atomic_int stop_flag;
static atomic_int peer_result = 1;
static ringline_loop_t *loop_ptr;
static pthread_barrier_t ready;

static void *server(void *arg)
{
    ringline_config_t *cfg;
    OK(ringline_config_new(&cfg));
    OK(ringline_config_set_max_conns(cfg, 32));
    OK(ringline_config_set_fixed_files(cfg, 1));
    ringline_loop_t *loop;
    OK(ringline_loop_new(cfg, &loop));
    OK(ringline_config_free(cfg));
    ringline_id_t lid;
    OK(ringline_listen(loop, "127.0.0.1", 0, 128, 0, &lid));
    port = (uint16_t)OK(ringline_listener_port(loop, lid));
    loop_ptr = loop;
    pthread_barrier_wait(&ready);

    ringline_event_t ev[64];
    for (;;) {
        int n = ringline_loop_poll(loop, ev, 64, 100 * 1000000ll);
        if (n < 0 && n != -EINTR)
            FAIL("poll: %s", ringline_err_name(n));
        for (int i = 0; i < n; i++) {
            if (ev[i].type == RINGLINE_EV_ACCEPTED) {
                struct sockaddr_storage ss;
                socklen_t sl;
                atomic_store(&peer_result, ringline_conn_peer(loop, ev[i].id, &ss, &sl));
                OK(ringline_conn_set_mode(loop, ev[i].id, RINGLINE_MODE_ECHO, 0));
            }
            if (ev[i].type == RINGLINE_EV_STOPPED) {
                OK(ringline_loop_destroy(loop));
                return NULL;
            }
        }
        if (atomic_load(&stop_flag) == 1) {
            atomic_store(&stop_flag, 2);
            OK(ringline_loop_stop(loop, 1000));
        }
    }
}

static void echo_check(int fd, size_t len, uint64_t seed)
{
    uint8_t *out = malloc(len), *in = malloc(len);
    CHECK(out && in);
    for (size_t i = 0; i < len; i++)
        out[i] = rl_pattern(seed, i);
    rl_write_all(fd, out, len);
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, in + got, len - got);
        if (r <= 0)
            FAIL("read: %zd (%s)", r, strerror(errno));
        got += (size_t)r;
    }
    if (memcmp(in, out, len))
        FAIL("echo mismatch (len %zu, seed %llu)", len, (unsigned long long)seed);
    free(out);
    free(in);
}

struct job {
    int idx;
};

static void *client(void *arg)
{
    struct job *j = arg;
    int fd = rl_connect_tcp(port);
    echo_check(fd, 65536 + (size_t)j->idx * 777, 1000 + (uint64_t)j->idx);
    close(fd);
    return NULL;
}

int main(void)
{
    pthread_barrier_init(&ready, NULL, 2);
    pthread_t st;
    pthread_create(&st, NULL, server, NULL);
    pthread_barrier_wait(&ready);

    /* slots are recycled: far more connections than the 32-slot table */
    for (int i = 0; i < 500; i++) {
        int fd = rl_connect_tcp(port);
        echo_check(fd, 1 + (size_t)(i % 97), (uint64_t)i);
        close(fd);
    }
    EXPECT_ERR(atomic_load(&peer_result), -EOPNOTSUPP);

    /* 24 at once, 64 KiB+ each */
    pthread_t th[24];
    struct job jobs[24];
    for (int i = 0; i < 24; i++) {
        jobs[i].idx = i;
        pthread_create(&th[i], NULL, client, &jobs[i]);
    }
    for (int i = 0; i < 24; i++)
        pthread_join(th[i], NULL);

    atomic_store(&stop_flag, 1);
    ringline_loop_wake(loop_ptr);
    pthread_join(st, NULL);
    printf("fixed-file loop: 500 sequential + 24 concurrent connections echoed\n");
    return 0;
}
