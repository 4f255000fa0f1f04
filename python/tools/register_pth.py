#!/usr/bin/env python3
"""Make `import ringline` work in this interpreter without installing:
write ringline-dev.pth (one line: the source python/ directory) into the
interpreter's site-packages. Idempotent: rewrites only when the content
differs; says so and exits 0 when the directory is not writable (then use
`source build/ringline-env.sh`, or `pip install ./python`).

    python3 register_pth.py /path/to/ringline/python [--remove]
"""
import os
import site
import sys
import sysconfig

NAME = "ringline-dev.pth"


def target_dir():
    purelib = sysconfig.get_path("purelib")
    if purelib and os.path.isdir(purelib):
        return purelib
    for d in site.getsitepackages():  # pragma: no cover
        if os.path.isdir(d):
            return d
    return None


def main():
    src = os.path.abspath(sys.argv[1])
    remove = "--remove" in sys.argv
    d = target_dir()
    if d is None:
        print(f"ringline: no site-packages for {sys.executable}; skipped")
        return 0
    path = os.path.join(d, NAME)
    if remove:
        if os.path.exists(path):
            os.unlink(path)
        return 0
    want = src + "\n"
    try:
        with open(path) as f:
            if f.read() == want:
                return 0
    except OSError:
        pass
    try:
        tmp = path + f".tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(want)
        os.replace(tmp, path)
        print(f"ringline: {sys.executable} now imports ringline from {src} ({path})")
    except OSError as e:
        print(f"ringline: cannot write {path} ({e.strerror}); "
              f"use `source <build>/ringline-env.sh` or `pip install ./python`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
