/* SPDX-License-Identifier: MIT */
/* What the HTTP bindings share: request arguments, results, the packed headers' table
 * (core.headers_table), option readers, class checks; and the opener of the three classes
 * (Session: l_session.c, Multi: l_multi.c, Transfer: l_xfer.c). */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "l_http.h"

#if LUA_VERSION_NUM < 503
char et_uv_key;     /* the key of the user-value box of every binding file (et_compat.h) */
#endif

static const char *const method_names[] = {
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", NULL
};

/* ---------------------------------------------------------------- shared request arguments */

/* Reads method, url, headers, body, flags at stack slots first..first+4. Raises on mistakes,
 * before any C resource is touched. May push one scratch userdata (many headers). The caller
 * makes no Lua allocation between this and et_xfer_prepare (see the headers below). */
void l_check_request(lua_State *L, int first, req_args *a)
{
    size_t len, i, n;
    const char **hdrs;
    int hi = first + 2, bi = first + 3, fi = first + 4;

    a->r.method = (et_http_method_t)luaL_checkoption(L, first, NULL, method_names);
    a->r.url = luaL_checklstring(L, first + 1, &len);
    luaL_argcheck(L, strlen(a->r.url) == len, first + 1, "URL contains a NUL byte");

    a->r.body = NULL;
    a->r.bodylen = 0;
    if (!lua_isnoneornil(L, bi))
        a->r.body = luaL_checklstring(L, bi, &a->r.bodylen);
    luaL_argcheck(L, !(a->r.body && a->r.method == ET_HTTP_HEAD), bi, "a HEAD request has no body");

    a->r.fresh = 0;
    a->r.no_redirects = 0;
    if (!lua_isnoneornil(L, fi)) {
        luaL_checktype(L, fi, LUA_TTABLE);
        lua_getfield(L, fi, "fresh");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_isboolean(L, -1), fi, "flag 'fresh': boolean expected");
            a->r.fresh = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
        lua_getfield(L, fi, "redirects");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_isboolean(L, -1), fi, "flag 'redirects': boolean expected");
            a->r.no_redirects = !lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
    }

    /* The headers last: their strings stay referenced only by the caller's table, so no Lua
     * allocation (which could run a finalizer that empties that table) may come between taking
     * these pointers and the request copying them. */
    a->r.headers = NULL;
    a->r.nheaders = 0;
    if (!lua_isnoneornil(L, hi)) {
        luaL_checktype(L, hi, LUA_TTABLE);
        n = (size_t)lua_rawlen(L, hi);
        /* Many headers: a scratch userdata, left on the stack for the caller's call. */
        hdrs = n <= HDR_STACK ? a->stack_hdrs
                              : (const char **)lua_newuserdata(L, n * sizeof *hdrs);
        for (i = 0; i < n; i++) {
            const char *s;
            size_t slen;
            lua_rawgeti(L, hi, (lua_Integer)i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, hi, lua_pushfstring(L, "header %d: string expected, got %s",
                                                    (int)i + 1, luaL_typename(L, -1)));
            s = lua_tolstring(L, -1, &slen);
            if (strcspn(s, "\r\n") != slen)
                luaL_argerror(L, hi, lua_pushfstring(L, "header injection: header %d contains "
                                                        "CR, LF or NUL", (int)i + 1));
            hdrs[i] = s;            /* still referenced by the table */
            lua_pop(L, 1);
        }
        a->r.headers = hdrs;
        a->r.nheaders = n;
    }
}

/* ---------------------------------------------------------------- kept strings */

/* Strings the Lua state already interns (5.1, LuaJIT: all; 5.2 and later: up to 40 bytes) cost
 * nothing to push again. Longer ones are a new string each time in 5.2 and later: a response's
 * packed headers (about 200 bytes) and body were 387 of a plain GET's 539 bytes of garbage on
 * 5.4 (each an allocation, a copy, and later the GC's work to free it). So the strings last
 * handed out for a plain request (no caller headers, no body: no credentials went out) are kept,
 * one headers string and one body string per Lua state, and handed out again when the next plain
 * response has the same bytes (the same resource asked again within the second its Date header
 * names). A string is a value: the caller cannot tell, except by memory. */
#if LUA_VERSION_NUM >= 502
#define KEPT_MIN 41             /* shorter ones are interned by Lua itself */
#define KEPT_MAX 4096           /* longer ones are neither compared nor kept */
#endif

/* Pushes s[0..n): the string kept in slot k of UP_KEPT when it has these bytes, else a new one,
 * then kept there when keep says the response may be. */
static void push_kept(lua_State *L, int k, const char *s, size_t n, int keep)
{
#if LUA_VERSION_NUM >= 502
    if (keep && n >= KEPT_MIN && n <= KEPT_MAX && lua_type(L, UP_KEPT) == LUA_TTABLE) {
        size_t len;
        lua_rawgeti(L, UP_KEPT, k);
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *old = lua_tolstring(L, -1, &len);
            if (len == n && memcmp(old, s, n) == 0)
                return;
        }
        lua_pop(L, 1);
        lua_pushlstring(L, s, n);
        lua_pushvalue(L, -1);
        lua_rawseti(L, UP_KEPT, k);
        return;
    }
#else
    (void)k;
    (void)keep;
#endif
    lua_pushlstring(L, s, n);
}

/* Pushes the headers table of a finished transfer. */
static void push_headers(lua_State *L, const et_headers_t *h)
{
    size_t i;
    lua_createtable(L, 0, (int)h->n);
    for (i = 0; i < h->n; i++) {
        lua_pushlstring(L, h->items[i].value.data ? h->items[i].value.data : "",
                        h->items[i].value.len);
        lua_setfield(L, -2, h->items[i].name);
    }
}

/* The headers of a session made with `packed_headers`: the packed lines of the final block, as
 * et_headers_feed appended them (per header: its lower-case name, a NUL, the value's length in 4
 * bytes big-endian, the value). One string, made at once, instead of a table and two strings per
 * header: the client builds the table (core.headers_table) only when it is read. */
static void push_headers_packed(lua_State *L, const et_headers_t *h, int keep)
{
    push_kept(L, 1, h->pk.data ? h->pk.data : "", h->pk.len, keep);
}

/* Joins the values gathered for repeated names (rep: name -> array of values) into t. */
static void join_repeats(lua_State *L, int t, int rep)
{
    lua_pushnil(L);
    while (lua_next(L, rep)) {                  /* name, values */
        luaL_Buffer b;
        size_t i, n = lua_rawlen(L, -1);
        const char *sep = strcmp(lua_tostring(L, -2), "set-cookie") == 0 ? "\n" : ", ";
        int vals = lua_gettop(L);
        lua_pushvalue(L, -2);                   /* name, values, name */
        luaL_buffinit(L, &b);
        for (i = 1; i <= n; i++) {
            if (i > 1)
                luaL_addstring(&b, sep);
            lua_rawgeti(L, vals, (lua_Integer)i);
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);                    /* name, values, name, joined */
        lua_rawset(L, t);
        lua_pop(L, 1);                          /* name */
    }
}

/* core.headers_table(packed): the table of a packed header string (see push_headers_packed):
 * repeated names joined with ", " (set-cookie with "\n"), as et_headers_feed joins them. */
static int l_headers_table(lua_State *L)
{
    size_t len, pos, n = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    et_packed_entry_t e;
    int rc, rep = 0;
    lua_settop(L, 1);
    for (pos = 0; (rc = et_packed_next(s, len, &pos, &e)) == 1;)   /* count and check */
        n++;
    if (rc < 0)
        return luaL_argerror(L, 1, "not packed headers");
    lua_createtable(L, 0, n > INT_MAX ? INT_MAX : (int)n);           /* 2: the table */
    lua_pushnil(L);                             /* 3: repeated names -> values, when one comes */
    for (pos = 0; et_packed_next(s, len, &pos, &e) == 1;) {
        lua_pushlstring(L, e.name, e.nlen);                     /* name */
        lua_pushvalue(L, -1);
        if (et_rawget(L, 2) == LUA_TNIL) {                      /* name, nil: the first value */
            lua_pop(L, 1);
            lua_pushlstring(L, e.value, e.vlen);
            lua_rawset(L, 2);
            continue;
        }
        if (!rep) {                                             /* name, first: a repeat */
            lua_newtable(L);
            lua_replace(L, 3);
            rep = 1;
        }
        lua_pushvalue(L, -2);
        if (et_rawget(L, 3) == LUA_TNIL) {                      /* name, first, nil */
            lua_pop(L, 1);
            lua_createtable(L, 4, 0);                           /* name, first, values */
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);                              /* name, values */
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, 3);
        } else {
            lua_replace(L, -2);                                 /* name, values */
        }
        lua_pushlstring(L, e.value, e.vlen);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
    }
    if (rep)
        join_repeats(L, 2, 3);
    lua_settop(L, 2);
    return 1;
}

/* status, headers, body, effective_url  or  nil, code, message. Without an effective URL of its
 * own (the session elides the URL it was asked for), the URL is the string at fallback_idx (0:
 * nil): the caller's own string, not a copy. */
int l_push_result(lua_State *L, const et_xfer_t *x, int fallback_idx)
{
    if (x->code != ET_HTTP_OK) {
        lua_pushnil(L);
        lua_pushstring(L, et_http_code_name(x->code));
        lua_pushstring(L, x->message ? x->message : "out of memory");
        return 3;
    }
    lua_pushinteger(L, x->status);
    if (x->headers.packed)
        push_headers_packed(L, &x->headers, x->plain);
    else
        push_headers(L, &x->headers);
    push_kept(L, 2, x->body.data ? x->body.data : "", x->body.len, x->plain);
    if (x->effective_url)
        lua_pushstring(L, x->effective_url);
    else if (fallback_idx)
        lua_pushvalue(L, fallback_idx);
    else
        lua_pushnil(L);
    return 4;
}

/* ---------------------------------------------------------------- options */

/* Pushes opts[name]; 0 (and nothing left pushed) when absent. Raises on a wrong type. */
int l_opt_get(lua_State *L, int idx, const char *name, int type)
{
    if (et_getfield(L, idx, name) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_type(L, -1) != type)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': %s expected, got %s", name,
                                              lua_typename(L, type), luaL_typename(L, -1)));
    return 1;
}

/* Seconds (float allowed, >= 0) to milliseconds; 0 stays 0 (no limit), tiny values round up. */
static long opt_ms(lua_State *L, int idx, const char *name)
{
    double s, ms;
    if (!l_opt_get(L, idx, name, LUA_TNUMBER))
        return 0;
    s = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(s >= 0 && s < HUGE_VAL))
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': finite non-negative number expected", name));
    ms = ceil(s * 1000.0);
    if (ms > 1e12)
        ms = 1e12;
    return (long)ms;
}

lua_Integer l_opt_int(lua_State *L, int idx, const char *name, lua_Integer def, lua_Integer min)
{
    lua_Integer v;
    int ok;
    if (!l_opt_get(L, idx, name, LUA_TNUMBER))
        return def;
    v = et_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || v < min)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': integer >= %d expected", name, (int)min));
    return v;
}

static int opt_bool(lua_State *L, int idx, const char *name, int def)
{
    int v;
    if (!l_opt_get(L, idx, name, LUA_TBOOLEAN))
        return def;
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Copies opts[name] (a string without NUL, CR or LF) into *slot. */
static void opt_str(lua_State *L, int idx, const char *name, char **slot)
{
    size_t len;
    const char *s;
    if (!l_opt_get(L, idx, name, LUA_TSTRING))
        return;
    s = lua_tolstring(L, -1, &len);
    if (strcspn(s, "\r\n") != len)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': contains CR, LF or NUL", name));
    if (et_http_opts_set_str(slot, s) != ET_OK)
        luaL_error(L, "not enough memory");
    lua_pop(L, 1);
}

/* Raises on a key that is not one of names. */
void l_opt_known(lua_State *L, int idx, const char *const *names)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int i, found = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (i = 0; names[i]; i++)
                if (strcmp(k, names[i]) == 0)
                    found = 1;
            if (!found)
                luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", k));
        } else {
            luaL_argerror(L, idx, "option names are strings");
        }
    }
}

static const char *const session_opts[] = {
    "timeout", "connect_timeout", "verify_ssl", "ca_file", "allow_redirects", "max_redirects",
    "user_agent", "max_body_size", "proxy", "packed_headers", "elide_url", NULL
};

/* proxy: nil the environment's (curl's default), false none, a string that proxy. */
static void opt_proxy(lua_State *L, int idx, et_http_opts_t *o)
{
    lua_getfield(L, idx, "proxy");
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        if (et_http_opts_set_str(&o->proxy, "") != ET_OK)
            luaL_error(L, "not enough memory");
    } else if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, idx, "option 'proxy': string or false expected");
        lua_pop(L, 1);
        opt_str(L, idx, "proxy", &o->proxy);
        return;
    }
    lua_pop(L, 1);
}

void l_read_session_opts(lua_State *L, int idx, et_http_opts_t *o)
{
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    l_opt_known(L, idx, session_opts);
    o->timeout_ms = opt_ms(L, idx, "timeout");
    o->connect_timeout_ms = opt_ms(L, idx, "connect_timeout");
    o->verify_ssl = opt_bool(L, idx, "verify_ssl", 1);
    opt_str(L, idx, "ca_file", &o->ca_file);
    o->allow_redirects = opt_bool(L, idx, "allow_redirects", 0);
    o->max_redirects = (long)l_opt_int(L, idx, "max_redirects", 10, 0);
    opt_str(L, idx, "user_agent", &o->user_agent);
    o->max_body_size = (size_t)l_opt_int(L, idx, "max_body_size", ET_DEFAULT_MAX_BODY, 0);
    opt_proxy(L, idx, o);
    o->packed_headers = opt_bool(L, idx, "packed_headers", 0);
    o->elide_url = opt_bool(L, idx, "elide_url", 0);
}

/* ---------------------------------------------------------------- classes */

/* Does the userdata at i have the metatable at upvalue index up? (never raises) */
int l_is_class(lua_State *L, int i, int up)
{
    int same;
    if (lua_type(L, i) != LUA_TUSERDATA || !lua_getmetatable(L, i))
        return 0;
    same = lua_rawequal(L, -1, up);
    lua_pop(L, 1);
    return same;
}

/* The userdata at i if it is of the class; else raises as luaL_checkudata does. */
void *l_check_class(lua_State *L, int i, int up, const char *tname)
{
    if (l_is_class(L, i, up))
        return lua_touserdata(L, i);
    return luaL_checkudata(L, i, tname);
}

/* ---------------------------------------------------------------- opener */

void l_http_open(lua_State *L)
{
    int mod = lua_gettop(L);
    /* The three metatables first: every function gets them as upvalues 1-3 (see check_class). */
    luaL_newmetatable(L, ET_SESSION_MT);
    luaL_newmetatable(L, ET_MULTI_MT);
    luaL_newmetatable(L, ET_XFER_MT);
    lua_createtable(L, 2, 0);                   /* UP_KEPT */
    l_newclass(L, ET_SESSION_MT, l_session_meth, l_session_meta, L_HTTP_NUP);
    l_newclass(L, ET_MULTI_MT, l_multi_meth, l_multi_meta, L_HTTP_NUP);
    l_newclass(L, ET_XFER_MT, l_xfer_meth, l_xfer_meta, L_HTTP_NUP);
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -4);
    lua_pushvalue(L, -4);
    lua_pushcclosure(L, l_session_new, L_HTTP_NUP);
    lua_setfield(L, mod, "session");
    lua_pushcclosure(L, l_multi_new, L_HTTP_NUP);   /* (the four upvalues, taken) */
    lua_setfield(L, mod, "multi");
    lua_pushcfunction(L, l_headers_table);
    lua_setfield(L, -2, "headers_table");
}
