#!/usr/bin/env python3
"""Minimal HTTP/1.1 keep-alive "hello" server as a plain asyncio Protocol,
the peer of examples/http_server.py for bench/real_clients.sh.

    python3 bench/peers/http_asyncio.py PORT [--loop asyncio|uvloop|ringline]

Same replies as examples/http_server.py (200 "hello", keep-alive unless the
client asks to close; 400 and close on a malformed or oversized head). The
request cutting is done in Python here (find the blank line, skip a
Content-Length body), which is what an asyncio server has to do.
SIGINT / SIGTERM stop it (exit status 0).
"""
import argparse
import asyncio
import signal

BODY = b"hello"
KEEP = (b"HTTP/1.1 200 OK\r\nServer: asyncio\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY
CLOSE = (b"HTTP/1.1 200 OK\r\nServer: asyncio\r\nContent-Type: text/plain\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
BAD = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
MAX_HEAD = 64 << 10


def wants_close(head: bytes) -> bool:
    line_end = head.find(b"\r\n")
    if head[:line_end].endswith(b"HTTP/1.0"):
        return b"keep-alive" not in head.lower()
    return b"connection: close" in head.lower()


def content_length(head: bytes) -> int:
    low = head.lower()
    i = low.find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    j = low.find(b"\r\n", i + 2)
    return int(low[i + 17:j].strip())


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""
        self.skip = 0  # body bytes still to discard

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        out = []
        pos = 0
        close = False
        while True:
            if self.skip:
                n = min(self.skip, len(buf) - pos)
                self.skip -= n
                pos += n
                if self.skip:
                    break
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                if len(buf) - pos > MAX_HEAD:
                    out.append(BAD)
                    close = True
                break
            head = buf[pos:end + 4]
            pos = end + 4
            try:
                self.skip = content_length(head)
            except ValueError:
                out.append(BAD)
                close = True
                break
            if wants_close(head):
                out.append(CLOSE)
                close = True
                break
            out.append(KEEP)
        self.buf = buf[pos:] if not close else b""
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.close()

    def eof_received(self):
        return False


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "0.0.0.0", port, backlog=1024)
    print(f"http_asyncio: listening on port {server.sockets[0].getsockname()[1]} "
          f"({type(loop).__name__})", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--loop", choices=["ringline", "asyncio", "uvloop"], default="asyncio")
    a = ap.parse_args()
    if a.loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    elif a.loop == "ringline":
        import ringline.asyncio
        factory = ringline.asyncio.new_event_loop
    else:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(a.port))
    print("http_asyncio: stopped", flush=True)
