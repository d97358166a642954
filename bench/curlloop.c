/* SPDX-License-Identifier: MIT */
/* libcurl alone, as a careful C program uses it: the floor of any libcurl-based client, to tell
 * what our layers cost from what libcurl itself costs next to wrk.
 *
 *   bench/curlloop blocking URL SECONDS      -> `round 1 REQ/S`: one easy handle, keep-alive
 *   bench/curlloop multi URL CONC SECONDS    -> `round 1 REQ/S`: CONC easy handles in one multi
 *   bench/curlloop shards URL CONC K SECONDS -> `round 1 REQ/S`: the same over K multis (CONC/K
 *                                               handles each), one poll(2) over every multi's
 *                                               sockets (CURLMOPT_SOCKETFUNCTION): the technique
 *                                               the poller uses past 256 in flight, in C
 *   bench/curlloop count URL N               -> N blocking requests (callgrind: instructions)
 *   bench/curlloop mcount URL CONC N         -> N requests, CONC at a time in one multi
 *   bench/curlloop big URL CONC ROUNDS       -> `base KiB` and `peak KiB` (VmRSS before, VmHWM
 *                                               after): CONC transfers in flight, each body kept
 *                                               in memory until its transfer completes
 *
 * Bodies go to a callback that keeps their length only; each handle is set up once and re-used
 * (curl_easy_perform again, or removed and added back to the multi). */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    *(size_t *)ud += size * n;
    return size * n;
}

static CURL *make(const char *url, size_t *bytes)
{
    CURL *e = curl_easy_init();
    if (!e) {
        fprintf(stderr, "curl_easy_init failed\n");
        exit(1);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)bytes);
    return e;
}

static void check(CURL *e, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
        fprintf(stderr, "request failed: %s (status %ld)\n", curl_easy_strerror(rc), status);
        exit(1);
    }
}

static void count(const char *url, long n)
{
    size_t bytes = 0;
    long i;
    CURL *e = make(url, &bytes);
    for (i = 0; i < 100 + n; i++)
        check(e, curl_easy_perform(e));
    printf("done %ld\n", n);
    curl_easy_cleanup(e);
}

/* Runs total requests, conc at a time, through one multi (handles reused: removed, added back). */
static void multi_count(CURLM *m, CURL **es, int conc, long total)
{
    long started = 0;
    int running = 1, i, left;
    for (i = 0; i < conc && started < total; i++, started++)
        curl_multi_add_handle(m, es[i]);
    while (running) {
        CURLMsg *msg;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            check(e, msg->data.result);
            curl_multi_remove_handle(m, e);
            if (started < total) {
                started++;
                curl_multi_add_handle(m, e);
                running++;
            }
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
}

static void mcount(const char *url, int conc, long n)
{
    CURLM *m = curl_multi_init();
    CURL **es = calloc((size_t)conc, sizeof *es);
    size_t bytes = 0;
    int i;
    if (!m || !es)
        exit(1);
    for (i = 0; i < conc; i++)
        es[i] = make(url, &bytes);
    multi_count(m, es, conc, 2L * conc);        /* warm-up: the connections */
    multi_count(m, es, conc, n);
    printf("done %ld\n", n);
    for (i = 0; i < conc; i++)
        curl_easy_cleanup(es[i]);
    free(es);
    curl_multi_cleanup(m);
}

static long status_kib(const char *field)
{
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atol(line + n + 1);
    fclose(f);
    return v;
}

/* A body kept in memory, as a careful program keeps it: one buffer sized from Content-Length at
 * the first bytes (grown by doubling without one), freed when the transfer completes. */
typedef struct body {
    char *data;
    size_t len, cap;
    CURL *e;
} body;

static size_t keep(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t k = size * n;
    if (b->len == 0 && b->cap == 0) {
        curl_off_t cl = -1;
        if (curl_easy_getinfo(b->e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl > 0 &&
            (b->data = malloc((size_t)cl)) != NULL)
            b->cap = (size_t)cl;
    }
    if (b->len + k > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        char *d;
        while (cap < b->len + k)
            cap *= 2;
        d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, k);
    b->len += k;
    return k;
}

static void big(const char *url, int conc, int rounds)
{
    CURLM *m = curl_multi_init();
    CURL **es = calloc((size_t)conc, sizeof *es);
    body *bs = calloc((size_t)conc, sizeof *bs);
    int *left_rounds = calloc((size_t)conc, sizeof *left_rounds);
    long base = status_kib("VmRSS");
    size_t total = 0;
    int running = 1, i, left;
    if (!m || !es || !bs || !left_rounds)
        exit(1);
    for (i = 0; i < conc; i++) {
        es[i] = make(url, NULL);
        bs[i].e = es[i];
        curl_easy_setopt(es[i], CURLOPT_WRITEFUNCTION, keep);
        curl_easy_setopt(es[i], CURLOPT_WRITEDATA, (void *)&bs[i]);
        curl_easy_setopt(es[i], CURLOPT_PRIVATE, (void *)(size_t)i);
        left_rounds[i] = rounds - 1;
        curl_multi_add_handle(m, es[i]);
    }
    while (running) {
        CURLMsg *msg;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            CURL *e = msg->easy_handle;
            char *priv;
            if (msg->msg != CURLMSG_DONE)
                continue;
            check(e, msg->data.result);
            curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
            i = (int)(size_t)priv;
            total += bs[i].len;
            free(bs[i].data);
            bs[i].data = NULL;
            bs[i].len = bs[i].cap = 0;
            curl_multi_remove_handle(m, e);
            if (left_rounds[i]-- > 0) {
                curl_multi_add_handle(m, e);
                running++;
            }
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    if (total != (size_t)conc * (size_t)rounds * 1048576u) {
        fprintf(stderr, "short bodies: %zu bytes\n", total);
        exit(1);
    }
    printf("base %ld\npeak %ld\n", base, status_kib("VmHWM"));
    for (i = 0; i < conc; i++)
        curl_easy_cleanup(es[i]);
    free(es);
    free(bs);
    free(left_rounds);
    curl_multi_cleanup(m);
}

static void blocking(const char *url, double seconds)
{
    size_t bytes = 0;
    long n = 0, i;
    CURL *e = make(url, &bytes);
    double t0, dt;
    for (i = 0; i < 200; i++)
        check(e, curl_easy_perform(e));
    t0 = now_s();
    do {
        for (i = 0; i < 100; i++)
            check(e, curl_easy_perform(e));
        n += 100;
        dt = now_s() - t0;
    } while (dt < seconds);
    printf("round 1 %.1f\n", (double)n / dt);
    curl_easy_cleanup(e);
}

static void multi(const char *url, int conc, double seconds)
{
    CURLM *m = curl_multi_init();
    CURL **es = calloc((size_t)conc, sizeof *es);
    size_t bytes = 0;
    long n = 0, counted = 0;
    int running = 1, i, left, warm = 1;
    double t0 = now_s(), start = 0, deadline = t0 + 0.3, dt;
    if (!m || !es)
        exit(1);
    for (i = 0; i < conc; i++) {
        es[i] = make(url, &bytes);
        curl_multi_add_handle(m, es[i]);
    }
    while (running) {
        CURLMsg *msg;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            check(e, msg->data.result);
            n++;
            curl_multi_remove_handle(m, e);
            if (warm || now_s() < deadline) {
                curl_multi_add_handle(m, e);
                running++;
            }
        }
        if (warm && now_s() >= deadline) {
            /* The warm-up (connections opened) is over: count from here. */
            warm = 0;
            start = now_s();
            counted = n;
            deadline = start + seconds;
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    dt = now_s() - start;
    printf("round 1 %.1f\n", (double)(n - counted) / dt);
    for (i = 0; i < conc; i++)
        curl_easy_cleanup(es[i]);
    free(es);
    curl_multi_cleanup(m);
}

/* The socket table of the shards mode: by descriptor, the multi it belongs to and its interest. */
#define SHARDS_MAX 16
#define FD_MAX 65536
static int fd_shard[FD_MAX], fd_what[FD_MAX], fd_list[FD_MAX], nfd;

static int shard_sock(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
    int i;
    (void)e;
    (void)sockp;
    if (s < 0 || s >= FD_MAX)
        return 0;
    if (what == CURL_POLL_REMOVE) {
        for (i = 0; i < nfd; i++)
            if (fd_list[i] == s) {
                fd_list[i] = fd_list[--nfd];
                break;
            }
        fd_what[s] = 0;
        return 0;
    }
    if (!fd_what[s])
        fd_list[nfd++] = s;
    fd_what[s] = what;
    fd_shard[s] = (int)(long)userp;
    return 0;
}

static void shards(const char *url, int conc, int k, double seconds)
{
    static struct pollfd pf[FD_MAX];
    CURLM *m[SHARDS_MAX];
    CURL **es = calloc((size_t)conc, sizeof *es);
    size_t bytes = 0;
    long n = 0, counted = 0;
    int i, j, running, warm = 1;
    double start = 0, deadline = now_s() + 0.3, dt;
    if (!es || k < 1 || k > SHARDS_MAX)
        exit(1);
    for (j = 0; j < k; j++) {
        m[j] = curl_multi_init();
        if (!m[j])
            exit(1);
        curl_multi_setopt(m[j], CURLMOPT_SOCKETFUNCTION, shard_sock);
        curl_multi_setopt(m[j], CURLMOPT_SOCKETDATA, (void *)(long)j);
    }
    for (i = 0; i < conc; i++) {
        es[i] = make(url, &bytes);
        curl_easy_setopt(es[i], CURLOPT_PRIVATE, (void *)(long)(i % k));
        curl_multi_add_handle(m[i % k], es[i]);
    }
    for (;;) {
        int nready, np = nfd, wait = 100;
        for (j = 0; j < k; j++) {             /* the soonest of the multis' timers */
            long ms = -1;
            if (curl_multi_timeout(m[j], &ms) == CURLM_OK && ms >= 0 && ms < wait)
                wait = (int)ms;
        }
        for (i = 0; i < np; i++) {
            int w = fd_what[fd_list[i]];
            pf[i].fd = fd_list[i];
            pf[i].events = (short)(((w & CURL_POLL_IN) ? POLLIN : 0) | ((w & CURL_POLL_OUT) ? POLLOUT : 0));
            pf[i].revents = 0;
        }
        nready = poll(pf, (nfds_t)np, wait);
        for (i = 0; nready > 0 && i < np; i++) {
            short re = pf[i].revents;
            int ev = 0;
            if (!re)
                continue;
            if (re & (POLLIN | POLLPRI | POLLHUP))
                ev |= CURL_CSELECT_IN;
            if (re & POLLOUT)
                ev |= CURL_CSELECT_OUT;
            if (re & (POLLERR | POLLNVAL))
                ev |= CURL_CSELECT_ERR;
            curl_multi_socket_action(m[fd_shard[pf[i].fd]], pf[i].fd, ev, &running);
        }
        for (j = 0; j < k; j++) {
            CURLMsg *msg;
            int left;
            curl_multi_socket_action(m[j], CURL_SOCKET_TIMEOUT, 0, &running);
            while ((msg = curl_multi_info_read(m[j], &left)) != NULL) {
                if (msg->msg != CURLMSG_DONE)
                    continue;
                check(msg->easy_handle, msg->data.result);
                n++;
                curl_multi_remove_handle(m[j], msg->easy_handle);
                curl_multi_add_handle(m[j], msg->easy_handle);
            }
        }
        if (warm && now_s() >= deadline) {
            warm = 0;
            start = now_s();
            counted = n;
            deadline = start + seconds;
        } else if (!warm && now_s() >= deadline) {
            break;
        }
    }
    dt = now_s() - start;
    printf("round 1 %.1f\n", (double)(n - counted) / dt);
    for (j = 0; j < k; j++) {
        for (i = j; i < conc; i += k)
            curl_multi_remove_handle(m[j], es[i]);
        curl_multi_cleanup(m[j]);
    }
    for (i = 0; i < conc; i++)
        curl_easy_cleanup(es[i]);
    free(es);
}

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc == 4 && strcmp(argv[1], "blocking") == 0)
        blocking(argv[2], atof(argv[3]));
    else if (argc == 5 && strcmp(argv[1], "multi") == 0)
        multi(argv[2], atoi(argv[3]), atof(argv[4]));
    else if (argc == 6 && strcmp(argv[1], "shards") == 0)
        shards(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    else if (argc == 4 && strcmp(argv[1], "count") == 0)
        count(argv[2], atol(argv[3]));
    else if (argc == 5 && strcmp(argv[1], "mcount") == 0)
        mcount(argv[2], atoi(argv[3]), atol(argv[4]));
    else if (argc == 5 && strcmp(argv[1], "big") == 0)
        big(argv[2], atoi(argv[3]), atoi(argv[4]));
    else {
        fprintf(stderr, "usage: %s blocking URL SECONDS | multi URL CONC SECONDS | shards URL CONC K SECONDS | "
                        "count URL N | "
                        "mcount URL CONC N | big URL CONC ROUNDS\n", argv[0]);
        return 2;
    }
    curl_global_cleanup();
    return 0;
}
