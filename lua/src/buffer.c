/*
 * buffer.c — aligned memory (ringline_aligned_alloc) as a Lua object, for
 * O_DIRECT, registered (fixed) buffers, NVMe data and any raw operation that
 * reads into caller memory.
 *
 * A buffer used by an operation is pinned from the registry by its ring
 * until the operation's final completion (ring.c), and counts that in
 * `inflight`: free() refuses (EBUSY) while the kernel may still write, and
 * __gc can only run once nothing references it, i.e. once no operation is
 * in flight.
 */
#include <errno.h>
#include <string.h>

#include "rlua.h"

rlua_buffer *rlua_check_buffer(lua_State *L, int idx)
{
    rlua_buffer *b = luaL_checkudata(L, idx, RLUA_BUFFER);
    if (!b->p)
        luaL_argerror(L, idx, "buffer is freed");
    return b;
}

const uint8_t *rlua_check_mem(lua_State *L, int idx, int off_idx, size_t *len,
                              int string_ok, int writable)
{
    if (string_ok && lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tolstring(L, idx, len);
        if (off_idx) {
            lua_Integer off = luaL_optinteger(L, off_idx, 0);
            luaL_argcheck(L, off >= 0 && (size_t)off <= *len, off_idx, "offset out of range");
            lua_Integer n = luaL_optinteger(L, off_idx + 1, (lua_Integer)(*len - (size_t)off));
            luaL_argcheck(L, n >= 0 && (size_t)n <= *len - (size_t)off, off_idx + 1,
                          "length out of range");
            *len = (size_t)n;
            return (const uint8_t *)s + off;
        }
        return (const uint8_t *)s;
    }
    rlua_buffer *b = luaL_testudata(L, idx, RLUA_BUFFER);
    if (!b)
        luaL_typeerror(L, idx, string_ok && !writable ? "string or ringline.buffer"
                                                      : "ringline.buffer");
    if (!b->p)
        luaL_argerror(L, idx, "buffer is freed");
    size_t off = 0, n = b->size;
    if (off_idx) {
        lua_Integer o = luaL_optinteger(L, off_idx, 0);
        luaL_argcheck(L, o >= 0 && (size_t)o <= b->size, off_idx, "offset out of range");
        lua_Integer l = luaL_optinteger(L, off_idx + 1, (lua_Integer)(b->size - (size_t)o));
        luaL_argcheck(L, l >= 0 && (size_t)l <= b->size - (size_t)o, off_idx + 1,
                      "length out of range");
        off = (size_t)o;
        n = (size_t)l;
    }
    *len = n;
    return b->p + off;
}

/* ringline.core.buffer(size [, align]) */
static int b_new(lua_State *L)
{
    lua_Integer size = luaL_checkinteger(L, 1);
    lua_Integer align = luaL_optinteger(L, 2, 0);
    luaL_argcheck(L, size > 0 && size <= (lua_Integer)1 << 34, 1, "size out of range");
    luaL_argcheck(L, align >= 0 && (align & (align - 1)) == 0, 2,
                  "alignment must be 0 or a power of two");
    rlua_buffer *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL;
    b->size = 0;
    b->inflight = 0;
    void *p = NULL;
    int ret = ringline_aligned_alloc((size_t)size, (size_t)align, &p);
    if (ret < 0)
        return rlua_fail(L, ret);
    b->p = p;
    b->size = (size_t)size;
    luaL_setmetatable(L, RLUA_BUFFER);
    return 1;
}

static int b_size(lua_State *L)
{
    rlua_buffer *b = rlua_check_buffer(L, 1);
    lua_pushinteger(L, (lua_Integer)b->size);
    return 1;
}

/* buf:read([off [, len]]) -> string */
static int b_read(lua_State *L)
{
    size_t n;
    const uint8_t *p = rlua_check_mem(L, 1, 2, &n, 0, 0);
    lua_pushlstring(L, (const char *)p, n);
    return 1;
}

/* buf:write(s [, off]) -> bytes written */
static int b_write(lua_State *L)
{
    rlua_buffer *b = rlua_check_buffer(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    lua_Integer off = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, off >= 0 && (size_t)off <= b->size, 3, "offset out of range");
    luaL_argcheck(L, n <= b->size - (size_t)off, 2, "string does not fit");
    memcpy(b->p + off, s, n);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* buf:fill(byte [, off [, len]]) */
static int b_fill(lua_State *L)
{
    rlua_buffer *b = rlua_check_buffer(L, 1);
    lua_Integer v = luaL_checkinteger(L, 2);
    luaL_argcheck(L, v >= 0 && v <= 255, 2, "byte value 0..255");
    size_t n;
    uint8_t *p = (uint8_t *)rlua_check_mem(L, 1, 3, &n, 0, 1);
    memset(p, (int)v, n);
    (void)b;
    lua_settop(L, 1);
    return 1;
}

/* buf:find(s [, init]) -> 1-based index or nil (memmem) */
static int b_find(lua_State *L)
{
    rlua_buffer *b = rlua_check_buffer(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    lua_Integer init = luaL_optinteger(L, 3, 1);
    luaL_argcheck(L, init >= 1, 3, "init must be >= 1");
    if ((size_t)init - 1 > b->size) {
        lua_pushnil(L);
        return 1;
    }
    const uint8_t *hit = memmem(b->p + init - 1, b->size - (size_t)(init - 1), s, n);
    if (hit)
        lua_pushinteger(L, (lua_Integer)(hit - b->p) + 1);
    else
        lua_pushnil(L);
    return 1;
}

static int b_inflight(lua_State *L)
{
    rlua_buffer *b = luaL_checkudata(L, 1, RLUA_BUFFER);
    lua_pushinteger(L, b->inflight);
    return 1;
}

static int b_address(lua_State *L)
{
    rlua_buffer *b = rlua_check_buffer(L, 1);
    lua_pushinteger(L, (lua_Integer)(uintptr_t)b->p);
    return 1;
}

/* buf:free(): nil, "EBUSY..." while an operation may still use it. */
static int b_free(lua_State *L)
{
    rlua_buffer *b = luaL_checkudata(L, 1, RLUA_BUFFER);
    if (!b->p) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (b->inflight > 0)
        return rlua_fail(L, -EBUSY);
    ringline_aligned_free(b->p);
    b->p = NULL;
    b->size = 0;
    lua_pushboolean(L, 1);
    return 1;
}

static int b_gc(lua_State *L)
{
    rlua_buffer *b = luaL_checkudata(L, 1, RLUA_BUFFER);
    /* unreachable means unpinned: no operation can be in flight */
    if (b->p && b->inflight == 0) {
        ringline_aligned_free(b->p);
        b->p = NULL;
    }
    return 0;
}

static int b_len(lua_State *L)
{
    rlua_buffer *b = luaL_checkudata(L, 1, RLUA_BUFFER);
    lua_pushinteger(L, (lua_Integer)b->size);
    return 1;
}

static int b_tostring(lua_State *L)
{
    rlua_buffer *b = luaL_checkudata(L, 1, RLUA_BUFFER);
    if (b->p)
        lua_pushfstring(L, "ringline.buffer: %p (%d bytes)", (void *)b->p, (int)b->size);
    else
        lua_pushstring(L, "ringline.buffer: freed");
    return 1;
}

static const luaL_Reg methods[] = {
    {"size", b_size},   {"read", b_read},         {"write", b_write},
    {"fill", b_fill},   {"find", b_find},         {"inflight", b_inflight},
    {"free", b_free},   {"address", b_address},   {NULL, NULL},
};

static const luaL_Reg meta[] = {
    {"__gc", b_gc},
    {"__close", b_free},
    {"__len", b_len},
    {"__tostring", b_tostring},
    {NULL, NULL},
};

void rlua_open_buffer(lua_State *L)
{
    rlua_class(L, RLUA_BUFFER, methods, meta);
    lua_pushcfunction(L, b_new);
    lua_setfield(L, -2, "buffer");
}
