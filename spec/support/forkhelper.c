/* SPDX-License-Identifier: MIT */
/* Test-only Lua module for spec/core_http_spec.lua ("fork"): fork(), _exit(code) and
 * waitpid(pid) -> exit status. Built by the spec into a temporary directory; never installed. */
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

static int l_fork(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)fork());
    return 1;
}

static int l_exit(lua_State *L)
{
    _exit((int)luaL_optinteger(L, 1, 0));
    return 0;
}

static int l_waitpid(lua_State *L)
{
    int status = 0;
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    if (waitpid(pid, &status, 0) != pid)
        return 0;
    lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 1;
}

int luaopen_forkhelper(lua_State *L);
int luaopen_forkhelper(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, l_fork);
    lua_setfield(L, -2, "fork");
    lua_pushcfunction(L, l_exit);
    lua_setfield(L, -2, "_exit");
    lua_pushcfunction(L, l_waitpid);
    lua_setfield(L, -2, "waitpid");
    return 1;
}
