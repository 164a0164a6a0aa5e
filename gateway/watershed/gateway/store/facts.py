"""Station facts (the ``stations`` table): what each station last said, written sparingly.

The facts that change at every poll but matter for no reading (last seen, battery, clock offset,
outbox depth) are kept in memory and written at most every ``facts_interval_s``, all stations in
one transaction: an idle gateway polling every few seconds must not wear out its SD card. A fact
that matters is written at once: a ``next_seq`` above what the stored readings imply (it bounds
the holes to ask for), a HELLO, a change in the station's own loss totals. A power cut loses at most one interval of the others,
which the next poll or STATUS says again. Facts that cannot be written (store full) stay pending.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from watershed.contracts.wire import Hello, Status, config_hash

from .database import Database, StoreError, StoreFull
from .ledger import known_end

log = logging.getLogger(__name__)

FACTS_INTERVAL_S = 60.0  # station facts that matter for no reading are written this often


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


@dataclass(frozen=True, slots=True)
class PushedConfig:
    """The config a station last took from this gateway (remote ``config``)."""

    config: str
    config_hash: int
    pushed_at: float


_STATION_COLUMNS = ", ".join(StationInfo.__dataclass_fields__)
# Station facts a power cut may lose (the next poll says them again): written in batches.
_VOLATILE_FACTS = frozenset({"last_seen", "battery_mv", "outbox_depth", "oldest_seq",
                             "sensor_errors", "clock_offset_s", "status_at"})


class StationFacts:
    """The delayed-write cache of station facts in front of the ``stations`` table."""

    def __init__(self, database: Database, clock: Callable[[], float],
                 interval_s: float = FACTS_INTERVAL_S) -> None:
        self._database = database
        self._clock = clock
        self._interval_s = interval_s
        self._due = time.monotonic() + interval_s
        self._pending: dict[str, dict[str, Any]] = {}  # station facts not written yet

    @property
    def pending_stations(self) -> int:
        return len(self._pending)

    def note(self, station: str, **facts: Any) -> None:
        """Volatile facts (``_VOLATILE_FACTS``) to write with the next batch; with the lock held,
        inside a caller's transaction (so nothing is written here)."""
        assert _VOLATILE_FACTS.issuperset(facts)
        self._pending.setdefault(station, {}).update(facts)

    def record_hello(self, hello: Hello) -> StationInfo | None:
        """Remember what a station said in its HELLO (at once); returns what it said before,
        if anything."""
        now = self._clock()
        with self._database.reading() as db:
            previous = self._station_info(db, hello.station_id)
            self._record(hello.station_id, durable=True, address=hello.addr,
                         firmware=hello.firmware, config_hash=hello.config_hash,
                         reset_cause=hello.reset_cause, boot_count=hello.boot_count,
                         next_seq=hello.next_seq, station_clock=hello.clock, hello_at=now,
                         last_seen=now, known_next_seq=hello.next_seq)
        return previous

    def record_next_seq(self, station: str, next_seq: int) -> None:
        """The station said it has nothing to send and will number its next reading so.
        Written at once only if that is news; otherwise it is a poll like the last one."""
        with self._database.lock:
            self._record(station, last_seen=self._clock(), known_next_seq=next_seq)

    def record_status(self, station: str, status: Status) -> None:
        """What a station's STATUS said; its clock offset is taken against this machine's."""
        now = self._clock()
        with self._database.lock:
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
            db = self._database.conn
            stored = self._station_row(db, station)
            # A next_seq is news only beyond what the stored readings imply (ledger.known_end):
            # the poll after each reading says "next is N+1", which the reading said already.
            durable = stored is None or any(
                (value or 0) > (known_end(db, station) or 0) if name == "known_next_seq"
                else value != getattr(stored, name)
                for name, value in facts.items() if name not in _VOLATILE_FACTS)
        if durable or time.monotonic() >= self._due:
            try:
                failed = self.write()
            except StoreFull:
                return  # noted (space.py); the facts stay pending and go with the next write
            if station in failed:
                raise StoreError(f"station {station}: its facts cannot be stored: "
                                 f"{failed[station]}")

    def write(self) -> dict[str, str]:
        """Write every station's pending facts in one transaction; with the lock held.

        One station's facts that cannot be written (a value SQLite cannot hold) must not keep
        every other station's from being written, nor stay pending to fail every later write:
        they are dropped, logged, and returned (station -> why)."""
        self._due = time.monotonic() + self._interval_s
        if not self._pending:
            return {}
        failed: dict[str, str] = {}
        try:
            with self._database.locked_transaction() as db:
                for station, facts in self._pending.items():
                    self._write_station_facts(db, station, facts)
        except (sqlite3.Error, OverflowError, ValueError, TypeError):
            for station, facts in self._pending.items():  # the batch is rolled back: one by one
                try:
                    with self._database.locked_transaction() as db:
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

    def record_pushed_config(self, station: str, config: str) -> None:
        """The station took ``config`` (its canonical JSON text): kept for ``config-get``."""
        with self._database.transaction() as db:
            db.execute("INSERT OR REPLACE INTO pushed_configs VALUES (?, ?, ?, ?)",
                       (station, config, config_hash(config.encode()), self._clock()))

    def pushed_config(self, station: str) -> PushedConfig | None:
        rows = self._database.execute_read("SELECT config, config_hash, pushed_at FROM"
                                           " pushed_configs WHERE station = ?", (station,))
        return PushedConfig(*rows[0]) if rows else None

    def station(self, station: str) -> StationInfo | None:
        """What the station said in its last HELLO, or None if it never said HELLO here."""
        with self._database.reading() as db:
            return self._station_info(db, station)

    def stations(self) -> list[StationInfo]:
        """Every station this store has heard of, HELLO or not, by id, with the latest facts."""
        with self._database.reading() as db:
            rows = db.execute(f"SELECT {_STATION_COLUMNS} FROM stations ORDER BY station"
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
