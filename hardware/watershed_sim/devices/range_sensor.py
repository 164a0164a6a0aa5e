"""A serial radar/ultrasonic range sensor that sends ``Rnnnn<CR>`` (range in mm), free-running.

Like MaxBotix / many radar level sensors on a TTL/RS-232 output: one frame every ``period_s``
whatever the master does (input is ignored). Range is the distance from the sensor face down to
the water, ``mount_mm - level_mm``; the firmware computes level = mount height − range.
``digits`` is 4 (``R0000``–``R9999``) or 5.

Faults (``Faults`` from sdi12.py; probabilities per frame): ``no_reply`` (frame not sent),
``garble`` (one byte flipped: parity error marker, bit 7), ``stuck``, ``drift_per_hour`` (mm/h),
``dropout`` (a silent spell of ``dropout_s``). ``late``/``wrong_crc`` do not apply.

Truth: ``sent`` lists every frame as ``(time, range_mm, fault)``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from .sdi12 import PARITY_ERROR, Faults


class RangeSensor:
    def __init__(self, range_mm: int = 2000, *, period_s: float = 0.1, digits: int = 4,
                 faults: Faults | None = None, seed: int = 0,
                 source: Callable[[float], int | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.range_mm = range_mm
        self.period_s = period_s
        self.digits = digits
        self.faults = faults or Faults()
        self.source = source
        self.clock = clock
        self.rng = random.Random(seed)
        self.sent: list[tuple[float, int, str | None]] = []
        self._t0 = clock()
        self._next: float | None = None
        self._last: int | None = None
        self._silent_until = float("-inf")

    def value_mm(self, now: float) -> int | None:
        """The range now; None when the source has none (the sensor sends nothing)."""
        if self.faults.stuck and self._last is not None:
            return self._last
        base = self.source(now) if self.source else self.range_mm
        if base is None:
            return None
        value = int(round(base + self.faults.drift_per_hour * (now - self._t0) / 3600))
        value = max(0, min(int(10 ** self.digits) - 1, value))
        self._last = value
        return value

    def receive(self, data: bytes, now: float) -> None:
        pass  # free-running: input is ignored

    def next_due(self) -> float | None:
        if self._next is None:
            self._next = self.clock()
        return self._next

    def pop_due(self, now: float) -> bytes:
        if self._next is None:
            self._next = now
        if now < self._next:
            return b""
        self._next = max(self._next + self.period_s, now)
        if now < self._silent_until:
            return b""
        f = self.faults
        if f.dropout and self.rng.random() < f.dropout:
            self._silent_until = now + f.dropout_s
            return b""
        value = self.value_mm(now)
        if value is None:
            return b""
        if f.no_reply and self.rng.random() < f.no_reply:
            self.sent.append((now, value, "no_reply"))
            return b""
        frame = bytearray(b"R%0*d\r" % (self.digits, value))
        fault = None
        if f.garble and self.rng.random() < f.garble:
            i = self.rng.randrange(len(frame) - 1)
            frame[i] = (frame[i] ^ 0x01) | PARITY_ERROR
            fault = "garble"
        self.sent.append((now, value, fault))
        return bytes(frame)
