"""The chaos harness's own parts that decide a verdict: the fault schedule, the misbehaving
stations, the groups the counters are judged by, and the counter readers."""

from __future__ import annotations

import json

from watershed.contracts import wire
from watershed.contracts.mqtt import MessageReading, ReadingsMessage, Topics, encode_readings
from watershed.ingest.deadletter import DeadLetterFile
from watershed_sim.chaos.counters import gateway_waiting, ingest_accounts, quarantined
from watershed_sim.chaos.faults import schedule
from watershed_sim.chaos.fleet import WILD_COUNTERS, WILD_SEQ, ChaosStation, WildStation
from watershed_sim.chaos.verdict import _runs, groups_of


def test_the_schedule_comes_from_the_seed_alone_and_ends_before_production_does():
    counts = {"gateway_kill": 3, "broker_kill": 2, "disk_full": 1}
    first = schedule(7, 100.0, counts)
    assert first == schedule(7, 100.0, counts)
    assert first != schedule(8, 100.0, counts)
    assert sorted(f.kind for f in first) == sorted(k for k, n in counts.items() for _ in range(n))
    assert all(0 < f.at_s < 85.0 and f.hold_s > 0 for f in first)


def test_a_station_makes_the_same_readings_whenever_it_makes_them():
    a, b = ChaosStation(1, "S-1", "S-1", "honest", 5), ChaosStation(1, "S-1", "S-1", "honest", 5)
    a.make(10)
    for _ in range(10):
        b.make(1)
    assert a.produced == b.produced and len(a.outbox) == 10
    assert len({r.mantissa for r in a.produced}) > 5  # not one value over and over


def test_the_wild_station_jumps_past_2_63_and_reports_huge_counters():
    station = WildStation(31, "WILD-01", "WILD-01", "wild", 1, wild_after=3)
    station.make(5)
    assert [r.seq for r in station.produced] == [1, 2, 3, WILD_SEQ, WILD_SEQ + 1]
    status = [f for f in station.answer(wire.Poll(31, wire.WANT_STATUS))
              if isinstance(f, wire.Status)]
    assert status[0].lost_overwritten in WILD_COUNTERS


def test_stations_sharing_an_address_or_an_id_are_judged_as_one_group():
    victim = ChaosStation(1, "CH0-01", "CH0-01", "honest", 1)
    dup = ChaosStation(1, "DUP-01", "DUP-01", "shared_address", 1)
    forger = ChaosStation(30, "CH0-01", "FORGER", "forger", 1)
    other = ChaosStation(2, "CH0-02", "CH0-02", "honest", 1)
    forger.link = 1
    groups = [sorted(s.truth_id for s in g) for g in groups_of([victim, dup, forger, other])]
    assert sorted(groups) == [["CH0-01", "DUP-01", "FORGER"], ["CH0-02"]]


def test_counter_readers():
    assert quarantined({"stations": {"A": {"quarantined": {"total": 4, "forged": 4}}},
                        "quarantine": {"B": 2}}) == {"A": 4, "B": 2}
    assert quarantined(None) == {}
    assert gateway_waiting({"at": 0, "queue": {"unsent": 0}}) is None  # stale: not trusted
    assert _runs([5, 1, 2, 3, 7]) == [(1, 4), (5, 6), (7, 8)]


def test_dead_letters_name_their_readings(tmp_path):
    letters = DeadLetterFile("ingest-1", tmp_path / "dl.jsonl")
    message = ReadingsMessage("gw-1", "S-1", "b", (MessageReading(4, "stage_m", 100, 1, 0, 0),
                                                   MessageReading(5, "stage_m", 160, 2, 0, 0)))
    letters.append(letters.encode("registry: not ours", Topics().readings("gw-1", "S-1"),
                                  encode_readings(message)))
    letters.append(json.dumps({"payload": {"hex": "ff"}, "reason": "x"}).encode())
    accounts = ingest_accounts(tmp_path / "dl.jsonl")
    assert accounts.exact["S-1"] == dict.fromkeys((4, 5), "ingest:deadletter:registry")
    assert len(accounts.errors) == 1


def test_a_faulty_station_s_numbers_go_on_the_line_unchecked_and_the_gateway_refuses_them() -> None:
    """The simulator's unchecked encoder writes the contract's layout whatever the numbers;
    within range it gives the codec's very bytes, beyond it the decoder says out_of_range."""
    from watershed.contracts import wire
    from watershed_sim.unchecked_frames import encode_unchecked

    fine = [wire.Hello(3, "SAN-01", "1.0", 7, 1, 2, 41, 1763676900),
            wire.Status(3, 10, 1763676900, 1, 3700, 5, 40, 45, 0, 0, 0, 9000),
            wire.Data(3, (wire.Reading(41, 1, 1763676900, 1234, -3),
                          wire.Reading(43, 2, 1763676960, 0, 0, 1))),
            wire.Data(3, (), 44, 1763676900)]
    for frame in fine:
        assert encode_unchecked(frame) == wire.encode_frame(frame)
    wild = [wire.Hello(3, "SAN-01", "1.0", 7, 1, 2, 2**63 + 5, 1763676900),
            wire.Status(3, 10, 1763676900, 1, 3700, 5, 40, 45, 2**64, 0, 0, 9000),
            wire.Data(3, (wire.Reading(2**63 + 5, 1, 1763676900, 1234, -3),))]
    decoder = wire.FrameDecoder()
    for frame in wild:
        [error] = decoder.feed(encode_unchecked(frame))
        assert isinstance(error, wire.FrameError) and error.kind == "out_of_range"
