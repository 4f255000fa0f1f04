/*
 * nvme.c — NVMe passthrough command records (ringline_nvme_cmd_t) built by
 * the C builders, with their data buffer kept as the record's uservalue so
 * ring:nvme() can pin it until the completion.
 *
 *   cmd = core.nvme_read(nsid, slba, nlb, buf [, data_len])
 *   cmd = core.nvme_write(nsid, slba, nlb, buf [, data_len])
 *   cmd = core.nvme_flush(nsid)
 *   cmd = core.nvme_write_zeroes(nsid, slba, nlb)
 *   cmd = core.nvme_identify(nsid, cns, buf)       -- buf >= 4096 bytes
 *   cmd = core.nvme_cmd{opcode=, nsid=, cdw10=, ..., buf=}   -- raw
 * Fields read and write as cmd.opcode, cmd.nsid, cmd.cdw10 ... cmd.cdw15,
 * cmd.data_len, cmd.timeout_ms, cmd.flags, cmd.cdw2, cmd.cdw3 (cmd.addr is
 * read-only: it follows the buffer).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rlua.h"

static rlua_nvme *cmd_push(lua_State *L, int buf_idx)
{
    rlua_nvme *c = lua_newuserdatauv(L, sizeof *c, 1);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, RLUA_NVME);
    if (buf_idx) {
        lua_pushvalue(L, buf_idx);
        lua_setiuservalue(L, -2, 1);
    }
    return c;
}

static uint32_t check_u32(lua_State *L, int idx)
{
    lua_Integer v = luaL_checkinteger(L, idx);
    luaL_argcheck(L, v >= 0 && v <= UINT32_MAX, idx, "value out of range (u32)");
    return (uint32_t)v;
}

static int n_rw(lua_State *L, int wr)
{
    uint32_t nsid = check_u32(L, 1);
    uint64_t slba = (uint64_t)luaL_checkinteger(L, 2);
    uint32_t nlb = check_u32(L, 3);
    rlua_buffer *b = rlua_check_buffer(L, 4);
    lua_Integer dl = luaL_optinteger(L, 5, (lua_Integer)b->size);
    luaL_argcheck(L, dl >= 0 && (size_t)dl <= b->size && dl <= UINT32_MAX, 5,
                  "data_len out of range");
    rlua_nvme *c = cmd_push(L, 4);
    int ret = wr ? ringline_nvme_cmd_write(&c->cmd, nsid, slba, nlb, b->p, (uint32_t)dl)
                 : ringline_nvme_cmd_read(&c->cmd, nsid, slba, nlb, b->p, (uint32_t)dl);
    if (ret < 0)
        return rlua_fail(L, ret);
    return 1;
}
static int n_read(lua_State *L) { return n_rw(L, 0); }
static int n_write(lua_State *L) { return n_rw(L, 1); }

static int n_flush(lua_State *L)
{
    uint32_t nsid = check_u32(L, 1);
    rlua_nvme *c = cmd_push(L, 0);
    int ret = ringline_nvme_cmd_flush(&c->cmd, nsid);
    return ret < 0 ? rlua_fail(L, ret) : 1;
}

static int n_write_zeroes(lua_State *L)
{
    uint32_t nsid = check_u32(L, 1);
    uint64_t slba = (uint64_t)luaL_checkinteger(L, 2);
    uint32_t nlb = check_u32(L, 3);
    rlua_nvme *c = cmd_push(L, 0);
    int ret = ringline_nvme_cmd_write_zeroes(&c->cmd, nsid, slba, nlb);
    return ret < 0 ? rlua_fail(L, ret) : 1;
}

static int n_identify(lua_State *L)
{
    uint32_t nsid = check_u32(L, 1);
    uint32_t cns = check_u32(L, 2);
    rlua_buffer *b = rlua_check_buffer(L, 3);
    luaL_argcheck(L, b->size >= 4096, 3, "identify needs a 4096-byte buffer");
    rlua_nvme *c = cmd_push(L, 3);
    int ret = ringline_nvme_cmd_identify(&c->cmd, nsid, cns, b->p);
    return ret < 0 ? rlua_fail(L, ret) : 1;
}

/* field table: name, offset, size */
#define F(name) {#name, offsetof(ringline_nvme_cmd_t, name), sizeof(((ringline_nvme_cmd_t *)0)->name)}
static const struct {
    const char *name;
    size_t off, size;
} fields[] = {
    F(opcode), F(flags), F(nsid), F(cdw2), F(cdw3), F(metadata), F(addr),
    F(metadata_len), F(data_len), F(cdw10), F(cdw11), F(cdw12), F(cdw13),
    F(cdw14), F(cdw15), F(timeout_ms),
};
#undef F

static int field_index(const char *k)
{
    for (unsigned i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(fields[i].name, k) == 0)
            return (int)i;
    return -1;
}

static lua_Integer field_get(const rlua_nvme *c, int i)
{
    const uint8_t *p = (const uint8_t *)&c->cmd + fields[i].off;
    switch (fields[i].size) {
    case 1: return *p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return (lua_Integer)v; }
    }
}

static void field_set(lua_State *L, rlua_nvme *c, int i, lua_Integer v, int argi)
{
    uint8_t *p = (uint8_t *)&c->cmd + fields[i].off;
    switch (fields[i].size) {
    case 1:
        luaL_argcheck(L, v >= 0 && v <= 0xFF, argi, "value out of range (u8)");
        *p = (uint8_t)v;
        break;
    case 2: {
        luaL_argcheck(L, v >= 0 && v <= 0xFFFF, argi, "value out of range (u16)");
        uint16_t x = (uint16_t)v;
        memcpy(p, &x, 2);
        break;
    }
    case 4: {
        luaL_argcheck(L, v >= 0 && v <= UINT32_MAX, argi, "value out of range (u32)");
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, 4);
        break;
    }
    default: {
        uint64_t x = (uint64_t)v;
        memcpy(p, &x, 8);
        break;
    }
    }
}

/* core.nvme_cmd{opcode=..., buf=buffer, ...}: a raw command; addr and
 * data_len follow buf (data_len may be given smaller). */
static int n_cmd(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "buf");
    int has_buf = !lua_isnil(L, -1);
    rlua_buffer *b = has_buf ? rlua_check_buffer(L, -1) : NULL;
    int bi = lua_gettop(L);
    rlua_nvme *c = cmd_push(L, has_buf ? bi : 0);
    for (unsigned i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(fields[i].name, "addr") == 0)
            continue;
        lua_getfield(L, 1, fields[i].name);
        if (!lua_isnil(L, -1)) {
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok)
                return luaL_error(L, "nvme_cmd: field '%s' must be an integer", fields[i].name);
            field_set(L, c, (int)i, v, 1);
        }
        lua_pop(L, 1);
    }
    if (b) {
        c->cmd.addr = (uint64_t)(uintptr_t)b->p;
        if (!c->cmd.data_len || c->cmd.data_len > b->size)
            c->cmd.data_len = (uint32_t)(b->size > UINT32_MAX ? UINT32_MAX : b->size);
    }
    return 1;
}

static int n_index(lua_State *L)
{
    rlua_nvme *c = luaL_checkudata(L, 1, RLUA_NVME);
    const char *k = luaL_checkstring(L, 2);
    int i = field_index(k);
    if (i >= 0) {
        lua_pushinteger(L, field_get(c, i));
        return 1;
    }
    if (strcmp(k, "buffer") == 0) {
        lua_getiuservalue(L, 1, 1);
        return 1;
    }
    if (strcmp(k, "bytes") == 0) { /* the 72-byte record, for inspection */
        lua_pushlstring(L, (const char *)&c->cmd, sizeof c->cmd);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

static int n_newindex(lua_State *L)
{
    rlua_nvme *c = luaL_checkudata(L, 1, RLUA_NVME);
    const char *k = luaL_checkstring(L, 2);
    int i = field_index(k);
    if (i < 0 || strcmp(k, "addr") == 0)
        return luaL_error(L, "nvme command has no writable field '%s'", k);
    field_set(L, c, i, luaL_checkinteger(L, 3), 3);
    return 0;
}

static int n_tostring(lua_State *L)
{
    rlua_nvme *c = luaL_checkudata(L, 1, RLUA_NVME);
    char buf[96];
    snprintf(buf, sizeof buf, "ringline.nvme_cmd: opcode 0x%02x nsid %u len %u",
             (unsigned)c->cmd.opcode, (unsigned)c->cmd.nsid, (unsigned)c->cmd.data_len);
    lua_pushstring(L, buf);
    return 1;
}

static int n_noop(lua_State *L) { (void)L; return 0; }

/* core.nvme_ns_geometry(page) -> lba_size, nsze, ncap: page is the 4096
 * bytes of an Identify Namespace (a buffer or a string). */
static int n_ns_geometry(lua_State *L)
{
    size_t len;
    const uint8_t *p = rlua_check_mem(L, 1, 0, &len, 1, 0);
    luaL_argcheck(L, len >= 4096, 1, "an Identify Namespace page is 4096 bytes");
    uint32_t lba = 0;
    uint64_t nsze = 0, ncap = 0;
    int ret = ringline_nvme_ns_geometry(p, &lba, &nsze, &ncap);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, lba);
    lua_pushinteger(L, (lua_Integer)nsze);
    lua_pushinteger(L, (lua_Integer)ncap);
    return 3;
}

static const luaL_Reg funcs[] = {
    {"nvme_ns_geometry", n_ns_geometry},
    {"nvme_read", n_read},
    {"nvme_write", n_write},
    {"nvme_flush", n_flush},
    {"nvme_write_zeroes", n_write_zeroes},
    {"nvme_identify", n_identify},
    {"nvme_cmd", n_cmd},
    {NULL, NULL},
};

void rlua_open_nvme(lua_State *L)
{
    luaL_newmetatable(L, RLUA_NVME);
    lua_pushcfunction(L, n_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, n_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, n_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, n_noop); /* plain memory: nothing to free */
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, n_noop);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
}
