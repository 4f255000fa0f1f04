/*
 * framer_line.c — RINGLINE_FRAMER_LINE: a frame ends at the first '\n'; the
 * payload is the line without its "\r\n" or "\n".
 */
#include <string.h>

#include "framer.h"

int rl_frame_line(const uint8_t *buf, size_t len, size_t max_frame,
                  size_t *frame_len, size_t *payload_off, size_t *payload_len)
{
    /* A line longer than max_frame is an error wherever its '\n' is, so
     * never scan further than max_frame bytes. */
    size_t lim = rl_frame_min(len, max_frame);
    const uint8_t *nl = lim ? memchr(buf, '\n', lim) : NULL;
    if (!nl)
        return rl_frame_need_more(len, max_frame);

    size_t n = (size_t)(nl - buf); /* payload bytes before '\n' */
    *frame_len = n + 1;
    if (n && buf[n - 1] == '\r')
        n--;
    *payload_off = 0;
    *payload_len = n;
    return 1;
}
