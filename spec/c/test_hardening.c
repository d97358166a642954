/* SPDX-License-Identifier: MIT */
/* C tests of issue 12's fixes in the pure HTTP core (et_hdr.c): a header line that starts with
 * "HTTP/" no longer resets the header bound, a bound over all header blocks, header handling in
 * linear time (hashed names), and curl's own header-line bound reported as too_large. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "et_xfer.h"
#include "tap.h"


static int feed(et_headers_t *h, const char *line)
{
    return et_headers_feed(h, line, strlen(line));
}

static const char *hval(const et_headers_t *h, const char *name)
{
    const et_hdr_t *e = et_headers_find(h, name);
    return e ? e->value.data : NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_status_lines(void)
{
    et_headers_t h;
    char line[64];
    int i, rc = ET_OK;
    et_headers_init(&h);
    feed(&h, "HTTP/1.1 200 OK\r\n");
    feed(&h, "X-Kept: 1\r\n");
    feed(&h, "HTTP/1.1 200 OK\r\n");            /* inside a block: not a status line */
    ok(h.n == 1 && hval(&h, "x-kept") != NULL, "a status line inside a block does not drop the headers");
    /* 11 MB of "HTTP/x: ..." lines: refused at the block bound, not reset by each line. */
    for (i = 0; i < 400000 && rc == ET_OK; i++) {
        snprintf(line, sizeof line, "HTTP/x: %d-abcdefghijklmnopqrstuvwxyz\r\n", i);
        rc = feed(&h, line);
    }
    ok(rc == 1 && (size_t)i * 30 < (size_t)ET_HTTP_MAX_HEADER_BYTES * 2,
       "lines starting with HTTP/ count against the block bound");
    et_headers_clear(&h);

    /* Many small blocks (1xx, redirects): bounded in total. */
    rc = ET_OK;
    for (i = 0; i < 1000000 && rc == ET_OK; i++) {
        rc = feed(&h, "HTTP/1.1 103 Early Hints\r\n");
        if (rc == ET_OK)
            rc = feed(&h, "Link: </style.css>; rel=preload; as=style; and some padding\r\n");
        if (rc == ET_OK)
            rc = feed(&h, "\r\n");
    }
    ok(rc == 1, "header blocks are bounded in total (ET_HTTP_MAX_HEADER_TOTAL)");
    et_headers_clear(&h);
    ok(h.total == 0 && h.index == NULL, "clear resets the total and frees the index");

    ok(feed(&h, "HTTP/2 200\r\n") == ET_OK && h.in_block, "HTTP/2 status line");
    feed(&h, "\r\n");
    ok(feed(&h, "HTTP/1.0 404 Not Found\r\n") == ET_OK && h.in_block, "HTTP/1.0 status line");
    et_headers_clear(&h);
}

/* Feeds n distinct short names; returns the seconds it took (and checks every value). */
static double distinct(size_t n, int *good)
{
    et_headers_t h;
    char line[64];
    size_t i;
    double t0 = now(), t;
    et_headers_init(&h);
    feed(&h, "HTTP/1.1 200 OK\r\n");
    for (i = 0; i < n; i++) {
        snprintf(line, sizeof line, "h%zu: v\r\n", i);     /* 20,000 of them: about 220 KB */
        if (feed(&h, line) != ET_OK)
            *good = 0;
    }
    feed(&h, "H7: again\r\n");
    t = now() - t0;
    for (i = 0; i < n; i += 997) {
        char name[32];
        snprintf(name, sizeof name, "h%zu", i);
        if (!hval(&h, name) || strcmp(hval(&h, name), "v") != 0)
            *good = 0;
    }
    if (h.n != n || !hval(&h, "h7") || strcmp(hval(&h, "h7"), "v, again") != 0)
        *good = 0;
    et_headers_clear(&h);
    return t;
}

static void test_linear(void)
{
    int good = 1, i;
    double small = 1e9, big = 1e9, t;
    for (i = 0; i < 5; i++) {                   /* the best of five: other processes add noise */
        t = distinct(2000, &good);
        small = t < small ? t : small;
        t = distinct(20000, &good);
        big = t < big ? t : big;
    }
    ok(good, "20,000 distinct headers kept, repeated names joined");
    /* A scan of every stored name per line made 20,000 lines take 0.6 s (100 times 2,000 lines);
     * hashed, about 10 times, a few milliseconds. The absolute slack absorbs a loaded machine. */
    ok(big < small * 30 + 0.1, "header handling is linear in the number of lines");
    printf("# 2000 lines: %.6f s, 20000 lines: %.6f s\n", small, big);
}

static void test_curl_line_bound(void)
{
    et_xfer_t x;
    et_xfer_init(&x);
    et_xfer_header_cb("HTTP/1.1 200 OK\r\n", 1, 17, &x);
    ok(et_xfer_finish(&x, CURLE_OUT_OF_MEMORY) == ET_OK && x.code == ET_HTTP_TOO_LARGE,
       "curl's out of memory inside a header block (its header-line bound) is too_large");
    et_xfer_release(&x);
    et_xfer_init(&x);
    ok(et_xfer_finish(&x, CURLE_OUT_OF_MEMORY) == ET_OK && x.code == ET_HTTP_TRANSPORT,
       "out of memory elsewhere stays transport");
    et_xfer_release(&x);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_status_lines();
    test_linear();
    test_curl_line_bound();
    curl_global_cleanup();
    return tap_done("hardening");
}
