/*
 * framer.h — what the framer files share (core/framer*.c). Never installed.
 *
 * Every framer is a pure function over buf[0..len): it returns 1 with the
 * three outputs filled, 0 if more bytes are needed, or a negative errno. The
 * dispatcher (ringline_frame, framer.c) has already checked the pointers,
 * replaced max_frame 0 by RL_FRAME_MAX_DEFAULT, and clears the outputs on any
 * return other than 1, so the framers only write them on success.
 *
 * Size rule shared by all framers: a frame must satisfy frame_len <=
 * max_frame. A framer that needs more bytes knows the frame is longer than
 * len, so with len >= max_frame it answers -EMSGSIZE instead of 0 (see
 * rl_frame_need_more); it also answers -EMSGSIZE as soon as a declared length
 * shows the frame will not fit, before those bytes arrive. Framers never look
 * at more than min(len, max_frame) bytes.
 */
#ifndef RINGLINE_FRAMER_H
#define RINGLINE_FRAMER_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define RL_FRAME_MAX_DEFAULT ((size_t)1 << 30) /* max_frame 0 means 1 GiB */

/* Maximum nesting of RESP aggregates (arrays, maps, sets, pushes,
 * attributes); one more is -EPROTO. */
#define RL_RESP_MAX_DEPTH 64

/* "Need more bytes" for a frame that is known to be longer than len. */
static inline int rl_frame_need_more(size_t len, size_t max_frame)
{
    return len >= max_frame ? -EMSGSIZE : 0;
}

static inline size_t rl_frame_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

RL_HIDDEN int rl_frame_line(const uint8_t *buf, size_t len, size_t max_frame,
                            size_t *frame_len, size_t *payload_off,
                            size_t *payload_len);
/* hdr is 2 (U16BE) or 4 (U32BE). */
RL_HIDDEN int rl_frame_lenpfx(unsigned hdr, const uint8_t *buf, size_t len,
                              size_t max_frame, size_t *frame_len,
                              size_t *payload_off, size_t *payload_len);
RL_HIDDEN int rl_frame_resp(const uint8_t *buf, size_t len, size_t max_frame,
                            size_t *frame_len, size_t *payload_off,
                            size_t *payload_len);
RL_HIDDEN int rl_frame_http_head(const uint8_t *buf, size_t len,
                                 size_t max_frame, size_t *frame_len,
                                 size_t *payload_off, size_t *payload_len);

#endif
