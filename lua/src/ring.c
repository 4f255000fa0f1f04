/*
 * ring.c — ring objects: the raw io_uring layer (ringline_ring_*,
 * ringline_op_*, chains, fixed files, registered buffers).
 *
 * Lifetimes ("pins"): every queued operation is counted under its token in
 * a table anchored in the registry (not in the ring object), together with
 * whatever memory it uses (strings, buffers, address and msghdr records).
 * The count drops at each final completion (no F_MORE) that a harvest sees;
 * at zero the memory is let go. Buffers also count their own operations, so
 * buffer:free() refuses while the kernel may write. A ring collected by the
 * GC is destroyed first (ringline_ring_destroy cancels and waits for every
 * final completion) and only then are its pins dropped: nothing the kernel
 * may still write is ever freed.
 *
 * Tokens that pin memory should be unique among operations in flight; if a
 * token is reused, its memory is kept until all of them have completed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "rlua.h"

struct rlua_ring {
    ringline_ring_t *ring;
    int *alive;    /* borrowed from a loop: its liveness flag; NULL if owned */
    int pins_ref;  /* registry ref: token -> count | {n = count, values...} */
    ringline_cqe_t *cq; /* completions harvested, not yet handed out */
    unsigned cq_cap, cq_n, cq_pos;
};

/* Records for operations that need memory of their own. */
typedef struct rlua_msg {
    struct msghdr msg;
    struct sockaddr_storage addr;
    unsigned niov;
    struct iovec iov[];
} rlua_msg;

/* ------------------------------------------------------------------------ */

rlua_ring *rlua_check_ring(lua_State *L, int idx)
{
    rlua_ring *r = luaL_checkudata(L, idx, RLUA_RING);
    if (!r->ring || (r->alive && !*r->alive))
        luaL_argerror(L, idx, "ring is closed");
    return r;
}

ringline_ring_t *rlua_ring_handle(lua_State *L, int idx)
{
    return rlua_check_ring(L, idx)->ring;
}

static uint64_t check_token(lua_State *L, int idx)
{
    return (uint64_t)luaL_checkinteger(L, idx);
}

static int check_fd(lua_State *L, int idx)
{
    lua_Integer fd = luaL_checkinteger(L, idx);
    luaL_argcheck(L, fd >= -1 && fd <= INT32_MAX, idx, "descriptor out of range");
    return (int)fd;
}

/* ---- pins ---- */

static void buffer_count(lua_State *L, int idx, int delta)
{
    rlua_buffer *b = luaL_testudata(L, idx, RLUA_BUFFER);
    if (b)
        b->inflight += delta;
}

/* Count one operation under token, pinning the n values at first... */
static void pins_add(lua_State *L, rlua_ring *r, uint64_t token, int first, int n)
{
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->pins_ref);
    int t = lua_gettop(L);
    lua_rawgeti(L, t, (lua_Integer)token);
    if (n == 0 && !lua_istable(L, -1)) {
        lua_Integer c = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        lua_pushinteger(L, c + 1);
        lua_rawseti(L, t, (lua_Integer)token);
        lua_settop(L, top);
        return;
    }
    if (!lua_istable(L, -1)) {
        lua_Integer c = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        lua_pop(L, 1);
        lua_createtable(L, n, 1);
        lua_pushinteger(L, c);
        lua_setfield(L, -2, "n");
        lua_pushvalue(L, -1);
        lua_rawseti(L, t, (lua_Integer)token);
    }
    int rec = lua_gettop(L);
    lua_getfield(L, rec, "n");
    lua_Integer c = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushinteger(L, c + 1);
    lua_setfield(L, rec, "n");
    lua_Integer len = (lua_Integer)lua_rawlen(L, rec);
    for (int i = 0; i < n; i++) {
        lua_pushvalue(L, first + i);
        buffer_count(L, -1, 1);
        lua_rawseti(L, rec, ++len);
    }
    lua_settop(L, top);
}

/* Release every value of pin record at idx. */
static void pins_release_rec(lua_State *L, int rec)
{
    lua_Integer len = (lua_Integer)lua_rawlen(L, rec);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, rec, i);
        buffer_count(L, -1, -1);
        lua_pop(L, 1);
    }
}

/* One final completion for token, pins table at t. */
static void pins_done(lua_State *L, int t, uint64_t token)
{
    lua_rawgeti(L, t, (lua_Integer)token);
    if (lua_isinteger(L, -1)) {
        lua_Integer c = lua_tointeger(L, -1) - 1;
        lua_pop(L, 1);
        if (c > 0)
            lua_pushinteger(L, c);
        else
            lua_pushnil(L);
        lua_rawseti(L, t, (lua_Integer)token);
        return;
    }
    if (lua_istable(L, -1)) {
        int rec = lua_gettop(L);
        lua_getfield(L, rec, "n");
        lua_Integer c = lua_tointeger(L, -1) - 1;
        lua_pop(L, 1);
        if (c > 0) {
            lua_pushinteger(L, c);
            lua_setfield(L, rec, "n");
        } else {
            pins_release_rec(L, rec);
            lua_pushnil(L);
            lua_rawseti(L, t, (lua_Integer)token);
        }
    }
    lua_pop(L, 1);
}

static void pins_completions(lua_State *L, rlua_ring *r, const ringline_cqe_t *c,
                             unsigned n)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->pins_ref);
    int t = lua_gettop(L);
    for (unsigned i = 0; i < n; i++) {
        if (c[i].flags & RINGLINE_CQE_F_MORE)
            continue;
        if ((c[i].token & RINGLINE_TOKEN_RESERVED_MASK) >= RINGLINE_TOKEN_MSG_TAG)
            continue; /* wake / msg_ring deliveries: not an operation of ours */
        pins_done(L, t, c[i].token);
    }
    lua_pop(L, 1);
}

/* Drop every pin (the ring is gone: no operation can touch memory). */
static void pins_release_all(lua_State *L, rlua_ring *r)
{
    if (r->pins_ref == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->pins_ref);
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_istable(L, -1))
            pins_release_rec(L, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, r->pins_ref);
    r->pins_ref = LUA_NOREF;
}

/* ---- creation and destruction ---- */

static int opt_bool_field(lua_State *L, int idx, const char *k, int def)
{
    lua_getfield(L, idx, k);
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static lua_Integer opt_int_field(lua_State *L, int idx, const char *k, lua_Integer def,
                                 lua_Integer lo, lua_Integer hi)
{
    lua_getfield(L, idx, k);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int isnum;
        v = lua_tointegerx(L, -1, &isnum);
        if (!isnum)
            luaL_error(L, "option '%s' must be an integer", k);
        if (v < lo || v > hi)
            luaL_error(L, "option '%s' out of range", k);
    }
    lua_pop(L, 1);
    return v;
}

static lua_Number opt_num_field(lua_State *L, int idx, const char *k, lua_Number def)
{
    lua_getfield(L, idx, k);
    lua_Number v = def;
    if (!lua_isnil(L, -1)) {
        int isnum;
        v = lua_tonumberx(L, -1, &isnum);
        if (!isnum || v < 0)
            luaL_error(L, "option '%s' must be a number >= 0", k);
    }
    lua_pop(L, 1);
    return v;
}

int rlua_make_config(lua_State *L, int idx, ringline_config_t **out)
{
    *out = NULL;
    if (lua_isnoneornil(L, idx))
        return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    idx = lua_absindex(L, idx);
    /* read and check everything first: Lua errors must come before any
     * allocation */
    lua_Integer sq = opt_int_field(L, idx, "sq_entries", 0, 0, 32768);
    lua_Integer cq = opt_int_field(L, idx, "cq_entries", 0, 0, 65536);
    int big = opt_bool_field(L, idx, "big", 0);
    int single = opt_bool_field(L, idx, "single_issuer", 1);
    int defer = opt_bool_field(L, idx, "defer_taskrun", 1);
    int sqpoll = opt_bool_field(L, idx, "sqpoll", 0);
    lua_Integer sqpoll_idle = opt_int_field(L, idx, "sqpoll_idle_ms", 1000, 0, 1 << 30);
    lua_Integer sqpoll_cpu = opt_int_field(L, idx, "sqpoll_cpu", -1, -1, 4096);
    lua_Integer max_conns = opt_int_field(L, idx, "max_conns", 0, 0, 1 << 20);
    lua_Integer buf_count = opt_int_field(L, idx, "recv_buffers", 0, 0, 32768);
    lua_Integer buf_size = opt_int_field(L, idx, "recv_buffer_size", 0, 0, 1 << 30);
    lua_Integer high = opt_int_field(L, idx, "send_high", 0, 0, (lua_Integer)1 << 40);
    lua_Integer low = opt_int_field(L, idx, "send_low", 0, 0, (lua_Integer)1 << 40);
    lua_Integer zc = opt_int_field(L, idx, "zc_threshold", -1, -1, (lua_Integer)1 << 40);
    lua_Number idle = opt_num_field(L, idx, "idle_timeout", 0);

    ringline_config_t *cfg;
    int ret = ringline_config_new(&cfg);
    if (ret < 0)
        return ret;
#define TRY(call)                                                              \
    do {                                                                       \
        if ((ret = (call)) < 0)                                                \
            goto fail;                                                         \
    } while (0)
    if (sq)
        TRY(ringline_config_set_sq_entries(cfg, (unsigned)sq));
    if (cq)
        TRY(ringline_config_set_cq_entries(cfg, (unsigned)cq));
    if (big)
        TRY(ringline_config_set_big(cfg, 1));
    if (!single)
        TRY(ringline_config_set_single_issuer(cfg, 0));
    if (!defer)
        TRY(ringline_config_set_defer_taskrun(cfg, 0));
    if (sqpoll)
        TRY(ringline_config_set_sqpoll(cfg, 1, (unsigned)sqpoll_idle, (int)sqpoll_cpu));
    if (max_conns)
        TRY(ringline_config_set_max_conns(cfg, (unsigned)max_conns));
    if (buf_count || buf_size)
        TRY(ringline_config_set_recv_buffers(cfg, buf_count ? (unsigned)buf_count : 256,
                                             buf_size ? (unsigned)buf_size : 65536));
    if (high || low)
        TRY(ringline_config_set_send_limits(cfg, high ? (size_t)high : (1u << 20),
                                            low ? (size_t)low : (256u << 10)));
    if (zc >= 0)
        TRY(ringline_config_set_zc_threshold(cfg, (size_t)zc));
    if (idle > 0)
        TRY(ringline_config_set_idle_timeout(cfg, (uint64_t)(idle * 1000.0 + 0.5)));
#undef TRY
    *out = cfg;
    return 0;
fail:
    ringline_config_free(cfg);
    return ret;
}

static rlua_ring *ring_push(lua_State *L)
{
    rlua_ring *r = lua_newuserdatauv(L, sizeof *r, 1);
    memset(r, 0, sizeof *r);
    r->pins_ref = LUA_NOREF;
    luaL_setmetatable(L, RLUA_RING);
    lua_newtable(L);
    r->pins_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return r;
}

/* ringline.core.ring([opts]) */
static int r_new(lua_State *L)
{
    ringline_config_t *cfg;
    int ret = rlua_make_config(L, 1, &cfg);
    if (ret < 0)
        return rlua_fail(L, ret);
    rlua_ring *r = ring_push(L); /* may raise (memory): cfg would leak, rare */
    ringline_ring_t *ring = NULL;
    ret = ringline_ring_new(cfg, &ring);
    if (cfg)
        ringline_config_free(cfg);
    if (ret < 0)
        return rlua_fail(L, ret);
    r->ring = ring;
    return 1;
}

void rlua_ring_push_borrowed(lua_State *L, ringline_ring_t *ring, int loop_idx,
                             int *alive)
{
    loop_idx = lua_absindex(L, loop_idx);
    rlua_ring *r = ring_push(L);
    r->ring = ring;
    r->alive = alive;
    lua_pushvalue(L, loop_idx);
    lua_setiuservalue(L, -2, 1); /* the loop lives while the wrapper does */
}

void rlua_ring_invalidate(lua_State *L, int idx)
{
    rlua_ring *r = luaL_checkudata(L, idx, RLUA_RING);
    r->ring = NULL;
    pins_release_all(L, r);
    free(r->cq);
    r->cq = NULL;
    r->cq_cap = r->cq_n = r->cq_pos = 0;
}

static int r_close_impl(lua_State *L, int from_gc)
{
    rlua_ring *r = luaL_checkudata(L, 1, RLUA_RING);
    if (r->alive) {
        /* the loop's ring: it ends with the loop, which drops the pins */
        if (from_gc)
            return 0;
        if (r->ring && *r->alive)
            return luaL_error(L, "the loop's ring is closed by closing the loop");
        lua_pushboolean(L, 1);
        return 1;
    }
    int ret = 0;
    if (r->ring)
        ret = ringline_ring_destroy(r->ring); /* waits for final completions */
    r->ring = NULL;
    pins_release_all(L, r);
    free(r->cq);
    r->cq = NULL;
    r->cq_cap = r->cq_n = r->cq_pos = 0;
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushboolean(L, 1);
    return 1;
}

static int r_close(lua_State *L) { return r_close_impl(L, 0); }

static int r_gc(lua_State *L)
{
    r_close_impl(L, 1);
    return 0;
}

static int r_tostring(lua_State *L)
{
    rlua_ring *r = luaL_checkudata(L, 1, RLUA_RING);
    if (r->ring && (!r->alive || *r->alive))
        lua_pushfstring(L, "ringline.ring: %p (fd %d%s)", (void *)r,
                        ringline_ring_fd(r->ring), r->alive ? ", loop's" : "");
    else
        lua_pushstring(L, "ringline.ring: closed");
    return 1;
}

/* ---- information ---- */

#define RING_INT_GETTER(name, call)                                            \
    static int name(lua_State *L)                                              \
    {                                                                          \
        rlua_ring *r = rlua_check_ring(L, 1);                                  \
        return rlua_int(L, call(r->ring));                                     \
    }
RING_INT_GETTER(r_fd, ringline_ring_fd)
RING_INT_GETTER(r_sq_entries, ringline_ring_sq_entries)
RING_INT_GETTER(r_cq_entries, ringline_ring_cq_entries)
RING_INT_GETTER(r_inflight, ringline_ring_inflight)
RING_INT_GETTER(r_sq_pending, ringline_ring_sq_pending)
RING_INT_GETTER(r_submit, ringline_ring_submit)

static int r_wake(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_ok(L, ringline_ring_wake(r->ring));
}

/* features() -> { name = true, ... }, mask */
static int r_features(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    uint64_t f = 0;
    int ret = ringline_ring_features(r->ring, &f);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_newtable(L);
    for (int b = 0; b < 64; b++) {
        if (!(f & (1ULL << b)))
            continue;
        const char *n = ringline_feature_name(1ULL << b);
        if (n) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, n);
        }
    }
    lua_pushinteger(L, (lua_Integer)f);
    return 2;
}

static int r_opcode_supported(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    lua_Integer op = luaL_checkinteger(L, 2);
    luaL_argcheck(L, op >= 0 && op < 256, 2, "opcode out of range");
    int ret = ringline_ring_opcode_supported(r->ring, (unsigned)op);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushboolean(L, ret);
    return 1;
}

/* ---- submitting and harvesting ---- */

static int r_submit_and_wait(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    lua_Integer wait_nr = luaL_optinteger(L, 2, 1);
    luaL_argcheck(L, wait_nr >= 0 && wait_nr <= 65536, 2, "wait_nr out of range");
    int64_t t = rlua_opt_timeout(L, 3, -1);
    return rlua_int(L, ringline_ring_submit_and_wait(r->ring, (unsigned)wait_nr, t));
}

static void cq_reserve(lua_State *L, rlua_ring *r, unsigned max)
{
    if (r->cq_cap >= max)
        return;
    ringline_cqe_t *n = realloc(r->cq, max * sizeof *n);
    if (!n)
        luaL_error(L, "out of memory");
    r->cq = n;
    r->cq_cap = max;
}

static void set_int_field(lua_State *L, int t, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, t, k);
}

/* Fill out[base+1 .. base+n] with completion tables (reused if present). */
static void fill_out(lua_State *L, int out, int base, const ringline_cqe_t *c,
                     unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        lua_rawgeti(L, out, base + (int)i + 1);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_createtable(L, 0, 7);
            lua_pushvalue(L, -1);
            lua_rawseti(L, out, base + (int)i + 1);
        }
        int t = lua_gettop(L);
        set_int_field(L, t, "token", (lua_Integer)c[i].token);
        set_int_field(L, t, "res", c[i].res);
        set_int_field(L, t, "flags", c[i].flags);
        set_int_field(L, t, "bgid", c[i].bgid);
        set_int_field(L, t, "bid", c[i].bid);
        set_int_field(L, t, "big1", (lua_Integer)c[i].big[0]);
        set_int_field(L, t, "big2", (lua_Integer)c[i].big[1]);
        lua_pop(L, 1);
    }
}

/* Completions cached by next() go first, in order. */
static unsigned take_cached(lua_State *L, rlua_ring *r, int out, unsigned max)
{
    unsigned k = r->cq_n - r->cq_pos;
    if (k > max)
        k = max;
    if (k) {
        fill_out(L, out, 0, r->cq + r->cq_pos, k);
        r->cq_pos += k;
    }
    return k;
}

/* ring:reap(out [, max [, wait_nr [, timeout]]]) -> n
 * Submit, wait for wait_nr completions (default 1) up to timeout seconds
 * (nil/negative: no limit), harvest up to max (default 64) into out[1..n]. */
static int r_reap_impl(lua_State *L, int wait)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer max = luaL_optinteger(L, 3, 64);
    luaL_argcheck(L, max >= 1 && max <= 65536, 3, "max out of range");
    lua_Integer wait_nr = wait ? luaL_optinteger(L, 4, 1) : 0;
    luaL_argcheck(L, wait_nr >= 0 && wait_nr <= 65536, 4, "wait_nr out of range");
    int64_t t = wait ? rlua_opt_timeout(L, 5, -1) : 0;
    unsigned got = take_cached(L, r, 2, (unsigned)max);
    if (got == (unsigned)max) {
        lua_pushinteger(L, got);
        return 1;
    }
    cq_reserve(L, r, (unsigned)max);
    int n;
    if (got)
        n = ringline_ring_harvest(r->ring, r->cq, (unsigned)max - got);
    else if (wait)
        n = ringline_ring_reap(r->ring, r->cq, (unsigned)max, (unsigned)wait_nr, t);
    else
        n = ringline_ring_harvest(r->ring, r->cq, (unsigned)max);
    if (n < 0) {
        if (got) {
            lua_pushinteger(L, got);
            return 1;
        }
        return rlua_fail(L, n);
    }
    r->cq_n = r->cq_pos = 0;
    pins_completions(L, r, r->cq, (unsigned)n);
    fill_out(L, 2, (int)got, r->cq, (unsigned)n);
    lua_pushinteger(L, (lua_Integer)got + n);
    return 1;
}

static int r_reap(lua_State *L) { return r_reap_impl(L, 1); }
static int r_harvest(lua_State *L) { return r_reap_impl(L, 0); }

/* ring:next([wait [, timeout]]) -> token, res, flags, bgid, bid, big1, big2
 * One completion as plain values (nil if none is ready). Completions are
 * harvested in batches into a C array, so this makes no garbage. wait
 * (default false): submit and wait for one when none is ready. */
static int r_next(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int wait = lua_toboolean(L, 2);
    int64_t t = rlua_opt_timeout(L, 3, -1);
    if (r->cq_pos >= r->cq_n) {
        cq_reserve(L, r, 64);
        int n = wait ? ringline_ring_reap(r->ring, r->cq, r->cq_cap, 1, t)
                     : ringline_ring_harvest(r->ring, r->cq, r->cq_cap);
        if (n < 0)
            return rlua_fail(L, n);
        r->cq_n = (unsigned)n;
        r->cq_pos = 0;
        pins_completions(L, r, r->cq, (unsigned)n);
        if (n == 0) {
            lua_pushnil(L);
            return 1;
        }
    }
    const ringline_cqe_t *c = &r->cq[r->cq_pos++];
    lua_pushinteger(L, (lua_Integer)c->token);
    lua_pushinteger(L, c->res);
    lua_pushinteger(L, c->flags);
    lua_pushinteger(L, c->bgid);
    lua_pushinteger(L, c->bid);
    lua_pushinteger(L, (lua_Integer)c->big[0]);
    lua_pushinteger(L, (lua_Integer)c->big[1]);
    return 7;
}

/* ---- operations ---- */

/* After a successful queue: count the op, pin n values from `first`. */
static int op_done(lua_State *L, rlua_ring *r, int ret, uint64_t token, int first, int n)
{
    if (ret < 0)
        return rlua_fail(L, ret);
    pins_add(L, r, token, first, n);
    lua_pushboolean(L, 1);
    return 1;
}

static int o_nop(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    uint64_t tok = check_token(L, 2);
    return op_done(L, r, ringline_op_nop(r->ring, tok), tok, 0, 0);
}

/* accept(fd, token [, mode [, slot [, sock_flags]]]) */
static int o_accept(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t tok = check_token(L, 3);
    lua_Integer mode = luaL_optinteger(L, 4, 0);
    lua_Integer slot = luaL_optinteger(L, 5, (mode & RINGLINE_ACCEPT_DIRECT)
                                                 ? (lua_Integer)RINGLINE_FILE_ALLOC
                                                 : 0);
    lua_Integer sf = luaL_optinteger(L, 6, 0);
    int ret = ringline_op_accept(r->ring, fd, NULL, NULL, (int)sf, (unsigned)mode,
                                 (unsigned)slot, tok);
    return op_done(L, r, ret, tok, 0, 0);
}

static rlua_msg *msg_new(lua_State *L, unsigned niov)
{
    rlua_msg *m = lua_newuserdatauv(L, sizeof *m + niov * sizeof(struct iovec), 1);
    memset(m, 0, sizeof *m + niov * sizeof(struct iovec));
    m->niov = niov;
    luaL_setmetatable(L, RLUA_MSG);
    return m;
}

/* connect(fd, host, port, token) */
static int o_connect(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    const char *host = luaL_checkstring(L, 3);
    lua_Integer port = luaL_checkinteger(L, 4);
    uint64_t tok = check_token(L, 5);
    luaL_argcheck(L, port >= 0 && port <= 65535, 4, "port out of range");
    rlua_msg *m = msg_new(L, 0);
    socklen_t len;
    if (rlua_sockaddr(host, (unsigned)port, &m->addr, &len) < 0)
        return luaL_argerror(L, 3, "not a numeric IPv4/IPv6 address");
    int ret = ringline_op_connect(r->ring, fd, (struct sockaddr *)&m->addr, len, tok);
    return op_done(L, r, ret, tok, lua_gettop(L), 1);
}

/* recv(fd, buf, token [, off [, len [, msg_flags]]]) */
static int o_recv(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t tok = check_token(L, 4);
    size_t n;
    uint8_t *p = (uint8_t *)rlua_check_mem(L, 3, 5, &n, 0, 1);
    int fl = (int)luaL_optinteger(L, 7, 0);
    return op_done(L, r, ringline_op_recv(r->ring, fd, p, n, fl, tok), tok, 3, 1);
}

/* recv_select(fd, bgid, token [, len [, msg_flags]]) */
static int o_recv_select(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    lua_Integer bgid = luaL_checkinteger(L, 3);
    uint64_t tok = check_token(L, 4);
    lua_Integer len = luaL_optinteger(L, 5, 0);
    int fl = (int)luaL_optinteger(L, 6, 0);
    luaL_argcheck(L, bgid >= 0 && bgid <= 0xFFFF, 3, "bgid out of range");
    luaL_argcheck(L, len >= 0, 5, "length must be >= 0");
    int ret = ringline_op_recv_select(r->ring, fd, (uint16_t)bgid, (size_t)len, fl, tok);
    return op_done(L, r, ret, tok, 0, 0);
}

/* recv_multishot(fd, bgid, token [, msg_flags]) */
static int o_recv_multishot(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    lua_Integer bgid = luaL_checkinteger(L, 3);
    uint64_t tok = check_token(L, 4);
    int fl = (int)luaL_optinteger(L, 5, 0);
    luaL_argcheck(L, bgid >= 0 && bgid <= 0xFFFF, 3, "bgid out of range");
    int ret = ringline_op_recv_multishot(r->ring, fd, (uint16_t)bgid, fl, tok);
    return op_done(L, r, ret, tok, 0, 0);
}

/* send(fd, data, token [, off [, len [, msg_flags]]]); send_zc likewise */
static int send_impl(lua_State *L, int zc)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t tok = check_token(L, 4);
    size_t n;
    const uint8_t *p = rlua_check_mem(L, 3, 5, &n, 1, 0);
    int fl = (int)luaL_optinteger(L, 7, 0);
    int ret = zc ? ringline_op_send_zc(r->ring, fd, p, n, fl, tok)
                 : ringline_op_send(r->ring, fd, p, n, fl, tok);
    return op_done(L, r, ret, tok, 3, 1);
}
static int o_send(lua_State *L) { return send_impl(L, 0); }
static int o_send_zc(lua_State *L) { return send_impl(L, 1); }

/* A msg record over the parts at idx (string, buffer, or a list of them);
 * the record is pushed, its uservalue keeps the parts. */
static rlua_msg *build_msg(lua_State *L, int idx, int writable)
{
    idx = lua_absindex(L, idx);
    unsigned n = 1;
    if (lua_istable(L, idx)) {
        n = (unsigned)lua_rawlen(L, idx);
        luaL_argcheck(L, n >= 1 && n <= 1024, idx, "1..1024 parts");
    }
    rlua_msg *m = msg_new(L, n);
    int mi = lua_gettop(L);
    lua_createtable(L, (int)n, 0); /* keeps the parts alive */
    int keep = lua_gettop(L);
    for (unsigned i = 0; i < n; i++) {
        if (lua_istable(L, idx))
            lua_rawgeti(L, idx, (lua_Integer)i + 1);
        else
            lua_pushvalue(L, idx);
        size_t len;
        const uint8_t *p;
        if (lua_type(L, -1) == LUA_TSTRING && !writable) {
            p = (const uint8_t *)lua_tolstring(L, -1, &len);
        } else {
            rlua_buffer *b = luaL_testudata(L, -1, RLUA_BUFFER);
            if (!b || !b->p)
                luaL_argerror(L, idx, writable ? "parts must be ringline.buffer objects"
                                                : "parts must be strings or buffers");
            p = b->p;
            len = b->size;
        }
        m->iov[i].iov_base = (void *)p;
        m->iov[i].iov_len = len;
        lua_rawseti(L, keep, (lua_Integer)i + 1);
    }
    lua_setiuservalue(L, mi, 1);
    m->msg.msg_iov = m->iov;
    m->msg.msg_iovlen = n;
    return m;
}

/* Push every buffer among the msg's parts (for in-flight counting). */
static int push_msg_buffers(lua_State *L, int mi)
{
    int pushed = 0;
    lua_getiuservalue(L, mi, 1);
    int keep = lua_gettop(L);
    lua_Integer len = (lua_Integer)lua_rawlen(L, keep);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(L, keep, i);
        if (luaL_testudata(L, -1, RLUA_BUFFER)) {
            lua_insert(L, keep);
            keep++;
            pushed++;
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return pushed;
}

/* sendmsg(fd, parts, token [, host, port [, msg_flags]]); sendmsg_zc */
static int sendmsg_impl(lua_State *L, int zc)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t tok = check_token(L, 4);
    const char *host = luaL_optstring(L, 5, NULL);
    lua_Integer port = luaL_optinteger(L, 6, 0);
    int fl = (int)luaL_optinteger(L, 7, 0);
    luaL_argcheck(L, port >= 0 && port <= 65535, 6, "port out of range");
    lua_settop(L, 7);
    rlua_msg *m = build_msg(L, 3, 0);
    int mi = lua_gettop(L);
    if (host) {
        socklen_t len;
        if (rlua_sockaddr(host, (unsigned)port, &m->addr, &len) < 0)
            return luaL_argerror(L, 5, "not a numeric IPv4/IPv6 address");
        m->msg.msg_name = &m->addr;
        m->msg.msg_namelen = len;
    }
    int nb = push_msg_buffers(L, mi);
    int ret = zc ? ringline_op_sendmsg_zc(r->ring, fd, &m->msg, fl, tok)
                 : ringline_op_sendmsg(r->ring, fd, &m->msg, fl, tok);
    return op_done(L, r, ret, tok, mi, 1 + nb);
}
static int o_sendmsg(lua_State *L) { return sendmsg_impl(L, 0); }
static int o_sendmsg_zc(lua_State *L) { return sendmsg_impl(L, 1); }

/* recvmsg(fd, bufs, token [, msg_flags]) -> msg (msg:addr(), msg:flags()) */
static int o_recvmsg(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t tok = check_token(L, 4);
    int fl = (int)luaL_optinteger(L, 5, 0);
    lua_settop(L, 5);
    rlua_msg *m = build_msg(L, 3, 1);
    int mi = lua_gettop(L);
    m->msg.msg_name = &m->addr;
    m->msg.msg_namelen = sizeof m->addr;
    int nb = push_msg_buffers(L, mi);
    int ret = ringline_op_recvmsg(r->ring, fd, &m->msg, fl, tok);
    if (ret < 0)
        return rlua_fail(L, ret);
    pins_add(L, r, tok, mi, 1 + nb);
    lua_pushvalue(L, mi);
    return 1;
}

static int msg_addr(lua_State *L)
{
    rlua_msg *m = luaL_checkudata(L, 1, RLUA_MSG);
    return rlua_push_sockaddr(L, (struct sockaddr *)&m->addr, m->msg.msg_namelen);
}

static int msg_flags(lua_State *L)
{
    rlua_msg *m = luaL_checkudata(L, 1, RLUA_MSG);
    lua_pushinteger(L, m->msg.msg_flags);
    return 1;
}

/* close(fd, token) */
static int o_close(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t tok = check_token(L, 3);
    return op_done(L, r, ringline_op_close(r->ring, fd, tok), tok, 0, 0);
}

/* shutdown(fd, how, token) */
static int o_shutdown(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    int how = (int)luaL_checkinteger(L, 3);
    uint64_t tok = check_token(L, 4);
    return op_done(L, r, ringline_op_shutdown(r->ring, fd, how, tok), tok, 0, 0);
}

/* timeout(seconds, token [, count [, flags]]) */
static int o_timeout(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    uint64_t ns = rlua_check_seconds(L, 2);
    uint64_t tok = check_token(L, 3);
    lua_Integer count = luaL_optinteger(L, 4, 0);
    lua_Integer fl = luaL_optinteger(L, 5, 0);
    luaL_argcheck(L, count >= 0 && count <= UINT32_MAX, 4, "count out of range");
    int ret = ringline_op_timeout(r->ring, ns, (unsigned)count, (unsigned)fl, tok);
    return op_done(L, r, ret, tok, 0, 0);
}

static int o_timeout_remove(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    uint64_t target = check_token(L, 2);
    uint64_t tok = check_token(L, 3);
    return op_done(L, r, ringline_op_timeout_remove(r->ring, target, tok), tok, 0, 0);
}

/* timeout_update(target, seconds, token [, flags]) */
static int o_timeout_update(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    uint64_t target = check_token(L, 2);
    uint64_t ns = rlua_check_seconds(L, 3);
    uint64_t tok = check_token(L, 4);
    lua_Integer fl = luaL_optinteger(L, 5, 0);
    int ret = ringline_op_timeout_update(r->ring, target, ns, (unsigned)fl, tok);
    return op_done(L, r, ret, tok, 0, 0);
}

/* link_timeout(seconds, token [, flags]) */
static int o_link_timeout(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    uint64_t ns = rlua_check_seconds(L, 2);
    uint64_t tok = check_token(L, 3);
    lua_Integer fl = luaL_optinteger(L, 4, 0);
    return op_done(L, r, ringline_op_link_timeout(r->ring, ns, (unsigned)fl, tok), tok, 0, 0);
}

/* cancel(target, token [, flags]) */
static int o_cancel(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    uint64_t target = check_token(L, 2);
    uint64_t tok = check_token(L, 3);
    lua_Integer fl = luaL_optinteger(L, 4, 0);
    return op_done(L, r, ringline_op_cancel(r->ring, target, (unsigned)fl, tok), tok, 0, 0);
}

/* cancel_fd(fd, token [, flags]) */
static int o_cancel_fd(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t tok = check_token(L, 3);
    lua_Integer fl = luaL_optinteger(L, 4, 0);
    return op_done(L, r, ringline_op_cancel_fd(r->ring, fd, (unsigned)fl, tok), tok, 0, 0);
}

static uint64_t check_offset(lua_State *L, int idx)
{
    lua_Integer o = luaL_checkinteger(L, idx);
    return (uint64_t)o; /* -1: the file position, as in the C API */
}

/* read(fd, buf, offset, token [, off [, len]]) */
static int o_read(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t off = check_offset(L, 4);
    uint64_t tok = check_token(L, 5);
    size_t n;
    uint8_t *p = (uint8_t *)rlua_check_mem(L, 3, 6, &n, 0, 1);
    return op_done(L, r, ringline_op_read(r->ring, fd, p, n, off, tok), tok, 3, 1);
}

/* write(fd, data, offset, token [, off [, len]]) */
static int o_write(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t off = check_offset(L, 4);
    uint64_t tok = check_token(L, 5);
    size_t n;
    const uint8_t *p = rlua_check_mem(L, 3, 6, &n, 1, 0);
    return op_done(L, r, ringline_op_write(r->ring, fd, p, n, off, tok), tok, 3, 1);
}

/* read_fixed(fd, buf, offset, index, token [, off [, len]]) */
static int fixed_impl(lua_State *L, int wr)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t off = check_offset(L, 4);
    lua_Integer index = luaL_checkinteger(L, 5);
    uint64_t tok = check_token(L, 6);
    luaL_argcheck(L, index >= 0 && index < 65536, 5, "buffer index out of range");
    size_t n;
    uint8_t *p = (uint8_t *)rlua_check_mem(L, 3, 7, &n, 0, 1);
    int ret = wr ? ringline_op_write_fixed(r->ring, fd, p, n, off, (unsigned)index, tok)
                 : ringline_op_read_fixed(r->ring, fd, p, n, off, (unsigned)index, tok);
    return op_done(L, r, ret, tok, 3, 1);
}
static int o_read_fixed(lua_State *L) { return fixed_impl(L, 0); }
static int o_write_fixed(lua_State *L) { return fixed_impl(L, 1); }

/* readv(fd, bufs, offset, token); writev(fd, parts, offset, token) */
static int vec_impl(lua_State *L, int wr)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t off = check_offset(L, 4);
    uint64_t tok = check_token(L, 5);
    lua_settop(L, 5);
    rlua_msg *m = build_msg(L, 3, !wr);
    int mi = lua_gettop(L);
    int nb = push_msg_buffers(L, mi);
    int ret = wr ? ringline_op_writev(r->ring, fd, m->iov, m->niov, off, tok)
                 : ringline_op_readv(r->ring, fd, m->iov, m->niov, off, tok);
    return op_done(L, r, ret, tok, mi, 1 + nb);
}
static int o_readv(lua_State *L) { return vec_impl(L, 0); }
static int o_writev(lua_State *L) { return vec_impl(L, 1); }

/* fsync(fd, token [, flags]) */
static int o_fsync(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    uint64_t tok = check_token(L, 3);
    lua_Integer fl = luaL_optinteger(L, 4, 0);
    return op_done(L, r, ringline_op_fsync(r->ring, fd, (unsigned)fl, tok), tok, 0, 0);
}

/* openat(path, flags, mode, token [, slot [, dfd]]) */
static int o_openat(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    int flags = (int)luaL_checkinteger(L, 3);
    lua_Integer mode = luaL_checkinteger(L, 4);
    uint64_t tok = check_token(L, 5);
    lua_Integer slot = luaL_optinteger(L, 6, (lua_Integer)RINGLINE_NO_SLOT);
    int dfd = (int)luaL_optinteger(L, 7, -100 /* AT_FDCWD */);
    int ret = ringline_op_openat(r->ring, dfd, path, flags, (unsigned)mode,
                                 (unsigned)slot, tok);
    return op_done(L, r, ret, tok, 2, 1);
}

/* poll(fd, events, token [, multishot]) */
static int o_poll(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    lua_Integer ev = luaL_checkinteger(L, 3);
    uint64_t tok = check_token(L, 4);
    int ms = lua_toboolean(L, 5);
    return op_done(L, r, ringline_op_poll(r->ring, fd, (unsigned)ev, ms, tok), tok, 0, 0);
}

static int o_poll_remove(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    uint64_t target = check_token(L, 2);
    uint64_t tok = check_token(L, 3);
    return op_done(L, r, ringline_op_poll_remove(r->ring, target, tok), tok, 0, 0);
}

/* msg_ring(target_ring, res, payload, token) */
static int o_msg_ring(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    rlua_ring *t = rlua_check_ring(L, 2);
    lua_Integer res = luaL_checkinteger(L, 3);
    lua_Integer payload = luaL_checkinteger(L, 4);
    uint64_t tok = check_token(L, 5);
    luaL_argcheck(L, res >= INT32_MIN && res <= INT32_MAX, 3, "res out of range");
    int ret = ringline_op_msg_ring(r->ring, t->ring, (int32_t)res, (uint64_t)payload, tok);
    return op_done(L, r, ret, tok, 2, 1); /* the target ring stays alive */
}

/* nvme(fd, cmd, token [, admin]) */
static int o_nvme(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int fd = check_fd(L, 2);
    rlua_nvme *c = luaL_checkudata(L, 3, RLUA_NVME);
    uint64_t tok = check_token(L, 4);
    int admin = lua_toboolean(L, 5);
    lua_settop(L, 5);
    lua_getiuservalue(L, 3, 1); /* the data buffer, if any */
    int ret = ringline_op_nvme(r->ring, fd, &c->cmd, admin, tok);
    return op_done(L, r, ret, tok, 6, lua_isnil(L, 6) ? 0 : 1);
}

/* ---- storage batches (ringline_rw_batch / ringline_rw_reap) ---- */

static const char *const rw_names[] = {"read", "write", "read_fixed", "write_fixed", "fsync",
                                       "nvme_read", "nvme_write", "nvme_flush",
                                       "nvme_write_zeroes", NULL};

static lua_Integer req_int(lua_State *L, int t, const char *k, lua_Integer def, int i)
{
    lua_getfield(L, t, k);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "request %d: field '%s' must be an integer", i, k);
    }
    lua_pop(L, 1);
    return v;
}

/* Fill req from the table at t (request number i, for messages). */
static void parse_req(lua_State *L, int t, ringline_rw_req_t *req, int i)
{
    if (!lua_istable(L, t))
        luaL_error(L, "request %d: table expected", i);
    memset(req, 0, sizeof *req);
    lua_getfield(L, t, "op");
    int op;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        op = (int)lua_tointeger(L, -1);
    } else {
        const char *name = lua_tostring(L, -1);
        op = 0;
        for (int k = 0; name && rw_names[k]; k++)
            if (strcmp(name, rw_names[k]) == 0)
                op = k + 1;
        if (!op)
            luaL_error(L, "request %d: unknown op '%s'", i, name ? name : "?");
    }
    lua_pop(L, 1);
    req->op = (uint16_t)op;
    req->token = (uint64_t)req_int(L, t, "token", 0, i);
    req->fd = (int32_t)req_int(L, t, "fd", -1, i);
    req->offset = (uint64_t)req_int(L, t, "offset", 0, i);
    req->nlb = (uint32_t)req_int(L, t, "nlb", 0, i);
    req->nsid = (uint32_t)req_int(L, t, "nsid", 0, i);
    req->buf_index = (uint16_t)req_int(L, t, "buf_index", 0, i);
    req->flags = (uint32_t)req_int(L, t, "flags", 0, i);
    lua_getfield(L, t, "buf");
    if (!lua_isnil(L, -1)) {
        int writing = op == RINGLINE_RW_WRITE || op == RINGLINE_RW_WRITE_FIXED ||
                      op == RINGLINE_RW_NVME_WRITE;
        size_t len = 0;
        const uint8_t *p;
        lua_Integer off = req_int(L, t, "off", 0, i);
        if (lua_type(L, -1) == LUA_TSTRING && writing) {
            p = (const uint8_t *)lua_tolstring(L, -1, &len);
        } else {
            rlua_buffer *b = luaL_testudata(L, -1, RLUA_BUFFER);
            if (!b || !b->p)
                luaL_error(L, "request %d: buf must be a ringline.buffer%s", i,
                           writing ? " or a string" : "");
            p = b->p;
            len = b->size;
        }
        if (off < 0 || (size_t)off > len)
            luaL_error(L, "request %d: off out of range", i);
        lua_Integer n = req_int(L, t, "len", (lua_Integer)(len - (size_t)off), i);
        if (n < 0 || (size_t)n > len - (size_t)off || n > UINT32_MAX)
            luaL_error(L, "request %d: len out of range", i);
        req->buf = (void *)(p + off);
        req->len = (uint32_t)n;
    } else {
        req->len = (uint32_t)req_int(L, t, "len", 0, i);
    }
    lua_pop(L, 1);
}

/* The requests of the list at idx as a C array (a userdata left on the
 * stack); *n gets the count. */
static ringline_rw_req_t *build_reqs(lua_State *L, int idx, unsigned *n)
{
    *n = 0;
    if (lua_isnoneornil(L, idx)) {
        lua_pushnil(L); /* keeps the stack shape */
        return NULL;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer cnt = (lua_Integer)lua_rawlen(L, idx);
    luaL_argcheck(L, cnt <= 65536, idx, "at most 65536 requests");
    ringline_rw_req_t *reqs = lua_newuserdatauv(L, (cnt ? (size_t)cnt : 1) * sizeof *reqs, 0);
    for (lua_Integer i = 0; i < cnt; i++) {
        lua_rawgeti(L, idx, i + 1);
        parse_req(L, lua_gettop(L), &reqs[i], (int)i + 1);
        lua_pop(L, 1);
    }
    *n = (unsigned)cnt;
    return reqs;
}

/* Count and pin the first `queued` requests of the list at idx. */
static void pin_reqs(lua_State *L, rlua_ring *r, int idx, const ringline_rw_req_t *reqs,
                     unsigned queued)
{
    for (unsigned i = 0; i < queued; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        lua_getfield(L, -1, "buf");
        pins_add(L, r, reqs[i].token, lua_gettop(L), lua_isnil(L, -1) ? 0 : 1);
        lua_pop(L, 2);
    }
}

/* ring:rw_batch(reqs) -> queued: every request checked first, then queued
 * in order; each request's buffer is pinned until its completion. */
static int r_rw_batch(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    unsigned n;
    ringline_rw_req_t *reqs = build_reqs(L, 2, &n);
    int ret = ringline_rw_batch(r->ring, reqs, n);
    if (ret < 0)
        return rlua_fail(L, ret);
    pin_reqs(L, r, 2, reqs, (unsigned)ret);
    lua_pushinteger(L, ret);
    return 1;
}

/* ring:rw_reap(reqs|nil, out [, max [, wait_nr [, timeout]]]) -> n, queued
 * Queue a batch, submit, wait and harvest into out, in one crossing. */
static int r_rw_reap(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer max = luaL_optinteger(L, 4, 64);
    luaL_argcheck(L, max >= 1 && max <= 65536, 4, "max out of range");
    lua_Integer wait_nr = luaL_optinteger(L, 5, 1);
    luaL_argcheck(L, wait_nr >= 0 && wait_nr <= 65536, 5, "wait_nr out of range");
    int64_t t = rlua_opt_timeout(L, 6, -1);
    lua_settop(L, 6);
    unsigned n;
    ringline_rw_req_t *reqs = build_reqs(L, 2, &n);
    unsigned got = take_cached(L, r, 3, (unsigned)max);
    cq_reserve(L, r, (unsigned)max);
    unsigned queued = 0;
    int k = ringline_rw_reap(r->ring, reqs, n, &queued, r->cq, (unsigned)max - got,
                             got ? 0 : (unsigned)wait_nr, got ? 0 : t);
    if (k < 0 && !got)
        return rlua_fail(L, k);
    if (k < 0)
        k = 0;
    r->cq_n = r->cq_pos = 0;
    pin_reqs(L, r, 2, reqs, queued); /* before the completions drop them */
    pins_completions(L, r, r->cq, (unsigned)k);
    fill_out(L, 3, (int)got, r->cq, (unsigned)k);
    lua_pushinteger(L, (lua_Integer)got + k);
    lua_pushinteger(L, queued);
    return 2;
}

/* ---- chains and flags ---- */

static int r_set_flags(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    lua_Integer fl = luaL_checkinteger(L, 2);
    return rlua_ok(L, ringline_op_set_flags(r->ring, (unsigned)fl));
}

static int r_chain_begin(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && n <= 65536, 2, "n out of range");
    return rlua_ok(L, ringline_chain_begin(r->ring, (unsigned)n, lua_toboolean(L, 3)));
}

static int r_chain_end_(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_ok(L, ringline_chain_end(r->ring));
}

/* ---- buffer groups, fixed files, registered buffers ---- */

static int r_bufgroup(lua_State *L)
{
    rlua_check_ring(L, 1);
    lua_Integer bgid = luaL_checkinteger(L, 2);
    lua_Integer count = luaL_checkinteger(L, 3);
    lua_Integer size = luaL_checkinteger(L, 4);
    luaL_argcheck(L, bgid >= 0 && bgid <= 0xFFFF, 2, "bgid out of range");
    luaL_argcheck(L, count >= 1 && count <= 32768, 3, "count out of range");
    luaL_argcheck(L, size >= 1 && size <= (1 << 30), 4, "size out of range");
    return rlua_bufgroup_new(L, 1, (uint16_t)bgid, (unsigned)count, (unsigned)size);
}

static int r_files_register(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    lua_Integer total = luaL_checkinteger(L, 2);
    lua_Integer autoc = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, total >= 0 && total <= (1 << 20), 2, "total out of range");
    luaL_argcheck(L, autoc >= 0 && autoc <= total, 3, "auto count out of range");
    return rlua_ok(L, ringline_files_register(r->ring, (unsigned)total, (unsigned)autoc));
}

static int r_files_unregister(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_ok(L, ringline_files_unregister(r->ring));
}

static int r_files_alloc(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_int(L, ringline_files_alloc(r->ring));
}

static unsigned check_slot(lua_State *L, int idx)
{
    lua_Integer s = luaL_checkinteger(L, idx);
    if (s >= RINGLINE_FIXED_BIT && s < 2 * (lua_Integer)RINGLINE_FIXED_BIT)
        s &= ~(lua_Integer)RINGLINE_FIXED_BIT; /* accept FIXED(slot) too */
    luaL_argcheck(L, s >= 0 && s < RINGLINE_FIXED_BIT, idx, "slot out of range");
    return (unsigned)s;
}

static int r_files_release(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_ok(L, ringline_files_release(r->ring, check_slot(L, 2)));
}

static int r_files_install(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_int(L, ringline_files_install(r->ring, check_fd(L, 2)));
}

static int r_files_update(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_ok(L, ringline_files_update(r->ring, check_slot(L, 2), check_fd(L, 3)));
}

static int r_files_remove(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_ok(L, ringline_files_remove(r->ring, check_slot(L, 2)));
}

static int r_files_count(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    return rlua_int(L, ringline_files_count(r->ring));
}

/* buffers_register({buf, ...}): the buffers stay pinned until
 * buffers_unregister() or the ring's end. */
static int r_buffers_register(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    unsigned n = (unsigned)lua_rawlen(L, 2);
    luaL_argcheck(L, n >= 1 && n <= 16384, 2, "1..16384 buffers");
    struct iovec *iov = lua_newuserdatauv(L, n * sizeof *iov, 0);
    for (unsigned i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i + 1);
        rlua_buffer *b = luaL_testudata(L, -1, RLUA_BUFFER);
        if (!b || !b->p)
            return luaL_argerror(L, 2, "a list of ringline.buffer objects");
        iov[i].iov_base = b->p;
        iov[i].iov_len = b->size;
        lua_pop(L, 1);
    }
    int ret = ringline_buffers_register(r->ring, iov, n);
    if (ret < 0)
        return rlua_fail(L, ret);
    /* pinned under a string key: never matched by a completion token */
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->pins_ref);
    lua_createtable(L, (int)n, 0);
    for (unsigned i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i + 1);
        buffer_count(L, -1, 1);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "registered");
    lua_pushboolean(L, 1);
    return 1;
}

static int r_buffers_unregister(lua_State *L)
{
    rlua_ring *r = rlua_check_ring(L, 1);
    int ret = ringline_buffers_unregister(r->ring);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->pins_ref);
    lua_getfield(L, -1, "registered");
    if (lua_istable(L, -1))
        pins_release_rec(L, lua_gettop(L));
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setfield(L, -2, "registered");
    lua_pushboolean(L, 1);
    return 1;
}

/* pins(token) -> count of operations counted under token (for tests) */
static int r_pins(lua_State *L)
{
    rlua_ring *r = luaL_checkudata(L, 1, RLUA_RING);
    if (r->pins_ref == LUA_NOREF) {
        lua_pushinteger(L, 0);
        return 1;
    }
    int all = lua_isnoneornil(L, 2);
    lua_Integer tok = all ? 0 : luaL_checkinteger(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->pins_ref);
    if (all) {
        lua_Integer n = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_isinteger(L, -1))
                n += lua_tointeger(L, -1);
            else if (lua_istable(L, -1) && lua_type(L, -2) != LUA_TSTRING) {
                lua_getfield(L, -1, "n");
                n += lua_tointeger(L, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_pushinteger(L, n);
        return 1;
    }
    lua_rawgeti(L, -1, tok);
    if (lua_istable(L, -1))
        lua_getfield(L, -1, "n");
    lua_pushinteger(L, lua_tointeger(L, -1));
    return 1;
}

static const luaL_Reg methods[] = {
    {"close", r_close},
    {"fd", r_fd},
    {"sq_entries", r_sq_entries},
    {"cq_entries", r_cq_entries},
    {"inflight", r_inflight},
    {"sq_pending", r_sq_pending},
    {"features", r_features},
    {"opcode_supported", r_opcode_supported},
    {"submit", r_submit},
    {"submit_and_wait", r_submit_and_wait},
    {"reap", r_reap},
    {"harvest", r_harvest},
    {"next", r_next},
    {"wake", r_wake},
    {"nop", o_nop},
    {"accept", o_accept},
    {"connect", o_connect},
    {"recv", o_recv},
    {"recv_select", o_recv_select},
    {"recv_multishot", o_recv_multishot},
    {"send", o_send},
    {"send_zc", o_send_zc},
    {"sendmsg", o_sendmsg},
    {"sendmsg_zc", o_sendmsg_zc},
    {"recvmsg", o_recvmsg},
    {"close_fd", o_close},
    {"shutdown", o_shutdown},
    {"timeout", o_timeout},
    {"timeout_remove", o_timeout_remove},
    {"timeout_update", o_timeout_update},
    {"link_timeout", o_link_timeout},
    {"cancel", o_cancel},
    {"cancel_fd", o_cancel_fd},
    {"read", o_read},
    {"write", o_write},
    {"read_fixed", o_read_fixed},
    {"write_fixed", o_write_fixed},
    {"readv", o_readv},
    {"writev", o_writev},
    {"fsync", o_fsync},
    {"openat", o_openat},
    {"poll", o_poll},
    {"poll_remove", o_poll_remove},
    {"msg_ring", o_msg_ring},
    {"nvme", o_nvme},
    {"rw_batch", r_rw_batch},
    {"rw_reap", r_rw_reap},
    {"set_flags", r_set_flags},
    {"chain_begin", r_chain_begin},
    {"chain_end", r_chain_end_},
    {"bufgroup", r_bufgroup},
    {"files_register", r_files_register},
    {"files_unregister", r_files_unregister},
    {"files_alloc", r_files_alloc},
    {"files_release", r_files_release},
    {"files_install", r_files_install},
    {"files_update", r_files_update},
    {"files_remove", r_files_remove},
    {"files_count", r_files_count},
    {"buffers_register", r_buffers_register},
    {"buffers_unregister", r_buffers_unregister},
    {"pins", r_pins},
    {NULL, NULL},
};

static const luaL_Reg meta[] = {
    {"__gc", r_gc},
    {"__close", r_gc},
    {"__tostring", r_tostring},
    {NULL, NULL},
};

static int msg_noop(lua_State *L) { (void)L; return 0; }

/* a msg record is plain memory kept alive by pins while in flight */
static const luaL_Reg msg_meta[] = {
    {"__gc", msg_noop},
    {"__close", msg_noop},
    {NULL, NULL},
};

static const luaL_Reg msg_methods[] = {
    {"addr", msg_addr},
    {"flags", msg_flags},
    {NULL, NULL},
};

void rlua_open_ring(lua_State *L)
{
    rlua_class(L, RLUA_RING, methods, meta);
    rlua_class(L, RLUA_MSG, msg_methods, msg_meta);
    lua_pushcfunction(L, r_new);
    lua_setfield(L, -2, "ring");
}
