"""The ring layer: a thin, safe Python face of ringline_ring_* / ringline_op_*.

Every operation carries a caller-chosen token (0 <= token < 2**56) that comes
back in its completion(s). Completions are harvested in batches into one
reused cdata array, ``Ring.cqes`` (``ringline_cqe_t[batch]``)::

    with Ring() as ring:
        ring.nop(1)
        ring.timeout(0.01, 2)
        n = ring.reap(wait_nr=2)
        for i in range(n):
            c = ring.cqes[i]
            print(c.token, c.res, c.flags)

Memory safety: any Python object whose memory the kernel may read or write
(receive buffers, bytes being sent, addresses, NVMe data) is referenced by the
ring until the operation's final completion has been harvested (the one
without RINGLINE_CQE_F_MORE; for zero-copy sends the notification). A ring
closed or collected with I/O in flight cancels it and waits for the final
completions first; if the kernel does not let go (or the ring is torn down
from a foreign thread), that memory is deliberately leaked rather than freed.
"""
from __future__ import annotations

import errno
import os
import threading
import weakref
from typing import Any, List, Optional, Sequence, Tuple, Union

from . import _addr
from ._errors import check, ebadf, error
from ._ffi import ffi, lib

__all__ = [
    "Ring", "BufferGroup", "ProvidedBuffer", "AlignedBuffer", "NvmeCommand",
    "RecvMsg", "Completion", "FIXED", "aligned_buffer", "dio_alignment",
    "frame", "resp_parse_command", "feature_names", "RW", "rw", "nvme_ns_geometry",
]

_get_ident = threading.get_ident
_F_MORE = lib.RINGLINE_CQE_F_MORE
_TOKEN_LIMIT = 1 << 56
_U64 = (1 << 64) - 1
# memory the kernel might still touch after a failed teardown: never freed
_LEAKED: List[Any] = []

BufferLike = Union[bytes, bytearray, memoryview, "AlignedBuffer", "ProvidedBuffer", Any]


def FIXED(slot: int) -> int:
    """The fd value naming slot `slot` of a ring's fixed-file table."""
    slot = _uint(slot, "slot", 1 << 30)
    return slot | lib.RINGLINE_FIXED_BIT


def _uint(v, name, limit=1 << 64):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be int, not {type(v).__name__}")
    if not 0 <= v < limit:
        raise ValueError(f"{name} out of range: {v}")
    return v


def _token(t):
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"token must be int, not {type(t).__name__}")
    if not 0 <= t < _TOKEN_LIMIT:
        raise ValueError("token must be in 0 .. 2**56-1 (the top byte is ringline's)")
    return t


def _fd(fd):
    if hasattr(fd, "fileno") and not isinstance(fd, int):
        fd = fd.fileno()
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"fd must be int or have fileno(), not {type(fd).__name__}")
    if not 0 <= fd < (1 << 31):
        raise ValueError(f"bad file descriptor {fd}")
    return fd


def _ns(seconds, name="seconds"):
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(seconds).__name__}")
    if seconds != seconds or seconds < 0:
        raise ValueError(f"{name} must be >= 0")
    ns = int(seconds * 1e9)
    if ns > _U64:
        raise ValueError(f"{name} too large")
    return ns


def _wbuf(obj):
    """(pointer, length, keepalive) for memory the kernel will read."""
    if isinstance(obj, (AlignedBuffer, ProvidedBuffer)):
        cd = obj._ptr()
        return cd, obj._len, obj
    if isinstance(obj, str):
        raise TypeError("expected a bytes-like object, not str")
    try:
        cd = ffi.from_buffer(obj)
    except TypeError:
        raise TypeError(f"expected a bytes-like object, not {type(obj).__name__}") from None
    return cd, len(cd), cd


def _rbuf(obj):
    """(pointer, length, keepalive) for memory the kernel will write."""
    if isinstance(obj, (AlignedBuffer, ProvidedBuffer)):
        cd = obj._ptr()
        return cd, obj._len, obj
    if isinstance(obj, (str, bytes)):
        raise TypeError(f"expected a writable buffer, not {type(obj).__name__}")
    try:
        cd = ffi.from_buffer(obj, require_writable=True)
    except TypeError:
        raise TypeError(f"expected a writable buffer (bytearray, memoryview, "
                        f"AlignedBuffer), not {type(obj).__name__}") from None
    return cd, len(cd), cd


class Completion(tuple):
    """A completion copied out of the harvest array: (token, res, flags, bgid, bid, big)."""
    __slots__ = ()

    def __new__(cls, c):
        return tuple.__new__(cls, (int(c.token), int(c.res), int(c.flags),
                                   int(c.bgid), int(c.bid), (int(c.big[0]), int(c.big[1]))))

    token = property(lambda s: s[0])
    res = property(lambda s: s[1])
    flags = property(lambda s: s[2])
    bgid = property(lambda s: s[3])
    bid = property(lambda s: s[4])
    big = property(lambda s: s[5])
    more = property(lambda s: bool(s[2] & _F_MORE))

    def __repr__(self):
        return (f"Completion(token={self[0]}, res={self[1]}, flags={self[2]:#x}, "
                f"bgid={self[3]}, bid={self[4]})")


class _Handle:
    """Owns the C ring, the Python memory its operations use, and the pins of
    lent provided buffers. The C ring is destroyed once close was asked and
    no provided-buffer memory is visible to Python any more."""

    __slots__ = ("ptr", "keep", "counts", "pins", "closing", "owner", "registered", "result")

    def __init__(self, ptr):
        self.ptr = ptr
        self.keep = {}       # token -> [objects]
        self.counts = {}     # token -> operations in flight
        self.pins = 0        # provided-buffer cdatas alive
        self.closing = False
        self.owner = _get_ident()
        self.registered = None
        self.result = 0

    def request_close(self):
        if self.closing:
            return
        self.closing = True
        if self.pins == 0:
            self.destroy()

    def destroy(self):
        ptr, self.ptr = self.ptr, None
        if ptr is None:
            return
        if _get_ident() != self.owner:
            # the ring belongs to another thread: tearing it down from here
            # breaks the thread rule; leak the ring and its memory instead
            _LEAKED.append((ptr, self.keep, self.registered))
            self.keep, self.counts, self.registered = {}, {}, None
            return
        ret = lib.ringline_ring_destroy(ptr)
        self.result = ret
        if ret < 0:  # -ETIMEDOUT: something refused to finish
            _LEAKED.append((self.keep, self.registered))
        self.keep, self.counts, self.registered = {}, {}, None

    def unpin(self):
        self.pins -= 1
        if self.pins == 0 and self.closing:
            self.destroy()


class Ring:
    """An io_uring instance (``ringline_ring_t``). Belongs to the creating thread."""

    def __init__(self, entries: int = 256, *, cq_entries: int = 0, sqpoll: bool = False,
                 sqpoll_idle_ms: int = 1000, sqpoll_cpu: int = -1, big: bool = False,
                 single_issuer: bool = True, defer_taskrun: bool = True, batch: int = 256):
        entries = _uint(entries, "entries", 32769)
        if entries == 0:
            raise ValueError("entries must be 1..32768")
        cq_entries = _uint(cq_entries, "cq_entries", 65537)
        batch = _uint(batch, "batch", 65537)
        if batch == 0:
            raise ValueError("batch must be >= 1")
        if isinstance(sqpoll_cpu, bool) or not isinstance(sqpoll_cpu, int):
            raise TypeError("sqpoll_cpu must be int")
        self._p = ffi.NULL
        self._h = None
        pc = ffi.new("ringline_config_t **")
        check(lib.ringline_config_new(pc))
        cfg = pc[0]
        try:
            check(lib.ringline_config_set_sq_entries(cfg, entries))
            check(lib.ringline_config_set_cq_entries(cfg, cq_entries))
            if sqpoll:
                check(lib.ringline_config_set_sqpoll(cfg, 1, _uint(sqpoll_idle_ms, "sqpoll_idle_ms", 1 << 32), sqpoll_cpu))
            if big:
                check(lib.ringline_config_set_big(cfg, 1))
            if not single_issuer:
                check(lib.ringline_config_set_single_issuer(cfg, 0))
            if not defer_taskrun:
                check(lib.ringline_config_set_defer_taskrun(cfg, 0))
            pr = ffi.new("ringline_ring_t **")
            check(lib.ringline_ring_new(cfg, pr))
        finally:
            lib.ringline_config_free(cfg)
        self._p = pr[0]
        self._h = _Handle(self._p)
        self._batch = batch
        self.cqes = ffi.new("ringline_cqe_t[]", batch)
        self._groups = {}
        self._rw_arr = None

    # ---- lifetime ----
    def close(self) -> None:
        """Cancel everything, wait for final completions, free the ring.
        Idempotent. Provided-buffer memory still viewed from Python keeps the
        mapping alive until the last view is gone."""
        h = self._h
        if h is None:
            return
        if h.owner != _get_ident() and h.ptr is not None and not h.closing:
            raise RuntimeError("a ring can only be closed by the thread that created it")
        self._p = ffi.NULL
        for g in list(self._groups.values()):
            g._ring_closed()
        h.request_close()

    @property
    def closed(self) -> bool:
        return self._p == ffi.NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            h = self._h
        except AttributeError:
            return
        if h is not None and h.ptr is not None:
            self._p = ffi.NULL
            h.request_close()

    def __repr__(self):
        return f"<ringline.Ring {'closed' if self.closed else 'fd=%d' % self.fd}>"

    def _own(self):
        if self._h is not None and self._h.owner != _get_ident():
            raise RuntimeError("ring used from a thread other than its owner (only wake() may be)")

    # ---- queries ----
    @property
    def fd(self) -> int:
        return check(lib.ringline_ring_fd(self._p))

    @property
    def sq_entries(self) -> int:
        return check(lib.ringline_ring_sq_entries(self._p))

    @property
    def cq_entries(self) -> int:
        return check(lib.ringline_ring_cq_entries(self._p))

    @property
    def inflight(self) -> int:
        return check(lib.ringline_ring_inflight(self._p))

    @property
    def sq_pending(self) -> int:
        return check(lib.ringline_ring_sq_pending(self._p))

    @property
    def features(self) -> int:
        out = ffi.new("uint64_t *")
        check(lib.ringline_ring_features(self._p, out))
        return int(out[0])

    @property
    def feature_names(self) -> frozenset:
        return feature_names(self.features)

    def opcode_supported(self, op: int) -> bool:
        return bool(check(lib.ringline_ring_opcode_supported(self._p, _uint(op, "op", 1 << 32))))

    # ---- submit / harvest ----
    def submit(self) -> int:
        self._own()
        return check(lib.ringline_ring_submit(self._p))

    def submit_and_wait(self, wait_nr: int = 1, timeout: Optional[float] = None) -> int:
        """Submit and wait for wait_nr completions or timeout seconds (None: no
        limit). -EINTR (a signal) returns 0 rather than raising."""
        self._own()
        t = -1 if timeout is None else _ns(timeout, "timeout")
        ret = lib.ringline_ring_submit_and_wait(self._p, _uint(wait_nr, "wait_nr", 1 << 32), t)
        if ret == -errno.EINTR:
            return 0
        return check(ret)

    def _settle(self, n):
        h = self._h
        counts = h.counts
        if not counts:
            return n
        cq = self.cqes
        keep = h.keep
        for i in range(n):
            c = cq[i]
            if not (c.flags & _F_MORE):
                t = c.token
                k = counts.get(t)
                if k is not None:
                    if k <= 1:
                        del counts[t]
                        keep.pop(t, None)
                    else:
                        counts[t] = k - 1
        return n

    def harvest(self, max: Optional[int] = None) -> int:
        """Copy ready completions into self.cqes; returns how many."""
        self._own()
        m = self._batch if max is None else min(_uint(max, "max", 1 << 32), self._batch)
        return self._settle(check(lib.ringline_ring_harvest(self._p, self.cqes, m)))

    def reap(self, wait_nr: int = 1, timeout: Optional[float] = None) -> int:
        """Submit, wait (wait_nr completions or timeout seconds) and harvest
        into self.cqes in one call; returns the count (0 on EINTR/timeout)."""
        self._own()
        t = -1 if timeout is None else _ns(timeout, "timeout")
        ret = lib.ringline_ring_reap(self._p, self.cqes, self._batch, _uint(wait_nr, "wait_nr", 1 << 32), t)
        if ret == -errno.EINTR:
            return 0
        return self._settle(check(ret))

    def completions(self, wait_nr: int = 1, timeout: Optional[float] = None) -> List[Completion]:
        """reap() and copy the completions out as Completion tuples."""
        n = self.reap(wait_nr, timeout)
        cq = self.cqes
        return [Completion(cq[i]) for i in range(n)]

    def wake(self) -> None:
        """Thread-safe: post a completion with token RINGLINE_TOKEN_WAKE."""
        check(lib.ringline_ring_wake(self._p))

    # ---- queuing helpers ----
    def _queued(self, ret, token, keep=None):
        if ret < 0:
            raise error(ret)
        h = self._h
        c = h.counts
        c[token] = c.get(token, 0) + 1
        if keep is not None:
            k = h.keep.get(token)
            if k is None:
                h.keep[token] = [keep]
            else:
                k.append(keep)

    def set_flags(self, flags: int) -> None:
        """IOSQE_* flags (RINGLINE_SQE_*) for the SQE queued last."""
        self._own()
        check(lib.ringline_op_set_flags(self._p, _uint(flags, "flags", 1 << 32)))

    def chain(self, n: int, hard: bool = False) -> "_Chain":
        """``with ring.chain(2): ring.connect(...); ring.link_timeout(...)``"""
        self._own()
        check(lib.ringline_chain_begin(self._p, _uint(n, "n", 1 << 32), 1 if hard else 0))
        return _Chain(self)

    # ---- operations ----
    def nop(self, token: int) -> None:
        self._own()
        self._queued(lib.ringline_op_nop(self._p, _token(token)), token)

    def accept(self, fd, token: int, *, multishot: bool = False, direct: bool = False,
               slot: int = lib.RINGLINE_FILE_ALLOC, flags: int = os.O_CLOEXEC | os.O_NONBLOCK) -> None:
        """Accept on listening socket fd; the result is the new fd (or, with
        direct=True, the fixed-file slot)."""
        self._own()
        mode = (lib.RINGLINE_ACCEPT_MULTISHOT if multishot else 0) | (lib.RINGLINE_ACCEPT_DIRECT if direct else 0)
        self._queued(lib.ringline_op_accept(self._p, _fd(fd), ffi.NULL, ffi.NULL,
                                            _uint(flags, "flags", 1 << 31), mode,
                                            _uint(slot, "slot", 1 << 32), _token(token)), token)

    def connect(self, fd, address: tuple, token: int) -> None:
        self._own()
        raw = _addr.pack(address)
        sa = ffi.new("char[]", raw)
        self._queued(lib.ringline_op_connect(self._p, _fd(fd), ffi.cast("struct sockaddr *", sa),
                                             len(raw), _token(token)), token, sa)

    def recv(self, fd, buf: BufferLike, token: int, flags: int = 0) -> None:
        self._own()
        cd, n, keep = _rbuf(buf)
        self._queued(lib.ringline_op_recv(self._p, _fd(fd), cd, n, flags, _token(token)), token, keep)

    def recv_select(self, fd, group: int, token: int, length: int = 0, flags: int = 0) -> None:
        self._own()
        self._queued(lib.ringline_op_recv_select(self._p, _fd(fd), _uint(group, "group", 1 << 16),
                                                 _uint(length, "length"), flags, _token(token)), token)

    def recv_multishot(self, fd, group: int, token: int, flags: int = 0) -> None:
        self._own()
        self._queued(lib.ringline_op_recv_multishot(self._p, _fd(fd), _uint(group, "group", 1 << 16),
                                                    flags, _token(token)), token)

    def send(self, fd, data: BufferLike, token: int, flags: int = 0) -> None:
        self._own()
        cd, n, keep = _wbuf(data)
        self._queued(lib.ringline_op_send(self._p, _fd(fd), cd, n, flags, _token(token)), token, keep)

    def send_zc(self, fd, data: BufferLike, token: int, flags: int = 0) -> None:
        """Zero-copy send: data stays referenced until the F_NOTIF completion."""
        self._own()
        cd, n, keep = _wbuf(data)
        self._queued(lib.ringline_op_send_zc(self._p, _fd(fd), cd, n, flags, _token(token)), token, keep)

    def _msghdr(self, buffers, address, writable):
        if isinstance(buffers, (bytes, bytearray, memoryview, AlignedBuffer, ProvidedBuffer)):
            buffers = [buffers]
        bufs = list(buffers)
        if not 1 <= len(bufs) <= 1024:
            raise ValueError("between 1 and 1024 buffers")
        iov = ffi.new("struct iovec[]", len(bufs))
        keep = [iov]
        for i, b in enumerate(bufs):
            cd, n, k = (_rbuf if writable else _wbuf)(b)
            iov[i].iov_base = cd
            iov[i].iov_len = n
            keep.append(k)
        msg = ffi.new("struct msghdr *")
        keep.append(msg)
        msg.msg_iov = iov
        msg.msg_iovlen = len(bufs)
        if address is not None:
            if address is True:
                sa = ffi.new("struct sockaddr_storage *")
                msg.msg_namelen = ffi.sizeof("struct sockaddr_storage")
            else:
                raw = _addr.pack(address)
                sa = ffi.new("char[]", raw)
                msg.msg_namelen = len(raw)
            msg.msg_name = sa
            keep.append(sa)
        return msg, keep

    def sendmsg(self, fd, buffers, token: int, address: Optional[tuple] = None,
                flags: int = 0, zc: bool = False) -> None:
        """sendmsg(2) of one or more buffers, optionally to address (UDP)."""
        self._own()
        msg, keep = self._msghdr(buffers, address, False)
        f = lib.ringline_op_sendmsg_zc if zc else lib.ringline_op_sendmsg
        self._queued(f(self._p, _fd(fd), msg, flags, _token(token)), token, keep)

    def recvmsg(self, fd, buffers, token: int, flags: int = 0) -> "RecvMsg":
        """recvmsg(2) into writable buffer(s); the returned RecvMsg tells the
        sender's address once the completion arrived."""
        self._own()
        msg, keep = self._msghdr(buffers, True, True)
        self._queued(lib.ringline_op_recvmsg(self._p, _fd(fd), msg, flags, _token(token)), token, keep)
        return RecvMsg(msg, keep)

    def close_fd(self, fd, token: int) -> None:
        """Queue close(2) of fd, or empty fixed slot FIXED(slot)."""
        self._own()
        self._queued(lib.ringline_op_close(self._p, _fd(fd), _token(token)), token)

    def shutdown(self, fd, how: int, token: int) -> None:
        self._own()
        self._queued(lib.ringline_op_shutdown(self._p, _fd(fd), how, _token(token)), token)

    def timeout(self, seconds: float, token: int, *, count: int = 0, absolute: bool = False,
                multishot: bool = False, flags: int = 0) -> None:
        """A timer: completes -ETIME when it fires (absolute: seconds is
        CLOCK_MONOTONIC time, as from now())."""
        self._own()
        f = _uint(flags, "flags", 1 << 32) | (lib.RINGLINE_TIMEOUT_ABS if absolute else 0) | \
            (lib.RINGLINE_TIMEOUT_MULTISHOT if multishot else 0)
        self._queued(lib.ringline_op_timeout(self._p, _ns(seconds), _uint(count, "count", 1 << 32),
                                             f, _token(token)), token)

    def timeout_remove(self, target: int, token: int) -> None:
        self._own()
        self._queued(lib.ringline_op_timeout_remove(self._p, _uint(target, "target"), _token(token)), token)

    def timeout_update(self, target: int, seconds: float, token: int, *, absolute: bool = False) -> None:
        self._own()
        self._queued(lib.ringline_op_timeout_update(
            self._p, _uint(target, "target"), _ns(seconds),
            lib.RINGLINE_TIMEOUT_ABS if absolute else 0, _token(token)), token)

    def link_timeout(self, seconds: float, token: int, *, absolute: bool = False) -> None:
        self._own()
        self._queued(lib.ringline_op_link_timeout(self._p, _ns(seconds),
                                                  lib.RINGLINE_TIMEOUT_ABS if absolute else 0,
                                                  _token(token)), token)

    def cancel(self, target: int, token: int, *, all: bool = False, any: bool = False) -> None:
        self._own()
        f = (lib.RINGLINE_CANCEL_ALL if all else 0) | (lib.RINGLINE_CANCEL_ANY if any else 0)
        self._queued(lib.ringline_op_cancel(self._p, _uint(target, "target"), f, _token(token)), token)

    def cancel_fd(self, fd, token: int, *, all: bool = False) -> None:
        self._own()
        self._queued(lib.ringline_op_cancel_fd(self._p, _fd(fd), lib.RINGLINE_CANCEL_ALL if all else 0,
                                               _token(token)), token)

    def read(self, fd, buf: BufferLike, offset: int, token: int) -> None:
        """pread into buf (offset -1 / 2**64-1: the file position)."""
        self._own()
        cd, n, keep = _rbuf(buf)
        off = _U64 if offset == -1 else _uint(offset, "offset")
        self._queued(lib.ringline_op_read(self._p, _fd(fd), cd, n, off, _token(token)), token, keep)

    def write(self, fd, data: BufferLike, offset: int, token: int) -> None:
        self._own()
        cd, n, keep = _wbuf(data)
        off = _U64 if offset == -1 else _uint(offset, "offset")
        self._queued(lib.ringline_op_write(self._p, _fd(fd), cd, n, off, _token(token)), token, keep)

    def readv(self, fd, buffers: Sequence[BufferLike], offset: int, token: int) -> None:
        self._own()
        msg, keep = self._msghdr(buffers, None, True)
        off = _U64 if offset == -1 else _uint(offset, "offset")
        self._queued(lib.ringline_op_readv(self._p, _fd(fd), msg.msg_iov, msg.msg_iovlen, off,
                                           _token(token)), token, keep)

    def writev(self, fd, buffers: Sequence[BufferLike], offset: int, token: int) -> None:
        self._own()
        msg, keep = self._msghdr(buffers, None, False)
        off = _U64 if offset == -1 else _uint(offset, "offset")
        self._queued(lib.ringline_op_writev(self._p, _fd(fd), msg.msg_iov, msg.msg_iovlen, off,
                                            _token(token)), token, keep)

    def fsync(self, fd, token: int, *, datasync: bool = False) -> None:
        self._own()
        self._queued(lib.ringline_op_fsync(self._p, _fd(fd), lib.RINGLINE_FSYNC_DATASYNC if datasync else 0,
                                           _token(token)), token)

    def openat(self, path: Union[str, bytes, os.PathLike], flags: int, mode: int, token: int, *,
               dfd: int = -100, slot: int = lib.RINGLINE_NO_SLOT) -> None:
        """openat(2); the result is the fd (or with slot=FILE_ALLOC, the slot)."""
        self._own()
        p = os.fsencode(path)
        if b"\0" in p:
            raise ValueError("path contains a NUL byte")
        cp = ffi.new("char[]", p)
        if isinstance(dfd, bool) or not isinstance(dfd, int):
            raise TypeError("dfd must be int")
        self._queued(lib.ringline_op_openat(self._p, dfd, cp, flags, _uint(mode, "mode", 1 << 32),
                                            _uint(slot, "slot", 1 << 32), _token(token)), token, cp)

    def poll_add(self, fd, events: int, token: int, *, multishot: bool = False) -> None:
        self._own()
        self._queued(lib.ringline_op_poll(self._p, _fd(fd), _uint(events, "events", 1 << 32),
                                          1 if multishot else 0, _token(token)), token)

    def poll_remove(self, target: int, token: int) -> None:
        self._own()
        self._queued(lib.ringline_op_poll_remove(self._p, _uint(target, "target"), _token(token)), token)

    def msg_ring(self, target: "Ring", res: int, payload: int, token: int) -> None:
        """Post a completion (token 0xFE<<56 | payload) on another ring."""
        self._own()
        if not isinstance(target, Ring):
            raise TypeError("target must be a Ring")
        if isinstance(res, bool) or not isinstance(res, int) or not -(1 << 31) <= res < (1 << 31):
            raise ValueError("res must be a 32-bit int")
        self._queued(lib.ringline_op_msg_ring(self._p, target._p, res, _uint(payload, "payload", _TOKEN_LIMIT),
                                              _token(token)), token)

    # ---- registered buffers ----
    def register_buffers(self, buffers: Sequence[BufferLike]) -> None:
        """Register writable buffers as fixed buffers 0..n-1 (kept alive until
        unregister_buffers() or close)."""
        self._own()
        bufs = list(buffers)
        if not bufs:
            raise ValueError("no buffers")
        iov = ffi.new("struct iovec[]", len(bufs))
        keep = []
        for i, b in enumerate(bufs):
            cd, n, k = _rbuf(b)
            iov[i].iov_base = cd
            iov[i].iov_len = n
            keep.append((cd, n, k))
        check(lib.ringline_buffers_register(self._p, iov, len(bufs)))
        self._h.registered = keep

    def unregister_buffers(self) -> None:
        self._own()
        check(lib.ringline_buffers_unregister(self._p))
        # a read_fixed still in flight keeps its own reference (see read_fixed)
        self._h.registered = None

    def _fixed(self, index, length, buf_offset):
        reg = self._h.registered if self._h else None
        if reg is None:
            raise ValueError("no registered buffers")
        index = _uint(index, "index", len(reg))
        cd, n, k = reg[index]
        buf_offset = _uint(buf_offset, "buf_offset", n + 1)
        if length is None:
            length = n - buf_offset
        length = _uint(length, "length", n - buf_offset + 1)
        return ffi.cast("uint8_t *", cd) + buf_offset, length, reg[index]

    def read_fixed(self, fd, index: int, offset: int, token: int, *, length: Optional[int] = None,
                   buf_offset: int = 0) -> None:
        self._own()
        p, n, keep = self._fixed(index, length, buf_offset)
        self._queued(lib.ringline_op_read_fixed(self._p, _fd(fd), p, n, _uint(offset, "offset"), index,
                                                _token(token)), token, keep)

    def write_fixed(self, fd, index: int, offset: int, token: int, *, length: Optional[int] = None,
                    buf_offset: int = 0) -> None:
        self._own()
        p, n, keep = self._fixed(index, length, buf_offset)
        self._queued(lib.ringline_op_write_fixed(self._p, _fd(fd), p, n, _uint(offset, "offset"), index,
                                                 _token(token)), token, keep)

    # ---- provided buffers ----
    def buffer_group(self, bgid: int, count: int, size: int) -> "BufferGroup":
        self._own()
        bgid = _uint(bgid, "bgid", 1 << 16)
        if bgid in self._groups:
            raise error(-errno.EEXIST, f"buffer group {bgid}")
        g = BufferGroup(self, bgid, _uint(count, "count", 1 << 32), _uint(size, "size", 1 << 32))
        self._groups[bgid] = g
        return g

    def group(self, bgid: int) -> "BufferGroup":
        try:
            return self._groups[bgid]
        except KeyError:
            raise KeyError(f"no buffer group {bgid}") from None

    def buffer(self, cqe) -> "ProvidedBuffer":
        """The provided buffer a completion (cdata or Completion) carries."""
        flags, bgid, bid, res = int(cqe.flags), int(cqe.bgid), int(cqe.bid), int(cqe.res)
        if not flags & lib.RINGLINE_CQE_F_BUFFER:
            raise ValueError("completion carries no provided buffer")
        return self.group(bgid).take(bid, max(res, 0))

    # ---- fixed files ----
    def files_register(self, total: int, auto: int = 0) -> None:
        self._own()
        check(lib.ringline_files_register(self._p, _uint(total, "total", 1 << 32), _uint(auto, "auto", 1 << 32)))

    def files_unregister(self) -> None:
        self._own()
        check(lib.ringline_files_unregister(self._p))

    def files_alloc(self) -> int:
        self._own()
        return check(lib.ringline_files_alloc(self._p))

    def files_release(self, slot: int) -> None:
        self._own()
        check(lib.ringline_files_release(self._p, _uint(slot, "slot", 1 << 32)))

    def files_install(self, fd) -> int:
        """Install a duplicate of fd in a free slot; returns the slot."""
        self._own()
        return check(lib.ringline_files_install(self._p, _fd(fd)))

    def files_update(self, slot: int, fd) -> None:
        self._own()
        f = -1 if fd == -1 else _fd(fd)
        check(lib.ringline_files_update(self._p, _uint(slot, "slot", 1 << 32), f))

    def files_remove(self, slot: int) -> None:
        self._own()
        check(lib.ringline_files_remove(self._p, _uint(slot, "slot", 1 << 32)))

    def files_count(self) -> int:
        return check(lib.ringline_files_count(self._p))

    # ---- storage batches ----
    def _rw_fill(self, reqs):
        reqs = list(reqs)
        n = len(reqs)
        arr = self._rw_arr
        if arr is None or len(arr) < n:
            arr = self._rw_arr = ffi.new("ringline_rw_req_t[]", max(n, 32))
        keeps = []
        for i, r in enumerate(reqs):
            if not isinstance(r, tuple) or len(r) != 11:
                raise TypeError("requests are made with ringline.rw(...)")
            op, fd, token, offset, buf, length, nlb, nsid, buf_index, buf_offset, datasync = r
            q = arr[i]
            q.token = token
            q.offset = offset
            q.fd = fd
            q.op = op
            q.nlb = nlb
            q.nsid = nsid
            q.buf_index = buf_index
            q.flags = lib.RINGLINE_FSYNC_DATASYNC if (datasync and op == RW.FSYNC) else 0
            keep = None
            if op in _RW_FIXED:
                p, ln, keep = self._fixed(buf_index, length, buf_offset)
                q.buf = p
                q.len = ln
            elif op in _RW_READS or op in _RW_WRITES:
                if buf is None:
                    raise ValueError("this request kind needs buf")
                cd, ln, keep = (_rbuf if op in _RW_READS else _wbuf)(buf)
                if length is not None:
                    ln = _uint(length, "length", ln + 1)
                if ln >= 1 << 32:
                    raise ValueError("a request moves at most 4 GiB")
                q.buf = cd
                q.len = ln
            else:
                q.buf = ffi.NULL
                q.len = 0
            keeps.append((token, keep))
        return arr, n, keeps

    def _rw_account(self, keeps, queued):
        h = self._h
        counts = h.counts
        for token, keep in keeps[:queued]:
            counts[token] = counts.get(token, 0) + 1
            if keep is not None:
                h.keep.setdefault(token, []).append(keep)

    def rw_batch(self, requests) -> int:
        """Queue many storage requests (made with ringline.rw()) in one C call.
        All are checked first: an invalid one raises and none is queued.
        Returns how many were queued (fewer only if the ring is full)."""
        self._own()
        arr, n, keeps = self._rw_fill(requests)
        q = check(lib.ringline_rw_batch(self._p, arr, n))
        self._rw_account(keeps, q)
        return q

    def rw_reap(self, requests=(), wait_nr: int = 1, timeout: Optional[float] = None) -> Tuple[int, int]:
        """Queue requests, submit, wait for wait_nr completions (capped to
        what is in flight) and harvest into self.cqes: one C call per batch.
        Returns (queued, completions)."""
        self._own()
        arr, n, keeps = self._rw_fill(requests)
        qd = ffi.new("unsigned *")
        t = -1 if timeout is None else _ns(timeout, "timeout")
        ret = lib.ringline_rw_reap(self._p, arr, n, qd, self.cqes, self._batch,
                                   _uint(wait_nr, "wait_nr", 1 << 32), t)
        queued = int(qd[0])
        self._rw_account(keeps, queued)
        if ret == -errno.EINTR:
            return queued, 0
        return queued, self._settle(check(ret))

    # ---- NVMe ----
    def nvme(self, fd, cmd: "NvmeCommand", token: int, *, admin: bool = False) -> None:
        """Queue an NVMe passthrough command (ring created with big=True) on
        the generic char device /dev/ngXnY. res 0 ok, > 0 NVMe status."""
        self._own()
        if not isinstance(cmd, NvmeCommand):
            raise TypeError("cmd must be an NvmeCommand")
        self._queued(lib.ringline_op_nvme(self._p, _fd(fd), cmd._cmd, 1 if admin else 0, _token(token)),
                     token, cmd._buf)


class RW:
    """Request kinds for Ring.rw_batch() / rw_reap() (RINGLINE_RW_*)."""
    READ = lib.RINGLINE_RW_READ
    WRITE = lib.RINGLINE_RW_WRITE
    READ_FIXED = lib.RINGLINE_RW_READ_FIXED
    WRITE_FIXED = lib.RINGLINE_RW_WRITE_FIXED
    FSYNC = lib.RINGLINE_RW_FSYNC
    NVME_READ = lib.RINGLINE_RW_NVME_READ
    NVME_WRITE = lib.RINGLINE_RW_NVME_WRITE
    NVME_FLUSH = lib.RINGLINE_RW_NVME_FLUSH
    NVME_WRITE_ZEROES = lib.RINGLINE_RW_NVME_WRITE_ZEROES


_RW_READS = (RW.READ, RW.NVME_READ)
_RW_WRITES = (RW.WRITE, RW.NVME_WRITE)
_RW_FIXED = (RW.READ_FIXED, RW.WRITE_FIXED)
_RW_ALL = (RW.READ, RW.WRITE, RW.READ_FIXED, RW.WRITE_FIXED, RW.FSYNC, RW.NVME_READ,
           RW.NVME_WRITE, RW.NVME_FLUSH, RW.NVME_WRITE_ZEROES)


def rw(op: int, fd, token: int, *, offset: int = 0, buf: Optional[BufferLike] = None,
       length: Optional[int] = None, nlb: int = 0, nsid: int = 0, buf_index: int = 0,
       buf_offset: int = 0, datasync: bool = False) -> tuple:
    """One storage request for Ring.rw_batch() / rw_reap(): op is an RW.*
    kind; offset is a byte offset (files) or the starting LBA (NVMe); buf
    the data (READ/WRITE kinds); the _FIXED kinds use registered buffer
    buf_index (length bytes from buf_offset, default all of it)."""
    if op not in _RW_ALL:
        raise ValueError(f"unknown RW kind {op!r}")
    return (op, _fd(fd) if not (isinstance(fd, int) and fd & lib.RINGLINE_FIXED_BIT) else fd,
            _token(token), _uint(offset, "offset"), buf, length, _uint(nlb, "nlb", 1 << 32),
            _uint(nsid, "nsid", 1 << 32), _uint(buf_index, "buf_index", 1 << 16),
            _uint(buf_offset, "buf_offset"), bool(datasync))


class _Chain:
    def __init__(self, ring):
        self._ring = ring

    def __enter__(self):
        return self._ring

    def __exit__(self, t, v, tb):
        ret = lib.ringline_chain_end(self._ring._p)
        if t is None:
            check(ret, "chain incomplete")


class RecvMsg:
    """Handle of a queued recvmsg: .address is the sender once it completed."""
    __slots__ = ("_msg", "_keep")

    def __init__(self, msg, keep):
        self._msg, self._keep = msg, keep

    @property
    def address(self):
        return _addr.from_ptr(ffi.cast("struct sockaddr *", self._msg.msg_name), self._msg.msg_namelen)

    @property
    def flags(self) -> int:
        return int(self._msg.msg_flags)


class BufferGroup:
    """A provided-buffer ring: the kernel picks a buffer for each receive;
    the completion lends it to you (ring.buffer(cqe)) until you return it."""

    def __init__(self, ring: Ring, bgid: int, count: int, size: int):
        check(lib.ringline_bufring_create(ring._p, bgid, count, size))
        self._ring = ring
        self._h = ring._h
        self.bgid = bgid
        self._count = count
        self._size = size
        self._lent = weakref.WeakValueDictionary()  # bid -> ProvidedBuffer lent
        self._pinned = 0       # cdatas of this group alive
        self._destroyed = False

    @property
    def count(self) -> int:
        return self._count

    @property
    def size(self) -> int:
        return self._size

    @property
    def available(self) -> int:
        """Buffers the kernel holds (free for it to fill)."""
        return check(lib.ringline_bufring_available(self._ring._p, self.bgid))

    def take(self, bid: int, length: int) -> "ProvidedBuffer":
        """Take buffer bid (named by a completion) with its first length bytes."""
        if self._destroyed or self._ring.closed:
            raise ebadf("buffer group destroyed")
        bid = _uint(bid, "bid", self._count)
        length = _uint(length, "length", self._size + 1)
        if bid in self._lent:
            raise ValueError(f"buffer {bid} of group {self.bgid} is already lent out")
        out = ffi.new("void **")
        check(lib.ringline_bufring_addr(self._ring._p, self.bgid, bid, out))
        b = ProvidedBuffer(self, bid, out[0], length)
        self._lent[bid] = b
        return b

    def _return(self, bids):
        if self._destroyed or self._ring.closed:
            return
        arr = ffi.new("uint16_t[]", bids)
        check(lib.ringline_bufring_return(self._ring._p, self.bgid, arr, len(bids)))

    def release_all(self) -> int:
        """Return every lent buffer; returns how many."""
        bufs = list(self._lent.values())
        for b in bufs:
            b.release()
        return len(bufs)

    def destroy(self) -> None:
        """Unregister and unmap. BufferError while Python still references
        memory of this group; OSError(EBUSY) while an operation selects from it."""
        if self._destroyed:
            return
        if self._pinned:
            raise BufferError(f"{self._pinned} buffer(s) of group {self.bgid} still referenced")
        self._ring._own()
        check(lib.ringline_bufring_destroy(self._ring._p, self.bgid))
        self._destroyed = True
        self._ring._groups.pop(self.bgid, None)

    def _ring_closed(self):
        self._lent.clear()


class _PBState:
    __slots__ = ("returned",)

    def __init__(self):
        self.returned = False


def _make_unpin(group, bid, st, h):
    owner = h.owner

    def unpin(_cd):
        # the last Python reference to this buffer's memory is gone
        group._pinned -= 1
        if not st.returned:
            st.returned = True
            group._lent.pop(bid, None)
            if _get_ident() == owner:
                try:
                    group._return([bid])
                except OSError:
                    pass
        h.unpin()
    return unpin


class ProvidedBuffer:
    """A kernel-filled buffer lent to Python. ``view`` is a memoryview of the
    received bytes, valid until release(); views kept after release() stay
    memory-safe (the mapping outlives them) but may see newer data. A buffer
    nobody references any more goes back to the kernel by itself."""

    __slots__ = ("_group", "bid", "_cd", "_len", "_st", "__weakref__")

    def __init__(self, group, bid, addr, length):
        h = group._h
        st = _PBState()
        self._group = group
        self.bid = bid
        self._len = length
        self._st = st
        self._cd = ffi.gc(ffi.cast("uint8_t *", addr), _make_unpin(group, bid, st, h))
        h.pins += 1
        group._pinned += 1

    @property
    def _returned(self):
        return self._st.returned

    def _ptr(self):
        if self._st.returned:
            raise ValueError("provided buffer already returned")
        return self._cd

    @property
    def view(self) -> memoryview:
        if self._st.returned:
            raise ValueError("provided buffer already returned")
        return memoryview(ffi.buffer(self._cd, self._len))

    def __len__(self):
        return self._len

    def __bytes__(self):
        return self.tobytes()

    def tobytes(self) -> bytes:
        return ffi.buffer(self._ptr(), self._len)[:]

    @property
    def returned(self) -> bool:
        return self._st.returned

    def release(self) -> None:
        """Give the buffer back to the kernel. A second release raises ValueError."""
        if self._st.returned:
            raise ValueError("provided buffer already returned")
        g = self._group
        g._ring._own()
        self._st.returned = True
        g._lent.pop(self.bid, None)
        g._return([self.bid])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._st.returned:
            self.release()

    def __repr__(self):
        return (f"<ProvidedBuffer group={self._group.bgid} bid={self.bid} len={self._len}"
                f"{' returned' if self._st.returned else ''}>")


class AlignedBuffer:
    """Zero-filled memory aligned for O_DIRECT / registered buffers. Freed
    when neither it nor any view of it is referenced any more."""

    __slots__ = ("_cd", "_len", "align", "__weakref__")

    def __init__(self, size: int, align: int = 0):
        size = _uint(size, "size")
        if size == 0:
            raise ValueError("size must be > 0")
        align = _uint(align, "align")
        if align and (align & (align - 1)):
            raise ValueError("align must be a power of two (or 0 for the page size)")
        out = ffi.new("void **")
        check(lib.ringline_aligned_alloc(size, align, out))
        self._cd = ffi.gc(ffi.cast("uint8_t *", out[0]), lib.ringline_aligned_free)
        self._len = size
        self.align = align or os.sysconf("SC_PAGE_SIZE")

    def _ptr(self):
        return self._cd

    @property
    def view(self) -> memoryview:
        return memoryview(ffi.buffer(self._cd, self._len))

    @property
    def address(self) -> int:
        return int(ffi.cast("uintptr_t", self._cd))

    def __len__(self):
        return self._len

    def __bytes__(self):
        return ffi.buffer(self._cd, self._len)[:]

    def __repr__(self):
        return f"<AlignedBuffer {self._len} bytes align={self.align}>"


def aligned_buffer(size: int, align: int = 0) -> AlignedBuffer:
    return AlignedBuffer(size, align)


def dio_alignment(fd) -> Tuple[int, int]:
    """(memory alignment, offset alignment) O_DIRECT needs on fd."""
    m = ffi.new("unsigned[2]")
    check(lib.ringline_dio_alignment(_fd(fd), m, m + 1))
    return int(m[0]), int(m[1])


class NvmeCommand:
    """An NVMe command (ringline_nvme_cmd_t) plus the data buffer it uses,
    which ring.nvme() keeps alive until the completion."""

    __slots__ = ("_cmd", "_buf")

    def __init__(self):
        self._cmd = ffi.new("ringline_nvme_cmd_t *")
        self._buf = None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._cmd, name)

    @classmethod
    def read(cls, nsid: int, slba: int, nlb: int, buf: BufferLike) -> "NvmeCommand":
        c = cls()
        cd, n, keep = _rbuf(buf)
        check(lib.ringline_nvme_cmd_read(c._cmd, _uint(nsid, "nsid", 1 << 32), _uint(slba, "slba"),
                                         _uint(nlb, "nlb", 1 << 32), cd, _uint(n, "len(buf)", 1 << 32)))
        c._buf = keep
        return c

    @classmethod
    def write(cls, nsid: int, slba: int, nlb: int, buf: BufferLike) -> "NvmeCommand":
        c = cls()
        cd, n, keep = _wbuf(buf)
        check(lib.ringline_nvme_cmd_write(c._cmd, _uint(nsid, "nsid", 1 << 32), _uint(slba, "slba"),
                                          _uint(nlb, "nlb", 1 << 32), cd, _uint(n, "len(buf)", 1 << 32)))
        c._buf = keep
        return c

    @classmethod
    def flush(cls, nsid: int) -> "NvmeCommand":
        c = cls()
        check(lib.ringline_nvme_cmd_flush(c._cmd, _uint(nsid, "nsid", 1 << 32)))
        return c

    @classmethod
    def write_zeroes(cls, nsid: int, slba: int, nlb: int) -> "NvmeCommand":
        c = cls()
        check(lib.ringline_nvme_cmd_write_zeroes(c._cmd, _uint(nsid, "nsid", 1 << 32), _uint(slba, "slba"),
                                                 _uint(nlb, "nlb", 1 << 32)))
        return c

    @classmethod
    def identify(cls, nsid: int, cns: int, buf: BufferLike) -> "NvmeCommand":
        """Admin identify; buf must be writable and hold 4096 bytes."""
        c = cls()
        cd, n, keep = _rbuf(buf)
        if n < 4096:
            raise ValueError("identify needs a 4096-byte buffer")
        check(lib.ringline_nvme_cmd_identify(c._cmd, _uint(nsid, "nsid", 1 << 32), _uint(cns, "cns", 1 << 32), cd))
        c._buf = keep
        return c

    def __repr__(self):
        c = self._cmd
        return f"<NvmeCommand opcode={c.opcode:#x} nsid={c.nsid} data_len={c.data_len}>"


def nvme_ns_geometry(id_ns: BufferLike) -> Tuple[int, int, int]:
    """(LBA size, namespace size, capacity in LBAs) from an Identify
    Namespace page (4096 bytes). OSError(EPROTO) if it names no valid format."""
    cd, n, keep = _wbuf(id_ns)
    if n < 4096:
        raise ValueError("an Identify Namespace page is 4096 bytes")
    lba = ffi.new("uint32_t *")
    nsze = ffi.new("uint64_t *")
    ncap = ffi.new("uint64_t *")
    check(lib.ringline_nvme_ns_geometry(cd, lba, nsze, ncap))
    return int(lba[0]), int(nsze[0]), int(ncap[0])


def feature_names(mask: int) -> frozenset:
    names = set()
    for bit in range(64):
        if mask & (1 << bit):
            p = lib.ringline_feature_name(1 << bit)
            names.add(ffi.string(p).decode() if p != ffi.NULL else f"bit{bit}")
    return frozenset(names)


_FRAME_OUT = None


def frame(kind: int, data, max_frame: int = 0) -> Optional[Tuple[int, int, int]]:
    """Find the first complete frame of kind FRAMER_* in data: returns
    (frame_len, payload_off, payload_len), or None if more bytes are needed.
    Raises OSError(EMSGSIZE / EPROTO) for oversized or malformed input."""
    cd, n, keep = _wbuf(data)
    out = ffi.new("size_t[3]")
    r = check(lib.ringline_frame(_uint(kind, "kind", 1 << 31), cd, n, _uint(max_frame, "max_frame"),
                                 out, out + 1, out + 2))
    if r == 0:
        return None
    return int(out[0]), int(out[1]), int(out[2])


def resp_parse_command(data, max_args: int = 64) -> Optional[Tuple[List[bytes], int]]:
    """Parse one RESP command at the start of data: (args, frame_len), or
    None if incomplete."""
    cd, n, keep = _wbuf(data)
    max_args = _uint(max_args, "max_args", 1 << 20)
    offs = ffi.new("uint32_t[]", max(max_args, 1))
    lens = ffi.new("uint32_t[]", max(max_args, 1))
    fl = ffi.new("size_t *")
    r = check(lib.ringline_resp_parse_command(cd, n, offs, lens, max_args, fl))
    if r == 0 and fl[0] == 0:
        return None
    mv = bytes(ffi.buffer(cd, n))
    return [mv[offs[i]:offs[i] + lens[i]] for i in range(r)], int(fl[0])
