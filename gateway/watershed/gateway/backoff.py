"""Delays between attempts to reach something that is down (a serial port, the broker)."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff: ``initial_s``, doubling on every failure, capped at ``max_s``.

    With ``jitter`` (0-1) each delay is shortened by a random part of up to that fraction, so
    many gateways cut off by one broker outage do not all come back in the same instant.
    """

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, jitter: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._next_s = initial_s

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the one after."""
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        if self.jitter:
            delay *= 1 - self.jitter * self._rng.random()
        return delay

    def reset(self) -> None:
        """The resource answered: the next failure starts again from ``initial_s``."""
        self._next_s = self.initial_s
