/* SPDX-License-Identifier: MIT */
/* Names of our transport error codes and methods (see et_proto.h). */
#include "et_proto.h"

const char *et_http_code_name(et_http_code_t c)
{
    switch (c) {
    case ET_HTTP_OK:          return "ok";
    case ET_HTTP_TIMEOUT:     return "timeout";
    case ET_HTTP_CONNECT:     return "connect";
    case ET_HTTP_RESOLVE:     return "resolve";
    case ET_HTTP_TLS:         return "tls";
    case ET_HTTP_TOO_LARGE:   return "too_large";
    case ET_HTTP_RESET:       return "reset";
    case ET_HTTP_EMPTY_REPLY: return "empty_reply";
    case ET_HTTP_REDIRECTS:   return "redirects";
    case ET_HTTP_URL:         return "url";
    case ET_HTTP_CANCELLED:   return "cancelled";
    case ET_HTTP_INTERRUPTED: return "interrupted";
    case ET_HTTP_TRANSPORT:   break;
    }
    return "transport";
}

const char *et_http_method_name(et_http_method_t m)
{
    static const char *const names[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS" };
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "GET";
}
