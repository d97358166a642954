/* SPDX-License-Identifier: MIT */
/* Ctrl-C during a blocking transfer (et_xfer_perform_blocking, see et_xfer.h).
 *
 * A SIGINT handler of ours is installed once, by the first blocking transfer (never over SIG_IGN),
 * and chains: every SIGINT goes on to the handler it replaced, called with the same arguments; while
 * a blocking transfer is in progress it also bumps a counter that the transfer's loop checks
 * between two poll rounds (poll returns on the signal), turning it into an abort. When what it
 * replaced is SIG_DFL and a transfer is in progress, the default action waits for the transfer's
 * end (SIG_DFL is put back and the signal raised then).
 *
 * Hosts replace SIGINT handlers later (lua.c sets its own before each chunk and SIG_DFL after), so a
 * blocking call re-verifies, at most once per second of CLOCK_MONOTONIC (a vDSO call, no system
 * call), that ours is still the one installed, and if not installs it again over (chained to)
 * whatever is there. Nothing is ever restored over a handler someone else installed: the steady
 * state costs no system call per request. When the module is unloaded, the handler ours chains to is
 * put back if ours is still the installed one. */
#define _XOPEN_SOURCE 700               /* SA_RESTART, SA_ONSTACK */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "et_xfer.h"

#define RECHECK_NS 1000000000LL         /* at most one sigaction(2) look per second */

static atomic_int active;               /* blocking transfers in progress (all threads) */
static atomic_uint sigint_gen;          /* SIGINTs seen while a transfer was in progress */
static atomic_int dfl_pending;          /* a SIGINT whose default action waits for a transfer's end */
static atomic_int ours_in;              /* ours was installed at the last look */
static atomic_llong next_check;         /* monotonic ns of the next look */
/* The handler ours chains to. Two slots written alternately (under the lock) and published by
 * prev_idx, so that a signal arriving during an update reads a whole one; slot 2 is SIG_DFL (what a
 * handler with SA_RESETHAND leaves after its one call). */
static struct sigaction prev_slot[3];
static atomic_int prev_idx = 2;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void on_sigint(int sig, siginfo_t *info, void *uc);

static int is_ours(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_sigint;
}

static int is_ign(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_IGN;
}

/* SIG_DFL back (only over ours), then the signal again: the process ends as it would have. */
static void default_action(void)
{
    struct sigaction cur, dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    if (sigaction(SIGINT, NULL, &cur) == 0 && is_ours(&cur)) {
        atomic_store(&ours_in, 0);
        sigaction(SIGINT, &dfl, NULL);
    }
    raise(SIGINT);                      /* (blocked inside a handler: delivered when it returns) */
}

static void on_sigint(int sig, siginfo_t *info, void *uc)
{
    int saved = errno, idx = atomic_load(&prev_idx);
    const struct sigaction *p = &prev_slot[idx];
    int busy = atomic_load(&active) > 0;
    if (busy)
        atomic_fetch_add(&sigint_gen, 1u);
    if (p->sa_flags & SA_SIGINFO) {
        if (p->sa_flags & SA_RESETHAND)
            atomic_store(&prev_idx, 2);
        p->sa_sigaction(sig, info, uc);
    } else if (p->sa_handler == SIG_DFL) {
        if (busy)
            atomic_store(&dfl_pending, 1);
        else
            default_action();
    } else if (p->sa_handler != SIG_IGN) {
        if (p->sa_flags & SA_RESETHAND)
            atomic_store(&prev_idx, 2);
        p->sa_handler(sig);
    }
    errno = saved;
}

/* Under the lock: is ours installed? If not (and SIGINT is not ignored), installs it over what is. */
static void verify(void)
{
    struct sigaction cur, sa, was;
    int slot;
    if (sigaction(SIGINT, NULL, &cur) != 0 || is_ign(&cur)) {
        atomic_store(&ours_in, 0);
        return;
    }
    if (is_ours(&cur)) {
        atomic_store(&ours_in, 1);
        return;
    }
    slot = atomic_load(&prev_idx) == 0 ? 1 : 0;
    prev_slot[slot] = cur;
    atomic_store(&prev_idx, slot);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigint;
    /* The replaced handler's mask and restart behaviour, so the host's other calls behave the same. */
    sa.sa_flags = SA_SIGINFO | (cur.sa_flags & (SA_RESTART | SA_ONSTACK));
    sa.sa_mask = cur.sa_mask;
    if (sigaction(SIGINT, &sa, &was) != 0) {
        atomic_store(&ours_in, 0);
        return;
    }
    if (is_ours(&was)) {
        /* (cannot happen under the lock) */
    } else if ((was.sa_flags & SA_SIGINFO) != (cur.sa_flags & SA_SIGINFO)
               || (was.sa_flags & SA_SIGINFO ? was.sa_sigaction != cur.sa_sigaction
                                             : was.sa_handler != cur.sa_handler)) {
        /* Another thread installed one between the two calls: ours chains to that one. */
        slot = slot == 0 ? 1 : 0;
        prev_slot[slot] = was;
        atomic_store(&prev_idx, slot);
    }
    atomic_store(&ours_in, 1);
}

static long long mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Whether ours is (as of the last look, at most a second old) the installed handler. */
static int sigint_ready(void)
{
    long long now = mono_ns();
    if (now < atomic_load(&next_check))
        return atomic_load(&ours_in);
    pthread_mutex_lock(&lock);
    if (now >= atomic_load(&next_check)) {
        verify();
        atomic_store(&next_check, now + RECHECK_NS);
    }
    pthread_mutex_unlock(&lock);
    return atomic_load(&ours_in);
}

void et_sigint_recheck(void)
{
    atomic_store(&next_check, 0);
}

/* Unloaded (dlclose, or the process's exit): the handler ours replaced goes back, only over ours. */
__attribute__((destructor)) static void sigint_unload(void)
{
    struct sigaction cur;
    pthread_mutex_lock(&lock);
    if (sigaction(SIGINT, NULL, &cur) == 0 && is_ours(&cur)) {
        struct sigaction back = prev_slot[atomic_load(&prev_idx)];
        sigaction(SIGINT, &back, NULL);
    }
    atomic_store(&ours_in, 0);
    atomic_store(&next_check, 0);
    pthread_mutex_unlock(&lock);
}

/* The transfer runs in the session's own multi handle, driven here rather than by
 * curl_easy_perform: libcurl's loop there polls its wake-up socket once before every transfer (one
 * poll(2) per request that this loop does not make), and a SIGINT is seen between two rounds
 * without a progress callback (poll returns on the signal: EINTR). */
CURLcode et_xfer_perform_blocking(et_xfer_t *x, CURLM *multi)
{
    int armed = sigint_ready(), running = 0, left;
    unsigned gen0 = 0;
    CURLMcode mc;
    CURLMsg *msg;
    CURLcode rc = CURLE_OK;

    if (armed) {
        atomic_fetch_add(&active, 1);
        gen0 = atomic_load(&sigint_gen);
    }
    mc = curl_multi_add_handle(multi, x->easy);
    if (mc == CURLM_OK) {
        for (;;) {
            mc = curl_multi_perform(multi, &running);
            if (mc != CURLM_OK || !running)
                break;
            if (armed && atomic_load(&sigint_gen) != gen0) {
                x->abort_reason = ET_ABORT_SIGINT;
                rc = CURLE_ABORTED_BY_CALLBACK;
                break;
            }
            mc = curl_multi_wait(multi, NULL, 0, 1000, NULL);
            if (mc != CURLM_OK)
                break;
        }
        if (mc == CURLM_OK && !running) {
            rc = CURLE_FAILED_INIT;             /* (not seen: a transfer ends with its message) */
            while ((msg = curl_multi_info_read(multi, &left)) != NULL)
                if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->easy)
                    rc = msg->data.result;
        }
        curl_multi_remove_handle(multi, x->easy);
    }
    if (mc != CURLM_OK)
        rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    if (armed) {
        atomic_fetch_sub(&active, 1);
        /* A transfer that ended anyway keeps its result; SIG_DFL's action comes now. */
        if (atomic_exchange(&dfl_pending, 0))
            default_action();
    }
    return rc;
}
