/*
 * worker.c — thread-per-core support: pinning. Each worker thread creates
 * its own loop (its own ring); loops share a port through
 * RINGLINE_LISTEN_REUSEPORT and never share state.
 */
#include <pthread.h>
#include <sched.h>

#include "internal.h"

int ringline_thread_pin(int cpu)
{
    if (cpu < 0 || cpu >= CPU_SETSIZE)
        return -EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int ret = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    return ret ? -ret : 0;
}
