"""How long bytes take on a serial line: the pacing shared by the radio and the bus media."""

from __future__ import annotations

BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit


def byte_time_s(baud: int, speed: float = 1.0) -> float:
    """Wall seconds one byte occupies the line when simulated time runs ``speed`` × wall time.

    The line is paced in simulated time, like everything else the stations see, so at speed 1
    it is the real 9600-baud line and goodput measured in simulated seconds is honest at any
    speed.
    """
    if baud <= 0 or speed <= 0:
        raise ValueError("baud and speed must be positive")
    return BITS_PER_BYTE / baud / speed


class Uart:
    """One talker's transmitter: bytes leave one after another, never faster than the baud."""

    def __init__(self, byte_time: float) -> None:
        self.byte_time = byte_time
        self.busy_until = 0.0

    def schedule(self, count: int, now: float) -> list[tuple[float, float]]:
        """(start, end) wall times of ``count`` bytes written at ``now``."""
        start = max(now, self.busy_until)
        slots = [(start + i * self.byte_time, start + (i + 1) * self.byte_time) for i in range(count)]
        self.busy_until = start + count * self.byte_time
        return slots
