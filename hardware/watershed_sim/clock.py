"""Simulated time shared by the harness, the stations and the gateway: ``SimClock`` (wall time ×
speed, hal_unix.Clock) and ``HarnessClock`` (time the harness drives, hal_unix.HarnessClock)."""

from __future__ import annotations

import math
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SimClock:
    """``speed`` times wall time, reading ``sim_epoch`` at wall time ``wall_epoch`` (Unix s)."""

    sim_epoch: int
    speed: int = 1
    wall_epoch: int = field(default_factory=lambda: int(time.time()))

    def now(self) -> float:
        return self.sim_epoch + (time.time() - self.wall_epoch) * self.speed

    def board_config(self) -> dict[str, int]:
        """The clock keys of a unix board's config (firmware/hal_unix.py)."""
        return {"sim_epoch": self.sim_epoch, "wall_epoch": self.wall_epoch, "speed": self.speed}

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed


class HarnessClock:
    """Simulated time the harness drives, so a scenario stores the same readings whether the
    machine is idle or busy (firmware/hal_unix.py: the station's side of it).

    Time moves in steps of at most ``speed`` × the wall time since the last step (and never
    more than four ticks' worth), and only while nothing is under way: no station awake
    (booting, woken, or handed bytes by a link and not yet asleep again), no link carrying
    bytes, no gateway clock reading within the last ``settle_s`` wall seconds (the gateway
    writes the TIME it stamped right after). It never passes a sleeping station's wake time,
    nor a hold point (a timeline event not run yet): each station samples at its slot, and a
    TIME is read at the time it was stamped. A loaded machine makes the run slower, never
    different. Time held is not caught up afterwards. (A STATUS may reach the gateway a
    little later in simulated time than it was sent; the station's clock is the harness's,
    so at most the gateway sets it again, to the same time.)
    """

    def __init__(self, sim_epoch: int, speed: int, folder: Path, *, settle_s: float = 0.02,
                 tick_s: float = 0.002) -> None:
        self.sim_epoch = sim_epoch
        self.speed = speed
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settle_s = settle_s
        self.tick_s = tick_s
        self._ms = sim_epoch * 1000
        self._lock = threading.Lock()
        self._stations: dict[str, _Sleeper] = {}
        self._by_fd: dict[int, _Sleeper] = {}
        self._holds: list[Callable[[], float | None]] = []  # next sim time not to pass, or None
        self._busy: list[Callable[[], bool]] = []  # True while a link carries bytes
        self._last_activity = 0.0
        self.held_s: dict[str, float] = {"settle": 0.0, "awake": 0.0, "link": 0.0}
        self._publish()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="harness-clock", daemon=True)

    def start(self) -> None:
        """Time moves from now on (it stays at ``sim_epoch`` while the harness sets up)."""
        self._thread.start()

    # --- readers ------------------------------------------------------------------------------

    def now(self) -> float:
        return self._ms / 1000

    def gateway_now(self) -> float:
        """The gateway's clock: reading it holds time for ``settle_s``, so what the gateway
        stamps (a TIME frame, a STATUS compared) is still the time when a station reads it."""
        self._last_activity = time.monotonic()
        return self._ms / 1000

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed

    def board_config(self, folder: str) -> dict[str, Any]:
        """The clock keys of a unix board's config; ``folder``: the station's harness folder
        as the station sees it (see attach)."""
        return {"harness": folder, "speed": self.speed, "sim_epoch": self.sim_epoch,
                "wall_epoch": 0}

    # --- participants -------------------------------------------------------------------------

    def attach(self, name: str, folder: Path) -> None:
        """A station about to start: fresh sleep/wake FIFOs in ``folder`` (and ``now``, a link
        to the shared time). It counts as awake until its first sleep request."""
        folder.mkdir(parents=True, exist_ok=True)
        now = folder / "now"
        if not now.is_symlink():
            now.symlink_to(self.folder / "now")
        sleeper = _Sleeper(name, folder)
        with self._lock:
            old = self._stations.pop(name, None)
            if old is not None:
                self._by_fd.pop(old.ask_fd, None)
                old.close()
            self._stations[name] = sleeper
            self._by_fd[sleeper.ask_fd] = sleeper

    def detach(self, name: str) -> None:
        """The station is off (killed, or its process ended): it holds nothing."""
        with self._lock:
            sleeper = self._stations.pop(name, None)
            if sleeper is not None:
                self._by_fd.pop(sleeper.ask_fd, None)
                sleeper.close()

    def woken(self, name: str) -> None:
        """A link is handing bytes to station ``name``: it is awake until it asks to sleep."""
        with self._lock:
            sleeper = self._stations.get(name)
            if sleeper is not None:
                sleeper.awake = True

    def add_hold(self, next_time: Callable[[], float | None]) -> None:
        self._holds.append(next_time)

    def add_busy(self, busy: Callable[[], bool]) -> None:
        self._busy.append(busy)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with self._lock:
            for sleeper in self._stations.values():
                sleeper.close()
            self._stations.clear()
            self._by_fd.clear()

    # --- the scheduler ------------------------------------------------------------------------

    def _publish(self) -> None:
        tmp = self.folder / ".now"
        tmp.write_text(str(self._ms))
        tmp.replace(self.folder / "now")  # a station never reads a half-written time

    def _run(self) -> None:
        poller = select.poll()
        registered: set[int] = set()
        last = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                fds = set(self._by_fd)
            for fd in registered - fds:
                poller.unregister(fd)
            for fd in fds - registered:
                poller.register(fd, select.POLLIN)
            registered = fds
            ready = poller.poll(self.tick_s * 1000)
            with self._lock:
                for fd, _ in ready:
                    sleeper = self._by_fd.get(fd)
                    if sleeper is not None:
                        sleeper.read_requests()
                wall = time.monotonic()
                held = self._held(wall)
                if held:
                    self.held_s[held] += wall - last
                else:
                    limit = self._limit_ms()
                    # A late tick (a loaded machine) moves no further than a few on time.
                    step_s = min(wall - last, 4 * self.tick_s)
                    target = self._ms + int(step_s * self.speed * 1000)
                    new = target if limit is None else min(target, limit)
                    if new > self._ms:
                        self._ms = new
                        self._publish()
                last = wall
                for sleeper in self._stations.values():
                    if not sleeper.awake and sleeper.wake_ms is not None \
                            and sleeper.wake_ms <= self._ms:
                        sleeper.wake()

    def _held(self, wall: float) -> str:
        """Why time may not move now ("" if it may)."""
        if any(s.awake for s in self._stations.values()):
            return "awake"
        if any(busy() for busy in self._busy):
            return "link"
        if wall - self._last_activity < self.settle_s:
            return "settle"
        return ""

    def _limit_ms(self) -> int | None:
        limits = [s.wake_ms for s in self._stations.values() if s.wake_ms is not None]
        for hold in self._holds:
            at = hold()
            if at is not None:
                limits.append(math.ceil(at * 1000))
        return min(limits) if limits else None


class _Sleeper:
    """One station's side of the sleep protocol (firmware/hal_unix.py HarnessClock)."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.awake = True  # booting
        self.wake_ms: int | None = None
        self.unanswered = 0
        for fifo in ("sleep", "wake"):
            path = folder / fifo
            if path.exists() or path.is_symlink():
                path.unlink()
            os.mkfifo(path)
        # read-write ends: opening never blocks, and neither end sees EOF while we hold them
        self.ask_fd = os.open(folder / "sleep", os.O_RDWR | os.O_NONBLOCK)
        self.wake_fd = os.open(folder / "wake", os.O_RDWR | os.O_NONBLOCK)
        self._partial = b""

    def read_requests(self) -> None:
        try:
            data = os.read(self.ask_fd, 4096)
        except BlockingIOError:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if self.unanswered:  # a later request supersedes it: answer it now
                self._answer()
            self.unanswered += 1
            self.wake_ms = int(line)
            self.awake = False

    def wake(self) -> None:
        self.awake = True
        self.wake_ms = None
        self._answer()

    def _answer(self) -> None:
        os.write(self.wake_fd, b"\x01")
        self.unanswered -= 1

    def close(self) -> None:
        for fd in (self.ask_fd, self.wake_fd):
            try:
                os.close(fd)
            except OSError:
                pass
