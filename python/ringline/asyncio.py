"""An asyncio event loop backed by ringline (io_uring), so unmodified asyncio
code runs on it::

    import asyncio, ringline.asyncio

    with asyncio.Runner(loop_factory=ringline.asyncio.new_event_loop) as runner:
        runner.run(main())

    # or, process-wide:
    ringline.asyncio.install()
    asyncio.run(main())

Design: ``RinglineEventLoop`` is an ``asyncio.BaseEventLoop`` (so call_soon,
call_later/call_at, run_in_executor, tasks, getaddrinfo, start_server /
open_connection streams, sendfile fallback ... are asyncio's own code) whose
"selector" is the C event loop: each iteration makes one
``ringline_loop_poll`` call that waits (up to the next timer) and returns a
batch of events, which are turned into Protocol calls right there. TCP
connections and listeners, UDP sockets, timers' wake-ups and cross-thread
wake-ups all live in C: multishot accept/recv into provided buffers, ordered
send queues, backpressure. Received bytes are copied out of the batch
immediately (into the protocol's own buffer for BufferedProtocol), and
asyncio's streams keep whatever a cancelled task had not read yet, so
cancellation never loses received bytes.

TLS (ssl=, start_tls) is asyncio's own sslproto layered over a ringline
transport. Unix sockets and sockets made elsewhere (sock=, local_addr=,
connect_accepted_socket, the sockets of asyncio's own create_server) are
adopted into C (ringline_conn_adopt / ringline_listener_adopt, any address
family).

Not supported (raise NotImplementedError naming the alternative):
add_reader / add_writer and their removers, subprocesses, pipes, Unix
datagram sockets, create_datagram_endpoint(sock=). The sock_* coroutines
work on any non-blocking socket: each wait is a one-shot IORING_OP_POLL_ADD
on the loop's own ring (a raw operation whose completion comes back as a
RINGLINE_EV_CQE event), and the byte transfer itself is a non-blocking
syscall made when the task resumes; a cancelled sock_recv therefore never
consumed any bytes.
"""
from __future__ import annotations

import asyncio as _aio
import errno
import heapq
import os
import signal
import socket
import stat
import threading
import warnings
from asyncio import base_events, events, protocols, transports, trsock

try:
    import ssl as _ssl
    from asyncio import sslproto
except ImportError:  # pragma: no cover - Python without ssl
    _ssl = None
    sslproto = None

from . import _addr
from ._errors import check, error
from ._ffi import ffi, lib

__all__ = ["RinglineEventLoop", "new_event_loop", "install", "EventLoopPolicy"]

_EV_ACCEPTED = lib.RINGLINE_EV_ACCEPTED
_EV_CONNECTED = lib.RINGLINE_EV_CONNECTED
_EV_DATA = lib.RINGLINE_EV_DATA
_EV_EOF = lib.RINGLINE_EV_EOF
_EV_WRITABLE = lib.RINGLINE_EV_WRITABLE
_EV_CLOSED = lib.RINGLINE_EV_CLOSED
_EV_DATAGRAM = lib.RINGLINE_EV_DATAGRAM
_EV_ERROR = lib.RINGLINE_EV_ERROR
_EV_SENT = lib.RINGLINE_EV_SENT
_EV_CQE = lib.RINGLINE_EV_CQE
_POLLIN = 0x001
_POLLOUT = 0x004
_TOKEN_LIMIT = 1 << 55   # raw operations on the loop's ring use tokens below
_EINTR = -errno.EINTR
_EBADF = -errno.EBADF
_NULL = ffi.NULL
_buffer = ffi.buffer
_unpack = ffi.unpack
_conn_send = lib.ringline_conn_send
# The batched entry points (core/loop_batch.c): one foreign call per poll
# that also copies every DATA payload into one buffer, and one per round of
# sends. An older libringline without them works through the per-event and
# per-send calls (cffi raises AttributeError or ffi.error for a missing
# symbol, depending on the version).
try:
    _poll_packed = lib.ringline_loop_poll_packed
    _send_batch = lib.ringline_conn_send_batch
    _NOCOPY = lib.RINGLINE_PACKED_NOCOPY
except (AttributeError, ffi.error):  # pragma: no cover - depends on the library found
    _poll_packed = _send_batch = None
    _NOCOPY = 0

# the C loop's send-queue marks: asyncio's default write-buffer limits
_C_HIGH = 64 * 1024
_C_LOW = 16 * 1024


_PACK_CAP = 32 * 1024  # the packed poll's payload buffer (see _c())
# writes of at least this many bytes skip the round's batch (see write())
_DIRECT_SEND = 16 * 1024
_MIN_SCHEDULED = base_events._MIN_SCHEDULED_TIMER_HANDLES
_MIN_CANCELLED_FRACTION = base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION
_MAX_SELECT = base_events.MAXIMUM_SELECT_TIMEOUT


def _unsupported(what, why):
    raise NotImplementedError(f"ringline.asyncio: {what} is not supported: {why}")


class _FakeSocket:
    """What Server.sockets / get_extra_info('socket') give: enough for
    getsockname() (the common use: finding the port picked for port 0)."""

    def __init__(self, family, addr, peer=None):
        self.family = family
        self.type = socket.SOCK_STREAM
        self.proto = 0
        self._addr = addr
        self._peer = peer

    def getsockname(self):
        return self._addr

    def getpeername(self):
        if self._peer is None:
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return self._peer

    def fileno(self):
        return -1

    def __repr__(self):
        return f"<ringline socket {self._addr}>"


def _family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# ---------------------------------------------------------------------------
# Transports
# ---------------------------------------------------------------------------

class _TCPTransport(transports._FlowControlMixin, transports.Transport):
    _sendfile_compatible = base_events.constants._SendfileMode.FALLBACK
    # BaseEventLoop.start_tls layers sslproto.SSLProtocol over any transport
    # with set_protocol / pause_reading / resume_reading, which this has
    _start_tls_compatible = True

    def __init__(self, loop: "RinglineEventLoop", cid, extra=None):
        super().__init__(extra, loop)
        self._rl = loop
        self._id = cid
        self._protocol = None
        self._buffered = False
        self._closing = False
        self._aborted = False
        self._lost = False
        self._paused_reading = False
        self._pending = None      # bytes received while reading was paused
        self._eof_pending = False
        self._made = False
        self._resume_timer = None
        self._server = None
        self._closed_early = None  # CLOSED arrived before connection_made
        self._qbound = 0           # upper bound of the C send queue
        self._lost_exc = None      # what _force_close() hands connection_lost
        # the dispatch loop hands DATA straight to _dr (the protocol's
        # data_received) while _fast holds: connection made, plain Protocol,
        # reading, not closing, nothing held back
        self._fast = False
        self._dr = None
        self._sock = None          # a dup of the fd for get_extra_info('socket')

    def __repr__(self):
        return f"<ringline TCPTransport id={self._id:#x}{' closing' if self._closing else ''}>"

    # protocol
    def set_protocol(self, protocol):
        self._protocol = protocol
        self._buffered = isinstance(protocol, protocols.BufferedProtocol)
        self._dr = None if self._buffered else protocol.data_received
        self._refast()

    def _refast(self):
        self._fast = (self._made and not self._buffered and not self._paused_reading
                      and not self._closing and not self._pending and not self._eof_pending)

    def get_protocol(self):
        return self._protocol

    def _start(self, protocol, waiter=None):
        self.set_protocol(protocol)
        try:
            protocol.connection_made(self)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(exc, "connection_made() failed")
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            return
        self._made = True
        self._refast()
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if (self._pending or self._eof_pending) and not self._paused_reading:
            self._rl.call_soon(self._flush_pending)
        if self._closed_early is not None:
            res, self._closed_early = self._closed_early, None
            self._lost = False
            self._on_closed(res)

    # ---- events ----
    def _deliver(self, data):
        p = self._protocol
        try:
            if self._buffered:
                mv = memoryview(data)
                while mv:
                    buf = p.get_buffer(len(mv))
                    n = len(buf)
                    if not n:
                        raise RuntimeError("get_buffer() returned an empty buffer")
                    if n > len(mv):
                        n = len(mv)
                    memoryview(buf)[:n] = mv[:n]
                    p.buffer_updated(n)
                    mv = mv[n:]
            else:
                p.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(exc, "protocol data_received() failed")

    def _on_data(self, data):
        if self._closing:
            return
        if self._paused_reading or not self._made:
            if self._pending is None:
                self._pending = [data]
            else:
                self._pending.append(data)
            self._fast = False
            return
        self._deliver(data)

    def _on_data_bytes(self, data):
        # a packed DATA payload when the fast path does not apply
        if self._buffered and not self._closing and self._made and not self._paused_reading:
            self._deliver(data)
        else:
            self._on_data(data)

    def _on_data_ptr(self, ptr, n):
        # BufferedProtocol: copy straight from the C batch into its buffer
        if self._closing:
            return
        if self._paused_reading or not self._made:
            self._on_data(_buffer(ptr, n)[:])
            return
        p = self._protocol
        try:
            off = 0
            while off < n:
                buf = p.get_buffer(n - off)
                k = len(buf)
                if not k:
                    raise RuntimeError("get_buffer() returned an empty buffer")
                if k > n - off:
                    k = n - off
                ffi.memmove(ffi.from_buffer(buf, require_writable=True), ptr + off, k)
                p.buffer_updated(k)
                off += k
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(exc, "protocol buffer_updated() failed")

    def _on_eof(self):
        if self._closing:
            return
        if self._paused_reading or not self._made:
            self._eof_pending = True
            self._fast = False
            return
        self._deliver_eof()

    def _deliver_eof(self):
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(exc, "protocol eof_received() failed")
            return
        if not keep_open:
            self.close()

    def _on_writable(self):
        self._check_resume()

    def _check_resume(self):
        self._resume_timer = None
        if not self._protocol_paused or self._lost:
            return
        if self._rl._sq:
            self._rl._flush()
        q = lib.ringline_conn_queued(self._rl._p, self._id)
        if q < 0 or q <= self._low_water:
            self._maybe_resume_protocol()
        else:
            # the C queue is below its own low mark but not below this
            # transport's: look again shortly
            self._resume_timer = self._rl.call_later(0.001, self._check_resume)

    def _on_closed(self, res):
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._fast = False
        self._rl._objs.pop(self._id, None)
        if self._resume_timer is not None:
            self._resume_timer.cancel()
        if self._server is not None:
            self._server._detach()
            self._server = None
        if not self._made:
            self._closed_early = res
            return
        exc = self._lost_exc
        if exc is None and res < 0 and not self._aborted:
            exc = error(res)
        self._rl.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._protocol = None
            if self._sock is not None:
                self._sock._sock.close()
                self._sock = None

    def _handshake_done(self, fut):
        # a server-side TLS handshake that failed: asyncio closes the
        # transport and reports only in debug mode
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self.close()
            if self._rl.get_debug():
                self._rl.call_exception_handler({
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc, "transport": self})

    def _force_close(self, exc):
        # sslproto's way of ending the connection with a reason
        if self._lost:
            return
        self._lost_exc = exc
        self.abort()

    def _fatal(self, exc, message):
        if not isinstance(exc, OSError):
            self._rl.call_exception_handler({
                "message": message, "exception": exc, "transport": self, "protocol": self._protocol})
        self.abort()

    # ---- ReadTransport ----
    def is_reading(self):
        return not self._paused_reading and not self._closing

    def pause_reading(self):
        if self._closing or self._paused_reading:
            return
        self._paused_reading = True
        self._fast = False
        lib.ringline_conn_pause(self._rl._p, self._id)

    def resume_reading(self):
        if self._closing or not self._paused_reading:
            return
        self._paused_reading = False
        lib.ringline_conn_resume(self._rl._p, self._id)
        if self._pending or self._eof_pending:
            self._rl.call_soon(self._flush_pending)
        else:
            self._refast()

    def _flush_pending(self):
        while self._pending and not self._paused_reading and not self._closing and self._protocol is not None:
            data = self._pending.pop(0)
            self._deliver(data)
        if not self._pending:
            self._pending = None
            if self._eof_pending and not self._paused_reading and not self._closing:
                self._eof_pending = False
                self._deliver_eof()
        self._refast()

    # ---- WriteTransport ----
    def write(self, data):
        # the hot path: bytes onto the loop's round of sends, which one
        # ringline_conn_send_batch() call queues into C before the next poll
        # (C submits only at the poll anyway, so nothing leaves later than
        # with a call per write)
        if type(data) is bytes and not self._closing:
            n = len(data)
            if n:
                sq = self._rl._sq
                if n >= _DIRECT_SEND:
                    # big writes go to C at once: joining them into the
                    # round's buffer would be one more copy of many bytes.
                    # (Sending from the bytes object in place with
                    # ringline_conn_send_ref was measured slower: a SENT
                    # event per write, no coalescing in C.)
                    rl = self._rl
                    if sq:
                        rl._flush()
                    r = _conn_send(rl._p, self._id, data, n, 0)
                    if r < 0:
                        self._fatal(error(r), "write failed")
                        return
                else:
                    sq.append(self._id)
                    sq.append(data)
                self._qbound += n
                if self._qbound > self._high_water:
                    self._maybe_pause_protocol()
            return
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._closing or self._lost:
            return  # asyncio drops writes to a closing transport
        data = bytes(data)  # the caller may reuse its buffer once write() returns
        if data:
            self.write(data)

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))

    def _maybe_pause_protocol(self):
        was = self._protocol_paused
        super()._maybe_pause_protocol()
        if self._protocol_paused and not was:
            q = self.get_write_buffer_size()
            if q <= _C_HIGH and self._resume_timer is None:
                # the C loop will not report WRITABLE for this queue size
                self._resume_timer = self._rl.call_later(0.001, self._check_resume)

    def get_write_buffer_size(self):
        if self._lost:
            return 0
        rl = self._rl
        if rl._sq:
            rl._flush()
        q = lib.ringline_conn_queued(rl._p, self._id)
        q = q if q > 0 else 0
        self._qbound = q
        return q

    def write_eof(self):
        if self._closing:
            return
        if self._rl._sq:
            self._rl._flush()
        r = lib.ringline_conn_shutdown(self._rl._p, self._id)
        if r < 0 and r != _EBADF:
            raise error(r)

    def can_write_eof(self):
        return True

    def close(self):
        if self._closing:
            return
        self._closing = True
        self._fast = False
        if self._rl._sq:
            self._rl._flush()  # close() sends what was written first
        r = lib.ringline_conn_close(self._rl._p, self._id)
        if r < 0 and not self._lost:
            self._on_closed(0)

    def is_closing(self):
        return self._closing

    def abort(self):
        if self._lost:
            return
        self._closing = True
        self._aborted = True
        self._fast = False
        r = lib.ringline_conn_abort(self._rl._p, self._id)
        if r < 0:
            self._on_closed(0)

    def get_extra_info(self, name, default=None):
        if name in self._extra:
            return self._extra[name]
        if name in ("peername", "sockname", "socket"):
            s = self._socket()
            if s is None:
                if name == "peername":
                    # a fixed-file connection: C can still name the peer
                    ss = ffi.new("struct sockaddr_storage *")
                    ln = ffi.new("socklen_t *")
                    if lib.ringline_conn_peer(self._rl._p, self._id, ss, ln) < 0:
                        return default
                    v = _addr.from_ptr(ffi.cast("struct sockaddr *", ss), ln[0])
                    self._extra[name] = v
                    return v
                return default
            try:
                v = (s if name == "socket" else
                     s.getpeername() if name == "peername" else s.getsockname())
            except OSError:
                return default
            self._extra[name] = v
            return v
        return default

    def _socket(self):
        # asyncio hands out a TransportSocket over the real socket; here
        # that is a dup of the loop's descriptor (the loop keeps its own and
        # closes it; the dup dies with the transport), so options set and
        # addresses asked through it are the connection's own
        if self._sock is None and not self._lost and self._rl._p != _NULL:
            fd = lib.ringline_conn_fd(self._rl._p, self._id)
            if fd < 0:
                return None
            self._sock = trsock.TransportSocket(socket.socket(fileno=os.dup(fd)))
        return self._sock

    def __del__(self, _warn=warnings.warn):
        if not getattr(self, "_lost", True) and not getattr(self, "_closing", True):
            try:
                _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            except Exception:  # pragma: no cover
                pass


class _DatagramTransport(transports.DatagramTransport):
    def __init__(self, loop, uid, protocol, sockname, remote=None):
        super().__init__({"sockname": sockname, "peername": remote})
        self._rl = loop
        self._id = uid
        self._protocol = protocol
        self._remote = remote
        self._remote_packed = _addr.pack(remote) if remote else None
        self._closing = False
        self._lost = False
        self._extra["socket"] = _FakeSocket(_family_of(sockname[0]), sockname, remote)
        self._extra["socket"].type = socket.SOCK_DGRAM

    def get_protocol(self):
        return self._protocol

    def set_protocol(self, protocol):
        self._protocol = protocol

    def sendto(self, data, addr=None):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._closing:
            return
        if addr is None:
            raw = self._remote_packed
            if raw is None:
                raise ValueError("no address given and the endpoint has no remote_addr")
        elif self._remote is not None and addr != self._remote:
            raise ValueError(f"Invalid address: must be None or {self._remote}")
        else:
            raw = _addr.pack(tuple(addr))
        cd = ffi.from_buffer(data)
        r = lib.ringline_udp_sendto(self._rl._p, self._id, cd, len(cd),
                                    ffi.cast("struct sockaddr *", ffi.from_buffer(raw)), len(raw))
        if r < 0:
            try:
                self._protocol.error_received(error(r))
            except Exception as exc:  # pragma: no cover
                self._rl.call_exception_handler({"message": "error_received() failed", "exception": exc})

    def _on_datagram(self, data, addr):
        if self._closing:
            return
        if self._remote is not None and addr is not None and (addr[0], addr[1]) != (self._remote[0], self._remote[1]):
            return  # a "connected" endpoint takes datagrams from its peer only
        try:
            self._protocol.datagram_received(data, addr)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._rl.call_exception_handler({"message": "datagram_received() failed", "exception": exc,
                                             "transport": self, "protocol": self._protocol})

    def _on_closed(self, res):
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._rl._objs.pop(self._id, None)
        self._rl.call_soon(self._protocol.connection_lost, error(res) if res < 0 else None)

    def close(self):
        if self._closing:
            return
        self._closing = True
        r = lib.ringline_udp_close(self._rl._p, self._id)
        if r < 0:
            self._on_closed(0)

    def abort(self):
        self.close()

    def is_closing(self):
        return self._closing

    def get_write_buffer_size(self):
        return 0


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------

class _Listener:
    """One C listener (an adopted listening socket) feeding an asyncio
    base_events.Server: accepted connections become transports with the
    server's protocol factory, wrapped in sslproto for ssl=."""

    def __init__(self, loop, lid, factory, sslcontext, server, hs_timeout, sd_timeout):
        self.loop = loop
        self.id = lid
        self.factory = factory
        self.ssl = sslcontext
        self.server = server
        self.hs_timeout = hs_timeout
        self.sd_timeout = sd_timeout
        self.closed = False

    def _on_accept(self, cid):
        loop = self.loop
        tr = _TCPTransport(loop, cid)
        loop._objs[cid] = tr
        try:
            proto = self.factory()
            waiter = None
            if self.ssl is not None:
                waiter = loop.create_future()
                proto = sslproto.SSLProtocol(loop, proto, self.ssl, waiter, True, None,
                                             ssl_handshake_timeout=self.hs_timeout,
                                             ssl_shutdown_timeout=self.sd_timeout)
                waiter.add_done_callback(tr._handshake_done)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            loop.call_exception_handler({"message": "protocol factory failed", "exception": exc})
            tr.abort()
            return
        if self.server is not None:
            self.server._attach()
            tr._server = self.server
        tr._start(proto)

    def _on_closed(self, res):
        self.closed = True


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------

class _Poller:
    """BaseEventLoop._run_once calls self._selector.select(timeout)."""

    def __init__(self, loop):
        self._loop = loop

    def select(self, timeout):
        self._loop._rl_poll(-1 if timeout is None else int(timeout * 1e9))
        return ()

    def close(self):
        pass


class RinglineEventLoop(base_events.BaseEventLoop):
    """asyncio event loop on libringline's event loop (one io_uring)."""

    def __init__(self, *, max_conns: int = 65536, recv_buffers=(256, 65536), batch: int = 256):
        super().__init__()
        self._selector = _Poller(self)
        self._p = _NULL
        self._rl_opts = (max_conns, tuple(recv_buffers), batch)
        self._rl_owner = None
        self._evs = None
        self._nev = batch
        self._objs = {}
        self._ring = _NULL        # the C loop's ring, for raw operations
        self._raw = {}            # token -> future (None once abandoned)
        self._next_token = 1
        self._signal_handlers = {}
        self._sig_udp = None       # (ringline udp id, python socket)
        self._listeners = {}       # listening socket fileno -> _Listener
        self._sq = []              # this round's sends: id, bytes, id, bytes, ...
        self._bcap = 0
        self._bids = self._bends = self._bres = None
        self._rl_closed = False

    # ---- the C loop, created in the thread that first needs it ----
    def _c(self):
        p = self._p
        if p != _NULL:
            if threading.get_ident() != self._rl_owner:
                raise RuntimeError("a ringline loop is used from one thread only")
            return p
        if self._rl_closed or self.is_closed():
            raise RuntimeError("Event loop is closed")
        max_conns, rb, batch = self._rl_opts
        pc = ffi.new("ringline_config_t **")
        check(lib.ringline_config_new(pc))
        cfg = pc[0]
        try:
            check(lib.ringline_config_set_max_conns(cfg, max_conns))
            check(lib.ringline_config_set_recv_buffers(cfg, rb[0], rb[1]))
            check(lib.ringline_config_set_send_limits(cfg, _C_HIGH, _C_LOW))
            pl = ffi.new("ringline_loop_t **")
            check(lib.ringline_loop_new(cfg, pl))
        finally:
            lib.ringline_config_free(cfg)
        self._p = pl[0]
        pr = ffi.new("ringline_ring_t **")
        check(lib.ringline_loop_ring(self._p, pr))
        self._ring = pr[0]
        self._rl_owner = threading.get_ident()
        self._evs = ffi.new("ringline_event_t[]", batch)
        if _poll_packed is not None:
            self._nmeta = 3 * batch
            self._meta = ffi.new("uint64_t[]", self._nmeta)
            # payloads that do not fit come as NOCOPY events and are read
            # in place (one copy): big ones (bulk) should, since packing
            # them would copy them twice; small ones pack
            self._pcap = _PACK_CAP
            self._pbuf = ffi.new("uint8_t[]", self._pcap)
            # plain memoryviews over both: reading them is Python indexing
            # and slicing, no foreign call (ffi.unpack / ffi.buffer parse
            # their arguments on every call)
            self._mview = memoryview(ffi.buffer(self._meta)).cast("B").cast("Q")
            self._pview = memoryview(ffi.buffer(self._pbuf))
        return self._p

    # ---- the round's sends: transport.write() appends (id, bytes) ----
    def _flush(self):
        """Queue the round's sends into C, one call for all of them."""
        sq = self._sq
        p = self._p
        if len(sq) == 2 and p != _NULL:
            # the common round of one send (ping-pong): no batch to build
            cid, d = sq
            sq.clear()
            r = _conn_send(p, cid, d, len(d), 0)
            if r < 0:
                self._send_failed(cid, r)
            return
        k = len(sq) >> 1
        if not k or p == _NULL:
            sq.clear()
            return
        if k == 1 or _send_batch is None:
            fails = None
            for j in range(0, 2 * k, 2):
                d = sq[j + 1]
                r = _conn_send(p, sq[j], d, len(d), 0)
                if r < 0:
                    if fails is None:
                        fails = []
                    fails.append((sq[j], r))
            sq.clear()
            if fails:
                for cid, r in fails:
                    self._send_failed(cid, r)
            return
        if k > self._bcap:
            self._bcap = cap = max(k, 2 * self._bcap, 64)
            self._bids = ffi.new("uint64_t[]", cap)
            self._bends = ffi.new("uint64_t[]", cap)
            self._bres = ffi.new("int64_t[]", cap)
        ids = sq[0::2]
        datas = sq[1::2]
        sq.clear()
        ends = []
        e = 0
        for d in datas:
            e += len(d)
            ends.append(e)
        self._bids[0:k] = ids
        self._bends[0:k] = ends
        blob = b"".join(datas)
        nf = _send_batch(p, self._bids, blob, self._bends, k, self._bres)
        if nf:
            if nf < 0:
                raise error(nf)
            res = _unpack(self._bres, k)
            for j in range(k):
                if res[j] < 0:
                    self._send_failed(ids[j], res[j])

    def _send_failed(self, cid, r):
        o = self._objs.get(cid)
        if o is not None and not o._closing:
            o._fatal(error(r), "write failed")

    def _rl_poll(self, timeout_ns):
        p = self._p
        if p == _NULL:
            if self._rl_closed:
                return
            p = self._c()
        if self._sq:
            self._flush()
        if _poll_packed is None:
            return self._rl_poll_plain(p, timeout_ns)
        n = _poll_packed(p, self._evs, self._nev, timeout_ns, self._meta, self._nmeta,
                         self._pbuf, self._pcap)
        if n <= 0:
            if n == 0 or n == _EINTR:
                return
            raise error(n)
        # the batch as Python ints (type, id, payload end) and one buffer
        # holding every DATA payload, sliced (copied) per event: no cdata
        # reads on the hot path
        mv = self._mview
        if n == 1 and mv[0] == _EV_DATA:
            # one DATA event (ping-pong): no iteration machinery
            o = self._objs.get(mv[1])
            if o is not None:
                d = bytes(self._pview[:mv[2]])
                if o._fast:
                    try:
                        o._dr(d)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        o._fatal(exc, "protocol data_received() failed")
                else:
                    o._on_data_bytes(d)
            return
        m = mv[:3 * n].tolist()
        # each DATA payload is copied once, out of the packed buffer
        blob = self._pview
        objs = self._objs
        start = 0
        i = -1
        it = iter(m)
        for t, cid, end in zip(it, it, it):
            i += 1
            if t == _EV_DATA:
                o = objs.get(cid)
                if o is None:
                    start = end
                    continue
                d = bytes(blob[start:end])
                start = end
                if o._fast:
                    try:
                        o._dr(d)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        o._fatal(exc, "protocol data_received() failed")
                else:
                    o._on_data_bytes(d)
            else:
                self._rl_event(self._evs[i], t & ~_NOCOPY)

    def _rl_poll_plain(self, p, timeout_ns):
        n = lib.ringline_loop_poll(p, self._evs, self._nev, timeout_ns)
        if n <= 0:
            if n == 0 or n == _EINTR:
                return
            raise error(n)
        evs = self._evs
        for i in range(n):
            e = evs[i]
            self._rl_event(e, e.type)

    def _rl_event(self, e, t):
        """One event read from the cffi struct: everything but packed DATA."""
        p = self._p
        objs = self._objs
        if t == _EV_DATA:
            o = objs.get(e.id)
            if o is not None:
                if o._buffered:
                    o._on_data_ptr(e.data, e.len)
                else:
                    o._on_data(_buffer(e.data, e.len)[:])
        elif t == _EV_ACCEPTED:
            li = objs.get(e.id2)
            if li is None:
                lib.ringline_conn_abort(p, e.id)
            else:
                li._on_accept(e.id)
        elif t == _EV_EOF:
            o = objs.get(e.id)
            if o is not None:
                o._on_eof()
        elif t == _EV_WRITABLE:
            o = objs.get(e.id)
            if o is not None:
                o._on_writable()
        elif t == _EV_CLOSED:
            o = objs.pop(e.id, None)
            if o is not None:
                o._on_closed(e.res)
        elif t == _EV_CONNECTED:
            o = objs.get(e.id)
            if o is not None:
                o._on_connected(e.res)
        elif t == _EV_DATAGRAM:
            o = objs.get(e.id)
            if o is not None:
                o._on_datagram(_buffer(e.data, e.len)[:], _addr.from_ptr(e.addr, e.addrlen))
        elif t == _EV_CQE:
            f = self._raw.pop(e.tag, None)
            if f is not None and not f.done():
                f.set_result(e.res)
        elif t == _EV_ERROR:
            o = objs.get(e.id)
            if type(o) is _Listener and o.closed:
                return  # the accept a stopped server's shutdown ended
            self.call_exception_handler({"message": f"ringline loop error on {o!r}",
                                         "exception": error(e.res)})

    def _process_events(self, event_list):
        pass

    def _run_once(self):
        # BaseEventLoop._run_once with the same order of work (drop
        # cancelled timers, poll, move due timers to ready, run what was
        # ready), minus what a ringline iteration does not need: the
        # selector indirection, and the clock read when no timer is
        # scheduled. Debug mode keeps asyncio's own (slow-callback warnings).
        if self._debug:
            return super()._run_once()
        sched = self._scheduled
        ready = self._ready
        if sched:
            n = len(sched)
            if n > _MIN_SCHEDULED and self._timer_cancelled_count / n > _MIN_CANCELLED_FRACTION:
                keep = []
                for h in sched:
                    if h._cancelled:
                        h._scheduled = False
                    else:
                        keep.append(h)
                heapq.heapify(keep)
                self._scheduled = sched = keep
                self._timer_cancelled_count = 0
            else:
                while sched and sched[0]._cancelled:
                    self._timer_cancelled_count -= 1
                    h = heapq.heappop(sched)
                    h._scheduled = False
        if ready or self._stopping:
            timeout_ns = 0
        elif sched:
            t = sched[0]._when - self.time()
            timeout_ns = 0 if t <= 0 else int(min(t, _MAX_SELECT) * 1e9)
        else:
            timeout_ns = -1
        self._rl_poll(timeout_ns)
        if sched:
            end_time = self.time() + self._clock_resolution
            while sched:
                h = sched[0]
                if h._when >= end_time:
                    break
                h = heapq.heappop(sched)
                h._scheduled = False
                ready.append(h)
        ntodo = len(ready)
        popleft = ready.popleft
        while ntodo:
            ntodo -= 1
            h = popleft()
            if not h._cancelled:
                h._run()
        h = None  # break cycles when an exception occurs

    def _write_to_self(self):
        p = self._p
        if p != _NULL:
            lib.ringline_loop_wake(p)

    def run_forever(self):
        self._c()
        return super().run_forever()

    def close(self):
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        for sig in list(self._signal_handlers):
            try:
                self.remove_signal_handler(sig)
            except Exception:  # pragma: no cover
                pass
        super().close()
        self._rl_closed = True
        for f in self._raw.values():
            if f is not None and not f.done():
                f.cancel()
        self._raw.clear()
        self._ring = _NULL
        p, self._p = self._p, _NULL
        for o in list(self._objs.values()):
            if isinstance(o, (_TCPTransport, _DatagramTransport)) and not o._lost:
                o._lost = True
        self._objs.clear()
        self._listeners.clear()
        self._sq.clear()
        if self._sig_udp is not None:
            self._sig_udp[1].close()
            self._sig_udp = None
        if p != _NULL:
            if threading.get_ident() == self._rl_owner:
                lib.ringline_loop_destroy(p)
            # else: leaked on purpose; a loop can only be torn down by its thread

    # ---- unsupported ----
    def add_reader(self, fd, callback, *args):
        _unsupported("add_reader()", "ringline is completion-based (io_uring), it has no fd "
                     "readiness callbacks; use protocols/streams or the sock_* coroutines")

    def remove_reader(self, fd):
        _unsupported("remove_reader()", "see add_reader()")

    def add_writer(self, fd, callback, *args):
        _unsupported("add_writer()", "ringline is completion-based (io_uring), it has no fd "
                     "readiness callbacks; use protocols/streams or the sock_* coroutines")

    def remove_writer(self, fd):
        _unsupported("remove_writer()", "see add_writer()")

    # ---- adopting sockets: what BaseEventLoop's own create_connection(sock=,
    # local_addr=, ssl=), create_server, connect_accepted_socket and
    # start_tls build on ----
    def _adopt_conn(self, sock, extra=None):
        """A connected stream socket (TCP or AF_UNIX) becomes a C connection.
        C gets a dup of the descriptor; the Python socket stays with the
        transport (get_extra_info('socket')) and is closed with it, as in
        asyncio's own transports."""
        p = self._c()
        fd = os.dup(sock.fileno())
        out = ffi.new("ringline_id_t *")
        r = lib.ringline_conn_adopt(p, fd, out)
        if r < 0:
            os.close(fd)
            raise error(r)
        tr = _TCPTransport(self, out[0], extra)
        tr._sock = trsock.TransportSocket(sock)
        self._objs[out[0]] = tr
        return tr

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        tr = self._adopt_conn(sock, extra)
        if server is not None:
            server._attach()
            tr._server = server
        tr._start(protocol, waiter)
        return tr

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False,
                            server_hostname=None, extra=None, server=None, ssl_handshake_timeout=None,
                            ssl_shutdown_timeout=None, call_connection_made=True):
        # asyncio's TLS state machine (sslproto) over a ringline transport
        sp = sslproto.SSLProtocol(self, protocol, sslcontext, waiter, server_side, server_hostname,
                                  ssl_handshake_timeout=ssl_handshake_timeout,
                                  ssl_shutdown_timeout=ssl_shutdown_timeout,
                                  call_connection_made=call_connection_made)
        self._make_socket_transport(rawsock, sp, extra=extra, server=server)
        return sp._app_transport

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100,
                       ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """asyncio's Server calls this per listening socket: C takes a dup
        of it and accepts with a multishot accept (the Python socket stays
        in Server.sockets and is closed by _stop_serving)."""
        p = self._c()
        fd = os.dup(sock.fileno())
        out = ffi.new("ringline_id_t *")
        r = lib.ringline_listener_adopt(p, fd, out)
        if r < 0:
            os.close(fd)
            raise error(r)
        li = _Listener(self, out[0], protocol_factory, sslcontext, server,
                       ssl_handshake_timeout, ssl_shutdown_timeout)
        self._objs[li.id] = li
        self._listeners[sock.fileno()] = li

    def _stop_serving(self, sock):
        li = self._listeners.pop(sock.fileno(), None)
        if li is not None and not li.closed and self._p != _NULL:
            li.closed = True
            lib.ringline_listener_close(self._p, li.id)
            # C lets go of its descriptor once the accept's cancel completed;
            # asyncio's close() stops listening at once: shutting the socket
            # down does that (new connections are refused from here on)
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        sock.close()

    def _make_read_pipe_transport(self, *a, **kw):
        _unsupported("pipes", "ringline's asyncio loop has no pipe transports; use "
                     "run_in_executor with blocking reads/writes, or a socketpair with open_unix_connection(sock=)")

    _make_write_pipe_transport = _make_read_pipe_transport

    async def _make_subprocess_transport(self, *a, **kw):
        _unsupported("subprocesses", "ringline's asyncio loop has no child watcher; use "
                     "run_in_executor with subprocess.run")

    async def create_unix_connection(self, protocol_factory, path=None, *, ssl=None, sock=None,
                                     server_hostname=None, ssl_handshake_timeout=None,
                                     ssl_shutdown_timeout=None):
        # as asyncio's unix_events: connect with sock_connect (a poll on the
        # ring), then the transport adopts the socket
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if ssl and server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
            sock.setblocking(False)
        return await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def create_unix_server(self, protocol_factory, path=None, *, sock=None, backlog=100, ssl=None,
                                 ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                 start_serving=True, **kw):
        if kw:  # cleanup_socket (3.13) and later additions
            if set(kw) - {"cleanup_socket"}:
                raise TypeError(f"unexpected arguments {sorted(kw)}")
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if path[0] not in (0, "\x00"):
                # a stale socket file from an earlier run: asyncio removes it too
                try:
                    if stat.S_ISSOCK(os.stat(path).st_mode):
                        os.remove(path)
                except FileNotFoundError:
                    pass
                except OSError:
                    pass
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        sock.setblocking(False)
        server = base_events.Server(self, [sock], protocol_factory, ssl, backlog,
                                    ssl_handshake_timeout, ssl_shutdown_timeout)
        if start_serving:
            server._start_serving()
            await _aio.sleep(0)
        return server

    # ---- TCP ----
    async def _resolve(self, host, port, family=0, type=socket.SOCK_STREAM, flags=0):
        if host is not None and not isinstance(host, str):
            raise TypeError(f"host must be str, not {type(host).__name__}")
        if host and _addr.is_numeric(host):
            return [host]
        infos = await self.getaddrinfo(host, port, family=family, type=type, flags=flags)
        out = []
        for fam, _, _, _, sa in infos:
            if fam in (socket.AF_INET, socket.AF_INET6) and sa[0] not in out:
                out.append(sa[0])
        if not out:
            raise OSError(f"getaddrinfo({host!r}) returned no usable address")
        return out

    async def create_connection(self, protocol_factory, host=None, port=None, *, ssl=None, family=0,
                                proto=0, flags=0, sock=None, local_addr=None, server_hostname=None,
                                ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                happy_eyeballs_delay=None, interleave=None, all_errors=False):
        if ssl or sock is not None or local_addr is not None or happy_eyeballs_delay is not None \
                or server_hostname is not None or ssl_handshake_timeout is not None \
                or ssl_shutdown_timeout is not None:
            # asyncio's own implementation: sock_connect (a poll on the ring)
            # on a socket it made and bound, then _make_ssl_transport /
            # _make_socket_transport adopt it into C
            kw = {}
            if all_errors:
                kw["all_errors"] = all_errors
            return await super().create_connection(
                protocol_factory, host, port, ssl=ssl, family=family, proto=proto, flags=flags,
                sock=sock, local_addr=local_addr, server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
                happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave, **kw)
        if host is None or port is None:
            raise ValueError("host and port was not specified and no sock specified")
        port = _addr.check_port(int(port) if isinstance(port, str) else port)
        p = self._c()
        hosts = await self._resolve(host, port, family)
        errors = []
        for h in hosts:
            out = ffi.new("ringline_id_t *")
            r = lib.ringline_connect(p, h.encode(), port, 0, out)
            if r < 0:
                errors.append(error(r, f"{h}:{port}"))
                continue
            cid = out[0]
            fut = self.create_future()
            conn = _Connecting(self, cid, fut)
            self._objs[cid] = conn
            try:
                res, tr = await fut
            except BaseException:
                conn.cancel()
                raise
            if res < 0:
                errors.append(OSError(-res, f"Connect call failed {(h, port)}: {os.strerror(-res)}"))
                continue
            try:
                protocol = protocol_factory()
            except BaseException:
                tr.abort()
                raise
            waiter = self.create_future()
            tr._start(protocol, waiter)
            try:
                await waiter
            except BaseException:
                tr.close()
                raise
            return tr, protocol
        if len(errors) == 1 or all_errors is False and errors:
            if len(errors) == 1:
                raise errors[0]
            model = str(errors[0])
            if all(str(e) == model for e in errors):
                raise errors[0]
            raise OSError("Multiple exceptions: {}".format(", ".join(str(e) for e in errors)))
        if errors:
            raise ExceptionGroup("create_connection failed", errors)
        raise OSError("no address")

    # create_server is BaseEventLoop's own (sockets made, bound and listened
    # in Python, real Server.sockets, ssl=, sock=, reuse_port=, ...); serving
    # them is _start_serving above: C adopts each and accepts with a
    # multishot accept.

    # ---- UDP ----
    async def create_datagram_endpoint(self, protocol_factory, local_addr=None, remote_addr=None, *,
                                       family=0, proto=0, flags=0, reuse_address=None, reuse_port=None,
                                       allow_broadcast=None, sock=None):
        if sock is not None:
            _unsupported("create_datagram_endpoint(sock=)", "libringline adopts stream sockets only; "
                         "use local_addr= / remote_addr=")
        if family == socket.AF_UNIX:
            _unsupported("Unix datagram sockets", "libringline's datagram sockets are UDP; "
                         "use create_unix_connection / create_unix_server (stream)")
        p = self._c()
        remote = None
        if remote_addr is not None:
            rh = (await self._resolve(remote_addr[0], remote_addr[1], family, socket.SOCK_DGRAM))[0]
            remote = (rh, _addr.check_port(remote_addr[1]))
        if local_addr is not None:
            lh = (await self._resolve(local_addr[0], local_addr[1], family, socket.SOCK_DGRAM, flags))[0]
            lport = _addr.check_port(local_addr[1])
        else:
            lh = "::" if (remote and ":" in remote[0]) or family == socket.AF_INET6 else "0.0.0.0"
            lport = 0
        out = ffi.new("ringline_id_t *")
        check(lib.ringline_udp_bind(p, lh.encode(), lport, out), f"{lh}:{lport}")
        uid = out[0]
        port = check(lib.ringline_udp_port(p, uid))
        protocol = protocol_factory()
        tr = _DatagramTransport(self, uid, protocol, (lh, port), remote)
        self._objs[uid] = tr
        try:
            protocol.connection_made(tr)
        except BaseException:
            tr.close()
            raise
        return tr, protocol

    # ---- sock_* on plain non-blocking sockets ----
    def _ready_wait(self, sock, writable):
        """A one-shot poll on the loop's ring; resolves with the revents."""
        self._c()
        tok = self._next_token
        self._next_token = tok + 2 if tok + 2 < _TOKEN_LIMIT else 1
        r = lib.ringline_op_poll(self._ring, sock.fileno(), _POLLOUT if writable else _POLLIN, 0, tok)
        if r < 0:
            raise error(r)
        fut = self.create_future()
        self._raw[tok] = fut
        fut.add_done_callback(lambda f, tok=tok: self._raw_done(tok, f))
        return fut

    def _raw_done(self, tok, fut):
        if fut.cancelled() and tok in self._raw and self._ring != _NULL:
            # keep the slot until the poll's final completion arrives, so a
            # late completion is recognised and dropped
            self._raw[tok] = None
            lib.ringline_op_poll_remove(self._ring, tok, tok + 1)

    @staticmethod
    def _check_sock(sock):
        if not isinstance(sock, socket.socket):
            raise TypeError("a socket.socket is required")
        if sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    async def sock_recv(self, sock, n):
        self._check_sock(sock)
        while True:
            try:
                return sock.recv(n)
            except (BlockingIOError, InterruptedError):
                pass
            await self._ready_wait(sock, False)

    async def sock_recv_into(self, sock, buf):
        self._check_sock(sock)
        while True:
            try:
                return sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                pass
            await self._ready_wait(sock, False)

    async def sock_recvfrom(self, sock, bufsize):
        self._check_sock(sock)
        while True:
            try:
                return sock.recvfrom(bufsize)
            except (BlockingIOError, InterruptedError):
                pass
            await self._ready_wait(sock, False)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        self._check_sock(sock)
        while True:
            try:
                return sock.recvfrom_into(buf, nbytes)
            except (BlockingIOError, InterruptedError):
                pass
            await self._ready_wait(sock, False)

    async def sock_sendall(self, sock, data):
        self._check_sock(sock)
        view = memoryview(data).cast("B")
        while view:
            try:
                n = sock.send(view)
                view = view[n:]
                continue
            except (BlockingIOError, InterruptedError):
                pass
            await self._ready_wait(sock, True)

    async def sock_sendto(self, sock, data, address):
        self._check_sock(sock)
        while True:
            try:
                return sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                pass
            await self._ready_wait(sock, True)

    async def sock_connect(self, sock, address):
        self._check_sock(sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if not _addr.is_numeric(host):
                infos = await self.getaddrinfo(host, address[1], family=sock.family, type=sock.type)
                address = infos[0][4]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            await self._ready_wait(sock, True)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                return
            if err not in (errno.EINPROGRESS, errno.EALREADY):
                raise OSError(err, f"Connect call failed {address}: {os.strerror(err)}")

    async def sock_accept(self, sock):
        self._check_sock(sock)
        while True:
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
                return conn, addr
            except (BlockingIOError, InterruptedError):
                pass
            await self._ready_wait(sock, False)

    # ---- signals ----
    def _sig_socket(self):
        if self._sig_udp is not None:
            return
        p = self._c()
        out = ffi.new("ringline_id_t *")
        check(lib.ringline_udp_bind(p, b"127.0.0.1", 0, out))
        uid = out[0]
        port = check(lib.ringline_udp_port(p, uid))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect(("127.0.0.1", port))
        self._sig_udp = (uid, s)
        self._objs[uid] = _SignalSink(self)

    def add_signal_handler(self, sig, callback, *args):
        if _aio.iscoroutine(callback) or _aio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("add_signal_handler() works in the main thread only")
        self._sig_socket()
        try:
            signal.set_wakeup_fd(self._sig_udp[1].fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        handle = events.Handle(callback, args, self, None)
        self._signal_handlers[sig] = handle
        try:
            signal.signal(sig, _sighandler_noop)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError):  # pragma: no cover
                    pass
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught")
            raise

    def _handle_signal(self, sig):
        handle = self._signal_handlers.get(sig)
        if handle is None:
            return
        if handle._cancelled:
            self.remove_signal_handler(sig)
        else:
            self._add_callback_signalsafe(handle)

    def remove_signal_handler(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:  # pragma: no cover
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught")
            raise
        if not self._signal_handlers:
            try:
                signal.set_wakeup_fd(-1)
            except (ValueError, OSError) as exc:  # pragma: no cover
                warnings.warn(f"cannot reset the wakeup fd: {exc}")
        return True


def _sighandler_noop(signum, frame):
    """Python-level handler: the wakeup fd (a UDP datagram into the ring)
    carries the signal number; the loop schedules the callback."""


class _SignalSink:
    def __init__(self, loop):
        self._loop = loop

    def _on_datagram(self, data, addr):
        for b in data:
            self._loop._handle_signal(b)

    def _on_closed(self, res):
        pass


class _Connecting:
    """A connection between ringline_connect and CONNECTED."""

    def __init__(self, loop, cid, fut):
        self._loop = loop
        self._id = cid
        self._fut = fut
        self.closed_early = None

    def _on_connected(self, res):
        if res < 0:
            if not self._fut.done():
                self._fut.set_result((res, None))
            return
        # from now on the transport buffers whatever arrives until the
        # protocol exists
        tr = _TCPTransport(self._loop, self._id)
        self._loop._objs[self._id] = tr
        if not self._fut.done():
            self._fut.set_result((res, tr))
        else:
            tr.abort()

    def _on_closed(self, res):
        if not self._fut.done():
            self._fut.set_result((res if res < 0 else -errno.ECONNABORTED, None))

    def cancel(self):
        lib.ringline_conn_abort(self._loop._p, self._id)


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------

def new_event_loop(**options) -> RinglineEventLoop:
    """A new ringline-backed asyncio loop (asyncio.Runner(loop_factory=...))."""
    return RinglineEventLoop(**options)


class EventLoopPolicy(events.BaseDefaultEventLoopPolicy):
    def _loop_factory(self):
        return new_event_loop()


def install() -> None:
    """Make asyncio.run() and asyncio.new_event_loop() use ringline's loop."""
    _aio.set_event_loop_policy(EventLoopPolicy())
