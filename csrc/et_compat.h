/* SPDX-License-Identifier: MIT */
/* Lua C API shims, so the bindings are written once against the 5.3/5.4 API. */
#ifndef ET_COMPAT_H
#define ET_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#error "eternaltwin's C module targets Lua 5.2+ API; a 5.1/LuaJIT shim goes here"
#endif

#if LUA_VERSION_NUM >= 504
#define ET_HAVE_CLOSE 1
#else
#define ET_HAVE_CLOSE 0
#endif

#endif
