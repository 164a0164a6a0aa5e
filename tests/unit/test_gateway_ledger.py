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
    MIN_QUOTA_BYTES,
    SCHEMA_VERSION,
    QuotaPlan,
    StoredReading,
    StoreFull,
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


QUOTA = MIN_QUOTA_BYTES  # holds a few thousand readings: 1/8 WAL, the rest pages


def deliver(store: Store, rows: list[StoredReading]) -> None:
    """Published, acknowledged by the broker and confirmed by an ingest."""
    store.mark_published(r.id for r in rows)
    store.confirm({STATION: [(r.reading.seq, r.reading.seq + 1) for r in rows]})


def fill(s: Store, first: int, count: int, channel: str = "stage_m", flags: int = 0,
         batch: int = 40) -> list[int]:
    """Add ``count`` readings from seq ``first`` in station-sized batches; returns the seqs."""
    seqs = list(range(first, first + count))
    for i in range(0, count, batch):
        s.add(STATION, BASIN, [reading(seq, channel, flags) for seq in seqs[i:i + batch]])
        assert s.files_bytes() <= s.quota_bytes
    return seqs


def test_shedding_goes_delivered_then_housekeeping_weather_river_and_counts_exactly(
        tmp_path: Path) -> None:
    with Store(tmp_path / "gw.db", quota_bytes=QUOTA, protected_events=20) as s:
        river = fill(s, 1, 600)
        s.confirm({STATION: [(river[0], river[99] + 1)]})  # delivered: shed before any other
        weather = fill(s, 601, 300, "rain_mm")
        housekeeping = fill(s, 901, 300, "battery_v")
        flood = fill(s, 1201, 20, flags=EVENT)
        assert s.counts()["readings_shed"] == 0 and s.loss_ledger() == {}
        # River readings until the quota bites: delivered rows go first, then housekeeping,
        # oldest first, and nothing else while housekeeping is left.
        seq = 1221
        while s.database.execute_read("SELECT COUNT(*) FROM readings WHERE sent = 2")[0][0]:
            seq += len(fill(s, seq, 40))
        assert s.loss_ledger().get(STATION, {}).keys() <= {"shed_housekeeping"}
        while "shed_weather" not in s.loss_ledger().get(STATION, {}):
            seq += len(fill(s, seq, 40))
        assert s.loss_ledger()[STATION]["shed_housekeeping"] == len(housekeeping)
        kept = {r.reading.seq for r in s.unsent(100_000)}
        lost_weather = sorted(set(weather) - kept)
        assert lost_weather == weather[:len(lost_weather)]  # oldest first
        # Much more: weather goes, then the oldest river readings; never the newest
        # flood-event readings.
        seq += len(fill(s, seq, 6000))
        ledger = s.loss_ledger()[STATION]
        assert ledger["shed_weather"] == len(weather) and ledger["shed_river"] > 0
        kept = {r.reading.seq for r in s.unsent(100_000)}
        assert set(flood) <= kept
        kept_river = sorted(kept - set(flood))
        assert kept_river == list(range(seq - len(kept_river), seq))  # the newest
        # Exact: every reading received is kept, delivered (100) or in the ledger.
        assert len(kept) + 100 + sum(ledger.values()) == seq - 1
        assert s.counts()["readings_shed"] == sum(ledger.values())
        assert s.counts()["readings_received"] == seq - 1


def test_a_full_store_of_protected_flood_readings_refuses_more(tmp_path: Path) -> None:
    with Store(tmp_path / "gw.db", quota_bytes=QUOTA, protected_events=100_000) as s:
        seq = 1
        with pytest.raises(StoreFull) as refused:
            while True:
                seq += len(fill(s, seq, 40, flags=EVENT))
        assert refused.value.reason == "quota"
        # Nothing of the refused batch is stored, so nothing of it will be ACKed.
        assert s.ack_ranges(STATION) == AckRanges(seq, ())
        assert s.loss_ledger() == {}
        assert s.space.full and s.space.reason == "quota"
        assert s.files_bytes() <= QUOTA
        # Delivered, they may go: the next batch is stored and the store is writable again.
        deliver(s, s.unsent(500))
        assert s.add(STATION, BASIN, [reading(seq, flags=EVENT)]).new == 1
        assert not s.space.full


def test_unprotected_flood_readings_are_shed_last_oldest_first(tmp_path: Path) -> None:
    with Store(tmp_path / "gw.db", quota_bytes=QUOTA, protected_events=100) as s:
        seqs = fill(s, 1, 8000, flags=EVENT)
        kept = [r.reading.seq for r in s.unsent(100_000)]
        assert 100 < len(kept) < 8000
        assert kept == seqs[-len(kept):]
        assert s.loss_ledger()[STATION]["shed_flood_event"] == 8000 - len(kept)


def test_the_files_stay_within_the_quota_however_far_beyond_it_the_store_is_filled(
        tmp_path: Path) -> None:
    """Measured on disk after every call: database + WAL + journal + WAL index."""
    quota = QUOTA
    path = tmp_path / "gw.db"
    channels = ("stage_m", "rain_mm", "battery_v", "stage_m", "air_temp_c")
    biggest = 0
    with Store(path, quota_bytes=quota) as s:
        plan = QuotaPlan.of(quota, s.database.page_size)
        assert s.database.execute_read("PRAGMA max_page_count") == [(plan.max_pages,)]
        for batch in range(800):  # 32,000 readings, interleaved channels: fragmentation
            s.add(STATION, BASIN, [reading(batch * 40 + i + 1, channels[i % 5])
                                   for i in range(40)])
            if batch % 50 == 0:  # big transactions: many rows marked, then pruned at once
                deliver(s, s.unsent(1000))
                s.prune_confirmed(keep=100)
            biggest = max(biggest, sum(f.stat().st_size for f in tmp_path.iterdir()))
        assert s.counts()["readings_shed"] > 5_000
    assert biggest <= quota
    assert {f.name for f in tmp_path.iterdir()} <= {"gw.db", "gw.db-wal", "gw.db-shm",
                                                     "gw.db-journal"}


def test_a_quota_below_the_minimum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="below the minimum"):
        Store(tmp_path / "gw.db", quota_bytes=MIN_QUOTA_BYTES - 1)


def test_pruned_and_shed_seqs_are_duplicates_not_new_readings(store: Store) -> None:
    store.add(STATION, BASIN, [reading(s) for s in range(1, 6)])
    deliver(store, store.unsent(10))
    assert store.prune_confirmed(keep=2) == 3
    assert store.add(STATION, BASIN, [reading(1), reading(6)]) == (1, 1, 0)
    assert [r.reading.seq for r in store.unsent(10)] == [6]


def test_confirmed_readings_above_a_waiting_backlog_are_pruned_once_it_is_through(
        store: Store) -> None:
    store.add(STATION, BASIN, [reading(s) for s in range(1, 11)])
    rows = store.unsent(10)
    deliver(store, rows[:5] + rows[8:])  # 6-8 wait (a backlog), 9-10 were live
    before = store.counts()["stored_bytes"]
    assert store.prune_confirmed(keep=2) == 3  # 1-3: 4-5 kept, and 9-10 above the backlog
    assert store.counts()["stored_bytes"] < before
    assert store.prune_confirmed(keep=2) == 0
    mark = store.unsent(10)
    assert [r.reading.seq for r in mark] == [6, 7, 8]
    store.mark_published(r.id for r in mark)  # acknowledged, not confirmed: kept
    assert store.prune_confirmed(keep=0) == 2
    store.confirm({STATION: [(6, 9)]})
    assert store.prune_confirmed(keep=2) == 3  # 6-8; the newest two (9, 10) kept
    assert store.add(STATION, BASIN, [reading(9)]) == (0, 1, 0)  # still recognised


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
        rows = s.database.execute_read("SELECT seq, priority FROM readings ORDER BY seq")
        assert rows == [(1, priorities.HOUSEKEEPING), (2, priorities.FLOOD_EVENT)]
        assert s.counts()["stored_bytes"] == row_cost("S", "battery_v", "b") + row_cost(
            "S", "stage_m", "b")
        assert s.database.execute_read("PRAGMA user_version")[0][0] == SCHEMA_VERSION == 3
