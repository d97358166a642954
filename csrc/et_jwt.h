/* SPDX-License-Identifier: MIT */
/* JWS signing keys (HS*, RS*, PS*, ES256/384, EdDSA) and compact JWT assembly and splitting.
 *
 * An et_jwt_key_t holds everything prepared at construction (fetched digest, HMAC context,
 * sign/verify contexts), so a signature costs the cryptography and little else. A key is not
 * reentrant: its contexts are reused, so use it from one thread at a time (one Lua state). */
#ifndef ET_JWT_H
#define ET_JWT_H

#include <stddef.h>

#include <openssl/evp.h>

enum et_jwt_status {
    ET_JWT_OK = 0,
    ET_JWT_ENOMEM,      /* allocation failed */
    ET_JWT_EINVAL,      /* bad input (message in err) */
    ET_JWT_EBADSIG,     /* the signature does not verify (message in err) */
    ET_JWT_ECRYPTO      /* OpenSSL failed (message in err, error queue drained) */
};

typedef enum et_jwt_alg {
    ET_JWT_HS256 = 0, ET_JWT_HS384, ET_JWT_HS512,
    ET_JWT_RS256, ET_JWT_RS384, ET_JWT_RS512,
    ET_JWT_PS256, ET_JWT_PS384, ET_JWT_PS512,
    ET_JWT_ES256, ET_JWT_ES384,
    ET_JWT_EDDSA,
    ET_JWT_ALG_COUNT
} et_jwt_alg_t;

/* Largest raw signature of any algorithm (RSA 16384 bits). */
#define ET_JWT_SIG_MAX 2048

typedef struct et_jwt_key et_jwt_key_t;

/* Name ("HS256", ..., "EdDSA") and the reverse; et_jwt_alg_from_name returns -1 if unknown. */
const char *et_jwt_alg_name(et_jwt_alg_t alg);
int et_jwt_alg_from_name(const char *name);
int et_jwt_alg_is_hmac(et_jwt_alg_t alg);

/* HMAC key; the secret is copied into OpenSSL's context (cleansed when freed). Empty: EINVAL. */
int et_jwt_key_hmac(et_jwt_alg_t alg, const unsigned char *secret, size_t n, et_jwt_key_t **out,
                    char *err, size_t errlen);
/* Asymmetric key from parsed EVP_PKEYs (pub or priv may be NULL, not both). Checks the type
 * fits alg and that pub and priv match. Takes ownership of both in every case. */
int et_jwt_key_pkey(et_jwt_alg_t alg, EVP_PKEY *pub, EVP_PKEY *priv, et_jwt_key_t **out,
                    char *err, size_t errlen);
void et_jwt_key_free(et_jwt_key_t *k);

et_jwt_alg_t et_jwt_key_alg(const et_jwt_key_t *k);
int et_jwt_key_can_sign(const et_jwt_key_t *k);
int et_jwt_key_is_hmac(const et_jwt_key_t *k);
/* Size of this key's signatures, in bytes. */
size_t et_jwt_key_sig_len(const et_jwt_key_t *k);
/* base64url of the default header {"alg":A,"typ":"JWT"}. */
const char *et_jwt_key_header_b64(const et_jwt_key_t *k, size_t *len);

/* Raw JWS signature of data into sig (et_jwt_key_sig_len bytes). */
int et_jwt_sign(et_jwt_key_t *k, const unsigned char *data, size_t n, unsigned char *sig,
                size_t *siglen, char *err, size_t errlen);
/* ET_JWT_OK when sig is a valid signature of data, ET_JWT_EBADSIG when not. */
int et_jwt_verify(et_jwt_key_t *k, const unsigned char *data, size_t n, const unsigned char *sig,
                  size_t siglen, char *err, size_t errlen);

/* Compact JWT "H.P.S" into a malloc'd NUL-terminated string (*out, *outlen). hdr_b64 may be
 * NULL for the key's default header; payload is the JSON text of the claims. */
int et_jwt_encode(et_jwt_key_t *k, const char *hdr_b64, size_t hdr_len, const char *payload,
                  size_t plen, char **out, size_t *outlen, char *err, size_t errlen);

/* A split and decoded compact JWT. The decoded parts point into the caller's buffer. */
typedef struct et_jwt_parts {
    size_t signing_len;          /* the signing input is token[0, signing_len) */
    unsigned char *header;  size_t header_len;
    unsigned char *payload; size_t payload_len;
    unsigned char *sig;     size_t sig_len;
} et_jwt_parts_t;

/* Checks the size (<= ET_JWT_MAX_LEN, first), then exactly 3 segments, then base64url of each,
 * decoding them into buf (at least len bytes). EINVAL with a message otherwise. */
int et_jwt_split(const char *token, size_t len, unsigned char *buf, et_jwt_parts_t *parts,
                 char *err, size_t errlen);

#endif
