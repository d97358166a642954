/* SPDX-License-Identifier: MIT */
/* Lua binding of et_redis: a blocking Redis connection with a deadline per call, and the framing
 * pair (formatter, reader) for transports that carry the bytes themselves.
 *
 *   local r = core.redis_connect{ host =, port =, password =, username =, db =, timeout =, lazy = }
 *             -> Redis, or nil, code, msg (the first connection failed; lazy: not tried)
 *   r:command{ "SET", "k", "v" }  -> reply | nil (nil reply) | nil, code, msg
 *   r:set_nx_px(key, value, ms)   -> true | false | nil, code, msg
 *   r:set_px(key, value, ms)      -> true | nil, code, msg
 *   r:get(key)                    -> string | nil (no such key) | nil, code, msg
 *   r:del(key)                    -> count | nil, code, msg
 *   r:pexpire(key, ms)            -> true | false | nil, code, msg
 *   r:send(argv)                  -> true | nil, code, msg   (non-blocking: queues, writes what it can)
 *   r:send_raw(bytes, count)      -> as send, for `count` commands formatted and concatenated (a pipeline)
 *   r:recv()                      -> reply | nil (nil reply) | false, "read"|"write" (wait for that on
 *                                    r:fd(), then call again) | nil, code, msg   (never waits)
 *   r:reset()                     -> drops the connection (an exchange past its deadline); the next
 *                                    call connects again
 *   core.redis_poll(list, timeout_s) -> n ready: poll(2) over { fd =, read =, write = } entries
 *                                    (Poller:sockets()'s shape), each given `ready = true|false`
 *   r:fd() -> integer | nil;  r:stats() -> { connects = n, connected = bool };  r:close()
 *   core.redis_format(argv)       -> the request bytes
 *   core.redis_reader()           -> RedisReader: :feed(bytes) -> true | nil, code, msg
 *                                    :reply() -> false (more bytes needed) | reply | nil (nil reply)
 *                                                | nil, "server", text | nil, "protocol", msg
 *
 * Replies: strings and statuses are strings, integers integers, arrays tables; inside an array a
 * nil is `false` and an error reply `{ false, text }`.
 *
 * Memory: a C reply tree is parked in a box userdata (whose __gc frees it) before any Lua value is
 * built from it, so a memory error while pushing leaks nothing. No pointer into a Redis or reader
 * object is kept across a Lua allocation: the call's I/O runs with no Lua code in between, its
 * failure message is copied to the C stack before anything is pushed, and the object's pointer is
 * taken again after the box's allocation. So no pins are needed here. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_redis.h"
#include "l_common.h"

#define ET_REDIS_BOX_MT "eternaltwin.core.RedisReply"

typedef struct l_redis {
    et_redis_conn_t *c;         /* NULL once closed */
} l_redis;

typedef struct l_reader {
    et_redis_reader_t *r;       /* NULL once closed */
} l_reader;

typedef struct l_box {
    et_redis_value_t *v;
    char *buf;
} l_box;

/* ---------------------------------------------------------------- the box */

static int l_box_gc(lua_State *L)
{
    l_box *b = luaL_checkudata(L, 1, ET_REDIS_BOX_MT);
    et_redis_value_free(b->v);
    b->v = NULL;
    free(b->buf);
    b->buf = NULL;
    return 0;
}

static l_box *new_box(lua_State *L)
{
    l_box *b = lua_newuserdata(L, sizeof *b);
    b->v = NULL;
    b->buf = NULL;
    luaL_setmetatable(L, ET_REDIS_BOX_MT);
    return b;
}

/* Frees what the box holds now (the Lua values are built). */
static void box_empty(l_box *b)
{
    et_redis_value_free(b->v);
    b->v = NULL;
    free(b->buf);
    b->buf = NULL;
}

/* ---------------------------------------------------------------- values */

static void push_value(lua_State *L, const et_redis_value_t *v, int nested)
{
    size_t i;
    luaL_checkstack(L, 4, "redis reply too deep");
    switch (v->type) {
    case ET_REDIS_STRING:
    case ET_REDIS_STATUS:
        lua_pushlstring(L, v->str, v->len);
        break;
    case ET_REDIS_INTEGER:
        lua_pushinteger(L, (lua_Integer)v->integer);
        break;
    case ET_REDIS_ARRAY:
        lua_createtable(L, v->n > (size_t)0x7fffffff ? 0 : (int)v->n, 0);
        for (i = 0; i < v->n; i++) {
            push_value(L, v->items[i], 1);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    case ET_REDIS_ERROR:       /* only nested: a top-level error is the call's failure */
        lua_createtable(L, 2, 0);
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, v->str, v->len);
        lua_rawseti(L, -2, 2);
        break;
    default:                    /* NIL */
        if (nested)
            lua_pushboolean(L, 0);
        else
            lua_pushnil(L);
        break;
    }
}

static int push_failure(lua_State *L, et_redis_code_t code, const char *msg)
{
    char copy[512];
    if (code == ET_REDIS_ENOMEM)
        return luaL_error(L, "not enough memory");
    snprintf(copy, sizeof copy, "%s", msg);    /* before any allocation: msg may live in an object */
    lua_pushnil(L);
    lua_pushstring(L, et_redis_code_name(code));
    lua_pushstring(L, copy);
    return 3;
}

/* The command array at idx: its n strings are left on the stack (anchored there), their pointers
 * and lengths in argv/lens (arrays of ET_REDIS_MAX_ARGS). Raises on a bad argument. Returns n. */
static int collect_argv(lua_State *L, int idx, const char **argv, size_t *lens)
{
    int i, n;
    size_t len;
    luaL_checktype(L, idx, LUA_TTABLE);
    len = lua_rawlen(L, idx);
    if (len < 1 || len > ET_REDIS_MAX_ARGS)
        luaL_argerror(L, idx, lua_pushfstring(L, "1 to %d arguments expected", ET_REDIS_MAX_ARGS));
    n = (int)len;
    luaL_checkstack(L, n + 8, "too many arguments");
    for (i = 1; i <= n; i++) {
        int t;
        lua_rawgeti(L, idx, i);
        t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_argerror(L, idx, lua_pushfstring(L, "argument %d: string or number expected, got %s", i,
                                                  lua_typename(L, t)));
    }
    /* Converted in place (numbers become strings in our stack slots only); no allocation after
     * the last conversion, so the pointers stay valid while the strings sit on the stack. */
    for (i = 1; i <= n; i++) {
        int slot = lua_gettop(L) - n + i;
        lua_tolstring(L, slot, NULL);
    }
    for (i = 1; i <= n; i++) {
        int slot = lua_gettop(L) - n + i;
        argv[i - 1] = lua_tolstring(L, slot, &lens[i - 1]);
    }
    return n;
}

/* ---------------------------------------------------------------- options */

static int opt_get(lua_State *L, int idx, const char *name, int type)
{
    if (et_getfield(L, idx, name) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_type(L, -1) != type)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': %s expected, got %s", name, lua_typename(L, type),
                                              luaL_typename(L, -1)));
    return 1;
}

static lua_Integer opt_int(lua_State *L, int idx, const char *name, lua_Integer def, lua_Integer min,
                           lua_Integer max)
{
    lua_Integer v;
    int ok;
    if (!opt_get(L, idx, name, LUA_TNUMBER))
        return def;
    v = et_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || v < min || v > max)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': integer in %d..%d expected", name, (int)min,
                                              (int)max));
    return v;
}

/* A string option (left on the stack, so its pointer stays valid), or NULL. */
static const char *opt_str(lua_State *L, int idx, const char *name, size_t *len, int secret)
{
    const char *s;
    size_t n;
    if (!opt_get(L, idx, name, LUA_TSTRING))
        return NULL;
    s = lua_tolstring(L, -1, &n);
    /* A password may hold any byte (it goes as a bulk string); names and hosts may not. */
    if (!secret && (strlen(s) != n || strcspn(s, "\r\n \t") != n || n == 0))
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s': non-empty, without blanks, CR, LF or NUL", name));
    if (len)
        *len = n;
    return s;
}

static void opt_known(lua_State *L, int idx, const char *const *names)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int i, found = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, idx, "option names are strings");
        for (i = 0; names[i]; i++)
            if (strcmp(lua_tostring(L, -1), names[i]) == 0)
                found = 1;
        if (!found)
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", lua_tostring(L, -1)));
    }
}

static const char *const redis_opts[] = { "host", "port", "password", "username", "db", "timeout", "lazy", NULL };

/* ---------------------------------------------------------------- Redis */

static l_redis *check_redis(lua_State *L, int i)
{
    l_redis *p = luaL_checkudata(L, i, ET_REDIS_MT);
    if (!p->c)
        luaL_argerror(L, i, "attempt to use a closed redis connection");
    return p;
}

static int l_redis_connect(lua_State *L)
{
    et_redis_opts_t o;
    l_redis *p;
    double timeout = 1.0;
    int lazy = 0;
    memset(&o, 0, sizeof o);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        opt_known(L, 1, redis_opts);
        o.host = opt_str(L, 1, "host", NULL, 0);
        o.username = opt_str(L, 1, "username", NULL, 0);
        o.password = opt_str(L, 1, "password", &o.password_len, 1);
        o.port = (int)opt_int(L, 1, "port", 6379, 1, 65535);
        o.db = (int)opt_int(L, 1, "db", 0, 0, 1000000);
        if (opt_get(L, 1, "timeout", LUA_TNUMBER)) {
            timeout = lua_tonumber(L, -1);
            lua_pop(L, 1);
            if (!(timeout > 0 && timeout <= 86400))
                luaL_argerror(L, 1, "option 'timeout': seconds in (0, 86400] expected");
        }
        if (opt_get(L, 1, "lazy", LUA_TBOOLEAN)) {
            lazy = lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
    }
    o.timeout_ms = (long)ceil(timeout * 1000.0);
    p = lua_newuserdata(L, sizeof *p);
    p->c = NULL;
    luaL_setmetatable(L, ET_REDIS_MT);
    p->c = et_redis_conn_new(&o);      /* copies the strings still on the stack */
    if (!p->c)
        return luaL_error(L, "not enough memory");
    if (!lazy) {
        et_redis_code_t rc = et_redis_connect(p->c);
        if (rc != ET_REDIS_OK) {
            int n = push_failure(L, rc, et_redis_last_message(p->c));
            et_redis_conn_free(p->c);   /* the userdata is still on the stack: p is valid */
            p->c = NULL;
            return n;
        }
    }
    return 1;
}

static int l_redis_command(lua_State *L)
{
    const char *argv[ET_REDIS_MAX_ARGS];
    size_t lens[ET_REDIS_MAX_ARGS];
    int n;
    l_box *b;
    l_redis *p;
    et_redis_code_t rc;
    check_redis(L, 1);
    n = collect_argv(L, 2, argv, lens);
    b = new_box(L);
    p = check_redis(L, 1);              /* again: the allocations above may have run a finalizer */
    rc = et_redis_command(p->c, n, argv, lens, &b->v);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    push_value(L, b->v, 0);
    box_empty(b);
    return 1;
}

static long long check_ms(lua_State *L, int i)
{
    lua_Integer ms = et_checkinteger(L, i);
    luaL_argcheck(L, ms > 0, i, "positive number of milliseconds expected");
    return (long long)ms;
}

static int l_redis_set_nx_px(lua_State *L)
{
    size_t kl, vl;
    const char *k, *v;
    long long ms;
    int added = 0;
    l_redis *p;
    et_redis_code_t rc;
    check_redis(L, 1);
    k = luaL_checklstring(L, 2, &kl);
    v = luaL_checklstring(L, 3, &vl);
    ms = check_ms(L, 4);
    p = check_redis(L, 1);
    rc = et_redis_set_nx_px(p->c, k, kl, v, vl, ms, &added);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    lua_pushboolean(L, added);
    return 1;
}

static int l_redis_set_px(lua_State *L)
{
    size_t kl, vl;
    const char *k, *v;
    long long ms;
    l_redis *p;
    et_redis_code_t rc;
    check_redis(L, 1);
    k = luaL_checklstring(L, 2, &kl);
    v = luaL_checklstring(L, 3, &vl);
    ms = check_ms(L, 4);
    p = check_redis(L, 1);
    rc = et_redis_set_px(p->c, k, kl, v, vl, ms);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_redis_get(lua_State *L)
{
    size_t kl, vl = 0;
    const char *k;
    int found = 0;
    l_box *b;
    l_redis *p;
    et_redis_code_t rc;
    check_redis(L, 1);
    k = luaL_checklstring(L, 2, &kl);
    b = new_box(L);
    p = check_redis(L, 1);
    rc = et_redis_get(p->c, k, kl, &b->buf, &vl, &found);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    if (found)
        lua_pushlstring(L, b->buf, vl);
    else
        lua_pushnil(L);
    box_empty(b);
    return 1;
}

static int l_redis_del(lua_State *L)
{
    size_t kl;
    const char *k;
    long long removed = 0;
    l_redis *p;
    et_redis_code_t rc;
    check_redis(L, 1);
    k = luaL_checklstring(L, 2, &kl);
    p = check_redis(L, 1);
    rc = et_redis_del(p->c, k, kl, &removed);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    lua_pushinteger(L, (lua_Integer)removed);
    return 1;
}

static int l_redis_pexpire(lua_State *L)
{
    size_t kl;
    const char *k;
    long long ms;
    int set = 0;
    l_redis *p;
    et_redis_code_t rc;
    check_redis(L, 1);
    k = luaL_checklstring(L, 2, &kl);
    ms = check_ms(L, 3);
    p = check_redis(L, 1);
    rc = et_redis_pexpire(p->c, k, kl, ms, &set);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    lua_pushboolean(L, set);
    return 1;
}

static int l_redis_send(lua_State *L)
{
    const char *argv[ET_REDIS_MAX_ARGS];
    size_t lens[ET_REDIS_MAX_ARGS], len = 0;
    int n;
    l_box *b;
    l_redis *p;
    et_redis_code_t rc;
    check_redis(L, 1);
    n = collect_argv(L, 2, argv, lens);
    b = new_box(L);
    b->buf = et_redis_format(n, argv, lens, &len);
    if (!b->buf)
        return luaL_error(L, "not enough memory");
    p = check_redis(L, 1);
    rc = et_redis_nb_send(p->c, b->buf, len, 1);
    box_empty(b);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    lua_pushboolean(L, 1);
    return 1;
}

/* r:send_raw(bytes, count): `count` commands already formatted (core.redis_format's bytes,
 * concatenated: a pipeline), queued as r:send does; then r:recv() once per command. */
static int l_redis_send_raw(lua_State *L)
{
    size_t len;
    const char *req;
    lua_Integer count;
    l_redis *p;
    et_redis_code_t rc;
    check_redis(L, 1);
    req = luaL_checklstring(L, 2, &len);
    count = luaL_checkinteger(L, 3);
    luaL_argcheck(L, count >= 1 && count <= ET_REDIS_MAX_PIPELINE && len > 0, 3, "1 to 64 commands expected");
    p = check_redis(L, 1);
    rc = et_redis_nb_send(p->c, req, len, (int)count);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_redis_recv(lua_State *L)
{
    l_box *b;
    l_redis *p;
    int want = 0;
    et_redis_code_t rc;
    check_redis(L, 1);
    b = new_box(L);
    p = check_redis(L, 1);
    rc = et_redis_nb_recv(p->c, &b->v, &want);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_last_message(p->c));
    if (!b->v) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, want == POLLOUT ? "write" : "read");
        return 2;
    }
    push_value(L, b->v, 0);
    box_empty(b);
    return 1;
}

static int l_redis_reset(lua_State *L)
{
    l_redis *p = check_redis(L, 1);
    et_redis_conn_close(p->c);
    return 0;
}

/* core.redis_poll(list, timeout_s): poll(2) over the entries { fd =, read =, write = } (an entry
 * with neither flag waits for errors only); sets each entry's `ready`; returns how many are ready.
 * At most 4096 entries; waits at most timeout_s (0: never). */
#define L_POLL_MAX 4096
static int l_redis_poll(lua_State *L)
{
    struct pollfd *fds;
    double s = luaL_optnumber(L, 2, 0), ms;
    size_t i, n;
    int r;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argcheck(L, s >= 0 && s < HUGE_VAL, 2, "finite non-negative seconds expected");
    n = lua_rawlen(L, 1);
    luaL_argcheck(L, n <= L_POLL_MAX, 1, "too many descriptors");
    fds = lua_newuserdata(L, (n ? n : 1) * sizeof *fds);
    for (i = 0; i < n; i++) {
        lua_Integer fd;
        int ok;
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TTABLE)
            return luaL_argerror(L, 1, "entries { fd =, read =, write = } expected");
        et_getfield(L, -1, "fd");
        fd = et_tointegerx(L, -1, &ok);
        if (!ok || fd < 0 || fd > INT_MAX)
            return luaL_argerror(L, 1, "entry: integer fd expected");
        fds[i].fd = (int)fd;
        et_getfield(L, -2, "read");
        et_getfield(L, -3, "write");
        fds[i].events = (short)((lua_toboolean(L, -2) ? POLLIN : 0) | (lua_toboolean(L, -1) ? POLLOUT : 0));
        fds[i].revents = 0;
        lua_pop(L, 4);
    }
    ms = ceil(s * 1000.0);
    if (ms > INT_MAX)
        ms = INT_MAX;
    do {
        r = poll(fds, (nfds_t)n, (int)ms);
    } while (r < 0 && errno == EINTR && ms == 0);
    if (r < 0)
        r = 0;                  /* EINTR while waiting: nothing ready, the caller looks again */
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        lua_pushboolean(L, fds[i].revents != 0);
        lua_setfield(L, -2, "ready");
        lua_pop(L, 1);
    }
    lua_pushinteger(L, r);
    return 1;
}

static int l_redis_fd(lua_State *L)
{
    l_redis *p = check_redis(L, 1);
    int fd = et_redis_fd(p->c);
    if (fd < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, fd);
    return 1;
}

static int l_redis_stats(lua_State *L)
{
    l_redis *p = check_redis(L, 1);
    lua_Integer connects = (lua_Integer)et_redis_connects(p->c);
    int connected = et_redis_fd(p->c) >= 0;
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, connects);
    lua_setfield(L, -2, "connects");
    lua_pushboolean(L, connected);
    lua_setfield(L, -2, "connected");
    return 1;
}

static int l_redis_close(lua_State *L)
{
    l_redis *p = luaL_checkudata(L, 1, ET_REDIS_MT);
    et_redis_conn_t *c = p->c;
    p->c = NULL;
    et_redis_conn_free(c);
    return 0;
}

static int l_redis_tostring(lua_State *L)
{
    l_redis *p = luaL_checkudata(L, 1, ET_REDIS_MT);
    char buf[400];
    if (!p->c)
        snprintf(buf, sizeof buf, "%s (closed)", ET_REDIS_MT);
    else
        snprintf(buf, sizeof buf, "%s (%.300s db %d, %s)", ET_REDIS_MT, et_redis_endpoint(p->c), et_redis_db(p->c),
                 et_redis_fd(p->c) >= 0 ? "connected" : "not connected");
    lua_pushstring(L, buf);
    return 1;
}

/* ---------------------------------------------------------------- framing */

static int l_redis_format(lua_State *L)
{
    const char *argv[ET_REDIS_MAX_ARGS];
    size_t lens[ET_REDIS_MAX_ARGS], len = 0;
    int n = collect_argv(L, 1, argv, lens);
    l_box *b = new_box(L);
    b->buf = et_redis_format(n, argv, lens, &len);
    if (!b->buf)
        return luaL_error(L, "not enough memory");
    lua_pushlstring(L, b->buf, len);
    box_empty(b);
    return 1;
}

static l_reader *check_reader(lua_State *L, int i)
{
    l_reader *p = luaL_checkudata(L, i, ET_REDIS_READER_MT);
    if (!p->r)
        luaL_argerror(L, i, "attempt to use a closed redis reader");
    return p;
}

static int l_reader_new(lua_State *L)
{
    l_reader *p = lua_newuserdata(L, sizeof *p);
    p->r = NULL;
    luaL_setmetatable(L, ET_REDIS_READER_MT);
    p->r = et_redis_reader_new();
    if (!p->r)
        return luaL_error(L, "not enough memory");
    return 1;
}

static int l_reader_feed(lua_State *L)
{
    l_reader *p = check_reader(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    et_redis_code_t rc = et_redis_reader_feed(p->r, s, n);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_reader_error(p->r));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_reader_reply(lua_State *L)
{
    l_box *b;
    l_reader *p;
    et_redis_code_t rc;
    check_reader(L, 1);
    b = new_box(L);
    p = check_reader(L, 1);
    rc = et_redis_reader_get(p->r, &b->v);
    if (rc != ET_REDIS_OK)
        return push_failure(L, rc, et_redis_reader_error(p->r));
    if (!b->v) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (b->v->type == ET_REDIS_ERROR) {
        lua_pushnil(L);
        lua_pushliteral(L, "server");
        lua_pushlstring(L, b->v->str, b->v->len);
        box_empty(b);
        return 3;
    }
    push_value(L, b->v, 0);
    box_empty(b);
    return 1;
}

static int l_reader_close(lua_State *L)
{
    l_reader *p = luaL_checkudata(L, 1, ET_REDIS_READER_MT);
    et_redis_reader_t *r = p->r;
    p->r = NULL;
    et_redis_reader_free(r);
    return 0;
}

static int l_reader_tostring(lua_State *L)
{
    l_reader *p = luaL_checkudata(L, 1, ET_REDIS_READER_MT);
    lua_pushfstring(L, "%s (%s)", ET_REDIS_READER_MT, p->r ? "open" : "closed");
    return 1;
}

void l_redis_open(lua_State *L)
{
    static const luaL_Reg meth[] = {
        { "command", l_redis_command },
        { "set_nx_px", l_redis_set_nx_px },
        { "set_px", l_redis_set_px },
        { "get", l_redis_get },
        { "del", l_redis_del },
        { "pexpire", l_redis_pexpire },
        { "send", l_redis_send },
        { "send_raw", l_redis_send_raw },
        { "recv", l_redis_recv },
        { "reset", l_redis_reset },
        { "fd", l_redis_fd },
        { "stats", l_redis_stats },
        { "close", l_redis_close },
        { NULL, NULL }
    };
    static const luaL_Reg meta[] = {
        { "__gc", l_redis_close },
#if ET_HAVE_CLOSE
        { "__close", l_redis_close },
#endif
        { "__tostring", l_redis_tostring },
        { NULL, NULL }
    };
    static const luaL_Reg rmeth[] = {
        { "feed", l_reader_feed },
        { "reply", l_reader_reply },
        { "close", l_reader_close },
        { NULL, NULL }
    };
    static const luaL_Reg rmeta[] = {
        { "__gc", l_reader_close },
#if ET_HAVE_CLOSE
        { "__close", l_reader_close },
#endif
        { "__tostring", l_reader_tostring },
        { NULL, NULL }
    };
    static const luaL_Reg bmeth[] = { { NULL, NULL } };
    static const luaL_Reg bmeta[] = { { "__gc", l_box_gc }, { NULL, NULL } };
    l_newclass(L, ET_REDIS_MT, meth, meta, 0);
    l_newclass(L, ET_REDIS_READER_MT, rmeth, rmeta, 0);
    l_newclass(L, ET_REDIS_BOX_MT, bmeth, bmeta, 0);
    lua_pushcfunction(L, l_redis_connect);
    lua_setfield(L, -2, "redis_connect");
    lua_pushcfunction(L, l_redis_poll);
    lua_setfield(L, -2, "redis_poll");
    lua_pushcfunction(L, l_redis_format);
    lua_setfield(L, -2, "redis_format");
    lua_pushcfunction(L, l_reader_new);
    lua_setfield(L, -2, "redis_reader");
}
