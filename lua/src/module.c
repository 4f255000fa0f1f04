/*
 * module.c — luaopen_ringline_core: the C module behind require "ringline".
 *
 * Module-level functions: version, errors, time, constants, pinning, the
 * O_DIRECT alignment query and a few descriptor utilities (socketpair, pipe,
 * close) that the ring layer's own tests and scripts need to get file
 * descriptors for raw operations (the C ABI has no socket-creating call).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rlua.h"

/* ---- shared helpers ---- */

int rlua_fail(lua_State *L, int err)
{
    if (err < 0)
        err = -err;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", ringline_err_name(err), ringline_strerror(err));
    lua_pushinteger(L, err);
    return 3;
}

int rlua_int(lua_State *L, int ret)
{
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, ret);
    return 1;
}

int rlua_ok(lua_State *L, int ret)
{
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushboolean(L, 1);
    return 1;
}

static int rlua_tostring_generic(lua_State *L)
{
    const char *name = luaL_typename(L, 1);
    if (luaL_getmetafield(L, 1, "__name") == LUA_TSTRING)
        name = lua_tostring(L, -1);
    lua_pushfstring(L, "%s: %p", name, lua_topointer(L, 1));
    return 1;
}

void rlua_class(lua_State *L, const char *name, const luaL_Reg *methods,
                const luaL_Reg *meta)
{
    luaL_newmetatable(L, name);
    if (meta)
        luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    if (methods)
        luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_getfield(L, -1, "__tostring");
    if (lua_isnil(L, -1)) {
        lua_pushcfunction(L, rlua_tostring_generic);
        lua_setfield(L, -3, "__tostring");
    }
    lua_pop(L, 1);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

uint64_t rlua_check_seconds(lua_State *L, int idx)
{
    lua_Number s = luaL_checknumber(L, idx);
    luaL_argcheck(L, s >= 0 && s < 1e10, idx, "seconds must be >= 0");
    return (uint64_t)(s * 1e9 + 0.5);
}

int64_t rlua_opt_timeout(lua_State *L, int idx, int64_t def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    lua_Number s = luaL_checknumber(L, idx);
    if (s < 0)
        return -1;
    luaL_argcheck(L, s < 1e10, idx, "timeout too large");
    return (int64_t)(s * 1e9 + 0.5);
}

int rlua_sockaddr(const char *host, unsigned port, struct sockaddr_storage *ss,
                  socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (port > 65535)
        return -EINVAL;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -EINVAL;
}

int rlua_push_sockaddr(lua_State *L, const struct sockaddr *sa, socklen_t len)
{
    char buf[INET6_ADDRSTRLEN];
    if (sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        lua_pushstring(L, buf);
        lua_pushinteger(L, ntohs(a->sin_port));
        return 2;
    }
    if (sa && sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        lua_pushstring(L, buf);
        lua_pushinteger(L, ntohs(a->sin6_port));
        return 2;
    }
    lua_pushnil(L);
    lua_pushnil(L);
    return 2;
}

/* ---- module functions ---- */

static int m_version(lua_State *L)
{
    lua_pushstring(L, ringline_version_string());
    lua_pushinteger(L, ringline_version());
    return 2;
}

static int m_strerror(lua_State *L)
{
    lua_pushstring(L, ringline_strerror((int)luaL_checkinteger(L, 1)));
    return 1;
}

static int m_err_name(lua_State *L)
{
    lua_pushstring(L, ringline_err_name((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* The error string the triple carries, for an errno. */
static int m_errstr(lua_State *L)
{
    int e = (int)luaL_checkinteger(L, 1);
    if (e < 0)
        e = -e;
    lua_pushfstring(L, "%s: %s", ringline_err_name(e), ringline_strerror(e));
    return 1;
}

static int m_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)ringline_now_ns() / 1e9);
    return 1;
}

static int m_now_ns(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)ringline_now_ns());
    return 1;
}

static int m_thread_pin(lua_State *L)
{
    return rlua_ok(L, ringline_thread_pin((int)luaL_checkinteger(L, 1)));
}

static int m_fixed(lua_State *L)
{
    lua_Integer slot = luaL_checkinteger(L, 1);
    luaL_argcheck(L, slot >= 0 && slot < RINGLINE_FIXED_BIT, 1, "slot out of range");
    lua_pushinteger(L, RINGLINE_FIXED(slot));
    return 1;
}

static int m_feature_name(lua_State *L)
{
    lua_Integer bit = luaL_checkinteger(L, 1);
    const char *n = ringline_feature_name((uint64_t)bit);
    if (n)
        lua_pushstring(L, n);
    else
        lua_pushnil(L);
    return 1;
}

static int m_dio_alignment(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 1);
    unsigned mem = 0, off = 0;
    int ret = ringline_dio_alignment(fd, &mem, &off);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, mem);
    lua_pushinteger(L, off);
    return 2;
}

/* Descriptor utilities: the ring layer takes descriptors, and the C ABI
 * has no call that creates sockets or pipes. */
static int m_socketpair(lua_State *L)
{
    static const char *const kinds[] = {"stream", "dgram", "seqpacket", NULL};
    static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    int k = luaL_checkoption(L, 1, "stream", kinds);
    int sv[2];
    if (socketpair(AF_UNIX, types[k] | SOCK_CLOEXEC, 0, sv) < 0)
        return rlua_fail(L, errno);
    lua_pushinteger(L, sv[0]);
    lua_pushinteger(L, sv[1]);
    return 2;
}

static int m_pipe(lua_State *L)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return rlua_fail(L, errno);
    lua_pushinteger(L, p[0]);
    lua_pushinteger(L, p[1]);
    return 2;
}

static int m_close_fd(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);
    luaL_argcheck(L, fd >= 0 && fd < RINGLINE_FIXED_BIT, 1, "not a plain descriptor");
    if (close((int)fd) < 0)
        return rlua_fail(L, errno);
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"version", m_version},
    {"strerror", m_strerror},
    {"err_name", m_err_name},
    {"errstr", m_errstr},
    {"now", m_now},
    {"now_ns", m_now_ns},
    {"thread_pin", m_thread_pin},
    {"FIXED", m_fixed},
    {"feature_name", m_feature_name},
    {"dio_alignment", m_dio_alignment},
    {"socketpair", m_socketpair},
    {"pipe", m_pipe},
    {"close_fd", m_close_fd},
    {NULL, NULL},
};

#define C(name, value)                                                         \
    do {                                                                       \
        lua_pushinteger(L, (lua_Integer)(value));                              \
        lua_setfield(L, -2, name);                                             \
    } while (0)

static void constants(lua_State *L)
{
    /* completion flags */
    C("CQE_F_BUFFER", RINGLINE_CQE_F_BUFFER);
    C("CQE_F_MORE", RINGLINE_CQE_F_MORE);
    C("CQE_F_SOCK_NONEMPTY", RINGLINE_CQE_F_SOCK_NONEMPTY);
    C("CQE_F_NOTIF", RINGLINE_CQE_F_NOTIF);
    C("CQE_F_BUF_MORE", RINGLINE_CQE_F_BUF_MORE);
    /* tokens */
    C("TOKEN_WAKE", RINGLINE_TOKEN_WAKE);
    C("TOKEN_MSG_TAG", RINGLINE_TOKEN_MSG_TAG);
    C("FIXED_BIT", RINGLINE_FIXED_BIT);
    C("FILE_ALLOC", RINGLINE_FILE_ALLOC);
    C("NO_SLOT", RINGLINE_NO_SLOT);
    /* sqe flags */
    C("SQE_IO_DRAIN", RINGLINE_SQE_IO_DRAIN);
    C("SQE_IO_LINK", RINGLINE_SQE_IO_LINK);
    C("SQE_IO_HARDLINK", RINGLINE_SQE_IO_HARDLINK);
    C("SQE_ASYNC", RINGLINE_SQE_ASYNC);
    /* accept */
    C("ACCEPT_MULTISHOT", RINGLINE_ACCEPT_MULTISHOT);
    C("ACCEPT_DIRECT", RINGLINE_ACCEPT_DIRECT);
    C("SOCK_NONBLOCK", SOCK_NONBLOCK);
    C("SOCK_CLOEXEC", SOCK_CLOEXEC);
    /* timeouts / cancel / fsync */
    C("TIMEOUT_ABS", RINGLINE_TIMEOUT_ABS);
    C("TIMEOUT_REALTIME", RINGLINE_TIMEOUT_REALTIME);
    C("TIMEOUT_BOOTTIME", RINGLINE_TIMEOUT_BOOTTIME);
    C("TIMEOUT_MULTISHOT", RINGLINE_TIMEOUT_MULTISHOT);
    C("TIMEOUT_ETIME_SUCCESS", RINGLINE_TIMEOUT_ETIME_SUCCESS);
    C("CANCEL_ALL", RINGLINE_CANCEL_ALL);
    C("CANCEL_ANY", RINGLINE_CANCEL_ANY);
    C("FSYNC_DATASYNC", RINGLINE_FSYNC_DATASYNC);
    /* storage batches */
    C("RW_READ", RINGLINE_RW_READ);
    C("RW_WRITE", RINGLINE_RW_WRITE);
    C("RW_READ_FIXED", RINGLINE_RW_READ_FIXED);
    C("RW_WRITE_FIXED", RINGLINE_RW_WRITE_FIXED);
    C("RW_FSYNC", RINGLINE_RW_FSYNC);
    C("RW_NVME_READ", RINGLINE_RW_NVME_READ);
    C("RW_NVME_WRITE", RINGLINE_RW_NVME_WRITE);
    C("RW_NVME_FLUSH", RINGLINE_RW_NVME_FLUSH);
    C("RW_NVME_WRITE_ZEROES", RINGLINE_RW_NVME_WRITE_ZEROES);
    /* open flags commonly needed with openat */
    C("O_RDONLY", O_RDONLY);
    C("O_WRONLY", O_WRONLY);
    C("O_RDWR", O_RDWR);
    C("O_CREAT", O_CREAT);
    C("O_TRUNC", O_TRUNC);
    C("O_APPEND", O_APPEND);
    C("O_EXCL", O_EXCL);
    C("O_DIRECT", O_DIRECT);
    C("O_CLOEXEC", O_CLOEXEC);
    C("O_NONBLOCK", O_NONBLOCK);
    C("AT_FDCWD", AT_FDCWD);
    /* poll */
    C("POLLIN", 0x001);
    C("POLLPRI", 0x002);
    C("POLLOUT", 0x004);
    C("POLLERR", 0x008);
    C("POLLHUP", 0x010);
    C("POLLRDHUP", 0x2000);
    /* shutdown */
    C("SHUT_RD", SHUT_RD);
    C("SHUT_WR", SHUT_WR);
    C("SHUT_RDWR", SHUT_RDWR);
    /* msg flags */
    C("MSG_WAITALL", MSG_WAITALL);
    C("MSG_DONTWAIT", MSG_DONTWAIT);
    C("MSG_NOSIGNAL", MSG_NOSIGNAL);
    C("MSG_PEEK", MSG_PEEK);
    C("MSG_MORE", MSG_MORE);
    /* nvme */
    C("NVME_URING_CMD_IO", RINGLINE_NVME_URING_CMD_IO);
    C("NVME_URING_CMD_ADMIN", RINGLINE_NVME_URING_CMD_ADMIN);
    C("NVME_OP_FLUSH", RINGLINE_NVME_OP_FLUSH);
    C("NVME_OP_WRITE", RINGLINE_NVME_OP_WRITE);
    C("NVME_OP_READ", RINGLINE_NVME_OP_READ);
    C("NVME_OP_WRITE_ZEROES", RINGLINE_NVME_OP_WRITE_ZEROES);
    C("NVME_ADMIN_IDENTIFY", RINGLINE_NVME_ADMIN_IDENTIFY);
    C("NVME_CNS_NAMESPACE", RINGLINE_NVME_CNS_NAMESPACE);
    C("NVME_CNS_CONTROLLER", RINGLINE_NVME_CNS_CONTROLLER);
    /* framers */
    C("FRAMER_LINE", RINGLINE_FRAMER_LINE);
    C("FRAMER_U16BE", RINGLINE_FRAMER_U16BE);
    C("FRAMER_U32BE", RINGLINE_FRAMER_U32BE);
    C("FRAMER_RESP", RINGLINE_FRAMER_RESP);
    C("FRAMER_HTTP_HEAD", RINGLINE_FRAMER_HTTP_HEAD);
    /* loop: events and modes */
    C("EV_ACCEPTED", RINGLINE_EV_ACCEPTED);
    C("EV_CONNECTED", RINGLINE_EV_CONNECTED);
    C("EV_DATA", RINGLINE_EV_DATA);
    C("EV_FRAME", RINGLINE_EV_FRAME);
    C("EV_EOF", RINGLINE_EV_EOF);
    C("EV_SENT", RINGLINE_EV_SENT);
    C("EV_WRITABLE", RINGLINE_EV_WRITABLE);
    C("EV_CLOSED", RINGLINE_EV_CLOSED);
    C("EV_TIMER", RINGLINE_EV_TIMER);
    C("EV_DATAGRAM", RINGLINE_EV_DATAGRAM);
    C("EV_WAKE", RINGLINE_EV_WAKE);
    C("EV_SIGNAL", RINGLINE_EV_SIGNAL);
    C("EV_ERROR", RINGLINE_EV_ERROR);
    C("EV_STOPPED", RINGLINE_EV_STOPPED);
    C("MODE_EVENTS", RINGLINE_MODE_EVENTS);
    C("MODE_ECHO", RINGLINE_MODE_ECHO);
    C("MODE_FORWARD", RINGLINE_MODE_FORWARD);
    C("MODE_FRAMED", RINGLINE_MODE_FRAMED);
    C("LISTEN_REUSEPORT", RINGLINE_LISTEN_REUSEPORT);
    /* errno values scripts compare against */
    C("EAGAIN", EAGAIN);
    C("EBADF", EBADF);
    C("EBUSY", EBUSY);
    C("ECANCELED", ECANCELED);
    C("ECONNREFUSED", ECONNREFUSED);
    C("ECONNRESET", ECONNRESET);
    C("EINTR", EINTR);
    C("EINVAL", EINVAL);
    C("ENOBUFS", ENOBUFS);
    C("ENOENT", ENOENT);
    C("EPIPE", EPIPE);
    C("ETIME", ETIME);
    C("ETIMEDOUT", ETIMEDOUT);
    C("EALREADY", EALREADY);
    C("ESHUTDOWN", ESHUTDOWN);
    C("EPROTO", EPROTO);
    C("EMSGSIZE", EMSGSIZE);
    C("E2BIG", E2BIG);
}

/* storage.c: open_direct / nvme_open and their object types */
void rlua_open_storage(lua_State *L);

__attribute__((visibility("default"))) int luaopen_ringline_core(lua_State *L)
{
    luaL_checkversion(L);
    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    constants(L);
    /* feature bits by name */
    lua_newtable(L);
    for (int b = 0; b < 64; b++) {
        const char *n = ringline_feature_name(1ULL << b);
        if (!n)
            continue;
        lua_pushinteger(L, (lua_Integer)(1ULL << b));
        lua_setfield(L, -2, n);
    }
    lua_setfield(L, -2, "FEAT");
    lua_pushstring(L, ringline_version_string());
    lua_setfield(L, -2, "_VERSION");
    rlua_open_buffer(L);
    rlua_open_ring(L);
    rlua_open_bufgroup(L);
    rlua_open_nvme(L);
    rlua_open_loop(L);
    rlua_open_worker(L);
    rlua_open_frame(L);
    rlua_open_storage(L);
    return 1;
}
