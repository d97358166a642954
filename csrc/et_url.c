/* SPDX-License-Identifier: MIT */
/* Percent-encoding of form values and path segments, byte for byte as Python's urllib.parse. */
#include "et_url.h"

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

size_t et_url_encoded_len(const char *s, size_t n, int mode)
{
    size_t len = 0, i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        len += unreserved(c) || (c == ' ' && mode == ET_URL_FORM) ? 1 : 3;
    }
    return len;
}

void et_url_encode(const char *s, size_t n, int mode, char *out)
{
    static const char hex[16] = "0123456789ABCDEF";
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            *out++ = (char)c;
        } else if (c == ' ' && mode == ET_URL_FORM) {
            *out++ = '+';
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
}
