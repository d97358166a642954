/* SPDX-License-Identifier: MIT */
/* Lua binding of et_multi: the Multi class. The engine (handle pool, sockets, poll, drive, fork)
 * is et_multi's; this file keeps the Lua side: the uservalue table
 * { [1] = in-flight array (slot -> Transfer), [2] = finished array, [3] = in-flight tags
 * (slot -> the tag given to add), [4] = finished tags }. Slots are small integers reused
 * last-freed-first (et_multi), so both arrays stay in the tables' array parts (no rehash as
 * transfers come and go). The array keeps every in-flight Transfer reachable, so one is never
 * collected while curl uses its buffers.
 *
 * An in-flight Transfer is linked into the engine's list and holds the Multi as its uservalue.
 * Completion (perform), cancel, the Transfer's __gc and the Multi's close all unlink it, in
 * whatever order lua_close runs the finalizers: the engine's list is the single source of truth,
 * and a Transfer whose mx.m is NULL never touches a Multi again. */
#include <limits.h>
#include <math.h>

#include "l_http.h"

static l_multi *check_multi(lua_State *L, int i)
{
    l_multi *m = l_check_class(L, i, UP_MULTI, ET_MULTI_MT);
    if (!m->e.cm || m->close_pending)
        luaL_argerror(L, i, "attempt to use a closed multi");
    return m;
}

/* Frees the engine of the multi at stack index idx; every in-flight transfer is cancelled, and
 * the Lua arrays drop them and their tags. */
static void multi_free(lua_State *L, int idx, l_multi *m)
{
    m->close_pending = 0;
    if (et_multi_close(&m->e) != 1)
        return;                                 /* closed already, or abandoned after a fork */
    if (l_getuv(L, idx) == LUA_TTABLE) {
        lua_newtable(L);
        lua_rawseti(L, -2, 1);
        lua_newtable(L);
        lua_rawseti(L, -2, 3);
    }
    lua_pop(L, 1);
}

static void multi_unpin(lua_State *L, int idx, l_multi *m)
{
    if (m->pins > 0 && --m->pins == 0 && m->close_pending)
        multi_free(L, idx, m);
}

/* Pushes the multi's uservalue slot k (1 in flight, 2 finished, 3 and 4 their tags). */
void l_multi_slot(lua_State *L, int midx, int k)
{
    l_getuv(L, midx);
    lua_rawgeti(L, -1, k);
    lua_remove(L, -2);
}

/* After fork(), the engine starts afresh (et_multi_forked); the transfers that were in flight
 * belong to the parent: in the child they finish as cancelled, so they (and their tags) move from
 * the in-flight arrays to the finished lists. The multi is at index 1. */
static void multi_forked(lua_State *L, l_multi *m)
{
    int top, rc = et_multi_forked(&m->e);
    if (rc == 0)
        return;
    if (rc != 1)
        luaL_error(L, "cannot create a curl multi handle");
    top = lua_gettop(L);
    l_multi_slot(L, 1, 1);                      /* top+1: in flight */
    l_multi_slot(L, 1, 2);                      /* top+2: finished */
    l_multi_slot(L, 1, 3);                      /* top+3: in-flight tags */
    l_multi_slot(L, 1, 4);                      /* top+4: finished tags */
    lua_pushnil(L);
    while (lua_next(L, top + 1)) {
        lua_rawseti(L, top + 2, (lua_Integer)lua_rawlen(L, top + 2) + 1);
        lua_pushvalue(L, -1);
        lua_rawget(L, top + 3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushboolean(L, 0);
        }
        lua_rawseti(L, top + 4, (lua_Integer)lua_rawlen(L, top + 4) + 1);
    }
    l_getuv(L, 1);
    lua_newtable(L);
    lua_rawseti(L, -2, 1);
    lua_newtable(L);
    lua_rawseti(L, -2, 3);
    lua_settop(L, top);
}

/* multi(opts) */
int l_multi_new(lua_State *L)
{
    l_multi *m;
    lua_Integer maxc = 0;
    lua_settop(L, 1);                           /* 1: opts, 2: the multi */
    m = l_newud(L, sizeof *m);
    et_multi_init(&m->e);
    m->pins = m->close_pending = 0;
    lua_pushvalue(L, UP_MULTI);
    lua_setmetatable(L, -2);
    if (!lua_isnoneornil(L, 1)) {
        static const char *const names[] = { "max_connections", NULL };
        luaL_checktype(L, 1, LUA_TTABLE);
        l_opt_known(L, 1, names);
        maxc = l_opt_int(L, 1, "max_connections", 0, 0);
    }
    lua_createtable(L, 4, 0);                   /* m, uv */
    lua_newtable(L);
    lua_rawseti(L, -2, 1);                      /* in flight */
    lua_newtable(L);
    lua_rawseti(L, -2, 2);                      /* finished */
    lua_newtable(L);
    lua_rawseti(L, -2, 3);                      /* in-flight tags */
    lua_newtable(L);
    lua_rawseti(L, -2, 4);                      /* finished tags */
    l_setuv(L, -2);                             /* m */
    if (et_multi_open(&m->e, (long)(maxc > LONG_MAX ? LONG_MAX : maxc)) != ET_OK)
        return luaL_error(L, "cannot create a curl multi handle");
    return 1;
}

static int l_multi_close(lua_State *L)
{
    l_multi *m = l_check_class(L, 1, UP_MULTI, ET_MULTI_MT);
    if (m->pins > 0 && m->e.cm)
        m->close_pending = 1;                   /* a binding is using it: closed when it is done */
    else
        multi_free(L, 1, m);
    return 0;
}

static int l_multi_gc(lua_State *L)
{
    multi_free(L, 1, l_check_class(L, 1, UP_MULTI, ET_MULTI_MT));
    return 0;
}

/* Appends v (at index vi) to the uservalue list k of the multi at 1. */
static void multi_append(lua_State *L, int k, int vi)
{
    vi = lua_absindex(L, vi);
    l_multi_slot(L, 1, k);
    lua_pushvalue(L, vi);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

/* multi:add(session, method, url, headers, body, flags [, tag [, reuse]]) -> Transfer. The tag
 * (any value, a poller's task) stays with the transfer while it is in flight and comes back beside
 * it from finished(). reuse: a finished Transfer (its result read) to carry this request instead
 * of a new one, which saves the allocation, the finalizer and the header buffers; the same
 * Transfer is returned. Anything else there is ignored. */
static int l_multi_add(lua_State *L)
{
    l_multi *m;
    l_session *s;
    req_args a;
    l_xfer *t;
    int rc;

    m = check_multi(L, 1);
    s = l_check_session(L, 2);
    lua_settop(L, 9);                           /* 8: the tag, 9: the transfer */
    t = l_xfer_for_add(L, 9);                   /* (recycled, or new at 9) */
    multi_forked(L, m);
    l_check_request(L, 3, &a);                  /* may push a scratch array at 10 */
    /* Checked again after the allocations above, which may have run a finalizer that closed
     * either (m and s stay valid: the userdata are at 1 and 2). */
    if (!m->e.cm || m->close_pending)
        luaL_argerror(L, 1, "attempt to use a closed multi");
    if (!s->open || s->close_pending)
        luaL_argerror(L, 2, "attempt to use a closed session");

    rc = et_multi_add(&m->e, &t->mx, s->s.opts, &a.r);
    switch (rc) {
    case ET_OK:
        break;
    case ET_ECURL:
        /* Reported like any failed transfer, through finished() and result(). */
        lua_settop(L, 9);
        if (lua_isnil(L, 8)) {
            lua_pushboolean(L, 0);
            lua_replace(L, 8);
        }
        multi_append(L, 2, 9);
        multi_append(L, 4, 8);
        t->listed = 1;
        return 1;
    case ET_EHANDLE:
        return luaL_error(L, "cannot create a curl easy handle");
    case ET_EMULTI:
        return luaL_error(L, "curl_multi_add_handle: %s", curl_multi_strerror(m->e.mc));
    default:
        return luaL_error(L, "not enough memory");   /* __gc frees the handle */
    }
    /* In flight: from here the transfer belongs to the multi until it is done. */
    lua_pushvalue(L, 1);
    l_setuv(L, 9);                              /* an in-flight transfer keeps its multi */
    l_multi_slot(L, 1, 1);
    lua_pushvalue(L, 9);
    lua_rawseti(L, -2, t->mx.slot);
    l_multi_slot(L, 1, 3);
    lua_pushvalue(L, 8);
    lua_rawseti(L, -2, t->mx.slot);
    lua_settop(L, 9);
    return 1;
}

/* multi:perform() -> running count; collects completed transfers into the finished list. */
static int l_multi_perform(lua_State *L)
{
    l_multi *m = check_multi(L, 1);
    int running = 0, slot;
    et_mxfer_t *mx;
    lua_settop(L, 1);
    multi_forked(L, m);
    if (et_multi_perform(&m->e, &running) != ET_OK)
        return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(m->e.mc));
    m->pins++;                                  /* the loop allocates: a finalizer may close m */
    l_multi_slot(L, 1, 1);                      /* 2: in flight */
    l_multi_slot(L, 1, 2);                      /* 3: finished */
    l_multi_slot(L, 1, 3);                      /* 4: in-flight tags */
    l_multi_slot(L, 1, 4);                      /* 5: finished tags */
    /* (the engine finishes each transfer, C side first, so a Lua memory error below cannot
     * leave curl half-done) */
    while ((mx = et_multi_done(&m->e, &slot)) != NULL) {
        l_xfer *t = (l_xfer *)(void *)mx;
        lua_rawgeti(L, 2, slot);                /* 6: the Transfer */
        if (lua_touserdata(L, 6) == (void *)t) {
            lua_rawgeti(L, 4, slot);            /* 7: its tag, or false */
            if (lua_isnil(L, 7)) {
                lua_pop(L, 1);
                lua_pushboolean(L, 0);
            }
            /* The slot is free again: emptied before anything allocates (a finalizer run by an
             * allocation may add a transfer, which would take this slot). */
            lua_pushnil(L);
            lua_rawseti(L, 2, slot);
            lua_pushnil(L);
            lua_rawseti(L, 4, slot);
            lua_pushvalue(L, 6);
            lua_rawseti(L, 3, (lua_Integer)lua_rawlen(L, 3) + 1);
            t->listed = 1;
            lua_pushvalue(L, 7);
            lua_rawseti(L, 5, (lua_Integer)lua_rawlen(L, 5) + 1);
            lua_pushnil(L);
            l_setuv(L, 6);                      /* no longer keeps the multi */
        }
        lua_settop(L, 5);
    }
    multi_unpin(L, 1, m);
    lua_pushinteger(L, running);
    return 1;
}

/* The Transfer at list[i] (a finished list) is given: no longer listed. */
static void unlist(lua_State *L, int list, lua_Integer i)
{
    l_xfer *t;
    lua_rawgeti(L, list, i);
    t = lua_touserdata(L, -1);                  /* (only Transfers are listed) */
    if (t)
        t->listed = 0;
    lua_pop(L, 1);
}

/* multi:finished(into): the tags of the transfers completed since the last call, appended to
 * the table into in completion order (a transfer added without a tag is skipped); returns how
 * many. The multi's own lists are emptied in place (the poller's round: no table made). The tags
 * are moved to the stack first, so that nothing allocates while the lists are being emptied (a
 * finalizer run by an allocation may perform on this multi, which appends to them). */
static int finished_into(lua_State *L)
{
    int i, n, k;
    lua_Integer m;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    l_getuv(L, 1);                              /* 3: uv */
    lua_rawgeti(L, 3, 2);                       /* 4: list */
    lua_rawgeti(L, 3, 4);                       /* 5: tags */
    n = (int)lua_rawlen(L, 4);
    luaL_checkstack(L, n + 1, "too many finished transfers");
    for (i = 1, k = 0; i <= n; i++) {
        unlist(L, 4, i);
        lua_pushnil(L);
        lua_rawseti(L, 4, i);
        lua_rawgeti(L, 5, i);                   /* the tag, kept on the stack when there is one */
        lua_pushnil(L);
        lua_rawseti(L, 5, i);
        if (lua_toboolean(L, -1))
            k++;
        else
            lua_pop(L, 1);
    }
    m = (lua_Integer)lua_rawlen(L, 2);
    for (i = 1; i <= k; i++) {                  /* stack 6..5+k, first finished first */
        lua_pushvalue(L, 5 + i);
        lua_rawseti(L, 2, m + i);
    }
    lua_pushinteger(L, k);
    return 1;
}

/* multi:finished() -> array of Transfers completed since the last call, and the array of their
 * tags (false for a transfer added without one), index for index. With a table argument, see
 * finished_into. */
static int l_multi_finished(lua_State *L)
{
    size_t i, n;
    check_multi(L, 1);
    if (!lua_isnoneornil(L, 2))
        return finished_into(L);
    lua_settop(L, 1);
    l_getuv(L, 1);                              /* uv */
    lua_rawgeti(L, 2, 2);                       /* uv, list */
    lua_rawgeti(L, 2, 4);                       /* uv, list, tags */
    for (i = 1, n = lua_rawlen(L, 3); i <= n; i++)
        unlist(L, 3, (lua_Integer)i);
    lua_newtable(L);
    lua_rawseti(L, 2, 2);
    lua_newtable(L);
    lua_rawseti(L, 2, 4);
    return 2;
}

/* multi:poll(timeout_s) -> number of ready descriptors; waits at most timeout_s. */
static int l_multi_poll(lua_State *L)
{
    l_multi *m = check_multi(L, 1);
    double s = luaL_optnumber(L, 2, 0);
    int numfds = 0;
    double ms;
    luaL_argcheck(L, s >= 0 && s < HUGE_VAL, 2, "finite non-negative seconds expected");
    multi_forked(L, m);
    ms = ceil(s * 1000.0);
    if (ms > INT_MAX)
        ms = INT_MAX;
    if (et_multi_poll(&m->e, (int)ms, &numfds) != ET_OK)
        return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(m->e.mc));
    lua_pushinteger(L, numfds);
    return 1;
}

/* multi:timeout() -> seconds until perform is due (et_multi_timeout); nil when nothing is. */
static int l_multi_timeout(lua_State *L)
{
    l_multi *m = check_multi(L, 1);
    double t;
    multi_forked(L, m);
    t = et_multi_timeout(&m->e);
    if (t < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)t);
    return 1;
}

/* multi:sockets() -> { { fd = n, read = bool, write = bool }, ... } */
static int l_multi_sockets(lua_State *L)
{
    l_multi *m = check_multi(L, 1);
    size_t i;
    lua_settop(L, 1);
    multi_forked(L, m);
    m->pins++;                                  /* the loop allocates: a finalizer may close m */
    lua_createtable(L, (int)m->e.nsocks, 0);
    for (i = 0; i < m->e.nsocks; i++) {
        int fd, rd, wr;
        et_multi_socket(&m->e, i, &fd, &rd, &wr);
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)fd);
        lua_setfield(L, -2, "fd");
        lua_pushboolean(L, rd);
        lua_setfield(L, -2, "read");
        lua_pushboolean(L, wr);
        lua_setfield(L, -2, "write");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    multi_unpin(L, 1, m);
    return 1;
}

static int l_multi_tostring(lua_State *L)
{
    l_multi *m = l_check_class(L, 1, UP_MULTI, ET_MULTI_MT);
    if (m->e.cm)
        lua_pushfstring(L, "eternaltwin.core.Multi (%d in flight)", (int)et_multi_count(&m->e));
    else
        lua_pushliteral(L, "eternaltwin.core.Multi (closed)");
    return 1;
}

const luaL_Reg l_multi_meth[] = {
    { "add", l_multi_add },
    { "perform", l_multi_perform },
    { "poll", l_multi_poll },
    { "finished", l_multi_finished },
    { "timeout", l_multi_timeout },
    { "sockets", l_multi_sockets },
    { "close", l_multi_close },
    { NULL, NULL }
};

const luaL_Reg l_multi_meta[] = {
    { "__gc", l_multi_gc },
#if ET_HAVE_CLOSE
    { "__close", l_multi_close },
#endif
    { "__tostring", l_multi_tostring },
    { NULL, NULL }
};
