/* SPDX-License-Identifier: MIT */
/* The multi engine: non-blocking transfers over one curl multi handle, driven by the sockets
 * libcurl asks for.
 *
 * - A pool of idle easy handles, each kept with its set-up (et_easy_state_t): a transfer of the
 *   same session takes one already configured for it and sets only its request.
 * - The socket table that CURLMOPT_SOCKETFUNCTION keeps (indexed by fd: O(1) per call), polled by
 *   et_multi_poll; et_multi_perform hands only the ready sockets to curl_multi_socket_action.
 * - Small reused slot numbers for the transfers in flight (an owner keeps per-slot arrays).
 * - Shards: past ET_MULTI_SHARD_LOAD transfers in flight, the next ones go to further CURLMs
 *   (at most ET_MULTI_SHARDS, made when first needed), each with its own connection cache. libcurl
 *   7.88 walks a host's cached connections on every transfer start and end; with a thousand
 *   connections in one cache those walks are cache misses that cost more than the rest of the
 *   transfer. One socket table and one poll serve every shard. A multi with max_connections
 *   keeps one CURLM (the bound is libcurl's, per CURLM).
 * - Fork detection: used in a child after fork(), a multi abandons the parent's handles and
 *   connections (never freed there) and starts afresh; the transfers in flight end cancelled.
 *
 * Pure core: no Lua header. The binding (l_multi.c, l_xfer.c) embeds et_multi_t and et_mxfer_t
 * in userdata and keeps the Lua side (in-flight and finished arrays, tags); spec/c/test_multi.c
 * drives the engine alone.
 * Ownership: the multi owns the CURLM, the pooled handles and its tables; an in-flight transfer
 * holds a pooled handle (given back as soon as it completes or is cancelled) and one reference
 * to its session's options. */
#ifndef ET_MULTI_H
#define ET_MULTI_H

#include <poll.h>
#include <sys/types.h>

#include "et_session.h"

#define ET_EMULTI (-4)    /* a curl_multi_* call failed: its code in the multi's mc */

#define ET_MULTI_POOL_MAX 1024  /* idle easy handles a multi keeps (each with its set-up) */
#define ET_MULTI_POOL_SCAN 16   /* pooled handles looked at for one already set up for a session */
#define ET_MULTI_SHARDS 4       /* CURLMs at most (see above) */
#define ET_MULTI_SHARD_LOAD 256 /* transfers in flight on one before the next one takes new ones */
/* et_multi_timeout with transfers in flight but neither a deadline nor a curl timer. */
#define ET_MULTI_IDLE_POLL 1.0
/* A body buffer kept once its body is handed over (et_mxfer_body_handed); bigger ones are freed. */
#define ET_MXFER_KEEP_BODY (16 * 1024)

typedef struct et_multi et_multi_t;

/* A transfer's states. TAKEN is its owner's (its result read and dropped). */
enum { ET_MX_NEW = 0, ET_MX_PENDING, ET_MX_DONE, ET_MX_CANCELLED, ET_MX_TAKEN };

typedef struct et_mxfer {
    et_xfer_t x;
    et_multi_t *m;              /* set while in flight only */
    struct et_mxfer *prev, *next;
    int state;
    int slot;                   /* 1.. while in flight; else 0 */
    int shard;                  /* the CURLM it is on, while in flight */
    et_http_opts_t *opts;       /* the session's options, held while they may be in use */
    double deadline;            /* monotonic seconds when its timeout fires; 0 none */
} et_mxfer_t;

typedef struct et_sock {
    curl_socket_t fd;
    int what;                   /* CURL_POLL_IN, _OUT, _INOUT */
    int shard;                  /* the CURLM whose socket it is */
} et_sock_t;

/* One CURLM of a multi: shard 0 is the multi's own (m->cm); the others are made when needed. */
typedef struct et_multi_shard {
    et_multi_t *m;              /* (CURLMOPT_SOCKETDATA: the socket callback finds both) */
    CURLM *cm;                  /* shards 1..: NULL until first needed; shard 0: unused (m->cm) */
    int index;
    int load;                   /* transfers in flight on it */
} et_multi_shard_t;

typedef struct et_pool_entry {
    CURL *e;
    et_easy_state_t st;
} et_pool_entry_t;

struct et_multi {
    CURLM *cm;                  /* NULL when closed */
    et_pool_entry_t *pool;
    int npool, poolcap;
    et_sock_t *socks;
    size_t nsocks, sockcap;
    size_t *fdpos;              /* fd -> its index in socks + 1 (0: not there) */
    size_t fdcap;
    struct pollfd *pfds;        /* the last poll's results, for the next perform */
    int *pshards;               /* the shard of each pfds entry */
    size_t npfds, pfdcap;
    int polled;                 /* pfds hold fresh results from et_multi_poll */
    int *free_slots;            /* in-flight slots free for reuse (a stack) */
    int nfree, freecap, nslots;
    et_mxfer_t *inflight;       /* doubly linked list of in-flight transfers */
    long max_connections;       /* CURLMOPT_MAX_TOTAL_CONNECTIONS; 0 no bound */
    et_multi_shard_t shards[ET_MULTI_SHARDS];
    int shard_load;             /* ET_MULTI_SHARD_LOAD (the C tests lower it) */
    unsigned long fork_gen;     /* the fork generation that opened it (et_fork.h) */
    CURLMcode mc;               /* the failed call's code (ET_EMULTI) */
};

/* Monotonic seconds. */
double et_mono_now(void);

/* Closed, nothing owned (et_multi_close is safe on it). */
void et_multi_init(et_multi_t *m);
/* Opens the CURLM: ET_OK or ET_EHANDLE. */
int et_multi_open(et_multi_t *m, long max_connections);
/* Cancels the transfers in flight (each ends ET_MX_CANCELLED, out of the multi) and frees the
 * handles and tables. 0 when already closed; 1 closed; 2 abandoned (made before a fork: nothing of
 * the parent's is freed). Idempotent. */
int et_multi_close(et_multi_t *m);
/* Fork detection: 0 in the process that opened it; 1 when this call found a fork and started a
 * fresh CURLM (the transfers that were in flight are ET_MX_CANCELLED, out of the multi: their
 * owner moves them to its finished list); ET_EHANDLE when no fresh CURLM could be made (closed). */
int et_multi_forked(et_multi_t *m);
/* Starts t (new, or recycled) with a handle from the pool, set up with the options o and the
 * request r. ET_OK: in flight (t->slot set; I/O starts at the next et_multi_perform); ET_ECURL:
 * t is ET_MX_DONE at once with the failure as its result; ET_ENOMEM; ET_EHANDLE (no easy handle);
 * ET_EMULTI (curl_multi_add_handle failed, m->mc). On an error t may hold a handle:
 * et_mxfer_close frees it. */
int et_multi_add(et_multi_t *m, et_mxfer_t *t, et_http_opts_t *o, const et_request_t *r);
/* Never blocks: the sockets found ready (by et_multi_poll, or a poll that does not wait) go to
 * curl with their events, then the timers run. ET_OK (*running set) or ET_EMULTI. */
int et_multi_perform(et_multi_t *m, int *running);
/* The next transfer that completed (its result final, its handle back in the pool, ET_MX_DONE);
 * *slot the slot it had. NULL when no more. */
et_mxfer_t *et_multi_done(et_multi_t *m, int *slot);
/* Waits up to ms for activity on the sockets curl asked for (without any yet, curl's own wait).
 * ET_OK (*numfds ready) or ET_EMULTI. */
int et_multi_poll(et_multi_t *m, int ms, int *numfds);
/* Seconds until et_multi_perform is due: the sooner of curl's timer and the earliest in-flight
 * deadline; ET_MULTI_IDLE_POLL with transfers in flight but neither; -1 when nothing is due. */
double et_multi_timeout(et_multi_t *m);
/* The transfers in flight. */
size_t et_multi_count(const et_multi_t *m);
/* The socket table: m->nsocks entries; entry i as fd and interest. */
void et_multi_socket(const et_multi_t *m, size_t i, int *fd, int *rd, int *wr);

void et_mxfer_init(et_mxfer_t *t);
/* Takes t out of its multi if in flight (its handle back to the pool), else nothing. */
void et_mxfer_detach(et_mxfer_t *t);
/* Detaches t and frees what it owns (its result too). */
void et_mxfer_close(et_mxfer_t *t);
/* Makes a finished transfer (done, cancelled or taken; out of any multi) ready for another
 * request: its result goes, its buffers stay. 0 (nothing changed) for any other. */
int et_mxfer_recycle(et_mxfer_t *t);
/* The body is its owner's copy now (a Lua string): a big C buffer goes at once (the copy is what
 * the owner's collector sees), a small one stays, emptied, for the transfer's next request. */
void et_mxfer_body_handed(et_mxfer_t *t);

#endif
