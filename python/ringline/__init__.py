"""ringline: Linux io_uring made usable from Python.

Three layers, all over libringline's C ABI (cffi, ABI mode):

* ``ringline.Ring`` — the ring layer: submit helpers, batched harvest into a
  reused cdata array, provided-buffer groups as memoryviews, fixed files,
  O_DIRECT with aligned buffers, NVMe passthrough.
* the native async API on the C event loop::

      import ringline

      async def main():
          server = await ringline.listen("127.0.0.1", 7000)
          async for conn in server:
              ringline.spawn(handle(conn))

      async def handle(conn):
          async with conn:
              while data := await conn.recv():
                  await conn.send(data)

      ringline.run(main(), handle_signals=True)

* ``ringline.asyncio`` — an asyncio event loop backed by ringline:
  ``asyncio.Runner(loop_factory=ringline.asyncio.new_event_loop)``.

Errors are ``OSError(errno, strerror)`` (so ConnectionResetError,
TimeoutError, ... as usual); misuse raises TypeError / ValueError.
"""
from __future__ import annotations

from ._errors import IncompleteReadError, check, error
from ._ffi import ffi, lib, library_path
from ._loop import (
    FRAMER_HTTP_HEAD, FRAMER_LINE, FRAMER_RESP, FRAMER_U16BE, FRAMER_U32BE,
    CancelledError, Connection, Future, Loop, Server, Task, Timer, UDPSocket,
    call_at, call_every, call_later, connect, current_task, get_loop, listen,
    now, on_signal, run, sleep, spawn, stats, stop, stopped, udp_bind, wait_for,
    wait_readable, wait_writable,
)
from .ring import (
    FIXED, AlignedBuffer, BufferGroup, Completion, NvmeCommand, ProvidedBuffer,
    RW, RecvMsg, Ring, aligned_buffer, dio_alignment, feature_names, frame,
    nvme_ns_geometry, resp_parse_command, rw,
)
from . import storage
from .storage import DirectFile, NvmeDevice, NvmeError, nvme_open, open_direct

__all__ = [
    # native async API
    "run", "spawn", "sleep", "wait_for", "listen", "connect", "udp_bind",
    "call_later", "call_at", "call_every", "now", "on_signal", "stop", "stopped",
    "stats", "current_task", "get_loop", "wait_readable", "wait_writable",
    "Loop", "Task", "Future", "Timer", "Connection", "Server", "UDPSocket",
    "CancelledError", "IncompleteReadError",
    "FRAMER_LINE", "FRAMER_U16BE", "FRAMER_U32BE", "FRAMER_RESP", "FRAMER_HTTP_HEAD",
    # ring layer
    "Ring", "BufferGroup", "ProvidedBuffer", "AlignedBuffer", "NvmeCommand", "RecvMsg",
    "Completion", "FIXED", "aligned_buffer", "dio_alignment", "frame",
    "resp_parse_command", "feature_names", "RW", "rw", "nvme_ns_geometry",
    # storage objects (ringline.storage)
    "storage", "DirectFile", "NvmeDevice", "NvmeError", "open_direct", "nvme_open",
    # misc
    "version", "version_string", "strerror", "err_name", "thread_pin", "error",
    "ffi", "lib", "library_path",
    # constants
    "CQE_F_BUFFER", "CQE_F_MORE", "CQE_F_SOCK_NONEMPTY", "CQE_F_NOTIF", "CQE_F_BUF_MORE",
    "SQE_IO_DRAIN", "SQE_IO_LINK", "SQE_IO_HARDLINK", "SQE_ASYNC",
    "TOKEN_WAKE", "FILE_ALLOC", "NO_SLOT",
    "NVME_CNS_NAMESPACE", "NVME_CNS_CONTROLLER",
]

__version__ = "0.1.0"

CQE_F_BUFFER = lib.RINGLINE_CQE_F_BUFFER
CQE_F_MORE = lib.RINGLINE_CQE_F_MORE
CQE_F_SOCK_NONEMPTY = lib.RINGLINE_CQE_F_SOCK_NONEMPTY
CQE_F_NOTIF = lib.RINGLINE_CQE_F_NOTIF
CQE_F_BUF_MORE = lib.RINGLINE_CQE_F_BUF_MORE
SQE_IO_DRAIN = lib.RINGLINE_SQE_IO_DRAIN
SQE_IO_LINK = lib.RINGLINE_SQE_IO_LINK
SQE_IO_HARDLINK = lib.RINGLINE_SQE_IO_HARDLINK
SQE_ASYNC = lib.RINGLINE_SQE_ASYNC
TOKEN_WAKE = lib.RINGLINE_TOKEN_WAKE
FILE_ALLOC = lib.RINGLINE_FILE_ALLOC
NO_SLOT = lib.RINGLINE_NO_SLOT
NVME_CNS_NAMESPACE = lib.RINGLINE_NVME_CNS_NAMESPACE
NVME_CNS_CONTROLLER = lib.RINGLINE_NVME_CNS_CONTROLLER


def version() -> int:
    """The loaded library's version as 0xMMmmpp."""
    return lib.ringline_version()


def version_string() -> str:
    return ffi.string(lib.ringline_version_string()).decode()


def strerror(err: int) -> str:
    if isinstance(err, bool) or not isinstance(err, int):
        raise TypeError("err must be int")
    if not -(1 << 31) < err < (1 << 31):
        raise ValueError("err out of range")
    return ffi.string(lib.ringline_strerror(err)).decode()


def err_name(err: int) -> str:
    """"ECONNRESET" for 104 or -104; "EUNKNOWN" for codes it does not know."""
    if isinstance(err, bool) or not isinstance(err, int):
        raise TypeError("err must be int")
    if not -(1 << 31) < err < (1 << 31):
        raise ValueError("err out of range")
    return ffi.string(lib.ringline_err_name(err)).decode()


def thread_pin(cpu: int) -> None:
    """Pin the calling thread to one CPU."""
    if isinstance(cpu, bool) or not isinstance(cpu, int):
        raise TypeError("cpu must be int")
    if not 0 <= cpu < (1 << 31):
        raise ValueError("cpu must be >= 0")
    check(lib.ringline_thread_pin(cpu))


def __getattr__(name):
    # `import ringline; ringline.asyncio.new_event_loop()` without importing
    # asyncio for programs that never use it
    if name == "asyncio":
        import importlib
        return importlib.import_module(".asyncio", __name__)
    raise AttributeError(f"module 'ringline' has no attribute {name!r}")
