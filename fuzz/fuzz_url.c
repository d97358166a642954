/* SPDX-License-Identifier: MIT */
/* libFuzzer: form and path percent-encoding (through the binding too: form_encode, path_encode),
 * and et_http_describe (the URL shown in messages: no query, fragment or userinfo). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "et_xfer.h"
#include "et_url.h"
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexdig(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* Decodes what et_url_encode wrote and compares with the input. */
static void check_encoding(const char *s, size_t n, int mode)
{
    size_t len = et_url_encoded_len(s, n, mode), i, o = 0;
    char *out = malloc(len + 1);
    et_url_encode(s, n, mode, out);
    for (i = 0; i < len; i++) {
        char c = out[i], d;
        if (c == '%') {
            if (i + 2 >= len)
                abort();
            if (!hexdig(out[i + 1]) || !hexdig(out[i + 2]))
                abort();
            d = (char)(((out[i + 1] <= '9' ? out[i + 1] - '0' : out[i + 1] - 'A' + 10) << 4) |
                       (out[i + 2] <= '9' ? out[i + 2] - '0' : out[i + 2] - 'A' + 10));
            i += 2;
        } else if (c == '+') {
            if (mode != ET_URL_FORM)
                abort();
            d = ' ';
        } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.' || c == '_' || c == '~') {
            d = c;
        } else {
            abort();
        }
        if (o >= n || s[o++] != d)
            abort();
    }
    if (o != n)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    lua_State *L = fuzz_lua();
    char *url, *shown;
    const char *p, *auth, *slash;

    check_encoding(s, size, ET_URL_FORM);
    check_encoding(s, size, ET_URL_PATH);

    lua_getfield(L, 1, "form_encode");
    lua_pushlstring(L, s, size);
    fuzz_check(L, lua_pcall(L, 1, 1, 0), "form_encode");
    lua_getfield(L, 1, "path_encode");
    lua_pushlstring(L, s, size);
    fuzz_check(L, lua_pcall(L, 1, 1, 0), "path_encode");
    lua_settop(L, 1);

    /* A NUL-terminated URL: what is shown has no query, fragment, or userinfo. */
    url = malloc(size + 1);
    memcpy(url, data, size);
    url[size] = '\0';
    shown = et_http_describe(ET_HTTP_GET, url);
    if (!shown)
        abort();
    if (strncmp(shown, "GET ", 4) != 0 || strpbrk(shown + 4, "?#"))
        abort();
    p = shown + 4;
    auth = strstr(p, "://");
    if (auth) {
        slash = strchr(auth + 3, '/');
        for (const char *q = auth + 3; *q && q != slash; q++)
            if (*q == '@')
                abort();
    }
    free(shown);
    free(url);
    return 0;
}
