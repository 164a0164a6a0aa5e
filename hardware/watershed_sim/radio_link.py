"""A point-to-point radio link (a transparent radio modem pair) between one station and the gateway.

Each direction is paced at the baud rate (airtime.Uart), delayed by the radio's latency and
passed through its own LineNoise (bit errors, burst loss, outages on the simulated timeline).
The two directions do not interfere: the modems buffer and the link behaves as full duplex.

    station firmware ── pty ─┐                          ┌─ pty ── gateway (pyserial)
                             └─ PtyHub ── RadioMedium ──┘
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .airtime import Uart, byte_time_s
from .line_noise import LineNoise, NoiseSettings
from .pty_hub import GATEWAY, HubLink, PtyHub

STATION = "station"


@dataclass(frozen=True)
class RadioSettings:
    baud: int = 9600
    latency_s: float = 0.0  # one-way, simulated seconds (modem buffering + air)
    noise: NoiseSettings = field(default_factory=NoiseSettings)


class _Direction:
    def __init__(self, dest: str, byte_time: float, latency_wall: float, noise: LineNoise) -> None:
        self.dest = dest
        self.uart = Uart(byte_time)
        self.latency_wall = latency_wall
        self.noise = noise
        self.in_air: deque[tuple[float, int]] = deque()  # (arrival wall time, byte), in order
        self.delivered = 0

    def transmit(self, data: bytes, now: float) -> None:
        for (_, end), b in zip(self.uart.schedule(len(data), now), data):
            received = self.noise.pass_byte(b)
            if received is not None:
                self.in_air.append((end + self.latency_wall, received))


class RadioMedium:
    def __init__(self, settings: RadioSettings, clock: Callable[[], float], speed: float,
                 seed: int) -> None:
        bt = byte_time_s(settings.baud, speed)
        latency_wall = settings.latency_s / speed
        self._lanes = {
            STATION: _Direction(GATEWAY, bt, latency_wall, LineNoise(settings.noise, seed, clock)),
            GATEWAY: _Direction(STATION, bt, latency_wall,
                                LineNoise(settings.noise, seed + 1, clock)),
        }

    def transmit(self, source: str, data: bytes, now: float) -> None:
        self._lanes[source].transmit(data, now)

    def due(self, now: float) -> list[tuple[str, bytes]]:
        out = []
        for lane in self._lanes.values():
            chunk = bytearray()
            while lane.in_air and lane.in_air[0][0] <= now:
                chunk.append(lane.in_air.popleft()[1])
            if chunk:
                lane.delivered += len(chunk)
                out.append((lane.dest, bytes(chunk)))
        return out

    def next_due(self) -> float | None:
        heads = [lane.in_air[0][0] for lane in self._lanes.values() if lane.in_air]
        return min(heads) if heads else None

    def counts(self) -> dict[str, dict[str, int]]:
        return {f"{source}->{lane.dest}": {**lane.noise.counts, "delivered": lane.delivered}
                for source, lane in self._lanes.items()}


class RadioLink(HubLink):
    """A station end and a gateway end joined by a simulated radio; see the module docstring."""

    def __init__(self, settings: RadioSettings = RadioSettings(), *,
                 clock: Callable[[], float] | None = None, speed: float = 1.0,
                 seed: int = 0) -> None:
        self.settings = settings
        self.medium = RadioMedium(settings, clock or (lambda: 0.0), speed, seed)
        self._hub = PtyHub([STATION, GATEWAY], self.medium, hold=(GATEWAY,))

    @property
    def station_path(self) -> str:
        return self._hub.path(STATION)

    def port_for(self, station: str) -> str:
        return self.station_path



def total(counts: dict[str, dict[str, int]], key: str) -> int:
    """Sum one counter over every direction of a link's stats."""
    return sum(Counter(c)[key] for c in counts.values())
