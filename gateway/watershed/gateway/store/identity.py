"""Bus identity's tables: ``bus_bindings`` (per link and bus address, the station id learned
from its first HELLO; gateway/identity.py) and ``quarantine`` / ``quarantine_readings``
(readings whose sender is in doubt, kept apart until an operator releases or drops them;
gateway/quarantine.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from watershed.contracts.wire import Reading

from .counters import bump
from .database import Database
from .ledger import QUARANTINED, count_loss


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


class Bindings:
    def __init__(self, database: Database, clock: Callable[[], float]) -> None:
        self._database = database
        self._clock = clock

    def all(self) -> dict[tuple[str, int], str]:
        """Learned bus bindings: (link, address) -> station id."""
        return {(link, address): station for link, address, station in
                self._database.execute_read("SELECT link, address, station FROM bus_bindings")}

    def bind(self, link: str, address: int, station: str) -> bool:
        """Bind ``station`` to ``address`` on ``link`` for good; False (nothing changed) if the
        address or the station is bound already."""
        with self._database.transaction() as db:
            return db.execute("INSERT OR IGNORE INTO bus_bindings VALUES (?, ?, ?, ?)",
                              (link, address, station, self._clock())).rowcount == 1

    def unbind(self, link: str, address: int) -> None:
        self._database.execute_write("DELETE FROM bus_bindings WHERE link = ? AND address = ?",
                                     (link, address))


class Quarantine:
    def __init__(self, database: Database, clock: Callable[[], float]) -> None:
        self._database = database
        self._clock = clock

    def case(self, kind: str, link: str, address: int, bound: str | None,
             claimed: str) -> tuple[int, bool]:
        """The open quarantine entry of this case, opened now if there is none: (id, opened)."""
        with self._database.transaction() as db:
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

    def add(self, entry: int, readings: Sequence[Reading]) -> int:
        """Keep wire readings in a quarantine entry, durable on return (so they may be ACKed);
        a reading kept there already is not kept twice. Returns how many were new."""
        now = self._clock()
        with self._database.transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO quarantine_readings VALUES (?, ?, ?, ?, ?, ?,"
                           " ?, ?)", ((entry, r.seq, r.channel, r.time, r.mantissa, r.exponent,
                                       r.flags, now) for r in readings))
            new = db.total_changes - before
            db.execute("UPDATE quarantine SET last_at = ? WHERE id = ?", (now, entry))
            bump(db, "readings_quarantined", new)
        return new

    def entries(self, entry: int | None = None, state: str | None = "open"
                ) -> list[QuarantineEntry]:
        """Quarantine entries (one, or all in ``state``; None: any), oldest first."""
        query = (f"SELECT {_QUARANTINE_COLUMNS}, (SELECT COUNT(*) FROM quarantine_readings WHERE"
                 " entry = q.id) FROM quarantine q WHERE 1")
        args: tuple[Any, ...] = ()
        if entry is not None:
            query, args = query + " AND id = ?", args + (entry,)
        if state is not None:
            query, args = query + " AND state = ?", args + (state,)
        return [QuarantineEntry(*row) for row in
                self._database.execute_read(query + " ORDER BY id", args)]

    def readings(self, entry: int) -> list[Reading]:
        return [Reading(*row) for row in self._database.execute_read(
            "SELECT seq, channel, ts, mantissa, exponent, flags FROM quarantine_readings"
            " WHERE entry = ? ORDER BY seq, ts, channel", (entry,))]

    def settle(self, entry: int, state: str, to: str | None = None,
               lost_station: str | None = None, lost: int = 0) -> bool:
        """Close an open entry as ``released`` (to ``to``) or ``dropped``; a drop's ``lost``
        readings go into the loss ledger of ``lost_station``. False if it was not open."""
        with self._database.transaction() as db:
            if not db.execute("UPDATE quarantine SET state = ?, settled_to = ?, settled_at = ?"
                              " WHERE id = ? AND state = 'open'",
                              (state, to, self._clock(), entry)).rowcount:
                return False
            if lost_station is not None:
                count_loss(db, lost_station, QUARANTINED, lost)
        return True
