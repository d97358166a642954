/* SPDX-License-Identifier: MIT */
/* libFuzzer: response header parsing (et_headers_feed through the curl header callback), with
 * the block bound lowered to 2048 bytes by the fuzz build so it is reached. The input is cut
 * into lines at each '\n', as curl hands them over. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "et_xfer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds the input, line by line, to x's header callback, checking the bounds. */
static void feed_all(et_xfer_t *x, const uint8_t *data, size_t size)
{
    size_t i = 0, fed = 0;
    while (i < size) {
        size_t n, got;
        char *line;
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        n = nl ? (size_t)(nl - (data + i)) + 1 : size - i;
        line = malloc(n);               /* exact size: the parser must stay within the line */
        memcpy(line, data + i, n);
        got = et_xfer_header_cb(line, 1, n, x);
        free(line);
        i += n;
        if (got != n) {
            if (x->abort_reason != ET_ABORT_HEADERS)
                abort();
            break;
        }
        if (x->headers.bytes > ET_HTTP_MAX_HEADER_BYTES)
            abort();
        fed += n;                       /* accepted bytes: bounded over all blocks (issue 12) */
        if (fed > ET_HTTP_MAX_HEADER_TOTAL)
            abort();
    }
}

/* Names are lower case, unique, without ":", blanks or line ends; each is found. */
static void check_names(const et_xfer_t *x)
{
    size_t j, k;
    for (j = 0; j < x->headers.n; j++) {
        const et_hdr_t *h = &x->headers.items[j];
        if (!h->name[0] || strpbrk(h->name, ":\r\n \t"))
            abort();
        for (k = 0; h->name[k]; k++)
            if (h->name[k] >= 'A' && h->name[k] <= 'Z')
                abort();
        for (k = j + 1; k < x->headers.n; k++)
            if (strcmp(h->name, x->headers.items[k].name) == 0)
                abort();
        if (et_headers_find(&x->headers, h->name) != h)
            abort();
    }
}

/* The packed form of the same lines (packed mode: appended as they come, joined only when read)
 * is well formed and, joined as core.headers_table joins it, gives exactly the items' values. */
static void check_packed(const et_xfer_t *x, const et_headers_t *p)
{
    const char *s = p->pk.data ? p->pk.data : "";
    size_t len = p->pk.len, pos, j, entries = 0, matched = 0;
    et_packed_entry_t e;
    int rc;
    for (pos = 0; (rc = et_packed_next(s, len, &pos, &e)) == 1;)    /* structure */
        entries++;
    if (rc != 0)
        abort();
    for (j = 0; j < x->headers.n; j++) {            /* each item's value, joined again */
        const et_hdr_t *h = &x->headers.items[j];
        const char *sep = strcmp(h->name, "set-cookie") == 0 ? "\n" : ", ";
        size_t nl = strlen(h->name), sl = strlen(sep), got = 0, count = 0;
        for (pos = 0; et_packed_next(s, len, &pos, &e) == 1;) {
            if (e.nlen != nl || memcmp(e.name, h->name, nl) != 0)
                continue;
            if (count++ > 0) {
                if (got + sl > h->value.len || memcmp(h->value.data + got, sep, sl))
                    abort();
                got += sl;
            }
            if (got + e.vlen > h->value.len || (e.vlen && memcmp(h->value.data + got, e.value, e.vlen)))
                abort();
            got += e.vlen;
            matched++;
        }
        if (count == 0 || got != h->value.len)
            abort();
    }
    if (matched != entries)                         /* no packed header the items lack */
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    et_xfer_t x;
    size_t n1, j;
    et_xfer_init(&x);
    feed_all(&x, data, size);
    check_names(&x);
    /* The same handle's next transfer: storage (value buffers, name index) kept and reused. It
     * must give the same headers as the first time. */
    n1 = x.headers.n;
    et_xfer_reset_result(&x);
    if (x.headers.n != 0 || x.headers.total != 0 || x.headers.in_block)
        abort();
    feed_all(&x, data, size);
    check_names(&x);
    if (x.headers.n != n1)
        abort();
    for (j = 0; j < x.headers.n; j++)
        if (et_headers_find(&x.headers, x.headers.items[j].name) != &x.headers.items[j])
            abort();
    {
        et_xfer_t y;
        et_xfer_init(&y);
        et_headers_set_packed(&y.headers, 1);
        feed_all(&y, data, size);
        if (y.abort_reason != x.abort_reason)
            abort();
        if (!x.abort_reason)
            check_packed(&x, &y.headers);
        et_xfer_release(&y);
    }
    et_xfer_release(&x);
    return 0;
}
