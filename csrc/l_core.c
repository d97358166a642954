/* SPDX-License-Identifier: MIT */
/* luaopen_eternaltwin_core: the C module, assembled from the binding files. */
#include <errno.h>
#include <math.h>
#include <time.h>

#include <curl/curl.h>

#include "l_common.h"

#define ET_CORE_VERSION "0.1.0"

void l_newclass(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *metamethods,
                int nup)
{
    int i, up = lua_gettop(L) - nup + 1;        /* the first upvalue */
    luaL_newmetatable(L, name);                 /* mt (existing one when opened twice) */
    for (i = 0; i < nup; i++)
        lua_pushvalue(L, up + i);
    luaL_setfuncs(L, metamethods, nup);
    lua_newtable(L);                            /* mt, methods */
    for (i = 0; i < nup; i++)
        lua_pushvalue(L, up + i);
    luaL_setfuncs(L, methods, nup);
    lua_setfield(L, -2, "__index");             /* mt */
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

/* core.sleep(seconds): blocks the thread (the blocking side of retries). Resumes after a
 * signal interrupts it, so the wait is at least what was asked. */
static int l_core_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s <= 86400 && !isnan(s), 1, "seconds between 0 and 86400 expected");
    struct timespec ts, rem;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    if (ts.tv_nsec > 999999999L)
        ts.tv_nsec = 999999999L;
    while (nanosleep(&ts, &rem) != 0 && errno == EINTR)
        ts = rem;
    return 0;
}

/* core.monotime(): seconds from a monotonic clock, as a float (timers, deadlines). */
static int l_core_monotime(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* curl_global_init is not thread-safe before 7.84; doing it once at load keeps it out of
 * the first transfer. Its result is only reported: transfers fail cleanly without it. */
static int curl_ready(void)
{
    static int state = 0;   /* 0 not tried, 1 ok, -1 failed: set once, read-only after */
    if (state == 0)
        state = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : -1;
    return state == 1;
}

#if defined(__GNUC__)
#define ET_EXPORT __attribute__((visibility("default")))
#else
#define ET_EXPORT
#endif

ET_EXPORT int luaopen_eternaltwin_core(lua_State *L);

ET_EXPORT int luaopen_eternaltwin_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"sleep", l_core_sleep},
        {"monotime", l_core_monotime},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_pushliteral(L, ET_CORE_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushboolean(L, curl_ready());
    lua_setfield(L, -2, "curl_ready");
    l_util_open(L);
    l_json_open(L);
    l_key_open(L);
    l_http_open(L);
    l_resp_open(L);
    l_redis_open(L);
    l_aead_open(L);
    return 1;
}
