/* SPDX-License-Identifier: MIT */
/* libcurl alone, as a careful C program uses it: the floor of any libcurl-based client, to tell
 * what our layers cost from what libcurl itself costs next to wrk.
 *
 *   bench/curlloop blocking URL SECONDS      -> `round 1 REQ/S`: one easy handle, keep-alive
 *   bench/curlloop multi URL CONC SECONDS    -> `round 1 REQ/S`: CONC easy handles in one multi
 *
 * Bodies go to a callback that keeps their length only; each handle is set up once and re-used
 * (curl_easy_perform again, or removed and added back to the multi). */
#define _POSIX_C_SOURCE 200809L
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

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (argc == 4 && strcmp(argv[1], "blocking") == 0)
        blocking(argv[2], atof(argv[3]));
    else if (argc == 5 && strcmp(argv[1], "multi") == 0)
        multi(argv[2], atoi(argv[3]), atof(argv[4]));
    else {
        fprintf(stderr, "usage: %s blocking URL SECONDS | multi URL CONC SECONDS\n", argv[0]);
        return 2;
    }
    curl_global_cleanup();
    return 0;
}
