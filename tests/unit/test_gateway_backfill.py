"""Hole detection at the poller: a drained station is asked for its holes with a backfill POLL,
and holes below its STATUS ``oldest_seq`` go into the loss ledger."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from watershed.contracts import wire
from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Reading
from watershed.gateway.poller import Poller
from watershed.gateway.store import GONE_FROM_STATION, Store
from tests.unit.test_gateway_poller import (ADDR, REGISTRY, T0, ScriptedPort, framed, hello)



class Station:
    """A station whose flash holds ``held`` readings (acked or not) and sends ``unacked``."""

    def __init__(self, held: range, unacked: list[int], next_seq: int, oldest: int) -> None:
        self.held = {s: Reading(s, 1, T0 + 60 * s, s, -2) for s in held}
        self.unacked = unacked
        self.next_seq = next_seq
        self.oldest = oldest

    def __call__(self, frame: wire.Frame) -> list[wire.Frame]:
        if isinstance(frame, wire.Poll):
            replies: list[wire.Frame] = []
            if frame.want & wire.WANT_HELLO:
                replies.append(hello(next_seq=self.next_seq))
            if frame.backfill is not None:
                first, end = frame.backfill
                seqs = [s for s in sorted(self.held) if first <= s < end][:20]
            else:
                seqs = self.unacked[:20]
            replies.append(wire.Data(ADDR, tuple(self.held[s] for s in seqs))
                           if seqs else wire.Data(ADDR, (), self.next_seq, T0))
            if frame.want & wire.WANT_STATUS:
                replies.append(wire.Status(ADDR, 1, T0, 1, 12000, len(self.unacked),
                                           self.oldest, self.next_seq, 0, 0, 0, 1000))
            return replies
        if isinstance(frame, wire.Ack):
            self.unacked = [s for s in self.unacked if not (
                s < frame.cumulative or any(a <= s < b for a, b in frame.ranges))]
        if isinstance(frame, wire.TimeSync):
            return [wire.Result(ADDR, wire.TIME, wire.RESULT_OK)]
        return []


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "gw.db") as s:
        yield s


def make(store: Store, clock: FakeMonotonic) -> tuple[Poller, Counter]:
    stats: Counter[str] = Counter()
    return Poller(store, REGISTRY, stats, reply_timeout_s=0.2, time_sync=False,
                  clock=lambda: T0, monotonic=clock, status_interval_s=600,
                  backfill_interval_s=60), stats


def test_a_drained_station_is_asked_for_its_holes(store: Store) -> None:
    clock = FakeMonotonic()
    poller, stats = make(store, clock)
    # It sent 10-14 and 18-19 before (another gateway acked 15-17); it still holds 10-19.
    store.add("SAN-01", "santiago", [MessageReading(s, "stage_m", T0 + 60 * s, s, -2, 0)
                                     for s in (10, 11, 12, 13, 14, 18, 19)])
    station = Station(range(10, 20), [], next_seq=20, oldest=10)
    port = ScriptedPort(station)
    fp = framed(port, stats)
    assert poller.poll(fp, ADDR) is True  # empty DATA, then the backfill of 15-17 answers
    backfills = [p.backfill for p in port.sent(wire.Poll) if p.backfill]
    assert backfills == [(15, 18)]
    assert store.holes("SAN-01") == [] and stats["readings_backfilled"] == 3
    assert store.ack_ranges("SAN-01").cumulative == 20


def test_holes_the_station_no_longer_holds_are_counted_lost(store: Store) -> None:
    clock = FakeMonotonic()
    poller, stats = make(store, clock)
    store.add("SAN-01", "santiago", [MessageReading(s, "stage_m", T0, s, -2, 0)
                                     for s in (10, 11, 30, 31)])
    # The station's flash wrapped: it holds only 25 and up.
    station = Station(range(25, 32), [], next_seq=32, oldest=25)
    port = ScriptedPort(station)
    fp = framed(port, stats)
    poller.poll(fp, ADDR)  # HELLO; backfill of 12-29 brings 25-29
    assert store.holes("SAN-01") == [(12, 25)]
    poller.poll(fp, ADDR)  # the backfill now gets nothing: a STATUS is due at once
    assert [p.backfill for p in port.sent(wire.Poll) if p.backfill][-1] == (12, 25)
    poller.poll(fp, ADDR)  # STATUS: oldest 25, so 12-24 are gone
    assert store.loss_ledger() == {"SAN-01": {GONE_FROM_STATION: 13}}
    assert stats["readings_lost"] == 13 and store.holes("SAN-01") == []
    # Settled: no more backfill polls for them.
    clock.now += 3600
    before = len([p for p in port.sent(wire.Poll) if p.backfill])
    poller.poll(fp, ADDR)
    assert len([p for p in port.sent(wire.Poll) if p.backfill]) == before


def test_backfill_is_not_repeated_faster_than_its_interval(store: Store) -> None:
    clock = FakeMonotonic()
    poller, stats = make(store, clock)
    store.add("SAN-01", "santiago", [MessageReading(s, "stage_m", T0, s, -2, 0) for s in (1, 5)])
    station = Station(range(5, 6), [], next_seq=6, oldest=1)  # claims to hold 1+, sends nothing
    port = ScriptedPort(station)
    fp = framed(port, stats)
    for _ in range(5):
        poller.poll(fp, ADDR)
    assert stats["backfill_polls"] == 1
    clock.now += 61
    poller.poll(fp, ADDR)
    assert stats["backfill_polls"] == 2
