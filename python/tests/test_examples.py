"""The examples end to end, with real clients (sockets, wrk)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest

from conftest import REPO, free_port

EX = os.path.join(REPO, "examples")


class Server:
    def __init__(self, script, *args):
        self.port = free_port()
        self.p = subprocess.Popen([sys.executable, os.path.join(EX, script), str(self.port), "--host", "127.0.0.1", *args]
                                  if script != "asyncio_echo.py" else
                                  [sys.executable, os.path.join(EX, script), str(self.port), *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert "listening" in line, line + self.p.stderr.read()

    def stop(self, sig=signal.SIGINT, timeout=10):
        self.p.send_signal(sig)
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
            pytest.fail(f"server did not stop on {sig!r}: {err}")
        return self.p.returncode, out, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            self.p.kill()
            self.p.communicate()


def echo_check(port, nconns=8, size=200_000):
    errors = []

    def one(i):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            data = os.urandom(size) if i == 0 else b"hello %d\n" % i * 10
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
            if got != data:
                errors.append(f"conn {i}: {len(got)} of {len(data)} bytes")
            s.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"conn {i}: {e!r}")
    ts = [threading.Thread(target=one, args=(i,)) for i in range(nconns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errors


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_echo_server_native(sig):
    with Server("echo_server.py") as srv:
        echo_check(srv.port)
        # a connection still open when the signal comes is closed gracefully
        idle = socket.create_connection(("127.0.0.1", srv.port))
        idle.sendall(b"x")
        assert idle.recv(1) == b"x"
        rc, out, err = srv.stop(sig)
        assert rc == 0, err
        assert "stopped" in out
        assert idle.recv(1) == b""
        idle.close()


def test_echo_server_c_hot_path():
    with Server("echo_server.py", "--c-echo") as srv:
        echo_check(srv.port, nconns=16, size=1_000_000)
        rc, out, err = srv.stop(signal.SIGTERM)
        assert rc == 0, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_asyncio_echo(sig):
    with Server("asyncio_echo.py") as srv:
        echo_check(srv.port)
        idle = socket.create_connection(("127.0.0.1", srv.port))  # still open at the signal
        idle.sendall(b"y")
        assert idle.recv(1) == b"y"
        rc, out, err = srv.stop(sig)
        assert rc == 0, err
        assert "stopped" in out
        idle.close()


def test_http_server_with_curl_like_requests():
    with Server("http_server.py") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        # two pipelined keep-alive requests, then one asking to close
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while got.count(b"hello") < 2:
            got += s.recv(4096)
        assert got.count(b"HTTP/1.1 200 OK") == 2
        s.sendall(b"POST / HTTP/1.1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody")
        rest = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            rest += c
        assert b"Connection: close" in rest and rest.endswith(b"hello")
        s.close()
        rc, _, err = srv.stop(signal.SIGTERM)
        assert rc == 0, err


def test_http_server_wrk():
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.fail("wrk is not installed (tools/deps-extra.txt lists it; `make deps`)")
    with Server("http_server.py") as srv:
        r = subprocess.run([wrk, "-t1", "-c64", "-d5s", f"http://127.0.0.1:{srv.port}/"],
                           capture_output=True, text=True, timeout=60)
        out = r.stdout
        print(out)
        assert r.returncode == 0, r.stderr
        m = re.search(r"(\d+) requests in", out)
        assert m and int(m.group(1)) > 1000, out
        assert "Socket errors" not in out, out
        assert "Non-2xx" not in out, out
        rc, _, err = srv.stop(signal.SIGINT)
        assert rc == 0, err
