/* SPDX-License-Identifier: MIT */
/* JWS keys and compact JWTs over OpenSSL 3: everything fetched and prepared once per key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/bn.h>
#include <openssl/rsa.h>

#include "et_b64.h"
#include "et_config.h"
#include "et_jwt.h"

enum family { FAM_HMAC, FAM_RSA, FAM_PSS, FAM_EC, FAM_ED };

static const struct alg_info {
    const char *name;
    enum family fam;
    const char *digest;     /* NULL for EdDSA */
    int coord;              /* ES: bytes of r and of s */
} algs[ET_JWT_ALG_COUNT] = {
    { "HS256", FAM_HMAC, "SHA256", 0 }, { "HS384", FAM_HMAC, "SHA384", 0 },
    { "HS512", FAM_HMAC, "SHA512", 0 },
    { "RS256", FAM_RSA, "SHA256", 0 }, { "RS384", FAM_RSA, "SHA384", 0 },
    { "RS512", FAM_RSA, "SHA512", 0 },
    { "PS256", FAM_PSS, "SHA256", 0 }, { "PS384", FAM_PSS, "SHA384", 0 },
    { "PS512", FAM_PSS, "SHA512", 0 },
    { "ES256", FAM_EC, "SHA256", 32 }, { "ES384", FAM_EC, "SHA384", 48 },
    { "EdDSA", FAM_ED, NULL, 0 },
};

struct et_jwt_key {
    et_jwt_alg_t alg;
    const struct alg_info *info;
    int can_sign;
    size_t sig_len;
    EVP_MAC *mac_alg;           /* HMAC */
    EVP_MAC_CTX *mac;           /* keyed once; re-initialised with the same key per use */
    EVP_PKEY *pkey;             /* the private key when given, else the public one */
    EVP_MD *md;                 /* fetched digest (RSA, PSS, EC) */
    EVP_MD_CTX *dctx;           /* digest context reused per use; DigestSign context for EdDSA */
    EVP_PKEY_CTX *sign_ctx;     /* sign-initialised, padding set (RSA, PSS, EC) */
    EVP_PKEY_CTX *verify_ctx;   /* verify-initialised, padding set */
    char header[96];            /* base64url of {"alg":A,"typ":"JWT"} */
    size_t header_len;
};

static void set_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
}

/* Empties OpenSSL's error queue before an operation: a look first, since ERR_clear_error
 * clears every slot even when the queue is empty (the usual case). */
static void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* Drains OpenSSL's error queue after a failure, keeping nothing (messages are our own). */
static int crypto_fail(char *err, size_t errlen, const char *msg)
{
    ERR_clear_error();
    set_err(err, errlen, msg);
    return ET_JWT_ECRYPTO;
}

const char *et_jwt_alg_name(et_jwt_alg_t alg)
{
    return (unsigned)alg < ET_JWT_ALG_COUNT ? algs[alg].name : "?";
}

int et_jwt_alg_from_name(const char *name)
{
    int i;
    for (i = 0; i < ET_JWT_ALG_COUNT; i++)
        if (strcmp(algs[i].name, name) == 0)
            return i;
    return -1;
}

int et_jwt_alg_is_hmac(et_jwt_alg_t alg)
{
    return (unsigned)alg < ET_JWT_ALG_COUNT && algs[alg].fam == FAM_HMAC;
}

static et_jwt_key_t *key_alloc(et_jwt_alg_t alg)
{
    et_jwt_key_t *k = calloc(1, sizeof *k);
    char json[64];
    int n;
    if (!k)
        return NULL;
    k->alg = alg;
    k->info = &algs[alg];
    n = snprintf(json, sizeof json, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", k->info->name);
    k->header_len = et_b64url_encoded_len((size_t)n);
    et_b64url_encode((const unsigned char *)json, (size_t)n, k->header);
    k->header[k->header_len] = '\0';
    return k;
}

void et_jwt_key_free(et_jwt_key_t *k)
{
    if (!k)
        return;
    EVP_MAC_CTX_free(k->mac);       /* the provider cleanses the key copy it holds */
    EVP_MAC_free(k->mac_alg);
    EVP_PKEY_CTX_free(k->sign_ctx);
    EVP_PKEY_CTX_free(k->verify_ctx);
    EVP_MD_CTX_free(k->dctx);
    EVP_MD_free(k->md);
    EVP_PKEY_free(k->pkey);
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

int et_jwt_key_hmac(et_jwt_alg_t alg, const unsigned char *secret, size_t n, et_jwt_key_t **out,
                    char *err, size_t errlen)
{
    OSSL_PARAM params[2];
    et_jwt_key_t *k;
    *out = NULL;
    if (!et_jwt_alg_is_hmac(alg)) {
        set_err(err, errlen, "not an HMAC algorithm");
        return ET_JWT_EINVAL;
    }
    if (n == 0) {
        set_err(err, errlen, "empty HMAC secret");
        return ET_JWT_EINVAL;
    }
    ERR_clear_error();
    if (!(k = key_alloc(alg))) {
        set_err(err, errlen, "out of memory");
        return ET_JWT_ENOMEM;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)k->info->digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    k->mac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    k->mac = k->mac_alg ? EVP_MAC_CTX_new(k->mac_alg) : NULL;
    if (!k->mac || !EVP_MAC_init(k->mac, secret, n, params)) {
        et_jwt_key_free(k);
        return crypto_fail(err, errlen, "cannot set up HMAC");
    }
    k->sig_len = EVP_MAC_CTX_get_mac_size(k->mac);
    k->can_sign = 1;
    *out = k;
    return ET_JWT_OK;
}

/* Group of an EC key as a NID, or NID_undef. */
static int ec_nid(const EVP_PKEY *pk)
{
    char name[64];
    size_t len = 0;
    int nid;
    if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len))
        return NID_undef;
    nid = OBJ_sn2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
    return nid;
}

/* Does pk fit the algorithm? A message naming the mismatch otherwise. */
static int check_fit(const struct alg_info *info, const EVP_PKEY *pk, char *err, size_t errlen)
{
    int bits, nid, want;
    switch (info->fam) {
    case FAM_RSA:
    case FAM_PSS:
        if (!EVP_PKEY_is_a(pk, "RSA")) {
            snprintf(err, errlen, "%s needs an RSA key, not %s", info->name, EVP_PKEY_get0_type_name(pk));
            return 0;
        }
        bits = EVP_PKEY_get_bits(pk);
        if (bits < 2048) {
            snprintf(err, errlen, "%s needs an RSA key of at least 2048 bits, not %d", info->name, bits);
            return 0;
        }
        if (EVP_PKEY_get_size(pk) > ET_JWT_SIG_MAX) {
            snprintf(err, errlen, "RSA key of %d bits is too large", bits);
            return 0;
        }
        return 1;
    case FAM_EC:
        want = info->coord == 32 ? NID_X9_62_prime256v1 : NID_secp384r1;
        if (!EVP_PKEY_is_a(pk, "EC")) {
            snprintf(err, errlen, "%s needs an EC key, not %s", info->name, EVP_PKEY_get0_type_name(pk));
            return 0;
        }
        nid = ec_nid(pk);
        if (nid != want) {
            snprintf(err, errlen, "%s needs an EC key on %s, not %s", info->name,
                     info->coord == 32 ? "P-256" : "P-384",
                     nid == NID_undef ? "an unnamed curve" : OBJ_nid2sn(nid));
            return 0;
        }
        return 1;
    case FAM_ED:
        if (!EVP_PKEY_is_a(pk, "ED25519")) {
            snprintf(err, errlen, "EdDSA needs an Ed25519 key, not %s", EVP_PKEY_get0_type_name(pk));
            return 0;
        }
        return 1;
    default:
        set_err(err, errlen, "not an asymmetric algorithm");
        return 0;
    }
}

/* Padding and digest of a sign- or verify-initialised context. */
static int setup_ctx(const et_jwt_key_t *k, EVP_PKEY_CTX *ctx)
{
    if (k->info->fam == FAM_PSS) {
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_signature_md(ctx, k->md) <= 0 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, k->md) <= 0 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) <= 0)
            return 0;
        return 1;
    }
    if (k->info->fam == FAM_RSA && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
        return 0;
    return EVP_PKEY_CTX_set_signature_md(ctx, k->md) > 0;
}

int et_jwt_key_pkey(et_jwt_alg_t alg, EVP_PKEY *pub, EVP_PKEY *priv, et_jwt_key_t **out,
                    char *err, size_t errlen)
{
    et_jwt_key_t *k = NULL;
    *out = NULL;
    ERR_clear_error();
    if ((unsigned)alg >= ET_JWT_ALG_COUNT || algs[alg].fam == FAM_HMAC) {
        set_err(err, errlen, "not an asymmetric algorithm");
        goto fail;
    }
    if (!pub && !priv) {
        set_err(err, errlen, "no key given");
        goto fail;
    }
    if ((pub && !check_fit(&algs[alg], pub, err, errlen)) ||
        (priv && !check_fit(&algs[alg], priv, err, errlen)))
        goto fail;
    if (pub && priv && EVP_PKEY_eq(pub, priv) != 1) {
        ERR_clear_error();
        set_err(err, errlen, "public and private keys do not match");
        goto fail;
    }
    if (!(k = key_alloc(alg))) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    k->can_sign = priv != NULL;
    k->pkey = priv ? priv : pub;
    if (priv)
        EVP_PKEY_free(pub);
    pub = priv = NULL;
    if (!(k->dctx = EVP_MD_CTX_new()))
        goto crypto;
    switch (k->info->fam) {
    case FAM_EC:
        k->sig_len = 2 * (size_t)k->info->coord;
        break;
    case FAM_ED:
        k->sig_len = 64;
        break;
    default:
        k->sig_len = (size_t)EVP_PKEY_get_size(k->pkey);
        break;
    }
    if (k->info->fam != FAM_ED) {
        if (!(k->md = EVP_MD_fetch(NULL, k->info->digest, NULL)))
            goto crypto;
        if (k->can_sign) {
            k->sign_ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
            if (!k->sign_ctx || EVP_PKEY_sign_init(k->sign_ctx) <= 0 || !setup_ctx(k, k->sign_ctx))
                goto crypto;
        }
        k->verify_ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
        if (!k->verify_ctx || EVP_PKEY_verify_init(k->verify_ctx) <= 0 || !setup_ctx(k, k->verify_ctx))
            goto crypto;
    }
    ERR_clear_error();
    *out = k;
    return ET_JWT_OK;
crypto:
    et_jwt_key_free(k);
    return crypto_fail(err, errlen, "cannot set up the key");
fail:
    EVP_PKEY_free(pub);
    EVP_PKEY_free(priv);
    ERR_clear_error();
    return ET_JWT_EINVAL;
}

et_jwt_alg_t et_jwt_key_alg(const et_jwt_key_t *k)
{
    return k->alg;
}

int et_jwt_key_can_sign(const et_jwt_key_t *k)
{
    return k->can_sign;
}

int et_jwt_key_is_hmac(const et_jwt_key_t *k)
{
    return k->info->fam == FAM_HMAC;
}

size_t et_jwt_key_sig_len(const et_jwt_key_t *k)
{
    return k->sig_len;
}

const char *et_jwt_key_header_b64(const et_jwt_key_t *k, size_t *len)
{
    *len = k->header_len;
    return k->header;
}

static int hmac(et_jwt_key_t *k, const unsigned char *data, size_t n, unsigned char *mac, size_t *maclen)
{
    return EVP_MAC_init(k->mac, NULL, 0, NULL) && EVP_MAC_update(k->mac, data, n) &&
           EVP_MAC_final(k->mac, mac, maclen, EVP_MAX_MD_SIZE);
}

static int digest(et_jwt_key_t *k, const unsigned char *data, size_t n, unsigned char *md, size_t *mdlen)
{
    unsigned int len = 0;
    if (!EVP_DigestInit_ex2(k->dctx, k->md, NULL) || !EVP_DigestUpdate(k->dctx, data, n) ||
        !EVP_DigestFinal_ex(k->dctx, md, &len))
        return 0;
    *mdlen = len;
    return 1;
}

/* JOSE carries ECDSA signatures as r||s; OpenSSL speaks DER (ECDSA-Sig-Value). The conversion
 * uses OpenSSL's own codec, so no ASN.1 is written by hand here. */

/* DER signature from OpenSSL to JOSE r||s, each exactly coord bytes. */
static int der_to_rs(const unsigned char *der, size_t derlen, int coord, unsigned char *out)
{
    const unsigned char *p = der;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    int ok;
    if (sig == NULL)
        return 0;
    ECDSA_SIG_get0(sig, &r, &s);
    ok = p == der + derlen && BN_bn2binpad(r, out, coord) == coord &&
         BN_bn2binpad(s, out + coord, coord) == coord;
    ECDSA_SIG_free(sig);
    return ok;
}

/* JOSE r||s to DER in der (cap bytes); returns the DER length, or 0 on failure. */
static size_t rs_to_der(const unsigned char *rs, int coord, unsigned char *der, size_t cap)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, coord, NULL), *s = BN_bin2bn(rs + coord, coord, NULL);
    unsigned char *q = der;
    int len = 0;
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);                 /* not owned by sig unless set0 succeeded */
        BN_free(s);
        ECDSA_SIG_free(sig);
        return 0;
    }
    len = i2d_ECDSA_SIG(sig, NULL);
    if (len <= 0 || (size_t)len > cap || i2d_ECDSA_SIG(sig, &q) != len)
        len = 0;
    ECDSA_SIG_free(sig);
    return (size_t)len;
}

int et_jwt_sign(et_jwt_key_t *k, const unsigned char *data, size_t n, unsigned char *sig,
                size_t *siglen, char *err, size_t errlen)
{
    unsigned char md[EVP_MAX_MD_SIZE], der[160];
    size_t mdlen = 0, len;
    if (!k->can_sign) {
        set_err(err, errlen, "key cannot sign (public key only)");
        return ET_JWT_EINVAL;
    }
    clear_errors();
    switch (k->info->fam) {
    case FAM_HMAC:
        if (!hmac(k, data, n, sig, siglen))
            return crypto_fail(err, errlen, "HMAC failed");
        return ET_JWT_OK;
    case FAM_ED:
        len = k->sig_len;
        if (EVP_DigestSignInit_ex(k->dctx, NULL, NULL, NULL, NULL, k->pkey, NULL) != 1 ||
            EVP_DigestSign(k->dctx, sig, &len, data, n) != 1)
            return crypto_fail(err, errlen, "signing failed");
        *siglen = len;
        return ET_JWT_OK;
    case FAM_EC:
        len = sizeof der;
        if (!digest(k, data, n, md, &mdlen) || EVP_PKEY_sign(k->sign_ctx, der, &len, md, mdlen) != 1 ||
            !der_to_rs(der, len, k->info->coord, sig))
            return crypto_fail(err, errlen, "signing failed");
        *siglen = k->sig_len;
        return ET_JWT_OK;
    default:
        len = k->sig_len;
        if (!digest(k, data, n, md, &mdlen) || EVP_PKEY_sign(k->sign_ctx, sig, &len, md, mdlen) != 1)
            return crypto_fail(err, errlen, "signing failed");
        *siglen = len;
        return ET_JWT_OK;
    }
}

static int bad_sig(char *err, size_t errlen)
{
    ERR_clear_error();
    set_err(err, errlen, "signature does not verify");
    return ET_JWT_EBADSIG;
}

int et_jwt_verify(et_jwt_key_t *k, const unsigned char *data, size_t n, const unsigned char *sig,
                  size_t siglen, char *err, size_t errlen)
{
    unsigned char md[EVP_MAX_MD_SIZE], der[160];
    size_t mdlen = 0, derlen;
    if (siglen != k->sig_len) {
        snprintf(err, errlen, "signature has %zu bytes, %s needs %zu", siglen, k->info->name, k->sig_len);
        return ET_JWT_EBADSIG;
    }
    clear_errors();
    switch (k->info->fam) {
    case FAM_HMAC:
        if (!hmac(k, data, n, md, &mdlen))
            return crypto_fail(err, errlen, "HMAC failed");
        if (mdlen != siglen || CRYPTO_memcmp(md, sig, siglen) != 0)
            return bad_sig(err, errlen);
        return ET_JWT_OK;
    case FAM_ED:
        if (EVP_DigestVerifyInit_ex(k->dctx, NULL, NULL, NULL, NULL, k->pkey, NULL) != 1)
            return crypto_fail(err, errlen, "verification failed");
        if (EVP_DigestVerify(k->dctx, sig, siglen, data, n) != 1)
            return bad_sig(err, errlen);
        return ET_JWT_OK;
    case FAM_EC:
        if (!digest(k, data, n, md, &mdlen))
            return crypto_fail(err, errlen, "digest failed");
        derlen = rs_to_der(sig, k->info->coord, der, sizeof der);
        if (derlen == 0)
            return crypto_fail(err, errlen, "cannot encode the signature");
        if (EVP_PKEY_verify(k->verify_ctx, der, derlen, md, mdlen) != 1)
            return bad_sig(err, errlen);
        return ET_JWT_OK;
    default:
        if (!digest(k, data, n, md, &mdlen))
            return crypto_fail(err, errlen, "digest failed");
        if (EVP_PKEY_verify(k->verify_ctx, sig, siglen, md, mdlen) != 1)
            return bad_sig(err, errlen);
        return ET_JWT_OK;
    }
}

/* Length of the token for a payload of plen bytes, or 0 if it would overflow. */
static size_t token_len(const et_jwt_key_t *k, size_t hdr_len, size_t plen)
{
    if (plen > ((size_t)-1) / 2)
        return 0;
    return hdr_len + 1 + et_b64url_encoded_len(plen) + 1 + et_b64url_encoded_len(k->sig_len);
}

/* Writes H.P.S into buf (room for total + 1 bytes, checked by the callers). */
static int encode_into(et_jwt_key_t *k, const char *hdr_b64, size_t hdr_len, const char *payload,
                       size_t plen, char *buf, size_t *outlen, char *err, size_t errlen)
{
    unsigned char sig[ET_JWT_SIG_MAX];
    size_t plen64 = et_b64url_encoded_len(plen), siglen = 0, pos;
    int st;
    memcpy(buf, hdr_b64, hdr_len);
    buf[hdr_len] = '.';
    et_b64url_encode((const unsigned char *)payload, plen, buf + hdr_len + 1);
    pos = hdr_len + 1 + plen64;
    st = et_jwt_sign(k, (const unsigned char *)buf, pos, sig, &siglen, err, errlen);
    if (st != ET_JWT_OK)
        return st;
    buf[pos++] = '.';
    et_b64url_encode(sig, siglen, buf + pos);
    pos += et_b64url_encoded_len(siglen);
    buf[pos] = '\0';
    *outlen = pos;
    return ET_JWT_OK;
}

int et_jwt_encode(et_jwt_key_t *k, const char *hdr_b64, size_t hdr_len, const char *payload,
                  size_t plen, char **out, size_t *outlen, char *err, size_t errlen)
{
    size_t total;
    char *buf;
    int st;
    *out = NULL;
    if (!k->can_sign) {
        set_err(err, errlen, "key cannot sign (public key only)");
        return ET_JWT_EINVAL;
    }
    if (!hdr_b64)
        hdr_b64 = et_jwt_key_header_b64(k, &hdr_len);
    total = token_len(k, hdr_len, plen);
    if (total == 0 || !(buf = malloc(total + 1))) {
        set_err(err, errlen, "out of memory");
        return ET_JWT_ENOMEM;
    }
    st = encode_into(k, hdr_b64, hdr_len, payload, plen, buf, outlen, err, errlen);
    if (st != ET_JWT_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return ET_JWT_OK;
}

static int split_part(const char *name, const char *tok, size_t start, size_t n, unsigned char *dst,
                      size_t *outlen, char *err, size_t errlen)
{
    size_t pos = 0;
    int st = et_b64url_decode(tok + start, n, dst, outlen, &pos);
    if (st == ET_B64_OK)
        return 1;
    if (st == ET_B64_EBADCHAR || st == ET_B64_EPADDING)
        snprintf(err, errlen, "bad base64url in %s: %s at byte %zu", name, et_b64_strerror(st),
                 start + pos + 1);
    else
        snprintf(err, errlen, "bad base64url in %s: %s", name, et_b64_strerror(st));
    return 0;
}

int et_jwt_split(const char *token, size_t len, unsigned char *buf, et_jwt_parts_t *parts,
                 char *err, size_t errlen)
{
    size_t dots[2] = { 0, 0 }, ndots = 0, i, used;
    if (len > ET_JWT_MAX_LEN) {
        snprintf(err, errlen, "token longer than %d bytes", ET_JWT_MAX_LEN);
        return ET_JWT_EINVAL;
    }
    /* memchr for the two dots and a third one; the full count only for the message. */
    {
        const char *p = memchr(token, '.', len), *q = NULL, *r = NULL;
        if (p && (q = memchr(p + 1, '.', len - (size_t)(p + 1 - token))) != NULL)
            r = memchr(q + 1, '.', len - (size_t)(q + 1 - token));
        if (p && q && !r) {
            dots[0] = (size_t)(p - token);
            dots[1] = (size_t)(q - token);
            ndots = 2;
        } else {
            for (i = 0; i < len; i++)
                ndots += token[i] == '.';
        }
    }
    if (ndots != 2) {
        snprintf(err, errlen, "token has %zu segments, expected 3", ndots + 1);
        return ET_JWT_EINVAL;
    }
    parts->signing_len = dots[1];
    parts->header = buf;
    if (!split_part("header", token, 0, dots[0], buf, &parts->header_len, err, errlen))
        return ET_JWT_EINVAL;
    used = parts->header_len;
    parts->payload = buf + used;
    if (!split_part("payload", token, dots[0] + 1, dots[1] - dots[0] - 1, buf + used,
                    &parts->payload_len, err, errlen))
        return ET_JWT_EINVAL;
    used += parts->payload_len;
    parts->sig = buf + used;
    if (!split_part("signature", token, dots[1] + 1, len - dots[1] - 1, buf + used,
                    &parts->sig_len, err, errlen))
        return ET_JWT_EINVAL;
    return ET_JWT_OK;
}
