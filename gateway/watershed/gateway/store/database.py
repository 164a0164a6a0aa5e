"""The store's one SQLite connection, its lock and its transactions.

One connection guarded by a re-entrant lock: every thread (links, forwarder) goes through it, so
SQLite never answers "database is locked", and a read never sees a half-written batch. WAL mode
with ``synchronous=FULL``: a durable transaction is on disk when it returns. A write that finds
no room (the disk, the quota's page ceiling) raises StoreFull and notes the store full
(space.py): one log line per change, never a traceback per failure.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..space import QUOTA, StoreSpace, is_out_of_space

log = logging.getLogger(__name__)

# SD wear: a commit writes every page it touches (~8-20: table, indexes, runs, counters) to
# the WAL, and the kernel and the card count whole 4 KiB blocks: 4096-byte pages cost ~33 KB
# per durable one-reading commit, 1024 ~9 KB, 512 less again (bench_gateway idle figures).
NEW_STORE_PAGE_SIZE = 512


class StoreError(RuntimeError):
    """The store file cannot be used (wrong schema version, not a gateway store)."""


class StoreFull(StoreError):
    """No room for a write: the disk is full, or the quota is taken even after shedding all
    that may be shed. Nothing of it is stored, so readings are not ACKed and stay safe in the
    station's flash. ``reason``: space.DISK or space.QUOTA."""

    def __init__(self, message: str, reason: str = QUOTA) -> None:
        super().__init__(message)
        self.reason = reason


class Database:
    """The connection, under its lock. ``full_error`` says what an out-of-space error means
    (the quota's, quota.py); ``after_commit`` runs after every commit (the WAL bound)."""

    def __init__(self, path: str, space: StoreSpace) -> None:
        self.path = path
        self.space = space
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) below.
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Re-entrant: a space listener (the gateway's alert) may write while a write that
        # failed for lack of room still holds the lock.
        self.lock = threading.RLock()
        self.conn.execute("PRAGMA busy_timeout = 10000")  # another process reading the file
        # A new store only (an existing file keeps its page size): every commit writes whole
        # pages, and a reading's commit touches ~6 (table, indexes, runs, counters).
        self.conn.execute(f"PRAGMA page_size = {NEW_STORE_PAGE_SIZE}")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")  # an ACKed reading survives power loss
        self.page_size = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        self.full_error: Callable[[BaseException], StoreFull] = (
            lambda e: StoreFull(f"{path}: {e}", QUOTA))
        self.after_commit: Callable[[], None] = lambda: None

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction under the lock. ``durable=False`` for bookkeeping whose loss at a power
        cut costs only a duplicate publish (delivery states): no fsync of its own, so the next
        durable commit (or checkpoint) carries it to disk."""
        with self.lock:
            if durable:
                with self.locked_transaction() as db:
                    yield db
                return
            self.conn.execute("PRAGMA synchronous = NORMAL")
            try:
                with self.locked_transaction() as db:
                    yield db
            finally:
                self.conn.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def locked_transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction for a caller that holds the lock. No room for it (the disk, the
        quota) raises StoreFull and notes the store full (space.py)."""
        try:
            with self.quiet_transaction() as db:
                yield db
        except StoreFull as e:
            self.space.announce(self.space.note_full(e.reason, str(e)))
            raise
        except (sqlite3.Error, OSError) as e:
            if not is_out_of_space(e):
                raise
            full = self.full_error(e)
            self.space.announce(self.space.note_full(full.reason, str(full)))
            raise full from None

    @contextmanager
    def quiet_transaction(self) -> Iterator[sqlite3.Connection]:
        """A durable transaction for a caller that holds the lock and handles its failure
        itself (a group commit that retries its parts alone): nothing is noted or announced."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # SQLITE_FULL may have rolled it back already
                self.conn.execute("ROLLBACK")
            raise
        self.after_commit()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, for reads (and a caller's own transaction)."""
        with self.lock:
            yield self.conn

    # --- for tests and tools: what is in the file, without reaching into the store ------

    def execute_read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row ``sql`` returns, read under the lock."""
        with self.lock:
            return self.conn.execute(sql, args).fetchall()  # a list of tuples already

    def execute_write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run one statement in a durable transaction; returns the rows it changed."""
        with self.transaction() as db:
            return db.execute(sql, args).rowcount

    @property
    def total_changes(self) -> int:
        """Rows changed through this connection since it opened (writes an idle store avoids)."""
        with self.lock:
            return self.conn.total_changes
