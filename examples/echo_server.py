#!/usr/bin/env python3
"""Echo server on ringline's native async API.

    python3 examples/echo_server.py PORT [--c-echo] [--host 0.0.0.0]

Every connection gets a task that echoes what it receives. With --c-echo
each connection is handed to the C echo hot path instead (no Python per
byte). SIGINT / SIGTERM stop it gracefully (exit status 0).
"""
import argparse
import sys

import ringline


async def handle(conn: ringline.Connection) -> None:
    async with conn:
        try:
            while data := await conn.recv():
                await conn.send(data)
        except ConnectionError:
            pass  # reset by the peer: just close


async def handle_c(conn: ringline.Connection) -> None:
    await conn.echo()


async def main(host: str, port: int, c_echo: bool) -> None:
    server = await ringline.listen(host, port, backlog=1024)
    print(f"echo_server: listening on {server.host}:{server.port}", flush=True)
    # serve() returns when the server closes: on SIGINT/SIGTERM the C loop
    # stops accepting, drains queued replies, and closes every connection
    await server.serve(handle_c if c_echo else handle)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--c-echo", action="store_true", help="echo in C (conn.echo())")
    a = ap.parse_args()
    ringline.run(main(a.host, a.port, a.c_echo), handle_signals=True, stop_deadline=2.0)
    print("echo_server: stopped", flush=True)
    sys.exit(0)
