"""What a noisy serial line does to the bytes sent over it: bit errors, burst loss, outages.

Pure and seeded, so its measured rates can be checked against its settings without ptys:

- bit errors: each of a byte's 8 data bits flips independently with probability ``ber``
  (start/stop bits are not modelled; a flipped one would look like a garbled byte anyway);
- burst loss: a two-state Gilbert–Elliott channel per byte. In the bad state every byte is lost;
  the long-run fraction lost is ``burst_loss`` and a burst lasts ``mean_burst_bytes`` on average
  (radio fades, a truck passing the antenna);
- outages: intervals of simulated time (seconds to days) in which nothing gets through
  (a flat battery at the repeater, a snowed-in antenna).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outage:
    """Nothing crosses the line from ``start`` until ``end`` (simulated Unix seconds)."""

    start: float
    end: float

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class NoiseSettings:
    ber: float = 0.0  # probability that any one data bit flips
    burst_loss: float = 0.0  # long-run fraction of bytes lost in bursts, 0 <= x < 1
    mean_burst_bytes: float = 20.0
    outages: Sequence[Outage] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0 <= self.ber < 1:
            raise ValueError(f"ber must be in [0, 1), not {self.ber}")
        if not 0 <= self.burst_loss < 1:
            raise ValueError(f"burst_loss must be in [0, 1), not {self.burst_loss}")
        if self.mean_burst_bytes < 1:
            raise ValueError(f"mean_burst_bytes must be at least 1, not {self.mean_burst_bytes}")

    @property
    def clean(self) -> bool:
        return self.ber == 0 and self.burst_loss == 0 and not self.outages


class LineNoise:
    """Applies NoiseSettings to bytes, one call per byte, counting what it did.

    ``clock`` gives simulated time for the outage timeline.
    """

    def __init__(self, settings: NoiseSettings, seed: int = 0,
                 clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self._rng = random.Random(seed)
        self._clock = clock or (lambda: 0.0)
        self.counts: Counter[str] = Counter()
        # Gilbert–Elliott transition probabilities per byte, chosen so the stationary share of
        # the bad state is burst_loss: p / (p + r) = burst_loss, and a burst lasts 1 / r bytes.
        self._leave_bad = 1.0 / settings.mean_burst_bytes
        loss = settings.burst_loss
        self._enter_bad = loss * self._leave_bad / (1.0 - loss) if loss else 0.0
        self._bad = False
        self._bits_to_next_error = self._draw_error_gap()

    def _draw_error_gap(self) -> float:
        """Bits until the next flipped bit: geometric, so one draw covers many clean bytes."""
        ber = self.settings.ber
        if ber == 0:
            return math.inf
        return math.floor(math.log(1.0 - self._rng.random()) / math.log1p(-ber))

    def in_outage(self) -> bool:
        if not self.settings.outages:
            return False
        now = self._clock()
        for outage in self.settings.outages:  # a loop, not any(): called for every byte
            if outage.covers(now):
                return True
        return False

    def pass_byte(self, value: int) -> int | None:
        """The byte as received, or None if it never arrives."""
        self.counts["bytes_sent"] += 1
        if self.in_outage():
            self.counts["lost_outage"] += 1
            return None
        if self._bad:
            self._bad = self._rng.random() >= self._leave_bad
        else:
            self._bad = self._rng.random() < self._enter_bad
        if self._bad:
            self.counts["lost_burst"] += 1
            return None
        value = self._flip_bits(value)
        self.counts["bytes_passed"] += 1
        return value

    def _flip_bits(self, value: int) -> int:
        bit = 0
        while self._bits_to_next_error < 8 - bit:
            bit += int(self._bits_to_next_error)
            value ^= 1 << bit
            self.counts["bits_flipped"] += 1
            bit += 1
            self._bits_to_next_error = self._draw_error_gap()
        self._bits_to_next_error -= 8 - bit
        return value

    def pass_bytes(self, data: bytes) -> bytes:
        """Bytes through the line; lost ones are simply absent."""
        if self.settings.clean:
            self.counts["bytes_sent"] += len(data)
            self.counts["bytes_passed"] += len(data)
            return data
        out = bytearray()
        for b in data:
            v = self.pass_byte(b)
            if v is not None:
                out.append(v)
        return bytes(out)
