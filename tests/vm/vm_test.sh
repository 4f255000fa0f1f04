#!/bin/bash
# vm_test.sh — the vm.nvme ctest: one VM boot (tests/vm/vm.sh) running, in
# order, the C passthrough/O_DIRECT test (vm_nvme, static), the Lua storage
# objects (Debian's lua5.4 + the built ringline/core.so + libringline, with
# the shared libraries ldd names) and the Python ones (Debian's
# /usr/bin/python3 with exactly the standard-library modules
# `import ringline.storage` loads, plus cffi's _cffi_backend), each against
# the kernel's NVMe driver. Every suite must print its PASS line.
#
#   vm_test.sh SRC BUILD WORK CACHE [extra vm.sh options]
set -u
SRC=$1 BUILD=$2 WORK=$3 CACHE=$4
shift 4
VM=$SRC/tests/vm
NS="/dev/ng0n1:/dev/nvme0n1:512 /dev/ng0n2:/dev/nvme0n2:4096"
ARGS=(--work "$WORK" --cache "$CACHE" --ns 64:512 --ns 64:4096
    --file "$BUILD/tests/vm/vm_nvme:/rl/vm_nvme" --expect "vm_nvme: PASS")
GUEST="/rl/vm_nvme /dev/nvme0 1:512:64 2:4096:64 || rc=1"

LUA=$(command -v lua5.4)
CORE=$BUILD/lua/ringline/core.so
if [ -n "$LUA" ] && [ -f "$CORE" ]; then
    ARGS+=(--dynamic "$LUA:/bin/lua5.4" --dynamic "$CORE:/rl/lua/ringline/core.so"
        --file "$SRC/lua/ringline.lua:/rl/lua/ringline.lua"
        --file "$VM/vm_storage.lua:/rl/vm_storage.lua" --expect "vm_storage.lua: PASS")
    GUEST="$GUEST; /bin/lua5.4 /rl/vm_storage.lua /rl/lua $NS || rc=1"
else
    echo "vm_test.sh: FAIL: lua5.4 or $CORE missing (the Lua half of the VM test cannot run)"
    exit 1
fi

PY=/usr/bin/python3
LIB=$(ldd "$CORE" | awk '/libringline\.so/ {print $3}')
[ -f "$LIB" ] || { echo "vm_test.sh: FAIL: cannot find libringline for $CORE"; exit 1; }
# the interpreter and what the import really loads (tests/vm/py_payload.sh)
if PYARGS=$(bash "$VM/py_payload.sh" "$SRC" "$LIB"); then
    mapfile -t PYARGS <<<"$PYARGS"
    ARGS+=("${PYARGS[@]}")
    ARGS+=(--file "$VM/vm_storage.py:/rl/vm_storage.py"
        --expect "vm_storage.py: PASS")
    GUEST="$GUEST; PYTHONPATH=/rl/py:/usr/lib/python3/dist-packages RINGLINE_LIBRARY=$LIB PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -S /rl/vm_storage.py $NS || rc=1"
else
    echo "vm_test.sh: FAIL: $PY cannot import ringline.storage on the host (python3-cffi missing?)"
    exit 1
fi

exec bash "$VM/vm.sh" "${ARGS[@]}" "$@" -- /bin/sh -c "rc=0; $GUEST; exit \$rc"
