/* SPDX-License-Identifier: MIT */
/* C tests of the multi engine (et_multi.c) and the blocking session (et_session.c), with no Lua:
 * a server of our own (a child process on a loopback port, one grandchild per connection, with
 * canned answers: some slow, one that never answers, some that close) and the engine driven as
 * the poller drives it. Every wait is on an event (a transfer done, a connection accepted) with a
 * generous deadline; no check races the clock. */
#define _DEFAULT_SOURCE             /* MAP_ANONYMOUS (shared counters with the server) */
#include <arpa/inet.h>
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "et_multi.h"
#include "tap.h"

#define LIMIT 30.0              /* seconds any wait may take before the check fails */

/* ---------------------------------------------------------------- the server */

typedef struct counters {
    int accepts;                /* connections accepted so far */
    int requests;
} counters_t;

static counters_t *shm;         /* shared with the server processes */
static int port;
static pid_t server_pid;
static char base[40];

static int count(int *c)
{
    return __atomic_load_n(c, __ATOMIC_SEQ_CST);
}

static void pause_ms(long ms)
{
    struct timespec d = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            _exit(0);
        p += w;
        n -= (size_t)w;
    }
}

/* The end of a request head ("\r\n\r\n") in the n bytes at p, or NULL. */
static char *head_end(char *p, size_t n)
{
    size_t i;
    for (i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return p + i;
    return NULL;
}

static void respond(int fd, const char *body, size_t n, int close_after)
{
    char head[160];
    int hl = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %zu\r\n%s\r\n", n, close_after ? "Connection: close\r\n" : "");
    send_all(fd, head, (size_t)hl);
    send_all(fd, body, n);
}

/* One connection: requests in turn until the peer closes. Paths: /hello/N ("hello N"),
 * /slow/MS/N ("slow N" after MS ms), /hang (no answer; ends when the peer closes), /close/N
 * ("bye N", then the connection closes), /big/N (N bytes). */
static void serve_conn(int fd)
{
    static char buf[8192], body[256 * 1024];
    size_t len = 0;
    for (;;) {
        char *end, path[256];
        ssize_t r;
        long a, b;
        while (!(end = head_end(buf, len))) {
            if (len == sizeof buf)
                _exit(0);
            r = read(fd, buf + len, sizeof buf - len);
            if (r <= 0)
                _exit(0);
            len += (size_t)r;
        }
        __atomic_add_fetch(&shm->requests, 1, __ATOMIC_SEQ_CST);
        if (sscanf(buf, "GET %255s ", path) != 1)
            _exit(0);
        if (sscanf(path, "/hello/%ld", &a) == 1) {
            int n = snprintf(body, sizeof body, "hello %ld", a);
            respond(fd, body, (size_t)n, 0);
        } else if (sscanf(path, "/slow/%ld/%ld", &a, &b) == 2) {
            int n = snprintf(body, sizeof body, "slow %ld", b);
            pause_ms(a);
            respond(fd, body, (size_t)n, 0);
        } else if (strcmp(path, "/hang") == 0) {
            struct pollfd p = { fd, POLLIN, 0 };
            poll(&p, 1, 120000);            /* the peer closes (cancel, timeout), or 2 minutes */
            _exit(0);
        } else if (sscanf(path, "/close/%ld", &a) == 1) {
            int n = snprintf(body, sizeof body, "bye %ld", a);
            respond(fd, body, (size_t)n, 1);
            _exit(0);
        } else if (sscanf(path, "/big/%ld", &a) == 1 && a > 0 && (size_t)a <= sizeof body) {
            long i;
            for (i = 0; i < a; i++)
                body[i] = (char)('a' + i % 26);
            respond(fd, body, (size_t)a, 0);
        } else {
            _exit(0);
        }
        len -= (size_t)(end + 4 - buf);
        memmove(buf, end + 4, len);
    }
}

static void server_main(int lfd)
{
    signal(SIGCHLD, SIG_IGN);                   /* connection processes reap themselves */
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            _exit(1);
        }
        __atomic_add_fetch(&shm->accepts, 1, __ATOMIC_SEQ_CST);
        if (fork() == 0) {
            close(lfd);
            serve_conn(fd);
            _exit(0);
        }
        close(fd);
    }
}

/* Started first thing in main, before libcurl allocates anything (so the server processes carry
 * no heap of ours: valgrind has nothing to report when they end). 0 on success. */
static int start_server(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int lfd;
    shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED)
        return -1;
    memset(shm, 0, sizeof *shm);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    port = ntohs(a.sin_port);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    fflush(stdout);
    server_pid = fork();
    if (server_pid < 0)
        return -1;
    if (server_pid == 0) {
        setpgid(0, 0);                          /* its connection processes go with it */
        server_main(lfd);
    }
    setpgid(server_pid, server_pid);
    close(lfd);
    return 0;
}

static void stop_server(void)
{
    kill(-server_pid, SIGKILL);
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    munmap(shm, sizeof *shm);
}

/* ---------------------------------------------------------------- driving the engine */

static et_http_opts_t *new_opts(long timeout_ms)
{
    et_http_opts_t *o = et_http_opts_new();
    if (!o)
        abort();
    o->timeout_ms = timeout_ms;
    if (et_http_opts_finish(o) != ET_OK)
        abort();
    return o;
}

static int add(et_multi_t *m, et_mxfer_t *t, et_http_opts_t *o, const char *path, char *url,
               size_t urlcap)
{
    et_request_t r;
    memset(&r, 0, sizeof r);
    r.method = ET_HTTP_GET;
    snprintf(url, urlcap, "%s%s", base, path);
    r.url = url;
    return et_multi_add(m, t, o, &r);
}

/* What a drive saw. */
typedef struct seen {
    size_t max_socks;           /* most sockets watched at once */
    int max_slot;               /* highest slot a finished transfer had */
    int polls_checked;          /* polls whose watched set was compared with the socket table */
    int mismatches;             /* polls that watched anything else, or missed an active socket */
} seen_t;

/* After a poll: what poll watched is the socket table, interest for interest, and every socket an
 * in-flight transfer is using is in it. */
static void check_sockets(et_multi_t *m, seen_t *s)
{
    size_t i, j;
    et_mxfer_t *t;
    if (m->nsocks > s->max_socks)
        s->max_socks = m->nsocks;
    if (m->nsocks == 0)
        return;
    s->polls_checked++;
    if (m->npfds != m->nsocks) {
        s->mismatches++;
        return;
    }
    for (i = 0; i < m->nsocks; i++) {
        int fd, rd, wr;
        short ev;
        et_multi_socket(m, i, &fd, &rd, &wr);
        ev = (short)((rd ? POLLIN : 0) | (wr ? POLLOUT : 0));
        if (m->pfds[i].fd != fd || m->pfds[i].events != ev)
            s->mismatches++;
    }
    for (t = m->inflight; t; t = t->next) {
        curl_socket_t fd = CURL_SOCKET_BAD;
        int found = 0;
        if (!t->x.easy || curl_easy_getinfo(t->x.easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
            fd == CURL_SOCKET_BAD)
            continue;
        for (j = 0; j < m->nsocks; j++)
            found |= m->socks[j].fd == fd;
        if (!found)
            s->mismatches++;
    }
}

static int all_over(et_mxfer_t **ts, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (ts[i]->state == ET_MX_PENDING)
            return 0;
    return 1;
}

/* Performs and polls until every transfer of ts is over, or (stop non-NULL) until *stop changes
 * from its value at the start; LIMIT seconds at most. 1 when that happened in time. */
static int drive(et_multi_t *m, et_mxfer_t **ts, size_t n, const int *stop, seen_t *s)
{
    double deadline = et_mono_now() + LIMIT;
    int start = stop ? count((int *)stop) : 0;
    while (et_mono_now() < deadline) {
        int running = 0, slot = 0, nfds = 0;
        double wait;
        et_mxfer_t *t;
        if (et_multi_perform(m, &running) != ET_OK)
            return 0;
        while ((t = et_multi_done(m, &slot)) != NULL)
            if (s && slot > s->max_slot)
                s->max_slot = slot;
        if (stop ? count((int *)stop) != start : all_over(ts, n))
            return 1;
        wait = et_multi_timeout(m);
        if (wait < 0 || wait > 0.05)
            wait = 0.05;                        /* (a stop condition is checked every 50 ms) */
        if (et_multi_poll(m, (int)(wait * 1000), &nfds) != ET_OK)
            return 0;
        if (s)
            check_sockets(m, s);
    }
    return 0;
}

static int body_is(const et_mxfer_t *t, const char *want)
{
    return t->state == ET_MX_DONE && t->x.code == ET_HTTP_OK && t->x.status == 200 &&
           t->x.body.len == strlen(want) && memcmp(t->x.body.data, want, t->x.body.len) == 0;
}

/* ---------------------------------------------------------------- tests */

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
/* Whether a block of n bytes is mapped on its own (glibc: mallinfo2's count of mapped blocks). */
static int mapped_alone(size_t n)
{
    struct mallinfo2 before = mallinfo2(), after;
    void *volatile p = malloc(n);
    after = mallinfo2();
    free(p);
    return after.hblks > before.hblks;
}
#endif

/* glibc: the first multi (or session) raises the heap's trim threshold once, through glibc's own
 * dynamic rule (et_xfer.c, et_heap_settle). The probe of 256 KiB leaves the threshold at 256 KiB
 * (the rule itself); a 512 KiB block would then be mapped alone, and comes from the heap once the
 * multi has opened. Skipped where the allocator is not glibc's own (a sanitizer's, valgrind's) or
 * where the threshold was raised before. Runs before any other multi opens. */
static void test_heap_settle(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    et_multi_t m;
    if (!mapped_alone(256 * 1024)) {
        printf("# skip heap: a 256 KiB block is not mapped alone here (another allocator, or a "
               "threshold already raised)\n");
        return;
    }
    et_multi_init(&m);
    ok(et_multi_open(&m, 0) == ET_OK, "heap: the first multi opens");
    ok(!mapped_alone(512 * 1024), "heap: after it, a 512 KiB block comes from the heap (the "
                                  "mapping and trim thresholds raised)");
    et_multi_close(&m);
#else
    printf("# skip heap: not glibc 2.33 or later\n");
#endif
}

/* Three rounds of four slow transfers at once: all complete with their bodies, the second and
 * third rounds take the first round's pooled handles and connections, slots stay small. */
static void test_rounds(void)
{
    et_multi_t m;
    et_http_opts_t *o = new_opts(20000);
    et_mxfer_t xs[4], *ts[4];
    char urls[4][128], path[48];
    CURL *pooled[4];
    seen_t s;
    int round, i, accepts0 = count(&shm->accepts), accepts1 = 0, all_ok = 1, reused = 1;

    memset(&s, 0, sizeof s);
    et_multi_init(&m);
    ok(et_multi_open(&m, 0) == ET_OK, "multi: opens");
    for (i = 0; i < 4; i++) {
        et_mxfer_init(&xs[i]);
        ts[i] = &xs[i];
    }
    for (round = 0; round < 3; round++) {
        for (i = 0; i < 4; i++) {
            if (round > 0 && !et_mxfer_recycle(&xs[i]))
                all_ok = 0;
            snprintf(path, sizeof path, "/slow/150/%d", round * 10 + i);
            if (add(&m, &xs[i], o, path, urls[i], sizeof urls[i]) != ET_OK)
                all_ok = 0;
            if (round > 0) {                    /* a handle of the first round's, from the pool */
                int j, found = 0;
                for (j = 0; j < 4; j++)
                    found |= xs[i].x.easy == pooled[j];
                reused &= found;
            }
        }
        if (round == 0)
            ok(et_multi_count(&m) == 4 && m.npool == 0, "multi: four transfers in flight");
        ok(drive(&m, ts, 4, NULL, &s), "multi: a round completes");
        for (i = 0; i < 4; i++) {
            char want[32];
            snprintf(want, sizeof want, "slow %d", round * 10 + i);
            all_ok &= body_is(&xs[i], want);
            all_ok &= xs[i].m == NULL && xs[i].x.easy == NULL && xs[i].slot == 0;
        }
        if (round == 0) {
            accepts1 = count(&shm->accepts) - accepts0;
            for (i = 0; i < 4; i++)
                pooled[i] = m.pool[i].e;
        }
        all_ok &= m.npool == 4 && et_multi_count(&m) == 0;
    }
    ok(all_ok, "multi: every transfer done with its own body, its handle back in the pool");
    ok(reused, "multi: later rounds take the pooled handles (no new easy handle)");
    ok(accepts1 == 4, "multi: four connections for four transfers at once");
    ok(count(&shm->accepts) - accepts0 == 4, "multi: later rounds reuse the connections (keep-alive)");
    ok(s.max_slot >= 1 && s.max_slot <= 4 && m.nslots <= 4, "multi: slots reused (at most 4)");
    ok(s.polls_checked > 0 && s.mismatches == 0,
       "multi: poll watches exactly the socket callback's table, with every active socket");
    ok(et_multi_timeout(&m) < 0 || et_multi_timeout(&m) <= ET_MULTI_IDLE_POLL,
       "multi: timeout with nothing in flight");
    for (i = 0; i < 4; i++)
        et_mxfer_close(&xs[i]);
    ok(et_multi_close(&m) == 1 && m.cm == NULL && m.pool == NULL, "multi: close frees the pool");
    ok(et_multi_close(&m) == 0, "multi: close is idempotent");
    et_http_opts_unref(o);
}

/* Connections the server closes, and a big body. */
static void test_close_and_big(void)
{
    et_multi_t m;
    et_http_opts_t *o = new_opts(20000);
    et_mxfer_t xs[3], *ts[3];
    char urls[3][128];
    int i, accepts0 = count(&shm->accepts), big_ok = 1;

    et_multi_init(&m);
    et_multi_open(&m, 0);
    for (i = 0; i < 3; i++) {
        et_mxfer_init(&xs[i]);
        ts[i] = &xs[i];
    }
    add(&m, &xs[0], o, "/close/1", urls[0], sizeof urls[0]);
    add(&m, &xs[1], o, "/close/2", urls[1], sizeof urls[1]);
    add(&m, &xs[2], o, "/big/200000", urls[2], sizeof urls[2]);
    ok(drive(&m, ts, 3, NULL, NULL), "close: the transfers complete");
    ok(body_is(&xs[0], "bye 1") && body_is(&xs[1], "bye 2"), "close: bodies before the close");
    big_ok = xs[2].x.code == ET_HTTP_OK && xs[2].x.body.len == 200000;
    for (i = 0; big_ok && i < 200000; i++)
        big_ok = xs[2].x.body.data[i] == (char)('a' + i % 26);
    ok(big_ok, "big: a 200000-byte body, byte for byte");
    /* A closed connection is not reused: the next transfer opens one. */
    et_mxfer_recycle(&xs[0]);
    add(&m, &xs[0], o, "/hello/3", urls[0], sizeof urls[0]);
    ok(drive(&m, ts, 1, NULL, NULL) && body_is(&xs[0], "hello 3"), "close: a later transfer works");
    ok(count(&shm->accepts) - accepts0 == 3 || count(&shm->accepts) - accepts0 == 4,
       "close: closed connections replaced, the open one reused or not");
    for (i = 0; i < 3; i++)
        et_mxfer_close(&xs[i]);
    et_multi_close(&m);
    et_http_opts_unref(o);
}

/* A transfer's own timeout: et_multi_timeout says when, and it ends as timeout. */
static void test_timeout(void)
{
    et_multi_t m;
    et_http_opts_t *o = new_opts(300);
    et_mxfer_t x, *ts[1] = { &x };
    char url[128];
    double t0, wait;

    et_multi_init(&m);
    et_multi_open(&m, 0);
    et_mxfer_init(&x);
    t0 = et_mono_now();
    add(&m, &x, o, "/hang", url, sizeof url);
    wait = et_multi_timeout(&m);
    ok(wait >= 0 && wait <= 0.3, "timeout: et_multi_timeout is due within the transfer's timeout");
    ok(drive(&m, ts, 1, NULL, NULL), "timeout: the transfer ends");
    ok(x.state == ET_MX_DONE && x.x.code == ET_HTTP_TIMEOUT, "timeout: it ends as timeout");
    ok(et_mono_now() - t0 >= 0.29, "timeout: not before the timeout");
    ok(x.x.message && strncmp(x.x.message, "GET http://127.0.0.1:", 21) == 0 &&
       strstr(x.x.message, "/hang: ") != NULL, "timeout: message names the request");
    et_mxfer_close(&x);
    et_multi_close(&m);
    et_http_opts_unref(o);
}

/* Cancelling a transfer in flight frees it: out of the multi, its handle back in the pool, its
 * slot free; the engine goes on, and the transfer can carry another request. */
static void test_cancel(void)
{
    et_multi_t m;
    et_http_opts_t *o = new_opts(0);
    et_mxfer_t x, *ts[1] = { &x };
    char url[128];

    et_multi_init(&m);
    et_multi_open(&m, 0);
    et_mxfer_init(&x);
    add(&m, &x, o, "/hang", url, sizeof url);
    ok(drive(&m, ts, 1, &shm->requests, NULL), "cancel: the server has the request");
    ok(x.state == ET_MX_PENDING && x.m == &m && x.slot == 1, "cancel: in flight");
    et_mxfer_detach(&x);
    x.state = ET_MX_CANCELLED;
    ok(x.m == NULL && x.x.easy == NULL && x.opts == NULL && et_multi_count(&m) == 0,
       "cancel: out of the multi, its handle and options given back");
    ok(m.npool == 1 && m.nfree == 1, "cancel: the handle pooled, the slot free");
    ok(et_mxfer_recycle(&x), "cancel: a cancelled transfer can be reused");
    add(&m, &x, o, "/hello/5", url, sizeof url);
    ok(x.slot == 1 && m.npool == 0, "cancel: the next transfer takes the slot and the handle");
    ok(drive(&m, ts, 1, NULL, NULL) && body_is(&x, "hello 5"), "cancel: the engine goes on");
    /* Cancelled while in flight, then closed (the transfer's __gc). */
    et_mxfer_recycle(&x);
    add(&m, &x, o, "/hang", url, sizeof url);
    et_mxfer_close(&x);
    ok(x.m == NULL && x.x.easy == NULL && et_multi_count(&m) == 0, "cancel: closed in flight");
    /* A multi closed with a transfer in flight: the transfer ends cancelled. */
    et_mxfer_init(&x);
    add(&m, &x, o, "/hang", url, sizeof url);
    ok(et_multi_close(&m) == 1 && x.state == ET_MX_CANCELLED && x.m == NULL && x.x.easy == NULL,
       "cancel: closing the multi cancels what is in flight");
    et_mxfer_close(&x);
    et_http_opts_unref(o);
}

/* max_connections: the transfers queue for the one connection. */
static void test_max_connections(void)
{
    et_multi_t m;
    et_http_opts_t *o = new_opts(20000);
    et_mxfer_t xs[3], *ts[3];
    char urls[3][128], path[32];
    seen_t s;
    int i, all_ok = 1, accepts0 = count(&shm->accepts);

    memset(&s, 0, sizeof s);
    et_multi_init(&m);
    et_multi_open(&m, 1);
    for (i = 0; i < 3; i++) {
        et_mxfer_init(&xs[i]);
        ts[i] = &xs[i];
        snprintf(path, sizeof path, "/slow/100/%d", i);
        add(&m, &xs[i], o, path, urls[i], sizeof urls[i]);
    }
    ok(drive(&m, ts, 3, NULL, &s), "max_connections: all complete");
    for (i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "slow %d", i);
        all_ok &= body_is(&xs[i], want);
    }
    ok(all_ok, "max_connections: each with its body");
    ok(s.max_socks == 1, "max_connections: one socket at a time");
    ok(count(&shm->accepts) - accepts0 == 1, "max_connections: one connection, taken in turn");
    for (i = 0; i < 3; i++)
        et_mxfer_close(&xs[i]);
    et_multi_close(&m);
    et_http_opts_unref(o);
}

/* Shards: past shard_load transfers in flight (lowered to 2 here; 256 by default), the next ones
 * go to further CURLMs. Six at once spread over three, each socket polled with its own CURLM's
 * events, every body right; later rounds reuse the connections each shard keeps; a multi with
 * max_connections keeps one CURLM (covered by test_max_connections: one socket at a time). */
static void test_shards(void)
{
    et_multi_t m;
    et_http_opts_t *o = new_opts(20000);
    et_mxfer_t xs[6], *ts[6];
    char urls[6][128], path[48];
    seen_t s;
    int round, i, all_ok = 1, spread = 1, accepts0 = count(&shm->accepts);

    memset(&s, 0, sizeof s);
    et_multi_init(&m);
    ok(et_multi_open(&m, 0) == ET_OK, "shards: opens");
    m.shard_load = 2;
    for (i = 0; i < 6; i++) {
        et_mxfer_init(&xs[i]);
        ts[i] = &xs[i];
    }
    for (round = 0; round < 2; round++) {
        int load[ET_MULTI_SHARDS] = { 0 };
        for (i = 0; i < 6; i++) {
            if (round > 0 && !et_mxfer_recycle(&xs[i]))
                all_ok = 0;
            snprintf(path, sizeof path, "/slow/100/%d", round * 10 + i);
            if (add(&m, &xs[i], o, path, urls[i], sizeof urls[i]) != ET_OK)
                all_ok = 0;
            load[xs[i].shard]++;
        }
        spread &= load[0] == 2 && load[1] == 2 && load[2] == 2 && load[3] == 0;
        spread &= m.shards[1].cm != NULL && m.shards[2].cm != NULL && m.shards[3].cm == NULL;
        spread &= m.shards[0].load == 2 && m.shards[1].load == 2 && m.shards[2].load == 2;
        ok(drive(&m, ts, 6, NULL, &s), "shards: a round completes");
        for (i = 0; i < 6; i++) {
            char want[32];
            snprintf(want, sizeof want, "slow %d", round * 10 + i);
            all_ok &= body_is(&xs[i], want) && xs[i].m == NULL && xs[i].shard == 0;
        }
        all_ok &= m.shards[0].load == 0 && m.shards[1].load == 0 && m.shards[2].load == 0;
    }
    ok(spread, "shards: two transfers on each of three CURLMs, the fourth never made");
    ok(all_ok, "shards: every transfer done with its own body, the loads back to zero");
    ok(s.polls_checked > 0 && s.mismatches == 0, "shards: one poll watches every shard's sockets");
    ok(count(&shm->accepts) - accepts0 == 6, "shards: each shard reuses its own connections");
    for (i = 0; i < 6; i++)
        et_mxfer_close(&xs[i]);
    ok(et_multi_close(&m) == 1 && m.cm == NULL && m.shards[1].cm == NULL && m.shards[2].cm == NULL,
       "shards: close frees every CURLM");
    et_http_opts_unref(o);
}

/* The blocking session: keep-alive across requests. */
static void test_session(et_session_t *s)
{
    et_request_t r;
    char url[128];
    memset(&r, 0, sizeof r);
    snprintf(url, sizeof url, "%s/hello/7", base);
    r.url = url;
    ok(et_session_request(s, &r) == ET_OK && s->x.code == ET_HTTP_OK && s->x.body.len == 7 &&
       memcmp(s->x.body.data, "hello 7", 7) == 0, "session: a blocking request");
    et_xfer_reset_result(&s->x);
    ok(et_session_request(s, &r) == ET_OK && s->requests == 2 && s->connections == 1,
       "session: the second request on the same connection");
    ok(et_session_local_port(s) > 0, "session: local port");
    et_xfer_reset_result(&s->x);
}

/* What the fork test's child abandons (the parent's handles): kept reachable here, so that
 * valgrind, which checks the child too when it ends, does not count them as lost. */
static void *volatile abandoned[16];    /* (volatile: the stores are not optimised away) */

/* Fork: the child sees a fresh engine (the parent's transfer in flight cancelled, its handles
 * abandoned) and a fresh session; the parent's stay as they were. The child reports through a
 * pipe, frees what is its own, and ends with _exit. */
static void test_fork(et_session_t *sess)
{
    enum { N = 7 };
    static const char *const names[N] = {
        "fork: the child's multi sees the fork",
        "fork: the transfer in flight is cancelled in the child, the parent's handles abandoned",
        "fork: the child's multi works (a new connection)",
        "fork: the child's session reopens and works on a new connection",
        "fork: a second look finds nothing to do",
        "fork: the parent's multi sees no fork",
        "fork: the parent's transfer is still in flight, and completes after the child",
    };
    et_multi_t m;
    et_http_opts_t *o = new_opts(20000);
    et_mxfer_t x, y, *ts[1] = { &x }, *ys[1] = { &y };
    char url[128], url2[128], res[N];
    int fds[2], i;
    pid_t child;

    memset(res, 0, sizeof res);
    et_multi_init(&m);
    et_multi_open(&m, 0);
    et_mxfer_init(&x);
    et_mxfer_init(&y);
    add(&m, &y, o, "/hello/1", url2, sizeof url2);
    drive(&m, ys, 1, NULL, NULL);               /* a pooled handle and a kept connection */
    et_mxfer_recycle(&y);
    add(&m, &x, o, "/slow/300/8", url, sizeof url);
    drive(&m, ts, 1, &shm->requests, NULL);     /* (the server has the slow request) */
    if (pipe(fds) != 0)
        abort();
    fflush(stdout);
    child = fork();
    if (child == 0) {
        int accepts0 = count(&shm->accepts);
        et_request_t r;
        size_t k = 0;
        close(fds[0]);
        abandoned[k++] = m.cm;
        abandoned[k++] = x.x.easy;
        abandoned[k++] = sess->x.easy;
        for (i = 0; i < m.npool && k < sizeof abandoned / sizeof abandoned[0]; i++)
            abandoned[k++] = m.pool[i].e;
        res[0] = et_multi_forked(&m) == 1;
        res[1] = x.state == ET_MX_CANCELLED && x.m == NULL && x.x.easy == NULL && m.npool == 0 &&
                 et_multi_count(&m) == 0;
        add(&m, &y, o, "/hello/9", url2, sizeof url2);
        res[2] = drive(&m, ys, 1, NULL, NULL) && body_is(&y, "hello 9") &&
                 count(&shm->accepts) == accepts0 + 1;
        memset(&r, 0, sizeof r);
        snprintf(url, sizeof url, "%s/hello/10", base);
        r.url = url;
        res[3] = et_session_request(sess, &r) == ET_OK && sess->x.code == ET_HTTP_OK &&
                 sess->x.body.len == 8 && count(&shm->accepts) == accepts0 + 2;
        res[4] = et_multi_forked(&m) == 0 && et_session_forked(sess) == ET_OK;
        i = write(fds[1], res, N) == N;
        et_mxfer_close(&x);
        et_mxfer_close(&y);
        et_multi_close(&m);
        et_http_opts_unref(o);
        et_session_free(sess);
        curl_global_cleanup();
        _exit(i ? 0 : 1);
    }
    close(fds[1]);
    res[5] = et_multi_forked(&m) == 0;
    for (i = 0; i < N - 2;) {
        ssize_t r = read(fds[0], res + i, (size_t)(N - 2 - i));
        if (r <= 0)
            break;
        i += (int)r;
    }
    close(fds[0]);
    waitpid(child, NULL, 0);
    res[6] = x.state == ET_MX_PENDING && drive(&m, ts, 1, NULL, NULL) && body_is(&x, "slow 8");
    for (i = 0; i < N; i++)
        ok(res[i], names[i]);
    et_mxfer_close(&x);
    et_mxfer_close(&y);
    et_multi_close(&m);
    et_http_opts_unref(o);
}

int main(void)
{
    et_session_t sess;
    if (start_server() != 0) {
        ok(0, "server: starts");
        return tap_done("multi");
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_heap_settle();
    test_rounds();
    test_close_and_big();
    test_timeout();
    test_cancel();
    test_max_connections();
    test_shards();
    et_session_init(&sess);
    ok(et_session_open(&sess, new_opts(20000)) == ET_OK, "session: opens");
    test_session(&sess);
    test_fork(&sess);
    et_session_free(&sess);
    stop_server();
    curl_global_cleanup();
    return tap_done("multi");
}
