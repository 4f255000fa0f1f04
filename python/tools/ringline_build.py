"""A tiny in-tree PEP 517 build backend (standard library only), so that
`pip install ./python` works offline, without setuptools or wheel being
downloaded into an isolated build environment.

The package is pure Python: ringline/_ringline.py is cffi's out-of-line ABI
module, generated from ringline/_ringline_cdef.h by build_ffi.py and kept in
the tree; libringline itself is opened with dlopen at import time.
"""
import base64
import hashlib
import io
import os
import tarfile
import zipfile

NAME = "ringline"
VERSION = "0.1.0"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(HERE, NAME)
TAG = "py3-none-any"
DIST_INFO = f"{NAME}-{VERSION}.dist-info"

_METADATA = f"""Metadata-Version: 2.1
Name: {NAME}
Version: {VERSION}
Summary: Linux io_uring made usable from Python: ring layer, native async API, asyncio loop
Requires-Python: >=3.9
Requires-Dist: cffi>=1.15
Classifier: Operating System :: POSIX :: Linux
Classifier: Framework :: AsyncIO
Classifier: Typing :: Typed
Description-Content-Type: text/markdown

"""


def _package_files():
    for name in sorted(os.listdir(PKG)):
        if name.endswith((".py", ".pyi", ".h")) or name == "py.typed":
            if name.startswith("_ringline_api"):
                continue
            yield os.path.join(PKG, name), f"{NAME}/{name}"


def _metadata():
    readme = os.path.join(HERE, "README.md")
    body = open(readme).read() if os.path.exists(readme) else ""
    return _METADATA + body


def _record_line(arc, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arc},sha256={digest},{len(data)}"


def _write_dist_info(add):
    add(f"{DIST_INFO}/METADATA", _metadata().encode())
    add(f"{DIST_INFO}/WHEEL", (f"Wheel-Version: 1.0\nGenerator: ringline_build\n"
                               f"Root-Is-Purelib: true\nTag: {TAG}\n").encode())
    add(f"{DIST_INFO}/top_level.txt", f"{NAME}\n".encode())


def _build(wheel_directory, files):
    wheel_name = f"{NAME}-{VERSION}-{TAG}.whl"
    path = os.path.join(wheel_directory, wheel_name)
    records = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        def add(arc, data):
            zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
            records.append(_record_line(arc, data))
        for arc, data in files:
            add(arc, data)
        _write_dist_info(add)
        records.append(f"{DIST_INFO}/RECORD,,")
        zf.writestr(f"{DIST_INFO}/RECORD", "\n".join(records) + "\n")
    return wheel_name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, DIST_INFO)
    os.makedirs(d, exist_ok=True)

    def add(arc, data):
        with open(os.path.join(metadata_directory, arc), "wb") as f:
            f.write(data)
    _write_dist_info(add)
    return DIST_INFO


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for src, arc in _package_files():
        with open(src, "rb") as f:
            files.append((arc, f.read()))
    return _build(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # a .pth pointing at this source tree
    return _build(wheel_directory, [(f"_{NAME}_editable.pth", (HERE + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    base = f"{NAME}-{VERSION}"
    path = os.path.join(sdist_directory, base + ".tar.gz")
    with tarfile.open(path, "w:gz") as tf:
        def add_file(src, arc):
            tf.add(src, arcname=f"{base}/{arc}", recursive=False)
        for rel in ("pyproject.toml", "README.md", "build_ffi.py", "tools/ringline_build.py",
                    "tools/gen_cdef.py"):
            if os.path.exists(os.path.join(HERE, rel)):
                add_file(os.path.join(HERE, rel), rel)
        for src, arc in _package_files():
            add_file(src, arc)
        pkg_info = _metadata().encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(pkg_info)
        tf.addfile(ti, io.BytesIO(pkg_info))
    return os.path.basename(path)
