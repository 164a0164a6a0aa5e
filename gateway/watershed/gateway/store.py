"""The gateway's durable store: every reading heard, until an ingest confirms it is in InfluxDB.

One SQLite file in WAL mode with ``synchronous=FULL``: when ``add`` returns, the readings are
on disk and survive a power cut, which is what lets the gateway ACK them to the station (the
station then deletes them; the store is the only copy left).

Tables
- ``readings``: one row per (station, seq), duplicates suppressed. ``sent`` is the reading's
  delivery state: 0 waiting to be published, 1 published and acknowledged by the broker (PUBACK,
  at ``acked_at``) but not yet confirmed, 2 confirmed by an ingest (written to InfluxDB, or
  rejected there and counted in the loss ledger). A broker's acknowledgement proves nothing end
  to end (it drops what no subscription matches), so only state 2 leaves the "must deliver" set:
  the forwarder sets overdue state-1 rows back to 0 (``resend_unconfirmed``).
- ``received_runs``: per station, the contiguous runs of seqs stored, ``[first_seq, end_seq)``.
  ACKs are computed from it; it stays small (one row per hole + 1) however many readings arrive.
- ``stations``: what each station last said in its HELLO, and its ACK floor. The facts that
  change at every poll but matter for no reading (last seen, battery, clock offset, outbox
  depth) are kept in memory and written at most every ``facts_interval_s``, all stations in one
  transaction: an idle gateway polling every few seconds must not wear out its SD card. A fact
  that matters is written at once: a higher ``next_seq`` (it bounds the holes to ask for), a
  HELLO, a change in the station's own loss totals. A power cut loses at most one interval of
  the others, which the next poll or STATUS says again.
- ``conflicts``: a reading whose (station, seq) was already stored with different content: a
  station that reused sequence numbers. Kept, never forwarded silently as a duplicate.
- ``counters``: totals that must survive restarts, and ``stored_bytes``, the store's own
  account of what its readings take (a statistic; the quota is measured on disk, below).
- ``lost_runs``: per station, holes found to be gone for good (below the station's
  ``oldest_seq``): settled, so they are counted once and never asked for again.
- ``losses``: the loss ledger, readings lost per station and reason (``gone_from_station``,
  ``shed_<priority>``). A loss is never silent: health publishes it.
- ``alerts``: edge flood alerts (and identity alerts, quarantine.py), kept until the broker
  acknowledged them.
- ``bus_bindings``: per link and bus address, the station id learned from its first HELLO
  (identity.py); ``quarantine`` and ``quarantine_readings``: readings whose sender is in doubt,
  kept apart until an operator releases or drops them (quarantine.py).

The quota bounds the store's files on disk: database + WAL + rollback journal + WAL index
(``-shm``). It is split (``QuotaPlan``) into a WAL reserve (1/8 of the quota, 128 KiB to 4 MiB:
``wal_autocheckpoint`` at half of it, ``journal_size_limit``, and a TRUNCATE checkpoint after
any commit that left the WAL bigger), 32 KiB for the WAL index, and the rest for the database,
which SQLite itself refuses to grow beyond (``max_page_count``). Readings are shed when the
pages in use (``page_count - freelist_count``: measured, fragmentation included) plus those an
``add`` is estimated to need would leave less than ``headroom_pages`` below that ceiling, in this
order: readings already confirmed (``DELIVERED_SQL``), then the undelivered by priority
(priorities.py), oldest first; the newest ``protected_events`` flood-event readings never. If that
is still not enough the ``add`` fails with StoreFull: nothing is ACKed and the station keeps its
readings. Between store calls the files stay within the quota; during one transaction the WAL
may exceed its reserve by that transaction's pages (truncated right after). A database file
already bigger than a lowered quota does not shrink (SQLite reuses its free pages; VACUUM would
need as much space again): it is shed down to the new ceiling and grows no more.

A full disk (SQLite's "database or disk is full", ENOSPC) or a full quota makes every write
raise StoreFull and puts ``space`` (space.py) in its full state: one log line, an alert, no
traceback per failure. Alerts raised meanwhile are kept in memory (``add_alert``), handed to
the forwarder like stored ones, and written once readings are stored again; an alert the broker
acknowledged meanwhile is remembered as such. Station facts that cannot be written stay pending.

One connection guarded by a lock: every thread (links, forwarder) goes through it, so SQLite
never answers "database is locked", and a read never sees a half-written batch.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Hello, Reading, Status

from . import priorities
from .runs import Run, gaps, merged, runs_of, size
from .space import DISK, QUOTA, StoreSpace, is_out_of_space

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
ROW_OVERHEAD_BYTES = 100  # per stored reading, beyond its text (measured: ~85 with indexes)
SHED_SLACK = 0.02  # shed this fraction of the quota more than needed: shed in chunks, not per add
MIN_QUOTA_BYTES = 512 * 1024  # the reserves below and an empty store's pages need ~300 KiB
WAL_RESERVE_MIN_BYTES = 128 * 1024
WAL_RESERVE_MAX_BYTES = 4 * 1024 * 1024
WAL_FRAME_HEADER_BYTES = 24
SHM_BYTES = 32 * 1024  # the WAL index, while the WAL holds fewer than 4096 frames
STORE_FILE_SUFFIXES = ("", "-wal", "-journal", "-shm")  # every file of a store, on disk

# Readings delivered for good (confirmed by an ingest): pruned, and shed first. The one place that
# says what delivered means; NOT_DELIVERED_SQL is its complement, spelled so that the
# readings_undelivered partial index serves it. Change both together.
DELIVERED_SQL = "sent = 2"
NOT_DELIVERED_SQL = "sent < 2"
DEFAULT_PROTECTED_EVENTS = 50_000  # newest flood-event readings never shed (~8 MB)
FACTS_INTERVAL_S = 60.0  # station facts that matter for no reading are written this often

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
    sent        INTEGER NOT NULL DEFAULT 0,  -- 0 unsent, 1 acknowledged by the broker, 2 confirmed
    priority    INTEGER NOT NULL DEFAULT 3,  -- priorities.py: lowest is shed first
    acked_at    REAL,                        -- when the broker acknowledged it (state 1)
    UNIQUE (station, seq)
);
CREATE INDEX IF NOT EXISTS readings_unsent ON readings (id) WHERE sent = 0;
CREATE INDEX IF NOT EXISTS readings_unconfirmed ON readings (acked_at) WHERE sent = 1;
CREATE INDEX IF NOT EXISTS readings_undelivered ON readings (priority, id) WHERE sent < 2;
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
    hello_at      REAL,
    last_seen     REAL,
    known_next_seq INTEGER,  -- highest next_seq the station ever reported (HELLO, STATUS, DATA)
    battery_mv    INTEGER,
    outbox_depth  INTEGER,
    oldest_seq    INTEGER,
    lost_overwritten INTEGER,  -- the station's own loss totals, as its last STATUS said
    lost_corrupt  INTEGER,
    sensor_errors INTEGER,
    clock_offset_s REAL,     -- station clock minus gateway clock at its last STATUS
    status_at     REAL
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
CREATE TABLE IF NOT EXISTS lost_runs (
    station   TEXT    NOT NULL,
    first_seq INTEGER NOT NULL,
    end_seq   INTEGER NOT NULL,
    found_at  REAL    NOT NULL,
    PRIMARY KEY (station, first_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS losses (
    station  TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    readings INTEGER NOT NULL,
    PRIMARY KEY (station, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    station   TEXT    NOT NULL,
    payload   TEXT    NOT NULL,
    raised_at REAL    NOT NULL,
    sent      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS bus_bindings (  -- identity.py: who answers at a learned address
    link     TEXT    NOT NULL,
    address  INTEGER NOT NULL,
    station  TEXT    NOT NULL UNIQUE,
    bound_at REAL    NOT NULL,
    PRIMARY KEY (link, address)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (  -- quarantine.py: readings of a doubtful identity
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT    NOT NULL,  -- address_taken, id_elsewhere, shared_address, seq_reused
    link      TEXT    NOT NULL,
    address   INTEGER NOT NULL,
    bound     TEXT,              -- the id the address is bound to (or the id's home: id_elsewhere)
    claimed   TEXT    NOT NULL,  -- the id the frames claimed (their HELLO, or the bound id)
    opened_at REAL    NOT NULL,
    last_at   REAL    NOT NULL,
    state     TEXT    NOT NULL DEFAULT 'open',  -- open, released, dropped
    settled_to TEXT,             -- released: the station the readings went to
    settled_at REAL
);
CREATE TABLE IF NOT EXISTS quarantine_readings (
    entry       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    channel     INTEGER NOT NULL,  -- the wire channel number: its name depends on the station
    ts          INTEGER NOT NULL,
    mantissa    INTEGER NOT NULL,
    exponent    INTEGER NOT NULL,
    flags       INTEGER NOT NULL,
    received_at REAL    NOT NULL,
    PRIMARY KEY (entry, seq, channel, ts, mantissa, exponent, flags)
) WITHOUT ROWID;
"""

# Columns added since schema 1 to tables of older schemas (CREATE IF NOT EXISTS leaves those alone).
_ADDED_COLUMNS = {
    "readings": ["priority INTEGER NOT NULL DEFAULT 3", "acked_at REAL"],
    "stations": ["last_seen REAL", "known_next_seq INTEGER", "battery_mv INTEGER",
                 "outbox_depth INTEGER", "oldest_seq INTEGER", "lost_overwritten INTEGER",
                 "lost_corrupt INTEGER", "sensor_errors INTEGER", "clock_offset_s REAL",
                 "status_at REAL"],
}

# What a row is accounted in the quota (see the module docstring).
_ROW_COST_SQL = (f"({ROW_OVERHEAD_BYTES} + 2 * length(station) + length(channel)"
                 " + length(basin))")


def row_cost(station: str, channel: str, basin: str) -> int:
    return ROW_OVERHEAD_BYTES + 2 * len(station) + len(channel) + len(basin)


class StoreError(RuntimeError):
    """The store file cannot be used (wrong schema version, not a gateway store)."""


class StoreFull(StoreError):
    """No room for a write: the disk is full, or the quota is taken even after shedding all
    that may be shed. Nothing of it is stored, so readings are not ACKed and stay safe in the
    station's flash. ``reason``: space.DISK or space.QUOTA."""

    def __init__(self, message: str, reason: str = QUOTA) -> None:
        super().__init__(message)
        self.reason = reason


class QuotaPlan(NamedTuple):
    """How a quota is split between the store's files (module docstring)."""

    quota_bytes: int
    wal_bytes: int  # the WAL's reserve: it is truncated back when a commit leaves it bigger
    max_pages: int  # the database's ceiling (PRAGMA max_page_count)
    headroom_pages: int  # shedding keeps this many pages free below the ceiling
    autocheckpoint_pages: int

    @classmethod
    def of(cls, quota_bytes: int, page_size: int) -> QuotaPlan:
        if quota_bytes < MIN_QUOTA_BYTES:
            raise ValueError(f"store quota {quota_bytes} bytes is below the minimum "
                             f"{MIN_QUOTA_BYTES}")
        wal = min(max(quota_bytes // 8, WAL_RESERVE_MIN_BYTES), WAL_RESERVE_MAX_BYTES)
        max_pages = (quota_bytes - wal - SHM_BYTES) // page_size
        return cls(quota_bytes, wal, max_pages, headroom_pages=max(32, max_pages // 32),
                   autocheckpoint_pages=max(8, wal // 2 // (page_size + WAL_FRAME_HEADER_BYTES)))


class _HeldAlert(NamedTuple):
    """An alert raised while the store was full, kept in memory until it can be written."""

    station: str
    payload: str
    raised_at: float
    sent: bool


class Added(NamedTuple):
    new: int
    duplicate: int  # already stored (retransmits); includes any conflicts
    shed: int = 0  # unsent readings (of any station) dropped to make room, each in the ledger


class Confirmed(NamedTuple):
    """What a confirmation changed."""

    written: int  # readings newly confirmed as in InfluxDB
    rejected: int  # readings newly counted lost as rejected by the ingest
    newest_acked_at: float | None  # the latest broker acknowledgement among those confirmed


def _later(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


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
class QuarantineEntry:
    """Readings held back because who sent them is in doubt (quarantine.py)."""

    id: int
    kind: str
    link: str
    address: int
    bound: str | None
    claimed: str
    opened_at: float
    last_at: float
    state: str
    settled_to: str | None
    settled_at: float | None
    readings: int


_QUARANTINE_COLUMNS = ", ".join(f for f in QuarantineEntry.__dataclass_fields__
                                if f != "readings")
QUARANTINED = "quarantined"  # loss-ledger reason: quarantined readings an operator dropped


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
    last_seen: float | None = None
    known_next_seq: int | None = None
    battery_mv: int | None = None
    outbox_depth: int | None = None
    oldest_seq: int | None = None
    lost_overwritten: int | None = None
    lost_corrupt: int | None = None
    sensor_errors: int | None = None
    clock_offset_s: float | None = None
    status_at: float | None = None


_STATION_COLUMNS = ", ".join(StationInfo.__dataclass_fields__)
# Station facts a power cut may lose (the next poll says them again): written in batches.
_VOLATILE_FACTS = frozenset({"last_seen", "battery_mv", "outbox_depth", "oldest_seq",
                             "sensor_errors", "clock_offset_s", "status_at"})
GONE_FROM_STATION = "gone_from_station"  # a hole below the station's oldest_seq
REJECTED_BY_INGEST = "rejected_by_ingest"  # an ingest refused it (reason in its dead letters)
SHED_REASONS = {p: f"shed_{name}" for p, name in priorities.NAMES.items()}
_SHED_BATCH = 2000


class Store:
    """The durable reading store; thread-safe. See the module docstring."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time, *,
                 quota_bytes: int | None = None,
                 protected_events: int = DEFAULT_PROTECTED_EVENTS,
                 facts_interval_s: float = FACTS_INTERVAL_S) -> None:
        self.path = str(path)
        self._clock = clock
        self.space = StoreSpace(self.path, clock)
        self.quota_bytes = quota_bytes
        self.protected_events = protected_events
        self._plan: QuotaPlan | None = None
        self._held_alerts: dict[int, _HeldAlert] = {}  # id -> alert not written (store full)
        self._alerts_sent_unwritten: set[int] = set()  # acknowledged, the flag not yet written
        self._facts_interval_s = facts_interval_s
        self._facts_due = time.monotonic() + facts_interval_s
        self._pending: dict[str, dict[str, Any]] = {}  # station facts not written yet
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) below.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # Re-entrant: a space listener (the gateway's alert) may write while a write that
        # failed for lack of room still holds the lock.
        self._lock = threading.RLock()
        self._db.execute("PRAGMA busy_timeout = 10000")  # another process reading the file
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")  # an ACKed reading survives power loss
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._apply_quota()
        self._migrate()

    def close(self) -> None:
        with self._lock:
            try:
                self._write_facts()
            except StoreFull:
                log.warning("store full at close: the last facts of %d station(s) (last seen,"
                            " battery) are not written; their next poll says them again",
                            len(self._pending))
            finally:
                self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, 2, SCHEMA_VERSION):
                raise StoreError(f"{self.path}: store schema version {version}, this gateway "
                                 f"speaks {SCHEMA_VERSION}")
            try:
                # Idempotent: columns a schema-1 store lacks, then whatever table is missing.
                self._db.executescript(f"BEGIN IMMEDIATE; {self._missing_columns_sql()}"
                                       f" {_SCHEMA} COMMIT;")
                if version != SCHEMA_VERSION:
                    self._db.execute("BEGIN IMMEDIATE")
                    if version in (1, 2):
                        self._upgrade_rows(self._db, version)
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _missing_columns_sql(self) -> str:
        statements = []
        for table, columns in _ADDED_COLUMNS.items():
            existing = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if existing:  # a schema-1 table; a new store gets the columns from _SCHEMA
                statements += [f"ALTER TABLE {table} ADD COLUMN {c};" for c in columns
                               if c.split()[0] not in existing]
        return " ".join(statements)

    def _upgrade_rows(self, db: sqlite3.Connection, version: int) -> None:
        """Rows of an older store. Schema 3: a row "sent" before was only acknowledged by the
        broker, never confirmed: it waits for a confirmation like any other (and may go again).
        Schema 1 also lacks each row's shed priority and its share of the quota."""
        db.execute("DROP INDEX IF EXISTS readings_shed")  # schema 2's, on unsent rows only
        db.execute("UPDATE readings SET acked_at = ? WHERE sent = 1", (self._clock(),))
        if version >= 2:
            return
        for channel, flags in db.execute("SELECT DISTINCT channel, flags FROM readings").fetchall():
            db.execute("UPDATE readings SET priority = ? WHERE channel = ? AND flags = ?",
                       (priorities.shed_priority(channel, flags), channel, flags))
        total = db.execute(f"SELECT COALESCE(SUM({_ROW_COST_SQL}), 0) FROM readings").fetchone()
        db.execute("INSERT OR REPLACE INTO counters VALUES ('stored_bytes', ?)", (total[0],))

    @contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction under the lock. ``durable=False`` for bookkeeping whose loss at a power
        cut costs only a duplicate publish (delivery states): no fsync of its own, so the next
        durable commit (or checkpoint) carries it to disk."""
        with self._lock:
            if durable:
                with self._locked_transaction() as db:
                    yield db
                return
            self._db.execute("PRAGMA synchronous = NORMAL")
            try:
                with self._locked_transaction() as db:
                    yield db
            finally:
                self._db.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def _locked_transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction for a caller that holds the lock. No room for it (the disk, the
        quota) raises StoreFull and notes the store full (space.py)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLITE_FULL may have rolled it back already
                    self._db.execute("ROLLBACK")
                raise
        except StoreFull as e:
            self.space.announce(self.space.note_full(e.reason, str(e)))
            raise
        except (sqlite3.Error, OSError) as e:
            if not is_out_of_space(e):
                raise
            full = self._out_of_space(e)
            self.space.announce(self.space.note_full(full.reason, str(full)))
            raise full from None
        self._bound_wal()

    def _out_of_space(self, error: BaseException) -> StoreFull:
        """What a "database or disk is full" means here: the quota's page ceiling, or the disk."""
        if self._plan is not None:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            if pages + self._plan.headroom_pages >= self._plan.max_pages:
                return StoreFull(f"{self.path}: the quota of {self._plan.quota_bytes} bytes is"
                                 " taken", QUOTA)
        free = self.space.free_bytes()
        return StoreFull(f"{self.path}: the disk is full ({error}; "
                         f"{'unknown' if free is None else free} bytes free)", DISK)

    # --- readings in ------------------------------------------------------------------

    def add(self, station: str, basin: str, readings: Sequence[MessageReading]) -> Added:
        """Store one station's readings in one transaction, durable on return.

        Raises StoreFull (storing nothing) when the disk is full, or the quota leaves no room
        even after shedding."""
        now = self._clock()
        new_seqs: list[int] = []
        duplicates = conflicts = added_bytes = 0
        with self._transaction() as db:
            # Room first (the rows would hit the quota's page ceiling): retransmits count too.
            shed = 0 if self._plan is None else self._enforce_quota(
                db, sum(row_cost(station, r.channel, basin) for r in readings))
            for r in readings:
                row = (station, r.seq, r.channel, r.ts, r.mantissa, r.exponent, r.flags, basin, now)
                # A seq in a received run was stored once: it is here, or was sent and pruned,
                # or shed and counted. Storing it again would publish a duplicate.
                inserted = 0 if self._received(db, station, r.seq) else db.execute(
                    "INSERT INTO readings (station, seq, channel, ts, mantissa, exponent, flags,"
                    " basin, received_at, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (station, seq) DO NOTHING",
                    row + (priorities.shed_priority(r.channel, r.flags),)).rowcount
                if inserted:
                    new_seqs.append(r.seq)
                    added_bytes += row_cost(station, r.channel, basin)
                    continue
                duplicates += 1
                if self._conflicts_with_stored(db, station, r):
                    conflicts += 1
                    db.execute("INSERT INTO conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                    log.warning("station %s sent seq %d again with different content (%s at %d);"
                                " kept in the conflicts table, not forwarded", station, r.seq,
                                r.channel, r.ts)
            db.execute("INSERT OR IGNORE INTO stations (station) VALUES (?)", (station,))
            db.execute("UPDATE stations SET last_seen = ? WHERE station = ?", (now, station))
            self._pending.get(station, {}).pop("last_seen", None)  # older than this one
            if new_seqs:
                # The first readings this store takes from a station set its ACK floor.
                db.execute("UPDATE stations SET ack_floor = ? WHERE station = ? AND ack_floor IS"
                           " NULL", (min(new_seqs), station))
                self._extend_runs(db, station, new_seqs)
                self._unlose(db, station, new_seqs)
                self._bump(db, "stored_bytes", added_bytes)
            self._bump(db, "duplicates", duplicates)
            self._bump(db, "conflicts", conflicts)
            self._bump(db, "readings_received", len(new_seqs))
        if new_seqs:
            self._writable_again()
        return Added(len(new_seqs), duplicates, shed)

    def _writable_again(self) -> None:
        """Readings were stored: if the store was full, it is not; what waited in memory is
        written, then the listeners hear of it."""
        change = self.space.note_writable()
        if change is None:
            return
        with self._lock:
            try:
                self._write_held()
            except StoreFull:
                pass  # noted; kept in memory, written after the next stored readings
        self.space.announce(change)

    @staticmethod
    def _received(db: sqlite3.Connection, station: str, seq: int) -> bool:
        row = db.execute("SELECT end_seq FROM received_runs WHERE station = ? AND first_seq <= ?"
                         " ORDER BY first_seq DESC LIMIT 1", (station, seq)).fetchone()
        return row is not None and row[0] > seq

    @staticmethod
    def _conflicts_with_stored(db: sqlite3.Connection, station: str, r: MessageReading) -> bool:
        stored = db.execute("SELECT channel, ts, mantissa, exponent, flags FROM readings"
                            " WHERE station = ? AND seq = ?", (station, r.seq)).fetchone()
        return stored is not None and tuple(stored) != (r.channel, r.ts, r.mantissa, r.exponent,
                                                         r.flags)

    @staticmethod
    def _extend_runs(db: sqlite3.Connection, station: str, seqs: list[int]) -> None:
        for first, end in runs_of(seqs):
            # Merge with every stored run that overlaps or touches [first, end).
            touching = db.execute(
                "SELECT first_seq, end_seq FROM received_runs WHERE station = ? AND first_seq <= ?"
                " AND end_seq >= ?", (station, end, first)).fetchall()
            for run_first, run_end in touching:
                first, end = min(first, run_first), max(end, run_end)
            db.execute("DELETE FROM received_runs WHERE station = ? AND first_seq <= ? AND"
                       " end_seq >= ?", (station, end, first))
            db.execute("INSERT INTO received_runs VALUES (?, ?, ?)", (station, first, end))

    def _unlose(self, db: sqlite3.Connection, station: str, seqs: list[int]) -> None:
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
            db.execute("DELETE FROM lost_runs WHERE station = ? AND first_seq = ?",
                       (station, first))
            still_lost = [s for s in range(first, end) if s not in found]
            returned += (end - first) - len(still_lost)
            for run in runs_of(still_lost):
                db.execute("INSERT INTO lost_runs VALUES (?, ?, ?, ?)", (station, *run, found_at))
        self._count_loss(db, station, GONE_FROM_STATION, -returned)

    # --- the quota --------------------------------------------------------------------

    def _apply_quota(self) -> None:
        """The pragmas that keep the files within the quota (module docstring); with the lock
        held or before the store is shared."""
        self._plan = (None if self.quota_bytes is None
                      else QuotaPlan.of(self.quota_bytes, self._page_size))
        if self._plan is None:
            # No quota: after a checkpoint the WAL is cut back to 4 MiB, so a burst does not
            # keep SD space; the database may grow as far as SQLite allows.
            self._db.execute(f"PRAGMA journal_size_limit = {WAL_RESERVE_MAX_BYTES}")
            self._db.execute("PRAGMA wal_autocheckpoint = 1000")
            self._db.execute("PRAGMA max_page_count = 4294967294")
            return
        # SQLite keeps max_page_count at least the current size: a file already bigger than a
        # lowered quota does not shrink, it stops growing.
        self._db.execute(f"PRAGMA max_page_count = {self._plan.max_pages}")
        self._db.execute(f"PRAGMA journal_size_limit = {self._plan.wal_bytes // 2}")
        self._db.execute(f"PRAGMA wal_autocheckpoint = {self._plan.autocheckpoint_pages}")

    def _bound_wal(self) -> None:
        """After a commit: a WAL grown past its reserve (a big transaction, a checkpoint held
        back by a reader) is checkpointed and truncated now."""
        if self._plan is None:
            return
        try:
            wal = Path(self.path + "-wal").stat().st_size
        except OSError:
            return
        if wal > self._plan.wal_bytes:
            # Best effort: a reader in another process may hold the WAL, a full disk may keep
            # the database from taking its pages; tried again after the next commit.
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as e:
                log.debug("WAL checkpoint after commit failed: %s", e)

    def files_bytes(self) -> int:
        """What the store's files take on disk now: database, WAL, journal, WAL index."""
        total = 0
        for suffix in STORE_FILE_SUFFIXES:
            try:
                total += Path(self.path + suffix).stat().st_size
            except OSError:
                pass
        return total

    def _used_pages(self, db: sqlite3.Connection) -> int:
        """Database pages holding something (fragmented ones included); free pages are reused."""
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages - db.execute("PRAGMA freelist_count").fetchone()[0])

    def _page_bytes_per_accounted(self, db: sqlite3.Connection, used_pages: int) -> float:
        """What an accounted byte (row_cost) takes in pages, as measured now: at least 1."""
        accounted = self._counter(db, "stored_bytes")
        return max(1.0, used_pages * self._page_size / accounted) if accounted else 1.0

    def _enforce_quota(self, db: sqlite3.Connection, incoming_bytes: int) -> int:
        """Shed until the pages in use plus what ``incoming_bytes`` (accounted) of new rows need
        leave ``headroom_pages`` below the ceiling; returns the undelivered readings dropped."""
        plan = self._plan
        if plan is None:
            return 0
        target = plan.max_pages - plan.headroom_pages
        slack = int(plan.max_pages * SHED_SLACK)
        shed: dict[tuple[str, int], int] = {}  # (station, priority) -> readings dropped
        while True:
            used = self._used_pages(db)
            ratio = self._page_bytes_per_accounted(db, used)
            over = used + -(-int(incoming_bytes * ratio) // self._page_size) - target
            if over <= 0:
                break
            # Rows free whole pages only once their pages empty (fragmentation): shed what the
            # measured ratio says, then measure again.
            if not self._shed_by_class(db, int((over + slack) * self._page_size / ratio), shed):
                raise StoreFull(f"{self.path}: the quota of {plan.quota_bytes} bytes is taken by"
                                " readings that may not be shed (the newest flood-event"
                                " readings)", QUOTA)
        for (station, priority), count in shed.items():
            self._count_loss(db, station, SHED_REASONS[priority], count)
        dropped = sum(shed.values())
        self._bump(db, "readings_shed", dropped)
        if dropped:
            log.warning("store at its quota (%d bytes): shed %d undelivered readings, oldest"
                        " first by priority (%s); counted in the loss ledger", plan.quota_bytes,
                        dropped, ", ".join(f"{station} {priorities.NAMES[p]}: {n}"
                                           for (station, p), n in sorted(shed.items())))
        return dropped

    def _shed_by_class(self, db: sqlite3.Connection, need: int,
                       shed: dict[tuple[str, int], int]) -> int:
        """Delete rows worth ``need`` accounted bytes: delivered ones first, then the others by
        priority, oldest first. Returns the accounted bytes freed; adds the undelivered
        readings dropped to ``shed``."""
        total, _ = self._shed_rows(db, DELIVERED_SQL, (), need)
        for priority in sorted(priorities.NAMES):
            if total >= need:
                break
            where = f"{NOT_DELIVERED_SQL} AND priority = ?"
            args: tuple[Any, ...] = (priority,)
            if priority == priorities.FLOOD_EVENT:
                boundary = self._protected_event_boundary(db)
                if boundary is None:
                    break
                where, args = where + " AND id < ?", args + (boundary,)
            freed, per_station = self._shed_rows(db, where, args, need - total)
            total += freed
            for station, count in per_station.items():
                shed[station, priority] = shed.get((station, priority), 0) + count
        return total

    def _protected_event_boundary(self, db: sqlite3.Connection) -> int | None:
        """Flood-event readings with an id below this may be shed; None: none may."""
        if self.protected_events <= 0:
            return 1 << 62
        row = db.execute(f"SELECT id FROM readings WHERE {NOT_DELIVERED_SQL} AND priority = ?"
                         " ORDER BY id DESC LIMIT 1 OFFSET ?",
                         (priorities.FLOOD_EVENT, self.protected_events - 1)).fetchone()
        return None if row is None else int(row[0])

    def _shed_rows(self, db: sqlite3.Connection, where: str, args: tuple, need: int
                   ) -> tuple[int, dict[str, int]]:
        """Delete rows matching ``where``, oldest first, until ``need`` accounted bytes are
        freed. Returns the bytes freed and the rows deleted per station."""
        freed = 0
        per_station: dict[str, int] = {}
        while freed < need:
            rows = db.execute(f"SELECT id, station, {_ROW_COST_SQL} FROM readings WHERE {where}"
                              " ORDER BY id LIMIT ?", args + (_SHED_BATCH,)).fetchall()
            if not rows:
                break
            victims: list[int] = []
            for row_id, station, cost in rows:
                if freed >= need:
                    break
                victims.append(row_id)
                freed += cost
                per_station[station] = per_station.get(station, 0) + 1
            db.executemany("DELETE FROM readings WHERE id = ?", ((i,) for i in victims))
        self._bump(db, "stored_bytes", -freed)
        return freed, per_station

    def set_quota(self, quota_bytes: int | None, protected_events: int) -> None:
        """A reloaded configuration's quota; shedding to it happens on the next ``add``."""
        with self._lock:
            self.quota_bytes = quota_bytes
            self.protected_events = protected_events
            self._apply_quota()

    # --- what to ACK ------------------------------------------------------------------

    def _settled_runs(self, db: sqlite3.Connection, station: str) -> list[Run]:
        """Received and lost runs together: what the gateway will never ask for again."""
        rows = db.execute("SELECT first_seq, end_seq FROM received_runs WHERE station = ? UNION ALL"
                          " SELECT first_seq, end_seq FROM lost_runs WHERE station = ?",
                          (station, station)).fetchall()
        return merged(rows)

    def ack_ranges(self, station: str) -> AckRanges:
        """The cumulative point and the selective ranges of everything settled for ``station``.

        The floor is the first seq this store ever took from the station: a station sends its
        oldest unacknowledged readings first, so nothing below that floor still waits for an
        ACK from us (it was acknowledged by an earlier store, or lost and counted by the station).
        Holes known to be lost count as settled: the station no longer holds them, and leaving
        the cumulative point below them would make every later ACK carry one more range.
        """
        with self._lock:
            floor = self._ack_floor(self._db, station)
            if floor is None:
                return AckRanges(1, ())
            runs = self._settled_runs(self._db, station)
        cumulative = floor
        ranges = []
        for first, end in runs:
            if end <= cumulative:
                continue
            if first <= cumulative:
                cumulative = end
            else:
                ranges.append((first, end))
        return AckRanges(cumulative, tuple(ranges))

    @staticmethod
    def _ack_floor(db: sqlite3.Connection, station: str) -> int | None:
        row = db.execute("SELECT ack_floor FROM stations WHERE station = ?", (station,)).fetchone()
        return None if row is None else row[0]

    def highest_seq(self, station: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT MAX(end_seq) FROM received_runs WHERE station = ?",
                                   (station,)).fetchone()
        return None if row[0] is None else row[0] - 1

    # --- holes and the loss ledger ----------------------------------------------------

    def holes(self, station: str, below: int | None = None) -> list[Run]:
        """Seq ranges above the ACK floor and below ``below`` (default: the highest next_seq the
        station reported) that were neither received nor found lost, ascending."""
        with self._lock:
            floor = self._ack_floor(self._db, station)
            if below is None:
                row = self._db.execute("SELECT known_next_seq FROM stations WHERE station = ?",
                                       (station,)).fetchone()
                below = None if row is None else row[0]
            if floor is None or below is None:
                return []
            return gaps(self._settled_runs(self._db, station), floor, below)

    def settle_lost(self, station: str, oldest_held: int) -> int:
        """The station holds nothing below ``oldest_held``: every hole under it is gone for
        good. Records them in the ledger (once) and returns how many readings that is."""
        with self._transaction() as db:
            floor = self._ack_floor(db, station)
            if floor is None or oldest_held <= floor:
                return 0
            lost = gaps(self._settled_runs(db, station), floor, oldest_held)
            now = self._clock()
            for first, end in lost:
                db.execute("INSERT INTO lost_runs VALUES (?, ?, ?, ?)", (station, first, end, now))
            count = size(lost)
            self._count_loss(db, station, GONE_FROM_STATION, count)
        if count:
            log.warning("station %s no longer holds seqs %s that never reached this gateway: %d "
                        "readings lost, counted in the loss ledger", station,
                        ", ".join(f"{a}-{b - 1}" for a, b in lost), count)
        return count

    def _count_loss(self, db: sqlite3.Connection, station: str, reason: str, count: int) -> None:
        if count:
            db.execute("INSERT INTO losses VALUES (?, ?, ?) ON CONFLICT (station, reason) DO UPDATE"
                       " SET readings = readings + excluded.readings", (station, reason, count))

    def loss_ledger(self) -> dict[str, dict[str, int]]:
        """Readings lost per station and reason, since the store was created."""
        with self._lock:
            rows = self._db.execute("SELECT station, reason, readings FROM losses WHERE readings"
                                    " != 0 ORDER BY station, reason").fetchall()
        ledger: dict[str, dict[str, int]] = {}
        for station, reason, count in rows:
            ledger.setdefault(station, {})[reason] = count
        return ledger

    def lost_runs(self, station: str) -> list[Run]:
        with self._lock:
            return [tuple(r) for r in self._db.execute(  # type: ignore[misc]
                "SELECT first_seq, end_seq FROM lost_runs WHERE station = ? ORDER BY first_seq",
                (station,))]

    # --- readings out -----------------------------------------------------------------

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
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id LIMIT ?", args + (limit,)).fetchall()
        return [StoredReading(row[0], row[1], row[2], MessageReading(*row[3:])) for row in rows]

    def max_id(self) -> int:
        """The newest reading's id (0 if none): ids above it arrive after this call."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'"
                                   ).fetchone()
        return 0 if row is None else row[0]

    def mark_published(self, ids: Iterable[int]) -> int:
        """The broker acknowledged the message carrying these rows (by store id): they wait for
        an ingest's confirmation now. Returns how many rows changed."""
        now = self._clock()
        with self._transaction(durable=False) as db:
            before = db.total_changes
            db.executemany("UPDATE readings SET sent = 1, acked_at = ? WHERE id = ? AND sent = 0",
                           ((now, i) for i in ids))
            changed = db.total_changes - before
            self._bump(db, "readings_sent", changed)
        return changed

    def confirm(self, written: Mapping[str, Sequence[Run]],
                rejected: Mapping[str, Sequence[tuple[int, int, str]]] = MappingProxyType({})
                ) -> Confirmed:
        """An ingest settled these seq runs per station: ``written`` are in InfluxDB; ``rejected``
        were refused (each counted in the loss ledger as ``rejected_by_ingest``). Rows already
        confirmed, pruned or never stored here change nothing."""
        confirmed = refused = 0
        newest: float | None = None
        with self._transaction(durable=False) as db:
            for station, runs in written.items():
                for first, end in runs:
                    newest = _later(newest, db.execute(
                        "SELECT MAX(acked_at) FROM readings WHERE station = ? AND seq >= ? AND"
                        " seq < ? AND sent = 1", (station, first, end)).fetchone()[0])
                    confirmed += db.execute(
                        f"UPDATE readings SET sent = 2 WHERE station = ? AND seq >= ? AND seq < ?"
                        f" AND {NOT_DELIVERED_SQL}", (station, first, end)).rowcount
            for station, runs in rejected.items():
                count = 0
                for first, end, reason in runs:
                    n = db.execute(f"UPDATE readings SET sent = 2 WHERE station = ? AND seq >= ?"
                                   f" AND seq < ? AND {NOT_DELIVERED_SQL}", (station, first, end)).rowcount
                    if n:
                        log.warning("an ingest rejected %d readings of station %s (seqs %d-%d): %s;"
                                    " counted in the loss ledger as %s", n, station, first,
                                    end - 1, reason, REJECTED_BY_INGEST)
                    count += n
                self._count_loss(db, station, REJECTED_BY_INGEST, count)
                refused += count
            self._bump(db, "readings_confirmed", confirmed)
            self._bump(db, "readings_rejected", refused)
        return Confirmed(confirmed, refused, newest)

    def resend_unconfirmed(self, acked_before: float) -> int:
        """Rows the broker acknowledged before ``acked_before`` and no ingest has confirmed go
        back to unsent: the forwarder publishes them again. Returns how many."""
        with self._transaction(durable=False) as db:
            changed = db.execute("UPDATE readings SET sent = 0 WHERE sent = 1 AND acked_at < ?",
                                 (acked_before,)).rowcount
            self._bump(db, "readings_sent", -changed)  # counted again when acknowledged again
            self._bump(db, "readings_resent", changed)
        return changed

    def prune_confirmed(self, keep: int, batch: int = 10_000) -> int:
        """Delete confirmed readings but the newest ``keep`` (kept to recognise a reused seq), at
        most ``batch`` per call so the lock is never held long. Returns how many were deleted."""
        with self._transaction() as db:
            row = db.execute(f"SELECT id FROM readings WHERE {DELIVERED_SQL} ORDER BY id DESC LIMIT 1"
                             " OFFSET ?", (keep,)).fetchone()
            if row is None:
                return 0
            victims = db.execute(f"SELECT id, {_ROW_COST_SQL} FROM readings WHERE {DELIVERED_SQL}"
                                 " AND id <= ? ORDER BY id LIMIT ?", (row[0], batch)).fetchall()
            db.executemany("DELETE FROM readings WHERE id = ?", ((v[0],) for v in victims))
            self._bump(db, "stored_bytes", -sum(v[1] for v in victims))
            # Acknowledged alerts are history once a month old.
            db.execute("DELETE FROM alerts WHERE sent = 1 AND raised_at < ?",
                       (self._clock() - 30 * 86400,))
        return len(victims)

    # --- stations ---------------------------------------------------------------------

    def record_hello(self, hello: Hello) -> StationInfo | None:
        """Remember what a station said in its HELLO (at once); returns what it said before,
        if anything."""
        now = self._clock()
        with self._lock:
            previous = self._station_info(self._db, hello.station_id)
            self._record(hello.station_id, durable=True, address=hello.addr,
                         firmware=hello.firmware, config_hash=hello.config_hash,
                         reset_cause=hello.reset_cause, boot_count=hello.boot_count,
                         next_seq=hello.next_seq, station_clock=hello.clock, hello_at=now,
                         last_seen=now, known_next_seq=hello.next_seq)
        return previous

    def record_next_seq(self, station: str, next_seq: int) -> None:
        """The station said it has nothing to send and will number its next reading so.
        Written at once only if that is news; otherwise it is a poll like the last one."""
        with self._lock:
            self._record(station, last_seen=self._clock(), known_next_seq=next_seq)

    def record_status(self, station: str, status: Status) -> None:
        """What a station's STATUS said; its clock offset is taken against this machine's."""
        now = self._clock()
        with self._lock:
            self._record(station, last_seen=now, battery_mv=status.battery_mv,
                         outbox_depth=status.outbox_depth, oldest_seq=status.oldest_seq,
                         lost_overwritten=status.lost_overwritten,
                         lost_corrupt=status.lost_corrupt, sensor_errors=status.sensor_errors,
                         clock_offset_s=status.clock - now if status.clock else None,
                         status_at=now, known_next_seq=status.next_seq)

    def _record(self, station: str, *, durable: bool = False, **facts: Any) -> None:
        """Note facts (``stations`` columns) of a station; with the lock held. They are written
        at once if ``durable`` or if they change anything but the volatile facts (a higher
        ``known_next_seq``, the station's loss totals), else with the next batch."""
        self._pending.setdefault(station, {}).update(facts)
        if not durable:
            stored = self._station_row(self._db, station)
            durable = stored is None or any(
                (value or 0) > (getattr(stored, name) or 0) if name == "known_next_seq"
                else value != getattr(stored, name)
                for name, value in facts.items() if name not in _VOLATILE_FACTS)
        if durable or time.monotonic() >= self._facts_due:
            try:
                failed = self._write_facts()
            except StoreFull:
                return  # noted (space.py); the facts stay pending and go with the next write
            if station in failed:
                raise StoreError(f"station {station}: its facts cannot be stored: "
                                 f"{failed[station]}")

    def _write_facts(self) -> dict[str, str]:
        """Write every station's pending facts in one transaction; with the lock held.

        One station's facts that cannot be written (a value SQLite cannot hold) must not keep
        every other station's from being written, nor stay pending to fail every later write:
        they are dropped, logged, and returned (station -> why)."""
        self._facts_due = time.monotonic() + self._facts_interval_s
        if not self._pending:
            return {}
        failed: dict[str, str] = {}
        try:
            with self._locked_transaction() as db:
                for station, facts in self._pending.items():
                    self._write_station_facts(db, station, facts)
        except (sqlite3.Error, OverflowError, ValueError, TypeError):
            for station, facts in self._pending.items():  # the batch is rolled back: one by one
                try:
                    with self._locked_transaction() as db:
                        self._write_station_facts(db, station, facts)
                except (sqlite3.Error, OverflowError, ValueError, TypeError) as e:
                    failed[station] = f"{type(e).__name__}: {e}"
                    log.error("station %s: facts %s cannot be stored (%s); dropped", station,
                              facts, failed[station])
        self._pending.clear()
        return failed

    @staticmethod
    def _write_station_facts(db: sqlite3.Connection, station: str, facts: dict[str, Any]
                             ) -> None:
        db.execute("INSERT OR IGNORE INTO stations (station) VALUES (?)", (station,))
        columns = ", ".join(f"{name} = MAX(COALESCE({name}, 0), ?)" if name == "known_next_seq"
                            else f"{name} = ?" for name in facts)
        db.execute(f"UPDATE stations SET {columns} WHERE station = ?",
                   (*facts.values(), station))

    def station(self, station: str) -> StationInfo | None:
        """What the station said in its last HELLO, or None if it never said HELLO here."""
        with self._lock:
            return self._station_info(self._db, station)

    def stations(self) -> list[StationInfo]:
        """Every station this store has heard of, HELLO or not, by id, with the latest facts."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_STATION_COLUMNS} FROM stations ORDER BY station"
                                    ).fetchall()
            return [self._latest(StationInfo(*row)) for row in rows]

    def _station_info(self, db: sqlite3.Connection, station: str) -> StationInfo | None:
        info = self._station_row(db, station)
        return None if info is None or info.hello_at is None else self._latest(info)

    @staticmethod
    def _station_row(db: sqlite3.Connection, station: str) -> StationInfo | None:
        """The station as written in the store (without facts not written yet)."""
        row = db.execute(f"SELECT {_STATION_COLUMNS} FROM stations WHERE station = ?",
                         (station,)).fetchone()
        return None if row is None else StationInfo(*row)

    def _latest(self, info: StationInfo) -> StationInfo:
        """``info`` with the station's facts not written yet."""
        pending = self._pending.get(info.station)
        if not pending:
            return info
        if "known_next_seq" in pending:
            pending = {**pending, "known_next_seq": max(pending["known_next_seq"] or 0,
                                                        info.known_next_seq or 0)}
        return replace(info, **pending)

    # --- alerts -----------------------------------------------------------------------

    def add_alert(self, station: str, payload: str) -> int:
        """Keep an alert until the broker acknowledges it (logged here while the uplink is down).
        With the store full it is kept in memory, under the id it will be written with."""
        now = self._clock()
        with self._lock:
            try:
                with self._locked_transaction() as db:
                    return int(db.execute("INSERT INTO alerts (station, payload, raised_at)"
                                          " VALUES (?, ?, ?)", (station, payload, now)).lastrowid
                               or 0)
            except StoreFull:
                row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'alerts'"
                                       ).fetchone()
                alert_id = max([0 if row is None else row[0], *self._held_alerts]) + 1
                self._held_alerts[alert_id] = _HeldAlert(station, payload, now, False)
                return alert_id

    def unsent_alerts(self, limit: int, after_id: int = 0) -> list[tuple[int, str, str]]:
        """``(id, station, payload)`` of alerts not yet acknowledged by the broker, oldest first."""
        with self._lock:
            stored = [tuple(r) for r in self._db.execute(
                "SELECT id, station, payload FROM alerts WHERE sent = 0 AND id > ? ORDER BY id"
                " LIMIT ?", (after_id, limit + len(self._alerts_sent_unwritten)))
                if r[0] not in self._alerts_sent_unwritten]
            held = [(i, a.station, a.payload) for i, a in self._held_alerts.items()
                    if i > after_id and not a.sent]
        return sorted(stored + held)[:limit]  # type: ignore[return-value]

    def mark_alert_sent(self, alert_id: int) -> None:
        """Never fails for lack of room: then the flag is kept in memory until it can be written."""
        with self._lock:
            held = self._held_alerts.get(alert_id)
            if held is not None:
                self._held_alerts[alert_id] = held._replace(sent=True)
                return
            self._alerts_sent_unwritten.add(alert_id)
            try:
                self._write_held()
            except StoreFull:
                pass  # noted (space.py); written after the next stored readings

    def _write_held(self) -> None:
        """Write the alerts and alert flags kept in memory while the store was full; with the
        lock held."""
        if not self._held_alerts and not self._alerts_sent_unwritten:
            return
        with self._locked_transaction() as db:
            db.executemany("INSERT INTO alerts (id, station, payload, raised_at, sent) VALUES"
                           " (?, ?, ?, ?, ?)", ((i, *a) for i, a in self._held_alerts.items()))
            db.executemany("UPDATE alerts SET sent = 1 WHERE id = ?",
                           ((i,) for i in self._alerts_sent_unwritten))
        self._held_alerts.clear()
        self._alerts_sent_unwritten.clear()

    # --- bus identity and quarantine (identity.py, quarantine.py) ----------------------

    def bindings(self) -> dict[tuple[str, int], str]:
        """Learned bus bindings: (link, address) -> station id."""
        with self._lock:
            return {(link, address): station for link, address, station in self._db.execute(
                "SELECT link, address, station FROM bus_bindings")}

    def bind(self, link: str, address: int, station: str) -> bool:
        """Bind ``station`` to ``address`` on ``link`` for good; False (nothing changed) if the
        address or the station is bound already."""
        with self._transaction() as db:
            return db.execute("INSERT OR IGNORE INTO bus_bindings VALUES (?, ?, ?, ?)",
                              (link, address, station, self._clock())).rowcount == 1

    def unbind(self, link: str, address: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM bus_bindings WHERE link = ? AND address = ?", (link, address))

    def quarantine_case(self, kind: str, link: str, address: int, bound: str | None,
                        claimed: str) -> tuple[int, bool]:
        """The open quarantine entry of this case, opened now if there is none: (id, opened)."""
        with self._transaction() as db:
            row = db.execute("SELECT id FROM quarantine WHERE state = 'open' AND kind = ? AND"
                             " link = ? AND address = ? AND bound IS ? AND claimed = ?",
                             (kind, link, address, bound, claimed)).fetchone()
            if row is not None:
                return int(row[0]), False
            now = self._clock()
            cursor = db.execute("INSERT INTO quarantine (kind, link, address, bound, claimed,"
                                " opened_at, last_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (kind, link, address, bound, claimed, now, now))
            return int(cursor.lastrowid or 0), True

    def quarantine_add(self, entry: int, readings: Sequence[Reading]) -> int:
        """Keep wire readings in a quarantine entry, durable on return (so they may be ACKed);
        a reading kept there already is not kept twice. Returns how many were new."""
        now = self._clock()
        with self._transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO quarantine_readings VALUES (?, ?, ?, ?, ?, ?,"
                           " ?, ?)", ((entry, r.seq, r.channel, r.time, r.mantissa, r.exponent,
                                       r.flags, now) for r in readings))
            new = db.total_changes - before
            db.execute("UPDATE quarantine SET last_at = ? WHERE id = ?", (now, entry))
            self._bump(db, "readings_quarantined", new)
        return new

    def quarantine_entries(self, entry: int | None = None, state: str | None = "open"
                           ) -> list[QuarantineEntry]:
        """Quarantine entries (one, or all in ``state``; None: any), oldest first."""
        query = (f"SELECT {_QUARANTINE_COLUMNS}, (SELECT COUNT(*) FROM quarantine_readings WHERE"
                 " entry = q.id) FROM quarantine q WHERE 1")
        args: tuple[Any, ...] = ()
        if entry is not None:
            query, args = query + " AND id = ?", args + (entry,)
        if state is not None:
            query, args = query + " AND state = ?", args + (state,)
        with self._lock:
            return [QuarantineEntry(*row) for row in self._db.execute(query + " ORDER BY id",
                                                                       args)]

    def quarantined_readings(self, entry: int) -> list[Reading]:
        with self._lock:
            return [Reading(*row) for row in self._db.execute(
                "SELECT seq, channel, ts, mantissa, exponent, flags FROM quarantine_readings"
                " WHERE entry = ? ORDER BY seq, ts, channel", (entry,))]

    def settle_quarantine(self, entry: int, state: str, to: str | None = None,
                          lost_station: str | None = None, lost: int = 0) -> bool:
        """Close an open entry as ``released`` (to ``to``) or ``dropped``; a drop's ``lost``
        readings go into the loss ledger of ``lost_station``. False if it was not open."""
        with self._transaction() as db:
            if not db.execute("UPDATE quarantine SET state = ?, settled_to = ?, settled_at = ?"
                              " WHERE id = ? AND state = 'open'",
                              (state, to, self._clock(), entry)).rowcount:
                return False
            if lost_station is not None:
                self._count_loss(db, lost_station, QUARANTINED, lost)
        return True

    def received_seqs(self, station: str, seqs: Iterable[int]) -> set[int]:
        """Those of ``seqs`` this store has received from ``station``."""
        with self._lock:
            return {seq for seq in seqs if self._received(self._db, station, seq)}

    def reused_seqs(self, station: str, readings: Iterable[MessageReading]) -> set[int]:
        """Seqs of ``readings`` stored already with other content (a station that reused its
        sequence numbers, or another station answering in its name)."""
        with self._lock:
            return {r.seq for r in readings if self._conflicts_with_stored(self._db, station, r)}

    def ack_floor(self, station: str) -> int | None:
        with self._lock:
            return self._ack_floor(self._db, station)

    # --- counts -----------------------------------------------------------------------

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int) -> None:
        if by:
            db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET"
                       " value = value + excluded.value", (name, by))

    @staticmethod
    def _counter(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def counts(self) -> dict[str, int]:
        """Totals since the store was created, and what is waiting now."""
        with self._lock:
            totals = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            unsent = self._db.execute("SELECT COUNT(*) FROM readings WHERE sent = 0").fetchone()[0]
            unconfirmed = self._db.execute("SELECT COUNT(*) FROM readings WHERE sent = 1"
                                           ).fetchone()[0]
            stations = self._db.execute("SELECT COUNT(*) FROM stations").fetchone()[0]
            alerts = self._db.execute("SELECT COUNT(*) FROM alerts WHERE sent = 0").fetchone()[0]
            alerts += sum(not a.sent for a in self._held_alerts.values())
            alerts -= len(self._alerts_sent_unwritten)
        out = {name: totals.get(name, 0) for name in
               ("readings_received", "readings_sent", "readings_confirmed", "readings_rejected",
                "readings_resent", "duplicates", "conflicts", "readings_shed", "stored_bytes")}
        out.update(unsent=unsent, unconfirmed=unconfirmed, stations=stations, alerts_unsent=alerts)
        return out

    def oldest_unsent_received_at(self) -> float | None:
        """When the oldest reading still waiting for the broker arrived (None: nothing waits)."""
        with self._lock:
            row = self._db.execute("SELECT received_at FROM readings WHERE sent = 0 ORDER BY id"
                                   " LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def oldest_unconfirmed_received_at(self) -> float | None:
        """When the oldest reading the broker acknowledged and no ingest confirmed yet arrived."""
        with self._lock:
            row = self._db.execute("SELECT MIN(received_at) FROM readings WHERE sent = 1"
                                   ).fetchone()
        return None if row[0] is None else float(row[0])
