"""The gateway and the ingest as the real commands (``watershed gateway|ingest --config``), each
its own process that the chaos run kills with SIGKILL and starts again on the same config, store
and dead-letter file; and the small disk the gateway's store lives on, which the run fills.

The process lifecycle (start, stop, kill, restart, log file, log tail) is devservers' own.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from watershed.devservers import _DevServer

log = logging.getLogger(__name__)


class WatershedDaemon(_DevServer):
    """``python -m watershed.cli <command> --config <workdir>/<command>.toml``."""

    debian_package = "(none: the watershed package itself)"

    def __init__(self, workdir: Path, command: str, config_text: str) -> None:
        # No port of its own: 0 is never accepting, so devservers' "port in use" check passes.
        super().__init__(workdir, port=0, binary=sys.executable)
        self.name = command
        self.config_text = config_text

    def _write_config(self) -> Path:
        path = self.workdir / f"{self.name}.toml"
        path.write_text(self.config_text)
        return path

    def _command(self, binary: str, config: Path) -> list[str]:
        return [binary, "-m", "watershed.cli", self.name, "--config", str(config)]

    def _is_ready(self) -> bool:
        return True  # running is ready: what it does next (connect, poll) is what is tested

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()


def toml_value(value: object) -> str:
    """A TOML value for a string, number, boolean or list of them (JSON spells them alike)."""
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def toml_table(header: str, values: dict[str, object]) -> str:
    return "\n".join([header, *(f"{k} = {toml_value(v)}" for k, v in values.items())]) + "\n"


def gateway_toml(gateway_id: str, store: Path, broker_port: int,
                 links: list[tuple[str, list[int]]], stations: list[tuple[str, int]],
                 poll_interval_s: float) -> str:
    parts = [
        toml_table("[gateway]", {"id": gateway_id, "store": str(store),
                                 "health_interval_s": 1.0}),
        # Loopback: confirmations come within a second, so evidence of loss can be taken sooner.
        toml_table("[mqtt]", {"host": "127.0.0.1", "port": broker_port, "reconnect_min_s": 0.2,
                              "reconnect_max_s": 2.0, "confirm_grace_s": 3.0}),
    ]
    for port, addresses in links:
        parts.append(toml_table("[[link]]", {
            "port": port, "baud": 115200, "stations": addresses,
            "poll_interval_s": poll_interval_s, "reply_timeout_s": 0.5,
            "status_interval_s": 2.0, "backfill_interval_s": 1.0}))
    for station_id, address in stations:
        parts.append(toml_table("[[station]]", {"id": station_id, "address": address,
                                                "basin": "chaos"}))
    return "\n".join(parts)


def ingest_toml(ingest_id: str, deadletter: Path, broker_port: int, influx_url: str,
                database: str) -> str:
    return "\n".join([
        toml_table("[ingest]", {"id": ingest_id, "deadletter_file": str(deadletter),
                                "status_interval_s": 1.0}),
        toml_table("[mqtt]", {"host": "127.0.0.1", "port": broker_port}),
        toml_table("[influx]", {"api": "v1", "url": influx_url, "database": database,
                                "flush_interval_s": 0.2, "timeout_s": 5.0}),
    ])


class SmallDisk:
    """A tmpfs of ``size_mb`` mounted at ``path`` (root only), and a filler file that takes all
    of its free space while the disk is "full". ``mount()`` says why not when it cannot."""

    FILLER = ".chaos-filler"

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.mounted = False

    def mount(self) -> str | None:
        """None when mounted, else the reason it is not (not root, no mount permission)."""
        if os.geteuid() != 0:
            return "not root: cannot mount a tmpfs"
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs",
                               str(self.path)], capture_output=True, text=True)
        if done.returncode != 0:
            return f"mount failed: {done.stderr.strip() or done.returncode}"
        self.mounted = True
        return None

    def fill(self) -> int:
        """Take every free byte; returns how many were taken."""
        taken = 0
        chunk = b"\0" * (1 << 20)
        fd = os.open(self.path / self.FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while len(chunk) >= 512:
                try:
                    taken += os.write(fd, chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    chunk = chunk[:len(chunk) // 4]
        finally:
            os.close(fd)
        return taken

    def free(self) -> None:
        try:
            (self.path / self.FILLER).unlink()
        except FileNotFoundError:
            pass

    def unmount(self) -> None:
        if self.mounted:
            done = subprocess.run(["umount", "-l", str(self.path)], capture_output=True,
                                  text=True)
            if done.returncode != 0:
                log.warning("umount %s: %s", self.path, done.stderr.strip())
            self.mounted = False


class Supervisor:
    """Starts a daemon again when it exits on its own, as systemd does (Restart=always, but
    after ``restart_s`` rather than the units' 5 s, and not after exit status 2, a bad config,
    as RestartPreventExitStatus=2). A daemon that a fault holds down (``hold``) is left alone.
    ``exits`` counts the exits it saw, by daemon and status."""

    def __init__(self, daemons: list[WatershedDaemon], restart_s: float = 1.0) -> None:
        self.daemons = daemons
        self.restart_s = restart_s
        self.exits: Counter[str] = Counter()
        self.refused: list[str] = []  # exited with status 2: not started again
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def hold(self, daemon: WatershedDaemon) -> None:
        """Kill it and keep it down until ``release``."""
        with self._lock:
            self._held.add(daemon.name)
            daemon.kill()

    def release(self, daemon: WatershedDaemon) -> None:
        with self._lock:
            if not daemon.running:
                daemon.start()
            self._held.discard(daemon.name)

    def _run(self) -> None:
        while not self._stop.wait(self.restart_s):
            with self._lock:
                for daemon in self.daemons:
                    if daemon.name in self._held or daemon.running or daemon.name in self.refused:
                        continue
                    code = daemon.returncode
                    if code is None:  # never started
                        continue
                    self.exits[f"{daemon.name} exit {code}"] += 1
                    log.warning("chaos: %s exited by itself (status %s); starting it again",
                                daemon.name, code)
                    if code == 2:
                        self.refused.append(daemon.name)
                        continue
                    daemon.start()
