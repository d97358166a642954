/* SPDX-License-Identifier: MIT */
/* Percent-encoding: form values (Python quote_plus) and RFC 3986 path segments. */
#ifndef ET_URL_H
#define ET_URL_H

#include <stddef.h>

enum et_url_mode {
    ET_URL_FORM = 0,    /* space -> '+' (application/x-www-form-urlencoded, quote_plus) */
    ET_URL_PATH = 1     /* space -> "%20" (quote(s, safe='')) */
};

/* Length of the encoding of n bytes; A-Za-z0-9-._~ are kept, every other byte is %XX upper case. */
size_t et_url_encoded_len(const char *s, size_t n, int mode);
/* Writes exactly et_url_encoded_len(s, n, mode) characters to out; no NUL. */
void et_url_encode(const char *s, size_t n, int mode, char *out);

#endif
