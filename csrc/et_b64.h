/* SPDX-License-Identifier: MIT */
/* Base64 (RFC 4648): url-safe alphabet without padding (JWT), and the standard one (OpenSSH). */
#ifndef ET_B64_H
#define ET_B64_H

#include <stddef.h>

enum et_b64_status {
    ET_B64_OK = 0,
    ET_B64_EBADCHAR,    /* a byte outside the alphabet; *errpos is its 0-based offset */
    ET_B64_EPADDING,    /* '=' where none is allowed, or padding of the wrong shape */
    ET_B64_ELENGTH,     /* a length no encoding produces (n % 4 == 1) */
    ET_B64_ETRAIL       /* non-zero unused bits in the last character (non-canonical) */
};

/* Characters et_b64url_encode writes for n bytes (no padding). */
size_t et_b64url_encoded_len(size_t n);
/* Writes exactly et_b64url_encoded_len(n) characters to out; no NUL. */
void et_b64url_encode(const unsigned char *in, size_t n, char *out);

/* Upper bound of the decoded size of n characters. */
size_t et_b64_decoded_max(size_t n);
/* Strict base64url without padding. out holds et_b64_decoded_max(n) bytes (may alias nothing
 * in in). Returns an et_b64_status; *outlen is set on success, *errpos on EBADCHAR/EPADDING. */
int et_b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen, size_t *errpos);
/* Strict standard base64 with mandatory padding (length a multiple of 4). */
int et_b64std_decode(const char *in, size_t n, unsigned char *out, size_t *outlen, size_t *errpos);

/* Short lower-case text of a status ("bad character", ...). */
const char *et_b64_strerror(int status);

#endif
