/* SPDX-License-Identifier: MIT */
/* libFuzzer: JWT decode and verify through the binding (key:decode, jwt_header) with an HS256,
 * an ES256 (public only), an RS256 and an EdDSA key; then the same token re-signed with the HS256
 * key, so that the header and payload checks behind the signature are reached too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "fuzz_lua.h"

#define SECRET "fuzz-secret"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* PEM text of a new key (public part only when pub), pushed on the Lua stack. */
static void push_pem(lua_State *L, EVP_PKEY *pk, int pub)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;
    if (!b || !(pub ? PEM_write_bio_PUBKEY(b, pk) : PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL)))
        abort();
    n = BIO_get_mem_data(b, &p);
    lua_pushlstring(L, p, (size_t)n);
    BIO_free(b);
}

/* Makes the keys once, in the registry table "fuzz.keys" (array: hs, es, rs, ed). */
static void make_keys(lua_State *L)
{
    EVP_PKEY *es = EVP_EC_gen("P-256"), *rs = EVP_RSA_gen(2048), *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!es || !rs || !ed)
        abort();
    lua_createtable(L, 4, 0);
    lua_getfield(L, 1, "hmac_key");
    lua_pushliteral(L, "HS256");
    lua_pushliteral(L, SECRET);
    fuzz_check(L, lua_pcall(L, 2, 1, 0), "hmac_key");
    lua_rawseti(L, -2, 1);
    lua_getfield(L, 1, "pkey");
    lua_pushliteral(L, "ES256");
    push_pem(L, es, 1);
    fuzz_check(L, lua_pcall(L, 2, 1, 0), "pkey ES256");
    lua_rawseti(L, -2, 2);
    lua_getfield(L, 1, "pkey");
    lua_pushliteral(L, "RS256");
    lua_pushnil(L);
    push_pem(L, rs, 0);
    fuzz_check(L, lua_pcall(L, 3, 1, 0), "pkey RS256");
    lua_rawseti(L, -2, 3);
    lua_getfield(L, 1, "pkey");
    lua_pushliteral(L, "EdDSA");
    push_pem(L, ed, 1);
    fuzz_check(L, lua_pcall(L, 2, 1, 0), "pkey EdDSA");
    lua_rawseti(L, -2, 4);
    for (int i = 1; i <= 4; i++) {
        lua_rawgeti(L, -1, i);
        if (!lua_isuserdata(L, -1))
            abort();
        lua_pop(L, 1);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.keys");
    EVP_PKEY_free(es);
    EVP_PKEY_free(rs);
    EVP_PKEY_free(ed);
}

/* key:decode(token): the claims alone, or nil and a message that never shows the secret. */
static void decode(lua_State *L, int key, const char *tok, size_t n)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.keys");
    lua_rawgeti(L, -1, key);
    lua_getfield(L, -1, "decode");
    lua_insert(L, -2);
    lua_pushlstring(L, tok, n);
    fuzz_check(L, lua_pcall(L, 2, 2, 0), "decode");
    if (lua_isnil(L, -2)) {
        if (!lua_isstring(L, -1) || strstr(lua_tostring(L, -1), SECRET))
            abort();
    } else if (!lua_istable(L, -2) || !lua_isnil(L, -1)) {
        abort();
    }
    lua_settop(L, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_lua();
    const char *tok = (const char *)data, *dot;
    static int ready;
    if (!ready) {
        make_keys(L);
        ready = 1;
    }
    for (int k = 1; k <= 4; k++)
        decode(L, k, tok, size);
    lua_getfield(L, 1, "jwt_header");
    lua_pushlstring(L, tok, size);
    fuzz_check(L, lua_pcall(L, 1, 2, 0), "jwt_header");
    lua_settop(L, 1);

    /* Re-signed: "H.P" of the input (up to its second dot) with a valid HS256 signature. */
    dot = memchr(tok, '.', size);
    dot = dot ? memchr(dot + 1, '.', size - (size_t)(dot + 1 - tok)) : NULL;
    if (dot) {
        size_t sn = (size_t)(dot - tok);
        lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.keys");
        lua_rawgeti(L, -1, 1);
        lua_getfield(L, -1, "sign");
        lua_insert(L, -2);
        lua_pushlstring(L, tok, sn);
        fuzz_check(L, lua_pcall(L, 2, 1, 0), "sign");
        lua_getfield(L, 1, "b64url_encode");
        lua_insert(L, -2);
        fuzz_check(L, lua_pcall(L, 1, 1, 0), "b64url_encode");
        lua_pushlstring(L, tok, sn + 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
        {
            size_t n;
            const char *signed_tok = lua_tolstring(L, -1, &n);
            decode(L, 1, signed_tok, n);    /* leaves only the core table */
        }
    }
    lua_settop(L, 1);
    return 0;
}
