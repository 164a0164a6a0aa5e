"""The store's loss ledger, hole detection and byte quota: every reading dropped is counted,
by station and reason, and shedding follows the priorities."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import EVENT, Status
from watershed.gateway import priorities
from watershed.gateway.store import (
    GONE_FROM_STATION,
    AckRanges,
    Store,
    StoredReading,
    StoreFull,
    SCHEMA_VERSION,
    STORE_BASE_BYTES,
    row_cost,
)

T0 = 1763676900
STATION, BASIN = "SAN-01", "santiago"


def reading(seq: int, channel: str = "stage_m", flags: int = 0) -> MessageReading:
    return MessageReading(seq, channel, T0 + 60 * seq, 1000 + seq, -3, flags)


def status(oldest_seq: int, next_seq: int) -> Status:
    return Status(3, 100, T0, 1, 12600, 0, oldest_seq, next_seq, 0, 0, 0, 20000)


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "gw.db") as s:
        yield s


# --- holes and what is gone -----------------------------------------------------------


def test_holes_are_gaps_between_runs_below_the_stations_next_seq(store: Store) -> None:
    store.add(STATION, BASIN, [reading(s) for s in (10, 11, 14, 15, 20)])
    assert store.holes(STATION) == []  # the station never said its next seq
    store.record_next_seq(STATION, 25)
    assert store.holes(STATION) == [(12, 14), (16, 20), (21, 25)]
    assert store.holes(STATION, below=18) == [(12, 14), (16, 18)]


def test_holes_below_the_oldest_held_seq_are_counted_once(store: Store) -> None:
    store.add(STATION, BASIN, [reading(s) for s in (10, 11, 14, 15, 20)])
    store.record_status(STATION, status(oldest_seq=17, next_seq=21))
    assert store.settle_lost(STATION, 17) == 2 + 1  # 12-13 and 16; 17-19 may still come
    assert store.settle_lost(STATION, 17) == 0  # settled: never counted twice
    assert store.loss_ledger() == {STATION: {GONE_FROM_STATION: 3}}
    assert store.lost_runs(STATION) == [(12, 14), (16, 17)]
    assert store.holes(STATION) == [(17, 20)]
    # Lost holes are settled for the ACK too: the cumulative point moves past them.
    assert store.ack_ranges(STATION) == AckRanges(17, ((20, 21),))


def test_a_reading_counted_lost_that_turns_up_is_taken_back(store: Store) -> None:
    store.add(STATION, BASIN, [reading(s) for s in (10, 15)])
    assert store.settle_lost(STATION, 15) == 4
    store.add(STATION, BASIN, [reading(12)])
    assert store.loss_ledger() == {STATION: {GONE_FROM_STATION: 3}}
    assert store.lost_runs(STATION) == [(11, 12), (13, 15)]


def test_nothing_below_the_ack_floor_is_ever_a_hole(store: Store) -> None:
    store.add(STATION, BASIN, [reading(50)])
    assert store.settle_lost(STATION, 40) == 0
    store.record_next_seq(STATION, 51)
    assert store.holes(STATION) == [] and store.loss_ledger() == {}


def test_status_is_recorded_with_the_clock_offset(tmp_path: Path) -> None:
    with Store(tmp_path / "gw.db", clock=lambda: T0 + 30.0) as s:
        s.record_status(STATION, status(5, 9))
        (info,) = s.stations()
        assert (info.battery_mv, info.oldest_seq, info.known_next_seq) == (12600, 5, 9)
        assert info.clock_offset_s == -30.0


# --- quota and shedding ---------------------------------------------------------------


def deliver(store: Store, rows: list[StoredReading]) -> None:
    """Published, acknowledged by the broker and confirmed by an ingest."""
    store.mark_published(r.id for r in rows)
    store.confirm({STATION: [(r.reading.seq, r.reading.seq + 1) for r in rows]})


def cost(channel: str = "stage_m") -> int:
    return row_cost(STATION, channel, BASIN)


def test_shedding_goes_sent_then_housekeeping_weather_river_and_counts_exactly(
        tmp_path: Path) -> None:
    quota = STORE_BASE_BYTES + 100 * cost()
    with Store(tmp_path / "gw.db", quota_bytes=quota, protected_events=10) as s:
        plan = ([(seq, "stage_m") for seq in range(1, 31)]
                + [(seq, "rain_mm") for seq in range(31, 51)]
                + [(seq, "battery_v") for seq in range(51, 71)])
        s.add(STATION, BASIN, [reading(seq, ch) for seq, ch in plan])
        s.confirm({STATION: [(1, 11)]})  # 10 river readings delivered (confirmed in InfluxDB)
        s.add(STATION, BASIN, [reading(seq, "stage_m", EVENT) for seq in range(71, 91)])
        assert s.counts()["readings_shed"] == 0  # 90 rows: within the quota
        # 40 more river readings: 10 confirmed rows go first, then housekeeping, oldest first.
        added = s.add(STATION, BASIN, [reading(seq) for seq in range(91, 131)])
        assert added.new == 40 and added.shed > 0
        ledger = s.loss_ledger()[STATION]
        # 30 rows over (+2% slack): 10 confirmed, all 20 housekeeping, the 2 oldest weather.
        assert ledger == {"shed_housekeeping": 20, "shed_weather": 2}
        assert s._db.execute("SELECT COUNT(*) FROM readings WHERE sent = 2").fetchone()[0] == 0
        kept = {r.reading.seq for r in s.unsent(1000)}
        assert kept == set(range(11, 131)) - set(range(51, 71)) - {31, 32}
        assert s.counts()["stored_bytes"] <= quota - STORE_BASE_BYTES
        # Much more: housekeeping and weather go, then the oldest river readings; never the
        # newest flood-event readings.
        s.add(STATION, BASIN, [reading(seq) for seq in range(131, 191)])
        ledger = s.loss_ledger()[STATION]
        assert ledger["shed_housekeeping"] == 20 and ledger["shed_weather"] == 20
        kept = {r.reading.seq for r in s.unsent(1000)}
        assert set(range(71, 91)) <= kept  # flood-event readings untouched
        assert s.counts()["readings_shed"] == sum(ledger.values())
        # Exact: every reading received is kept, delivered (10) or in the ledger.
        assert len(kept) + 10 + sum(ledger.values()) == 190
        assert min(kept - set(range(71, 91))) == 191 - len(kept - set(range(71, 91)))
        assert s.counts()["stored_bytes"] <= quota - STORE_BASE_BYTES


def test_a_full_store_of_protected_flood_readings_refuses_more(tmp_path: Path) -> None:
    with Store(tmp_path / "gw.db", quota_bytes=STORE_BASE_BYTES + 10 * cost(), protected_events=100) as s:
        s.add(STATION, BASIN, [reading(seq, flags=EVENT) for seq in range(1, 10)])
        with pytest.raises(StoreFull):
            s.add(STATION, BASIN, [reading(seq, flags=EVENT) for seq in range(10, 13)])
        # Nothing of the refused batch is stored, so nothing of it will be ACKed.
        assert s.ack_ranges(STATION) == AckRanges(10, ())
        assert s.loss_ledger() == {}


def test_unprotected_flood_readings_are_shed_last_oldest_first(tmp_path: Path) -> None:
    with Store(tmp_path / "gw.db", quota_bytes=STORE_BASE_BYTES + 10 * cost(), protected_events=5) as s:
        s.add(STATION, BASIN, [reading(seq, flags=EVENT) for seq in range(1, 11)])
        s.add(STATION, BASIN, [reading(seq, flags=EVENT) for seq in range(11, 13)])
        kept = [r.reading.seq for r in s.unsent(100)]
        assert kept[-5:] == [8, 9, 10, 11, 12] and 1 not in kept
        assert s.loss_ledger()[STATION]["shed_flood_event"] == 12 - len(kept)


def test_the_file_stays_within_the_quota(tmp_path: Path) -> None:
    quota = 1_000_000
    path = tmp_path / "gw.db"
    with Store(path, quota_bytes=quota) as s:
        for batch in range(120):
            channel = ("stage_m", "rain_mm", "battery_v")[batch % 3]
            s.add(STATION, BASIN, [reading(batch * 100 + i + 1, channel) for i in range(100)])
            if batch % 4 == 0:
                deliver(s, s.unsent(150))
        s._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert s.counts()["readings_shed"] > 0
    assert path.stat().st_size <= quota


def test_pruned_and_shed_seqs_are_duplicates_not_new_readings(store: Store) -> None:
    store.add(STATION, BASIN, [reading(s) for s in range(1, 6)])
    deliver(store, store.unsent(10))
    assert store.prune_confirmed(keep=2) == 3
    assert store.add(STATION, BASIN, [reading(1), reading(6)]) == (1, 1, 0)
    assert [r.reading.seq for r in store.unsent(10)] == [6]


def test_priorities_of_channels() -> None:
    assert priorities.shed_priority("battery_v", 0) == priorities.HOUSEKEEPING
    assert priorities.shed_priority("rain_mm", 0) == priorities.WEATHER
    assert priorities.shed_priority("stage_backup_m", 0) == priorities.OTHER
    assert priorities.shed_priority("stage_m", 0) == priorities.RIVER
    assert priorities.shed_priority("battery_v", EVENT) == priorities.FLOOD_EVENT


def test_a_schema_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE readings (id INTEGER PRIMARY KEY AUTOINCREMENT, station TEXT NOT NULL,
            seq INTEGER NOT NULL, channel TEXT NOT NULL, ts INTEGER NOT NULL,
            mantissa INTEGER NOT NULL, exponent INTEGER NOT NULL, flags INTEGER NOT NULL,
            basin TEXT NOT NULL, received_at REAL NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
            UNIQUE (station, seq));
        CREATE TABLE stations (station TEXT PRIMARY KEY, ack_floor INTEGER, address INTEGER,
            firmware TEXT, config_hash INTEGER, reset_cause INTEGER, boot_count INTEGER,
            next_seq INTEGER, station_clock INTEGER, hello_at REAL);
        INSERT INTO readings (station, seq, channel, ts, mantissa, exponent, flags, basin,
            received_at) VALUES ('S', 1, 'battery_v', 1, 1, 0, 0, 'b', 0),
                                ('S', 2, 'stage_m', 1, 1, 0, 128, 'b', 0);
        PRAGMA user_version = 1;
    """)
    db.close()
    with Store(path) as s:
        rows = s._db.execute("SELECT seq, priority FROM readings ORDER BY seq").fetchall()
        assert rows == [(1, priorities.HOUSEKEEPING), (2, priorities.FLOOD_EVENT)]
        assert s.counts()["stored_bytes"] == row_cost("S", "battery_v", "b") + row_cost(
            "S", "stage_m", "b")
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
