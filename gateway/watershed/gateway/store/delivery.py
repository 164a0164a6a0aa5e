"""Readings out: each reading's delivery state, and the cursor the forwarder reads them by.

``readings.sent`` is the state: 0 waiting to be published, 1 published and acknowledged by the
broker (PUBACK, at ``acked_at``) but not yet confirmed, 2 confirmed by an ingest (written to
InfluxDB, or rejected there and counted in the loss ledger). A broker's acknowledgement proves
nothing end to end (it drops what no subscription matches), so only state 2 leaves the "must
deliver" set: the forwarder sets overdue state-1 rows back to 0 (``resend_unconfirmed``).

The broker's acknowledgements are batched (SD wear): ``mark_published`` notes them in memory and
writes them at most every ``ACK_FLUSH_S`` (or ``ACK_FLUSH_ROWS`` at a time) in one transaction,
together with the next confirmation or resend if that comes first; every read here sees them
(``unsent`` skips them, the counts and ages count them). A power cut loses at most that
interval's acknowledgements: those readings go out once more (at-least-once), nothing is lost.
Each acknowledgement written alone rewrote the same index and table pages for every reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from watershed.contracts.mqtt import MessageReading

from ..runs import Run
from .alerts import AlertOutbox
from .counters import bump
from .database import Database
from .ledger import REJECTED_BY_INGEST, count_loss
from .schema import NOT_DELIVERED_SQL, ROW_COST_SQL

log = logging.getLogger(__name__)

ALERT_HISTORY_S = 30 * 86400  # acknowledged alerts are history once this old
ACK_FLUSH_S = 30.0  # broker acknowledgements are written this often ...
ACK_FLUSH_ROWS = 5000  # ... or once this many wait (bounds memory while a backlog drains)
_IN_CHUNK = 500  # ids per "id IN (...)" query


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
    def __init__(self, database: Database, clock: Callable[[], float],
                 ack_flush_s: float = ACK_FLUSH_S) -> None:
        self._database = database
        self._clock = clock
        self._ack_flush_s = ack_flush_s
        self._acked: dict[int, float] = {}  # acknowledged, not written yet: id -> acked_at
        self._flush_due = 0.0  # monotonic: when the oldest of them must be written

    @property
    def acks_pending(self) -> int:
        return len(self._acked)

    def unsent(self, limit: int, after_id: int = 0, station: str | None = None,
               up_to_id: int | None = None) -> list[StoredReading]:
        """Readings the broker has not acknowledged, oldest first, with ids above ``after_id``
        (and at most ``up_to_id``): a cursor, so a backlog of any size streams in pages."""
        with self._database.lock:
            rows: list[StoredReading] = []
            while len(rows) < limit:
                want = limit - len(rows)
                page = self._unsent_page(want, after_id, station, up_to_id)
                rows += [r for r in page if r.id not in self._acked]
                if len(page) < want:
                    break
                after_id = page[-1].id
            return rows

    def _unsent_page(self, limit: int, after_id: int, station: str | None,
                     up_to_id: int | None) -> list[StoredReading]:
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
        an ingest's confirmation now (written with the next batch). Returns how many rows
        changed state."""
        now = self._clock()
        with self._database.lock:
            wanted = [i for i in dict.fromkeys(ids) if i not in self._acked]
            fresh = self._unsent_ids(wanted)
            if fresh and not self._acked:
                self._flush_due = time.monotonic() + self._ack_flush_s
            self._acked.update((i, now) for i in fresh)
            if self._acked and (len(self._acked) >= ACK_FLUSH_ROWS
                                or time.monotonic() >= self._flush_due):
                self.flush()
        return len(fresh)

    def _unsent_ids(self, ids: list[int]) -> list[int]:
        found: list[int] = []
        for at in range(0, len(ids), _IN_CHUNK):
            chunk = ids[at:at + _IN_CHUNK]
            found += [row[0] for row in self._database.conn.execute(
                f"SELECT id FROM readings WHERE sent = 0 AND id IN ({','.join('?' * len(chunk))})"
                " ORDER BY id", chunk)]
        return found

    def flush(self) -> None:
        """Write the acknowledgements noted so far (close, and when due)."""
        with self._database.lock:
            if self._acked:
                with self._database.transaction(durable=False) as db:
                    self._write_acked(db)

    def _write_acked(self, db: Any) -> None:
        """Within a transaction: the noted acknowledgements go in; forgotten once it commits
        (a failed transaction keeps them noted)."""
        if not self._acked:
            return
        before = db.total_changes
        db.executemany("UPDATE readings SET sent = 1, acked_at = ? WHERE id = ? AND sent = 0",
                       ((at, i) for i, at in self._acked.items()))
        bump(db, "readings_sent", db.total_changes - before)
        self._acked = {}

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
            self._write_acked(db)
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
            self._write_acked(db)
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
            # Every row below the oldest one not yet delivered is delivered; the partial indexes
            # find that one at once. (Counting delivered rows down from the newest walked every
            # undelivered row above them: a 1M backlog's drain spent a fifth of its CPU there.)
            # While a backlog waits, delivered rows above it are kept until it is through.
            low = db.execute("SELECT MIN(id) FROM readings WHERE sent = 0").fetchone()[0]
            in_flight = db.execute("SELECT MIN(id) FROM readings INDEXED BY readings_unconfirmed"
                                   " WHERE sent = 1").fetchone()[0]  # few: the in-flight window
            bounds = [i for i in (low, in_flight) if i is not None]
            below = min(bounds) if bounds else 1 << 62  # nothing waits: every row is delivered
            row = db.execute("SELECT id FROM readings WHERE id < ? ORDER BY id DESC"
                             " LIMIT 1 OFFSET ?", (below, keep)).fetchone()
            if row is None:
                return 0
            last = db.execute("SELECT id FROM readings WHERE id <= ? ORDER BY id"
                              " LIMIT 1 OFFSET ?", (row[0], batch - 1)).fetchone()
            upper = row[0] if last is None else last[0]
            count, cost = db.execute(f"SELECT COUNT(*), SUM({ROW_COST_SQL}) FROM readings"
                                     " WHERE id <= ?", (upper,)).fetchone()
            db.execute("DELETE FROM readings WHERE id <= ?", (upper,))
            bump(db, "stored_bytes", -(cost or 0))
            AlertOutbox.prune(db, self._clock() - ALERT_HISTORY_S)
        return int(count)

    def oldest_unsent_received_at(self) -> float | None:
        """When the oldest reading still waiting for the broker arrived (None: nothing waits)."""
        with self._database.lock:
            rows = self._unsent_page(1, 0, None, None)
            if rows and rows[0].id in self._acked:
                rows = self.unsent(1)  # skipping those acknowledged but not written yet
            if not rows:
                return None
            [(received_at,)] = self._database.execute_read(
                "SELECT received_at FROM readings WHERE id = ?", (rows[0].id,))
            return float(received_at)

    def oldest_unconfirmed_received_at(self) -> float | None:
        """When the oldest reading the broker acknowledged and no ingest confirmed yet arrived."""
        with self._database.lock:
            [(oldest,)] = self._database.execute_read(
                "SELECT MIN(received_at) FROM readings WHERE sent = 1")
            if self._acked:
                [(noted,)] = self._database.execute_read(
                    "SELECT MIN(received_at) FROM readings WHERE id = ?", (min(self._acked),))
                oldest = noted if oldest is None else oldest if noted is None else min(oldest,
                                                                                      noted)
        return None if oldest is None else float(oldest)
