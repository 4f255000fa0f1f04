#!/usr/bin/env python3
"""Build the private low-level module ringline._ringline (cffi).

    python3 build_ffi.py [OUTDIR]            # ABI mode (default): writes _ringline.py
    python3 build_ffi.py --api INC LIBDIR    # API mode (measurement only): compiles
                                             # _ringline_api.*.so

The declarations live in ringline/_ringline_cdef.h (generated from
include/ringline.h by tools/gen_cdef.py and checked by tests/test_cdef.py).

ABI ("out-of-line dlopen") mode was chosen by measurement: see
docs/python.md. It produces one pure-Python file that both interpreters
(pyenv CPython 3.11 + cffi 2.0, Debian 3.11 + cffi 1.15) import, needs no C
compiler at install time, and loads libringline with dlopen at run time.
"""
import os
import sys

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))
CDEF = os.path.join(HERE, "ringline", "_ringline_cdef.h")


def make_builder(api=False, include_dir=None, lib_dir=None):
    ffibuilder = cffi.FFI()
    with open(CDEF) as f:
        ffibuilder.cdef(f.read())
    if api:
        ffibuilder.set_source(
            "_ringline_api",
            "#include <ringline.h>",
            include_dirs=[include_dir],
            library_dirs=[lib_dir],
            runtime_library_dirs=[lib_dir],
            libraries=["ringline"],
        )
    else:
        ffibuilder.set_source("_ringline", None)
    return ffibuilder


def build_abi(outdir):
    """Write _ringline.py into outdir, only if its content changes (so
    repeated builds are no-ops and never race with a running import)."""
    import tempfile

    ffibuilder = make_builder()
    os.makedirs(outdir, exist_ok=True)
    import contextlib
    import io
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        ffibuilder.emit_python_code(os.path.join(tmp, "_ringline.py"))
        with open(os.path.join(tmp, "_ringline.py")) as f:
            new = f.read()
    dst = os.path.join(outdir, "_ringline.py")
    try:
        with open(dst) as f:
            if f.read() == new:
                return dst
    except OSError:
        pass
    tmpdst = dst + ".tmp%d" % os.getpid()
    with open(tmpdst, "w") as f:
        f.write(new)
    os.replace(tmpdst, dst)
    return dst


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--api":
        b = make_builder(True, sys.argv[2], sys.argv[3])
        print(b.compile(tmpdir=sys.argv[4] if len(sys.argv) > 4 else ".", verbose=False))
    else:
        out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "ringline")
        build_abi(out)
