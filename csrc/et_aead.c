/* SPDX-License-Identifier: MIT */
/* AES-256-GCM sealing (see et_aead.h). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "et_aead.h"

static void drain(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

int et_aead_seal(const unsigned char *key, size_t keylen, const unsigned char *plain, size_t n,
                 const unsigned char *aad, size_t aadlen, unsigned char *out)
{
    EVP_CIPHER_CTX *ctx;
    int len = 0, total = 0, st = ET_AEAD_ECRYPTO;
    if (keylen != ET_AEAD_KEY_LEN)
        return ET_AEAD_EKEY;
    if (n > ET_AEAD_MAX_LEN || aadlen > ET_AEAD_MAX_LEN)
        return ET_AEAD_ETOOLONG;
    drain();
    if (RAND_bytes(out, ET_AEAD_NONCE_LEN) != 1) {
        drain();
        return ET_AEAD_ERANDOM;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto done;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, ET_AEAD_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, out) != 1)
        goto done;
    if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto done;
    if (n > 0) {
        if (EVP_EncryptUpdate(ctx, out + ET_AEAD_NONCE_LEN, &len, plain, (int)n) != 1)
            goto done;
        total = len;
    }
    if (EVP_EncryptFinal_ex(ctx, out + ET_AEAD_NONCE_LEN + total, &len) != 1)
        goto done;
    total += len;
    if ((size_t)total != n)
        goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ET_AEAD_TAG_LEN, out + ET_AEAD_NONCE_LEN + n) != 1)
        goto done;
    st = ET_AEAD_OK;
done:
    EVP_CIPHER_CTX_free(ctx);
    drain();
    return st;
}

int et_aead_open(const unsigned char *key, size_t keylen, const unsigned char *blob, size_t n,
                 const unsigned char *aad, size_t aadlen, unsigned char *out, size_t *outlen)
{
    EVP_CIPHER_CTX *ctx;
    unsigned char tag[ET_AEAD_TAG_LEN];
    size_t clen;
    int len = 0, total = 0, st = ET_AEAD_ECRYPTO;
    if (keylen != ET_AEAD_KEY_LEN)
        return ET_AEAD_EKEY;
    if (n < ET_AEAD_OVERHEAD)
        return ET_AEAD_ESHORT;
    if (n > ET_AEAD_MAX_LEN + ET_AEAD_OVERHEAD || aadlen > ET_AEAD_MAX_LEN)
        return ET_AEAD_ETOOLONG;
    clen = n - ET_AEAD_OVERHEAD;
    memcpy(tag, blob + ET_AEAD_NONCE_LEN + clen, ET_AEAD_TAG_LEN);
    drain();
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto done;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, ET_AEAD_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, blob) != 1)
        goto done;
    if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto done;
    if (clen > 0) {
        if (EVP_DecryptUpdate(ctx, out, &len, blob + ET_AEAD_NONCE_LEN, (int)clen) != 1)
            goto done;
        total = len;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ET_AEAD_TAG_LEN, tag) != 1)
        goto done;
    if (EVP_DecryptFinal_ex(ctx, out + total, &len) != 1) {
        st = ET_AEAD_EAUTH;
        goto done;
    }
    total += len;
    *outlen = (size_t)total;
    st = ET_AEAD_OK;
done:
    if (st != ET_AEAD_OK)
        OPENSSL_cleanse(out, clen);
    EVP_CIPHER_CTX_free(ctx);
    drain();
    return st;
}

const char *et_aead_strerror(int status)
{
    switch (status) {
    case ET_AEAD_OK: return "ok";
    case ET_AEAD_EKEY: return "key of 32 bytes expected";
    case ET_AEAD_ETOOLONG: return "too long";
    case ET_AEAD_ESHORT: return "too short to be sealed";
    case ET_AEAD_EAUTH: return "does not authenticate (another key, another place, or altered)";
    case ET_AEAD_ERANDOM: return "the CSPRNG gave no nonce";
    default: return "the cipher failed";
    }
}
