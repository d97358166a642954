/* SPDX-License-Identifier: MIT */
/* JSON <-> Lua values over cJSON: sorted keys, exact integers, bounded depth, no leak on raise.
 *
 * Ownership: cJSON trees and printed text are malloc'd, Lua may raise (memory errors) on any
 * push. So every conversion step that touches Lua runs inside lua_pcall, with the C resources
 * reachable from a struct on the caller's C stack; the caller frees them after the pcall and only
 * then re-raises a Lua error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "et_config.h"
#include "l_common.h"

#define JSON_INT_EXACT 9007199254740992.0   /* 2^53: every integer up to this is a double */

/* ---- encode ---- */

struct enc {
    cJSON *root;        /* the whole tree, freed by the caller */
    char *text;         /* printed text, freed by the caller unless handed over */
    size_t len;
    int push;           /* push the text as a Lua string inside the protected call */
    char *err;
    size_t errlen;
    int failed;
};

static int enc_fail(struct enc *e, const char *msg, const char *detail)
{
    if (!e->failed)
        snprintf(e->err, e->errlen, "%s%s", msg, detail ? detail : "");
    e->failed = 1;
    return 0;
}

/* Sorts an object's members bytewise by key (merge sort on the next links, no allocation),
 * then restores cJSON's links: prev of each item, and the head's prev pointing to the tail. */
static cJSON *sort_list(cJSON *head, size_t n)
{
    cJSON *a, *b, *tail, *out = NULL;
    size_t i, half;
    if (n < 2)
        return head;
    half = n / 2;
    a = head;
    for (i = 1; i < half; i++)
        head = head->next;
    b = head->next;
    head->next = NULL;
    a = sort_list(a, half);
    b = sort_list(b, n - half);
    tail = NULL;
    while (a && b) {
        cJSON **pick = strcmp(a->string, b->string) <= 0 ? &a : &b;
        cJSON *x = *pick;
        *pick = x->next;
        if (tail)
            tail->next = x;
        else
            out = x;
        tail = x;
    }
    tail->next = a ? a : b;
    return out;
}

static void sort_object(cJSON *obj, size_t n)
{
    cJSON *x, *prev = NULL;
    if (n < 2)
        return;
    obj->child = sort_list(obj->child, n);
    for (x = obj->child; x; x = x->next) {
        x->prev = prev;
        prev = x;
    }
    obj->child->prev = prev;
}

/* JSON string literal for a Lua string holding NUL bytes (cJSON stops at the first NUL). */
static cJSON *raw_string(const char *s, size_t n)
{
    static const char hex[16] = "0123456789abcdef";
    size_t i, o = 0;
    char *buf;
    cJSON *item;
    if (n > ((size_t)-1 - 3) / 6)
        return NULL;
    buf = malloc(n * 6 + 3);
    if (!buf)
        return NULL;
    buf[o++] = '"';
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            memcpy(buf + o, "\\u00", 4);
            buf[o + 4] = hex[c >> 4];
            buf[o + 5] = hex[c & 15];
            o += 6;
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    item = cJSON_CreateRaw(buf);
    free(buf);
    return item;
}

static int enc_value(lua_State *L, int idx, int depth, struct enc *e, cJSON *parent, const char *key);

/* Decimal text of v, NUL-terminated; buf holds at least 21 bytes. */
static void format_integer(char *buf, lua_Integer v)
{
    char tmp[24];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    size_t n = 0, i = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[i++] = '-';
    while (n)
        buf[i++] = tmp[--n];
    buf[i] = '\0';
}

/* Shortest of %.15g..%.17g that reads back exactly (cJSON's own printer compares with an
 * epsilon and may drop digits); an integral result gets ".0", as Python's repr does. */
static void format_double(char *buf, size_t cap, double v)
{
    char *p;
    int prec;
    for (prec = 15; prec < 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (prec == 17)
        snprintf(buf, cap, "%.17g", v);
    for (p = buf; *p; p++)      /* a locale's decimal comma (strtod above used it too) */
        if (*p == ',')
            *p = '.';
    if (!strpbrk(buf, ".eE") && strlen(buf) + 3 <= cap)
        strcat(buf, ".0");
}

/* Attaches item to parent (array when key is NULL) or makes it the root. */
static int enc_attach(struct enc *e, cJSON *parent, const char *key, cJSON *item)
{
    if (!item)
        return enc_fail(e, "json: out of memory", NULL);
    if (!parent) {
        e->root = item;
        return 1;
    }
    /* Keys are constant references too (AddItemToObjectCS): Lua strings held by the table. */
    if (!(key ? cJSON_AddItemToObjectCS(parent, key, item) : cJSON_AddItemToArray(parent, item))) {
        cJSON_Delete(item);
        return enc_fail(e, "json: out of memory", NULL);
    }
    return 1;
}

static int enc_table(lua_State *L, int idx, int depth, struct enc *e, cJSON *parent, const char *key)
{
    lua_Integer count = 0, max = 0, i;
    int is_array = 1;
    cJSON *node;
    if (depth > ET_JSON_MAX_DEPTH) {
        char msg[64];
        snprintf(msg, sizeof msg, "json: nesting deeper than %d (or a cycle)", ET_JSON_MAX_DEPTH);
        return enc_fail(e, msg, NULL);
    }
    luaL_checkstack(L, 4, "json nesting");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (is_array) {
            if (lua_type(L, -1) == LUA_TNUMBER && et_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
                lua_Integer k = lua_tointeger(L, -1);
                if (k > max)
                    max = k;
            } else {
                is_array = 0;
            }
        }
    }
    if (count == 0 || max != count)
        is_array = 0;
    if (is_array) {
        node = cJSON_CreateArray();
        if (!enc_attach(e, parent, key, node))
            return 0;
        for (i = 1; i <= count; i++) {
            lua_rawgeti(L, idx, i);
            if (!enc_value(L, lua_gettop(L), depth + 1, e, node, NULL))
                return 0;
            lua_pop(L, 1);
        }
        return 1;
    }
    node = cJSON_CreateObject();
    if (!enc_attach(e, parent, key, node))
        return 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t klen;
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING)
            return enc_fail(e, "json: object key is not a string: ", luaL_typename(L, -2));
        k = lua_tolstring(L, -2, &klen);
        if (strlen(k) != klen)
            return enc_fail(e, "json: object key contains a NUL byte", NULL);
        if (!enc_value(L, lua_gettop(L), depth + 1, e, node, k))
            return 0;
        lua_pop(L, 1);
    }
    sort_object(node, (size_t)count);
    return 1;
}

static int enc_value(lua_State *L, int idx, int depth, struct enc *e, cJSON *parent, const char *key)
{
    char num[32];
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return enc_attach(e, parent, key, cJSON_CreateNull());
    case LUA_TBOOLEAN:
        return enc_attach(e, parent, key, cJSON_CreateBool(lua_toboolean(L, idx)));
    case LUA_TNUMBER:
        if (et_isinteger(L, idx)) {
            /* cJSON would print a double through %1.15g (slow, inexact above 2^53). */
            format_integer(num, lua_tointeger(L, idx));
            return enc_attach(e, parent, key, cJSON_CreateRaw(num));
        } else {
            double v = (double)lua_tonumber(L, idx);
            if (isnan(v) || isinf(v))
                return enc_fail(e, "json: cannot encode NaN or infinity", NULL);
            format_double(num, sizeof num, v);
            return enc_attach(e, parent, key, cJSON_CreateRaw(num));
        }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        /* A reference, not a copy: the string lives in the value being encoded, which the
         * stack keeps alive until the tree is printed and deleted. */
        return enc_attach(e, parent, key, strlen(s) == n ? cJSON_CreateStringReference(s) : raw_string(s, n));
    }
    case LUA_TTABLE:
        return enc_table(L, idx, depth, e, parent, key);
    case LUA_TUSERDATA: {
        int is_null;
        if (idx < 0 && idx > LUA_REGISTRYINDEX)
            idx = lua_gettop(L) + idx + 1;
        luaL_checkstack(L, 1, "json nesting");
        lua_getfield(L, LUA_REGISTRYINDEX, ET_NULL_KEY);
        is_null = lua_rawequal(L, idx, -1);
        lua_pop(L, 1);
        if (is_null)
            return enc_attach(e, parent, key, cJSON_CreateNull());
        return enc_fail(e, "json: cannot encode a value of type ", luaL_typename(L, idx));
    }
    case LUA_TLIGHTUSERDATA:
        /* NULL is null too, as lua-cjson's cjson.null: the two libraries' nulls mix. */
        if (lua_touserdata(L, idx) == NULL)
            return enc_attach(e, parent, key, cJSON_CreateNull());
        /* fall through */
    default:
        return enc_fail(e, "json: cannot encode a value of type ", luaL_typename(L, idx));
    }
}

/* ---- the flat fast path (encode) ----
 * Most payloads (state and ticket claims) are one object whose keys and string values need no
 * escaping and whose values are strings, numbers, booleans or null. The fast paths (enc_flat,
 * dec_flat) build or read exactly the text and the Lua values the general path (over cJSON) does,
 * without its tree (a malloc per member), its printer or strtod; they give up, changing nothing, at
 * the first thing outside that shape (escapes, nesting, arrays, {}, negative or fractional numbers
 * on decoding, more than FLAT_MAX members...), which the general path then handles, errors included.
 * They hold no C resource while Lua may raise. */
#define FLAT_MAX 32

struct flat_member {
    const char *k, *v;      /* key (Lua string or text); value text (string contents or literal) */
    size_t klen, vlen;
    int quoted;             /* v is a string's contents (else a number or literal, as is) */
    lua_Integer i;          /* decode: a number's value */
    char num[32];
};

/* Needs no escaping in a JSON string: no control character (NUL included), '"' or '\'. */
static int plain(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

/* The table at idx as JSON text into out (cap bytes, NUL-terminated), *len its length; 0: not a
 * flat object of plain members (nothing written that matters). Never raises. */
static int enc_flat(lua_State *L, int idx, char *out, size_t cap, size_t *len)
{
    struct flat_member m[FLAT_MAX], *order[FLAT_MAX];
    int n = 0, i, j;
    size_t o = 0, total = 1;
    if (lua_type(L, idx) != LUA_TTABLE || !lua_checkstack(L, 3))
        return 0;
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        struct flat_member *p = &m[n];
        int ok = n < FLAT_MAX && lua_type(L, -2) == LUA_TSTRING;
        if (ok) {
            p->k = lua_tolstring(L, -2, &p->klen);          /* a string: no conversion */
            ok = plain(p->k, p->klen);
        }
        if (ok) {
            p->quoted = 0;
            switch (lua_type(L, -1)) {
            case LUA_TSTRING:
                p->v = lua_tolstring(L, -1, &p->vlen);
                p->quoted = 1;
                ok = plain(p->v, p->vlen);
                break;
            case LUA_TBOOLEAN:
                p->v = lua_toboolean(L, -1) ? "true" : "false";
                p->vlen = strlen(p->v);
                break;
            case LUA_TNUMBER:
                if (et_isinteger(L, -1)) {
                    format_integer(p->num, lua_tointeger(L, -1));
                } else {
                    double v = (double)lua_tonumber(L, -1);
                    ok = !isnan(v) && !isinf(v);
                    if (ok)
                        format_double(p->num, sizeof p->num, v);
                }
                p->v = p->num;
                p->vlen = strlen(p->num);
                break;
            case LUA_TLIGHTUSERDATA:
                p->v = "null";
                p->vlen = 4;
                ok = lua_touserdata(L, -1) == NULL;
                break;
            default:                                        /* tables, the null userdata... */
                ok = 0;
                break;
            }
        }
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
        total += p->klen + 3 + p->vlen + (p->quoted ? 2 : 0) + 1;   /* "k":v and a comma or } */
        order[n++] = p;
    }
    if (n == 0 || total >= cap)
        return 0;
    for (i = 1; i < n; i++) {                               /* insertion sort, bytewise (no NUL) */
        struct flat_member *x = order[i];
        for (j = i; j > 0 && strcmp(order[j - 1]->k, x->k) > 0; j--)
            order[j] = order[j - 1];
        order[j] = x;
    }
    out[o++] = '{';
    for (i = 0; i < n; i++) {
        const struct flat_member *p = order[i];
        if (i)
            out[o++] = ',';
        out[o++] = '"';
        memcpy(out + o, p->k, p->klen);
        o += p->klen;
        out[o++] = '"';
        out[o++] = ':';
        if (p->quoted)
            out[o++] = '"';
        memcpy(out + o, p->v, p->vlen);
        o += p->vlen;
        if (p->quoted)
            out[o++] = '"';
    }
    out[o++] = '}';
    out[o] = '\0';
    *len = o;
    return 1;
}

/* Protected part of encoding: argument 1 the struct enc, argument 2 the value. */
static int enc_protected(lua_State *L)
{
    struct enc *e = lua_touserdata(L, 1);
    if (!enc_value(L, 2, 1, e, NULL, NULL))
        return 0;
    e->text = cJSON_PrintUnformatted(e->root);
    if (!e->text)
        return enc_fail(e, "json: out of memory", NULL);
    e->len = strlen(e->text);
    if (e->push) {
        lua_pushlstring(L, e->text, e->len);
        return 1;
    }
    return 0;
}

/* Runs the protected encoder; frees the tree (and the text unless keep_text). Re-raises Lua
 * errors (memory) after freeing. Returns 1 on success. */
static int enc_run(lua_State *L, int idx, struct enc *e, int keep_text)
{
    int st;
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 3)) {
        snprintf(e->err, e->errlen, "stack overflow");
        return 0;
    }
    lua_pushcfunction(L, enc_protected);
    lua_pushlightuserdata(L, e);
    lua_pushvalue(L, idx);
    st = lua_pcall(L, 2, e->push ? 1 : 0, 0);
    cJSON_Delete(e->root);
    e->root = NULL;
    if (st != LUA_OK || e->failed || !keep_text) {
        free(e->text);
        e->text = NULL;
    }
    if (st != LUA_OK)
        lua_error(L);
    if (e->failed && e->push)
        lua_pop(L, 1);      /* the nil-equivalent result slot of a failed protected call */
    return !e->failed;
}

char *l_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t errlen)
{
    struct enc e;
    char flat[2048];
    if (enc_flat(L, idx, flat, sizeof flat, len)) {
        char *text = malloc(*len + 1);
        if (text) {
            memcpy(text, flat, *len + 1);
            return text;
        }
    }
    memset(&e, 0, sizeof e);
    e.err = err;
    e.errlen = errlen;
    if (!enc_run(L, idx, &e, 1))
        return NULL;
    *len = e.len;
    return e.text;
}

static int l_json_encode_fn(lua_State *L)
{
    char err[160], flat[2048];
    struct enc e;
    size_t len;
    luaL_checkany(L, 1);
    if (enc_flat(L, 1, flat, sizeof flat, &len)) {
        lua_pushlstring(L, flat, len);
        return 1;
    }
    memset(&e, 0, sizeof e);
    e.err = err;
    e.errlen = sizeof err;
    e.push = 1;
    if (!enc_run(L, 1, &e, 0)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* ---- decode ---- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the RFC 8259 number at s (n bytes left), 0 if it is not one. */
static size_t number_len(const char *s, size_t n)
{
    size_t i = 0, start;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && is_digit(s[i])) {
        while (i < n && is_digit(s[i]))
            i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        start = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start)
            return 0;
    }
    if (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' || s[i] == '-'))
        return 0;   /* "01", "1.2.3": cJSON's strtod would take a prefix or more than the grammar */
    return i;
}

/* One pass over the text before cJSON sees it, for what cJSON lets through or cannot hold:
 * nesting deeper than ET_JSON_MAX_DEPTH, "\u0000" escapes (cJSON strings are NUL-terminated
 * and would be cut), raw control characters in strings, and numbers outside the JSON grammar
 * ("01", "1.", "+1"). Messages name the 1-based byte offset. */
static int prescan(const char *s, size_t n, char *err, size_t errlen)
{
    size_t i, depth = 0, len, values = 0;
    int in_str = 0;
    if (n > ET_JSON_MAX_BYTES) {
        snprintf(err, errlen, "json: text longer than %d bytes", ET_JSON_MAX_BYTES);
        return 0;
    }
    for (i = 0; i < n; i++) {
        /* Each value (and key) starts with one of these outside a string: count them. */
        if (!in_str && (s[i] == '"' || s[i] == '[' || s[i] == '{' || s[i] == '-' || is_digit(s[i]) ||
                        s[i] == 't' || s[i] == 'f' || s[i] == 'n') &&
            ++values > ET_JSON_MAX_ELEMENTS) {
            snprintf(err, errlen, "json: more than %d values at byte %zu", ET_JSON_MAX_ELEMENTS, i + 1);
            return 0;
        }
        char c = s[i];
        if (in_str) {
            if ((unsigned char)c < 0x20) {
                snprintf(err, errlen, "json: control character in a string at byte %zu", i + 1);
                return 0;
            }
            if (c == '\\') {
                if (i + 5 < n && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0) {
                    snprintf(err, errlen, "json: \\u0000 in a string is not supported at byte %zu", i + 1);
                    return 0;
                }
                i++;
            } else if (c == '"') {
                in_str = 0;
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > ET_JSON_MAX_DEPTH) {
                snprintf(err, errlen, "json: nesting deeper than %d at byte %zu", ET_JSON_MAX_DEPTH, i + 1);
                return 0;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        } else if (c == '-' || c == '+' || c == '.' || is_digit(c)) {
            len = number_len(s + i, n - i);
            if (len == 0) {
                snprintf(err, errlen, "json: bad number at byte %zu", i + 1);
                return 0;
            }
            i += len - 1;
        }
    }
    return 1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void dec_value(lua_State *L, const cJSON *v)
{
    const cJSON *x;
    lua_Integer i = 0;
    switch (v->type & 0xff) {
    case cJSON_False:
        lua_pushboolean(L, 0);
        break;
    case cJSON_True:
        lua_pushboolean(L, 1);
        break;
    case cJSON_NULL:
        lua_getfield(L, LUA_REGISTRYINDEX, ET_NULL_KEY);
        break;
    case cJSON_Number: {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) <= JSON_INT_EXACT)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, (lua_Number)d);
        break;
    }
    case cJSON_String:
        lua_pushstring(L, v->valuestring);
        break;
    case cJSON_Array:
        luaL_checkstack(L, 3, "json nesting");
        for (x = v->child; x; x = x->next)
            i++;
        lua_createtable(L, (int)(i < 1 << 20 ? i : 1 << 20), 0);
        i = 0;
        for (x = v->child; x; x = x->next) {
            dec_value(L, x);
            lua_rawseti(L, -2, ++i);
        }
        break;
    case cJSON_Object:
        luaL_checkstack(L, 3, "json nesting");
        for (x = v->child; x; x = x->next)
            i++;
        lua_createtable(L, 0, (int)(i < 1 << 20 ? i : 1 << 20));
        for (x = v->child; x; x = x->next) {
            lua_pushstring(L, x->string);
            dec_value(L, x);
            lua_rawset(L, -3);
        }
        break;
    default:
        lua_pushnil(L);     /* not produced by the parser */
        break;
    }
}

static int dec_protected(lua_State *L)
{
    dec_value(L, lua_touserdata(L, 1));
    return 1;
}

/* The flat fast path of decoding (see enc_flat): a text that is one object of plain members
 * whose values are strings without escapes, integers without sign, fraction or exponent (at most
 * 15 digits: exact), booleans or null, pushed as the general path would (the same table size
 * hint, the members set in order). 0, nothing pushed: anything else (even a valid text). */
static int dec_flat(lua_State *L, const char *s, size_t n)
{
    struct flat_member m[FLAT_MAX];
    int count = 0, k;
    size_t i = 0;
    if (n > ET_JSON_MAX_BYTES)
        return 0;
#define FLAT_WS() while (i < n && is_space(s[i])) i++
    FLAT_WS();
    if (i >= n || s[i] != '{')
        return 0;
    i++;
    FLAT_WS();
    if (i < n && s[i] == '}') {
        i++;
    } else {
        for (;;) {
            struct flat_member *p;
            if (count == FLAT_MAX || i >= n || s[i] != '"')
                return 0;
            p = &m[count++];
            p->k = s + ++i;
            while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20)
                i++;
            if (i >= n || s[i] != '"')
                return 0;
            p->klen = (size_t)(s + i - p->k);
            i++;
            FLAT_WS();
            if (i >= n || s[i] != ':')
                return 0;
            i++;
            FLAT_WS();
            if (i >= n)
                return 0;
            p->quoted = 0;
            if (s[i] == '"') {
                p->v = s + ++i;
                while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20)
                    i++;
                if (i >= n || s[i] != '"')
                    return 0;
                p->vlen = (size_t)(s + i - p->v);
                p->quoted = 1;
                i++;
            } else if (is_digit(s[i])) {
                size_t d0 = i;
                lua_Integer v = 0;
                if (s[i] == '0')
                    i++;
                else
                    while (i < n && is_digit(s[i]) && i - d0 < 15)
                        v = v * 10 + (s[i++] - '0');
                if (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' ||
                              s[i] == '-'))
                    return 0;
                p->i = v;
                p->v = NULL;
            } else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
                p->v = "true";
                i += 4;
            } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
                p->v = "false";
                i += 5;
            } else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
                p->v = "null";
                i += 4;
            } else {
                return 0;
            }
            FLAT_WS();
            if (i < n && s[i] == ',') {
                i++;
                FLAT_WS();
                continue;
            }
            if (i < n && s[i] == '}') {
                i++;
                break;
            }
            return 0;
        }
    }
    FLAT_WS();
#undef FLAT_WS
    if (i != n || !lua_checkstack(L, 3))
        return 0;
    /* Only now Lua (which may raise: nothing of ours to free). */
    lua_createtable(L, 0, count);
    for (k = 0; k < count; k++) {
        const struct flat_member *p = &m[k];
        lua_pushlstring(L, p->k, p->klen);
        if (p->quoted)
            lua_pushlstring(L, p->v, p->vlen);
        else if (!p->v)
            lua_pushinteger(L, p->i);
        else if (p->v[0] == 'n')
            lua_getfield(L, LUA_REGISTRYINDEX, ET_NULL_KEY);
        else
            lua_pushboolean(L, p->v[0] == 't');
        lua_rawset(L, -3);
    }
    return 1;
}

int l_json_push(lua_State *L, const char *text, size_t len, char *err, size_t errlen)
{
    const char *end = NULL;
    cJSON *root;
    size_t pos;
    int st;
    if (dec_flat(L, text, len))
        return 1;
    if (!prescan(text, len, err, errlen))
        return 0;
    if (!lua_checkstack(L, 3)) {
        snprintf(err, errlen, "stack overflow");
        return 0;
    }
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    pos = end && end >= text ? (size_t)(end - text) : 0;
    if (!root) {
        if (pos >= len)
            snprintf(err, errlen, "json: unexpected end of input at byte %zu", len + 1);
        else
            snprintf(err, errlen, "json: syntax error at byte %zu", pos + 1);
        return 0;
    }
    while (pos < len && is_space(text[pos]))
        pos++;
    if (pos < len) {
        cJSON_Delete(root);
        snprintf(err, errlen, "json: trailing garbage at byte %zu", pos + 1);
        return 0;
    }
    lua_pushcfunction(L, dec_protected);
    lua_pushlightuserdata(L, root);
    st = lua_pcall(L, 1, 1, 0);
    cJSON_Delete(root);
    if (st != LUA_OK)
        lua_error(L);
    return 1;
}

static int l_json_decode_fn(lua_State *L)
{
    char err[160];
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    if (!l_json_push(L, s, n, err, sizeof err)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

static int l_null_tostring(lua_State *L)
{
    lua_pushliteral(L, "eternaltwin.null");
    return 1;
}

/* JSON null is one full userdata, so that it can print as `eternaltwin.null` (a light userdata
 * cannot have a metatable of its own). It lives in the registry under ET_NULL_KEY: every state
 * has exactly one, and a second luaopen finds it there. */
void l_json_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "json_encode", l_json_encode_fn },
        { "json_decode", l_json_decode_fn },
        { NULL, NULL }
    };
    luaL_setfuncs(L, funcs, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, ET_NULL_KEY);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newuserdata(L, 1);
        if (luaL_newmetatable(L, ET_NULL_MT)) {
            lua_pushcfunction(L, l_null_tostring);
            lua_setfield(L, -2, "__tostring");
            lua_pushliteral(L, ET_NULL_MT);
            lua_setfield(L, -2, "__name");
            lua_pushliteral(L, ET_NULL_MT);
            lua_setfield(L, -2, "__metatable");
        }
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, ET_NULL_KEY);
    }
    lua_setfield(L, -2, "null");
    lua_pushinteger(L, ET_JSON_MAX_ELEMENTS);
    lua_setfield(L, -2, "JSON_MAX_ELEMENTS");
    lua_pushinteger(L, ET_JSON_MAX_DEPTH);
    lua_setfield(L, -2, "JSON_MAX_DEPTH");
    lua_pushinteger(L, ET_JSON_MAX_BYTES);
    lua_setfield(L, -2, "JSON_MAX_BYTES");
}
