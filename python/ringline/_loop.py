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
from typing import Any, Awaitable, Callable, Coroutine, Deque, Dict, Generator, Optional, Tuple, TypeVar

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
_buffer = ffi.buffer
_NULL = ffi.NULL

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
        for o in list(self._objs.values()):
            o._on_closed(-errno.ECONNABORTED)
        self._objs.clear()
        self._timers.clear()
        if p != _NULL:
            lib.ringline_loop_destroy(p)
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
        check(lib.ringline_loop_stop(self._p, _ns(deadline, "deadline") // 1000000))

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

    # ---- the event pump ----
    def _poll(self, timeout_ns: int) -> None:
        n = lib.ringline_loop_poll(self._p, self._evs, self._nev, timeout_ns)
        if n <= 0:
            if n == 0 or n == _EINTR:
                return
            raise error(n)
        evs = self._evs
        objs = self._objs
        for i in range(n):
            e = evs[i]
            t = e.type
            if t == EV_DATA:
                o = objs.get(e.id)
                if o is not None:
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
                o = objs.get(e.id)
                if o is not None:
                    o._on_sent(e.tag, e.res)
            # EV_WAKE: nothing; thread-safe callbacks are drained below
        ts = self._threadsafe
        while ts:
            cb, args = ts.popleft()
            self._run_callback(cb, args)

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

def _closed_exc(err):
    if err and err < 0:
        return error(err)
    return None


class Connection:
    """A TCP connection owned by the C loop, addressed by a generation-checked
    id: using it after it closed raises OSError, never touches freed memory."""

    __slots__ = ("_loop", "id", "_chunks", "_nbuf", "_rwait", "_eof", "_closed", "_err",
                 "_err_raised", "_frames", "_framer", "_max_frame", "_wwait", "_cwaits",
                 "_paused", "_cfut", "_mode", "_sent_waits", "_want", "_qbound", "_rf", "__weakref__")

    def __init__(self, loop: Loop, cid: int):
        self._loop = loop
        self.id = cid
        self._chunks: Deque[bytes] = collections.deque()
        self._nbuf = 0
        self._rwait: Optional[Future] = None
        self._eof = False
        self._closed = False
        self._err = 0
        self._err_raised = False
        self._frames: Optional[Deque[bytes]] = None
        self._framer = 0
        self._max_frame = 0
        self._wwait: Optional[Future] = None
        self._cwaits = None
        self._paused = False
        self._cfut: Optional[Future] = None
        self._mode = _MODE_EVENTS
        self._sent_waits = None
        self._want = 0       # bytes a recv_exact() is waiting for
        self._qbound = 0     # upper bound of the C send queue (see send())
        self._rf: Optional[Future] = None

    def __repr__(self):
        return f"<ringline.Connection id={self.id:#x}{' closed' if self._closed else ''}>"

    # ---- events from the loop ----
    def _on_data(self, data: bytes):
        self._chunks.append(data)
        self._nbuf += len(data)
        w = self._rwait
        if w is not None:
            self._rwait = None
            w.set_result(None)
        if self._nbuf > RECV_HIGH and self._nbuf >= self._want and not self._paused and not self._closed:
            self._paused = True
            lib.ringline_conn_pause(self._loop._p, self.id)

    def _on_frame(self, payload: bytes):
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
        self._eof = True
        if res < 0 and not self._err:
            self._err = res
        for attr in ("_rwait", "_wwait"):
            w = getattr(self, attr)
            if w is not None:
                setattr(self, attr, None)
                w.set_result(None)
        f = self._cfut
        if f is not None:
            self._cfut = None
            f.set_result(res if res < 0 else -errno.ECONNABORTED)
        cw = self._cwaits
        if cw:
            self._cwaits = None
            for f in cw:
                f.set_result(None)
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
        self._max_frame = max_frame
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
    def write(self, data) -> None:
        """Queue a copy of data (never blocks; see send() for backpressure)."""
        if type(data) is bytes:
            n = len(data)
            r = lib.ringline_conn_send(self._loop._p, self.id, data, n, 0)
        else:
            if isinstance(data, str):
                raise TypeError("data must be bytes-like, not str")
            cd = ffi.from_buffer(data)
            n = len(cd)
            r = lib.ringline_conn_send(self._loop._p, self.id, cd, n, 0)
        if r < 0:
            self._send_error(r)
        self._qbound += n

    def writelines(self, parts) -> None:
        """Queue several pieces as one send (one copy, one queue entry)."""
        parts = list(parts)
        if not parts:
            return
        if len(parts) > 1024:
            self.write(b"".join(parts))
            return
        iov = ffi.new("struct iovec[]", len(parts))
        keep = []
        for i, p in enumerate(parts):
            if isinstance(p, str):
                raise TypeError("parts must be bytes-like, not str")
            cd = ffi.from_buffer(p)
            keep.append(cd)
            iov[i].iov_base = cd
            iov[i].iov_len = len(cd)
        r = lib.ringline_conn_sendv(self._loop._p, self.id, iov, len(parts), 0)
        if r < 0:
            self._send_error(r)
        self._qbound += sum(len(k) for k in keep)

    def _send_error(self, r):
        if self._closed or r == _EBADF:
            if self._err:
                raise error(self._err)
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
        raise error(r)

    def send(self, data) -> Awaitable[None]:
        """``await conn.send(data)``: queue data; waits only while more than
        the loop's high-water mark is queued (the C loop pauses this
        connection's receiving meanwhile)."""
        self.write(data)
        # the queue holds at most what was measured last plus what was
        # written since: ask C only when that bound passes the mark
        if self._qbound > self._loop._high:
            q = lib.ringline_conn_queued(self._loop._p, self.id)
            self._qbound = q if q > 0 else 0
            if q > self._loop._high:
                return self.drain()
        return _DONE

    async def drain(self) -> None:
        """Wait until the send queue is below the low-water mark."""
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
        loop = self._loop
        loop._tag = getattr(loop, "_tag", 0) + 1
        tag = loop._tag
        r = lib.ringline_conn_send(loop._p, self.id, cd, len(cd), tag)
        if r < 0:
            self._send_error(r)
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
        return check(lib.ringline_conn_queued(self._loop._p, self.id))

    # ---- closing ----
    def shutdown(self) -> None:
        """shutdown(SHUT_WR) once everything queued was written."""
        check(lib.ringline_conn_shutdown(self._loop._p, self.id))

    def close(self) -> None:
        """Close once the send queue drained (idempotent)."""
        if self._closed:
            return
        r = lib.ringline_conn_close(self._loop._p, self.id)
        if r < 0 and r != _EBADF:
            raise error(r)

    def abort(self) -> None:
        """Close now, dropping queued bytes (RST if any were unsent)."""
        if self._closed:
            return
        lib.ringline_conn_abort(self._loop._p, self.id)

    async def wait_closed(self) -> None:
        if self._closed:
            return
        f = Future()
        if self._cwaits is None:
            self._cwaits = [f]
        else:
            self._cwaits.append(f)
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
        self.port = check(lib.ringline_listener_port(loop._p, lid))

    def __repr__(self):
        return f"<ringline.Server {self.host}:{self.port}{' closed' if self._closed else ''}>"

    @property
    def sockname(self):
        return (self.host, self.port)

    def _on_accept(self, conn: Connection):
        if self._framer:
            conn._framer = self._framer
            conn._max_frame = self._max_frame
            conn._mode = _MODE_FRAMED
            conn._frames = collections.deque()
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
