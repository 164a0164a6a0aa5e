"""A half-duplex RS-485 multi-drop bus: one gateway port, several stations, one pair of wires.

Every byte occupies the bus for its airtime at the baud rate. Everyone else on the bus hears it
(stations ignore frames for other addresses, as on the real bus). When two talkers' bytes are on
the wires at the same time, both are garbled for every listener: that is what a collision does
to differential signalling, and why the gateway polls one station at a time.

    station A ── pty ─┐
    station B ── pty ─┼─ PtyHub ── BusMedium ── pty ── gateway (pyserial)
    station C ── pty ─┘
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .airtime import Uart, byte_time_s
from .line_noise import LineNoise, NoiseSettings
from .pty_hub import GATEWAY, HubLink, PtyHub



@dataclass
class _AirByte:
    source: str
    start: float
    end: float
    value: int
    garbled: bool = False


class BusMedium:
    def __init__(self, talkers: list[str], baud: int, noise: NoiseSettings,
                 clock: Callable[[], float], speed: float, seed: int) -> None:
        bt = byte_time_s(baud, speed)
        self._talkers = talkers
        self._uarts = {name: Uart(bt) for name in talkers}
        self._noise = LineNoise(noise, seed, clock)
        self._rng = random.Random(seed + 7919)
        self._in_air: list[_AirByte] = []  # bytes whose last bit has not arrived yet, by end
        self.counters: Counter[str] = Counter()

    def transmit(self, source: str, data: bytes, now: float) -> None:
        slots = self._uarts[source].schedule(len(data), now)
        new = [_AirByte(source, s, e, b) for (s, e), b in zip(slots, data)]
        first, last = new[0].start, new[-1].end
        others = [a for a in self._in_air if a.source != source and a.start < last and first < a.end]
        for mine in new:
            for theirs in others:
                if mine.start < theirs.end and theirs.start < mine.end:
                    mine.garbled = theirs.garbled = True
        self.counters["bytes_sent"] += len(data)
        if self._in_air and new[0].end < self._in_air[-1].end:  # two talkers at once
            self._in_air = sorted(self._in_air + new, key=_arrival)  # stable: ties keep order
        else:
            self._in_air.extend(new)

    def due(self, now: float) -> list[tuple[str, bytes]]:
        """What each listener has received by ``now``: one chunk per listener (fewer writes
        into the ptys), bytes in the order they arrived."""
        n = bisect.bisect_right(self._in_air, now, key=_arrival)
        if not n:
            return []
        arrived = self._in_air[:n]
        del self._in_air[:n]
        out: dict[str, bytearray] = {}
        for a in arrived:
            sent = a.value
            if a.garbled:
                self.counters["bytes_collided"] += 1
                sent ^= self._rng.randrange(1, 256)
            value = self._noise.pass_byte(sent)
            if value is None:
                continue
            for listener in self._talkers:
                if listener != a.source:  # a transmitter's receiver is disabled while it talks
                    received = out.get(listener)
                    if received is None:
                        received = out[listener] = bytearray()
                    received.append(value)
        return [(dest, bytes(data)) for dest, data in out.items()]

    def next_due(self) -> float | None:
        return self._in_air[0].end if self._in_air else None

    def counts(self) -> dict[str, int]:
        return {**self.counters, **self._noise.counts}


def _arrival(byte: _AirByte) -> float:
    return byte.end


class SharedBus(HubLink):
    """A bus with a gateway end and one end per named station; see the module docstring."""

    def __init__(self, stations: list[str], *, baud: int = 9600,
                 noise: NoiseSettings = NoiseSettings(), clock: Callable[[], float] | None = None,
                 speed: float = 1.0, seed: int = 0) -> None:
        self.baud = baud
        self.medium = BusMedium([GATEWAY, *stations], baud, noise, clock or (lambda: 0.0),
                                speed, seed)
        self._hub = PtyHub([GATEWAY, *stations], self.medium, hold=(GATEWAY,))

    def port_for(self, station: str) -> str:
        return self._hub.path(station)

