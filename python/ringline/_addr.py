"""Socket addresses between Python tuples and struct sockaddr bytes."""
from __future__ import annotations

import socket
import struct

from ._ffi import ffi

_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6


def is_numeric(host: str) -> bool:
    for fam in (_AF_INET, _AF_INET6):
        try:
            socket.inet_pton(fam, host)
            return True
        except (OSError, ValueError):
            pass
    return False


def resolve_host(host, port, *, stream=True) -> str:
    """A numeric address for host (libringline accepts only numeric ones).
    Non-numeric names go through getaddrinfo (blocking, like socket.connect)."""
    if not isinstance(host, str):
        raise TypeError(f"host must be str, not {type(host).__name__}")
    if "\0" in host:
        raise ValueError("host contains a NUL character")
    if not host:
        return "0.0.0.0"
    if is_numeric(host):
        return host
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
    if not infos:  # pragma: no cover
        raise OSError(f"cannot resolve {host!r}")
    return infos[0][4][0]


def check_port(port) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be int, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range 0-65535: {port}")
    return port


def pack(addr) -> bytes:
    """(host, port) or (host, port, flowinfo, scope_id) -> sockaddr bytes."""
    if not isinstance(addr, tuple) or len(addr) not in (2, 4):
        raise TypeError("address must be a (host, port) tuple")
    host, port = addr[0], check_port(addr[1])
    host = resolve_host(host, port, stream=False)
    try:
        raw = socket.inet_pton(_AF_INET, host)
        return struct.pack("=H", _AF_INET) + struct.pack("!H4s8x", port, raw)
    except OSError:
        pass
    raw = socket.inet_pton(_AF_INET6, host)
    flow = addr[2] if len(addr) == 4 else 0
    scope = addr[3] if len(addr) == 4 else 0
    return (struct.pack("=H", _AF_INET6) + struct.pack("!HI16s", port, flow, raw)
            + struct.pack("=I", scope))


def unpack(data: bytes):
    """sockaddr bytes -> (host, port) / (host, port, flowinfo, scope_id)."""
    if len(data) < 2:
        return None
    (fam,) = struct.unpack_from("=H", data)
    if fam == _AF_INET and len(data) >= 8:
        port, raw = struct.unpack_from("!H4s", data, 2)
        return (socket.inet_ntop(_AF_INET, raw), port)
    if fam == _AF_INET6 and len(data) >= 28:
        port, flow, raw = struct.unpack_from("!HI16s", data, 2)
        (scope,) = struct.unpack_from("=I", data, 24)
        return (socket.inet_ntop(_AF_INET6, raw), port, flow, scope)
    return data


def from_ptr(ptr, length):
    if ptr == ffi.NULL or not length:
        return None
    return unpack(ffi.buffer(ptr, length)[:])
