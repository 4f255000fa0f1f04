/*
 * bufgroup.c — provided-buffer groups (ringline_bufring_*) as objects.
 *
 * The memory belongs to the ring (mapped by ringline_bufring_create and
 * unmapped only after the kernel lets go), so this object only names it.
 * It keeps its ring alive (uservalue) and becomes unusable when the ring is
 * closed. Buffer contents are read as strings (copies): a buffer handed back
 * with :ret() may be overwritten by the kernel at once, so no view into it
 * is ever given to Lua.
 */
#include <errno.h>
#include <string.h>

#include "rlua.h"

typedef struct rlua_bufgroup {
    uint16_t bgid;
    int destroyed;
} rlua_bufgroup;

/* The group and its ring; raises if either is gone. */
static ringline_ring_t *check_group(lua_State *L, int idx, rlua_bufgroup **out)
{
    rlua_bufgroup *g = luaL_checkudata(L, idx, RLUA_BUFGROUP);
    if (g->destroyed)
        luaL_argerror(L, idx, "buffer group is destroyed");
    lua_getiuservalue(L, idx, 1);
    ringline_ring_t *ring = rlua_ring_handle(L, lua_gettop(L));
    lua_pop(L, 1);
    *out = g;
    return ring;
}

int rlua_bufgroup_new(lua_State *L, int ring_idx, uint16_t bgid, unsigned count,
                      unsigned size)
{
    ring_idx = lua_absindex(L, ring_idx);
    ringline_ring_t *ring = rlua_ring_handle(L, ring_idx);
    rlua_bufgroup *g = lua_newuserdatauv(L, sizeof *g, 1);
    g->bgid = bgid;
    g->destroyed = 1;
    luaL_setmetatable(L, RLUA_BUFGROUP);
    lua_pushvalue(L, ring_idx);
    lua_setiuservalue(L, -2, 1);
    int ret = ringline_bufring_create(ring, bgid, count, size);
    if (ret < 0)
        return rlua_fail(L, ret);
    g->destroyed = 0;
    return 1;
}

static int g_bgid(lua_State *L)
{
    rlua_bufgroup *g;
    check_group(L, 1, &g);
    lua_pushinteger(L, g->bgid);
    return 1;
}

static int g_count(lua_State *L)
{
    rlua_bufgroup *g;
    ringline_ring_t *r = check_group(L, 1, &g);
    return rlua_int(L, ringline_bufring_count(r, g->bgid));
}

static int g_size(lua_State *L)
{
    rlua_bufgroup *g;
    ringline_ring_t *r = check_group(L, 1, &g);
    return rlua_int(L, ringline_bufring_size(r, g->bgid));
}

static int g_available(lua_State *L)
{
    rlua_bufgroup *g;
    ringline_ring_t *r = check_group(L, 1, &g);
    return rlua_int(L, ringline_bufring_available(r, g->bgid));
}

/* g:read(bid [, len [, off]]) -> string copy of the buffer's bytes (len
 * defaults to the whole buffer; pass the completion's res). */
static int g_read(lua_State *L)
{
    rlua_bufgroup *g;
    ringline_ring_t *r = check_group(L, 1, &g);
    lua_Integer bid = luaL_checkinteger(L, 2);
    luaL_argcheck(L, bid >= 0 && bid <= 0xFFFF, 2, "bid out of range");
    void *p = NULL;
    int size = ringline_bufring_addr(r, g->bgid, (uint16_t)bid, &p);
    if (size < 0)
        return rlua_fail(L, size);
    lua_Integer len = luaL_optinteger(L, 3, size);
    lua_Integer off = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, off >= 0 && off <= size, 4, "offset out of range");
    luaL_argcheck(L, len >= 0 && len <= size - off, 3, "length out of range");
    lua_pushlstring(L, (const char *)p + off, (size_t)len);
    return 1;
}

/* g:ret(bid, ...) or g:ret({bid, ...}): give buffers back in one batch. */
static int g_ret(lua_State *L)
{
    rlua_bufgroup *g;
    ringline_ring_t *r = check_group(L, 1, &g);
    uint16_t small[64];
    uint16_t *bids = small;
    unsigned n;
    int list = lua_istable(L, 2);
    n = list ? (unsigned)lua_rawlen(L, 2) : (unsigned)(lua_gettop(L) - 1);
    luaL_argcheck(L, n >= 1 && n <= 32768, 2, "1..32768 buffer ids");
    if (n > 64)
        bids = lua_newuserdatauv(L, n * sizeof *bids, 0);
    for (unsigned i = 0; i < n; i++) {
        lua_Integer b;
        if (list) {
            lua_rawgeti(L, 2, (lua_Integer)i + 1);
            int ok;
            b = lua_tointegerx(L, -1, &ok);
            lua_pop(L, 1);
            if (!ok)
                return luaL_argerror(L, 2, "buffer ids must be integers");
        } else {
            b = luaL_checkinteger(L, (int)i + 2);
        }
        if (b < 0 || b > 0xFFFF)
            return luaL_argerror(L, list ? 2 : (int)i + 2, "bid out of range");
        bids[i] = (uint16_t)b;
    }
    return rlua_ok(L, ringline_bufring_return(r, g->bgid, bids, n));
}

/* g:destroy(): EBUSY while an operation selecting from it is in flight. */
static int g_destroy(lua_State *L)
{
    rlua_bufgroup *g = luaL_checkudata(L, 1, RLUA_BUFGROUP);
    if (g->destroyed) {
        lua_pushboolean(L, 1);
        return 1;
    }
    rlua_bufgroup *gg;
    ringline_ring_t *r = check_group(L, 1, &gg); /* raises if the ring is closed */
    int ret = ringline_bufring_destroy(r, g->bgid);
    if (ret < 0)
        return rlua_fail(L, ret);
    g->destroyed = 1;
    lua_pushboolean(L, 1);
    return 1;
}

static int g_gc(lua_State *L)
{
    rlua_bufgroup *g = luaL_checkudata(L, 1, RLUA_BUFGROUP);
    if (g->destroyed)
        return 0;
    /* best effort: if the ring is closed or an operation still selects
     * from the group, the ring frees it at its own end */
    lua_getiuservalue(L, 1, 1);
    rlua_ring *rr = luaL_testudata(L, -1, RLUA_RING);
    if (rr) {
        lua_pushcfunction(L, g_destroy);
        lua_pushvalue(L, 1);
        lua_pcall(L, 1, 0, 0); /* raises if the ring is closed: ignored */
    }
    g->destroyed = 1;
    return 0;
}

static int g_tostring(lua_State *L)
{
    rlua_bufgroup *g = luaL_checkudata(L, 1, RLUA_BUFGROUP);
    lua_pushfstring(L, "ringline.bufgroup: %d%s", (int)g->bgid,
                    g->destroyed ? " (destroyed)" : "");
    return 1;
}

static const luaL_Reg methods[] = {
    {"bgid", g_bgid},       {"count", g_count}, {"size", g_size},
    {"available", g_available}, {"read", g_read}, {"ret", g_ret},
    {"destroy", g_destroy}, {"close", g_destroy}, {NULL, NULL},
};

static const luaL_Reg meta[] = {
    {"__gc", g_gc},
    {"__close", g_gc},
    {"__tostring", g_tostring},
    {NULL, NULL},
};

void rlua_open_bufgroup(lua_State *L)
{
    rlua_class(L, RLUA_BUFGROUP, methods, meta);
}
