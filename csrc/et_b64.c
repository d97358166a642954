/* SPDX-License-Identifier: MIT */
/* Base64 encoding and strict decoding, url-safe (JWT) and standard (OpenSSH key blobs). */
#include <stdint.h>

#include "et_b64.h"

static const char url_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Reverse tables: 0..63 for alphabet characters, 64 for anything else. Built at compile time
 * from the character values so there is no mutable global state. */
#define B64_X 64
#define B64_ROW(c) \
    ((c) >= 'A' && (c) <= 'Z' ? (c) - 'A' : (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26 : \
     (c) >= '0' && (c) <= '9' ? (c) - '0' + 52 : -1)
#define URL_V(c) (B64_ROW(c) >= 0 ? B64_ROW(c) : (c) == '-' ? 62 : (c) == '_' ? 63 : B64_X)
#define STD_V(c) (B64_ROW(c) >= 0 ? B64_ROW(c) : (c) == '+' ? 62 : (c) == '/' ? 63 : B64_X)
#define R4(m, c) m(c), m((c) + 1), m((c) + 2), m((c) + 3)
#define R16(m, c) R4(m, c), R4(m, (c) + 4), R4(m, (c) + 8), R4(m, (c) + 12)
#define R64(m, c) R16(m, c), R16(m, (c) + 16), R16(m, (c) + 32), R16(m, (c) + 48)
#define R256(m) R64(m, 0), R64(m, 64), R64(m, 128), R64(m, 192)

static const uint8_t url_rev[256] = { R256(URL_V) };
static const uint8_t std_rev[256] = { R256(STD_V) };

size_t et_b64url_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

void et_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = url_alphabet[v >> 18];
        *out++ = url_alphabet[(v >> 12) & 63];
        *out++ = url_alphabet[(v >> 6) & 63];
        *out++ = url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = url_alphabet[v >> 18];
        *out++ = url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = url_alphabet[v >> 18];
        *out++ = url_alphabet[(v >> 12) & 63];
        *out++ = url_alphabet[(v >> 6) & 63];
    }
}

size_t et_b64_decoded_max(size_t n)
{
    return n / 4 * 3 + (n % 4 == 0 ? 0 : 2);
}

/* Decodes n characters (no padding left in them) with the reverse table rev. */
static int decode_body(const uint8_t *rev, const char *in, size_t n, unsigned char *out,
                       size_t *outlen, size_t *errpos)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0, o = 0;
    if (n % 4 == 1)
        return ET_B64_ELENGTH;
    for (; i + 4 <= n; i += 4) {
        uint8_t a = rev[s[i]], b = rev[s[i + 1]], c = rev[s[i + 2]], d = rev[s[i + 3]];
        if ((a | b | c | d) & B64_X) {
            size_t k = i;
            while (rev[s[k]] != B64_X)
                k++;
            *errpos = k;
            return s[k] == '=' ? ET_B64_EPADDING : ET_B64_EBADCHAR;
        }
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    if (i < n) {
        size_t rest = n - i, k;
        uint32_t v = 0;
        for (k = 0; k < rest; k++) {
            uint8_t x = rev[s[i + k]];
            if (x == B64_X) {
                *errpos = i + k;
                return s[i + k] == '=' ? ET_B64_EPADDING : ET_B64_EBADCHAR;
            }
            v |= (uint32_t)x << (18 - 6 * k);
        }
        /* 2 characters carry 1 byte (4 spare bits), 3 carry 2 bytes (2 spare bits). */
        if ((rest == 2 && (v & 0xffff)) || (rest == 3 && (v & 0xff)))
            return ET_B64_ETRAIL;
        out[o++] = (unsigned char)(v >> 16);
        if (rest == 3)
            out[o++] = (unsigned char)(v >> 8);
    }
    *outlen = o;
    return ET_B64_OK;
}

int et_b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outlen, size_t *errpos)
{
    return decode_body(url_rev, in, n, out, outlen, errpos);
}

int et_b64std_decode(const char *in, size_t n, unsigned char *out, size_t *outlen, size_t *errpos)
{
    size_t pad = 0;
    if (n % 4 != 0)
        return ET_B64_ELENGTH;
    while (pad < 2 && pad < n && in[n - 1 - pad] == '=')
        pad++;
    if (pad == 2 && n >= 4 && in[n - 3] == '=') {
        *errpos = n - 3;
        return ET_B64_EPADDING;
    }
    return decode_body(std_rev, in, n - pad, out, outlen, errpos);
}

const char *et_b64_strerror(int status)
{
    switch (status) {
    case ET_B64_OK: return "ok";
    case ET_B64_EBADCHAR: return "bad character";
    case ET_B64_EPADDING: return "padding not accepted";
    case ET_B64_ELENGTH: return "impossible length";
    case ET_B64_ETRAIL: return "non-zero trailing bits";
    default: return "error";
    }
}
