/* SPDX-License-Identifier: MIT */
/* Lua C API differences between 5.1 (and LuaJIT 2.1), 5.2, 5.3 and 5.4, written once here so the
 * bindings read the same on every version. Only what the bindings use; each shim is our own.
 *
 *   et_newuserdata(L, sz)        full userdata with one user value slot (et_getuv/et_setuv)
 *   et_getuv(L, i) -> type       pushes the user value of the userdata at i
 *   et_setuv(L, i)               pops a value and makes it the user value of the userdata at i
 *   et_getfield / et_rawget      lua_getfield / lua_rawget that return the pushed value's type
 *   et_isinteger(L, i)           a number with an exact integer value (5.3+: an integer subtype)
 *   et_tointegerx(L, i, &ok)     strict: a float must be integral and in range, else ok = 0
 *   et_checkinteger(L, arg)      likewise, raising "number has no integer representation"
 *   et_Buffer, et_buffinitsize, et_pushresultsize   a result string of a known size
 *
 * 5.1/LuaJIT: lua_absindex, lua_rawlen, LUA_OK; PUC 5.1 also luaL_setfuncs, luaL_newlib,
 * luaL_setmetatable (LuaJIT 2.1 has those three).
 */
#ifndef ET_COMPAT_H
#define ET_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 504
#define ET_HAVE_CLOSE 1
#else
#define ET_HAVE_CLOSE 0
#endif

/* ---------------------------------------------------------------- 5.1 and LuaJIT only */
#if LUA_VERSION_NUM < 502

#ifndef LUA_OK
#define LUA_OK 0
#endif

#define lua_rawlen(L, i)  lua_objlen((L), (i))
#define lua_absindex(L, i) \
    (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)

/* LuaJIT 2.1 has these three (from 5.2); PUC 5.1 has none. */
#ifndef luaL_newlib
static inline void et_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, nup) et_setfuncs((L), (l), (nup))
#define luaL_newlib(L, l)        (lua_newtable(L), et_setfuncs((L), (l), 0))
#define luaL_setmetatable(L, tn) (luaL_getmetatable((L), (tn)), lua_setmetatable((L), -2))
#endif

#endif /* < 502 */

/* ---------------------------------------------------------------- user values */
#if LUA_VERSION_NUM >= 504

#define et_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#define et_getuv(L, i)        lua_getiuservalue((L), (i), 1)
#define et_setuv(L, i)        ((void)lua_setiuservalue((L), (i), 1))

#elif LUA_VERSION_NUM == 503

#define et_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define et_getuv(L, i)        lua_getuservalue((L), (i))
#define et_setuv(L, i)        lua_setuservalue((L), (i))

#else
/* 5.1 (environment) and 5.2 (uservalue) take only a table (5.2: or nil) there; anything else is
 * stored unchecked and crashes whoever reads it back as a table. So the value goes in a table of
 * our own, under a light userdata key that no other table (the default 5.1 environment is the
 * globals table) can hold. */
#if LUA_VERSION_NUM < 502
#define et_rawuv_get(L, i) lua_getfenv((L), (i))
#define et_rawuv_set(L, i) ((void)lua_setfenv((L), (i)))
#else
#define et_rawuv_get(L, i) lua_getuservalue((L), (i))
#define et_rawuv_set(L, i) lua_setuservalue((L), (i))
#endif

/* The box's key: one for the whole module (defined in l_http.c), so that each HTTP binding file
 * (l_multi.c, l_xfer.c) reads the user values the others set. */
extern char et_uv_key;

#define et_newuserdata(L, sz) lua_newuserdata((L), (sz))

static inline int et_getuv(lua_State *L, int i)
{
    et_rawuv_get(L, i);                                 /* box or foreign table or nil */
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pushlightuserdata(L, &et_uv_key);
    lua_rawget(L, -2);                                  /* box, value */
    lua_remove(L, -2);
    return lua_type(L, -1);
}

static inline void et_setuv(lua_State *L, int i)
{
    i = lua_absindex(L, i);
    lua_createtable(L, 0, 1);                           /* value, box */
    lua_pushlightuserdata(L, &et_uv_key);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    et_rawuv_set(L, i);                                 /* value */
    lua_pop(L, 1);
}
#endif

/* ---------------------------------------------------------------- typed gets */
#if LUA_VERSION_NUM >= 503
#define et_getfield(L, i, k) lua_getfield((L), (i), (k))
#define et_rawget(L, i)      lua_rawget((L), (i))
#else
static inline int et_getfield(lua_State *L, int i, const char *k)
{
    lua_getfield(L, i, k);
    return lua_type(L, -1);
}
static inline int et_rawget(lua_State *L, int i)
{
    lua_rawget(L, i);
    return lua_type(L, -1);
}
#endif

/* ---------------------------------------------------------------- integers */
#if LUA_VERSION_NUM >= 503
#define et_isinteger(L, i)          lua_isinteger((L), (i))
#define et_tointegerx(L, i, ok)     lua_tointegerx((L), (i), (ok))
#define et_checkinteger(L, arg)     luaL_checkinteger((L), (arg))
#else
/* Numbers are doubles: an integer is a double with no fraction inside lua_Integer's range
 * (ptrdiff_t; -2^63 and below 2^63 on 64-bit). */
static inline int et_num_is_int(lua_Number d)
{
    const lua_Number lim = (lua_Number)((size_t)1 << (sizeof(lua_Integer) * 8 - 2)) * 2;
    return d == d && d >= -lim && d < lim && (lua_Number)(lua_Integer)d == d;
}
static inline int et_isinteger(lua_State *L, int i)
{
    return lua_type(L, i) == LUA_TNUMBER && et_num_is_int(lua_tonumber(L, i));
}
static inline lua_Integer et_tointegerx(lua_State *L, int i, int *ok)
{
    int good = lua_isnumber(L, i) && et_num_is_int(lua_tonumber(L, i));   /* or a numeric string */
    if (ok)
        *ok = good;
    return good ? (lua_Integer)lua_tonumber(L, i) : 0;
}
static inline lua_Integer et_checkinteger(lua_State *L, int arg)
{
    int ok;
    lua_Integer v = et_tointegerx(L, arg, &ok);
    if (!ok) {
        if (lua_isnumber(L, arg))
            luaL_argerror(L, arg, "number has no integer representation");
        else
            luaL_argerror(L, arg, lua_pushfstring(L, "number expected, got %s", luaL_typename(L, arg)));
    }
    return v;
}
#endif

/* ---------------------------------------------------------------- result strings of known size */
#if LUA_VERSION_NUM >= 502
typedef luaL_Buffer et_Buffer;
#define et_buffinitsize(L, B, sz)  luaL_buffinitsize((L), (B), (sz))
#define et_pushresultsize(B, n)    luaL_pushresultsize((B), (n))
#else
/* 5.1's luaL_Buffer has no sized initialiser: a small result uses its inline block, a larger one
 * a scratch userdata that the result string replaces on the stack. */
typedef struct et_Buffer {
    luaL_Buffer b;
    char *big;
} et_Buffer;
static inline char *et_buffinitsize(lua_State *L, et_Buffer *B, size_t sz)
{
    luaL_buffinit(L, &B->b);
    if (sz <= LUAL_BUFFERSIZE) {
        B->big = NULL;
        return luaL_prepbuffer(&B->b);
    }
    B->big = (char *)lua_newuserdata(L, sz);
    return B->big;
}
static inline void et_pushresultsize(et_Buffer *B, size_t n)
{
    if (B->big) {
        lua_pushlstring(B->b.L, B->big, n);
        lua_remove(B->b.L, -2);
    } else {
        luaL_addsize(&B->b, n);
        luaL_pushresult(&B->b);
    }
}
#endif

#endif
