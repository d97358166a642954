/* SPDX-License-Identifier: MIT */
/* Lua binding of et_http: Session (blocking, keep-alive), Multi and Transfer (non-blocking).
 *
 * Ownership:
 * - A Session owns one easy handle and its et_xfer_t; requests reuse both (keep-alive).
 * - A Multi owns the CURLM, a pool of idle easy handles (each kept with its set-up, so the next
 *   transfer of the same session sets only its request), the socket table and a uservalue table
 *   { [1] = in-flight array (slot -> Transfer), [2] = finished array, [3] = in-flight tags
 *   (slot -> the tag given to add), [4] = finished tags }. Slots are small integers reused
 *   last-freed-first, so both arrays stay in the tables' array parts (no rehash as transfers
 *   come and go). The array keeps every in-flight Transfer reachable, so one is never collected
 *   while curl uses its buffers.
 * - An in-flight Transfer is linked into its Multi's C list and holds the Multi as its uservalue.
 *   Completion (perform), cancel, the Transfer's __gc and the Multi's close all unlink it, in
 *   whatever order lua_close runs the finalizers: the C list is the single source of truth, and
 *   a Transfer whose t->m is NULL never touches a Multi again.
 * - A finished Transfer gives its easy handle back to the pool at once (no need to wait for
 *   result() or __gc) and keeps only its own buffers. */
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "et_http.h"
#include "l_common.h"

#define l_newud(L, sz)    et_newuserdata((L), (sz))
#define l_getuv(L, i)     et_getuv((L), (i))
#define l_setuv(L, i)     et_setuv((L), (i))

#define POOL_MAX 1024       /* idle easy handles a Multi keeps (each with its set-up) */
#define POOL_SCAN 16        /* pooled handles looked at for one already set up for a session */
#define HDR_STACK 32        /* request headers handled without a scratch allocation */

static const char *const method_names[] = {
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", NULL
};

/* ---------------------------------------------------------------- shared request arguments */

/* The validated arguments of one request; strings borrowed from the Lua stack. */
typedef struct req_args {
    et_http_method_t method;
    const char *url;
    const char *const *headers;
    size_t nheaders;
    const char *body;
    size_t bodylen;
    int fresh;
    int no_redirects;
    const char *stack_hdrs[HDR_STACK];
} req_args;

/* Reads method, url, headers, body, flags at stack slots first..first+4. Raises on mistakes,
 * before any C resource is touched. May push one scratch userdata (many headers). The caller
 * makes no Lua allocation between this and et_xfer_prepare (see the headers below). */
static void check_request(lua_State *L, int first, req_args *a)
{
    size_t len, i, n;
    const char **hdrs;
    int hi = first + 2, bi = first + 3, fi = first + 4;

    a->method = (et_http_method_t)luaL_checkoption(L, first, NULL, method_names);
    a->url = luaL_checklstring(L, first + 1, &len);
    luaL_argcheck(L, strlen(a->url) == len, first + 1, "URL contains a NUL byte");

    a->body = NULL;
    a->bodylen = 0;
    if (!lua_isnoneornil(L, bi))
        a->body = luaL_checklstring(L, bi, &a->bodylen);
    luaL_argcheck(L, !(a->body && a->method == ET_HTTP_HEAD), bi, "a HEAD request has no body");

    a->fresh = 0;
    a->no_redirects = 0;
    if (!lua_isnoneornil(L, fi)) {
        luaL_checktype(L, fi, LUA_TTABLE);
        lua_getfield(L, fi, "fresh");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_isboolean(L, -1), fi, "flag 'fresh': boolean expected");
            a->fresh = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
        lua_getfield(L, fi, "redirects");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_isboolean(L, -1), fi, "flag 'redirects': boolean expected");
            a->no_redirects = !lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
    }

    /* The headers last: their strings stay referenced only by the caller's table, so no Lua
     * allocation (which could run a finalizer that empties that table) may come between taking
     * these pointers and the request copying them. */
    a->headers = NULL;
    a->nheaders = 0;
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
        a->headers = hdrs;
        a->nheaders = n;
    }
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
static void push_headers_packed(lua_State *L, const et_headers_t *h)
{
    lua_pushlstring(L, h->pk.data ? h->pk.data : "", h->pk.len);
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
static int push_result(lua_State *L, const et_xfer_t *x, int fallback_idx)
{
    if (x->code != ET_HTTP_OK) {
        lua_pushnil(L);
        lua_pushstring(L, et_http_code_name(x->code));
        lua_pushstring(L, x->message ? x->message : "out of memory");
        return 3;
    }
    lua_pushinteger(L, x->status);
    if (x->headers.packed)
        push_headers_packed(L, &x->headers);
    else
        push_headers(L, &x->headers);
    lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
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
static int opt_get(lua_State *L, int idx, const char *name, int type)
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
    if (!opt_get(L, idx, name, LUA_TNUMBER))
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

static lua_Integer opt_int(lua_State *L, int idx, const char *name, lua_Integer def, lua_Integer min)
{
    lua_Integer v;
    int ok;
    if (!opt_get(L, idx, name, LUA_TNUMBER))
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
    if (!opt_get(L, idx, name, LUA_TBOOLEAN))
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
    if (!opt_get(L, idx, name, LUA_TSTRING))
        return;
    s = lua_tolstring(L, -1, &len);
    if (strcspn(s, "\r\n") != len)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': contains CR, LF or NUL", name));
    if (et_http_opts_set_str(slot, s) != ET_OK)
        luaL_error(L, "not enough memory");
    lua_pop(L, 1);
}

/* Raises on a key that is not one of names. */
static void opt_known(lua_State *L, int idx, const char *const *names)
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

static void read_session_opts(lua_State *L, int idx, et_http_opts_t *o)
{
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    opt_known(L, idx, session_opts);
    o->timeout_ms = opt_ms(L, idx, "timeout");
    o->connect_timeout_ms = opt_ms(L, idx, "connect_timeout");
    o->verify_ssl = opt_bool(L, idx, "verify_ssl", 1);
    opt_str(L, idx, "ca_file", &o->ca_file);
    o->allow_redirects = opt_bool(L, idx, "allow_redirects", 0);
    o->max_redirects = (long)opt_int(L, idx, "max_redirects", 10, 0);
    opt_str(L, idx, "user_agent", &o->user_agent);
    o->max_body_size = (size_t)opt_int(L, idx, "max_body_size", ET_DEFAULT_MAX_BODY, 0);
    opt_proxy(L, idx, o);
    o->packed_headers = opt_bool(L, idx, "packed_headers", 0);
    o->elide_url = opt_bool(L, idx, "elide_url", 0);
}

/* ---------------------------------------------------------------- Session */

/* The three classes' metatables are upvalues 1-3 of every function of this file that Lua calls
 * (l_http_open): a check compares a userdata's metatable with one of them, where luaL_checkudata
 * would look the class name up in the registry as a string, once per check and several checks
 * per request. A function without them (none should be) still gets luaL_checkudata's answer. */
#define UP_SESSION lua_upvalueindex(1)
#define UP_MULTI   lua_upvalueindex(2)
#define UP_XFER    lua_upvalueindex(3)

/* Does the userdata at i have the metatable at upvalue index up? (never raises) */
static int is_class(lua_State *L, int i, int up)
{
    int same;
    if (lua_type(L, i) != LUA_TUSERDATA || !lua_getmetatable(L, i))
        return 0;
    same = lua_rawequal(L, -1, up);
    lua_pop(L, 1);
    return same;
}

/* The userdata at i if it is of the class; else raises as luaL_checkudata does. */
static void *check_class(lua_State *L, int i, int up, const char *tname)
{
    if (is_class(L, i, up))
        return lua_touserdata(L, i);
    return luaL_checkudata(L, i, tname);
}

/* Pins: while a binding holds pointers into an object across Lua allocations (which may run a
 * finalizer that closes it), `pins` is non-zero and an explicit close only sets close_pending; the
 * binding closes it when it unpins. __gc never waits: it cannot run while a binding holds the
 * object on its stack. A pin left by a raise (memory error) only delays the close to __gc. */

typedef struct l_session {
    et_xfer_t x;
    et_http_opts_t *opts;       /* shared with the session's transfers in flight (refs) */
    int open;
    int pins, close_pending;
    pid_t pid;                  /* the process that opened the handle (see session_forked) */
    lua_Integer requests, connections;
} l_session;

static l_session *check_session(lua_State *L, int i)
{
    l_session *s = check_class(L, i, UP_SESSION, ET_SESSION_MT);
    if (!s->open || s->close_pending)
        luaL_argerror(L, i, "attempt to use a closed session");
    return s;
}

static void session_free(l_session *s)
{
    CURL *easy = et_xfer_release(&s->x);
    if (easy && s->pid == getpid())             /* else the parent's (fork): abandoned */
        curl_easy_cleanup(easy);
    et_http_opts_unref(s->opts);
    s->opts = NULL;
    s->open = 0;
    s->close_pending = 0;
}

static void session_unpin(l_session *s)
{
    if (s->pins > 0 && --s->pins == 0 && s->close_pending)
        session_free(s);
}

/* After fork(), the child must not use the parent's connections: both processes would read
 * each other's responses from the shared socket. The child abandons the handle (freeing it could
 * write a TLS close_notify on the parent's connection) and starts a fresh one. */
static void session_forked(lua_State *L, l_session *s)
{
    CURL *easy;
    if (s->pid == getpid())
        return;
    s->pid = getpid();
    (void)et_xfer_detach(&s->x);                /* abandoned, never freed in this process */
    et_xfer_reset_result(&s->x);
    easy = curl_easy_init();
    if (!easy) {
        s->open = 0;
        luaL_error(L, "cannot create a curl easy handle");
    }
    if (et_xfer_configure(&s->x, easy, s->opts) != ET_OK)
        luaL_error(L, "%s", s->x.message ? s->x.message : "not enough memory");
}

/* session(opts): the userdata is made closed, with its metatable, before anything is opened. */
static int l_session_new(lua_State *L)
{
    l_session *s;
    CURL *easy;
    int rc;
    lua_settop(L, 1);                           /* 1: opts, 2: the session */
    s = l_newud(L, sizeof *s);
    et_xfer_init(&s->x);
    s->opts = NULL;
    s->open = 0;
    s->pins = s->close_pending = 0;
    s->pid = getpid();
    s->requests = s->connections = 0;
    lua_pushvalue(L, UP_SESSION);
    lua_setmetatable(L, -2);
    s->opts = et_http_opts_new();
    if (!s->opts)
        return luaL_error(L, "not enough memory");
    read_session_opts(L, 1, s->opts);
    if (et_http_opts_finish(s->opts) != ET_OK)
        return luaL_error(L, "not enough memory");
    easy = curl_easy_init();
    if (!easy)
        return luaL_error(L, "cannot create a curl easy handle");
    s->open = 1;
    s->x.same_url_elided = 1;                   /* request() pushes its own URL string instead */
    s->x.count_connects = 1;
    rc = et_xfer_configure(&s->x, easy, s->opts);
    if (rc != ET_OK)
        return luaL_error(L, "%s", s->x.message ? s->x.message : "not enough memory");
    return 1;
}

static int l_session_close(lua_State *L)
{
    l_session *s = check_class(L, 1, UP_SESSION, ET_SESSION_MT);
    if (s->pins > 0)
        s->close_pending = 1;                   /* a binding is using it: closed when it is done */
    else
        session_free(s);
    return 0;
}

static int l_session_gc(lua_State *L)
{
    session_free(check_class(L, 1, UP_SESSION, ET_SESSION_MT));
    return 0;
}

/* session:request(method, url, headers, body, flags) */
static int l_session_request(lua_State *L)
{
    l_session *s = check_session(L, 1);
    req_args a;
    int rc, n;
    CURLcode cc;

    lua_settop(L, 6);
    check_request(L, 2, &a);                    /* may push a scratch array at 7 */
    if (!s->open || s->close_pending)           /* (check_request may have run a finalizer that */
        luaL_argerror(L, 1, "attempt to use a closed session");     /* closed it; s is at 1) */
    session_forked(L, s);
    s->x.no_redirects = a.no_redirects;
    rc = et_xfer_prepare(&s->x, a.method, a.url, a.headers, a.nheaders, a.body, a.bodylen,
                         a.fresh, 0);
    if (rc == ET_ENOMEM)
        return luaL_error(L, "not enough memory");
    if (rc == ET_OK) {
        cc = et_xfer_perform_blocking(&s->x);
        if (et_xfer_finish(&s->x, cc) != ET_OK)
            s->x.code = s->x.code ? s->x.code : ET_HTTP_TRANSPORT;
    }
    s->requests++;
    s->connections += s->x.num_connects;
    s->pins++;                                  /* push_result allocates: a finalizer may close s */
    n = push_result(L, &s->x, 3);       /* (the URL argument) */
    if (!s->close_pending)
        et_xfer_reset_result(&s->x);
    session_unpin(s);
    return n;
}

/* session:stats(): { requests = n, connections = new connections opened so far,
 * local_port = the local port of the last request's connection (0 if none) } */
static int l_session_stats(lua_State *L)
{
    l_session *s = check_session(L, 1);
    long port = 0;
    if (curl_easy_getinfo(s->x.easy, CURLINFO_LOCAL_PORT, &port) != CURLE_OK)
        port = 0;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, s->requests);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, s->connections);
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "local_port");
    return 1;
}

static int l_session_tostring(lua_State *L)
{
    l_session *s = check_class(L, 1, UP_SESSION, ET_SESSION_MT);
    lua_pushfstring(L, "eternaltwin.core.Session (%s)", s->open ? "open" : "closed");
    return 1;
}

/* ---------------------------------------------------------------- Multi and Transfer */

typedef struct l_xfer l_xfer;

typedef struct sock_entry {
    curl_socket_t fd;
    int what;
} sock_entry;

typedef struct pool_entry {
    CURL *e;
    et_easy_state_t st;
} pool_entry;

typedef struct l_multi {
    CURLM *cm;                  /* NULL once closed */
    pool_entry *pool;
    int npool, poolcap;
    sock_entry *socks;
    size_t nsocks, sockcap;
    size_t *fdpos;              /* fd -> its index in socks + 1 (0: not there) */
    size_t fdcap;
    struct pollfd *pfds;        /* the last poll's results, for the next perform */
    size_t npfds, pfdcap;
    int polled;                 /* pfds hold fresh results from multi:poll */
    int *free_slots;            /* in-flight slots free for reuse (a stack) */
    int nfree, freecap, nslots;
    l_xfer *inflight;           /* doubly linked list of in-flight transfers */
    long max_connections;
    int pins, close_pending;    /* as a Session's */
    pid_t pid;
} l_multi;

enum { XF_NEW = 0, XF_PENDING, XF_DONE, XF_CANCELLED, XF_TAKEN };

struct l_xfer {
    et_xfer_t x;
    l_multi *m;                 /* set while in flight only */
    l_xfer *prev, *next;
    int state;
    int slot;                   /* in the multi's in-flight arrays, while in flight; else 0 */
    et_http_opts_t *opts;       /* the session's options, held while they may be in use */
    int body_in_uv;             /* result() handed the body to Lua: it is the uservalue now */
    double deadline;            /* monotonic seconds when its timeout fires; 0 none */
    int pins, close_pending;    /* result() building vs cancel() from a finalizer */
    int listed;                 /* in the multi's finished list, not yet given by finished() */
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static l_multi *check_multi(lua_State *L, int i)
{
    l_multi *m = check_class(L, i, UP_MULTI, ET_MULTI_MT);
    if (!m->cm || m->close_pending)
        luaL_argerror(L, i, "attempt to use a closed multi");
    return m;
}

static void multi_config(l_multi *m);
static void multi_free(lua_State *L, int idx, l_multi *m);

static void multi_unpin(lua_State *L, int idx, l_multi *m)
{
    if (m->pins > 0 && --m->pins == 0 && m->close_pending)
        multi_free(L, idx, m);
}

/* An idle easy handle goes back to the pool with its set-up (its session's options stay set:
 * the next transfer of that session reuses them); the connection stays in the multi's cache
 * either way. Takes st in every case (moved into the pool, or freed with the handle). */
static void pool_put(l_multi *m, CURL *e, et_easy_state_t *st)
{
    if (!e) {
        et_easy_state_free(st);
        return;
    }
    if (m && m->cm && m->npool == m->poolcap && m->poolcap < POOL_MAX) {
        int cap = m->poolcap ? m->poolcap * 2 : 16;
        pool_entry *p = realloc(m->pool, (size_t)cap * sizeof *p);
        if (p) {
            m->pool = p;
            m->poolcap = cap;
        }
    }
    if (m && m->cm && m->npool < m->poolcap) {
        /* Nothing of the last transfer stays pointed at: its buffers and its session's header
         * list may be freed while the handle waits here. */
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, (char *)NULL);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)NULL);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)NULL);
        curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)NULL);
        if (st->headers) {
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
            st->headers = NULL;
        }
        if (st->progress) {                     /* (a blocking transfer's SIGINT callback) */
            curl_easy_setopt(e, CURLOPT_NOPROGRESS, 1L);
            curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)NULL);
            st->progress = NULL;
        }
        m->pool[m->npool].e = e;
        m->pool[m->npool].st = *st;
        m->npool++;
        et_easy_state_init(st);
    } else {
        et_easy_state_free(st);
        curl_easy_cleanup(e);
    }
}

/* An idle handle, preferably one set up for these options (among the last few pooled); st
 * receives its set-up. NULL when none can be made. */
static CURL *pool_get(l_multi *m, unsigned long opts_id, et_easy_state_t *st)
{
    int i, lo = m->npool > POOL_SCAN ? m->npool - POOL_SCAN : 0;
    pool_entry tmp;
    if (m->npool == 0) {
        et_easy_state_init(st);
        return curl_easy_init();
    }
    for (i = m->npool - 1; i > lo && m->pool[i].st.opts_id != opts_id; i--)
        ;
    tmp = m->pool[i];
    m->pool[i] = m->pool[m->npool - 1];
    m->npool--;
    *st = tmp.st;
    return tmp.e;
}

/* In-flight slots: the last freed first, else the next new number, so the arrays stay dense. */
static int slot_get(l_multi *m)
{
    return m->nfree > 0 ? m->free_slots[--m->nfree] : ++m->nslots;
}

static void slot_put(l_multi *m, int slot)
{
    if (slot <= 0)
        return;
    if (m->nfree == m->freecap) {
        int cap = m->freecap ? m->freecap * 2 : 64;
        int *p = realloc(m->free_slots, (size_t)cap * sizeof *p);
        if (!p)
            return;                 /* the slot is lost: a new one is numbered instead */
        m->free_slots = p;
        m->freecap = cap;
    }
    m->free_slots[m->nfree++] = slot;
}

static void xfer_unlink(l_xfer *t)
{
    l_multi *m = t->m;
    if (!m)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        m->inflight = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->m = NULL;
}

/* Takes an in-flight transfer out of its multi: the easy handle leaves the CURLM and goes back
 * to the pool. Safe on a transfer that is not in flight. */
static void xfer_detach(l_xfer *t)
{
    l_multi *m = t->m;
    et_easy_state_t st;
    CURL *e;
    if (!m)
        return;
    e = et_xfer_detach_state(&t->x, &st);
    if (e && m->cm)
        curl_multi_remove_handle(m->cm, e);
    xfer_unlink(t);
    if (m->cm)
        slot_put(m, t->slot);
    t->slot = 0;
    pool_put(m, e, &st);                        /* (takes st, whatever becomes of e) */
    et_http_opts_unref(t->opts);
    t->opts = NULL;
}

/* Socket bookkeeping from CURLMOPT_SOCKETFUNCTION: only a C table, no Lua. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    l_multi *m = userp;
    size_t i;
    (void)easy;
    (void)socketp;
    /* Found by fd in an index (a scan would cost the number of open sockets, per call). */
    if (s < 0)
        return 0;
    if ((size_t)s >= m->fdcap) {
        size_t cap = m->fdcap ? m->fdcap : 64;
        size_t *p;
        while (cap <= (size_t)s)
            cap *= 2;
        p = realloc(m->fdpos, cap * sizeof *p);
        if (!p)
            return 0;               /* the list misses one socket; curl goes on */
        memset(p + m->fdcap, 0, (cap - m->fdcap) * sizeof *p);
        m->fdpos = p;
        m->fdcap = cap;
    }
    i = m->fdpos[s] ? m->fdpos[s] - 1 : m->nsocks;
    if (what == CURL_POLL_REMOVE) {
        if (i < m->nsocks) {
            m->socks[i] = m->socks[--m->nsocks];
            if (i < m->nsocks)
                m->fdpos[m->socks[i].fd] = i + 1;
            m->fdpos[s] = 0;
        }
        return 0;
    }
    if (i == m->nsocks) {
        if (m->nsocks == m->sockcap) {
            size_t cap = m->sockcap ? m->sockcap * 2 : 16;
            sock_entry *p = realloc(m->socks, cap * sizeof *p);
            if (!p)
                return 0;           /* the list misses one socket; curl goes on */
            m->socks = p;
            m->sockcap = cap;
        }
        m->nsocks++;
        m->fdpos[s] = i + 1;
    }
    m->socks[i].fd = s;
    m->socks[i].what = what;
    return 0;
}

/* multi(opts) */
static int l_multi_new(lua_State *L)
{
    l_multi *m;
    lua_Integer maxc = 0;
    lua_settop(L, 1);                           /* 1: opts, 2: the multi */
    m = l_newud(L, sizeof *m);
    memset(m, 0, sizeof *m);
    m->pid = getpid();
    lua_pushvalue(L, UP_MULTI);
    lua_setmetatable(L, -2);
    if (!lua_isnoneornil(L, 1)) {
        static const char *const names[] = { "max_connections", NULL };
        luaL_checktype(L, 1, LUA_TTABLE);
        opt_known(L, 1, names);
        maxc = opt_int(L, 1, "max_connections", 0, 0);
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
    m->max_connections = (long)(maxc > LONG_MAX ? LONG_MAX : maxc);
    m->cm = curl_multi_init();
    if (!m->cm)
        return luaL_error(L, "cannot create a curl multi handle");
    multi_config(m);
    return 1;
}

static void multi_config(l_multi *m)
{
    curl_multi_setopt(m->cm, CURLMOPT_MAX_TOTAL_CONNECTIONS, m->max_connections);
    curl_multi_setopt(m->cm, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(m->cm, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(m->cm, CURLMOPT_SOCKETDATA, (void *)m);
}

/* Pushes the multi's uservalue slot k (1 in flight, 2 finished). */
static void multi_slot(lua_State *L, int midx, int k)
{
    l_getuv(L, midx);
    lua_rawgeti(L, -1, k);
    lua_remove(L, -2);
}

static int l_multi_close(lua_State *L)
{
    l_multi *m = check_class(L, 1, UP_MULTI, ET_MULTI_MT);
    if (m->pins > 0 && m->cm)
        m->close_pending = 1;                   /* a binding is using it: closed when it is done */
    else
        multi_free(L, 1, m);
    return 0;
}

static int l_multi_gc(lua_State *L)
{
    multi_free(L, 1, check_class(L, 1, UP_MULTI, ET_MULTI_MT));
    return 0;
}

/* Frees the pool array and the socket, poll and slot tables (the handles are gone already). */
static void multi_free_tables(l_multi *m)
{
    free(m->pool);
    m->pool = NULL;
    m->npool = m->poolcap = 0;
    free(m->fdpos);
    m->fdpos = NULL;
    m->fdcap = 0;
    free(m->pfds);
    m->pfds = NULL;
    m->npfds = m->pfdcap = 0;
    m->polled = 0;
    free(m->free_slots);
    m->free_slots = NULL;
    m->nfree = m->freecap = m->nslots = 0;
}

/* After fork() in the child: the parent's handles (pooled and in flight) are abandoned, never
 * used or freed here (freeing one could write on the parent's connections); the transfers in
 * flight are cancelled. Only our own memory beside them is released. */
static void multi_abandon(l_multi *m)
{
    int i;
    while (m->inflight) {
        l_xfer *t = m->inflight;
        (void)et_xfer_detach(&t->x);            /* abandoned */
        xfer_unlink(t);
        t->slot = 0;
        et_http_opts_unref(t->opts);
        t->opts = NULL;
        t->state = XF_CANCELLED;
    }
    for (i = 0; i < m->npool; i++)
        et_easy_state_free(&m->pool[i].st);     /* (our URL objects; the handles are abandoned) */
    m->npool = 0;
    m->nsocks = 0;
    if (m->fdpos)
        memset(m->fdpos, 0, m->fdcap * sizeof *m->fdpos);
    m->npfds = 0;
    m->polled = 0;
    m->nfree = m->nslots = 0;
}

/* Frees the handles of the multi at stack index idx; every in-flight transfer is cancelled. */
static void multi_free(lua_State *L, int idx, l_multi *m)
{
    int i;
    m->close_pending = 0;
    if (!m->cm)
        return;
    if (m->pid != getpid()) {
        /* Made before a fork: the handles and connections are the parent's; abandon them. */
        multi_abandon(m);
        m->cm = NULL;
        free(m->socks);
        m->socks = NULL;
        m->nsocks = m->sockcap = 0;
        multi_free_tables(m);
        return;
    }
    /* Every in-flight transfer learns that its multi is gone. */
    while (m->inflight) {
        l_xfer *t = m->inflight;
        CURL *e = et_xfer_detach(&t->x);
        if (e) {
            curl_multi_remove_handle(m->cm, e);
            curl_easy_cleanup(e);
        }
        xfer_unlink(t);
        t->slot = 0;
        et_http_opts_unref(t->opts);
        t->opts = NULL;
        t->state = XF_CANCELLED;
    }
    for (i = 0; i < m->npool; i++) {
        et_easy_state_free(&m->pool[i].st);
        curl_easy_cleanup(m->pool[i].e);
    }
    m->npool = 0;
    curl_multi_cleanup(m->cm);
    m->cm = NULL;
    free(m->socks);
    m->socks = NULL;
    m->nsocks = m->sockcap = 0;
    multi_free_tables(m);
    /* Drop the references to the (now cancelled) transfers and their tags. */
    if (l_getuv(L, idx) == LUA_TTABLE) {
        lua_newtable(L);
        lua_rawseti(L, -2, 1);
        lua_newtable(L);
        lua_rawseti(L, -2, 3);
    }
    lua_pop(L, 1);
}

/* After fork(), the child abandons the parent's multi (its connections are shared with the
 * parent; freeing them could write on them) and starts a fresh one. Transfers in flight at the
 * fork belong to the parent: in the child they finish as cancelled. The multi is at index 1. */
static void multi_forked(lua_State *L, l_multi *m)
{
    int top;
    if (m->pid == getpid())
        return;
    m->pid = getpid();
    multi_abandon(m);
    m->cm = curl_multi_init();
    if (!m->cm)
        luaL_error(L, "cannot create a curl multi handle");
    multi_config(m);
    /* The cancelled transfers (and their tags) move from the in-flight arrays to the finished
     * lists. */
    top = lua_gettop(L);
    multi_slot(L, 1, 1);                        /* top+1: in flight */
    multi_slot(L, 1, 2);                        /* top+2: finished */
    multi_slot(L, 1, 3);                        /* top+3: in-flight tags */
    multi_slot(L, 1, 4);                        /* top+4: finished tags */
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

/* Transfer finalizer and cancel share this: unfinished ones detach themselves. */
static void xfer_close(l_xfer *t)
{
    CURL *e;
    xfer_detach(t);
    e = et_xfer_release(&t->x);     /* only a handle never added (failed add) is left here */
    if (e)
        curl_easy_cleanup(e);
    et_http_opts_unref(t->opts);
    t->opts = NULL;
}

static l_xfer *check_xfer(lua_State *L, int i)
{
    return check_class(L, i, UP_XFER, ET_XFER_MT);
}

/* Appends v (at index vi) to the uservalue list k of the multi at 1. */
static void multi_append(lua_State *L, int k, int vi)
{
    vi = lua_absindex(L, vi);
    multi_slot(L, 1, k);
    lua_pushvalue(L, vi);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

/* A body buffer kept once its body is handed to Lua (for the transfer's next request); bigger
 * ones are freed at once. */
#define XFER_KEEP_BODY (16 * 1024)

/* The Transfer at i, made ready for another request, if it can be: done or cancelled, out of any
 * multi, not in use by a binding. Its result goes (a body handed to Lua stays Lua's), its buffers
 * stay for the next response. NULL (nothing changed) for any other value. */
static l_xfer *xfer_recycle(lua_State *L, int i)
{
    l_xfer *t;
    if (!is_class(L, i, UP_XFER))
        return NULL;
    t = lua_touserdata(L, i);
    if (t->m || t->pins || t->close_pending || t->x.easy || t->listed ||
        (t->state != XF_DONE && t->state != XF_CANCELLED && t->state != XF_TAKEN))
        return NULL;
    et_xfer_reset_result(&t->x);
    et_http_opts_unref(t->opts);
    t->opts = NULL;
    if (t->body_in_uv) {
        lua_pushnil(L);
        l_setuv(L, i);
        t->body_in_uv = 0;
    }
    t->state = XF_NEW;
    t->slot = 0;
    t->deadline = 0;
    return t;
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
    CURL *e;
    et_easy_state_t st;
    int rc, https;
    CURLMcode mc;

    m = check_multi(L, 1);
    s = check_session(L, 2);
    lua_settop(L, 9);                           /* 8: the tag, 9: the transfer */
    t = xfer_recycle(L, 9);
    if (!t) {
        t = l_newud(L, sizeof *t);              /* closed until added */
        et_xfer_init(&t->x);
        t->m = NULL;
        t->prev = t->next = NULL;
        t->state = XF_NEW;
        t->slot = 0;
        t->opts = NULL;
        t->body_in_uv = 0;
        t->deadline = 0;
        t->pins = t->close_pending = 0;
        t->listed = 0;
        lua_pushvalue(L, UP_XFER);
        lua_setmetatable(L, -2);
        lua_replace(L, 9);
    }
    multi_forked(L, m);
    check_request(L, 3, &a);                    /* may push a scratch array at 10 */
    /* Checked again after the allocations above, which may have run a finalizer that closed
     * either (m and s stay valid: the userdata are at 1 and 2). */
    if (!m->cm || m->close_pending)
        luaL_argerror(L, 1, "attempt to use a closed multi");
    if (!s->open || s->close_pending)
        luaL_argerror(L, 2, "attempt to use a closed session");

    e = pool_get(m, s->opts->id, &st);
    if (!e)
        return luaL_error(L, "cannot create a curl easy handle");
    et_xfer_adopt(&t->x, e, &st);               /* from here __gc frees the handle */
    t->opts = et_http_opts_ref(s->opts);
    https = strncmp(a.url, "https://", 8) == 0 || strncmp(a.url, "HTTPS://", 8) == 0;
    rc = et_xfer_configure(&t->x, e, s->opts);
    t->x.same_url_elided = s->opts->elide_url;
    if (rc == ET_OK) {
        t->x.no_redirects = a.no_redirects;
        rc = et_xfer_prepare(&t->x, a.method, a.url, a.headers, a.nheaders, a.body, a.bodylen,
                             a.fresh, https);
    }
    if (s->opts->timeout_ms > 0)
        t->deadline = mono_now() + (double)s->opts->timeout_ms / 1000.0;
    if (rc == ET_OK && curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t) != CURLE_OK)
        rc = et_xfer_fail(&t->x, ET_HTTP_TRANSPORT, "libcurl refused a request option") == ET_OK
             ? ET_ECURL : ET_ENOMEM;
    if (rc == ET_ENOMEM)
        return luaL_error(L, "not enough memory");   /* __gc frees the handle */
    if (rc == ET_ECURL) {
        /* Reported like any failed transfer, through finished() and result(). */
        e = et_xfer_detach_state(&t->x, &st);
        pool_put(m, e, &st);
        et_http_opts_unref(t->opts);
        t->opts = NULL;
        t->state = XF_DONE;
        lua_settop(L, 9);
        if (lua_isnil(L, 8)) {
            lua_pushboolean(L, 0);
            lua_replace(L, 8);
        }
        multi_append(L, 2, 9);
        multi_append(L, 4, 8);
        t->listed = 1;
        return 1;
    }
    mc = curl_multi_add_handle(m->cm, e);
    if (mc != CURLM_OK)
        return luaL_error(L, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    /* Linked and pinned: from here the transfer belongs to the multi until it is done. */
    t->m = m;
    t->next = m->inflight;
    if (m->inflight)
        m->inflight->prev = t;
    m->inflight = t;
    t->state = XF_PENDING;
    t->slot = slot_get(m);
    lua_pushvalue(L, 1);
    l_setuv(L, 9);                              /* an in-flight transfer keeps its multi */
    multi_slot(L, 1, 1);
    lua_pushvalue(L, 9);
    lua_rawseti(L, -2, t->slot);
    multi_slot(L, 1, 3);
    lua_pushvalue(L, 8);
    lua_rawseti(L, -2, t->slot);
    lua_settop(L, 9);
    return 1;
}

/* Polls the sockets curl asked for (m->pfds, a copy: the socket callback edits m->socks) for
 * at most ms milliseconds; the number ready, or -1. */
static int multi_poll_socks(l_multi *m, int ms)
{
    size_t i, n = m->nsocks;
    int r;
    if (n > m->pfdcap) {
        size_t cap = m->pfdcap ? m->pfdcap : 16;
        struct pollfd *p;
        while (cap < n)
            cap *= 2;
        p = realloc(m->pfds, cap * sizeof *p);
        if (!p)
            return -1;
        m->pfds = p;
        m->pfdcap = cap;
    }
    for (i = 0; i < n; i++) {
        int w = m->socks[i].what;
        m->pfds[i].fd = m->socks[i].fd;
        m->pfds[i].events = (short)(((w & CURL_POLL_IN) ? POLLIN : 0) | ((w & CURL_POLL_OUT) ? POLLOUT : 0));
        m->pfds[i].revents = 0;
    }
    m->npfds = n;
    r = poll(m->pfds, (nfds_t)n, ms);
    if (r < 0)
        m->npfds = 0;
    return r;
}

/* Advances the transfers: the sockets found ready (by multi:poll, or a poll that does not wait)
 * go to curl_multi_socket_action with their events, then the timers run, which also starts
 * transfers added since the last call. Only the ready sockets cost anything, however many
 * connections are open. */
static CURLMcode multi_drive(l_multi *m, int *running)
{
    size_t i, n;
    CURLMcode mc = CURLM_OK;
    if (!m->polled && m->nsocks > 0)
        multi_poll_socks(m, 0);
    m->polled = 0;
    n = m->npfds;
    m->npfds = 0;
    for (i = 0; i < n && mc == CURLM_OK; i++) {
        short re = m->pfds[i].revents;
        int ev = 0;
        if (!re)
            continue;
        if (re & (POLLIN | POLLPRI | POLLHUP))
            ev |= CURL_CSELECT_IN;
        if (re & POLLOUT)
            ev |= CURL_CSELECT_OUT;
        if (re & (POLLERR | POLLNVAL))
            ev |= CURL_CSELECT_ERR;
        mc = curl_multi_socket_action(m->cm, m->pfds[i].fd, ev, running);
    }
    if (mc == CURLM_OK)
        mc = curl_multi_socket_action(m->cm, CURL_SOCKET_TIMEOUT, 0, running);
    return mc;
}

/* multi:perform() -> running count; collects completed transfers into the finished list. */
static int l_multi_perform(lua_State *L)
{
    l_multi *m = check_multi(L, 1);
    int running = 0, left;
    CURLMsg *msg;
    CURLMcode mc;
    lua_settop(L, 1);
    multi_forked(L, m);
    mc = multi_drive(m, &running);
    if (mc != CURLM_OK)
        return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    m->pins++;                                  /* the loop allocates: a finalizer may close m */
    multi_slot(L, 1, 1);                        /* 2: in flight */
    multi_slot(L, 1, 2);                        /* 3: finished */
    multi_slot(L, 1, 3);                        /* 4: in-flight tags */
    multi_slot(L, 1, 4);                        /* 5: finished tags */
    while ((msg = curl_multi_info_read(m->cm, &left)) != NULL) {
        CURL *e = msg->easy_handle;
        CURLcode cc = msg->data.result;
        char *priv = NULL;
        l_xfer *t;
        int slot;
        if (msg->msg != CURLMSG_DONE)
            continue;
        if (curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv)
            continue;
        t = (l_xfer *)(void *)priv;
        /* C side first, so a Lua memory error below cannot leave curl half-done. */
        if (et_xfer_finish(&t->x, cc) != ET_OK && t->x.code == ET_HTTP_OK)
            t->x.code = ET_HTTP_TRANSPORT;
        slot = t->slot;
        xfer_detach(t);
        t->state = XF_DONE;
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

/* multi:finished() -> array of Transfers completed since the last call, and the array of their
 * tags (false for a transfer added without one), index for index. */
static int l_multi_finished(lua_State *L)
{
    size_t i, n;
    check_multi(L, 1);
    lua_settop(L, 1);
    l_getuv(L, 1);                              /* uv */
    lua_rawgeti(L, 2, 2);                       /* uv, list */
    lua_rawgeti(L, 2, 4);                       /* uv, list, tags */
    for (i = 1, n = lua_rawlen(L, 3); i <= n; i++) {
        l_xfer *t;
        lua_rawgeti(L, 3, (lua_Integer)i);
        t = lua_touserdata(L, -1);              /* (only Transfers are listed) */
        if (t)
            t->listed = 0;
        lua_pop(L, 1);
    }
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
    CURLMcode mc;
    luaL_argcheck(L, s >= 0 && s < HUGE_VAL, 2, "finite non-negative seconds expected");
    multi_forked(L, m);
    ms = ceil(s * 1000.0);
    if (ms > INT_MAX)
        ms = INT_MAX;
    if (m->nsocks == 0) {
        /* No socket yet: curl's own wait (it also knows a resolver still at work). */
        mc = curl_multi_poll(m->cm, NULL, 0, (int)ms, &numfds);
        if (mc != CURLM_OK)
            return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(mc));
    } else {
        numfds = multi_poll_socks(m, (int)ms);
        if (numfds < 0)
            numfds = 0;
        m->polled = 1;
    }
    lua_pushinteger(L, numfds);
    return 1;
}

/* multi:timeout() -> seconds until perform is due: the sooner of curl's timer and the earliest
 * in-flight transfer's deadline. nil only when no transfer is in flight and curl has no timer; a
 * transfer in flight without a deadline or timer gives ET_MULTI_IDLE_POLL seconds, so a loop that
 * sleeps this long (without watching the sockets) still comes back. */
#define ET_MULTI_IDLE_POLL 1.0
static int l_multi_timeout(lua_State *L)
{
    l_multi *m = check_multi(L, 1);
    long ms = -1;
    double t = -1, now = 0;
    l_xfer *x;
    multi_forked(L, m);
    if (curl_multi_timeout(m->cm, &ms) == CURLM_OK && ms >= 0)
        t = (double)ms / 1000.0;
    if (m->inflight)
        now = mono_now();
    for (x = m->inflight; x; x = x->next) {
        if (x->deadline > 0) {
            double left = x->deadline - now;
            if (left < 0)
                left = 0;
            if (t < 0 || left < t)
                t = left;
        }
    }
    if (t < 0 && m->inflight)
        t = ET_MULTI_IDLE_POLL;
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
    lua_createtable(L, (int)m->nsocks, 0);
    for (i = 0; i < m->nsocks; i++) {
        int w = m->socks[i].what;
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)m->socks[i].fd);
        lua_setfield(L, -2, "fd");
        lua_pushboolean(L, w == CURL_POLL_IN || w == CURL_POLL_INOUT);
        lua_setfield(L, -2, "read");
        lua_pushboolean(L, w == CURL_POLL_OUT || w == CURL_POLL_INOUT);
        lua_setfield(L, -2, "write");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    multi_unpin(L, 1, m);
    return 1;
}

static int l_multi_tostring(lua_State *L)
{
    l_multi *m = check_class(L, 1, UP_MULTI, ET_MULTI_MT);
    size_t n = 0;
    l_xfer *t;
    for (t = m->inflight; t; t = t->next)
        n++;
    if (m->cm)
        lua_pushfstring(L, "eternaltwin.core.Multi (%d in flight)", (int)n);
    else
        lua_pushliteral(L, "eternaltwin.core.Multi (closed)");
    return 1;
}

/* The body is a Lua string now: a big C copy goes at once (the Lua one is what the collector
 * sees); a small buffer stays, emptied, for the transfer's next request (the poller reuses it). */
static void body_handed(et_xfer_t *x)
{
    if (x->body.cap > XFER_KEEP_BODY)
        et_buf_free(&x->body);
    else
        x->body.len = 0;
}

/* Ends a binding's use of t: a cancel() that came meanwhile (from a finalizer) happens now. */
static void xfer_unpin(l_xfer *t)
{
    if (--t->pins == 0 && t->close_pending) {
        t->close_pending = 0;
        xfer_close(t);
    }
}

/* transfer:result() */
static int l_xfer_result(lua_State *L)
{
    l_xfer *t = check_xfer(L, 1);
    int n;
    switch (t->state) {
    case XF_DONE:
        t->pins++;                              /* push_result allocates: a finalizer may cancel t */
        n = push_result(L, &t->x, 0);
        if (n == 4 && t->body_in_uv) {
            l_getuv(L, 1);                      /* the body, handed over before */
            lua_replace(L, -3);
        } else if (n == 4 && t->x.body.data) {
            /* A later result() gives the same string: it is the user value now. */
            lua_pushvalue(L, -2);
            l_setuv(L, 1);
            body_handed(&t->x);
            t->body_in_uv = 1;
        }
        xfer_unpin(t);
        return n;
    case XF_CANCELLED:
        lua_pushnil(L);
        lua_pushliteral(L, "cancelled");
        lua_pushliteral(L, "transfer cancelled");
        return 3;
    case XF_TAKEN:
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
    l_xfer *t = check_class(L, 1, UP_XFER, ET_XFER_MT);
    int n;
    if (t->state != XF_DONE || t->body_in_uv)
        return l_xfer_result(L);
    t->pins++;                                  /* push_result allocates: a finalizer may cancel t */
    n = push_result(L, &t->x, 0);
    body_handed(&t->x);
    et_xfer_reset_result(&t->x);
    t->state = XF_TAKEN;
    xfer_unpin(t);
    return n;
}

/* transfer:cancel(): detaches (if in flight) and frees; idempotent. */
static int l_xfer_cancel(lua_State *L)
{
    l_xfer *t = check_xfer(L, 1);
    if (t->m) {
        /* Unpin from the multi's in-flight arrays (found through the transfer's uservalue). */
        lua_settop(L, 1);
        if (l_getuv(L, 1) == LUA_TUSERDATA && t->slot > 0) {    /* t, multi */
            multi_slot(L, 2, 1);                                /* t, multi, transfers */
            lua_pushnil(L);
            lua_rawseti(L, -2, t->slot);
            multi_slot(L, 2, 3);                                /* t, multi, transfers, tags */
            lua_pushnil(L);
            lua_rawseti(L, -2, t->slot);
        }
        lua_settop(L, 1);
        lua_pushnil(L);
        l_setuv(L, 1);
    }
    if (t->pins > 0)
        t->close_pending = 1;                   /* result() is reading its buffers */
    else
        xfer_close(t);
    t->state = XF_CANCELLED;
    return 0;
}

static int l_xfer_gc(lua_State *L)
{
    l_xfer *t = check_xfer(L, 1);
    t->close_pending = 0;
    xfer_close(t);
    if (t->state != XF_DONE)
        t->state = XF_CANCELLED;
    return 0;
}

static int l_xfer_tostring(lua_State *L)
{
    static const char *const names[] = { "new", "pending", "done", "cancelled", "taken" };
    l_xfer *t = check_xfer(L, 1);
    lua_pushfstring(L, "eternaltwin.core.Transfer (%s)", names[t->state]);
    return 1;
}

/* ---------------------------------------------------------------- opener */

void l_http_open(lua_State *L)
{
    static const luaL_Reg session_meth[] = {
        { "request", l_session_request },
        { "stats", l_session_stats },
        { "close", l_session_close },
        { NULL, NULL }
    };
    static const luaL_Reg session_meta[] = {
        { "__gc", l_session_gc },
#if ET_HAVE_CLOSE
        { "__close", l_session_close },
#endif
        { "__tostring", l_session_tostring },
        { NULL, NULL }
    };
    static const luaL_Reg multi_meth[] = {
        { "add", l_multi_add },
        { "perform", l_multi_perform },
        { "poll", l_multi_poll },
        { "finished", l_multi_finished },
        { "timeout", l_multi_timeout },
        { "sockets", l_multi_sockets },
        { "close", l_multi_close },
        { NULL, NULL }
    };
    static const luaL_Reg multi_meta[] = {
        { "__gc", l_multi_gc },
#if ET_HAVE_CLOSE
        { "__close", l_multi_close },
#endif
        { "__tostring", l_multi_tostring },
        { NULL, NULL }
    };
    static const luaL_Reg xfer_meth[] = {
        { "result", l_xfer_result },
        { "take", l_xfer_take },
        { "cancel", l_xfer_cancel },
        { NULL, NULL }
    };
    static const luaL_Reg xfer_meta[] = {
        { "__gc", l_xfer_gc },
#if ET_HAVE_CLOSE
        { "__close", l_xfer_cancel },
#endif
        { "__tostring", l_xfer_tostring },
        { NULL, NULL }
    };
    int mod = lua_gettop(L);
    /* The three metatables first: every function gets them as upvalues 1-3 (see check_class). */
    luaL_newmetatable(L, ET_SESSION_MT);
    luaL_newmetatable(L, ET_MULTI_MT);
    luaL_newmetatable(L, ET_XFER_MT);
    l_newclass(L, ET_SESSION_MT, session_meth, session_meta, 3);
    l_newclass(L, ET_MULTI_MT, multi_meth, multi_meta, 3);
    l_newclass(L, ET_XFER_MT, xfer_meth, xfer_meta, 3);
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, l_session_new, 3);
    lua_setfield(L, mod, "session");
    lua_pushcclosure(L, l_multi_new, 3);        /* (the three metatables, taken) */
    lua_setfield(L, mod, "multi");
    lua_pushcfunction(L, l_headers_table);
    lua_setfield(L, -2, "headers_table");
}
