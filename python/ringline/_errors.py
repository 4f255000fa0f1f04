"""Errors: libringline returns -errno; Python gets OSError(errno, strerror),
which the interpreter maps to its subclasses (ConnectionResetError,
TimeoutError for ETIMEDOUT, BrokenPipeError, FileNotFoundError, ...)."""
from __future__ import annotations

import errno as _errno
import os

__all__ = ["error", "check", "IncompleteReadError"]


def error(code: int, what: str | None = None) -> OSError:
    """OSError for an errno or -errno value (`what` is added as filename)."""
    code = -code if code < 0 else code
    if what is None:
        return OSError(code, os.strerror(code))
    return OSError(code, os.strerror(code), what)


def check(ret: int, what: str | None = None) -> int:
    """Return ret if it is >= 0; raise the OSError it encodes otherwise."""
    if ret < 0:
        raise error(ret, what)
    return ret


def ebadf(what: str = "closed") -> OSError:
    return OSError(_errno.EBADF, os.strerror(_errno.EBADF), what)


class IncompleteReadError(EOFError):
    """The peer closed before recv_exact() got its bytes; .partial has them."""

    def __init__(self, partial: bytes, expected: int):
        super().__init__(f"{len(partial)} bytes read of {expected} expected")
        self.partial = partial
        self.expected = expected

    def __reduce__(self):  # pragma: no cover
        return type(self), (self.partial, self.expected)
