/*
 * frame.c — the C framers (ringline_frame, ringline_resp_parse_command) as
 * pure functions over Lua strings: no I/O.
 *
 *   payload, frame_len [, body] = core.frame(kind, s [, init [, max_frame]])
 *       kind: "line" | "u16" | "u32" | "resp" | "http" or FRAMER_* number.
 *       false when more bytes are needed; nil, err, errno when the bytes
 *       cannot be this framing (EPROTO) or are too large (EMSGSIZE).
 *       For "http" the payload is the head and body is returned as well.
 *   argv, frame_len = core.resp_parse(s [, init [, argv]])
 *       one RESP command (array of bulk strings, or an inline line) starting
 *       at init; argv (reused if given) gets argv[1..n] and argv.n = n.
 *       false when incomplete; nil, err, errno when malformed.
 */
#include <errno.h>
#include <string.h>

#include "rlua.h"

static const char *const kind_names[] = {"line", "u16", "u32", "resp", "http", NULL};

int rlua_check_framer(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer k = luaL_checkinteger(L, idx);
        luaL_argcheck(L, k >= RINGLINE_FRAMER_LINE && k <= RINGLINE_FRAMER_HTTP_HEAD, idx,
                      "unknown framer");
        return (int)k;
    }
    return luaL_checkoption(L, idx, NULL, kind_names) + 1;
}

static size_t check_init(lua_State *L, int idx, size_t len)
{
    lua_Integer init = luaL_optinteger(L, idx, 1);
    luaL_argcheck(L, init >= 1 && (size_t)init <= len + 1, idx, "init out of range");
    return (size_t)init - 1;
}

static int f_frame(lua_State *L)
{
    int kind = rlua_check_framer(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    size_t start = check_init(L, 3, len);
    lua_Integer max = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, max >= 0, 4, "max_frame must be >= 0");
    size_t flen, poff, plen;
    int r = ringline_frame(kind, s + start, len - start, (size_t)max, &flen, &poff, &plen);
    if (r < 0)
        return rlua_fail(L, r);
    if (r == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    const char *f = s + start;
    lua_pushlstring(L, f + poff, plen);
    lua_pushinteger(L, (lua_Integer)flen);
    if (kind == RINGLINE_FRAMER_HTTP_HEAD) {
        /* after the head: the blank line ("\r\n" or "\n"), then the body */
        size_t b = poff + plen;
        if (b < flen && f[b] == '\r')
            b++;
        if (b < flen && f[b] == '\n')
            b++;
        lua_pushlstring(L, f + b, flen - b);
        return 3;
    }
    return 2;
}

static int f_resp_parse(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    size_t start = check_init(L, 2, len);
    int have_argv = lua_istable(L, 3);
    uint32_t offs_s[64], lens_s[64];
    uint32_t *offs = offs_s, *lens = lens_s;
    unsigned max = 64;
    size_t flen = 0;
    int n;
    for (;;) {
        n = ringline_resp_parse_command(s + start, len - start, offs, lens, max, &flen);
        if (n != -E2BIG || max >= (1u << 20))
            break;
        max *= 8; /* big MSET/MGET: retry with room for more arguments */
        offs = lua_newuserdatauv(L, 2 * (size_t)max * sizeof *offs, 0);
        lens = offs + max;
    }
    if (n < 0)
        return rlua_fail(L, n);
    if (n == 0 && flen == 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (have_argv) {
        lua_pushvalue(L, 3);
        lua_getfield(L, -1, "n");
        lua_Integer old = lua_tointeger(L, -1);
        lua_pop(L, 1);
        for (lua_Integer i = n + 1; i <= old; i++) {
            lua_pushnil(L);
            lua_rawseti(L, -2, i);
        }
    } else {
        lua_createtable(L, n, 1);
    }
    const char *base = s + start;
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, base + offs[i], lens[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, (lua_Integer)flen);
    return 2;
}

static const luaL_Reg funcs[] = {
    {"frame", f_frame},
    {"resp_parse", f_resp_parse},
    {NULL, NULL},
};

void rlua_open_frame(lua_State *L)
{
    luaL_setfuncs(L, funcs, 0);
}
