"""The alert outbox (the ``alerts`` table): kept until the broker acknowledged each alert.

With the store full, alerts raised meanwhile are kept in memory under the id they will be written
with, handed to the forwarder like stored ones, and written once readings are stored again; an
alert the broker acknowledged meanwhile is remembered as such.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

from .database import Database, StoreFull


class _HeldAlert(NamedTuple):
    """An alert raised while the store was full, kept in memory until it can be written."""

    station: str
    payload: str
    raised_at: float
    sent: bool


class AlertOutbox:
    def __init__(self, database: Database, clock: Callable[[], float]) -> None:
        self._database = database
        self._clock = clock
        self._held: dict[int, _HeldAlert] = {}  # id -> alert not written (store full)
        self._sent_unwritten: set[int] = set()  # acknowledged, the flag not yet written

    def add(self, station: str, payload: str) -> int:
        """Keep an alert until the broker acknowledges it (logged here while the uplink is down).
        With the store full it is kept in memory, under the id it will be written with."""
        now = self._clock()
        with self._database.lock:
            try:
                with self._database.locked_transaction() as db:
                    return int(db.execute("INSERT INTO alerts (station, payload, raised_at)"
                                          " VALUES (?, ?, ?)", (station, payload, now)).lastrowid
                               or 0)
            except StoreFull:
                row = self._database.conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'alerts'").fetchone()
                alert_id = max([0 if row is None else row[0], *self._held]) + 1
                self._held[alert_id] = _HeldAlert(station, payload, now, False)
                return alert_id

    def unsent(self, limit: int, after_id: int = 0) -> list[tuple[int, str, str]]:
        """``(id, station, payload)`` of alerts not yet acknowledged by the broker, oldest first."""
        with self._database.reading() as db:
            stored = [tuple(r) for r in db.execute(
                "SELECT id, station, payload FROM alerts WHERE sent = 0 AND id > ? ORDER BY id"
                " LIMIT ?", (after_id, limit + len(self._sent_unwritten)))
                if r[0] not in self._sent_unwritten]
            held = [(i, a.station, a.payload) for i, a in self._held.items()
                    if i > after_id and not a.sent]
        return sorted(stored + held)[:limit]

    def mark_sent(self, alert_id: int) -> None:
        """Never fails for lack of room: then the flag is kept in memory until it can be written."""
        with self._database.lock:
            held = self._held.get(alert_id)
            if held is not None:
                self._held[alert_id] = held._replace(sent=True)
                return
            self._sent_unwritten.add(alert_id)
            try:
                self.write_held()
            except StoreFull:
                pass  # noted (space.py); written after the next stored readings

    def write_held(self) -> None:
        """Write the alerts and alert flags kept in memory while the store was full."""
        with self._database.lock:
            if not self._held and not self._sent_unwritten:
                return
            with self._database.locked_transaction() as db:
                db.executemany("INSERT INTO alerts (id, station, payload, raised_at, sent) VALUES"
                               " (?, ?, ?, ?, ?)", ((i, *a) for i, a in self._held.items()))
                db.executemany("UPDATE alerts SET sent = 1 WHERE id = ?",
                               ((i,) for i in self._sent_unwritten))
            self._held.clear()
            self._sent_unwritten.clear()

    def unsent_in_memory(self) -> int:
        """How many unsent alerts the memory adds to (or takes from) the stored count."""
        with self._database.lock:
            return sum(not a.sent for a in self._held.values()) - len(self._sent_unwritten)

    @staticmethod
    def prune(db: sqlite3.Connection, before: float) -> None:
        """Acknowledged alerts raised before ``before`` are history (in the caller's
        transaction)."""
        db.execute("DELETE FROM alerts WHERE sent = 1 AND raised_at < ?", (before,))
