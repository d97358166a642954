/* SPDX-License-Identifier: MIT */
/* Lua binding of et_mxfer: the Transfer class (one request of a Multi). Its result becomes Lua
 * values here; the engine (et_multi) carries the transfer. A finished Transfer has given its easy
 * handle back to the multi's pool at once (no need to wait for result() or __gc) and keeps only
 * its own buffers. */
#include "l_http.h"

static l_xfer *check_xfer(lua_State *L, int i)
{
    return l_check_class(L, i, UP_XFER, ET_XFER_MT);
}

/* The Transfer for multi:add at stack index i: the one there when it can carry another request
 * (done, cancelled or taken; out of any multi; not in use by a binding; already given by
 * finished()): its result goes (a body handed to Lua stays Lua's), its buffers stay for the next
 * response. Else a new one, closed until added, put at i. */
l_xfer *l_xfer_for_add(lua_State *L, int i)
{
    l_xfer *t;
    if (l_is_class(L, i, UP_XFER)) {
        t = lua_touserdata(L, i);
        if (!t->pins && !t->close_pending && !t->listed && et_mxfer_recycle(&t->mx)) {
            if (t->body_in_uv) {
                lua_pushnil(L);
                l_setuv(L, i);
                t->body_in_uv = 0;
            }
            return t;
        }
    }
    t = l_newud(L, sizeof *t);
    et_mxfer_init(&t->mx);
    t->body_in_uv = 0;
    t->pins = t->close_pending = 0;
    t->listed = 0;
    lua_pushvalue(L, UP_XFER);
    lua_setmetatable(L, -2);
    lua_replace(L, i);
    return t;
}

/* Ends a binding's use of t: a cancel() that came meanwhile (from a finalizer) happens now. */
static void xfer_unpin(l_xfer *t)
{
    if (--t->pins == 0 && t->close_pending) {
        t->close_pending = 0;
        et_mxfer_close(&t->mx);
    }
}

/* transfer:result() */
static int l_xfer_result(lua_State *L)
{
    l_xfer *t = check_xfer(L, 1);
    int n;
    switch (t->mx.state) {
    case ET_MX_DONE:
        t->pins++;                              /* push_result allocates: a finalizer may cancel t */
        n = l_push_result(L, &t->mx.x, 0);
        if (n == 4 && t->body_in_uv) {
            l_getuv(L, 1);                      /* the body, handed over before */
            lua_replace(L, -3);
        } else if (n == 4 && t->mx.x.body.data) {
            /* A later result() gives the same string: it is the user value now. */
            lua_pushvalue(L, -2);
            l_setuv(L, 1);
            et_mxfer_body_handed(&t->mx);
            t->body_in_uv = 1;
        }
        xfer_unpin(t);
        return n;
    case ET_MX_CANCELLED:
        lua_pushnil(L);
        lua_pushliteral(L, "cancelled");
        lua_pushliteral(L, "transfer cancelled");
        return 3;
    case ET_MX_TAKEN:
        lua_pushnil(L);
        lua_pushliteral(L, "taken");
        lua_pushliteral(L, "transfer result already taken");
        return 3;
    default:
        lua_pushnil(L);
        lua_pushliteral(L, "pending");
        return 2;
    }
}

/* transfer:take(): result() once, for an owner that reads it once and may reuse the transfer
 * (multi:add's reuse): nothing of the result stays with the transfer (the body is not kept as
 * its user value, a small body buffer and the header buffers stay for its next request), and a
 * later result() gives nil, "taken". Before the transfer is done, as result(). */
static int l_xfer_take(lua_State *L)
{
    l_xfer *t = l_check_class(L, 1, UP_XFER, ET_XFER_MT);
    int n;
    if (t->mx.state != ET_MX_DONE || t->body_in_uv)
        return l_xfer_result(L);
    t->pins++;                                  /* push_result allocates: a finalizer may cancel t */
    n = l_push_result(L, &t->mx.x, 0);
    et_mxfer_body_handed(&t->mx);
    et_xfer_reset_result(&t->mx.x);
    t->mx.state = ET_MX_TAKEN;
    xfer_unpin(t);
    return n;
}

/* transfer:cancel(): detaches (if in flight) and frees; idempotent. */
static int l_xfer_cancel(lua_State *L)
{
    l_xfer *t = check_xfer(L, 1);
    if (t->mx.m) {
        /* Unpin from the multi's in-flight arrays (found through the transfer's uservalue). */
        lua_settop(L, 1);
        if (l_getuv(L, 1) == LUA_TUSERDATA && t->mx.slot > 0) {    /* t, multi */
            l_multi_slot(L, 2, 1);                                /* t, multi, transfers */
            lua_pushnil(L);
            lua_rawseti(L, -2, t->mx.slot);
            l_multi_slot(L, 2, 3);                                /* t, multi, transfers, tags */
            lua_pushnil(L);
            lua_rawseti(L, -2, t->mx.slot);
        }
        lua_settop(L, 1);
        lua_pushnil(L);
        l_setuv(L, 1);
    }
    if (t->pins > 0)
        t->close_pending = 1;                   /* result() is reading its buffers */
    else
        et_mxfer_close(&t->mx);
    t->mx.state = ET_MX_CANCELLED;
    return 0;
}

static int l_xfer_gc(lua_State *L)
{
    l_xfer *t = check_xfer(L, 1);
    t->close_pending = 0;
    et_mxfer_close(&t->mx);
    if (t->mx.state != ET_MX_DONE)
        t->mx.state = ET_MX_CANCELLED;
    return 0;
}

static int l_xfer_tostring(lua_State *L)
{
    static const char *const names[] = { "new", "pending", "done", "cancelled", "taken" };
    l_xfer *t = check_xfer(L, 1);
    lua_pushfstring(L, "eternaltwin.core.Transfer (%s)", names[t->mx.state]);
    return 1;
}

const luaL_Reg l_xfer_meth[] = {
    { "result", l_xfer_result },
    { "take", l_xfer_take },
    { "cancel", l_xfer_cancel },
    { NULL, NULL }
};

const luaL_Reg l_xfer_meta[] = {
    { "__gc", l_xfer_gc },
#if ET_HAVE_CLOSE
    { "__close", l_xfer_cancel },
#endif
    { "__tostring", l_xfer_tostring },
    { NULL, NULL }
};
