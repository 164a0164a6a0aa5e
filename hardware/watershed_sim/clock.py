"""Simulated time shared by the harness, the stations and the gateway: ``SimClock`` (wall time ×
speed, hal_unix.Clock) and ``HarnessClock`` (time the harness drives, hal_unix.HarnessClock)."""

from __future__ import annotations

import logging
import math
import mmap
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watershed.contracts import wire

from .waker import Waker

log = logging.getLogger(__name__)


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


class SharedTime:
    """The harness's time for the gateway's own process (gateway_host.py): the simulated ms
    and what the links' clock is made of (HarnessClock.link_monotonic), in a file both
    processes map. One writer, under the clock's lock; a reader asks again while the sequence
    number is odd or moved, as the writer was between its two increments."""

    _LAYOUT = struct.Struct("<Qqdd")  # sequence, simulated ms, undriven s, undriven since
    _DRIVEN = float("nan")  # "undriven since": the harness drives time now

    def __init__(self, path: Path, speed: int, *, create: bool = False) -> None:
        self.path = Path(path)
        self.speed = speed
        if create:
            self.path.write_bytes(bytes(self._LAYOUT.size))
        with open(self.path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), self._LAYOUT.size)
        self._seq = 0

    def write(self, ms: int, undriven_s: float, undriven_since: float | None) -> None:
        struct.pack_into("<Q", self._map, 0, self._seq + 1)  # odd: being written
        self._LAYOUT.pack_into(self._map, 0, self._seq + 1, ms, undriven_s,
                               self._DRIVEN if undriven_since is None else undriven_since)
        self._seq += 2
        struct.pack_into("<Q", self._map, 0, self._seq)

    def read(self) -> tuple[int, float, float | None]:
        while True:
            seq, ms, undriven_s, since = self._LAYOUT.unpack_from(self._map, 0)
            if seq % 2 == 0 and struct.unpack_from("<Q", self._map, 0)[0] == seq:
                return ms, undriven_s, None if math.isnan(since) else since

    def now(self) -> float:
        return self.read()[0] / 1000

    def link_monotonic(self) -> float:
        return links_clock(*self.read(), self.speed)

    def close(self) -> None:
        self._map.close()


def links_clock(ms: int, undriven_s: float, undriven_since: float | None, speed: int) -> float:
    """The gateway links' monotonic clock (HarnessClock.link_monotonic) from its parts."""
    return (ms / 1000 / speed + undriven_s
            + (0.0 if undriven_since is None else time.monotonic() - undriven_since))


class HarnessClock:
    """Simulated time the harness drives in lock-step with the gateway's polls, so a scenario
    stores the same readings whether the machine is idle or busy (firmware/hal_unix.py: the
    station's side of it).

    Time moves only when every link of the gateway is about to begin a poll cycle (the gateway
    says so: ``before_cycle``) and no station is awake or has bytes of its link unread, so a
    TIME is stamped and applied at one simulated instant even when the gateway gave up
    waiting for the station's RESULT, and a reply never straddles a step. Each such moment
    moves time by up to ``step_s`` simulated seconds (``speed`` × the poll interval), in
    steps from one station's wake time to the next, each station sampling before time goes
    on (a station is awake from its wake, or from the moment bytes on its link woke it,
    until its next sleep request); never past a hold point (a timeline event not run yet)
    nor the run's end (``stop_at``). A cycle's polls all happen at one instant: each
    station is polled once a step, and a backlog drains without time moving. The barrier is
    the links' pace (they wait out no poll interval of their own), their schedules run on
    ``link_monotonic``, and a reply the harness knows cannot come (``link_quiet``) is not
    waited for.
    A station that has booted holds time until the gateway has polled it once after it was
    up: it gets HELLO and TIME before its first sample. A loaded machine makes the run slower,
    never different; an idle one is as fast as the gateway polls and the stations sample.
    """

    def __init__(self, sim_epoch: int, speed: int, folder: Path, *, step_s: float,
                 quiet_timeout_s: float = 60.0, absent_after_s: float = 10.0) -> None:
        self.sim_epoch = sim_epoch
        self.speed = speed
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.step_ms = max(1, int(step_s * 1000))
        self.quiet_timeout_s = quiet_timeout_s  # a station that never sleeps again: logged
        self.absent_after_s = absent_after_s  # a link that stopped polling is not waited for
        self._ms = sim_epoch * 1000
        self._cond = threading.Condition()
        self._stations: dict[str, _Sleeper] = {}
        self._by_fd: dict[int, _Sleeper] = {}
        self._addresses: dict[tuple[str, int], str] = {}  # (gateway port, address) -> station
        self._holds: list[Callable[[], float | None]] = []  # next sim time not to pass, or None
        self._on_step: list[Callable[[float], None]] = []  # told each new time, stations asleep
        self._links: dict[str, float] = {}  # gateway port -> monotonic time of its last POLL
        # gateway port -> (True while the link carries bytes, bytes its gateway end has unread)
        self._link_bytes: dict[str, tuple[Callable[[], bool], Callable[[], int]]] = {}
        self._arrived: set[str] = set()  # links at the barrier of this generation
        self._generation = 0
        self._advancing = False
        self._running = False
        # wall time moves the links' clock while the harness does not drive time (released,
        # or at the run's end): link_monotonic
        self._undriven_since: float | None = None
        self._undriven_s = 0.0
        self._end_ms: int | None = None  # time goes no further (stop_at)
        self.steps = 0  # barriers at which time moved
        self.held_s: dict[str, float] = {"awake": 0.0, "link": 0.0, "timeline": 0.0,
                                         "barrier": 0.0}
        self.time_map = SharedTime(self.folder / "time.map", speed, create=True)
        self._publish()
        self._stop = threading.Event()
        self._waker = Waker()  # tells the reader its FIFOs changed
        self._thread = threading.Thread(target=self._read_requests, name="harness-clock",
                                        daemon=True)

    def start(self) -> None:
        """Time moves from now on (it stays at ``sim_epoch`` while the harness sets up)."""
        self._running = True
        self._thread.start()

    # --- readers ------------------------------------------------------------------------------

    def now(self) -> float:
        return self._ms / 1000

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed

    def board_config(self, folder: str) -> dict[str, Any]:
        """The clock keys of a unix board's config; ``folder``: the station's harness folder
        as the station sees it (see attach)."""
        return {"harness": folder, "speed": self.speed, "sim_epoch": self.sim_epoch,
                "wall_epoch": 0}

    # --- participants -------------------------------------------------------------------------

    def add_link(self, gateway_port: str, addresses: dict[int, str],
                 busy: Callable[[], bool] = lambda: False,
                 gateway_unread: Callable[[], int] = lambda: 0) -> None:
        """A link the gateway polls (its port path), its stations by address, ``busy`` (True
        while it carries bytes: time holds) and ``gateway_unread`` (bytes at the gateway's
        end it has not read: a reply still coming in, link_quiet)."""
        with self._cond:
            self._links[gateway_port] = time.monotonic()
            self._link_bytes[gateway_port] = (busy, gateway_unread)
            for addr, station in addresses.items():
                self._addresses[(gateway_port, addr)] = station

    def gateway_port(self, open_port: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``open_port`` for the gateway (daemon.Gateway): its ports, each POLL it writes
        noted (a station polled since it booted lets time move)."""
        return poll_watched(open_port, self.on_poll, self.link_quiet)

    def attach(self, name: str, folder: Path, drift: StationDrift | None = None,
               unread: Callable[[], int] | None = None) -> None:
        """A station about to start: fresh sleep/wake FIFOs in ``folder`` (and ``now``, a link
        to the shared time, or with ``drift`` a time of its own). It counts as awake until its
        first sleep request, and holds time until the gateway has polled it. ``unread``: the
        bytes waiting in its link's port that it has not read (it holds time while any do)."""
        folder.mkdir(parents=True, exist_ok=True)
        now = folder / "now"
        if drift is None and not now.is_symlink():
            now.symlink_to(self.folder / "now")
        elif drift is not None and now.is_symlink():
            now.unlink()
        sleeper = _Sleeper(name, folder, drift, unread)
        sleeper.publish(self._ms)
        with self._cond:
            old = self._stations.pop(name, None)
            if old is not None:
                self._by_fd.pop(old.ask_fd, None)
                old.close()
            self._stations[name] = sleeper
            self._by_fd[sleeper.ask_fd] = sleeper
            self._cond.notify_all()
        self._waker.wake()

    def detach(self, name: str) -> None:
        """The station is off (killed, or its process ended): it holds nothing."""
        with self._cond:
            sleeper = self._stations.pop(name, None)
            if sleeper is not None:
                self._by_fd.pop(sleeper.ask_fd, None)
                sleeper.close()
            self._cond.notify_all()
        self._waker.wake()

    def add_hold(self, next_time: Callable[[], float | None]) -> None:
        self._holds.append(next_time)

    def on_step(self, listener: Callable[[float], None]) -> None:
        """``listener(now)`` after each move of time, before any station wakes: every station
        sleeps, so inputs (pin edges, register images) change between its readings only."""
        self._on_step.append(listener)

    def stop_at(self, sim_time: float) -> None:
        """Time goes no further than ``sim_time`` (a run's end): the stations due then are
        woken and sample; later barriers leave time there, and the links keep their own
        pace again."""
        with self._cond:
            self._end_ms = math.floor(sim_time * 1000)
            self._cond.notify_all()

    def release(self) -> None:
        """Time stops moving and polls pass the barrier freely (the run is ending)."""
        with self._cond:
            self._running = False
            self._driven(False)
            self._cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self.release()
        self._waker.wake()
        if self._thread.is_alive():
            self._thread.join(5)
        with self._cond:
            for sleeper in self._stations.values():
                sleeper.close()
            self._stations.clear()
            self._by_fd.clear()
        self._waker.close()
        self.time_map.close()

    # --- the barrier --------------------------------------------------------------------------

    def before_cycle(self, link: str) -> bool:
        """The gateway's ``link`` is about to begin a poll cycle (daemon.Gateway's
        ``before_cycle``): the last thread of the links to get here moves time; the others
        wait for it. True while the harness drives time: the barrier is the link's pace, it
        waits out no poll interval of its own (after ``release``, it does)."""
        with self._cond:
            if not self._running:
                return self._driven(False)
            self._links[link] = time.monotonic()
            generation = self._generation
            self._arrived.add(link)
            waited = time.monotonic()
            while self._generation == generation and self._running:
                if not self._advancing and self._arrived >= self._present_links():
                    self._held("barrier", waited)
                    self._advancing = True  # the others wait (the lock is let go while it waits)
                    try:
                        self._advance()
                    finally:
                        self._advancing = False
                        self._arrived.clear()
                        self._generation += 1
                        self._cond.notify_all()
                    break
                self._cond.wait(0.5)
            return self._driven(self._running and (self._end_ms is None
                                                   or self._ms < self._end_ms))

    def link_monotonic(self) -> float:
        """The gateway links' monotonic clock (daemon.Gateway's ``link_monotonic``: their poll
        schedule, commit slots, STATUS and backfill timers): simulated time over ``speed``,
        so a step is one poll interval; while time stands at the run's end or after
        ``release``, wall time moves it (the drain's polls keep the link's own pace and its
        commits)."""
        return links_clock(self._ms, self._undriven_s, self._undriven_since, self.speed)

    def _driven(self, driven: bool) -> bool:
        """Whether the harness paces the links now (under the lock); the wall moves their
        clock while it does not."""
        if driven and self._undriven_since is not None:
            self._undriven_s += time.monotonic() - self._undriven_since
            self._undriven_since = None
            self._share()
        elif not driven and self._undriven_since is None:
            self._undriven_since = time.monotonic()
            self._share()
        return driven

    def _share(self) -> None:
        self.time_map.write(self._ms, self._undriven_s, self._undriven_since)

    def on_poll(self, link: str, addr: int) -> None:
        """The gateway is writing a POLL to station ``addr`` on ``link`` (_PollWatch)."""
        with self._cond:
            self._links[link] = time.monotonic()  # polling: present, if slow
            self._mark_polled(link, addr)

    def link_quiet(self, link: str) -> bool:
        """No byte can reach the gateway on ``link`` before it writes again: every station on
        it is asleep with none of its bytes unread, and the link carries nothing (time moves
        only at the barrier, so no station wakes meanwhile)."""
        with self._cond:
            known = self._link_bytes.get(link)
            if known is None or known[0]() or known[1]() > 0:
                return False
            sleepers = [s for (port, _), name in self._addresses.items() if port == link
                        and (s := self._stations.get(name)) is not None]
            for sleeper in sleepers:
                self._take_requests(sleeper)
            return not any(s.awake or s.unread is not None and s.unread() for s in sleepers)

    def _present_links(self) -> set[str]:
        """Links whose thread polls: one silent for ``absent_after_s`` (its port failed and is
        being reopened) is not waited for."""
        now = time.monotonic()
        return {link for link, at in self._links.items() if now - at < self.absent_after_s}

    def _mark_polled(self, link: str, addr: int) -> None:
        station = self._addresses.get((link, addr))
        sleeper = self._stations.get(station) if station else None
        if sleeper is not None and sleeper.booted:
            sleeper.polled = True

    # --- moving time (under the lock, on the thread of the last link at the barrier) ----------

    def _advance(self) -> None:
        if any(not s.polled for s in self._stations.values()):
            return  # a station is up but not yet polled: it gets TIME before it samples
        target = self._ms + self.step_ms
        if self._end_ms is not None:
            target = max(self._ms, min(target, self._end_ms))
        while self._running:
            if not self._wait_quiet():
                return
            if any(not s.polled for s in self._stations.values()):
                return  # one booted (a power cut ended): it is polled first
            limit = self._limit_ms(target)
            if limit <= self._ms:
                self._wake_due()
                if self._ms >= target:
                    return
                continue
            self._ms = limit
            self._publish()
            self.steps += 1
            for listener in self._on_step:
                listener(self._ms / 1000)
            if not self._hold_due():  # else a timeline event at this instant runs first
                self._wake_due()

    def _wake_due(self) -> None:
        for sleeper in self._stations.values():
            if not sleeper.awake and sleeper.wake_ms is not None and sleeper.wake_ms <= self._ms:
                sleeper.wake()

    def _wait_quiet(self) -> bool:
        """Wait until every station sleeps, no link carries bytes and no timeline event is due
        (True), or the harness stops (False)."""
        started = time.monotonic()
        while self._running:
            why = self._why_not_quiet()
            if not why:
                return True
            since = time.monotonic()
            if since - started > self.quiet_timeout_s:
                awake = sorted(n for n, s in self._stations.items() if s.awake)
                log.error("harness clock: still %s after %.0f s (stations awake: %s); time "
                          "moves on", why, self.quiet_timeout_s, awake)
                return True
            self._cond.wait(0.002 if why != "awake" else 0.05)
            self._held(why, since)
        return False

    def _held(self, why: str, since: float) -> None:
        self.held_s[why] += time.monotonic() - since

    def _why_not_quiet(self) -> str:
        if any(s.awake for s in self._stations.values()):
            # as the reader has seen them: one awake is enough, no need to ask the links and
            # every station's FIFO (a hundred system calls with fifty stations)
            return "awake"
        # In this order: bytes on their way, then bytes a station has not read, then what the
        # stations said (a station woken by its link says so before it reads the bytes).
        if any(busy() for busy, _ in self._link_bytes.values()):
            return "link"
        if any(s.unread is not None and s.unread() for s in self._stations.values()):
            return "link"
        for sleeper in self._stations.values():
            self._take_requests(sleeper)
        if any(s.awake for s in self._stations.values()):
            return "awake"
        return "timeline" if self._hold_due() else ""

    def _hold_due(self) -> bool:
        return any(at is not None and at * 1000 <= self._ms for at in (h() for h in self._holds))

    def _limit_ms(self, target: int) -> int:
        limits = [target] + [s.wake_ms for s in self._stations.values() if s.wake_ms is not None]
        for hold in self._holds:
            at = hold()
            if at is not None:
                limits.append(math.ceil(at * 1000))
        return min(limits)

    def step_station(self, name: str, seconds: float) -> None:
        """Step one drifting station's clock by ``seconds`` (an RTC upset), now."""
        with self._cond:
            sleeper = self._stations.get(name)
            if sleeper is not None and sleeper.drift is not None:
                sleeper.drift.step_ms += int(seconds * 1000)
                sleeper.requested(sleeper.wake_local)
                sleeper.publish(self._ms)
            self._cond.notify_all()

    def _publish(self) -> None:
        tmp = self.folder / ".now"
        tmp.write_text(str(self._ms))
        tmp.replace(self.folder / "now")  # a station never reads a half-written time
        self._share()
        for sleeper in self._stations.values():
            sleeper.publish(self._ms)

    # --- the stations' sleep requests -------------------------------------------------------

    def _read_requests(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                fds = list(self._by_fd)
            poller = select.poll()
            poller.register(self._waker.fileno(), select.POLLIN)
            for fd in fds:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(1000):
                if fd == self._waker.fileno():
                    self._waker.drain()
                    continue
                with self._cond:
                    sleeper = self._by_fd.get(fd)
                    if sleeper is not None:
                        self._take_requests(sleeper)
                        self._cond.notify_all()

    def _take_requests(self, sleeper: _Sleeper) -> None:
        """What the station wrote on its FIFO (under the lock)."""
        sleeper.read_requests()
        if not sleeper.awake and sleeper.wake_ms is not None and sleeper.wake_ms <= self._ms:
            sleeper.wake()  # asked for a time already here


def poll_watched(open_port: Callable[[Any], Any], on_poll: Callable[[str, int], None],
                 quiet: Callable[[str], bool]) -> Callable[[Any], Any]:
    """``open_port`` whose ports tell ``on_poll(port, address)`` of each POLL written and ask
    ``quiet(port)`` whether a reply can still come (_PollWatch)."""
    def opened(config: Any) -> Any:
        return _PollWatch(open_port(config), config.port, on_poll, quiet)
    return opened


class _PollWatch:
    """A gateway's serial port that tells the harness clock of every POLL it writes (the
    gateway writes one whole frame per write: framed_port.FramedPort), and tells the gateway
    when no reply is coming (``nothing_coming``: framed_port.FramedPort.collect)."""

    def __init__(self, port: Any, name: str, on_poll: Callable[[str, int], None],
                 quiet: Callable[[str], bool]) -> None:
        self._port = port
        self._name = name
        self._on_poll = on_poll
        self._quiet = quiet
        self._decoder = wire.FrameDecoder()

    def nothing_coming(self) -> bool:
        return self._quiet(self._name)

    def write(self, data: bytes) -> int | None:
        for frame in self._decoder.feed(data):
            if isinstance(frame, wire.Poll):
                self._on_poll(self._name, frame.addr)
        return self._port.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


@dataclass
class StationDrift:
    """A station's own clock: ``ppm`` fast (or slow, negative) from ``t0_ms`` of the shared
    time, plus the steps it took (``step_ms``). Its time is written to its own ``now`` file."""

    ppm: float
    t0_ms: int = 0
    step_ms: int = 0

    def local(self, ms: int) -> int:
        return ms + round((ms - self.t0_ms) * self.ppm / 1e6) + self.step_ms

    def shared(self, local_ms: int) -> int:
        """The first shared time whose local time is at least ``local_ms``."""
        ms = self.t0_ms + math.ceil((local_ms - self.step_ms - self.t0_ms) / (1 + self.ppm / 1e6))
        while self.local(ms) < local_ms:
            ms += 1
        while self.local(ms - 1) >= local_ms:  # rounding: the first such time
            ms -= 1
        return ms


class _Sleeper:
    """One station's side of the sleep protocol (firmware/hal_unix.py HarnessClock)."""

    def __init__(self, name: str, folder: Path, drift: StationDrift | None = None,
                 unread: Callable[[], int] | None = None) -> None:
        self.name = name
        self.folder = folder
        self.drift = drift
        self.unread = unread
        self.wake_local: int | None = None  # the time it asked for, on its own clock
        self.awake = True  # booting
        self.booted = False  # it has asked to sleep once: it listens to its link
        self.polled = False  # the gateway has polled it since it booted
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
            if line == b"w":  # its link woke it: awake until its next request
                self.awake = True
                continue
            if self.unanswered:  # a later request supersedes it: answer it now
                self._answer()
            self.unanswered += 1
            self.requested(int(line))
            self.awake = False
            self.booted = True

    def requested(self, local_ms: int | None) -> None:
        """A wake time asked for on the station's clock, kept on the shared one."""
        self.wake_local = local_ms
        if local_ms is not None:
            self.wake_ms = self.drift.shared(local_ms) if self.drift else local_ms

    def publish(self, ms: int) -> None:
        """A drifting station's time (others read the shared file through their link)."""
        if self.drift is None:
            return
        tmp = self.folder / ".now"
        tmp.write_text(str(self.drift.local(ms)))
        tmp.replace(self.folder / "now")

    def wake(self) -> None:
        self.awake = True
        self.wake_ms = None
        self.wake_local = None
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
