/*
 * loop.c — loop objects: ringline_loop_* and the connection, listener, UDP
 * and timer calls, addressed by integer ids (64-bit ids carrying a
 * generation: a stale id gives nil, "EBADF: ...", 9, never another object).
 *
 * Events reach Lua in one of two ways (both one boundary crossing per batch
 * from the kernel's side):
 *   n = loop:poll(timeout, ev)   fills reused flat arrays ev.type[i],
 *                                ev.id[i], ev.res[i], ev.data[i], ev.tag[i],
 *                                ev.id2[i], ev.host[i], ev.port[i]
 *   n = loop:poll(timeout, fn)   calls fn(type, id, res, a, b, c) per event
 *                                (under lua_pcall: an error does not lose
 *                                the rest of the batch; it is raised after)
 * Strings are copies: event memory is the loop's and is reused at the next
 * poll.
 *
 * send_ref() pins its string/buffer (uservalue 1: id -> {tag -> value})
 * until the SENT event with that tag, or the connection's CLOSED, or the
 * loop's end. send() of a long string without a tag goes by reference too,
 * pinned in uservalue 3 under a tag of the binding's own (bit 63 set),
 * whose SENT event never reaches the script (see send_pinned).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rlua.h"

typedef struct rlua_loop {
    ringline_loop_t *loop;
    ringline_event_t *ev;
    unsigned evmax;
    int alive; /* read by the borrowed ring wrapper */
    int in_poll;
    int ref_pins; /* send_ref values pinned */
    /* loop:send() of a long string goes out by reference instead of being
     * copied (the copy was the largest user-space cost of bulk echo: a
     * 64 KiB memcpy into a freshly malloc'd chunk per message, page faults
     * included). The string is anchored in uservalue 3 (an array) at a
     * slot until the core releases the chunk: the send carries the tag
     * RLUA_PIN_TAG | slot, and its SENT event is consumed here, never shown
     * to Lua. Every released chunk gives its SENT (written, dropped on
     * abort or close), so no pin outlives its send; a loop's end drops
     * them all. */
    unsigned *pin_free; /* free slots (a stack) */
    unsigned pin_nfree, pin_top, pin_cap;
    /* closes asked for by callbacks during a callback-mode poll: run after
     * the batch, because a close may free memory later events of the same
     * batch point into */
    struct { ringline_id_t id; int abort; } *deferred;
    unsigned ndeferred, capdeferred;
} rlua_loop;

void rlua_worker_detach_loop(ringline_loop_t *loop);

#define LOOP_MT_UPVALUE lua_upvalueindex(1)

/* Tags of by-reference sends the binding makes for itself; scripts' tags
 * must be >= 0 (bit 63 clear). */
#define RLUA_PIN_TAG ((uint64_t)1 << 63)
/* Shorter strings are copied: appending to the queue's last chunk costs
 * less than pinning, a SENT event and unpinning. */
#define RLUA_REF_MIN 512

static rlua_loop *check_loop(lua_State *L)
{
    rlua_loop *l = lua_touserdata(L, 1);
    if (!l || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, LOOP_MT_UPVALUE))
        luaL_typeerror(L, 1, RLUA_LOOP);
    lua_pop(L, 1);
    if (!l->loop)
        luaL_argerror(L, 1, "loop is closed");
    return l;
}

ringline_loop_t *rlua_loop_handle(lua_State *L, int idx)
{
    rlua_loop *l = luaL_checkudata(L, idx, RLUA_LOOP);
    if (!l->loop)
        luaL_argerror(L, idx, "loop is closed");
    return l->loop;
}

static ringline_id_t check_id(lua_State *L, int idx)
{
    return (ringline_id_t)luaL_checkinteger(L, idx);
}

static uint16_t check_port(lua_State *L, int idx)
{
    lua_Integer p = luaL_checkinteger(L, idx);
    luaL_argcheck(L, p >= 0 && p <= 65535, idx, "port out of range");
    return (uint16_t)p;
}

/* ---- creation and destruction ---- */

static int l_new(lua_State *L)
{
    ringline_config_t *cfg;
    int ret = rlua_make_config(L, 1, &cfg);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_Integer evmax = 256;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "batch");
        if (!lua_isnil(L, -1))
            evmax = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    if (evmax < 8 || evmax > 65536) {
        if (cfg)
            ringline_config_free(cfg);
        return luaL_error(L, "option 'batch' must be 8..65536");
    }
    /* Zero-copy off unless asked for: long strings now go out by
     * reference (send_pinned), and with the core's 16 KiB default every
     * bulk echo went zero-copy; measured on loopback that cost more server
     * CPU than the copy it saves (a notification completion per send,
     * page pinning, and the local receiver copies anyway). */
    int zc_given = 0;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "zc_threshold");
        zc_given = !lua_isnil(L, -1);
        lua_pop(L, 1);
    }
    if (!zc_given) {
        if (!cfg && (ret = ringline_config_new(&cfg)) < 0)
            return rlua_fail(L, ret);
        if ((ret = ringline_config_set_zc_threshold(cfg, 0)) < 0) {
            ringline_config_free(cfg);
            return rlua_fail(L, ret);
        }
    }
    rlua_loop *l = lua_newuserdatauv(L, sizeof *l, 3);
    memset(l, 0, sizeof *l);
    luaL_setmetatable(L, RLUA_LOOP);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 3);
    l->ev = malloc((size_t)evmax * sizeof *l->ev);
    if (!l->ev) {
        if (cfg)
            ringline_config_free(cfg);
        return rlua_fail(L, -ENOMEM);
    }
    l->evmax = (unsigned)evmax;
    ret = ringline_loop_new(cfg, &l->loop);
    if (cfg)
        ringline_config_free(cfg);
    if (ret < 0) {
        free(l->ev);
        l->ev = NULL;
        l->loop = NULL;
        return rlua_fail(L, ret);
    }
    l->alive = 1;
    return 1;
}

static void buffer_count(lua_State *L, int idx, int delta)
{
    rlua_buffer *b = luaL_testudata(L, idx, RLUA_BUFFER);
    if (b)
        b->inflight += delta;
}

/* Drop send_ref pins: all of them (tag 0 and id 0), one connection's
 * (tag 0), or one send's. */
static void unpin(lua_State *L, int loop_idx, ringline_id_t id, uint64_t tag, int all)
{
    rlua_loop *l = lua_touserdata(L, loop_idx);
    lua_getiuservalue(L, loop_idx, 1);
    int t = lua_gettop(L);
    if (all) {
        lua_pushnil(L);
        while (lua_next(L, t)) {
            int c = lua_gettop(L);
            lua_pushnil(L);
            while (lua_next(L, c)) {
                buffer_count(L, -1, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        lua_newtable(L);
        lua_setiuservalue(L, loop_idx, 1);
        l->ref_pins = 0;
        return;
    }
    lua_rawgeti(L, t, (lua_Integer)id);
    if (lua_istable(L, -1)) {
        int c = lua_gettop(L);
        if (tag) {
            lua_rawgeti(L, c, (lua_Integer)tag);
            if (!lua_isnil(L, -1)) {
                buffer_count(L, -1, -1);
                l->ref_pins--;
                lua_pushnil(L);
                lua_rawseti(L, c, (lua_Integer)tag);
            }
            lua_pop(L, 1);
            lua_pushnil(L);
            if (!lua_next(L, c)) { /* empty: drop the connection's table */
                lua_pushnil(L);
                lua_rawseti(L, t, (lua_Integer)id);
            } else {
                lua_pop(L, 2);
            }
        } else {
            lua_pushnil(L);
            while (lua_next(L, c)) {
                buffer_count(L, -1, -1);
                l->ref_pins--;
                lua_pop(L, 1);
            }
            lua_pushnil(L);
            lua_rawseti(L, t, (lua_Integer)id);
        }
    }
    lua_settop(L, t - 1);
}

static int loop_close_impl(lua_State *L, int gc)
{
    rlua_loop *l = luaL_checkudata(L, 1, RLUA_LOOP);
    if (l->in_poll) {
        if (gc)
            return 0; /* cannot happen: poll holds a reference */
        return luaL_error(L, "loop:close() called from inside loop:poll()");
    }
    int ret = 0;
    if (l->loop) {
        rlua_worker_detach_loop(l->loop);
        ret = ringline_loop_destroy(l->loop); /* the kernel lets go first */
        l->loop = NULL;
        l->alive = 0;
        lua_getiuservalue(L, 1, 2);
        if (!lua_isnil(L, -1))
            rlua_ring_invalidate(L, lua_gettop(L));
        lua_pop(L, 1);
        unpin(L, 1, 0, 0, 1);
        /* the kernel and the core are done with every pinned string */
        lua_newtable(L);
        lua_setiuservalue(L, 1, 3);
        l->pin_nfree = l->pin_top = 0;
    }
    free(l->pin_free);
    l->pin_free = NULL;
    l->pin_cap = 0;
    free(l->ev);
    l->ev = NULL;
    free(l->deferred);
    l->deferred = NULL;
    l->ndeferred = l->capdeferred = 0;
    if (gc)
        return 0;
    return rlua_ok(L, ret);
}

static int l_close(lua_State *L) { return loop_close_impl(L, 0); }
static int l_gc(lua_State *L) { return loop_close_impl(L, 1); }

static int l_tostring(lua_State *L)
{
    rlua_loop *l = luaL_checkudata(L, 1, RLUA_LOOP);
    if (l->loop)
        lua_pushfstring(L, "ringline.loop: %p", (void *)l->loop);
    else
        lua_pushstring(L, "ringline.loop: closed");
    return 1;
}

static int l_closed(lua_State *L)
{
    rlua_loop *l = luaL_checkudata(L, 1, RLUA_LOOP);
    lua_pushboolean(L, l->loop == NULL);
    return 1;
}

/* ---- polling ---- */

enum { A_TYPE = 1, A_ID, A_RES, A_DATA, A_TAG, A_ID2, A_HOST, A_PORT, A_N = A_PORT };
static const char *const arr_names[] = {NULL, "type", "id", "res", "data", "tag", "id2", "host", "port"};

static int traceback_msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void note_event(lua_State *L, rlua_loop *l, const ringline_event_t *e)
{
    if (!l->ref_pins)
        return;
    if (e->type == RINGLINE_EV_SENT && e->tag)
        unpin(L, 1, e->id, e->tag, 0);
    else if (e->type == RINGLINE_EV_CLOSED)
        unpin(L, 1, e->id, 0, 0);
}

/* ev[name] for array a of poll's event table (index 3), made if missing;
 * left on the stack, its index returned. */
static int ev_array(lua_State *L, int a, int n)
{
    lua_getfield(L, 3, arr_names[a]);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, n > 0 ? n : 8, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, 3, arr_names[a]);
    }
    return lua_gettop(L);
}

/* Release the strings of finished by-reference sends (see pin_free) and
 * take their SENT events out of the batch. Returns the new count. The loop
 * userdata is at index 1. */
static int drop_pin_events(lua_State *L, rlua_loop *l, int n)
{
    int j = 0, pins = 0;
    for (int i = 0; i < n; i++) {
        const ringline_event_t *e = &l->ev[i];
        if (e->type == RINGLINE_EV_SENT && (e->tag & RLUA_PIN_TAG)) {
            if (!pins) {
                lua_getiuservalue(L, 1, 3);
                pins = lua_gettop(L);
            }
            unsigned slot = (unsigned)(e->tag & ~RLUA_PIN_TAG);
            if (slot >= 1 && slot <= l->pin_top && l->pin_nfree < l->pin_cap) {
                lua_pushnil(L);
                lua_rawseti(L, pins, slot);
                l->pin_free[l->pin_nfree++] = slot;
            }
            continue;
        }
        if (j != i)
            l->ev[j] = *e;
        j++;
    }
    if (pins)
        lua_settop(L, pins - 1);
    if (l->pin_nfree == l->pin_top) /* nothing pinned: restart the slots */
        l->pin_nfree = l->pin_top = 0;
    return j;
}

/* Queue a long string by reference, pinned until its SENT. 0 or -errno;
 * the string is at index sidx. */
static int send_pinned(lua_State *L, rlua_loop *l, ringline_id_t id, int sidx,
                       const uint8_t *p, size_t n)
{
    unsigned slot;
    if (l->pin_nfree) {
        slot = l->pin_free[l->pin_nfree - 1];
    } else {
        if (l->pin_top == l->pin_cap) {
            /* the free stack holds at most every slot: size it with them */
            unsigned cap = l->pin_cap ? l->pin_cap * 2 : 64;
            unsigned *f = realloc(l->pin_free, cap * sizeof *f);
            if (!f)
                return -ENOMEM;
            l->pin_free = f;
            l->pin_cap = cap;
        }
        slot = l->pin_top + 1;
    }
    int ret = ringline_conn_send_ref(l->loop, id, p, n, RLUA_PIN_TAG | slot);
    if (ret < 0)
        return ret;
    if (l->pin_nfree)
        l->pin_nfree--;
    else
        l->pin_top++;
    lua_getiuservalue(L, 1, 3);
    lua_pushvalue(L, sidx);
    lua_rawseti(L, -2, slot);
    lua_pop(L, 1);
    return 0;
}

/* loop:poll([timeout [, ev_or_fn [, max]]]) -> n */
static int l_poll(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    int64_t t = rlua_opt_timeout(L, 2, -1);
    int mode_fn = lua_isfunction(L, 3);
    if (!mode_fn)
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer max = luaL_optinteger(L, 4, l->evmax);
    luaL_argcheck(L, max >= 8 && max <= (lua_Integer)l->evmax, 4, "max out of range");
    if (l->in_poll)
        return luaL_error(L, "loop:poll() is not reentrant");
    lua_settop(L, 3);

    int n;
    for (;;) {
        n = ringline_loop_poll(l->loop, l->ev, (unsigned)max, t);
        if (n == -EINTR)
            n = 0;
        if (n < 0)
            return rlua_fail(L, n);
        if (l->pin_top)
            n = drop_pin_events(L, l, n);
        /* a batch of only our own SENT events: wait on (when waiting
         * forever), rather than return an empty batch to the script */
        if (n > 0 || t >= 0)
            break;
    }

    if (!mode_fn) {
        /* The arrays are found by name only when a batch needs them (a
         * batch of DATA events touches type, id and data: 3 lookups, not
         * 8); a table without them gets all of them at its first poll. */
        int arr[A_N + 1] = {0};
        luaL_checkstack(L, A_N + 12, "loop:poll");
        lua_getfield(L, 3, arr_names[A_TYPE]);
        if (lua_istable(L, -1)) {
            arr[A_TYPE] = lua_gettop(L);
        } else {
            lua_pop(L, 1);
            for (int a = 1; a <= A_N; a++)
                arr[a] = ev_array(L, a, n);
        }
#define ARR(a) (arr[a] ? arr[a] : (arr[a] = ev_array(L, a, n)))
        int t_id = ARR(A_ID);
        for (int i = 0; i < n; i++) {
            const ringline_event_t *e = &l->ev[i];
            lua_Integer k = i + 1;
            int ta, tb;
            lua_pushinteger(L, e->type);
            lua_rawseti(L, arr[A_TYPE], k);
            lua_pushinteger(L, (lua_Integer)e->id);
            lua_rawseti(L, t_id, k);
            switch (e->type) {
            case RINGLINE_EV_DATA:
                ta = ARR(A_DATA);
                lua_pushlstring(L, (const char *)e->data, e->len);
                lua_rawseti(L, ta, k);
                break;
            case RINGLINE_EV_FRAME:
                ta = ARR(A_DATA);
                tb = ARR(A_TAG);
                lua_pushlstring(L, (const char *)e->data, e->len);
                lua_rawseti(L, ta, k);
                lua_pushinteger(L, (lua_Integer)e->tag);
                lua_rawseti(L, tb, k);
                break;
            case RINGLINE_EV_DATAGRAM:
                ta = ARR(A_DATA);
                lua_pushlstring(L, (const char *)e->data, e->len);
                lua_rawseti(L, ta, k);
                ta = ARR(A_HOST);
                tb = ARR(A_PORT);
                rlua_push_sockaddr(L, e->addr, e->addrlen);
                lua_rawseti(L, tb, k);
                lua_rawseti(L, ta, k);
                break;
            case RINGLINE_EV_ACCEPTED:
                ta = ARR(A_ID2);
                lua_pushinteger(L, (lua_Integer)e->id2);
                lua_rawseti(L, ta, k);
                break;
            case RINGLINE_EV_SENT:
                ta = ARR(A_TAG);
                tb = ARR(A_RES);
                lua_pushinteger(L, (lua_Integer)e->tag);
                lua_rawseti(L, ta, k);
                lua_pushinteger(L, e->res);
                lua_rawseti(L, tb, k);
                note_event(L, l, e);
                break;
            case RINGLINE_EV_TIMER:
                ta = ARR(A_TAG);
                lua_pushinteger(L, (lua_Integer)e->tag);
                lua_rawseti(L, ta, k);
                break;
            case RINGLINE_EV_CLOSED:
                note_event(L, l, e);
                /* fall through */
            default:
                ta = ARR(A_RES);
                lua_pushinteger(L, e->res);
                lua_rawseti(L, ta, k);
                break;
            }
        }
#undef ARR
        lua_pushinteger(L, n);
        return 1;
    }

    /* callback mode */
    lua_pushcfunction(L, traceback_msgh);
    int msgh = lua_gettop(L);
    int err_ref = LUA_NOREF;
    l->in_poll = 1;
    for (int i = 0; i < n; i++) {
        const ringline_event_t *e = &l->ev[i];
        note_event(L, l, e);
        lua_pushvalue(L, 3);
        lua_pushinteger(L, e->type);
        lua_pushinteger(L, (lua_Integer)e->id);
        lua_pushinteger(L, e->res);
        int nargs = 3;
        switch (e->type) {
        case RINGLINE_EV_DATA:
            lua_pushlstring(L, (const char *)e->data, e->len);
            nargs = 4;
            break;
        case RINGLINE_EV_FRAME:
            lua_pushlstring(L, (const char *)e->data, e->len);
            lua_pushinteger(L, (lua_Integer)e->tag);
            nargs = 5;
            break;
        case RINGLINE_EV_DATAGRAM:
            lua_pushlstring(L, (const char *)e->data, e->len);
            rlua_push_sockaddr(L, e->addr, e->addrlen);
            nargs = 6;
            break;
        case RINGLINE_EV_ACCEPTED:
            lua_pushinteger(L, (lua_Integer)e->id2);
            nargs = 4;
            break;
        case RINGLINE_EV_SENT:
        case RINGLINE_EV_TIMER:
            lua_pushinteger(L, (lua_Integer)e->tag);
            nargs = 4;
            break;
        default:
            break;
        }
        if (lua_pcall(L, nargs, 0, msgh) != LUA_OK) {
            if (err_ref == LUA_NOREF)
                err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            else
                lua_pop(L, 1);
        }
    }
    l->in_poll = 0;
    for (unsigned i = 0; i < l->ndeferred; i++) {
        if (l->deferred[i].abort)
            ringline_conn_abort(l->loop, l->deferred[i].id);
        else
            ringline_conn_close(l->loop, l->deferred[i].id);
    }
    l->ndeferred = 0;
    if (err_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, err_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, err_ref);
        return lua_error(L); /* no C state is held any more */
    }
    lua_pushinteger(L, n);
    return 1;
}

static int l_run(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    if (l->in_poll)
        return luaL_error(L, "loop:run() called from inside loop:poll()");
    return rlua_ok(L, ringline_loop_run(l->loop));
}

static int l_wake(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    return rlua_ok(L, ringline_loop_wake(l->loop));
}

static uint64_t opt_ms(lua_State *L, int idx, lua_Number def)
{
    lua_Number s = luaL_optnumber(L, idx, def);
    luaL_argcheck(L, s >= 0 && s < 1e9, idx, "seconds must be >= 0");
    return (uint64_t)(s * 1000.0 + 0.5);
}

static int l_stop(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    return rlua_ok(L, ringline_loop_stop(l->loop, opt_ms(L, 2, 5.0)));
}

static int l_stopped(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    int r = ringline_loop_stopped(l->loop);
    if (r < 0)
        return rlua_fail(L, r);
    lua_pushboolean(L, r);
    return 1;
}

static int l_handle_signals(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    return rlua_ok(L, ringline_loop_handle_signals(l->loop, opt_ms(L, 2, 5.0)));
}

static int l_stats(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    ringline_stats_t s;
    memset(&s, 0, sizeof s);
    int ret = ringline_loop_stats(l->loop, &s, sizeof s);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_createtable(L, 0, 13);
#define S(f)                                                                   \
    lua_pushinteger(L, (lua_Integer)s.f);                                      \
    lua_setfield(L, -2, #f)
    S(accepted); S(connected); S(closed); S(bytes_in); S(bytes_out);
    S(enobufs_parks); S(sends_queued); S(sends_zc); S(cqes); S(events);
    S(polls); S(conns_open); S(accept_errors);
#undef S
    return 1;
}

static int l_ring(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    lua_getiuservalue(L, 1, 2);
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 1);
    ringline_ring_t *ring;
    int ret = ringline_loop_ring(l->loop, &ring);
    if (ret < 0)
        return rlua_fail(L, ret);
    rlua_ring_push_borrowed(L, ring, 1, &l->alive);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
    return 1;
}

/* ---- listeners and connections ---- */

/* listen(host, port [, backlog [, reuseport]]) -> id */
static int l_listen(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    const char *host = luaL_checkstring(L, 2);
    uint16_t port = check_port(L, 3);
    lua_Integer backlog = luaL_optinteger(L, 4, 1024);
    luaL_argcheck(L, backlog >= 1 && backlog <= 65535, 4, "backlog out of range");
    unsigned flags = lua_toboolean(L, 5) ? RINGLINE_LISTEN_REUSEPORT : 0;
    ringline_id_t id;
    int ret = ringline_listen(l->loop, host, port, (int)backlog, flags, &id);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

static int l_listener_port(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    return rlua_int(L, ringline_listener_port(l->loop, check_id(L, 2)));
}

static int l_listener_close(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    return rlua_ok(L, ringline_listener_close(l->loop, check_id(L, 2)));
}

static const char *const mode_names[] = {"events", "echo", "forward", "framed", NULL};

/* mode at idx (name or number), arg at idx+1, max_frame at idx+2 */
static void check_mode(lua_State *L, int idx, int *mode, uint64_t *arg)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer m = luaL_checkinteger(L, idx);
        luaL_argcheck(L, m >= 0 && m <= RINGLINE_MODE_FRAMED, idx, "unknown mode");
        *mode = (int)m;
    } else {
        *mode = luaL_checkoption(L, idx, NULL, mode_names);
    }
    *arg = 0;
    if (*mode == RINGLINE_MODE_FORWARD) {
        *arg = (uint64_t)luaL_checkinteger(L, idx + 1);
    } else if (*mode == RINGLINE_MODE_FRAMED) {
        int kind = rlua_check_framer(L, idx + 1);
        lua_Integer max = luaL_optinteger(L, idx + 2, 0);
        luaL_argcheck(L, max >= 0 && max <= ((lua_Integer)1 << 40), idx + 2,
                      "max_frame out of range");
        *arg = (uint64_t)kind | ((uint64_t)max << 8);
    }
}

/* set_mode(id, mode [, arg [, max_frame]]) */
static int l_set_mode(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    ringline_id_t id = check_id(L, 2);
    int mode;
    uint64_t arg;
    check_mode(L, 3, &mode, &arg);
    return rlua_ok(L, ringline_conn_set_mode(l->loop, id, mode, arg));
}

static int l_listener_set_mode(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    ringline_id_t id = check_id(L, 2);
    int mode;
    uint64_t arg;
    check_mode(L, 3, &mode, &arg);
    luaL_argcheck(L, mode != RINGLINE_MODE_FORWARD, 3,
                  "a listener cannot forward (there is no target yet)");
    return rlua_ok(L, ringline_listener_set_mode(l->loop, id, mode, arg));
}

/* connect(host, port [, timeout_seconds]) -> id */
static int l_connect(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    const char *host = luaL_checkstring(L, 2);
    uint16_t port = check_port(L, 3);
    uint64_t ms = opt_ms(L, 4, 0);
    ringline_id_t id;
    int ret = ringline_connect(l->loop, host, port, ms, &id);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

/* send(id, data [, tag]) -> bytes now queued on the connection */
static int l_send(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    ringline_id_t id = check_id(L, 2);
    size_t n;
    const uint8_t *p = rlua_check_mem(L, 3, 0, &n, 1, 0);
    lua_Integer tag = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, tag >= 0, 4, "tag must be >= 0");
    int ret;
    /* strings are immutable: a long one can be sent in place (buffers
     * could be changed by the script while the send is in flight) */
    if (n >= RLUA_REF_MIN && tag == 0 && lua_type(L, 3) == LUA_TSTRING)
        ret = send_pinned(L, l, id, 3, p, n);
    else
        ret = ringline_conn_send(l->loop, id, p, n, (uint64_t)tag);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, (lua_Integer)ringline_conn_queued(l->loop, id));
    return 1;
}

/* sendv(id, parts [, n [, tag]]) -> queued: parts[1..n] (strings) in one
 * queue entry */
static int l_sendv(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    ringline_id_t id = check_id(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer cnt = luaL_optinteger(L, 4, (lua_Integer)lua_rawlen(L, 3));
    lua_Integer stag = luaL_optinteger(L, 5, 0);
    luaL_argcheck(L, stag >= 0, 5, "tag must be >= 0");
    uint64_t tag = (uint64_t)stag;
    luaL_argcheck(L, cnt >= 0 && cnt <= 1024, 4, "0..1024 parts");
    struct iovec small[64];
    struct iovec *iov = small;
    if (cnt > 64)
        iov = lua_newuserdatauv(L, (size_t)cnt * sizeof *iov, 0);
    int base = lua_gettop(L);
    for (lua_Integer i = 0; i < cnt; i++) {
        lua_rawgeti(L, 3, i + 1); /* stays on the stack: anchors the string */
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (!s || lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 3, "parts must be strings");
        iov[i].iov_base = (void *)s;
        iov[i].iov_len = len;
        if (!lua_checkstack(L, 2))
            return luaL_error(L, "stack overflow");
    }
    int ret = ringline_conn_sendv(l->loop, id, iov, (unsigned)cnt, tag);
    lua_settop(L, base);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, (lua_Integer)ringline_conn_queued(l->loop, id));
    return 1;
}

/* send_ref(id, data, tag): no copy; data stays pinned until SENT(tag) */
static int l_send_ref(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    ringline_id_t id = check_id(L, 2);
    size_t n;
    const uint8_t *p = rlua_check_mem(L, 3, 0, &n, 1, 0);
    lua_Integer tag = luaL_checkinteger(L, 4);
    luaL_argcheck(L, tag > 0, 4, "send_ref needs a tag > 0");
    lua_getiuservalue(L, 1, 1);
    lua_rawgeti(L, -1, (lua_Integer)id);
    if (!lua_isnil(L, -1)) {
        lua_rawgeti(L, -1, tag);
        int busy = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (busy)
            return luaL_argerror(L, 4, "tag already in use on this connection");
    }
    int ret = ringline_conn_send_ref(l->loop, id, p, n, (uint64_t)tag);
    if (ret < 0)
        return rlua_fail(L, ret);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, (lua_Integer)id);
    }
    lua_pushvalue(L, 3);
    buffer_count(L, -1, 1);
    lua_rawseti(L, -2, tag);
    l->ref_pins++;
    lua_pushboolean(L, 1);
    return 1;
}

/* pinned() -> strings held by sends in flight (long strings loop:send()
 * queued by reference): for tests and leak checks */
static int l_pinned(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    lua_pushinteger(L, (lua_Integer)(l->pin_top - l->pin_nfree));
    return 1;
}

static int l_queued(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    int64_t q = ringline_conn_queued(l->loop, check_id(L, 2));
    if (q < 0)
        return rlua_fail(L, (int)q);
    lua_pushinteger(L, q);
    return 1;
}

static int l_consume(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    ringline_id_t id = check_id(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    luaL_argcheck(L, n >= 0, 3, "n must be >= 0");
    return rlua_ok(L, ringline_conn_consume(l->loop, id, (size_t)n));
}

#define ID_CALL(fname, call)                                                   \
    static int fname(lua_State *L)                                             \
    {                                                                          \
        rlua_loop *l = check_loop(L);                                          \
        return rlua_ok(L, call(l->loop, check_id(L, 2)));                      \
    }
ID_CALL(l_pause, ringline_conn_pause)
ID_CALL(l_resume, ringline_conn_resume)
ID_CALL(l_shutdown, ringline_conn_shutdown)

static int conn_close_impl(lua_State *L, int abort)
{
    rlua_loop *l = check_loop(L);
    ringline_id_t id = check_id(L, 2);
    if (!l->in_poll) {
        int ret = abort ? ringline_conn_abort(l->loop, id) : ringline_conn_close(l->loop, id);
        return rlua_ok(L, ret);
    }
    /* inside a poll callback: check the id now, close after the batch */
    int64_t q = ringline_conn_queued(l->loop, id);
    if (q < 0)
        return rlua_fail(L, (int)q);
    if (l->ndeferred == l->capdeferred) {
        unsigned cap = l->capdeferred ? l->capdeferred * 2 : 16;
        void *n = realloc(l->deferred, cap * sizeof *l->deferred);
        if (!n)
            return rlua_fail(L, -ENOMEM);
        l->deferred = n;
        l->capdeferred = cap;
    }
    l->deferred[l->ndeferred].id = id;
    l->deferred[l->ndeferred].abort = abort;
    l->ndeferred++;
    lua_pushboolean(L, 1);
    return 1;
}
static int l_conn_close(lua_State *L) { return conn_close_impl(L, 0); }
static int l_conn_abort(lua_State *L) { return conn_close_impl(L, 1); }
ID_CALL(l_udp_close, ringline_udp_close)
ID_CALL(l_timer_cancel, ringline_timer_cancel)

static int l_peer(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    struct sockaddr_storage ss;
    socklen_t len;
    int ret = ringline_conn_peer(l->loop, check_id(L, 2), &ss, &len);
    if (ret < 0)
        return rlua_fail(L, ret);
    return rlua_push_sockaddr(L, (struct sockaddr *)&ss, len);
}

/* ---- UDP ---- */

static int l_udp_bind(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    const char *host = luaL_checkstring(L, 2);
    uint16_t port = check_port(L, 3);
    ringline_id_t id;
    int ret = ringline_udp_bind(l->loop, host, port, &id);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}

static int l_udp_port(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    return rlua_int(L, ringline_udp_port(l->loop, check_id(L, 2)));
}

/* udp_sendto(id, data, host, port) */
static int l_udp_sendto(lua_State *L)
{
    rlua_loop *l = check_loop(L);
    ringline_id_t id = check_id(L, 2);
    size_t n;
    const uint8_t *p = rlua_check_mem(L, 3, 0, &n, 1, 0);
    const char *host = luaL_checkstring(L, 4);
    uint16_t port = check_port(L, 5);
    struct sockaddr_storage ss;
    socklen_t len;
    if (rlua_sockaddr(host, port, &ss, &len) < 0)
        return luaL_argerror(L, 4, "not a numeric IPv4/IPv6 address");
    return rlua_ok(L, ringline_udp_sendto(l->loop, id, p, n, (struct sockaddr *)&ss, len));
}

/* ---- timers ---- */

static int timer_impl(lua_State *L, int kind)
{
    rlua_loop *l = check_loop(L);
    uint64_t ns = rlua_check_seconds(L, 2);
    uint64_t tag = (uint64_t)luaL_optinteger(L, 3, 0);
    ringline_id_t id;
    int ret;
    if (kind == 0)
        ret = ringline_timer_after(l->loop, ns, tag, &id);
    else if (kind == 1)
        ret = ringline_timer_every(l->loop, ns, tag, &id);
    else
        ret = ringline_timer_at(l->loop, ns, tag, &id);
    if (ret < 0)
        return rlua_fail(L, ret);
    lua_pushinteger(L, (lua_Integer)id);
    return 1;
}
static int l_timer_after(lua_State *L) { return timer_impl(L, 0); }
static int l_timer_every(lua_State *L) { return timer_impl(L, 1); }
static int l_timer_at(lua_State *L) { return timer_impl(L, 2); }

static const luaL_Reg methods[] = {
    {"close", l_close},
    {"closed", l_closed},
    {"poll", l_poll},
    {"run", l_run},
    {"wake", l_wake},
    {"stop", l_stop},
    {"stopped", l_stopped},
    {"handle_signals", l_handle_signals},
    {"stats", l_stats},
    {"ring", l_ring},
    {"listen", l_listen},
    {"listener_port", l_listener_port},
    {"listener_set_mode", l_listener_set_mode},
    {"listener_close", l_listener_close},
    {"connect", l_connect},
    {"set_mode", l_set_mode},
    {"send", l_send},
    {"sendv", l_sendv},
    {"send_ref", l_send_ref},
    {"queued", l_queued},
    {"pinned", l_pinned},
    {"consume", l_consume},
    {"pause", l_pause},
    {"resume", l_resume},
    {"shutdown", l_shutdown},
    {"conn_close", l_conn_close},
    {"conn_abort", l_conn_abort},
    {"peer", l_peer},
    {"udp_bind", l_udp_bind},
    {"udp_port", l_udp_port},
    {"udp_sendto", l_udp_sendto},
    {"udp_close", l_udp_close},
    {"timer_after", l_timer_after},
    {"timer_every", l_timer_every},
    {"timer_at", l_timer_at},
    {"timer_cancel", l_timer_cancel},
    {NULL, NULL},
};

void rlua_open_loop(lua_State *L)
{
    luaL_newmetatable(L, RLUA_LOOP);
    int mt = lua_gettop(L);
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, mt, "__gc");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, mt, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, mt, "__tostring");
    lua_pushstring(L, RLUA_LOOP);
    lua_setfield(L, mt, "__name");
    lua_newtable(L);
    lua_pushvalue(L, mt);
    luaL_setfuncs(L, methods, 1); /* upvalue: the metatable, for fast checks */
    lua_setfield(L, mt, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "loop");
}
