/* SPDX-License-Identifier: MIT */
/* Ctrl-C during a blocking transfer (et_xfer_perform_blocking, see et_xfer.h): for the call only,
 * a SIGINT handler of ours sets a flag that a progress callback turns into an abort. */
#include <signal.h>
#include <string.h>

#include "et_xfer.h"

static volatile sig_atomic_t sigint_seen;

static void on_sigint(int sig)
{
    (void)sig;
    sigint_seen = 1;
}

static int sigint_progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow)
{
    et_xfer_t *x = userdata;
    (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
    if (!sigint_seen || !x->sigint_armed)
        return 0;
    x->abort_reason = ET_ABORT_SIGINT;
    return 1;
}

CURLcode et_xfer_perform_blocking(et_xfer_t *x)
{
    struct sigaction sa, old;
    int installed = 0, progress = 0;
    CURLcode rc;

    /* The progress callback and its data are set once per handle; progress (whose bookkeeping
     * costs libcurl more than two options) is switched on only while our handler is in. */
    if (x->st.progress != (const void *)x) {
        x->st.progress = NULL;
        if (curl_easy_setopt(x->easy, CURLOPT_XFERINFOFUNCTION, sigint_progress_cb) == CURLE_OK
            && curl_easy_setopt(x->easy, CURLOPT_XFERINFODATA, x) == CURLE_OK)
            x->st.progress = x;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;          /* no SA_RESTART: curl's poll() returns at once */
    sigemptyset(&sa.sa_mask);
    if (x->st.progress && sigaction(SIGINT, NULL, &old) == 0
        && ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_IGN && old.sa_handler != on_sigint))) {
        progress = curl_easy_setopt(x->easy, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
        if (progress) {
            sigint_seen = 0;
            installed = sigaction(SIGINT, &sa, NULL) == 0;
        }
    }
    x->sigint_armed = installed;
    rc = curl_easy_perform(x->easy);
    x->sigint_armed = 0;
    if (progress)
        curl_easy_setopt(x->easy, CURLOPT_NOPROGRESS, 1L);
    if (installed) {
        sigaction(SIGINT, &old, NULL);
        if (sigint_seen) {
            sigint_seen = 0;                            /* a transfer that ended anyway keeps its result */
            raise(SIGINT);                              /* to the handler we replaced */
        }
    }
    return rc;
}
