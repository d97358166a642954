/* SPDX-License-Identifier: MIT */
/* AES-256-GCM sealing of short values (the gate's server-side session tokens): a random 96-bit
 * nonce from the CSPRNG, the ciphertext, a 128-bit tag; the associated data binds a blob to its
 * place. Pure C over OpenSSL's EVP; no Lua. */
#ifndef ET_AEAD_H
#define ET_AEAD_H

#include <stddef.h>

#define ET_AEAD_KEY_LEN   32
#define ET_AEAD_NONCE_LEN 12
#define ET_AEAD_TAG_LEN   16
#define ET_AEAD_OVERHEAD  (ET_AEAD_NONCE_LEN + ET_AEAD_TAG_LEN)
/* Largest plaintext (and associated data) accepted: well past any session record, well below int. */
#define ET_AEAD_MAX_LEN   (1u << 20)

enum et_aead_status {
    ET_AEAD_OK = 0,
    ET_AEAD_EKEY,       /* the key is not ET_AEAD_KEY_LEN bytes */
    ET_AEAD_ETOOLONG,   /* plaintext, blob or associated data over ET_AEAD_MAX_LEN */
    ET_AEAD_ESHORT,     /* a blob shorter than ET_AEAD_OVERHEAD */
    ET_AEAD_EAUTH,      /* the tag does not verify: wrong key, wrong associated data, or altered */
    ET_AEAD_ERANDOM,    /* the CSPRNG gave no nonce */
    ET_AEAD_ECRYPTO     /* OpenSSL failed otherwise */
};

/* Seals n bytes of plain under key (keylen must be ET_AEAD_KEY_LEN) with associated data aad
 * (aadlen bytes, may be 0). out holds n + ET_AEAD_OVERHEAD bytes: nonce || ciphertext || tag.
 * Returns an et_aead_status; the OpenSSL error queue is left empty. */
int et_aead_seal(const unsigned char *key, size_t keylen, const unsigned char *plain, size_t n,
                 const unsigned char *aad, size_t aadlen, unsigned char *out);

/* Opens a blob of n bytes (nonce || ciphertext || tag). out holds n - ET_AEAD_OVERHEAD bytes;
 * *outlen is set on success. When the tag does not verify (ET_AEAD_EAUTH) out is zeroed: no
 * unauthenticated byte is ever left there. */
int et_aead_open(const unsigned char *key, size_t keylen, const unsigned char *blob, size_t n,
                 const unsigned char *aad, size_t aadlen, unsigned char *out, size_t *outlen);

/* Short lower-case text of a status. */
const char *et_aead_strerror(int status);

#endif
