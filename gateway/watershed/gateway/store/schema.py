"""The store's tables, and the migration of a store written by an older gateway.

Tables (front.py says what each is for): ``readings``, ``received_runs``, ``stations``,
``conflicts``, ``counters``, ``lost_runs``, ``losses``, ``alerts``, ``bus_bindings``,
``quarantine``, ``quarantine_readings``, ``pushed_configs``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .. import priorities
from .database import Database, StoreError

SCHEMA_VERSION = 3
ROW_OVERHEAD_BYTES = 100  # per stored reading, beyond its text (measured: ~85 with indexes)

# Readings delivered for good (confirmed by an ingest): pruned, and shed first. The one place that
# says what delivered means; NOT_DELIVERED_SQL is its complement, spelled so that the
# readings_undelivered partial index serves it. Change both together.
DELIVERED_SQL = "sent = 2"
NOT_DELIVERED_SQL = "sent < 2"

# What a row is accounted in the quota (quota.py).
ROW_COST_SQL = (f"({ROW_OVERHEAD_BYTES} + 2 * length(station) + length(channel)"
                " + length(basin))")


def row_cost(station: str, channel: str, basin: str) -> int:
    return ROW_OVERHEAD_BYTES + 2 * len(station) + len(channel) + len(basin)


SCHEMA = """
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
CREATE TABLE IF NOT EXISTS pushed_configs (  -- remote.py: the config last pushed to a station
    station     TEXT PRIMARY KEY,                -- (the wire cannot read one back: config-get)
    config      TEXT    NOT NULL,                -- the canonical JSON bytes sent
    config_hash INTEGER NOT NULL,                -- their CRC-32, as the station's HELLO says it
    pushed_at   REAL    NOT NULL
) WITHOUT ROWID;
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


def migrate(database: Database, clock: Callable[[], float]) -> None:
    """Bring the file to this schema (a new store, or one of schema 1 or 2)."""
    with database.reading() as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, 2, SCHEMA_VERSION):
            raise StoreError(f"{database.path}: store schema version {version}, this gateway "
                             f"speaks {SCHEMA_VERSION}")
        try:
            # Idempotent: columns a schema-1 store lacks, then whatever table is missing.
            db.executescript(f"BEGIN IMMEDIATE; {_missing_columns_sql(db)} {SCHEMA} COMMIT;")
            if version != SCHEMA_VERSION:
                db.execute("BEGIN IMMEDIATE")
                if version in (1, 2):
                    _upgrade_rows(db, version, clock())
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _missing_columns_sql(db: sqlite3.Connection) -> str:
    statements = []
    for table, columns in _ADDED_COLUMNS.items():
        existing = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if existing:  # a schema-1 table; a new store gets the columns from SCHEMA
            statements += [f"ALTER TABLE {table} ADD COLUMN {c};" for c in columns
                           if c.split()[0] not in existing]
    return " ".join(statements)


def _upgrade_rows(db: sqlite3.Connection, version: int, now: float) -> None:
    """Rows of an older store. Schema 3: a row "sent" before was only acknowledged by the
    broker, never confirmed: it waits for a confirmation like any other (and may go again).
    Schema 1 also lacks each row's shed priority and its share of the quota."""
    db.execute("DROP INDEX IF EXISTS readings_shed")  # schema 2's, on unsent rows only
    db.execute("UPDATE readings SET acked_at = ? WHERE sent = 1", (now,))
    if version >= 2:
        return
    for channel, flags in db.execute("SELECT DISTINCT channel, flags FROM readings").fetchall():
        db.execute("UPDATE readings SET priority = ? WHERE channel = ? AND flags = ?",
                   (priorities.shed_priority(channel, flags), channel, flags))
    total = db.execute(f"SELECT COALESCE(SUM({ROW_COST_SQL}), 0) FROM readings").fetchone()
    db.execute("INSERT OR REPLACE INTO counters VALUES ('stored_bytes', ?)", (total[0],))
