/*
 * framer_resp.c — RINGLINE_FRAMER_RESP and ringline_resp_parse_command().
 *
 * RESP2 and RESP3 values. Lines end in "\r\n" (a bare CR or LF inside a
 * typed line is -EPROTO). A buffer whose first byte is not a RESP type byte
 * holds an inline command: a line up to '\n', as redis-cli and telnet send.
 *
 * The parser is iterative with a fixed stack of RL_RESP_MAX_DEPTH pending
 * element counts, visits each byte a bounded number of times (O(len)) and
 * never reads at or past min(len, max_frame). Declared lengths are checked
 * against max_frame as soon as they are read, so an oversized bulk string or
 * aggregate is -EMSGSIZE before its bytes arrive (an element is never shorter
 * than 3 bytes, e.g. "_\r\n", which bounds aggregate counts).
 *
 * Unsupported RESP3 forms: streamed strings and aggregates ("$?", "*?",
 * ";" chunks, "." end) give -EPROTO inside a value.
 */
#include <stdbool.h>
#include <string.h>

#include "framer.h"

/* Bytes a typed element occupies at least ("_\r\n", "+\r\n"). */
#define RESP_MIN_ELEM 3
/* Bytes a bulk-string command argument occupies at least ("$0\r\n\r\n"). */
#define RESP_MIN_BULK 6
/* parse_command has no max_frame argument: it uses the framer default,
 * which also keeps every offset representable in its uint32_t outputs. */
#define RESP_CMD_MAX RL_FRAME_MAX_DEFAULT

static bool resp_is_type(uint8_t c)
{
    switch (c) {
    case '+': case '-': case ':': case '$': case '*':
    case '_': case ',': case '#': case '(': case '!':
    case '=': case '%': case '~': case '>': case '|':
        return true;
    default:
        return false;
    }
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* The line starting at pos ends in CRLF inside [pos, lim): 1 and *eol = the
 * index of its '\r'; 0 if no CRLF yet; -EPROTO for a bare CR or LF. Scans
 * only the line itself (up to its '\r'), plus the rest of the buffer once
 * when it answers 0, so repeated calls along a buffer stay O(len). */
static int resp_line(const uint8_t *buf, size_t pos, size_t lim, size_t *eol)
{
    const uint8_t *cr = pos < lim ? memchr(buf + pos, '\r', lim - pos) : NULL;
    size_t end = cr ? (size_t)(cr - buf) : lim;
    if (end > pos && memchr(buf + pos, '\n', end - pos))
        return -EPROTO;
    if (!cr || end + 1 >= lim)
        return 0;
    if (buf[end + 1] != '\n')
        return -EPROTO;
    *eol = end;
    return 1;
}

/* A length or count: "-1" gives -1, one or more digits their value
 * (saturated at INT64_MAX, which no max_frame can accommodate); anything
 * else (empty, other negatives, signs, spaces) is -EPROTO via *ok = false. */
static int64_t resp_len(const uint8_t *s, size_t n, bool *ok)
{
    *ok = true;
    if (n == 2 && s[0] == '-' && s[1] == '1')
        return -1;
    if (n == 0)
        goto bad;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            goto bad;
        if (v <= (uint64_t)INT64_MAX / 10)
            v = v * 10 + (uint64_t)(s[i] - '0');
        else
            v = INT64_MAX;
    }
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
bad:
    *ok = false;
    return 0;
}

/* [+-]digits+ — integers and big numbers. */
static bool resp_valid_int(const uint8_t *s, size_t n)
{
    size_t i = 0;
    if (n && (s[0] == '+' || s[0] == '-'))
        i++;
    if (i == n)
        return false;
    for (; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

static bool ascii_ieq(const uint8_t *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)lit[i])
            return false;
    }
    return true;
}

/* RESP3 double: [+-](inf|nan) or [+-]digits[.digits][(e|E)[+-]digits],
 * with at least one mantissa digit (".5" and "5." are accepted). */
static bool resp_valid_double(const uint8_t *s, size_t n)
{
    size_t i = 0;
    if (n && (s[0] == '+' || s[0] == '-'))
        i++;
    if (ascii_ieq(s + i, n - i, "inf") || ascii_ieq(s + i, n - i, "nan"))
        return true;
    size_t digits = 0;
    while (i < n && is_digit(s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i]))
            i++, digits++;
    }
    if (!digits)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ed = 0;
        while (i < n && is_digit(s[i]))
            i++, ed++;
        if (!ed)
            return false;
    }
    return i == n;
}

/* The body of a bulk-like value of n bytes starting at pos must be followed
 * by CRLF. 1 with *next past it; 0 need more; -EPROTO; -EMSGSIZE if it
 * cannot fit in max_frame (known before the bytes arrive). Bytes already
 * present are checked even when the value is incomplete. */
static int resp_bulk_body(const uint8_t *buf, size_t pos, uint64_t n,
                          size_t lim, size_t max_frame, size_t *next)
{
    /* pos <= lim <= max_frame */
    size_t room = max_frame - pos;
    if (n > room || room - n < 2)
        return -EMSGSIZE;
    size_t end = pos + (size_t)n;
    if (end < lim && buf[end] != '\r')
        return -EPROTO;
    if (end + 1 < lim && buf[end + 1] != '\n')
        return -EPROTO;
    if (end + 2 > lim)
        return 0;
    *next = end + 2;
    return 1;
}

/* An inline command: one line up to '\n' anywhere in [0, lim). */
static int resp_inline_end(const uint8_t *buf, size_t lim, size_t *next)
{
    const uint8_t *nl = lim ? memchr(buf, '\n', lim) : NULL;
    if (!nl)
        return 0;
    *next = (size_t)(nl - buf) + 1;
    return 1;
}

/* Length of the first complete RESP value (or inline command) in buf:
 * 1 with *out_len, 0 need more, or -errno. */
static int resp_value(const uint8_t *buf, size_t len, size_t max_frame,
                      size_t *out_len)
{
    size_t lim = rl_frame_min(len, max_frame);
    if (lim == 0)
        return rl_frame_need_more(len, max_frame);

    if (!resp_is_type(buf[0])) {
        int r = resp_inline_end(buf, lim, out_len);
        return r ? r : rl_frame_need_more(len, max_frame);
    }

    uint64_t pending[RL_RESP_MAX_DEPTH]; /* elements left per open aggregate */
    unsigned depth = 0;
    size_t pos = 0;
    for (;;) {
        if (pos >= lim)
            return rl_frame_need_more(len, max_frame);
        uint8_t t = buf[pos];
        if (!resp_is_type(t))
            return -EPROTO;

        size_t eol;
        int r = resp_line(buf, pos + 1, lim, &eol);
        if (r < 0)
            return r;
        if (r == 0)
            return rl_frame_need_more(len, max_frame);
        const uint8_t *s = buf + pos + 1;
        size_t sn = eol - (pos + 1);
        size_t next = eol + 2;
        bool ok;

        switch (t) {
        case '+': /* simple string */
        case '-': /* simple error */
            break;
        case ':': /* integer */
        case '(': /* big number */
            if (!resp_valid_int(s, sn))
                return -EPROTO;
            break;
        case ',': /* double */
            if (!resp_valid_double(s, sn))
                return -EPROTO;
            break;
        case '#': /* boolean */
            if (sn != 1 || (s[0] != 't' && s[0] != 'f'))
                return -EPROTO;
            break;
        case '_': /* null */
            if (sn != 0)
                return -EPROTO;
            break;
        case '$': /* bulk string */
        case '!': /* bulk error */
        case '=': { /* verbatim string: "txt:" + data */
            int64_t n = resp_len(s, sn, &ok);
            if (!ok)
                return -EPROTO;
            if (n == -1 && t == '$')
                break; /* RESP2 null bulk string */
            if (n < 0 || (t == '=' && n < 4))
                return -EPROTO;
            if (t == '=' && next + 3 < lim && buf[next + 3] != ':')
                return -EPROTO;
            r = resp_bulk_body(buf, next, (uint64_t)n, lim, max_frame, &next);
            if (r < 0)
                return r;
            if (r == 0)
                return rl_frame_need_more(len, max_frame);
            break;
        }
        case '*': /* array */
        case '%': /* map: count pairs */
        case '~': /* set */
        case '>': /* push */
        case '|': { /* attribute: count pairs, then the value it annotates */
            int64_t n = resp_len(s, sn, &ok);
            if (!ok)
                return -EPROTO;
            if (n == -1 && t == '*')
                break; /* RESP2 null array */
            if (n < 0)
                return -EPROTO;
            if (depth >= RL_RESP_MAX_DEPTH)
                return -EPROTO;
            /* n <= INT64_MAX, so 2n + 1 fits in 64 bits. */
            uint64_t elems = (uint64_t)n;
            if (t == '%' || t == '|')
                elems *= 2;
            if (t == '|')
                elems += 1;
            if (elems > (max_frame - next) / RESP_MIN_ELEM)
                return -EMSGSIZE;
            if (elems == 0)
                break; /* empty aggregate: a complete value */
            pending[depth++] = elems;
            pos = next;
            continue;
        }
        default:
            return -EPROTO; /* unreachable: resp_is_type() */
        }

        /* One value complete: it is an element of the innermost open
         * aggregate, whose completion is an element of the next, ... */
        pos = next;
        while (depth > 0 && --pending[depth - 1] == 0)
            depth--;
        if (depth == 0) {
            *out_len = pos;
            return 1;
        }
    }
}

int rl_frame_resp(const uint8_t *buf, size_t len, size_t max_frame,
                  size_t *frame_len, size_t *payload_off, size_t *payload_len)
{
    size_t n;
    int r = resp_value(buf, len, max_frame, &n);
    if (r != 1)
        return r;
    *frame_len = n;
    *payload_off = 0;
    *payload_len = n;
    return 1;
}

/* "*<n>\r\n" then n "$<len>\r\n<data>\r\n" arguments. */
static int cmd_array(const uint8_t *buf, size_t len, uint32_t *offs,
                     uint32_t *lens, unsigned max_args, size_t *frame_len)
{
    const size_t max = RESP_CMD_MAX;
    size_t lim = rl_frame_min(len, max);
    size_t eol;
    bool ok;

    int r = resp_line(buf, 1, lim, &eol);
    if (r <= 0)
        return r < 0 ? r : rl_frame_need_more(len, max);
    int64_t argc = resp_len(buf + 1, eol - 1, &ok);
    if (!ok || argc < -1)
        return -EPROTO;
    size_t pos = eol + 2;
    if (argc <= 0) {
        /* "*0" and (like Redis) "*-1": an empty command, to skip. */
        *frame_len = pos;
        return 0;
    }
    if ((uint64_t)argc > max_args)
        return -E2BIG;
    if ((uint64_t)argc > (max - pos) / RESP_MIN_BULK)
        return -EMSGSIZE;

    for (int64_t i = 0; i < argc; i++) {
        if (pos >= lim)
            return rl_frame_need_more(len, max);
        if (buf[pos] != '$')
            return -EPROTO; /* only bulk strings form a command */
        r = resp_line(buf, pos + 1, lim, &eol);
        if (r <= 0)
            return r < 0 ? r : rl_frame_need_more(len, max);
        int64_t n = resp_len(buf + pos + 1, eol - pos - 1, &ok);
        if (!ok || n < 0)
            return -EPROTO; /* includes the null bulk string "$-1" */
        size_t data = eol + 2;
        r = resp_bulk_body(buf, data, (uint64_t)n, lim, max, &pos);
        if (r <= 0)
            return r < 0 ? r : rl_frame_need_more(len, max);
        /* every offset is below RESP_CMD_MAX (1 GiB) */
        offs[i] = (uint32_t)data;
        lens[i] = (uint32_t)n;
    }
    *frame_len = pos;
    return (int)argc;
}

/* One line up to '\n' (a '\r' before it is dropped), split on spaces and
 * tabs. No quoting. */
static int cmd_inline(const uint8_t *buf, size_t len, uint32_t *offs,
                      uint32_t *lens, unsigned max_args, size_t *frame_len)
{
    const size_t max = RESP_CMD_MAX;
    size_t lim = rl_frame_min(len, max);
    size_t next;
    if (!resp_inline_end(buf, lim, &next))
        return rl_frame_need_more(len, max);

    size_t end = next - 1; /* the '\n' */
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    unsigned argc = 0;
    size_t i = 0;
    while (i < end) {
        while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        if (i == end)
            break;
        size_t start = i;
        while (i < end && buf[i] != ' ' && buf[i] != '\t')
            i++;
        if (argc >= max_args)
            return -E2BIG;
        offs[argc] = (uint32_t)start;
        lens[argc] = (uint32_t)(i - start);
        argc++;
    }
    *frame_len = next;
    return (int)argc;
}

int ringline_resp_parse_command(const void *buf, size_t len, uint32_t *offs,
                                uint32_t *lens, unsigned max_args,
                                size_t *frame_len)
{
    if (!frame_len)
        return -EINVAL;
    *frame_len = 0;
    if (!buf || (max_args && (!offs || !lens)))
        return -EINVAL;
    const uint8_t *p = buf;
    if (len == 0)
        return 0;

    size_t fl = 0;
    int r;
    if (p[0] == '*')
        r = cmd_array(p, len, offs, lens, max_args, &fl);
    else if (resp_is_type(p[0]))
        r = -EPROTO; /* a RESP value, but not a command */
    else
        r = cmd_inline(p, len, offs, lens, max_args, &fl);
    if (r >= 0)
        *frame_len = fl;
    return r;
}
