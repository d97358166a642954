/* SPDX-License-Identifier: MIT */
/* libFuzzer: strict base64url and standard base64 decoding, and the encode round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "et_b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t cap = et_b64_decoded_max(size), outlen = 0, errpos = (size_t)-1, n2 = 0;
    unsigned char *out = malloc(cap ? cap : 1), *back;
    char *enc;
    int st;

    st = et_b64url_decode(in, size, out, &outlen, &errpos);
    if (st == ET_B64_OK) {
        /* Canonical: decoding then encoding gives the input back, byte for byte. */
        if (outlen > cap || et_b64url_encoded_len(outlen) != size)
            abort();
        enc = malloc(size ? size : 1);
        et_b64url_encode(out, outlen, enc);
        if (memcmp(enc, in, size) != 0)
            abort();
        free(enc);
    } else if ((st == ET_B64_EBADCHAR || st == ET_B64_EPADDING) && errpos >= size) {
        abort();
    }

    /* Encoding any bytes decodes back to them. */
    enc = malloc(et_b64url_encoded_len(size) + 1);
    et_b64url_encode(data, size, enc);
    back = malloc(et_b64_decoded_max(et_b64url_encoded_len(size)) + 1);
    if (et_b64url_decode(enc, et_b64url_encoded_len(size), back, &n2, &errpos) != ET_B64_OK ||
        n2 != size || memcmp(back, data, size) != 0)
        abort();
    free(enc);
    free(back);

    errpos = (size_t)-1;
    st = et_b64std_decode(in, size, out, &outlen, &errpos);
    if (st == ET_B64_OK && outlen > cap)
        abort();
    if ((st == ET_B64_EBADCHAR || st == ET_B64_EPADDING) && errpos >= size)
        abort();
    free(out);
    return 0;
}
