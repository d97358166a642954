/* SPDX-License-Identifier: MIT */
/* HTTP/1.1 response framing, fed bytes as they arrive: status line, header block, then a body
 * delimited by Content-Length, chunked transfer coding, or the end of the connection.
 *
 * Pure core: no Lua header, no I/O. The nginx cosocket transport reads bytes and feeds them here;
 * libcurl does this job on the other path. Header lines go through et_headers_feed (et_hdr.c),
 * so names, joins, the set-cookie rule and the 256 KiB bound are the libcurl path's exactly.
 * No libcurl header: this builds and runs without libcurl (spec/c/test_resp.c is linked without it).
 *
 * Strict where a lenient reading could split one response into two on a kept-alive connection:
 * a malformed status line, chunk size or Content-Length, a transfer coding other than chunked,
 * and conflicting Content-Length values are errors, never guesses (RFC 9112 section 6).
 *
 * Ownership: et_resp_t owns its line buffer, headers and body; et_resp_free frees them all. */
#ifndef ET_RESP_H
#define ET_RESP_H

#include <stddef.h>

#include "et_buf.h"
#include "et_hdr.h"
#include "et_proto.h"

/* et_resp_feed / et_resp_eof results (or ET_ENOMEM). */
#define ET_RESP_MORE  0    /* the response is not complete yet: feed more */
#define ET_RESP_DONE  1    /* complete: status, headers, body and keep_alive are set */
#define ET_RESP_ERROR 2    /* failed: code and message are set */

typedef struct et_resp {
    int state;
    int head;                   /* the request was HEAD: a response has no body */
    int got_bytes;              /* any byte received */
    long status;
    int minor;                  /* HTTP/1.minor */
    int keep_alive;             /* the connection may carry the next request (when DONE) */
    unsigned long long remaining;   /* bytes left of the Content-Length body or of this chunk */
    size_t max_body;            /* inclusive */
    et_buf_t line;              /* the line being assembled */
    et_headers_t headers;
    et_buf_t body;
    et_http_code_t code;        /* when ERROR */
    char message[96];
} et_resp_t;

/* head: the request was HEAD. max_body: inclusive bound of the body (too_large beyond). */
void et_resp_init(et_resp_t *r, int head, size_t max_body);
void et_resp_free(et_resp_t *r);
/* Ready for the next response (as et_resp_init), keeping its storage: the header items, and the
 * line and body buffers up to ET_RESP_KEEP bytes each. */
#define ET_RESP_KEEP 65536
void et_resp_reset(et_resp_t *r, int head, size_t max_body);
/* Feeds n bytes; *used tells how many were part of this response (bytes after a complete one
 * are not consumed: the caller must not reuse such a connection). */
int et_resp_feed(et_resp_t *r, const char *p, size_t n, size_t *used);
/* The peer closed the connection: ends a close-delimited body, else an error (empty_reply when
 * nothing came, reset when the response was cut). */
int et_resp_eof(et_resp_t *r);

#endif
