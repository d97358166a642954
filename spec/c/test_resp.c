/* SPDX-License-Identifier: MIT */
/* C tests of the response framing (et_resp.c) used by the nginx cosocket transport: every way a
 * body is delimited, fed whole and byte by byte, limits, and the malformed responses refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_resp.h"
#include "tap.h"


/* Feeds s whole (step 0) or in pieces of step bytes; returns the last result, *left the bytes
 * not consumed by a complete response. */
static int run(et_resp_t *r, int head, size_t max, const char *s, size_t step, size_t *left)
{
    size_t n = strlen(s), i = 0, used = 0;
    int rc = ET_RESP_MORE;
    et_resp_init(r, head, max);
    *left = 0;
    if (step == 0)
        step = n ? n : 1;
    while (i < n && rc == ET_RESP_MORE) {
        size_t k = n - i < step ? n - i : step;
        rc = et_resp_feed(r, s + i, k, &used);
        if (rc == ET_RESP_DONE)
            *left = (n - i) - used;
        i += k;
    }
    return rc;
}

static const char *hval(const et_resp_t *r, const char *name)
{
    const et_hdr_t *h = et_headers_find(&r->headers, name);
    return h ? h->value.data : NULL;
}

static int body_is(const et_resp_t *r, const char *want)
{
    return r->body.len == strlen(want) && (r->body.len == 0 || memcmp(r->body.data, want, r->body.len) == 0);
}

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The same response fed whole and byte by byte gives the same status, body and keep-alive. */
static void both(const char *name, const char *s, int head, long status, const char *body, int keep)
{
    size_t steps[] = { 0, 1, 3 }, i, left;
    et_resp_t r;
    char label[160];
    for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int rc = run(&r, head, 1024, s, steps[i], &left);
        snprintf(label, sizeof label, "%s (pieces of %zu)", name, steps[i]);
        ok(rc == ET_RESP_DONE && r.status == status && body_is(&r, body) && r.keep_alive == keep &&
           left == 0, label);
        et_resp_free(&r);
    }
}

static void test_framing(void)
{
    et_resp_t r;
    size_t left;
    int rc;

    both("content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello", 0, 200, "hello", 1);
    both("chunked with extensions and trailers",
         "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;ext=1\r\nhello\r\n1 \r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", 0, 201, "hello, world", 1);
    both("chunked, upper-case hex and bare LF", "HTTP/1.1 200 OK\ntransfer-encoding: Chunked\n\nA\n0123456789\n0\n\n",
         0, 200, "0123456789", 1);
    both("HEAD: no body whatever the length", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 1, 200, "", 1);
    both("204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", 0, 204, "", 1);
    both("304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0, 304, "", 1);
    both("interim 100 then the final response",
         "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 200, "ok", 1);
    both("Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", 0, 200, "x", 0);
    both("HTTP/1.0 closes by default", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, 200, "x", 0);
    both("HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", 0, 200, "x", 1);
    both("identical repeated Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab", 0, 200, "ab", 1);
    both("Content-Length and chunked: chunked wins, connection not reused",
         "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
         0, 200, "ab", 0);

    run(&r, 0, 1024, "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\n"
        "Set-Cookie: b=2\r\nX-M: 1\r\nx-m: 2\r\nContent-Length: 0\r\n\r\n", 0, &left);
    ok(hval(&r, "x-interim") == NULL, "headers: only the final response's");
    ok(streq(hval(&r, "set-cookie"), "a=1\nb=2") && streq(hval(&r, "x-m"), "1, 2"),
       "headers: joined as on the libcurl path (set-cookie with a line feed)");
    et_resp_free(&r);

    /* Close-delimited: complete only at the end of the connection. */
    rc = run(&r, 0, 1024, "HTTP/1.1 200 OK\r\n\r\nuntil the end", 0, &left);
    ok(rc == ET_RESP_MORE, "close-delimited: more until the connection ends");
    ok(et_resp_eof(&r) == ET_RESP_DONE && body_is(&r, "until the end") && !r.keep_alive,
       "close-delimited: eof completes it, never reused");
    et_resp_free(&r);

    rc = run(&r, 0, 1024, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1 200", 0, &left);
    ok(rc == ET_RESP_DONE && left == 12 && body_is(&r, "ab"), "bytes after the response are left unconsumed");
    et_resp_free(&r);
}

static void test_limits(void)
{
    et_resp_t r;
    size_t left;
    char *big;
    size_t i, n;
    int rc;

    rc = run(&r, 0, 4, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", 0, &left);
    ok(rc == ET_RESP_DONE && body_is(&r, "abcd"), "max_body is inclusive");
    et_resp_free(&r);
    rc = run(&r, 0, 4, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0, &left);
    ok(rc == ET_RESP_ERROR && r.code == ET_HTTP_TOO_LARGE &&
       strcmp(r.message, "response body exceeds max_body_size (4 bytes)") == 0,
       "a declared length over max_body fails before the body");
    et_resp_free(&r);
    rc = run(&r, 0, 4, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\n", 1, &left);
    ok(rc == ET_RESP_ERROR && r.code == ET_HTTP_TOO_LARGE, "chunks over max_body: too_large");
    et_resp_free(&r);
    rc = run(&r, 0, 4, "HTTP/1.1 200 OK\r\n\r\nabcde", 0, &left);
    ok(rc == ET_RESP_ERROR && r.code == ET_HTTP_TOO_LARGE, "a close-delimited body over max_body: too_large");
    et_resp_free(&r);
    rc = run(&r, 0, 4, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", 0, &left);
    ok(rc == ET_RESP_ERROR && r.code == ET_HTTP_TOO_LARGE, "a huge chunk size does not wrap around");
    et_resp_free(&r);

    n = ET_HTTP_MAX_HEADER_BYTES + 100;
    big = malloc(n + 64);
    strcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ");
    for (i = strlen(big); i < n; i++)
        big[i] = 'a';
    strcpy(big + n, "\r\n\r\n");
    rc = run(&r, 0, 1024, big, 4096, &left);
    ok(rc == ET_RESP_ERROR && r.code == ET_HTTP_TOO_LARGE && strstr(r.message, "headers exceed"),
       "headers over the 256 KiB bound: too_large");
    et_resp_free(&r);
    free(big);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
    };
    size_t i, left;
    et_resp_t r;
    char label[200];
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = run(&r, 0, 1024, bad[i], 0, &left);
        snprintf(label, sizeof label, "refused: %.40s...", bad[i] + 9);
        for (char *p = label; *p; p++)
            if (*p == '\r' || *p == '\n')
                *p = ' ';
        /* (the last one, 101, is refused with its own message) */
        ok(rc == ET_RESP_ERROR && r.code == ET_HTTP_TRANSPORT &&
           (strncmp(r.message, "malformed", 9) == 0 || i == sizeof bad / sizeof bad[0] - 1), label);
        et_resp_free(&r);
    }

    et_resp_init(&r, 0, 1024);
    ok(et_resp_eof(&r) == ET_RESP_ERROR && r.code == ET_HTTP_EMPTY_REPLY, "nothing before the close: empty_reply");
    et_resp_free(&r);
    run(&r, 0, 1024, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 0, &left);
    ok(et_resp_eof(&r) == ET_RESP_ERROR && r.code == ET_HTTP_RESET, "a body cut by the close: reset");
    et_resp_free(&r);
    run(&r, 0, 1024, "HTTP/1.1 200 OK\r\nContent-Le", 0, &left);
    ok(et_resp_eof(&r) == ET_RESP_ERROR && r.code == ET_HTTP_RESET, "headers cut by the close: reset");
    et_resp_free(&r);
}

int main(void)
{
    test_framing();
    test_limits();
    test_malformed();
    return tap_done("resp");
}
