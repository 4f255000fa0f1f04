#!/usr/bin/env python3
"""HTTP/1.1 keep-alive "hello" server on ringline's native async API.

    python3 examples/http_server.py PORT

Requests are cut in C by the HTTP_HEAD framer (head through the blank line,
plus a Content-Length body), so Python sees one event per request. Try
`wrk -t1 -c64 -d5s http://127.0.0.1:PORT/`. SIGINT / SIGTERM stop it.
"""
import argparse
import sys

import ringline

BODY = b"hello"
KEEP = (b"HTTP/1.1 200 OK\r\nServer: ringline\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY
CLOSE = (b"HTTP/1.1 200 OK\r\nServer: ringline\r\nContent-Type: text/plain\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
BAD = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def wants_close(head: bytes) -> bool:
    line_end = head.find(b"\r\n")
    if head[:line_end].endswith(b"HTTP/1.0"):
        return b"keep-alive" not in head.lower()
    return b"connection: close" in head.lower()


async def handle(conn: ringline.Connection) -> None:
    try:
        while (req := await conn.recv_frame()) is not None:
            if wants_close(req):
                conn.write(CLOSE)
                break
            conn.write(KEEP)
    except OSError:
        # EPROTO / EMSGSIZE from the framer close the connection in C; a
        # reset peer is not our problem either
        pass
    finally:
        conn.close()


async def main(host: str, port: int) -> None:
    server = await ringline.listen(host, port, backlog=1024,
                                   framer=ringline.FRAMER_HTTP_HEAD, max_frame=64 << 10)
    print(f"http_server: listening on {server.host}:{server.port}", flush=True)
    await server.serve(handle)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--host", default="0.0.0.0")
    a = ap.parse_args()
    ringline.run(main(a.host, a.port), handle_signals=True, stop_deadline=2.0)
    print("http_server: stopped", flush=True)
    sys.exit(0)
