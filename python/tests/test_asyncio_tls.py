"""TLS on ringline.asyncio: asyncio's sslproto over ringline transports,
against real peers — Python's ssl module in a thread (blocking sockets, its
own OpenSSL state machine) and the openssl command line tools — with a
self-signed certificate made by `openssl req` for each test session."""
import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

import ringline.asyncio as rla

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")

PAYLOAD = os.urandom(200_000)


def run(coro, timeout=30):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)
    with asyncio.Runner(loop_factory=rla.new_event_loop) as r:
        return r.run(guarded())


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, crt = str(d / "key.pem"), str(d / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return key, crt


def server_ctx(cert):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert[1], cert[0])
    return ctx


def client_ctx(cert):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cert[1])
    return ctx


async def echo_handler(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()


def free_port():
    # the helper's own range, so nothing else on the machine collides
    for port in range(19400, 19500):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.skip("no free port in 19400-19499")


def test_server_with_python_ssl_client_and_asyncio_client(cert):
    async def main():
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(echo_handler, "127.0.0.1", 0, ssl=server_ctx(cert))
        port = server.sockets[0].getsockname()[1]

        def blocking_client():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with client_ctx(cert).wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(PAYLOAD)
                    got = bytearray()
                    while len(got) < len(PAYLOAD):
                        chunk = s.recv(65536)
                        assert chunk
                        got += chunk
                    return bytes(got), s.version()

        got, version = await loop.run_in_executor(None, blocking_client)
        assert got == PAYLOAD and version.startswith("TLS")

        # both ends on the ringline loop
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx(cert),
                                             server_hostname="localhost", ssl_handshake_timeout=5)
        assert w.get_extra_info("ssl_object").version().startswith("TLS")
        assert w.get_extra_info("peercert")["subject"] == ((("commonName", "localhost"),),)
        assert w.get_extra_info("peername") == ("127.0.0.1", port)
        w.write(PAYLOAD)
        await w.drain()
        assert await r.readexactly(len(PAYLOAD)) == PAYLOAD
        w.close()
        await w.wait_closed()

        # a client that does not trust the certificate fails the handshake
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=ssl.create_default_context(),
                                          server_hostname="localhost")
        server.close()
        await server.wait_closed()
    run(main())


def test_server_against_openssl_s_client(cert):
    async def one_line(r, w):
        # echo one line, then close: s_client (-ign_eof) reads until then
        w.write(await r.readline())
        await w.drain()
        w.close()

    async def main():
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(one_line, "127.0.0.1", 0, ssl=server_ctx(cert))
        port = server.sockets[0].getsockname()[1]
        line = b"hello from s_client\n"

        def s_client():
            return subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", "-ign_eof",
                 "-CAfile", cert[1], "-verify_return_error", "-servername", "localhost"],
                input=line, capture_output=True, timeout=20)

        res = await loop.run_in_executor(None, s_client)
        assert res.stdout == line, (res.stdout, res.stderr)
        assert res.returncode == 0, res.stderr
        server.close()
        await server.wait_closed()
    run(main())


def test_client_against_openssl_s_server(cert):
    port = free_port()
    # -rev: s_server answers every line reversed, a TLS echo of sorts
    proc = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", cert[1],
                             "-key", cert[0], "-rev", "-quiet"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"s_server did not start: {proc.stderr.read()!r}")
                time.sleep(0.05)

        async def main():
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx(cert),
                                                 server_hostname="localhost")
            assert w.get_extra_info("ssl_object").version().startswith("TLS")
            w.write(b"ringline\n")
            await w.drain()
            got = await asyncio.wait_for(r.readline(), 10)
            assert got.strip() == b"enilgnir"
            w.close()
        run(main())
    finally:
        proc.kill()
        proc.wait()


def test_start_tls_upgrade_with_python_peer(cert):
    async def handler(r, w):
        assert await r.readline() == b"STARTTLS\n"
        w.write(b"OK\n")
        await w.drain()
        await w.start_tls(server_ctx(cert))
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    async def main():
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def peer():
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.sendall(b"STARTTLS\n")
            buf = b""
            while not buf.endswith(b"\n"):
                buf += raw.recv(1)
            assert buf == b"OK\n"
            with client_ctx(cert).wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(PAYLOAD)
                got = bytearray()
                while len(got) < len(PAYLOAD):
                    chunk = s.recv(65536)
                    assert chunk
                    got += chunk
                return bytes(got)

        assert await loop.run_in_executor(None, peer) == PAYLOAD

        # client-side upgrade with loop.start_tls, against the same server
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"STARTTLS\n")
        assert await r.readline() == b"OK\n"
        await w.start_tls(client_ctx(cert), server_hostname="localhost")
        w.write(b"secret")
        assert await r.readexactly(6) == b"secret"
        assert w.get_extra_info("ssl_object") is not None
        w.close()
        server.close()
        await server.wait_closed()
    run(main())


def test_handshake_timeout_closes_silent_client(cert):
    async def main():
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(echo_handler, "127.0.0.1", 0, ssl=server_ctx(cert),
                                            ssl_handshake_timeout=0.3)
        port = server.sockets[0].getsockname()[1]
        c = socket.socket()
        c.setblocking(False)
        await loop.sock_connect(c, ("127.0.0.1", port))
        t0 = loop.time()
        try:
            data = await asyncio.wait_for(loop.sock_recv(c, 100), 5)
        except ConnectionResetError:
            data = b""
        assert data == b""       # closed by the server, no handshake bytes from us
        assert loop.time() - t0 < 3
        c.close()
        server.close()
        await server.wait_closed()
    run(main())


def test_ssl_argument_errors(cert):
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(TypeError):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True)
        with pytest.raises(ValueError):
            await loop.create_unix_connection(asyncio.Protocol, "/nonexistent", ssl=client_ctx(cert))
        with pytest.raises(ValueError):
            await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl_handshake_timeout=1)
    run(main())
