#!/usr/bin/env bash
# tests/vm/py_payload.sh SRC LIBRINGLINE
#
# Prints, one per line, the vm.sh arguments that put Debian's python3 and
# what `import ringline.storage` really loads into the initramfs: the
# stdlib modules (and their cached bytecode) and extension modules the
# import pulls in, at their host paths, and the ringline package under
# /rl/py/ringline. Used by tests/vm/vm_test.sh and bench/storage.sh;
# exits non-zero when the import fails on the host (no Python half then).
set -euo pipefail
SRC=$1 LIB=$2
PY=/usr/bin/python3
files=$(RINGLINE_LIBRARY=$LIB PYTHONPATH=$SRC/python:/usr/lib/python3/dist-packages \
    "$PY" -S -c '
import sys, importlib.util, os
import ringline.storage, errno, random, time  # what the guest scripts import
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if not f or f.startswith(sys.argv[1]):
        continue
    print(f)
    if f.endswith(".py"):
        c = importlib.util.cache_from_source(f)
        if os.path.exists(c):
            print(c)
' "$SRC")
for f in $files; do
    case "$f" in
    *.so) printf -- '--dynamic\n%s:%s\n' "$f" "$f" ;;
    *) printf -- '--file\n%s:%s\n' "$f" "$f" ;;
    esac
done
for f in "$SRC"/python/ringline/*.py; do
    printf -- '--file\n%s:/rl/py/ringline/%s\n' "$f" "$(basename "$f")"
done
printf -- '--dynamic\n%s:/usr/bin/python3\n' "$PY"
