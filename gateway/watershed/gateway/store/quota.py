"""The quota: the store's files on disk stay within it, by shedding readings in a known order.

The quota bounds database + WAL + rollback journal + WAL index (``-shm``). It is split
(``QuotaPlan``) into a WAL reserve (1/8 of the quota, 128 KiB to 4 MiB: ``wal_autocheckpoint`` at
half of it, ``journal_size_limit``, and a TRUNCATE checkpoint after any commit that left the WAL
bigger), 32 KiB for the WAL index, and the rest for the database, which SQLite itself refuses to
grow beyond (``max_page_count``). Readings are shed when the pages in use (``page_count -
freelist_count``: measured, fragmentation included) plus those an ``add`` is estimated to need
would leave less than ``headroom_pages`` below that ceiling, in this order: readings already
confirmed (``DELIVERED_SQL``), then the undelivered by priority (priorities.py), oldest first; the
newest ``protected_events`` flood-event readings never. If that is still not enough the ``add``
fails with StoreFull: nothing is ACKed and the station keeps its readings. Between store calls the
files stay within the quota; during one transaction the WAL may exceed its reserve by that
transaction's pages (truncated right after). A database file already bigger than a lowered quota
does not shrink (SQLite reuses its free pages; VACUUM would need as much space again): it is shed
down to the new ceiling and grows no more.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

from .. import priorities
from ..space import DISK, QUOTA
from .counters import bump, counter
from .database import Database, StoreFull
from .ledger import SHED_REASONS, count_loss
from .schema import DELIVERED_SQL, NOT_DELIVERED_SQL, ROW_COST_SQL

log = logging.getLogger(__name__)

SHED_SLACK = 0.02  # shed this fraction of the quota more than needed: shed in chunks, not per add
MIN_QUOTA_BYTES = 512 * 1024  # the reserves below and an empty store's pages need ~300 KiB
WAL_RESERVE_MIN_BYTES = 128 * 1024
WAL_RESERVE_MAX_BYTES = 4 * 1024 * 1024
WAL_FRAME_HEADER_BYTES = 24
SHM_BYTES = 32 * 1024  # the WAL index, while the WAL holds fewer than 4096 frames
STORE_FILE_SUFFIXES = ("", "-wal", "-journal", "-shm")  # every file of a store, on disk
DEFAULT_PROTECTED_EVENTS = 50_000  # newest flood-event readings never shed (~8 MB)
_SHED_BATCH = 2000


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


def files_bytes(path: str) -> int:
    """What a store's files take on disk now: database, WAL, journal, WAL index."""
    total = 0
    for suffix in STORE_FILE_SUFFIXES:
        try:
            total += Path(path + suffix).stat().st_size
        except OSError:
            pass
    return total


class Quota:
    """The quota of one store (None: only what the disk holds). Sets the pragmas that keep the
    files within it, and tells the database what a full disk means and how to bound its WAL."""

    def __init__(self, database: Database, quota_bytes: int | None,
                 protected_events: int = DEFAULT_PROTECTED_EVENTS) -> None:
        self._database = database
        self.quota_bytes = quota_bytes
        self.protected_events = protected_events
        self._page_size = database.page_size
        self.plan = None if quota_bytes is None else QuotaPlan.of(quota_bytes, self._page_size)
        self._apply()
        database.full_error = self.full_error
        database.after_commit = self.bound_wal

    def _apply(self) -> None:
        """The pragmas that keep the files within the quota; before the store is shared."""
        db = self._database.conn
        if self.plan is None:
            # No quota: after a checkpoint the WAL is cut back to 4 MiB, so a burst does not
            # keep SD space; the database may grow as far as SQLite allows.
            db.execute(f"PRAGMA journal_size_limit = {WAL_RESERVE_MAX_BYTES}")
            db.execute("PRAGMA wal_autocheckpoint = 1000")
            db.execute("PRAGMA max_page_count = 4294967294")
            return
        # SQLite keeps max_page_count at least the current size: a file already bigger than a
        # lowered quota does not shrink, it stops growing.
        db.execute(f"PRAGMA max_page_count = {self.plan.max_pages}")
        db.execute(f"PRAGMA journal_size_limit = {self.plan.wal_bytes // 2}")
        db.execute(f"PRAGMA wal_autocheckpoint = {self.plan.autocheckpoint_pages}")

    def full_error(self, error: BaseException) -> StoreFull:
        """What a "database or disk is full" means here: the quota's page ceiling, or the disk."""
        path = self._database.path
        if self.plan is not None:
            pages = self._database.conn.execute("PRAGMA page_count").fetchone()[0]
            if pages + self.plan.headroom_pages >= self.plan.max_pages:
                return StoreFull(f"{path}: the quota of {self.plan.quota_bytes} bytes is taken",
                                 QUOTA)
        free = self._database.space.free_bytes()
        return StoreFull(f"{path}: the disk is full ({error}; "
                         f"{'unknown' if free is None else free} bytes free)", DISK)

    def bound_wal(self) -> None:
        """After a commit: a WAL grown past its reserve (a big transaction, a checkpoint held
        back by a reader) is checkpointed and truncated now."""
        if self.plan is None:
            return
        try:
            wal = Path(self._database.path + "-wal").stat().st_size
        except OSError:
            return
        if wal > self.plan.wal_bytes:
            # Best effort: a reader in another process may hold the WAL, a full disk may keep
            # the database from taking its pages; tried again after the next commit.
            try:
                self._database.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as e:
                log.debug("WAL checkpoint after commit failed: %s", e)

    # --- shedding -----------------------------------------------------------------------

    def make_room(self, db: sqlite3.Connection, incoming_bytes: int) -> int:
        """Shed until the pages in use plus what ``incoming_bytes`` (accounted) of new rows need
        leave ``headroom_pages`` below the ceiling; returns the undelivered readings dropped."""
        plan = self.plan
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
                raise StoreFull(f"{self._database.path}: the quota of {plan.quota_bytes} bytes"
                                " is taken by readings that may not be shed (the newest"
                                " flood-event readings)", QUOTA)
        for (station, priority), count in shed.items():
            count_loss(db, station, SHED_REASONS[priority], count)
        dropped = sum(shed.values())
        bump(db, "readings_shed", dropped)
        if dropped:
            log.warning("store at its quota (%d bytes): shed %d undelivered readings, oldest"
                        " first by priority (%s); counted in the loss ledger", plan.quota_bytes,
                        dropped, ", ".join(f"{station} {priorities.NAMES[p]}: {n}"
                                           for (station, p), n in sorted(shed.items())))
        return dropped

    def used_bytes(self) -> int:
        with self._database.reading() as db:
            return self._used_pages(db) * self._page_size

    @staticmethod
    def _used_pages(db: sqlite3.Connection) -> int:
        """Database pages holding something (fragmented ones included); free pages are reused."""
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages - db.execute("PRAGMA freelist_count").fetchone()[0])

    def _page_bytes_per_accounted(self, db: sqlite3.Connection, used_pages: int) -> float:
        """What an accounted byte (row_cost) takes in pages, as measured now: at least 1."""
        accounted = counter(db, "stored_bytes")
        return max(1.0, used_pages * self._page_size / accounted) if accounted else 1.0

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

    @staticmethod
    def _shed_rows(db: sqlite3.Connection, where: str, args: tuple, need: int
                   ) -> tuple[int, dict[str, int]]:
        """Delete rows matching ``where``, oldest first, until ``need`` accounted bytes are
        freed. Returns the bytes freed and the rows deleted per station."""
        freed = 0
        per_station: dict[str, int] = {}
        while freed < need:
            rows = db.execute(f"SELECT id, station, {ROW_COST_SQL} FROM readings WHERE {where}"
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
        bump(db, "stored_bytes", -freed)
        return freed, per_station
