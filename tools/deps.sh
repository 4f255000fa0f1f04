#!/bin/sh
# Install the Debian packages ringline needs to build, test and demo, but
# only those missing: a machine that has them all runs no apt-get at all.
set -e
PKGS="build-essential cmake pkg-config liburing-dev libffi-dev lua5.4 liblua5.4-dev
lua-busted python3 python3-cffi python3-pytest"
# optional peers used by tests/demo/benchmarks, listed in tools/deps-extra.txt
if [ -f "$(dirname "$0")/deps-extra.txt" ]; then
    PKGS="$PKGS $(grep -v '^#' "$(dirname "$0")/deps-extra.txt" | tr '\n' ' ')"
fi
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "ringline: installing missing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
