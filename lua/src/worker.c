/*
 * worker.c — thread-per-core for Lua: the same script run on N threads, each
 * with its own lua_State and its own loop (so its own ring), sharing ports
 * through SO_REUSEPORT. Lua states never cross threads; the only
 * cross-thread call is ringline_loop_wake(), under a mutex that also guards
 * loop registration, so a loop is never woken after it was destroyed.
 *
 *   core.worker_id()                  0 on the main thread, 1..N-1 on workers
 *   core.workers_start(n, script, args, path, cpath [, pin])
 *                                     start workers 1..n running `script`
 *   core.worker_attach(loop)          this thread's loop may be woken to stop;
 *                                     returns true if a stop was already asked
 *   core.workers_stop()               ask every worker to stop (wakes loops)
 *   core.workers_stopping()           true once a stop was asked
 *   core.workers_join()               wait for the workers; returns how many
 *                                     ended with an error
 *   core.cpu_count()
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

#include "rlua.h"

#define MAX_WORKERS 256

ringline_loop_t *rlua_loop_handle(lua_State *L, int idx);

struct worker {
    pthread_t th;
    int id;
    int started;
    int failed;
    int pin;
    ringline_loop_t *loop;
    char *script, *path, *cpath;
    char **args;
    int nargs;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct worker workers[MAX_WORKERS];
static atomic_int stopping;
static _Thread_local int my_id;

int rlua_worker_id(void) { return my_id; }

void rlua_worker_detach_loop(ringline_loop_t *loop)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < MAX_WORKERS; i++)
        if (workers[i].loop == loop)
            workers[i].loop = NULL;
    pthread_mutex_unlock(&mu);
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void free_worker(struct worker *w)
{
    free(w->script);
    free(w->path);
    free(w->cpath);
    for (int i = 0; i < w->nargs; i++)
        free(w->args[i]);
    free(w->args);
    w->script = w->path = w->cpath = NULL;
    w->args = NULL;
    w->nargs = 0;
}

static int msgh(lua_State *L)
{
    const char *m = lua_tostring(L, 1);
    luaL_traceback(L, L, m ? m : "(non-string error)", 1);
    return 1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    my_id = w->id;
    if (w->pin)
        ringline_thread_pin(w->id % cpu_count());
    lua_State *L = luaL_newstate();
    if (!L) {
        w->failed = 1;
        return NULL;
    }
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    if (w->path) {
        lua_pushstring(L, w->path);
        lua_setfield(L, -2, "path");
    }
    if (w->cpath) {
        lua_pushstring(L, w->cpath);
        lua_setfield(L, -2, "cpath");
    }
    lua_pop(L, 1);
    lua_createtable(L, w->nargs, 1);
    lua_pushstring(L, w->script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < w->nargs; i++) {
        lua_pushstring(L, w->args[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, msgh);
    int status = luaL_loadfile(L, w->script);
    if (status == LUA_OK) {
        for (int i = 0; i < w->nargs; i++)
            lua_pushstring(L, w->args[i]);
        status = lua_pcall(L, w->nargs, 0, 1);
    }
    if (status != LUA_OK) {
        fprintf(stderr, "ringline worker %d: %s\n", w->id, lua_tostring(L, -1));
        w->failed = 1;
    }
    lua_close(L); /* closes this worker's loop if the script left it open */
    pthread_mutex_lock(&mu);
    w->loop = NULL;
    pthread_mutex_unlock(&mu);
    return NULL;
}

static char *dup_opt(lua_State *L, int idx)
{
    const char *s = luaL_optstring(L, idx, NULL);
    return s ? strdup(s) : NULL;
}

/* workers_start(n, script, args, path, cpath [, pin]) -> started */
static int w_start(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    const char *script = luaL_checkstring(L, 2);
    luaL_argcheck(L, n >= 0 && n < MAX_WORKERS, 1, "0..255 workers");
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    if (my_id != 0)
        return luaL_error(L, "workers can only be started from the main thread");
    int pin = lua_isnoneornil(L, 6) ? 1 : lua_toboolean(L, 6);
    int started = 0;
    for (int i = 1; i <= n; i++) {
        struct worker *w = &workers[i];
        if (w->started)
            return luaL_error(L, "workers are already running");
        memset(w, 0, sizeof *w);
        w->id = i;
        w->pin = pin;
        w->script = strdup(script);
        w->path = dup_opt(L, 4);
        w->cpath = dup_opt(L, 5);
        if (lua_istable(L, 3)) {
            int na = (int)lua_rawlen(L, 3);
            w->args = calloc((size_t)na + 1, sizeof *w->args);
            for (int k = 0; w->args && k < na; k++) {
                lua_rawgeti(L, 3, k + 1);
                const char *s = lua_tostring(L, -1);
                w->args[k] = strdup(s ? s : "");
                w->nargs++;
                lua_pop(L, 1);
            }
        }
        if (!w->script) {
            free_worker(w);
            return rlua_fail(L, -ENOMEM);
        }
        int ret = pthread_create(&w->th, NULL, worker_main, w);
        if (ret) {
            free_worker(w);
            return rlua_fail(L, -ret);
        }
        w->started = 1;
        started++;
    }
    lua_pushinteger(L, started);
    return 1;
}

static int w_attach(lua_State *L)
{
    ringline_loop_t *loop = rlua_loop_handle(L, 1);
    pthread_mutex_lock(&mu);
    workers[my_id].loop = loop;
    pthread_mutex_unlock(&mu);
    lua_pushboolean(L, atomic_load(&stopping));
    return 1;
}

static int w_stop(lua_State *L)
{
    atomic_store(&stopping, 1);
    pthread_mutex_lock(&mu);
    for (int i = 1; i < MAX_WORKERS; i++)
        if (workers[i].loop)
            ringline_loop_wake(workers[i].loop);
    pthread_mutex_unlock(&mu);
    (void)L;
    return 0;
}

static int w_stopping(lua_State *L)
{
    lua_pushboolean(L, atomic_load(&stopping));
    return 1;
}

static int w_join(lua_State *L)
{
    if (my_id != 0)
        return luaL_error(L, "workers can only be joined from the main thread");
    int failed = 0;
    for (int i = 1; i < MAX_WORKERS; i++) {
        struct worker *w = &workers[i];
        if (!w->started)
            continue;
        pthread_join(w->th, NULL);
        failed += w->failed;
        free_worker(w);
        w->started = 0;
    }
    atomic_store(&stopping, 0);
    lua_pushinteger(L, failed);
    return 1;
}

static int w_id(lua_State *L)
{
    lua_pushinteger(L, my_id);
    return 1;
}

static int w_cpus(lua_State *L)
{
    lua_pushinteger(L, cpu_count());
    return 1;
}

static const luaL_Reg funcs[] = {
    {"worker_id", w_id},
    {"workers_start", w_start},
    {"worker_attach", w_attach},
    {"workers_stop", w_stop},
    {"workers_stopping", w_stopping},
    {"workers_join", w_join},
    {"cpu_count", w_cpus},
    {NULL, NULL},
};

void rlua_open_worker(lua_State *L)
{
    luaL_setfuncs(L, funcs, 0);
}
