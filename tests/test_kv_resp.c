/* examples/kv's RESP2 request parser and reply encoder, byte by byte, with no
 * runtime. Each input is also fed one byte at a time and in odd chunks, with
 * the consumed prefix dropped between calls as the server does, and must
 * parse the same. The expected outcomes are what redis-server 7.0 does with
 * the same bytes (measured against 7.0.15). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/kv/reply.h"
#include "examples/kv/resp.h"

/* Parses input fed in chunks of `chunk` bytes (0: all at once) and renders
 * every command as "[a|b|c]", then "!error" if one came, or "+partial" if
 * bytes of an unfinished command remain. */
static char *parse_all(const char *in, size_t n, size_t chunk) {
    kv_parser p;
    kv_parser_init(&p);
    char *buf = malloc(n + 1);
    size_t len = 0, fed = 0;
    size_t ocap = 2 * n + 4096;
    char *out = calloc(1, ocap);
    size_t olen = 0;
    for (;;) {
        size_t step = chunk ? chunk : n;
        if (fed < n) {
            size_t k = n - fed < step ? n - fed : step;
            memcpy(buf + len, in + fed, k);
            len += k;
            fed += k;
        }
        int r;
        while ((r = kv_parse(&p, buf, len)) == KV_PARSE_CMD) {
            olen += (size_t)snprintf(out + olen, ocap - olen, "[");
            for (size_t i = 0; i < p.argc; i++)
                olen += (size_t)snprintf(out + olen, ocap - olen, "%s%.*s", i ? "|" : "",
                                         (int)p.argv[i].len, buf + p.start + p.argv[i].off);
            olen += (size_t)snprintf(out + olen, ocap - olen, "]");
        }
        if (r == KV_PARSE_ERR) {
            olen += (size_t)snprintf(out + olen, ocap - olen, "!%s", p.err);
            break;
        }
        /* Drop the consumed prefix, as the server does. */
        size_t drop = p.start;
        memmove(buf, buf + drop, len - drop);
        len -= drop;
        kv_parser_shift(&p, drop);
        if (fed == n) {
            if (kv_parser_partial(&p, len))
                olen += (size_t)snprintf(out + olen, ocap - olen, "+partial");
            break;
        }
    }
    kv_parser_free(&p);
    free(buf);
    return out;
}

static void check_n(const char *in, size_t n, const char *want) {
    size_t chunks[] = {0, 1, 2, 3, 7};
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        char *got = parse_all(in, n, chunks[i]);
        cr_assert_str_eq(got, want, "input %s chunk %zu", in, chunks[i]);
        free(got);
    }
}

static void check(const char *in, const char *want) {
    check_n(in, strlen(in), want);
}

Test(kv_resp, multibulk) {
    check("*1\r\n$4\r\nPING\r\n", "[PING]");
    check("*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1\r\n$4\r\nPING\r\n", "[ECHO|hi][PING]");
    check("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", "[ECHO|]");
    check("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nb\n\r\n", "[SET|k|a\r\nb\n]");
    check("*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n$3", "[ECHO|abc]+partial");
    check("*2\r\n$4\r\nECHO\r\n", "+partial");
}

Test(kv_resp, redis_skips_without_checking) {
    /* Redis skips the two bytes after a bulk and the byte after a header's
     * '\r' without looking at them. */
    check("*1\r\n$4\r\nPINGx\r\n", "[PING]");
    check("*1\r\n$4\r\nPING\r\r\n", "[PING]");
    check("*1\rX$4\rYPINGab", "[PING]");
    /* Empty and negative counts are no command at all. */
    check("*0\r\nPING\r\n", "[PING]");
    check("*-1\r\n*-2\r\nPING\r\n", "[PING]");
    /* A header with no '\r' yet waits. */
    check("*1\n$4\nPING\n", "+partial");
}

Test(kv_resp, inline_commands) {
    check("PING\r\n", "[PING]");
    check("PING\nPING\n", "[PING][PING]");
    check("\r\n\r\n   \r\nPING\r\n", "[PING]");
    check("SET a \"b c\"\r\nGET a\r\n", "[SET|a|b c][GET|a]");
    check("ECHO 'x\\'y'\r\n", "[ECHO|x'y]");
    check("ECHO \"\\x41\\n\"\r\n", "[ECHO|A\n]");
    check("ECHO \"a\\nb\\t\\\"\\\\ \\q\"\r\n", "[ECHO|a\nb\t\"\\ q]");
    check("ECHO \"\\xzz\"\r\n", "[ECHO|xzz]");
    check("ECHO ''\r\n", "[ECHO|]");
    check("ECHO 'a\\nb'\r\n", "[ECHO|a\\nb]");
    check("ECHO a\tb\r\n", "[ECHO|a|b]");
    check("ECHO ab\"c d\"e f\r\n", "!ERR Protocol error: unbalanced quotes in request");
    check("ECHO a\"b c\" d\r\n", "[ECHO|ab c|d]");
    check("$3\r\n", "[$3]");
    check("PING", "+partial");
    /* A NUL ends the line as it ends Redis's C string. */
    static const char nul[] = "ECHO a\0b\r\nPING\r\n";
    check_n(nul, sizeof nul - 1, "[ECHO|a][PING]");
}

Test(kv_resp, inline_quote_errors) {
    check("SET a \"b\r\n", "!ERR Protocol error: unbalanced quotes in request");
    check("ECHO \"a\"b\r\n", "!ERR Protocol error: unbalanced quotes in request");
    check("ECHO 'a'b\r\n", "!ERR Protocol error: unbalanced quotes in request");
    check("ECHO 'a\r\n", "!ERR Protocol error: unbalanced quotes in request");
    check("PING\r\nECHO 'a\r\n", "[PING]!ERR Protocol error: unbalanced quotes in request");
}

Test(kv_resp, protocol_errors) {
    check("*a\r\n", "!ERR Protocol error: invalid multibulk length");
    check("*1 \r\n$4\r\nPING\r\n", "!ERR Protocol error: invalid multibulk length");
    check("*+1\r\n", "!ERR Protocol error: invalid multibulk length");
    check("*01\r\n", "!ERR Protocol error: invalid multibulk length");
    check("*-0\r\n", "!ERR Protocol error: invalid multibulk length");
    check("*2147483648\r\n", "!ERR Protocol error: invalid multibulk length");
    check("*11111111111111111111\r\n", "!ERR Protocol error: invalid multibulk length");
    check("*2147483647\r\n", "+partial");
    check("*1\r\nx4\r\n", "!ERR Protocol error: expected '$', got 'x'");
    check("*3\r\n$3\r\nSET\r\n$1\r\na\r\n:1\r\n", "!ERR Protocol error: expected '$', got ':'");
    check("*2\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", "!ERR Protocol error: expected '$', got '*'");
    check("*1\r\n\r\n", "!ERR Protocol error: expected '$', got ' '");
    check("*1\r\n$a\r\n", "!ERR Protocol error: invalid bulk length");
    check("*1\r\n$-1\r\n", "!ERR Protocol error: invalid bulk length");
    check("*1\r\n$-0\r\n", "!ERR Protocol error: invalid bulk length");
    check("*1\r\n$04\r\nPING\r\n", "!ERR Protocol error: invalid bulk length");
    check("*1\r\n$4 \r\nPING\r\n", "!ERR Protocol error: invalid bulk length");
    check("*1\r\n$11111111111111111111\r\n", "!ERR Protocol error: invalid bulk length");
    check("*1\r\n$3\r\nfoo\r\n*a\r\n", "[foo]!ERR Protocol error: invalid multibulk length");
}

Test(kv_resp, bulk_limit_checked_at_header) {
    /* 512 MiB is allowed and waits for its data; one byte more is refused as
     * soon as the header arrives, with nothing allocated for it. */
    check("*1\r\n$536870912\r\n", "+partial");
    check("*1\r\n$536870913\r\n", "!ERR Protocol error: invalid bulk length");
    check("*2\r\n$3\r\nSET\r\n$9223372036854775807\r\n",
          "!ERR Protocol error: invalid bulk length");
}

static char *filled(size_t n, const char *prefix, const char *suffix) {
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = malloc(pl + n + sl + 1);
    memcpy(s, prefix, pl);
    memset(s + pl, '1', n);
    memcpy(s + pl + n, suffix, sl + 1);
    return s;
}

Test(kv_resp, long_lines) {
    /* An unterminated line is refused once more than 64 KiB of it is held. */
    char *s = filled(70000, "", "");
    char *got = parse_all(s, strlen(s), 0);
    cr_assert_str_eq(got, "!ERR Protocol error: too big inline request");
    free(got);
    free(s);
    s = filled(70000, "PING\r\n", "");
    got = parse_all(s, strlen(s), 4096);
    cr_assert_str_eq(got, "[PING]!ERR Protocol error: too big inline request");
    free(got);
    free(s);
    s = filled(70000, "*", "");
    got = parse_all(s, strlen(s), 0);
    cr_assert_str_eq(got, "!ERR Protocol error: too big mbulk count string");
    free(got);
    free(s);
    s = filled(70000, "*1\r\n$", "");
    got = parse_all(s, strlen(s), 1000);
    cr_assert_str_eq(got, "!ERR Protocol error: too big bulk count string");
    free(got);
    free(s);
    /* Exactly 64 KiB without its newline is still waited for. */
    s = filled(65536, "", "");
    got = parse_all(s, strlen(s), 0);
    cr_assert_str_eq(got, "+partial");
    free(got);
    free(s);
    /* A long inline line that does end is one command. */
    s = filled(65536, "", "\r\n");
    got = parse_all(s, strlen(s), 0);
    cr_assert_eq(strlen(got), 65538u);
    free(got);
    free(s);
}

Test(kv_resp, many_args) {
    /* 10,000 arguments in one command, fed in 100-byte chunks. */
    size_t cap = 200000, n = 0;
    char *s = malloc(cap);
    n += (size_t)sprintf(s + n, "*10001\r\n$4\r\nMGET\r\n");
    for (int i = 0; i < 10000; i++)
        n += (size_t)sprintf(s + n, "$1\r\n%c\r\n", 'a' + i % 26);
    char *got = parse_all(s, n, 100);
    cr_assert_eq(strlen(got), 2 + 4 + 10000 * 2u);
    cr_assert_eq(strncmp(got, "[MGET|a|b|c", 11), 0);
    free(got);
    free(s);
}

Test(kv_resp, str2ll_is_redis_strict) {
    long long v;
    cr_assert(kv_str2ll("0", 1, &v) && v == 0);
    cr_assert(kv_str2ll("-1", 2, &v) && v == -1);
    cr_assert(kv_str2ll("9223372036854775807", 19, &v) && v == 9223372036854775807LL);
    cr_assert(kv_str2ll("-9223372036854775808", 20, &v) && v == (-9223372036854775807LL - 1));
    cr_assert(!kv_str2ll("9223372036854775808", 19, &v));
    cr_assert(!kv_str2ll("-9223372036854775809", 20, &v));
    cr_assert(!kv_str2ll("", 0, &v));
    cr_assert(!kv_str2ll("-", 1, &v));
    cr_assert(!kv_str2ll("-0", 2, &v));
    cr_assert(!kv_str2ll("01", 2, &v));
    cr_assert(!kv_str2ll("+1", 2, &v));
    cr_assert(!kv_str2ll(" 1", 2, &v));
    cr_assert(!kv_str2ll("1 ", 2, &v));
    cr_assert(!kv_str2ll("1a", 2, &v));
}

static void out_eq_n(kv_out *o, const char *want, size_t n) {
    cr_assert_eq(o->len, n);
    cr_assert_eq(memcmp(o->buf, want, o->len), 0, "got %.*s", (int)o->len, o->buf);
    o->len = 0;
}

static void out_eq(kv_out *o, const char *want) {
    out_eq_n(o, want, strlen(want));
}

Test(kv_reply, encodings) {
    kv_out o;
    kv_out_init(&o);
    kv_reply_ok(&o);
    out_eq(&o, "+OK\r\n");
    kv_reply_status(&o, "PONG");
    out_eq(&o, "+PONG\r\n");
    kv_reply_error(&o, "ERR a\r\nb");
    out_eq(&o, "-ERR a  b\r\n");
    kv_reply_errorf(&o, "ERR unknown command '%s'", "x\ny");
    out_eq(&o, "-ERR unknown command 'x y'\r\n");
    kv_reply_int(&o, 0);
    kv_reply_int(&o, -9223372036854775807LL - 1);
    kv_reply_int(&o, 9223372036854775807LL);
    out_eq(&o, ":0\r\n:-9223372036854775808\r\n:9223372036854775807\r\n");
    kv_reply_bulk(&o, "a\0b", 3);
    out_eq_n(&o, "$3\r\na\0b\r\n", 9);
    kv_reply_bulk(&o, "", 0);
    kv_reply_null(&o);
    kv_reply_array(&o, 2);
    out_eq(&o, "$0\r\n\r\n$-1\r\n*2\r\n");
    /* A long error goes through the heap path. */
    char big[2000];
    memset(big, 'e', sizeof big - 1);
    big[sizeof big - 1] = 0;
    kv_reply_errorf(&o, "%s", big);
    cr_assert_eq(o.len, sizeof big - 1 + 3);
    o.len = 0;
    /* A 1 MiB bulk grows the buffer. */
    char *m = malloc(1 << 20);
    memset(m, 'x', 1 << 20);
    kv_reply_bulk(&o, m, 1 << 20);
    cr_assert_eq(o.len, (1u << 20) + 12);
    cr_assert_eq(memcmp(o.buf, "$1048576\r\nxxx", 13), 0);
    free(m);
    kv_out_free(&o);
}
