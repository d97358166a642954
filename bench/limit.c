/* SPDX-License-Identifier: MIT */
/* The ceiling of the state round trip: what `generate_state` then `validate_state` cost when a C
 * program does the same cryptography with OpenSSL directly, on a JWT of the same size.
 *
 *   bench/limit ALG KEYFILE URL SECONDS ROUNDS [json]
 *
 * With `json` (the HS256 line of `make bench`), the claims go through cJSON both ways, as in the
 * module: built as a cJSON object and printed, then parsed back and each claim checked (types,
 * `a`, `as`, `iat`, `exp`): the same work with the same libraries (cJSON, EVP_MAC, RAND_bytes).
 * Without it, the claims are formatted with snprintf and not parsed back (the cryptography alone).
 *
 * ALG: HS256, RS256, PS256, ES256 or EdDSA. KEYFILE: the HMAC secret (HS256) or a private PEM.
 * URL: the `as` claim (the client's base URL, so the payload has the Lua state's size).
 * Prints one line per round of at least SECONDS: `round N OPS`, OPS round trips per second.
 *
 * One round trip: 64 random bytes from the CSPRNG as 128 hex characters (the nonce), the claims
 * {"a","as","exp","iat","nonce","rfp"} formatted, header.payload base64url-encoded, signed, the
 * signature appended; then the token split, its three parts base64url-decoded, the header compared
 * and the signature verified. Everything that can be is prepared once (key parsed, digest fetched,
 * HMAC keyed, sign and verify contexts with their padding), as a careful C program would. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <cJSON.h>

enum fam { HMAC_F, RSA_F, PSS_F, EC_F, ED_F };

static enum fam fam;
static const char *alg;
static EVP_MAC_CTX *mac;
static EVP_PKEY *pkey;
static EVP_MD *md;
static EVP_MD_CTX *dctx;
static EVP_PKEY_CTX *sctx, *vctx;
static char header64[64];
static size_t header64_len;

static void die(const char *what)
{
    fprintf(stderr, "limit: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static signed char b64rev[256];

static size_t b64enc(const unsigned char *in, size_t n, char *out)
{
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = b64chars[(v >> 6) & 63];
        out[o++] = b64chars[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = b64chars[(v >> 6) & 63];
    }
    return o;
}

/* Returns the decoded length, or (size_t)-1 on a bad character. */
static size_t b64dec(const char *in, size_t n, unsigned char *out)
{
    size_t i, o = 0;
    unsigned v = 0;
    int bits = 0;
    for (i = 0; i < n; i++) {
        int c = b64rev[(unsigned char)in[i]];
        if (c < 0)
            return (size_t)-1;
        v = v << 6 | (unsigned)c;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(v >> bits);
        }
    }
    return o;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 16);
    if (!f || !buf)
        die("cannot read the key file");
    *n = fread(buf, 1, (1 << 16) - 1, f);
    buf[*n] = '\0';
    fclose(f);
    return buf;
}

static void setup(const char *keyfile)
{
    size_t n;
    char *text = read_file(keyfile, &n);
    char json[64];
    int jn;
    if (strcmp(alg, "HS256") == 0) {
        OSSL_PARAM params[2];
        EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
        fam = HMAC_F;
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
            n--;
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
        params[1] = OSSL_PARAM_construct_end();
        if (!m || !(mac = EVP_MAC_CTX_new(m)) || !EVP_MAC_init(mac, (unsigned char *)text, n, params))
            die("HMAC setup");
    } else {
        BIO *bio = BIO_new_mem_buf(text, (int)n);
        pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!pkey)
            die("cannot parse the private key");
        if (strcmp(alg, "RS256") == 0) fam = RSA_F;
        else if (strcmp(alg, "PS256") == 0) fam = PSS_F;
        else if (strcmp(alg, "ES256") == 0) fam = EC_F;
        else if (strcmp(alg, "EdDSA") == 0) fam = ED_F;
        else die("unknown algorithm");
        if (!(dctx = EVP_MD_CTX_new()))
            die("EVP_MD_CTX_new");
        if (fam != ED_F) {
            if (!(md = EVP_MD_fetch(NULL, "SHA256", NULL)))
                die("EVP_MD_fetch");
            sctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
            vctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
            if (!sctx || !vctx || EVP_PKEY_sign_init(sctx) <= 0 || EVP_PKEY_verify_init(vctx) <= 0)
                die("context setup");
            EVP_PKEY_CTX *c[2] = { sctx, vctx };
            for (int i = 0; i < 2; i++) {
                if (fam == RSA_F && EVP_PKEY_CTX_set_rsa_padding(c[i], RSA_PKCS1_PADDING) <= 0)
                    die("padding");
                if (fam == PSS_F && (EVP_PKEY_CTX_set_rsa_padding(c[i], RSA_PKCS1_PSS_PADDING) <= 0 ||
                                     EVP_PKEY_CTX_set_rsa_mgf1_md(c[i], md) <= 0 ||
                                     EVP_PKEY_CTX_set_rsa_pss_saltlen(c[i], RSA_PSS_SALTLEN_DIGEST) <= 0))
                    die("PSS padding");
                if (EVP_PKEY_CTX_set_signature_md(c[i], md) <= 0)
                    die("signature digest");
            }
        }
    }
    OPENSSL_cleanse(text, n);
    free(text);
    jn = snprintf(json, sizeof json, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    header64_len = b64enc((const unsigned char *)json, (size_t)jn, header64);
}

/* Raw JWS signature of data into sig; returns its length. */
static size_t sign(const unsigned char *data, size_t n, unsigned char *sig)
{
    unsigned char h[EVP_MAX_MD_SIZE], der[160];
    unsigned int hlen = 0;
    size_t len = 512;
    switch (fam) {
    case HMAC_F:
        if (!EVP_MAC_init(mac, NULL, 0, NULL) || !EVP_MAC_update(mac, data, n) ||
            !EVP_MAC_final(mac, sig, &len, 64))
            die("HMAC");
        return len;
    case ED_F:
        if (EVP_DigestSignInit_ex(dctx, NULL, NULL, NULL, NULL, pkey, NULL) != 1 ||
            EVP_DigestSign(dctx, sig, &len, data, n) != 1)
            die("EdDSA sign");
        return len;
    case EC_F: {
        const unsigned char *p = der;
        ECDSA_SIG *es;
        const BIGNUM *r, *s;
        len = sizeof der;
        if (!EVP_DigestInit_ex2(dctx, md, NULL) || !EVP_DigestUpdate(dctx, data, n) ||
            !EVP_DigestFinal_ex(dctx, h, &hlen) || EVP_PKEY_sign(sctx, der, &len, h, hlen) != 1)
            die("ECDSA sign");
        if (!(es = d2i_ECDSA_SIG(NULL, &p, (long)len)))
            die("ECDSA DER");
        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, sig, 32);
        BN_bn2binpad(s, sig + 32, 32);
        ECDSA_SIG_free(es);
        return 64;
    }
    default:
        if (!EVP_DigestInit_ex2(dctx, md, NULL) || !EVP_DigestUpdate(dctx, data, n) ||
            !EVP_DigestFinal_ex(dctx, h, &hlen) || EVP_PKEY_sign(sctx, sig, &len, h, hlen) != 1)
            die("RSA sign");
        return len;
    }
}

static int verify(const unsigned char *data, size_t n, const unsigned char *sig, size_t siglen)
{
    unsigned char h[EVP_MAX_MD_SIZE], mac2[EVP_MAX_MD_SIZE];
    unsigned int hlen = 0;
    size_t len = 0;
    switch (fam) {
    case HMAC_F:
        if (!EVP_MAC_init(mac, NULL, 0, NULL) || !EVP_MAC_update(mac, data, n) ||
            !EVP_MAC_final(mac, mac2, &len, sizeof mac2))
            die("HMAC");
        return len == siglen && CRYPTO_memcmp(mac2, sig, len) == 0;
    case ED_F:
        return EVP_DigestVerifyInit_ex(dctx, NULL, NULL, NULL, NULL, pkey, NULL) == 1 &&
               EVP_DigestVerify(dctx, sig, siglen, data, n) == 1;
    case EC_F: {
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        unsigned char der[160], *p = der;
        int dlen, ok;
        if (siglen != 64 || !es || !r || !s || !ECDSA_SIG_set0(es, r, s))
            die("ECDSA_SIG");
        dlen = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        if (!EVP_DigestInit_ex2(dctx, md, NULL) || !EVP_DigestUpdate(dctx, data, n) ||
            !EVP_DigestFinal_ex(dctx, h, &hlen))
            die("digest");
        ok = EVP_PKEY_verify(vctx, der, (size_t)dlen, h, hlen) == 1;
        return ok;
    }
    default:
        if (!EVP_DigestInit_ex2(dctx, md, NULL) || !EVP_DigestUpdate(dctx, data, n) ||
            !EVP_DigestFinal_ex(dctx, h, &hlen))
            die("digest");
        return EVP_PKEY_verify(vctx, sig, siglen, h, hlen) == 1;
    }
}

static const char hexd[] = "0123456789abcdef";
static int use_json;

/* The claims as the module writes them (sorted keys), through cJSON; the length, or 0. */
static size_t claims_json(char *out, size_t cap, const char *url, long long now, const char *nonce)
{
    cJSON *o = cJSON_CreateObject();
    char *text;
    size_t n = 0;
    if (!o || !cJSON_AddStringToObject(o, "a", "authorize") || !cJSON_AddStringToObject(o, "as", url) ||
        !cJSON_AddNumberToObject(o, "exp", (double)(now + 600)) ||
        !cJSON_AddNumberToObject(o, "iat", (double)now) || !cJSON_AddStringToObject(o, "nonce", nonce) ||
        !cJSON_AddNumberToObject(o, "rfp", (double)now))
        die("cJSON build");
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        die("cJSON print");
    n = strlen(text);
    if (n >= cap)
        die("claims too long");
    memcpy(out, text, n + 1);
    cJSON_free(text);
    return n;
}

/* Parses the claims back and checks them as the client does; dies on a bad one. */
static void check_claims(const unsigned char *p, size_t n, const char *url, long long now)
{
    cJSON *o = cJSON_ParseWithLength((const char *)p, n), *a, *as, *iat, *rfp, *exp, *nonce;
    if (!cJSON_IsObject(o))
        die("claims: not an object");
    a = cJSON_GetObjectItemCaseSensitive(o, "a");
    as = cJSON_GetObjectItemCaseSensitive(o, "as");
    iat = cJSON_GetObjectItemCaseSensitive(o, "iat");
    rfp = cJSON_GetObjectItemCaseSensitive(o, "rfp");
    exp = cJSON_GetObjectItemCaseSensitive(o, "exp");
    nonce = cJSON_GetObjectItemCaseSensitive(o, "nonce");
    if (!cJSON_IsString(a) || !cJSON_IsString(as) || !cJSON_IsNumber(iat) || !cJSON_IsNumber(rfp) ||
        !cJSON_IsNumber(exp) || !cJSON_IsString(nonce) || strcmp(a->valuestring, "authorize") != 0 ||
        strcmp(as->valuestring, url) != 0 || iat->valuedouble > (double)now ||
        exp->valuedouble < (double)now)
        die("claims do not check");
    cJSON_Delete(o);
}

/* One generate + validate; returns the token length. */
static size_t round_trip(const char *url)
{
    unsigned char rnd[64], sig[512], dec[4096];
    char nonce[129], claims[1024], tok[4096];
    size_t clen, pos, siglen, i, dot1, dot2, hl, pl, sl;
    long long now = (long long)time(NULL);

    /* generate */
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        die("RAND_bytes");
    for (i = 0; i < sizeof rnd; i++) {
        nonce[2 * i] = hexd[rnd[i] >> 4];
        nonce[2 * i + 1] = hexd[rnd[i] & 15];
    }
    nonce[128] = '\0';
    if (use_json)
        clen = claims_json(claims, sizeof claims, url, now, nonce);
    else
        clen = (size_t)snprintf(claims, sizeof claims,
                            "{\"a\":\"authorize\",\"as\":\"%s\",\"exp\":%lld,\"iat\":%lld,\"nonce\":\"%s\",\"rfp\":%lld}",
                            url, now + 600, now, nonce, now);
    memcpy(tok, header64, header64_len);
    pos = header64_len;
    tok[pos++] = '.';
    pos += b64enc((unsigned char *)claims, clen, tok + pos);
    siglen = sign((unsigned char *)tok, pos, sig);
    tok[pos++] = '.';
    pos += b64enc(sig, siglen, tok + pos);
    tok[pos] = '\0';

    /* validate: split, decode each part, check the header, verify */
    dot1 = strchr(tok, '.') - tok;
    dot2 = strchr(tok + dot1 + 1, '.') - tok;
    hl = b64dec(tok, dot1, dec);
    pl = b64dec(tok + dot1 + 1, dot2 - dot1 - 1, dec + hl);
    sl = b64dec(tok + dot2 + 1, pos - dot2 - 1, dec + hl + pl);
    if (hl == (size_t)-1 || pl == (size_t)-1 || sl == (size_t)-1 || dot1 != header64_len ||
        memcmp(tok, header64, dot1) != 0)
        die("split");
    if (!verify((unsigned char *)tok, dot2, dec + hl + pl, sl))
        die("signature does not verify");
    if (use_json)
        check_claims(dec + hl, pl, url, (long long)time(NULL));
    return pos;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long rounds, r, i, n;
    double seconds;
    const char *url;
    if (argc != 6 && !(argc == 7 && strcmp(argv[6], "json") == 0)) {
        fprintf(stderr, "usage: %s ALG KEYFILE URL SECONDS ROUNDS [json]\n", argv[0]);
        return 2;
    }
    use_json = argc == 7;
    alg = argv[1];
    url = argv[3];
    seconds = atof(argv[4]);
    rounds = atol(argv[5]);
    memset(b64rev, -1, sizeof b64rev);
    for (i = 0; i < 64; i++)
        b64rev[(unsigned char)b64chars[i]] = (signed char)i;
    setup(argv[2]);
    fprintf(stderr, "token: %zu bytes\n", round_trip(url));
    for (r = 1; r <= rounds; r++) {
        double t0 = now_s(), dt;
        n = 0;
        do {
            for (i = 0; i < 16; i++)
                round_trip(url);
            n += 16;
            dt = now_s() - t0;
        } while (dt < seconds);
        printf("round %ld %.1f\n", r, (double)n / dt);
        fflush(stdout);
    }
    return 0;
}
