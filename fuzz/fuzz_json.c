/* SPDX-License-Identifier: MIT */
/* libFuzzer: JSON text to Lua values (the strict pre-pass, cJSON, the conversion) and back:
 * whatever decodes must encode again (unless it holds an infinity), and that text must decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_lua();
    char err[160], *text, *copy;
    size_t len;

    /* An exact-size copy that is not NUL-terminated: the parser must stay within len bytes. */
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    if (!l_json_push(L, copy, size, err, sizeof err)) {
        free(copy);
        if (strncmp(err, "json: ", 6) != 0)
            abort();
        lua_settop(L, 1);
        return 0;
    }
    free(copy);
    text = l_json_encode(L, -1, &len, err, sizeof err);
    if (!text) {
        if (!strstr(err, "NaN or infinity"))
            abort();
    } else {
        if (!l_json_push(L, text, len, err, sizeof err))
            abort();
        free(text);
    }
    lua_settop(L, 1);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
