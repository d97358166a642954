/* SPDX-License-Identifier: MIT */
/* Lua binding of et_session: the Session class (blocking requests over one keep-alive handle).
 * The userdata is made closed, with its metatable, before anything is opened; every method checks
 * its arguments first. The work is et_session's. */
#include "l_http.h"

l_session *l_check_session(lua_State *L, int i)
{
    l_session *s = l_check_class(L, i, UP_SESSION, ET_SESSION_MT);
    if (!s->open || s->close_pending)
        luaL_argerror(L, i, "attempt to use a closed session");
    return s;
}

static void session_free(l_session *s)
{
    et_session_free(&s->s);
    s->open = 0;
    s->close_pending = 0;
}

static void session_unpin(l_session *s)
{
    if (s->pins > 0 && --s->pins == 0 && s->close_pending)
        session_free(s);
}

/* Raises for a failed et_session_open / et_session_forked (the session reads as closed when no
 * handle could be made). */
static void session_raise(lua_State *L, l_session *s, int rc)
{
    if (rc == ET_EHANDLE) {
        s->open = 0;
        luaL_error(L, "cannot create a curl easy handle");
    }
    luaL_error(L, "%s", rc == ET_ECURL && s->s.x.message ? s->s.x.message : "not enough memory");
}

/* session(opts) */
int l_session_new(lua_State *L)
{
    l_session *s;
    et_http_opts_t *o;
    int rc;
    lua_settop(L, 1);                           /* 1: opts, 2: the session */
    s = l_newud(L, sizeof *s);
    et_session_init(&s->s);
    s->open = 0;
    s->pins = s->close_pending = 0;
    lua_pushvalue(L, UP_SESSION);
    lua_setmetatable(L, -2);
    o = s->s.opts = et_http_opts_new();         /* (held by the userdata: __gc frees it) */
    if (!o)
        return luaL_error(L, "not enough memory");
    l_read_session_opts(L, 1, o);
    if (et_http_opts_finish(o) != ET_OK)
        return luaL_error(L, "not enough memory");
    rc = et_session_open(&s->s, o);
    if (rc == ET_EHANDLE)
        session_raise(L, s, rc);
    s->open = 1;
    if (rc != ET_OK)
        session_raise(L, s, rc);
    return 1;
}

static int l_session_close(lua_State *L)
{
    l_session *s = l_check_class(L, 1, UP_SESSION, ET_SESSION_MT);
    if (s->pins > 0)
        s->close_pending = 1;                   /* a binding is using it: closed when it is done */
    else
        session_free(s);
    return 0;
}

static int l_session_gc(lua_State *L)
{
    session_free(l_check_class(L, 1, UP_SESSION, ET_SESSION_MT));
    return 0;
}

/* session:request(method, url, headers, body, flags) */
static int l_session_request(lua_State *L)
{
    l_session *s = l_check_session(L, 1);
    req_args a;
    int rc, n;

    lua_settop(L, 6);
    l_check_request(L, 2, &a);                  /* may push a scratch array at 7 */
    if (!s->open || s->close_pending)           /* (l_check_request may have run a finalizer that */
        luaL_argerror(L, 1, "attempt to use a closed session");     /* closed it; s is at 1) */
    rc = et_session_request(&s->s, &a.r);
    if (rc == ET_ENOMEM)
        return luaL_error(L, "not enough memory");
    if (rc != ET_OK)
        session_raise(L, s, rc);
    s->pins++;                                  /* l_push_result allocates: a finalizer may close s */
    n = l_push_result(L, &s->s.x, 3);           /* (the URL argument) */
    if (!s->close_pending)
        et_xfer_reset_result(&s->s.x);
    session_unpin(s);
    return n;
}

/* session:stats(): { requests = n, connections = new connections opened so far,
 * local_port = the local port of the last request's connection (0 if none) } */
static int l_session_stats(lua_State *L)
{
    l_session *s = l_check_session(L, 1);
    long port = et_session_local_port(&s->s);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)s->s.requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, (lua_Integer)s->s.connections);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "local_port");
    return 1;
}

static int l_session_tostring(lua_State *L)
{
    l_session *s = l_check_class(L, 1, UP_SESSION, ET_SESSION_MT);
    lua_pushfstring(L, "eternaltwin.core.Session (%s)", s->open ? "open" : "closed");
    return 1;
}

const luaL_Reg l_session_meth[] = {
    { "request", l_session_request },
    { "stats", l_session_stats },
    { "close", l_session_close },
    { NULL, NULL }
};

const luaL_Reg l_session_meta[] = {
    { "__gc", l_session_gc },
#if ET_HAVE_CLOSE
    { "__close", l_session_close },
#endif
    { "__tostring", l_session_tostring },
    { NULL, NULL }
};
