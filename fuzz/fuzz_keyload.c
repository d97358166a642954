/* SPDX-License-Identifier: MIT */
/* libFuzzer: key text parsing (PEM block search, OpenSSH public key lines and their wire blobs),
 * then making a JWS key of each algorithm the parsed key could fit. The first input byte picks
 * public (even) or private (odd) text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "et_jwt.h"
#include "et_keyload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const et_jwt_alg_t algs[] = { ET_JWT_RS256, ET_JWT_PS256, ET_JWT_ES256, ET_JWT_ES384,
                                         ET_JWT_EDDSA };
    EVP_PKEY *pk = NULL;
    char err[200], *text;
    size_t i;
    int want_private;
    if (size == 0)
        return 0;
    want_private = data[0] & 1;
    text = malloc(size - 1 ? size - 1 : 1);     /* exact size, not NUL-terminated */
    memcpy(text, data + 1, size - 1);
    if (!et_keyload(text, size - 1, want_private, &pk, err, sizeof err)) {
        free(text);
        if (pk || !err[0] || ERR_peek_error() != 0)
            abort();
        return 0;
    }
    free(text);
    for (i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        et_jwt_key_t *k = NULL;
        if (!EVP_PKEY_up_ref(pk))
            abort();
        if (et_jwt_key_pkey(algs[i], want_private ? NULL : pk, want_private ? pk : NULL, &k, err,
                            sizeof err) == ET_JWT_OK) {
            unsigned char sig[ET_JWT_SIG_MAX];
            size_t siglen = et_jwt_key_sig_len(k);
            memset(sig, 0x5a, sizeof sig);
            if (et_jwt_verify(k, data, size, sig, siglen, err, sizeof err) == ET_JWT_OK)
                abort();    /* a made-up signature never verifies */
            et_jwt_key_free(k);
        }
    }
    EVP_PKEY_free(pk);
    return 0;
}
