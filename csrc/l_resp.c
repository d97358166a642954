/* SPDX-License-Identifier: MIT */
/* Lua binding of et_resp: the response framing the nginx cosocket transport feeds.
 *
 *   local p = core.response_parser(head, max_body)   -- head: the request was HEAD
 *   p:feed(bytes)  -> false (more), true, left (complete; left = bytes after it), or nil, code, msg
 *   p:eof()        -> true (a close-delimited body ended) or nil, code, msg
 *   p:result([packed]) -> status, headers, body, keep_alive   (once complete; packed: the headers
 *                     in one string, the libcurl path's packed form, for core.headers_table)
 *   p:reset(head, max_body) ready for the next response, its storage kept (a parser reused)
 *   p:close()      frees the buffers (also __gc); idempotent
 *
 * Codes and messages are those of the libcurl path (too_large, reset, empty_reply, transport).
 * The userdata stays on the stack (slot 1) while results are pushed, so no collection can free
 * the buffers being copied. */
#include <string.h>

#include "et_resp.h"
#include "l_common.h"

typedef struct l_resp {
    et_resp_t r;
    int open;
    int done;
} l_resp;

static l_resp *check_resp(lua_State *L, int i)
{
    l_resp *p = luaL_checkudata(L, i, ET_RESP_MT);
    if (!p->open)
        luaL_argerror(L, i, "attempt to use a closed response parser");
    return p;
}

static int l_resp_new(lua_State *L)
{
    lua_Integer max;
    int ok, head;
    l_resp *p;
    head = lua_toboolean(L, 1);
    max = et_tointegerx(L, 2, &ok);
    luaL_argcheck(L, ok && max > 0, 2, "positive integer expected");
    p = et_newuserdata(L, sizeof *p);
    p->open = 0;
    p->done = 0;
    luaL_setmetatable(L, ET_RESP_MT);
    et_resp_init(&p->r, head, (size_t)max);
    p->open = 1;
    return 1;
}

static int push_error(lua_State *L, const et_resp_t *r)
{
    lua_pushnil(L);
    lua_pushstring(L, et_http_code_name(r->code));
    lua_pushstring(L, r->message);
    return 3;
}

static int status_result(lua_State *L, l_resp *p, int rc, size_t left)
{
    if (rc == ET_ENOMEM)
        return luaL_error(L, "not enough memory");
    if (rc == ET_RESP_ERROR)
        return push_error(L, &p->r);
    if (rc == ET_RESP_MORE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    p->done = 1;
    lua_pushboolean(L, 1);
    lua_pushinteger(L, (lua_Integer)left);
    return 2;
}

static int l_resp_feed(lua_State *L)
{
    l_resp *p = check_resp(L, 1);
    size_t n, used = 0;
    const char *s = luaL_checklstring(L, 2, &n);
    int rc = et_resp_feed(&p->r, s, n, &used);
    return status_result(L, p, rc, n - used);
}

static int l_resp_eof(lua_State *L)
{
    l_resp *p = check_resp(L, 1);
    int rc = et_resp_eof(&p->r);
    return status_result(L, p, rc, 0);
}

static int l_resp_result(lua_State *L)
{
    l_resp *p = check_resp(L, 1);
    const et_headers_t *h = &p->r.headers;
    int packed = lua_toboolean(L, 2);
    size_t i;
    if (!p->done)
        return luaL_error(L, "the response is not complete");
    lua_pushinteger(L, p->r.status);
    if (packed) {
        /* Each header (repeats already joined) as its name, a NUL, the value's length (4 bytes,
         * big-endian) and the value: what et_packed_next reads. */
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (i = 0; i < h->n; i++) {
            size_t vlen = h->items[i].value.len;
            char len[4];
            len[0] = (char)(vlen >> 24 & 0xff);
            len[1] = (char)(vlen >> 16 & 0xff);
            len[2] = (char)(vlen >> 8 & 0xff);
            len[3] = (char)(vlen & 0xff);
            luaL_addstring(&b, h->items[i].name);
            luaL_addchar(&b, '\0');
            luaL_addlstring(&b, len, 4);
            if (vlen)
                luaL_addlstring(&b, h->items[i].value.data, vlen);
        }
        luaL_pushresult(&b);
    } else {
        lua_createtable(L, 0, (int)h->n);
        for (i = 0; i < h->n; i++) {
            lua_pushlstring(L, h->items[i].value.data ? h->items[i].value.data : "", h->items[i].value.len);
            lua_setfield(L, -2, h->items[i].name);
        }
    }
    lua_pushlstring(L, p->r.body.data ? p->r.body.data : "", p->r.body.len);
    lua_pushboolean(L, p->r.keep_alive);
    return 4;
}

/* p:reset(head, max_body): ready for another response (a parser kept for reuse), its storage kept. */
static int l_resp_reset(lua_State *L)
{
    l_resp *p = check_resp(L, 1);
    lua_Integer max;
    int ok, head = lua_toboolean(L, 2);
    max = et_tointegerx(L, 3, &ok);
    luaL_argcheck(L, ok && max > 0, 3, "positive integer expected");
    et_resp_reset(&p->r, head, (size_t)max);
    p->done = 0;
    return 0;
}

static int l_resp_close(lua_State *L)
{
    l_resp *p = luaL_checkudata(L, 1, ET_RESP_MT);
    if (p->open) {
        p->open = 0;
        et_resp_free(&p->r);
    }
    return 0;
}

static int l_resp_tostring(lua_State *L)
{
    l_resp *p = luaL_checkudata(L, 1, ET_RESP_MT);
    lua_pushfstring(L, "%s (%s)", ET_RESP_MT, !p->open ? "closed" : p->done ? "complete" : "reading");
    return 1;
}

void l_resp_open(lua_State *L)
{
    static const luaL_Reg meth[] = {
        { "feed", l_resp_feed },
        { "eof", l_resp_eof },
        { "result", l_resp_result },
        { "reset", l_resp_reset },
        { "close", l_resp_close },
        { NULL, NULL }
    };
    static const luaL_Reg meta[] = {
        { "__gc", l_resp_close },
#if ET_HAVE_CLOSE
        { "__close", l_resp_close },
#endif
        { "__tostring", l_resp_tostring },
        { NULL, NULL }
    };
    l_newclass(L, ET_RESP_MT, meth, meta, 0);
    lua_pushcfunction(L, l_resp_new);
    lua_setfield(L, -2, "response_parser");
}
