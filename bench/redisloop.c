/* SPDX-License-Identifier: MIT */
/* hiredis alone, as a careful C program uses it: the floor a Redis store's check_and_add outside
 * nginx is compared with (issue 21: at least 0.8x of this loop).
 *
 *   cc -O2 -o build/redisloop bench/redisloop.c $(pkg-config --cflags --libs hiredis)
 *   build/redisloop PORT PASSWORD SECONDS   -> `redisloop: N ops/s`
 *
 * One blocking connection (redisConnectWithTimeout, AUTH), then for SECONDS:
 * SET bench:c:<i> 1 NX PX 10000 through redisCommandArgv, each reply checked and freed.
 * Run by `make bench-store` (bench/store.lua), beside RedisStore:check_and_add. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct timeval tv = { 1, 0 };
    redisContext *c;
    redisReply *r;
    double seconds, t0, t;
    long n = 0, added = 0;
    char key[64];
    const char *args[6] = { "SET", key, "1", "NX", "PX", "10000" };
    size_t lens[6] = { 3, 0, 1, 2, 2, 5 };
    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT PASSWORD SECONDS\n", argv[0]);
        return 2;
    }
    seconds = atof(argv[3]);
    c = redisConnectWithTimeout("127.0.0.1", atoi(argv[1]), tv);
    if (!c || c->err) {
        fprintf(stderr, "connect: %s\n", c ? c->errstr : "out of memory");
        return 1;
    }
    redisSetTimeout(c, tv);
    r = redisCommand(c, "AUTH %s", argv[2]);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "AUTH failed\n");
        return 1;
    }
    freeReplyObject(r);
    t0 = now_s();
    do {
        int i;
        for (i = 0; i < 256; i++) {
            lens[1] = (size_t)snprintf(key, sizeof key, "bench:c:%ld:%ld", (long)t0, n++);
            r = redisCommandArgv(c, 6, args, lens);
            if (!r) {
                fprintf(stderr, "SET: %s\n", c->errstr);
                return 1;
            }
            added += r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
        }
        t = now_s() - t0;
    } while (t < seconds);
    printf("redisloop: %.0f ops/s (%ld added of %ld)\n", (double)n / t, added, n);
    redisFree(c);
    return 0;
}
