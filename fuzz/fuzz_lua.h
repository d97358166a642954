/* SPDX-License-Identifier: MIT */
/* Shared by the libFuzzer harnesses that go through the Lua bindings: one Lua state with
 * eternaltwin.core loaded (its table at index 1), made once per process. */
#ifndef FUZZ_LUA_H
#define FUZZ_LUA_H

#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

int luaopen_eternaltwin_core(lua_State *L);

static lua_State *fuzz_lua(void)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        if (!L)
            abort();
        luaL_openlibs(L);
        luaL_requiref(L, "eternaltwin.core", luaopen_eternaltwin_core, 0);   /* core at 1 */
    }
    return L;
}

/* Aborts (a finding) when a protected call raised: the bindings return nil, msg on bad input. */
static void fuzz_check(lua_State *L, int st, const char *what)
{
    if (st != LUA_OK) {
        fprintf(stderr, "%s raised: %s\n", what, lua_tostring(L, -1));
        abort();
    }
}

#endif
