/* RESP2 reply encoding into a growable output buffer. A connection appends
 * every reply of a pipelined batch here and sends the buffer once.
 * Invariant: when an allocation fails the buffer keeps what it had and sets
 * oom; the connection then closes, since a reply stream with a hole in it
 * would answer the wrong commands. */
#ifndef KV_REPLY_H
#define KV_REPLY_H

#include <stddef.h>

typedef struct kv_out {
    char *buf;
    size_t len, cap;
    int oom;
    void *(*realloc_fn)(void *, size_t);
    void (*free_fn)(void *);
} kv_out;

void kv_out_init(kv_out *o);
void kv_out_free(kv_out *o);
/* Makes room for n more bytes; returns the write position or NULL (oom). */
char *kv_out_reserve(kv_out *o, size_t n);
void kv_reply_raw(kv_out *o, const void *p, size_t n);
void kv_reply_status(kv_out *o, const char *s); /* +s */
void kv_reply_ok(kv_out *o);                    /* +OK */
/* -s, with '\r' and '\n' in s turned into spaces as Redis does. */
void kv_reply_error(kv_out *o, const char *s);
void kv_reply_errorf(kv_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kv_reply_int(kv_out *o, long long v);              /* :v */
void kv_reply_bulk(kv_out *o, const void *p, size_t n); /* $n bytes */
void kv_reply_bulk_str(kv_out *o, const char *s);
void kv_reply_null(kv_out *o);               /* $-1 */
void kv_reply_array(kv_out *o, long long n); /* *n, then n replies */
/* Decimal text of v into buf (at least 21 bytes); returns its length. */
size_t kv_ll2str(char *buf, long long v);

#endif
