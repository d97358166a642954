/* SPDX-License-Identifier: MIT */
/* C tests of the random pool (et_rand.h): draws are fresh and counted, large ones bypass it, and a
 * fork's child never hands out its parent's bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "et_rand.h"
#include "tap.h"

#define DRAW 64
#define DRAWS 2000

static int all_zero(const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void test_draws(et_rand_pool_t *p)
{
    static unsigned char seen[DRAWS][DRAW];
    unsigned char big[4096];
    size_t cap, i, j, before;
    int fresh = 1, counted = 1, nonzero = 1;

    ok(et_rand_bytes(p, seen[0], DRAW) == 1, "a first draw fills the pool");
    cap = et_rand_pool_avail(p) + DRAW;
    ok(cap >= 1024, "the pool holds at least 1 KiB");
    for (i = 1; i < DRAWS; i++) {
        before = et_rand_pool_avail(p);
        if (et_rand_bytes(p, seen[i], DRAW) != 1)
            fresh = 0;
        /* Either taken from what was there, or a refill (a full pool less this draw). */
        if (!(before >= DRAW ? et_rand_pool_avail(p) == before - DRAW : et_rand_pool_avail(p) == cap - DRAW))
            counted = 0;
        if (all_zero(seen[i], DRAW))
            nonzero = 0;
    }
    for (i = 0; i < DRAWS && fresh; i++)
        for (j = i + 1; j < DRAWS; j++)
            if (memcmp(seen[i], seen[j], DRAW) == 0) {
                fresh = 0;
                break;
            }
    ok(fresh, "2000 draws of 64 bytes, across refills, are all different");
    ok(counted, "each draw takes its own bytes off the count; a refill fills the page again");
    ok(nonzero, "no draw is all zeros");

    before = et_rand_pool_avail(p);
    ok(et_rand_bytes(p, big, sizeof big) == 1 && !all_zero(big, sizeof big) &&
           et_rand_pool_avail(p) == before,
       "a draw over a quarter of the pool goes to RAND_bytes, the pool untouched");
    ok(et_rand_bytes(p, big, 0) == 1 && et_rand_pool_avail(p) == before, "an empty draw takes nothing");
}

/* The parent fills its pool, then forks: the child's page must come up wiped, and the child's draw
 * must differ from the one the parent makes from the same place in its pool. */
static void test_fork(et_rand_pool_t *p)
{
    unsigned char mine[DRAW], theirs[DRAW + 1];
    int fd[2], status = 0;
    size_t before;
    pid_t pid;
    ssize_t got = 0;

    if (et_rand_pool_avail(p) < DRAW)
        (void)et_rand_bytes(p, mine, DRAW);
    before = et_rand_pool_avail(p);
    if (pipe(fd) != 0) {
        ok(0, "pipe");
        return;
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        unsigned char buf[DRAW + 1];
        close(fd[0]);
        buf[0] = (unsigned char)(et_rand_pool_avail(p) == 0);  /* wiped: nothing to hand out */
        if (et_rand_bytes(p, buf + 1, DRAW) != 1)
            _exit(2);
        if (write(fd[1], buf, sizeof buf) != (ssize_t)sizeof buf)
            _exit(3);
        _exit(0);
    }
    close(fd[1]);
    if (pid < 0) {
        close(fd[0]);
        ok(0, "fork");
        return;
    }
    ok(et_rand_bytes(p, mine, DRAW) == 1 && et_rand_pool_avail(p) == before - DRAW,
       "the parent draws from its pool as before");
    while (got < (ssize_t)sizeof theirs) {
        ssize_t r = read(fd[0], theirs + got, sizeof theirs - (size_t)got);
        if (r <= 0)
            break;
        got += r;
    }
    close(fd[0]);
    waitpid(pid, &status, 0);
    ok(got == (ssize_t)sizeof theirs && WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "the child drew and reported");
    ok(got == (ssize_t)sizeof theirs && theirs[0] == 1, "the child's pool came up empty (wiped on fork)");
    ok(got == (ssize_t)sizeof theirs && memcmp(mine, theirs + 1, DRAW) != 0,
       "the child's bytes are not the parent's");
}

int main(void)
{
    et_rand_pool_t *p = et_rand_pool_new();
    unsigned char b[32];
    ok(p != NULL, "a pool on this kernel (MADV_WIPEONFORK, Linux >= 4.14)");
    ok(et_rand_bytes(NULL, b, sizeof b) == 1 && !all_zero(b, sizeof b), "no pool: RAND_bytes directly");
    ok(et_rand_pool_avail(NULL) == 0, "no pool holds nothing");
    if (p) {
        test_draws(p);
        test_fork(p);
    }
    et_rand_pool_free(p);
    et_rand_pool_free(NULL);
    return tap_done("rand");
}
