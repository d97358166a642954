/* SPDX-License-Identifier: MIT */
/* Lua bindings of JWS keys: hmac_key, pkey, jwt_header and the Key class (JWT encode/decode). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_b64.h"
#include "et_config.h"
#include "et_jwt.h"
#include "et_keyload.h"
#include "l_common.h"

typedef struct l_key {
    et_jwt_key_t *k;    /* NULL once closed (or before construction succeeded) */
    int pins;           /* methods using k across Lua allocations (see pin_key) */
    int close_pending;  /* close() was called while pinned: freed at the last unpin */
} l_key;

static const char *const hmac_algs[] = { "HS256", "HS384", "HS512", NULL };
static const char *const pkey_algs[] = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", NULL
};

/* A closed userdata with the Key metatable, on top of the stack. */
static l_key *key_prep(lua_State *L)
{
    l_key *ud = et_newuserdata(L, sizeof *ud);
    ud->k = NULL;
    ud->pins = ud->close_pending = 0;
    luaL_setmetatable(L, ET_KEY_MT);
    return ud;
}

static et_jwt_key_t *check_key(lua_State *L, int idx)
{
    l_key *ud = luaL_checkudata(L, idx, ET_KEY_MT);
    if (!ud->k || ud->close_pending)
        luaL_error(L, "attempt to use a closed key");
    return ud->k;
}

/* A method that keeps using the key after a Lua allocation pins it: an allocation may run a
 * finalizer that closes the key (`__close`, `close()`), which then only marks it; the last
 * unpin frees it. __gc never waits: it cannot run while a method holds the key on its stack.
 * Argument checks come before the pin, so a raise there leaves no pin behind. */
static l_key *pin_key(lua_State *L, int idx)
{
    l_key *ud;
    check_key(L, idx);
    ud = lua_touserdata(L, idx);
    ud->pins++;
    return ud;
}

static void unpin_key(l_key *ud)
{
    if (ud->pins > 0 && --ud->pins == 0 && ud->close_pending) {
        et_jwt_key_free(ud->k);
        ud->k = NULL;
        ud->close_pending = 0;
    }
}

static int fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

struct owned {
    const char *s;
    size_t n;
};

static int push_owned_p(lua_State *L)
{
    const struct owned *o = lua_touserdata(L, 1);
    lua_pushlstring(L, o->s, o->n);
    return 1;
}

/* Pushes n bytes of malloc'd s as a string and frees s, even when Lua raises (memory). The
 * caller has made room for 2 stack slots before allocating s. */
static void push_owned(lua_State *L, char *s, size_t n)
{
    struct owned o;
    int st;
    o.s = s;
    o.n = n;
    lua_pushcfunction(L, push_owned_p);
    lua_pushlightuserdata(L, &o);
    st = lua_pcall(L, 1, 1, 0);
    free(s);
    if (st != LUA_OK)
        lua_error(L);
}

static int l_key_hmac(lua_State *L)
{
    int alg = luaL_checkoption(L, 1, NULL, hmac_algs);
    size_t n;
    const char *secret = luaL_checklstring(L, 2, &n);
    char err[160];
    l_key *ud = key_prep(L);
    if (et_jwt_key_hmac((et_jwt_alg_t)(ET_JWT_HS256 + alg), (const unsigned char *)secret, n,
                        &ud->k, err, sizeof err) != ET_JWT_OK)
        return fail(L, err);
    return 1;
}

static int l_key_pkey(lua_State *L)
{
    int alg = et_jwt_alg_from_name(pkey_algs[luaL_checkoption(L, 1, NULL, pkey_algs)]);
    size_t npub = 0, npriv = 0;
    const char *pub = luaL_optlstring(L, 2, NULL, &npub);
    const char *priv = luaL_optlstring(L, 3, NULL, &npriv);
    EVP_PKEY *pk_pub = NULL, *pk_priv = NULL;
    char err[200], msg[240];
    l_key *ud;
    luaL_argcheck(L, pub || priv, 2, "public or private key text expected");
    ud = key_prep(L);
    /* From here to et_jwt_key_pkey no Lua call can raise while an EVP_PKEY is held. */
    if (pub && !et_keyload(pub, npub, 0, &pk_pub, err, sizeof err)) {
        snprintf(msg, sizeof msg, "public key: %s", err);
        return fail(L, msg);
    }
    if (priv && !et_keyload(priv, npriv, 1, &pk_priv, err, sizeof err)) {
        EVP_PKEY_free(pk_pub);
        snprintf(msg, sizeof msg, "private key: %s", err);
        return fail(L, msg);
    }
    if (et_jwt_key_pkey((et_jwt_alg_t)alg, pk_pub, pk_priv, &ud->k, err, sizeof err) != ET_JWT_OK)
        return fail(L, err);
    return 1;
}

/* First non-blank byte of a JSON text (0 if none). */
static char json_first(const unsigned char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return (char)s[i];
    return 0;
}

/* Pushes the decoded JSON object of one part, or returns 0 with a message in msg. */
static int push_object(lua_State *L, const char *what, const unsigned char *s, size_t n,
                       char *msg, size_t msglen)
{
    char err[160];
    if (!l_json_push(L, (const char *)s, n, err, sizeof err)) {
        snprintf(msg, msglen, "%s is not valid JSON (%s)", what, err);
        return 0;
    }
    if (json_first(s, n) != '{') {
        lua_pop(L, 1);
        snprintf(msg, msglen, "%s is not a JSON object", what);
        return 0;
    }
    return 1;
}

/* Attacker-chosen text made safe for a message: printable ASCII, at most 24 bytes. */
static void safe_copy(char *dst, size_t cap, const char *s, size_t n)
{
    size_t i, o = 0;
    for (i = 0; i < n && o + 4 < cap; i++) {
        if (o >= 24) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    }
    dst[o] = '\0';
}

/* Splits the token at index idx and pushes its header table. Returns 0 with a message. */
static int push_header(lua_State *L, const char *tok, size_t len, unsigned char *buf,
                       et_jwt_parts_t *parts, char *msg, size_t msglen)
{
    if (et_jwt_split(tok, len, buf, parts, msg, msglen) != ET_JWT_OK)
        return 0;
    return push_object(L, "header", parts->header, parts->header_len, msg, msglen);
}

static int l_key_jwt_header(lua_State *L)
{
    size_t len;
    const char *tok = luaL_checklstring(L, 1, &len);
    unsigned char buf[ET_JWT_MAX_LEN];
    et_jwt_parts_t parts;
    char msg[200];
    if (!push_header(L, tok, len, buf, &parts, msg, sizeof msg))
        return fail(L, msg);
    return 1;
}

/* The claims of the token at 2, checked by k (the header table is not built when the header is
 * the key's own default one), or nil, msg. */
static int key_decode(lua_State *L, et_jwt_key_t *k)
{
    size_t len, alen;
    const char *tok = lua_tolstring(L, 2, &len), *alg, *want = et_jwt_alg_name(et_jwt_key_alg(k));
    unsigned char buf[ET_JWT_MAX_LEN];
    et_jwt_parts_t parts;
    char msg[200], shown[32];
    const char *hdr64;
    size_t hdr64_len;
    lua_settop(L, 2);
    if (et_jwt_split(tok, len, buf, &parts, msg, sizeof msg) != ET_JWT_OK)
        return fail(L, msg);
    hdr64 = et_jwt_key_header_b64(k, &hdr64_len);
    if (len > hdr64_len && tok[hdr64_len] == '.' && memcmp(tok, hdr64, hdr64_len) == 0) {
        /* The key's own default header, byte for byte (the usual case): skip the parser. */
        goto verify;
    }
    if (!push_object(L, "header", parts.header, parts.header_len, msg, sizeof msg))
        return fail(L, msg);
    lua_getfield(L, 3, "alg");                               /* key, token, header, alg */
    if (lua_type(L, -1) != LUA_TSTRING)
        return fail(L, lua_isnil(L, -1) ? "header has no alg" : "header alg is not a string");
    alg = lua_tolstring(L, -1, &alen);
    if (alen != strlen(want) || memcmp(alg, want, alen) != 0) {
        safe_copy(shown, sizeof shown, alg, alen);
        snprintf(msg, sizeof msg, "algorithm \"%s\" not accepted (key is %s)", shown, want);
        return fail(L, msg);
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "crit");
    if (!lua_isnil(L, -1))
        return fail(L, "header \"crit\" is not supported");
    lua_pop(L, 1);
verify:
    if (et_jwt_verify(k, (const unsigned char *)tok, parts.signing_len, parts.sig, parts.sig_len,
                      msg, sizeof msg) != ET_JWT_OK)
        return fail(L, msg);
    if (!push_object(L, "payload", parts.payload, parts.payload_len, msg, sizeof msg))
        return fail(L, msg);
    return 1;
}

/* key:decode(token) -> claims | nil, msg (the header: jwt_header). */
static int l_key_decode(lua_State *L)
{
    l_key *ud;
    int n;
    check_key(L, 1);
    luaL_checkstring(L, 2);
    ud = pin_key(L, 1);
    n = key_decode(L, ud->k);
    unpin_key(ud);
    return n;
}

static int l_key_claims(lua_State *L)
{
    return l_key_decode(L);
}

/* The client's checks of a state's claims (the table at ci), in the order the messages promise:
 * NULL when they pass, else the message (a literal, or written in buf). */
static const char *state_check(lua_State *L, int ci, const char *as, size_t as_len, lua_Number now,
                               lua_Number leeway, char *buf, size_t buflen)
{
    static const char *const names[] = { "a", "as", "iat", "rfp", "exp", "nonce" };
    static const int types[] = { LUA_TSTRING, LUA_TSTRING, LUA_TNUMBER, LUA_TNUMBER, LUA_TNUMBER,
                                 LUA_TSTRING };
    size_t a_len = 0, v_len = 0;
    const char *a = NULL, *v = NULL, *msg = NULL;
    lua_Number iat = 0, exp = 0;
    int i;
    for (i = 0; i < 6 && !msg; i++) {
        int t;
        lua_getfield(L, ci, names[i]);
        t = lua_type(L, -1);
        if (t == LUA_TNIL) {
            snprintf(buf, buflen, "invalid state: claim '%s' is missing", names[i]);
            msg = buf;
        } else if (t != types[i] || (t == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))) {
            snprintf(buf, buflen, "invalid state: claim '%s' must be a %s", names[i],
                     types[i] == LUA_TSTRING ? "string" : "number");
            msg = buf;
        } else if (i == 0) {
            a = lua_tolstring(L, -1, &a_len);   /* still referenced by the claims */
        } else if (i == 1) {
            v = lua_tolstring(L, -1, &v_len);
        } else if (i == 2) {
            iat = lua_tonumber(L, -1);
        } else if (i == 4) {
            exp = lua_tonumber(L, -1);
        }
        lua_pop(L, 1);
    }
    if (msg && a && a_len == 6 && memcmp(a, "ticket", 6) == 0)
        return "invalid state: this is a ticket, not a state";  /* (a ticket lacks a state's claims) */
    if (msg)
        return msg;
    if (!(a_len == 9 && memcmp(a, "authorize", 9) == 0))
        return "invalid state: action is not 'authorize'";
    if (!(v_len == as_len && memcmp(v, as, as_len) == 0))
        return "invalid state: issued for another authorization server";
    if (iat > now + leeway)
        return "invalid state: issued in the future";
    if (exp + leeway < now)
        return "invalid state: expired";
    return NULL;
}

/* key:state_claims(token, as, now, leeway) -> claims, or nil, message [, claims]: `claims` and
 * then the client's checks of a state (state_check), in C (the Lua layer keeps `expected` and the
 * replay store). Messages start with "invalid state: "; the claims come third when the signature
 * held. */
static int l_key_state_claims(lua_State *L)
{
    size_t as_len;
    const char *as = luaL_checklstring(L, 3, &as_len), *msg;
    lua_Number now = luaL_checknumber(L, 4), leeway = luaL_optnumber(L, 5, 0);
    char buf[96];
    check_key(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 5);
    lua_pushcfunction(L, l_key_claims);         /* the arguments stay referenced at 1..5 */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 2);                          /* 6: claims or nil, 7: nil or message */
    if (lua_isnil(L, 6)) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid state: %s", lua_tostring(L, 7));
        return 2;
    }
    lua_settop(L, 6);                           /* key, token, as, now, leeway, claims */
    msg = state_check(L, 6, as, as_len, now, leeway, buf, sizeof buf);
    if (!msg)
        return 1;
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushvalue(L, 6);
    return 3;
}

/* state_check(claims, as, now [, leeway]) -> nil, or the message of the first check that fails:
 * the same checks for the claims a custom (Lua) key decoded. */
static int l_state_check(lua_State *L)
{
    size_t as_len;
    const char *as, *msg;
    lua_Number now, leeway;
    char buf[96];
    luaL_checktype(L, 1, LUA_TTABLE);
    as = luaL_checklstring(L, 2, &as_len);
    now = luaL_checknumber(L, 3);
    leeway = luaL_optnumber(L, 4, 0);
    lua_settop(L, 4);
    msg = state_check(L, 1, as, as_len, now, leeway, buf, sizeof buf);
    if (msg)
        lua_pushstring(L, msg);
    else
        lua_pushnil(L);
    return 1;
}

/* base64url of {"alg":A,"kid":K,"typ":"JWT"} pushed as a string; 0 with a message otherwise. */
static int push_kid_header(lua_State *L, et_jwt_key_t *k, int kid, char *msg, size_t msglen)
{
    size_t n, m;
    char *json;
    const char *s;
    et_Buffer b;
    lua_createtable(L, 0, 3);
    lua_pushstring(L, et_jwt_alg_name(et_jwt_key_alg(k)));
    lua_setfield(L, -2, "alg");
    lua_pushvalue(L, kid);
    lua_setfield(L, -2, "kid");
    lua_pushliteral(L, "JWT");
    lua_setfield(L, -2, "typ");
    json = l_json_encode(L, -1, &n, msg, msglen);
    lua_pop(L, 1);
    if (!json)
        return 0;
    push_owned(L, json, n);
    s = lua_tolstring(L, -1, &n);
    m = et_b64url_encoded_len(n);
    et_b64url_encode((const unsigned char *)s, n, et_buffinitsize(L, &b, m));
    et_pushresultsize(&b, m);
    lua_remove(L, -2);
    return 1;
}

static int key_encode(lua_State *L, et_jwt_key_t *k);

static int l_key_encode(lua_State *L)
{
    l_key *ud;
    int n;
    check_key(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TSTRING);
    ud = pin_key(L, 1);
    n = key_encode(L, ud->k);
    unpin_key(ud);
    return n;
}

static int key_encode(lua_State *L, et_jwt_key_t *k)
{
    const char *hdr = NULL;
    size_t hdr_len = 0, plen, toklen;
    char msg[200], *payload, *tok;
    int st;
    lua_settop(L, 3);
    if (!et_jwt_key_can_sign(k))
        return fail(L, "key cannot sign (public key only)");
    if (!lua_isnil(L, 3)) {
        if (!push_kid_header(L, k, 3, msg, sizeof msg))
            return fail(L, msg);
        hdr = lua_tolstring(L, 4, &hdr_len);                 /* kept alive on the stack */
    }
    luaL_checkstack(L, 4, NULL);
    payload = l_json_encode(L, 2, &plen, msg, sizeof msg);
    if (!payload)
        return fail(L, msg);
    if (payload[0] != '{') {
        free(payload);
        return fail(L, "claims must be a JSON object, not an array");
    }
    /* Pure C until push_owned: nothing can raise while payload or tok is held. */
    st = et_jwt_encode(k, hdr, hdr_len, payload, plen, &tok, &toklen, msg, sizeof msg);
    free(payload);
    if (st != ET_JWT_OK)
        return fail(L, msg);
    push_owned(L, tok, toklen);
    return 1;
}

static int l_key_sign(lua_State *L)
{
    size_t n, siglen = 0;
    const char *data = luaL_checklstring(L, 2, &n);   /* may allocate: the key is taken after */
    et_jwt_key_t *k = check_key(L, 1);
    unsigned char sig[ET_JWT_SIG_MAX];
    char msg[160];
    if (et_jwt_sign(k, (const unsigned char *)data, n, sig, &siglen, msg, sizeof msg) != ET_JWT_OK)
        return fail(L, msg);
    lua_pushlstring(L, (const char *)sig, siglen);
    return 1;
}

static int l_key_verify(lua_State *L)
{
    size_t n, siglen;
    const char *data = luaL_checklstring(L, 2, &n);   /* may allocate: the key is taken after */
    const char *sig = luaL_checklstring(L, 3, &siglen);
    et_jwt_key_t *k = check_key(L, 1);
    char msg[160];
    int st = et_jwt_verify(k, (const unsigned char *)data, n, (const unsigned char *)sig, siglen,
                           msg, sizeof msg);
    if (st != ET_JWT_OK && st != ET_JWT_EBADSIG)
        return fail(L, msg);
    lua_pushboolean(L, st == ET_JWT_OK);
    return 1;
}

static int l_key_algorithm(lua_State *L)
{
    lua_pushstring(L, et_jwt_alg_name(et_jwt_key_alg(check_key(L, 1))));
    return 1;
}

static int l_key_can_sign(lua_State *L)
{
    lua_pushboolean(L, et_jwt_key_can_sign(check_key(L, 1)));
    return 1;
}

#if ET_HAVE_CLOSE
/* __close (5.4's to-be-closed variables): frees the key now, or once the method using it is done. */
static int l_key_close(lua_State *L)
{
    l_key *ud = luaL_checkudata(L, 1, ET_KEY_MT);
    if (ud->pins > 0 && ud->k) {
        ud->close_pending = 1;                  /* a method is using it: freed when it is done */
        return 0;
    }
    et_jwt_key_free(ud->k);
    ud->k = NULL;
    return 0;
}
#endif

static int l_key_gc(lua_State *L)
{
    l_key *ud = luaL_checkudata(L, 1, ET_KEY_MT);
    et_jwt_key_free(ud->k);
    ud->k = NULL;
    ud->close_pending = 0;
    return 0;
}

static int l_key_tostring(lua_State *L)
{
    l_key *ud = luaL_checkudata(L, 1, ET_KEY_MT);
    if (!ud->k || ud->close_pending)
        lua_pushliteral(L, ET_KEY_MT " (closed)");
    else
        lua_pushfstring(L, ET_KEY_MT " (%s, %s)", et_jwt_alg_name(et_jwt_key_alg(ud->k)),
                        et_jwt_key_is_hmac(ud->k) ? "secret"
                        : et_jwt_key_can_sign(ud->k) ? "private" : "public");
    return 1;
}

void l_key_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "hmac_key", l_key_hmac },
        { "pkey", l_key_pkey },
        { "jwt_header", l_key_jwt_header },
        { "state_check", l_state_check },
        { NULL, NULL }
    };
    static const luaL_Reg methods[] = {
        { "encode", l_key_encode },
        { "decode", l_key_decode },
        { "claims", l_key_claims },
        { "state_claims", l_key_state_claims },
        { "sign", l_key_sign },
        { "verify", l_key_verify },
        { "algorithm", l_key_algorithm },
        { "can_sign", l_key_can_sign },
        { NULL, NULL }
    };
    static const luaL_Reg metamethods[] = {
        { "__gc", l_key_gc },
#if ET_HAVE_CLOSE
        { "__close", l_key_close },
#endif
        { "__tostring", l_key_tostring },
        { NULL, NULL }
    };
    l_newclass(L, ET_KEY_MT, methods, metamethods, 0);
    luaL_setfuncs(L, funcs, 0);
}
