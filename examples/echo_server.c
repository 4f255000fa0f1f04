/*
 * echo_server — every byte received on 127.0.0.1:PORT goes back, in C.
 *
 *   echo_server PORT [--workers N] [--bufs COUNTxSIZE] [--fixed 0|1]
 *
 * Each worker is a thread pinned to its own CPU with its own loop (and so
 * its own ring); the workers share the port through SO_REUSEPORT. The echo
 * itself is the loop's ECHO mode: received buffers are sent straight back
 * from the kernel-provided buffer, with no copy and no event to the caller.
 * SIGINT/SIGTERM stop it gracefully (queued bytes are still written).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringline.h"

static uint16_t port;
static atomic_int stopping;
static ringline_loop_t *loops[256];
static int nworkers = 1;
static pthread_barrier_t ready;
static unsigned buf_count, buf_size; /* 0: the loop's defaults */
static int fixed_files;              /* accept into fixed-file slots */
static atomic_int failed;

static int die(const char *what, int err)
{
    fprintf(stderr, "echo_server: %s: %s (%s)\n", what, ringline_strerror(err),
            ringline_err_name(err));
    return 1;
}

static void *worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    if (nworkers > 1)
        ringline_thread_pin(i);
    /* the loop is made by the thread that drives it: a ring belongs to its
     * creator (SINGLE_ISSUER + DEFER_TASKRUN) */
    ringline_loop_t *loop;
    ringline_id_t lid;
    ringline_config_t *cfg;
    int ret = ringline_config_new(&cfg);
    if (ret == 0 && buf_count)
        ret = ringline_config_set_recv_buffers(cfg, buf_count, buf_size);
    if (ret == 0)
        ret = ringline_config_set_fixed_files(cfg, fixed_files);
    if (ret == 0)
        ret = ringline_loop_new(cfg, &loop);
    ringline_config_free(cfg);
    if (ret == 0) {
        ret = ringline_listen(loop, "127.0.0.1", port, 4096,
                              RINGLINE_LISTEN_REUSEPORT, &lid);
        if (ret < 0)
            ringline_loop_destroy(loop);
    }
    if (ret < 0) {
        die(i ? "worker" : "listen", ret);
        atomic_store(&failed, 1);
        pthread_barrier_wait(&ready);
        return NULL;
    }
    ringline_listener_set_mode(loop, lid, RINGLINE_MODE_ECHO, 0);
    loops[i] = loop;
    pthread_barrier_wait(&ready);

    ringline_event_t ev[256];
    for (;;) {
        int n = ringline_loop_poll(loop, ev, 256, -1);
        if (n < 0 && n != -EINTR) {
            die("poll", n);
            break;
        }
        for (int k = 0; k < n; k++) {
            if (ev[k].type == RINGLINE_EV_WAKE && atomic_load(&stopping))
                ringline_loop_stop(loop, 1000);
            if (ev[k].type == RINGLINE_EV_STOPPED) {
                ringline_loop_destroy(loop);
                return NULL;
            }
        }
    }
    ringline_loop_destroy(loop);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [--workers N]\n", argv[0]);
        return 2;
    }
    port = (uint16_t)atoi(argv[1]);
    for (int a = 2; a + 1 < argc; a += 2) {
        if (strcmp(argv[a], "--workers") == 0)
            nworkers = atoi(argv[a + 1]);
        else if (strcmp(argv[a], "--fixed") == 0)
            fixed_files = atoi(argv[a + 1]);
        else if (strcmp(argv[a], "--bufs") == 0 &&
                 sscanf(argv[a + 1], "%ux%u", &buf_count, &buf_size) != 2)
            return 2;
    }
    if (nworkers < 1 || nworkers > 256)
        return 2;

    /* signals are taken by the main thread only */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    pthread_t th[256];
    pthread_barrier_init(&ready, NULL, (unsigned)nworkers + 1);
    for (int i = 0; i < nworkers; i++)
        pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    pthread_barrier_wait(&ready);
    if (atomic_load(&failed)) {
        atomic_store(&stopping, 1);
        for (int i = 0; i < nworkers; i++)
            if (loops[i])
                ringline_loop_wake(loops[i]);
        for (int i = 0; i < nworkers; i++)
            pthread_join(th[i], NULL);
        return 1;
    }
    fprintf(stderr, "echo_server: listening on 127.0.0.1:%u with %d worker(s)\n",
            port, nworkers);

    int sig;
    sigwait(&set, &sig);
    atomic_store(&stopping, 1);
    for (int i = 0; i < nworkers; i++)
        ringline_loop_wake(loops[i]);
    for (int i = 0; i < nworkers; i++)
        pthread_join(th[i], NULL);
    return 0;
}
