"""Every public function with bad input: TypeError / ValueError for misuse,
OSError(errno) where the C library is the judge, never a crash."""
import socket

import pytest

import ringline
from ringline import AlignedBuffer, NvmeCommand, Ring
from conftest import run_native

NAN = float("nan")

# (call, expected exception) for functions usable without a loop
PLAIN = [
    (lambda: ringline.run(None), TypeError),
    (lambda: ringline.run(print), TypeError),
    (lambda: ringline.spawn(None), RuntimeError),
    (lambda: ringline.get_loop(), RuntimeError),
    (lambda: ringline.sleep("1"), TypeError),
    (lambda: ringline.sleep(-1), ValueError),
    (lambda: ringline.sleep(NAN), ValueError),
    (lambda: ringline.thread_pin(-1), ValueError),
    (lambda: ringline.thread_pin("0"), TypeError),
    (lambda: ringline.thread_pin(100000), OSError),
    (lambda: ringline.strerror("x"), TypeError),
    (lambda: ringline.strerror(1 << 40), ValueError),
    (lambda: ringline.err_name(None), TypeError),
    (lambda: ringline.err_name(-(1 << 40)), ValueError),
    (lambda: ringline.frame("x", b""), TypeError),
    (lambda: ringline.frame(1, "text"), TypeError),
    (lambda: ringline.frame(1, b"x", -1), ValueError),
    (lambda: ringline.frame(0, b"x"), OSError),
    (lambda: ringline.frame(ringline.FRAMER_HTTP_HEAD, b"\x00\x01garbage\r\n\r\n"), OSError),
    (lambda: ringline.resp_parse_command(123), TypeError),
    (lambda: ringline.resp_parse_command(b"*1\r\n", max_args=-1), ValueError),
    (lambda: ringline.resp_parse_command(b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", max_args=2), OSError),
    (lambda: ringline.FIXED(-1), ValueError),
    (lambda: ringline.FIXED("1"), TypeError),
    (lambda: ringline.dio_alignment("x"), TypeError),
    (lambda: ringline.dio_alignment(-5), ValueError),
    (lambda: ringline.dio_alignment(999999), OSError),
    (lambda: AlignedBuffer(0), ValueError),
    (lambda: AlignedBuffer(-1), ValueError),
    (lambda: AlignedBuffer(16, 3), ValueError),
    (lambda: AlignedBuffer("16"), TypeError),
    (lambda: AlignedBuffer(1 << 62), OSError),
    (lambda: NvmeCommand.read(-1, 0, 1, bytearray(512)), ValueError),
    (lambda: NvmeCommand.read(1, 0, 1, b"read-only"), TypeError),
    (lambda: NvmeCommand.read(1, 0, 70000, bytearray(512)), OSError),
    (lambda: NvmeCommand.flush("1"), TypeError),
    (lambda: NvmeCommand.write_zeroes(1, 0, 0), OSError),
    (lambda: Ring(0), ValueError),
    (lambda: Ring("8"), TypeError),
    (lambda: Ring(100000), ValueError),
    (lambda: Ring(8, cq_entries=4), OSError),
    (lambda: Ring(8, batch=0), ValueError),
    (lambda: Ring(8, sqpoll=True, sqpoll_cpu="x"), TypeError),
    (lambda: ringline.Loop(max_conns=0), ValueError),
    (lambda: ringline.Loop(max_conns="1"), TypeError),
    (lambda: ringline.Loop(batch=4), ValueError),
    (lambda: ringline.Loop(recv_buffers=(3, 4096)), OSError),
    (lambda: ringline.Loop(recv_buffers=(8,)), ValueError),
    (lambda: ringline.Loop(send_limits=(-1, 0)), ValueError),
    (lambda: ringline.Loop(idle_timeout=-1), ValueError),
]


@pytest.mark.parametrize("call,exc", PLAIN, ids=[f"plain{i}" for i in range(len(PLAIN))])
def test_plain_functions(call, exc):
    with pytest.raises(exc):
        call()


def ring_cases(r, a):
    return [
        (lambda: r.nop(-1), ValueError),
        (lambda: r.nop(1 << 56), ValueError),
        (lambda: r.nop("1"), TypeError),
        (lambda: r.nop(True), TypeError),
        (lambda: r.recv(a, b"immutable", 1), TypeError),
        (lambda: r.recv(a, "str", 1), TypeError),
        (lambda: r.recv(-1, bytearray(1), 1), ValueError),
        (lambda: r.recv("fd", bytearray(1), 1), TypeError),
        (lambda: r.send(a, "str", 1), TypeError),
        (lambda: r.send(a, 12, 1), TypeError),
        (lambda: r.send_zc(a, object(), 1), TypeError),
        (lambda: r.sendmsg(a, [], 1), ValueError),
        (lambda: r.sendmsg(a, [b"x"], 1, address="host"), TypeError),
        (lambda: r.sendmsg(a, [b"x"], 1, address=("127.0.0.1", 70000)), ValueError),
        (lambda: r.recvmsg(a, [b"ro"], 1), TypeError),
        (lambda: r.connect(a, ("not an ip", 1), 1), OSError),
        (lambda: r.connect(a, "x", 1), TypeError),
        (lambda: r.timeout(-1, 1), ValueError),
        (lambda: r.timeout(NAN, 1), ValueError),
        (lambda: r.timeout("1", 1), TypeError),
        (lambda: r.timeout(1e30, 1), ValueError),
        (lambda: r.timeout_remove(-1, 1), ValueError),
        (lambda: r.cancel("x", 1), TypeError),
        (lambda: r.read(a, bytearray(4), -2, 1), ValueError),
        (lambda: r.write(a, b"x", "0", 1), TypeError),
        (lambda: r.readv(a, [b"ro"], 0, 1), TypeError),
        (lambda: r.writev(a, [], 0, 1), ValueError),
        (lambda: r.openat("a\0b", 0, 0, 1), ValueError),
        (lambda: r.openat(123, 0, 0, 1), TypeError),
        (lambda: r.openat("/x", 0, -1, 1), ValueError),
        (lambda: r.poll_add(a, -1, 1), ValueError),
        (lambda: r.msg_ring("ring", 0, 0, 1), TypeError),
        (lambda: r.msg_ring(r, 1 << 40, 0, 1), ValueError),
        (lambda: r.set_flags(0x20), OSError),         # CQE_SKIP_SUCCESS refused
        (lambda: r.chain(1), OSError),
        (lambda: r.buffer_group(1 << 16, 4, 4096), ValueError),
        (lambda: r.buffer_group(1, 3, 4096), OSError),  # not a power of two
        (lambda: r.buffer_group(1, 4, 0), OSError),
        (lambda: r.group(12345), KeyError),
        (lambda: r.buffer(ringline.Completion(r.cqes[0])), ValueError),
        (lambda: r.files_install(-1), ValueError),
        (lambda: r.files_remove("0"), TypeError),
        (lambda: r.files_alloc(), OSError),            # no table registered
        (lambda: r.register_buffers([]), ValueError),
        (lambda: r.register_buffers([b"read-only"]), TypeError),
        (lambda: r.read_fixed(a, 0, 0, 1), ValueError),
        (lambda: r.submit_and_wait(-1), ValueError),
        (lambda: r.reap(1, -1), ValueError),
        (lambda: r.harvest(-1), ValueError),
        (lambda: r.opcode_supported(-1), ValueError),
        (lambda: r.opcode_supported(100000), OSError),
        (lambda: r.nvme(a, NvmeCommand.flush(1), 1), OSError),
        (lambda: r.nvme(a, "cmd", 1), TypeError),
    ]


def test_ring_methods():
    a, b = socket.socketpair()
    with Ring() as r:
        for i, (call, exc) in enumerate(ring_cases(r, a.fileno())):
            with pytest.raises(exc):
                call()
            assert r.inflight == 0, f"case {i} left an operation behind"
        g = r.buffer_group(7, 4, 64)
        with pytest.raises(ValueError):
            g.take(4, 1)        # bid out of range
        with pytest.raises(ValueError):
            g.take(0, 65)       # longer than the buffer
        with pytest.raises(TypeError):
            g.take("0", 1)
        pb = g.take(0, 10)      # a bid the kernel still owns: lending it is the caller's lie,
        with pytest.raises(OSError):
            pb.release()        # and giving it back is a double return, refused by C
        with pytest.raises(ValueError):
            pb.release()
        del pb
        r.nop(1)
        r.reap(1, 1)
    # the same calls on a closed ring: errors, never crashes
    for call, exc in ring_cases(r, a.fileno()):
        with pytest.raises((exc, OSError, ValueError, KeyError)):
            call()
    a.close()
    b.close()


def test_native_api_bad_input():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()

    async def main():
        for call, exc in [
            (lambda: ringline.listen("127.0.0.1", "80"), TypeError),
            (lambda: ringline.listen("127.0.0.1", 70000), ValueError),
            (lambda: ringline.listen(123, 0), TypeError),
            (lambda: ringline.listen("bad\0host", 0), ValueError),
            (lambda: ringline.listen("127.0.0.1", 0, backlog=0), ValueError),
            (lambda: ringline.listen("127.0.0.1", 0, framer=99), ValueError),
            (lambda: ringline.listen("127.0.0.1", 0, framer="line"), TypeError),
            (lambda: ringline.listen("127.0.0.1", 0, framer=1, max_frame=-1), ValueError),
            (lambda: ringline.listen("127.0.0.1", taken.getsockname()[1]), OSError),
            (lambda: ringline.connect("127.0.0.1", 0), ValueError),
            (lambda: ringline.connect("127.0.0.1", 80, timeout=-1), ValueError),
            (lambda: ringline.connect("127.0.0.1", 80, timeout="1"), TypeError),
            (lambda: ringline.connect(None, 80), TypeError),
            (lambda: ringline.udp_bind("127.0.0.1", -1), ValueError),
            (lambda: ringline.wait_for(ringline.sleep(0), "x"), TypeError),
            (lambda: ringline.wait_for(ringline.sleep(0), -1), ValueError),
            (lambda: ringline.wait_readable("x"), TypeError),
            (lambda: ringline.wait_readable(-1), ValueError),
        ]:
            with pytest.raises(exc):
                await call()
        for call, exc in [
            (lambda: ringline.call_later(-1, print), ValueError),
            (lambda: ringline.call_later("1", print), TypeError),
            (lambda: ringline.call_at(NAN, print), ValueError),
            (lambda: ringline.call_every(0, print), ValueError),
            (lambda: ringline.on_signal(3), TypeError),
            (lambda: ringline.stop(-1), ValueError),
            (lambda: ringline.spawn(print), TypeError),
        ]:
            with pytest.raises(exc):
                call()
        server = await ringline.listen("127.0.0.1", 0)
        c = await ringline.connect("127.0.0.1", server.port)
        s = await server.accept()
        for call, exc in [
            (lambda: c.recv(0), ValueError),
            (lambda: c.recv("1"), TypeError),
            (lambda: c.recv_exact(-1), ValueError),
            (lambda: c.recv_exact(1.5), TypeError),
            (lambda: c.recv_frame(), ValueError),      # no framer set
            (lambda: c.send("text"), TypeError),
            (lambda: c.forward("conn"), TypeError),
            (lambda: c.forward(c), ValueError),
            (lambda: server.serve(3), TypeError),
        ]:
            with pytest.raises(exc):
                await call()
        for call, exc in [
            (lambda: c.write("text"), TypeError),
            (lambda: c.write(123), TypeError),
            (lambda: c.writelines(["text"]), TypeError),
            (lambda: c.set_framer(99), ValueError),
            (lambda: c.set_framer("x"), TypeError),
            (lambda: c.set_framer(1, -1), ValueError),
            (lambda: c.send(123), TypeError),
            (lambda: c.send(None), TypeError),
            (lambda: c.writelines(b"bytes, not an iterable of pieces"), TypeError),
            (lambda: c.on_data(5), TypeError),
            (lambda: server.on_data(None), TypeError),
            (lambda: server.on_data("fn"), TypeError),
        ]:
            with pytest.raises(exc):
                call()
        # a send of a buffer the caller then changes: the copy was taken
        ba = bytearray(b"abc")
        s.send(ba)
        ba[:] = b"xyz"
        assert await c.recv_exact(3) == b"abc"
        # handing a connection a task is receiving on to a callback
        t = ringline.spawn(s.recv())
        await ringline.sleep(0)
        with pytest.raises(RuntimeError):
            s.on_data(lambda conn, data: None)
        t.cancel()
        await ringline.sleep(0)
        # two tasks receiving on one connection
        t = ringline.spawn(s.recv())
        await ringline.sleep(0)
        with pytest.raises(RuntimeError):
            await s.recv()
        t.cancel()
        u = await ringline.udp_bind()
        for call, exc in [
            (lambda: u.sendto("text", ("127.0.0.1", 1)), TypeError),
            (lambda: u.sendto(b"x", "127.0.0.1:1"), TypeError),
            (lambda: u.sendto(b"x", ("127.0.0.1", 70000)), ValueError),
            (lambda: u.sendto(b"x", ("::1", 1, 0)), TypeError),
        ]:
            with pytest.raises(exc):
                call()
        # use after close: OSError, never a crash
        c.close()
        await c.wait_closed()
        with pytest.raises(OSError):
            c.write(b"late")
        with pytest.raises(OSError):
            c.shutdown()
        with pytest.raises(OSError):
            c.peer
        with pytest.raises(OSError):
            c.queued
        c.close()
        c.abort()
        assert await c.recv() == b""
        u.close()
        u.close()
        server.close()
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectionAbortedError):
            await server.accept()
    run_native(main())
    taken.close()
