/* SPDX-License-Identifier: MIT */
/* What the HTTP bindings share (l_http.c, l_session.c, l_multi.c, l_xfer.c): the three classes'
 * userdata, the class checks, the request arguments and results. Bindings only: the work is in
 * the core (et_session, et_multi, et_xfer). */
#ifndef L_HTTP_H
#define L_HTTP_H

#include "et_multi.h"
#include "l_common.h"

#define l_newud(L, sz)    et_newuserdata((L), (sz))
#define l_getuv(L, i)     et_getuv((L), (i))
#define l_setuv(L, i)     et_setuv((L), (i))

/* The three classes' metatables are upvalues 1-3 of every function of the HTTP bindings that Lua
 * calls (l_http_open): a check compares a userdata's metatable with one of them, where
 * luaL_checkudata would look the class name up in the registry as a string, once per check and
 * several checks per request. A function without them (none should be) still gets
 * luaL_checkudata's answer. */
#define UP_SESSION lua_upvalueindex(1)
#define UP_MULTI   lua_upvalueindex(2)
#define UP_XFER    lua_upvalueindex(3)
/* Upvalue 4: the strings last handed out for a plain request's response ([1] its packed headers,
 * [2] its body), shared by the Lua state's sessions and multis (l_push_result). */
#define UP_KEPT    lua_upvalueindex(4)
#define L_HTTP_NUP 4

/* Pins: while a binding holds pointers into an object across Lua allocations (which may run a
 * finalizer that closes it), `pins` is non-zero and an explicit close only sets close_pending; the
 * binding closes it when it unpins. __gc never waits: it cannot run while a binding holds the
 * object on its stack. A pin left by a raise (memory error) only delays the close to __gc. */

typedef struct l_session {
    et_session_t s;
    int open;
    int pins, close_pending;
} l_session;

typedef struct l_multi {
    et_multi_t e;
    int pins, close_pending;
} l_multi;

typedef struct l_xfer {
    et_mxfer_t mx;              /* first: the engine's transfer pointer is the userdata's */
    int body_in_uv;             /* result() handed the body to Lua: it is the uservalue now */
    int pins, close_pending;    /* result() building vs cancel() from a finalizer */
    int listed;                 /* in the multi's finished list, not yet given by finished() */
} l_xfer;

#define HDR_STACK 32        /* request headers handled without a scratch allocation */

/* The validated arguments of one request; strings borrowed from the Lua stack. */
typedef struct req_args {
    et_request_t r;
    const char *stack_hdrs[HDR_STACK];
} req_args;

/* l_http.c */
int l_is_class(lua_State *L, int i, int up);
void *l_check_class(lua_State *L, int i, int up, const char *tname);
void l_check_request(lua_State *L, int first, req_args *a);
int l_push_result(lua_State *L, const et_xfer_t *x, int fallback_idx);
int l_opt_get(lua_State *L, int idx, const char *name, int type);
lua_Integer l_opt_int(lua_State *L, int idx, const char *name, lua_Integer def, lua_Integer min);
void l_opt_known(lua_State *L, int idx, const char *const *names);
void l_read_session_opts(lua_State *L, int idx, et_http_opts_t *o);

/* l_session.c */
extern const luaL_Reg l_session_meth[], l_session_meta[];
int l_session_new(lua_State *L);
l_session *l_check_session(lua_State *L, int i);

/* l_multi.c */
extern const luaL_Reg l_multi_meth[], l_multi_meta[];
int l_multi_new(lua_State *L);
void l_multi_slot(lua_State *L, int midx, int k);

/* l_xfer.c */
extern const luaL_Reg l_xfer_meth[], l_xfer_meta[];
l_xfer *l_xfer_for_add(lua_State *L, int i);

#endif
