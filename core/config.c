/*
 * config.c — the ring configuration object.
 *
 * Setters over an opaque object rather than a struct the caller fills: new
 * options are new functions, so old binaries and FFI declarations never see
 * a layout change.
 */
#include <string.h>

#include "internal.h"

#define RL_CFG_CHECK(c)                                                        \
    do {                                                                       \
        if (!(c) || (c)->magic != RL_MAGIC_CONFIG)                             \
            return -EBADF;                                                     \
    } while (0)

#define RL_MAX_SQ 32768u
#define RL_MAX_CQ 65536u

void rl_config_defaults(ringline_config_t *c)
{
    /* every field, present and future, starts from zero */
    memset(c, 0, sizeof *c);
    c->magic = RL_MAGIC_CONFIG;
    c->sq_entries = 256;
    c->cq_entries = 0;
    c->sqpoll = false;
    c->sqpoll_idle_ms = 0;
    c->sqpoll_cpu = -1;
    c->big = false;
    c->single_issuer = true;
    c->defer_taskrun = true;
    c->max_conns = 4096;
    /* 256 x 64 KiB: measured against 1024 x 16 KiB in bench/ (see the
     * header); a bulk message then usually fits one completion */
    c->buf_count = 256;
    c->buf_size = 65536;
    c->send_high = 1u << 20;
    c->send_low = 256u << 10;
    c->zc_threshold = 16384;
    c->idle_ms = 0;
    /* UDP: 64 buffers of 68 KiB: any datagram (<= 65507 bytes) fits after
     * the 48-byte recvmsg header + address, and page-aligned buffers in a
     * lazily-touched mapping cost one page of memory per small datagram,
     * not 68 KiB (see udp.c) */
    c->udp_buf_count = 64;
    c->udp_buf_size = 69632;
}

int ringline_config_new(ringline_config_t **out)
{
    if (!out)
        return -EINVAL;
    ringline_config_t *c = rl_handle_alloc(sizeof *c, RL_MAGIC_CONFIG);
    if (!c)
        return -ENOMEM;
    rl_config_defaults(c);
    *out = c;
    return 0;
}

int ringline_config_free(ringline_config_t *cfg)
{
    RL_CFG_CHECK(cfg);
    rl_handle_free(cfg, sizeof *cfg);
    return 0;
}

int ringline_config_set_sq_entries(ringline_config_t *cfg, unsigned entries)
{
    RL_CFG_CHECK(cfg);
    if (entries < 1 || entries > RL_MAX_SQ)
        return -EINVAL;
    cfg->sq_entries = entries;
    return 0;
}

int ringline_config_set_cq_entries(ringline_config_t *cfg, unsigned entries)
{
    RL_CFG_CHECK(cfg);
    if (entries > RL_MAX_CQ)
        return -EINVAL;
    /* checked against the SQ size at ring creation, when both are known */
    cfg->cq_entries = entries;
    return 0;
}

int ringline_config_set_sqpoll(ringline_config_t *cfg, int on,
                               unsigned idle_ms, int cpu)
{
    RL_CFG_CHECK(cfg);
    if (cpu < -1)
        return -EINVAL;
    cfg->sqpoll = on != 0;
    cfg->sqpoll_idle_ms = idle_ms;
    cfg->sqpoll_cpu = cpu;
    return 0;
}

int ringline_config_set_big(ringline_config_t *cfg, int on)
{
    RL_CFG_CHECK(cfg);
    cfg->big = on != 0;
    return 0;
}

int ringline_config_set_single_issuer(ringline_config_t *cfg, int on)
{
    RL_CFG_CHECK(cfg);
    cfg->single_issuer = on != 0;
    return 0;
}

int ringline_config_set_defer_taskrun(ringline_config_t *cfg, int on)
{
    RL_CFG_CHECK(cfg);
    cfg->defer_taskrun = on != 0;
    return 0;
}

int ringline_config_set_max_conns(ringline_config_t *cfg, unsigned n)
{
    RL_CFG_CHECK(cfg);
    if (n < 1 || n > (1u << 20))
        return -EINVAL;
    cfg->max_conns = n;
    return 0;
}

int ringline_config_set_recv_buffers(ringline_config_t *cfg, unsigned count,
                                     unsigned size)
{
    RL_CFG_CHECK(cfg);
    if (count == 0 || count > 32768 || (count & (count - 1)))
        return -EINVAL;
    if (size < 64 || size > (16u << 20))
        return -EINVAL;
    cfg->buf_count = count;
    cfg->buf_size = size;
    return 0;
}

int ringline_config_set_send_limits(ringline_config_t *cfg, size_t high,
                                    size_t low)
{
    RL_CFG_CHECK(cfg);
    if (high == 0 || low > high)
        return -EINVAL;
    cfg->send_high = high;
    cfg->send_low = low;
    return 0;
}

int ringline_config_set_zc_threshold(ringline_config_t *cfg, size_t bytes)
{
    RL_CFG_CHECK(cfg);
    cfg->zc_threshold = bytes;
    return 0;
}

int ringline_config_set_fixed_files(ringline_config_t *cfg, int on)
{
    RL_CFG_CHECK(cfg);
    cfg->fixed_files = on != 0;
    return 0;
}

int ringline_config_set_idle_timeout(ringline_config_t *cfg, uint64_t ms)
{
    RL_CFG_CHECK(cfg);
    if (ms > (uint64_t)1 << 40)
        return -EINVAL;
    cfg->idle_ms = ms;
    return 0;
}

int ringline_config_set_udp_buffers(ringline_config_t *cfg, unsigned count,
                                    unsigned size)
{
    RL_CFG_CHECK(cfg);
    if (count == 0) {
        /* single-shot receives into a private 64 KiB buffer per socket */
        cfg->udp_buf_count = 0;
        return 0;
    }
    if (count > 32768 || (count & (count - 1)))
        return -EINVAL;
    /* room for the 48-byte header and address plus at least 16 bytes of
     * payload; more than 1 MiB cannot be used by any datagram */
    if (size < 64 || size > (1u << 20))
        return -EINVAL;
    cfg->udp_buf_count = count;
    cfg->udp_buf_size = size;
    return 0;
}
