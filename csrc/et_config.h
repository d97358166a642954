/* SPDX-License-Identifier: MIT */
/* Build-time configuration: library version checks and limits, in one place. */
#ifndef ET_CONFIG_H
#define ET_CONFIG_H

#include <curl/curlver.h>
#include <openssl/opensslv.h>

#define ET_CURL_VER_GE(a, b, c) (LIBCURL_VERSION_NUM >= (((a) << 16) | ((b) << 8) | (c)))
#define ET_OPENSSL_PREREQ(a, b) (OPENSSL_VERSION_NUMBER >= (((a) << 28) | ((b) << 20)))

#if !ET_OPENSSL_PREREQ(3, 0)
#error "eternaltwin needs OpenSSL 3.0 or later"
#endif
#if !ET_CURL_VER_GE(7, 74, 0)
#error "eternaltwin needs libcurl 7.74 or later"
#endif

/* Largest JWT (state) accepted before any decoding, in bytes. */
#ifndef ET_JWT_MAX_LEN
#define ET_JWT_MAX_LEN 8192
#endif

/* Default bound of a response body, in bytes (overridable per client). */
#ifndef ET_DEFAULT_MAX_BODY
#define ET_DEFAULT_MAX_BODY (16 * 1024 * 1024)
#endif

/* Deepest JSON nesting converted to or from Lua values. */
#ifndef ET_JSON_MAX_DEPTH
#define ET_JSON_MAX_DEPTH 128
#endif

/* Most values (scalars, arrays, objects and object keys, each counting one) and largest text a
 * JSON decode accepts: what a decode may cost in memory is bounded by them (cJSON and Lua take
 * about 100 bytes per value, plus the strings' bytes). */
#ifndef ET_JSON_MAX_ELEMENTS
#define ET_JSON_MAX_ELEMENTS 100000
#endif
#ifndef ET_JSON_MAX_BYTES
#define ET_JSON_MAX_BYTES (16 * 1024 * 1024)
#endif

#endif
