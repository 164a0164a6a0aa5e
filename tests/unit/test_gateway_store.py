"""The gateway store: durable across reopen, duplicates suppressed, ACKs computed from it."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Hello, Status
from watershed.gateway.store import AckRanges, Store, StoreError

T0 = 1763676900


def reading(seq: int, mantissa: int = 1234, exponent: int = -3, flags: int = 0,
            channel: str = "stage_m") -> MessageReading:
    return MessageReading(seq, channel, T0 + 900 * seq, mantissa, exponent, flags)


def readings(*seqs: int) -> list[MessageReading]:
    return [reading(s) for s in seqs]


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "gw.db") as s:
        yield s


def test_pragmas_make_commits_durable(store: Store) -> None:
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.database.execute_read("PRAGMA synchronous") == [(2,)]  # FULL


def test_readings_survive_reopen_exactly(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    sent = [reading(1, 150, -2), reading(2, -37, -1, channel="air_temp_c"),
            MessageReading(3, "rain_mm", T0, 0, 0, 1), reading(4, 1500, 0, flags=0x84)]
    with Store(path) as s:
        assert s.add("SAN-01", "santiago", sent) == (4, 0, 0)
    # Another connection (another process after a power cut) sees the committed rows.
    with Store(path) as s:
        rows = s.unsent(10)
        assert [r.reading for r in rows] == sent
        assert {(r.station, r.basin) for r in rows} == {("SAN-01", "santiago")}
        assert s.ack_ranges("SAN-01") == AckRanges(5, ())


def test_duplicates_are_suppressed_and_counted(store: Store) -> None:
    assert store.add("S", "b", readings(1, 2, 3)) == (3, 0, 0)
    assert store.add("S", "b", readings(2, 3, 4)) == (1, 2, 0)
    assert [r.reading.seq for r in store.unsent(10)] == [1, 2, 3, 4]
    counts = store.counts()
    assert counts["duplicates"] == 2 and counts["conflicts"] == 0
    assert counts["readings_received"] == 4 and counts["unsent"] == 4


def test_a_reused_seq_with_other_content_is_kept_as_a_conflict(store: Store) -> None:
    store.add("S", "b", [reading(1, 100)])
    assert store.add("S", "b", [reading(1, 200)]) == (0, 1, 0)
    assert store.counts()["conflicts"] == 1
    kept = store.database.execute_read("SELECT seq, mantissa FROM conflicts")
    assert kept == [(1, 200)]
    assert [r.reading.mantissa for r in store.unsent(10)] == [100]


def test_seqs_are_per_station(store: Store) -> None:
    assert store.add("A", "b", readings(1, 2)) == (2, 0, 0)
    assert store.add("B", "b", readings(1, 2)) == (2, 0, 0)
    assert store.ack_ranges("A") == store.ack_ranges("B") == AckRanges(3, ())


def test_ack_covers_holes_with_selective_ranges(store: Store) -> None:
    store.add("S", "b", readings(5, 6, 7, 9, 10, 12))
    assert store.ack_ranges("S") == AckRanges(8, ((9, 11), (12, 13)))
    assert store.highest_seq("S") == 12
    store.add("S", "b", readings(8))  # fills the first hole: the runs merge
    assert store.ack_ranges("S") == AckRanges(11, ((12, 13),))
    store.add("S", "b", readings(11))
    assert store.ack_ranges("S") == AckRanges(13, ())
    assert store.database.execute_read("SELECT COUNT(*) FROM received_runs") == [(1,)]


def test_ack_floor_is_the_first_seq_this_store_took(store: Store) -> None:
    assert store.ack_ranges("NEW") == AckRanges(1, ())  # nothing stored: acknowledges nothing
    store.add("S", "b", readings(41, 42))
    assert store.ack_ranges("S") == AckRanges(43, ())
    store.add("S", "b", readings(30))  # a backfill below the floor changes nothing above it
    assert store.ack_ranges("S") == AckRanges(43, ())


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.integers(1, 60), min_size=1, max_size=12), min_size=1,
                        max_size=8))
def test_ack_says_exactly_what_is_stored(batches: list[list[int]]) -> None:
    with Store(":memory:") as s:
        for batch in batches:
            s.add("S", "b", readings(*sorted(set(batch))))
        stored = {seq for batch in batches for seq in batch}
        floor = min(sorted(set(batches[0])))
        cumulative, ranges = s.ack_ranges("S")
        covered = set(range(floor, cumulative)) | {n for a, b in ranges for n in range(a, b)}
        assert covered == {n for n in stored if n >= floor}
        assert cumulative not in stored
        ends = [cumulative] + [n for r in ranges for n in r]
        assert ends == sorted(ends) and len(set(ends)) == len(ends)  # ascending, not touching


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(st.integers(1, 200), min_size=1, max_size=12), min_size=1,
                        max_size=12),
       asked=st.lists(st.integers(0, 210), min_size=1, max_size=40))
def test_what_was_received_is_told_exactly_among_many_holes(batches: list[list[int]],
                                                           asked: list[int]) -> None:
    # received_seqs and the store's own duplicate check read the runs once for a whole frame
    with Store(":memory:") as s:
        for batch in batches:
            s.add("S", "b", readings(*sorted(set(batch))))
        s.add("OTHER", "b", readings(*range(1, 211)))
        stored = {seq for batch in batches for seq in batch}

        assert s.received_seqs("S", asked) == stored & set(asked)
        again = sorted(set(asked) - {0})
        assert s.add("S", "b", readings(*again)).duplicate == len(stored & set(again))


def test_reused_seqs_are_those_stored_with_other_content(store: Store) -> None:
    store.add("S", "b", readings(*range(1, 1201)))  # more seqs than one query takes
    store.add("T", "b", [reading(5, 999)])
    frame = [reading(seq) for seq in range(1, 1301)]  # as stored, and 100 not stored yet
    for seq in (3, 700, 1200):
        frame[seq - 1] = reading(seq, mantissa=77)
    frame[4] = reading(5, flags=0x84)

    assert store.reused_seqs("S", frame) == {3, 5, 700, 1200}
    assert store.reused_seqs("T", frame[:10]) == {5}
    assert store.reused_seqs("U", frame) == set()


def test_unsent_is_oldest_first_and_pages_by_id(store: Store) -> None:
    store.add("A", "b", readings(1, 2))
    store.add("B", "c", readings(7))
    store.add("A", "b", readings(3))
    rows = store.unsent(10)
    assert [(r.station, r.reading.seq) for r in rows] == [("A", 1), ("A", 2), ("B", 7), ("A", 3)]
    assert [r.key for r in store.unsent(10, after_id=rows[1].id)] == [("B", 7), ("A", 3)]
    assert [r.key for r in store.unsent(10, station="A")] == [("A", 1), ("A", 2), ("A", 3)]
    assert len(store.unsent(2)) == 2


def test_mark_published_removes_from_unsent_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    with Store(path) as s:
        s.add("S", "b", readings(1, 2, 3))
        ids = {r.reading.seq: r.id for r in s.unsent(10)}
        assert s.mark_published([ids[1], ids[3], 999]) == 2
        assert s.mark_published([ids[1]]) == 0
    with Store(path) as s:
        assert [r.key for r in s.unsent(10)] == [("S", 2)]
        assert s.counts()["readings_sent"] == 2
        assert s.counts()["unconfirmed"] == 2  # acknowledged by the broker, not yet confirmed


def test_confirmed_readings_leave_the_must_deliver_set_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    with Store(path) as s:
        s.add("S", "b", readings(1, 2, 3, 4))
        s.mark_published(r.id for r in s.unsent(10))
        # 4 is confirmed before its PUBACK was recorded elsewhere: still confirmed once.
        done = s.confirm({"S": [(1, 3), (4, 5)], "OTHER": [(1, 9)]})
        assert (done.written, done.rejected) == (3, 0)
        assert s.confirm({"S": [(1, 3)]}).written == 0  # a repeated confirmation changes nothing
    with Store(path) as s:
        assert s.counts()["unconfirmed"] == 1 and s.counts()["readings_confirmed"] == 3
        assert s.resend_unconfirmed(acked_before=T0) == 0  # acknowledged after T0 (real clock)
        assert s.resend_unconfirmed(acked_before=time.time() + 1) == 1
        assert [r.key for r in s.unsent(10)] == [("S", 3)]


def test_a_store_of_schema_2_keeps_its_acknowledged_readings_owed(tmp_path: Path) -> None:
    """Before schema 3 "sent" meant only that the broker acknowledged it: after the upgrade such
    readings wait for a confirmation like any other, and none is lost."""
    path = tmp_path / "gw.db"
    with Store(path) as s:
        s.add("S", "b", readings(1, 2, 3))
        s.mark_published(r.id for r in s.unsent(2))
        s.database.execute_write("UPDATE readings SET acked_at = NULL")
        s.database.execute_write("DROP INDEX readings_unconfirmed")
        s.database.execute_write("DROP INDEX readings_undelivered")
        s.database.execute_write(
            "CREATE INDEX readings_shed ON readings (priority, id) WHERE sent = 0")
        s.database.execute_write("PRAGMA user_version = 2")
    with Store(path) as s:
        assert s.counts()["unconfirmed"] == 2 and len(s.unsent(10)) == 1
        assert s.oldest_unconfirmed_received_at() is not None
        assert s.resend_unconfirmed(acked_before=time.time() + 1) == 2
        indexes = {r[0] for r in s.database.execute_read(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "readings_shed" not in indexes and "readings_undelivered" in indexes


def test_ids_are_never_reused_after_rows_are_deleted(store: Store) -> None:
    store.add("S", "b", readings(1, 2))
    last = store.unsent(10)[-1].id
    store.database.execute_write("DELETE FROM readings")  # a later pruning of sent rows
    store.add("S", "b", readings(3))
    assert store.unsent(10, after_id=last)[0].reading.seq == 3


def test_hello_is_recorded_and_the_previous_one_returned(store: Store) -> None:
    first = Hello(3, "SAN-01", "1.0.0", 0xDEADBEEF, 1, 7, 41, T0)
    assert store.record_hello(first) is None
    before = store.record_hello(Hello(3, "SAN-01", "1.0.1", 1, 3, 8, 50, 0))
    assert before is not None and (before.boot_count, before.next_seq) == (7, 41)
    info = store.station("SAN-01")
    assert info is not None
    assert (info.address, info.firmware, info.boot_count, info.next_seq, info.reset_cause) == (
        3, "1.0.1", 8, 50, 3)
    assert store.station("OTHER") is None


def test_a_failed_batch_stores_nothing(store: Store) -> None:
    bad = readings(1, 2) + [MessageReading(3, None, T0, 1, 0, 0)]  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        store.add("S", "b", bad)
    assert store.unsent(10) == [] and store.ack_ranges("S") == AckRanges(1, ())


def test_concurrent_writers_and_readers_never_see_locked(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(station: str) -> None:
        try:
            for seq in range(1, 101):
                store.add(station, "b", readings(seq))
                store.ack_ranges(station)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def sender() -> None:
        try:
            for _ in range(100):
                store.mark_published(r.id for r in store.unsent(20))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(s,)) for s in "ABC"]
    threads.append(threading.Thread(target=sender))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.counts()["readings_received"] == 300


def test_a_store_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    sqlite3.connect(path).execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path)


# --- station facts: an idle gateway does not write ------------------------------------


def store_writes(store: Store) -> tuple[int, int, int]:
    """Rows this connection changed, and the sizes of the database file and its WAL."""
    wal = Path(store.path + "-wal")
    return (store.database.total_changes, Path(store.path).stat().st_size,
            wal.stat().st_size if wal.exists() else 0)


def test_polls_with_nothing_new_are_kept_in_memory_not_written(tmp_path: Path) -> None:
    now = [T0 + 0.0]
    with Store(tmp_path / "gw.db", clock=lambda: now[0]) as store:

        def status() -> Status:
            return Status(3, 100, int(now[0]) - 2, 1, 12600, 0, 41, 41, 0, 0, 0, 20000)

        store.record_hello(Hello(3, "SAN-01", "1.0.0", 1, 1, 7, 41, T0))
        store.record_status("SAN-01", status())
        before = store_writes(store)
        for _ in range(50):
            now[0] += 5
            store.record_next_seq("SAN-01", 41)
            store.record_status("SAN-01", status())
        assert store_writes(store) == before
        info = store.station("SAN-01")  # health still sees the latest, from memory
        assert info is not None
        assert (info.last_seen, info.clock_offset_s, info.battery_mv) == (T0 + 250, -2.0, 12600)
        assert store.stations() == [info]
    with Store(tmp_path / "gw.db") as reopened:  # closing wrote them
        assert reopened.station("SAN-01") == info


def test_what_matters_is_written_at_once(tmp_path: Path) -> None:
    with Store(tmp_path / "gw.db") as store:
        store.record_hello(Hello(3, "SAN-01", "1.0.0", 1, 1, 7, 41, T0))
        before = store_writes(store)[0]
        store.record_next_seq("SAN-01", 45)  # a new next_seq bounds the holes to ask for
        assert store_writes(store)[0] > before
        before = store_writes(store)[0]
        store.record_status("SAN-01", Status(3, 100, T0, 1, 12600, 0, 41, 45, 3, 0, 0, 20000))
        assert store_writes(store)[0] > before  # the station lost readings: never hidden
        written = sqlite3.connect(store.path).execute(
            "SELECT known_next_seq, lost_overwritten FROM stations").fetchall()
        assert written == [(45, 3)]


def test_station_facts_are_written_in_batches(tmp_path: Path) -> None:
    with Store(tmp_path / "gw.db", facts_interval_s=0) as store:
        store.record_hello(Hello(3, "SAN-01", "1.0.0", 1, 1, 7, 41, T0))
        before = store_writes(store)[0]
        store.record_next_seq("SAN-01", 41)
        assert store_writes(store)[0] > before  # the batch is due: written
