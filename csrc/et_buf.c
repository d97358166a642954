/* SPDX-License-Identifier: MIT */
/* Growable byte buffer (see et_buf.h). */
#include <stdlib.h>
#include <string.h>

#include "et_buf.h"

void et_buf_free(et_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int et_buf_reserve(et_buf_t *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > (size_t)-1 - b->len - 1)
        return ET_ENOMEM;
    need = b->len + extra + 1;                  /* room for a NUL, handy for strings */
    if (need <= b->cap)
        return ET_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (!p)
        return ET_ENOMEM;
    b->data = p;
    b->cap = cap;
    return ET_OK;
}
