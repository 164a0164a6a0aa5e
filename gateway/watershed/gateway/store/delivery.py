"""Readings out: each reading's delivery state, and the cursor the forwarder reads them by.

``readings.sent`` is the state: 0 waiting to be published, 1 published and acknowledged by the
broker (PUBACK, at ``acked_at``) but not yet confirmed, 2 confirmed by an ingest (written to
InfluxDB, or rejected there and counted in the loss ledger). A broker's acknowledgement proves
nothing end to end (it drops what no subscription matches), so only state 2 leaves the "must
deliver" set: the forwarder sets overdue state-1 rows back to 0 (``resend_unconfirmed``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from watershed.contracts.mqtt import MessageReading

from ..runs import Run
from .alerts import AlertOutbox
from .counters import bump
from .database import Database
from .ledger import REJECTED_BY_INGEST, count_loss
from .schema import DELIVERED_SQL, NOT_DELIVERED_SQL, ROW_COST_SQL

log = logging.getLogger(__name__)

ALERT_HISTORY_S = 30 * 86400  # acknowledged alerts are history once this old


@dataclass(frozen=True, slots=True)
class StoredReading:
    id: int  # arrival order
    station: str
    basin: str
    reading: MessageReading

    @property
    def key(self) -> tuple[str, int]:
        return self.station, self.reading.seq


class Confirmed(NamedTuple):
    """What a confirmation changed."""

    written: int  # readings newly confirmed as in InfluxDB
    rejected: int  # readings newly counted lost as rejected by the ingest
    newest_acked_at: float | None  # the latest broker acknowledgement among those confirmed


def _later(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


class Delivery:
    def __init__(self, database: Database, clock: Callable[[], float]) -> None:
        self._database = database
        self._clock = clock

    def unsent(self, limit: int, after_id: int = 0, station: str | None = None,
               up_to_id: int | None = None) -> list[StoredReading]:
        """Readings the broker has not acknowledged, oldest first, with ids above ``after_id``
        (and at most ``up_to_id``): a cursor, so a backlog of any size streams in pages."""
        query = ("SELECT id, station, basin, seq, channel, ts, mantissa, exponent, flags"
                 " FROM readings WHERE sent = 0 AND id > ?")
        args: tuple = (after_id,)
        if up_to_id is not None:
            query += " AND id <= ?"
            args += (up_to_id,)
        if station is not None:
            query += " AND station = ?"
            args += (station,)
        rows = self._database.execute_read(query + " ORDER BY id LIMIT ?", args + (limit,))
        return [StoredReading(row[0], row[1], row[2], MessageReading(*row[3:])) for row in rows]

    def max_id(self) -> int:
        """The newest reading's id (0 if none): ids above it arrive after this call."""
        rows = self._database.execute_read(
            "SELECT seq FROM sqlite_sequence WHERE name = 'readings'")
        return rows[0][0] if rows else 0

    def mark_published(self, ids: Iterable[int]) -> int:
        """The broker acknowledged the message carrying these rows (by store id): they wait for
        an ingest's confirmation now. Returns how many rows changed."""
        now = self._clock()
        with self._database.transaction(durable=False) as db:
            before = db.total_changes
            db.executemany("UPDATE readings SET sent = 1, acked_at = ? WHERE id = ? AND sent = 0",
                           ((now, i) for i in ids))
            changed = db.total_changes - before
            bump(db, "readings_sent", changed)
        return changed

    def confirm(self, written: Mapping[str, Sequence[Run]],
                rejected: Mapping[str, Sequence[tuple[int, int, str]]] = MappingProxyType({})
                ) -> Confirmed:
        """An ingest settled these seq runs per station: ``written`` are in InfluxDB; ``rejected``
        were refused (each counted in the loss ledger as ``rejected_by_ingest``). Rows already
        confirmed, pruned or never stored here change nothing."""
        confirmed = refused = 0
        newest: float | None = None
        settle = (f"UPDATE readings SET sent = 2 WHERE station = ? AND seq >= ? AND seq < ?"
                  f" AND {NOT_DELIVERED_SQL}")
        with self._database.transaction(durable=False) as db:
            for station, runs in written.items():
                for first, end in runs:
                    newest = _later(newest, db.execute(
                        "SELECT MAX(acked_at) FROM readings WHERE station = ? AND seq >= ? AND"
                        " seq < ? AND sent = 1", (station, first, end)).fetchone()[0])
                    confirmed += db.execute(settle, (station, first, end)).rowcount
            for station, refusals in rejected.items():
                count = 0
                for first, end, reason in refusals:
                    n = db.execute(settle, (station, first, end)).rowcount
                    if n:
                        log.warning("an ingest rejected %d readings of station %s (seqs %d-%d): %s;"
                                    " counted in the loss ledger as %s", n, station, first,
                                    end - 1, reason, REJECTED_BY_INGEST)
                    count += n
                count_loss(db, station, REJECTED_BY_INGEST, count)
                refused += count
            bump(db, "readings_confirmed", confirmed)
            bump(db, "readings_rejected", refused)
        return Confirmed(confirmed, refused, newest)

    def resend_unconfirmed(self, acked_before: float) -> int:
        """Rows the broker acknowledged before ``acked_before`` and no ingest has confirmed go
        back to unsent: the forwarder publishes them again. Returns how many."""
        with self._database.transaction(durable=False) as db:
            changed = db.execute("UPDATE readings SET sent = 0 WHERE sent = 1 AND acked_at < ?",
                                 (acked_before,)).rowcount
            bump(db, "readings_sent", -changed)  # counted again when acknowledged again
            bump(db, "readings_resent", changed)
        return changed

    def prune_confirmed(self, keep: int, batch: int = 10_000) -> int:
        """Delete confirmed readings but the newest ``keep`` (kept to recognise a reused seq), at
        most ``batch`` per call so the lock is never held long. Returns how many were deleted.
        Acknowledged alerts a month old go too."""
        with self._database.transaction() as db:
            row = db.execute(f"SELECT id FROM readings WHERE {DELIVERED_SQL} ORDER BY id DESC"
                             " LIMIT 1 OFFSET ?", (keep,)).fetchone()
            if row is None:
                return 0
            victims = db.execute(f"SELECT id, {ROW_COST_SQL} FROM readings WHERE {DELIVERED_SQL}"
                                 " AND id <= ? ORDER BY id LIMIT ?", (row[0], batch)).fetchall()
            db.executemany("DELETE FROM readings WHERE id = ?", ((v[0],) for v in victims))
            bump(db, "stored_bytes", -sum(v[1] for v in victims))
            AlertOutbox.prune(db, self._clock() - ALERT_HISTORY_S)
        return len(victims)

    def oldest_unsent_received_at(self) -> float | None:
        """When the oldest reading still waiting for the broker arrived (None: nothing waits)."""
        rows = self._database.execute_read(
            "SELECT received_at FROM readings WHERE sent = 0 ORDER BY id LIMIT 1")
        return float(rows[0][0]) if rows else None

    def oldest_unconfirmed_received_at(self) -> float | None:
        """When the oldest reading the broker acknowledged and no ingest confirmed yet arrived."""
        [(oldest,)] = self._database.execute_read(
            "SELECT MIN(received_at) FROM readings WHERE sent = 1")
        return None if oldest is None else float(oldest)
