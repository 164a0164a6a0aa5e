"""An analog sensor behind a unix board's ADC pin, served read by read through a FIFO.

hal_unix's ADC opens ``<io_dir>/adc<pin>`` and reads a count each time the firmware samples.
Here that path is a named pipe: the firmware's open() blocks until this server writes the count
for the very slot being sampled, so the value never races the accelerated clock, however late
the firmware samples. Writing nothing makes the read fail, which the firmware stores as a
``missing`` reading: that is a sensor dropout.

Each read gets a pipe of its own: as soon as a reader has opened the pipe, the path is replaced
by a fresh one, so a count can never be read by the read after it.

A read is served the truth at the harness's time (clock.HarnessClock), which does not move
while the station is awake: the very instant the station samples, whatever its interval (event
mode included) and however late the machine runs it.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

log = logging.getLogger(__name__)

MAX_COUNT = 65535


@dataclass(frozen=True)
class AdcScale:
    """The firmware's channel arithmetic: value = (offset + raw·num // den) · 10^exponent."""

    exponent: int = 0
    scale_num: int = 1
    scale_den: int = 1
    offset: int = 0

    def count_for(self, value: float | Decimal) -> int:
        """The ADC count whose decoded value is nearest ``value`` (clamped to the ADC range)."""
        units = Decimal(str(value)).scaleb(-self.exponent) - self.offset
        raw = int((units * self.scale_den / self.scale_num).to_integral_value())
        # Integer division in the firmware floors: step up while the count decodes too low.
        while raw < MAX_COUNT and self.decode(raw) < units + self.offset:
            raw += 1
        return max(0, min(MAX_COUNT, raw))

    def decode(self, raw: int) -> int:
        """The mantissa the firmware computes from ``raw``."""
        return self.offset + raw * self.scale_num // self.scale_den


# The truth for a slot: a value in the channel's units, or None when the sensor gives nothing.
Truth = Callable[[int], "float | Decimal | None"]


class AnalogInput:
    def __init__(self, io_dir: Path, pin: int, scale: AdcScale, truth: Truth,
                 clock: Callable[[], float]) -> None:
        self.path = Path(io_dir) / f"adc{pin}"
        self.scale = scale
        self.truth = truth
        self.clock = clock
        self.served: list[tuple[int, int | None]] = []  # (time, count or None), as read
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._fresh_pipe()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=f"adc {self.path}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        if self._thread is None:
            return
        try:  # a reader of our own lets the server's blocking open() return
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            fd = None
        self._thread.join(5)
        if fd is not None:
            os.close(fd)

    def _fresh_pipe(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.new")
        if tmp.exists():
            tmp.unlink()
        os.mkfifo(tmp)
        tmp.replace(self.path)

    def _serve(self) -> None:
        while not self._stopping:
            fd = os.open(self.path, os.O_WRONLY)  # blocks until the firmware opens it to read
            try:
                if self._stopping:
                    return
                self._fresh_pipe()  # the next read opens a new pipe, never this one
                now = int(self.clock())
                value = self.truth(now)
                count = None if value is None else self.scale.count_for(value)
                self.served.append((now, count))
                if count is not None:
                    os.write(fd, b"%d\n" % count)
            except OSError as e:
                if e.errno != errno.EPIPE:  # EPIPE: the station was killed mid-read
                    log.warning("%s: %s", self.path, e)
            finally:
                os.close(fd)
