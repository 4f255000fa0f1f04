/* Shared harness of the framer tests (tests/c/test_framer_*.c): a seeded
 * generator, ringline_frame on exact heap copies (so the sanitizer build
 * catches any read past len), and the split / coalesced / random-piece
 * drivers. Header-only, like rl_test.h. */
#ifndef RL_FRAMER_TEST_H
#define RL_FRAMER_TEST_H

#include "rl_test.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

struct fr {
    int r;
    size_t fl, po, pl;
};

/* ringline_frame on an exact heap copy of p[0..n). */
static struct fr frame(int framer, const void *p, size_t n, size_t max)
{
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy);
    if (n)
        memcpy(copy, p, n);
    struct fr f = {0, 7, 7, 7};
    f.r = ringline_frame(framer, copy, n, max, &f.fl, &f.po, &f.pl);
    if (f.r != 1)
        CHECK(f.fl == 0 && f.po == 0 && f.pl == 0);
    else
        CHECK(f.fl <= n && f.po + f.pl <= f.fl);
    free(copy);
    return f;
}

/* Frames of buf[0..n), consumed one by one, must be exactly want[] (frame
 * lengths), and every proper prefix of each frame must give 0. */
static void check_frames(int framer, const char *buf, size_t n, size_t max,
                         const size_t *want, size_t nwant)
{
    size_t off = 0;
    for (size_t i = 0; i < nwant; i++) {
        struct fr f = frame(framer, buf + off, n - off, max);
        if (f.r != 1 || f.fl != want[i])
            FAIL("frame %zu at %zu: r=%d fl=%zu want %zu", i, off, f.r, f.fl,
                 want[i]);
        for (size_t k = 0; k <= n - off; k++) {
            struct fr g = frame(framer, buf + off, k, max);
            if (k < want[i] && g.r != 0)
                FAIL("frame %zu prefix %zu: r=%d, want 0", i, k, g.r);
            if (k >= want[i] && (g.r != 1 || g.fl != f.fl || g.po != f.po ||
                                 g.pl != f.pl))
                FAIL("frame %zu prefix %zu: r=%d fl=%zu", i, k, g.r, g.fl);
        }
        off += f.fl;
    }
    CHECK(off == n);
    CHECK(frame(framer, buf + off, 0, max).r == 0);
}

/* One frame at the start of s: expect r, and if r == 1 the outputs. */
static void expect_at(int line, int framer, const char *s, size_t n,
                      size_t max, int r, size_t fl, size_t po, size_t pl)
{
    struct fr f = frame(framer, s, n, max);
    if (f.r != r)
        FAIL("(line %d) \"%.*s\": r=%d (%s), want %d (%s)", line,
             (int)(n > 60 ? 60 : n), s, f.r, ringline_err_name(f.r), r,
             ringline_err_name(r));
    if (r == 1 && (f.fl != fl || f.po != po || f.pl != pl))
        FAIL("(line %d) \"%.*s\": fl=%zu po=%zu pl=%zu, want %zu %zu %zu",
             line, (int)(n > 60 ? 60 : n), s, f.fl, f.po, f.pl, fl, po, pl);
}
#define expect1(...) expect_at(__LINE__, __VA_ARGS__)
#define EXPECT(framer, lit, max, r, fl, po, pl)                                \
    expect_at(__LINE__, framer, lit, sizeof(lit) - 1, max, r, fl, po, pl)

/* A stream of frames with their expected payloads, fed in random pieces. */
struct stream {
    uint8_t *bytes;
    size_t len, cap;
    uint8_t *pay; /* expected payloads, back to back */
    size_t pay_len, pay_cap;
    size_t *flen, *plen; /* per frame */
    size_t n, ncap;
};

static void grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (*p && need <= *cap)
        return;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    *p = realloc(*p, c * elem);
    CHECK(*p);
    *cap = c;
}
static void st_bytes(struct stream *s, const void *p, size_t n)
{
    grow((void **)&s->bytes, &s->cap, s->len + n, 1);
    memcpy(s->bytes + s->len, p, n);
    s->len += n;
}
static void st_pay(struct stream *s, const void *p, size_t n)
{
    grow((void **)&s->pay, &s->pay_cap, s->pay_len + n, 1);
    memcpy(s->pay + s->pay_len, p, n);
    s->pay_len += n;
}
static void st_frame(struct stream *s, size_t flen, size_t plen)
{
    size_t c1 = s->ncap, c2 = s->ncap;
    grow((void **)&s->flen, &c1, s->n + 1, sizeof(size_t));
    grow((void **)&s->plen, &c2, s->n + 1, sizeof(size_t));
    s->ncap = c1;
    s->flen[s->n] = flen;
    s->plen[s->n] = plen;
    s->n++;
}
static void st_free(struct stream *s)
{
    free(s->bytes);
    free(s->pay);
    free(s->flen);
    free(s->plen);
    memset(s, 0, sizeof *s);
}

/* Deliver s->bytes in random pieces; after each, take every complete frame.
 * Frames must match the expected lengths and payloads, and concatenated
 * must give back the stream byte for byte. */
static void feed(int framer, const struct stream *s, size_t max,
                 size_t max_piece)
{
    size_t have = 0, used = 0, idx = 0, pay = 0;
    uint8_t *again = malloc(s->len ? s->len : 1);
    size_t again_len = 0;
    while (used < s->len) {
        CHECK(have < s->len); /* else a frame never completed */
        have += 1 + rnd_below(max_piece);
        if (have > s->len)
            have = s->len;
        for (;;) {
            size_t n = have - used;
            uint8_t *copy = malloc(n ? n : 1);
            CHECK(copy);
            memcpy(copy, s->bytes + used, n);
            size_t fl = 9, po = 9, pl = 9;
            int r = ringline_frame(framer, copy, n, max, &fl, &po, &pl);
            if (r == 0) {
                free(copy);
                break;
            }
            if (r != 1)
                FAIL("frame %zu at %zu (have %zu): %s", idx, used, n,
                     ringline_err_name(r));
            CHECK(idx < s->n);
            if (fl != s->flen[idx] || pl != s->plen[idx])
                FAIL("frame %zu: fl=%zu pl=%zu, want %zu %zu", idx, fl, pl,
                     s->flen[idx], s->plen[idx]);
            CHECK(po + pl <= fl);
            CHECK(memcmp(copy + po, s->pay + pay, pl) == 0);
            memcpy(again + again_len, copy, fl);
            again_len += fl;
            pay += pl;
            used += fl;
            idx++;
            free(copy);
        }
    }
    CHECK(idx == s->n && pay == s->pay_len);
    CHECK(again_len == s->len && memcmp(again, s->bytes, s->len) == 0);
    free(again);
}

#endif
