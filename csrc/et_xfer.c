/* SPDX-License-Identifier: MIT */
/* The transfer over one libcurl easy handle: session options and proxy settings, the handle's
 * set-up, per-request options, body and header capture, CURLcode mapping, messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_fork.h"
#include "et_xfer.h"

/* Body capacity kept between requests of one handle (and header storage, by the headers' raw size);
 * bigger ones are freed. */
#define ET_BODY_KEEP (256 * 1024)

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ---- options ---- */

void et_http_opts_init(et_http_opts_t *o)
{
    o->timeout_ms = 0;
    o->connect_timeout_ms = 0;
    o->verify_ssl = 1;
    o->allow_redirects = 0;
    o->max_redirects = 10;
    o->max_body_size = ET_DEFAULT_MAX_BODY;
    o->ca_file = NULL;
    o->user_agent = NULL;
    o->proxy = NULL;
    o->packed_headers = 0;
    o->elide_url = 0;
    o->id = 0;
    o->ua_header = NULL;
    o->proxy_http = o->proxy_https = o->noproxy = NULL;
    o->refs = 1;
}

void et_http_opts_free(et_http_opts_t *o)
{
    free(o->ca_file);
    free(o->user_agent);
    free(o->proxy);
    o->ca_file = o->user_agent = o->proxy = NULL;
    curl_slist_free_all(o->ua_header);
    o->ua_header = NULL;
    free(o->proxy_http);
    free(o->proxy_https);
    free(o->noproxy);
    o->proxy_http = o->proxy_https = o->noproxy = NULL;
    o->id = 0;
}

/* The first of the environment variables named that is set and not empty, copied ("" if none). */
static char *env_first(const char *const *names)
{
    const char *v = NULL;
    char *copy = NULL;
    for (; *names; names++) {
        v = getenv(*names);
        if (v && *v)
            break;
        v = NULL;
    }
    if (et_http_opts_set_str(&copy, v ? v : "") != ET_OK)
        return NULL;
    return copy;
}

static unsigned long next_opts_id(void)
{
    static unsigned long last;
#if defined(__GNUC__)
    return __atomic_add_fetch(&last, 1UL, __ATOMIC_RELAXED);
#else
    return ++last;
#endif
}

int et_http_opts_finish(et_http_opts_t *o)
{
    /* libcurl's own reading: http_proxy in lower case only (httpoxy), other schemes either case,
     * then all_proxy; no_proxy either case. */
    static const char *const http_names[] = { "http_proxy", "all_proxy", "ALL_PROXY", NULL };
    static const char *const https_names[] = { "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                                               NULL };
    const char *np;
    free(o->proxy_http);
    free(o->proxy_https);
    free(o->noproxy);
    o->noproxy = NULL;
    o->proxy_http = o->proxy_https = NULL;
    if (o->proxy) {                             /* the proxy option ("": none), not the environment */
        et_http_opts_set_str(&o->proxy_http, o->proxy);
        et_http_opts_set_str(&o->proxy_https, o->proxy);
    } else {
        o->proxy_http = env_first(http_names);
        o->proxy_https = env_first(https_names);
    }
    if (!o->proxy_http || !o->proxy_https)
        return ET_ENOMEM;
    np = getenv("no_proxy");
    if (!np || !*np)
        np = getenv("NO_PROXY");
    /* Always set (libcurl reads the environment again on each request when it is not). */
    if (et_http_opts_set_str(&o->noproxy, np ? np : "") != ET_OK)
        return ET_ENOMEM;
    curl_slist_free_all(o->ua_header);
    o->ua_header = NULL;
    if (o->user_agent && *o->user_agent) {      /* "": no User-Agent header at all */
        size_t n = strlen(o->user_agent);
        char *line = malloc(n + sizeof "User-Agent: ");
        if (!line)
            return ET_ENOMEM;
        memcpy(line, "User-Agent: ", sizeof "User-Agent: " - 1);
        memcpy(line + sizeof "User-Agent: " - 1, o->user_agent, n + 1);
        o->ua_header = curl_slist_append(NULL, line);
        free(line);
        if (!o->ua_header)
            return ET_ENOMEM;
    }
    o->id = next_opts_id();
    return ET_OK;
}

et_http_opts_t *et_http_opts_new(void)
{
    et_http_opts_t *o = malloc(sizeof *o);
    if (o)
        et_http_opts_init(o);
    return o;
}

et_http_opts_t *et_http_opts_ref(et_http_opts_t *o)
{
    if (o)
        o->refs++;
    return o;
}

void et_http_opts_unref(et_http_opts_t *o)
{
    if (o && --o->refs == 0) {
        et_http_opts_free(o);
        free(o);
    }
}

/* ---- easy handle set-up state ---- */

void et_easy_state_init(et_easy_state_t *st)
{
    memset(st, 0, sizeof *st);
    st->method = -1;
    st->body = -1;
    st->maxsize = -1;
    st->fresh = st->pipewait = -1;
    st->follow = -1;
}

void et_easy_state_free(et_easy_state_t *st)
{
    if (st->curlu)
        curl_url_cleanup(st->curlu);
    free(st->url);
    et_easy_state_init(st);
}

/* After curl_easy_reset (or for a new handle): nothing of ours is set any more; the parsed URL
 * object is kept for reuse. */
static void state_forget(et_easy_state_t *st)
{
    CURLU *u = st->curlu;
    char *url = st->url;
    et_easy_state_init(st);
    st->curlu = u;
    st->url = url;
}

int et_http_opts_set_str(char **slot, const char *s)
{
    char *copy = NULL;
    if (s) {
        size_t n = strlen(s);
        copy = malloc(n + 1);
        if (!copy)
            return ET_ENOMEM;
        memcpy(copy, s, n + 1);
    }
    free(*slot);
    *slot = copy;
    return ET_OK;
}

/* ---- the heap ---- */

/* glibc only. libcurl mallocs a 16 KiB receive buffer when a transfer starts and frees it when
 * it ends (multi_done). Among the allocations of a Lua 5.2+ state (freed by the GC in batches,
 * not as they come) the heap seldom has a free chunk that size, so the buffer is often carved from
 * the top of the heap, and its free gives the top back: a trim (brk down), then brk up again for
 * the next transfer, and fresh pages to fault in. With 64 transfers in flight that was about 500
 * brk pairs and 3,000 page faults a second, 6-9% of the wall clock on a virtual machine; a blocking
 * session saw a few.
 * glibc's dynamic threshold (mallopt(3), M_MMAP_THRESHOLD): after the free of a mapped block of S
 * bytes, the heap keeps up to 2S free at its top before it trims. The first session or multi of
 * the process has that rule applied once, with a 1 MiB block, as any program that once held a
 * 1 MiB body would. A threshold already higher, or one the program set itself (mallopt,
 * GLIBC_TUNABLES), stays as it is: glibc ignores the free then. */
void et_heap_settle(void)
{
#if defined(__GLIBC__)
    static int done;
    if (!__atomic_exchange_n(&done, 1, __ATOMIC_RELAXED)) {
        void *volatile block = malloc(1024 * 1024);     /* (volatile: not optimised away) */
        free(block);
    }
#endif
}

/* ---- codes and messages ---- */

et_http_code_t et_http_code_from_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return ET_HTTP_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return ET_HTTP_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return ET_HTTP_CONNECT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return ET_HTTP_RESOLVE;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:       /* also the old CURLE_SSL_CACERT */
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
#if ET_CURL_VER_GE(7, 77, 0)
    case CURLE_SSL_CLIENTCERT:
#endif
        return ET_HTTP_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        return ET_HTTP_TOO_LARGE;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2_STREAM:
        return ET_HTTP_RESET;
    case CURLE_GOT_NOTHING:
        return ET_HTTP_EMPTY_REPLY;
    case CURLE_TOO_MANY_REDIRECTS:
        return ET_HTTP_REDIRECTS;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return ET_HTTP_URL;
    default:
        return ET_HTTP_TRANSPORT;
    }
}

/* URLs are read by libcurl's parser only (the only hand-written one is the Lua layer's): the
 * flags of every parse of ours are set_url's, so that a URL reads the same way everywhere. */
#define URL_FLAGS (CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME)

/* "METHOD shown" in a malloc'd string. */
static char *describe_text(et_http_method_t m, const char *shown)
{
    const char *mname = et_http_method_name(m);
    size_t mlen = strlen(mname), slen = strlen(shown);
    char *out = malloc(mlen + 1 + slen + 1);
    if (!out)
        return NULL;
    memcpy(out, mname, mlen);
    out[mlen] = ' ';
    memcpy(out + mlen + 1, shown, slen + 1);
    return out;
}

/* A URL libcurl's parser refuses is shown as given when nothing in it could start a part that a
 * message never shows (no '?', '#' or '@'), else not at all. */
static const char *refused_shown(const char *url)
{
    return strpbrk(url, "?#@") ? "(malformed URL)" : url;
}

/* The description of a URL libcurl has parsed into u: its URL as libcurl writes it, without
 * userinfo (user, password, options), query or fragment. text: the URL as given (for a URL
 * libcurl cannot write back). NULL when out of memory. */
static char *describe_curlu(et_http_method_t m, const CURLU *u, const char *text)
{
    CURLU *d = curl_url_dup((CURLU *)u);
    char *shown = NULL, *out;
    CURLUcode uc;
    if (!d)
        return NULL;
    if ((uc = curl_url_set(d, CURLUPART_USER, NULL, 0)) == CURLUE_OK &&
        (uc = curl_url_set(d, CURLUPART_PASSWORD, NULL, 0)) == CURLUE_OK &&
        (uc = curl_url_set(d, CURLUPART_OPTIONS, NULL, 0)) == CURLUE_OK &&
        (uc = curl_url_set(d, CURLUPART_QUERY, NULL, 0)) == CURLUE_OK &&
        (uc = curl_url_set(d, CURLUPART_FRAGMENT, NULL, 0)) == CURLUE_OK)
        uc = curl_url_get(d, CURLUPART_URL, &shown, 0);
    curl_url_cleanup(d);
    if (uc == CURLUE_OUT_OF_MEMORY)
        return NULL;
    out = describe_text(m, uc == CURLUE_OK && shown ? shown : refused_shown(text));
    curl_free(shown);
    return out;
}

char *et_http_describe(et_http_method_t m, const char *url)
{
    CURLU *u = curl_url();
    CURLUcode uc;
    char *out;
    if (!u)
        return NULL;
    uc = curl_url_set(u, CURLUPART_URL, url, URL_FLAGS);
    if (uc == CURLUE_OUT_OF_MEMORY)
        out = NULL;
    else if (uc == CURLUE_OK)
        out = describe_curlu(m, u, url);
    else
        out = describe_text(m, refused_shown(url));
    curl_url_cleanup(u);
    return out;
}

/* ---- callbacks (C buffers only) ---- */

size_t et_xfer_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    et_xfer_t *x = userdata;
    size_t n = size * nmemb;
    int rc;
    if (x->body.len == 0 && x->easy) {
        /* First bytes of the body: room for the whole declared length at once (within the
         * limit), so a big body is copied once, not through a series of doubling reallocs. */
        curl_off_t cl = -1;
        if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
            cl > 0 && (curl_off_t)n < cl && (size_t)cl <= x->max_body && (size_t)cl + 1 > x->body.cap) {
            char *p = realloc(x->body.data, (size_t)cl + 1);
            if (p) {
                x->body.data = p;
                x->body.cap = (size_t)cl + 1;
            }
        }
    }
    rc = et_buf_append_limited(&x->body, ptr, n, x->max_body);
    if (rc == ET_OK)
        return n;
    x->abort_reason = rc == 1 ? ET_ABORT_BODY : ET_ABORT_NOMEM;
    return n ? 0 : 1;                           /* anything but n aborts */
}

size_t et_xfer_header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    et_xfer_t *x = userdata;
    size_t n = size * nmemb;
    int rc = et_headers_feed(&x->headers, ptr, n);
    if (rc == ET_OK)
        return n;
    x->abort_reason = rc == 1 ? ET_ABORT_HEADERS : ET_ABORT_NOMEM;
    return n ? 0 : 1;
}

/* ---- transfer ---- */

void et_xfer_init(et_xfer_t *x)
{
    memset(x, 0, sizeof *x);
    et_headers_init(&x->headers);
    x->max_body = ET_DEFAULT_MAX_BODY;
    et_easy_state_init(&x->st);
}

#define SETOPT(opt, val) do { if (curl_easy_setopt(x->easy, (opt), (val)) != CURLE_OK) goto fail; } while (0)

int et_xfer_configure(et_xfer_t *x, CURL *easy, const et_http_opts_t *o)
{
    x->easy = easy;
    x->max_body = o->max_body_size;
    x->opts = o;
    if (x->headers.packed != (o->packed_headers != 0))
        et_headers_set_packed(&x->headers, o->packed_headers);
    if (o->id != 0 && x->st.opts_id == o->id && x->st.configured) {
        /* A pooled handle already set up with these options: only what points into x. */
        SETOPT(CURLOPT_WRITEDATA, (void *)x);
        SETOPT(CURLOPT_HEADERDATA, (void *)x);
        SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
        return ET_OK;
    }
    if (x->st.configured)
        curl_easy_reset(easy);                  /* set up for other options: start clean */
    state_forget(&x->st);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
#if ET_CURL_VER_GE(7, 85, 0)
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_TCP_NODELAY, 1L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(CURLOPT_TIMEOUT_MS, o->timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    SETOPT(CURLOPT_SSL_VERIFYPEER, o->verify_ssl ? 1L : 0L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, o->verify_ssl ? 2L : 0L);
    if (o->ca_file) {
        /* The file alone: Debian's libcurl also keeps its built-in CApath (/etc/ssl/certs), which
         * would let the system store vouch for a server the file does not. */
        SETOPT(CURLOPT_CAINFO, o->ca_file);
        SETOPT(CURLOPT_CAPATH, (char *)NULL);
    }
    /* CURLOPT_PROXY: per request (et_xfer_prepare), from the proxy option or the environment. */
    SETOPT(CURLOPT_FOLLOWLOCATION, o->allow_redirects ? 1L : 0L);
    x->st.follow = o->allow_redirects != 0;
    SETOPT(CURLOPT_MAXREDIRS, o->max_redirects);
    if (o->user_agent && *o->user_agent && !o->ua_header)
        SETOPT(CURLOPT_USERAGENT, o->user_agent);   /* else a prebuilt header line, per request */
    if (o->noproxy)
        SETOPT(CURLOPT_NOPROXY, o->noproxy);
    SETOPT(CURLOPT_WRITEFUNCTION, et_xfer_write_cb);
    SETOPT(CURLOPT_WRITEDATA, (void *)x);
    SETOPT(CURLOPT_HEADERFUNCTION, et_xfer_header_cb);
    SETOPT(CURLOPT_HEADERDATA, (void *)x);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    x->st.opts_id = o->id;
    x->st.configured = 1;
    return ET_OK;
fail:
    return et_xfer_fail(x, ET_HTTP_TRANSPORT, "libcurl refused a session option") == ET_OK
           ? ET_ECURL : ET_ENOMEM;
}

/* Case-insensitive "does this header line set name" (name ends at ':' or ';'). */
static int header_is(const char *line, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\0' || lower(line[i]) != name[i])
            return 0;
    return line[n] == ':' || line[n] == ';';
}

/* Frees the request header list, first unhooking it so the handle never points at freed memory. */
static void drop_req_headers(et_xfer_t *x)
{
    if (!x->req_headers)
        return;
    if (x->easy && x->st.headers == x->req_headers) {
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
        x->st.headers = NULL;
    }
    curl_slist_free_all(x->req_headers);
    x->req_headers = NULL;
}

static int ascii_prefix(const char *s, const char *lower_prefix)
{
    for (; *lower_prefix; s++, lower_prefix++)
        if (lower(*s) != *lower_prefix)
            return 0;
    return 1;
}

/* The URL, through the handle's own parsed-URL object: parsed only when it changed (libcurl
 * would parse the CURLOPT_URL string again on every request). A URL the parser refuses goes
 * as CURLOPT_URL, so libcurl reports it exactly as before. */
static int set_url(et_xfer_t *x, const char *url)
{
    et_easy_state_t *st = &x->st;
    if (st->url && st->curlu_set && strcmp(st->url, url) == 0)
        return ET_OK;
    free(st->url);
    st->url = NULL;
    if (!st->curlu)
        st->curlu = curl_url();
    /* libcurl reads the object only while it has no URL string of its own: CURLOPT_URL NULL
     * clears the string it kept from the previous URL. */
    if (st->curlu && curl_url_set(st->curlu, CURLUPART_URL, url, URL_FLAGS) == CURLUE_OK &&
        et_http_opts_set_str(&st->url, url) == ET_OK &&
        curl_easy_setopt(x->easy, CURLOPT_URL, (char *)NULL) == CURLE_OK &&
        (st->curlu_set || curl_easy_setopt(x->easy, CURLOPT_CURLU, st->curlu) == CURLE_OK)) {
        st->curlu_set = 1;
        return ET_OK;
    }
    free(st->url);
    st->url = NULL;
    if (st->curlu_set) {
        curl_easy_setopt(x->easy, CURLOPT_CURLU, (CURLU *)NULL);
        st->curlu_set = 0;
    }
    return curl_easy_setopt(x->easy, CURLOPT_URL, url) == CURLE_OK ? ET_OK : ET_ECURL;
}

int et_xfer_prepare(et_xfer_t *x, et_http_method_t m, const char *url, const char *const *headers,
                    size_t nheaders, const char *body, size_t bodylen, int fresh, int pipewait)
{
    struct curl_slist *list = NULL, *tmp;
    const struct curl_slist *hdrs;
    const et_http_opts_t *o = x->opts;
    const char *proxy = NULL;
    int has_ctype = 0, has_ua = 0, send_body, url_rc, follow;
    curl_off_t maxsize;
    size_t i;

    et_xfer_reset_result(x);
    drop_req_headers(x);
    x->method = (int)m;

    /* A body goes with any method but HEAD; POST, PUT and PATCH send Content-Length: 0 without. */
    send_body = m != ET_HTTP_HEAD &&
                (body || m == ET_HTTP_POST || m == ET_HTTP_PUT || m == ET_HTTP_PATCH);
    x->plain = nheaders == 0 && !send_body;

    /* The header list, built once per request and kept until the transfer ends; none at all for
     * a request without headers or body (the usual GET), so curl has no custom header to scan. */
    for (i = 0; i < nheaders; i++) {
        if (header_is(headers[i], "content-type"))
            has_ctype = 1;
        else if (header_is(headers[i], "user-agent"))
            has_ua = 1;
        tmp = curl_slist_append(list, headers[i]);
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    if (send_body) {                            /* no 100-continue wait before a body */
        tmp = curl_slist_append(list, "Expect:");   /* (without a body curl sends none) */
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    if (send_body && !has_ctype) {              /* curl would add a form Content-Type of its own */
        tmp = curl_slist_append(list, "Content-Type:");
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    /* The session's User-Agent, prebuilt: the whole list for a request without headers of its
     * own, else one more line (unless the caller gave one). */
    if (o && o->ua_header && list && !has_ua) {
        tmp = curl_slist_append(list, o->ua_header->data);
        if (!tmp)
            goto nomem;
        list = tmp;
    }
    x->req_headers = list;
    hdrs = list ? list : (o ? o->ua_header : NULL);

    url_rc = set_url(x, url);
    if (!x->st.url) {
        /* Not in the handle's URL object: the description now, while the URL is at hand. */
        x->what = et_http_describe(m, url);
        if (!x->what)
            return ET_ENOMEM;
    }
    if (url_rc != ET_OK)
        goto fail;
    if (o && o->proxy_http) {                   /* resolved once per session (et_http_opts_finish) */
        proxy = ascii_prefix(url, "https:") ? o->proxy_https : o->proxy_http;
        if (proxy != x->st.proxy) {
            SETOPT(CURLOPT_PROXY, proxy);
            x->st.proxy = proxy;
        }
    }
    if (hdrs != x->st.headers) {
        SETOPT(CURLOPT_HTTPHEADER, (struct curl_slist *)hdrs);
        x->st.headers = hdrs;
    }
    /* The method: nothing to do for a second GET (or HEAD...) without body on this handle. */
    if (x->st.method == (int)m && !send_body && x->st.body == 0)
        goto method_set;
    x->st.method = -1;
    /* Undo the previous request's method, then set this one. */
    SETOPT(CURLOPT_NOBODY, 0L);
    SETOPT(CURLOPT_HTTPGET, 1L);
    SETOPT(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (m == ET_HTTP_HEAD) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (send_body) {
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? bodylen : 0));
        SETOPT(CURLOPT_COPYPOSTFIELDS, body ? body : "");
        if (m != ET_HTTP_POST)
            SETOPT(CURLOPT_CUSTOMREQUEST, et_http_method_name(m));
    } else if (m != ET_HTTP_GET) {
        SETOPT(CURLOPT_CUSTOMREQUEST, et_http_method_name(m));
    }
    x->st.method = (int)m;
    x->st.body = send_body;
method_set:
    /* A HEAD response declares the length of a body that never comes: no limit to check. */
    maxsize = (curl_off_t)(m == ET_HTTP_HEAD ? 0 : x->max_body);
    if (maxsize != x->st.maxsize) {
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, maxsize);
        x->st.maxsize = maxsize;
    }
    if ((fresh != 0) != x->st.fresh) {
        SETOPT(CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
        x->st.fresh = fresh != 0;
    }
    if ((pipewait != 0) != x->st.pipewait) {
        SETOPT(CURLOPT_PIPEWAIT, pipewait ? 1L : 0L);
        x->st.pipewait = pipewait != 0;
    }
    follow = o && o->allow_redirects && !x->no_redirects;
    if (follow != x->st.follow) {
        SETOPT(CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
        x->st.follow = follow;
    }
    return ET_OK;
nomem:
    curl_slist_free_all(list);
    return ET_ENOMEM;
fail:
    return et_xfer_fail(x, ET_HTTP_TRANSPORT, "libcurl refused a request option") == ET_OK
           ? ET_ECURL : ET_ENOMEM;
}

#undef SETOPT

/* Sets x->message to "<what>: <detail>". */
static int set_message(et_xfer_t *x, const char *detail)
{
    const char *what;
    if (!x->what && x->st.url)
        x->what = describe_curlu((et_http_method_t)x->method, x->st.curlu, x->st.url);
    what = x->what ? x->what : "request";
    size_t n = strlen(what) + 2 + strlen(detail) + 1;
    free(x->message);
    x->message = malloc(n);
    if (!x->message)
        return ET_ENOMEM;
    snprintf(x->message, n, "%s: %s", what, detail);
    return ET_OK;
}

int et_xfer_fail(et_xfer_t *x, et_http_code_t code, const char *msg)
{
    x->code = code;
    drop_req_headers(x);
    return set_message(x, msg);
}

/* Does curl's error text echo a part of the URL that messages never show? The parts as libcurl's
 * parser finds them in u: the query with the fragment after it (or the fragment alone), and each
 * of user, password and login options. -1 when out of memory. */
static int echoes_hidden(const char *text, CURLU *u)
{
    static const CURLUPart parts[] = { CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS };
    char *q = NULL, *f = NULL;
    int hit = 0;
    size_t i;
    if (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OUT_OF_MEMORY ||
        curl_url_get(u, CURLUPART_FRAGMENT, &f, 0) == CURLUE_OUT_OF_MEMORY)
        hit = -1;
    else if (q && *q) {
        char *p = strstr(text, q);
        size_t n = strlen(q);
        /* The query and what follows it in the URL ("q#f"), as it would be echoed. */
        for (; p && !hit; p = strstr(p + 1, q))
            hit = !f || (p[n] == '#' && strncmp(p + n + 1, f, strlen(f)) == 0);
    } else if (f && *f) {
        hit = strstr(text, f) != NULL;
    }
    curl_free(q);
    curl_free(f);
    for (i = 0; !hit && i < sizeof parts / sizeof parts[0]; i++) {
        char *v = NULL;
        if (curl_url_get(u, parts[i], &v, 0) == CURLUE_OUT_OF_MEMORY)
            hit = -1;
        else if (v && *v && strstr(text, v))
            hit = 1;
        curl_free(v);
    }
    return hit;
}

/* curl's error text, unless it could echo a part of the URL (the effective one, else the one
 * asked for) we never show (query, fragment, userinfo): then curl's generic text for the code. */
static const char *safe_detail(et_xfer_t *x, CURLcode rc, const char *eff)
{
    size_t n = strlen(x->errbuf);
    CURLU *u = NULL, *own = NULL;
    int hit = 0;
    while (n > 0 && (x->errbuf[n - 1] == '\n' || x->errbuf[n - 1] == '\r'))
        x->errbuf[--n] = '\0';
    if (n == 0)
        return curl_easy_strerror(rc);
    if (x->st.url && (!eff || strcmp(eff, x->st.url) == 0)) {
        u = x->st.curlu;                        /* the handle's own, parsed already */
    } else if (eff) {
        own = curl_url();
        if (own && curl_url_set(own, CURLUPART_URL, eff, URL_FLAGS) == CURLUE_OK)
            u = own;
        else if (!own || strpbrk(eff, "?#@"))
            hit = 1;                            /* unparsed: not shown if it could echo a part */
    }
    if (u)
        hit = echoes_hidden(x->errbuf, u);
    curl_url_cleanup(own);
    return hit ? curl_easy_strerror(rc) : x->errbuf;
}

int et_xfer_finish(et_xfer_t *x, CURLcode rc)
{
    char *eff = NULL;
    char detail[160];
    long v;

    drop_req_headers(x);
    if (x->easy) {
        if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &v) == CURLE_OK)
            x->status = v;
        if (x->count_connects && curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &v) == CURLE_OK)
            x->num_connects = v;
        if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &eff) != CURLE_OK)
            eff = NULL;
    }
    free(x->effective_url);
    x->effective_url = NULL;
    if (eff && !(x->same_url_elided && x->st.url && strcmp(eff, x->st.url) == 0) &&
        et_http_opts_set_str(&x->effective_url, eff) != ET_OK)
        return ET_ENOMEM;

    if (rc == CURLE_OK) {
        x->code = ET_HTTP_OK;
        free(x->message);
        x->message = NULL;
        return ET_OK;
    }
    if (x->abort_reason == ET_ABORT_BODY || rc == CURLE_FILESIZE_EXCEEDED) {
        x->code = ET_HTTP_TOO_LARGE;
        snprintf(detail, sizeof detail, "response body exceeds max_body_size (%zu bytes)", x->max_body);
        et_buf_free(&x->body);
        return set_message(x, detail);
    }
    if (x->abort_reason == ET_ABORT_HEADERS) {
        x->code = ET_HTTP_TOO_LARGE;
        snprintf(detail, sizeof detail, "response headers exceed %d bytes", ET_HTTP_MAX_HEADER_BYTES);
        return set_message(x, detail);
    }
    if (x->abort_reason == ET_ABORT_SIGINT) {
        x->code = ET_HTTP_INTERRUPTED;
        et_buf_free(&x->body);
        return set_message(x, "interrupted (SIGINT)");
    }
    if (rc == CURLE_OUT_OF_MEMORY && x->abort_reason == ET_ABORT_NONE && x->headers.in_block) {
        /* Inside a header block: curl's own bound on one header line (CURL_MAX_HTTP_HEADER,
         * "Avoided giant realloc for header"), which curl reports as out of memory. */
        x->code = ET_HTTP_TOO_LARGE;
        snprintf(detail, sizeof detail, "a response header line exceeds libcurl's bound");
        et_buf_free(&x->body);
        return set_message(x, detail);
    }
    if (x->abort_reason == ET_ABORT_NOMEM) {
        x->code = ET_HTTP_TRANSPORT;
        return set_message(x, "out of memory");
    }
    x->code = et_http_code_from_curl(rc);
    et_buf_free(&x->body);
    return set_message(x, safe_detail(x, rc, eff));
}

void et_xfer_reset_result(et_xfer_t *x)
{
    free(x->message);
    free(x->effective_url);
    free(x->what);
    x->message = x->effective_url = x->what = NULL;
    x->code = ET_HTTP_OK;
    x->status = 0;
    x->num_connects = 0;
    x->abort_reason = ET_ABORT_NONE;
    x->errbuf[0] = '\0';
    if (x->headers.total > ET_BODY_KEEP)
        et_headers_clear(&x->headers);          /* big header storage goes, as a big body does */
    else
        et_headers_restart(&x->headers);        /* (storage kept for the handle's next request) */
    if (x->body.cap > ET_BODY_KEEP)
        et_buf_free(&x->body);
    x->body.len = 0;
}

CURL *et_xfer_detach(et_xfer_t *x)
{
    et_easy_state_t st;
    CURL *e = et_xfer_detach_state(x, &st);
    et_easy_state_free(&st);
    return e;
}

CURL *et_xfer_detach_state(et_xfer_t *x, et_easy_state_t *st)
{
    CURL *e = x->easy;
    drop_req_headers(x);
    x->easy = NULL;
    x->opts = NULL;
    *st = x->st;
    et_easy_state_init(&x->st);
    return e;
}

void et_xfer_adopt(et_xfer_t *x, CURL *easy, et_easy_state_t *st)
{
    et_easy_state_free(&x->st);
    x->easy = easy;
    x->st = *st;
    et_easy_state_init(st);
}

CURL *et_xfer_release(et_xfer_t *x)
{
    CURL *e = et_xfer_detach(x);
    et_xfer_reset_result(x);
    et_headers_clear(&x->headers);
    et_buf_free(&x->body);
    return e;
}
