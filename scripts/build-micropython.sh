#!/usr/bin/env bash
# Build the MicroPython unix port (and mpy-cross) from Debian trixie's source package.
# Bookworm ships no micropython package; trixie's 1.25.0+ds source builds here in ~25 s.
# The unix port is built 32-bit (MICROPY_FORCE_32BIT, needs gcc-multilib): the stations' MCUs
# (ESP32, RP2040) have 32-bit words, so objects and pointers take the same room as on a board
# and `-X heapsize=48K` means what it means there. A 64-bit build needs ~40% more heap.
# mpy-cross stays native: .mpy files do not depend on the word size.
# The machine's own apt sources are left untouched: a private sources list and lists dir are
# passed to apt-get. The binary is cached outside the repo (WATERSHED_CACHE, default
# ~/.cache/watershed) and reused when present.
set -euo pipefail

cache="${WATERSHED_CACHE:-$HOME/.cache/watershed}"
bin="$cache/micropython/micropython"
# The cache is good only if it is 1.25 and 32-bit (an older cache holds a 64-bit build).
if [ -x "$bin" ] && "$bin" -c 'import sys; assert sys.implementation.version[:2] == (1, 25) and sys.maxsize == 2**31 - 1' 2>/dev/null; then
  echo "micropython: cached at $bin"
  exit 0
fi
[ -x "$bin" ] && echo "micropython: the cached build is not a 32-bit 1.25 one: rebuilding"

need() { command -v "$1" >/dev/null 2>&1; }
multilib() { echo 'int main(void){return 0;}' | gcc -m32 -x c -o /dev/null - 2>/dev/null; }
if ! need dpkg-source || ! need make || ! need gcc || ! need pkg-config || ! multilib; then
  echo "micropython: installing build tools (dpkg-dev build-essential gcc-multilib pkg-config libffi-dev)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev build-essential gcc-multilib pkg-config libffi-dev >/dev/null
fi

work="$cache/build"
rm -rf "$work"
mkdir -p "$work/lists/partial" "$work/src"
echo "deb-src http://deb.debian.org/debian trixie main" > "$work/trixie-src.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/trixie-src.list" -o "Dir::Etc::SourceParts=-"
          -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
echo "micropython: fetching trixie source package"
apt-get "${apt_opts[@]}" update -qq
(cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only -qq "micropython=1.25.0+ds-1" \
  || apt-get "${apt_opts[@]}" source --download-only -qq micropython)
(cd "$work/src" && dpkg-source -x --no-check ./*.dsc tree >/dev/null)
tree="$work/src/tree"
echo "micropython: building mpy-cross and the unix port"
make -s -C "$tree/mpy-cross" -j"$(nproc)" >/dev/null
make -s -C "$tree/ports/unix" -j"$(nproc)" MICROPY_FORCE_32BIT=1 MICROPY_PY_SSL=0 MICROPY_PY_BTREE=0 \
  MICROPY_PY_FFI=0 FROZEN_MANIFEST= >/dev/null
built="$tree/ports/unix/build-standard/micropython"
"$built" -c 'import sys; assert sys.maxsize == 2**31 - 1, "not a 32-bit build"'
mkdir -p "$cache/micropython"
# Copy beside, then rename: a test running meanwhile never sees a half-written binary.
cp "$built" "$bin.new" && mv -f "$bin.new" "$bin"
cp "$tree/mpy-cross/build/mpy-cross" "$cache/micropython/mpy-cross.new"
mv -f "$cache/micropython/mpy-cross.new" "$cache/micropython/mpy-cross"
"$bin" -c 'import sys; print("micropython:", sys.version, "(%d-bit)" % (32 if sys.maxsize == 2**31 - 1 else 64))'
rm -rf "$work"
