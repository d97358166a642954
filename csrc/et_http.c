/* SPDX-License-Identifier: MIT */
/* HTTP transfer state: easy-handle options, body and header capture, CURLcode mapping. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_http.h"

/* Body capacity kept between requests of one handle (and header storage, by the headers' raw size);
 * bigger ones are freed. */
#define ET_BODY_KEEP (256 * 1024)

/* ---- buffer ---- */

void et_buf_free(et_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int buf_reserve(et_buf_t *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > (size_t)-1 - b->len - 1)
        return ET_ENOMEM;
    need = b->len + extra + 1;                  /* room for a NUL, handy for strings */
    if (need <= b->cap)
        return ET_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p)
        return ET_ENOMEM;
    b->data = p;
    b->cap = cap;
    return ET_OK;
}

static int buf_append(et_buf_t *b, const char *p, size_t n)
{
    if (buf_reserve(b, n) != ET_OK)
        return ET_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return ET_OK;
}

int et_buf_append_limited(et_buf_t *b, const char *p, size_t n, size_t limit)
{
    if (b->len > limit || n > limit - b->len)
        return 1;
    return buf_append(b, p, n);
}

/* ---- response headers ---- */

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
        if (buf_append(&e->value, sep, strlen(sep)) != ET_OK)
            return ET_ENOMEM;
        h->last = (size_t)(e - h->items);
        h->last_vlen = vlen;
        return buf_append(&e->value, val, vlen);
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
    if (buf_append(&e->value, val, vlen) != ET_OK) {
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
    if (buf_reserve(&h->pk, nlen + 5 + vlen) != ET_OK)
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
    if (buf_reserve(&h->pk, n + (size_t)sp) != ET_OK)
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
        if (h->last_vlen && buf_append(&last->value, " ", 1) != ET_OK)
            return ET_ENOMEM;
        h->last_vlen += (h->last_vlen ? 1 : 0) + (size_t)(end - v);
        return buf_append(&last->value, v, (size_t)(end - v));
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

/* ---- options ---- */

void et_http_opts_init(et_http_opts_t *o)
{
    o->timeout_ms = 0;
    o->connect_timeout_ms = 0;
    o->verify_ssl = 1;
    o->allow_redirects = 0;
    o->max_redirects = 10;
    o->max_body_size = ET_DEFAULT_MAX_BODY;
    o->ca_file = NULL;
    o->user_agent = NULL;
    o->proxy = NULL;
    o->packed_headers = 0;
    o->elide_url = 0;
    o->id = 0;
    o->ua_header = NULL;
    o->proxy_http = o->proxy_https = o->noproxy = NULL;
    o->refs = 1;
}

void et_http_opts_free(et_http_opts_t *o)
{
    free(o->ca_file);
    free(o->user_agent);
    free(o->proxy);
    o->ca_file = o->user_agent = o->proxy = NULL;
    curl_slist_free_all(o->ua_header);
    o->ua_header = NULL;
    free(o->proxy_http);
    free(o->proxy_https);
    free(o->noproxy);
    o->proxy_http = o->proxy_https = o->noproxy = NULL;
    o->id = 0;
}

/* The first of the environment variables named that is set and not empty, copied ("" if none). */
static char *env_first(const char *const *names)
{
    const char *v = NULL;
    char *copy = NULL;
    for (; *names; names++) {
        v = getenv(*names);
        if (v && *v)
            break;
        v = NULL;
    }
    if (et_http_opts_set_str(&copy, v ? v : "") != ET_OK)
        return NULL;
    return copy;
}

static unsigned long next_opts_id(void)
{
    static unsigned long last;
#if defined(__GNUC__)
    return __atomic_add_fetch(&last, 1UL, __ATOMIC_RELAXED);
#else
    return ++last;
#endif
}

int et_http_opts_finish(et_http_opts_t *o)
{
    /* libcurl's own reading: http_proxy in lower case only (httpoxy), other schemes either case,
     * then all_proxy; no_proxy either case. */
    static const char *const http_names[] = { "http_proxy", "all_proxy", "ALL_PROXY", NULL };
    static const char *const https_names[] = { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                               NULL };
    const char *np;
    free(o->proxy_http);
    free(o->proxy_https);
    free(o->noproxy);
    o->noproxy = NULL;
    o->proxy_http = o->proxy_https = NULL;
    if (o->proxy) {                             /* the proxy option ("": none), not the environment */
        et_http_opts_set_str(&o->proxy_http, o->proxy);
        et_http_opts_set_str(&o->proxy_https, o->proxy);
    } else {
        o->proxy_http = env_first(http_names);
        o->proxy_https = env_first(https_names);
    }
    if (!o->proxy_http || !o->proxy_https)
        return ET_ENOMEM;
    np = getenv("no_proxy");
    if (!np || !*np)
        np = getenv("NO_PROXY");
    /* Always set (libcurl reads the environment again on each request when it is not). */
    if (et_http_opts_set_str(&o->noproxy, np ? np : "") != ET_OK)
        return ET_ENOMEM;
    curl_slist_free_all(o->ua_header);
    o->ua_header = NULL;
    if (o->user_agent && *o->user_agent) {      /* "": no User-Agent header at all */
        size_t n = strlen(o->user_agent);
        char *line = malloc(n + sizeof "User-Agent: ");
        if (!line)
            return ET_ENOMEM;
        memcpy(line, "User-Agent: ", sizeof "User-Agent: " - 1);
        memcpy(line + sizeof "User-Agent: " - 1, o->user_agent, n + 1);
        o->ua_header = curl_slist_append(NULL, line);
        free(line);
        if (!o->ua_header)
            return ET_ENOMEM;
    }
    o->id = next_opts_id();
    return ET_OK;
}

et_http_opts_t *et_http_opts_new(void)
{
    et_http_opts_t *o = malloc(sizeof *o);
    if (o)
        et_http_opts_init(o);
    return o;
}

et_http_opts_t *et_http_opts_ref(et_http_opts_t *o)
{
    if (o)
        o->refs++;
    return o;
}

void et_http_opts_unref(et_http_opts_t *o)
{
    if (o && --o->refs == 0) {
        et_http_opts_free(o);
        free(o);
    }
}

/* ---- easy handle set-up state ---- */

void et_easy_state_init(et_easy_state_t *st)
{
    memset(st, 0, sizeof *st);
    st->method = -1;
    st->body = -1;
    st->maxsize = -1;
    st->fresh = st->pipewait = -1;
    st->follow = -1;
}

void et_easy_state_free(et_easy_state_t *st)
{
    if (st->curlu)
        curl_url_cleanup(st->curlu);
    free(st->url);
    et_easy_state_init(st);
}

/* After curl_easy_reset (or for a new handle): nothing of ours is set any more; the parsed URL
 * object is kept for reuse. */
static void state_forget(et_easy_state_t *st)
{
    CURLU *u = st->curlu;
    char *url = st->url;
    et_easy_state_init(st);
    st->curlu = u;
    st->url = url;
}

int et_http_opts_set_str(char **slot, const char *s)
{
    char *copy = NULL;
    if (s) {
        size_t n = strlen(s);
        copy = malloc(n + 1);
        if (!copy)
            return ET_ENOMEM;
        memcpy(copy, s, n + 1);
    }
    free(*slot);
    *slot = copy;
    return ET_OK;
}

/* ---- names and codes ---- */

const char *et_http_code_name(et_http_code_t c)
{
    switch (c) {
    case ET_HTTP_OK:          return "ok";
    case ET_HTTP_TIMEOUT:     return "timeout";
    case ET_HTTP_CONNECT:     return "connect";
    case ET_HTTP_RESOLVE:     return "resolve";
    case ET_HTTP_TLS:         return "tls";
    case ET_HTTP_TOO_LARGE:   return "too_large";
    case ET_HTTP_RESET:       return "reset";
    case ET_HTTP_EMPTY_REPLY: return "empty_reply";
    case ET_HTTP_REDIRECTS:   return "redirects";
    case ET_HTTP_URL:         return "url";
    case ET_HTTP_CANCELLED:   return "cancelled";
    case ET_HTTP_INTERRUPTED: return "interrupted";
    case ET_HTTP_TRANSPORT:   break;
    }
    return "transport";
}

et_http_code_t et_http_code_from_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return ET_HTTP_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return ET_HTTP_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return ET_HTTP_CONNECT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return ET_HTTP_RESOLVE;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:       /* also the old CURLE_SSL_CACERT */
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
#if ET_CURL_VER_GE(7, 77, 0)
    case CURLE_SSL_CLIENTCERT:
#endif
        return ET_HTTP_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return ET_HTTP_TOO_LARGE;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2_STREAM:
        return ET_HTTP_RESET;
    case CURLE_GOT_NOTHING:
        return ET_HTTP_EMPTY_REPLY;
    case CURLE_TOO_MANY_REDIRECTS:
        return ET_HTTP_REDIRECTS;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return ET_HTTP_URL;
    default:
        return ET_HTTP_TRANSPORT;
    }
}

const char *et_http_method_name(et_http_method_t m)
{
    static const char *const names[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS" };
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "GET";
}

/* Length of the part of url worth showing: up to the query or fragment. */
static size_t url_show_len(const char *url)
{
    return strcspn(url, "?#");
}

char *et_http_describe(et_http_method_t m, const char *url)
{
    const char *mname = et_http_method_name(m);
    const char *scheme_end, *auth, *at, *host = url;
    size_t shown = url_show_len(url), slen = 0, mlen = strlen(mname), rest;
    char *out;

    /* Drop userinfo ("user:pass@") from scheme://user:pass@host/... */
    scheme_end = strstr(url, "://");
    if (scheme_end && (size_t)(scheme_end - url) < shown) {
        auth = scheme_end + 3;
        slen = (size_t)(auth - url);
        host = auth;
        at = NULL;
        for (const char *p = auth; p < url + shown && *p != '/'; p++)
            if (*p == '@')
                at = p;
        if (at)
            host = at + 1;
    }
    rest = shown - (size_t)(host - url);
    out = malloc(mlen + 1 + slen + rest + 1);
    if (!out)
        return NULL;
    memcpy(out, mname, mlen);
    out[mlen] = ' ';
    memcpy(out + mlen + 1, url, slen);
    memcpy(out + mlen + 1 + slen, host, rest);
    out[mlen + 1 + slen + rest] = '\0';
    return out;
}

/* ---- callbacks (C buffers only) ---- */

size_t et_xfer_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    et_xfer_t *x = userdata;
    size_t n = size * nmemb;
    int rc;
    if (x->body.len == 0 && x->easy) {
        /* First bytes of the body: room for the whole declared length at once (within the
         * limit), so a big body is copied once, not through a series of doubling reallocs. */
        curl_off_t cl = -1;
        if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
            cl > 0 && (curl_off_t)n < cl && (size_t)cl <= x->max_body && (size_t)cl + 1 > x->body.cap) {
            char *p = realloc(x->body.data, (size_t)cl + 1);
            if (p) {
                x->body.data = p;
                x->body.cap = (size_t)cl + 1;
            }
        }
    }
    rc = et_buf_append_limited(&x->body, ptr, n, x->max_body);
    if (rc == ET_OK)
        return n;
    x->abort_reason = rc == 1 ? ET_ABORT_BODY : ET_ABORT_NOMEM;
    return n ? 0 : 1;                           /* anything but n aborts */
}

size_t et_xfer_header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    et_xfer_t *x = userdata;
    size_t n = size * nmemb;
    int rc = et_headers_feed(&x->headers, ptr, n);
    if (rc == ET_OK)
        return n;
    x->abort_reason = rc == 1 ? ET_ABORT_HEADERS : ET_ABORT_NOMEM;
    return n ? 0 : 1;
}

/* ---- transfer ---- */

void et_xfer_init(et_xfer_t *x)
{
    memset(x, 0, sizeof *x);
    et_headers_init(&x->headers);
    x->max_body = ET_DEFAULT_MAX_BODY;
    et_easy_state_init(&x->st);
}

#define SETOPT(opt, val) do { if (curl_easy_setopt(x->easy, (opt), (val)) != CURLE_OK) goto fail; } while (0)

int et_xfer_configure(et_xfer_t *x, CURL *easy, const et_http_opts_t *o)
{
    x->easy = easy;
    x->max_body = o->max_body_size;
    x->opts = o;
    if (x->headers.packed != (o->packed_headers != 0))
        et_headers_set_packed(&x->headers, o->packed_headers);
    if (o->id != 0 && x->st.opts_id == o->id && x->st.configured) {
        /* A pooled handle already set up with these options: only what points into x. */
        SETOPT(CURLOPT_WRITEDATA, (void *)x);
        SETOPT(CURLOPT_HEADERDATA, (void *)x);
        SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
        return ET_OK;
    }
    if (x->st.configured)
        curl_easy_reset(easy);                  /* set up for other options: start clean */
    state_forget(&x->st);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
#if ET_CURL_VER_GE(7, 85, 0)
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_TCP_NODELAY, 1L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(CURLOPT_TIMEOUT_MS, o->timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    SETOPT(CURLOPT_SSL_VERIFYPEER, o->verify_ssl ? 1L : 0L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, o->verify_ssl ? 2L : 0L);
    if (o->ca_file) {
        /* The file alone: Debian's libcurl also keeps its built-in CApath (/etc/ssl/certs), which
         * would let the system store vouch for a server the file does not. */
        SETOPT(CURLOPT_CAINFO, o->ca_file);
        SETOPT(CURLOPT_CAPATH, (char *)NULL);
    }
    /* CURLOPT_PROXY: per request (et_xfer_prepare), from the proxy option or the environment. */
    SETOPT(CURLOPT_FOLLOWLOCATION, o->allow_redirects ? 1L : 0L);
    x->st.follow = o->allow_redirects != 0;
    SETOPT(CURLOPT_MAXREDIRS, o->max_redirects);
    if (o->user_agent && *o->user_agent && !o->ua_header)
        SETOPT(CURLOPT_USERAGENT, o->user_agent);   /* else a prebuilt header line, per request */
    if (o->noproxy)
        SETOPT(CURLOPT_NOPROXY, o->noproxy);
    SETOPT(CURLOPT_WRITEFUNCTION, et_xfer_write_cb);
    SETOPT(CURLOPT_WRITEDATA, (void *)x);
    SETOPT(CURLOPT_HEADERFUNCTION, et_xfer_header_cb);
    SETOPT(CURLOPT_HEADERDATA, (void *)x);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    x->st.opts_id = o->id;
    x->st.configured = 1;
    return ET_OK;
fail:
    return et_xfer_fail(x, ET_HTTP_TRANSPORT, "libcurl refused a session option") == ET_OK
           ? ET_ECURL : ET_ENOMEM;
}

/* Case-insensitive "does this header line set name" (name ends at ':' or ';'). */
static int header_is(const char *line, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\0' || lower(line[i]) != name[i])
            return 0;
    return line[n] == ':' || line[n] == ';';
}

/* Frees the request header list, first unhooking it so the handle never points at freed memory. */
static void drop_req_headers(et_xfer_t *x)
{
    if (!x->req_headers)
        return;
    if (x->easy && x->st.headers == x->req_headers) {
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
        x->st.headers = NULL;
    }
    curl_slist_free_all(x->req_headers);
    x->req_headers = NULL;
}

static int ascii_prefix(const char *s, const char *lower_prefix)
{
    for (; *lower_prefix; s++, lower_prefix++)
        if (lower(*s) != *lower_prefix)
            return 0;
    return 1;
}

/* The URL, through the handle's own parsed-URL object: parsed only when it changed (libcurl
 * would parse the CURLOPT_URL string again on every request). A URL the parser refuses goes
 * as CURLOPT_URL, so libcurl reports it exactly as before. */
static int set_url(et_xfer_t *x, const char *url)
{
    et_easy_state_t *st = &x->st;
    if (st->url && st->curlu_set && strcmp(st->url, url) == 0)
        return ET_OK;
    free(st->url);
    st->url = NULL;
    if (!st->curlu)
        st->curlu = curl_url();
    /* libcurl reads the object only while it has no URL string of its own: CURLOPT_URL NULL
     * clears the string it kept from the previous URL. */
    if (st->curlu && curl_url_set(st->curlu, CURLUPART_URL, url,
                                  CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        et_http_opts_set_str(&st->url, url) == ET_OK &&
        curl_easy_setopt(x->easy, CURLOPT_URL, (char *)NULL) == CURLE_OK &&
        (st->curlu_set || curl_easy_setopt(x->easy, CURLOPT_CURLU, st->curlu) == CURLE_OK)) {
        st->curlu_set = 1;
        return ET_OK;
    }
    free(st->url);
    st->url = NULL;
    if (st->curlu_set) {
        curl_easy_setopt(x->easy, CURLOPT_CURLU, (CURLU *)NULL);
        st->curlu_set = 0;
    }
    return curl_easy_setopt(x->easy, CURLOPT_URL, url) == CURLE_OK ? ET_OK : ET_ECURL;
}

int et_xfer_prepare(et_xfer_t *x, et_http_method_t m, const char *url, const char *const *headers,
                    size_t nheaders, const char *body, size_t bodylen, int fresh, int pipewait)
{
    struct curl_slist *list = NULL, *tmp;
    const struct curl_slist *hdrs;
    const et_http_opts_t *o = x->opts;
    const char *proxy = NULL;
    int has_ctype = 0, has_ua = 0, send_body, url_rc, follow;
    curl_off_t maxsize;
    size_t i;

    et_xfer_reset_result(x);
    drop_req_headers(x);
    x->method = (int)m;

    /* A body goes with any method but HEAD; POST, PUT and PATCH send Content-Length: 0 without. */
    send_body = m != ET_HTTP_HEAD &&
                (body || m == ET_HTTP_POST || m == ET_HTTP_PUT || m == ET_HTTP_PATCH);

    /* The header list, built once per request and kept until the transfer ends; none at all for
     * a request without headers or body (the usual GET), so curl has no custom header to scan. */
    for (i = 0; i < nheaders; i++) {
        if (header_is(headers[i], "content-type"))
            has_ctype = 1;
        else if (header_is(headers[i], "user-agent"))
            has_ua = 1;
        tmp = curl_slist_append(list, headers[i]);
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    if (send_body) {                            /* no 100-continue wait before a body */
        tmp = curl_slist_append(list, "Expect:");   /* (without a body curl sends none) */
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    if (send_body && !has_ctype) {              /* curl would add a form Content-Type of its own */
        tmp = curl_slist_append(list, "Content-Type:");
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    /* The session's User-Agent, prebuilt: the whole list for a request without headers of its
     * own, else one more line (unless the caller gave one). */
    if (o && o->ua_header && list && !has_ua) {
        tmp = curl_slist_append(list, o->ua_header->data);
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    x->req_headers = list;
    hdrs = list ? list : (o ? o->ua_header : NULL);

    url_rc = set_url(x, url);
    if (!x->st.url) {
        /* Not in the handle's URL object: the description now, while the URL is at hand. */
        x->what = et_http_describe(m, url);
        if (!x->what)
            return ET_ENOMEM;
    }
    if (url_rc != ET_OK)
        goto fail;
    if (o && o->proxy_http) {                   /* resolved once per session (et_http_opts_finish) */
        proxy = ascii_prefix(url, "https:") ? o->proxy_https : o->proxy_http;
        if (proxy != x->st.proxy) {
            SETOPT(CURLOPT_PROXY, proxy);
            x->st.proxy = proxy;
        }
    }
    if (hdrs != x->st.headers) {
        SETOPT(CURLOPT_HTTPHEADER, (struct curl_slist *)hdrs);
        x->st.headers = hdrs;
    }
    /* The method: nothing to do for a second GET (or HEAD...) without body on this handle. */
    if (x->st.method == (int)m && !send_body && x->st.body == 0)
        goto method_set;
    x->st.method = -1;
    /* Undo the previous request's method, then set this one. */
    SETOPT(CURLOPT_NOBODY, 0L);
    SETOPT(CURLOPT_HTTPGET, 1L);
    SETOPT(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (m == ET_HTTP_HEAD) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (send_body) {
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? bodylen : 0));
        SETOPT(CURLOPT_COPYPOSTFIELDS, body ? body : "");
        if (m != ET_HTTP_POST)
            SETOPT(CURLOPT_CUSTOMREQUEST, et_http_method_name(m));
    } else if (m != ET_HTTP_GET) {
        SETOPT(CURLOPT_CUSTOMREQUEST, et_http_method_name(m));
    }
    x->st.method = (int)m;
    x->st.body = send_body;
method_set:
    /* A HEAD response declares the length of a body that never comes: no limit to check. */
    maxsize = (curl_off_t)(m == ET_HTTP_HEAD ? 0 : x->max_body);
    if (maxsize != x->st.maxsize) {
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, maxsize);
        x->st.maxsize = maxsize;
    }
    if ((fresh != 0) != x->st.fresh) {
        SETOPT(CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
        x->st.fresh = fresh != 0;
    }
    if ((pipewait != 0) != x->st.pipewait) {
        SETOPT(CURLOPT_PIPEWAIT, pipewait ? 1L : 0L);
        x->st.pipewait = pipewait != 0;
    }
    follow = o && o->allow_redirects && !x->no_redirects;
    if (follow != x->st.follow) {
        SETOPT(CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
        x->st.follow = follow;
    }
    return ET_OK;
nomem:
    curl_slist_free_all(list);
    return ET_ENOMEM;
fail:
    return et_xfer_fail(x, ET_HTTP_TRANSPORT, "libcurl refused a request option") == ET_OK
           ? ET_ECURL : ET_ENOMEM;
}

#undef SETOPT

/* Sets x->message to "<what>: <detail>". */
static int set_message(et_xfer_t *x, const char *detail)
{
    const char *what;
    if (!x->what && x->st.url)
        x->what = et_http_describe((et_http_method_t)x->method, x->st.url);
    what = x->what ? x->what : "request";
    size_t n = strlen(what) + 2 + strlen(detail) + 1;
    free(x->message);
    x->message = malloc(n);
    if (!x->message)
        return ET_ENOMEM;
    snprintf(x->message, n, "%s: %s", what, detail);
    return ET_OK;
}

int et_xfer_fail(et_xfer_t *x, et_http_code_t code, const char *msg)
{
    x->code = code;
    drop_req_headers(x);
    return set_message(x, msg);
}

/* Does s contain the n bytes at p? */
static int contains(const char *s, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (; *s; s++)
        if (strncmp(s, p, n) == 0)
            return 1;
    return 0;
}

/* curl's error text, unless it could echo a part of the URL we never show (query, fragment,
 * userinfo): then curl's generic text for the code. */
static const char *safe_detail(et_xfer_t *x, CURLcode rc, const char *url)
{
    size_t n = strlen(x->errbuf);
    while (n > 0 && (x->errbuf[n - 1] == '\n' || x->errbuf[n - 1] == '\r'))
        x->errbuf[--n] = '\0';
    if (n == 0)
        return curl_easy_strerror(rc);
    if (url) {
        size_t shown = url_show_len(url);
        const char *auth = strstr(url, "://");
        if (url[shown] && contains(x->errbuf, url + shown + 1, strlen(url + shown + 1)))
            return curl_easy_strerror(rc);
        if (auth && (size_t)(auth - url) < shown) {
            const char *p = auth + 3, *at = NULL;
            for (; p < url + shown && *p != '/'; p++)
                if (*p == '@')
                    at = p;
            if (at && contains(x->errbuf, auth + 3, (size_t)(at - (auth + 3))))
                return curl_easy_strerror(rc);
        }
    }
    return x->errbuf;
}

int et_xfer_finish(et_xfer_t *x, CURLcode rc)
{
    char *eff = NULL;
    char detail[160];
    long v;

    drop_req_headers(x);
    if (x->easy) {
        if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &v) == CURLE_OK)
            x->status = v;
        if (x->count_connects && curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &v) == CURLE_OK)
            x->num_connects = v;
        if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &eff) != CURLE_OK)
            eff = NULL;
    }
    free(x->effective_url);
    x->effective_url = NULL;
    if (eff && !(x->same_url_elided && x->st.url && strcmp(eff, x->st.url) == 0) &&
        et_http_opts_set_str(&x->effective_url, eff) != ET_OK)
        return ET_ENOMEM;

    if (rc == CURLE_OK) {
        x->code = ET_HTTP_OK;
        free(x->message);
        x->message = NULL;
        return ET_OK;
    }
    if (x->abort_reason == ET_ABORT_BODY || rc == CURLE_FILESIZE_EXCEEDED) {
        x->code = ET_HTTP_TOO_LARGE;
        snprintf(detail, sizeof detail, "response body exceeds max_body_size (%zu bytes)", x->max_body);
        et_buf_free(&x->body);
        return set_message(x, detail);
    }
    if (x->abort_reason == ET_ABORT_HEADERS) {
        x->code = ET_HTTP_TOO_LARGE;
        snprintf(detail, sizeof detail, "response headers exceed %d bytes", ET_HTTP_MAX_HEADER_BYTES);
        return set_message(x, detail);
    }
    if (x->abort_reason == ET_ABORT_SIGINT) {
        x->code = ET_HTTP_INTERRUPTED;
        et_buf_free(&x->body);
        return set_message(x, "interrupted (SIGINT)");
    }
    if (rc == CURLE_OUT_OF_MEMORY && x->abort_reason == ET_ABORT_NONE && x->headers.in_block) {
        /* Inside a header block: curl's own bound on one header line (CURL_MAX_HTTP_HEADER,
         * "Avoided giant realloc for header"), which curl reports as out of memory. */
        x->code = ET_HTTP_TOO_LARGE;
        snprintf(detail, sizeof detail, "a response header line exceeds libcurl's bound");
        et_buf_free(&x->body);
        return set_message(x, detail);
    }
    if (x->abort_reason == ET_ABORT_NOMEM) {
        x->code = ET_HTTP_TRANSPORT;
        return set_message(x, "out of memory");
    }
    x->code = et_http_code_from_curl(rc);
    et_buf_free(&x->body);
    return set_message(x, safe_detail(x, rc, eff));
}

void et_xfer_reset_result(et_xfer_t *x)
{
    free(x->message);
    free(x->effective_url);
    free(x->what);
    x->message = x->effective_url = x->what = NULL;
    x->code = ET_HTTP_OK;
    x->status = 0;
    x->num_connects = 0;
    x->abort_reason = ET_ABORT_NONE;
    x->errbuf[0] = '\0';
    if (x->headers.total > ET_BODY_KEEP)
        et_headers_clear(&x->headers);          /* big header storage goes, as a big body does */
    else
        et_headers_restart(&x->headers);        /* (storage kept for the handle's next request) */
    if (x->body.cap > ET_BODY_KEEP)
        et_buf_free(&x->body);
    x->body.len = 0;
}

/* ---- Ctrl-C during a blocking transfer ---- */

static volatile sig_atomic_t sigint_seen;

static void on_sigint(int sig)
{
    (void)sig;
    sigint_seen = 1;
}

static int sigint_progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow)
{
    et_xfer_t *x = userdata;
    (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
    if (!sigint_seen || !x->sigint_armed)
        return 0;
    x->abort_reason = ET_ABORT_SIGINT;
    return 1;
}

CURLcode et_xfer_perform_blocking(et_xfer_t *x)
{
    struct sigaction sa, old;
    int installed = 0, progress = 0;
    CURLcode rc;

    /* The progress callback and its data are set once per handle; progress (whose bookkeeping
     * costs libcurl more than two options) is switched on only while our handler is in. */
    if (x->st.progress != (const void *)x) {
        x->st.progress = NULL;
        if (curl_easy_setopt(x->easy, CURLOPT_XFERINFOFUNCTION, sigint_progress_cb) == CURLE_OK
            && curl_easy_setopt(x->easy, CURLOPT_XFERINFODATA, x) == CURLE_OK)
            x->st.progress = x;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;          /* no SA_RESTART: curl's poll() returns at once */
    sigemptyset(&sa.sa_mask);
    if (x->st.progress && sigaction(SIGINT, NULL, &old) == 0
        && ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_IGN && old.sa_handler != on_sigint))) {
        progress = curl_easy_setopt(x->easy, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
        if (progress) {
            sigint_seen = 0;
            installed = sigaction(SIGINT, &sa, NULL) == 0;
        }
    }
    x->sigint_armed = installed;
    rc = curl_easy_perform(x->easy);
    x->sigint_armed = 0;
    if (progress)
        curl_easy_setopt(x->easy, CURLOPT_NOPROGRESS, 1L);
    if (installed) {
        sigaction(SIGINT, &old, NULL);
        if (sigint_seen) {
            sigint_seen = 0;                            /* a transfer that ended anyway keeps its result */
            raise(SIGINT);                              /* to the handler we replaced */
        }
    }
    return rc;
}

CURL *et_xfer_detach(et_xfer_t *x)
{
    et_easy_state_t st;
    CURL *e = et_xfer_detach_state(x, &st);
    et_easy_state_free(&st);
    return e;
}

CURL *et_xfer_detach_state(et_xfer_t *x, et_easy_state_t *st)
{
    CURL *e = x->easy;
    drop_req_headers(x);
    x->easy = NULL;
    x->opts = NULL;
    *st = x->st;
    et_easy_state_init(&x->st);
    return e;
}

void et_xfer_adopt(et_xfer_t *x, CURL *easy, et_easy_state_t *st)
{
    et_easy_state_free(&x->st);
    x->easy = easy;
    x->st = *st;
    et_easy_state_init(st);
}

CURL *et_xfer_release(et_xfer_t *x)
{
    CURL *e = et_xfer_detach(x);
    et_xfer_reset_result(x);
    et_headers_clear(&x->headers);
    et_buf_free(&x->body);
    return e;
}
