"""Delays between attempts at something that failed: a serial port, the broker, InfluxDB.

One class for both ways of asking. A retry loop that keeps its own count asks ``delay(attempt,
retry_after)`` (stateless: one instance may serve many loops); a loop that only knows "it failed
again" or "it answered" uses ``next_delay()`` and ``reset()``.
"""

from __future__ import annotations

import random

_MAX_DOUBLINGS = 64  # beyond this every ceiling is max_s; keeps 2**attempt a small number


class Backoff:
    """Exponential backoff: ``initial_s``, doubling on every failure, capped at ``max_s``.

    With ``jitter`` (0-1) each delay is shortened by a random part of up to that fraction, so
    many clients cut off by one outage (gateways from a broker, ingests from InfluxDB) do not
    all come back in the same instant. A server's Retry-After is honoured up to
    ``max_retry_after_s``.
    """

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, jitter: float = 0.0, *,
                 max_retry_after_s: float = 300.0, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self.max_retry_after_s = max_retry_after_s
        self._rng = rng or random.Random()
        self._attempt = 0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The delay before retry number ``attempt`` (0: the first), or the server's
        ``retry_after`` if that is longer."""
        ceiling = min(self.max_s, self.initial_s * 2 ** min(attempt, _MAX_DOUBLINGS))
        delay = ceiling * (1 - self.jitter * self._rng.random()) if self.jitter else ceiling
        if retry_after is not None:
            return max(delay, min(retry_after, self.max_retry_after_s))
        return delay

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the one after."""
        delay = self.delay(self._attempt)
        self._attempt = min(self._attempt + 1, _MAX_DOUBLINGS)
        return delay

    def reset(self) -> None:
        """The resource answered: the next failure starts again from ``initial_s``."""
        self._attempt = 0
