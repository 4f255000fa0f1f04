"""`pip install ./python` works offline against an installed libringline,
and the build's .pth registration makes `import ringline` work with no
environment at all."""
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import PYDIR


def find_pip_python():
    # Debian's interpreter refuses pip outside a venv; a venv of either works
    for py in (sys.executable, shutil.which("python3")):
        if py and subprocess.run([py, "-m", "pip", "--version"], capture_output=True).returncode == 0 \
                and subprocess.run([py, "-m", "venv", "--help"], capture_output=True).returncode == 0:
            return py
    return None


def test_pip_install_offline_against_installed_lib():
    py = find_pip_python()
    if py is None:
        pytest.skip("no interpreter with pip and venv")
    lib = os.environ.get("RINGLINE_LIBRARY")
    if not lib or not os.path.exists(lib):
        pytest.skip("RINGLINE_LIBRARY (set by ctest) is needed to find the build to install")
    build = os.path.dirname(lib)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "prefix")
        r = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        libdir = next(os.path.join(d) for d, _, files in os.walk(prefix) if "libringline.so.0" in files)
        venv = os.path.join(tmp, "venv")
        subprocess.run([py, "-m", "venv", "--system-site-packages", venv], check=True)
        vpy = os.path.join(venv, "bin", "python")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RINGLINE_LIBRARY")}
        env["PIP_NO_INDEX"] = "1"
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        r = subprocess.run([vpy, "-m", "pip", "install", "--no-index", PYDIR], capture_output=True, text=True,
                           env=env, cwd=tmp, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        env["LD_LIBRARY_PATH"] = libdir  # what ldconfig would do for a real install
        code = ("import ringline, ringline.asyncio, sys; print(ringline.__file__); print(ringline.library_path);"
                "print(ringline.version_string())")
        r = subprocess.run([vpy, "-c", code], capture_output=True, text=True, env=env, cwd=tmp)
        assert r.returncode == 0, r.stderr
        out = r.stdout.splitlines()
        assert out[0].startswith(venv), out   # the installed copy, not the source tree
        assert out[1] == "libringline.so.0"


def test_pth_registration_script_is_idempotent():
    with tempfile.TemporaryDirectory() as tmp:
        venv = os.path.join(tmp, "v")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv], check=True)
        vpy = os.path.join(venv, "bin", "python")
        reg = os.path.join(PYDIR, "tools", "register_pth.py")
        for _ in range(2):
            subprocess.run([vpy, reg, PYDIR], check=True, capture_output=True)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        r = subprocess.run([vpy, "-c", "import ringline; print(ringline.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp)
        assert r.returncode == 0 and r.stdout.startswith(PYDIR), r.stderr
        purelib = subprocess.run([vpy, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        pth = os.path.join(purelib, "ringline-dev.pth")
        assert open(pth).read() == PYDIR + "\n"
        subprocess.run([vpy, reg, PYDIR, "--remove"], check=True)
        assert not os.path.exists(pth)
