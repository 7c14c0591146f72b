/* The command table and the commands. Every reply and error text is Redis
 * 7.0's for the same input (the tests hold the bytes redis-server 7.0.15
 * sent), including its argument-parsing order: options before numbers for
 * EXPIRE, numbers before keys, arity before everything. The server has one
 * database, so it answers as a Redis started with `--databases 1` does.
 * Commands do no I/O: they append to the client's output buffer. */
#include "examples/kv/commands.h"

#include <errno.h>
#include <fnmatch.h>
#include <jemalloc/jemalloc.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <otter.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "examples/kv/resp.h"
#include "examples/kv/store.h"

#define KV_REDIS_VERSION "7.0.15"

struct kv_stats kv_stats;

typedef void (*kv_cmd_fn)(kv_client *c, const kv_arg *argv, size_t argc);

struct kv_cmd {
    const char *name; /* lower case, as Redis names commands in errors */
    int arity;        /* n: exactly n arguments; -n: at least n */
    kv_cmd_fn fn;
    const char *flags[3];
    int first, last, step;
    const char *acl[3];
};

void kv_client_init(kv_client *c, uint64_t id) {
    memset(c, 0, sizeof *c);
    kv_out_init(&c->out);
    c->out.realloc_fn = ot_realloc;
    c->out.free_fn = ot_free;
    c->id = id;
}

void kv_client_free(kv_client *c) {
    kv_out_free(&c->out);
    if (c->name)
        ot_free(c->name);
    c->name = NULL;
}

void kv_client_flush_stats(kv_client *c) {
    /* Statistics only: relaxed, read by INFO. */
    int s = ot_scheduler_id();
    struct kv_hot_stats *h = &kv_stats.hot[(unsigned)(s < 0 ? 0 : s) % KV_STAT_STRIPES];
    if (c->cmds)
        atomic_fetch_add_explicit(&h->commands_processed, c->cmds, memory_order_relaxed);
    if (c->hits)
        atomic_fetch_add_explicit(&h->keyspace_hits, c->hits, memory_order_relaxed);
    if (c->misses)
        atomic_fetch_add_explicit(&h->keyspace_misses, c->misses, memory_order_relaxed);
    c->cmds = c->hits = c->misses = 0;
}

/* ---- helpers ----------------------------------------------------------- */

static int eq(const kv_arg *a, const char *s) {
    size_t n = strlen(s);
    return a->n == n && strncasecmp(a->p, s, n) == 0;
}

/* A C string of an argument for %s formats: Redis formats its arguments as C
 * strings, so a NUL ends them there too. At most cap - 1 bytes. */
static const char *cstr(const kv_arg *a, char *buf, size_t cap) {
    size_t n = a->n < cap - 1 ? a->n : cap - 1;
    const char *z = memchr(a->p, '\0', n);
    if (z)
        n = (size_t)(z - a->p);
    memcpy(buf, a->p, n);
    buf[n] = '\0';
    return buf;
}

static const char *const err_int = "ERR value is not an integer or out of range";
static const char *const err_syntax = "ERR syntax error";

static int get_ll(kv_client *c, const kv_arg *a, long long *v) {
    if (kv_str2ll(a->p, a->n, v))
        return 0;
    kv_reply_error(&c->out, err_int);
    return -1;
}

static void wrong_args(kv_client *c, const char *name) {
    kv_reply_errorf(&c->out, "ERR wrong number of arguments for '%s' command", name);
}

static void unknown_subcommand(kv_client *c, const kv_arg *sub, const char *parent) {
    char b[140];
    kv_reply_errorf(&c->out, "ERR unknown subcommand '%s'. Try %s HELP.", cstr(sub, b, 129),
                    parent);
}

#ifndef OT_ASAN
/* 0, in a way the compiler cannot see through (for DEBUG SEGFAULT). */
static uintptr_t argc_zero(size_t argc) {
    static volatile uintptr_t zero;
    return zero + (argc & 0);
}
#endif

/* ---- strings ----------------------------------------------------------- */

struct getctx {
    kv_out *o;
    size_t need;
    int wrote;
};

/* Runs inside an ETS read: it writes only into room already reserved, and
 * otherwise asks for the room so that the read can be retried after it. */
static void get_cb(const void *v, size_t n, void *arg) {
    struct getctx *g = arg;
    if (g->o->cap - g->o->len < n + 32) {
        g->need = n + 32;
        return;
    }
    kv_reply_bulk(g->o, v, n);
    g->wrote = 1;
}

static void reply_get(kv_client *c, const kv_arg *k, int locked) {
    for (;;) {
        struct getctx g = {&c->out, 0, 0};
        if (!(locked ? kv_store_get_locked : kv_store_get)(k->p, k->n, &c->clock, get_cb, &g)) {
            c->misses++;
            kv_reply_null(&c->out);
            return;
        }
        if (g.wrote) {
            c->hits++;
            return;
        }
        if (!kv_out_reserve(&c->out, g.need))
            return;
    }
}

static void cmd_get(kv_client *c, const kv_arg *argv, size_t argc) {
    reply_get(c, &argv[1], 0);
}

/* MGET holds the stripes of all its keys, so it never sees half of an MSET. */
static void cmd_mget(kv_client *c, const kv_arg *argv, size_t argc) {
    size_t n = argc - 1;
    const void **p = ot_alloc(n * sizeof *p);
    size_t *len = ot_alloc(n * sizeof *len), *held = ot_alloc(n * sizeof *held);
    if (!p || !len || !held) {
        kv_reply_error(&c->out, "ERR out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = argv[1 + i].p;
        len[i] = argv[1 + i].n;
    }
    size_t u = kv_store_lock_keys((const void *const *)p, len, 1, n, held);
    kv_reply_array(&c->out, (long long)n);
    for (size_t i = 1; i < argc; i++)
        reply_get(c, &argv[i], 1);
    kv_store_unlock_keys(held, u);
out:
    ot_free(p);
    ot_free(len);
    ot_free(held);
}

enum { EXP_NONE, EXP_EX, EXP_PX, EXP_EXAT, EXP_PXAT };

/* Redis's getExpireMillisecondsOrReply: 0 and the absolute Unix ms in *at. */
static int expire_arg(kv_client *c, const kv_arg *a, int unit, int64_t now, int64_t *at) {
    long long v;
    if (get_ll(c, a, &v) < 0)
        return -1;
    int secs = unit == EXP_EX || unit == EXP_EXAT;
    int rel = unit == EXP_EX || unit == EXP_PX;
    if (v <= 0 || (secs && v > LLONG_MAX / 1000))
        goto bad;
    if (secs)
        v *= 1000;
    if (rel) {
        if (v > LLONG_MAX - now)
            goto bad;
        v += now;
    }
    *at = v;
    return 0;
bad:
    kv_reply_error(&c->out, "ERR invalid expire time in 'set' command");
    return -1;
}

static void cmd_set(kv_client *c, const kv_arg *argv, size_t argc) {
    int flags = 0, unit = EXP_NONE;
    const kv_arg *exp = NULL;
    for (size_t j = 3; j < argc; j++) {
        const kv_arg *o = &argv[j];
        const kv_arg *next = j + 1 < argc ? &argv[j + 1] : NULL;
        int timed = unit != EXP_NONE;
        if (eq(o, "NX") && !(flags & KV_SET_XX)) {
            flags |= KV_SET_NX;
        } else if (eq(o, "XX") && !(flags & KV_SET_NX)) {
            flags |= KV_SET_XX;
        } else if (eq(o, "GET")) {
            flags |= KV_SET_GET;
        } else if (eq(o, "KEEPTTL") && !timed) {
            flags |= KV_SET_KEEPTTL;
        } else if (next && !(flags & KV_SET_KEEPTTL) &&
                   ((eq(o, "EX") && (unit == EXP_NONE || unit == EXP_EX)) ||
                    (eq(o, "PX") && (unit == EXP_NONE || unit == EXP_PX)) ||
                    (eq(o, "EXAT") && (unit == EXP_NONE || unit == EXP_EXAT)) ||
                    (eq(o, "PXAT") && (unit == EXP_NONE || unit == EXP_PXAT)))) {
            unit = eq(o, "EX")     ? EXP_EX
                   : eq(o, "PX")   ? EXP_PX
                   : eq(o, "EXAT") ? EXP_EXAT
                                   : EXP_PXAT;
            exp = next;
            j++;
        } else {
            kv_reply_error(&c->out, err_syntax);
            return;
        }
    }
    int64_t at = 0;
    if (exp && expire_arg(c, exp, unit, kv_clock_ms(&c->clock), &at) < 0)
        return;
    int r = kv_store_set(argv[1].p, argv[1].n, argv[2].p, argv[2].n, at, flags, &c->clock, &c->out);
    if (r < 0) {
        if (!(flags & KV_SET_GET))
            kv_reply_error(&c->out, "ERR out of memory");
        return;
    }
    if (flags & KV_SET_GET)
        return; /* the old value was the reply */
    if (r)
        kv_reply_ok(&c->out);
    else
        kv_reply_null(&c->out);
}

static void cmd_mset(kv_client *c, const kv_arg *argv, size_t argc) {
    if (argc % 2 == 0) {
        wrong_args(c, "mset");
        return;
    }
    size_t n = (argc - 1) / 2;
    const void **p = ot_alloc(2 * n * sizeof *p);
    size_t *len = ot_alloc(2 * n * sizeof *len);
    int r = -ENOMEM;
    if (p && len) {
        for (size_t i = 0; i < 2 * n; i++) {
            p[i] = argv[1 + i].p;
            len[i] = argv[1 + i].n;
        }
        r = kv_store_mset((const void *const *)p, len, n);
    }
    ot_free(p);
    ot_free(len);
    if (r < 0)
        kv_reply_error(&c->out, "ERR out of memory");
    else
        kv_reply_ok(&c->out);
}

static void incr_reply(kv_client *c, const kv_arg *k, long long by) {
    int64_t v;
    int r = kv_store_incrby(k->p, k->n, by, &c->clock, &v);
    if (r == -EINVAL)
        kv_reply_error(&c->out, err_int);
    else if (r == -ERANGE)
        kv_reply_error(&c->out, "ERR increment or decrement would overflow");
    else if (r < 0)
        kv_reply_error(&c->out, "ERR out of memory");
    else
        kv_reply_int(&c->out, v);
}

static void cmd_incr(kv_client *c, const kv_arg *argv, size_t argc) {
    incr_reply(c, &argv[1], 1);
}
static void cmd_decr(kv_client *c, const kv_arg *argv, size_t argc) {
    incr_reply(c, &argv[1], -1);
}

static void cmd_incrby(kv_client *c, const kv_arg *argv, size_t argc) {
    long long by;
    if (get_ll(c, &argv[2], &by) == 0)
        incr_reply(c, &argv[1], by);
}

static void cmd_decrby(kv_client *c, const kv_arg *argv, size_t argc) {
    long long by;
    if (get_ll(c, &argv[2], &by) < 0)
        return;
    if (by == LLONG_MIN) {
        kv_reply_error(&c->out, "ERR decrement would overflow");
        return;
    }
    incr_reply(c, &argv[1], -by);
}

/* ---- keys -------------------------------------------------------------- */

static void cmd_del(kv_client *c, const kv_arg *argv, size_t argc) {
    long long n = 0;
    for (size_t i = 1; i < argc; i++)
        n += kv_store_del(argv[i].p, argv[i].n, &c->clock);
    kv_reply_int(&c->out, n);
}

static void cmd_exists(kv_client *c, const kv_arg *argv, size_t argc) {
    long long n = 0;
    for (size_t i = 1; i < argc; i++)
        n += kv_store_exists(argv[i].p, argv[i].n, &c->clock);
    kv_reply_int(&c->out, n);
}

static void expire_generic(kv_client *c, const kv_arg *argv, size_t argc, int secs,
                           const char *name) {
    int flags = 0;
    for (size_t j = 3; j < argc; j++) {
        if (eq(&argv[j], "NX"))
            flags |= KV_EXP_NX;
        else if (eq(&argv[j], "XX"))
            flags |= KV_EXP_XX;
        else if (eq(&argv[j], "GT"))
            flags |= KV_EXP_GT;
        else if (eq(&argv[j], "LT"))
            flags |= KV_EXP_LT;
        else {
            char b[512];
            kv_reply_errorf(&c->out, "ERR Unsupported option %s", cstr(&argv[j], b, sizeof b));
            return;
        }
    }
    if ((flags & KV_EXP_NX) && (flags & (KV_EXP_XX | KV_EXP_GT | KV_EXP_LT))) {
        kv_reply_error(&c->out, "ERR NX and XX, GT or LT options at the same time are not "
                                "compatible");
        return;
    }
    if ((flags & KV_EXP_GT) && (flags & KV_EXP_LT)) {
        kv_reply_error(&c->out, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    long long when;
    if (get_ll(c, &argv[2], &when) < 0)
        return;
    int64_t now = kv_clock_ms(&c->clock);
    if (secs) {
        if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000)
            goto bad;
        when *= 1000;
    }
    if (when > LLONG_MAX - now)
        goto bad;
    when += now;
    kv_reply_int(&c->out, kv_store_expire(argv[1].p, argv[1].n, when, flags, &c->clock));
    return;
bad:
    kv_reply_errorf(&c->out, "ERR invalid expire time in '%s' command", name);
}

static void cmd_expire(kv_client *c, const kv_arg *argv, size_t argc) {
    expire_generic(c, argv, argc, 1, "expire");
}

static void cmd_pexpire(kv_client *c, const kv_arg *argv, size_t argc) {
    expire_generic(c, argv, argc, 0, "pexpire");
}

static void ttl_generic(kv_client *c, const kv_arg *k, int ms) {
    int64_t t = kv_store_pttl(k->p, k->n, &c->clock);
    if (t >= 0 && !ms)
        t = (t + 500) / 1000;
    kv_reply_int(&c->out, t);
}

static void cmd_ttl(kv_client *c, const kv_arg *argv, size_t argc) {
    ttl_generic(c, &argv[1], 0);
}
static void cmd_pttl(kv_client *c, const kv_arg *argv, size_t argc) {
    ttl_generic(c, &argv[1], 1);
}

static void cmd_dbsize(kv_client *c, const kv_arg *argv, size_t argc) {
    kv_reply_int(&c->out, (long long)kv_store_size());
}

static void cmd_flush(kv_client *c, const kv_arg *argv, size_t argc) {
    if (argc > 2 || (argc == 2 && !eq(&argv[1], "ASYNC") && !eq(&argv[1], "SYNC"))) {
        kv_reply_error(&c->out, err_syntax);
        return;
    }
    kv_store_flush();
    kv_reply_ok(&c->out);
}

static void cmd_select(kv_client *c, const kv_arg *argv, size_t argc) {
    long long db;
    if (get_ll(c, &argv[1], &db) < 0)
        return;
    if (db != 0)
        kv_reply_error(&c->out, "ERR DB index is out of range");
    else
        kv_reply_ok(&c->out);
}

/* ---- connection -------------------------------------------------------- */

static void cmd_ping(kv_client *c, const kv_arg *argv, size_t argc) {
    if (argc > 2)
        wrong_args(c, "ping");
    else if (argc == 2)
        kv_reply_bulk(&c->out, argv[1].p, argv[1].n);
    else
        kv_reply_status(&c->out, "PONG");
}

static void cmd_echo(kv_client *c, const kv_arg *argv, size_t argc) {
    kv_reply_bulk(&c->out, argv[1].p, argv[1].n);
}

static void cmd_quit(kv_client *c, const kv_arg *argv, size_t argc) {
    kv_reply_ok(&c->out);
    c->quit = 1;
}

/* Redis's rule for client names: printable ASCII, no spaces. */
static int set_name(kv_client *c, const kv_arg *n) {
    for (size_t i = 0; i < n->n; i++) {
        if (n->p[i] < '!' || n->p[i] > '~') {
            kv_reply_error(&c->out, "ERR Client names cannot contain spaces, newlines or "
                                    "special characters.");
            return -1;
        }
    }
    char *copy = NULL;
    if (n->n) {
        copy = ot_alloc(n->n);
        if (!copy) {
            kv_reply_error(&c->out, "ERR out of memory");
            return -1;
        }
        memcpy(copy, n->p, n->n);
    }
    if (c->name)
        ot_free(c->name);
    c->name = copy;
    c->name_len = n->n;
    return 0;
}

static void cmd_client(kv_client *c, const kv_arg *argv, size_t argc) {
    const kv_arg *sub = &argv[1];
    if (eq(sub, "ID")) {
        if (argc != 2)
            wrong_args(c, "client|id");
        else
            kv_reply_int(&c->out, (long long)c->id);
    } else if (eq(sub, "SETNAME")) {
        if (argc != 3)
            wrong_args(c, "client|setname");
        else if (set_name(c, &argv[2]) == 0)
            kv_reply_ok(&c->out);
    } else if (eq(sub, "GETNAME")) {
        if (argc != 2)
            wrong_args(c, "client|getname");
        else if (c->name)
            kv_reply_bulk(&c->out, c->name, c->name_len);
        else
            kv_reply_null(&c->out);
    } else {
        unknown_subcommand(c, sub, "CLIENT");
    }
}

static void hello_reply(kv_client *c) {
    kv_reply_array(&c->out, 14);
    kv_reply_bulk_str(&c->out, "server");
    kv_reply_bulk_str(&c->out, "redis");
    kv_reply_bulk_str(&c->out, "version");
    kv_reply_bulk_str(&c->out, KV_REDIS_VERSION);
    kv_reply_bulk_str(&c->out, "proto");
    kv_reply_int(&c->out, 2);
    kv_reply_bulk_str(&c->out, "id");
    kv_reply_int(&c->out, (long long)c->id);
    kv_reply_bulk_str(&c->out, "mode");
    kv_reply_bulk_str(&c->out, "standalone");
    kv_reply_bulk_str(&c->out, "role");
    kv_reply_bulk_str(&c->out, "master");
    kv_reply_bulk_str(&c->out, "modules");
    kv_reply_array(&c->out, 0);
}

/* HELLO [protover [AUTH user pass] [SETNAME name]]: this server speaks RESP2
 * only, so 3 is refused the way Redis refuses a version it lacks. */
static void cmd_hello(kv_client *c, const kv_arg *argv, size_t argc) {
    if (argc >= 2) {
        long long ver;
        if (!kv_str2ll(argv[1].p, argv[1].n, &ver)) {
            kv_reply_error(&c->out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver != 2) {
            kv_reply_error(&c->out, "NOPROTO unsupported protocol version");
            return;
        }
    }
    const kv_arg *name = NULL;
    for (size_t j = 2; j < argc; j++) {
        size_t left = argc - j - 1;
        if (eq(&argv[j], "AUTH") && left >= 2) {
            /* No users are configured: "default" has no password, as in Redis. */
            if (!(argv[j + 1].n == 7 && memcmp(argv[j + 1].p, "default", 7) == 0)) {
                kv_reply_error(&c->out, "WRONGPASS invalid username-password pair or user is "
                                        "disabled.");
                return;
            }
            j += 2;
        } else if (eq(&argv[j], "SETNAME") && left >= 1) {
            name = &argv[++j];
        } else {
            char b[140];
            kv_reply_errorf(&c->out, "ERR Syntax error in HELLO option '%s'",
                            cstr(&argv[j], b, 129));
            return;
        }
    }
    if (name && set_name(c, name) < 0)
        return;
    hello_reply(c);
}

/* ---- server ------------------------------------------------------------ */

struct config_param {
    const char *name;
    const char *value; /* NULL: computed */
};

/* In the order Redis 7.0 happens to list them (its dict order). */
static const struct config_param config_params[] = {
    {"appendonly", "no"},        {"save", ""},     {"databases", "1"},
    {"maxmemory", "0"},          {"timeout", "0"}, {"proto-max-bulk-len", "536870912"},
    {"maxclients", "10000"},     {"port", NULL},   {"bind", NULL},
    {"appendfsync", "everysec"},
};

static void cmd_config(kv_client *c, const kv_arg *argv, size_t argc) {
    if (!eq(&argv[1], "GET")) {
        unknown_subcommand(c, &argv[1], "CONFIG");
        return;
    }
    if (argc < 3) {
        wrong_args(c, "config|get");
        return;
    }
    size_t n = sizeof config_params / sizeof *config_params;
    int hit[sizeof config_params / sizeof *config_params] = {0};
    long long count = 0;
    for (size_t j = 2; j < argc; j++) {
        char pat[256];
        cstr(&argv[j], pat, sizeof pat);
        for (size_t i = 0; i < n; i++) {
            if (!hit[i] && fnmatch(pat, config_params[i].name, FNM_CASEFOLD) == 0) {
                hit[i] = 1;
                count++;
            }
        }
    }
    kv_reply_array(&c->out, count * 2);
    for (size_t i = 0; i < n; i++) {
        if (!hit[i])
            continue;
        const struct config_param *p = &config_params[i];
        kv_reply_bulk_str(&c->out, p->name);
        char num[24];
        if (p->value)
            kv_reply_bulk_str(&c->out, p->value);
        else if (strcmp(p->name, "port") == 0)
            kv_reply_bulk(&c->out, num, kv_ll2str(num, kv_stats.port));
        else
            kv_reply_bulk_str(&c->out, kv_stats.bind);
    }
}

static void cmd_function(kv_client *c, const kv_arg *argv, size_t argc) {
    if (!eq(&argv[1], "FLUSH")) {
        unknown_subcommand(c, &argv[1], "FUNCTION");
        return;
    }
    if (argc > 3) {
        wrong_args(c, "function|flush");
        return;
    }
    if (argc == 3 && !eq(&argv[2], "SYNC") && !eq(&argv[2], "ASYNC")) {
        kv_reply_error(&c->out, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
        return;
    }
    kv_reply_ok(&c->out); /* there are no functions to flush */
}

/* DEBUG SEGFAULT faults the calling connection's process for real (a write
 * through a null pointer), to show that a crash ends that connection only.
 * Under ASan the fault would end the whole program in ASan's handler, so
 * there the process exits with the reason the fault handler would give. */
static void cmd_debug(kv_client *c, const kv_arg *argv, size_t argc) {
    if (!kv_stats.enable_debug) {
        kv_reply_error(&c->out, "ERR DEBUG command not allowed. If the enable-debug-command "
                                "option is set to \"local\", you can run it from a local "
                                "connection, otherwise you need to set this option in the "
                                "configuration file, and then restart the server.");
        return;
    }
    if (!eq(&argv[1], "SEGFAULT")) {
        unknown_subcommand(c, &argv[1], "DEBUG");
        return;
    }
#ifdef OT_ASAN
    ot_reason r = OT_REASON(OT_FAULT);
    r.detail = SIGSEGV;
    ot_exit_self(r);
#else
    *(volatile int *)(uintptr_t)argc_zero(argc) = 1;
#endif
}

static void cmd_command(kv_client *c, const kv_arg *argv, size_t argc);
static void cmd_info(kv_client *c, const kv_arg *argv, size_t argc);

#define W "write"
#define R "readonly"
#define F "fast"
static const struct kv_cmd cmds[] = {
    {"get", 2, cmd_get, {R, F}, 1, 1, 1, {"@read", "@string", "@fast"}},
    {"set", -3, cmd_set, {W, "denyoom"}, 1, 1, 1, {"@write", "@string", "@slow"}},
    {"ping", -1, cmd_ping, {F}, 0, 0, 0, {"@fast", "@connection"}},
    {"incr", 2, cmd_incr, {W, "denyoom", F}, 1, 1, 1, {"@write", "@string", "@fast"}},
    {"mget", -2, cmd_mget, {R, F}, 1, -1, 1, {"@read", "@string", "@fast"}},
    {"mset", -3, cmd_mset, {W, "denyoom"}, 1, -1, 2, {"@write", "@string", "@slow"}},
    {"del", -2, cmd_del, {W}, 1, -1, 1, {"@keyspace", "@write", "@slow"}},
    {"exists", -2, cmd_exists, {R, F}, 1, -1, 1, {"@keyspace", "@read", "@fast"}},
    {"incrby", 3, cmd_incrby, {W, "denyoom", F}, 1, 1, 1, {"@write", "@string", "@fast"}},
    {"decr", 2, cmd_decr, {W, "denyoom", F}, 1, 1, 1, {"@write", "@string", "@fast"}},
    {"decrby", 3, cmd_decrby, {W, "denyoom", F}, 1, 1, 1, {"@write", "@string", "@fast"}},
    {"echo", 2, cmd_echo, {F}, 0, 0, 0, {"@fast", "@connection"}},
    {"expire", -3, cmd_expire, {W, F}, 1, 1, 1, {"@keyspace", "@write", "@fast"}},
    {"pexpire", -3, cmd_pexpire, {W, F}, 1, 1, 1, {"@keyspace", "@write", "@fast"}},
    {"ttl", 2, cmd_ttl, {R, F}, 1, 1, 1, {"@keyspace", "@read", "@fast"}},
    {"pttl", 2, cmd_pttl, {R, F}, 1, 1, 1, {"@keyspace", "@read", "@fast"}},
    {"dbsize", 1, cmd_dbsize, {R, F}, 0, 0, 0, {"@keyspace", "@read", "@fast"}},
    {"flushall", -1, cmd_flush, {W}, 0, 0, 0, {"@keyspace", "@write", "@slow"}},
    {"flushdb", -1, cmd_flush, {W}, 0, 0, 0, {"@keyspace", "@write", "@slow"}},
    {"select", 2, cmd_select, {"loading", F}, 0, 0, 0, {"@keyspace", "@fast"}},
    {"info", -1, cmd_info, {"loading"}, 0, 0, 0, {"@slow", "@dangerous"}},
    {"quit", -1, cmd_quit, {"loading", F}, 0, 0, 0, {"@fast", "@connection"}},
    {"command", -1, cmd_command, {"loading"}, 0, 0, 0, {"@slow", "@connection"}},
    {"hello", -1, cmd_hello, {"loading", F}, 0, 0, 0, {"@fast", "@connection"}},
    {"client", -2, cmd_client, {"loading"}, 0, 0, 0, {"@slow", "@connection"}},
    {"config", -2, cmd_config, {"loading"}, 0, 0, 0, {"@slow", "@dangerous"}},
    {"function", -2, cmd_function, {W}, 0, 0, 0, {"@write", "@slow", "@scripting"}},
    {"debug", -2, cmd_debug, {"admin"}, 0, 0, 0, {"@admin", "@slow", "@dangerous"}},
};
#undef W
#undef R
#undef F
#define NCMDS (sizeof cmds / sizeof *cmds)

static const struct kv_cmd *lookup(const kv_arg *name) {
    for (size_t i = 0; i < NCMDS; i++) {
        if (strlen(cmds[i].name) == name->n && strncasecmp(cmds[i].name, name->p, name->n) == 0)
            return &cmds[i];
    }
    return NULL;
}

static size_t count_list(const char *const *l, size_t max) {
    size_t n = 0;
    while (n < max && l[n])
        n++;
    return n;
}

/* One COMMAND INFO entry in Redis 7.0's ten-field shape. */
static void command_info(kv_client *c, const struct kv_cmd *d) {
    kv_reply_array(&c->out, 10);
    kv_reply_bulk_str(&c->out, d->name);
    kv_reply_int(&c->out, d->arity);
    size_t nf = count_list(d->flags, 3), na = count_list(d->acl, 3);
    kv_reply_array(&c->out, (long long)nf);
    for (size_t i = 0; i < nf; i++)
        kv_reply_status(&c->out, d->flags[i]);
    kv_reply_int(&c->out, d->first);
    kv_reply_int(&c->out, d->last);
    kv_reply_int(&c->out, d->step);
    kv_reply_array(&c->out, (long long)na);
    for (size_t i = 0; i < na; i++)
        kv_reply_status(&c->out, d->acl[i]);
    kv_reply_array(&c->out, 0); /* tips */
    kv_reply_array(&c->out, 0); /* key specs */
    kv_reply_array(&c->out, 0); /* subcommands */
}

static void cmd_command(kv_client *c, const kv_arg *argv, size_t argc) {
    if (argc == 1) {
        kv_reply_array(&c->out, (long long)NCMDS);
        for (size_t i = 0; i < NCMDS; i++)
            command_info(c, &cmds[i]);
    } else if (eq(&argv[1], "COUNT") && argc == 2) {
        kv_reply_int(&c->out, (long long)NCMDS);
    } else if (eq(&argv[1], "INFO")) {
        if (argc == 2) {
            kv_reply_array(&c->out, (long long)NCMDS);
            for (size_t i = 0; i < NCMDS; i++)
                command_info(c, &cmds[i]);
            return;
        }
        kv_reply_array(&c->out, (long long)argc - 2);
        for (size_t j = 2; j < argc; j++) {
            const struct kv_cmd *d = lookup(&argv[j]);
            if (d)
                command_info(c, d);
            else
                kv_reply_null(&c->out);
        }
    } else if (eq(&argv[1], "DOCS")) {
        /* No documentation is kept: an empty map, which redis-cli accepts and
         * then uses its own built-in help. */
        kv_reply_array(&c->out, 0);
    } else if (eq(&argv[1], "LIST") && argc == 2) {
        kv_reply_array(&c->out, (long long)NCMDS);
        for (size_t i = 0; i < NCMDS; i++)
            kv_reply_bulk_str(&c->out, cmds[i].name);
    } else {
        unknown_subcommand(c, &argv[1], "COMMAND");
    }
}

static size_t used_memory(void) {
    uint64_t epoch = 1;
    size_t sz = sizeof epoch, allocated = 0, asz = sizeof allocated;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    if (mallctl("stats.allocated", &allocated, &asz, NULL, 0) != 0)
        return 0;
    return allocated;
}

static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (size_t)sysconf(_SC_PAGESIZE);
}

static int want(const kv_arg *argv, size_t argc, const char *section, int dflt) {
    if (argc == 1)
        return 1;
    for (size_t i = 1; i < argc; i++) {
        if (eq(&argv[i], section) || eq(&argv[i], "all") || eq(&argv[i], "everything") ||
            (dflt && eq(&argv[i], "default")))
            return 1;
    }
    return 0;
}

#define U(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

static unsigned long long hot_sum(size_t field) {
    unsigned long long n = 0;
    for (size_t i = 0; i < KV_STAT_STRIPES; i++) {
        const atomic_ullong *f = (const atomic_ullong *)((const char *)&kv_stats.hot[i] + field);
        /* Statistics only. */
        n += atomic_load_explicit(f, memory_order_relaxed);
    }
    return n;
}

static void cmd_info(kv_client *c, const kv_arg *argv, size_t argc) {
    char text[2048];
    size_t n = 0, cap = sizeof text;
    int64_t now = kv_now_ms();
#define ADD(...) n += (size_t)snprintf(text + n, n < cap ? cap - n : 0, __VA_ARGS__)
    if (want(argv, argc, "server", 1)) {
        int64_t up = (now - kv_stats.start_ms) / 1000;
        ADD("# Server\r\nredis_version:%s\r\nredis_mode:standalone\r\nserver_name:otter-kv\r\n"
            "arch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:%ld\r\ntcp_port:%u\r\n"
            "schedulers:%u\r\nuptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\n\r\n",
            KV_REDIS_VERSION, (long)getpid(), kv_stats.port, ot_schedulers(), (long long)up,
            (long long)up / 86400);
    }
    if (want(argv, argc, "clients", 1))
        ADD("# Clients\r\nconnected_clients:%lld\r\nblocked_clients:0\r\n\r\n",
            (long long)atomic_load_explicit(&kv_stats.connected_clients, memory_order_relaxed));
    if (want(argv, argc, "memory", 1))
        ADD("# Memory\r\nused_memory:%zu\r\nused_memory_rss:%zu\r\nmaxmemory:0\r\n"
            "mem_allocator:jemalloc\r\n\r\n",
            used_memory(), rss_bytes());
    if (want(argv, argc, "stats", 1))
        ADD("# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
            "rejected_connections:%llu\r\nexpired_keys:%llu\r\nkeyspace_hits:%llu\r\n"
            "keyspace_misses:%llu\r\ncrashed_connections:%llu\r\n\r\n",
            U(kv_stats.connections_received),
            hot_sum(offsetof(struct kv_hot_stats, commands_processed)),
            U(kv_stats.rejected_connections), (unsigned long long)kv_store_expired_total(),
            hot_sum(offsetof(struct kv_hot_stats, keyspace_hits)),
            hot_sum(offsetof(struct kv_hot_stats, keyspace_misses)),
            U(kv_stats.crashed_connections));
    if (want(argv, argc, "keyspace", 1)) {
        ADD("# Keyspace\r\n");
        size_t keys = kv_store_size();
        if (keys)
            ADD("db0:keys=%zu,expires=%zu,avg_ttl=0\r\n", keys, kv_store_volatile());
        ADD("\r\n");
    }
#undef ADD
    if (n > cap)
        n = cap;
    /* Redis ends the text with one CRLF, not the blank line between sections. */
    if (n >= 2)
        n -= 2;
    kv_reply_bulk(&c->out, text, n);
}

void kv_execute(kv_client *c, const kv_arg *argv, size_t argc) {
    c->cmds++;
    const struct kv_cmd *d = lookup(&argv[0]);
    if (!d) {
        char name[140], args[160], b[140];
        size_t al = 0;
        args[0] = '\0';
        for (size_t i = 1; i < argc && al < 128; i++)
            al += (size_t)snprintf(args + al, sizeof args - al, "'%s' ",
                                   cstr(&argv[i], b, 128 - al + 1));
        kv_reply_errorf(&c->out, "ERR unknown command '%s', with args beginning with: %s",
                        cstr(&argv[0], name, 129), args);
        return;
    }
    if ((d->arity > 0 && argc != (size_t)d->arity) || (d->arity < 0 && argc < (size_t)-d->arity)) {
        wrong_args(c, d->name);
        return;
    }
    d->fn(c, argv, argc);
}
