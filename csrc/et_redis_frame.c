/* SPDX-License-Identifier: MIT */
/* Redis framing (et_redis.h): hiredis's formatter and reader, with our reply values and bounds.
 * No socket here: the blocking connection (et_redis.c), the poller and the nginx cosocket transport
 * carry the bytes themselves. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "et_redis.h"

const char *et_redis_code_name(et_redis_code_t code)
{
    switch (code) {
    case ET_REDIS_OK: return "ok";
    case ET_REDIS_ECONNECT: return "connect";
    case ET_REDIS_ETIMEOUT: return "timeout";
    case ET_REDIS_EAUTH: return "auth";
    case ET_REDIS_ERESET: return "reset";
    case ET_REDIS_EPROTOCOL: return "protocol";
    case ET_REDIS_ESERVER: return "server";
    case ET_REDIS_ENOMEM: return "nomem";
    }
    return "protocol";
}

/* ---------------------------------------------------------------- values */

void et_redis_value_free(et_redis_value_t *v)
{
    size_t i;
    if (!v)
        return;
    if (v->items) {
        for (i = 0; i < v->n; i++)
            et_redis_value_free(v->items[i]);
        free(v->items);
    }
    free(v->str);
    free(v);
}

/* ---------------------------------------------------------------- framing: the reader */

struct et_redis_reader {
    redisReader *r;
    size_t pending;             /* bytes fed since the last complete reply */
    int too_many;               /* an array over ET_REDIS_MAX_ELEMENTS was refused */
    et_redis_code_t failed;     /* sticky once the reader failed */
    char err[160];
};

/* hiredis calls these as it reads; each new value goes into its parent array. */
static void *attach(const redisReadTask *task, et_redis_value_t *v)
{
    if (task->parent) {
        et_redis_value_t *parent = task->parent->obj;
        if (task->idx < 0 || (size_t)task->idx >= parent->n) {
            et_redis_value_free(v);
            return NULL;
        }
        parent->items[task->idx] = v;
    }
    return v;
}

static et_redis_value_t *value_new(int type)
{
    et_redis_value_t *v = calloc(1, sizeof *v);
    if (v)
        v->type = type;
    return v;
}

static void *rd_string(const redisReadTask *task, char *str, size_t len)
{
    et_redis_value_t *v = value_new(task->type);
    if (!v)
        return NULL;
    v->str = malloc(len + 1);
    if (!v->str) {
        free(v);
        return NULL;
    }
    memcpy(v->str, str, len);
    v->str[len] = '\0';
    v->len = len;
    return attach(task, v);
}

static void *rd_array(const redisReadTask *task, int n)
{
    et_redis_value_t *v;
    if (n < 0 || n > ET_REDIS_MAX_ELEMENTS) {
        struct et_redis_reader *er = task->privdata;
        if (er)
            er->too_many = 1;
        return NULL;
    }
    v = value_new(ET_REDIS_ARRAY);
    if (!v)
        return NULL;
    if (n > 0) {
        v->items = calloc((size_t)n, sizeof *v->items);
        if (!v->items) {
            free(v);
            return NULL;
        }
    }
    v->n = (size_t)n;
    return attach(task, v);
}

static void *rd_integer(const redisReadTask *task, long long x)
{
    et_redis_value_t *v = value_new(ET_REDIS_INTEGER);
    if (!v)
        return NULL;
    v->integer = x;
    return attach(task, v);
}

static void *rd_nil(const redisReadTask *task)
{
    et_redis_value_t *v = value_new(ET_REDIS_NIL);
    return v ? attach(task, v) : NULL;
}

static void rd_free(void *p)
{
    et_redis_value_free(p);
}

static redisReplyObjectFunctions rd_functions = {
    rd_string, rd_array, rd_integer, rd_nil, rd_free
};

et_redis_reader_t *et_redis_reader_new(void)
{
    et_redis_reader_t *er = calloc(1, sizeof *er);
    if (!er)
        return NULL;
    er->r = redisReaderCreateWithFunctions(&rd_functions);
    if (!er->r) {
        free(er);
        return NULL;
    }
    er->r->privdata = er;
    return er;
}

void et_redis_reader_free(et_redis_reader_t *er)
{
    if (!er)
        return;
    redisReaderFree(er->r);
    free(er);
}

static et_redis_code_t reader_fail(et_redis_reader_t *er, et_redis_code_t code, const char *msg)
{
    er->failed = code;
    snprintf(er->err, sizeof er->err, "%s", msg);
    return code;
}

et_redis_code_t et_redis_reader_feed(et_redis_reader_t *er, const char *p, size_t n)
{
    if (er->failed)
        return er->failed;
    if (n > ET_REDIS_MAX_PENDING - er->pending)
        return reader_fail(er, ET_REDIS_EPROTOCOL, "reply larger than the reader's bound");
    if (n == 0)
        return ET_REDIS_OK;
    if (redisReaderFeed(er->r, p, n) != REDIS_OK)
        return reader_fail(er, ET_REDIS_ENOMEM, "out of memory");
    er->pending += n;
    return ET_REDIS_OK;
}

et_redis_code_t et_redis_reader_get(et_redis_reader_t *er, et_redis_value_t **out)
{
    void *reply = NULL;
    *out = NULL;
    if (er->failed)
        return er->failed;
    if (redisReaderGetReply(er->r, &reply) != REDIS_OK) {
        char msg[sizeof er->err];
        if (er->too_many)
            return reader_fail(er, ET_REDIS_EPROTOCOL, "array reply with too many elements");
        if (er->r->err == REDIS_ERR_OOM)
            return reader_fail(er, ET_REDIS_ENOMEM, "out of memory");
        snprintf(msg, sizeof msg, "malformed reply: %s", er->r->errstr);
        return reader_fail(er, ET_REDIS_EPROTOCOL, msg);
    }
    if (reply) {
        *out = reply;
        /* Bytes still buffered belong to the next replies. */
        er->pending = er->r->len - er->r->pos;
    }
    return ET_REDIS_OK;
}

const char *et_redis_reader_error(const et_redis_reader_t *er)
{
    return er->err;
}

/* ---------------------------------------------------------------- framing: the formatter */

char *et_redis_format(int argc, const char *const *argv, const size_t *lens, size_t *len)
{
    char *cmd = NULL, *copy;
    int n;
    if (argc < 1 || argc > ET_REDIS_MAX_ARGS)
        return NULL;
    /* hiredis's prototype lacks the inner const; it only reads the arguments. */
    n = redisFormatCommandArgv(&cmd, argc, (const char **)(void *)argv, lens);
    if (n < 0 || !cmd)
        return NULL;
    /* Ours to free with free(): hiredis allocates with its own allocator. */
    copy = malloc((size_t)n + 1);
    if (copy) {
        memcpy(copy, cmd, (size_t)n + 1);
        *len = (size_t)n;
    }
    redisFreeCommand(cmd);
    return copy;
}
