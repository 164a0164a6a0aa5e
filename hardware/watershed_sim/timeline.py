"""Faults on the simulated timeline: actions run when the shared clock reaches their time."""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable

from .clock import HarnessClock, SimClock

log = logging.getLogger(__name__)


class Timeline:
    def __init__(self, clock: SimClock | HarnessClock) -> None:
        self.clock = clock
        self._events: list[tuple[float, int, str, Callable[[], None]]] = []
        self.done: list[tuple[float, str]] = []  # (simulated time it ran, what), in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)

    def add(self, at: float, what: str, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (at, len(self._events), what, action))

    def next_time(self) -> float | None:
        """When the next action is due (a harness-driven clock does not pass it before it ran)."""
        events = self._events
        return events[0][0] if events else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def _run(self) -> None:
        while self._events and not self._stop.is_set():
            at, _, what, action = self._events[0]
            wait = self.clock.wall_seconds(at - self.clock.now())
            if wait > 0:
                self._stop.wait(min(wait, 0.02))
                continue
            log.info("timeline: %s", what)
            try:
                action()
            except Exception:
                log.exception("timeline: %s failed", what)
            self.done.append((self.clock.now(), what))
            heapq.heappop(self._events)  # only now may a harness-driven clock pass it
