"""The gateway's durable store: every reading heard, until the broker has acknowledged it.

One SQLite file in WAL mode with ``synchronous=FULL``: when ``add`` returns, the readings are
on disk and survive a power cut, which is what lets the gateway ACK them to the station (the
station then deletes them; the store is the only copy left).

Tables
- ``readings``: one row per (station, seq), duplicates suppressed; ``sent`` flips to 1 only
  when the broker acknowledged the message carrying it.
- ``received_runs``: per station, the contiguous runs of seqs stored, ``[first_seq, end_seq)``.
  ACKs are computed from it; it stays small (one row per hole + 1) however many readings arrive.
- ``stations``: what each station last said in its HELLO, and its ACK floor.
- ``conflicts``: a reading whose (station, seq) was already stored with different content: a
  station that reused sequence numbers. Kept, never forwarded silently as a duplicate.
- ``counters``: totals that must survive restarts.

One connection guarded by a lock: every thread (links, forwarder) goes through it, so SQLite
never answers "database is locked", and a read never sees a half-written batch.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Hello

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order, never reused: a
                                                    -- forwarder's cursor cannot skip a row
    station     TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    channel     TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    mantissa    INTEGER NOT NULL,
    exponent    INTEGER NOT NULL,
    flags       INTEGER NOT NULL,
    basin       TEXT    NOT NULL,
    received_at REAL    NOT NULL,
    sent        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (station, seq)
);
CREATE INDEX IF NOT EXISTS readings_unsent ON readings (id) WHERE sent = 0;
CREATE TABLE IF NOT EXISTS received_runs (
    station   TEXT    NOT NULL,
    first_seq INTEGER NOT NULL,
    end_seq   INTEGER NOT NULL,
    PRIMARY KEY (station, first_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stations (
    station       TEXT PRIMARY KEY,
    ack_floor     INTEGER,   -- seqs below were settled before this store met the station
    address       INTEGER,
    firmware      TEXT,
    config_hash   INTEGER,
    reset_cause   INTEGER,
    boot_count    INTEGER,
    next_seq      INTEGER,   -- as the station reported it in its last HELLO
    station_clock INTEGER,
    hello_at      REAL
);
CREATE TABLE IF NOT EXISTS conflicts (
    station     TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    channel     TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    mantissa    INTEGER NOT NULL,
    exponent    INTEGER NOT NULL,
    flags       INTEGER NOT NULL,
    basin       TEXT    NOT NULL,
    received_at REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


class StoreError(RuntimeError):
    """The store file cannot be used (wrong schema version, not a gateway store)."""


class Added(NamedTuple):
    new: int
    duplicate: int  # already stored (retransmits); includes any conflicts


class AckRanges(NamedTuple):
    """What the ACK to a station says: every seq below ``cumulative`` and each ``[first, end)``."""

    cumulative: int
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class StoredReading:
    id: int  # arrival order
    station: str
    basin: str
    reading: MessageReading

    @property
    def key(self) -> tuple[str, int]:
        return self.station, self.reading.seq


@dataclass(frozen=True, slots=True)
class StationInfo:
    station: str
    address: int | None
    firmware: str | None
    config_hash: int | None
    reset_cause: int | None
    boot_count: int | None
    next_seq: int | None
    station_clock: int | None
    hello_at: float | None


class Store:
    """The durable reading store; thread-safe. See the module docstring."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) below.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA busy_timeout = 10000")  # another process reading the file
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")  # an ACKed reading survives power loss
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StoreError(f"{self.path}: store schema version {version}, this gateway "
                                 f"speaks {SCHEMA_VERSION}")
            try:
                self._db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA}"
                                       f" PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- readings in ------------------------------------------------------------------

    def add(self, station: str, basin: str, readings: Sequence[MessageReading]) -> Added:
        """Store one station's readings in one transaction, durable on return."""
        now = self._clock()
        new_seqs: list[int] = []
        duplicates = conflicts = 0
        with self._transaction() as db:
            for r in readings:
                row = (station, r.seq, r.channel, r.ts, r.mantissa, r.exponent, r.flags, basin, now)
                # ON CONFLICT DO NOTHING, not INSERT OR IGNORE: only a duplicate key is
                # ignored; OR IGNORE would also swallow a NOT NULL violation as a "duplicate".
                inserted = db.execute(
                    "INSERT INTO readings (station, seq, channel, ts, mantissa, exponent, flags,"
                    " basin, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (station, seq) DO NOTHING", row).rowcount
                if inserted:
                    new_seqs.append(r.seq)
                    continue
                duplicates += 1
                if self._conflicts_with_stored(db, station, r):
                    conflicts += 1
                    db.execute("INSERT INTO conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                    log.warning("station %s sent seq %d again with different content (%s at %d);"
                                " kept in the conflicts table, not forwarded", station, r.seq,
                                r.channel, r.ts)
            if new_seqs:
                # The first readings this store takes from a station set its ACK floor.
                db.execute("INSERT OR IGNORE INTO stations (station) VALUES (?)", (station,))
                db.execute("UPDATE stations SET ack_floor = ? WHERE station = ? AND ack_floor IS"
                           " NULL", (min(new_seqs), station))
                self._extend_runs(db, station, new_seqs)
            self._bump(db, "duplicates", duplicates)
            self._bump(db, "conflicts", conflicts)
            self._bump(db, "readings_received", len(new_seqs))
        return Added(len(new_seqs), duplicates)

    @staticmethod
    def _conflicts_with_stored(db: sqlite3.Connection, station: str, r: MessageReading) -> bool:
        stored = db.execute("SELECT channel, ts, mantissa, exponent, flags FROM readings"
                            " WHERE station = ? AND seq = ?", (station, r.seq)).fetchone()
        return stored is not None and tuple(stored) != (r.channel, r.ts, r.mantissa, r.exponent,
                                                         r.flags)

    @staticmethod
    def _extend_runs(db: sqlite3.Connection, station: str, seqs: list[int]) -> None:
        for first, end in _runs_of(seqs):
            # Merge with every stored run that overlaps or touches [first, end).
            touching = db.execute(
                "SELECT first_seq, end_seq FROM received_runs WHERE station = ? AND first_seq <= ?"
                " AND end_seq >= ?", (station, end, first)).fetchall()
            for run_first, run_end in touching:
                first, end = min(first, run_first), max(end, run_end)
            db.execute("DELETE FROM received_runs WHERE station = ? AND first_seq <= ? AND"
                       " end_seq >= ?", (station, end, first))
            db.execute("INSERT INTO received_runs VALUES (?, ?, ?)", (station, first, end))

    # --- what to ACK ------------------------------------------------------------------

    def ack_ranges(self, station: str) -> AckRanges:
        """The cumulative point and the selective ranges of everything stored for ``station``.

        The floor is the first seq this store ever took from the station: a station sends its
        oldest unacknowledged readings first, so nothing below that floor still waits for an
        ACK from us (it was acknowledged by an earlier store, or lost and counted by the station).
        """
        with self._lock:
            row = self._db.execute("SELECT ack_floor FROM stations WHERE station = ?",
                                   (station,)).fetchone()
            if row is None or row[0] is None:
                return AckRanges(1, ())
            cumulative = row[0]
            runs = self._db.execute(
                "SELECT first_seq, end_seq FROM received_runs WHERE station = ? AND end_seq > ?"
                " ORDER BY first_seq", (station, cumulative)).fetchall()
        ranges = []
        for first, end in runs:
            if first <= cumulative:
                cumulative = end
            else:
                ranges.append((first, end))
        return AckRanges(cumulative, tuple(ranges))

    def highest_seq(self, station: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT MAX(end_seq) FROM received_runs WHERE station = ?",
                                   (station,)).fetchone()
        return None if row[0] is None else row[0] - 1

    # --- readings out -----------------------------------------------------------------

    def unsent(self, limit: int, after_id: int = 0, station: str | None = None
               ) -> list[StoredReading]:
        """Readings the broker has not acknowledged, oldest first, with ids above ``after_id``."""
        query = ("SELECT id, station, basin, seq, channel, ts, mantissa, exponent, flags"
                 " FROM readings WHERE sent = 0 AND id > ?")
        args: tuple = (after_id,)
        if station is not None:
            query += " AND station = ?"
            args += (station,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id LIMIT ?", args + (limit,)).fetchall()
        return [StoredReading(row[0], row[1], row[2], MessageReading(*row[3:])) for row in rows]

    def mark_sent(self, keys: Iterable[tuple[str, int]]) -> int:
        """Flag readings as delivered to the broker; returns how many rows changed."""
        changed = 0
        with self._transaction() as db:
            for station, seq in keys:
                changed += db.execute("UPDATE readings SET sent = 1 WHERE station = ? AND seq = ?"
                                      " AND sent = 0", (station, seq)).rowcount
            self._bump(db, "readings_sent", changed)
        return changed

    # --- stations ---------------------------------------------------------------------

    def record_hello(self, hello: Hello) -> StationInfo | None:
        """Remember what a station said in its HELLO; returns what it said before, if anything."""
        with self._transaction() as db:
            previous = self._station_info(db, hello.station_id)
            db.execute("INSERT OR IGNORE INTO stations (station) VALUES (?)", (hello.station_id,))
            db.execute(
                "UPDATE stations SET address = ?, firmware = ?, config_hash = ?, reset_cause = ?,"
                " boot_count = ?, next_seq = ?, station_clock = ?, hello_at = ? WHERE station = ?",
                (hello.addr, hello.firmware, hello.config_hash, hello.reset_cause,
                 hello.boot_count, hello.next_seq, hello.clock, self._clock(), hello.station_id))
        return previous

    def station(self, station: str) -> StationInfo | None:
        """What the station said in its last HELLO, or None if it never said HELLO here."""
        with self._lock:
            return self._station_info(self._db, station)

    @staticmethod
    def _station_info(db: sqlite3.Connection, station: str) -> StationInfo | None:
        row = db.execute(
            "SELECT station, address, firmware, config_hash, reset_cause, boot_count, next_seq,"
            " station_clock, hello_at FROM stations WHERE station = ? AND hello_at IS NOT NULL",
            (station,)).fetchone()
        return None if row is None else StationInfo(*row)

    # --- counts -----------------------------------------------------------------------

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int) -> None:
        if by:
            db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET"
                       " value = value + excluded.value", (name, by))

    def counts(self) -> dict[str, int]:
        """Totals since the store was created, and what is waiting now."""
        with self._lock:
            totals = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            unsent = self._db.execute("SELECT COUNT(*) FROM readings WHERE sent = 0").fetchone()[0]
            stations = self._db.execute("SELECT COUNT(*) FROM stations").fetchone()[0]
        out = {name: totals.get(name, 0) for name in
               ("readings_received", "readings_sent", "duplicates", "conflicts")}
        out.update(unsent=unsent, stations=stations)
        return out


def _runs_of(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Collapse sequence numbers into ascending ``[first, end)`` runs."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and runs[-1][1] == seq:
            runs[-1] = (runs[-1][0], seq + 1)
        else:
            runs.append((seq, seq + 1))
    return runs
