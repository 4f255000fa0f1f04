/*
 * framer.c — ringline_frame(): argument checks and dispatch to the framers
 * (framer_line.c, framer_lenpfx.c, framer_resp.c, framer_http.c).
 */
#include "framer.h"

int ringline_frame(int framer, const void *buf, size_t len, size_t max_frame,
                   size_t *frame_len, size_t *payload_off, size_t *payload_len)
{
    if (!frame_len || !payload_off || !payload_len)
        return -EINVAL;
    *frame_len = 0;
    *payload_off = 0;
    *payload_len = 0;
    if (!buf)
        return -EINVAL;
    if (max_frame == 0)
        max_frame = RL_FRAME_MAX_DEFAULT;

    size_t fl = 0, po = 0, pl = 0;
    int r;
    switch (framer) {
    case RINGLINE_FRAMER_LINE:
        r = rl_frame_line(buf, len, max_frame, &fl, &po, &pl);
        break;
    case RINGLINE_FRAMER_U16BE:
        r = rl_frame_lenpfx(2, buf, len, max_frame, &fl, &po, &pl);
        break;
    case RINGLINE_FRAMER_U32BE:
        r = rl_frame_lenpfx(4, buf, len, max_frame, &fl, &po, &pl);
        break;
    case RINGLINE_FRAMER_RESP:
        r = rl_frame_resp(buf, len, max_frame, &fl, &po, &pl);
        break;
    case RINGLINE_FRAMER_HTTP_HEAD:
        r = rl_frame_http_head(buf, len, max_frame, &fl, &po, &pl);
        break;
    default:
        return -EINVAL;
    }
    if (r == 1) {
        *frame_len = fl;
        *payload_off = po;
        *payload_len = pl;
    }
    return r;
}
