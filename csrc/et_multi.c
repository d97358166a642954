/* SPDX-License-Identifier: MIT */
/* The multi engine (see et_multi.h): handle pool, slots, socket table, poll, drive, fork. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "et_fork.h"
#include "et_multi.h"

double et_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The CURLM of shard k (NULL when not made, or the multi is closed). */
static CURLM *shard_cm(const et_multi_t *m, int k)
{
    return k == 0 ? m->cm : m->shards[k].cm;
}

/* ---- handle pool ---- */

/* An idle easy handle goes back to the pool with its set-up (its session's options stay set:
 * the next transfer of that session reuses them); the connection stays in the multi's cache
 * either way. Takes st in every case (moved into the pool, or freed with the handle). */
static void pool_put(et_multi_t *m, CURL *e, et_easy_state_t *st)
{
    if (!e) {
        et_easy_state_free(st);
        return;
    }
    if (m && m->cm && m->npool == m->poolcap && m->poolcap < ET_MULTI_POOL_MAX) {
        int cap = m->poolcap ? m->poolcap * 2 : 16;
        et_pool_entry_t *p = realloc(m->pool, (size_t)cap * sizeof *p);
        if (p) {
            m->pool = p;
            m->poolcap = cap;
        }
    }
    if (m && m->cm && m->npool < m->poolcap) {
        /* Nothing of the last transfer stays pointed at: its buffers and its session's header
         * list may be freed while the handle waits here. */
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, (char *)NULL);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)NULL);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)NULL);
        curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)NULL);
        if (st->headers) {
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
            st->headers = NULL;
        }
        m->pool[m->npool].e = e;
        m->pool[m->npool].st = *st;
        m->npool++;
        et_easy_state_init(st);
    } else {
        et_easy_state_free(st);
        curl_easy_cleanup(e);
    }
}

/* An idle handle, preferably one set up for these options (among the last few pooled); st
 * receives its set-up. NULL when none can be made. */
static CURL *pool_get(et_multi_t *m, unsigned long opts_id, et_easy_state_t *st)
{
    int i, lo = m->npool > ET_MULTI_POOL_SCAN ? m->npool - ET_MULTI_POOL_SCAN : 0;
    et_pool_entry_t tmp;
    if (m->npool == 0) {
        et_easy_state_init(st);
        return curl_easy_init();
    }
    for (i = m->npool - 1; i > lo && m->pool[i].st.opts_id != opts_id; i--)
        ;
    tmp = m->pool[i];
    m->pool[i] = m->pool[m->npool - 1];
    m->npool--;
    *st = tmp.st;
    return tmp.e;
}

/* ---- slots ---- */

/* In-flight slots: the last freed first, else the next new number, so the arrays stay dense. */
static int slot_get(et_multi_t *m)
{
    return m->nfree > 0 ? m->free_slots[--m->nfree] : ++m->nslots;
}

static void slot_put(et_multi_t *m, int slot)
{
    if (slot <= 0)
        return;
    if (m->nfree == m->freecap) {
        int cap = m->freecap ? m->freecap * 2 : 64;
        int *p = realloc(m->free_slots, (size_t)cap * sizeof *p);
        if (!p)
            return;                 /* the slot is lost: a new one is numbered instead */
        m->free_slots = p;
        m->freecap = cap;
    }
    m->free_slots[m->nfree++] = slot;
}

/* ---- transfers ---- */

void et_mxfer_init(et_mxfer_t *t)
{
    et_xfer_init(&t->x);
    t->m = NULL;
    t->prev = t->next = NULL;
    t->state = ET_MX_NEW;
    t->slot = 0;
    t->shard = 0;
    t->opts = NULL;
    t->deadline = 0;
}

static void xfer_unlink(et_mxfer_t *t)
{
    et_multi_t *m = t->m;
    if (!m)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        m->inflight = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->m = NULL;
}

void et_mxfer_detach(et_mxfer_t *t)
{
    et_multi_t *m = t->m;
    et_easy_state_t st;
    CURL *e;
    if (!m)
        return;
    e = et_xfer_detach_state(&t->x, &st);
    if (e && m->cm)
        curl_multi_remove_handle(shard_cm(m, t->shard), e);
    xfer_unlink(t);
    if (m->cm)
        slot_put(m, t->slot);
    if (m->shards[t->shard].load > 0)
        m->shards[t->shard].load--;
    t->slot = 0;
    t->shard = 0;
    pool_put(m, e, &st);                        /* (takes st, whatever becomes of e) */
    et_http_opts_unref(t->opts);
    t->opts = NULL;
}

void et_mxfer_close(et_mxfer_t *t)
{
    CURL *e;
    et_mxfer_detach(t);
    e = et_xfer_release(&t->x);     /* only a handle never added (failed add) is left here */
    if (e)
        curl_easy_cleanup(e);
    et_http_opts_unref(t->opts);
    t->opts = NULL;
}

int et_mxfer_recycle(et_mxfer_t *t)
{
    if (t->m || t->x.easy ||
        (t->state != ET_MX_DONE && t->state != ET_MX_CANCELLED && t->state != ET_MX_TAKEN))
        return 0;
    et_xfer_reset_result(&t->x);
    et_http_opts_unref(t->opts);
    t->opts = NULL;
    t->state = ET_MX_NEW;
    t->slot = t->shard = 0;
    t->deadline = 0;
    return 1;
}

void et_mxfer_body_handed(et_mxfer_t *t)
{
    if (t->x.body.cap > ET_MXFER_KEEP_BODY)
        et_buf_free(&t->x.body);
    else
        t->x.body.len = 0;
}

/* ---- sockets ---- */

/* Socket bookkeeping from CURLMOPT_SOCKETFUNCTION: a C table, found by fd in an index (a scan
 * would cost the number of open sockets, per call). */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    const et_multi_shard_t *sh = userp;
    et_multi_t *m = sh->m;
    size_t i;
    (void)easy;
    (void)socketp;
    if (s < 0)
        return 0;
    if ((size_t)s >= m->fdcap) {
        size_t cap = m->fdcap ? m->fdcap : 64;
        size_t *p;
        while (cap <= (size_t)s)
            cap *= 2;
        p = realloc(m->fdpos, cap * sizeof *p);
        if (!p)
            return 0;               /* the list misses one socket; curl goes on */
        memset(p + m->fdcap, 0, (cap - m->fdcap) * sizeof *p);
        m->fdpos = p;
        m->fdcap = cap;
    }
    i = m->fdpos[s] ? m->fdpos[s] - 1 : m->nsocks;
    if (what == CURL_POLL_REMOVE) {
        if (i < m->nsocks) {
            m->socks[i] = m->socks[--m->nsocks];
            if (i < m->nsocks)
                m->fdpos[m->socks[i].fd] = i + 1;
            m->fdpos[s] = 0;
        }
        return 0;
    }
    if (i == m->nsocks) {
        if (m->nsocks == m->sockcap) {
            size_t cap = m->sockcap ? m->sockcap * 2 : 16;
            et_sock_t *p = realloc(m->socks, cap * sizeof *p);
            if (!p)
                return 0;           /* the list misses one socket; curl goes on */
            m->socks = p;
            m->sockcap = cap;
        }
        m->nsocks++;
        m->fdpos[s] = i + 1;
    }
    m->socks[i].fd = s;
    m->socks[i].what = what;
    m->socks[i].shard = sh->index;
    return 0;
}

void et_multi_socket(const et_multi_t *m, size_t i, int *fd, int *rd, int *wr)
{
    int w = m->socks[i].what;
    *fd = (int)m->socks[i].fd;
    *rd = w == CURL_POLL_IN || w == CURL_POLL_INOUT;
    *wr = w == CURL_POLL_OUT || w == CURL_POLL_INOUT;
}

/* ---- the multi ---- */

void et_multi_init(et_multi_t *m)
{
    memset(m, 0, sizeof *m);
    m->fork_gen = et_fork_register();
    m->shard_load = ET_MULTI_SHARD_LOAD;
}

static void multi_config(et_multi_t *m, CURLM *cm, int k)
{
    m->shards[k].m = m;
    m->shards[k].index = k;
    curl_multi_setopt(cm, CURLMOPT_MAX_TOTAL_CONNECTIONS, m->max_connections);
    curl_multi_setopt(cm, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(cm, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(cm, CURLMOPT_SOCKETDATA, (void *)&m->shards[k]);
}

int et_multi_open(et_multi_t *m, long max_connections)
{
    et_heap_settle();
    m->max_connections = max_connections;
    m->cm = curl_multi_init();
    if (!m->cm)
        return ET_EHANDLE;
    multi_config(m, m->cm, 0);
    return ET_OK;
}

/* The shard a new transfer goes on: the first holding fewer than shard_load (made if need be),
 * else the least loaded; always 0 with max_connections (or when a CURLM cannot be made). */
static int shard_pick(et_multi_t *m)
{
    int k, best = 0;
    if (m->max_connections > 0)
        return 0;
    for (k = 0; k < ET_MULTI_SHARDS; k++) {
        if (m->shards[k].load < m->shard_load)
            break;
        if (m->shards[k].load < m->shards[best].load)
            best = k;
    }
    if (k == ET_MULTI_SHARDS)
        return best;
    if (k > 0 && !m->shards[k].cm) {
        CURLM *cm = curl_multi_init();
        if (!cm)
            return 0;
        multi_config(m, cm, k);
        m->shards[k].cm = cm;
    }
    return k;
}

size_t et_multi_count(const et_multi_t *m)
{
    size_t n = 0;
    const et_mxfer_t *t;
    for (t = m->inflight; t; t = t->next)
        n++;
    return n;
}

/* Frees the pool array and the socket, poll and slot tables (the handles are gone already). */
static void multi_free_tables(et_multi_t *m)
{
    free(m->socks);
    m->socks = NULL;
    m->nsocks = m->sockcap = 0;
    free(m->pool);
    m->pool = NULL;
    m->npool = m->poolcap = 0;
    free(m->fdpos);
    m->fdpos = NULL;
    m->fdcap = 0;
    free(m->pfds);
    m->pfds = NULL;
    free(m->pshards);
    m->pshards = NULL;
    m->npfds = m->pfdcap = 0;
    m->polled = 0;
    free(m->free_slots);
    m->free_slots = NULL;
    m->nfree = m->freecap = m->nslots = 0;
}

/* After fork() in the child: the parent's handles (pooled and in flight) are abandoned, never
 * used or freed here (freeing one could write on the parent's connections); the transfers in
 * flight are cancelled. Only our own memory beside them is released. */
static void multi_abandon(et_multi_t *m)
{
    int i;
    while (m->inflight) {
        et_mxfer_t *t = m->inflight;
        (void)et_xfer_detach(&t->x);            /* abandoned */
        xfer_unlink(t);
        t->slot = t->shard = 0;
        et_http_opts_unref(t->opts);
        t->opts = NULL;
        t->state = ET_MX_CANCELLED;
    }
    for (i = 0; i < m->npool; i++)
        et_easy_state_free(&m->pool[i].st);     /* (our URL objects; the handles are abandoned) */
    m->npool = 0;
    for (i = 0; i < ET_MULTI_SHARDS; i++) {
        if (i > 0)
            m->shards[i].cm = NULL;             /* (abandoned, as m->cm) */
        m->shards[i].load = 0;
    }
    m->nsocks = 0;
    if (m->fdpos)
        memset(m->fdpos, 0, m->fdcap * sizeof *m->fdpos);
    m->npfds = 0;
    m->polled = 0;
    m->nfree = m->nslots = 0;
}

int et_multi_close(et_multi_t *m)
{
    int i;
    if (!m->cm)
        return 0;
    if (m->fork_gen != et_fork_now()) {
        /* Made before a fork: the handles and connections are the parent's; abandon them. */
        multi_abandon(m);
        m->cm = NULL;
        multi_free_tables(m);
        return 2;
    }
    /* Every in-flight transfer learns that its multi is gone. */
    while (m->inflight) {
        et_mxfer_t *t = m->inflight;
        CURL *e = et_xfer_detach(&t->x);
        if (e) {
            curl_multi_remove_handle(shard_cm(m, t->shard), e);
            curl_easy_cleanup(e);
        }
        xfer_unlink(t);
        t->slot = t->shard = 0;
        et_http_opts_unref(t->opts);
        t->opts = NULL;
        t->state = ET_MX_CANCELLED;
    }
    for (i = 0; i < m->npool; i++) {
        et_easy_state_free(&m->pool[i].st);
        curl_easy_cleanup(m->pool[i].e);
    }
    m->npool = 0;
    for (i = 0; i < ET_MULTI_SHARDS; i++) {
        if (i > 0 && m->shards[i].cm)
            curl_multi_cleanup(m->shards[i].cm);
        m->shards[i].cm = NULL;
        m->shards[i].load = 0;
    }
    curl_multi_cleanup(m->cm);
    m->cm = NULL;
    multi_free_tables(m);
    return 1;
}

int et_multi_forked(et_multi_t *m)
{
    if (m->fork_gen == et_fork_now())
        return 0;
    m->fork_gen = et_fork_now();
    multi_abandon(m);
    m->cm = curl_multi_init();
    if (!m->cm)
        return ET_EHANDLE;
    multi_config(m, m->cm, 0);
    return 1;
}

int et_multi_add(et_multi_t *m, et_mxfer_t *t, et_http_opts_t *o, const et_request_t *r)
{
    et_easy_state_t st;
    CURL *e;
    CURLMcode mc;
    int rc, https, shard;

    e = pool_get(m, o->id, &st);
    if (!e)
        return ET_EHANDLE;
    et_xfer_adopt(&t->x, e, &st);               /* from here et_mxfer_close frees the handle */
    t->opts = et_http_opts_ref(o);
    https = strncmp(r->url, "https://", 8) == 0 || strncmp(r->url, "HTTPS://", 8) == 0;
    rc = et_xfer_configure(&t->x, e, o);
    t->x.same_url_elided = o->elide_url;
    if (rc == ET_OK) {
        t->x.no_redirects = r->no_redirects;
        rc = et_xfer_prepare(&t->x, r->method, r->url, r->headers, r->nheaders, r->body,
                             r->bodylen, r->fresh, https);
    }
    if (o->timeout_ms > 0)
        t->deadline = et_mono_now() + (double)o->timeout_ms / 1000.0;
    if (rc == ET_OK && curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t) != CURLE_OK)
        rc = et_xfer_fail(&t->x, ET_HTTP_TRANSPORT, "libcurl refused a request option") == ET_OK
             ? ET_ECURL : ET_ENOMEM;
    if (rc == ET_ENOMEM)
        return rc;
    if (rc == ET_ECURL) {
        /* Reported like any failed transfer: done at once. */
        e = et_xfer_detach_state(&t->x, &st);
        pool_put(m, e, &st);
        et_http_opts_unref(t->opts);
        t->opts = NULL;
        t->state = ET_MX_DONE;
        return ET_ECURL;
    }
    shard = shard_pick(m);
    mc = curl_multi_add_handle(shard_cm(m, shard), e);
    if (mc != CURLM_OK) {
        m->mc = mc;
        return ET_EMULTI;
    }
    t->shard = shard;
    m->shards[shard].load++;
    t->m = m;
    t->next = m->inflight;
    if (m->inflight)
        m->inflight->prev = t;
    m->inflight = t;
    t->state = ET_MX_PENDING;
    t->slot = slot_get(m);
    return ET_OK;
}

/* ---- poll and drive ---- */

/* Polls the sockets curl asked for (m->pfds, a copy: the socket callback edits m->socks) for
 * at most ms milliseconds; the number ready, or -1. */
static int multi_poll_socks(et_multi_t *m, int ms)
{
    size_t i, n = m->nsocks;
    int r;
    if (n > m->pfdcap) {
        size_t cap = m->pfdcap ? m->pfdcap : 16;
        struct pollfd *p;
        int *q;
        while (cap < n)
            cap *= 2;
        p = realloc(m->pfds, cap * sizeof *p);
        if (!p)
            return -1;
        m->pfds = p;
        q = realloc(m->pshards, cap * sizeof *q);
        if (!q)
            return -1;
        m->pshards = q;
        m->pfdcap = cap;
    }
    for (i = 0; i < n; i++) {
        int w = m->socks[i].what;
        m->pshards[i] = m->socks[i].shard;
        m->pfds[i].fd = m->socks[i].fd;
        m->pfds[i].events = (short)(((w & CURL_POLL_IN) ? POLLIN : 0) | ((w & CURL_POLL_OUT) ? POLLOUT : 0));
        m->pfds[i].revents = 0;
    }
    m->npfds = n;
    r = poll(m->pfds, (nfds_t)n, ms);
    if (r < 0)
        m->npfds = 0;
    return r;
}

int et_multi_poll(et_multi_t *m, int ms, int *numfds)
{
    *numfds = 0;
    if (m->nsocks == 0) {
        /* No socket yet: curl's own wait (it also knows a resolver still at work). */
        CURLMcode mc = curl_multi_poll(m->cm, NULL, 0, ms, numfds);
        if (mc != CURLM_OK) {
            m->mc = mc;
            return ET_EMULTI;
        }
    } else {
        *numfds = multi_poll_socks(m, ms);
        if (*numfds < 0)
            *numfds = 0;
        m->polled = 1;
    }
    return ET_OK;
}

/* The sockets found ready (by et_multi_poll, or a poll that does not wait) go to
 * curl_multi_socket_action with their events, then the timers run, which also starts transfers
 * added since the last call. Only the ready sockets cost anything, however many connections are
 * open. */
int et_multi_perform(et_multi_t *m, int *running)
{
    size_t i, n;
    int k, r = 0;
    CURLMcode mc = CURLM_OK;
    *running = 0;
    if (!m->polled && m->nsocks > 0)
        multi_poll_socks(m, 0);
    m->polled = 0;
    n = m->npfds;
    m->npfds = 0;
    for (i = 0; i < n && mc == CURLM_OK; i++) {
        short re = m->pfds[i].revents;
        int ev = 0;
        if (!re)
            continue;
        if (re & (POLLIN | POLLPRI | POLLHUP))
            ev |= CURL_CSELECT_IN;
        if (re & POLLOUT)
            ev |= CURL_CSELECT_OUT;
        if (re & (POLLERR | POLLNVAL))
            ev |= CURL_CSELECT_ERR;
        mc = curl_multi_socket_action(shard_cm(m, m->pshards[i]), m->pfds[i].fd, ev, &r);
    }
    for (k = 0; k < ET_MULTI_SHARDS && mc == CURLM_OK; k++) {
        CURLM *cm = shard_cm(m, k);
        if (cm) {
            mc = curl_multi_socket_action(cm, CURL_SOCKET_TIMEOUT, 0, &r);
            *running += r;
        }
    }
    if (mc != CURLM_OK) {
        m->mc = mc;
        return ET_EMULTI;
    }
    return ET_OK;
}

/* The next completed transfer of one CURLM, finished and detached; NULL when none. */
static et_mxfer_t *shard_done(CURLM *cm, int *slot)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(cm, &left)) != NULL) {
        CURL *e = msg->easy_handle;
        CURLcode cc = msg->data.result;
        char *priv = NULL;
        et_mxfer_t *t;
        if (msg->msg != CURLMSG_DONE)
            continue;
        if (curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv)
            continue;
        t = (et_mxfer_t *)(void *)priv;
        if (et_xfer_finish(&t->x, cc) != ET_OK && t->x.code == ET_HTTP_OK)
            t->x.code = ET_HTTP_TRANSPORT;
        *slot = t->slot;
        et_mxfer_detach(t);
        t->state = ET_MX_DONE;
        return t;
    }
    return NULL;
}

et_mxfer_t *et_multi_done(et_multi_t *m, int *slot)
{
    int k;
    for (k = 0; k < ET_MULTI_SHARDS; k++) {
        CURLM *cm = shard_cm(m, k);
        et_mxfer_t *t = cm ? shard_done(cm, slot) : NULL;
        if (t)
            return t;
    }
    return NULL;
}

double et_multi_timeout(et_multi_t *m)
{
    long ms;
    double t = -1, now = 0;
    const et_mxfer_t *x;
    int k;
    for (k = 0; k < ET_MULTI_SHARDS; k++) {
        CURLM *cm = shard_cm(m, k);
        ms = -1;
        if (cm && curl_multi_timeout(cm, &ms) == CURLM_OK && ms >= 0 && (t < 0 || (double)ms / 1000.0 < t))
            t = (double)ms / 1000.0;
    }
    if (m->inflight)
        now = et_mono_now();
    for (x = m->inflight; x; x = x->next) {
        if (x->deadline > 0) {
            double left = x->deadline - now;
            if (left < 0)
                left = 0;
            if (t < 0 || left < t)
                t = left;
        }
    }
    if (t < 0 && m->inflight)
        t = ET_MULTI_IDLE_POLL;
    return t;
}
