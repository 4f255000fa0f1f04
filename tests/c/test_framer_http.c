/* RINGLINE_FRAMER_HTTP_HEAD: request head through the blank line, plus a
 * Content-Length body. Split input (every prefix), coalesced (pipelined)
 * input, malformed input, -EMSGSIZE, and random request streams fed in random
 * pieces. Every call sees an exactly sized heap copy of the bytes, so the
 * sanitizer build catches any read past len. */
#include "rl_framer_test.h"

/* ---- HTTP_HEAD ---- */

#define H RINGLINE_FRAMER_HTTP_HEAD

/* lit is a whole request whose head ends with a blank line of blank bytes
 * ("\r\n" or "\n") and then body bytes of body. */
#define REQ(lit, blank, body)                                                  \
    EXPECT(H, lit, 0, 1, sizeof(lit) - 1, 0, sizeof(lit) - 1 - (blank) - (body))
#define BAD(lit) EXPECT(H, lit, 0, -EPROTO, 0, 0, 0)
#define MORE(lit) EXPECT(H, lit, 0, 0, 0, 0, 0)

static void test_valid(void)
{
    REQ("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 2, 0);
    REQ("GET / HTTP/1.0\r\n\r\n", 2, 0);
    REQ("GET / HTTP/1.1\n\n", 1, 0);
    REQ("GET / HTTP/1.1\r\nA: b\n\r\n", 2, 0);
    REQ("GET / HTTP/1.1\nA: b\r\n\n", 1, 0);
    REQ("get /x HTTP/1.1\r\n\r\n", 2, 0);
    REQ("M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n", 2, 0);
    REQ("OPTIONS * HTTP/1.1\r\n\r\n", 2, 0);
    REQ("GET /a?b=c&d=%20#f HTTP/1.1\r\n\r\n", 2, 0);
    REQ("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 2, 0);
    REQ("GET / HTTP/1.1\r\nX-Empty:\r\nX-Tab:\ta\tb\t\r\n\r\n", 2, 0);
    REQ("GET / HTTP/1.1\r\nX-Utf8: caf\xc3\xa9\r\n\r\n", 2, 0);
    REQ("POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 2, 5);
    REQ("POST /p HTTP/1.1\r\ncontent-LENGTH:   5  \r\n\r\nhello", 2, 5);
    REQ("POST /p HTTP/1.1\r\nContent-Length:5\r\n\r\nhello", 2, 5);
    REQ("POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 2, 0);
    REQ("POST /p HTTP/1.1\r\nContent-Length: 007\r\n\r\n\r\n\r\n\r\n\n", 2, 7);
    REQ("POST /p HTTP/1.1\r\nContent-Length: 3\r\nX: y\r\n"
        "Content-Length: 3\r\n\r\nabc", 2, 3);   /* same value twice */
    REQ("POST /p HTTP/1.1\nContent-Length: 2\n\n\r\n", 1, 2);
    REQ("GET / HTTP/1.1\r\nContent-Lengthy: 5\r\n\r\n", 2, 0);
    /* only the first request; a body is binary */
    EXPECT(H, "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, 1, 18, 0, 16);
    const char bin[] = "PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\n\0\n\r";
    expect1(H, bin, sizeof bin - 1, 0, 1, sizeof bin - 1, 0, sizeof bin - 6);
}

static void test_incomplete(void)
{
    MORE("");
    MORE("G");
    MORE("GET");
    MORE("GET ");
    MORE("GET /");
    MORE("GET / HTTP/1.");
    MORE("GET / HTTP/1.1");
    MORE("GET / HTTP/1.1\r");
    MORE("GET / HTTP/1.1\r\n");
    MORE("GET / HTTP/1.1\r\nHost: x");
    MORE("GET / HTTP/1.1\r\nHost: x\r\n");
    MORE("GET / HTTP/1.1\r\nHost: x\r\n\r");
    MORE("GET / HTTP/1.1\n");
    MORE("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
    MORE("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhell");
}

static void test_malformed(void)
{
    BAD("GET /  HTTP/1.1\r\n\r\n");
    BAD("GET  / HTTP/1.1\r\n\r\n");
    BAD("GET / HTTP/2.0\r\n\r\n");
    BAD("GET / HTTP/1.10\r\n\r\n");
    BAD("GET / HTTP/1.\r\n\r\n");
    BAD("GET / HTTP/1.x\r\n\r\n");
    BAD("GET / http/1.1\r\n\r\n");
    BAD("GET / HTTP/1.1 \r\n\r\n");
    BAD("GET /\r\n\r\n");                   /* HTTP/0.9 */
    BAD("GET\r\n\r\n");
    BAD("GET /\x01 HTTP/1.1\r\n\r\n");
    BAD(" GET / HTTP/1.1\r\n\r\n");
    BAD("\r\nGET / HTTP/1.1\r\n\r\n");      /* leading empty line */
    BAD("\r\n\r\n");
    BAD("GET / HTTP/1.1\r\r\n\r\n");
    BAD("GET\t/ HTTP/1.1\r\n\r\n");
    BAD("HTTP/1.1 200 OK\r\n\r\n");         /* a response, not a request */
    /* known from the first bytes, long before a blank line */
    BAD("\x16\x03\x01\x02\x00");            /* TLS ClientHello */
    BAD("G\x01");
    BAD("GET / \x01");
    BAD("GET / X");
    BAD("GET / HTTP/1.1x");
    BAD("GET / HTTP/1.1\rx");
    BAD("*3\r\n$3\r\nSET\r\n");
    /* header lines */
    BAD("GET / HTTP/1.1\r\nHost : x\r\n\r\n");
    BAD("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n");
    BAD("GET / HTTP/1.1\r\n\tfolded\r\n\r\n");
    BAD("GET / HTTP/1.1\r\nNoColon\r\n\r\n");
    BAD("GET / HTTP/1.1\r\n: value\r\n\r\n");
    BAD("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n");
    BAD("GET / HTTP/1.1\r\nX(y): z\r\n\r\n");
    const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    expect1(H, nul, sizeof nul - 1, 0, -EPROTO, 0, 0, 0);
    /* Content-Length */
    BAD("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n");
    BAD("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
    BAD("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello");
    BAD("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello");
    BAD("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\nhello");
    BAD("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n");
    BAD("POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\nhello");
    BAD("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello!");
    BAD("POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n");
    /* Transfer-Encoding */
    BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    BAD("POST / HTTP/1.1\r\ntransfer-encoding: CHUNKED\r\n\r\n");
    BAD("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    BAD("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
}

static void test_msgsize(void)
{
    /* "GET / HTTP/1.1\r\n\r\n" is 18 bytes */
    EXPECT(H, "GET / HTTP/1.1\r\n\r\n", 18, 1, 18, 0, 16);
    EXPECT(H, "GET / HTTP/1.1\r\n\r\n", 17, -EMSGSIZE, 0, 0, 0);
    EXPECT(H, "GET / HTTP/1.1\r\n\r", 17, -EMSGSIZE, 0, 0, 0); /* head incomplete */
    EXPECT(H, "GET / HTTP/1.1\r\n\r", 18, 0, 0, 0, 0);
    EXPECT(H, "GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaa", 30, -EMSGSIZE, 0, 0, 0);
    /* Content-Length counts, and is known before the body arrives */
    static const char post[] = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
    size_t hl = sizeof post - 1; /* 39 */
    expect1(H, post, hl, hl + 10, 0, 0, 0, 0);
    expect1(H, post, hl, hl + 9, -EMSGSIZE, 0, 0, 0);
    EXPECT(H, "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
           0, -EMSGSIZE, 0, 0, 0);
    EXPECT(H, "POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
           0, -EMSGSIZE, 0, 0, 0);
    /* max_frame 0 is 1 GiB, head included */
    char big[128];
    for (size_t cl = ((size_t)1 << 30) - 60; cl < ((size_t)1 << 30); cl++) {
        int n = snprintf(big, sizeof big,
                         "POST / HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", cl);
        int want = (size_t)n + cl <= ((size_t)1 << 30) ? 0 : -EMSGSIZE;
        expect1(H, big, (size_t)n, 0, want, 0, 0, 0);
    }
}

static void test_split_coalesced(void)
{
    static const char *reqs[] = {
        "GET /index.html HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nxx",
        "GET / HTTP/1.0\n\n",
        "PUT /x HTTP/1.1\r\nContent-Length: 4\n\nGET ",
        "DELETE /y HTTP/1.1\r\n\r\n",
    };
    static const size_t blank[] = {2, 2, 1, 1, 2}, body[] = {0, 11, 0, 4, 0};
    char buf[512];
    size_t want[8], n = 0, nr = sizeof reqs / sizeof reqs[0];
    for (size_t i = 0; i < nr; i++) {
        want[i] = strlen(reqs[i]);
        memcpy(buf + n, reqs[i], want[i]);
        n += want[i];
    }
    check_frames(H, buf, n, 0, want, nr);
    check_frames(H, buf, n, 200, want, nr);

    size_t off = 0;
    for (size_t i = 0; i < nr; i++) {
        struct fr f = frame(H, buf + off, n - off, 0);
        CHECK(f.r == 1 && f.fl == want[i] && f.po == 0);
        CHECK(f.pl == want[i] - blank[i] - body[i]);
        off += f.fl;
    }
    CHECK(off == n);
}

static void test_random(void)
{
    static const char *methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD",
                                    "OPTIONS", "PATCH", "X-CUSTOM"};
    static const char *names[] = {"Host", "User-Agent", "Accept", "Cookie",
                                  "X-Forwarded-For", "Connection",
                                  "content-type", "X-A"};
    static uint8_t body[5000];
    char line[200];
    for (int iter = 0; iter < 3000; iter++) {
        struct stream s = {0};
        size_t nreq = 1 + rnd_below(6);
        for (size_t i = 0; i < nreq; i++) {
            size_t before = s.len;
            const char *eol = rnd() & 1 ? "\r\n" : "\n";
            int n = snprintf(line, sizeof line, "%s /", methods[rnd_below(8)]);
            size_t tl = rnd_below(30);
            for (size_t k = 0; k < tl; k++)
                line[n++] = "abc/?=&%.-_~09XYZ"[rnd_below(17)];
            n += snprintf(line + n, sizeof line - (size_t)n, " HTTP/1.%d%s",
                          (int)rnd_below(2), eol);
            st_bytes(&s, line, (size_t)n);
            size_t nh = rnd_below(8);
            size_t cl = rnd_below(3) == 0 ? rnd_below(rnd_below(10) ? 50 : 5000) : 0;
            size_t cl_at = cl ? rnd_below(nh + 1) : (size_t)-1;
            for (size_t h = 0; h <= nh; h++) {
                if (h == cl_at) {
                    n = snprintf(line, sizeof line, "%s:%s%zu%s%s",
                                 rnd() & 1 ? "Content-Length" : "content-length",
                                 rnd() & 1 ? " " : "", cl, rnd() & 1 ? "\t" : "",
                                 eol);
                    st_bytes(&s, line, (size_t)n);
                }
                if (h == nh)
                    break;
                n = snprintf(line, sizeof line, "%s: ", names[rnd_below(8)]);
                size_t vl = rnd_below(60);
                for (size_t k = 0; k < vl; k++) {
                    uint8_t c = (uint8_t)(0x20 + rnd_below(0xe0));
                    line[n++] = (char)(c == 0x7f ? '\t' : c);
                }
                n += snprintf(line + n, sizeof line - (size_t)n, "%s", eol);
                st_bytes(&s, line, (size_t)n);
            }
            size_t head = s.len - before;
            st_pay(&s, s.bytes + before, head);
            const char *blank = rnd_below(4) ? eol : (rnd() & 1 ? "\r\n" : "\n");
            st_bytes(&s, blank, strlen(blank));
            for (size_t k = 0; k < cl; k++)
                body[k] = (uint8_t)rnd();
            st_bytes(&s, body, cl);
            st_frame(&s, s.len - before, head);
        }
        feed(H, &s, iter & 1 ? 0 : s.len + rnd_below(10),
             1 + rnd_below(iter % 10 ? 40 : 3000));
        st_free(&s);
    }
}

int main(void)
{
    test_valid();
    test_incomplete();
    test_malformed();
    test_msgsize();
    test_split_coalesced();
    test_random();
    printf("ok\n");
    return 0;
}
