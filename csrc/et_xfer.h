/* SPDX-License-Identifier: MIT */
/* The transfer over one libcurl easy handle: session options and proxy settings, the handle's
 * set-up, per-request options, body and header capture (et_hdr), CURLcode mapping, messages.
 *
 * Pure core: no Lua header. Its owners (et_session: a blocking Session; et_multi: a Multi's
 * Transfers) keep an et_xfer_t at a stable address for the callbacks curl keeps (write, header,
 * error buffer). Callbacks only touch C buffers; Lua values are built after curl returns.
 *
 * Ownership: et_xfer_t owns its buffers, its request header list and its result strings. The easy
 * handle is either owned (a Session) or lent by a multi's pool (a Transfer): et_xfer_release()
 * frees what the transfer owns and hands the easy handle back to the caller. */
#ifndef ET_XFER_H
#define ET_XFER_H

#include <stddef.h>
#include <curl/curl.h>

#include "et_config.h"
#include "et_buf.h"
#include "et_hdr.h"
#include "et_proto.h"

#define ET_ECURL   (-2)   /* curl refused an option: message in the transfer's result */

/* Session settings, copied into every transfer made with them. */
typedef struct et_http_opts {
    long timeout_ms;          /* 0: none */
    long connect_timeout_ms;  /* 0: curl's default */
    int verify_ssl;
    int allow_redirects;
    long max_redirects;
    size_t max_body_size;     /* inclusive */
    char *ca_file;            /* owned copies, or NULL */
    char *user_agent;
    char *proxy;              /* "" no proxy at all; NULL the environment's (curl's default) */
    int packed_headers;       /* results carry the headers packed in one string, not a table */
    int elide_url;            /* transfer:result() gives nil for the URL when it is the one asked */
    /* Derived once by et_http_opts_finish (NULL before): */
    unsigned long id;         /* unique per finished opts: which pooled handles carry them */
    struct curl_slist *ua_header;   /* "User-Agent: ..." prebuilt, or NULL */
    char *proxy_http, *proxy_https; /* proxy, else from the environment as curl reads it; "" none */
    char *noproxy;            /* no_proxy / NO_PROXY ("" for none), or NULL */
    int refs;                 /* et_http_opts_new/_ref/_unref (a session and its transfers) */
} et_http_opts_t;

/* What an easy handle was last set up with, so that a request sets only what changed. It
 * travels with the handle (a multi's pool keeps it beside the handle). */
typedef struct et_easy_state {
    unsigned long opts_id;    /* the session options it carries; 0: none yet */
    int configured;           /* options of opts_id set (0 after a reset or for a new handle) */
    CURLU *curlu;             /* CURLOPT_CURLU, owned: parsed again only for another URL */
    char *url;                /* the URL curlu holds, or NULL */
    int curlu_set;            /* CURLOPT_CURLU currently set on the handle */
    const struct curl_slist *headers;   /* CURLOPT_HTTPHEADER as set */
    const char *proxy;        /* CURLOPT_PROXY as set (points into the opts), or NULL */
    int method;               /* the method the handle is set for; -1: unknown */
    int body;                 /* a body (or Content-Length: 0) was set */
    curl_off_t maxsize;       /* CURLOPT_MAXFILESIZE_LARGE as set; -1: unknown */
    int fresh, pipewait;      /* as set; -1: unknown */
    int follow;               /* CURLOPT_FOLLOWLOCATION as set; -1: unknown */
} et_easy_state_t;

/* Why a callback stopped the transfer (curl then says CURLE_WRITE_ERROR). */
enum { ET_ABORT_NONE = 0, ET_ABORT_BODY, ET_ABORT_HEADERS, ET_ABORT_NOMEM, ET_ABORT_SIGINT };

typedef struct et_xfer {
    CURL *easy;
    struct curl_slist *req_headers;   /* kept until the transfer is over */
    et_buf_t body;
    size_t max_body;
    int no_redirects;                 /* the session's allow_redirects overridden for one request */
    et_headers_t headers;
    int abort_reason;
    char errbuf[CURL_ERROR_SIZE];
    /* Result, filled by et_xfer_finish. */
    et_http_code_t code;
    long status;
    char *effective_url;
    char *message;                    /* never holds headers, bodies or the query string */
    long num_connects;                /* new connections this transfer opened */
    /* For messages: the method and the URL without userinfo, query or fragment (built on the
     * first message, from the URL the handle holds). */
    char *what;
    /* The request's method (for messages: "what" is only built when one is needed). */
    int method;
    /* The request carried neither headers of the caller's nor a body (no credentials): its
     * response may be handed out as strings kept from an earlier one (l_push_result). */
    int plain;
    /* Set by an owner that knows the URL it asked for: an effective URL equal to it is not
     * copied (effective_url stays NULL). */
    int same_url_elided;
    /* Set by an owner that counts connections (a session: session:stats()): num_connects read. */
    int count_connects;
    /* The handle's set-up (see et_easy_state_t) and the options it was configured with. */
    et_easy_state_t st;
    const et_http_opts_t *opts;
} et_xfer_t;

void et_http_opts_init(et_http_opts_t *o);
void et_http_opts_free(et_http_opts_t *o);
/* Derives what every request reuses, once: a unique id, the User-Agent header line, the proxy
 * settings from the environment (http_proxy, https_proxy/HTTPS_PROXY, all_proxy/ALL_PROXY,
 * no_proxy/NO_PROXY, read as libcurl reads them). ET_OK or ET_ENOMEM. Without it a transfer
 * sets CURLOPT_USERAGENT and lets libcurl read the environment on each request. */
int et_http_opts_finish(et_http_opts_t *o);
/* Reference-counted options on the heap: new (refs 1, initialised), ref, unref (frees at 0). */
et_http_opts_t *et_http_opts_new(void);
et_http_opts_t *et_http_opts_ref(et_http_opts_t *o);
void et_http_opts_unref(et_http_opts_t *o);

void et_easy_state_init(et_easy_state_t *s);
void et_easy_state_free(et_easy_state_t *s);
/* ET_OK or ET_ENOMEM; s may be NULL. */
int et_http_opts_set_str(char **slot, const char *s);
/* glibc: raises the heap's trim threshold once per process, through glibc's own dynamic rule (see
 * et_xfer.c); called by the first session or multi. Elsewhere, nothing. */
void et_heap_settle(void);

et_http_code_t et_http_code_from_curl(CURLcode rc);
/* "METHOD url" for messages, malloc'd (NULL when out of memory): the URL as libcurl's parser reads
 * it and writes it back (scheme in lower case, an empty path as "/", dot segments resolved),
 * without userinfo, query or fragment. A URL the parser refuses is shown as given when it has no
 * '?', '#' or '@', else as "(malformed URL)". */
char *et_http_describe(et_http_method_t m, const char *url);

/* One request's arguments, strings borrowed from the caller (headers: "Name: value" strings
 * already checked for CR/LF/NUL). */
typedef struct et_request {
    et_http_method_t method;
    const char *url;
    const char *const *headers;
    size_t nheaders;
    const char *body;             /* NULL: none */
    size_t bodylen;
    int fresh;                    /* a new connection */
    int no_redirects;             /* never follow a redirect for this request */
} et_request_t;

/* Transfer life cycle.
 * et_xfer_init: zero state, no handle.
 * et_xfer_configure: applies session options and the callbacks that point into x. A handle
 *   that already carries these (finished) options keeps them (only the callbacks are set); one
 *   set up for other options is reset first. ET_OK or ET_ECURL/ET_ENOMEM.
 * et_xfer_prepare: per-request options. headers: n strings "Name: value" (already checked for
 *   CR/LF by the caller); body may be NULL. Builds the header list once. ET_OK, ET_ENOMEM or
 *   ET_ECURL (code and message set).
 * et_xfer_finish: after curl is done with rc: reads status/URL/counters, maps the code, builds
 *   the message, frees the request header list. ET_OK or ET_ENOMEM.
 * et_xfer_reset_result: drops result, body and headers (keeps the handle).
 * et_xfer_detach / et_xfer_release: see below. */
void et_xfer_init(et_xfer_t *x);
int et_xfer_configure(et_xfer_t *x, CURL *easy, const et_http_opts_t *o);
int et_xfer_prepare(et_xfer_t *x, et_http_method_t m, const char *url, const char *const *headers,
                    size_t nheaders, const char *body, size_t bodylen, int fresh, int pipewait);
int et_xfer_finish(et_xfer_t *x, CURLcode rc);
/* Marks a transfer as failed without curl (cancelled, option refused...). */
int et_xfer_fail(et_xfer_t *x, et_http_code_t code, const char *msg);
void et_xfer_reset_result(et_xfer_t *x);
/* Gives the easy handle back (x keeps its result, body and headers); NULL if none. */
CURL *et_xfer_detach(et_xfer_t *x);
/* The same, handing over the handle's set-up state too (for a pool that reuses both). */
CURL *et_xfer_detach_state(et_xfer_t *x, et_easy_state_t *st);
/* Gives x a pooled handle with its set-up state (moved in; et_xfer_configure then sets only
 * what differs). */
void et_xfer_adopt(et_xfer_t *x, CURL *easy, et_easy_state_t *st);
CURL *et_xfer_release(et_xfer_t *x);

/* x's transfer, to its end, in multi (a multi handle of the caller's, holding no other transfer:
 * its connection cache keeps the connection alive between calls), interruptible by SIGINT
 * (Ctrl-C); curl_easy_perform's result. A SIGINT handler of ours,
 * installed once (never over SIG_IGN) and re-verified at most once per second, chains to the handler
 * it replaced (the `lua` interpreter's, a host's: called at once with the same arguments; SIG_DFL:
 * put back and the signal raised again once the transfer ends) and, while blocking transfers are in
 * progress, bumps a counter that their loop checks after each round (the transfer ends within a
 * poll round, as poll() returns on the signal). The transfer then fails with
 * ET_HTTP_INTERRUPTED. No sigaction(2) per request in the steady state, and none ever restores a
 * handler over one someone else installed (see et_sigint.c). */
CURLcode et_xfer_perform_blocking(et_xfer_t *x, CURLM *multi);
/* For tests: the next blocking transfer looks at the installed SIGINT handler (re-chaining to a
 * handler installed over ours) instead of waiting for the second to pass. */
void et_sigint_recheck(void);

/* Callbacks, exposed for the unit tests. userdata is the et_xfer_t. */
size_t et_xfer_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata);
size_t et_xfer_header_cb(char *ptr, size_t size, size_t nmemb, void *userdata);

#endif
