"""Holes and the loss ledger: what a station sent that will never arrive, counted once.

``lost_runs``: per station, holes found to be gone for good (below the station's
``oldest_seq``): settled, so they are counted once and never asked for again. ``losses``: the
ledger, readings lost per station and reason. A loss is never silent: health publishes it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from .. import priorities
from ..runs import Run, gaps, merged, runs_of, size
from .database import Database

log = logging.getLogger(__name__)

GONE_FROM_STATION = "gone_from_station"  # a hole below the station's oldest_seq
REJECTED_BY_INGEST = "rejected_by_ingest"  # an ingest refused it (reason in its dead letters)
QUARANTINED = "quarantined"  # quarantined readings an operator dropped
SHED_REASONS = {p: f"shed_{name}" for p, name in priorities.NAMES.items()}


def count_loss(db: sqlite3.Connection, station: str, reason: str, count: int) -> None:
    if count:
        db.execute("INSERT INTO losses VALUES (?, ?, ?) ON CONFLICT (station, reason) DO UPDATE"
                   " SET readings = readings + excluded.readings", (station, reason, count))


def ack_floor(db: sqlite3.Connection, station: str) -> int | None:
    row = db.execute("SELECT ack_floor FROM stations WHERE station = ?", (station,)).fetchone()
    return None if row is None else row[0]


def settled_runs(db: sqlite3.Connection, station: str) -> list[Run]:
    """Received and lost runs together: what the gateway will never ask for again."""
    rows = db.execute("SELECT first_seq, end_seq FROM received_runs WHERE station = ? UNION ALL"
                      " SELECT first_seq, end_seq FROM lost_runs WHERE station = ?",
                      (station, station)).fetchall()
    return merged(rows)


def unlose(db: sqlite3.Connection, station: str, seqs: list[int]) -> None:
    """Readings counted lost that turn up after all (another path, a late frame): the
    ledger takes them back, so its count stays exact."""
    low, high = min(seqs), max(seqs) + 1
    lost = db.execute("SELECT first_seq, end_seq, found_at FROM lost_runs WHERE station = ?"
                      " AND first_seq < ? AND end_seq > ?", (station, high, low)).fetchall()
    if not lost:
        return
    found = set(seqs)
    returned = 0
    for first, end, found_at in lost:
        db.execute("DELETE FROM lost_runs WHERE station = ? AND first_seq = ?", (station, first))
        still_lost = [s for s in range(first, end) if s not in found]
        returned += (end - first) - len(still_lost)
        for run in runs_of(still_lost):
            db.execute("INSERT INTO lost_runs VALUES (?, ?, ?, ?)", (station, *run, found_at))
    count_loss(db, station, GONE_FROM_STATION, -returned)


def known_end(db: sqlite3.Connection, station: str) -> int | None:
    """The seq below which every seq was taken by the station: the highest next_seq it reported
    or just past the highest seq received, whichever is higher (facts.py writes a reported
    next_seq at once only when it says more than the readings do); None until it reported one."""
    row = db.execute("SELECT known_next_seq, (SELECT MAX(end_seq) FROM received_runs WHERE"
                     " station = ?1) FROM stations WHERE station = ?1", (station,)).fetchone()
    if row is None or row[0] is None:
        return None
    return max(row[0], row[1] or 0)


class Ledger:
    def __init__(self, database: Database, clock: Callable[[], float]) -> None:
        self._database = database
        self._clock = clock

    def holes(self, station: str, below: int | None = None) -> list[Run]:
        """Seq ranges above the ACK floor and below ``below`` (default: the highest next_seq the
        station reported) that were neither received nor found lost, ascending."""
        with self._database.reading() as db:
            floor = ack_floor(db, station)
            if below is None:
                below = known_end(db, station)
            if floor is None or below is None:
                return []
            return gaps(settled_runs(db, station), floor, below)

    def settle_lost(self, station: str, oldest_held: int) -> int:
        """The station holds nothing below ``oldest_held``: every hole under it is gone for
        good. Records them in the ledger (once) and returns how many readings that is."""
        with self._database.transaction() as db:
            floor = ack_floor(db, station)
            if floor is None or oldest_held <= floor:
                return 0
            lost = gaps(settled_runs(db, station), floor, oldest_held)
            now = self._clock()
            for first, end in lost:
                db.execute("INSERT INTO lost_runs VALUES (?, ?, ?, ?)", (station, first, end, now))
            count = size(lost)
            count_loss(db, station, GONE_FROM_STATION, count)
        if count:
            log.warning("station %s no longer holds seqs %s that never reached this gateway: %d "
                        "readings lost, counted in the loss ledger", station,
                        ", ".join(f"{a}-{b - 1}" for a, b in lost), count)
        return count

    def loss_ledger(self) -> dict[str, dict[str, int]]:
        """Readings lost per station and reason, since the store was created."""
        rows = self._database.execute_read("SELECT station, reason, readings FROM losses WHERE"
                                           " readings != 0 ORDER BY station, reason")
        ledger: dict[str, dict[str, int]] = {}
        for station, reason, count in rows:
            ledger.setdefault(station, {})[reason] = count
        return ledger

    def lost_runs(self, station: str) -> list[Run]:
        return self._database.execute_read(
            "SELECT first_seq, end_seq FROM lost_runs WHERE station = ? ORDER BY first_seq",
            (station,))
