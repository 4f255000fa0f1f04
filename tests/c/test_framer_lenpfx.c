/* RINGLINE_FRAMER_U16BE / U32BE: big-endian length header, then payload.
 * Split input (every prefix), coalesced input, -EMSGSIZE (reported from the
 * header alone), and random streams fed in random pieces. Every call sees an
 * exactly sized heap copy of the bytes, so the sanitizer build catches any
 * read past len. */
#include "rl_framer_test.h"

/* ---- U16BE / U32BE ---- */

#define U16 RINGLINE_FRAMER_U16BE
#define U32 RINGLINE_FRAMER_U32BE

static void test_basic(void)
{
    EXPECT(U16, "\x00\x03" "abc", 0, 1, 5, 2, 3);
    EXPECT(U16, "\x00\x03" "abcdef", 0, 1, 5, 2, 3);
    EXPECT(U16, "\x00\x00", 0, 1, 2, 2, 0);       /* empty payload */
    EXPECT(U16, "\x00\x03" "ab", 0, 0, 0, 0, 0);
    EXPECT(U16, "\x00", 0, 0, 0, 0, 0);
    EXPECT(U16, "", 0, 0, 0, 0, 0);
    EXPECT(U16, "\x01\x00", 0, 0, 0, 0, 0);        /* 256 bytes to come */
    EXPECT(U32, "\x00\x00\x00\x05" "hello", 0, 1, 9, 4, 5);
    EXPECT(U32, "\x00\x00\x00\x00", 0, 1, 4, 4, 0);
    EXPECT(U32, "\x00\x00\x00", 0, 0, 0, 0, 0);
    EXPECT(U32, "\x00\x00\x01\x00" "x", 0, 0, 0, 0, 0);

    /* big-endian, all bytes significant */
    size_t n = 0x0102;
    uint8_t *b = calloc(1, 2 + n);
    b[0] = 1, b[1] = 2;
    expect1(U16, (char *)b, 2 + n, 0, 1, 2 + n, 2, n);
    expect1(U16, (char *)b, 1 + n, 0, 0, 0, 0, 0);
    free(b);
    n = 0x010203;
    b = calloc(1, 4 + n);
    b[1] = 1, b[2] = 2, b[3] = 3;
    expect1(U32, (char *)b, 4 + n, 0, 1, 4 + n, 4, n);
    expect1(U32, (char *)b, 3 + n, 0, 0, 0, 0, 0);
    free(b);
}

static void test_split_coalesced(void)
{
    static const char b16[] = "\x00\x02hi\x00\x00\x00\x05hello\x00\x01!";
    static const size_t w16[] = {4, 2, 7, 3};
    check_frames(U16, b16, sizeof b16 - 1, 0, w16, 4);

    static const char b32[] =
        "\x00\x00\x00\x02hi\x00\x00\x00\x00\x00\x00\x00\x05hello\x00\x00\x00\x01!";
    static const size_t w32[] = {6, 4, 9, 5};
    check_frames(U32, b32, sizeof b32 - 1, 0, w32, 4);

    /* coalesced: exact offsets */
    static const char *pay[] = {"hi", "", "hello", "!"};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        struct fr f = frame(U32, b32 + off, sizeof b32 - 1 - off, 0);
        CHECK(f.r == 1 && f.po == 4 && f.pl == strlen(pay[i]));
        CHECK(f.fl == 4 + f.pl);
        CHECK(memcmp(b32 + off + f.po, pay[i], f.pl) == 0);
        off += f.fl;
    }
    CHECK(off == sizeof b32 - 1);
}

static void test_msgsize(void)
{
    /* frame = header + payload must fit max_frame */
    EXPECT(U16, "\x00\x08" "12345678", 10, 1, 10, 2, 8);
    EXPECT(U16, "\x00\x09", 10, -EMSGSIZE, 0, 0, 0);   /* header alone */
    EXPECT(U16, "\x00\x09" "123456789", 10, -EMSGSIZE, 0, 0, 0);
    EXPECT(U16, "\x00\x08" "1234", 10, 0, 0, 0, 0);
    EXPECT(U16, "\x00", 1, -EMSGSIZE, 0, 0, 0);         /* >= 2 bytes anyway */
    EXPECT(U16, "\x00", 2, 0, 0, 0, 0);
    EXPECT(U16, "\xff\xff", 0, 0, 0, 0, 0);             /* 64 KiB fits 1 GiB */
    EXPECT(U32, "\x00\x00\x00\x07", 10, -EMSGSIZE, 0, 0, 0);
    EXPECT(U32, "\x00\x00\x00\x06" "123456", 10, 1, 10, 4, 6);
    EXPECT(U32, "\xff\xff\xff\xff", 0, -EMSGSIZE, 0, 0, 0);
    EXPECT(U32, "\xff\xff\xff\xff", (size_t)1 << 40, 0, 0, 0, 0);
    /* max_frame 0 means 1 GiB, header included */
    EXPECT(U32, "\x3f\xff\xff\xfc", 0, 0, 0, 0, 0);      /* 1 GiB - 4 */
    EXPECT(U32, "\x3f\xff\xff\xfd", 0, -EMSGSIZE, 0, 0, 0);
    EXPECT(U32, "\x40\x00\x00\x00", 0, -EMSGSIZE, 0, 0, 0);
}

static void test_random(void)
{
    static uint8_t pay[70000];
    for (int iter = 0; iter < 3000; iter++) {
        int framer = iter & 1 ? U32 : U16;
        unsigned hdr = framer == U32 ? 4 : 2;
        struct stream s = {0};
        size_t frames = 1 + rnd_below(10);
        for (size_t i = 0; i < frames; i++) {
            size_t n = iter % 50 == 0 ? rnd_below(65536) : rnd_below(200);
            if (framer == U32 && iter % 100 == 1)
                n = 65536 + rnd_below(4000);
            for (size_t k = 0; k < n; k++)
                pay[k] = (uint8_t)rnd();
            uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16),
                            (uint8_t)(n >> 8), (uint8_t)n};
            st_bytes(&s, h + 4 - hdr, hdr);
            st_bytes(&s, pay, n);
            st_pay(&s, pay, n);
            st_frame(&s, hdr + n, n);
        }
        size_t piece = iter % 50 <= 1 ? 1 + rnd_below(20000) : 1 + rnd_below(64);
        feed(framer, &s, iter % 3 ? 0 : 70004, piece);
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
