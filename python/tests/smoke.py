#!/usr/bin/env python3
"""A pytest-free smoke run (for interpreters without pytest, e.g. pyenv's):
the ring layer, the native API and the asyncio loop, each end to end.
Prints 'N passed, N failed' and exits non-zero on any failure."""
import asyncio
import errno
import os
import signal
import socket
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import ringline  # noqa: E402
import ringline.asyncio  # noqa: E402

signal.alarm(100)  # bounded, whatever happens
results = []


def check(name):
    def deco(fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001
            results.append((name, traceback.format_exc()))
            print(f"FAIL {name}\n{traceback.format_exc()}")
        return fn
    return deco


@check("import and versions")
def _():
    import cffi
    assert ringline.version_string().startswith("0.")
    print(f"     python {sys.version.split()[0]} cffi {cffi.__version__} lib {ringline.library_path}")


@check("ring: nop, timeout, recv into a buffer")
def _():
    a, b = socket.socketpair()
    with ringline.Ring() as r:
        r.nop(1)
        r.timeout(0.001, 2)
        buf = bytearray(8)
        r.recv(a, buf, 3)
        b.send(b"smoke")
        got = {}
        while len(got) < 3:
            for c in r.completions(1, 2):
                got[c.token] = c.res
        assert got == {1: 0, 2: -errno.ETIME, 3: 5} and buf[:5] == b"smoke"
    a.close()
    b.close()


@check("ring: provided buffers")
def _():
    a, b = socket.socketpair()
    with ringline.Ring() as r:
        r.buffer_group(1, 4, 128)
        r.recv_multishot(a, 1, 9)
        b.send(b"pbuf")
        c = r.completions(1, 2)[0]
        with r.buffer(c) as pb:
            assert bytes(pb.view) == b"pbuf"
        r.cancel(9, 10)
        r.completions(2, 2)
    a.close()
    b.close()


@check("native: echo, timeout, UDP")
def _():
    async def handle(conn):
        async with conn:
            while data := await conn.recv():
                await conn.send(data)

    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        ringline.spawn(server.serve(handle))
        c = await ringline.connect("127.0.0.1", server.port, timeout=2)
        c.write(b"x" * 100000)
        assert await ringline.wait_for(c.recv_exact(100000), 5) == b"x" * 100000
        try:
            await ringline.wait_for(c.recv(), 0.02)
            raise AssertionError("no timeout")
        except TimeoutError:
            pass
        u1, u2 = await ringline.udp_bind(), await ringline.udp_bind()
        u1.sendto(b"dg", ("127.0.0.1", u2.port))
        assert (await ringline.wait_for(u2.recvfrom(), 2))[0] == b"dg"
        c.close()
        server.close()
        return "ok"
    assert ringline.run(main()) == "ok"


@check("asyncio: streams echo, call_later, executor")
def _():
    async def handle(r, w):
        while d := await r.read(65536):
            w.write(d)
            await w.drain()
        w.close()

    async def main():
        loop = asyncio.get_running_loop()
        assert type(loop).__name__ == "RinglineEventLoop"
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        r, w = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
        w.write(b"stream" * 1000)
        assert await r.readexactly(6000) == b"stream" * 1000
        order = []
        loop.call_later(0.02, order.append, 2)
        loop.call_later(0.01, order.append, 1)
        await asyncio.sleep(0.03)
        assert order == [1, 2]
        assert await loop.run_in_executor(None, sum, [1, 2]) == 3
        w.close()
        srv.close()
        await srv.wait_closed()
    with asyncio.Runner(loop_factory=ringline.asyncio.new_event_loop) as runner:
        runner.run(asyncio.wait_for(main(), 10))


failed = sum(1 for _, e in results if e)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
