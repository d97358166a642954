/* SPDX-License-Identifier: MIT */
/* The response header parser both transports use: raw header lines in (as libcurl's header
 * callback or the cosocket framer hands them over), the final response's headers out, either as
 * items (lower-case names, repeated values joined) or packed in one string.
 *
 * Pure core: no Lua header, no libcurl header (the nginx cosocket framer, et_resp, uses it too).
 * Ownership: et_headers_t owns its items, names, values, index and packed bytes;
 * et_headers_clear frees them all. */
#ifndef ET_HDR_H
#define ET_HDR_H

#include <stddef.h>

#include "et_buf.h"

/* Largest total size of one response's header block (all lines, final response). */
#ifndef ET_HTTP_MAX_HEADER_BYTES
#define ET_HTTP_MAX_HEADER_BYTES (256 * 1024)
#endif

/* Largest total size of all header blocks of one transfer (1xx, redirects, final). */
#ifndef ET_HTTP_MAX_HEADER_TOTAL
#define ET_HTTP_MAX_HEADER_TOTAL (4 * ET_HTTP_MAX_HEADER_BYTES)
#endif

/* One response header (name lower-cased; repeated ones already joined). */
typedef struct et_hdr {
    char *name;
    et_buf_t value;
    int name_static;       /* name is one of our constant well-known names (never freed) */
} et_hdr_t;

/* Response headers of the latest response seen (reset on each status line). */
typedef struct et_headers {
    et_hdr_t *items;
    size_t n, cap;
    size_t bytes;          /* raw bytes of this block, bounded by ET_HTTP_MAX_HEADER_BYTES */
    size_t kept;           /* items[0..kept) hold value buffers kept for reuse (>= n) */
    size_t total;          /* raw bytes of every block, bounded by ET_HTTP_MAX_HEADER_TOTAL */
    size_t *index;         /* open addressing over names: item index + 1, 0 empty */
    size_t icap;           /* slots in index (a power of two, at least twice n), 0 none */
    int in_block;          /* a status line was seen and its block has not ended */
    size_t last;           /* the item the last header line went to (a folded line continues it) */
    size_t last_vlen;      /* the length of that line's own value (folds included) */
    /* Packed mode (packed set): the lines of the current block appended as they come, each as its
     * lower-case name, a NUL, the value's length (4 bytes, big-endian) and the value; no items, no
     * index, nothing joined (core.headers_table joins repeats when the table is built). */
    int packed;
    et_buf_t pk;
    size_t pk_last;        /* offset of the last entry's length bytes in pk; (size_t)-1 none */
} et_headers_t;

void et_headers_init(et_headers_t *h);
void et_headers_clear(et_headers_t *h);
/* Drops the headers (and the running total: for the next transfer) but keeps their storage
 * (et_headers_clear frees it). */
void et_headers_restart(et_headers_t *h);
/* Feeds one raw header line (as curl gives it, CRLF included). A status line ("HTTP/1.1 200 OK",
 * "HTTP/2 200") outside a header block starts a new response and drops what came before; inside a
 * block, a line starting with "HTTP/" is an ordinary (ignored: not a token) header line. ET_OK,
 * 1 over ET_HTTP_MAX_HEADER_BYTES for a block or ET_HTTP_MAX_HEADER_TOTAL for all, ET_ENOMEM.
 * Each line costs O(1) expected time (names are hashed). */
int et_headers_feed(et_headers_t *h, const char *line, size_t len);
/* Value of a lower-case name, or NULL (items mode only). */
const et_hdr_t *et_headers_find(const et_headers_t *h, const char *name);
/* Switches h to packed mode (on) or items mode (off); drops what it holds. */
void et_headers_set_packed(et_headers_t *h, int on);

/* One entry of packed headers (see et_headers_t), pointing into the packed bytes. */
typedef struct et_packed_entry {
    const char *name, *value;
    size_t nlen, vlen;
} et_packed_entry_t;
/* The entry at *pos of the len packed bytes at s, *pos moved past it: 1; 0 at the end; -1 when
 * the bytes there are not a packed entry (no NUL, an empty name, a length past the end). */
int et_packed_next(const char *s, size_t len, size_t *pos, et_packed_entry_t *e);

#endif
