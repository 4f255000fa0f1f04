"""The ring layer: ringline.Ring and friends."""
import errno
import gc
import os
import socket
import threading

import pytest

import ringline
from ringline import FIXED, AlignedBuffer, NvmeCommand, Ring


def reap_all(ring, n, timeout=2.0):
    out = []
    while len(out) < n:
        got = ring.completions(1, timeout)
        assert got, f"timed out with {out}"
        out.extend(got)
    return out


def test_nop_and_timeout_batch():
    with Ring() as r:
        r.nop(1)
        r.timeout(0.005, 2)
        cs = {c.token: c for c in reap_all(r, 2)}
        assert cs[1].res == 0
        assert cs[2].res == -errno.ETIME
        assert r.inflight == 0


def test_harvest_into_reused_array():
    with Ring(batch=8) as r:
        arr = r.cqes
        for t in range(20):
            r.nop(t)
        r.submit()
        seen = []
        while len(seen) < 20:
            r.submit_and_wait(1, 1.0)
            n = r.harvest()
            assert n <= 8
            seen += [int(r.cqes[i].token) for i in range(n)]
        assert sorted(seen) == list(range(20))
        assert r.cqes is arr


def test_send_recv_socketpair_and_buffer_kept_alive():
    a, b = socket.socketpair()
    with Ring() as r:
        buf = bytearray(64)
        r.recv(a, buf, 7)
        r.submit()
        del buf              # only the ring holds it now: the kernel may still write
        gc.collect()
        r.send(b.fileno(), b"hello ring", 8)
        cs = {c.token: c for c in reap_all(r, 2)}
        assert cs[7].res == 10 and cs[8].res == 10
    a.close()
    b.close()


def test_ring_collected_with_io_in_flight():
    a, b = socket.socketpair()
    r = Ring()
    r.recv(a, bytearray(4096), 1)
    r.timeout(30, 2)
    r.submit()
    del r
    gc.collect()          # destroy cancels and waits; nothing may crash
    b.send(b"x" * 100)    # nobody listens any more
    a.close()
    b.close()


def test_use_after_close_is_an_oserror():
    r = Ring()
    r.close()
    r.close()  # idempotent
    assert r.closed
    for call in (lambda: r.nop(1), lambda: r.submit(), lambda: r.reap(0, 0), lambda: r.fd,
                 lambda: r.wake(), lambda: r.features, lambda: r.files_count(),
                 lambda: r.recv(0, bytearray(1), 1)):
        with pytest.raises(OSError) as ei:
            call()
        assert ei.value.errno == errno.EBADF


def test_thread_rules():
    with Ring() as r:
        errs = []

        def other():
            try:
                r.nop(1)
            except RuntimeError as e:
                errs.append(e)
            r.wake()  # the one call allowed from any thread
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert errs
        cs = reap_all(r, 1)
        assert cs[0].token == ringline.TOKEN_WAKE


def test_provided_buffers_lend_and_return():
    a, b = socket.socketpair()
    with Ring() as r:
        g = r.buffer_group(3, 4, 256)
        assert g.available == 4 and g.count == 4 and g.size == 256
        r.recv_multishot(a, 3, 11)
        b.send(b"abcdef")
        c = reap_all(r, 1)[0]
        assert c.flags & ringline.CQE_F_BUFFER and c.more and c.bgid == 3
        pb = r.buffer(c)
        view = pb.view
        assert bytes(view) == b"abcdef"
        assert g.available == 3
        with pytest.raises(ValueError):
            g.take(pb.bid, 6)          # lent already
        pb.release()
        assert g.available == 4
        with pytest.raises(ValueError):
            pb.release()               # released twice
        with pytest.raises(ValueError):
            pb.view
        assert len(bytes(view)) == 6   # an old view stays readable (memory-safe)
        with pytest.raises(BufferError):
            g.destroy()                # views still reference the mapping
        del view, pb
        gc.collect()
        # dropping an unreleased buffer gives it back by itself
        b.send(b"again")
        c = reap_all(r, 1)[0]
        pb2 = r.buffer(c)
        assert pb2.tobytes() == b"again"
        del pb2
        gc.collect()
        assert g.available == 4
        r.cancel(11, 12)
        reap_all(r, 2)
        g.destroy()
        with pytest.raises(OSError):
            g.take(0, 1)
    a.close()
    b.close()


def test_views_outlive_ring_close():
    a, b = socket.socketpair()
    r = Ring()
    r.buffer_group(1, 2, 128)
    r.recv_select(a, 1, 5)
    b.send(b"persist")
    c = reap_all(r, 1)[0]
    v = r.buffer(c).view
    r.close()          # deferred: the view still maps the group's memory
    gc.collect()
    assert bytes(v) == b"persist"
    del v
    gc.collect()       # now the ring is really destroyed
    a.close()
    b.close()


def test_cancel_and_link_timeout():
    a, b = socket.socketpair()
    with Ring() as r:
        r.recv(a, bytearray(8), 1)
        r.cancel(1, 2)
        cs = {c.token: c.res for c in reap_all(r, 2)}
        assert cs[1] == -errno.ECANCELED and cs[2] == 0
        with r.chain(2):
            r.recv(a, bytearray(8), 3)
            r.link_timeout(0.01, 4)
        cs = {c.token: c.res for c in reap_all(r, 2)}
        assert cs[3] == -errno.ECANCELED and cs[4] == -errno.ETIME
        with pytest.raises(OSError):
            with r.chain(2):
                r.nop(5)   # only one of two: the chain is cut
        reap_all(r, 1)
    a.close()
    b.close()


def test_poll_and_msg_ring():
    a, b = socket.socketpair()
    with Ring() as r, Ring() as r2:
        r.poll_add(a, 0x001, 1)   # POLLIN
        b.send(b"x")
        assert reap_all(r, 1)[0].res & 0x001
        r.msg_ring(r2, 42, 0x1234, 9)
        got = reap_all(r, 1)
        assert got[0].res == 0
        m = reap_all(r2, 1)[0]
        assert m.res == 42 and m.token == (0xFE << 56) | 0x1234
    a.close()
    b.close()


def test_file_ops_and_fixed_files(tmp_path):
    p = tmp_path / "f.bin"
    with Ring() as r:
        r.openat(str(p), os.O_CREAT | os.O_RDWR, 0o644, 1)
        fd = reap_all(r, 1)[0].res
        assert fd >= 0
        r.write(fd, b"0123456789", 0, 2)
        assert reap_all(r, 1)[0].res == 10
        r.writev(fd, [b"ab", bytearray(b"cd")], 10, 3)
        assert reap_all(r, 1)[0].res == 4
        r.fsync(fd, 4, datasync=True)
        assert reap_all(r, 1)[0].res == 0
        b1, b2 = bytearray(4), bytearray(10)
        r.readv(fd, [b1, b2], 0, 5)
        assert reap_all(r, 1)[0].res == 14
        assert bytes(b1 + b2) == b"0123456789abcd"
        # fixed files
        r.files_register(8, 4)
        slot = r.files_install(fd)
        buf = bytearray(3)
        r.read(FIXED(slot), buf, 1, 6)
        assert reap_all(r, 1)[0].res == 3 and buf == b"123"
        r.files_remove(slot)
        r.close_fd(fd, 7)
        assert reap_all(r, 1)[0].res == 0
        r.files_unregister()


def test_registered_buffers(tmp_path):
    p = tmp_path / "g.bin"
    p.write_bytes(b"fixed buffer data")
    fd = os.open(p, os.O_RDONLY)
    with Ring() as r:
        ab = AlignedBuffer(4096)
        r.register_buffers([ab])
        r.read_fixed(fd, 0, 0, 1, length=17)
        assert reap_all(r, 1)[0].res == 17
        assert bytes(ab.view[:17]) == b"fixed buffer data"
        with pytest.raises(ValueError):
            r.read_fixed(fd, 1, 0, 2)
        r.unregister_buffers()
        with pytest.raises(ValueError):
            r.read_fixed(fd, 0, 0, 2)
    os.close(fd)


def test_odirect_with_aligned_buffers():
    d = os.environ.get("RINGLINE_DIO_DIR", os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(d, f".dio-{os.getpid()}.bin")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    except OSError as e:
        pytest.skip(f"O_DIRECT not available here: {e}")
    try:
        try:
            mem, off = ringline.dio_alignment(fd)
        except OSError as e:
            pytest.skip(f"filesystem refuses O_DIRECT: {e}")
        n = max(mem, off, 512) * 2
        wb = AlignedBuffer(n, mem)
        assert wb.address % mem == 0
        wb.view[:] = bytes(range(256)) * (n // 256)
        with Ring() as r:
            r.write(fd, wb, 0, 1)
            assert reap_all(r, 1)[0].res == n
            rb = AlignedBuffer(n, mem)
            r.read(fd, rb, 0, 2)
            assert reap_all(r, 1)[0].res == n
            assert bytes(rb) == bytes(wb)
    finally:
        os.close(fd)
        os.unlink(path)


def test_udp_sendmsg_recvmsg_with_address():
    s1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s1.bind(("127.0.0.1", 0))
    s2.bind(("127.0.0.1", 0))
    with Ring() as r:
        buf = bytearray(100)
        h = r.recvmsg(s1, buf, 1)
        r.sendmsg(s2, [b"dat", b"agram"], 2, address=s1.getsockname())
        cs = {c.token: c.res for c in reap_all(r, 2)}
        assert cs[1] == 8 and cs[2] == 8
        assert bytes(buf[:8]) == b"datagram"
        assert h.address == s2.getsockname()
    s1.close()
    s2.close()


def test_tcp_connect_accept_send_zc():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    cs = socket.socket()
    with Ring() as r:
        r.accept(ls, 1)
        r.connect(cs, ls.getsockname(), 2)
        res = {c.token: c.res for c in reap_all(r, 2)}
        assert res[2] == 0
        afd = res[1]
        assert afd > 0
        data = os.urandom(64 * 1024)
        r.send_zc(cs, data, 3)
        comps = reap_all(r, 2)
        assert any(c.flags & ringline.CQE_F_NOTIF for c in comps) or len(comps) == 2
        got = b""
        s = socket.socket(fileno=afd)
        while len(got) < len(data):
            got += s.recv(1 << 20)
        assert got == data
        s.close()
        # a refused connect maps to the right OSError subclass
        c2 = socket.socket()
        port = ls.getsockname()[1]
        ls.close()
        r.connect(c2, ("127.0.0.1", port), 4)
        res = reap_all(r, 1)[0].res
        assert isinstance(ringline.error(res), ConnectionRefusedError)
        c2.close()
    cs.close()


def test_nvme_command_builders_and_refusals():
    buf = bytearray(4096)
    c = NvmeCommand.read(1, 10, 8, buf[:4096])
    assert c.opcode == 0x02 and c.nsid == 1 and c.cdw10 == 10 and c.cdw12 == 7 and c.data_len == 4096
    w = NvmeCommand.write(1, 0, 1, b"\0" * 512)
    assert w.opcode == 0x01
    assert NvmeCommand.flush(1).opcode == 0x00
    assert NvmeCommand.write_zeroes(1, 5, 2).opcode == 0x08
    idn = NvmeCommand.identify(0, ringline.NVME_CNS_CONTROLLER, bytearray(4096))
    assert idn.opcode == 0x06
    with pytest.raises(OSError):
        NvmeCommand.read(1, 0, 0, bytearray(512))    # nlb 0
    with pytest.raises(ValueError):
        NvmeCommand.identify(0, 1, bytearray(100))
    with pytest.raises(TypeError):
        NvmeCommand.write(1, 0, 1, "text")
    with Ring() as r:
        with pytest.raises(OSError) as ei:
            r.nvme(0, c, 1)                         # not a big-SQE ring
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(TypeError):
            r.nvme(0, object(), 1)
    try:
        big = Ring(big=True)
    except OSError:
        pytest.skip("kernel refuses SQE128/CQE32")
    with big:
        assert big.features & lib_bit("BIG_SQE_CQE")
        devs = [d for d in os.listdir("/dev") if d.startswith("ng")]
        if not devs:
            return  # no NVMe generic device on this machine: encoding checked above
        fd = os.open("/dev/" + devs[0], os.O_RDONLY)
        try:
            big.nvme(fd, NvmeCommand.identify(0, ringline.NVME_CNS_CONTROLLER, bytearray(4096)), 1, admin=True)
            assert reap_all(big, 1)[0].res >= 0
        finally:
            os.close(fd)


def lib_bit(name):
    return getattr(ringline.lib, "RINGLINE_FEAT_" + name)


def test_framers_and_resp():
    assert ringline.frame(ringline.FRAMER_LINE, b"abc\r\nrest") == (5, 0, 3)
    assert ringline.frame(ringline.FRAMER_LINE, b"abc") is None
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    flen, poff, plen = ringline.frame(ringline.FRAMER_HTTP_HEAD, head + b"NEXT")
    assert flen == len(head) and poff == 0
    assert ringline.frame(ringline.FRAMER_U16BE, b"\x00\x03xyz") == (5, 2, 3)
    with pytest.raises(OSError) as ei:
        ringline.frame(ringline.FRAMER_U16BE, b"\x00\x09" + b"x" * 9, max_frame=4)
    assert ei.value.errno == errno.EMSGSIZE
    with pytest.raises(OSError):
        ringline.frame(99, b"x")
    args, n = ringline.resp_parse_command(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    assert args == [b"GET", b"k"] and n == 20
    assert ringline.resp_parse_command(b"*2\r\n$3\r\nGE") is None


def test_errors_and_misc():
    assert ringline.err_name(-errno.ECONNRESET) == "ECONNRESET"
    assert ringline.err_name(errno.ECONNRESET) == "ECONNRESET"
    assert ringline.err_name(99999) == "EUNKNOWN"
    assert ringline.strerror(-errno.ENOENT) == ringline.strerror(errno.ENOENT) != ""
    assert isinstance(ringline.error(-errno.ECONNRESET), ConnectionResetError)
    assert isinstance(ringline.error(-errno.ETIMEDOUT), TimeoutError)
    assert ringline.error(-errno.EPIPE).errno == errno.EPIPE
    assert "buf_ring" in ringline.feature_names(1 << 8)
    with Ring() as r:
        assert r.sq_entries >= 1 and r.cq_entries >= r.sq_entries
        assert r.opcode_supported(0) is True
        assert r.fd >= 0
        assert r.sq_pending == 0
    ringline.thread_pin(0)
    os.sched_setaffinity(0, range(os.cpu_count()))


def test_storage_batches(tmp_path):
    p = tmp_path / "batch.bin"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    with Ring(64) as r:
        blocks = [bytes([i]) * 512 for i in range(32)]
        reqs = [ringline.rw(ringline.RW.WRITE, fd, i, offset=i * 512, buf=b) for i, b in enumerate(blocks)]
        queued, n = r.rw_reap(reqs, wait_nr=32, timeout=5)
        assert queued == 32
        done = n
        while done < 32:
            done += r.rw_reap((), wait_nr=1, timeout=5)[1]
        assert r.rw_batch([ringline.rw(ringline.RW.FSYNC, fd, 99, datasync=True)]) == 1
        assert reap_all(r, 1)[0].res == 0
        bufs = [bytearray(512) for _ in range(32)]
        r.rw_batch([ringline.rw(ringline.RW.READ, fd, 100 + i, offset=i * 512, buf=b)
                    for i, b in enumerate(bufs)])
        del reqs
        res = reap_all(r, 32)
        assert all(c.res == 512 for c in res)
        assert [bytes(b) for b in bufs] == blocks
        # registered buffers
        ab = AlignedBuffer(1024)
        r.register_buffers([ab])
        r.rw_batch([ringline.rw(ringline.RW.READ_FIXED, fd, 200, offset=512, buf_index=0, length=512)])
        assert reap_all(r, 1)[0].res == 512 and bytes(ab.view[:512]) == blocks[1]
        # one bad request: nothing queued
        with pytest.raises(OSError):
            r.rw_batch([ringline.rw(ringline.RW.READ, fd, 300, buf=bytearray(8)),
                        ringline.rw(ringline.RW.NVME_FLUSH, fd, 301, nsid=1)])  # not a big ring
        assert r.inflight == 0
        with pytest.raises(ValueError):
            ringline.rw(99, fd, 1)
        with pytest.raises(ValueError):
            r.rw_batch([ringline.rw(ringline.RW.WRITE, fd, 1)])         # no buf
        with pytest.raises(TypeError):
            r.rw_batch([("not", "a", "request")])
        with pytest.raises(TypeError):
            r.rw_batch([ringline.rw(ringline.RW.READ, fd, 1, buf=b"read-only")])
    os.close(fd)
    with pytest.raises(OSError):
        ringline.nvme_ns_geometry(bytes(4096))
    with pytest.raises(ValueError):
        ringline.nvme_ns_geometry(bytes(10))
