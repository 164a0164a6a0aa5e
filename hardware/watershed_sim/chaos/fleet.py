"""The chaos run's stations: CPython stations (py_station) on virtual serial links, each knowing
every reading it made, and the misbehaving ones the run injects.

Roles:
- ``honest``: a station as the contract asks (keeps readings until ACKed, resends, answers POLL).
- ``shared_address``: two honest stations set to the same bus address (a mis-set DIP switch); the
  second is not in the gateway's registry.
- ``forger``: a station whose HELLO claims another station's id (``claims``), on another link.
- ``wild``: a station whose counters go out of range: from ``wild_after`` readings on, its
  sequence numbers jump past 2**63, and its STATUS reports loss counters of 2**63 + 5 and 2**64.

Every reading's content comes from a generator seeded per station, so a run's truth does not
depend on when the feeder got to take it.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from watershed.contracts import wire
from watershed.contracts.wire import (CLOCK_UNSYNCED, EVENT, MISSING, SPIKE, SUSPECT, Reading)
from watershed_sim.py_station import T0, PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

CHANNELS = (1, 3, 16, 32)  # stage_m, water_temp_c, rain_mm, battery_v
EXTRA_FLAGS = (0, 0, 0, 0, SUSPECT, EVENT, CLOCK_UNSYNCED, SPIKE | SUSPECT)
WILD_SEQ = 2**63 + 5  # one past what SQLite and InfluxDB integers hold
WILD_COUNTERS = (2**63 + 5, 2**64)  # STATUS loss counters: too big for SQLite; too big for a varint


class ChaosStation(PyStation):
    """A PyStation that makes its readings from a seeded generator and counts what it sends.

    ``truth_id`` is who it really is; ``station_id`` (what its HELLO says) may differ."""

    def __init__(self, addr: int, station_id: str, truth_id: str, role: str, seed: int) -> None:
        super().__init__(addr, station_id)
        self.truth_id = truth_id
        self.role = role
        self._rng = random.Random(seed)
        self.count = 0  # readings made; ts = T0 + 60 * count + ts_offset, whatever the seq
        self.ts_offset = 0  # 0-59, its own per station: no two stations make the same reading
        self.readings_sent = 0  # readings carried by DATA frames, resends included
        self.link = 0  # index of the link it is on

    def make(self, n: int) -> None:
        for _ in range(n):
            self.count += 1
            self._keep(self._reading(self.next_seq, T0 + 60 * self.count + self.ts_offset))

    def _reading(self, seq: int, ts: int) -> Reading:
        rng = self._rng
        channel = CHANNELS[self.count % len(CHANNELS)]
        flags = rng.choice(EXTRA_FLAGS)
        if rng.random() < 0.04:
            return Reading(seq, channel, ts, 0, 0, flags | MISSING)
        return Reading(seq, channel, ts, rng.randint(-10**6, 10**7), rng.choice((-3, -2, -1, 0)),
                       flags)

    def _data(self, readings: Iterable[Reading]) -> wire.Data:
        frame = super()._data(readings)
        self.readings_sent += len(frame.readings)
        return frame


class WildStation(ChaosStation):
    """Out-of-range numbers (module docstring): a seq jump past 2**63 and huge STATUS counters."""

    def __init__(self, *args: object, wild_after: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.wild_after = wild_after
        self._statuses = 0

    def make(self, n: int) -> None:
        for _ in range(n):
            if self.count == self.wild_after:
                self.next_seq = WILD_SEQ  # a corrupt sequence counter
            super().make(1)

    def _answer_poll(self, poll: wire.Poll) -> list[wire.Frame]:
        replies = super()._answer_poll(poll)
        if self.count < self.wild_after:
            return replies
        out: list[wire.Frame] = []
        for frame in replies:
            if isinstance(frame, wire.Status):
                counter = WILD_COUNTERS[self._statuses % len(WILD_COUNTERS)]
                self._statuses += 1
                frame = wire.Status(frame.addr, frame.uptime_s, frame.clock, frame.state,
                                    frame.battery_mv, frame.outbox_depth, frame.oldest_seq,
                                    frame.next_seq, counter, counter, counter, frame.free_heap)
            out.append(frame)
        return out


@dataclass(frozen=True)
class FleetLayout:
    links: int = 2
    honest_per_link: int = 4
    shared_address: bool = True  # two stations at one address on link 0
    forger: bool = True  # on the last link, claiming link 0's first station's id
    wild: bool = True  # on the last link
    wild_after: int = 200  # readings before its seq jumps


@dataclass
class Fleet:
    """Links, the buses on their station ends, and every station; ``close()`` ends them."""

    layout: FleetLayout
    seed: int
    links: list[VirtualSerialLink] = field(default_factory=list)
    buses: list[StationBus] = field(default_factory=list)
    members: list[list[ChaosStation]] = field(default_factory=list)  # per link

    def __post_init__(self) -> None:
        lay = self.layout
        self.members = [[self._station(i + 1, f"CH{link}-{i + 1:02d}", "honest")
                         for i in range(lay.honest_per_link)] for link in range(lay.links)]
        if lay.shared_address:
            self.members[0].append(self._station(1, "DUP-01", "shared_address"))
        last = self.members[-1]
        if lay.forger:
            victim = self.members[0][0].station_id
            last.append(self._station(30, "FORGER", "forger", claims=victim))
        if lay.wild:
            last.append(WildStation(31, "WILD-01", "WILD-01", "wild", self._seed("WILD-01"),
                                    wild_after=lay.wild_after))
        for i, stations in enumerate(self.members):
            for s in stations:
                s.link = i
        for offset, s in enumerate(self.stations()):
            if offset >= 60:
                raise ValueError("at most 60 stations: each has its own second of the minute")
            s.ts_offset = offset
        self.links = [VirtualSerialLink() for _ in self.members]
        self.buses = [StationBus(link.station_path, *stations)
                      for link, stations in zip(self.links, self.members)]

    def _seed(self, truth_id: str) -> int:
        return self.seed * 1_000_003 + zlib.crc32(truth_id.encode())  # hash() varies per run

    def _station(self, addr: int, truth_id: str, role: str, claims: str | None = None
                 ) -> ChaosStation:
        return ChaosStation(addr, claims or truth_id, truth_id, role, self._seed(truth_id))

    def stations(self) -> list[ChaosStation]:
        return [s for stations in self.members for s in stations]

    def registry(self) -> list[tuple[str, int, int]]:
        """(id, address, link) the gateway is told about: neither the second station at a shared
        address nor the forger (it claims a registered id, at its own address)."""
        return [(s.station_id, s.addr, i) for i, stations in enumerate(self.members)
                for s in stations if s.role in ("honest", "wild")]

    def addresses(self, link: int) -> list[int]:
        return sorted({s.addr for s in self.members[link]})

    def outboxes_empty(self, roles: tuple[str, ...] = ("honest",)) -> bool:
        """The stations of ``roles`` hold nothing, but those sharing their address with another
        station on their bus: no ACK can tell two stations at one address apart, so the gateway
        acknowledges nothing there and they keep every reading until the address is fixed."""
        for bus, stations in zip(self.buses, self.members):
            shared = {addr for addr in {s.addr for s in stations}
                      if sum(s.addr == addr for s in stations) > 1}
            with bus.lock:
                if any(s.outbox for s in stations if s.role in roles and s.addr not in shared):
                    return False
        return True

    def close(self) -> None:
        for bus in self.buses:
            bus.close()
        for link in self.links:
            link.close()


class Feeder:
    """Makes ``total`` readings at ``rate`` a second, spread over every station in turn."""

    TICK_S = 0.05

    def __init__(self, fleet: Fleet, total: int, rate: float) -> None:
        self.fleet = fleet
        self.total = total
        self.rate = rate
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        fleet = self.fleet
        places = [(bus, s) for bus, stations in zip(fleet.buses, fleet.members) for s in stations]
        made = 0
        turn = 0
        started = time.monotonic()
        while made < self.total and not self._stop.is_set():
            due = min(self.total, int((time.monotonic() - started) * self.rate)) - made
            while due > 0:
                bus, station = places[turn % len(places)]
                n = min(due, 8)  # a small burst per station keeps the stations' shares even
                with bus.lock:
                    station.make(n)
                made += n
                due -= n
                turn += 1
            self._stop.wait(self.TICK_S)
        self.done.set()
