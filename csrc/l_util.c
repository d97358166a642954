/* SPDX-License-Identifier: MIT */
/* Lua bindings of the small helpers: base64url, URL encoding, CSPRNG, constant-time compare. */
#include <limits.h>
#include <stdio.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "et_b64.h"
#include "et_rand.h"
#include "et_url.h"
#include "l_common.h"

/* Largest request for random_bytes/random_hex: RAND_bytes takes an int. */
#define RANDOM_MAX (INT_MAX / 2)

static int l_util_b64url_encode(lua_State *L)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    et_Buffer b;
    m = et_b64url_encoded_len(n);
    et_b64url_encode((const unsigned char *)s, n, et_buffinitsize(L, &b, m));
    et_pushresultsize(&b, m);
    return 1;
}

static int l_util_b64url_decode(lua_State *L)
{
    size_t n, outlen = 0, pos = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    et_Buffer b;
    unsigned char *out = (unsigned char *)et_buffinitsize(L, &b, et_b64_decoded_max(n) + 1);
    int st = et_b64url_decode(s, n, out, &outlen, &pos);
    if (st != ET_B64_OK) {
        lua_pushnil(L);
        if (st == ET_B64_EBADCHAR || st == ET_B64_EPADDING)
            lua_pushfstring(L, "base64url: %s at byte %d", et_b64_strerror(st), (int)(pos + 1));
        else
            lua_pushfstring(L, "base64url: %s", et_b64_strerror(st));
        return 2;
    }
    et_pushresultsize(&b, outlen);
    return 1;
}

static int url_encode(lua_State *L, int mode)
{
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    et_Buffer b;
    m = et_url_encoded_len(s, n, mode);
    et_url_encode(s, n, mode, et_buffinitsize(L, &b, m));
    et_pushresultsize(&b, m);
    return 1;
}

static int l_util_form_encode(lua_State *L)
{
    return url_encode(L, ET_URL_FORM);
}

static int l_util_path_encode(lua_State *L)
{
    return url_encode(L, ET_URL_PATH);
}

/* The state's random pool (et_rand.h), upvalue 1 of random_bytes and random_hex: a userdata
 * holding the pool, or NULL where the system gives none (then RAND_bytes serves every draw). */
static et_rand_pool_t *pool_of(lua_State *L)
{
    et_rand_pool_t **slot = (et_rand_pool_t **)lua_touserdata(L, lua_upvalueindex(1));
    return slot ? *slot : NULL;
}

static int l_pool_gc(lua_State *L)
{
    et_rand_pool_t **slot = (et_rand_pool_t **)lua_touserdata(L, 1);
    if (slot && *slot) {
        et_rand_pool_free(*slot);
        *slot = NULL;
    }
    return 0;
}

/* Fills n bytes from the CSPRNG; 0 on failure (error queue drained). */
static int fill_random(lua_State *L, unsigned char *p, lua_Integer n)
{
    if (ERR_peek_error() != 0)                  /* (clearing an empty queue costs a full sweep) */
        ERR_clear_error();
    if (n > 0 && !et_rand_bytes(pool_of(L), p, (size_t)n)) {
        ERR_clear_error();
        return 0;
    }
    return 1;
}

static lua_Integer check_count(lua_State *L, int arg)
{
    lua_Integer n = et_checkinteger(L, arg);
    luaL_argcheck(L, n >= 0 && n <= RANDOM_MAX, arg, "count out of range");
    return n;
}

static int l_util_random_bytes(lua_State *L)
{
    lua_Integer n = check_count(L, 1);
    et_Buffer b;
    unsigned char *p = (unsigned char *)et_buffinitsize(L, &b, (size_t)n);
    if (!fill_random(L, p, n)) {
        lua_pushnil(L);
        lua_pushliteral(L, "random generator failed");
        return 2;
    }
    et_pushresultsize(&b, (size_t)n);
    return 1;
}

static int l_util_random_hex(lua_State *L)
{
    static const char hex[16] = "0123456789abcdef";
    lua_Integer n = check_count(L, 1), i;
    et_Buffer b;
    unsigned char *p = (unsigned char *)et_buffinitsize(L, &b, (size_t)n * 2);
    if (!fill_random(L, p, n)) {
        lua_pushnil(L);
        lua_pushliteral(L, "random generator failed");
        return 2;
    }
    /* Expand in place from the end: byte i becomes characters 2i and 2i+1 (2i >= i). */
    for (i = n - 1; i >= 0; i--) {
        unsigned char c = p[i];
        p[2 * i] = (unsigned char)hex[c >> 4];
        p[2 * i + 1] = (unsigned char)hex[c & 15];
    }
    et_pushresultsize(&b, (size_t)n * 2);
    return 1;
}

/* Different lengths answer false at once: only the content comparison is constant-time. */
static int l_util_consttime_equal(lua_State *L)
{
    size_t na, nb;
    const char *a = luaL_checklstring(L, 1, &na);
    const char *b = luaL_checklstring(L, 2, &nb);
    lua_pushboolean(L, na == nb && CRYPTO_memcmp(a, b, na) == 0);
    return 1;
}

/* An HTTP-date (RFC 9110: IMF-fixdate, and the obsolete RFC 850 and asctime forms) as epoch
 * seconds, through libcurl's own date parser; nil for anything else. Retry-After uses it. */
static int l_util_http_date(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    time_t t = curl_getdate(s, NULL);
    if (t == (time_t)-1)
        return 0;
    lua_pushinteger(L, (lua_Integer)t);
    return 1;
}

void l_util_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "b64url_encode", l_util_b64url_encode },
        { "b64url_decode", l_util_b64url_decode },
        { "form_encode", l_util_form_encode },
        { "path_encode", l_util_path_encode },
        { "consttime_equal", l_util_consttime_equal },
        { "http_date", l_util_http_date },
        { NULL, NULL }
    };
    static const luaL_Reg random_funcs[] = {
        { "random_bytes", l_util_random_bytes },
        { "random_hex", l_util_random_hex },
        { NULL, NULL }
    };
    et_rand_pool_t **slot;
    luaL_setfuncs(L, funcs, 0);
    /* One pool per Lua state (one thread at a time: no lock), freed with the state. */
    slot = (et_rand_pool_t **)lua_newuserdata(L, sizeof *slot);
    *slot = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_pool_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    *slot = et_rand_pool_new();
    luaL_setfuncs(L, random_funcs, 1);          /* (pops the pool) */
}
