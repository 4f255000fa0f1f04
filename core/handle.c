/*
 * handle.c — where opaque handles live.
 *
 * Scripts hold raw pointers to rings and configs and may use them after
 * destroying them. Handle memory is therefore never given back to malloc: a
 * destroyed object keeps a dead magic number, so a stale call reads valid
 * memory, sees the wrong magic and returns -EBADF instead of touching freed
 * memory. Dead objects are recycled first-in first-out, and only once more
 * than RL_HANDLE_QUARANTINE others are waiting, so a stale handle is very
 * unlikely to alias a live object.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct rl_dead {
    uint32_t magic; /* overlays the object's magic: always RL_MAGIC_DEAD */
    uint32_t pad;
    struct rl_dead *next;
    size_t size;
};

static pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_dead *dead_head, *dead_tail;
static unsigned dead_count;

void *rl_handle_alloc(size_t size, uint32_t magic)
{
    void *p = NULL;
    if (size < sizeof(struct rl_dead))
        size = sizeof(struct rl_dead);

    pthread_mutex_lock(&dead_lock);
    if (dead_count > RL_HANDLE_QUARANTINE) {
        /* find the oldest dead object of the right size */
        struct rl_dead *prev = NULL;
        for (struct rl_dead *d = dead_head; d; prev = d, d = d->next) {
            if (d->size != size)
                continue;
            if (prev)
                prev->next = d->next;
            else
                dead_head = d->next;
            if (dead_tail == d)
                dead_tail = prev;
            dead_count--;
            p = d;
            break;
        }
    }
    pthread_mutex_unlock(&dead_lock);

    if (!p)
        p = malloc(size);
    if (!p)
        return NULL;
    memset(p, 0, size);
    *(uint32_t *)p = magic;
    return p;
}

void rl_handle_free(void *p, size_t size)
{
    if (!p)
        return;
    if (size < sizeof(struct rl_dead))
        size = sizeof(struct rl_dead);
    struct rl_dead *d = p;
    memset(p, 0, size);
    d->magic = RL_MAGIC_DEAD;
    d->size = size;
    d->next = NULL;
    pthread_mutex_lock(&dead_lock);
    if (dead_tail)
        dead_tail->next = d;
    else
        dead_head = d;
    dead_tail = d;
    dead_count++;
    pthread_mutex_unlock(&dead_lock);
}
