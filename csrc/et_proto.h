/* SPDX-License-Identifier: MIT */
/* The HTTP vocabulary both transports share: our transport error codes and the methods, with
 * their names. Pure core: no Lua header, no libcurl header (the cosocket framer uses it). */
#ifndef ET_PROTO_H
#define ET_PROTO_H

/* Our transport error codes (README: HTTP). */
typedef enum et_http_code {
    ET_HTTP_OK = 0,
    ET_HTTP_TIMEOUT,
    ET_HTTP_CONNECT,
    ET_HTTP_RESOLVE,
    ET_HTTP_TLS,
    ET_HTTP_TOO_LARGE,
    ET_HTTP_RESET,
    ET_HTTP_EMPTY_REPLY,
    ET_HTTP_REDIRECTS,
    ET_HTTP_URL,
    ET_HTTP_TRANSPORT,
    ET_HTTP_CANCELLED,     /* never from curl: a cancelled or orphaned Transfer */
    ET_HTTP_INTERRUPTED    /* SIGINT (Ctrl-C) during et_xfer_perform_blocking */
} et_http_code_t;

/* Methods we send; HEAD uses CURLOPT_NOBODY, the others a custom request where needed. */
typedef enum et_http_method {
    ET_HTTP_GET = 0, ET_HTTP_POST, ET_HTTP_PUT, ET_HTTP_DELETE, ET_HTTP_PATCH, ET_HTTP_HEAD,
    ET_HTTP_OPTIONS
} et_http_method_t;

const char *et_http_code_name(et_http_code_t c);
const char *et_http_method_name(et_http_method_t m);

#endif
