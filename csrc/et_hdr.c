/* SPDX-License-Identifier: MIT */
/* The response header parser (see et_hdr.h): header lines in, names lower-cased and repeats
 * joined, or packed entries, within the block and transfer bounds. */
#include <stdlib.h>
#include <string.h>

#include "et_hdr.h"

void et_headers_init(et_headers_t *h)
{
    h->items = NULL;
    h->n = h->cap = 0;
    h->bytes = 0;
    h->kept = 0;
    h->total = 0;
    h->index = NULL;
    h->icap = 0;
    h->in_block = 0;
    h->last = h->last_vlen = 0;
    h->packed = 0;
    h->pk.data = NULL;
    h->pk.len = h->pk.cap = 0;
    h->pk_last = (size_t)-1;
}

void et_headers_restart(et_headers_t *h)
{
    size_t i;
    for (i = 0; i < h->n; i++) {
        if (!h->items[i].name_static)
            free(h->items[i].name);
        h->items[i].name = NULL;
        h->items[i].value.len = 0;
    }
    if (h->n > h->kept)
        h->kept = h->n;
    h->n = 0;
    h->bytes = 0;
    h->total = 0;
    h->in_block = 0;
    if (h->index)
        memset(h->index, 0, h->icap * sizeof *h->index);
    h->pk.len = 0;
    h->pk_last = (size_t)-1;
}

/* Drops the headers of a block (storage kept) but keeps the transfer's running total. */
static void headers_drop(et_headers_t *h)
{
    size_t total = h->total;
    et_headers_restart(h);
    h->total = total;
}

void et_headers_clear(et_headers_t *h)
{
    size_t i;
    et_headers_restart(h);
    for (i = 0; i < h->kept; i++)
        et_buf_free(&h->items[i].value);
    free(h->items);
    free(h->index);
    et_buf_free(&h->pk);
    {
        int packed = h->packed;
        et_headers_init(h);
        h->packed = packed;
    }
}

void et_headers_set_packed(et_headers_t *h, int on)
{
    et_headers_restart(h);
    h->packed = on != 0;
}

const et_hdr_t *et_headers_find(const et_headers_t *h, const char *name)
{
    size_t i;
    for (i = 0; i < h->n; i++)
        if (strcmp(h->items[i].name, name) == 0)
            return &h->items[i];
    return NULL;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Is every byte of the n at s an RFC 9110 tchar? A name with a blank, a control or a NUL inside
 * would otherwise reach Lua as another (or, cut at the NUL, an existing) header's name. */
/* One bit per byte value: the tchars (a table, not a search per byte). */
static const unsigned char tchar[32] = {
    0x00, 0x00, 0x00, 0x00, 0xfa, 0x6c, 0xff, 0x03, 0xfe, 0xff, 0xff, 0xc7, 0xff, 0xff, 0xff, 0x57,
};

static int is_token(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(tchar[c >> 3] & (1u << (c & 7))))
            return 0;
    }
    return 1;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Is stored (lower case, NUL-terminated) the same name as the n bytes at name, ignoring case? */
static int name_eq(const char *stored, const char *name, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (stored[i] == '\0' || stored[i] != lower(name[i]))
            return 0;
    return stored[n] == '\0';
}

/* The usual response header names, lower case: a name among them is not copied (and, its address
 * being constant, Lua finds its string in its cache when the headers table is built). */
#define KN(s) { s, sizeof s - 1 }
static const struct { const char *name; size_t len; } known_names[] = {
    KN("age"), KN("date"), KN("etag"), KN("vary"), KN("server"), KN("expires"), KN("location"),
    KN("set-cookie"), KN("connection"), KN("keep-alive"), KN("retry-after"), KN("content-type"),
    KN("cache-control"), KN("last-modified"), KN("content-length"), KN("accept-ranges"),
    KN("content-encoding"), KN("www-authenticate"), KN("transfer-encoding"),
    KN("strict-transport-security"), KN("access-control-allow-origin"),
};
#undef KN

static const char *known_name(const char *name, size_t n)
{
    size_t i;
    char c = lower(name[0]);
    for (i = 0; i < sizeof known_names / sizeof known_names[0]; i++)
        if (known_names[i].len == n && known_names[i].name[0] == c && name_eq(known_names[i].name, name, n))
            return known_names[i].name;
    return NULL;
}

/* FNV-1a over the lower-cased name. */
static size_t name_hash(const char *name, size_t n)
{
    size_t i, v = (size_t)2166136261u;
    for (i = 0; i < n; i++) {
        v ^= (unsigned char)lower(name[i]);
        v *= (size_t)16777619u;
    }
    return v;
}

/* Rebuilds the index with cap slots (a power of two). */
static int index_rebuild(et_headers_t *h, size_t cap)
{
    size_t i, *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return ET_ENOMEM;
    for (i = 0; i < h->n; i++) {
        size_t j = name_hash(h->items[i].name, strlen(h->items[i].name)) & (cap - 1);
        while (idx[j])
            j = (j + 1) & (cap - 1);
        idx[j] = i + 1;
    }
    free(h->index);
    h->index = idx;
    h->icap = cap;
    return ET_OK;
}

/* Adds a value to a header: joined to an existing one with ", " ("\n" for set-cookie). */
static int headers_add(et_headers_t *h, const char *name, size_t nlen, const char *val, size_t vlen)
{
    size_t i, slot = 0;
    et_hdr_t *e = NULL;
    if (h->icap < 2 * (h->n + 1) && index_rebuild(h, h->icap ? h->icap * 2 : 32) != ET_OK)
        return ET_ENOMEM;
    for (slot = name_hash(name, nlen) & (h->icap - 1); h->index[slot];
         slot = (slot + 1) & (h->icap - 1)) {
        if (name_eq(h->items[h->index[slot] - 1].name, name, nlen)) {
            e = &h->items[h->index[slot] - 1];
            break;
        }
    }
    if (e) {
        const char *sep = strcmp(e->name, "set-cookie") == 0 ? "\n" : ", ";
        if (et_buf_append(&e->value, sep, strlen(sep)) != ET_OK)
            return ET_ENOMEM;
        h->last = (size_t)(e - h->items);
        h->last_vlen = vlen;
        return et_buf_append(&e->value, val, vlen);
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        et_hdr_t *items = realloc(h->items, cap * sizeof *items);
        if (!items)
            return ET_ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    e = &h->items[h->n];
    e->name = (char *)known_name(name, nlen);
    e->name_static = e->name != NULL;
    if (!e->name_static) {
        e->name = malloc(nlen + 1);
        if (!e->name)
            return ET_ENOMEM;
        for (i = 0; i < nlen; i++)
            e->name[i] = lower(name[i]);
        e->name[nlen] = '\0';
    }
    if (h->n >= h->kept) {                      /* else a buffer kept from an earlier response */
        e->value.data = NULL;
        e->value.cap = 0;
    }
    e->value.len = 0;
    if (et_buf_append(&e->value, val, vlen) != ET_OK) {
        if (!e->name_static)
            free(e->name);
        return ET_ENOMEM;
    }
    h->last = h->n;
    h->last_vlen = vlen;
    h->index[slot] = ++h->n;
    return ET_OK;
}

/* A packed entry's value length: 4 bytes, big-endian. */
static void put_len(char *p, size_t v)
{
    p[0] = (char)(v >> 24 & 0xff);
    p[1] = (char)(v >> 16 & 0xff);
    p[2] = (char)(v >> 8 & 0xff);
    p[3] = (char)(v & 0xff);
}

static size_t get_len(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (size_t)u[0] << 24 | (size_t)u[1] << 16 | (size_t)u[2] << 8 | (size_t)u[3];
}

int et_packed_next(const char *s, size_t len, size_t *pos, et_packed_entry_t *e)
{
    const char *nul;
    size_t at = *pos;
    if (at >= len)
        return 0;
    nul = memchr(s + at, '\0', len - at);
    if (!nul || nul == s + at || (size_t)(s + len - nul) < 5)
        return -1;
    e->name = s + at;
    e->nlen = (size_t)(nul - e->name);
    e->vlen = get_len(nul + 1);
    e->value = nul + 5;
    at = (size_t)(e->value - s);
    if (e->vlen > len - at)
        return -1;
    *pos = at + e->vlen;
    return 1;
}

/* Packed mode: appends one header, its name checked (a token, else the line is ignored) and
 * lower-cased in the same pass. */
static int pack_add(et_headers_t *h, const char *name, size_t nlen, const char *val, size_t vlen)
{
    char *p;
    size_t i;
    if (et_buf_reserve(&h->pk, nlen + 5 + vlen) != ET_OK)
        return ET_ENOMEM;
    p = h->pk.data + h->pk.len;
    for (i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(tchar[c >> 3] & (1u << (c & 7))))
            return ET_OK;                       /* not a field name (nothing kept) */
        p[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    p[nlen] = '\0';
    h->pk_last = h->pk.len + nlen + 1;
    put_len(p + nlen + 1, vlen);
    if (vlen)
        memcpy(p + nlen + 5, val, vlen);
    h->pk.len += nlen + 5 + vlen;
    h->pk.data[h->pk.len] = '\0';
    return ET_OK;
}

/* Packed mode: obsolete line folding, " " and v appended to the last value (the last entry). */
static int pack_fold(et_headers_t *h, const char *v, size_t n)
{
    size_t old;
    int sp;
    if (h->pk_last == (size_t)-1)
        return ET_OK;
    old = get_len(h->pk.data + h->pk_last);
    sp = old > 0;
    if (et_buf_reserve(&h->pk, n + (size_t)sp) != ET_OK)
        return ET_ENOMEM;
    if (sp)
        h->pk.data[h->pk.len++] = ' ';
    memcpy(h->pk.data + h->pk.len, v, n);
    h->pk.len += n;
    h->pk.data[h->pk.len] = '\0';
    put_len(h->pk.data + h->pk_last, old + (size_t)sp + n);
    return ET_OK;
}

/* "HTTP/" DIGIT ["." DIGIT] SP 3DIGIT: a status line (RFC 9112 4), not a header named "HTTP/x". */
static int is_status_line(const char *s, size_t n)
{
    size_t i = 5;
    if (n < 12 || memcmp(s, "HTTP/", 5) != 0 || !(s[i] >= '0' && s[i] <= '9'))
        return 0;
    i++;
    if (s[i] == '.') {
        if (!(s[i + 1] >= '0' && s[i + 1] <= '9'))
            return 0;
        i += 2;
    }
    return i + 4 <= n && s[i] == ' ' && s[i + 1] >= '0' && s[i + 1] <= '9' && s[i + 2] >= '0' &&
           s[i + 2] <= '9' && s[i + 3] >= '0' && s[i + 3] <= '9';
}

int et_headers_feed(et_headers_t *h, const char *line, size_t len)
{
    const char *colon, *v, *end;
    size_t nlen;

    if (len > ET_HTTP_MAX_HEADER_TOTAL - h->total)
        return 1;
    h->total += len;
    if (!h->in_block && is_status_line(line, len)) {
        headers_drop(h);                        /* a new response: keep only the final one */
        if (len > ET_HTTP_MAX_HEADER_BYTES)
            return 1;                           /* (else the bound below would wrap around) */
        h->bytes = len;
        h->in_block = 1;
        return ET_OK;
    }
    if (len > ET_HTTP_MAX_HEADER_BYTES - h->bytes)
        return 1;
    h->bytes += len;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len == 0) {
        h->in_block = 0;                        /* end of a header block */
        return ET_OK;
    }
    end = line + len;
    if (is_ows(line[0])) {                      /* obsolete line folding: continues the last value */
        et_hdr_t *last;
        v = line;
        while (v < end && is_ows(*v))
            v++;
        while (end > v && is_ows(end[-1]))
            end--;
        if (v == end)
            return ET_OK;
        if (h->packed)
            return pack_fold(h, v, (size_t)(end - v));
        if (h->n == 0)
            return ET_OK;
        /* The previous line's value goes on (a space between, unless that line's own value was
         * empty), in the header that line added to. */
        last = &h->items[h->last];
        if (h->last_vlen && et_buf_append(&last->value, " ", 1) != ET_OK)
            return ET_ENOMEM;
        h->last_vlen += (h->last_vlen ? 1 : 0) + (size_t)(end - v);
        return et_buf_append(&last->value, v, (size_t)(end - v));
    }
    colon = memchr(line, ':', len);
    if (!colon)
        return ET_OK;                           /* not a header: ignored */
    nlen = (size_t)(colon - line);
    while (nlen > 0 && is_ows(line[nlen - 1]))
        nlen--;
    if (nlen == 0 || (!h->packed && !is_token(line, nlen)))
        return ET_OK;                           /* not a field name (RFC 9110 token): ignored */
    v = colon + 1;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    if (h->packed)
        return pack_add(h, line, nlen, v, (size_t)(end - v));
    return headers_add(h, line, nlen, v, (size_t)(end - v));
}
