/* SPDX-License-Identifier: MIT */
/* Redis client core (et_redis.h): hiredis frames, we carry the bytes with a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "et_fork.h"
#include "et_redis.h"

/* ---------------------------------------------------------------- the connection */


struct et_redis_conn {
    char *host;
    int port;
    char *username;
    char *password;
    size_t password_len;
    int db;
    long timeout_ms;
    int fd;
    unsigned long fork_gen;     /* the fork generation (et_fork.h) when fd was opened */
    long long last_used;        /* ms (monotonic) at the end of the last call on fd */
    et_redis_reader_t *reader;
    unsigned long connects;
    et_redis_code_t code;
    char endpoint[300];
    char message[400];
    /* Non-blocking use (et_redis_nb_*): bytes still to send, and the exchange's progress. */
    char *nb_out;
    size_t nb_cap, nb_len, nb_off;
    int nb_busy;                /* replies still owed for the commands sent (a pipeline: several) */
    int nb_connecting;          /* connect() in progress */
    int nb_auth, nb_select;     /* the AUTH / SELECT replies still to read, before the command's */
};

static void wipe(void *p, size_t n)
{
    volatile unsigned char *q = p;
    while (n--)
        *q++ = 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

et_redis_conn_t *et_redis_conn_new(const et_redis_opts_t *o)
{
    et_redis_conn_t *c;
    (void)et_fork_register();
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = -1;
    c->port = o->port > 0 ? o->port : 6379;
    c->db = o->db;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 1000;
    c->host = dup_str(o->host ? o->host : "127.0.0.1");
    if (o->username)
        c->username = dup_str(o->username);
    if (o->password) {
        c->password = malloc(o->password_len + 1);
        if (c->password) {
            memcpy(c->password, o->password, o->password_len);
            c->password[o->password_len] = '\0';
            c->password_len = o->password_len;
        }
    }
    if (!c->host || (o->username && !c->username) || (o->password && !c->password)) {
        et_redis_conn_free(c);
        return NULL;
    }
    snprintf(c->endpoint, sizeof c->endpoint, strchr(c->host, ':') ? "[%s]:%d" : "%s:%d", c->host, c->port);
    return c;
}

void et_redis_conn_close(et_redis_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    et_redis_reader_free(c->reader);
    c->reader = NULL;
    if (c->nb_out)
        wipe(c->nb_out, c->nb_len);     /* may hold AUTH's password */
    c->nb_len = c->nb_off = 0;
    c->nb_busy = c->nb_connecting = c->nb_auth = c->nb_select = 0;
}

void et_redis_conn_free(et_redis_conn_t *c)
{
    if (!c)
        return;
    et_redis_conn_close(c);
    free(c->nb_out);
    if (c->password) {
        wipe(c->password, c->password_len);
        free(c->password);
    }
    free(c->username);
    free(c->host);
    free(c);
}

et_redis_code_t et_redis_last_code(const et_redis_conn_t *c) { return c->code; }
const char *et_redis_last_message(const et_redis_conn_t *c) { return c->message; }
int et_redis_fd(const et_redis_conn_t *c) { return c->fd; }
const char *et_redis_endpoint(const et_redis_conn_t *c) { return c->endpoint; }
unsigned long et_redis_connects(const et_redis_conn_t *c) { return c->connects; }
long et_redis_timeout_ms(const et_redis_conn_t *c) { return c->timeout_ms; }
int et_redis_db(const et_redis_conn_t *c) { return c->db; }

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The message never holds the password: a text that does is replaced whole. */
static et_redis_code_t fail(et_redis_conn_t *c, et_redis_code_t code, int drop, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static et_redis_code_t fail(et_redis_conn_t *c, et_redis_code_t code, int drop, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (c->password_len > 0 && strstr(text, c->password))
        snprintf(text, sizeof text, "%s", code == ET_REDIS_EAUTH ? "authentication failed" : "error (message withheld)");
    snprintf(c->message, sizeof c->message, "redis %.100s: %s", c->endpoint, text);
    c->code = code;
    if (drop)
        et_redis_conn_close(c);
    return code;
}

/* Waits for events on the socket until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd p;
        long long left = deadline - now_ms();
        int rc;
        if (left <= 0)
            return 0;
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc > 0)
            return 1;   /* POLLERR/POLLHUP too: the next send or recv tells */
        if (rc == 0)
            continue;   /* the loop sees the deadline */
        if (errno != EINTR)
            return -1;
    }
}

static int open_socket(const struct addrinfo *ai)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return fd;
}

/* The addresses of the host (a numeric one without asking the resolver), or fail(). */
static et_redis_code_t lookup(et_redis_conn_t *c, struct addrinfo **res)
{
    struct addrinfo hints;
    char port[16];
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", c->port);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(c->host, port, &hints, res);
    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_NUMERICSERV;
        rc = getaddrinfo(c->host, port, &hints, res);
    }
    if (rc != 0)
        return fail(c, rc == EAI_MEMORY ? ET_REDIS_ENOMEM : ET_REDIS_ECONNECT, 1, "cannot resolve host (%s)",
                    gai_strerror(rc));
    return ET_REDIS_OK;
}

/* TCP connect to the first address that accepts, within the deadline. */
static et_redis_code_t tcp_connect(et_redis_conn_t *c, long long deadline)
{
    struct addrinfo *res = NULL, *ai;
    int err = 0, timed_out = 0;
    if (lookup(c, &res) != ET_REDIS_OK)
        return c->code;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = open_socket(ai);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            c->fd = fd;
            break;
        }
        if (errno == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline);
            socklen_t len = sizeof err;
            if (w == 0) {
                close(fd);
                timed_out = 1;
                break;
            }
            if (w > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                c->fd = fd;
                break;
            }
            if (w < 0)
                err = errno;
        } else {
            err = errno;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (c->fd >= 0)
        return ET_REDIS_OK;
    if (timed_out)
        return fail(c, ET_REDIS_ETIMEOUT, 1, "connect timed out after %ld ms", c->timeout_ms);
    return fail(c, ET_REDIS_ECONNECT, 1, "connect failed: %s", strerror(err ? err : ECONNREFUSED));
}

static et_redis_code_t send_all(et_redis_conn_t *c, const char *p, size_t n, long long deadline)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, deadline);
            if (rc == 0)
                return fail(c, ET_REDIS_ETIMEOUT, 1, "timed out after %ld ms (sending)", c->timeout_ms);
            if (rc < 0)
                return fail(c, ET_REDIS_ERESET, 1, "poll failed: %s", strerror(errno));
            continue;
        }
        return fail(c, ET_REDIS_ERESET, 1, "connection lost (sending: %s)", strerror(w < 0 ? errno : EPIPE));
    }
    return ET_REDIS_OK;
}

/* One recv into the reader: ET_REDIS_OK when bytes were fed or none came yet (*blocked set when the
 * socket would block; an EINTR neither), else fail() (closed, lost, or the reader refused them). */
static et_redis_code_t recv_feed(et_redis_conn_t *c, int *blocked)
{
    char buf[16384];
    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
    *blocked = 0;
    if (r > 0) {
        et_redis_code_t rc = et_redis_reader_feed(c->reader, buf, (size_t)r);
        if (rc != ET_REDIS_OK)
            return fail(c, rc, 1, "%s", et_redis_reader_error(c->reader));
        return ET_REDIS_OK;
    }
    if (r == 0)
        return fail(c, ET_REDIS_ERESET, 1, "connection closed by the server");
    if (errno == EINTR)
        return ET_REDIS_OK;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *blocked = 1;
        return ET_REDIS_OK;
    }
    return fail(c, ET_REDIS_ERESET, 1, "connection lost (%s)", strerror(errno));
}

/* Reads until one reply is complete. The reply's own error type is returned as a value. */
static et_redis_code_t read_reply(et_redis_conn_t *c, long long deadline, et_redis_value_t **out)
{
    int blocked;
    for (;;) {
        et_redis_code_t rc = et_redis_reader_get(c->reader, out);
        if (rc != ET_REDIS_OK)
            return fail(c, rc, 1, "%s", et_redis_reader_error(c->reader));
        if (*out)
            return ET_REDIS_OK;
        /* Poll first: just after the send (or a partial read), the bytes are rarely there yet,
         * and a recv that only says EAGAIN would be one more system call on every command. */
        {
            int w = wait_fd(c->fd, POLLIN, deadline);
            if (w == 0)
                return fail(c, ET_REDIS_ETIMEOUT, 1, "timed out after %ld ms (waiting for the reply)", c->timeout_ms);
            if (w < 0)
                return fail(c, ET_REDIS_ERESET, 1, "poll failed: %s", strerror(errno));
        }
        if (recv_feed(c, &blocked) != ET_REDIS_OK)
            return c->code;
    }
}

static int starts_with(const et_redis_value_t *v, const char *prefix)
{
    size_t n = strlen(prefix);
    return v->len >= n && memcmp(v->str, prefix, n) == 0;
}

/* An error reply as the call's failure: NOAUTH and WRONGPASS are auth, the rest server. */
static et_redis_code_t server_error(et_redis_conn_t *c, const et_redis_value_t *v, const char *what)
{
    int auth = starts_with(v, "NOAUTH") || starts_with(v, "WRONGPASS");
    return fail(c, auth ? ET_REDIS_EAUTH : ET_REDIS_ESERVER, 0, "%s%s%.200s", what ? what : "", what ? ": " : "",
                v->str);
}

/* Connect, then AUTH and SELECT sent together (one round trip). */
static et_redis_code_t do_connect(et_redis_conn_t *c, long long deadline)
{
    et_redis_code_t rc;
    char *auth = NULL, *sel = NULL;
    size_t auth_len = 0, sel_len = 0;
    et_redis_value_t *v = NULL;
    c->reader = et_redis_reader_new();
    if (!c->reader)
        return fail(c, ET_REDIS_ENOMEM, 1, "out of memory");
    rc = tcp_connect(c, deadline);
    if (rc != ET_REDIS_OK)
        return rc;
    c->fork_gen = et_fork_now();
    c->connects++;
    if (c->password) {
        const char *argv[3] = { "AUTH", c->username, c->password };
        size_t lens[3] = { 4, c->username ? strlen(c->username) : 0, c->password_len };
        if (c->username) {
            auth = et_redis_format(3, argv, lens, &auth_len);
        } else {
            argv[1] = c->password;
            lens[1] = c->password_len;
            auth = et_redis_format(2, argv, lens, &auth_len);
        }
        if (!auth)
            return fail(c, ET_REDIS_ENOMEM, 1, "out of memory");
        rc = send_all(c, auth, auth_len, deadline);
        wipe(auth, auth_len);
        free(auth);
        if (rc != ET_REDIS_OK)
            return rc;
    }
    if (c->db != 0) {
        char db[24];
        const char *argv[2] = { "SELECT", db };
        size_t lens[2] = { 6, 0 };
        lens[1] = (size_t)snprintf(db, sizeof db, "%d", c->db);
        sel = et_redis_format(2, argv, lens, &sel_len);
        if (!sel)
            return fail(c, ET_REDIS_ENOMEM, 1, "out of memory");
        rc = send_all(c, sel, sel_len, deadline);
        free(sel);
        if (rc != ET_REDIS_OK)
            return rc;
    }
    if (c->password) {
        rc = read_reply(c, deadline, &v);
        if (rc != ET_REDIS_OK)
            return rc;
        if (v->type == ET_REDIS_ERROR) {
            /* WRONGPASS, or ERR AUTH ... without any password configured: both the operator's
             * configuration; the server's text names no password. */
            fail(c, ET_REDIS_EAUTH, 1, "authentication failed (%.160s)", v->str);
            et_redis_value_free(v);
            return ET_REDIS_EAUTH;
        }
        et_redis_value_free(v);
    }
    if (c->db != 0) {
        rc = read_reply(c, deadline, &v);
        if (rc != ET_REDIS_OK)
            return rc;
        if (v->type == ET_REDIS_ERROR) {
            rc = server_error(c, v, "SELECT");
            et_redis_value_free(v);
            et_redis_conn_close(c);
            return rc;
        }
        et_redis_value_free(v);
    }
    return ET_REDIS_OK;
}

/* An idle socket that is readable has been closed by the server (or holds stray bytes): either
 * way it cannot carry the next command. Checked (one poll) when the socket has been idle for
 * ET_REDIS_IDLE_CHECK_MS: a busy connection pays nothing, and a server that died between two
 * close calls costs that one call (reset), like a death during a call. */
static void drop_if_stale(et_redis_conn_t *c, long long now)
{
    struct pollfd p;
    if (c->fd < 0)
        return;
    /* After fork(): the parent's socket stays the parent's. Closing our copy of the descriptor
     * sends nothing (the parent still holds it); a fresh connection is opened for this process. */
    if (c->fork_gen != et_fork_now()) {
        et_redis_conn_close(c);
        return;
    }
    if (now - c->last_used < ET_REDIS_IDLE_CHECK_MS)
        return;
    p.fd = c->fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, 0) != 0)
        et_redis_conn_close(c);
}

static et_redis_code_t ensure(et_redis_conn_t *c, long long now, long long deadline)
{
    if (c->nb_busy)             /* a non-blocking exchange left unfinished: its reply would come first */
        et_redis_conn_close(c);
    drop_if_stale(c, now);
    if (c->fd >= 0)
        return ET_REDIS_OK;
    return do_connect(c, deadline);
}

et_redis_code_t et_redis_connect(et_redis_conn_t *c)
{
    long long now = now_ms();
    et_redis_code_t rc;
    c->code = ET_REDIS_OK;
    c->message[0] = '\0';
    rc = ensure(c, now, now + c->timeout_ms);
    if (rc == ET_REDIS_OK)
        c->last_used = now_ms();
    return rc;
}

et_redis_code_t et_redis_command_raw(et_redis_conn_t *c, const char *req, size_t len, et_redis_value_t **out)
{
    long long now = now_ms(), deadline = now + c->timeout_ms;
    et_redis_code_t rc;
    et_redis_value_t *v = NULL;
    *out = NULL;
    c->code = ET_REDIS_OK;
    c->message[0] = '\0';
    rc = ensure(c, now, deadline);
    if (rc == ET_REDIS_OK)
        rc = send_all(c, req, len, deadline);
    if (rc == ET_REDIS_OK)
        rc = read_reply(c, deadline, &v);
    if (rc != ET_REDIS_OK)
        return rc;
    c->last_used = now_ms();
    if (v->type == ET_REDIS_ERROR) {
        rc = server_error(c, v, NULL);
        et_redis_value_free(v);
        return rc;
    }
    *out = v;
    return ET_REDIS_OK;
}

et_redis_code_t et_redis_command(et_redis_conn_t *c, int argc, const char *const *argv, const size_t *lens,
                                 et_redis_value_t **out)
{
    size_t len;
    et_redis_code_t rc;
    char *req = et_redis_format(argc, argv, lens, &len);
    *out = NULL;
    if (!req) {
        if (argc < 1 || argc > ET_REDIS_MAX_ARGS)
            return fail(c, ET_REDIS_EPROTOCOL, 0, "a command has 1 to %d arguments", ET_REDIS_MAX_ARGS);
        return fail(c, ET_REDIS_ENOMEM, 0, "out of memory");
    }
    rc = et_redis_command_raw(c, req, len, out);
    free(req);
    return rc;
}

/* ---------------------------------------------------------------- the store's commands */

static et_redis_code_t unexpected(et_redis_conn_t *c, et_redis_value_t *v, const char *what)
{
    et_redis_value_free(v);
    return fail(c, ET_REDIS_EPROTOCOL, 0, "unexpected reply type to %s", what);
}

static et_redis_code_t set_cmd(et_redis_conn_t *c, const char *key, size_t klen, const char *val, size_t vlen,
                               long long ms, int nx, et_redis_value_t **v)
{
    char ttl[24];
    const char *argv[6] = { "SET", key, val, "PX", ttl, "NX" };
    size_t lens[6] = { 3, klen, vlen, 2, 0, 2 };
    lens[4] = (size_t)snprintf(ttl, sizeof ttl, "%lld", ms);
    return et_redis_command(c, nx ? 6 : 5, argv, lens, v);
}

et_redis_code_t et_redis_set_nx_px(et_redis_conn_t *c, const char *key, size_t klen, const char *val,
                                   size_t vlen, long long ms, int *added)
{
    et_redis_value_t *v;
    et_redis_code_t rc = set_cmd(c, key, klen, val, vlen, ms, 1, &v);
    if (rc != ET_REDIS_OK)
        return rc;
    if (v->type == ET_REDIS_NIL)
        *added = 0;
    else if (v->type == ET_REDIS_STATUS)
        *added = 1;
    else
        return unexpected(c, v, "SET NX");
    et_redis_value_free(v);
    return ET_REDIS_OK;
}

et_redis_code_t et_redis_set_px(et_redis_conn_t *c, const char *key, size_t klen, const char *val, size_t vlen,
                                long long ms)
{
    et_redis_value_t *v;
    et_redis_code_t rc = set_cmd(c, key, klen, val, vlen, ms, 0, &v);
    if (rc != ET_REDIS_OK)
        return rc;
    if (v->type != ET_REDIS_STATUS)
        return unexpected(c, v, "SET");
    et_redis_value_free(v);
    return ET_REDIS_OK;
}

et_redis_code_t et_redis_get(et_redis_conn_t *c, const char *key, size_t klen, char **val, size_t *vlen,
                             int *found)
{
    const char *argv[2] = { "GET", key };
    size_t lens[2] = { 3, klen };
    et_redis_value_t *v;
    et_redis_code_t rc = et_redis_command(c, 2, argv, lens, &v);
    *val = NULL;
    *vlen = 0;
    *found = 0;
    if (rc != ET_REDIS_OK)
        return rc;
    if (v->type == ET_REDIS_STRING) {
        *val = v->str;          /* handed over */
        *vlen = v->len;
        v->str = NULL;
        *found = 1;
    } else if (v->type != ET_REDIS_NIL) {
        return unexpected(c, v, "GET");
    }
    et_redis_value_free(v);
    return ET_REDIS_OK;
}

static et_redis_code_t int_cmd(et_redis_conn_t *c, int argc, const char *const *argv, const size_t *lens,
                               long long *n, const char *what)
{
    et_redis_value_t *v;
    et_redis_code_t rc = et_redis_command(c, argc, argv, lens, &v);
    if (rc != ET_REDIS_OK)
        return rc;
    if (v->type != ET_REDIS_INTEGER)
        return unexpected(c, v, what);
    *n = v->integer;
    et_redis_value_free(v);
    return ET_REDIS_OK;
}

et_redis_code_t et_redis_del(et_redis_conn_t *c, const char *key, size_t klen, long long *removed)
{
    const char *argv[2] = { "DEL", key };
    size_t lens[2] = { 3, klen };
    return int_cmd(c, 2, argv, lens, removed, "DEL");
}

et_redis_code_t et_redis_pexpire(et_redis_conn_t *c, const char *key, size_t klen, long long ms, int *set)
{
    char ttl[24];
    const char *argv[3] = { "PEXPIRE", key, ttl };
    size_t lens[3] = { 7, klen, 0 };
    long long n = 0;
    et_redis_code_t rc;
    lens[2] = (size_t)snprintf(ttl, sizeof ttl, "%lld", ms);
    rc = int_cmd(c, 3, argv, lens, &n, "PEXPIRE");
    *set = n == 1;
    return rc;
}

/* ---------------------------------------------------------------- non-blocking use */

static et_redis_code_t nb_queue(et_redis_conn_t *c, const char *p, size_t n)
{
    if (c->nb_off == c->nb_len)
        c->nb_off = c->nb_len = 0;
    if (n > c->nb_cap - c->nb_len) {
        size_t cap = c->nb_cap ? c->nb_cap : 256;
        char *q;
        while (cap - c->nb_len < n) {
            if (cap > ((size_t)-1) / 2)
                return fail(c, ET_REDIS_ENOMEM, 1, "out of memory");
            cap *= 2;
        }
        q = malloc(cap);
        if (!q)
            return fail(c, ET_REDIS_ENOMEM, 1, "out of memory");
        if (c->nb_out) {
            memcpy(q, c->nb_out, c->nb_len);
            wipe(c->nb_out, c->nb_cap);
            free(c->nb_out);
        }
        c->nb_out = q;
        c->nb_cap = cap;
    }
    memcpy(c->nb_out + c->nb_len, p, n);
    c->nb_len += n;
    return ET_REDIS_OK;
}

/* Starts a connect that does not wait: the first address that connects at once or is in
 * progress. AUTH and SELECT are queued. */
static et_redis_code_t nb_connect(et_redis_conn_t *c)
{
    struct addrinfo *res = NULL, *ai;
    int err = 0;
    et_redis_code_t code;
    c->reader = et_redis_reader_new();
    if (!c->reader)
        return fail(c, ET_REDIS_ENOMEM, 1, "out of memory");
    if (lookup(c, &res) != ET_REDIS_OK)
        return c->code;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = open_socket(ai);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            c->nb_connecting = errno == EINPROGRESS;
            c->fd = fd;
            break;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return fail(c, ET_REDIS_ECONNECT, 1, "connect failed: %s", strerror(err ? err : ECONNREFUSED));
    c->fork_gen = et_fork_now();
    c->connects++;
    if (c->password) {
        const char *argv[3] = { "AUTH", c->username, c->password };
        size_t lens[3] = { 4, c->username ? strlen(c->username) : 0, c->password_len };
        size_t len = 0;
        char *auth;
        if (c->username) {
            auth = et_redis_format(3, argv, lens, &len);
        } else {
            argv[1] = c->password;
            lens[1] = c->password_len;
            auth = et_redis_format(2, argv, lens, &len);
        }
        if (!auth)
            return fail(c, ET_REDIS_ENOMEM, 1, "out of memory");
        code = nb_queue(c, auth, len);
        wipe(auth, len);
        free(auth);
        if (code != ET_REDIS_OK)
            return code;
        c->nb_auth = 1;
    }
    if (c->db != 0) {
        char db[24], *sel;
        const char *argv[2] = { "SELECT", db };
        size_t lens[2] = { 6, 0 }, len = 0;
        lens[1] = (size_t)snprintf(db, sizeof db, "%d", c->db);
        sel = et_redis_format(2, argv, lens, &len);
        if (!sel)
            return fail(c, ET_REDIS_ENOMEM, 1, "out of memory");
        code = nb_queue(c, sel, len);
        free(sel);
        if (code != ET_REDIS_OK)
            return code;
        c->nb_select = 1;
    }
    return ET_REDIS_OK;
}

/* Sends what the socket takes now: 1 all sent, 0 would block, or a failure (negative). */
static int nb_flush(et_redis_conn_t *c)
{
    while (c->nb_off < c->nb_len) {
        ssize_t w = send(c->fd, c->nb_out + c->nb_off, c->nb_len - c->nb_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->nb_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        fail(c, ET_REDIS_ERESET, 1, "connection lost (sending: %s)", strerror(w < 0 ? errno : EPIPE));
        return -1;
    }
    wipe(c->nb_out, c->nb_len);
    c->nb_off = c->nb_len = 0;
    return 1;
}

et_redis_code_t et_redis_nb_send(et_redis_conn_t *c, const char *req, size_t len, int count)
{
    et_redis_code_t rc;
    c->code = ET_REDIS_OK;
    c->message[0] = '\0';
    if (count < 1 || count > ET_REDIS_MAX_PIPELINE)
        return fail(c, ET_REDIS_EPROTOCOL, 0, "1 to %d commands per send", ET_REDIS_MAX_PIPELINE);
    if (c->nb_busy)
        et_redis_conn_close(c);
    drop_if_stale(c, now_ms());
    if (c->fd < 0) {
        rc = nb_connect(c);
        if (rc != ET_REDIS_OK)
            return rc;
    }
    rc = nb_queue(c, req, len);
    if (rc != ET_REDIS_OK)
        return rc;
    c->nb_busy = count;
    if (!c->nb_connecting && nb_flush(c) < 0)
        return c->code;
    return ET_REDIS_OK;
}

et_redis_code_t et_redis_nb_recv(et_redis_conn_t *c, et_redis_value_t **out, int *want)
{
    int blocked;
    *out = NULL;
    *want = 0;
    c->code = ET_REDIS_OK;
    c->message[0] = '\0';
    if (!c->nb_busy || c->fd < 0)
        return fail(c, ET_REDIS_EPROTOCOL, 0, "no command in flight");
    if (c->fork_gen != et_fork_now())
        return fail(c, ET_REDIS_ERESET, 1, "connection opened before fork()");
    if (c->nb_connecting) {
        struct pollfd p;
        int err = 0;
        socklen_t len = sizeof err;
        p.fd = c->fd;
        p.events = POLLOUT;
        p.revents = 0;
        if (poll(&p, 1, 0) == 0) {
            *want = POLLOUT;
            return ET_REDIS_OK;
        }
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0)
            return fail(c, ET_REDIS_ECONNECT, 1, "connect failed: %s", strerror(err));
        c->nb_connecting = 0;
    }
    if (c->nb_off < c->nb_len) {
        int w = nb_flush(c);
        if (w < 0)
            return c->code;
        if (w == 0) {
            *want = POLLOUT;
            return ET_REDIS_OK;
        }
    }
    for (;;) {
        et_redis_value_t *v = NULL;
        et_redis_code_t rc = et_redis_reader_get(c->reader, &v);
        if (rc != ET_REDIS_OK)
            return fail(c, rc, 1, "%s", et_redis_reader_error(c->reader));
        if (v) {
            if (c->nb_auth) {
                c->nb_auth = 0;
                if (v->type == ET_REDIS_ERROR) {
                    fail(c, ET_REDIS_EAUTH, 1, "authentication failed (%.160s)", v->str);
                    et_redis_value_free(v);
                    return ET_REDIS_EAUTH;
                }
                et_redis_value_free(v);
                continue;
            }
            if (c->nb_select) {
                c->nb_select = 0;
                if (v->type == ET_REDIS_ERROR) {
                    rc = server_error(c, v, "SELECT");
                    et_redis_value_free(v);
                    et_redis_conn_close(c);
                    return rc;
                }
                et_redis_value_free(v);
                continue;
            }
            c->nb_busy--;
            c->last_used = now_ms();
            if (v->type == ET_REDIS_ERROR) {
                rc = server_error(c, v, NULL);
                et_redis_value_free(v);
                return rc;
            }
            *out = v;
            return ET_REDIS_OK;
        }
        if (recv_feed(c, &blocked) != ET_REDIS_OK)
            return c->code;
        if (blocked) {
            *want = POLLIN;
            return ET_REDIS_OK;
        }
    }
}
