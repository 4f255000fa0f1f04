/*
 * fuzz_framers.c — libFuzzer harness for ringline_frame() and
 * ringline_resp_parse_command(). Not built by default (no CMake target); it
 * compiles the framer sources directly, so it needs nothing else of the
 * library:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=all -D_GNU_SOURCE -DRINGLINE_BUILDING \
 *       -I include -I core core/framer*.c tests/fuzz/fuzz_framers.c \
 *       -o /tmp/fuzz_framers
 *   mkdir -p /tmp/fuzz_corpus && /tmp/fuzz_framers -max_total_time=60 \
 *       -max_len=4096 /tmp/fuzz_corpus
 *
 * Input layout: byte 0 picks the function (low 3 bits: 0 parse_command,
 * 1..5 a framer, 6..7 an unknown framer), byte 1 the max_frame (0: the
 * default, 1..127: that many bytes, 128..255: (b - 127) * 64), byte 2
 * max_args for parse_command; the rest is the data.
 *
 * Beyond the sanitizers, it checks the contract's invariants: results are
 * only 1, 0, -EMSGSIZE or -EPROTO; a frame lies inside both len and
 * max_frame with its payload inside it; a frame does not depend on the bytes
 * after it; every proper prefix of a frame (and of a buffer that needs more)
 * gives 0; parse_command arguments lie inside its frame, and the RESP
 * framer agrees with parse_command on the frame length.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringline.h"

#define MUST(c)                                                                \
    do {                                                                       \
        if (!(c))                                                              \
            __builtin_trap();                                                  \
    } while (0)

struct res {
    int r;
    size_t fl, po, pl;
};

/* On an exactly sized heap copy, so ASan sees any read past n. */
static struct res frame(int framer, const uint8_t *p, size_t n, size_t max)
{
    uint8_t *copy = malloc(n ? n : 1);
    MUST(copy);
    if (n)
        memcpy(copy, p, n);
    struct res x = {0, 5, 5, 5};
    x.r = ringline_frame(framer, copy, n, max, &x.fl, &x.po, &x.pl);
    free(copy);
    if (x.r != 1)
        MUST(x.fl == 0 && x.po == 0 && x.pl == 0);
    return x;
}

static void check_framer(int framer, const uint8_t *d, size_t n, size_t max)
{
    struct res x = frame(framer, d, n, max);
    size_t lim = max ? max : (size_t)1 << 30;
    if (framer < RINGLINE_FRAMER_LINE || framer > RINGLINE_FRAMER_HTTP_HEAD) {
        MUST(x.r == -EINVAL);
        return;
    }
    MUST(x.r == 1 || x.r == 0 || x.r == -EMSGSIZE || x.r == -EPROTO);
    if (x.r == 0)
        MUST(n < lim);
    if (x.r == 1) {
        MUST(x.fl > 0 && x.fl <= n && x.fl <= lim);
        MUST(x.po <= x.fl && x.pl <= x.fl - x.po);
        if (framer == RINGLINE_FRAMER_LINE || framer == RINGLINE_FRAMER_RESP ||
            framer == RINGLINE_FRAMER_HTTP_HEAD)
            MUST(x.po == 0);
        /* exactly the frame: same answer */
        struct res y = frame(framer, d, x.fl, max);
        MUST(y.r == 1 && y.fl == x.fl && y.po == x.po && y.pl == x.pl);
        /* a larger max_frame changes nothing */
        y = frame(framer, d, n, x.fl + 1000);
        MUST(y.r == 1 && y.fl == x.fl && y.po == x.po && y.pl == x.pl);
    }
    /* proper prefixes of a frame, or of bytes that need more: need more */
    size_t upto = x.r == 1 ? x.fl : x.r == 0 ? n : 0;
    if (upto) {
        size_t ks[] = {0, 1, upto / 2, upto - 1, upto > 2 ? upto - 2 : 0};
        for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
            if (ks[i] < upto)
                MUST(frame(framer, d, ks[i], max).r == 0);
    }
}

static void check_command(const uint8_t *d, size_t n, unsigned max_args)
{
    uint32_t *offs = malloc((max_args ? max_args : 1) * sizeof *offs);
    uint32_t *lens = malloc((max_args ? max_args : 1) * sizeof *lens);
    uint8_t *copy = malloc(n ? n : 1);
    MUST(offs && lens && copy);
    if (n)
        memcpy(copy, d, n);
    size_t fl = 99;
    int r = ringline_resp_parse_command(copy, n, offs, lens, max_args, &fl);
    free(copy);
    MUST(r >= 0 || r == -EPROTO || r == -E2BIG || r == -EMSGSIZE);
    if (r < 0)
        MUST(fl == 0);
    if (r >= 0) {
        MUST(fl <= n && (unsigned)r <= max_args);
        MUST(r == 0 || fl > 0);
        for (int i = 0; i < r; i++)
            MUST(offs[i] <= fl && lens[i] <= fl - offs[i]);
    }
    if (r >= 0 && fl > 0) {
        struct res x = frame(RINGLINE_FRAMER_RESP, d, n, 0);
        MUST(x.r == 1 && x.fl == fl);
        /* the frame alone parses the same */
        size_t fl2 = 99;
        int r2 = ringline_resp_parse_command(d, fl, offs, lens, max_args, &fl2);
        MUST(r2 == r && fl2 == fl);
        if (fl > 1)
            MUST(ringline_resp_parse_command(d, fl - 1, offs, lens, max_args,
                                             &fl2) == 0 && fl2 == 0);
    }
    free(offs);
    free(lens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned sel = data[0] & 7;
    size_t max = data[1] == 0 ? 0 : data[1] < 128 ? data[1]
                                                  : (size_t)(data[1] - 127) * 64;
    unsigned max_args = data[2];
    const uint8_t *d = data + 3;
    size_t n = size - 3;

    if (sel == 0)
        check_command(d, n, max_args);
    else
        check_framer((int)sel, d, n, max);
    return 0;
}
