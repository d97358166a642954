/* SPDX-License-Identifier: MIT */
/* A blocking session: one easy handle kept across requests (keep-alive), its transfer state, the
 * counters of session:stats(), and fork detection.
 *
 * Pure core: no Lua header. The binding (l_session.c) keeps an et_session_t in a userdata and
 * builds the Lua results from s->x once et_session_request returns.
 * Ownership: the session owns its easy handle and the multi handle it runs in (neither freed in a
 * process other than the one that made them: see et_session_forked) and one reference to its
 * options. */
#ifndef ET_SESSION_H
#define ET_SESSION_H

#include <sys/types.h>

#include "et_xfer.h"

#define ET_EHANDLE (-3)   /* libcurl could not make a handle (curl_easy_init, curl_multi_init) */

typedef struct et_session {
    et_xfer_t x;
    CURLM *multi;               /* the handle's transfers run here; it keeps their connections */
    et_http_opts_t *opts;       /* shared with the session's transfers in flight (refs) */
    unsigned long fork_gen;     /* the fork generation that opened the handle (et_fork.h) */
    long long requests, connections;
} et_session_t;

/* Nothing owned, nothing open. */
void et_session_init(et_session_t *s);
/* Takes o (one reference, finished options), makes the handle and sets it up. ET_OK, ET_EHANDLE,
 * ET_ENOMEM or ET_ECURL (message in s->x.message). */
int et_session_open(et_session_t *s, et_http_opts_t *o);
/* Frees the handles (abandoned, not freed, in a forked child) and the options reference. */
void et_session_free(et_session_t *s);
/* In a process other than the one that opened it (a child after fork()), the session abandons the
 * parent's handles (freeing them could write a TLS close_notify on the parent's connection: both
 * processes would share it) and opens a fresh one. ET_OK (nothing to do, or reopened), else as
 * et_session_open. */
int et_session_forked(et_session_t *s);
/* One blocking request (fork checked first). ET_OK: the result, success or failure, is in s->x
 * (code, status, headers, body, effective_url, message); else ET_ENOMEM, or an error of
 * et_session_forked. */
int et_session_request(et_session_t *s, const et_request_t *r);
/* The local port of the last request's connection, 0 if none. */
long et_session_local_port(const et_session_t *s);

#endif
