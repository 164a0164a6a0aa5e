"""The audit's classes on a small record: readings still in the station's outbox are pending,
seq gaps beyond the ledgers' totals are unaccounted, slots not yet due are not expected."""

from __future__ import annotations

from decimal import Decimal

from watershed.hydro.audit import audit
from watershed.hydro.series import Point, StationSeries

T0 = 1763596800


def series(times_seqs: list[tuple[int, int]]) -> StationSeries:
    return StationSeries("SAN-01", "santiago", {"stage_m": [
        Point(t, Decimal("1.0"), 0, seq) for t, seq in times_seqs]})


def health(losses: int, outbox: int) -> dict:
    return {"gw-1": {"queue": {"unsent": 0, "unconfirmed": 0}, "quarantine": {"stations": {}},
                     "stations": {"SAN-01": {"last_seen": T0 + 3600, "outbox_depth": outbox,
                                             "losses": {"total": losses,
                                                        "gone_from_station": losses}}}}}


def test_the_latest_slots_waiting_in_the_outbox_are_pending() -> None:
    a = audit(series([(T0, 1), (T0 + 900, 2)]), {"stage_m": 900}, T0, T0 + 3600,
              health(0, outbox=2), [], now=T0 + 3600)
    [c] = a.channels
    assert (c.expected, c.counts["stored"], c.counts["pending"], a.unaccounted) == (4, 2, 2, 0)


def test_a_seq_gap_beyond_the_ledger_is_unaccounted() -> None:
    a = audit(series([(T0, 1), (T0 + 2700, 5)]), {"stage_m": 900}, T0, T0 + 3600,
              health(1, outbox=0), [], now=T0 + 3600)
    [c] = a.channels
    assert (c.counts["lost"], c.counts["unaccounted"]) == (1, 1)
    assert a.seq_gaps == [(2, 4, T0, T0 + 2700)]


def test_slots_not_yet_due_are_not_expected() -> None:
    a = audit(series([(T0, 1)]), {"stage_m": 900}, T0, T0 + 86400, health(0, 0), [],
              now=T0 + 100)
    assert a.channels[0].expected == 1 and a.unaccounted == 0


def test_without_health_a_seq_gap_is_unaccounted_and_said_why() -> None:
    a = audit(series([(T0, 1), (T0 + 1800, 3)]), {"stage_m": 900}, T0, T0 + 2700, None, [],
              now=T0 + 2700)
    assert a.unaccounted == 1 and "losses cannot be attributed" in a.notes[0]


def gap_report(at: int, seconds: int, seq: int) -> Point:
    return Point(at, Decimal(seconds), 0, seq)


def test_slots_in_a_gap_the_station_reported_are_not_sampled() -> None:
    s = series([(T0, 1), (T0 + 2700, 3)])
    s.channels["not_sampled_s"] = [gap_report(T0 + 2000, 1100, 2)]  # from T0 + 900
    a = audit(s, {"stage_m": 900}, T0, T0 + 3600, health(0, 0), [], now=T0 + 3600)
    [c] = a.channels
    assert (c.expected, c.counts["stored"], c.counts["not_sampled"], a.unaccounted) == (
        4, 2, 2, 0)
    assert a.gaps == [(T0 + 900, T0 + 2000)] and a.seq_gaps == []


def test_a_gap_reported_after_the_range_covers_its_slots_and_a_seq_gap_stays_lost() -> None:
    # seq 2 is missing inside the reported gap: that slot was sampled and lost, not unsampled
    s = series([(T0, 1), (T0 + 900, 3)])
    a = audit(s, {"stage_m": 900}, T0, T0 + 3600, health(1, 0), [], now=T0 + 7200,
              gaps=[(T0 + 900, T0 + 5000)])
    [c] = a.channels
    assert (c.counts["stored"], c.counts["lost"], c.counts["not_sampled"]) == (2, 0, 2)
    a = audit(series([(T0, 1), (T0 + 2700, 3)]), {"stage_m": 900}, T0, T0 + 3600,
              health(1, 0), [], now=T0 + 7200, gaps=[(T0 + 900, T0 + 9000)])
    assert (a.channels[0].counts["lost"], a.channels[0].counts["not_sampled"]) == (1, 1)
