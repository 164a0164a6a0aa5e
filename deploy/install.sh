#!/bin/sh
# Install the watershed gateway (and optionally the ingest) on a Debian-like system with
# systemd, e.g. Raspberry Pi OS. Run from a checkout, as root:
#
#     sudo deploy/install.sh              # the gateway
#     sudo deploy/install.sh gateway ingest
#
# It creates the `watershed` user (systemd-sysusers), a venv at $PREFIX/.venv with this
# checkout installed, config skeletons in /etc/watershed (never overwriting one that exists;
# mode 0640 root:watershed: they hold passwords), the units, and a size bound on the journal.
# It enables nothing: edit the config, then `systemctl enable --now watershed-gateway`.
#
# DESTDIR=/tmp/root installs into that tree instead (packaging, and the CI test): no user is
# created and nothing is chown'd or reloaded. SKIP_PIP=1 makes the venv without installing
# the package into it (no network). PYTHON picks the interpreter (python3).
set -eu

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/watershed}
PYTHON=${PYTHON:-python3}
SKIP_PIP=${SKIP_PIP:-0}
SRC=$(cd "$(dirname "$0")/.." && pwd)
components=${*:-gateway}

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

for c in $components; do
    case $c in gateway|ingest) ;; *) die "unknown component '$c' (gateway, ingest)";; esac
done
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR to install into a tree)"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than 3.11 (tomllib); install python3.11 or newer"

root=$DESTDIR
install -d -m 0755 "$root/usr/lib/sysusers.d" "$root/etc/systemd/system" \
    "$root/etc/systemd/journald.conf.d" "$root$PREFIX"
install -d -m 0750 "$root/etc/watershed"
install -m 0644 "$SRC/deploy/system/watershed.sysusers" "$root/usr/lib/sysusers.d/watershed.conf"
install -m 0644 "$SRC/deploy/system/journald-watershed.conf" \
    "$root/etc/systemd/journald.conf.d/watershed.conf"
if [ -z "$DESTDIR" ]; then
    systemd-sysusers /usr/lib/sysusers.d/watershed.conf
    chgrp watershed /etc/watershed
fi

say "venv $PREFIX/.venv"
"$PYTHON" -m venv "$root$PREFIX/.venv"
if [ "$SKIP_PIP" != 1 ]; then
    "$root$PREFIX/.venv/bin/pip" install --quiet --upgrade "$SRC"
fi

skeleton() {  # skeleton SOURCE NAME: /etc/watershed/NAME unless it exists
    target="$root/etc/watershed/$2"
    if [ -e "$target" ]; then
        say "keeping $target"
        return
    fi
    install -m 0640 "$1" "$target"
    [ -n "$DESTDIR" ] || chgrp watershed "$target"
    say "wrote $target: edit it"
}

# The station registry both programs can name (`registry = "/etc/watershed/stations.toml"`).
skeleton "$SRC/deploy/stations.toml" stations.toml

for c in $components; do
    case $c in
    gateway)
        skeleton "$SRC/deploy/gateway/gateway.example.toml" gateway.toml
        unit="$SRC/deploy/gateway/watershed-gateway.service" ;;
    ingest)
        skeleton "$SRC/deploy/ingest/ingest.toml" ingest.toml
        unit="$SRC/deploy/ingest/watershed-ingest.service" ;;
    esac
    sed "s|/opt/watershed/.venv|$PREFIX/.venv|g" "$unit" \
        > "$root/etc/systemd/system/$(basename "$unit")"
    chmod 0644 "$root/etc/systemd/system/$(basename "$unit")"
    say "unit $(basename "$unit")"
done

if [ -z "$DESTDIR" ]; then
    systemctl daemon-reload
    systemctl restart systemd-journald
fi
say "done. Next: edit /etc/watershed/*.toml, then systemctl enable --now watershed-<component>"
