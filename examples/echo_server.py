#!/usr/bin/env python3
"""Echo server on ringline's native async API.

    python3 examples/echo_server.py PORT [--mode callback|coro] [--bytes|--view] [--c-echo] [--host 0.0.0.0]

Default (--mode callback): server.on_data(fn) — fn(conn, data) is called
from the dispatch loop for every chunk received and sends it back with
conn.send(data), which queues without blocking (the replies of one
dispatch round reach C in one call; past the high-water mark the loop stops
reading that connection until the peer reads). Python sees and returns
every byte: this is what bench/run.sh measures as ringline_py. The
callback gets each large chunk (bulk) as a memoryview of the loop's
receive memory (server.on_data(fn, view="bulk")): valid only during the
call, no copy on the way in, and conn.send(view) copies it once, straight
into C's send queue; small chunks come as bytes (cheaper for them).
--view: memoryviews for every chunk (view=True); --bytes: bytes for every
chunk (view=False).

--mode coro: a task per connection (await conn.recv(); await conn.send()).
--c-echo: each connection is handed to the C echo hot path (no Python per
byte; not a measure of Python). SIGINT / SIGTERM stop it gracefully (exit
status 0).
"""
import argparse
import sys

import ringline


def on_data(conn: ringline.Connection, data) -> None:
    # data: bytes, or a memoryview valid only during this call (view mode)
    conn.send(data)


async def handle(conn: ringline.Connection) -> None:
    async with conn:
        try:
            while data := await conn.recv():
                await conn.send(data)
        except ConnectionError:
            pass  # reset by the peer: just close


async def handle_c(conn: ringline.Connection) -> None:
    await conn.echo()


async def main(host: str, port: int, mode: str, c_echo: bool, view="bulk") -> None:
    server = await ringline.listen(host, port, backlog=1024)
    print(f"echo_server: listening on {server.host}:{server.port}", flush=True)
    # these return when the server closes: on SIGINT/SIGTERM the C loop
    # stops accepting, drains queued replies, and closes every connection
    if c_echo:
        await server.serve(handle_c)
    elif mode == "coro":
        await server.serve(handle)
    else:
        server.on_data(on_data, view=view)  # on_eof defaults to conn.close()
        await server.wait_closed()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--mode", choices=("callback", "coro"), default="callback",
                    help="callback: server.on_data (default); coro: a task per connection")
    ap.add_argument("--c-echo", action="store_true", help="echo in C (conn.echo())")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--bytes", dest="view", action="store_const", const=False, default="bulk",
                   help="callback mode: every chunk as bytes (on_data view=False)")
    g.add_argument("--view", dest="view", action="store_const", const=True,
                   help="callback mode: every chunk as a memoryview (on_data view=True)")
    a = ap.parse_args()
    ringline.run(main(a.host, a.port, a.mode, a.c_echo, a.view), handle_signals=True,
                 stop_deadline=2.0)
    print("echo_server: stopped", flush=True)
    sys.exit(0)
