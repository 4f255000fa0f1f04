/*
 * storage.c — the high-level storage objects: an O_DIRECT file and an NVMe
 * namespace (generic char device /dev/ngXnY), each with its own small ring.
 *
 *   f = core.open_direct(path [, {create=, size=, readonly=, qd=, mode=}])
 *   f:read(off, len) -> string         f:write(off, data) -> bytes
 *   f:fsync([datasync]) -> true        f:size() / f:alignment() / f:close()
 *   f:read_batch(offsets, len [, buf]) -> {strings} | bytes
 *   f:write_batch(offsets, {strings})  | f:write_batch(offsets, len, buf)
 *
 *   d = core.nvme_open("/dev/ng0n1" [, {qd=}])
 *   d:identify() -> {lba_size=, nsze=, ncap=, nsid=, bytes=}
 *   d:read(lba, nblocks) -> string     d:write(lba, data) -> true
 *   d:flush() / d:write_zeroes(lba, nblocks) -> true
 *   d:read_batch(lbas, nblocks [, buf]) / d:write_batch(lbas, {strings})
 *
 * Every call blocks until its I/O is done (like pread): the whole
 * submit/refill/harvest loop runs in C (ringline_rw_run), one crossing of
 * the Lua boundary per call however many requests a batch holds, keeping up
 * to qd of them in flight. Memory handed to the kernel is the object's own
 * aligned bounce buffer or a ringline.buffer held on the Lua stack for the
 * whole call, so nothing can be collected under the kernel.
 *
 * Failures: nil, "ENAME: message", errno (misaligned offsets and lengths:
 * EINVAL with the alignment in the message); an NVMe status is not an
 * errno: nil, "NVME: <what> (sct 0xT sc 0xCC, status 0xSSSS)", nil, status.
 * Batches add the 1-based index of the first failed request as a fifth
 * value. A closed object raises.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/nvme_ioctl.h>

#include "rlua.h"

#define RLUA_DFILE "ringline.direct_file"
#define RLUA_NVDEV "ringline.nvme_device"
#define ST_MAX_BATCH (1u << 20)
#define ST_MAX_LEN (1u << 30)

typedef struct st_obj {
    ringline_ring_t *ring;
    int fd;
    int nvme;
    unsigned qd;
    uint32_t blk;       /* O_DIRECT offset/length alignment, or LBA size */
    uint32_t mem_align; /* buffer alignment */
    uint32_t nsid;
    uint64_t nsze, ncap;
    uint8_t *buf; /* bounce buffer, grown on demand */
    size_t cap;
    ringline_rw_req_t *reqs;
    int32_t *res;
    unsigned rcap;
} st_obj;

static st_obj *st_check(lua_State *L, int idx)
{
    st_obj *o = luaL_testudata(L, idx, RLUA_DFILE);
    if (!o)
        o = luaL_testudata(L, idx, RLUA_NVDEV);
    if (!o)
        luaL_typeerror(L, idx, "ringline direct file or nvme device");
    if (o->fd < 0)
        luaL_error(L, "attempt to use a closed %s",
                   o->nvme ? "nvme device" : "direct file");
    return o;
}

static void st_release(st_obj *o)
{
    /* the ring first: destroying it waits for anything still in flight,
     * which may point into buf */
    if (o->ring)
        ringline_ring_destroy(o->ring);
    o->ring = NULL;
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    ringline_aligned_free(o->buf);
    o->buf = NULL;
    o->cap = 0;
    free(o->reqs);
    free(o->res);
    o->reqs = NULL;
    o->res = NULL;
    o->rcap = 0;
}

static int st_gc(lua_State *L)
{
    st_obj *o = lua_touserdata(L, 1);
    st_release(o);
    return 0;
}

static int st_close(lua_State *L)
{
    st_obj *o = luaL_testudata(L, 1, RLUA_DFILE);
    if (!o)
        o = luaL_checkudata(L, 1, RLUA_NVDEV);
    st_release(o);
    return 0;
}

static int st_tostring(lua_State *L)
{
    st_obj *o = lua_touserdata(L, 1);
    if (o->fd < 0)
        lua_pushfstring(L, "%s (closed)", o->nvme ? RLUA_NVDEV : RLUA_DFILE);
    else
        lua_pushfstring(L, "%s (fd %d, %s %d)", o->nvme ? RLUA_NVDEV : RLUA_DFILE,
                        o->fd, o->nvme ? "lba" : "align", (int)o->blk);
    return 1;
}

/* 0 or -ENOMEM; no Lua errors (callers may hold state) */
static int st_need_buf(st_obj *o, size_t n)
{
    if (n <= o->cap)
        return 0;
    size_t c = o->cap ? o->cap : 65536;
    while (c < n)
        c *= 2;
    void *p = NULL;
    int ret = ringline_aligned_alloc(c, o->mem_align > 4096 ? o->mem_align : 4096, &p);
    if (ret < 0)
        return ret;
    ringline_aligned_free(o->buf);
    o->buf = p;
    o->cap = c;
    return 0;
}

static int st_need_reqs(st_obj *o, unsigned n)
{
    if (n <= o->rcap)
        return 0;
    unsigned c = o->rcap ? o->rcap : 64;
    while (c < n)
        c *= 2;
    ringline_rw_req_t *r = realloc(o->reqs, c * sizeof *r);
    if (!r)
        return -ENOMEM;
    o->reqs = r;
    int32_t *s = realloc(o->res, c * sizeof *s);
    if (!s)
        return -ENOMEM;
    o->res = s;
    o->rcap = c;
    return 0;
}

static const char *sc_generic(unsigned sc)
{
    switch (sc) {
    case 0x01: return "invalid command opcode";
    case 0x02: return "invalid field in command";
    case 0x04: return "data transfer error";
    case 0x06: return "internal error";
    case 0x07: return "command abort requested";
    case 0x0B: return "invalid namespace or format";
    case 0x80: return "LBA out of range";
    case 0x81: return "capacity exceeded";
    case 0x82: return "namespace not ready";
    default: return "generic command status";
    }
}

static const char *sc_media(unsigned sc)
{
    switch (sc) {
    case 0x80: return "write fault";
    case 0x81: return "unrecovered read error";
    case 0x86: return "access denied";
    case 0x87: return "deallocated or unwritten logical block";
    default: return "media or data integrity error";
    }
}

/* nil, message, errno|nil, status|nil [, index] */
static int st_fail_res(lua_State *L, int32_t res, int index)
{
    if (res < 0) {
        int e = -res;
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", ringline_err_name(e), ringline_strerror(e));
        lua_pushinteger(L, e);
        lua_pushnil(L);
    } else {
        unsigned sc = res & 0xFF, sct = (res >> 8) & 7;
        const char *what = sct == 0 ? sc_generic(sc)
                         : sct == 1 ? "command specific status"
                         : sct == 2 ? sc_media(sc)
                         : sct == 3 ? "path related status"
                                    : "vendor specific status";
        /* lua_pushfstring knows no %x */
        char msg[128];
        snprintf(msg, sizeof msg, "NVME: %s (sct 0x%x sc 0x%02x, status 0x%04x)", what,
                 sct, sc, (unsigned)res);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        lua_pushnil(L);
        lua_pushinteger(L, res);
    }
    if (index > 0) {
        lua_pushinteger(L, index);
        return 5;
    }
    return 4;
}

static int st_einval(lua_State *L, const char *what, lua_Integer v, unsigned blk)
{
    lua_pushnil(L);
    lua_pushfstring(L, "EINVAL: %s %I is not a multiple of %d (%s)", what, v, (int)blk,
                    "O_DIRECT alignment");
    lua_pushinteger(L, EINVAL);
    return 3;
}

/* Run o->reqs[0..n): 0 when every request succeeded, else pushes the
 * failure of the first failed one and returns the count pushed. */
static int st_run(lua_State *L, st_obj *o, unsigned n, int batch)
{
    int ret = ringline_rw_run(o->ring, o->reqs, n, o->qd, o->res);
    if (ret < 0) {
        if (ringline_ring_inflight(o->ring) > 0) {
            /* the ring gave up with I/O in flight: the object's memory may
             * still be written, so the object is finished (destroy waits) */
            int e = ret;
            st_release(o);
            return rlua_fail(L, e);
        }
        return rlua_fail(L, ret);
    }
    for (unsigned i = 0; i < n; i++)
        if (o->res[i] < 0 || (o->nvme && o->res[i] > 0))
            return st_fail_res(L, o->res[i], batch ? (int)i + 1 : 0);
    return 0;
}

static void st_req(st_obj *o, unsigned i, uint16_t op, uint64_t pos, void *p,
                   uint32_t len, uint32_t nlb)
{
    ringline_rw_req_t *q = &o->reqs[i];
    memset(q, 0, sizeof *q);
    q->op = op;
    q->fd = o->fd;
    q->offset = pos;
    q->buf = p;
    q->len = len;
    q->nlb = nlb;
    q->nsid = o->nsid;
}

static uint64_t st_pos(lua_State *L, int idx)
{
    lua_Integer v = luaL_checkinteger(L, idx);
    luaL_argcheck(L, v >= 0, idx, "must be >= 0");
    return (uint64_t)v;
}

/* ---- single operations ---- */

/* f:read(off, len) / d:read(lba, nblocks) */
static int st_read(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    uint64_t pos = st_pos(L, 2);
    lua_Integer cnt = luaL_checkinteger(L, 3);
    luaL_argcheck(L, cnt >= 0, 3, "must be >= 0");
    uint64_t len;
    uint32_t nlb = 0;
    if (o->nvme) {
        luaL_argcheck(L, cnt >= 1 && cnt <= 65536, 3, "nblocks must be 1..65536");
        nlb = (uint32_t)cnt;
        len = (uint64_t)nlb * o->blk;
    } else {
        if (pos % o->blk)
            return st_einval(L, "offset", (lua_Integer)pos, o->blk);
        if ((uint64_t)cnt % o->blk)
            return st_einval(L, "length", cnt, o->blk);
        len = (uint64_t)cnt;
    }
    luaL_argcheck(L, len <= ST_MAX_LEN, 3, "read too large (max 1 GiB)");
    if (len == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    int e = st_need_buf(o, len);
    if (!e)
        e = st_need_reqs(o, 1);
    if (e)
        return rlua_fail(L, e);
    st_req(o, 0, o->nvme ? RINGLINE_RW_NVME_READ : RINGLINE_RW_READ, pos, o->buf,
           (uint32_t)len, nlb);
    int k = st_run(L, o, 1, 0);
    if (k)
        return k;
    /* a file read may be short at end of file; NVMe reads are whole */
    lua_pushlstring(L, (const char *)o->buf, o->nvme ? len : (size_t)o->res[0]);
    return 1;
}

/* f:write(off, data) -> bytes / d:write(lba, data) -> true */
static int st_write(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    uint64_t pos = st_pos(L, 2);
    size_t len;
    const uint8_t *src = rlua_check_mem(L, 3, 0, &len, 1, 0);
    luaL_argcheck(L, len <= ST_MAX_LEN, 3, "write too large (max 1 GiB)");
    if (!o->nvme && pos % o->blk)
        return st_einval(L, "offset", (lua_Integer)pos, o->blk);
    if (len % o->blk)
        return st_einval(L, "length", (lua_Integer)len, o->blk);
    uint32_t nlb = o->nvme ? (uint32_t)(len / o->blk) : 0;
    if (o->nvme)
        luaL_argcheck(L, nlb >= 1 && nlb <= 65536, 3, "data must be 1..65536 blocks");
    if (len == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    int e = st_need_buf(o, len);
    if (!e)
        e = st_need_reqs(o, 1);
    if (e)
        return rlua_fail(L, e);
    memcpy(o->buf, src, len);
    st_req(o, 0, o->nvme ? RINGLINE_RW_NVME_WRITE : RINGLINE_RW_WRITE, pos, o->buf,
           (uint32_t)len, nlb);
    int k = st_run(L, o, 1, 0);
    if (k)
        return k;
    if (o->nvme)
        lua_pushboolean(L, 1);
    else
        lua_pushinteger(L, o->res[0]);
    return 1;
}

/* f:fsync([datasync]) / d:flush() */
static int st_sync(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    int e = st_need_reqs(o, 1);
    if (e)
        return rlua_fail(L, e);
    st_req(o, 0, o->nvme ? RINGLINE_RW_NVME_FLUSH : RINGLINE_RW_FSYNC, 0, NULL, 0, 0);
    if (!o->nvme && lua_toboolean(L, 2))
        o->reqs[0].flags = RINGLINE_FSYNC_DATASYNC;
    int k = st_run(L, o, 1, 0);
    if (k)
        return k;
    lua_pushboolean(L, 1);
    return 1;
}

/* d:write_zeroes(lba, nblocks) */
static int d_write_zeroes(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    uint64_t pos = st_pos(L, 2);
    lua_Integer cnt = luaL_checkinteger(L, 3);
    luaL_argcheck(L, cnt >= 1 && cnt <= 65536, 3, "nblocks must be 1..65536");
    int e = st_need_reqs(o, 1);
    if (e)
        return rlua_fail(L, e);
    st_req(o, 0, RINGLINE_RW_NVME_WRITE_ZEROES, pos, NULL, 0, (uint32_t)cnt);
    int k = st_run(L, o, 1, 0);
    if (k)
        return k;
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- batches ---- */

/* Common checks for a batch: the positions table at 2 and the per-request
 * count at 3 (bytes for files, blocks for NVMe). Returns the number of
 * positions, or -1 after pushing an EINVAL failure (3 values). */
static int st_batch_args(lua_State *L, st_obj *o, uint64_t *len, uint32_t *nlb)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    luaL_argcheck(L, n >= 0 && n <= ST_MAX_BATCH, 2, "1..1048576 positions");
    lua_Integer cnt = luaL_checkinteger(L, 3);
    if (o->nvme) {
        luaL_argcheck(L, cnt >= 1 && cnt <= 65536, 3, "nblocks must be 1..65536");
        *nlb = (uint32_t)cnt;
        *len = (uint64_t)cnt * o->blk;
    } else {
        luaL_argcheck(L, cnt >= 1, 3, "length must be >= 1");
        if ((uint64_t)cnt % o->blk) {
            st_einval(L, "length", cnt, o->blk);
            return -1;
        }
        *nlb = 0;
        *len = (uint64_t)cnt;
    }
    luaL_argcheck(L, *len * (uint64_t)(n ? n : 1) <= ST_MAX_LEN, 3,
                  "batch too large (max 1 GiB)");
    return (int)n;
}

/* Fill positions into o->reqs (after st_need_reqs). Returns 0, or the
 * number of values pushed for a misaligned offset. */
static int st_batch_fill(lua_State *L, st_obj *o, unsigned n, uint16_t op,
                         uint8_t *base, uint64_t len, uint32_t nlb)
{
    for (unsigned i = 0; i < n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i + 1);
        int isnum;
        lua_Integer v = lua_tointegerx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum || v < 0)
            return luaL_error(L, "bad position #%d (a non-negative integer expected)",
                              (int)i + 1);
        if (!o->nvme && (uint64_t)v % o->blk)
            return st_einval(L, "offset", v, o->blk);
        st_req(o, i, op, (uint64_t)v, base + (size_t)i * len, (uint32_t)len, nlb);
    }
    return 0;
}

/* The caller's buffer at argument 4 for a batch of `need` bytes: live,
 * big enough and aligned for O_DIRECT, else an argument error. */
static uint8_t *st_batch_buffer(lua_State *L, st_obj *o, uint64_t need)
{
    rlua_buffer *b = rlua_check_buffer(L, 4);
    luaL_argcheck(L, b->p, 4, "buffer is freed");
    luaL_argcheck(L, need <= b->size, 4, "buffer too small for the batch");
    luaL_argcheck(L, ((uintptr_t)b->p % o->mem_align) == 0, 4,
                  "buffer not aligned for O_DIRECT");
    return b->p;
}

/* Reserve n requests, fill them from the positions table and run them at
 * the object's depth. Returns 0, or the number of values pushed for a
 * failure. */
static int st_batch_exec(lua_State *L, st_obj *o, unsigned n, uint16_t op,
                         uint8_t *base, uint64_t len, uint32_t nlb)
{
    int e = st_need_reqs(o, n);
    if (e)
        return rlua_fail(L, e);
    int k = st_batch_fill(L, o, n, op, base, len, nlb);
    return k ? k : st_run(L, o, n, 1);
}

/* x:read_batch(positions, count [, buf]) -> {strings} | bytes */
static int st_read_batch(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    uint64_t len;
    uint32_t nlb;
    int n = st_batch_args(L, o, &len, &nlb);
    if (n < 0)
        return 3;
    uint8_t *base;
    int into = !lua_isnoneornil(L, 4);
    if (into) {
        base = st_batch_buffer(L, o, len * (uint64_t)n);
    } else {
        int e = st_need_buf(o, len * (uint64_t)n);
        if (e)
            return rlua_fail(L, e);
        base = o->buf;
    }
    int k = st_batch_exec(L, o, (unsigned)n,
                          o->nvme ? RINGLINE_RW_NVME_READ : RINGLINE_RW_READ, base, len, nlb);
    if (k)
        return k;
    if (into) {
        uint64_t total = 0;
        for (int i = 0; i < n; i++)
            total += o->nvme ? len : (uint64_t)o->res[i];
        lua_pushinteger(L, (lua_Integer)total);
        return 1;
    }
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushlstring(L, (const char *)base + (size_t)i * len,
                        o->nvme ? len : (size_t)o->res[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* x:write_batch(positions, {strings}) | x:write_batch(positions, count, buf)
 * -> true */
static int st_write_batch(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    uint64_t len;
    uint32_t nlb;
    int n;
    uint8_t *base;
    if (lua_type(L, 3) == LUA_TTABLE) {
        luaL_checktype(L, 2, LUA_TTABLE);
        n = (int)luaL_len(L, 2);
        luaL_argcheck(L, n >= 0 && (unsigned)n <= ST_MAX_BATCH, 2, "1..1048576 positions");
        luaL_argcheck(L, luaL_len(L, 3) == n, 3, "as many strings as positions expected");
        /* every piece the same length, so one stride serves the batch */
        len = 0;
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, 3, i + 1);
            size_t l;
            if (!lua_isstring(L, -1))
                return luaL_error(L, "bad data #%d (a string expected)", i + 1);
            lua_tolstring(L, -1, &l);
            lua_pop(L, 1);
            if (i == 0)
                len = l;
            else
                luaL_argcheck(L, l == len, 3, "all strings must have the same length");
        }
        if (n == 0) {
            lua_pushboolean(L, 1);
            return 1;
        }
        if (len == 0 || len % o->blk)
            return st_einval(L, "length", (lua_Integer)len, o->blk);
        luaL_argcheck(L, len * (uint64_t)n <= ST_MAX_LEN, 3, "batch too large (max 1 GiB)");
        nlb = o->nvme ? (uint32_t)(len / o->blk) : 0;
        luaL_argcheck(L, !o->nvme || nlb <= 65536, 3, "data must be 1..65536 blocks");
        int e = st_need_buf(o, len * (uint64_t)n);
        if (e)
            return rlua_fail(L, e);
        base = o->buf;
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, 3, i + 1);
            memcpy(base + (size_t)i * len, lua_tostring(L, -1), len);
            lua_pop(L, 1);
        }
    } else {
        n = st_batch_args(L, o, &len, &nlb);
        if (n < 0)
            return 3;
        base = st_batch_buffer(L, o, len * (uint64_t)n);
    }
    int k = st_batch_exec(L, o, (unsigned)n,
                          o->nvme ? RINGLINE_RW_NVME_WRITE : RINGLINE_RW_WRITE, base, len, nlb);
    if (k)
        return k;
    for (int i = 0; !o->nvme && i < n; i++)
        if ((uint64_t)o->res[i] != len) {
            lua_pushnil(L);
            lua_pushfstring(L, "EIO: short write (%d of %d bytes)", (int)o->res[i], (int)len);
            lua_pushinteger(L, EIO);
            lua_pushnil(L);
            lua_pushinteger(L, i + 1);
            return 5;
        }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- file-only and device-only queries ---- */

static int f_size(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    struct stat st;
    if (fstat(o->fd, &st) < 0)
        return rlua_fail(L, errno);
    lua_pushinteger(L, (lua_Integer)st.st_size);
    return 1;
}

static int st_alignment(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    lua_pushinteger(L, o->mem_align);
    lua_pushinteger(L, o->blk);
    return 2;
}

static int st_fileno(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    lua_pushinteger(L, o->fd);
    return 1;
}

static int d_identify(lua_State *L)
{
    st_obj *o = st_check(L, 1);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, o->blk);
    lua_setfield(L, -2, "lba_size");
    lua_pushinteger(L, (lua_Integer)o->nsze);
    lua_setfield(L, -2, "nsze");
    lua_pushinteger(L, (lua_Integer)o->ncap);
    lua_setfield(L, -2, "ncap");
    lua_pushinteger(L, o->nsid);
    lua_setfield(L, -2, "nsid");
    lua_pushinteger(L, (lua_Integer)(o->nsze * o->blk));
    lua_setfield(L, -2, "bytes");
    return 1;
}

/* ---- constructors ---- */

static unsigned opt_qd(lua_State *L, int idx)
{
    if (!lua_istable(L, idx))
        return 32;
    lua_getfield(L, idx, "qd");
    lua_Integer qd = luaL_optinteger(L, -1, 32);
    lua_pop(L, 1);
    luaL_argcheck(L, qd >= 1 && qd <= 4096, idx, "qd must be 1..4096");
    return (unsigned)qd;
}

static int opt_bool(lua_State *L, int idx, const char *k)
{
    if (!lua_istable(L, idx))
        return 0;
    lua_getfield(L, idx, k);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static st_obj *st_new(lua_State *L, const char *mt, int nvme)
{
    st_obj *o = lua_newuserdatauv(L, sizeof *o, 0);
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->nvme = nvme;
    luaL_setmetatable(L, mt);
    return o;
}

static int st_ring(st_obj *o, int big)
{
    ringline_config_t *cfg = NULL;
    int ret = ringline_config_new(&cfg);
    if (ret < 0)
        return ret;
    ret = ringline_config_set_sq_entries(cfg, o->qd);
    if (ret >= 0)
        ret = ringline_config_set_cq_entries(cfg, o->qd * 2);
    if (ret >= 0 && big)
        ret = ringline_config_set_big(cfg, 1);
    if (ret >= 0)
        ret = ringline_ring_new(cfg, &o->ring);
    ringline_config_free(cfg);
    return ret < 0 ? ret : 0;
}

/* core.open_direct(path [, opts]) */
static int m_open_direct(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    unsigned qd = opt_qd(L, 2);
    int create = opt_bool(L, 2, "create"), ro = opt_bool(L, 2, "readonly");
    lua_Integer size = -1, mode = 0644;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "size");
        size = luaL_optinteger(L, -1, -1);
        lua_getfield(L, 2, "mode");
        mode = luaL_optinteger(L, -1, 0644);
        lua_pop(L, 2);
        luaL_argcheck(L, size >= -1, 2, "size must be >= 0");
        luaL_argcheck(L, !(ro && (create || size >= 0)), 2,
                      "readonly excludes create and size");
    }
    st_obj *o = st_new(L, RLUA_DFILE, 0);
    o->qd = qd;
    int flags = O_DIRECT | O_CLOEXEC | (ro ? O_RDONLY : O_RDWR) | (create ? O_CREAT : 0);
    o->fd = open(path, flags, (mode_t)mode);
    if (o->fd < 0)
        return rlua_fail(L, errno);
    unsigned mem = 0, off = 0;
    int ret = ringline_dio_alignment(o->fd, &mem, &off);
    if (ret < 0)
        goto fail;
    o->mem_align = mem ? mem : 512;
    o->blk = off ? off : 512;
    if (size >= 0) {
        struct stat st;
        if (fstat(o->fd, &st) < 0) {
            ret = -errno;
            goto fail;
        }
        /* grow only: `size` is "at least this big", never a truncation of
         * data a previous run wrote */
        if (st.st_size < size && ftruncate(o->fd, (off_t)size) < 0) {
            ret = -errno;
            goto fail;
        }
    }
    ret = st_ring(o, 0);
    if (ret < 0)
        goto fail;
    return 1;
fail:
    st_release(o);
    return rlua_fail(L, ret);
}

/* core.nvme_open(path [, opts]): the namespace's generic char device */
static int m_nvme_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    unsigned qd = opt_qd(L, 2);
    st_obj *o = st_new(L, RLUA_NVDEV, 1);
    o->qd = qd;
    o->mem_align = 4096;
    int ret;
    o->fd = open(path, O_RDWR | O_CLOEXEC);
    if (o->fd < 0)
        return rlua_fail(L, errno);
    /* the nsid the driver insists on (any other is refused with EINVAL) */
    int id = ioctl(o->fd, NVME_IOCTL_ID);
    if (id < 0) {
        ret = errno == ENOTTY ? -ENODEV : -errno;
        goto fail;
    }
    o->nsid = (uint32_t)id;
    /* Identify Namespace through the admin ioctl, which the namespace's
     * char device accepts (IORING admin commands only go to /dev/nvmeX) */
    ret = st_need_buf(o, 4096);
    if (ret < 0)
        goto fail;
    memset(o->buf, 0, 4096);
    struct nvme_admin_cmd c;
    memset(&c, 0, sizeof c);
    c.opcode = RINGLINE_NVME_ADMIN_IDENTIFY;
    c.nsid = o->nsid;
    c.addr = (uint64_t)(uintptr_t)o->buf;
    c.data_len = 4096;
    c.cdw10 = RINGLINE_NVME_CNS_NAMESPACE;
    int st = ioctl(o->fd, NVME_IOCTL_ADMIN_CMD, &c);
    if (st < 0) {
        ret = -errno;
        goto fail;
    }
    if (st > 0) {
        /* an NVMe status, not an errno */
        int32_t s = st;
        st_release(o);
        return st_fail_res(L, s, 0);
    }
    ret = ringline_nvme_ns_geometry(o->buf, &o->blk, &o->nsze, &o->ncap);
    if (ret < 0)
        goto fail;
    ret = st_ring(o, 1);
    if (ret < 0)
        goto fail;
    return 1;
fail:
    st_release(o);
    return rlua_fail(L, ret);
}

static const luaL_Reg file_methods[] = {
    {"read", st_read},
    {"write", st_write},
    {"fsync", st_sync},
    {"read_batch", st_read_batch},
    {"write_batch", st_write_batch},
    {"size", f_size},
    {"alignment", st_alignment},
    {"fileno", st_fileno},
    {"close", st_close},
    {NULL, NULL},
};

static const luaL_Reg dev_methods[] = {
    {"identify", d_identify},
    {"read", st_read},
    {"write", st_write},
    {"flush", st_sync},
    {"write_zeroes", d_write_zeroes},
    {"read_batch", st_read_batch},
    {"write_batch", st_write_batch},
    {"fileno", st_fileno},
    {"close", st_close},
    {NULL, NULL},
};

static const luaL_Reg meta[] = {
    {"__gc", st_gc},
    {"__close", st_gc},
    {"__tostring", st_tostring},
    {NULL, NULL},
};

void rlua_open_storage(lua_State *L)
{
    rlua_class(L, RLUA_DFILE, file_methods, meta);
    rlua_class(L, RLUA_NVDEV, dev_methods, meta);
    lua_pushcfunction(L, m_open_direct);
    lua_setfield(L, -2, "open_direct");
    lua_pushcfunction(L, m_nvme_open);
    lua_setfield(L, -2, "nvme_open");
}
