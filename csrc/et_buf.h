/* SPDX-License-Identifier: MIT */
/* Growable byte buffer with an inclusive limit, and the status codes the HTTP core shares.
 *
 * Pure core: no Lua header, no libcurl header. Used by the header parser (et_hdr), the response
 * framer (et_resp) and the transfer (et_xfer). The buffer keeps one spare byte after its data, so
 * data[len] can always hold a NUL. */
#ifndef ET_BUF_H
#define ET_BUF_H

#include <stddef.h>
#include <string.h>

/* Status of core functions. */
#define ET_OK      0
#define ET_ENOMEM  (-1)

typedef struct et_buf {
    char *data;
    size_t len, cap;
} et_buf_t;

void et_buf_free(et_buf_t *b);
/* Room for extra more bytes (and a NUL after them): ET_OK or ET_ENOMEM. */
int et_buf_reserve(et_buf_t *b, size_t extra);

/* The appends are inline: they run per header line and per body chunk, and a buffer with room
 * costs no call. */

/* Appends n bytes and a NUL after them (not counted in len): ET_OK or ET_ENOMEM. */
static inline int et_buf_append(et_buf_t *b, const char *p, size_t n)
{
    if (n >= b->cap - b->len && et_buf_reserve(b, n) != ET_OK)  /* (len + n + 1 > cap) */
        return ET_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return ET_OK;
}

/* Appends n bytes if len + n <= limit: ET_OK, 1 over the limit (nothing appended), ET_ENOMEM. */
static inline int et_buf_append_limited(et_buf_t *b, const char *p, size_t n, size_t limit)
{
    if (b->len > limit || n > limit - b->len)
        return 1;
    return et_buf_append(b, p, n);
}

#endif
