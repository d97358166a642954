/* SPDX-License-Identifier: MIT */
/* C tests of the Redis core (et_redis.c): the framing (formatter, reader fed byte by byte, bounds)
 * and the blocking connection against a real redis-server that this binary starts itself (a child
 * on a free port with a password, no persistence): single use, TTLs, AUTH, SELECT, a killed and a
 * restarted server, a stalled server and a listener that never answers, each within its deadline.
 * redis-server is a declared test dependency (tools/deps.sh): without it this fails clearly. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "et_redis.h"
#include "tap.h"

#define PASSWORD "s3cret-pass-XYZ"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------------- framing */

static int is_str(const et_redis_value_t *v, int type, const char *s, size_t n)
{
    return v && v->type == type && v->len == n && memcmp(v->str, s, n) == 0 && v->str[n] == '\0';
}

/* Feeds s one byte at a time; returns the first reply (NULL if none), *rc the last status. */
static et_redis_value_t *feed_bytes(et_redis_reader_t *r, const char *s, size_t n, et_redis_code_t *rc)
{
    size_t i;
    et_redis_value_t *v = NULL;
    *rc = ET_REDIS_OK;
    for (i = 0; i < n && !v; i++) {
        *rc = et_redis_reader_feed(r, s + i, 1);
        if (*rc != ET_REDIS_OK)
            return NULL;
        *rc = et_redis_reader_get(r, &v);
        if (*rc != ET_REDIS_OK)
            return NULL;
    }
    return v;
}

static void test_format(void)
{
    const char *argv[3] = { "SET", "k", "v" };
    size_t lens[3] = { 3, 1, 1 }, n = 0;
    char *s = et_redis_format(3, argv, lens, &n);
    const char *want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    ok(s && n == strlen(want) && memcmp(s, want, n) == 0, "format: SET k v as a RESP array of bulk strings");
    free(s);
    ok(et_redis_format(0, argv, lens, &n) == NULL, "format: no argument refused");
    ok(et_redis_format(ET_REDIS_MAX_ARGS + 1, argv, lens, &n) == NULL, "format: too many arguments refused");
}

static void test_reader(void)
{
    const char *reply = "*4\r\n$3\r\nfoo\r\n:-42\r\n*2\r\n$-1\r\n+OK\r\n-ERR bad thing\r\n";
    et_redis_code_t rc;
    et_redis_reader_t *r = et_redis_reader_new();
    et_redis_value_t *v, *w = NULL;
    size_t i, n = strlen(reply);

    /* Byte by byte: nothing until the last byte. */
    v = NULL;
    for (i = 0; i < n; i++) {
        int early = v != NULL;
        et_redis_reader_feed(r, reply + i, 1);
        et_redis_reader_get(r, &v);
        if (early || (v && i + 1 < n)) {
            v = NULL;
            break;
        }
    }
    ok(v && v->type == ET_REDIS_ARRAY && v->n == 4, "reader: byte by byte, one reply at the last byte");
    ok(v && is_str(v->items[0], ET_REDIS_STRING, "foo", 3) && v->items[1]->type == ET_REDIS_INTEGER
           && v->items[1]->integer == -42,
       "reader: bulk string and integer");
    ok(v && v->items[2]->type == ET_REDIS_ARRAY && v->items[2]->n == 2 && v->items[2]->items[0]->type == ET_REDIS_NIL
           && is_str(v->items[2]->items[1], ET_REDIS_STATUS, "OK", 2),
       "reader: nested array with nil and status");
    ok(v && is_str(v->items[3], ET_REDIS_ERROR, "ERR bad thing", 13), "reader: an error reply inside an array");
    et_redis_value_free(v);

    /* Two replies in one feed, then nothing. */
    et_redis_reader_feed(r, "+A\r\n:7\r\n", 8);
    et_redis_reader_get(r, &v);
    et_redis_reader_get(r, &w);
    ok(is_str(v, ET_REDIS_STATUS, "A", 1) && w && w->type == ET_REDIS_INTEGER && w->integer == 7,
       "reader: pipelined replies come one by one");
    et_redis_value_free(v);
    et_redis_value_free(w);
    rc = et_redis_reader_get(r, &v);
    ok(rc == ET_REDIS_OK && v == NULL, "reader: nothing more");
    et_redis_reader_free(r);

    /* Malformed: a protocol error, sticky. */
    r = et_redis_reader_new();
    v = feed_bytes(r, "?what\r\n", 7, &rc);
    ok(!v && rc == ET_REDIS_EPROTOCOL && strstr(et_redis_reader_error(r), "malformed reply"),
       "reader: unknown type byte is a protocol error");
    ok(et_redis_reader_feed(r, "+OK\r\n", 5) == ET_REDIS_EPROTOCOL, "reader: the error is sticky");
    et_redis_reader_free(r);

    /* An array header beyond the element bound: refused before any allocation of that size. */
    r = et_redis_reader_new();
    et_redis_reader_feed(r, "*2000000000\r\n", 13);
    rc = et_redis_reader_get(r, &v);
    ok(rc == ET_REDIS_EPROTOCOL && !v && strstr(et_redis_reader_error(r), "too many elements"),
       "reader: array over ET_REDIS_MAX_ELEMENTS refused");
    et_redis_reader_free(r);

    /* Nested too: the bound applies at every level. */
    r = et_redis_reader_new();
    et_redis_reader_feed(r, "*1\r\n*1\r\n*2000000\r\n", 19);
    rc = et_redis_reader_get(r, &v);
    ok(rc == ET_REDIS_EPROTOCOL && !v, "reader: nested array over the bound refused");
    et_redis_reader_free(r);

    /* A bulk string announcing more than the pending bound: cut off once that many bytes came. */
    {
        size_t chunk = 1024 * 1024, fed = 0;
        char *junk = malloc(chunk);
        r = et_redis_reader_new();
        memset(junk, 'x', chunk);
        rc = et_redis_reader_feed(r, "$900000000\r\n", 12);
        while (rc == ET_REDIS_OK && fed <= (size_t)ET_REDIS_MAX_PENDING) {
            rc = et_redis_reader_feed(r, junk, chunk);
            fed += chunk;
        }
        ok(rc == ET_REDIS_EPROTOCOL && fed <= (size_t)ET_REDIS_MAX_PENDING + chunk,
           "reader: bytes without a reply bounded by ET_REDIS_MAX_PENDING");
        et_redis_reader_free(r);
        free(junk);
    }
}

/* The formatter's bytes read back by the reader: a request is an array of bulk strings. */
static void test_round_trip(void)
{
    const char *argv[4] = { "SET", "bin\r\nkey", "v\0a\r\n$3\r\nl", "" };
    size_t lens[4] = { 3, 8, 11, 0 }, n = 0, i;
    char *s = et_redis_format(4, argv, lens, &n);
    et_redis_reader_t *r = et_redis_reader_new();
    et_redis_code_t rc;
    et_redis_value_t *v = feed_bytes(r, s, n, &rc);
    int same = v && v->type == ET_REDIS_ARRAY && v->n == 4;
    for (i = 0; same && i < 4; i++)
        same = is_str(v->items[i], ET_REDIS_STRING, argv[i], lens[i]);
    ok(same, "round trip: formatter output read back (CR LF, NUL, empty argument), byte by byte");
    et_redis_value_free(v);
    et_redis_reader_free(r);
    free(s);
}

/* ---------------------------------------------------------------- a real redis-server */

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int port = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int have_program(const char *name)
{
    const char *path = getenv("PATH");
    char buf[4096];
    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        struct stat st;
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, name);
        if (stat(buf, &st) == 0 && (st.st_mode & S_IXUSR))
            return 1;
        path = end ? end + 1 : NULL;
    }
    return 0;
}

static pid_t server_pid = -1;

/* A TCP connection to 127.0.0.1:port, blocking; -1 on failure. */
static int raw_connect(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int server_start(int port)
{
    char portstr[16];
    long long until;
    snprintf(portstr, sizeof portstr, "%d", port);
    server_pid = fork();
    if (server_pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1",
               "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--enable-debug-command", "yes",
               "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    /* Ready once it accepts a connection (up to 5 s). */
    for (until = now_ms() + 5000; now_ms() < until;) {
        int fd = raw_connect(port);
        if (fd >= 0) {
            close(fd);
            return 1;
        }
        if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
            server_pid = -1;
            return 0;
        }
        sleep_ms(20);
    }
    return 0;
}

static void server_kill(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    server_pid = -1;
}

static et_redis_conn_t *conn(int port, const char *password, const char *user, int db, long timeout_ms)
{
    et_redis_opts_t o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = port;
    o.password = password;
    o.password_len = password ? strlen(password) : 0;
    o.username = user;
    o.db = db;
    o.timeout_ms = timeout_ms;
    return et_redis_conn_new(&o);
}

static int no_secret(const et_redis_conn_t *c)
{
    return strstr(et_redis_last_message(c), PASSWORD) == NULL && strstr(et_redis_last_message(c), "wrong-") == NULL;
}

/* PTTL of a key through the generic command path; -3 on failure. */
static long long pttl(et_redis_conn_t *c, const char *key)
{
    const char *argv[2] = { "PTTL", key };
    size_t lens[2] = { 4, strlen(key) };
    et_redis_value_t *v = NULL;
    long long t = -3;
    if (et_redis_command(c, 2, argv, lens, &v) == ET_REDIS_OK && v->type == ET_REDIS_INTEGER)
        t = v->integer;
    et_redis_value_free(v);
    return t;
}

static void test_commands(int port)
{
    et_redis_conn_t *c = conn(port, PASSWORD, NULL, 0, 1000), *c1;
    int added = -1, again = -1, found = -1, set = -1;
    char *val = NULL;
    size_t vlen = 0;
    long long removed = -1, t;
    et_redis_value_t *v = NULL;

    ok(et_redis_connect(c) == ET_REDIS_OK && et_redis_fd(c) >= 0, "connect: AUTH with the password");
    ok(et_redis_set_nx_px(c, "t:once", 6, "1", 1, 60000, &added) == ET_REDIS_OK && added == 1,
       "SET NX PX: the first time adds");
    ok(et_redis_set_nx_px(c, "t:once", 6, "1", 1, 60000, &again) == ET_REDIS_OK && again == 0,
       "SET NX PX: the second time does not");
    t = pttl(c, "t:once");
    ok(t > 0 && t <= 60000, "SET NX PX: the key has a TTL (PTTL > 0)");

    ok(et_redis_set_px(c, "t:val", 5, "a\0b", 3, 30000) == ET_REDIS_OK, "SET PX: OK");
    ok(et_redis_get(c, "t:val", 5, &val, &vlen, &found) == ET_REDIS_OK && found && vlen == 3
           && memcmp(val, "a\0b", 3) == 0,
       "SET PX then GET: binary value back");
    free(val);
    t = pttl(c, "t:val");
    ok(t > 0 && t <= 30000, "SET PX: the key has a TTL");
    ok(et_redis_pexpire(c, "t:val", 5, 5000, &set) == ET_REDIS_OK && set == 1 && pttl(c, "t:val") <= 5000,
       "PEXPIRE: TTL shortened");
    ok(et_redis_del(c, "t:val", 5, &removed) == ET_REDIS_OK && removed == 1, "DEL: one key removed");
    ok(et_redis_get(c, "t:val", 5, &val, &vlen, &found) == ET_REDIS_OK && !found && !val, "GET: nil reply");
    ok(et_redis_pexpire(c, "t:val", 5, 5000, &set) == ET_REDIS_OK && set == 0, "PEXPIRE: missing key");

    {
        const char *argv[2] = { "LPUSH", "t:once" };
        size_t lens[2] = { 5, 6 };
        const char *argv2[3] = { "LPUSH", "t:once", "x" };
        size_t lens2[3] = { 5, 6, 1 };
        ok(et_redis_command(c, 2, argv, lens, &v) == ET_REDIS_ESERVER && !v
               && strstr(et_redis_last_message(c), "ERR wrong number of arguments"),
           "command: an error reply is a server error with its text");
        ok(et_redis_command(c, 3, argv2, lens2, &v) == ET_REDIS_ESERVER
               && strstr(et_redis_last_message(c), "WRONGTYPE"),
           "command: WRONGTYPE is a server error");
        ok(et_redis_set_nx_px(c, "t:once2", 7, "1", 1, 1000, &added) == ET_REDIS_OK && added == 1,
           "a server error leaves the connection usable");
        ok(et_redis_connects(c) == 1, "one connection for all of the above");
    }

    /* fork(): the child opens its own connection; the parent's is left alone and still works. */
    {
        int status = -1;
        pid_t child = fork();
        if (child == 0) {
            int a = -1;
            int good = et_redis_set_nx_px(c, "t:child", 7, "1", 1, 10000, &a) == ET_REDIS_OK && a == 1
                       && et_redis_connects(c) == 2;
            et_redis_conn_free(c);      /* the child's copy (valgrind checks the child's leaks too) */
            _exit(good ? 0 : 1);
        }
        waitpid(child, &status, 0);
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork: the child connects anew and its call works");
        ok(et_redis_set_nx_px(c, "t:child", 7, "1", 1, 10000, &added) == ET_REDIS_OK && added == 0
               && et_redis_connects(c) == 1,
           "fork: the parent's connection still works (and sees the child's key)");
    }

    /* SELECT: db 1 is another keyspace. */
    c1 = conn(port, PASSWORD, NULL, 1, 1000);
    ok(et_redis_get(c1, "t:once", 6, &val, &vlen, &found) == ET_REDIS_OK && !found,
       "SELECT 1: keys of db 0 not seen");
    et_redis_conn_free(c1);
    c1 = conn(port, PASSWORD, NULL, 99, 1000);
    ok(et_redis_connect(c1) == ET_REDIS_ESERVER && strstr(et_redis_last_message(c1), "SELECT: ERR")
           && et_redis_fd(c1) < 0,
       "SELECT 99: server error, connection dropped");
    et_redis_conn_free(c1);

    /* ACL form: AUTH default <password>. */
    c1 = conn(port, PASSWORD, "default", 0, 1000);
    ok(et_redis_set_nx_px(c1, "t:acl", 5, "1", 1, 1000, &added) == ET_REDIS_OK && added == 1,
       "AUTH username password (ACL form)");
    et_redis_conn_free(c1);

    /* Auth failures: at once, clear, without the password. */
    {
        long long t0 = now_ms();
        c1 = conn(port, "wrong-" PASSWORD, NULL, 0, 2000);
        ok(et_redis_set_nx_px(c1, "t:x", 3, "1", 1, 1000, &added) == ET_REDIS_EAUTH
               && strstr(et_redis_last_message(c1), "authentication failed (WRONGPASS") && no_secret(c1)
               && now_ms() - t0 < 500,
           "wrong password: auth error at once, no password in the message");
        printf("# %s\n", et_redis_last_message(c1));
        ok(et_redis_fd(c1) < 0, "wrong password: connection dropped");
        et_redis_conn_free(c1);
        c1 = conn(port, NULL, NULL, 0, 2000);
        ok(et_redis_set_nx_px(c1, "t:x", 3, "1", 1, 1000, &added) == ET_REDIS_EAUTH
               && strstr(et_redis_last_message(c1), "NOAUTH"),
           "no password: NOAUTH is an auth error");
        et_redis_conn_free(c1);
        c1 = conn(port, PASSWORD, "nobody", 0, 2000);
        ok(et_redis_connect(c1) == ET_REDIS_EAUTH && no_secret(c1), "unknown ACL user: auth error");
        et_redis_conn_free(c1);
    }
    et_redis_conn_free(c);
}

/* A non-blocking pipeline: three commands in one send, their replies read in turn; an error reply
 * in the middle leaves the rest readable, and the connection serves the next send. */
static et_redis_value_t *nb_next(et_redis_conn_t *c, et_redis_code_t *rc)
{
    et_redis_value_t *v = NULL;
    long long deadline = now_ms() + 2000;
    int want = 0;
    for (;;) {
        struct pollfd p;
        *rc = et_redis_nb_recv(c, &v, &want);
        if (*rc != ET_REDIS_OK || v || now_ms() > deadline)
            return v;
        p.fd = et_redis_fd(c);
        p.events = (short)want;
        p.revents = 0;
        poll(&p, 1, 100);
    }
}

static void test_pipeline(int port)
{
    et_redis_conn_t *c = conn(port, PASSWORD, NULL, 0, 1000);
    const char *a1[] = { "SET", "p:k", "v" }, *a2[] = { "INCR", "p:k" }, *a3[] = { "GET", "p:k" },
               *a4[] = { "GET", "p:absent" };
    size_t l1[] = { 3, 3, 1 }, l2[] = { 4, 3 }, l3[] = { 3, 3 }, l4[] = { 3, 8 };
    size_t n1, n2, n3, n4;
    char *f1 = et_redis_format(3, a1, l1, &n1), *f2 = et_redis_format(2, a2, l2, &n2),
         *f3 = et_redis_format(2, a3, l3, &n3), *f4 = et_redis_format(2, a4, l4, &n4);
    char *req = malloc(n1 + n2 + n3);
    et_redis_value_t *v;
    et_redis_code_t rc;

    if (!f1 || !f2 || !f3 || !f4 || !req) {
        ok(0, "pipeline: formatted");
        goto done;
    }
    memcpy(req, f1, n1);
    memcpy(req + n1, f2, n2);
    memcpy(req + n1 + n2, f3, n3);
    ok(et_redis_nb_send(c, req, n1 + n2 + n3, 3) == ET_REDIS_OK, "pipeline: three commands sent at once");
    v = nb_next(c, &rc);
    ok(rc == ET_REDIS_OK && is_str(v, ET_REDIS_STATUS, "OK", 2), "pipeline: 1st reply (SET: OK)");
    et_redis_value_free(v);
    v = nb_next(c, &rc);
    ok(rc == ET_REDIS_ESERVER && !v && strstr(et_redis_last_message(c), "not an integer"),
       "pipeline: 2nd reply (INCR on text: an error reply)");
    v = nb_next(c, &rc);
    ok(rc == ET_REDIS_OK && is_str(v, ET_REDIS_STRING, "v", 1), "pipeline: 3rd reply still read (GET: v)");
    et_redis_value_free(v);
    v = nb_next(c, &rc);
    ok(rc == ET_REDIS_EPROTOCOL && !v, "pipeline: no 4th reply owed");
    ok(et_redis_nb_send(c, f4, n4, 1) == ET_REDIS_OK, "pipeline: the connection sends again");
    v = nb_next(c, &rc);
    ok(rc == ET_REDIS_OK && v && v->type == ET_REDIS_NIL, "pipeline: and reads its reply (nil)");
    et_redis_value_free(v);
    ok(et_redis_nb_send(c, f4, n4, 0) == ET_REDIS_EPROTOCOL && et_redis_nb_send(c, f4, n4, 65) == ET_REDIS_EPROTOCOL,
       "pipeline: 1 to ET_REDIS_MAX_PIPELINE commands per send");
done:
    free(f1);
    free(f2);
    free(f3);
    free(f4);
    free(req);
    et_redis_conn_free(c);
}

/* The formatter's bytes over a plain socket to the real server, the reply read byte by byte. */
static void test_framing_server(int port)
{
    const char *a1[2] = { "AUTH", PASSWORD };
    size_t l1[2] = { 4, strlen(PASSWORD) };
    const char *a2[5] = { "SET", "t:framed", "v\r\n", "PX", "10000" };
    size_t l2[5] = { 3, 8, 3, 2, 5 };
    const char *a3[2] = { "GET", "t:framed" };
    size_t l3[2] = { 3, 8 };
    size_t n1, n2, n3;
    char *q1 = et_redis_format(2, a1, l1, &n1), *q2 = et_redis_format(5, a2, l2, &n2),
         *q3 = et_redis_format(2, a3, l3, &n3);
    int fd = raw_connect(port), got = 0, good = 1;
    et_redis_reader_t *r = et_redis_reader_new();
    et_redis_value_t *v[3] = { NULL, NULL, NULL };
    long long until = now_ms() + 2000;
    char ch;
    /* Pipelined: three requests in a row, replies read one byte per recv. */
    good = fd >= 0 && send(fd, q1, n1, 0) == (ssize_t)n1 && send(fd, q2, n2, 0) == (ssize_t)n2
           && send(fd, q3, n3, 0) == (ssize_t)n3;
    while (good && got < 3 && now_ms() < until) {
        if (recv(fd, &ch, 1, 0) != 1 || et_redis_reader_feed(r, &ch, 1) != ET_REDIS_OK) {
            good = 0;
            break;
        }
        while (got < 3 && et_redis_reader_get(r, &v[got]) == ET_REDIS_OK && v[got])
            got++;
    }
    ok(good && got == 3 && is_str(v[0], ET_REDIS_STATUS, "OK", 2) && is_str(v[1], ET_REDIS_STATUS, "OK", 2)
           && is_str(v[2], ET_REDIS_STRING, "v\r\n", 3),
       "framing against the server: pipelined AUTH, SET, GET read back byte by byte");
    et_redis_value_free(v[0]);
    et_redis_value_free(v[1]);
    et_redis_value_free(v[2]);
    et_redis_reader_free(r);
    free(q1);
    free(q2);
    free(q3);
    if (fd >= 0)
        close(fd);
}

/* DEBUG SLEEP from another connection stalls the server: a call times out within its deadline,
 * and the next call after the stall works. */
static void test_stall(int port)
{
    const char *a1[2] = { "AUTH", PASSWORD };
    size_t l1[2] = { 4, strlen(PASSWORD) };
    const char *a2[3] = { "DEBUG", "SLEEP", "1.5" };
    size_t l2[3] = { 5, 5, 3 };
    size_t n1, n2;
    char *q1 = et_redis_format(2, a1, l1, &n1), *q2 = et_redis_format(3, a2, l2, &n2);
    et_redis_conn_t *c = conn(port, PASSWORD, NULL, 0, 300);
    int fd, added = -1;
    long long t0, dt;
    ok(et_redis_connect(c) == ET_REDIS_OK, "stall: connected before the stall");
    fd = raw_connect(port);
    if (fd >= 0) {
        (void)!send(fd, q1, n1, 0);
        sleep_ms(50);
        (void)!send(fd, q2, n2, 0);
        sleep_ms(100);      /* the server is now asleep */
    }
    t0 = now_ms();
    ok(et_redis_set_nx_px(c, "t:stall", 7, "1", 1, 1000, &added) == ET_REDIS_ETIMEOUT, "stall: timeout");
    dt = now_ms() - t0;
    printf("# stalled call returned after %lld ms (timeout 300): %s\n", dt, et_redis_last_message(c));
    ok(dt >= 290 && dt < 450, "stall: returned within the deadline (300 ms + 150 ms margin)");
    t0 = now_ms();
    ok(et_redis_set_nx_px(c, "t:stall2", 8, "1", 1, 1000, &added) == ET_REDIS_ETIMEOUT
           && now_ms() - t0 < 450,
       "stall: a new connection during the stall times out too (connect + AUTH within the deadline)");
    sleep_ms(1300);
    ok(et_redis_set_nx_px(c, "t:stall3", 8, "1", 1, 1000, &added) == ET_REDIS_OK && added == 1,
       "stall: the next call after the stall works");
    et_redis_conn_free(c);
    if (fd >= 0)
        close(fd);
    free(q1);
    free(q2);
}

/* A listener that accepts (backlog) but never answers, and one that answers garbage. */
static void test_silent_and_garbage(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM, 0), port, added = -1;
    et_redis_conn_t *c;
    long long t0, dt;
    pid_t child;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(lfd, (struct sockaddr *)&a, sizeof a);
    listen(lfd, 8);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    port = ntohs(a.sin_port);

    c = conn(port, NULL, NULL, 0, 250);
    t0 = now_ms();
    ok(et_redis_set_nx_px(c, "k", 1, "1", 1, 1000, &added) == ET_REDIS_ETIMEOUT, "silent listener: timeout");
    dt = now_ms() - t0;
    ok(dt >= 240 && dt < 400, "silent listener: within the deadline (250 ms + 150 ms margin)");
    et_redis_conn_free(c);
    c = conn(port, PASSWORD, NULL, 0, 250);
    t0 = now_ms();
    ok(et_redis_connect(c) == ET_REDIS_ETIMEOUT && now_ms() - t0 < 400 && no_secret(c),
       "silent listener: AUTH times out within the deadline");
    et_redis_conn_free(c);

    /* Garbage: a child accepts once and answers a line no RESP reader accepts. */
    child = fork();
    if (child == 0) {
        char buf[256];
        int fd = accept(lfd, NULL, NULL);
        /* The backlog still holds the (closed) connections above: answer each one accepted,
         * until killed. */
        while (fd >= 0) {
            struct pollfd p = { fd, POLLIN, 0 };
            if (poll(&p, 1, 2000) > 0 && recv(fd, buf, sizeof buf, 0) > 0)
                (void)!send(fd, "!garbage\r\n", 10, MSG_NOSIGNAL);
            close(fd);
            fd = accept(lfd, NULL, NULL);
        }
        _exit(0);
    }
    c = conn(port, NULL, NULL, 0, 1000);
    ok(et_redis_set_nx_px(c, "k", 1, "1", 1, 1000, &added) == ET_REDIS_EPROTOCOL
           && strstr(et_redis_last_message(c), "malformed reply") && et_redis_fd(c) < 0,
       "garbage reply: protocol error, connection dropped");
    printf("# %s\n", et_redis_last_message(c));
    et_redis_conn_free(c);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(lfd);
}

/* Redis killed, then restarted on the same port: errors within the deadline, then it works again
 * without a new connection object. */
static void test_kill_restart(int port)
{
    et_redis_conn_t *c = conn(port, PASSWORD, NULL, 0, 500);
    int added = -1;
    long long t0, dt;
    ok(et_redis_set_nx_px(c, "t:k", 3, "1", 1, 60000, &added) == ET_REDIS_OK, "kill: works before");
    server_kill();
    /* Right after the kill (the socket used less than ET_REDIS_IDLE_CHECK_MS ago, so not
     * checked): the command goes out on the dead socket and fails as reset, at once. */
    t0 = now_ms();
    ok(et_redis_set_nx_px(c, "t:k2", 4, "1", 1, 60000, &added) == ET_REDIS_ERESET && now_ms() - t0 < 200,
       "kill: a busy connection's next call fails as reset, at once");
    printf("# killed (busy): %s\n", et_redis_last_message(c));
    sleep_ms(ET_REDIS_IDLE_CHECK_MS + 50);
    t0 = now_ms();
    ok(et_redis_set_nx_px(c, "t:k2", 4, "1", 1, 60000, &added) == ET_REDIS_ECONNECT && no_secret(c),
       "kill: connect error once the server is gone");
    dt = now_ms() - t0;
    printf("# killed: %s (%lld ms)\n", et_redis_last_message(c), dt);
    ok(dt < 500 + 200, "kill: returned within the deadline");
    t0 = now_ms();
    ok(et_redis_set_nx_px(c, "t:k3", 4, "1", 1, 60000, &added) == ET_REDIS_ECONNECT && now_ms() - t0 < 700,
       "kill: and again on the next call");
    ok(server_start(port), "restart: redis-server again on the same port");
    ok(et_redis_set_nx_px(c, "t:k", 3, "1", 1, 60000, &added) == ET_REDIS_OK && added == 1,
       "restart: the next call works (fresh server: the key is new)");

    /* Killed while the connection is idle and open, restarted before the next call: the stale
     * socket is noticed and replaced, so the call does not fail at all. */
    server_kill();
    ok(server_start(port), "restart: killed and started again");
    sleep_ms(ET_REDIS_IDLE_CHECK_MS + 50);
    ok(et_redis_set_nx_px(c, "t:k", 3, "1", 1, 60000, &added) == ET_REDIS_OK && added == 1,
       "restart: a stale idle connection is replaced before the command");
    ok(et_redis_connects(c) == 3, "restart: three connections in all");

    /* Killed during a call (stalled by DEBUG SLEEP from another connection, killed 100 ms into
     * the call): the call fails at once with reset, not at its deadline. */
    {
        const char *a1[2] = { "AUTH", PASSWORD };
        size_t l1[2] = { 4, strlen(PASSWORD) };
        const char *a2[3] = { "DEBUG", "SLEEP", "2" };
        size_t l2[3] = { 5, 5, 1 };
        size_t n1, n2;
        char *q1 = et_redis_format(2, a1, l1, &n1), *q2 = et_redis_format(3, a2, l2, &n2);
        int fd = raw_connect(port);
        pid_t killer, victim = server_pid;
        (void)!send(fd, q1, n1, 0);
        sleep_ms(50);
        (void)!send(fd, q2, n2, 0);
        sleep_ms(50);
        killer = fork();
        if (killer == 0) {
            free(q1);
            free(q2);
            et_redis_conn_free(c);
            sleep_ms(100);
            kill(victim, SIGKILL);
            _exit(0);
        }
        et_redis_conn_free(c);
        c = conn(port, PASSWORD, NULL, 0, 1000);
        t0 = now_ms();
        ok(et_redis_set_nx_px(c, "t:mid", 5, "1", 1, 60000, &added) == ET_REDIS_ERESET, "killed mid-call: reset");
        dt = now_ms() - t0;
        printf("# killed mid-call: %s (%lld ms)\n", et_redis_last_message(c), dt);
        ok(dt < 600, "killed mid-call: returned when the connection dropped, before the deadline");
        waitpid(killer, NULL, 0);
        waitpid(victim, NULL, 0);
        server_pid = -1;
        close(fd);
        free(q1);
        free(q2);
        ok(server_start(port), "killed mid-call: started again");
        ok(et_redis_set_nx_px(c, "t:mid", 5, "1", 1, 60000, &added) == ET_REDIS_OK && added == 1,
           "killed mid-call: the next call works");
    }
    et_redis_conn_free(c);
}

int main(void)
{
    int port;
    signal(SIGPIPE, SIG_DFL);   /* send() must not need SIGPIPE ignored */
    test_format();
    test_reader();
    test_round_trip();
    test_silent_and_garbage();
    if (!have_program("redis-server")) {
        printf("# skip: redis-server not found (a test dependency: make deps / tools/deps.sh test)\n");
        ok(0, "redis-server installed");
        return tap_done("redis");
    }
    port = free_port();
    ok(port > 0 && server_start(port), "redis-server started on a free port");
    if (server_pid > 0) {
        test_commands(port);
        test_pipeline(port);
        test_framing_server(port);
        test_stall(port);
        test_kill_restart(port);
    }
    server_kill();
    return tap_done("redis");
}
