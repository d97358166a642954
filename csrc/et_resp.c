/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 response framing over bytes fed as they arrive (see et_resp.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_resp.h"

enum {
    S_STATUS, S_HEADERS, S_BODY_LEN, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_END, S_TRAILERS,
    S_BODY_CLOSE, S_DONE, S_ERROR
};

/* Longest chunk-size line (size, extensions, CRLF) and trailer block we accept. */
#define CHUNK_LINE_MAX 4096

void et_resp_init(et_resp_t *r, int head, size_t max_body)
{
    memset(r, 0, sizeof *r);
    et_headers_init(&r->headers);
    r->state = S_STATUS;
    r->head = head;
    r->max_body = max_body;
}

void et_resp_reset(et_resp_t *r, int head, size_t max_body)
{
    et_buf_t line = r->line, body = r->body;
    et_headers_t headers = r->headers;
    /* A big body's buffer is not kept for the next response: the storage kept stays small. */
    if (body.cap > ET_RESP_KEEP)
        et_buf_free(&body);
    if (line.cap > ET_RESP_KEEP)
        et_buf_free(&line);
    line.len = body.len = 0;
    et_headers_restart(&headers);
    memset(r, 0, sizeof *r);
    r->line = line;
    r->body = body;
    r->headers = headers;
    r->state = S_STATUS;
    r->head = head;
    r->max_body = max_body;
}

void et_resp_free(et_resp_t *r)
{
    et_buf_free(&r->line);
    et_buf_free(&r->body);
    et_headers_clear(&r->headers);
}

static int fail(et_resp_t *r, et_http_code_t code, const char *msg)
{
    r->state = S_ERROR;
    r->code = code;
    snprintf(r->message, sizeof r->message, "%s", msg);
    return ET_RESP_ERROR;
}

static int too_large_body(et_resp_t *r)
{
    char msg[sizeof r->message];
    snprintf(msg, sizeof msg, "response body exceeds max_body_size (%zu bytes)", r->max_body);
    et_buf_free(&r->body);
    return fail(r, ET_HTTP_TOO_LARGE, msg);
}

static int too_large_headers(et_resp_t *r)
{
    char msg[sizeof r->message];
    snprintf(msg, sizeof msg, "response headers exceed %d bytes", ET_HTTP_MAX_HEADER_BYTES);
    return fail(r, ET_HTTP_TOO_LARGE, msg);
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Does the comma-separated list v hold the token tok (case-insensitive)? last: only as its last
 * element (the final transfer coding). */
static int list_has(const char *v, size_t vlen, const char *tok, int last)
{
    size_t i = 0, tlen = strlen(tok);
    int found = 0;
    while (i < vlen) {
        size_t s, e, k;
        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < vlen && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e == s)
            continue;
        found = e - s == tlen;
        for (k = 0; found && k < tlen; k++)
            found = lower(v[s + k]) == tok[k];
        if (found && !last)
            return 1;
    }
    return found;
}

/* Content-Length: one decimal value, or a list of identical ones (RFC 9110 8.6). -1 if bad. */
static int parse_length(const char *v, size_t vlen, unsigned long long *out)
{
    size_t i = 0;
    int seen = 0;
    while (i < vlen) {
        unsigned long long n = 0;
        size_t digits = 0;
        while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
            i++;
        while (i < vlen && v[i] >= '0' && v[i] <= '9') {
            if (n > (~0ULL - 9) / 10)
                return -1;
            n = n * 10 + (unsigned)(v[i++] - '0');
            digits++;
        }
        while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (digits == 0 || (i < vlen && v[i] != ','))
            return -1;
        if (seen && n != *out)
            return -1;
        *out = n;
        seen = 1;
        if (i < vlen)
            i++;                                /* the comma */
    }
    return seen ? 0 : -1;
}

/* The header block has ended: choose how the body is delimited. */
static int headers_done(et_resp_t *r)
{
    const et_hdr_t *h;
    if (r->status < 200) {
        if (r->status == 101)
            return fail(r, ET_HTTP_TRANSPORT, "unexpected 101 Switching Protocols");
        r->state = S_STATUS;                    /* an interim response: the final one follows */
        return ET_RESP_MORE;
    }
    h = et_headers_find(&r->headers, "connection");
    if (r->minor >= 1)
        r->keep_alive = !(h && list_has(h->value.data, h->value.len, "close", 0));
    else
        r->keep_alive = h && list_has(h->value.data, h->value.len, "keep-alive", 0);
    if (r->head || r->status == 204 || r->status == 304) {
        r->state = S_DONE;
        return ET_RESP_DONE;
    }
    h = et_headers_find(&r->headers, "transfer-encoding");
    if (h) {
        /* Only "chunked" alone: we never ask for another coding, and any other list could
         * not be delimited safely. With a Content-Length too, the message is suspect: read it
         * as chunked (RFC 9112 6.3) and never reuse the connection. */
        if (r->minor < 1 || !list_has(h->value.data, h->value.len, "chunked", 1) ||
            h->value.len != strlen("chunked"))
            return fail(r, ET_HTTP_TRANSPORT, "malformed response: unsupported transfer-encoding");
        if (et_headers_find(&r->headers, "content-length"))
            r->keep_alive = 0;
        r->state = S_CHUNK_SIZE;
        return ET_RESP_MORE;
    }
    h = et_headers_find(&r->headers, "content-length");
    if (h) {
        if (parse_length(h->value.data, h->value.len, &r->remaining) != 0)
            return fail(r, ET_HTTP_TRANSPORT, "malformed response: bad content-length");
        if (r->remaining > r->max_body)
            return too_large_body(r);           /* declared too long: fail before reading it */
        r->state = r->remaining ? S_BODY_LEN : S_DONE;
        return r->remaining ? ET_RESP_MORE : ET_RESP_DONE;
    }
    r->keep_alive = 0;                          /* the body ends when the connection does */
    r->state = S_BODY_CLOSE;
    return ET_RESP_MORE;
}

/* "HTTP/1.x NNN[ reason]" (line without its end). */
static int status_line(et_resp_t *r, const char *s, size_t n)
{
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' || s[8] != ' ' ||
        s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
        (n > 12 && s[12] != ' '))
        return fail(r, ET_HTTP_TRANSPORT, "malformed response: bad status line");
    r->minor = s[7] - '0';
    r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    return ET_RESP_MORE;
}

/* "HEX[ ; extensions]" (line without its end). */
static int chunk_size(et_resp_t *r, const char *s, size_t n)
{
    unsigned long long size = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char c = lower(s[i]);
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            break;
        if (size > (~0ULL >> 4))
            return too_large_body(r);
        size = size * 16 + (unsigned)d;
    }
    if (i == 0)
        return fail(r, ET_HTTP_TRANSPORT, "malformed response: bad chunk size");
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < n && s[i] != ';')
        return fail(r, ET_HTTP_TRANSPORT, "malformed response: bad chunk size");
    if (size == 0) {
        r->remaining = 0;                       /* counts the trailer bytes from here */
        r->state = S_TRAILERS;
        return ET_RESP_MORE;
    }
    if (size > r->max_body - r->body.len)
        return too_large_body(r);
    r->remaining = size;
    r->state = S_CHUNK_DATA;
    return ET_RESP_MORE;
}

/* One complete line (its LF included) in the state that reads lines. */
static int on_line(et_resp_t *r, const char *s, size_t n)
{
    size_t bare = n;
    int rc;
    while (bare > 0 && (s[bare - 1] == '\n' || s[bare - 1] == '\r'))
        bare--;
    switch (r->state) {
    case S_STATUS:
        if (status_line(r, s, bare) != ET_RESP_MORE)
            return ET_RESP_ERROR;
        rc = et_headers_feed(&r->headers, s, n);    /* starts a new header block */
        if (rc == 1)
            return too_large_headers(r);
        if (rc != ET_OK)
            return ET_ENOMEM;
        r->state = S_HEADERS;
        return ET_RESP_MORE;
    case S_HEADERS:
        rc = et_headers_feed(&r->headers, s, n);
        if (rc == 1)
            return too_large_headers(r);
        if (rc != ET_OK)
            return ET_ENOMEM;
        return bare == 0 ? headers_done(r) : ET_RESP_MORE;
    case S_CHUNK_SIZE:
        return chunk_size(r, s, bare);
    case S_CHUNK_END:
        if (bare != 0)
            return fail(r, ET_HTTP_TRANSPORT, "malformed response: chunk longer than its size");
        r->state = S_CHUNK_SIZE;
        return ET_RESP_MORE;
    case S_TRAILERS:                            /* trailer fields are read and dropped */
        r->remaining += n;
        if (r->remaining > ET_HTTP_MAX_HEADER_BYTES)
            return too_large_headers(r);
        if (bare != 0)
            return ET_RESP_MORE;
        r->state = S_DONE;
        return ET_RESP_DONE;
    default:
        return fail(r, ET_HTTP_TRANSPORT, "internal error");
    }
}

/* Appends k body bytes within max_body. */
static int body_add(et_resp_t *r, const char *p, size_t k)
{
    int rc = et_buf_append_limited(&r->body, p, k, r->max_body);
    if (rc == 1)
        return too_large_body(r);
    return rc == ET_OK ? ET_RESP_MORE : ET_ENOMEM;
}

/* Longest line the current state may still assemble. */
static size_t line_limit(const et_resp_t *r)
{
    if (r->state == S_STATUS)
        return ET_HTTP_MAX_HEADER_BYTES;
    if (r->state == S_HEADERS)
        return ET_HTTP_MAX_HEADER_BYTES - r->headers.bytes;
    return CHUNK_LINE_MAX;
}

int et_resp_feed(et_resp_t *r, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    int rc = ET_RESP_MORE;

    if (n)
        r->got_bytes = 1;
    while (i < n && r->state != S_DONE && r->state != S_ERROR) {
        size_t k = n - i;
        switch (r->state) {
        case S_BODY_LEN:
        case S_CHUNK_DATA:
            if (k > r->remaining)
                k = (size_t)r->remaining;
            rc = body_add(r, p + i, k);
            i += k;
            r->remaining -= k;
            if (rc == ET_RESP_MORE && r->remaining == 0) {
                r->state = r->state == S_BODY_LEN ? S_DONE : S_CHUNK_END;
                rc = r->state == S_DONE ? ET_RESP_DONE : ET_RESP_MORE;
            }
            break;
        case S_BODY_CLOSE:
            rc = body_add(r, p + i, k);
            i += k;
            break;
        default: {
            const char *lf = memchr(p + i, '\n', k);
            size_t limit = line_limit(r);
            if (lf)
                k = (size_t)(lf - (p + i)) + 1;
            rc = et_buf_append_limited(&r->line, p + i, k, limit);
            if (rc == 1) {
                rc = r->state == S_STATUS || r->state == S_HEADERS || r->state == S_TRAILERS
                     ? too_large_headers(r)
                     : fail(r, ET_HTTP_TRANSPORT, "malformed response: chunk line too long");
                break;
            }
            if (rc != ET_OK)
                break;
            i += k;
            if (lf) {
                rc = on_line(r, r->line.data, r->line.len);
                r->line.len = 0;
            }
            break;
        }
        }
        if (rc == ET_ENOMEM) {
            fail(r, ET_HTTP_TRANSPORT, "out of memory");
            break;
        }
    }
    *used = i;
    if (r->state == S_DONE)
        return ET_RESP_DONE;
    return r->state == S_ERROR ? ET_RESP_ERROR : ET_RESP_MORE;
}

int et_resp_eof(et_resp_t *r)
{
    switch (r->state) {
    case S_DONE:
        return ET_RESP_DONE;
    case S_ERROR:
        return ET_RESP_ERROR;
    case S_BODY_CLOSE:
        r->state = S_DONE;
        r->keep_alive = 0;
        return ET_RESP_DONE;
    default:
        if (!r->got_bytes)
            return fail(r, ET_HTTP_EMPTY_REPLY, "empty reply from server");
        return fail(r, ET_HTTP_RESET, "connection closed before the end of the response");
    }
}
