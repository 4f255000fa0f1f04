/* RINGLINE_FRAMER_LINE: frames end at '\n', payload drops "\r\n"/"\n".
 * Split input (every prefix), coalesced input, -EMSGSIZE, and random streams
 * fed in random pieces. Every call sees an exactly sized heap copy of the
 * bytes, so the sanitizer build catches any read past len. */
#include "rl_framer_test.h"

/* ---- LINE ---- */

#define L RINGLINE_FRAMER_LINE

static void test_basic(void)
{
    EXPECT(L, "hello\r\n", 0, 1, 7, 0, 5);
    EXPECT(L, "hi\n", 0, 1, 3, 0, 2);
    EXPECT(L, "\n", 0, 1, 1, 0, 0);
    EXPECT(L, "\r\n", 0, 1, 2, 0, 0);
    EXPECT(L, "a\rb\n", 0, 1, 4, 0, 3);     /* only a final \r is dropped */
    EXPECT(L, "ab\r\r\n", 0, 1, 5, 0, 3);   /* one \r */
    EXPECT(L, "x\nyz\n", 0, 1, 2, 0, 1);    /* first line only */
    EXPECT(L, "", 0, 0, 0, 0, 0);
    EXPECT(L, "abc", 0, 0, 0, 0, 0);
    EXPECT(L, "abc\r", 0, 0, 0, 0, 0);
    const char nul[] = {'a', 0, 'b', '\n'}; /* NUL bytes are payload */
    expect1(L, nul, sizeof nul, 0, 1, 4, 0, 3);
}

static void test_split_coalesced(void)
{
    static const char buf[] = "first\r\nsecond\n\nthird line\r\n\r\nlast\n";
    static const size_t want[] = {7, 7, 1, 12, 2, 5};
    check_frames(L, buf, sizeof buf - 1, 0, want, 6);

    /* coalesced, exact offsets and payloads */
    static const char *pay[] = {"first", "second", "", "third line", "", "last"};
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
        struct fr f = frame(L, buf + off, sizeof buf - 1 - off, 0);
        CHECK(f.r == 1 && f.po == 0 && f.pl == strlen(pay[i]));
        CHECK(memcmp(buf + off + f.po, pay[i], f.pl) == 0);
        off += f.fl;
    }
    CHECK(off == sizeof buf - 1);
}

static void test_msgsize(void)
{
    EXPECT(L, "abcd\n", 5, 1, 5, 0, 4);           /* exactly max_frame */
    EXPECT(L, "abc\r\n", 5, 1, 5, 0, 3);
    EXPECT(L, "abcde\n", 5, -EMSGSIZE, 0, 0, 0);  /* one over */
    EXPECT(L, "abcd", 5, 0, 0, 0, 0);             /* may still fit */
    EXPECT(L, "abcde", 5, -EMSGSIZE, 0, 0, 0);    /* cannot fit any more */
    EXPECT(L, "abcdefgh", 5, -EMSGSIZE, 0, 0, 0);
    EXPECT(L, "ab\nXXXXXXXXXX", 5, 1, 3, 0, 2);   /* later bytes don't count */
    EXPECT(L, "\n", 1, 1, 1, 0, 0);
    EXPECT(L, "a", 1, -EMSGSIZE, 0, 0, 0);
}

static void test_random(void)
{
    for (int iter = 0; iter < 3000; iter++) {
        struct stream s = {0};
        size_t frames = 1 + rnd_below(12);
        size_t maxline = iter % 10 == 0 ? 3000 : 40;
        for (size_t i = 0; i < frames; i++) {
            size_t n = rnd_below(maxline);
            uint8_t line[3002];
            for (size_t k = 0; k < n; k++) {
                uint8_t c;
                do
                    c = (uint8_t)rnd();
                while (c == '\n');
                line[k] = c;
            }
            if (n && line[n - 1] == '\r') /* would be dropped with a bare \n */
                line[n - 1] = 'r';
            int crlf = rnd() & 1;
            st_pay(&s, line, n);
            memcpy(line + n, crlf ? "\r\n" : "\n", 2);
            st_bytes(&s, line, n + 1 + crlf);
            st_frame(&s, n + 1 + crlf, n);
        }
        feed(L, &s, iter & 1 ? 0 : 4000, 1 + rnd_below(64));
        st_free(&s);
    }
}

int main(void)
{
    test_basic();
    test_split_coalesced();
    test_msgsize();
    test_random();
    printf("ok\n");
    return 0;
}
