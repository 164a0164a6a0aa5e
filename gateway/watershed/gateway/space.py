"""Whether the store can take readings: writable, or full (the disk, or the byte quota).

A full store is a state, not an error per write: the store notes it on the first write that
fails for lack of room and logs one line, and one more when a write of readings succeeds again.
Meanwhile the links do not ACK (the readings stay in the stations' flash) and ask for DATA only
when taking it may succeed (``may_take_readings``):
- ``disk``: the file system has ``resume_free_bytes`` free again (checked on every look, cheap);
  waiting for a margin, not for the first free byte, keeps a nearly full disk from flapping;
- ``quota``: the quota is taken by readings that may not be shed (the newest flood-event
  readings, until delivered); tried again with backoff, 2 s doubling to a minute.
A refusal despite the margin is tried again with the same backoff.
Listeners (the gateway's alerts) hear every change.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..backoff import Backoff

log = logging.getLogger(__name__)

DISK = "disk"
QUOTA = "quota"
RESUME_FREE_BYTES = 1024 * 1024  # a full disk is tried again once this much is free


@dataclass(frozen=True)
class SpaceChange:
    full: bool
    reason: str | None  # DISK or QUOTA while full; on the change back, what it was
    since: float  # Unix s: when the store became full (for both changes)
    at: float  # Unix s: when this change happened
    detail: str


def is_out_of_space(error: BaseException) -> bool:
    """SQLite's "database or disk is full" (the disk, or ``max_page_count``) or ENOSPC."""
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


class StoreSpace:
    """The store's full/writable state; thread-safe. See the module docstring."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time, *,
                 resume_free_bytes: int = RESUME_FREE_BYTES,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._directory = Path(path).parent
        self._clock = clock
        self._monotonic = monotonic
        self.resume_free_bytes = resume_free_bytes
        self._lock = threading.Lock()
        self._listeners: list[Callable[[SpaceChange], None]] = []
        self._backoff = Backoff(2.0, 60.0)
        self._next_try = 0.0
        self.full = False
        self.reason: str | None = None
        self.since: float | None = None  # Unix s, while full
        self.refusals = 0  # writes refused for lack of room, since start

    def subscribe(self, listener: Callable[[SpaceChange], None]) -> None:
        self._listeners.append(listener)

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self._directory).free
        except OSError:
            return None

    def note_full(self, reason: str, detail: str) -> SpaceChange | None:
        """A write failed for lack of room; the change if the store was writable."""
        with self._lock:
            self.refusals += 1
            free = self.free_bytes() if reason == DISK else None
            # A disk short of the margin waits for it; a refusal despite it waits, with backoff.
            self._next_try = (0.0 if free is not None and free < self.resume_free_bytes
                              else self._monotonic() + self._backoff.next_delay())
            if self.full:
                return None
            self.full, self.reason, self.since = True, reason, self._clock()
            change = SpaceChange(True, reason, self.since, self.since, detail)
        log.warning("store full (%s): %s; stations are not ACKed (their readings stay in their"
                    " flash) and DATA is not asked for until there is room again", reason,
                    detail)
        return change

    def note_writable(self) -> SpaceChange | None:
        """Readings were stored; the change if the store was full."""
        with self._lock:
            if not self.full:
                return None
            assert self.since is not None
            now = self._clock()
            change = SpaceChange(False, self.reason, self.since, now,
                                 f"readings stored again after {now - self.since:.0f} s")
            self.full, self.reason, self.since = False, None, None
            self._backoff.reset()
        log.warning("store writable again after %.0f s full (%s): taking readings",
                    change.at - change.since, change.reason)
        return change

    def announce(self, change: SpaceChange | None) -> None:
        """Tell the listeners; call it holding no lock a listener may need."""
        if change is None:
            return
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.exception("store space listener failed")

    def may_take_readings(self) -> bool:
        """Whether asking stations for DATA may end in stored readings (see the module)."""
        if not self.full:
            return True
        if self._monotonic() < self._next_try:
            return False
        if self.reason == DISK:
            free = self.free_bytes()
            return free is None or free >= self.resume_free_bytes
        return True

    def health(self) -> dict[str, object]:
        return {"store_full": self.full, "store_full_reason": self.reason,
                "store_full_since": None if self.since is None else int(self.since),
                "store_full_refusals": self.refusals}
