/* SPDX-License-Identifier: MIT */
/* C tests of the pure HTTP core (et_hdr.c, et_buf.c, et_xfer.c, et_sigint.c) that need no network:
 * header parsing and joining, body limit, code mapping, messages, request header list. */
#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "et_xfer.h"
#include "tap.h"


static void feed(et_headers_t *h, const char *line)
{
    et_headers_feed(h, line, strlen(line));
}

static const char *hval(const et_headers_t *h, const char *name)
{
    const et_hdr_t *e = et_headers_find(h, name);
    return e ? e->value.data : NULL;
}

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static void test_headers(void)
{
    et_headers_t h;
    et_headers_init(&h);

    feed(&h, "HTTP/1.1 200 OK\r\n");
    feed(&h, "Content-Type:  application/json \r\n");
    feed(&h, "X-EMPTY:\r\n");
    feed(&h, "not a header\r\n");
    feed(&h, ": no name\r\n");
    feed(&h, "\r\n");
    ok(h.n == 2, "headers: lines without a name are ignored");
    ok(streq(hval(&h, "content-type"), "application/json"), "headers: lower-case name, trimmed value");
    ok(streq(hval(&h, "x-empty"), ""), "headers: empty value kept");
    ok(et_headers_find(&h, "Content-Type") == NULL, "headers: lookup is by lower-case name");

    feed(&h, "X-Multi: a\r\n");
    feed(&h, "x-multi: b\r\n");
    feed(&h, "X-MULTI:c\n");
    ok(streq(hval(&h, "x-multi"), "a, b, c"), "headers: repeated values joined with \", \" (any case)");

    feed(&h, "Set-Cookie: a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\r\n");
    feed(&h, "set-cookie: b=2\r\n");
    ok(streq(hval(&h, "set-cookie"), "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT\nb=2"),
       "headers: set-cookie joined with \"\\n\"");

    feed(&h, "X-Folded: one\r\n");
    feed(&h, "   two  \r\n");
    ok(streq(hval(&h, "x-folded"), "one two"), "headers: obsolete line folding continues the value");

    /* A redirect, then the final response: only the final headers remain. */
    feed(&h, "HTTP/1.1 302 Found\r\n");
    feed(&h, "Location: /next\r\n");
    feed(&h, "X-Hop: 1\r\n");
    feed(&h, "\r\n");
    feed(&h, "HTTP/2 200\r\n");
    feed(&h, "x-final: yes\r\n");
    feed(&h, "\r\n");
    ok(h.n == 1 && streq(hval(&h, "x-final"), "yes") && !hval(&h, "location"),
       "headers: reset on each status line (only the final response kept)");

    feed(&h, "HTTP/1.1 100 Continue\r\n");
    feed(&h, "\r\n");
    feed(&h, "HTTP/1.1 204 No Content\r\n");
    ok(h.n == 0, "headers: interim 1xx response dropped");
    et_headers_clear(&h);

    {
        char *big = malloc(ET_HTTP_MAX_HEADER_BYTES + 16);
        int rc;
        memset(big, 'a', ET_HTTP_MAX_HEADER_BYTES + 16);
        memcpy(big, "X-Big: ", 7);
        feed(&h, "HTTP/1.1 200 OK\r\n");
        rc = et_headers_feed(&h, big, ET_HTTP_MAX_HEADER_BYTES / 2);
        ok(rc == ET_OK, "headers: half the header budget accepted");
        rc = et_headers_feed(&h, big, ET_HTTP_MAX_HEADER_BYTES / 2);
        ok(rc == 1, "headers: total beyond ET_HTTP_MAX_HEADER_BYTES refused");
        feed(&h, "\r\n");
        feed(&h, "HTTP/1.1 200 OK\r\n");
        rc = et_headers_feed(&h, big, ET_HTTP_MAX_HEADER_BYTES / 2);
        ok(rc == ET_OK, "headers: the budget restarts with a new response");
        free(big);
    }
    et_headers_clear(&h);
    ok(h.n == 0 && h.items == NULL, "headers: clear frees everything");

    /* Fuzz finds (fuzz/corpus/headers/regress-*): a name that is not a token is no header, so
     * "content-type\0x" can neither pass for content-type nor duplicate it; a status line beyond
     * the budget is refused instead of wrapping the bound around. */
    feed(&h, "HTTP/1.1 200 OK\r\n");
    feed(&h, "Content-Type: a\r\n");
    et_headers_feed(&h, "Content-Type\0x: b\r\n", 19);
    feed(&h, "Loca tion: /x\r\n");
    feed(&h, "X\tY: 1\r\n");
    feed(&h, "x-ok!#$%&'*+-.^_`|~: 2\r\n");
    ok(h.n == 2 && streq(hval(&h, "content-type"), "a") && streq(hval(&h, "x-ok!#$%&'*+-.^_`|~"), "2"),
       "headers: lines whose name is not a token are ignored");
    {
        char *big = malloc(ET_HTTP_MAX_HEADER_BYTES + 16);
        memset(big, 'a', ET_HTTP_MAX_HEADER_BYTES + 16);
        memcpy(big, "HTTP/1.1 ", 9);
        ok(et_headers_feed(&h, big, ET_HTTP_MAX_HEADER_BYTES + 1) == 1,
           "headers: a status line beyond ET_HTTP_MAX_HEADER_BYTES refused");
        free(big);
    }
    et_headers_clear(&h);
}

static void test_body_limit(void)
{
    et_buf_t b = { NULL, 0, 0 };
    ok(et_buf_append_limited(&b, "abcde", 5, 10) == ET_OK, "body: under the limit");
    ok(et_buf_append_limited(&b, "fghij", 5, 10) == ET_OK && b.len == 10,
       "body: exactly max_body_size accepted (inclusive)");
    ok(et_buf_append_limited(&b, "k", 1, 10) == 1 && b.len == 10,
       "body: one byte over refused, nothing appended");
    ok(memcmp(b.data, "abcdefghij", 10) == 0 && b.data[10] == '\0', "body: bytes kept in order");
    ok(et_buf_append_limited(&b, "", 0, 10) == ET_OK, "body: empty append at the limit");
    et_buf_free(&b);
    ok(et_buf_append_limited(&b, "x", 1, 0) == 1, "body: limit 0 refuses any byte");
    ok(et_buf_append_limited(&b, "a\0b", 3, 3) == ET_OK && b.len == 3 && b.data[1] == '\0',
       "body: binary safe");
    et_buf_free(&b);

    {
        et_xfer_t x;
        char chunk[4] = { 'a', 'b', 'c', 'd' };
        et_xfer_init(&x);
        x.max_body = 8;
        ok(et_xfer_write_cb(chunk, 1, 4, &x) == 4 && et_xfer_write_cb(chunk, 2, 2, &x) == 4,
           "write callback: takes data up to the limit");
        ok(et_xfer_write_cb(chunk, 1, 1, &x) != 1 && x.abort_reason == ET_ABORT_BODY,
           "write callback: aborts one byte over");
        x.what = et_http_describe(ET_HTTP_GET, "http://h/big?token=secret");
        et_xfer_finish(&x, CURLE_WRITE_ERROR);
        ok(x.code == ET_HTTP_TOO_LARGE && x.message && strstr(x.message, "max_body_size (8 bytes)")
           && !strstr(x.message, "secret"), "write callback: abort reported as too_large");
        ok(x.body.len == 0, "too_large: partial body dropped");
        et_xfer_release(&x);
    }
    {
        et_xfer_t x;
        et_xfer_init(&x);
        et_xfer_header_cb("HTTP/1.1 200 OK\r\n", 1, 17, &x);
        ok(et_xfer_header_cb("A: b\r\n", 1, 6, &x) == 6 && streq(hval(&x.headers, "a"), "b"),
           "header callback: feeds the parser");
        et_xfer_release(&x);
    }
}

static void test_codes(void)
{
    static const struct { CURLcode rc; const char *code; } cases[] = {
        { CURLE_OK, "ok" },
        { CURLE_OPERATION_TIMEDOUT, "timeout" },
        { CURLE_COULDNT_CONNECT, "connect" },
        { CURLE_COULDNT_RESOLVE_HOST, "resolve" },
        { CURLE_COULDNT_RESOLVE_PROXY, "resolve" },
        { CURLE_SSL_CONNECT_ERROR, "tls" },
        { CURLE_PEER_FAILED_VERIFICATION, "tls" },
        { CURLE_SSL_CACERT_BADFILE, "tls" },
        { CURLE_SSL_CERTPROBLEM, "tls" },
        { CURLE_SSL_PINNEDPUBKEYNOTMATCH, "tls" },
        { CURLE_SSL_ISSUER_ERROR, "tls" },
        { CURLE_FILESIZE_EXCEEDED, "too_large" },
        { CURLE_RECV_ERROR, "reset" },
        { CURLE_SEND_ERROR, "reset" },
        { CURLE_PARTIAL_FILE, "reset" },
        { CURLE_HTTP2_STREAM, "reset" },
        { CURLE_GOT_NOTHING, "empty_reply" },
        { CURLE_TOO_MANY_REDIRECTS, "redirects" },
        { CURLE_URL_MALFORMAT, "url" },
        { CURLE_UNSUPPORTED_PROTOCOL, "url" },
        { CURLE_OUT_OF_MEMORY, "transport" },
        { CURLE_WRITE_ERROR, "transport" },
        { CURLE_HTTP2, "transport" },
    };
    size_t i;
    int all = 1;
    char name[96];
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = et_http_code_name(et_http_code_from_curl(cases[i].rc));
        if (strcmp(got, cases[i].code) != 0) {
            all = 0;
            snprintf(name, sizeof name, "code: CURLcode %d maps to %s (got %s)", (int)cases[i].rc,
                     cases[i].code, got);
            ok(0, name);
        }
    }
    ok(all, "code: CURLcode mapping table");
    ok(streq(et_http_code_name(ET_HTTP_CANCELLED), "cancelled"), "code: cancelled name");
}

static void test_describe(void)
{
    static const struct { et_http_method_t m; const char *url, *want, *name; } cases[] = {
        { ET_HTTP_POST, "https://example.org/oauth/token?code=SECRET#frag",
          "POST https://example.org/oauth/token", "describe: method and URL without query" },
        { ET_HTTP_GET, "http://127.0.0.1:8080/api/v1/users/x?a=1",
          "GET http://127.0.0.1:8080/api/v1/users/x", "describe: a usual URL as given, up to its query" },
        { ET_HTTP_GET, "http://user:pw@example.org:8080/a@b?x=1",
          "GET http://example.org:8080/a@b", "describe: userinfo dropped, '@' in path kept" },
        { ET_HTTP_GET, "http://user:pw;opt@example.org/p", "GET http://example.org/p",
          "describe: login options dropped with the userinfo" },
        { ET_HTTP_GET, "http://a@b@example.org/p", "GET (malformed URL)",
          "describe: two '@' (libcurl refuses the URL): not shown" },
        { ET_HTTP_DELETE, "http://h/p#x?y", "DELETE http://h/p", "describe: fragment dropped" },
        { ET_HTTP_DELETE, "http://h#x?y", "DELETE http://h/", "describe: an empty path reads as /" },
        { ET_HTTP_GET, "HTTP://Example.ORG/a/../b", "GET http://Example.ORG/b",
          "describe: as libcurl reads it (scheme case, dot segments)" },
        { ET_HTTP_HEAD, "not a url", "HEAD not a url", "describe: a URL libcurl refuses, shown as given" },
        { ET_HTTP_GET, "http://", "GET http://", "describe: no host: shown as given" },
        { ET_HTTP_GET, "http:// bad?token=SECRET", "GET (malformed URL)",
          "describe: a refused URL with a query is not shown" },
        { ET_HTTP_GET, "http://u:SECRET@ bad/", "GET (malformed URL)",
          "describe: a refused URL with userinfo is not shown" },
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *d = et_http_describe(cases[i].m, cases[i].url);
        if (!streq(d, cases[i].want))
            printf("# %s: got '%s'\n", cases[i].url, d ? d : "(null)");
        ok(streq(d, cases[i].want), cases[i].name);
        free(d);
    }
}

static int list_has(const struct curl_slist *l, const char *s)
{
    for (; l; l = l->next)
        if (strcmp(l->data, s) == 0)
            return 1;
    return 0;
}

static void test_prepare(void)
{
    et_xfer_t x;
    et_http_opts_t o;
    CURL *e = curl_easy_init();
    const char *with_ct[] = { "Content-Type: application/json", "Authorization: Bearer T" };
    const char *plain[] = { "Accept: */*" };
    int rc;

    et_http_opts_init(&o);
    ok(et_http_opts_set_str(&o.user_agent, "ua/1") == ET_OK && streq(o.user_agent, "ua/1"),
       "opts: string copied");
    et_xfer_init(&x);
    rc = et_xfer_configure(&x, e, &o);
    ok(rc == ET_OK && x.max_body == ET_DEFAULT_MAX_BODY, "configure: default body limit");

    rc = et_xfer_prepare(&x, ET_HTTP_POST, "http://h/p?q=s", with_ct, 2, "{}", 2, 0, 0);
    ok(rc == ET_OK && list_has(x.req_headers, "Expect:") && !list_has(x.req_headers, "Content-Type:")
       && list_has(x.req_headers, "Authorization: Bearer T"),
       "prepare: header list with Expect: and the caller's Content-Type");
    rc = et_xfer_prepare(&x, ET_HTTP_PUT, "http://h/p", plain, 1, "raw", 3, 1, 0);
    ok(rc == ET_OK && list_has(x.req_headers, "Content-Type:"),
       "prepare: a body without Content-Type suppresses curl's form type");
    rc = et_xfer_prepare(&x, ET_HTTP_GET, "http://h/p", NULL, 0, NULL, 0, 0, 0);
    ok(rc == ET_OK && x.req_headers == NULL, "prepare: GET without headers or body: no header list");
    ok(x.what == NULL && x.st.url && streq(x.st.url, "http://h/p"),
       "prepare: the URL kept in the handle's URL object; its description built only for a message");
    et_xfer_finish(&x, CURLE_COULDNT_CONNECT);
    ok(x.req_headers == NULL, "finish: request header list freed");
    ok(x.code == ET_HTTP_CONNECT && x.message && strncmp(x.message, "GET http://h/p: ", 16) == 0,
       "finish: message starts with method and URL");
    e = et_xfer_release(&x);
    ok(e != NULL && x.easy == NULL && x.message == NULL, "release: hands the handle back");
    curl_easy_cleanup(e);
    et_http_opts_free(&o);
}

/* The handler a host had before a blocking transfer: counts the SIGINTs handed back to it. */
static volatile sig_atomic_t host_sigints;
static void host_handler(int sig)
{
    (void)sig;
    host_sigints++;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A blocking GET to a loopback socket that never answers (listening, never accepting: the kernel
 * completes the handshake), with a child process sending SIGINT after 200 ms. Returns the transfer's
 * code after finish; *elapsed the seconds perform took. */
static et_http_code_t silent_get(double *elapsed, char *msg, size_t msglen, int send_sigint, long timeout_ms)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    char url[64];
    et_xfer_t x;
    et_http_opts_t o;
    CURL *e = curl_easy_init();
    CURLM *m;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    pid_t parent = getpid(), child;
    double t0;
    CURLcode rc;
    et_http_code_t code;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0
        || getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        if (fd >= 0)
            close(fd);
        curl_easy_cleanup(e);
        return ET_HTTP_TRANSPORT;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/silent", ntohs(a.sin_port));
    m = curl_multi_init();
    et_http_opts_init(&o);
    o.timeout_ms = timeout_ms;
    et_xfer_init(&x);
    et_xfer_configure(&x, e, &o);
    et_xfer_prepare(&x, ET_HTTP_GET, url, NULL, 0, NULL, 0, 0, 0);
    child = send_sigint ? fork() : -1;
    if (child == 0) {
        struct timespec d = { 0, 200 * 1000 * 1000 };
        nanosleep(&d, NULL);
        kill(parent, SIGINT);
        _exit(0);
    }
    t0 = now_s();
    rc = et_xfer_perform_blocking(&x, m);
    *elapsed = now_s() - t0;
    if (child > 0)
        waitpid(child, NULL, 0);
    et_xfer_finish(&x, rc);
    code = x.code;
    snprintf(msg, msglen, "%s", x.message ? x.message : "");
    curl_easy_cleanup(et_xfer_release(&x));
    curl_multi_cleanup(m);
    et_http_opts_free(&o);
    close(fd);
    return code;
}

static et_http_code_t interrupted_get(double *elapsed, char *msg, size_t msglen)
{
    return silent_get(elapsed, msg, msglen, 1, 1500);
}

/* A handler a host installs over ours later: with SA_SIGINFO, it checks what it is handed. */
static volatile sig_atomic_t later_sigints, later_info_ok;
static void later_handler(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    later_sigints++;
    later_info_ok = sig == SIGINT && info != NULL && info->si_signo == SIGINT;
}

/* The handler another thread installs while a transfer is in progress. */
static volatile sig_atomic_t thread_sigints;
static void thread_handler(int sig)
{
    (void)sig;
    thread_sigints++;
}

static void *install_later(void *arg)
{
    struct sigaction sa;
    struct timespec d = { 0, 150 * 1000 * 1000 };
    (void)arg;
    nanosleep(&d, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = thread_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    return NULL;
}

static int installed_is_ours(void)
{
    struct sigaction now;
    sigaction(SIGINT, NULL, &now);
    return (now.sa_flags & SA_SIGINFO) && now.sa_sigaction != later_handler;
}

static void test_sigint(void)
{
    struct sigaction sa, now;
    double elapsed;
    char msg[256];
    et_http_code_t code;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = host_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    code = interrupted_get(&elapsed, msg, sizeof msg);
    ok(code == ET_HTTP_INTERRUPTED && streq(et_http_code_name(code), "interrupted"),
       "sigint: a blocking transfer ends as 'interrupted'");
    ok(strstr(msg, "GET http://127.0.0.1:") == msg && strstr(msg, ": interrupted (SIGINT)") != NULL,
       "sigint: message names the request and the signal");
    ok(elapsed < 1.2, "sigint: the transfer ends before its 1.5 s timeout");
    ok(host_sigints == 1, "sigint: the host's own handler gets the signal once");
    ok(installed_is_ours(), "sigint: ours stays installed after the transfer (no per-request swap)");
    raise(SIGINT);
    ok(host_sigints == 2, "sigint: outside a transfer, every SIGINT still reaches the host's handler");

    /* A host installs its own handler over ours (as lua.c does before each chunk): it gets the
     * signal; the next look (forced here, else within a second) chains ours in front of it again. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = later_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    raise(SIGINT);
    ok(later_sigints == 1 && host_sigints == 2, "sigint: a handler installed over ours gets the signal");
    et_sigint_recheck();
    code = interrupted_get(&elapsed, msg, sizeof msg);
    ok(code == ET_HTTP_INTERRUPTED && elapsed < 1.2,
       "sigint: re-chained over the host's later handler, the transfer is interrupted within a poll round");
    ok(later_sigints == 2 && later_info_ok && host_sigints == 2,
       "sigint: chaining calls the later (SA_SIGINFO) handler with the signal's arguments");
    ok(installed_is_ours(), "sigint: ours installed again, in front of it");

    /* Another thread installs a handler while a transfer is in progress: it survives the transfer. */
    {
        pthread_t th;
        pthread_create(&th, NULL, install_later, NULL);
        code = silent_get(&elapsed, msg, sizeof msg, 0, 500);
        pthread_join(th, NULL);
        sigaction(SIGINT, NULL, &now);
        ok(code == ET_HTTP_TIMEOUT && !(now.sa_flags & SA_SIGINFO) && now.sa_handler == thread_handler,
           "sigint: a handler another thread installs during a transfer is not clobbered");
        raise(SIGINT);
        ok(thread_sigints == 1 && later_sigints == 2, "sigint: and it gets the next SIGINT");
    }

    /* SIG_DFL: the transfer ends within a poll round, then the process dies of SIGINT as it would
     * have (in a child). */
    {
        pid_t child;
        int status = 0;
        double t0 = now_s();
        child = fork();
        if (child == 0) {
            signal(SIGINT, SIG_DFL);
            et_sigint_recheck();
            (void)interrupted_get(&elapsed, msg, sizeof msg);
            _exit(3);                   /* not reached: the default action */
        }
        waitpid(child, &status, 0);
        ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT && now_s() - t0 < 1.2,
           "sigint: under SIG_DFL, the transfer ends at once and the process then dies of SIGINT");
    }

    /* A process that ignores SIGINT keeps ignoring it: the transfer runs to its timeout. */
    signal(SIGINT, SIG_IGN);
    et_sigint_recheck();
    code = interrupted_get(&elapsed, msg, sizeof msg);
    ok(code == ET_HTTP_TIMEOUT && elapsed >= 1.4, "sigint: ignored SIGINT stays ignored");
    sigaction(SIGINT, NULL, &now);
    ok(now.sa_handler == SIG_IGN && host_sigints == 2, "sigint: SIG_IGN left in place");
    signal(SIGINT, SIG_DFL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_headers();
    test_body_limit();
    test_codes();
    test_describe();
    test_prepare();
    test_sigint();
    curl_global_cleanup();
    return tap_done("http");
}
