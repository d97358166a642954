/* SPDX-License-Identifier: MIT */
/* Random bytes through a wipe-on-fork pool (see et_rand.h). */
#define _DEFAULT_SOURCE                         /* madvise, MADV_WIPEONFORK */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "et_rand.h"

/* The mapped page: the count first, so that a wiped page (a fork's child) reads as empty. */
typedef struct page {
    size_t avail;                               /* unused bytes: buf[0..avail) */
    unsigned char buf[];
} page_t;

struct et_rand_pool {
    page_t *page;
    size_t map_len;                             /* the mapping's length */
};

/* Bytes the page's buf holds when full. */
static size_t cap_of(const et_rand_pool_t *p)
{
    return p->map_len - offsetof(page_t, buf);
}

et_rand_pool_t *et_rand_pool_new(void)
{
#ifdef MADV_WIPEONFORK
    long ps = sysconf(_SC_PAGESIZE);
    size_t len = ps > 0 ? (size_t)ps : 4096;
    et_rand_pool_t *p;
    void *m;
    if (len < 1024)
        len = 4096;
    p = malloc(sizeof *p);
    if (!p)
        return NULL;
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        free(p);
        return NULL;
    }
    if (madvise(m, len, MADV_WIPEONFORK) != 0) {
        munmap(m, len);                         /* no safe pool here: RAND_bytes for every draw */
        free(p);
        return NULL;
    }
    p->page = m;
    p->map_len = len;
    p->page->avail = 0;
    return p;
#else
    return NULL;
#endif
}

void et_rand_pool_free(et_rand_pool_t *p)
{
    if (!p)
        return;
    OPENSSL_cleanse(p->page, p->map_len);
    munmap(p->page, p->map_len);
    free(p);
}

size_t et_rand_pool_avail(const et_rand_pool_t *p)
{
    return p ? p->page->avail : 0;
}

int et_rand_bytes(et_rand_pool_t *p, unsigned char *out, size_t n)
{
    page_t *pg;
    size_t cap;
    if (n == 0)
        return 1;
    if (n > INT_MAX)
        return 0;
    cap = p ? cap_of(p) : 0;
    if (n > cap / 4)                            /* (no pool: cap 0) */
        return RAND_bytes(out, (int)n) == 1;
    pg = p->page;
    if (pg->avail < n) {
        /* What is left is dropped, not mixed in: every byte handed out is one RAND_bytes gave. */
        OPENSSL_cleanse(pg->buf, pg->avail);
        pg->avail = 0;
        if (RAND_bytes(pg->buf, (int)cap) != 1) {
            OPENSSL_cleanse(pg->buf, cap);
            return 0;
        }
        pg->avail = cap;
    }
    pg->avail -= n;                             /* taken from the end; wiped from the page */
    memcpy(out, pg->buf + pg->avail, n);
    OPENSSL_cleanse(pg->buf + pg->avail, n);
    return 1;
}
