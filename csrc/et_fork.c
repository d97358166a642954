/* SPDX-License-Identifier: MIT */
/* The fork generation (et_fork.h): one counter for every object of the core that holds a socket
 * (Sessions, Multis, Redis connections). */
#include <pthread.h>

#include "et_fork.h"

volatile unsigned long et_fork_generation;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* Runs in the child of fork(), single-threaded at that point. */
static void on_fork_child(void)
{
    et_fork_generation++;
}

static void fork_register(void)
{
    (void)pthread_atfork(NULL, NULL, on_fork_child);
}

unsigned long et_fork_register(void)
{
    (void)pthread_once(&fork_once, fork_register);
    return et_fork_generation;
}
