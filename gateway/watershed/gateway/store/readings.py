"""Readings in: store a station's readings once, keep the runs of seqs received, say what to ACK.

``readings``: one row per (station, seq), duplicates suppressed. ``received_runs``: per station,
the contiguous runs of seqs stored, ``[first_seq, end_seq)``; ACKs are computed from it and it
stays small (one row per hole + 1) however many readings arrive. ``conflicts``: a reading whose
(station, seq) was already stored with different content (a station that reused sequence
numbers): kept, never forwarded silently as a duplicate.
"""

from __future__ import annotations

import bisect
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from watershed.contracts.mqtt import MessageReading

from .. import priorities
from ..runs import runs_of
from .counters import bump
from .database import Database
from .facts import StationFacts
from .group_commit import GROUP_WINDOW_S, GroupCommit
from .ledger import ack_floor, settled_runs, unlose
from .quota import Quota
from .schema import row_cost

log = logging.getLogger(__name__)

_SEQS_A_QUERY = 500  # bound parameters in one IN (...): SQLite allows 999 at least


class Added(NamedTuple):
    new: int
    duplicate: int  # already stored (retransmits); includes any conflicts
    shed: int = 0  # unsent readings (of any station) dropped to make room, each in the ledger


class AckRanges(NamedTuple):
    """What the ACK to a station says: every seq below ``cumulative`` and each ``[first, end)``."""

    cumulative: int
    ranges: tuple[tuple[int, int], ...]


def received_among(db: sqlite3.Connection, station: str, seqs: Sequence[int]) -> set[int]:
    """Those of ``seqs`` in a received run: one query for a frame's readings, not one each."""
    if not seqs:
        return set()
    low, high = min(seqs), max(seqs)
    # The runs from the one that starts at or below ``low`` to ``high``: a range of the
    # primary key, however many runs (holes) the station has elsewhere.
    runs = db.execute("SELECT first_seq, end_seq FROM received_runs WHERE station = ? AND"
                      " first_seq <= ? AND first_seq >= COALESCE((SELECT first_seq FROM"
                      " received_runs WHERE station = ? AND first_seq <= ? ORDER BY first_seq"
                      " DESC LIMIT 1), ?) ORDER BY first_seq",
                      (station, high, station, low, low)).fetchall()
    starts = [first for first, _ in runs]
    found = set()
    for seq in seqs:
        i = bisect.bisect_right(starts, seq) - 1
        if i >= 0 and runs[i][1] > seq:
            found.add(seq)
    return found


def _content(r: MessageReading) -> tuple[str, int, int, int, int]:
    return (r.channel, r.ts, r.mantissa, r.exponent, r.flags)


def _stored_otherwise(stored: dict[int, tuple[str, int, int, int, int]],
                      r: MessageReading) -> bool:
    """``r``'s seq is stored (``stored_content``) with other content."""
    return stored.get(r.seq, _content(r)) != _content(r)


def stored_content(db: sqlite3.Connection, station: str, seqs: Sequence[int]
                   ) -> dict[int, tuple[str, int, int, int, int]]:
    """What is stored under each of ``seqs`` that has a row, by seq (queried in chunks)."""
    stored = {}
    for i in range(0, len(seqs), _SEQS_A_QUERY):
        chunk = seqs[i:i + _SEQS_A_QUERY]
        marks = ", ".join("?" * len(chunk))
        for seq, *content in db.execute(
                "SELECT seq, channel, ts, mantissa, exponent, flags FROM readings"
                f" WHERE station = ? AND seq IN ({marks})", (station, *chunk)):
            stored[seq] = tuple(content)
    return stored


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


class _Batch(NamedTuple):
    station: str
    basin: str
    readings: Sequence[MessageReading]


class ReadingsIn:
    def __init__(self, database: Database, quota: Quota, facts: StationFacts,
                 clock: Callable[[], float], group_window_s: float = GROUP_WINDOW_S) -> None:
        self._database = database
        self._quota = quota
        self._facts = facts
        self._clock = clock
        self.group: GroupCommit[_Batch, Added] = GroupCommit(
            self._add_together, self._add_alone, group_window_s)

    def add(self, station: str, basin: str, readings: Sequence[MessageReading]) -> Added:
        """Store one station's readings, durable on return: in one transaction, shared with
        other links' readings arriving at the same time (group_commit.py).

        Raises StoreFull (storing nothing) when the disk is full, or the quota leaves no room
        even after shedding."""
        [outcome] = self.group.submit([_Batch(station, basin, readings)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def add_many(self, batches: Sequence[tuple[str, str, Sequence[MessageReading]]]
                 ) -> list[Added | Exception]:
        """Several stations' readings (station, basin, readings), durable on return, in one
        transaction if they all go; each one's Added, or what refused it (StoreFull ...)."""
        return self.group.submit([_Batch(*b) for b in batches])

    def _add_alone(self, batch: _Batch) -> Added:
        with self._database.transaction() as db:
            return self._add_in(db, batch, self._clock())

    def _add_together(self, batches: Sequence[_Batch]) -> list[Added]:
        """All in one durable transaction, or none (raising: each is then added alone)."""
        now = self._clock()
        with self._database.lock, self._database.quiet_transaction() as db:
            return [self._add_in(db, batch, now) for batch in batches]

    def _add_in(self, db: sqlite3.Connection, batch: _Batch, now: float) -> Added:
        station, basin, readings = batch
        new_seqs: list[int] = []
        duplicates = conflicts = added_bytes = 0
        # Room first (the rows would hit the quota's page ceiling): retransmits count too.
        shed = 0 if self._quota.plan is None else self._quota.make_room(
            db, sum(row_cost(station, r.channel, basin) for r in readings))
        # A seq in a received run was stored once: it is here, or was sent and pruned, or shed
        # and counted. Storing it again would publish a duplicate.
        seen = received_among(db, station, [r.seq for r in readings])
        repeated = []  # already stored: compared with what is stored in one query after
        for r in readings:
            row = (station, r.seq, r.channel, r.ts, r.mantissa, r.exponent, r.flags, basin, now)
            inserted = 0 if r.seq in seen else db.execute(
                "INSERT INTO readings (station, seq, channel, ts, mantissa, exponent, flags,"
                " basin, received_at, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (station, seq) DO NOTHING",
                row + (priorities.shed_priority(r.channel, r.flags),)).rowcount
            if inserted:
                new_seqs.append(r.seq)
                added_bytes += row_cost(station, r.channel, basin)
                continue
            duplicates += 1
            repeated.append((r, row))
        stored = stored_content(db, station, [r.seq for r, _ in repeated])
        for r, row in repeated:
            if _stored_otherwise(stored, r):
                conflicts += 1
                db.execute("INSERT INTO conflicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                log.warning("station %s sent seq %d again with different content (%s at %d);"
                            " kept in the conflicts table, not forwarded", station, r.seq,
                            r.channel, r.ts)
        db.execute("INSERT OR IGNORE INTO stations (station) VALUES (?)", (station,))
        # Last seen goes with the facts' batch: one page fewer in every reading's commit.
        self._facts.note(station, last_seen=now)
        if new_seqs:
            # The first readings this store takes from a station set its ACK floor.
            db.execute("UPDATE stations SET ack_floor = ? WHERE station = ? AND ack_floor IS"
                       " NULL", (min(new_seqs), station))
            _extend_runs(db, station, new_seqs)
            unlose(db, station, new_seqs)
            bump(db, "stored_bytes", added_bytes)
        bump(db, "duplicates", duplicates)
        bump(db, "conflicts", conflicts)
        bump(db, "readings_received", len(new_seqs))
        return Added(len(new_seqs), duplicates, shed)

    def ack_ranges(self, station: str) -> AckRanges:
        """The cumulative point and the selective ranges of everything settled for ``station``.

        The floor is the first seq this store ever took from the station: a station sends its
        oldest unacknowledged readings first, so nothing below that floor still waits for an
        ACK from us (it was acknowledged by an earlier store, or lost and counted by the station).
        Holes known to be lost count as settled: the station no longer holds them, and leaving
        the cumulative point below them would make every later ACK carry one more range.
        """
        with self._database.reading() as db:
            floor = ack_floor(db, station)
            if floor is None:
                return AckRanges(1, ())
            runs = settled_runs(db, station)
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

    def ack_floor(self, station: str) -> int | None:
        with self._database.reading() as db:
            return ack_floor(db, station)

    def highest_seq(self, station: str) -> int | None:
        [(end,)] = self._database.execute_read(
            "SELECT MAX(end_seq) FROM received_runs WHERE station = ?", (station,))
        return None if end is None else end - 1

    def received_seqs(self, station: str, seqs: Iterable[int]) -> set[int]:
        """Those of ``seqs`` this store has received from ``station``."""
        wanted = list(seqs)
        with self._database.reading() as db:
            return received_among(db, station, wanted)

    def reused_seqs(self, station: str, readings: Iterable[MessageReading]) -> set[int]:
        """Seqs of ``readings`` stored already with other content (a station that reused its
        sequence numbers, or another station answering in its name)."""
        readings = list(readings)
        with self._database.reading() as db:
            stored = stored_content(db, station, [r.seq for r in readings])
        return {r.seq for r in readings if _stored_otherwise(stored, r)}
