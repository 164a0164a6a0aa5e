#!/usr/bin/env bash
# Install the Debian packages the project needs: the real servers the pipeline and the tests
# talk to (mosquitto, influxd 1.x), Python's venv, the toolchain that builds the MicroPython unix
# port (32-bit: gcc-multilib), and systemd (for `systemd-analyze verify` of the units in deploy/).
# Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(mosquitto influxdb python3 python3-venv python3-dev dpkg-dev build-essential gcc-multilib
          pkg-config libffi-dev git ca-certificates openssl systemd e2fsprogs mount)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "system packages: installing ${missing[*]}"
$sudo apt-get update -qq
# The packages' own services are not wanted: fixtures and the demo start private instances.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for svc in mosquitto influxdb; do
  $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
echo "system packages: done"
