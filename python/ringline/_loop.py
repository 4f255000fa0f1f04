"""The native async API on ringline's C event loop (ringline_loop_*).

Coroutines run on a tiny scheduler of their own (no asyncio underneath): a
task awaits a Future; the loop polls a batch of events from C with one call,
resolves futures, and runs the tasks that became ready. Received bytes are
copied out of the batch at once (the C memory is only valid until the next
poll), and the Python side keeps them until a task takes them, so cancelling
a task never loses received bytes.
"""
from __future__ import annotations

import collections
import errno
import inspect
import os
import signal as _signal
import sys
import threading
import traceback
import types
from itertools import accumulate as _accumulate
from typing import Any, Awaitable, Callable, Coroutine, Deque, Dict, Generator, Optional, Tuple, TypeVar, Union

from . import _addr
from ._errors import IncompleteReadError, check, ebadf, error
from ._ffi import ffi, lib

T = TypeVar("T")

EV_ACCEPTED = lib.RINGLINE_EV_ACCEPTED
EV_CONNECTED = lib.RINGLINE_EV_CONNECTED
EV_DATA = lib.RINGLINE_EV_DATA
EV_FRAME = lib.RINGLINE_EV_FRAME
EV_EOF = lib.RINGLINE_EV_EOF
EV_SENT = lib.RINGLINE_EV_SENT
EV_WRITABLE = lib.RINGLINE_EV_WRITABLE
EV_CLOSED = lib.RINGLINE_EV_CLOSED
EV_TIMER = lib.RINGLINE_EV_TIMER
EV_DATAGRAM = lib.RINGLINE_EV_DATAGRAM
EV_WAKE = lib.RINGLINE_EV_WAKE
EV_SIGNAL = lib.RINGLINE_EV_SIGNAL
EV_ERROR = lib.RINGLINE_EV_ERROR
EV_STOPPED = lib.RINGLINE_EV_STOPPED
EV_CQE = lib.RINGLINE_EV_CQE
_TOKEN_LIMIT = 1 << 55  # raw operations on the loop's ring: tokens below

FRAMER_LINE = lib.RINGLINE_FRAMER_LINE
FRAMER_U16BE = lib.RINGLINE_FRAMER_U16BE
FRAMER_U32BE = lib.RINGLINE_FRAMER_U32BE
FRAMER_RESP = lib.RINGLINE_FRAMER_RESP
FRAMER_HTTP_HEAD = lib.RINGLINE_FRAMER_HTTP_HEAD
_FRAMERS = (FRAMER_LINE, FRAMER_U16BE, FRAMER_U32BE, FRAMER_RESP, FRAMER_HTTP_HEAD)

_MODE_EVENTS = lib.RINGLINE_MODE_EVENTS
_MODE_ECHO = lib.RINGLINE_MODE_ECHO
_MODE_FORWARD = lib.RINGLINE_MODE_FORWARD
_MODE_FRAMED = lib.RINGLINE_MODE_FRAMED

_EINTR = -errno.EINTR
_EBADF = -errno.EBADF
_EPIPE = -errno.EPIPE
_buffer = ffi.buffer
_unpack = ffi.unpack
_NULL = ffi.NULL
_MAX_SEND = 0x7FFFF000  # RL_MAX_LEN: the most one send may queue

# The batched entry points (core/loop_batch.c). An older libringline without
# them still works, through one foreign call per event and per send.
try:
    _poll_packed = lib.ringline_loop_poll_packed
    _send_batch = lib.ringline_conn_send_batch
    _round = lib.ringline_loop_round
    _NOCOPY = lib.RINGLINE_PACKED_NOCOPY
except (AttributeError, ffi.error):  # pragma: no cover - depends on the library found
    _poll_packed = _send_batch = _round = None
    _NOCOPY = 0
_from_buffer = ffi.from_buffer
if _round is not None:
    # ringline_round_t's int fields, as indexes of an int32 view of it
    _I_SEND_N = ffi.offsetof("ringline_round_t", "send_n") // 4
    _I_FAILED = ffi.offsetof("ringline_round_t", "send_failed") // 4
_conn_send = lib.ringline_conn_send
_conn_send_ref = lib.ringline_conn_send_ref
# A round's replies up to this many bytes in all are copied into one staging
# buffer and reach C with the poll; above it, a call per send (bulk: copying
# costs more than the call).
_JOIN_MAX = 16384
# Sends of at least this many bytes are not copied at all: C sends from the
# bytes object itself (ringline_conn_send_ref), which the loop keeps alive
# until the SENT event of its tag. For 64 KiB echoes this saves one of the
# two user-space copies per message for one more (cheap) event.
_REF_MIN = 32768
_REF_TAG0 = 1 << 62  # ref-send tags; send_and_wait() counts up from 1

# Python-side receive buffering per connection: above HIGH bytes not yet
# taken by the script, receiving pauses (in C); below LOW it resumes.
RECV_HIGH = 1 << 20
RECV_LOW = 256 << 10

_local = threading.local()


class CancelledError(BaseException):
    """Thrown into a task by Task.cancel(). A BaseException, so that
    ``except Exception`` does not swallow it (like asyncio's)."""


class _Timeout(CancelledError):
    pass


def get_loop() -> "Loop":
    """The loop running in this thread (inside ringline.run())."""
    loop = getattr(_local, "loop", None)
    if loop is None:
        raise RuntimeError("no running ringline loop: use ringline.run(main())")
    return loop


def _is_coro(c) -> bool:
    """An async-def coroutine, or a generator-based one (types.coroutine),
    such as Connection.recv()."""
    if inspect.iscoroutine(c):
        return True
    return inspect.isgenerator(c) and bool(c.gi_code.co_flags & inspect.CO_ITERABLE_COROUTINE)


def _report(msg, exc):
    sys.stderr.write(f"ringline: {msg}\n")
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


# ---------------------------------------------------------------------------
# Futures and tasks
# ---------------------------------------------------------------------------

class Future:
    """A one-shot result a task can await. Resolved from loop callbacks."""

    __slots__ = ("_done", "_result", "_exc", "_waiter", "_on_cancel")

    def __init__(self):
        self._done = False
        self._result = None
        self._exc = None
        self._waiter = None      # the Task awaiting it
        self._on_cancel = None   # called if the waiter is cancelled away

    def done(self) -> bool:
        return self._done

    def result(self):
        if not self._done:
            raise RuntimeError("future not done")
        if self._exc is not None:
            raise self._exc
        return self._result

    def set_result(self, value=None) -> None:
        if self._done:
            return
        self._done = True
        self._result = value
        w = self._waiter
        if w is not None:
            self._waiter = None
            w._wake()

    def set_exception(self, exc: BaseException) -> None:
        if self._done:
            return
        self._done = True
        self._exc = exc
        w = self._waiter
        if w is not None:
            self._waiter = None
            w._wake()

    def __await__(self):
        if not self._done:
            yield self
        if self._exc is not None:
            raise self._exc
        return self._result

    __iter__ = __await__


class Task:
    """A coroutine run by the loop. ``await task`` gives its result;
    ``task.cancel()`` throws CancelledError into it at its current await."""

    __slots__ = ("_coro", "_loop", "_fut", "_done", "_result", "_exc", "_joiners",
                 "_throw", "_queued", "name", "_joined")

    def __init__(self, loop: "Loop", coro, name=None):
        self._coro = coro
        self._loop = loop
        self._fut = None
        self._done = False
        self._result = None
        self._exc = None
        self._joiners = None
        self._throw = None
        self._queued = False
        self._joined = False
        self.name = name or getattr(coro, "__qualname__", "task")

    def _wake(self):
        self._fut = None
        if not self._queued:
            self._queued = True
            self._loop._ready.append(self)

    def _step(self):
        self._queued = False
        if self._done:
            return
        loop = self._loop
        exc = self._throw
        self._throw = None
        loop._current = self
        try:
            if exc is None:
                y = self._coro.send(None)
            else:
                y = self._coro.throw(exc)
        except StopIteration as e:
            self._finish(e.value, None)
        except (KeyboardInterrupt, SystemExit) as e:
            self._finish(None, e)
            raise
        except BaseException as e:
            self._finish(None, e)
        else:
            if y is None:                       # a bare yield: run again soon
                self._queued = True
                loop._ready.append(self)
            elif type(y) is Future:
                if y._done:
                    self._queued = True
                    loop._ready.append(self)
                else:
                    y._waiter = self
                    self._fut = y
            else:
                self._throw = TypeError(f"a ringline task awaited {y!r}; only ringline "
                                        f"awaitables work here (not asyncio's)")
                self._queued = True
                loop._ready.append(self)
        finally:
            loop._current = None

    def _finish(self, result, exc):
        self._done = True
        self._result = result
        self._exc = exc
        self._coro = None
        self._loop._tasks.discard(self)
        js = self._joiners
        if js:
            self._joiners = None
            for f in js:
                f.set_result(None)
        elif exc is not None and not self._joined and not isinstance(exc, CancelledError) \
                and self is not self._loop._main:
            _report(f"unhandled exception in task {self.name}", exc)

    def cancel(self, exc: Optional[BaseException] = None) -> bool:
        """Throw exc (default CancelledError()) into the task at its current
        await; False if it already finished."""
        if self._done:
            return False
        if exc is None:
            exc = CancelledError()
        f = self._fut
        if f is not None:
            self._fut = None
            f._waiter = None
            cb = f._on_cancel
            if cb is not None:
                f._on_cancel = None
                try:
                    cb()
                except Exception:  # pragma: no cover
                    pass
        self._throw = exc
        if not self._queued:
            self._queued = True
            self._loop._ready.append(self)
        return True

    def done(self) -> bool:
        return self._done

    def result(self):
        if not self._done:
            raise RuntimeError("task not done")
        self._joined = True
        if self._exc is not None:
            raise self._exc
        return self._result

    def exception(self) -> Optional[BaseException]:
        if not self._done:
            raise RuntimeError("task not done")
        self._joined = True
        return self._exc

    def __await__(self):
        self._joined = True
        if not self._done:
            f = Future()
            if self._joiners is None:
                self._joiners = [f]
            else:
                self._joiners.append(f)
            yield from f.__await__()
        if self._exc is not None:
            raise self._exc
        return self._result

    def __repr__(self):
        return f"<ringline.Task {self.name} {'done' if self._done else 'pending'}>"


class _Sleep:
    __slots__ = ()

    def __await__(self):
        yield None


class _Done:
    """``await _DONE`` is None at once: no coroutine frame, no trip through
    the scheduler (send()'s fast path). The empty iterator's StopIteration
    comes from C, which is much cheaper than raising it in Python."""

    __slots__ = ()

    def __await__(self):
        return iter(())


_DONE = _Done()


class _Drain:
    """What send() returns above the high-water mark: awaiting it waits for
    the queue to drain. Not a coroutine, so the callback style (which never
    awaits) leaves no "never awaited" warning behind."""

    __slots__ = ("_conn",)

    def __init__(self, conn):
        self._conn = conn

    def __await__(self):
        return self._conn.drain().__await__()


def _as_bytes(data) -> bytes:
    if isinstance(data, str):
        raise TypeError("data must be bytes-like, not str")
    try:
        # a copy now: the caller may reuse its buffer before the round ends
        return memoryview(data).tobytes()
    except TypeError:
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}") from None


class Timer:
    """A C timer (ringline_timer_*); cancel() is idempotent."""

    __slots__ = ("_loop", "id", "_cb", "_args", "repeating")

    def __init__(self, loop, tid, cb, args, repeating):
        self._loop, self.id, self._cb, self._args, self.repeating = loop, tid, cb, args, repeating

    def cancel(self) -> None:
        loop = self._loop
        if loop._timers.pop(self.id, None) is not None:
            lib.ringline_timer_cancel(loop._p, self.id)

    @property
    def active(self) -> bool:
        return self.id in self._loop._timers


def _ns(seconds, name="delay"):
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(seconds).__name__}")
    if not seconds >= 0:
        raise ValueError(f"{name} must be >= 0")
    ns = int(seconds * 1e9)
    if ns >= 1 << 63:
        raise ValueError(f"{name} too large")
    return ns


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------

class Loop:
    """One ringline_loop_t (one ring) plus the scheduler. Belongs to the
    thread that created it; call_soon_threadsafe() is the cross-thread door."""

    def __init__(self, *, max_conns: int = 4096, recv_buffers: Tuple[int, int] = (256, 65536),
                 send_limits: Tuple[int, int] = (1 << 20, 256 << 10), zc_threshold: Optional[int] = None,
                 idle_timeout: Optional[float] = None, batch: int = 256):
        for name, v in (("max_conns", max_conns), ("batch", batch)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be int")
            if v <= 0:
                raise ValueError(f"{name} must be > 0")
        if batch < 8:
            raise ValueError("batch must be >= 8")
        rb = tuple(recv_buffers)
        sl = tuple(send_limits)
        if len(rb) != 2 or len(sl) != 2:
            raise ValueError("recv_buffers and send_limits are (a, b) pairs")
        for v in rb + sl + ((zc_threshold,) if zc_threshold is not None else ()):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError("buffer sizes and limits must be int")
            if v < 0:
                raise ValueError("buffer sizes and limits must be >= 0")
        self._p = _NULL
        pc = ffi.new("ringline_config_t **")
        check(lib.ringline_config_new(pc))
        cfg = pc[0]
        try:
            check(lib.ringline_config_set_max_conns(cfg, max_conns))
            check(lib.ringline_config_set_recv_buffers(cfg, rb[0], rb[1]))
            check(lib.ringline_config_set_send_limits(cfg, sl[0], sl[1]))
            if zc_threshold is not None:
                check(lib.ringline_config_set_zc_threshold(cfg, zc_threshold))
            if idle_timeout is not None:
                check(lib.ringline_config_set_idle_timeout(cfg, _ns(idle_timeout, "idle_timeout") // 1000000))
            pl = ffi.new("ringline_loop_t **")
            check(lib.ringline_loop_new(cfg, pl))
        finally:
            lib.ringline_config_free(cfg)
        self._p = pl[0]
        pr = ffi.new("ringline_ring_t **")
        check(lib.ringline_loop_ring(self._p, pr))
        self._ring = pr[0]
        self._raw: Dict[int, Optional[Future]] = {}
        self._next_token = 1
        self._owner = threading.get_ident()
        self._high = sl[0]
        self._nev = batch
        self._evs = ffi.new("ringline_event_t[]", batch)
        self._ready: Deque[Task] = collections.deque()
        self._threadsafe: Deque[Tuple[Callable, tuple]] = collections.deque()
        self._objs: Dict[int, Any] = {}
        self._timers: Dict[int, Timer] = {}
        self._tasks = set()
        self._current: Optional[Task] = None
        self._main: Optional[Task] = None
        self._signal_handlers = []
        self._stopping = False
        self._stopped = False
        self._stop_waiters = []
        self._sigmask = None
        self._closed = False
        self.on_error: Optional[Callable[[Any, OSError], None]] = None
        # Sends of a dispatch round, alternating id, bytes: queued into C by
        # one ringline_conn_send_batch() call before the next poll (and
        # before any call that must see them, e.g. close()).
        self._sq: list = []
        self._refs: Dict[int, bytes] = {}  # tag -> bytes C sends from
        self._ref_tag = _REF_TAG0
        self._bcap = 0
        self._bids = self._bends = self._bres = None
        # id and length last written to _bids[0] / _bends[0] by _poll's
        # one-send path: a ping-pong rewrites neither (None: unknown)
        self._s0id = self._s0len = None
        if _poll_packed is not None:
            # a packed batch: 3 words per event, DATA payloads copied into
            # one buffer (one bytes object per batch, sliced per event)
            self._meta = ffi.new("uint64_t[]", 3 * batch)
            self._pcap = max(1 << 20, rb[1])
            self._pbuf = ffi.new("uint8_t[]", self._pcap)
            # one ringline_loop_round() call per round: the previous round's
            # sends and this round's poll, 3 arguments (libffi's cost grows
            # with the argument count; it dominates a small message's cost)
            rd = self._rd = ffi.new("ringline_round_t *")
            rd.out = self._evs
            rd.max = batch
            rd.meta = self._meta
            rd.meta_words = 3 * batch
            rd.buf = self._pbuf
            rd.cap = self._pcap
            # views read and written with plain indexing/slicing: no
            # argument parsing, no cdata conversions per round
            self._mview = memoryview(ffi.buffer(self._meta)).cast("Q")
            self._pview = ffi.buffer(self._pbuf)
            self._pmv = memoryview(self._pview)  # view mode slices this
            self._scap = _JOIN_MAX
            self._sbuf = ffi.new("uint8_t[]", self._scap)
            # a memoryview: slice stores into it cost less than into the
            # cffi buffer itself
            self._sview = memoryview(ffi.buffer(self._sbuf))
            rd.send_buf = self._sbuf
            # rd's int fields as a memoryview too: a store/load through it
            # is a plain int conversion, not a cdata attribute access
            self._rdv = memoryview(ffi.buffer(rd)).cast("i")
            self._grow(max(64, batch))
        else:  # pragma: no cover - an older library
            self._rd = None
            self._pmv = None

    # ---- lifetime ----
    def close(self) -> None:
        """Close everything at once and free the loop (idempotent)."""
        if self._closed:
            return
        if threading.get_ident() != self._owner:
            raise RuntimeError("a loop can only be closed by its own thread")
        self._closed = True
        p, self._p = self._p, _NULL
        self._ring = _NULL
        for t in list(self._tasks):
            c = t._coro
            if c is not None:
                try:
                    c.close()
                except BaseException:
                    pass
        self._tasks.clear()
        self._ready.clear()
        self._sq.clear()
        for o in list(self._objs.values()):
            o._on_closed(-errno.ECONNABORTED)
        self._objs.clear()
        self._timers.clear()
        if p != _NULL:
            lib.ringline_loop_destroy(p)
        self._refs.clear()  # only now: C no longer sends from them
        if self._sigmask is not None:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, self._sigmask)
            self._sigmask = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __del__(self):
        try:
            if not self._closed and self._p != _NULL and threading.get_ident() == self._owner:
                self._closed = True
                p, self._p = self._p, _NULL
                lib.ringline_loop_destroy(p)
        except Exception:  # pragma: no cover
            pass

    # ---- scheduling ----
    def spawn(self, coro: Coroutine, *, name: Optional[str] = None) -> Task:
        if not _is_coro(coro):
            raise TypeError(f"spawn() needs a coroutine, not {type(coro).__name__}")
        if self._closed:
            coro.close()
            raise RuntimeError("loop is closed")
        t = Task(self, coro, name)
        self._tasks.add(t)
        t._queued = True
        self._ready.append(t)
        return t

    def call_later(self, delay: float, callback: Callable, *args) -> Timer:
        out = ffi.new("ringline_id_t *")
        check(lib.ringline_timer_after(self._p, _ns(delay), 0, out))
        t = Timer(self, out[0], callback, args, False)
        self._timers[t.id] = t
        return t

    def call_at(self, when: float, callback: Callable, *args) -> Timer:
        """when: CLOCK_MONOTONIC seconds (ringline.now())."""
        out = ffi.new("ringline_id_t *")
        check(lib.ringline_timer_at(self._p, _ns(when, "when"), 0, out))
        t = Timer(self, out[0], callback, args, False)
        self._timers[t.id] = t
        return t

    def call_every(self, interval: float, callback: Callable, *args) -> Timer:
        ns = _ns(interval, "interval")
        if ns == 0:
            raise ValueError("interval must be > 0")
        out = ffi.new("ringline_id_t *")
        check(lib.ringline_timer_every(self._p, ns, 0, out))
        t = Timer(self, out[0], callback, args, True)
        self._timers[t.id] = t
        return t

    def call_soon_threadsafe(self, callback: Callable, *args) -> None:
        """From any thread: run callback(*args) in the loop's thread."""
        self._threadsafe.append((callback, args))
        if self._p != _NULL:
            lib.ringline_loop_wake(self._p)

    def stop(self, deadline: float = 5.0) -> None:
        """Graceful stop: stop accepting, let send queues drain for up to
        deadline seconds, then close everything."""
        self._stopping = True
        ns = _ns(deadline, "deadline")
        if self._sq:
            self._flush()  # replies already given are part of what drains
        check(lib.ringline_loop_stop(self._p, ns // 1000000))

    def handle_signals(self, deadline: float = 5.0) -> None:
        """SIGINT/SIGTERM become SIGNAL events and start a graceful stop."""
        old = _signal.pthread_sigmask(_signal.SIG_BLOCK, [])
        check(lib.ringline_loop_handle_signals(self._p, _ns(deadline, "deadline") // 1000000))
        if self._sigmask is None:
            self._sigmask = old

    def _run_callback(self, cb, args):
        try:
            cb(*args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:
            _report(f"exception in callback {cb!r}", e)

    # ---- sending ----
    def _flush(self) -> None:
        """Queue the round's sends into C: one call for all of them."""
        sq = self._sq
        n2 = len(sq)
        if not n2:
            return
        p = self._p
        if p == _NULL:
            sq.clear()
            return
        if n2 == 2:
            cid = sq[0]
            d = sq[1]
            sq.clear()
            r = self._send_one(p, cid, d)
            if r < 0:
                self._send_failed(cid, r)
            return
        ids = sq[0::2]
        ds = sq[1::2]
        sq.clear()
        ends = list(_accumulate(map(len, ds)))
        k = len(ids)
        if _send_batch is None or ends[-1] > _JOIN_MAX:
            # bulk: a call per send costs less than copying all the bytes
            # once more to join them
            for cid, d in zip(ids, ds):
                r = self._send_one(p, cid, d)
                if r < 0:
                    self._send_failed(cid, r)
            return
        if k > self._bcap:
            self._grow(k)
        self._bids[0:k] = ids
        self._bends[0:k] = ends
        self._s0id = None  # _bids[0] / _bends[0] no longer what _poll cached
        r = _send_batch(p, self._bids, b"".join(ds), self._bends, k, self._bres)
        if r:
            if r < 0:
                raise error(r)
            res = _unpack(self._bres, k)
            for j in range(k):
                if res[j] < 0:
                    self._send_failed(ids[j], res[j])

    def _stage(self, sq, rd):
        """Several sends: joined into the staging buffer when they fit (one
        copy more of at most _JOIN_MAX bytes), else sent one call each."""
        ids = sq[0::2]
        ds = sq[1::2]
        ends = list(_accumulate(map(len, ds)))
        total = ends[-1]
        if total > _JOIN_MAX:
            self._flush()
            return None
        k = len(ids)
        if k > self._bcap:
            self._grow(k)
        self._bids[0:k] = ids
        self._bends[0:k] = ends
        self._s0id = None  # _bids[0] / _bends[0] no longer what _poll cached
        self._sview[0:total] = b"".join(ds)
        self._rdv[_I_SEND_N] = k
        sq.clear()
        return k

    def _grow(self, k):
        self._bcap = cap = max(k, 2 * self._bcap, 64)
        self._bids = ffi.new("uint64_t[]", cap)
        self._bends = ffi.new("uint64_t[]", cap)
        self._bres = ffi.new("int64_t[]", cap)
        self._bidsv = memoryview(ffi.buffer(self._bids)).cast("Q")
        self._bendsv = memoryview(ffi.buffer(self._bends)).cast("Q")
        self._s0id = None
        rd = self._rd
        if rd is not None:
            rd.send_ids = self._bids
            rd.send_ends = self._bends
            rd.send_res = self._bres

    def _send_one(self, p, cid, d) -> int:
        n = len(d)
        if n < _REF_MIN or type(d) is not bytes:
            return _conn_send(p, cid, d, n, 0)
        tag = self._ref_tag
        self._ref_tag = tag + 1
        r = _conn_send_ref(p, cid, d, n, tag)
        if r >= 0:
            self._refs[tag] = d  # released by the SENT event of tag
        return r

    def _send_failed(self, cid, r):
        # The connection closed (or started closing) in C after the script
        # queued these bytes and before they reached C: they are lost, as
        # bytes sent to a connection that goes away always may be. Anything
        # else (-ENOMEM) is reported and closes that connection.
        if r == _EBADF or r == _EPIPE:
            return
        o = self._objs.get(cid)
        err = error(r)
        if self.on_error is not None:
            self._run_callback(self.on_error, (o, err))
        else:
            _report(f"send on {o!r} failed", err)
        if o is not None:
            o.abort()

    def _callback_failed(self, conn, what, exc):
        """An exception in a connection's callback: report it and close only
        that connection (abort: its queued replies may be incomplete)."""
        _report(f"exception in {what} callback of {conn!r}", exc)
        try:
            conn.abort()
        except Exception:  # pragma: no cover
            pass

    # ---- the event pump ----
    def _poll(self, timeout_ns: int) -> None:
        rd = self._rd
        if rd is None:
            if self._sq:
                self._flush()
            return self._poll_plain(timeout_ns)
        sq = self._sq
        staged = None
        if sq:
            # the round's sends go to C in the same call as the poll,
            # copied into the staging buffer rd.send_buf
            if len(sq) == 2:
                d = sq[1]
                k = len(d)
                if k <= _JOIN_MAX:
                    self._sview[0:k] = d
                    cid = sq[0]
                    if cid != self._s0id or k != self._s0len:
                        self._bidsv[0] = cid
                        self._bendsv[0] = k
                        self._s0id = cid
                        self._s0len = k
                    self._rdv[_I_SEND_N] = 1
                    staged = 1
                    sq.clear()
                else:
                    self._flush()
                    if self._closed:
                        return
            else:
                staged = self._stage(sq, rd)
                if self._closed:
                    rd.send_n = 0
                    return
        n = _round(self._p, rd, timeout_ns)
        if staged is not None and self._rdv[_I_FAILED]:
            f = rd.send_failed
            if f < 0:
                raise error(f)
            res = _unpack(self._bres, staged)
            ids = _unpack(self._bids, staged)
            for j, r in enumerate(res):
                if r < 0:
                    self._send_failed(ids[j], r)
        if n <= 0:
            if n == 0 or n == _EINTR:
                return
            raise error(n)
        mv = self._mview
        objs = self._objs
        if n == 1:
            # the common case at low load: one event, no lists, no loop
            t = mv[0]
            if t == EV_DATA:
                o = objs.get(mv[1])
                if o is not None:
                    cb = o._cb
                    if cb is not None:
                        d = self._pview[0:mv[2]]
                        try:
                            cb(o, d)
                        except Exception as exc:
                            self._callback_failed(o, "on_data", exc)
                    elif o._vcb is not None:
                        v = self._pmv[0:mv[2]]
                        try:
                            o._vcb(o, v)
                        except Exception as exc:
                            self._callback_failed(o, "on_data", exc)
                        try:
                            v.release()
                        except BufferError:
                            self._kept_export(o)
                    else:
                        o._on_data(self._pview[0:mv[2]])
            else:
                self._event(self._evs[0], t & ~_NOCOPY)
            ts = self._threadsafe
            while ts:
                cb, args = ts.popleft()
                self._run_callback(cb, args)
            return
        m = mv[0:3 * n].tolist()
        total = m[-1]
        blob = self._pview[0:total] if total else b""
        objs = self._objs
        start = 0
        i = -1
        it = iter(m)
        # the hot path (DATA) inline; the rest one event at a time through
        # the cffi struct, as before
        for t, cid, end in zip(it, it, it):
            i += 1
            if t == EV_DATA:
                o = objs.get(cid)
                if o is not None:
                    cb = o._cb
                    if cb is not None:
                        try:
                            cb(o, blob[start:end])
                        except Exception as exc:
                            self._callback_failed(o, "on_data", exc)
                    elif o._vcb is not None:
                        v = self._pmv[start:end]
                        try:
                            o._vcb(o, v)
                        except Exception as exc:
                            self._callback_failed(o, "on_data", exc)
                        try:
                            v.release()
                        except BufferError:
                            self._kept_export(o)
                    else:
                        o._on_data(blob[start:end])
                start = end
            else:
                self._event(self._evs[i], t & ~_NOCOPY)
        ts = self._threadsafe
        while ts:
            cb, args = ts.popleft()
            self._run_callback(cb, args)

    def _deliver_view(self, o, v) -> None:
        """View mode: o._vcb(o, v) with v a memoryview of the event's bytes
        in the loop's own memory, released as soon as the callback returns
        (a later access raises ValueError; the memory is reused by the next
        poll). send(v) copies the bytes into C's send queue right away."""
        try:
            o._vcb(o, v)
        except Exception as exc:
            self._callback_failed(o, "on_data", exc)
        try:
            v.release()
        except BufferError:
            self._kept_export(o)

    def _kept_export(self, o) -> None:
        # The callback made a buffer export of its view that is still alive
        # (pickle.PickleBuffer, numpy.frombuffer, ...): the view cannot be
        # released, and its memory is reused by the next poll. Report it
        # and close that connection (a bug in the callback, like an
        # exception in it).
        _report(f"on_data callback of {o!r} kept a buffer export of its view",
                BufferError("the view's memory is reused by the next poll"))
        o.abort()

    def _poll_plain(self, timeout_ns: int) -> None:
        n = lib.ringline_loop_poll(self._p, self._evs, self._nev, timeout_ns)
        if n <= 0:
            if n == 0 or n == _EINTR:
                return
            raise error(n)
        evs = self._evs
        for i in range(n):
            e = evs[i]
            self._event(e, e.type)
        ts = self._threadsafe
        while ts:
            cb, args = ts.popleft()
            self._run_callback(cb, args)

    def _event(self, e, t) -> None:
        """One event, read from the cffi struct (all but packed DATA)."""
        objs = self._objs
        if t == EV_DATA:
            o = objs.get(e.id)
            if o is not None:
                cb = o._cb
                if o._vcb is not None:
                    # view mode (view=True or "bulk"): the callback reads
                    # the loop's receive buffer itself, no copy at all
                    self._deliver_view(o, memoryview(_buffer(e.data, e.len)))
                elif cb is not None:
                    try:
                        cb(o, _buffer(e.data, e.len)[:])
                    except Exception as exc:
                        self._callback_failed(o, "on_data", exc)
                else:
                    o._on_data(_buffer(e.data, e.len)[:])
        elif t == EV_FRAME:
            o = objs.get(e.id)
            if o is not None:
                if o._framer == FRAMER_HTTP_HEAD:
                    o._on_frame(_buffer(e.data, e.tag)[:])
                else:
                    o._on_frame(_buffer(e.data, e.len)[:])
        elif t == EV_TIMER:
            tm = self._timers.get(e.id)
            if tm is not None:
                if not tm.repeating:
                    del self._timers[e.id]
                self._run_callback(tm._cb, tm._args)
        elif t == EV_ACCEPTED:
            cid = e.id
            lst = objs.get(e.id2)
            c = Connection(self, cid)
            objs[cid] = c
            if lst is None:
                c.abort()
            else:
                lst._on_accept(c)
        elif t == EV_EOF:
            o = objs.get(e.id)
            if o is not None:
                o._on_eof()
        elif t == EV_WRITABLE:
            o = objs.get(e.id)
            if o is not None:
                o._on_writable()
        elif t == EV_CLOSED:
            o = objs.pop(e.id, None)
            if o is not None:
                o._on_closed(e.res)
        elif t == EV_CONNECTED:
            o = objs.get(e.id)
            if o is not None:
                o._on_connected(e.res)
        elif t == EV_DATAGRAM:
            o = objs.get(e.id)
            if o is not None:
                o._on_datagram(_buffer(e.data, e.len)[:], _addr.from_ptr(e.addr, e.addrlen))
        elif t == EV_SIGNAL:
            self._stopping = True
            signo = e.res
            for h in list(self._signal_handlers):
                self._run_callback(h, (signo,))
        elif t == EV_STOPPED:
            self._stopped = True
            ws, self._stop_waiters = self._stop_waiters, []
            for f in ws:
                f.set_result(None)
        elif t == EV_ERROR:
            o = objs.get(e.id)
            if self.on_error is not None:
                self._run_callback(self.on_error, (o, error(e.res)))
        elif t == EV_CQE:
            f = self._raw.pop(e.tag, None)
            if f is not None:
                f.set_result(e.res)
        elif t == EV_SENT:
            tag = e.tag
            if tag >= _REF_TAG0:
                self._refs.pop(tag, None)  # C is done with those bytes
            else:
                o = objs.get(e.id)
                if o is not None:
                    o._on_sent(tag, e.res)
        # EV_WAKE: nothing; thread-safe callbacks are drained after the batch

    def _run_ready(self):
        ready = self._ready
        n = len(ready)
        while n and ready:
            n -= 1
            ready.popleft()._step()

    def run_until_complete(self, coro: Coroutine, *, stop_deadline: float = 5.0):
        if getattr(_local, "loop", None) is not None:
            raise RuntimeError("a ringline loop is already running in this thread")
        if self._closed:
            raise RuntimeError("loop is closed")
        if threading.get_ident() != self._owner:
            raise RuntimeError("a loop runs only in the thread that created it")
        main = self.spawn(coro, name="main")
        self._main = main
        _local.loop = self
        try:
            ready = self._ready
            while not main._done:
                if ready:
                    self._run_ready()
                    if main._done:
                        break
                self._poll(0 if (ready or self._threadsafe) else -1)
            # a graceful stop in progress (signal, stop()): let it finish, so
            # queued replies are written before the loop goes away
            if self._stopping and not self._stopped:
                import time
                end = time.monotonic() + stop_deadline + 1.0
                while not self._stopped and time.monotonic() < end:
                    self._run_ready()
                    self._poll(0 if ready else 100_000_000)
            self._cancel_all()
        finally:
            _local.loop = None
        return main.result()

    def _cancel_all(self):
        pending = [t for t in self._tasks if not t._done]
        if not pending:
            return
        for t in pending:
            t.cancel()
        for _ in range(100):
            self._run_ready()
            if all(t._done for t in pending):
                break
            self._poll(0 if self._ready else 10_000_000)

    # ---- raw operations on the loop's ring ----
    def _poll_fd(self, fd: int, events: int) -> Future:
        tok = self._next_token
        self._next_token = tok + 2 if tok + 2 < _TOKEN_LIMIT else 1
        check(lib.ringline_op_poll(self._ring, fd, events, 0, tok))
        f = Future()
        self._raw[tok] = f

        def on_cancel(tok=tok):
            if tok in self._raw and self._ring != _NULL:
                self._raw[tok] = None  # the final completion is still to come
                lib.ringline_op_poll_remove(self._ring, tok, tok + 1)
        f._on_cancel = on_cancel
        return f

    # ---- awaitables ----
    def _stop_future(self):
        f = Future()
        if self._stopped:
            f.set_result(None)
        else:
            self._stop_waiters.append(f)
        return f


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------

def _check_view(view):
    if view is not True and view is not False and view != "bulk":
        raise TypeError('view must be True, False or "bulk"')


def _closed_exc(err):
    if err and err < 0:
        return error(err)
    return None


class Connection:
    """A TCP connection owned by the C loop, addressed by a generation-checked
    id: using it after it closed raises OSError, never touches freed memory."""

    __slots__ = ("_loop", "id", "_chunks", "_nbuf", "_rwait", "_eof", "_closed", "_err",
                 "_err_raised", "_frames", "_framer", "_wwait",
                 "_paused", "_cfut", "_mode", "_sent_waits", "_want", "_qbound", "_rf", "_cb", "_vcb", "_sq",
                 "_nowrite", "on_eof", "on_close")

    def __init__(self, loop: Loop, cid: int):
        self._loop = loop
        self.id = cid
        # received bytes not yet taken by recv(): made at the first need (a
        # deque is ~760 bytes; the callback style never needs one)
        self._chunks: Optional[Deque[bytes]] = None
        self._nbuf = 0
        self._rwait: Optional[Future] = None
        self._eof = False
        self._closed = False
        self._err = 0
        self._err_raised = False
        self._frames: Optional[Deque[bytes]] = None
        self._framer = 0
        self._wwait: Optional[Future] = None
        self._paused = False
        self._cfut: Optional[Future] = None
        self._mode = _MODE_EVENTS
        # send_and_wait() futures by tag, and wait_closed() ones keyed by
        # themselves (one lazily made dict for both: rarely used)
        self._sent_waits = None
        self._want = 0       # bytes a recv_exact() is waiting for
        self._qbound = 0     # upper bound of the C send queue (see send())
        self._rf: Optional[Future] = None
        self._cb: Optional[Callable[["Connection", bytes], Any]] = None  # callback style
        self._vcb: Optional[Callable[["Connection", memoryview], Any]] = None  # ... view=True
        self._sq = loop._sq  # the loop's pending sends (never rebound)
        self._nowrite = False  # closed, closing or shut down: send() raises
        self.on_eof: Optional[Callable[["Connection"], Any]] = None
        self.on_close: Optional[Callable[["Connection", Optional[OSError]], Any]] = None

    def __repr__(self):
        return f"<ringline.Connection id={self.id:#x}{' closed' if self._closed else ''}>"

    # ---- events from the loop ----
    def _on_data(self, data: bytes):
        ch = self._chunks
        if ch is None:
            ch = self._chunks = collections.deque()
        ch.append(data)
        self._nbuf += len(data)
        w = self._rwait
        if w is not None:
            self._rwait = None
            # resume the receiving task right here, from the dispatch loop,
            # instead of queueing it for the ready pass: one hop less per
            # message (the task takes the bytes and is back in recv() or
            # elsewhere before the next event)
            w._done = True
            t = w._waiter
            if t is not None:
                w._waiter = None
                t._fut = None
                if t._queued or self._loop._current is not None:
                    t._wake()
                else:
                    t._step()
        if self._nbuf > RECV_HIGH and self._nbuf >= self._want and not self._paused and not self._closed:
            self._paused = True
            lib.ringline_conn_pause(self._loop._p, self.id)

    def _on_frame(self, payload: bytes):
        cb = self._cb
        if cb is not None:
            try:
                cb(self, payload)
            except Exception as exc:
                self._loop._callback_failed(self, "on_data", exc)
            return
        if self._vcb is not None:
            self._loop._deliver_view(self, memoryview(payload))
            return
        fr = self._frames
        if fr is None:
            fr = self._frames = collections.deque()
        fr.append(payload)
        w = self._rwait
        if w is not None:
            self._rwait = None
            w.set_result(None)

    def _on_eof(self):
        self._eof = True
        if self._cb is not None or self._vcb is not None:
            f = self.on_eof
            if f is None:
                self.close()  # the default of the callback style
            else:
                try:
                    f(self)
                except Exception as exc:
                    self._loop._callback_failed(self, "on_eof", exc)
            return
        w = self._rwait
        if w is not None:
            self._rwait = None
            w.set_result(None)

    def _on_writable(self):
        w = self._wwait
        if w is not None:
            self._wwait = None
            w.set_result(None)

    def _on_sent(self, tag, res):
        sw = self._sent_waits
        if sw:
            f = sw.pop(tag, None)
            if f is not None:
                f.set_result(res)

    def _on_connected(self, res):
        f = self._cfut
        if f is not None:
            self._cfut = None
            f.set_result(res)

    def _on_closed(self, res):
        self._closed = True
        self._nowrite = True
        self._eof = True
        if res < 0 and not self._err:
            self._err = res
        f = self.on_close
        if f is not None:
            self.on_close = None
            try:
                f(self, error(res) if res < 0 else None)
            except Exception as exc:
                _report(f"exception in on_close callback of {self!r}", exc)
        for attr in ("_rwait", "_wwait"):
            w = getattr(self, attr)
            if w is not None:
                setattr(self, attr, None)
                w.set_result(None)
        f = self._cfut
        if f is not None:
            self._cfut = None
            f.set_result(res if res < 0 else -errno.ECONNABORTED)
        sw = self._sent_waits
        if sw:
            self._sent_waits = None
            for f in sw.values():
                f.set_result(res if res < 0 else -errno.EPIPE)

    # ---- helpers ----
    def _readable_future(self) -> Future:
        if self._rwait is not None:
            raise RuntimeError("another task is already receiving on this connection")
        f = Future()
        self._rwait = f
        f._on_cancel = self._drop_rwait
        return f

    def _readable(self) -> Future:
        # the same, reusing one Future per connection: only the receiving
        # task ever holds it, and it is reset only once that task resumed
        if self._rwait is not None:
            raise RuntimeError("another task is already receiving on this connection")
        f = self._rf
        if f is None:
            f = self._rf = Future()
            f._on_cancel = self._drop_rwait
        else:
            f._done = False
            f._result = None
            f._on_cancel = self._drop_rwait
        self._rwait = f
        return f

    def _drop_rwait(self):
        self._rwait = None

    def _take(self, n: int) -> bytes:
        chunks = self._chunks
        first = chunks[0]
        if len(first) <= n:
            chunks.popleft()
            if len(chunks) and len(first) < n:
                parts = [first]
                got = len(first)
                while chunks and got < n:
                    c = chunks.popleft()
                    if got + len(c) > n:
                        k = n - got
                        parts.append(c[:k])
                        chunks.appendleft(c[k:])
                        got = n
                        break
                    parts.append(c)
                    got += len(c)
                data = b"".join(parts)
            else:
                data = first
        else:
            data = first[:n]
            chunks[0] = first[n:]
        self._nbuf -= len(data)
        if self._paused and self._nbuf < RECV_LOW and not self._closed:
            self._paused = False
            lib.ringline_conn_resume(self._loop._p, self.id)
        return data

    def _raise_err(self):
        if self._err and not self._err_raised:
            self._err_raised = True
            raise error(self._err)

    # ---- receiving ----
    @types.coroutine
    def recv(self, max: int = 65536) -> Generator[Any, None, bytes]:
        """``await conn.recv()``: up to max bytes; b"" at EOF. Raises the
        error that closed the connection (ConnectionResetError, TimeoutError
        for the idle timeout, ...) once, then returns b"".

        A generator-based coroutine: it hands its wait straight to the
        scheduler, one frame less per message than an ``async def``."""
        if self._chunks and type(max) is int and max > 0:
            return self._take(max)
        if isinstance(max, bool) or not isinstance(max, int):
            raise TypeError("max must be int")
        if max <= 0:
            raise ValueError("max must be > 0")
        if self._mode == _MODE_FRAMED:
            raise ValueError("connection is in framed mode: use recv_frame()")
        while not self._chunks:
            if self._eof:
                self._raise_err()
                return b""
            yield self._readable()
        return self._take(max)

    async def recv_exact(self, n: int) -> bytes:
        """Exactly n bytes; IncompleteReadError (an EOFError, with .partial)
        if the peer closes first."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError("n must be int")
        if n < 0:
            raise ValueError("n must be >= 0")
        if self._mode == _MODE_FRAMED:
            raise ValueError("connection is in framed mode: use recv_frame()")
        self._want = n
        try:
            while self._nbuf < n:
                if self._eof:
                    self._raise_err()
                    partial = self._take(self._nbuf) if self._nbuf else b""
                    raise IncompleteReadError(partial, n)
                if self._paused:  # the Python-side buffer limit must not starve us
                    self._paused = False
                    lib.ringline_conn_resume(self._loop._p, self.id)
                await self._readable_future()
        finally:
            self._want = 0
        if n == 0:
            return b""
        return self._take(n)

    def set_framer(self, framer: int, max_frame: int = 0) -> None:
        """Cut the byte stream into frames in C (FRAMER_LINE, FRAMER_U16BE,
        FRAMER_U32BE, FRAMER_RESP, FRAMER_HTTP_HEAD); read with recv_frame()."""
        if isinstance(framer, bool) or not isinstance(framer, int):
            raise TypeError("framer must be int")
        if framer not in _FRAMERS:
            raise ValueError(f"unknown framer {framer}")
        if isinstance(max_frame, bool) or not isinstance(max_frame, int):
            raise TypeError("max_frame must be int")
        if not 0 <= max_frame < (1 << 56):
            raise ValueError("max_frame out of range")
        # bytes already taken out of C go through the framer in Python first
        self._framer = framer
        if self._frames is None:
            self._frames = collections.deque()
        if self._chunks:
            buf = b"".join(self._chunks)
            self._chunks.clear()
            self._nbuf = 0
            from .ring import frame as _frame
            while buf:
                r = _frame(framer, buf, max_frame)
                if r is None:
                    break
                flen, poff, plen = r
                self._frames.append(buf[:flen] if framer == FRAMER_HTTP_HEAD else buf[poff:poff + plen])
                buf = buf[flen:]
            if buf:
                # an incomplete frame: hand it back to C? not possible; keep
                # it and prepend it when more bytes come (rare: only if
                # the script read raw bytes first)
                raise ValueError("set_framer() after a partial frame was read raw")
        check(lib.ringline_conn_set_mode(self._loop._p, self.id, _MODE_FRAMED, framer | (max_frame << 8)))
        self._mode = _MODE_FRAMED

    async def recv_frame(self) -> Optional[bytes]:
        """The next frame's payload (for FRAMER_HTTP_HEAD: the whole request,
        head + blank line + body), or None at EOF. Set the framer first:
        conn.set_framer() or listen(..., framer=)."""
        fr = self._frames
        if fr:
            return fr.popleft()
        if not self._framer:
            raise ValueError("no framer set: call set_framer() or listen(framer=...)")
        while not fr:
            if self._eof:
                self._raise_err()
                return None
            await self._readable_future()
            fr = self._frames
        return fr.popleft()

    # ---- sending ----
    def send(self, data) -> Awaitable[None]:
        """Queue a copy of data; never blocks. Returns an awaitable:
        ``await conn.send(data)`` waits only while more than the loop's
        high-water mark is queued (the C loop pauses this connection's
        receiving meanwhile, which is the callback style's backpressure: no
        on_data until the peer reads). Raises BrokenPipeError (or the error
        that closed it) once the connection is closed, closing or shut down.

        The bytes go to C with the dispatch round's other sends, in one
        call, before the loop polls again (or before close(), queued, ...)."""
        if self._nowrite:
            self._send_error()
        if type(data) is not bytes:
            if type(data) is memoryview:
                if data.nbytes > _JOIN_MAX and data.contiguous:
                    return self._send_view(data)
                data = data.tobytes()  # ValueError once released
            else:
                data = _as_bytes(data)
        n = len(data)
        if n:
            if n > _MAX_SEND:
                raise ValueError(f"a send is at most {_MAX_SEND} bytes")
            sq = self._sq
            sq.append(self.id)
            sq.append(data)
            q = self._qbound + n
            self._qbound = q
            if q > self._loop._high:
                return self._over_high()
        return _DONE

    def _send_view(self, data: memoryview):
        # A large memoryview (view mode's bulk chunks, or a slice of one):
        # copied once, straight into C's send queue, now, instead of into a
        # bytes object first. The round's earlier sends go first (order).
        n = data.nbytes
        if n > _MAX_SEND:
            raise ValueError(f"a send is at most {_MAX_SEND} bytes")
        loop = self._loop
        if self._sq:
            loop._flush()
            if self._nowrite:  # the flush found the connection gone
                self._send_error()
        r = _conn_send(loop._p, self.id, _from_buffer(data), n, 0)
        if r < 0:
            if r == _EBADF or r == _EPIPE:
                self._nowrite = True
                self._send_error()
            raise error(r)
        q = self._qbound + n
        self._qbound = q
        if q > loop._high:
            return self._over_high()
        return _DONE

    def write(self, data) -> None:
        """Queue a copy of data (never blocks; see send() for backpressure)."""
        self.send(data)

    def _over_high(self):
        # the queue holds at most what was measured last plus what was
        # written since: ask C only when that bound passes the mark
        loop = self._loop
        loop._flush()
        q = lib.ringline_conn_queued(loop._p, self.id)
        self._qbound = q if q > 0 else 0
        if q > loop._high:
            return _Drain(self)
        return _DONE

    def writelines(self, parts) -> None:
        """Queue several pieces as one send (one copy, one queue entry)."""
        if isinstance(parts, (str, bytes)):
            raise TypeError("writelines() takes an iterable of bytes-like pieces")
        parts = list(parts)
        for p in parts:
            if isinstance(p, str):
                raise TypeError("parts must be bytes-like, not str")
        if parts:
            self.send(b"".join(parts))

    def _send_error(self):
        if self._err:
            raise error(self._err)
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    def _flush(self):
        if self._sq:
            self._loop._flush()

    async def drain(self) -> None:
        """Wait until the send queue is below the low-water mark."""
        self._flush()
        while not self._closed:
            q = lib.ringline_conn_queued(self._loop._p, self.id)
            if q < 0 or q <= self._loop._high:
                return
            f = Future()
            self._wwait = f
            f._on_cancel = self._drop_wwait
            await f
        if self._err:
            raise error(self._err)

    def _drop_wwait(self):
        self._wwait = None

    async def send_and_wait(self, data) -> int:
        """Send data and wait until it is all written to the socket; returns
        the byte count (uses a SENT event)."""
        if isinstance(data, str):
            raise TypeError("data must be bytes-like, not str")
        cd = ffi.from_buffer(data)
        self._flush()
        loop = self._loop
        loop._tag = getattr(loop, "_tag", 0) + 1
        tag = loop._tag
        r = lib.ringline_conn_send(loop._p, self.id, cd, len(cd), tag)
        if r < 0:
            if r == _EBADF or r == _EPIPE:
                self._send_error()
            raise error(r)
        f = Future()
        if self._sent_waits is None:
            self._sent_waits = {}
        self._sent_waits[tag] = f
        res = await f
        if res < 0:
            raise error(res)
        return res

    @property
    def queued(self) -> int:
        """Bytes queued in C and not yet written."""
        self._flush()
        return check(lib.ringline_conn_queued(self._loop._p, self.id))

    # ---- callback style ----
    def on_data(self, fn: Optional[Callable[["Connection", bytes], Any]], *,
                view: Union[bool, str] = False) -> None:
        """Callback style for this connection: fn(conn, data) is called from
        the loop for every chunk received (for a framed connection: every
        frame's payload), bytes the script already buffered first. fn must
        not block; conn.send() queues without blocking. An exception in fn
        is reported and aborts this connection only. on_data(None) hands the
        connection back to recv().

        view=True: data is a memoryview of the loop's receive memory instead
        of a bytes copy. IT IS VALID ONLY DURING THE CALL: it is released
        when fn returns (any later use raises ValueError), and slices of it
        must not be kept either (they see whatever that memory holds
        later). Copy what you keep (bytes(data[a:b])). conn.send(data) or a
        slice of it copies once, straight into C's send queue.
        view="bulk": the same for chunks the loop reads in place (above 16
        KiB, RINGLINE_PACKED_COPY_MAX, or past the batch's copy area); the
        small chunks of a batch, copied once anyway, come as bytes (cheaper
        than a view for them). fn must then accept both."""
        if fn is not None and not callable(fn):
            raise TypeError("on_data needs a callable or None")
        _check_view(view)
        if fn is not None and self._rwait is not None:
            raise RuntimeError("a task is receiving on this connection")
        # view=True: only _vcb; "bulk": both (packed small chunks take the
        # bytes path, chunks read in place the view path)
        self._cb = None if view is True else fn
        self._vcb = fn if view else None
        if fn is None:
            return
        if self._paused:
            self._paused = False
            if not self._closed:
                lib.ringline_conn_resume(self._loop._p, self.id)
        pending = []
        if self._chunks:
            pending.append(b"".join(self._chunks))
            self._chunks.clear()
            self._nbuf = 0
        if self._frames:
            pending.extend(self._frames)
            self._frames.clear()
        for d in pending:
            if (self._vcb if view is True else self._cb) is not fn or self._closed:
                break
            if view is True:
                self._loop._deliver_view(self, memoryview(d))
                continue
            try:
                fn(self, d)
            except Exception as exc:
                self._loop._callback_failed(self, "on_data", exc)
                return

    # ---- closing ----
    def shutdown(self) -> None:
        """shutdown(SHUT_WR) once everything queued was written."""
        self._flush()
        check(lib.ringline_conn_shutdown(self._loop._p, self.id))
        self._nowrite = True

    def close(self) -> None:
        """Close once the send queue drained (idempotent)."""
        if self._closed:
            return
        self._flush()
        self._nowrite = True
        r = lib.ringline_conn_close(self._loop._p, self.id)
        if r < 0 and r != _EBADF:
            raise error(r)

    def abort(self) -> None:
        """Close now, dropping queued bytes (RST if any were unsent)."""
        if self._closed:
            return
        self._nowrite = True
        lib.ringline_conn_abort(self._loop._p, self.id)

    async def wait_closed(self) -> None:
        if self._closed:
            return
        f = Future()
        sw = self._sent_waits
        if sw is None:
            sw = self._sent_waits = {}
        sw[f] = f  # resolved by _on_closed (its result is not used)
        await f

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

    def pause(self) -> None:
        check(lib.ringline_conn_pause(self._loop._p, self.id))

    def resume(self) -> None:
        check(lib.ringline_conn_resume(self._loop._p, self.id))

    @property
    def peer(self):
        """The peer's address, (host, port)."""
        ss = ffi.new("struct sockaddr_storage *")
        ln = ffi.new("socklen_t *")
        check(lib.ringline_conn_peer(self._loop._p, self.id, ss, ln))
        return _addr.from_ptr(ffi.cast("struct sockaddr *", ss), ln[0])

    # ---- hand-off to C hot paths ----
    def _leftovers(self) -> bytes:
        self._flush()
        data = b""
        if self._chunks:
            data = b"".join(self._chunks)
            self._chunks.clear()
        self._nbuf = 0
        if self._frames:
            raise ValueError("frames not yet read; cannot switch mode")
        return data

    async def echo(self) -> None:
        """Hand the connection to C: every byte received is sent back. Returns
        when the connection closed."""
        left = self._leftovers()
        if left:
            self.write(left)
            self._loop._flush()
        if self._paused:
            self._paused = False
            lib.ringline_conn_resume(self._loop._p, self.id)
        check(lib.ringline_conn_set_mode(self._loop._p, self.id, _MODE_ECHO, 0))
        self._mode = _MODE_ECHO
        await self.wait_closed()

    async def forward(self, other: "Connection") -> None:
        """Splice two connections in C, both directions; returns when both
        closed."""
        if not isinstance(other, Connection):
            raise TypeError("other must be a Connection")
        if other is self:
            raise ValueError("cannot forward a connection to itself")
        a, b = self._leftovers(), other._leftovers()
        if a:
            other.write(a)
        if b:
            self.write(b)
        self._loop._flush()
        p = self._loop._p
        for c in (self, other):
            if c._paused:
                c._paused = False
                lib.ringline_conn_resume(p, c.id)
        check(lib.ringline_conn_set_mode(p, self.id, _MODE_FORWARD, other.id))
        check(lib.ringline_conn_set_mode(p, other.id, _MODE_FORWARD, self.id))
        self._mode = other._mode = _MODE_FORWARD
        await self.wait_closed()
        await other.wait_closed()


# ---------------------------------------------------------------------------
# Listeners
# ---------------------------------------------------------------------------

class Server:
    """A listening socket; ``await server.accept()`` or ``async for conn in server``."""

    def __init__(self, loop: Loop, lid: int, host: str):
        self._loop = loop
        self.id = lid
        self.host = host
        self._queue: Deque[Connection] = collections.deque()
        self._await: Optional[Future] = None
        self._closed = False
        self._handler = None
        self._cwaits = []
        self._framer = 0
        self._max_frame = 0
        self._cb = None
        self._view = False
        # callback style (server.on_data): copied to each accepted connection
        self.on_connect: Optional[Callable[[Connection], Any]] = None
        self.on_eof: Optional[Callable[[Connection], Any]] = None
        self.on_close: Optional[Callable[[Connection, Optional[OSError]], Any]] = None
        self.port = check(lib.ringline_listener_port(loop._p, lid))

    def on_data(self, fn: Callable[[Connection, bytes], Any], *, view: Union[bool, str] = False) -> None:
        """Callback style, the leanest path: every accepted connection calls
        fn(conn, data) from the loop for each chunk received (each frame's
        payload with framer=). Set server.on_connect(conn),
        server.on_eof(conn) (default: conn.close()) and
        server.on_close(conn, err) first if wanted. fn must not block;
        conn.send(data) queues a copy (replies of a dispatch round reach C
        in one call). An exception in a callback is reported and aborts that
        connection only. Connections already queued for accept() switch too.

        view=True: data is a memoryview valid ONLY DURING THE CALL (see
        Connection.on_data): no copy per chunk received, and send(data)
        copies once straight into C's send queue. view="bulk": memoryviews
        for large chunks only, bytes for small ones."""
        if not callable(fn):
            raise TypeError("on_data needs a callable")
        _check_view(view)
        self._cb = fn
        self._view = view
        while self._queue:
            self._adopt(self._queue.popleft())

    def _adopt(self, conn: Connection):
        conn.on_eof = self.on_eof
        conn.on_close = self.on_close
        v = self._view
        if v:
            conn._vcb = self._cb
        if v is not True:
            conn._cb = self._cb
        f = self.on_connect
        if f is not None:
            try:
                f(conn)
            except Exception as exc:
                self._loop._callback_failed(conn, "on_connect", exc)

    def __repr__(self):
        return f"<ringline.Server {self.host}:{self.port}{' closed' if self._closed else ''}>"

    @property
    def sockname(self):
        return (self.host, self.port)

    def _on_accept(self, conn: Connection):
        if self._framer:
            conn._framer = self._framer
            conn._mode = _MODE_FRAMED
            conn._frames = collections.deque()
        if self._cb is not None:
            self._adopt(conn)
            return
        h = self._handler
        if h is not None:
            self._loop.spawn(h(conn), name=f"conn-{conn.id:#x}")
            return
        self._queue.append(conn)
        w = self._await
        if w is not None:
            self._await = None
            w.set_result(None)

    def _on_closed(self, res):
        self._closed = True
        w = self._await
        if w is not None:
            self._await = None
            w.set_result(None)
        for f in self._cwaits:
            f.set_result(None)
        self._cwaits = []

    def _drop_wait(self):
        self._await = None

    async def accept(self) -> Connection:
        """The next connection. ConnectionAbortedError once the server is
        closed (by close(), ringline.stop() or a signal)."""
        while not self._queue:
            if self._closed:
                raise ConnectionAbortedError(errno.ECONNABORTED, "server closed")
            if self._await is not None:
                raise RuntimeError("another task is already accepting")
            f = Future()
            f._on_cancel = self._drop_wait
            self._await = f
            await f
        return self._queue.popleft()

    def __aiter__(self):
        return self

    async def __anext__(self) -> Connection:
        try:
            return await self.accept()
        except ConnectionAbortedError:
            raise StopAsyncIteration from None

    async def serve(self, handler: Callable[[Connection], Coroutine]) -> None:
        """Spawn handler(conn) for every connection until the server closes."""
        if not callable(handler):
            raise TypeError("handler must be an async function")
        self._handler = handler
        while self._queue:
            c = self._queue.popleft()
            self._loop.spawn(handler(c))
        await self.wait_closed()

    def close(self) -> None:
        """Stop accepting (the port is free again at once)."""
        if self._closed:
            return
        r = lib.ringline_listener_close(self._loop._p, self.id)
        if r < 0 and r != _EBADF:
            raise error(r)
        while self._queue:
            self._queue.popleft().abort()

    async def wait_closed(self) -> None:
        if self._closed:
            return
        f = Future()
        self._cwaits.append(f)
        await f

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# UDP
# ---------------------------------------------------------------------------

class UDPSocket:
    """A UDP socket in the loop; datagrams queue (up to max_queue, then the
    oldest are dropped, as UDP may)."""

    max_queue = 4096

    def __init__(self, loop: Loop, uid: int, host: str):
        self._loop = loop
        self.id = uid
        self.host = host
        self._queue: Deque[Tuple[bytes, Any]] = collections.deque()
        self._await: Optional[Future] = None
        self._closed = False
        self.dropped = 0
        self.port = check(lib.ringline_udp_port(loop._p, uid))

    def __repr__(self):
        return f"<ringline.UDPSocket {self.host}:{self.port}{' closed' if self._closed else ''}>"

    @property
    def sockname(self):
        return (self.host, self.port)

    def _on_datagram(self, data, addr):
        q = self._queue
        if len(q) >= self.max_queue:
            q.popleft()
            self.dropped += 1
        q.append((data, addr))
        w = self._await
        if w is not None:
            self._await = None
            w.set_result(None)

    def _on_closed(self, res):
        self._closed = True
        w = self._await
        if w is not None:
            self._await = None
            w.set_result(None)

    def _drop_wait(self):
        self._await = None

    async def recvfrom(self) -> Tuple[bytes, Any]:
        """(data, (host, port)) of the next datagram."""
        while not self._queue:
            if self._closed:
                raise ebadf("UDP socket closed")
            if self._await is not None:
                raise RuntimeError("another task is already receiving")
            f = Future()
            f._on_cancel = self._drop_wait
            self._await = f
            await f
        return self._queue.popleft()

    def sendto(self, data, addr) -> None:
        if isinstance(data, str):
            raise TypeError("data must be bytes-like, not str")
        raw = _addr.pack(addr)
        cd = ffi.from_buffer(data)
        check(lib.ringline_udp_sendto(self._loop._p, self.id, cd, len(cd),
                                      ffi.cast("struct sockaddr *", ffi.from_buffer(raw)), len(raw)))

    def close(self) -> None:
        if self._closed:
            return
        r = lib.ringline_udp_close(self._loop._p, self.id)
        if r < 0 and r != _EBADF:
            raise error(r)

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# Module-level API (the running loop)
# ---------------------------------------------------------------------------

def run(main: Coroutine[Any, Any, T], *, handle_signals: bool = False, stop_deadline: float = 5.0,
        **loop_options) -> T:
    """Create a loop, run main() to completion, close the loop.

    handle_signals=True: SIGINT/SIGTERM start a graceful stop (listeners
    close, queued bytes drain for up to stop_deadline seconds, connections
    close); run() then returns main's result. loop_options go to Loop()."""
    if not _is_coro(main):
        raise TypeError(f"run() needs a coroutine, not {type(main).__name__}")
    if getattr(_local, "loop", None) is not None:
        main.close()
        raise RuntimeError("ringline.run() cannot be called from a running loop")
    try:
        loop = Loop(**loop_options)
    except BaseException:
        main.close()
        raise
    try:
        if handle_signals:
            loop.handle_signals(stop_deadline)
        return loop.run_until_complete(main, stop_deadline=stop_deadline)
    finally:
        loop.close()


def spawn(coro: Coroutine, *, name: Optional[str] = None) -> Task:
    """Run coro concurrently; returns its Task."""
    try:
        loop = get_loop()
    except RuntimeError:
        if _is_coro(coro):
            coro.close()
        raise
    return loop.spawn(coro, name=name)


def current_task() -> Optional[Task]:
    return get_loop()._current


def sleep(seconds: float) -> Awaitable[None]:
    """Suspend the task for seconds (0: just let others run)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError("seconds must be a number")
    if not seconds >= 0:
        raise ValueError("seconds must be >= 0")
    if seconds == 0:
        return _Sleep()
    return _sleep(seconds)


async def _sleep(seconds):
    loop = get_loop()
    f = Future()
    t = loop.call_later(seconds, f.set_result, None)
    f._on_cancel = t.cancel
    await f


async def wait_for(aw: Awaitable[T], timeout: Optional[float]) -> T:
    """Await aw; TimeoutError (and aw cancelled) after timeout seconds."""
    if timeout is None:
        return await aw
    loop = get_loop()
    task = loop._current
    if task is None:
        raise RuntimeError("wait_for() outside a task")
    if isinstance(aw, Task):
        inner = aw
        tok = _Timeout()
        t = loop.call_later(timeout, task.cancel, tok)
        try:
            return await inner
        except _Timeout as e:
            if e is tok:
                inner.cancel()
                raise TimeoutError(errno.ETIMEDOUT, "timed out") from None
            raise
        finally:
            t.cancel()
    tok = _Timeout()
    t = loop.call_later(_check_timeout(timeout), task.cancel, tok)
    try:
        return await aw
    except _Timeout as e:
        if e is tok:
            raise TimeoutError(errno.ETIMEDOUT, "timed out") from None
        raise
    finally:
        t.cancel()


def _check_timeout(timeout):
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number or None")
    if not timeout >= 0:
        raise ValueError("timeout must be >= 0")
    return timeout


def call_later(delay: float, callback: Callable, *args) -> Timer:
    return get_loop().call_later(delay, callback, *args)


def call_at(when: float, callback: Callable, *args) -> Timer:
    return get_loop().call_at(when, callback, *args)


def call_every(interval: float, callback: Callable, *args) -> Timer:
    return get_loop().call_every(interval, callback, *args)


def now() -> float:
    """CLOCK_MONOTONIC seconds, the clock of call_at()."""
    return lib.ringline_now_ns() / 1e9


def on_signal(handler: Callable[[int], None]) -> None:
    """Call handler(signo) when SIGINT/SIGTERM arrive (run(handle_signals=True))."""
    if not callable(handler):
        raise TypeError("handler must be callable")
    get_loop()._signal_handlers.append(handler)


def stop(deadline: float = 5.0) -> None:
    """Begin a graceful stop of the running loop."""
    get_loop().stop(deadline)


async def stopped() -> None:
    """Wait until a graceful stop finished."""
    await get_loop()._stop_future()


def _fileno(fileobj) -> int:
    fd = fileobj if isinstance(fileobj, int) and not isinstance(fileobj, bool) else None
    if fd is None:
        if not hasattr(fileobj, "fileno"):
            raise TypeError(f"need an fd or an object with fileno(), not {type(fileobj).__name__}")
        fd = fileobj.fileno()
    if not 0 <= fd < (1 << 30):
        raise ValueError(f"bad file descriptor {fd}")
    return fd


async def wait_readable(fileobj) -> int:
    """Wait until fd (or an object with fileno()) is readable: a one-shot
    io_uring poll on the loop's ring. Returns the poll revents."""
    fd = _fileno(fileobj)
    return await get_loop()._poll_fd(fd, 0x001 | 0x008 | 0x010)


async def wait_writable(fileobj) -> int:
    """Wait until fd is writable (io_uring poll); returns the revents."""
    fd = _fileno(fileobj)
    return await get_loop()._poll_fd(fd, 0x004 | 0x008 | 0x010)


def _flags_mode(framer, max_frame):
    if framer is None:
        return None
    if isinstance(framer, bool) or not isinstance(framer, int):
        raise TypeError("framer must be a FRAMER_* int")
    if framer not in _FRAMERS:
        raise ValueError(f"unknown framer {framer}")
    if isinstance(max_frame, bool) or not isinstance(max_frame, int) or not 0 <= max_frame < (1 << 56):
        raise ValueError("max_frame out of range")
    return framer | (max_frame << 8)


async def listen(host: str = "127.0.0.1", port: int = 0, *, backlog: int = 511, reuseport: bool = False,
                 framer: Optional[int] = None, max_frame: int = 0) -> Server:
    """Listen on host:port (port 0 picks one: server.port). framer= makes
    accepted connections start framed (read them with recv_frame())."""
    loop = get_loop()
    port = _addr.check_port(port)
    if isinstance(backlog, bool) or not isinstance(backlog, int):
        raise TypeError("backlog must be int")
    if backlog <= 0:
        raise ValueError("backlog must be > 0")
    mode_arg = _flags_mode(framer, max_frame)
    h = _addr.resolve_host(host, port)
    out = ffi.new("ringline_id_t *")
    check(lib.ringline_listen(loop._p, h.encode(), port, backlog,
                              lib.RINGLINE_LISTEN_REUSEPORT if reuseport else 0, out))
    s = Server(loop, out[0], h)
    loop._objs[s.id] = s
    if mode_arg is not None:
        try:
            check(lib.ringline_listener_set_mode(loop._p, s.id, _MODE_FRAMED, mode_arg))
        except OSError:
            s.close()
            raise
        s._framer = framer
        s._max_frame = max_frame
    return s


async def connect(host: str, port: int, *, timeout: Optional[float] = None) -> Connection:
    """Open a TCP connection; TimeoutError after timeout seconds,
    ConnectionRefusedError etc. on failure."""
    loop = get_loop()
    port = _addr.check_port(port)
    if port == 0:
        raise ValueError("port must be 1-65535")
    ms = 0
    if timeout is not None:
        ms = max(1, _ns(_check_timeout(timeout), "timeout") // 1000000)
    h = _addr.resolve_host(host, port)
    out = ffi.new("ringline_id_t *")
    check(lib.ringline_connect(loop._p, h.encode(), port, ms, out))
    c = Connection(loop, out[0])
    loop._objs[c.id] = c
    f = Future()
    c._cfut = f
    try:
        res = await f
    except BaseException:
        c._cfut = None
        c.abort()
        raise
    if res < 0:
        raise error(res, f"{host}:{port}")
    return c


async def udp_bind(host: str = "127.0.0.1", port: int = 0) -> UDPSocket:
    """A UDP socket bound to host:port (port 0 picks one)."""
    loop = get_loop()
    port = _addr.check_port(port)
    h = _addr.resolve_host(host, port, stream=False)
    out = ffi.new("ringline_id_t *")
    check(lib.ringline_udp_bind(loop._p, h.encode(), port, out))
    u = UDPSocket(loop, out[0], h)
    loop._objs[u.id] = u
    return u


def stats() -> Dict[str, int]:
    """The running loop's counters (ringline_loop_stats)."""
    loop = get_loop()
    st = ffi.new("ringline_stats_t *")
    check(lib.ringline_loop_stats(loop._p, st, ffi.sizeof("ringline_stats_t")))
    return {f: int(getattr(st, f)) for f, _ in ffi.typeof("ringline_stats_t").fields}
