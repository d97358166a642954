/* SPDX-License-Identifier: MIT */
/* A blocking session over one easy handle (see et_session.h). */
#include "et_fork.h"
#include "et_session.h"

void et_session_init(et_session_t *s)
{
    et_xfer_init(&s->x);
    s->multi = NULL;
    s->opts = NULL;
    s->fork_gen = et_fork_register();
    s->requests = s->connections = 0;
}

int et_session_open(et_session_t *s, et_http_opts_t *o)
{
    CURL *easy;
    et_heap_settle();
    s->opts = o;
    easy = curl_easy_init();
    if (!easy)
        return ET_EHANDLE;
    s->x.same_url_elided = 1;                   /* the binding pushes the caller's URL instead */
    s->x.count_connects = 1;
    return et_xfer_configure(&s->x, easy, s->opts);
}

void et_session_free(et_session_t *s)
{
    CURL *easy = et_xfer_release(&s->x);
    if (s->fork_gen == et_fork_now()) {                   /* else the parent's (fork): abandoned */
        if (easy)
            curl_easy_cleanup(easy);
        if (s->multi)
            curl_multi_cleanup(s->multi);                 /* (closes the kept connection) */
    }
    s->multi = NULL;
    et_http_opts_unref(s->opts);
    s->opts = NULL;
}

int et_session_forked(et_session_t *s)
{
    CURL *easy;
    if (s->fork_gen == et_fork_now())
        return ET_OK;
    s->fork_gen = et_fork_now();
    (void)et_xfer_detach(&s->x);                /* abandoned, never freed in this process */
    s->multi = NULL;                            /* (the same) */
    et_xfer_reset_result(&s->x);
    easy = curl_easy_init();
    if (!easy)
        return ET_EHANDLE;
    return et_xfer_configure(&s->x, easy, s->opts);
}

int et_session_request(et_session_t *s, const et_request_t *r)
{
    int rc = et_session_forked(s);
    CURLcode cc;
    if (rc != ET_OK)
        return rc;
    if (!s->multi) {
        /* Made at the first request, as curl_easy_perform makes its own. Its cache holds up to
         * five connections, curl_easy_perform's (CURLOPT_MAXCONNECTS's default). */
        s->multi = curl_multi_init();
        if (!s->multi)
            return ET_ENOMEM;
        curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, 5L);
    }
    s->x.no_redirects = r->no_redirects;
    rc = et_xfer_prepare(&s->x, r->method, r->url, r->headers, r->nheaders, r->body, r->bodylen,
                         r->fresh, 0);
    if (rc == ET_ENOMEM)
        return rc;
    if (rc == ET_OK) {                          /* (ET_ECURL: the failure is the result) */
        cc = et_xfer_perform_blocking(&s->x, s->multi);
        if (et_xfer_finish(&s->x, cc) != ET_OK)
            s->x.code = s->x.code ? s->x.code : ET_HTTP_TRANSPORT;
    }
    s->requests++;
    s->connections += s->x.num_connects;
    return ET_OK;
}

long et_session_local_port(const et_session_t *s)
{
    long port = 0;
    if (!s->x.easy || curl_easy_getinfo(s->x.easy, CURLINFO_LOCAL_PORT, &port) != CURLE_OK)
        port = 0;
    return port;
}
