"""Loads the private low-level module: ``ffi`` (types) and ``lib`` (libringline).

``ffi`` comes from the out-of-line ABI module ``ringline._ringline`` that
``build_ffi.py`` generates from ``_ringline_cdef.h`` (kept in the tree, so no
C compiler or cffi parser is needed to install or import). ``lib`` is
libringline itself, opened with dlopen. Where it is looked for, in order:

1. ``$RINGLINE_LIBRARY`` (a path), when set;
2. in a source checkout (this package inside ``<repo>/python/``): the default
   build directory ``<repo>/build/`` that ``make`` uses, then any other
   ``<repo>/build*/`` directory, most recently built first;
3. the installed library: ``libringline.so.0`` through the dynamic linker,
   then ``<prefix>/lib`` and ``/usr/local/lib`` (``make install``'s default,
   which the linker cache may not know yet).
"""
from __future__ import annotations

import glob
import os
import sys

try:
    from ._ringline import ffi
except ImportError:  # pragma: no cover - generated file missing: parse the cdef
    import cffi

    ffi = cffi.FFI()
    with open(os.path.join(os.path.dirname(__file__), "_ringline_cdef.h")) as _f:
        ffi.cdef(_f.read())

SONAME = "libringline.so.0"
ABI_MAJOR = 0
MIN_VERSION = 0x000100  # 0.1.0: the ABI this package was written against


def _candidates():
    env = os.environ.get("RINGLINE_LIBRARY")
    if env:
        yield env
        return
    pkg = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(pkg))
    if os.path.isfile(os.path.join(repo, "include", "ringline.h")):
        default = os.path.join(repo, "build", SONAME)
        yield default
        others = [p for p in glob.glob(os.path.join(repo, "build*", SONAME)) if p != default]
        others.sort(key=lambda p: os.path.getmtime(p), reverse=True)
        yield from others
    yield SONAME
    for d in (os.path.join(sys.prefix, "lib"), "/usr/local/lib",
              "/usr/local/lib64", "/usr/lib64"):
        yield os.path.join(d, SONAME)


def _load():
    tried = []
    for cand in _candidates():
        if os.sep in cand and not os.path.exists(cand):
            tried.append(cand + " (missing)")
            continue
        try:
            lib = ffi.dlopen(cand)
        except OSError as e:
            tried.append(f"{cand} ({e})")
            continue
        v = lib.ringline_version()
        if (v >> 16) != ABI_MAJOR or v < MIN_VERSION:
            tried.append(f"{cand} (version {v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF} "
                         f"is not ABI compatible with {ABI_MAJOR}.x >= 0.1.0)")
            continue
        return lib, cand
    raise ImportError(
        "ringline: cannot load libringline. Build it (`make` in the source "
        "tree), install it (`make install`), or set RINGLINE_LIBRARY to its "
        "path. Tried:\n  " + "\n  ".join(tried))


lib, library_path = _load()
