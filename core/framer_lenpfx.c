/*
 * framer_lenpfx.c — RINGLINE_FRAMER_U16BE / U32BE: a 2- or 4-byte big-endian
 * payload length, then the payload. The whole frame (header + payload) must
 * fit in max_frame; that is known, and reported, as soon as the header is in.
 */
#include "framer.h"

int rl_frame_lenpfx(unsigned hdr, const uint8_t *buf, size_t len,
                    size_t max_frame, size_t *frame_len, size_t *payload_off,
                    size_t *payload_len)
{
    if (len < hdr)
        return rl_frame_need_more(len, max_frame);

    uint64_t n = 0;
    for (unsigned i = 0; i < hdr; i++)
        n = n << 8 | buf[i];

    /* 64-bit arithmetic: hdr + 0xFFFFFFFF must not wrap a 32-bit size_t. */
    uint64_t total = (uint64_t)hdr + n;
    if (total > (uint64_t)max_frame)
        return -EMSGSIZE;
    if ((uint64_t)len < total)
        return 0; /* len < total <= max_frame */

    *frame_len = (size_t)total;
    *payload_off = hdr;
    *payload_len = (size_t)n;
    return 1;
}
