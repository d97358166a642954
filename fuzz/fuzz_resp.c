/* SPDX-License-Identifier: MIT */
/* libFuzzer: response framing (et_resp.c). The first byte picks HEAD and the piece size; the rest
 * is fed whole to one parser and in pieces to another: both must agree (an incremental parser that
 * depends on where the reads fall would desynchronise a kept-alive connection), stay within
 * max_body, and never consume past the end of a complete response. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "et_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 4096

static int feed(et_resp_t *r, const uint8_t *p, size_t n, size_t step, size_t *consumed)
{
    size_t i = 0, used;
    int rc = ET_RESP_MORE;
    *consumed = 0;
    while (i < n && rc == ET_RESP_MORE) {
        size_t k = n - i < step ? n - i : step;
        used = 0;
        rc = et_resp_feed(r, (const char *)p + i, k, &used);
        if (used > k)
            abort();
        *consumed += used;
        i += k;
    }
    if (rc == ET_RESP_MORE)
        rc = et_resp_eof(r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    et_resp_t a, b;
    size_t ua, ub, step;
    int ra, rb, head;
    if (size < 1)
        return 0;
    head = data[0] & 1;
    step = (size_t)(data[0] >> 1) + 1;
    data++, size--;
    et_resp_init(&a, head, MAX_BODY);
    et_resp_init(&b, head, MAX_BODY);
    ra = feed(&a, data, size, size ? size : 1, &ua);
    rb = feed(&b, data, size, step, &ub);
    if (ra == ET_ENOMEM || rb == ET_ENOMEM)
        goto out;
    if (ra != rb || a.body.len > MAX_BODY || b.body.len > MAX_BODY)
        abort();
    if (ra == ET_RESP_DONE) {
        if (ua != ub || a.status != b.status || a.status < 200 || a.status > 599 ||
            a.keep_alive != b.keep_alive || a.body.len != b.body.len ||
            (a.body.len && memcmp(a.body.data, b.body.data, a.body.len) != 0) ||
            a.headers.n != b.headers.n)
            abort();
    } else if (ra == ET_RESP_ERROR) {
        if (a.code != b.code)
            abort();
    }
out:
    et_resp_free(&a);
    et_resp_free(&b);
    return 0;
}
