/* SPDX-License-Identifier: MIT */
/* Lua bindings of AES-256-GCM sealing (et_aead.c): the gate's tokens at rest.
 *   core.aead_seal(key32, plaintext [, aad]) -> nonce || ciphertext || tag   (raises on a bad key)
 *   core.aead_open(key32, blob [, aad])      -> plaintext | nil, message */
#include "et_aead.h"
#include "l_common.h"

static const unsigned char *check_key(lua_State *L)
{
    size_t n;
    const char *k = luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n == ET_AEAD_KEY_LEN, 1, "key of 32 bytes expected");
    return (const unsigned char *)k;
}

static int l_aead_seal_fn(lua_State *L)
{
    size_t n, aadlen = 0;
    const unsigned char *key = check_key(L);
    const char *plain = luaL_checklstring(L, 2, &n);
    const char *aad = luaL_optlstring(L, 3, "", &aadlen);
    et_Buffer b;
    int st;
    luaL_argcheck(L, n <= ET_AEAD_MAX_LEN, 2, "plaintext too long");
    luaL_argcheck(L, aadlen <= ET_AEAD_MAX_LEN, 3, "associated data too long");
    st = et_aead_seal(key, ET_AEAD_KEY_LEN, (const unsigned char *)plain, n, (const unsigned char *)aad,
                      aadlen, (unsigned char *)et_buffinitsize(L, &b, n + ET_AEAD_OVERHEAD));
    if (st != ET_AEAD_OK)
        return luaL_error(L, "aead_seal: %s", et_aead_strerror(st));
    et_pushresultsize(&b, n + ET_AEAD_OVERHEAD);
    return 1;
}

static int l_aead_open_fn(lua_State *L)
{
    size_t n, aadlen = 0, outlen = 0;
    const unsigned char *key = check_key(L);
    const char *blob = luaL_checklstring(L, 2, &n);
    const char *aad = luaL_optlstring(L, 3, "", &aadlen);
    et_Buffer b;
    unsigned char *out;
    int st;
    if (n < ET_AEAD_OVERHEAD || n > ET_AEAD_MAX_LEN + ET_AEAD_OVERHEAD) {
        lua_pushnil(L);
        lua_pushfstring(L, "aead_open: %s",
                        et_aead_strerror(n < ET_AEAD_OVERHEAD ? ET_AEAD_ESHORT : ET_AEAD_ETOOLONG));
        return 2;
    }
    out = (unsigned char *)et_buffinitsize(L, &b, n - ET_AEAD_OVERHEAD + 1);
    st = et_aead_open(key, ET_AEAD_KEY_LEN, (const unsigned char *)blob, n, (const unsigned char *)aad,
                      aadlen, out, &outlen);
    if (st != ET_AEAD_OK) {
        et_pushresultsize(&b, 0);           /* (balances the buffer; the zeroed bytes are dropped) */
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushfstring(L, "aead_open: %s", et_aead_strerror(st));
        return 2;
    }
    et_pushresultsize(&b, outlen);
    return 1;
}

void l_aead_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "aead_seal", l_aead_seal_fn },
        { "aead_open", l_aead_open_fn },
        { NULL, NULL },
    };
    luaL_setfuncs(L, funcs, 0);
}
