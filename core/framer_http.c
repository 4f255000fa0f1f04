/*
 * framer_http.c — RINGLINE_FRAMER_HTTP_HEAD: an HTTP/1.x request head up to
 * and including the blank line, plus a Content-Length body if declared.
 *
 * Lines end in "\r\n" or "\n" (so "\r\n\r\n", "\n\n" and mixtures end the
 * head). The request line must be "METHOD SP target SP HTTP/1.<digit>"; it is
 * checked as soon as its bytes arrive, so a non-HTTP peer (a TLS hello, say)
 * is -EPROTO after its first bytes rather than after max_frame of them.
 * Header lines must be "token ':' OWS value OWS" with no control characters
 * but HTAB in the value: whitespace before the colon, obsolete line folding
 * and bare CRs are -EPROTO (RFC 9112 lets a server reject them, and they are
 * the classic request-smuggling vectors). Content-Length is 1*DIGIT; repeats
 * must agree. Any Transfer-Encoding is -EPROTO: a request body with one can
 * only be framed as chunked, which this framer does not do.
 *
 * Payload: the head without the blank line (request line and header lines,
 * with their line endings), at offset 0; the body, if any, follows it inside
 * the frame.
 */
#include <stdbool.h>
#include <string.h>

#include "framer.h"

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* RFC 9110 tchar */
static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c))
        return true;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

/* A request line s[0..n) without its line ending. complete: n is the whole
 * line; otherwise s is what has arrived so far. 1 valid line, 0 valid prefix
 * of one, -EPROTO. */
static int http_request_line(const uint8_t *s, size_t n, bool complete)
{
    const int more = complete ? -EPROTO : 0;
    size_t i = 0;

    while (i < n && is_tchar(s[i])) /* method */
        i++;
    if (i == n)
        return more;
    if (i == 0 || s[i] != ' ')
        return -EPROTO;
    size_t t = ++i;
    while (i < n && s[i] > 0x20 && s[i] != 0x7f) /* request-target */
        i++;
    if (i == n)
        return more;
    if (i == t || s[i] != ' ')
        return -EPROTO;
    i++;
    static const char version[] = "HTTP/1.";
    for (size_t k = 0; k < sizeof version - 1; k++, i++) {
        if (i == n)
            return more;
        if (s[i] != (uint8_t)version[k])
            return -EPROTO;
    }
    if (i == n)
        return more;
    if (!is_digit(s[i]))
        return -EPROTO;
    if (i + 1 != n)
        return -EPROTO;
    return complete ? 1 : 0;
}

static bool name_is(const uint8_t *s, size_t n, const char *lower)
{
    if (n != strlen(lower))
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)lower[i])
            return false;
    }
    return true;
}

struct http_body {
    uint64_t clen; /* saturated at UINT64_MAX */
    bool have_clen;
};

/* One header line s[0..n), without its line ending. 0 or -EPROTO. */
static int http_header_line(const uint8_t *s, size_t n, struct http_body *b)
{
    size_t i = 0;
    while (i < n && is_tchar(s[i]))
        i++;
    if (i == 0 || i == n || s[i] != ':')
        return -EPROTO;
    size_t name_len = i++;

    for (size_t k = i; k < n; k++) {
        uint8_t c = s[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -EPROTO;
    }
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    size_t e = n;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;

    if (name_is(s, name_len, "content-length")) {
        if (i == e)
            return -EPROTO;
        uint64_t v = 0;
        for (; i < e; i++) {
            if (!is_digit(s[i]))
                return -EPROTO; /* signs, lists ("5, 5"), garbage */
            unsigned d = (unsigned)(s[i] - '0');
            if (v > (UINT64_MAX - d) / 10)
                v = UINT64_MAX;
            else
                v = v * 10 + d;
        }
        if (b->have_clen && v != b->clen)
            return -EPROTO;
        b->clen = v;
        b->have_clen = true;
    } else if (name_is(s, name_len, "transfer-encoding")) {
        return -EPROTO;
    }
    return 0;
}

int rl_frame_http_head(const uint8_t *buf, size_t len, size_t max_frame,
                       size_t *frame_len, size_t *payload_off,
                       size_t *payload_len)
{
    size_t lim = rl_frame_min(len, max_frame);
    struct http_body body = {0};
    size_t pos = 0, head_len = 0, payload = 0;
    int r;

    for (;;) {
        const uint8_t *nl = pos < lim ? memchr(buf + pos, '\n', lim - pos)
                                      : NULL;
        if (!nl) {
            if (pos == 0) {
                /* Request line still arriving: check what is there, minus
                 * a '\r' that may be the start of its CRLF. */
                size_t n = lim;
                if (n && buf[n - 1] == '\r')
                    n--;
                r = http_request_line(buf, n, false);
                if (r < 0)
                    return r;
            }
            return rl_frame_need_more(len, max_frame);
        }
        size_t eol = (size_t)(nl - buf);
        size_t e = eol;
        if (e > pos && buf[e - 1] == '\r')
            e--;

        if (pos == 0) {
            r = http_request_line(buf, e, true);
            if (r < 0)
                return r;
        } else if (e == pos) {
            payload = pos; /* blank line: end of the head */
            head_len = eol + 1;
            break;
        } else {
            r = http_header_line(buf + pos, e - pos, &body);
            if (r < 0)
                return r;
        }
        pos = eol + 1;
    }

    /* head_len <= lim <= max_frame */
    if (body.clen > (uint64_t)(max_frame - head_len))
        return -EMSGSIZE;
    size_t total = head_len + (size_t)body.clen;
    if (len < total)
        return 0; /* len < total <= max_frame */

    *frame_len = total;
    *payload_off = 0;
    *payload_len = payload;
    return 1;
}
