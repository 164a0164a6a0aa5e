"""Totals that must survive restarts (the ``counters`` table), and what waits now."""

from __future__ import annotations

import sqlite3

COUNTED = ("readings_received", "readings_sent", "readings_confirmed", "readings_rejected",
           "readings_resent", "duplicates", "conflicts", "readings_shed", "stored_bytes")


def bump(db: sqlite3.Connection, name: str, by: int) -> None:
    if by:
        db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET"
                   " value = value + excluded.value", (name, by))


def counter(db: sqlite3.Connection, name: str) -> int:
    row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def counts(db: sqlite3.Connection) -> dict[str, int]:
    """Totals since the store was created, and what is waiting now (alerts: stored ones only)."""
    totals = dict(db.execute("SELECT name, value FROM counters").fetchall())
    out = {name: totals.get(name, 0) for name in COUNTED}

    def count(where: str) -> int:
        return int(db.execute(f"SELECT COUNT(*) FROM {where}").fetchone()[0])

    out.update(unsent=count("readings WHERE sent = 0"),
               unconfirmed=count("readings WHERE sent = 1"), stations=count("stations"),
               alerts_unsent=count("alerts WHERE sent = 0"))
    return out
