/* The RESP2 request parser (see resp.h). It follows Redis 7.0's
 * processMultibulkBuffer and processInlineBuffer rule for rule, because the
 * tests compare our replies with Redis's byte for byte: a header line is found
 * by its '\r' (a NUL before it hides it, as strchr does in Redis) and the byte
 * after the '\r' is skipped unread; a bulk's two trailing bytes are skipped
 * unread too; "*0" and "*-5" are empty commands and are skipped; a line with
 * no terminator is an error once more than 64 KiB of it is buffered. Bulk
 * lengths are checked against the limit when their header arrives, so an
 * oversized bulk is refused before anything is allocated for it. */
#include "examples/kv/resp.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kv_parser_init(kv_parser *p) {
    memset(p, 0, sizeof *p);
    p->bulk = -1;
    p->realloc_fn = realloc;
    p->free_fn = free;
}

void kv_parser_free(kv_parser *p) {
    if (p->argv)
        p->free_fn(p->argv);
    p->argv = NULL;
    p->cap = p->argc = 0;
}

void kv_parser_shift(kv_parser *p, size_t n) {
    p->start -= n;
    p->pos -= n;
}

int kv_parser_partial(const kv_parser *p, size_t len) {
    return len > p->start;
}

int kv_str2ll(const char *s, size_t n, long long *out) {
    if (n == 0 || n >= 21)
        return 0;
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        if (++i == n)
            return 0;
    }
    if (s[i] < '1' || s[i] > '9')
        return 0;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return 0;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return 0;
        *out = (long long)v;
    }
    return 1;
}

static int fail(kv_parser *p, const char *msg) {
    p->err = msg;
    return KV_PARSE_ERR;
}

static int push_arg(kv_parser *p, size_t off, size_t len) {
    if (p->argc == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 8;
        kv_slice *n = p->realloc_fn(p->argv, ncap * sizeof *n);
        if (!n)
            return -1;
        p->argv = n;
        p->cap = ncap;
    }
    p->argv[p->argc++] = (kv_slice){off, len};
    return 0;
}

/* The '\r' ending the line at buf[from..len), as Redis's strchr finds it:
 * a NUL byte first means "not found". Returns its offset or -1. */
static long find_cr(const char *buf, size_t from, size_t len) {
    for (size_t i = from; i < len; i++) {
        if (buf[i] == '\r')
            return (long)i;
        if (buf[i] == '\0')
            return -1;
    }
    return -1;
}

static int is_hex(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_val(int c) {
    if (c <= '9')
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

static int is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Redis's sdssplitargs over buf[b..e) (a NUL ends it early), unescaping in
 * place. Returns 0, or -1 on unbalanced quotes, -2 on allocation failure. */
static int split_inline(kv_parser *p, char *buf, size_t b, size_t e) {
    size_t r = b;
#define AT(i) ((i) < e ? buf[(i)] : '\0')
    for (;;) {
        while (AT(r) && is_space((unsigned char)AT(r)))
            r++;
        if (!AT(r))
            return 0;
        size_t w0 = r, w = r;
        int inq = 0, insq = 0, done = 0;
        while (!done) {
            char c = AT(r);
            if (inq) {
                if (c == '\\' && AT(r + 1) == 'x' && is_hex((unsigned char)AT(r + 2)) &&
                    is_hex((unsigned char)AT(r + 3))) {
                    buf[w++] = (char)(hex_val(AT(r + 2)) * 16 + hex_val(AT(r + 3)));
                    r += 3;
                } else if (c == '\\' && AT(r + 1)) {
                    r++;
                    char n = AT(r);
                    buf[w++] = n == 'n'   ? '\n'
                               : n == 'r' ? '\r'
                               : n == 't' ? '\t'
                               : n == 'b' ? '\b'
                               : n == 'a' ? '\a'
                                          : n;
                } else if (c == '"') {
                    if (AT(r + 1) && !is_space((unsigned char)AT(r + 1)))
                        return -1;
                    done = 1;
                } else if (!c) {
                    return -1;
                } else {
                    buf[w++] = c;
                }
            } else if (insq) {
                if (c == '\\' && AT(r + 1) == '\'') {
                    r++;
                    buf[w++] = '\'';
                } else if (c == '\'') {
                    if (AT(r + 1) && !is_space((unsigned char)AT(r + 1)))
                        return -1;
                    done = 1;
                } else if (!c) {
                    return -1;
                } else {
                    buf[w++] = c;
                }
            } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0') {
                done = 1;
            } else if (c == '"') {
                inq = 1;
            } else if (c == '\'') {
                insq = 1;
            } else {
                buf[w++] = c;
            }
            if (AT(r))
                r++;
        }
        if (push_arg(p, w0 - p->start, w - w0) < 0)
            return -2;
    }
#undef AT
}

static int parse_inline(kv_parser *p, char *buf, size_t len) {
    char *nl = memchr(buf + p->pos, '\n', len - p->pos);
    if (!nl) {
        if (len - p->pos > KV_INLINE_MAX)
            return fail(p, "ERR Protocol error: too big inline request");
        return KV_PARSE_NEED;
    }
    size_t e = (size_t)(nl - buf);
    size_t next = e + 1;
    if (e > p->pos && buf[e - 1] == '\r')
        e--;
    int r = split_inline(p, buf, p->pos, e);
    if (r == -1)
        return fail(p, "ERR Protocol error: unbalanced quotes in request");
    if (r == -2)
        return fail(p, "ERR out of memory");
    p->pos = next;
    return KV_PARSE_CMD;
}

/* The "*N\r\n" header. Returns NEED, ERR, or CMD meaning "header read". */
static int parse_header(kv_parser *p, const char *buf, size_t len) {
    long cr = find_cr(buf, p->pos, len);
    if (cr < 0) {
        if (len - p->pos > KV_INLINE_MAX)
            return fail(p, "ERR Protocol error: too big mbulk count string");
        return KV_PARSE_NEED;
    }
    if ((size_t)cr + 1 >= len)
        return KV_PARSE_NEED;
    long long n;
    if (!kv_str2ll(buf + p->pos + 1, (size_t)cr - p->pos - 1, &n) || n > INT_MAX)
        return fail(p, "ERR Protocol error: invalid multibulk length");
    p->pos = (size_t)cr + 2;
    p->mbulk = n > 0 ? n : 0;
    p->bulk = -1;
    return KV_PARSE_CMD;
}

/* One "$N\r\n<bytes>\r\n" argument. Returns NEED, ERR or CMD ("one read"). */
static int parse_bulk(kv_parser *p, const char *buf, size_t len) {
    if (p->bulk < 0) {
        long cr = find_cr(buf, p->pos, len);
        if (cr < 0) {
            if (len - p->pos > KV_INLINE_MAX)
                return fail(p, "ERR Protocol error: too big bulk count string");
            return KV_PARSE_NEED;
        }
        if ((size_t)cr + 1 >= len)
            return KV_PARSE_NEED;
        if (buf[p->pos] != '$') {
            char c = buf[p->pos];
            if (c == '\r' || c == '\n')
                c = ' ';
            snprintf(p->errbuf, sizeof p->errbuf, "ERR Protocol error: expected '$', got '%c'", c);
            return fail(p, p->errbuf);
        }
        long long n;
        if (!kv_str2ll(buf + p->pos + 1, (size_t)cr - p->pos - 1, &n) || n < 0 ||
            n > KV_MAX_BULK_LEN)
            return fail(p, "ERR Protocol error: invalid bulk length");
        p->pos = (size_t)cr + 2;
        p->bulk = n;
    }
    if (len - p->pos < (size_t)p->bulk + 2)
        return KV_PARSE_NEED;
    if (push_arg(p, p->pos - p->start, (size_t)p->bulk) < 0)
        return fail(p, "ERR out of memory");
    p->pos += (size_t)p->bulk + 2;
    p->bulk = -1;
    p->mbulk--;
    return KV_PARSE_CMD;
}

int kv_parse(kv_parser *p, char *buf, size_t len) {
    for (;;) {
        if (p->mbulk == 0) {
            p->start = p->pos;
            p->argc = 0;
            if (p->pos >= len)
                return KV_PARSE_NEED;
            if (buf[p->pos] != '*') {
                int r = parse_inline(p, buf, len);
                if (r == KV_PARSE_CMD && p->argc == 0)
                    continue; /* an empty line */
                return r;
            }
            int r = parse_header(p, buf, len);
            if (r != KV_PARSE_CMD)
                return r;
            if (p->mbulk == 0)
                continue; /* "*0" and negative counts are skipped, as Redis does */
        }
        while (p->mbulk > 0) {
            int r = parse_bulk(p, buf, len);
            if (r != KV_PARSE_CMD)
                return r;
        }
        return KV_PARSE_CMD;
    }
}
