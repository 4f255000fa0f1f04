"""The cffi declarations match include/ringline.h, and the generated ABI
module is up to date with them."""
import os
import re
import subprocess
import sys
import tempfile

from conftest import PYDIR, REPO

HEADER = os.path.join(REPO, "include", "ringline.h")
CDEF = os.path.join(PYDIR, "ringline", "_ringline_cdef.h")


def functions(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return set(re.findall(r"\b(ringline_\w+)\s*\(", text)) - {"ringline_cqe", "ringline_event"}


def test_every_header_function_is_declared():
    h = open(HEADER).read()
    api = set(re.findall(r"RINGLINE_API[^;]*?\b(ringline_\w+)\s*\(", h, flags=re.S))
    assert len(api) > 100
    declared = functions(open(CDEF).read())
    missing = sorted(api - declared)
    extra = sorted(declared - api)
    assert not missing, f"regenerate with python/tools/gen_cdef.py; missing: {missing}"
    assert not extra, f"declared but not in the header: {extra}"


def test_cdef_is_what_the_generator_makes():
    sys.path.insert(0, os.path.join(PYDIR, "tools"))
    import gen_cdef
    assert gen_cdef.convert(open(HEADER).read()) == open(CDEF).read(), \
        "python/ringline/_ringline_cdef.h is stale: python3 python/tools/gen_cdef.py > python/ringline/_ringline_cdef.h"


def test_generated_abi_module_is_current():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, os.path.join(PYDIR, "build_ffi.py"), d], check=True,
                       stdout=subprocess.DEVNULL)
        new = open(os.path.join(d, "_ringline.py")).read()
    assert new == open(os.path.join(PYDIR, "ringline", "_ringline.py")).read(), \
        "ringline/_ringline.py is stale: run python3 python/build_ffi.py (the build does it)"


def test_fixed_layouts():
    from ringline import ffi
    assert ffi.sizeof("ringline_cqe_t") == 40
    assert ffi.sizeof("ringline_event_t") == 64
    assert ffi.sizeof("ringline_nvme_cmd_t") == 72
    assert ffi.sizeof("struct sockaddr_storage") == 128
    assert ffi.sizeof("struct msghdr") == 56
    assert ffi.offsetof("ringline_event_t", "data") == 32
    assert ffi.offsetof("ringline_cqe_t", "big") == 24


def test_library_version_matches():
    import ringline
    assert ringline.version() >> 16 == 0
    assert ringline.version_string().count(".") == 2
