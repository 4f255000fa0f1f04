/*
 * proxy — a TCP proxy: 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT.
 *
 *   proxy LISTEN_PORT TARGET_PORT
 *
 * For each accepted connection it connects to the target, then joins the
 * two with FORWARD mode in both directions: bytes move kernel buffer to
 * socket inside the loop, and backpressure on one side pauses reading on
 * the other. SIGINT/SIGTERM stop it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringline.h"

#define MAXC 65536
static ringline_id_t peer_of_client[MAXC]; /* by connection index */

static unsigned slot(ringline_id_t id) { return (unsigned)(id & (MAXC - 1)); }

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s LISTEN_PORT TARGET_PORT\n", argv[0]);
        return 2;
    }
    uint16_t lport = (uint16_t)atoi(argv[1]);
    uint16_t tport = (uint16_t)atoi(argv[2]);
    ringline_loop_t *loop;
    int ret = ringline_loop_new(NULL, &loop);
    if (ret < 0) {
        fprintf(stderr, "proxy: %s\n", ringline_strerror(ret));
        return 1;
    }
    ringline_loop_handle_signals(loop, 1000);
    ringline_id_t lid;
    ret = ringline_listen(loop, "127.0.0.1", lport, 4096, 0, &lid);
    if (ret < 0) {
        fprintf(stderr, "proxy: listen: %s\n", ringline_strerror(ret));
        return 1;
    }
    fprintf(stderr, "proxy: 127.0.0.1:%u -> 127.0.0.1:%u\n", lport, tport);
    ringline_event_t ev[256];
    for (;;) {
        int n = ringline_loop_poll(loop, ev, 256, -1);
        if (n < 0 && n != -EINTR)
            break;
        for (int i = 0; i < n; i++) {
            ringline_event_t *e = &ev[i];
            switch (e->type) {
            case RINGLINE_EV_ACCEPTED: {
                ringline_id_t up;
                /* hold the client's bytes until the upstream is there */
                ringline_conn_pause(loop, e->id);
                if (ringline_connect(loop, "127.0.0.1", tport, 5000, &up) < 0) {
                    ringline_conn_abort(loop, e->id);
                    break;
                }
                peer_of_client[slot(up)] = e->id;
                break;
            }
            case RINGLINE_EV_CONNECTED: {
                ringline_id_t client = peer_of_client[slot(e->id)];
                if (e->res < 0) {
                    ringline_conn_abort(loop, client);
                    break;
                }
                ringline_conn_set_mode(loop, e->id, RINGLINE_MODE_FORWARD, client);
                ringline_conn_set_mode(loop, client, RINGLINE_MODE_FORWARD, e->id);
                ringline_conn_resume(loop, client);
                break;
            }
            case RINGLINE_EV_STOPPED:
                ringline_loop_destroy(loop);
                return 0;
            default:
                break;
            }
        }
    }
    ringline_loop_destroy(loop);
    return 0;
}
