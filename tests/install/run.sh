#!/bin/sh
# Install the build into a scratch prefix, then build README.md's C example
# against it twice: through pkg-config, and through find_package(ringline)
# (shared and static). Proves the install layout, the relocatable .pc file,
# the CMake package files, and that the README's example compiles and runs.
set -eu
BUILD=$1
SRC=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SRC/../.." && pwd)
WORK=$BUILD/install-test
rm -rf "$WORK"
mkdir -p "$WORK"
cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null

# the first C block of the README is the example
awk '/^```c$/{f=1;next} /^```$/{if(f){exit}} f' "$REPO/README.md" >"$WORK/readme_example.c"
[ -s "$WORK/readme_example.c" ] || { echo "no C example in README.md"; exit 1; }
cp "$SRC/CMakeLists.txt" "$WORK/"

export PKG_CONFIG_PATH="$WORK/prefix/lib/pkgconfig"
cc "$WORK/readme_example.c" -o "$WORK/via_pkgconfig" $(pkg-config --cflags --libs ringline) \
   -Wl,-rpath,"$WORK/prefix/lib"
out=$("$WORK/via_pkgconfig")
echo "$out"
echo "$out" | grep -q "token 1 -> OK"
echo "$out" | grep -q "token 2 -> ETIME"

cmake -S "$WORK" -B "$WORK/b" -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null
cmake --build "$WORK/b" >/dev/null
LD_LIBRARY_PATH="$WORK/prefix/lib" "$WORK/b/consumer_shared" | grep -q "token 2 -> ETIME"
"$WORK/b/consumer_static" | grep -q "token 2 -> ETIME"
# the static consumer must not need the shared library
! ldd "$WORK/b/consumer_static" | grep -q libringline
echo "install test: pkg-config, find_package shared and static all work"
