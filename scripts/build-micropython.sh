#!/usr/bin/env bash
# Build the MicroPython unix port (and mpy-cross) from Debian trixie's source package.
# Bookworm ships no micropython package; trixie's 1.25.0+ds source builds here in ~25 s.
# The machine's own apt sources are left untouched: a private sources list and lists dir are
# passed to apt-get. The binary is cached outside the repo (WATERSHED_CACHE, default
# ~/.cache/watershed) and reused when present.
set -euo pipefail

cache="${WATERSHED_CACHE:-$HOME/.cache/watershed}"
bin="$cache/micropython/micropython"
if [ -x "$bin" ] && "$bin" -c 'import sys; assert sys.implementation.version[:2] == (1, 25)' 2>/dev/null; then
  echo "micropython: cached at $bin"
  exit 0
fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need dpkg-source || ! need make || ! need gcc || ! need pkg-config; then
  echo "micropython: installing build tools (dpkg-dev build-essential pkg-config libffi-dev)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev build-essential pkg-config libffi-dev >/dev/null
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
make -s -C "$tree/ports/unix" -j"$(nproc)" MICROPY_PY_SSL=0 MICROPY_PY_BTREE=0 MICROPY_PY_FFI=0 FROZEN_MANIFEST= >/dev/null
mkdir -p "$cache/micropython"
cp "$tree/ports/unix/build-standard/micropython" "$bin"
cp "$tree/mpy-cross/build/mpy-cross" "$cache/micropython/mpy-cross"
"$bin" -c 'import sys; print("micropython:", sys.version)'
rm -rf "$work"
