/* SPDX-License-Identifier: MIT */
/* C tests of the pure JWT core: HMAC vectors, sign/verify per algorithm, ES r||s lengths, key
 * loading (PEM structures, OpenSSH lines) and its failures, token splitting. Keys are generated
 * here with OpenSSL and written out as text, so the loader sees what files would hold. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "et_b64.h"
#include "et_config.h"
#include "et_jwt.h"
#include "et_keyload.h"
#include "tap.h"

static char err[256];

/* ok(), and the last error message after a failure. */
static void check(int cond, const char *name)
{
    ok(cond, name);
    if (!cond && err[0])
        printf("# last message: %s\n", err);
}

__attribute__((format(printf, 2, 3)))
static void checkf(int cond, const char *fmt, ...)
{
    char name[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    check(cond, name);
}

/* ---- key text helpers ---- */

static char *bio_text(BIO *b)
{
    char *data, *out;
    long n = BIO_get_mem_data(b, &data);
    out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

/* PEM of pk: structure "SubjectPublicKeyInfo", "PrivateKeyInfo" or "type-specific". */
static char *pem(EVP_PKEY *pk, int selection, const char *structure)
{
    BIO *b = BIO_new(BIO_s_mem());
    OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(pk, selection, "PEM", structure, NULL);
    if (!ctx || !OSSL_ENCODER_to_bio(ctx, b)) {
        OSSL_ENCODER_CTX_free(ctx);
        BIO_free(b);
        return NULL;
    }
    OSSL_ENCODER_CTX_free(ctx);
    return bio_text(b);
}

static char *pub_pem(EVP_PKEY *pk)
{
    return pem(pk, EVP_PKEY_PUBLIC_KEY, "SubjectPublicKeyInfo");
}

static char *priv_pem(EVP_PKEY *pk)
{
    return pem(pk, EVP_PKEY_KEYPAIR, "PrivateKeyInfo");
}

/* SSH wire helpers, to build OpenSSH public key lines. */
struct buf {
    unsigned char d[2048];
    size_t n;
};

static void put_string(struct buf *b, const void *s, size_t n)
{
    b->d[b->n++] = (unsigned char)(n >> 24);
    b->d[b->n++] = (unsigned char)(n >> 16);
    b->d[b->n++] = (unsigned char)(n >> 8);
    b->d[b->n++] = (unsigned char)n;
    memcpy(b->d + b->n, s, n);
    b->n += n;
}

static void put_mpint(struct buf *b, const BIGNUM *bn)
{
    unsigned char tmp[1024];
    int n = BN_bn2bin(bn, tmp + 1);
    tmp[0] = 0;
    if (tmp[1] & 0x80)
        put_string(b, tmp, (size_t)n + 1);
    else
        put_string(b, tmp + 1, (size_t)n);
}

static char *ssh_line(const char *type, const struct buf *b, const char *comment)
{
    char *out = malloc(strlen(type) + b->n * 2 + 64);
    size_t t = strlen(type);
    int n;
    memcpy(out, type, t);
    out[t] = ' ';
    n = EVP_EncodeBlock((unsigned char *)out + t + 1, b->d, (int)b->n);
    sprintf(out + t + 1 + n, "%s%s\n", comment ? " " : "", comment ? comment : "");
    return out;
}

static char *ssh_rsa(EVP_PKEY *pk)
{
    struct buf b = { { 0 }, 0 };
    BIGNUM *n = NULL, *e = NULL;
    char *line;
    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e);
    put_string(&b, "ssh-rsa", 7);
    put_mpint(&b, e);
    put_mpint(&b, n);
    line = ssh_line("ssh-rsa", &b, "user@host");
    BN_free(n);
    BN_free(e);
    return line;
}

static char *ssh_ed25519(EVP_PKEY *pk, const char *inner)
{
    struct buf b = { { 0 }, 0 };
    unsigned char raw[32];
    size_t len = sizeof raw;
    EVP_PKEY_get_raw_public_key(pk, raw, &len);
    put_string(&b, inner, strlen(inner));
    put_string(&b, raw, len);
    return ssh_line("ssh-ed25519", &b, NULL);
}

static char *ssh_ecdsa(EVP_PKEY *pk, const char *curve)
{
    struct buf b = { { 0 }, 0 };
    unsigned char q[200];
    size_t len = 0;
    char type[64];
    snprintf(type, sizeof type, "ecdsa-sha2-%s", curve);
    EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, q, sizeof q, &len);
    put_string(&b, type, strlen(type));
    put_string(&b, curve, strlen(curve));
    put_string(&b, q, len);
    return ssh_line(type, &b, "c");
}

static EVP_PKEY *load(const char *text, int priv)
{
    EVP_PKEY *pk = NULL;
    err[0] = '\0';
    if (!text || !et_keyload(text, strlen(text), priv, &pk, err, sizeof err))
        return NULL;
    return pk;
}

static et_jwt_key_t *make_key(et_jwt_alg_t alg, const char *pub, const char *priv)
{
    EVP_PKEY *a = pub ? load(pub, 0) : NULL, *b = priv ? load(priv, 1) : NULL;
    et_jwt_key_t *k = NULL;
    if ((pub && !a) || (priv && !b)) {
        EVP_PKEY_free(a);
        EVP_PKEY_free(b);
        return NULL;
    }
    if (et_jwt_key_pkey(alg, a, b, &k, err, sizeof err) != ET_JWT_OK)
        return NULL;
    return k;
}

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* ---- tests ---- */

static void test_hmac(void)
{
    static const struct { et_jwt_alg_t alg; const char *token; } pyjwt[] = {
        { ET_JWT_HS256, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhIjoxLCJiIjpbMSwyXX0."
                        "_U-zwGfyfkDDVOv2sJJEtZRC3K2wUF4vqQ2rZE10DbM" },
        { ET_JWT_HS384, "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9.eyJhIjoxLCJiIjpbMSwyXX0."
                        "you2to-wJSunZyOXcEPHJg6HaN6j15pFuBDwz8ZRJwB5o1b7ybe-ZMo0ScXvqIcn" },
        { ET_JWT_HS512, "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJhIjoxLCJiIjpbMSwyXX0."
                        "9T5qn_GxtfJYhsCwBSWMuPRHDUI2GZ5D6_W7vorZzNvhBGFUN50bTULKsxKj2Ssx6iUmWXpEnRSE4R4JKrZOxA" },
    };
    /* RFC 7515 appendix A.1 */
    static const char rfc_key[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    static const char rfc_token[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    unsigned char secret[64], buf[ET_JWT_MAX_LEN], sig[64];
    size_t slen = 0, pos, i, siglen = 0;
    et_jwt_parts_t parts;
    et_jwt_key_t *k = NULL;
    char *tok = NULL;
    size_t toklen = 0;

    for (i = 0; i < 3; i++) {
        const char *name = et_jwt_alg_name(pyjwt[i].alg);
        check(et_jwt_key_hmac(pyjwt[i].alg, (const unsigned char *)"secret", 6, &k, err, sizeof err) == ET_JWT_OK,
              "hmac key");
        check(et_jwt_encode(k, NULL, 0, "{\"a\":1,\"b\":[1,2]}", 17, &tok, &toklen, err, sizeof err) == ET_JWT_OK &&
              strcmp(tok, pyjwt[i].token) == 0 && toklen == strlen(tok), "encode matches PyJWT byte for byte");
        free(tok);
        check(et_jwt_split(pyjwt[i].token, strlen(pyjwt[i].token), buf, &parts, err, sizeof err) == ET_JWT_OK &&
              et_jwt_verify(k, (const unsigned char *)pyjwt[i].token, parts.signing_len, parts.sig, parts.sig_len,
                            err, sizeof err) == ET_JWT_OK, "PyJWT token verifies");
        checkf(et_jwt_key_sig_len(k) == (size_t)(i == 0 ? 32 : i == 1 ? 48 : 64), "%s signature length", name);
        parts.sig[0] ^= 1;
        check(et_jwt_verify(k, (const unsigned char *)pyjwt[i].token, parts.signing_len, parts.sig,
                            parts.sig_len, err, sizeof err) == ET_JWT_EBADSIG, "flipped bit fails");
        check(et_jwt_verify(k, (const unsigned char *)pyjwt[i].token, parts.signing_len, parts.sig,
                            parts.sig_len - 1, err, sizeof err) == ET_JWT_EBADSIG && contains(err, "bytes"),
              "short MAC fails with a length message");
        et_jwt_key_free(k);
    }

    et_b64url_decode(rfc_key, strlen(rfc_key), secret, &slen, &pos);
    check(et_jwt_key_hmac(ET_JWT_HS256, secret, slen, &k, err, sizeof err) == ET_JWT_OK &&
          et_jwt_split(rfc_token, strlen(rfc_token), buf, &parts, err, sizeof err) == ET_JWT_OK &&
          et_jwt_verify(k, (const unsigned char *)rfc_token, parts.signing_len, parts.sig, parts.sig_len,
                        err, sizeof err) == ET_JWT_OK, "RFC 7515 A.1 HS256 verifies");
    check(et_jwt_sign(k, (const unsigned char *)rfc_token, parts.signing_len, sig, &siglen, err, sizeof err) ==
              ET_JWT_OK && siglen == 32 && memcmp(sig, parts.sig, 32) == 0, "RFC 7515 A.1 HS256 signs");
    /* The prepared context is reused: many signatures stay identical. */
    for (i = 0; i < 1000; i++)
        if (et_jwt_sign(k, (const unsigned char *)rfc_token, parts.signing_len, sig, &siglen, err, sizeof err) !=
                ET_JWT_OK || memcmp(sig, parts.sig, 32) != 0)
            break;
    check(i == 1000, "1000 signatures with one key are identical");
    et_jwt_key_free(k);

    err[0] = '\0';
    check(et_jwt_key_hmac(ET_JWT_HS256, (const unsigned char *)"", 0, &k, err, sizeof err) == ET_JWT_EINVAL &&
          k == NULL && strcmp(err, "empty HMAC secret") == 0, "empty HMAC secret refused");
    check(et_jwt_key_hmac(ET_JWT_RS256, (const unsigned char *)"x", 1, &k, err, sizeof err) == ET_JWT_EINVAL,
          "hmac key with an RSA algorithm refused");
    check(et_jwt_alg_from_name("EdDSA") == ET_JWT_EDDSA && et_jwt_alg_from_name("none") == -1 &&
          et_jwt_alg_from_name("hs256") == -1, "algorithm names");
}

static void test_split(void)
{
    unsigned char buf[ET_JWT_MAX_LEN + 8];
    char *big = malloc(ET_JWT_MAX_LEN + 2);
    et_jwt_parts_t p;
    memset(big, 'A', ET_JWT_MAX_LEN + 1);
    big[10] = '.';
    big[20] = '.';
    big[ET_JWT_MAX_LEN + 1] = '\0';
    check(et_jwt_split(big, ET_JWT_MAX_LEN + 1, buf, &p, err, sizeof err) == ET_JWT_EINVAL &&
          contains(err, "longer than"), "split: too long (checked first)");
    check(et_jwt_split("a.b", 3, buf, &p, err, sizeof err) == ET_JWT_EINVAL &&
          strcmp(err, "token has 2 segments, expected 3") == 0, "split: 2 segments");
    check(et_jwt_split("a.b.c.d", 7, buf, &p, err, sizeof err) == ET_JWT_EINVAL &&
          strcmp(err, "token has 4 segments, expected 3") == 0, "split: 4 segments");
    check(et_jwt_split("e30.e+0.AA", 10, buf, &p, err, sizeof err) == ET_JWT_EINVAL &&
          strcmp(err, "bad base64url in payload: bad character at byte 6") == 0, "split: bad payload char");
    check(et_jwt_split("e30=.e30.AA", 11, buf, &p, err, sizeof err) == ET_JWT_EINVAL &&
          contains(err, "header: padding"), "split: padded header");
    check(et_jwt_split("e30.e30.AAAAA", 13, buf, &p, err, sizeof err) == ET_JWT_EINVAL &&
          contains(err, "signature: impossible length"), "split: bad signature length");
    check(et_jwt_split("e30.e30.", 8, buf, &p, err, sizeof err) == ET_JWT_OK && p.header_len == 2 &&
          memcmp(p.header, "{}", 2) == 0 && p.payload_len == 2 && p.sig_len == 0 && p.signing_len == 7,
          "split: parts");
    free(big);
}

struct asym {
    et_jwt_alg_t alg;
    const char *type;
    const char *param;   /* RSA bits or curve */
};

static EVP_PKEY *keygen(const char *type, const char *param)
{
    if (strcmp(type, "RSA") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(param));
    if (strcmp(type, "EC") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
    return EVP_PKEY_Q_keygen(NULL, NULL, type);
}

static void test_asym(const struct asym *a, EVP_PKEY *pk)
{
    const char *name = et_jwt_alg_name(a->alg);
    char *pub = pub_pem(pk), *priv = priv_pem(pk), *tok = NULL;
    et_jwt_key_t *full = make_key(a->alg, pub, priv), *vonly = make_key(a->alg, pub, NULL);
    et_jwt_key_t *ponly = make_key(a->alg, NULL, priv);
    unsigned char buf[ET_JWT_MAX_LEN], sig[ET_JWT_SIG_MAX], bad[ET_JWT_SIG_MAX + 2];
    size_t toklen = 0, siglen = 0, i;
    et_jwt_parts_t p;
    int ok;

    checkf(full && vonly && ponly, "%s: keys from SPKI and PKCS#8 PEM", name);
    if (!full || !vonly || !ponly)
        goto out;
    checkf(et_jwt_key_can_sign(full) && !et_jwt_key_can_sign(vonly) && et_jwt_key_can_sign(ponly),
           "%s: can_sign", name);
    checkf(et_jwt_encode(full, NULL, 0, "{\"a\":1}", 7, &tok, &toklen, err, sizeof err) == ET_JWT_OK,
           "%s: encode", name);
    ok = tok && et_jwt_split(tok, toklen, buf, &p, err, sizeof err) == ET_JWT_OK;
    checkf(ok && p.sig_len == et_jwt_key_sig_len(full), "%s: signature has the JOSE length", name);
    checkf(ok && et_jwt_verify(vonly, (unsigned char *)tok, p.signing_len, p.sig, p.sig_len, err, sizeof err) ==
               ET_JWT_OK, "%s: public key verifies", name);
    checkf(ok && et_jwt_verify(ponly, (unsigned char *)tok, p.signing_len, p.sig, p.sig_len, err, sizeof err) ==
               ET_JWT_OK, "%s: private key alone verifies", name);
    checkf(ok && et_jwt_verify(vonly, (unsigned char *)tok, p.signing_len - 1, p.sig, p.sig_len, err,
                               sizeof err) == ET_JWT_EBADSIG, "%s: other data fails", name);
    if (ok) {
        memcpy(bad, p.sig, p.sig_len);
        bad[p.sig_len / 2] ^= 0x10;
        checkf(et_jwt_verify(vonly, (unsigned char *)tok, p.signing_len, bad, p.sig_len, err, sizeof err) ==
                   ET_JWT_EBADSIG && strcmp(err, "signature does not verify") == 0, "%s: flipped bit fails", name);
        checkf(et_jwt_verify(vonly, (unsigned char *)tok, p.signing_len, p.sig, p.sig_len - 1, err, sizeof err) ==
                   ET_JWT_EBADSIG && contains(err, "bytes"), "%s: short signature fails", name);
        memcpy(bad, p.sig, p.sig_len);
        bad[p.sig_len] = 0;
        checkf(et_jwt_verify(vonly, (unsigned char *)tok, p.signing_len, bad, p.sig_len + 1, err, sizeof err) ==
                   ET_JWT_EBADSIG && contains(err, "bytes"), "%s: long signature fails", name);
    }
    free(tok);
    tok = NULL;
    checkf(et_jwt_encode(vonly, NULL, 0, "{}", 2, &tok, &toklen, err, sizeof err) == ET_JWT_EINVAL && !tok &&
           contains(err, "cannot sign"), "%s: public-only key cannot encode", name);
    checkf(et_jwt_sign(vonly, (const unsigned char *)"x", 1, sig, &siglen, err, sizeof err) == ET_JWT_EINVAL,
           "%s: public-only key cannot sign", name);
    for (i = 0; i < 20; i++)
        if (et_jwt_sign(full, (const unsigned char *)"data", 4, sig, &siglen, err, sizeof err) != ET_JWT_OK ||
            et_jwt_verify(vonly, (const unsigned char *)"data", 4, sig, siglen, err, sizeof err) != ET_JWT_OK)
            break;
    checkf(i == 20, "%s: 20 sign/verify rounds reuse the prepared contexts", name);
out:
    et_jwt_key_free(full);
    et_jwt_key_free(vonly);
    et_jwt_key_free(ponly);
    free(pub);
    free(priv);
}

static void test_es_rs(EVP_PKEY *p256)
{
    char *pub = pub_pem(p256), *priv = priv_pem(p256);
    et_jwt_key_t *k = make_key(ET_JWT_ES256, pub, priv);
    unsigned char sig[128], zero[64];
    size_t siglen = 0;
    memset(zero, 0, sizeof zero);
    check(k && et_jwt_sign(k, (const unsigned char *)"m", 1, sig, &siglen, err, sizeof err) == ET_JWT_OK &&
          siglen == 64, "ES256: raw r||s of 64 bytes");
    check(k && et_jwt_verify(k, (const unsigned char *)"m", 1, sig, 63, err, sizeof err) == ET_JWT_EBADSIG &&
          strcmp(err, "signature has 63 bytes, ES256 needs 64") == 0, "ES256: 63-byte r||s refused");
    check(k && et_jwt_verify(k, (const unsigned char *)"m", 1, sig, 72, err, sizeof err) == ET_JWT_EBADSIG,
          "ES256: DER-length signature refused");
    check(k && et_jwt_verify(k, (const unsigned char *)"m", 1, zero, 64, err, sizeof err) == ET_JWT_EBADSIG,
          "ES256: r = s = 0 refused");
    /* Enough rounds that r or s with a high bit, and with leading zero bytes, both occur. */
    {
        unsigned char msg[8] = { 0 };
        int i, ok = k != NULL;
        for (i = 0; ok && i < 2000; i++) {
            memcpy(msg, &i, sizeof i);
            ok = et_jwt_sign(k, msg, sizeof msg, sig, &siglen, err, sizeof err) == ET_JWT_OK &&
                 et_jwt_verify(k, msg, sizeof msg, sig, siglen, err, sizeof err) == ET_JWT_OK;
        }
        check(ok, "ES256: 2000 r||s <-> DER round trips through OpenSSL");
    }
    et_jwt_key_free(k);
    free(pub);
    free(priv);
}

static void test_structures(EVP_PKEY *rsa, EVP_PKEY *p256, EVP_PKEY *p384, EVP_PKEY *ed)
{
    char *pkcs1_priv = pem(rsa, EVP_PKEY_KEYPAIR, "type-specific");
    char *pkcs1_pub = pem(rsa, EVP_PKEY_PUBLIC_KEY, "type-specific");
    char *sec1 = pem(p256, EVP_PKEY_KEYPAIR, "type-specific");
    char *rsa_pub = pub_pem(rsa), *ec_pub = pub_pem(p256), *ec384 = pub_pem(p384), *ed_pub = pub_pem(ed);
    char *ed_priv = priv_pem(ed), *rsa_priv = priv_pem(rsa);
    char *s_rsa = ssh_rsa(rsa), *s_ed = ssh_ed25519(ed, "ssh-ed25519"), *s_ec = ssh_ecdsa(p256, "nistp256");
    char *s_ec384 = ssh_ecdsa(p384, "nistp384"), *s_ed_bad = ssh_ed25519(ed, "ssh-rsa");
    char *with_params, *line2;
    et_jwt_key_t *k;
    EVP_PKEY *pk;

    check(contains(pkcs1_priv, "BEGIN RSA PRIVATE KEY") && contains(pkcs1_pub, "BEGIN RSA PUBLIC KEY") &&
          contains(sec1, "BEGIN EC PRIVATE KEY"), "type-specific PEM labels");
    k = make_key(ET_JWT_RS256, pkcs1_pub, pkcs1_priv);
    check(k != NULL, "PKCS#1 public and private keys load and match");
    et_jwt_key_free(k);
    k = make_key(ET_JWT_ES256, ec_pub, sec1);
    check(k != NULL, "SEC1 private key loads and matches SPKI");
    et_jwt_key_free(k);
    with_params = malloc(strlen(sec1) + 200);
    sprintf(with_params, "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n%s", sec1);
    k = make_key(ET_JWT_ES256, NULL, with_params);
    check(k != NULL, "EC PARAMETERS block before the key is skipped");
    et_jwt_key_free(k);

    k = make_key(ET_JWT_RS256, s_rsa, rsa_priv);
    check(k != NULL, "ssh-rsa line matches the PKCS#8 key");
    et_jwt_key_free(k);
    k = make_key(ET_JWT_EDDSA, s_ed, ed_priv);
    check(k != NULL, "ssh-ed25519 line matches the key");
    et_jwt_key_free(k);
    k = make_key(ET_JWT_ES256, s_ec, sec1);
    check(k != NULL, "ecdsa-sha2-nistp256 line matches the key");
    et_jwt_key_free(k);
    k = make_key(ET_JWT_ES384, s_ec384, NULL);
    check(k != NULL, "ecdsa-sha2-nistp384 line loads for ES384");
    et_jwt_key_free(k);

    /* Fit to the algorithm. */
    check(!make_key(ET_JWT_ES256, ec384, NULL) && strcmp(err, "ES256 needs an EC key on P-256, not secp384r1") == 0,
          "ES256 refuses P-384");
    check(!make_key(ET_JWT_ES384, ec_pub, NULL) && contains(err, "P-384"), "ES384 refuses P-256");
    check(!make_key(ET_JWT_RS256, ec_pub, NULL) && strcmp(err, "RS256 needs an RSA key, not EC") == 0,
          "RS256 refuses EC");
    check(!make_key(ET_JWT_EDDSA, rsa_pub, NULL) && contains(err, "Ed25519"), "EdDSA refuses RSA");
    check(!make_key(ET_JWT_ES256, ed_pub, NULL) && contains(err, "needs an EC key"), "ES256 refuses Ed25519");
    check(!make_key(ET_JWT_PS256, s_ec, NULL), "PS256 refuses an ecdsa line");
    check(!make_key(ET_JWT_RS256, rsa_pub, ed_priv), "mixed types refused");

    /* Parse failures. */
    check(!load("hello", 0) && strcmp(err, "key text is neither PEM nor an OpenSSH public key line") == 0,
          "garbage refused");
    check(!load("", 0), "empty text refused");
    check(!load("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 0) &&
          strcmp(err, "cannot parse PEM public key") == 0, "bad PEM body refused");
    check(!load("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 0) &&
          strcmp(err, "no PEM key block found") == 0, "PEM without a key block refused");
    /* Fuzz find (fuzz/corpus/keyload/regress-*): a second BEGIN without a closing "-----" used the
     * first label's length for the second label, reading past the text. */
    check(!load("-----BEGIN A LONG CERTIFICATE LABEL-----\n-----BEGIN P", 0) &&
          strcmp(err, "no PEM key block found") == 0, "PEM with an unterminated second label refused");
    check(!load(rsa_pub, 1) && strcmp(err, "private key text holds a public key") == 0,
          "public PEM as private refused");
    check(!load(s_rsa, 1) && contains(err, "OpenSSH public key line"), "ssh line as private refused");
    check(!load("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----\n", 1) &&
          contains(err, "OpenSSH private key format"), "OpenSSH private key format refused");
    check(!load("ssh-dss AAAAB3NzaC1kc3MAAA== x", 0) && contains(err, "unsupported OpenSSH key type"),
          "ssh-dss refused");
    check(!load("ssh-rsa !!!! x", 0) && contains(err, "not valid base64"), "ssh line with bad base64 refused");
    check(!load("ssh-rsa", 0) && contains(err, "no key data"), "ssh line without data refused");
    check(!load("ssh-rsa AAAAB3NzaC1yc2E= x", 0) && contains(err, "malformed"), "truncated ssh-rsa blob refused");
    check(!load(s_ed_bad, 0) && contains(err, "does not match"), "blob type differing from the line refused");
    line2 = malloc(strlen(s_rsa) * 2 + 1);
    sprintf(line2, "%s%s", s_rsa, s_rsa);
    check(!load(line2, 0) && contains(err, "more than one line"), "two ssh lines refused");
    pk = load(s_rsa, 0);
    check(pk != NULL, "ssh-rsa line with comment and newline loads");
    EVP_PKEY_free(pk);

    free(pkcs1_priv); free(pkcs1_pub); free(sec1); free(rsa_pub); free(ec_pub); free(ec384);
    free(ed_pub); free(ed_priv); free(rsa_priv); free(s_rsa); free(s_ed); free(s_ec); free(s_ec384);
    free(s_ed_bad); free(with_params); free(line2);
}

static void test_encrypted(EVP_PKEY *rsa)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *text, *trad;
    PEM_write_bio_PKCS8PrivateKey(b, rsa, EVP_aes_128_cbc(), "pw", 2, NULL, NULL);
    text = bio_text(b);
    check(!load(text, 1) && strcmp(err, "encrypted private keys are not supported") == 0,
          "encrypted PKCS#8 refused without prompting");
    /* Traditional encrypted PEM: "Proc-Type: 4,ENCRYPTED" header. */
    trad = malloc(strlen(text) + 200);
    sprintf(trad, "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
                  "DEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n");
    check(!load(trad, 1) && strcmp(err, "encrypted private keys are not supported") == 0,
          "encrypted traditional PEM refused");
    free(text);
    free(trad);
}

int main(void)
{
    static const struct asym asyms[] = {
        { ET_JWT_RS256, "RSA", "2048" }, { ET_JWT_RS384, "RSA", "2048" }, { ET_JWT_RS512, "RSA", "2048" },
        { ET_JWT_PS256, "RSA", "2048" }, { ET_JWT_PS384, "RSA", "2048" }, { ET_JWT_PS512, "RSA", "2048" },
        { ET_JWT_ES256, "EC", "P-256" }, { ET_JWT_ES384, "EC", "P-384" }, { ET_JWT_EDDSA, "ED25519", NULL },
    };
    EVP_PKEY *rsa = keygen("RSA", "2048"), *p256 = keygen("EC", "P-256"), *p384 = keygen("EC", "P-384");
    EVP_PKEY *ed = keygen("ED25519", NULL), *small = keygen("RSA", "1024");
    char *small_pub = pub_pem(small);
    size_t i;

    test_hmac();
    test_split();
    for (i = 0; i < sizeof asyms / sizeof asyms[0]; i++) {
        EVP_PKEY *pk = strcmp(asyms[i].type, "RSA") == 0 ? rsa
                       : strcmp(asyms[i].type, "ED25519") == 0 ? ed
                       : strcmp(asyms[i].param, "P-256") == 0 ? p256 : p384;
        test_asym(&asyms[i], pk);
    }
    test_es_rs(p256);
    test_structures(rsa, p256, p384, ed);
    test_encrypted(rsa);
    check(!make_key(ET_JWT_RS256, small_pub, NULL) &&
          strcmp(err, "RS256 needs an RSA key of at least 2048 bits, not 1024") == 0, "RSA 1024 refused for RS256");
    check(!make_key(ET_JWT_PS256, small_pub, NULL), "RSA 1024 refused for PS256");

    EVP_PKEY_free(rsa); EVP_PKEY_free(p256); EVP_PKEY_free(p384); EVP_PKEY_free(ed); EVP_PKEY_free(small);
    free(small_pub);
    return tap_done("jwt");
}
