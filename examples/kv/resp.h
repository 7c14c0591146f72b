/* An incremental RESP2 request parser with no I/O, so that it can be tested
 * byte by byte. It reads Redis's two request forms: multibulk
 * ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and inline ("GET k\r\n", with Redis's
 * quoting rules), with Redis 7.0's limits and its exact error texts.
 *
 * Invariants: the caller owns one growable input buffer; the parser keeps
 * offsets into it, never pointers, so the caller may move or grow the buffer
 * between calls. Bytes before kv_parser.start are consumed and may be
 * discarded by the caller (kv_parser_shift tells the parser they were); bytes
 * from start on belong to the command being parsed. Arguments are slices of
 * the buffer itself: inline arguments are unescaped in place, which is safe
 * because unescaping never lengthens them. */
#ifndef KV_RESP_H
#define KV_RESP_H

#include <stddef.h>
#include <stdint.h>

/* Redis 7.0's defaults: proto-max-bulk-len, PROTO_INLINE_MAX_SIZE. */
#define KV_MAX_BULK_LEN ((long long)512 << 20)
#define KV_INLINE_MAX ((size_t)64 << 10)

enum {
    KV_PARSE_NEED = 0, /* no complete command in the buffer yet */
    KV_PARSE_CMD = 1,  /* one command: argc/argv are valid until the next call */
    KV_PARSE_ERR = -1, /* protocol error: err says which; close after replying */
};

typedef struct kv_slice {
    size_t off; /* from the command's start */
    size_t len;
} kv_slice;

typedef struct kv_parser {
    size_t start;    /* offset of the current command in the buffer */
    size_t pos;      /* next unread byte */
    int inline_mode; /* the current command is inline (0 until known) */
    long long mbulk; /* arguments still to read; 0 before the header */
    long long bulk;  /* length of the argument being read; -1 before its header */
    size_t argc, cap;
    kv_slice *argv;
    const char *err; /* the error text (no "-" and no CRLF) after KV_PARSE_ERR */
    void *(*realloc_fn)(void *, size_t); /* realloc and free by default; the server */
    void (*free_fn)(void *);             /* passes the process heap's */
    char errbuf[64];
} kv_parser;

void kv_parser_init(kv_parser *p);
void kv_parser_free(kv_parser *p);
/* Parses the next command from buf[0..len). buf is written to (inline
 * unescaping). After KV_PARSE_CMD, argument i is buf + p->start + argv[i].off
 * for argv[i].len bytes; the next call moves past it. After KV_PARSE_ERR the
 * parser must not be used again except to free it. */
int kv_parse(kv_parser *p, char *buf, size_t len);
/* The caller dropped the first n bytes of the buffer (n <= p->start). */
void kv_parser_shift(kv_parser *p, size_t n);
/* True while a command is partly read (for the mid-command read timeout). */
int kv_parser_partial(const kv_parser *p, size_t len);
/* Redis's string2ll: a strict decimal int64 (no sign '+', no leading zeros,
 * no spaces). Returns 1 and sets *out, or 0. */
int kv_str2ll(const char *s, size_t n, long long *out);

#endif
