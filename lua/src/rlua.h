/*
 * rlua.h — what the files of the Lua binding (ringline.core) share.
 *
 * The binding uses include/ringline.h only. Conventions (luv-style):
 *   - one C file per object type, one metatable per type with __index,
 *     __tostring, __gc and __close;
 *   - recoverable failures return nil, "ENAME: message", errno;
 *   - misuse (wrong types, a closed object) raises a Lua error through
 *     luaL_argerror / luaL_error, never from a frame that holds state;
 *   - memory the kernel may write stays reachable from the registry until
 *     the operation's final completion (see ring.c, "pins").
 */
#ifndef RLUA_H
#define RLUA_H

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>

#include "ringline.h"

#define RLUA_RING "ringline.ring"
#define RLUA_LOOP "ringline.loop"
#define RLUA_BUFFER "ringline.buffer"
#define RLUA_BUFGROUP "ringline.bufgroup"
#define RLUA_NVME "ringline.nvme_cmd"
#define RLUA_MSG "ringline.msg"

/* Push nil, "ENAME: message", errno and return 3. err may be errno or
 * -errno. */
int rlua_fail(lua_State *L, int err);
/* ret < 0: rlua_fail; otherwise push ret as an integer (1 value). */
int rlua_int(lua_State *L, int ret);
/* ret < 0: rlua_fail; otherwise push true. */
int rlua_ok(lua_State *L, int ret);

/* Define a class: metatable `name` with methods in __index plus the given
 * metamethods. Leaves nothing on the stack. */
void rlua_class(lua_State *L, const char *name, const luaL_Reg *methods,
                const luaL_Reg *meta);

/* Seconds (number) -> nanoseconds, argument checked (>= 0). */
uint64_t rlua_check_seconds(lua_State *L, int idx);
/* Optional: < 0 means "no limit" (returns -1); nil gives def. */
int64_t rlua_opt_timeout(lua_State *L, int idx, int64_t def);

/* Numeric host + port -> sockaddr. 0 or -EINVAL. */
int rlua_sockaddr(const char *host, unsigned port, struct sockaddr_storage *ss,
                  socklen_t *len);
/* Push host string and port for a sockaddr (2 values). */
int rlua_push_sockaddr(lua_State *L, const struct sockaddr *sa, socklen_t len);

/* ---- buffers (buffer.c) ---- */
typedef struct rlua_buffer {
    uint8_t *p;
    size_t size;
    int inflight; /* operations that may still touch the memory */
} rlua_buffer;
rlua_buffer *rlua_check_buffer(lua_State *L, int idx);
/* Memory for an operation: a buffer (optional off/len at off_idx) or, when
 * `string_ok`, a string. Returns the pointer and *len. */
const uint8_t *rlua_check_mem(lua_State *L, int idx, int off_idx,
                              size_t *len, int string_ok, int writable);

/* ---- rings (ring.c) ---- */
typedef struct rlua_ring rlua_ring;
rlua_ring *rlua_check_ring(lua_State *L, int idx);
ringline_ring_t *rlua_ring_handle(lua_State *L, int idx);
/* Wrap a loop's ring (borrowed: not destroyed by the wrapper). The loop
 * userdata is at loop_idx and is kept alive by the wrapper. */
void rlua_ring_push_borrowed(lua_State *L, ringline_ring_t *ring, int loop_idx,
                             int *alive);

/* Ring/loop options from a Lua table at idx (nil: defaults). Arguments are
 * checked first (may raise), then the config is built (no Lua errors after
 * allocation). *out is NULL for defaults; free with ringline_config_free. */
int rlua_make_config(lua_State *L, int idx, ringline_config_t **out);
/* Invalidate a borrowed ring wrapper (its loop is gone) and drop its pins. */
void rlua_ring_invalidate(lua_State *L, int idx);

/* ---- nvme (nvme.c) ---- */
typedef struct rlua_nvme {
    ringline_nvme_cmd_t cmd;
} rlua_nvme;

/* ---- per-module openers ---- */
void rlua_open_buffer(lua_State *L);   /* adds buffer() etc. to table at -1 */
void rlua_open_ring(lua_State *L);
void rlua_open_bufgroup(lua_State *L);
void rlua_open_nvme(lua_State *L);
void rlua_open_loop(lua_State *L);
void rlua_open_worker(lua_State *L);
void rlua_open_frame(lua_State *L);

/* frame.c: a framer kind from a name or RINGLINE_FRAMER_* number. */
int rlua_check_framer(lua_State *L, int idx);

/* bufgroup.c: create a group object on ring at ring_idx. */
int rlua_bufgroup_new(lua_State *L, int ring_idx, uint16_t bgid,
                      unsigned count, unsigned size);

/* worker.c: the loop registers itself so the main thread can wake it. */
int rlua_worker_id(void);

#endif
