"""asyncio on ringline: unmodified asyncio code on RinglineEventLoop."""
import asyncio
import errno
import os
import signal
import socket
import threading
import time

import pytest

import ringline.asyncio as rla


def run(coro, timeout=20):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)
    with asyncio.Runner(loop_factory=rla.new_event_loop) as r:
        return r.run(guarded())


class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t

    def data_received(self, d):
        self.t.write(d)


class BufferedEcho(asyncio.BufferedProtocol):
    def __init__(self):
        self.buf = bytearray(1000)  # small on purpose: data spans get_buffer calls

    def connection_made(self, t):
        self.t = t

    def get_buffer(self, n):
        return self.buf

    def buffer_updated(self, n):
        self.t.write(bytes(self.buf[:n]))


def test_loop_type_and_runner():
    async def main():
        return type(asyncio.get_running_loop())
    assert run(main()) is rla.RinglineEventLoop


@pytest.mark.parametrize("proto", [Echo, BufferedEcho])
def test_protocol_echo(proto):
    async def main():
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(proto, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for i in range(50):
            w.write(b"line %d\n" % i)
        for i in range(50):
            assert await r.readline() == b"line %d\n" % i
        data = os.urandom(500_000)
        w.write(data)
        await w.drain()
        assert await r.readexactly(len(data)) == data
        assert w.get_extra_info("peername") == ("127.0.0.1", port)
        w.close()
        await w.wait_closed()
        srv.close()
        await srv.wait_closed()
    run(main())


def test_streams_server_and_client_half_close():
    async def handle(r, w):
        data = await r.read()          # until EOF
        w.write(data[::-1])
        await w.drain()
        w.close()
        await w.wait_closed()

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("localhost", port)
        w.write(b"abcdef")
        assert w.can_write_eof()
        w.write_eof()
        assert await r.read() == b"fedcba"
        w.close()
        async with srv:
            pass
    run(main())


def test_call_later_ordering_call_at_threadsafe_executor():
    async def main():
        loop = asyncio.get_running_loop()
        order = []
        loop.call_later(0.03, order.append, "c")
        loop.call_later(0.01, order.append, "a")
        loop.call_at(loop.time() + 0.02, order.append, "b")
        loop.call_soon(order.append, "now")
        h = loop.call_later(0.015, order.append, "cancelled")
        h.cancel()
        await asyncio.sleep(0.05)
        assert order == ["now", "a", "b", "c"]
        fut = loop.create_future()
        threading.Timer(0.01, loop.call_soon_threadsafe, (fut.set_result, "from thread")).start()
        assert await fut == "from thread"
        t0 = time.monotonic()
        assert await loop.run_in_executor(None, time.sleep, 0.05) is None
        assert time.monotonic() - t0 >= 0.04
        infos = await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        assert infos
    run(main())


def test_cancellation_never_loses_bytes():
    async def main():
        loop = asyncio.get_running_loop()
        got = asyncio.Queue()

        async def handle(r, w):
            while True:
                # short timeouts cancel read() again and again
                try:
                    d = await asyncio.wait_for(r.read(100), 0.001)
                except asyncio.TimeoutError:
                    continue
                if not d:
                    break
                await got.put(d)
            w.close()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        r, w = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
        sent = b""
        for i in range(200):
            chunk = b"%05d," % i
            sent += chunk
            w.write(chunk)
            if i % 20 == 0:
                await asyncio.sleep(0.002)
        w.write_eof()
        received = b""
        while len(received) < len(sent):
            received += await asyncio.wait_for(got.get(), 5)
        assert received == sent
        w.close()
        srv.close()

        # sock_recv cancelled while waiting: the bytes that then arrive stay
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        t = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        t.cancel()
        await loop.sock_sendall(b, b"survives")
        with pytest.raises(asyncio.CancelledError):
            await t
        assert await loop.sock_recv(a, 100) == b"survives"
        a.close()
        b.close()
    run(main())


def test_sock_functions():
    async def main():
        loop = asyncio.get_running_loop()
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        ls.setblocking(False)
        cs = socket.socket()
        cs.setblocking(False)
        acc = asyncio.ensure_future(loop.sock_accept(ls))
        await loop.sock_connect(cs, ls.getsockname())
        srv, addr = await acc
        assert addr == cs.getsockname()
        payload = os.urandom(2_000_000)
        send = asyncio.ensure_future(loop.sock_sendall(cs, payload))
        buf = bytearray()
        while len(buf) < len(payload):
            chunk = bytearray(65536)
            n = await loop.sock_recv_into(srv, chunk)
            buf += chunk[:n]
        await send
        assert bytes(buf) == payload
        with pytest.raises(ValueError):
            await loop.sock_recv(socket.socket(), 1)   # blocking socket
        with pytest.raises(TypeError):
            await loop.sock_recv(42, 1)
        u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for u in (u1, u2):
            u.bind(("127.0.0.1", 0))
            u.setblocking(False)
        await loop.sock_sendto(u1, b"dg", u2.getsockname())
        assert await loop.sock_recvfrom(u2, 10) == (b"dg", u1.getsockname())
        for s in (ls, cs, srv, u1, u2):
            s.close()
    run(main())


def test_udp_datagram_endpoint():
    async def main():
        loop = asyncio.get_running_loop()

        class Server(asyncio.DatagramProtocol):
            def connection_made(self, t):
                self.t = t

            def datagram_received(self, data, addr):
                self.t.sendto(data.upper(), addr)

        class Client(asyncio.DatagramProtocol):
            def __init__(self):
                self.q = asyncio.Queue()
                self.lost = loop.create_future()

            def datagram_received(self, data, addr):
                self.q.put_nowait((data, addr))

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        st, _ = await loop.create_datagram_endpoint(Server, local_addr=("127.0.0.1", 0))
        saddr = st.get_extra_info("sockname")
        ct, cp = await loop.create_datagram_endpoint(Client, remote_addr=saddr)
        ct.sendto(b"hello")
        data, addr = await asyncio.wait_for(cp.q.get(), 2)
        assert data == b"HELLO" and addr[1] == saddr[1]
        with pytest.raises(ValueError):
            ct.sendto(b"x", ("127.0.0.1", 1))
        ct.close()
        assert await asyncio.wait_for(cp.lost, 2) is None
        st.close()
    run(main())


def test_signal_handlers():
    async def main():
        loop = asyncio.get_running_loop()
        got = asyncio.Queue()
        loop.add_signal_handler(signal.SIGUSR1, got.put_nowait, "usr1")
        loop.add_signal_handler(signal.SIGUSR2, got.put_nowait, "usr2")
        os.kill(os.getpid(), signal.SIGUSR1)
        assert await asyncio.wait_for(got.get(), 2) == "usr1"
        # delivered while the loop is blocked in its poll, from another thread
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        assert await asyncio.wait_for(got.get(), 2) == "usr2"
        assert loop.remove_signal_handler(signal.SIGUSR1)
        assert not loop.remove_signal_handler(signal.SIGUSR1)
        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, asyncio.sleep)
        with pytest.raises((ValueError, RuntimeError)):
            loop.add_signal_handler(signal.SIGKILL, print)
        with pytest.raises(ValueError):
            loop.add_signal_handler(4242, print)
    run(main())
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


def test_flow_control_and_pause_reading():
    async def main():
        loop = asyncio.get_running_loop()
        events = []

        class Slow(asyncio.Protocol):
            def connection_made(self, t):
                self.t = t
                self.data = b""
                t.pause_reading()
                loop.call_later(0.05, self.resume)

            def resume(self):
                events.append("resume")
                self.t.resume_reading()

            def data_received(self, d):
                events.append("data")
                self.data += d
                if len(self.data) >= 3:
                    self.t.write(self.data)

        class Pusher(asyncio.Protocol):
            def connection_made(self, t):
                self.t = t
                self.paused = loop.create_future()
                self.resumed = loop.create_future()

            def pause_writing(self):
                self.paused.set_result(True)

            def resume_writing(self):
                self.resumed.set_result(True)

        srv = await loop.create_server(Slow, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"abc")
        assert await asyncio.wait_for(r.readexactly(3), 2) == b"abc"
        assert events[0] == "resume"      # no data_received while paused
        w.close()
        # write flow control: a peer that does not read makes the queue grow
        hold = socket.socket()
        hold.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hold.bind(("127.0.0.1", 0))
        hold.listen()
        t, p = await loop.create_connection(Pusher, "127.0.0.1", hold.getsockname()[1])
        peer, _ = hold.accept()
        for _ in range(200):
            t.write(b"x" * 65536)
            if p.paused.done():
                break
        assert p.paused.done() and t.get_write_buffer_size() > 0
        peer.setblocking(False)

        async def drain_peer():
            while not p.resumed.done():
                try:
                    peer.recv(1 << 20)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
        await asyncio.wait_for(drain_peer(), 10)
        t.abort()
        peer.close()
        hold.close()
        srv.close()
    run(main())


def test_connection_errors():
    async def main():
        loop = asyncio.get_running_loop()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        lost = loop.create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        t, p = await loop.create_connection(P, "127.0.0.1", ls.getsockname()[1])
        peer, _ = ls.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        peer.close()        # RST
        exc = await asyncio.wait_for(lost, 2)
        assert exc is None or isinstance(exc, ConnectionResetError)
        ls.close()
    run(main())


def test_unsupported_raise_clear_errors():
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(NotImplementedError, match="add_reader.*sock_"):
            loop.add_reader(0, print)
        with pytest.raises(NotImplementedError, match="add_writer"):
            loop.add_writer(0, print)
        with pytest.raises(NotImplementedError):
            loop.remove_reader(0)
        with pytest.raises(NotImplementedError, match="run_in_executor"):
            await asyncio.create_subprocess_exec("true")
        r, w = os.pipe()
        try:
            with pytest.raises(NotImplementedError, match="pipes"):
                await loop.connect_read_pipe(asyncio.Protocol, os.fdopen(r, "rb", closefd=False))
        finally:
            os.close(r)
            os.close(w)
        with pytest.raises(ValueError):
            await loop.create_connection(asyncio.Protocol)
        with pytest.raises(ValueError, match="server_hostname"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, server_hostname="x")
        with pytest.raises(ValueError, match="ssl_handshake_timeout"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl_handshake_timeout=1)
        with pytest.raises(OSError):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", "not a port")
        with pytest.raises((OverflowError, OSError)):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 70000)
        # a socket C cannot take: refused with the kernel's reason, and the
        # caller's socket is left alone
        u = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # not connected
        u.setblocking(False)
        with pytest.raises(OSError) as ei:
            await loop.create_connection(asyncio.Protocol, sock=u)
        assert ei.value.errno == errno.ENOTCONN
        assert u.fileno() >= 0
        u.close()
    run(main())


def test_install_policy():
    old = asyncio.get_event_loop_policy()
    try:
        rla.install()

        async def main():
            return type(asyncio.get_running_loop()).__name__
        assert asyncio.run(main()) == "RinglineEventLoop"
    finally:
        asyncio.set_event_loop_policy(old)


def test_loop_closed_and_reuse():
    loop = rla.new_event_loop()
    assert loop.run_until_complete(asyncio.sleep(0.001, "x")) == "x"
    loop.close()
    loop.close()
    assert loop.is_closed()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        loop.run_until_complete(coro)
    coro.close()


def test_unix_sockets_streams_and_protocols(tmp_path):
    path = str(tmp_path / "echo.sock")

    async def handler(r, w):
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    async def main():
        loop = asyncio.get_running_loop()
        # a stale socket file from an earlier server is replaced, as asyncio does
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)
        stale.close()
        server = await asyncio.start_unix_server(handler, path)
        assert server.sockets[0].family == socket.AF_UNIX
        assert server.sockets[0].getsockname() == path
        r, w = await asyncio.open_unix_connection(path)
        assert w.get_extra_info("peername") == path
        assert w.get_extra_info("socket").family == socket.AF_UNIX
        payload = os.urandom(300_000)
        w.write(payload)
        await w.drain()
        assert await r.readexactly(len(payload)) == payload
        w.write_eof()
        assert await r.read() == b""
        w.close()
        await w.wait_closed()
        # Protocol API, and a plain socket client (kernel peer) against it
        tr, _ = await loop.create_unix_connection(Echo, path)   # client side echoes too
        tr.close()
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(False)
        await loop.sock_connect(c, path)
        await loop.sock_sendall(c, b"ping")
        assert await loop.sock_recv(c, 10) == b"ping"
        c.close()
        server.close()
        await server.wait_closed()
        with pytest.raises(OSError):
            await asyncio.open_unix_connection(str(tmp_path / "nobody.sock"))
        # sock= for the unix calls
        ls = socket.socket(socket.AF_UNIX)
        ls.bind(str(tmp_path / "s2.sock"))
        server = await loop.create_unix_server(Echo, sock=ls)
        cs = socket.socket(socket.AF_UNIX)
        cs.connect(str(tmp_path / "s2.sock"))
        r, w = await asyncio.open_unix_connection(sock=cs)
        w.write(b"abc")
        assert await r.readexactly(3) == b"abc"
        w.close()
        server.close()
        await server.wait_closed()
        with pytest.raises(ValueError):
            await loop.create_unix_server(Echo, sock=socket.socket())
    run(main())


def test_adopted_sockets_local_addr_and_extra_info():
    async def main():
        loop = asyncio.get_running_loop()
        # create_server(sock=): a socket the application bound itself
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        port = ls.getsockname()[1]
        server = await loop.create_server(Echo, sock=ls)
        assert server.sockets[0].getsockname() == ("127.0.0.1", port)

        # create_connection(sock=) on a socket connected elsewhere
        cs = socket.create_connection(("127.0.0.1", port))
        r, w = await asyncio.open_connection(sock=cs)
        w.write(b"hello")
        assert await r.readexactly(5) == b"hello"
        s = w.get_extra_info("socket")
        assert s.getsockname() == w.get_extra_info("sockname") == cs.getsockname()
        assert w.get_extra_info("peername") == ("127.0.0.1", port)
        # options set through it are the connection's own
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        w.close()
        await w.wait_closed()

        # local_addr: the connection leaves from the port asked for
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        lport = probe.getsockname()[1]
        probe.close()
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                             local_addr=("127.0.0.1", lport))
        assert tr.get_extra_info("sockname") == ("127.0.0.1", lport)
        tr.close()

        # the plain C connect path also answers sockname / socket
        r, w = await asyncio.open_connection("127.0.0.1", port)
        sn = w.get_extra_info("sockname")
        assert sn[0] == "127.0.0.1" and sn[1] > 0
        assert w.get_extra_info("socket").getpeername() == ("127.0.0.1", port)
        w.close()
        await w.wait_closed()

        # connect_accepted_socket: a socket accepted outside the loop
        ext = socket.socket()
        ext.bind(("127.0.0.1", 0))
        ext.listen()
        c = socket.socket()
        c.setblocking(False)
        await loop.sock_connect(c, ext.getsockname())
        acc, _ = ext.accept()
        tr, _ = await loop.connect_accepted_socket(Echo, acc)
        await loop.sock_sendall(c, b"xyz")
        assert await loop.sock_recv(c, 10) == b"xyz"
        tr.close()
        c.close()
        ext.close()
        server.close()
        await server.wait_closed()
        # the listening socket is closed: connecting fails
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
    run(main())
