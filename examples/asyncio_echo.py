#!/usr/bin/env python3
"""A plain asyncio Protocol echo server; the only ringline-specific line is
the loop factory.

    python3 examples/asyncio_echo.py PORT [--loop ringline|asyncio|uvloop]

(--loop asyncio / uvloop run the very same code on asyncio's default loop or
on uvloop, for comparisons.)

Ctrl-C (SIGINT) or SIGTERM stops it (exit status 0).
"""
import argparse
import asyncio
import signal

import ringline.asyncio


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False  # close our side too


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "0.0.0.0", port, backlog=1024)
    print(f"asyncio_echo: listening on port {server.sockets[0].getsockname()[1]} "
          f"({type(loop).__name__})", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--loop", choices=["ringline", "asyncio", "uvloop"], default="ringline")
    a = ap.parse_args()
    port, which = a.port, a.loop
    if which == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    elif which == "asyncio":
        factory = None
    else:
        factory = ringline.asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(port))
    print("asyncio_echo: stopped", flush=True)
