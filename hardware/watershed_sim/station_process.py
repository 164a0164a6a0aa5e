"""A station's firmware running in the MicroPython unix port, on its own virtual serial link.

The harness drives what a real site would: ADC counts (files the unix board reads) and the clock
(SimClock). Every reading the firmware stores is printed on its console (``R seq ch time mantissa
exponent flags``); the harness records them as the truth a test compares with InfluxDB.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .clock import HarnessClock, SimClock, StationDrift
from .micropython import micropython_binary
from .serial_link import VirtualSerialLink

log = logging.getLogger(__name__)

Produced = tuple[int, int, int, int, int, int]  # seq, channel, time, mantissa, exponent, flags

# The heap the issue asks the firmware to live within (tests/firmware/test_heap_station.py
# proves it on its full set with headroom); scenario stations run in it too.
HARNESS_HEAP = "48K"


class SimStation:
    def __init__(self, workdir: Path, firmware: Path, clock: SimClock | HarnessClock, *, station_id: str,
                 address: int, basin: str, channels: list[dict[str, Any]], heap: str = HARNESS_HEAP,
                 link: VirtualSerialLink | None = None, port: str | None = None,
                 extra: dict[str, Any] | None = None,
                 drift: StationDrift | None = None,
                 unread: Callable[[], int] | None = None) -> None:
        """``port``: the station end of a link the caller owns (a bus, a radio); otherwise the
        station gets a VirtualSerialLink of its own (``link``), closed with it. ``extra``: more
        top-level config keys (event, quality, …); ``drift``: a clock of its own (clock.py);
        ``unread``: the bytes of its port it has not read yet (the harness waits for them)."""
        self.workdir = workdir
        self.firmware = firmware  # folder of compiled .mpy modules
        self.clock = clock
        self.station_id = station_id
        self.claims: str | None = None  # another id its config says (a technician's slip)
        self.unread = unread
        self.address = address
        self.basin = basin
        self.channels = channels
        self.extra = extra or {}
        self.drift = drift
        self.heap = heap
        self.link = None if port else (link or VirtualSerialLink())
        self.port = port or self.link.station_path  # type: ignore[union-attr]
        self.data_dir = workdir / "flash"
        self.io_dir = workdir / "io"
        self.harness_dir = workdir / "harness"  # with a HarnessClock: the sleep/wake FIFOs
        self.produced: list[Produced] = []
        self.console: list[str] = []
        self.crashes: list[int] = []  # exit statuses of firmware runs that ended by themselves
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        for d in (self.data_dir, self.io_dir):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def gateway_port(self) -> str:
        if self.link is None:
            raise ValueError(f"{self.station_id}: its link is owned elsewhere")
        return self.link.gateway_path

    def set_adc(self, pin: int, raw: int) -> None:
        # Write then rename, so the firmware never reads a half-written count.
        tmp = self.io_dir / f".adc{pin}"
        tmp.write_text(f"{raw}\n")
        tmp.replace(self.io_dir / f"adc{pin}")

    def config(self) -> dict[str, Any]:
        clock = (self.clock.board_config(self.harness_dir.name)
                 if isinstance(self.clock, HarnessClock) else self.clock.board_config())
        return {
            "station": self.claims or self.station_id, "address": self.address,
            "basin": self.basin,
            # relative to the station's folder, where it runs: short paths, as on a board
            "board": {"name": "unix", "data_dir": self.data_dir.name, "io_dir": self.io_dir.name,
                      **clock},
            "link": {"port": self.port, "baud": 9600},
            "channels": self.channels,
            **self.extra,
        }

    def start(self) -> None:
        (self.workdir / "config.json").write_text(json.dumps(self.config()))
        # The modules as a board holds them, in lib/ under the folder it runs in: a module's
        # path is interned for its __file__, so a long one would cost heap a board never spends.
        lib = self.workdir / "lib"
        if not lib.exists():
            lib.symlink_to(self.firmware.resolve(), target_is_directory=True)
        env = dict(os.environ, MICROPYPATH="lib")
        if isinstance(self.clock, HarnessClock):
            self.clock.attach(self.station_id, self.harness_dir, self.drift, self.unread)
        self._process = subprocess.Popen(
            [str(micropython_binary()), "-X", f"heapsize={self.heap}", "-c",
             "import station; station.main('config.json')"],
            cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read_console, args=(self._process,),
                                        name=f"console-{self.station_id}", daemon=True)
        self._reader.start()

    def _read_console(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        in_traceback = False
        for line in process.stdout:
            line = line.rstrip("\n")
            self.console.append(line)
            parts = line.split()
            if len(parts) == 7 and parts[0] == "R":
                self.produced.append(tuple(int(p) for p in parts[1:]))  # type: ignore[arg-type]
            elif in_traceback or (parts and parts[0] in ("E", "Traceback")):
                log.warning("%s: %s", self.station_id, line)
                # A traceback goes on with indented lines and ends with the exception's line.
                in_traceback = parts[:1] == ["Traceback"] or line.startswith(" ")
        code = process.wait()
        if process is self._process and isinstance(self.clock, HarnessClock):
            self.clock.detach(self.station_id)  # it is off: it holds no time
        if code not in (0, -9, -15) and process is self._process:
            self.crashes.append(code)
            log.error("%s: the firmware exited with status %s (last lines: %s)",
                      self.station_id, code, self.console[-3:])

    def faults(self) -> list[str]:
        """Crashes (exit statuses) and out-of-memory lines from this station's console."""
        found = [f"{self.station_id}: exited with status {code}" for code in self.crashes]
        return found + [f"{self.station_id}: {line.strip()}" for line in self.console
                        if "MemoryError" in line or "memory allocation failed" in line]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, kill: bool = False) -> None:
        """End the firmware process (SIGKILL with ``kill``: a power cut)."""
        if self._process is None:
            return
        if kill:
            self._process.kill()
        else:
            self._process.terminate()
        self._process.wait(timeout=10)
        if isinstance(self.clock, HarnessClock):
            self.clock.detach(self.station_id)
        if self._reader:
            self._reader.join(timeout=5)
        self._process = None

    def close(self) -> None:
        self.stop()
        if self.link is not None:
            self.link.close()
