"""The station as a board runs it (``station.main`` in the unix port), driven from both ends:
the technician's console on its stdin/stdout and the gateway on its serial link."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import serial

from tests.fixtures.micropython import MicroPythonRunner
from watershed.contracts import wire as gw


class Console:
    """The station (station.main, as on a board) with the technician on its stdin."""

    def __init__(self, micropython: MicroPythonRunner, compiled: Path, config: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = micropython.start(
            code=f"import station; station.main({str(config)!r})", path=[compiled],
            stdin=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out; last lines: {self.seen[-10:]}") from None
            self.seen.append(line)
            if predicate(line):
                return line

    def command(self, text: str, timeout: float = 60) -> list[str]:
        """The C lines answering ``text`` (up to its "C ok")."""
        assert self.process.stdin is not None
        start = len(self.seen)
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        self.wait_for(lambda line: line == "C ok", timeout)
        return [line for line in self.seen[start:-1] if line.startswith("C ")]


class Gateway:
    """The gateway's end of a station's link: frames out, frames back."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, 9600, timeout=0.1)
        self.decoder = gw.FrameDecoder()

    def ask(self, frame: Any, want: tuple[type, ...], timeout: float = 30) -> list[Any]:
        """Send ``frame``; the frames that come back until each type of ``want`` has."""
        self.port.write(gw.encode_frame(frame))
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while not all(any(isinstance(f, t) for f in got) for t in want):
            assert time.monotonic() < deadline, f"waited for {want}, got {got}"
            got += [f for f in self.decoder.feed(self.port.read(256))
                    if not isinstance(f, gw.FrameError)]
        return got

    def close(self) -> None:
        self.port.close()
