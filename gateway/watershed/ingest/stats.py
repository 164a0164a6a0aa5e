"""Counters shared by the service's threads (a later issue publishes them as ingest status)."""

from __future__ import annotations

import threading


class Counters:
    def __init__(self, *names: str) -> None:
        self._lock = threading.Lock()
        # Named up front so stats() shows every counter, zeros included.
        self._values: dict[str, int | float | str | None] = dict.fromkeys(names, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            value = self._values.get(name, 0)
            assert isinstance(value, int)
            self._values[name] = value + n

    def set(self, name: str, value: int | float | str | None) -> None:
        with self._lock:
            self._values[name] = value

    def snapshot(self) -> dict[str, int | float | str | None]:
        with self._lock:
            return dict(self._values)
