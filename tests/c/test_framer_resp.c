/* RINGLINE_FRAMER_RESP and ringline_resp_parse_command: RESP2/RESP3 values
 * and inline commands. Split input (every prefix), coalesced input,
 * malformed input, -EMSGSIZE, depth limit, random value streams fed in
 * random pieces, and random command streams through parse_command. Every
 * call sees an exactly sized heap copy of the bytes, so the sanitizer build
 * catches any read past len. */
#include "rl_framer_test.h"

/* ---- RESP framer ---- */

#define R RINGLINE_FRAMER_RESP

/* A whole value: frame = payload = all of lit. */
#define VALUE(lit) EXPECT(R, lit, 0, 1, sizeof(lit) - 1, 0, sizeof(lit) - 1)
#define BAD(lit) EXPECT(R, lit, 0, -EPROTO, 0, 0, 0)
#define MORE(lit) EXPECT(R, lit, 0, 0, 0, 0, 0)

static void test_valid(void)
{
    VALUE("+OK\r\n");
    VALUE("+\r\n");
    VALUE("-ERR wrong type\r\n");
    VALUE(":0\r\n");
    VALUE(":-12345\r\n");
    VALUE(":+7\r\n");
    VALUE("$3\r\nfoo\r\n");
    VALUE("$0\r\n\r\n");
    VALUE("$-1\r\n");
    VALUE("$4\r\na\r\nb\r\n");             /* CRLF inside bulk data */
    VALUE("*0\r\n");
    VALUE("*-1\r\n");
    VALUE("*2\r\n$3\r\nfoo\r\n:1\r\n");
    VALUE("*3\r\n*1\r\n+a\r\n*0\r\n$-1\r\n");
    VALUE("*2\r\n*2\r\n:1\r\n:2\r\n*-1\r\n");
    /* RESP3 */
    VALUE("_\r\n");
    VALUE(",1.5\r\n");
    VALUE(",-0.25e-3\r\n");
    VALUE(",10\r\n");
    VALUE(",inf\r\n");
    VALUE(",-inf\r\n");
    VALUE(",nan\r\n");
    VALUE("#t\r\n");
    VALUE("#f\r\n");
    VALUE("(3492890328409238509324850943850943825024385\r\n");
    VALUE("(-1\r\n");
    VALUE("!21\r\nSYNTAX invalid syntax\r\n");
    VALUE("=15\r\ntxt:Some string\r\n");
    VALUE("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n");
    VALUE("%0\r\n");
    VALUE("~3\r\n+a\r\n:1\r\n#f\r\n");
    VALUE(">3\r\n+message\r\n+chan\r\n$5\r\nhello\r\n");
    VALUE("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n"
          "*2\r\n:2039123\r\n:9543892\r\n");   /* attribute + its value */
    VALUE("|0\r\n:1\r\n");
    /* an attribute inside an aggregate is not an element of it */
    VALUE("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n");
    /* inline commands: a line up to '\n', payload is the whole line */
    VALUE("PING\r\n");
    VALUE("PING\n");
    VALUE("set foo bar\r\n");
    VALUE("\r\n");
    VALUE("\n");
    /* only the first value */
    EXPECT(R, "+OK\r\n+NEXT\r\n", 0, 1, 5, 0, 5);
    EXPECT(R, "$1\r\nx\r\n*", 0, 1, 7, 0, 7);
    EXPECT(R, "PING\r\nPING\r\n", 0, 1, 6, 0, 6);
}

static void test_incomplete(void)
{
    MORE("");
    MORE("+OK");
    MORE("+OK\r");
    MORE("$3\r\nfo");
    MORE("$3\r\nfoo");
    MORE("$3\r\nfoo\r");
    MORE("*2\r\n:1\r\n");
    MORE("*1\r\n*1\r\n*1\r\n");
    MORE("|1\r\n+a\r\n+b\r\n");             /* the annotated value is missing */
    MORE("PING");
    MORE("PING\r");
    MORE("$10000\r\n");
}

static void test_malformed(void)
{
    BAD("$-2\r\n");
    BAD("$-0\r\n");
    BAD("$abc\r\n");
    BAD("$\r\n");
    BAD("$ 3\r\n");
    BAD("$3 \r\n");
    BAD("$+3\r\n");
    BAD("$3\r\nfooXY");                     /* CRLF required after data */
    BAD("$3\r\nfooX");                      /* ... known from the first byte */
    BAD("$3\r\nfoo\rX");
    BAD("$3\r\nfoo\n\r");
    BAD("*-2\r\n");
    BAD("*x\r\n");
    BAD("*1\r\nfoo\r\n");                   /* not a type byte in an array */
    BAD("*2\r\n:1\r\n?\r\n");
    BAD(":abc\r\n");
    BAD(":\r\n");
    BAD(":-\r\n");
    BAD(":1.5\r\n");
    BAD("#x\r\n");
    BAD("#\r\n");
    BAD("#tt\r\n");
    BAD("_x\r\n");
    BAD(",abc\r\n");
    BAD(",1e\r\n");
    BAD(",.\r\n");
    BAD(",\r\n");
    BAD("(\r\n");
    BAD("(12a\r\n");
    BAD("+OK\rX");                         /* bare CR */
    BAD("+O\nK\r\n");                      /* bare LF */
    BAD("+O\n");
    BAD("*1\r\n+a\n");
    BAD("*1\n");
    BAD("=3\r\nabc\r\n");                  /* verbatim needs "fmt:" */
    BAD("=5\r\nabcde\r\n");
    BAD("=5\r\nabcd");
    BAD("%-1\r\n");
    BAD("~-1\r\n");
    BAD("!-1\r\n");
    BAD("$?\r\n");                         /* streamed strings unsupported */
    BAD("*?\r\n");
}

static void test_depth(void)
{
    char buf[65 * 8 + 16];
    for (int d = 60; d <= 66; d++) {
        size_t n = 0;
        for (int i = 0; i < d; i++) {
            const char *h = i % 3 == 0 ? "*1\r\n" : i % 3 == 1 ? "~1\r\n" : ">1\r\n";
            memcpy(buf + n, h, 4);
            n += 4;
        }
        memcpy(buf + n, ":1\r\n", 4);
        n += 4;
        struct fr f = frame(R, buf, n, 0);
        if (d <= 64)
            CHECK(f.r == 1 && f.fl == n);
        else
            CHECK(f.r == -EPROTO);
        /* the limit applies before the inner values arrive */
        f = frame(R, buf, (size_t)d * 4, 0);
        CHECK(f.r == (d <= 64 ? 0 : -EPROTO));
    }
    /* maps count too: 64 levels of "%1 key value" */
    size_t n = 0;
    static char m[64 * 10 + 16];
    for (int i = 0; i < 64; i++) {
        memcpy(m + n, "%1\r\n+k\r\n", 8);
        n += 8;
    }
    memcpy(m + n, "_\r\n", 3);
    expect1(R, m, n + 3, 0, 1, n + 3, 0, n + 3);
    /* 64 nested "*2" need 65 scalars: the innermost takes two, each outer
     * one its nested array plus one; a completed array frees its level, so
     * another 64-deep chain may follow as the last element. */
    static char w[2 * (64 * 4 + 65 * 3) + 16];
    n = 0;
    for (int i = 0; i < 64; i++) {
        memcpy(w + n, "*2\r\n", 4);
        n += 4;
    }
    for (int i = 0; i < 64; i++) {
        memcpy(w + n, "_\r\n", 3);
        n += 3;
    }
    expect1(R, w, n, 0, 0, 0, 0, 0);
    memcpy(w + n, "_\r\n", 3);
    expect1(R, w, n + 3, 0, 1, n + 3, 0, n + 3);
    /* replace the outermost array's last scalar by another 63-deep chain:
     * depth 64 again, after having gone back to 1 */
    for (int i = 0; i < 63; i++) {
        memcpy(w + n, "*2\r\n", 4);
        n += 4;
    }
    for (int i = 0; i < 64; i++) {
        memcpy(w + n, "_\r\n", 3);
        n += 3;
    }
    CHECK(n <= sizeof w);
    expect1(R, w, n, 0, 1, n, 0, n);
    /* one level deeper at the same point is too deep */
    memmove(w + n - 64 * 3 + 4, w + n - 64 * 3, 64 * 3);
    memcpy(w + n - 64 * 3, "*1\r\n", 4);
    expect1(R, w, n + 4, 0, -EPROTO, 0, 0, 0);
}

static void test_msgsize(void)
{
    EXPECT(R, "$100\r\n", 50, -EMSGSIZE, 0, 0, 0);        /* before the data */
    EXPECT(R, "$10\r\n0123456789\r\n", 17, 1, 17, 0, 17);
    EXPECT(R, "$10\r\n0123456789\r\n", 16, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "$10\r\n", 16, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "$10\r\n", 17, 0, 0, 0, 0);
    EXPECT(R, "*1000\r\n", 100, -EMSGSIZE, 0, 0, 0);      /* >= 3000 bytes */
    EXPECT(R, "*10\r\n", 35, 0, 0, 0, 0);                  /* 5 + 30 fits */
    EXPECT(R, "*10\r\n", 34, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "%10\r\n", 65, 0, 0, 0, 0);                  /* 5 + 2*30 */
    EXPECT(R, "%10\r\n", 64, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "+aaaaaaaaaaaaaaaaaaaa", 20, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "+aaaaaaaaaaaaaaaaa", 20, 0, 0, 0, 0);
    EXPECT(R, "+aaaaaaaaaaaaaaaaaaaaaaaa\r\n", 20, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "+aaaaaaaaaaaaaaaaa\r\n", 20, 1, 20, 0, 20);
    EXPECT(R, "GET aaaaaaaaaaaaaaaaaaaaaa\r\n", 20, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n", 20, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "$99999999999999999999999999\r\n", 0, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "*99999999999999999999999999\r\n", 0, -EMSGSIZE, 0, 0, 0);
    EXPECT(R, "|9223372036854775807\r\n", 0, -EMSGSIZE, 0, 0, 0);
    /* max_frame 0 is 1 GiB: 13 header bytes + n + CRLF */
    EXPECT(R, "$1073741809\r\n", 0, 0, 0, 0, 0);
    EXPECT(R, "$1073741810\r\n", 0, -EMSGSIZE, 0, 0, 0);
}

static void test_split_coalesced(void)
{
    static const char *frames[] = {
        "*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n",
        "PING\r\n",
        "+OK\r\n",
        "$-1\r\n",
        "*2\r\n*1\r\n:1\r\n%1\r\n+k\r\n,2.5\r\n",
        "\n",
        "=9\r\ntxt:hello\r\n",
        "|1\r\n+a\r\n+b\r\n#t\r\n",
        "*0\r\n",
        "$5\r\n\r\n\r\n\r\r\n",
        "inline with spaces\n",
    };
    size_t nf = sizeof frames / sizeof frames[0];
    char buf[512];
    size_t want[16], n = 0;
    for (size_t i = 0; i < nf; i++) {
        want[i] = strlen(frames[i]);
        memcpy(buf + n, frames[i], want[i]);
        n += want[i];
    }
    check_frames(R, buf, n, 0, want, nf);

    size_t off = 0;
    for (size_t i = 0; i < nf; i++) {
        struct fr f = frame(R, buf + off, n - off, 0);
        CHECK(f.r == 1 && f.fl == want[i] && f.po == 0 && f.pl == want[i]);
        off += f.fl;
    }
    CHECK(off == n);
}

/* ---- random RESP values ---- */

static void gen_line(struct stream *s, char type)
{
    char b[64];
    int n;
    switch (type) {
    case ':': n = snprintf(b, sizeof b, ":%lld\r\n", (long long)(int64_t)rnd()); break;
    case '(': n = snprintf(b, sizeof b, "(-%llu%llu\r\n", (unsigned long long)rnd(),
                           (unsigned long long)rnd()); break;
    case ',': n = snprintf(b, sizeof b, ",%.17g\r\n", (double)(int64_t)rnd() / 1e6); break;
    case '#': n = snprintf(b, sizeof b, "#%c\r\n", rnd() & 1 ? 't' : 'f'); break;
    case '_': n = snprintf(b, sizeof b, "_\r\n"); break;
    default: {
        size_t len = rnd_below(20);
        b[0] = type;
        for (size_t i = 0; i < len; i++) {
            char c;
            do
                c = (char)(rnd() & 0xff);
            while (c == '\r' || c == '\n');
            b[1 + i] = c;
        }
        memcpy(b + 1 + len, "\r\n", 2);
        n = (int)len + 3;
    }
    }
    st_bytes(s, b, (size_t)n);
}

static void gen_value(struct stream *s, int depth)
{
    static const char types[] = "+-:$_,#(!=*%~>|";
    char t = types[rnd_below(depth >= 4 ? 10 : sizeof types - 1)];
    char h[32];
    switch (t) {
    case '$': case '!': case '=': {
        if (t == '$' && rnd_below(8) == 0) {
            st_bytes(s, "$-1\r\n", 5);
            break;
        }
        size_t n = rnd_below(rnd_below(16) == 0 ? 3000 : 30);
        if (t == '=')
            n += 4;
        st_bytes(s, h, (size_t)snprintf(h, sizeof h, "%c%zu\r\n", t, n));
        uint8_t d[3010];
        for (size_t i = 0; i < n; i++)
            d[i] = (uint8_t)rnd();
        if (t == '=')
            memcpy(d, "txt:", 4);
        st_bytes(s, d, n);
        st_bytes(s, "\r\n", 2);
        break;
    }
    case '*': case '%': case '~': case '>': case '|': {
        if (t == '*' && rnd_below(8) == 0) {
            st_bytes(s, "*-1\r\n", 5);
            break;
        }
        size_t n = rnd_below(5);
        st_bytes(s, h, (size_t)snprintf(h, sizeof h, "%c%zu\r\n", t, n));
        size_t elems = t == '%' || t == '|' ? 2 * n : n;
        for (size_t i = 0; i < elems; i++)
            gen_value(s, depth + 1);
        if (t == '|')
            gen_value(s, depth + 1);
        break;
    }
    default:
        gen_line(s, t);
    }
}

static void test_random(void)
{
    for (int iter = 0; iter < 3000; iter++) {
        struct stream s = {0};
        size_t frames = 1 + rnd_below(8);
        for (size_t i = 0; i < frames; i++) {
            size_t before = s.len;
            if (rnd_below(5) == 0) {
                /* inline command: never starts with a type byte */
                char line[80];
                size_t n = 1 + rnd_below(40);
                for (size_t k = 0; k < n; k++)
                    line[k] = "abcdefghij \tXYZ0123"[rnd_below(19)];
                line[0] = 'P';
                size_t crlf = rnd() & 1;
                memcpy(line + n, crlf ? "\r\n" : "\n", 2);
                st_bytes(&s, line, n + 1 + crlf);
            } else {
                gen_value(&s, 0);
            }
            size_t fl = s.len - before;
            st_pay(&s, s.bytes + before, fl);
            st_frame(&s, fl, fl);
        }
        feed(R, &s, iter & 1 ? 0 : s.len + rnd_below(10),
             1 + rnd_below(iter % 10 ? 32 : 4000));
        st_free(&s);
    }
}

/* ---- ringline_resp_parse_command ---- */

#define MAXA 16

struct cmd {
    int r;
    size_t fl;
    uint32_t offs[MAXA], lens[MAXA];
};

static struct cmd parse(const void *p, size_t n, unsigned max_args)
{
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy);
    if (n)
        memcpy(copy, p, n);
    struct cmd c;
    memset(&c, 0xA5, sizeof c);
    c.r = ringline_resp_parse_command(copy, n, c.offs, c.lens, max_args, &c.fl);
    if (c.r < 0)
        CHECK(c.fl == 0);
    else
        CHECK(c.fl <= n);
    if (c.r > 0)
        for (int i = 0; i < c.r; i++)
            CHECK((size_t)c.offs[i] + c.lens[i] <= c.fl);
    free(copy);
    return c;
}

/* Parse lit completely: argc, frame_len = all of it, and the arguments. Every
 * proper prefix must be incomplete (0, frame_len 0). The RESP framer must
 * agree on the frame length. */
static void expect_cmd(int line, const char *lit, size_t n, int argc,
                       const char *const *args)
{
    struct cmd c = parse(lit, n, MAXA);
    if (c.r != argc || c.fl != n)
        FAIL("(line %d) r=%d fl=%zu, want %d %zu", line, c.r, c.fl, argc, n);
    for (int i = 0; i < argc; i++) {
        size_t al = strlen(args[i]);
        if (c.lens[i] != al || memcmp(lit + c.offs[i], args[i], al))
            FAIL("(line %d) arg %d: \"%.*s\", want \"%s\"", line, i,
                 (int)c.lens[i], lit + c.offs[i], args[i]);
    }
    for (size_t k = 0; k < n; k++) {
        struct cmd p = parse(lit, k, MAXA);
        if (p.r != 0 || p.fl != 0)
            FAIL("(line %d) prefix %zu: r=%d fl=%zu", line, k, p.r, p.fl);
    }
    struct fr f = frame(R, lit, n, 0);
    CHECK(f.r == 1 && f.fl == n);
}
#define CMD(lit, argc, ...)                                                    \
    do {                                                                       \
        static const char *const a_[] = {__VA_ARGS__};                         \
        expect_cmd(__LINE__, lit, sizeof(lit) - 1, argc, a_);                  \
    } while (0)
#define CMD_ERR(lit, max_args, want)                                           \
    do {                                                                       \
        struct cmd c_ = parse(lit, sizeof(lit) - 1, max_args);                 \
        if (c_.r != (want))                                                    \
            FAIL("\"%s\": %d (%s), want %s", lit, c_.r,                        \
                 ringline_err_name(c_.r), #want);                              \
    } while (0)

static void test_parse_command(void)
{
    CMD("*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n", 3,
        "SET", "key:__rand_int__", "xxx");
    CMD("*1\r\n$4\r\nPING\r\n", 1, "PING");
    CMD("*2\r\n$3\r\nGET\r\n$0\r\n\r\n", 2, "GET", "");
    CMD("*2\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n", 2, "SET", "a\r\nb");
    CMD("PING\r\n", 1, "PING");
    CMD("PING\n", 1, "PING");
    CMD("set  key\tvalue \r\n", 3, "set", "key", "value");
    CMD(" \t GET k\n", 2, "GET", "k");
    CMD("\r\n", 0, "");
    CMD("\n", 0, "");
    CMD("   \r\n", 0, "");
    CMD("*0\r\n", 0, "");
    CMD("*-1\r\n", 0, "");
    CMD("ECHO \"a b\"\r\n", 3, "ECHO", "\"a", "b\"");  /* no quoting */

    /* exact offsets in a redis-benchmark style command */
    static const char bench[] =
        "*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n";
    struct cmd c = parse(bench, sizeof bench - 1, 3);
    CHECK(c.r == 3 && c.fl == sizeof bench - 1);
    CHECK(c.offs[0] == 8 && c.lens[0] == 3);
    CHECK(c.offs[1] == 18 && c.lens[1] == 16);
    CHECK(c.offs[2] == 40 && c.lens[2] == 3);

    /* coalesced: pipelined commands consumed one by one */
    static const char pipe[] = "PING\r\n*1\r\n$4\r\nPING\r\n*0\r\nGET k\n"
                               "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    static const int argc[] = {1, 1, 0, 2, 2};
    static const size_t fl[] = {6, 14, 4, 6, 20};
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        c = parse(pipe + off, sizeof pipe - 1 - off, MAXA);
        if (c.r != argc[i] || c.fl != fl[i])
            FAIL("pipelined %d: r=%d fl=%zu", i, c.r, c.fl);
        off += c.fl;
    }
    CHECK(off == sizeof pipe - 1);
    c = parse(pipe + off, 0, MAXA);
    CHECK(c.r == 0 && c.fl == 0);

    /* malformed */
    CMD_ERR("*2\r\n$3\r\nGET\r\n:1\r\n", MAXA, -EPROTO);  /* non-bulk */
    CMD_ERR("*2\r\n$3\r\nGET\r\n:", MAXA, -EPROTO);       /* known early */
    CMD_ERR("*1\r\n*1\r\n$1\r\na\r\n", MAXA, -EPROTO);
    CMD_ERR("*1\r\n$-1\r\n", MAXA, -EPROTO);
    CMD_ERR("*1\r\n+OK\r\n", MAXA, -EPROTO);
    CMD_ERR("*1\r\n$3\r\nabcd\r\n", MAXA, -EPROTO);
    CMD_ERR("*1\r\n$x\r\n", MAXA, -EPROTO);
    CMD_ERR("*-2\r\n", MAXA, -EPROTO);
    CMD_ERR("*a\r\n", MAXA, -EPROTO);
    CMD_ERR("*1\n", MAXA, -EPROTO);
    CMD_ERR("+OK\r\n", MAXA, -EPROTO);                   /* a value, not a command */
    CMD_ERR("$4\r\nPING\r\n", MAXA, -EPROTO);

    /* argument limits */
    CMD_ERR("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 2, -E2BIG);
    CMD_ERR("*3\r\n", 2, -E2BIG);                         /* known early */
    CMD_ERR("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 3, 3);
    CMD_ERR("a b c\r\n", 2, -E2BIG);
    CMD_ERR("a b c\r\n", 3, 3);
    CMD_ERR("PING\r\n", 0, -E2BIG);
    CMD_ERR("*999999999\r\n", 0xffffffffu, -EMSGSIZE);

    /* arguments, and NULL arrays with max_args 0 */
    size_t flen = 99;
    EXPECT_ERR(ringline_resp_parse_command("*0\r\n", 4, NULL, NULL, 0, &flen), 0);
    CHECK(flen == 4);
    EXPECT_ERR(ringline_resp_parse_command("\r\n", 2, NULL, NULL, 0, &flen), 0);
    CHECK(flen == 2);
    uint32_t o[2], l[2];
    EXPECT_ERR(ringline_resp_parse_command("PING\r\n", 6, o, l, 2, NULL), -EINVAL);
    EXPECT_ERR(ringline_resp_parse_command(NULL, 6, o, l, 2, &flen), -EINVAL);
    CHECK(flen == 0);
    EXPECT_ERR(ringline_resp_parse_command("PING\r\n", 6, NULL, l, 2, &flen), -EINVAL);
    EXPECT_ERR(ringline_resp_parse_command("PING\r\n", 6, o, NULL, 2, &flen), -EINVAL);
}

/* Random pipelines of commands (binary-safe bulk arguments or inline
 * commands) fed in random pieces; every argument must come back byte for
 * byte. */
static void test_random_commands(void)
{
    for (int iter = 0; iter < 2000; iter++) {
        struct stream s = {0};
        struct stream args = {0}; /* expected arguments, back to back */
        size_t ncmd = 1 + rnd_below(8), *argc = calloc(ncmd, sizeof *argc);
        for (size_t i = 0; i < ncmd; i++) {
            size_t before = s.len;
            if (rnd_below(4) == 0) {
                size_t n = rnd_below(6);
                for (size_t a = 0; a < n; a++) {
                    char w[20];
                    size_t wl = 1 + rnd_below(sizeof w);
                    for (size_t k = 0; k < wl; k++)
                        w[k] = "abcXYZ019_:-*$+"[rnd_below(15)];
                    if (a == 0)
                        w[0] = 'C';
                    size_t sep = (a == 0 ? 0 : 1) + rnd_below(2);
                    for (size_t k = 0; k < sep; k++)
                        st_bytes(&s, rnd() & 1 ? " " : "\t", 1);
                    st_bytes(&s, w, wl);
                    st_pay(&args, w, wl);
                    st_frame(&args, 0, wl);
                }
                size_t crlf = rnd() & 1;
                st_bytes(&s, crlf ? "\r\n" : "\n", 1 + crlf);
                argc[i] = n;
            } else {
                size_t n = rnd_below(MAXA + 1);
                char h[32];
                st_bytes(&s, h, (size_t)snprintf(h, sizeof h, "*%zu\r\n", n));
                for (size_t a = 0; a < n; a++) {
                    uint8_t d[300];
                    size_t dl = rnd_below(rnd_below(10) ? 20 : sizeof d);
                    for (size_t k = 0; k < dl; k++)
                        d[k] = (uint8_t)rnd();
                    st_bytes(&s, h, (size_t)snprintf(h, sizeof h, "$%zu\r\n", dl));
                    st_bytes(&s, d, dl);
                    st_bytes(&s, "\r\n", 2);
                    st_pay(&args, d, dl);
                    st_frame(&args, 0, dl);
                }
                argc[i] = n;
            }
            st_frame(&s, s.len - before, 0);
        }

        size_t have = 0, used = 0, cmd = 0, arg = 0, apos = 0;
        while (used < s.len) {
            CHECK(have < s.len);
            have += 1 + rnd_below(iter % 10 ? 24 : 600);
            if (have > s.len)
                have = s.len;
            for (;;) {
                struct cmd c = parse(s.bytes + used, have - used, MAXA);
                if (c.r == 0 && c.fl == 0)
                    break;
                if (c.r < 0)
                    FAIL("iter %d cmd %zu: %s", iter, cmd, ringline_err_name(c.r));
                CHECK(cmd < ncmd && (size_t)c.r == argc[cmd]);
                CHECK(c.fl == s.flen[cmd]);
                for (int a = 0; a < c.r; a++, arg++) {
                    CHECK(c.lens[a] == args.plen[arg]);
                    CHECK(memcmp(s.bytes + used + c.offs[a], args.pay + apos,
                                 c.lens[a]) == 0);
                    apos += c.lens[a];
                }
                /* the framer sees the same frame */
                struct fr f = frame(R, s.bytes + used, have - used, 0);
                CHECK(f.r == 1 && f.fl == c.fl);
                used += c.fl;
                cmd++;
            }
        }
        CHECK(cmd == ncmd && arg == args.n && apos == args.pay_len);
        free(argc);
        st_free(&s);
        st_free(&args);
    }
}

int main(void)
{
    test_valid();
    test_incomplete();
    test_malformed();
    test_depth();
    test_msgsize();
    test_split_coalesced();
    test_random();
    test_parse_command();
    test_random_commands();
    printf("ok\n");
    return 0;
}
