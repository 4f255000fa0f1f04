"""Callback style with view=True: on_data gets a memoryview of the loop's
receive memory, valid only during the call."""
import os
import pickle
import socket
import threading

import pytest

import ringline
from conftest import run_native


def _pattern(n, seed):
    # every byte differs from its neighbours, so a lost, doubled or
    # reordered piece anywhere changes the comparison
    return bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(n))


def _bulk_client(port, total, chunk, result, key):
    data = os.urandom(total)
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(20)
    got = bytearray()

    def reader():
        while len(got) < total:
            b = s.recv(1 << 20)
            if not b:
                break
            got.extend(b)
    t = threading.Thread(target=reader)
    t.start()
    for off in range(0, total, chunk):
        s.sendall(data[off:off + chunk])
    t.join()
    s.close()
    result[key] = (len(got), bytes(got) == data)


def test_view_echo_whole_and_slices_bulk_every_byte_checked():
    seen = {"types": set(), "calls": 0, "bytes": 0}

    def on_data(conn, v):
        seen["types"].add(type(v))
        seen["calls"] += 1
        seen["bytes"] += len(v)
        n = len(v)
        k = seen["calls"] % 3
        if k == 0 or n < 3:
            conn.send(v)                      # the whole view
        elif k == 1:
            a = n // 3
            conn.send(v[:a])                  # slices, in order
            conn.send(v[a:2 * a])
            conn.send(v[2 * a:])
        else:
            conn.send(bytes(v[:1]))           # a copy, then a view slice
            conn.send(v[1:])

    result = {}
    total = 12 << 20

    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        server.on_data(on_data, view=True)
        ts = [threading.Thread(target=_bulk_client, args=(server.port, total, chunk, result, chunk))
              for chunk in (65536, 200000, 1000)]
        for t in ts:
            t.start()
        while any(t.is_alive() for t in ts):
            await ringline.sleep(0.02)
        server.close()

    run_native(main(), timeout=60)
    for chunk in (65536, 200000, 1000):
        assert result[chunk] == (total, True), chunk
    assert seen["types"] == {memoryview}
    assert seen["bytes"] == 3 * total


def test_view_small_messages_many_connections():
    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        server.on_data(lambda c, v: c.send(v), view=True)
        conns = [await ringline.connect("127.0.0.1", server.port, timeout=2) for _ in range(8)]
        for rnd in range(20):
            msgs = [_pattern(1 + (rnd * 97 + i * 13) % 3000, rnd + i) for i in range(len(conns))]
            for c, m in zip(conns, msgs):
                c.write(m)
            for c, m in zip(conns, msgs):
                assert await c.recv_exact(len(m)) == m
        for c in conns:
            c.close()
        server.close()
    run_native(main())


def test_view_is_released_after_the_callback():
    kept = []
    errors = []

    def on_data(conn, v):
        assert v[0:4] == b"ping"           # valid during the call
        kept.append(v)
        kept.append(v[1:3])  # a slice made during the call
        conn.send(b"ok")

    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        server.on_data(on_data, view=True)
        c = await ringline.connect("127.0.0.1", server.port)
        for size in (16, 100000):  # a packed small event, then bulk
            c.write(b"ping" + b"x" * (size - 4))
            assert await c.recv_exact(2) == b"ok"
            await ringline.sleep(0.02)
            v = kept[-2]
            for op in (len, bytes, lambda v: v[0], lambda v: v.tobytes(), lambda v: v.nbytes):
                try:
                    op(v)
                except ValueError:
                    errors.append(size)
                else:
                    raise AssertionError("a released view was readable")
            # sending a released view is a ValueError too, not a crash
            for conn in [o for o in server._loop._objs.values()
                         if isinstance(o, ringline.Connection) and o is not c]:
                with pytest.raises(ValueError):
                    conn.send(v)
        c.close()
        server.close()
    run_native(main())
    assert errors.count(16) == 5 and errors.count(100000) == 5


def test_view_callback_keeping_an_export_aborts_that_connection_only(capsys):
    holders = []

    def on_data(conn, v):
        if bytes(v[:4]) == b"keep":
            holders.append(pickle.PickleBuffer(v))  # an export that outlives the call
        conn.send(v)

    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        server.on_data(on_data, view=True)
        a = await ringline.connect("127.0.0.1", server.port)
        b = await ringline.connect("127.0.0.1", server.port)
        a.write(b"keep it")
        with pytest.raises((ConnectionError, EOFError)):
            await a.recv_exact(100)
        b.write(b"fine")
        assert await b.recv_exact(4) == b"fine"
        b.close()
        server.close()
    run_native(main())
    assert "kept a buffer export" in capsys.readouterr().err


def test_view_exception_in_callback_closes_only_that_connection(capsys):
    def on_data(conn, v):
        if v[:4] == b"boom":
            raise ValueError("bad request")
        conn.send(v)

    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        server.on_data(on_data, view=True)
        a = await ringline.connect("127.0.0.1", server.port)
        b = await ringline.connect("127.0.0.1", server.port)
        b.write(b"boom")
        with pytest.raises((ConnectionError, EOFError)):
            await b.recv_exact(1)
        a.write(b"still here")
        assert await a.recv_exact(10) == b"still here"
        a.close()
        server.close()
    run_native(main())
    assert "bad request" in capsys.readouterr().err


def test_conn_on_data_view_hand_over_and_back():
    got = []

    def on_data(conn, v):
        assert type(v) is memoryview
        got.append(bytes(v))
        conn.send(v)

    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        c = await ringline.connect("127.0.0.1", server.port)
        s = await server.accept()
        c.write(b"head:")
        c.write(b"rest-of-it")
        assert await s.recv_exact(5) == b"head:"
        await ringline.sleep(0.05)  # "rest-of-it" buffered in Python
        s.on_data(on_data, view=True)
        assert b"".join(got) == b"rest-of-it"
        assert await c.recv_exact(10) == b"rest-of-it"
        big = os.urandom(300000)
        c.write(big)
        assert await c.recv_exact(len(big)) == big
        s.on_data(None)  # back to recv()
        c.write(b"task")
        assert await s.recv_exact(4) == b"task"
        s.on_data(lambda conn, d: conn.send(d.upper()))  # bytes mode again
        c.write(b"abc")
        assert await c.recv_exact(3) == b"ABC"
        c.close()
        s.close()
        server.close()
    run_native(main())


def test_view_with_a_framer_gets_frame_views():
    kinds = set()

    def on_data(conn, line):
        kinds.add(type(line))
        conn.send(bytes(line[::-1]) + b"\n")

    async def main():
        server = await ringline.listen("127.0.0.1", 0, framer=ringline.FRAMER_LINE)
        server.on_data(on_data, view=True)
        c = await ringline.connect("127.0.0.1", server.port)
        c.write(b"abc\r\nhello\n")
        assert await c.recv_exact(10) == b"cba\nolleh\n"
        c.close()
        server.close()
    run_native(main())
    assert kinds == {memoryview}


def test_view_bad_input():
    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        with pytest.raises(TypeError):
            server.on_data(lambda c, d: None, view=1)
        with pytest.raises(TypeError):
            server.on_data(lambda c, d: None, view="yes")
        with pytest.raises(TypeError):
            server.on_data(None, view=True)
        c = await ringline.connect("127.0.0.1", server.port)
        s = await server.accept()
        with pytest.raises(TypeError):
            s.on_data(lambda c, d: None, view=None)
        with pytest.raises(TypeError):
            s.on_data(42, view=True)
        with pytest.raises(TypeError):
            s.send("text")
        with pytest.raises(TypeError):
            s.send(12345)
        # a non-contiguous big view is copied (not refused, not misread)
        src = bytes(range(256)) * 400
        s.send(memoryview(src)[::2])
        assert await c.recv_exact(len(src) // 2) == src[::2]
        # a big contiguous view of caller memory: copied at send, so the
        # caller may change its buffer at once
        buf = bytearray(b"A" * 70000)
        s.send(memoryview(buf))
        buf[:] = b"B" * 70000
        assert await c.recv_exact(70000) == b"A" * 70000
        c.close()
        s.close()
        server.close()
    run_native(main())


def test_view_bulk_mode_views_for_large_chunks_bytes_for_small():
    kinds = {}

    def on_data(conn, d):
        kinds.setdefault(type(d), []).append(len(d))
        conn.send(d)

    result = {}

    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        server.on_data(on_data, view="bulk")
        c = await ringline.connect("127.0.0.1", server.port)
        for size in (1, 100, 5000):
            m = _pattern(size, size)
            c.write(m)
            assert await c.recv_exact(size) == m
        c.close()
        t = threading.Thread(target=_bulk_client, args=(server.port, 8 << 20, 65536, result, "b"))
        t.start()
        while t.is_alive():
            await ringline.sleep(0.02)
        server.close()
    run_native(main(), timeout=60)
    assert result["b"] == (8 << 20, True)
    assert set(kinds) == {bytes, memoryview}
    assert max(kinds[bytes]) <= 16384 and min(kinds[memoryview]) > 0
    assert sum(kinds[memoryview]) > 4 << 20  # bulk mostly read in place


def test_view_bad_mode_values():
    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        for bad in ("BULK", "view", 0, 2, None, [True]):
            with pytest.raises(TypeError):
                server.on_data(lambda c, d: None, view=bad)
        server.close()
    run_native(main())


def test_slim_connections_lazy_state_and_close_waiters():
    # per-connection state is made only when used (issue 6: idle RSS): a
    # callback-style connection never gets a receive deque; several
    # wait_closed() and a send_and_wait() all resolve when it closes
    seen = []

    async def main():
        server = await ringline.listen("127.0.0.1", 0)
        server.on_connect = seen.append
        server.on_data(lambda c, d: c.send(d), view="bulk")
        c = await ringline.connect("127.0.0.1", server.port)
        c.write(b"x")
        assert await c.recv_exact(1) == b"x"
        assert seen and seen[0]._chunks is None and seen[0]._sent_waits is None
        s = seen[0]
        waiters = [ringline.spawn(s.wait_closed()) for _ in range(3)]
        assert await s.send_and_wait(b"tail") == 4
        assert await c.recv_exact(4) == b"tail"
        await ringline.sleep(0.01)
        assert not any(w.done() for w in waiters)
        c.close()
        for w in waiters:
            assert await ringline.wait_for(w, 5) is None
        assert s.closed
        server.close()
    run_native(main())
