"""Group commit: the readings several links bring at about the same time, made durable together.

SD wear: a durable one-reading commit writes ~8 pages (of 512 bytes) to the WAL and fsyncs it,
and the kernel counts (and the card rewrites) whole 4 KiB pages, so every commit costs ~8 KB
however little it says. The links poll in step (one thread each, the same interval), so their readings
arrive within a fraction of a second of each other: one transaction for all of them shares the
pages they have in common (the table's last leaf, its indexes, counters, the rowid sequence) and
one fsync. No station is ACKed before its readings are on disk: each caller returns only after
the transaction holding its readings committed with ``synchronous=FULL``.

The first caller leads: it waits until every thread that stored lately (within ``RECENT_S``, but
not within the window: that one was served this round) has submitted again, or ``window_s`` has
passed, then commits what is pending; the others wait for their results. A single link (or a
test's single thread) never waits. A group whose transaction fails (one
station's readings do not fit the quota, a value SQLite refuses) is rolled back and each part
is done in a transaction of its own, so one station's failure is its own, as without grouping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

GROUP_WINDOW_S = 0.25  # at most this much later an ACK goes out for the group's sake
RECENT_S = 30.0  # a thread that submitted within this long is expected to submit again


class _Entry(Generic[Item, Result]):
    __slots__ = ("items", "thread", "done", "outcomes")

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = items
        self.thread = threading.get_ident()
        self.done = False
        self.outcomes: list[Result | Exception] = []


class GroupCommit(Generic[Item, Result]):
    """``commit_group(items) -> results`` does all in one transaction (raising if any fails);
    ``commit_one(item) -> result`` does one in a transaction of its own."""

    def __init__(self, commit_group: Callable[[Sequence[Item]], list[Result]],
                 commit_one: Callable[[Item], Result], window_s: float = GROUP_WINDOW_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._commit_group = commit_group
        self._commit_one = commit_one
        self._window_s = window_s
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._pending: list[_Entry[Item, Result]] = []
        self._leading = False
        self._last_submit: dict[int, float] = {}  # thread id -> when it last submitted
        self.transactions = 0  # committed (for tests and the bench)
        self.committed = 0  # items committed in them

    def submit(self, items: Sequence[Item]) -> list[Result | Exception]:
        """``items`` committed (durable), in one transaction with the others pending if they
        all go, else each alone; each one's result, or the exception that refused it."""
        entry: _Entry[Item, Result] = _Entry(items)
        with self._cond:
            self._last_submit[entry.thread] = self._monotonic()
            self._pending.append(entry)
            self._cond.notify_all()  # a leader waiting for company
            while not entry.done and self._leading:
                self._cond.wait()
            if entry.done:
                return entry.outcomes
            self._leading = True
        try:
            self._lead()
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()
        return entry.outcomes

    def _awaited(self, started: float) -> bool:
        """Is a thread yet to submit that stored lately, but not within the last window (one
        that just did was served this round: a link stores once a cycle)?"""
        self._last_submit = {t: at for t, at in self._last_submit.items()
                             if started - at < RECENT_S}
        pending = {entry.thread for entry in self._pending}
        return any(t not in pending and at <= started - self._window_s
                   for t, at in self._last_submit.items())

    def _lead(self) -> None:
        with self._cond:
            started = self._monotonic()
            deadline = started + self._window_s
            while self._awaited(started) and (left := deadline - self._monotonic()) > 0:
                self._cond.wait(left)
            batch, self._pending = self._pending, []
        try:
            self._commit(batch)
        finally:
            with self._cond:
                for entry in batch:
                    if len(entry.outcomes) != len(entry.items):  # interrupted
                        entry.outcomes = [RuntimeError("group commit interrupted")] * len(
                            entry.items)
                    entry.done = True
                self._cond.notify_all()

    def _commit(self, batch: list[_Entry[Item, Result]]) -> None:
        items = [item for entry in batch for item in entry.items]
        if len(items) > 1:
            try:
                results: list[Result | Exception] = list(self._commit_group(items))
            except Exception:
                pass  # rolled back: each alone below, so one item's refusal is its own
            else:
                self.transactions += 1
                self.committed += len(items)
                self._hand_out(batch, results)
                return
        outcomes: list[Result | Exception] = []
        for item in items:
            try:
                outcomes.append(self._commit_one(item))
                self.transactions += 1
                self.committed += 1
            except Exception as e:  # raised in its caller's thread
                outcomes.append(e)
        self._hand_out(batch, outcomes)

    @staticmethod
    def _hand_out(batch: list[_Entry[Item, Result]], outcomes: list[Result | Exception]
                  ) -> None:
        at = 0
        for entry in batch:
            entry.outcomes = outcomes[at:at + len(entry.items)]
            at += len(entry.items)
