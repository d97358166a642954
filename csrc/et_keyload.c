/* SPDX-License-Identifier: MIT */
/* Key text to EVP_PKEY: PEM through OSSL_DECODER, OpenSSH public key lines by hand. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "et_b64.h"
#include "et_keyload.h"

static void set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
}

/* First occurrence of needle in [s, s + n), or NULL. */
static const char *find(const char *s, size_t n, const char *needle)
{
    size_t m = strlen(needle), i;
    if (m > n)
        return NULL;
    for (i = 0; i + m <= n; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, m) == 0)
            return s + i;
    return NULL;
}

static int label_is(const char *label, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(label, want, n) == 0;
}

/* The decoder asks for a passphrase only for encrypted keys: always refuse, never prompt. */
static int refuse_passphrase(char *pass, size_t pass_size, size_t *pass_len,
                             const OSSL_PARAM params[], void *arg)
{
    (void)pass; (void)pass_size; (void)params;
    *pass_len = 0;
    *(int *)arg = 1;
    return 0;
}

static int has_private(const EVP_PKEY *pk)
{
    BIGNUM *bn = NULL;
    size_t len = 0;
    int ok = 0;
    if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_D, &bn) ||
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &bn))
        ok = 1;
    else if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0, &len))
        ok = len > 0;
    BN_clear_free(bn);
    ERR_clear_error();
    return ok;
}

static int load_pem(const char *text, size_t n, int want_private, EVP_PKEY **out,
                    char *err, size_t errlen)
{
    const char *p = text, *end = text + n, *begin = NULL, *label = NULL, *stop;
    const unsigned char *data;
    size_t label_len = 0, data_len;
    int is_private, asked = 0, selection;
    OSSL_DECODER_CTX *dctx;
    EVP_PKEY *pk = NULL;

    /* The first block whose label ends in "KEY" (skips e.g. "EC PARAMETERS"). */
    while ((begin = find(p, (size_t)(end - p), "-----BEGIN ")) != NULL) {
        label = begin + 11;
        stop = find(label, (size_t)(end - label), "-----");
        if (!stop) {
            begin = NULL;       /* no complete label (label_len would be the previous block's) */
            break;
        }
        label_len = (size_t)(stop - label);
        if (label_len >= 3 && memcmp(stop - 3, "KEY", 3) == 0)
            break;
        p = stop + 5;
        begin = NULL;
    }
    if (!begin || !label_len) {
        set_err(err, errlen, "no PEM key block found");
        return 0;
    }
    stop = find(label, (size_t)(end - label), "-----END ");
    if (label_is(label, label_len, "ENCRYPTED PRIVATE KEY") ||
        find(label, (size_t)((stop ? stop : end) - label), "4,ENCRYPTED")) {
        set_err(err, errlen, "encrypted private keys are not supported");
        return 0;
    }
    if (label_is(label, label_len, "OPENSSH PRIVATE KEY")) {
        set_err(err, errlen, "OpenSSH private key format is not supported (use PEM: PKCS#8, PKCS#1 or SEC1)");
        return 0;
    }
    is_private = find(label, label_len, "PRIVATE") != NULL;
    if (want_private && !is_private) {
        set_err(err, errlen, "private key text holds a public key");
        return 0;
    }
    selection = is_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY;
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pk, "PEM", NULL, NULL, selection, NULL, NULL);
    if (!dctx) {
        ERR_clear_error();
        set_err(err, errlen, "out of memory");
        return 0;
    }
    OSSL_DECODER_CTX_set_passphrase_cb(dctx, refuse_passphrase, &asked);
    data = (const unsigned char *)begin;
    data_len = (size_t)(end - begin);
    if (!OSSL_DECODER_from_data(dctx, &data, &data_len) || !pk) {
        OSSL_DECODER_CTX_free(dctx);
        EVP_PKEY_free(pk);
        ERR_clear_error();
        set_err(err, errlen, asked ? "encrypted private keys are not supported"
                                   : is_private ? "cannot parse PEM private key"
                                                : "cannot parse PEM public key");
        return 0;
    }
    OSSL_DECODER_CTX_free(dctx);
    if (want_private && !has_private(pk)) {
        EVP_PKEY_free(pk);
        set_err(err, errlen, "private key text holds no private key");
        return 0;
    }
    ERR_clear_error();
    *out = pk;
    return 1;
}

/* ---- OpenSSH public key lines: "<type> <base64 wire blob> [comment]" ---- */

struct wire {
    const unsigned char *p;
    size_t n;
};

/* Reads one length-prefixed SSH string; 0 when the blob is too short. */
static int wire_string(struct wire *w, const unsigned char **s, size_t *len)
{
    uint32_t l;
    if (w->n < 4)
        return 0;
    l = (uint32_t)w->p[0] << 24 | (uint32_t)w->p[1] << 16 | (uint32_t)w->p[2] << 8 | w->p[3];
    if (l > w->n - 4)
        return 0;
    *s = w->p + 4;
    *len = l;
    w->p += 4 + l;
    w->n -= 4 + l;
    return 1;
}

/* SSH mpint: two's complement big-endian; only non-negative values make sense in a key. */
static BIGNUM *wire_mpint(struct wire *w)
{
    const unsigned char *s;
    size_t len;
    if (!wire_string(w, &s, &len) || len == 0 || (s[0] & 0x80) || len > 2048)
        return NULL;
    return BN_bin2bn(s, (int)len, NULL);
}

/* EVP_PKEY_fromdata of a public key of the given type from the params built in bld. */
static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

static int public_check(EVP_PKEY *pk)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *ssh_blob_key(const char *type, size_t type_len, struct wire *w, const char **why)
{
    const unsigned char *s, *q;
    size_t len, qlen;
    OSSL_PARAM_BLD *bld;
    EVP_PKEY *pk = NULL;
    BIGNUM *e = NULL, *n = NULL;
    const char *group = NULL, *curve = NULL;

    *why = "malformed OpenSSH key blob";
    if (!wire_string(w, &s, &len))
        return NULL;
    if (len != type_len || memcmp(s, type, len) != 0) {
        *why = "OpenSSH key blob type does not match its line";
        return NULL;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld) {
        *why = "out of memory";
        return NULL;
    }
    if (label_is(type, type_len, "ssh-rsa")) {
        e = wire_mpint(w);
        n = e ? wire_mpint(w) : NULL;
        if (e && n && w->n == 0 && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            pk = from_params("RSA", bld);
    } else if (label_is(type, type_len, "ssh-ed25519")) {
        if (wire_string(w, &q, &qlen) && qlen == 32 && w->n == 0 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen))
            pk = from_params("ED25519", bld);
    } else {
        if (label_is(type, type_len, "ecdsa-sha2-nistp256")) {
            group = "P-256";
            curve = "nistp256";
        } else {
            group = "P-384";
            curve = "nistp384";
        }
        if (wire_string(w, &s, &len) && len == strlen(curve) && memcmp(s, curve, len) == 0 &&
            wire_string(w, &q, &qlen) && w->n == 0 &&
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen)) {
            pk = from_params("EC", bld);
            if (pk && !public_check(pk)) {
                EVP_PKEY_free(pk);
                pk = NULL;
            }
        }
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(e);
    BN_free(n);
    return pk;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int load_openssh(const char *text, size_t n, EVP_PKEY **out, char *err, size_t errlen)
{
    static const char *const types[] = {
        "ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", NULL
    };
    const char *type = text, *b64, *end = text + n, *eol;
    size_t type_len, b64_len, i, blob_len = 0, pos;
    unsigned char *blob;
    const char *why = NULL;
    struct wire w;
    EVP_PKEY *pk;
    int known = 0;

    /* One line: anything but blanks after the first line break is an error. */
    for (eol = text; eol < end && *eol != '\n' && *eol != '\r'; eol++)
        ;
    for (i = (size_t)(eol - text); i < n; i++) {
        if (!is_blank(text[i]) && text[i] != '\n' && text[i] != '\r') {
            set_err(err, errlen, "OpenSSH public key text has more than one line");
            return 0;
        }
    }
    end = eol;
    for (b64 = type; b64 < end && !is_blank(*b64); b64++)
        ;
    type_len = (size_t)(b64 - type);
    for (i = 0; types[i]; i++)
        known |= label_is(type, type_len, types[i]);
    if (!known) {
        set_err(err, errlen, "unsupported OpenSSH key type (ssh-rsa, ssh-ed25519, ecdsa-sha2-nistp256/384)");
        return 0;
    }
    while (b64 < end && is_blank(*b64))
        b64++;
    for (b64_len = 0; b64 + b64_len < end && !is_blank(b64[b64_len]); b64_len++)
        ;
    if (b64_len == 0) {
        set_err(err, errlen, "OpenSSH public key line has no key data");
        return 0;
    }
    blob = malloc(et_b64_decoded_max(b64_len) + 1);
    if (!blob) {
        set_err(err, errlen, "out of memory");
        return 0;
    }
    if (et_b64std_decode(b64, b64_len, blob, &blob_len, &pos) != ET_B64_OK) {
        free(blob);
        set_err(err, errlen, "OpenSSH public key data is not valid base64");
        return 0;
    }
    w.p = blob;
    w.n = blob_len;
    pk = ssh_blob_key(type, type_len, &w, &why);
    free(blob);
    ERR_clear_error();
    if (!pk) {
        set_err(err, errlen, why);
        return 0;
    }
    *out = pk;
    return 1;
}

int et_keyload(const char *text, size_t n, int want_private, EVP_PKEY **out, char *err, size_t errlen)
{
    *out = NULL;
    ERR_clear_error();
    while (n > 0 && (is_blank(*text) || *text == '\n' || *text == '\r')) {
        text++;
        n--;
    }
    if (n >= 11 && memcmp(text, "-----BEGIN ", 11) == 0)
        return load_pem(text, n, want_private, out, err, errlen);
    if ((n >= 4 && memcmp(text, "ssh-", 4) == 0) || (n >= 11 && memcmp(text, "ecdsa-sha2-", 11) == 0)) {
        if (want_private) {
            set_err(err, errlen, "private key text is an OpenSSH public key line");
            return 0;
        }
        return load_openssh(text, n, out, err, errlen);
    }
    set_err(err, errlen, "key text is neither PEM nor an OpenSSH public key line");
    return 0;
}
