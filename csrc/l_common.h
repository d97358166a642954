/* SPDX-License-Identifier: MIT */
/* Shared declarations of the Lua bindings (l_*.c): class names and open functions. */
#ifndef L_COMMON_H
#define L_COMMON_H

#include "et_compat.h"

/* Metatable names (luaL_newmetatable keys). */
#define ET_KEY_MT     "eternaltwin.core.Key"
#define ET_SESSION_MT "eternaltwin.core.Session"
#define ET_MULTI_MT   "eternaltwin.core.Multi"
#define ET_XFER_MT    "eternaltwin.core.Transfer"
#define ET_NULL_MT    "eternaltwin.null"           /* metatable of JSON null */
#define ET_NULL_KEY   "eternaltwin.null.value"     /* registry: the null userdata itself */
#define ET_RESP_MT    "eternaltwin.core.ResponseParser"
#define ET_REDIS_MT   "eternaltwin.core.Redis"
#define ET_REDIS_READER_MT "eternaltwin.core.RedisReader"

/*
 * Each binding file exports one opener. It is called with the module table on top of
 * the stack, adds its functions to it, registers its metatables, and leaves the stack
 * as it found it. Openers must tolerate running twice (require twice, several states).
 */
void l_util_open(lua_State *L);    /* l_util.c: base64url, URL encoding, random */
void l_json_open(lua_State *L);    /* l_json.c: json_encode, json_decode, null */
void l_key_open(lua_State *L);     /* l_key.c: key_new and the Key class, JWT encode/decode */
void l_http_open(lua_State *L);    /* l_http.c: Session, Multi, Transfer (l_session.c, l_multi.c, l_xfer.c) */
void l_resp_open(lua_State *L);    /* l_resp.c: response_parser (framing for the nginx transport) */
void l_redis_open(lua_State *L);   /* l_redis.c: redis_connect, redis_format, redis_reader */
void l_aead_open(lua_State *L);    /* l_aead.c: aead_seal, aead_open (AES-256-GCM) */

/* JSON helpers (l_json.c) for the other bindings.
 * l_json_push: decode text and push one Lua value; on failure push nothing, write a
 *   message into err and return 0. Returns 1 on success.
 * l_json_encode: encode the value at idx; returns malloc'd NUL-terminated text (length in
 *   *len) that the caller frees, or NULL with a message in err. Never raises except on
 *   Lua memory errors, and frees its own allocations first. */
int l_json_push(lua_State *L, const char *text, size_t len, char *err, size_t errlen);
char *l_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t errlen);

/* Set a class's metatable: methods go to __index, metamethods to the table itself. The nup values
 * on top of the stack become upvalues of every function (they stay on the stack). */
void l_newclass(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *metamethods,
                int nup);

#endif
