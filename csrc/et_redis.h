/* SPDX-License-Identifier: MIT */
/* Redis client core: hiredis's formatter and reader for the protocol, our own socket for the
 * transport, a deadline per call.
 *
 * Pure core: no Lua header, and no hiredis header here either (the types below are ours).
 *
 * Two layers:
 *  - Framing (et_redis_format, et_redis_reader_*): argv to request bytes, and bytes to replies,
 *    with no I/O at all, for transports that carry the bytes themselves (nginx cosockets, a
 *    poller's socket). Both are hiredis's (redisFormatCommandArgv, redisReader); the reader builds
 *    our et_redis_value_t trees, bounded (ET_REDIS_MAX_ELEMENTS per array, ET_REDIS_MAX_PENDING
 *    bytes fed while no reply completes).
 *  - A blocking connection (et_redis_conn_t) built on that framing: a non-blocking socket (close on
 *    exec, TCP_NODELAY, keep-alive, send with MSG_NOSIGNAL) and poll(2) against one deadline per
 *    call, connect, AUTH and SELECT included: a call returns within `timeout_ms` (name resolution
 *    aside: getaddrinfo is not bounded; numeric hosts skip it). Any transport or protocol failure
 *    drops the socket and the next call connects again; a socket idle for ET_REDIS_IDLE_CHECK_MS
 *    that the server closed (Redis restarted) is noticed before a command is sent, and replaced
 *    at once. A connection used in the child of a fork() opens its own (pthread_atfork).
 *
 * Messages never hold the password (AUTH errors are scrubbed of it too). */
#ifndef ET_REDIS_H
#define ET_REDIS_H

#include <stddef.h>

/* Most elements of one array reply, and most bytes fed to a reader while no reply completes. */
#ifndef ET_REDIS_MAX_ELEMENTS
#define ET_REDIS_MAX_ELEMENTS (1024 * 1024)
#endif
#ifndef ET_REDIS_MAX_PENDING
#define ET_REDIS_MAX_PENDING (64 * 1024 * 1024)
#endif
/* An idle socket is checked for a close by the server (one poll) before a command when it has
 * not been used for this many milliseconds. */
#ifndef ET_REDIS_IDLE_CHECK_MS
#define ET_REDIS_IDLE_CHECK_MS 100
#endif
/* Most arguments of one command. */
#ifndef ET_REDIS_MAX_ARGS
#define ET_REDIS_MAX_ARGS 1024
#endif

/* Results of the calls below. */
typedef enum et_redis_code {
    ET_REDIS_OK = 0,
    ET_REDIS_ECONNECT,      /* resolve failed, refused, unreachable: nothing was sent */
    ET_REDIS_ETIMEOUT,      /* the deadline passed (connect, send or reply) */
    ET_REDIS_EAUTH,         /* WRONGPASS / NOAUTH / AUTH refused */
    ET_REDIS_ERESET,        /* the connection was lost during the call */
    ET_REDIS_EPROTOCOL,     /* malformed or unexpected reply, or a reader bound */
    ET_REDIS_ESERVER,       /* an error reply: message is its text */
    ET_REDIS_ENOMEM
} et_redis_code_t;

/* "connect", "timeout", "auth", "reset", "protocol", "server", "nomem" ("ok" for ET_REDIS_OK). */
const char *et_redis_code_name(et_redis_code_t code);

/* Reply values (the type numbers are RESP2's, as hiredis numbers them). */
#define ET_REDIS_STRING  1
#define ET_REDIS_ARRAY   2
#define ET_REDIS_INTEGER 3
#define ET_REDIS_NIL     4
#define ET_REDIS_STATUS  5
#define ET_REDIS_ERROR   6

typedef struct et_redis_value {
    int type;
    long long integer;              /* INTEGER */
    size_t len;                     /* STRING, STATUS, ERROR: str holds len bytes and a NUL */
    char *str;
    size_t n;                       /* ARRAY: n items (none NULL once complete) */
    struct et_redis_value **items;
} et_redis_value_t;

void et_redis_value_free(et_redis_value_t *v);

/* ---------------------------------------------------------------- framing */

/* The request bytes of one command (RESP array of bulk strings): malloc'd, length in *len; the
 * caller frees them. NULL on argc outside 1..ET_REDIS_MAX_ARGS or out of memory. */
char *et_redis_format(int argc, const char *const *argv, const size_t *lens, size_t *len);

typedef struct et_redis_reader et_redis_reader_t;

et_redis_reader_t *et_redis_reader_new(void);      /* NULL: out of memory */
void et_redis_reader_free(et_redis_reader_t *r);
/* Feeds bytes. ET_REDIS_OK, ET_REDIS_EPROTOCOL (over ET_REDIS_MAX_PENDING, or the reader already
 * failed) or ET_REDIS_ENOMEM. */
et_redis_code_t et_redis_reader_feed(et_redis_reader_t *r, const char *p, size_t n);
/* The next complete reply: ET_REDIS_OK with *out set (an error reply is a value of type
 * ET_REDIS_ERROR, not a failure here), ET_REDIS_OK with *out NULL (more bytes needed), or
 * ET_REDIS_EPROTOCOL / ET_REDIS_ENOMEM (the reader is then dead: every later call fails the
 * same way). The caller owns *out. */
et_redis_code_t et_redis_reader_get(et_redis_reader_t *r, et_redis_value_t **out);
/* The message of the reader's failure ("" when none). */
const char *et_redis_reader_error(const et_redis_reader_t *r);

/* ---------------------------------------------------------------- blocking connection */

typedef struct et_redis_opts {
    const char *host;           /* name or address; NULL: "127.0.0.1" */
    int port;                   /* 0: 6379 */
    const char *username;       /* NULL: AUTH with the password alone */
    const char *password;       /* NULL: no AUTH */
    size_t password_len;
    int db;                     /* SELECT when not 0 */
    long timeout_ms;            /* deadline of each call; <= 0: 1000 */
} et_redis_opts_t;

typedef struct et_redis_conn et_redis_conn_t;

/* Copies the options; does not connect. NULL: out of memory. */
et_redis_conn_t *et_redis_conn_new(const et_redis_opts_t *o);
/* Closes the socket, wipes the password, frees everything. NULL is fine. */
void et_redis_conn_free(et_redis_conn_t *c);
/* Closes the socket only (the next call connects again). */
void et_redis_conn_close(et_redis_conn_t *c);

/* Connects (and authenticates, selects) now unless connected; deadline timeout_ms. */
et_redis_code_t et_redis_connect(et_redis_conn_t *c);

/* One command, argv form or pre-formatted bytes (et_redis_format's). ET_REDIS_OK with *out the
 * reply (never an error reply: that is ET_REDIS_ESERVER, or ET_REDIS_EAUTH for NOAUTH/WRONGPASS,
 * with its text as the message); else *out is NULL. The caller owns *out. */
et_redis_code_t et_redis_command(et_redis_conn_t *c, int argc, const char *const *argv, const size_t *lens,
                                 et_redis_value_t **out);
et_redis_code_t et_redis_command_raw(et_redis_conn_t *c, const char *req, size_t len, et_redis_value_t **out);

/* The store's commands, all single-key; each checks the reply's type (else ET_REDIS_EPROTOCOL).
 *   set_nx_px: SET key val NX PX ms; *added 1 when set, 0 when the key existed
 *   set_px:    SET key val PX ms
 *   get:       GET key; *found 0 for a nil reply, else *val (malloc'd, NUL-terminated) and *vlen
 *   del:       DEL key; *removed the count
 *   pexpire:   PEXPIRE key ms; *set 1 when the key exists */
et_redis_code_t et_redis_set_nx_px(et_redis_conn_t *c, const char *key, size_t klen, const char *val,
                                   size_t vlen, long long ms, int *added);
et_redis_code_t et_redis_set_px(et_redis_conn_t *c, const char *key, size_t klen, const char *val, size_t vlen,
                                long long ms);
et_redis_code_t et_redis_get(et_redis_conn_t *c, const char *key, size_t klen, char **val, size_t *vlen,
                             int *found);
et_redis_code_t et_redis_del(et_redis_conn_t *c, const char *key, size_t klen, long long *removed);
et_redis_code_t et_redis_pexpire(et_redis_conn_t *c, const char *key, size_t klen, long long ms, int *set);

/* The last call's failure: its code and message (never holding the password). */
et_redis_code_t et_redis_last_code(const et_redis_conn_t *c);
const char *et_redis_last_message(const et_redis_conn_t *c);
/* The socket, or -1 when not connected. */
int et_redis_fd(const et_redis_conn_t *c);
/* "host:port" as given. */
const char *et_redis_endpoint(const et_redis_conn_t *c);
/* Connections opened so far (reconnects included). */
unsigned long et_redis_connects(const et_redis_conn_t *c);
long et_redis_timeout_ms(const et_redis_conn_t *c);
int et_redis_db(const et_redis_conn_t *c);

/* ---------------------------------------------------------------- non-blocking use
 * The same connection driven by the caller's event loop (a poller task): nothing here waits.
 * et_redis_nb_send queues `count` commands (et_redis_format's bytes, concatenated: a pipeline of
 * 1 to ET_REDIS_MAX_PIPELINE) and, on a connection not open
 * yet, starts a non-blocking connect with AUTH and SELECT queued before the command (one round
 * trip); it writes what the socket takes at once. et_redis_nb_recv then advances the exchange
 * (connect completion, the rest of the bytes, the replies): ET_REDIS_OK with *out the next command's
 * reply (call it once per command; an error reply leaves the rest of a pipeline readable), or ET_REDIS_OK with *out NULL and *want the poll events to wait for (POLLIN or POLLOUT)
 * on et_redis_fd; or a failure as et_redis_command's (an error reply is ET_REDIS_ESERVER or
 * ET_REDIS_EAUTH). The caller owns the deadline: when it passes, et_redis_conn_close drops the
 * exchange. A command sent while another is unfinished (or a blocking call made meanwhile) drops
 * the connection first. Name resolution (getaddrinfo) still blocks; numeric hosts skip it. */
#define ET_REDIS_MAX_PIPELINE 64
et_redis_code_t et_redis_nb_send(et_redis_conn_t *c, const char *req, size_t len, int count);
et_redis_code_t et_redis_nb_recv(et_redis_conn_t *c, et_redis_value_t **out, int *want);

#endif
