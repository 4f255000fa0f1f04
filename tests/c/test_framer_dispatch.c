/* ringline_frame(): the checks shared by all framers — NULL pointers and
 * unknown framers (-EINVAL), outputs cleared unless a frame is returned,
 * max_frame 0 meaning 1 GiB. */
#include "rl_test.h"

static const int framers[] = {RINGLINE_FRAMER_LINE, RINGLINE_FRAMER_U16BE,
                              RINGLINE_FRAMER_U32BE, RINGLINE_FRAMER_RESP,
                              RINGLINE_FRAMER_HTTP_HEAD};

int main(void)
{
    const char *ok_input[] = {"x\n", "\x00\x01x", "\x00\x00\x00\x01x",
                              "+x\r\n", "GET / HTTP/1.1\r\n\r\n"};
    const size_t ok_len[] = {2, 3, 5, 4, 18};
    size_t fl, po, pl;

    for (int i = 0; i < 5; i++) {
        int f = framers[i];
        const char *in = ok_input[i];
        size_t n = ok_len[i];

        fl = po = pl = 77;
        OK(ringline_frame(f, in, n, 0, &fl, &po, &pl));
        CHECK(ringline_frame(f, in, n, 0, &fl, &po, &pl) == 1);
        CHECK(fl == n && po + pl <= fl);

        /* NULL pointers */
        EXPECT_ERR(ringline_frame(f, NULL, n, 0, &fl, &po, &pl), -EINVAL);
        EXPECT_ERR(ringline_frame(f, NULL, 0, 0, &fl, &po, &pl), -EINVAL);
        EXPECT_ERR(ringline_frame(f, in, n, 0, NULL, &po, &pl), -EINVAL);
        EXPECT_ERR(ringline_frame(f, in, n, 0, &fl, NULL, &pl), -EINVAL);
        EXPECT_ERR(ringline_frame(f, in, n, 0, &fl, &po, NULL), -EINVAL);

        /* outputs are 0 on "need more" and on errors */
        fl = po = pl = 77;
        EXPECT_ERR(ringline_frame(f, in, n - 1, 0, &fl, &po, &pl), 0);
        CHECK(fl == 0 && po == 0 && pl == 0);
        fl = po = pl = 77;
        EXPECT_ERR(ringline_frame(f, in, n - 1, 1, &fl, &po, &pl), -EMSGSIZE);
        CHECK(fl == 0 && po == 0 && pl == 0);
        fl = po = pl = 77;
        EXPECT_ERR(ringline_frame(f, NULL, n, 0, &fl, &po, &pl), -EINVAL);
        CHECK(fl == 0 && po == 0 && pl == 0);

        /* an explicit max_frame of exactly the frame is enough */
        CHECK(ringline_frame(f, in, n, n, &fl, &po, &pl) == 1 && fl == n);
        EXPECT_ERR(ringline_frame(f, in, n, n - 1, &fl, &po, &pl), -EMSGSIZE);
        /* an empty buffer never is a frame */
        EXPECT_ERR(ringline_frame(f, in, 0, 0, &fl, &po, &pl), 0);
    }

    /* unknown framers */
    static const int bad[] = {0, -1, 6, 7, 255, 0x104, 1 << 30};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fl = po = pl = 77;
        EXPECT_ERR(ringline_frame(bad[i], "x\n", 2, 0, &fl, &po, &pl), -EINVAL);
        CHECK(fl == 0 && po == 0 && pl == 0);
        EXPECT_ERR(ringline_frame(bad[i], "x\n", 2, 0, NULL, NULL, NULL), -EINVAL);
    }

    /* max_frame 0 is 1 GiB for every framer: declared sizes right at the
     * limit still wait for bytes, one more is -EMSGSIZE. */
    const size_t G = (size_t)1 << 30;
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_U32BE, "\x3f\xff\xff\xfc", 4, 0,
                              &fl, &po, &pl), 0);
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_U32BE, "\x3f\xff\xff\xfd", 4, 0,
                              &fl, &po, &pl), -EMSGSIZE);
    char hdr[64];
    int n = snprintf(hdr, sizeof hdr, "$%zu\r\n", G - 15);
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_RESP, hdr, (size_t)n, 0, &fl,
                              &po, &pl), 0);
    n = snprintf(hdr, sizeof hdr, "$%zu\r\n", G - 14);
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_RESP, hdr, (size_t)n, 0, &fl,
                              &po, &pl), -EMSGSIZE);
    /* a line may be long; 4 MiB without '\n' still waits */
    size_t big = 4u << 20;
    char *line = malloc(big + 1);
    CHECK(line);
    memset(line, 'a', big);
    EXPECT_ERR(ringline_frame(RINGLINE_FRAMER_LINE, line, big, 0, &fl, &po,
                              &pl), 0);
    line[big] = '\n';
    CHECK(ringline_frame(RINGLINE_FRAMER_LINE, line, big + 1, 0, &fl, &po,
                         &pl) == 1 && fl == big + 1 && pl == big);
    free(line);

    printf("ok\n");
    return 0;
}
