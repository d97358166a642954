/* SPDX-License-Identifier: MIT */
/* Random bytes from OpenSSL's CSPRNG, drawn a page at a time.
 *
 * Every RAND_bytes call makes a getpid(2) system call (OpenSSL 3's fork check), takes the DRBG's
 * locks and runs a generate: 40% of an HS256 state round trip on a VM. A pool takes one page of
 * CSPRNG output at once and hands it out in pieces: one RAND_bytes per page instead of one per
 * nonce.
 *
 * Safety:
 * - Fork: the page is marked MADV_WIPEONFORK, so the kernel gives a child of any fork (fork(),
 *   a raw clone without CLONE_VM, whatever ran or skipped the atfork handlers) a zeroed page, whose
 *   count reads 0: the child draws fresh bytes, never its parent's. Without MADV_WIPEONFORK (Linux
 *   before 4.14, or a kernel that refuses it) there is no pool: et_rand_pool_new returns NULL and
 *   every draw goes to RAND_bytes.
 * - Bytes handed out are wiped from the page at once: the page only holds bytes not yet used.
 * - One pool per Lua state (l_util.c), and a Lua state runs on one thread at a time: no lock.
 * - Large draws (more than a quarter of the page) go straight to RAND_bytes.
 * AES-GCM nonces (et_aead.c) do not use a pool: they come from RAND_bytes directly.
 *
 * Pure core: no Lua header. */
#ifndef ET_RAND_H
#define ET_RAND_H

#include <stddef.h>

typedef struct et_rand_pool et_rand_pool_t;

/* A new, empty pool (one page, mapped and marked wipe-on-fork), or NULL when the system cannot
 * give one (no memory, no MADV_WIPEONFORK): pass NULL on, draws then use RAND_bytes. */
et_rand_pool_t *et_rand_pool_new(void);

/* Wipes and unmaps the pool (NULL: nothing). */
void et_rand_pool_free(et_rand_pool_t *p);

/* Fills out with n bytes from the CSPRNG, through the pool when there is one: 1, or 0 when
 * RAND_bytes failed (OpenSSL's error queue is left to the caller). */
int et_rand_bytes(et_rand_pool_t *p, unsigned char *out, size_t n);

/* Bytes the pool can hand out before its next RAND_bytes (0 for NULL): for tests. */
size_t et_rand_pool_avail(const et_rand_pool_t *p);

#endif
