/* RESP2 reply encoding (see reply.h). Integers are formatted by hand because
 * the hot replies (bulk headers, :n) are formatted once per command and
 * snprintf costs several times more than the rest of a GET's encoding. */
#include "examples/kv/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kv_out_init(kv_out *o) {
    memset(o, 0, sizeof *o);
    o->realloc_fn = realloc;
    o->free_fn = free;
}

void kv_out_free(kv_out *o) {
    if (o->buf)
        o->free_fn(o->buf);
    o->buf = NULL;
    o->len = o->cap = 0;
}

char *kv_out_reserve(kv_out *o, size_t n) {
    if (o->oom)
        return NULL;
    if (o->cap - o->len < n) {
        size_t ncap = o->cap ? o->cap : 4096;
        while (ncap - o->len < n) {
            if (ncap > ((size_t)-1) / 2) {
                o->oom = 1;
                return NULL;
            }
            ncap *= 2;
        }
        char *nb = o->realloc_fn(o->buf, ncap);
        if (!nb) {
            o->oom = 1;
            return NULL;
        }
        o->buf = nb;
        o->cap = ncap;
    }
    return o->buf + o->len;
}

void kv_reply_raw(kv_out *o, const void *p, size_t n) {
    char *w = kv_out_reserve(o, n);
    if (!w)
        return;
    memcpy(w, p, n);
    o->len += n;
}

size_t kv_ll2str(char *buf, long long v) {
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

/* prefix, a decimal, CRLF. */
static void prefixed_ll(kv_out *o, char prefix, long long v) {
    char *w = kv_out_reserve(o, 24);
    if (!w)
        return;
    w[0] = prefix;
    size_t n = kv_ll2str(w + 1, v);
    w[n + 1] = '\r';
    w[n + 2] = '\n';
    o->len += n + 3;
}

void kv_reply_status(kv_out *o, const char *s) {
    size_t n = strlen(s);
    char *w = kv_out_reserve(o, n + 3);
    if (!w)
        return;
    w[0] = '+';
    memcpy(w + 1, s, n);
    memcpy(w + 1 + n, "\r\n", 2);
    o->len += n + 3;
}

void kv_reply_ok(kv_out *o) {
    kv_reply_raw(o, "+OK\r\n", 5);
}

void kv_reply_error(kv_out *o, const char *s) {
    size_t n = strlen(s);
    char *w = kv_out_reserve(o, n + 3);
    if (!w)
        return;
    w[0] = '-';
    for (size_t i = 0; i < n; i++)
        w[1 + i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    memcpy(w + 1 + n, "\r\n", 2);
    o->len += n + 3;
}

void kv_reply_errorf(kv_out *o, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        kv_reply_error(o, small);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        o->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    kv_reply_error(o, big);
    free(big);
}

void kv_reply_int(kv_out *o, long long v) {
    prefixed_ll(o, ':', v);
}

void kv_reply_bulk(kv_out *o, const void *p, size_t n) {
    char *w = kv_out_reserve(o, n + 26);
    if (!w)
        return;
    w[0] = '$';
    size_t h = kv_ll2str(w + 1, (long long)n) + 1;
    w[h] = '\r';
    w[h + 1] = '\n';
    memcpy(w + h + 2, p, n);
    w[h + 2 + n] = '\r';
    w[h + 3 + n] = '\n';
    o->len += h + 4 + n;
}

void kv_reply_bulk_str(kv_out *o, const char *s) {
    kv_reply_bulk(o, s, strlen(s));
}

void kv_reply_null(kv_out *o) {
    kv_reply_raw(o, "$-1\r\n", 5);
}

void kv_reply_array(kv_out *o, long long n) {
    prefixed_ll(o, '*', n);
}
