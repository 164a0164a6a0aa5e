"""Who answers at a bus address: the bindings (identity.py), what the poller does with frames
that do not fit them (quarantine), and the operator's release and drop (quarantine.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from watershed.contracts import wire
from watershed.contracts.mqtt import MessageReading
from watershed.contracts.wire import Reading
from watershed.gateway.config import LinkConfig, StationConfig
from watershed.gateway.identity import (
    ADDRESS_TAKEN,
    ID_ELSEWHERE,
    SEQ_REUSED,
    SHARED_ADDRESS,
    BusRegistry,
)
from watershed.gateway.address_disputes import SHARED_CLEAR_POLLS
from watershed.gateway.poller import Poller
from watershed.gateway.quarantine import Quarantine, QuarantineError, summary
from watershed.gateway.store import Store

from .test_gateway_poller import (
    ADDR,
    HELLO_DATA,
    NOW,
    STAGE,
    T0,
    ScriptedPort,
    data,
    framed,
    hello,
    station,
)

LINK = "/dev/ttyUSB0"
SAN = StationConfig("SAN-01", ADDR, "santiago", {128: "stage_backup_m"})
REGISTRY = {"SAN-01": SAN}


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "gw.db", clock=lambda: NOW) as s:
        yield s


def registry_for(store: Store, *links: LinkConfig, stations=(SAN,)) -> BusRegistry:
    return BusRegistry(store, links or (LinkConfig(LINK, stations=(ADDR,)),), stations)


def make_poller(store: Store, identity: BusRegistry | None = None
                ) -> tuple[Poller, Counter, Quarantine]:
    stats: Counter[str] = Counter()
    quarantine = Quarantine("gw-1", store, REGISTRY, clock=lambda: NOW)
    poller = Poller(store, REGISTRY, stats, reply_timeout_s=0.05, time_sync=False,
                    clock=lambda: NOW, link=LINK,
                    identity=identity or registry_for(store), quarantine=quarantine)
    return poller, stats, quarantine


def alerts(store: Store) -> list[dict]:
    return [json.loads(payload) for _, _, payload in store.unsent_alerts(100)]


# --- the bindings ---------------------------------------------------------------------


def test_a_registered_station_is_bound_to_its_address_and_no_other(store: Store) -> None:
    registry = registry_for(store)
    assert registry.bound(LINK, ADDR) == "SAN-01"
    assert registry.check(LINK, ADDR, "SAN-01") is None
    taken = registry.check(LINK, ADDR, "ROGUE-1")
    assert (taken.kind, taken.bound, taken.claimed) == (ADDRESS_TAKEN, "SAN-01", "ROGUE-1")
    elsewhere = registry.check(LINK, ADDR + 1, "SAN-01")
    assert (elsewhere.kind, elsewhere.claimed) == (ID_ELSEWHERE, "SAN-01")
    assert store.bindings() == {}  # the registry's bindings are not copied into the store


def test_an_unregistered_station_is_learned_from_its_first_hello_and_kept(tmp_path: Path
                                                                           ) -> None:
    links = (LinkConfig(LINK, stations=(ADDR, 9)), LinkConfig("/dev/ttyUSB1", stations=(9,)))
    with Store(tmp_path / "gw.db") as store:
        registry = registry_for(store, *links)
        assert registry.check(LINK, 9, "NEW-9") is None
        assert store.bindings() == {(LINK, 9): "NEW-9"}
    with Store(tmp_path / "gw.db") as store:  # after a restart
        registry = registry_for(store, *links)
        assert registry.bound(LINK, 9) == "NEW-9"
        assert registry.check(LINK, 9, "OTHER").kind == ADDRESS_TAKEN
        # The same id on the other bus is one id at two addresses.
        assert registry.check("/dev/ttyUSB1", 9, "NEW-9").kind == ID_ELSEWHERE
        assert registry.check("/dev/ttyUSB1", 9, "OTHER") is None


def test_an_address_polled_on_two_links_learns_only_its_registered_stations(store: Store
                                                                            ) -> None:
    links = (LinkConfig(LINK, stations=(ADDR,)), LinkConfig("/dev/ttyUSB1", stations=(ADDR,)))
    second = StationConfig("SAN-02", ADDR, "santiago")
    registry = registry_for(store, *links, stations=(SAN, second))
    assert registry.bound(LINK, ADDR) is None  # either bus may hold either station
    assert registry.check(LINK, ADDR, "ROGUE-1").kind == ADDRESS_TAKEN
    assert registry.check("/dev/ttyUSB1", ADDR, "SAN-02") is None
    assert registry.check(LINK, ADDR, "SAN-02").kind == ID_ELSEWHERE
    assert registry.check(LINK, ADDR, "SAN-01") is None


def test_the_registry_wins_over_a_learned_binding(store: Store) -> None:
    registry_for(store, stations=()).check(LINK, ADDR, "OLD-BOARD")
    assert store.bindings() == {(LINK, ADDR): "OLD-BOARD"}
    registry = registry_for(store)  # the operator registered SAN-01 there (SIGHUP)
    assert registry.bound(LINK, ADDR) == "SAN-01" and store.bindings() == {}


# --- the poller -----------------------------------------------------------------------


def test_a_forged_hello_is_quarantined_with_its_data_and_the_honest_station_goes_on(
        store: Store) -> None:
    poller, stats, quarantine = make_poller(store)
    replies = {HELLO_DATA: [hello("ROGUE-1"), data(*STAGE[:2])]}
    port = ScriptedPort(station(replies))
    assert poller.poll(framed(port, stats), ADDR) is True
    # Stored, forwarded under neither id, ACKed by its seqs alone (no cumulative point).
    assert store.unsent(10) == [] and store.station("ROGUE-1") is None
    assert port.sent(wire.Ack) == [wire.Ack(ADDR, 0, ((41, 43),))]
    (entry,) = quarantine.entries()
    assert (entry.kind, entry.bound, entry.claimed, entry.readings) == (
        ADDRESS_TAKEN, "SAN-01", "ROGUE-1", 2)
    (alert,) = alerts(store)
    assert (alert["rule"], alert["case"], alert["bound"], alert["claimed"], alert["quarantine"],
            alert["address"], alert["link"]) == ("identity", ADDRESS_TAKEN, "SAN-01", "ROGUE-1",
                                                  entry.id, ADDR, LINK)
    # The honest station answers as itself: its readings are its own again.
    replies[HELLO_DATA] = [hello("SAN-01"), data(*STAGE[2:])]
    poller.poll(framed(port, stats), ADDR)
    assert {(r.station, r.reading.seq) for r in store.unsent(10)} == {("SAN-01", 43),
                                                                      ("SAN-01", 44)}
    assert stats["identity_mismatches"] == 1 and stats["readings_quarantined"] == 2
    assert len(alerts(store)) == 1  # one alert per entry, not per frame


def test_two_stations_answering_one_poll_get_no_ack_and_nothing_is_attributed(
        store: Store) -> None:
    poller, stats, quarantine = make_poller(store)
    other = [wire.Hello(ADDR, "SAN-99", "1.0.0", 0, 1, 1, 3, 0),
             wire.Data(ADDR, (Reading(1, 1, T0, 5, 0), Reading(2, 1, T0 + 60, 6, 0)))]
    replies = {HELLO_DATA: [hello(), data(*STAGE), *other]}
    port = ScriptedPort(station(replies))
    for _ in range(3):
        assert poller.poll(framed(port, stats), ADDR) is False
    assert port.sent(wire.Ack) == []  # an ACK would delete readings of both
    assert store.unsent(10) == []
    (entry,) = quarantine.entries()
    assert (entry.kind, entry.bound, entry.claimed, entry.readings) == (
        SHARED_ADDRESS, "SAN-01", "SAN-99", 6)  # each reading kept once, however often heard
    assert [a["case"] for a in alerts(store)] == [SHARED_ADDRESS]
    # The other station is gone: after SHARED_CLEAR_POLLS polls alone, readings flow again.
    replies[HELLO_DATA] = [hello(), data(*STAGE)]
    for _ in range(SHARED_CLEAR_POLLS):
        poller.poll(framed(port, stats), ADDR)
    assert len(store.unsent(10)) == 4 and port.sent(wire.Ack) == [wire.Ack(ADDR, 45)]


def test_a_second_station_heard_only_as_the_ack_is_due_stops_the_ack(
        store: Store, monkeypatch) -> None:
    poller, stats, quarantine = make_poller(store)
    port = ScriptedPort(station({HELLO_DATA: [hello(), data(*STAGE)]}))
    late = [wire.Hello(ADDR, "SAN-99", "1.0.0", 0, 1, 1, 3, 0),
            wire.Data(ADDR, (Reading(41, 1, T0, 5, 0),))]

    def add_while_another_answers(*args, real=store.add):
        port._inbox += b"".join(wire.encode_frame(f) for f in late)
        return real(*args)

    monkeypatch.setattr(store, "add", add_while_another_answers)
    poller.poll(framed(port, stats), ADDR)
    assert port.sent(wire.Ack) == []
    (entry,) = quarantine.entries()
    assert (entry.kind, entry.claimed, entry.readings) == (SHARED_ADDRESS, "SAN-99", 1)


def test_a_seq_reused_with_other_content_is_quarantined_not_kept_as_a_conflict(
        store: Store) -> None:
    store.add("SAN-01", "santiago", [MessageReading(41, "stage_m", T0, 1234, -3, 0)])
    poller, stats, quarantine = make_poller(store)
    reused = Reading(41, 1, T0 + 5000, 99, 0)
    port = ScriptedPort(station({HELLO_DATA: [hello(), data(reused, STAGE[1])]}))
    poller.poll(framed(port, stats), ADDR)
    (entry,) = quarantine.entries()
    assert (entry.kind, entry.bound, entry.claimed, entry.readings) == (
        SEQ_REUSED, "SAN-01", "SAN-01", 1)
    assert store.counts()["conflicts"] == 0
    assert [r.reading.seq for r in store.unsent(10)] == [41, 42]
    assert port.sent(wire.Ack) == [wire.Ack(ADDR, 43)]


# --- the operator ---------------------------------------------------------------------


def quarantined(store: Store, quarantine: Quarantine) -> int:
    poller, stats, _ = make_poller(store)
    port = ScriptedPort(station({HELLO_DATA: [hello("ROGUE-1"), data(*STAGE)]}))
    poller.poll(framed(port, stats), ADDR)
    (entry,) = quarantine.entries()
    return entry.id


def test_release_stores_the_readings_under_the_station_named(store: Store) -> None:
    quarantine = Quarantine("gw-1", store, REGISTRY)
    entry = quarantined(store, quarantine)
    with pytest.raises(QuarantineError, match="has sent this gateway no readings yet"):
        quarantine.release(entry, "SAN-01")
    store.add("SAN-01", "santiago", [MessageReading(41, "stage_m", T0, 1234, -3, 0)])
    assert quarantine.release(entry, "SAN-01") == {"readings": 4, "new": 3, "duplicate": 1}
    rows = store.unsent(10)
    assert [(r.station, r.basin, r.reading.seq, r.reading.channel) for r in rows] == [
        ("SAN-01", "santiago", 41, "stage_m"), ("SAN-01", "santiago", 42, "stage_m"),
        ("SAN-01", "santiago", 43, "stage_backup_m"), ("SAN-01", "santiago", 44, "ch200")]
    assert quarantine.entries() == []
    (released,) = quarantine.entries(state="released")
    assert released.settled_to == "SAN-01"
    with pytest.raises(QuarantineError, match="released already"):
        quarantine.drop(entry)


def test_drop_counts_what_never_arrived_otherwise_in_the_loss_ledger(store: Store) -> None:
    quarantine = Quarantine("gw-1", store, REGISTRY)
    entry = quarantined(store, quarantine)
    store.add("ROGUE-1", "unassigned", [MessageReading(41, "stage_m", T0, 1234, -3, 0)])
    assert summary(store) == {"count": 1, "readings": 4, "oldest_at": int(NOW),
                              "cases": {ADDRESS_TAKEN: 4}, "stations": {"ROGUE-1": 4}}
    assert quarantine.drop(entry) == {"readings": 4, "lost": 3}
    assert store.loss_ledger() == {"ROGUE-1": {"quarantined": 3}}
    assert summary(store)["count"] == 0
    with pytest.raises(QuarantineError, match="no quarantine entry 99"):
        quarantine.drop(99)


# --- isolation in the store -----------------------------------------------------------


def test_one_station_s_unwritable_facts_do_not_block_the_others(store: Store) -> None:
    absurd = wire.Hello(ADDR, "BAD-1", "1.0.0", 0, 1, 1, 5, 1 << 63)  # beyond SQLite's INTEGER
    with pytest.raises(Exception, match="BAD-1: its facts cannot be stored"):
        store.record_hello(absurd)
    store.record_hello(hello("SAN-01"))  # the next HELLO, of another station, is written
    assert store.station("SAN-01").next_seq == 44  # type: ignore[union-attr]
    store.record_hello(hello("SAN-02"))
    assert store.station("SAN-02") is not None


def test_the_quarantine_remote_operation_lists_releases_and_refuses(store: Store) -> None:
    from watershed.gateway.config import GatewayConfig
    from watershed.gateway.remote import RemoteOperations

    quarantine = Quarantine("gw-1", store, REGISTRY)
    entry = quarantined(store, quarantine)
    store.add("SAN-01", "santiago", [MessageReading(41, "stage_m", T0, 1234, -3, 0)])
    results: list[dict] = []
    remote = RemoteOperations(GatewayConfig("gw-1", stations=(SAN,)), [],
                              lambda payload: results.append(json.loads(payload)),
                              quarantine=quarantine)
    for command in [{"id": "q1", "op": "quarantine", "action": "list"},
                    {"id": "q2", "op": "quarantine", "action": "release", "quarantine": entry,
                     "to": "SAN-01"},
                    {"id": "q3", "op": "quarantine", "action": "drop", "quarantine": entry},
                    {"id": "q4", "op": "quarantine", "action": "drop"}]:
        remote.handle(json.dumps(command).encode())
    q1, q2, q3, q4 = results
    assert q1["ok"] and [e["id"] for e in q1["entries"]] == [entry]
    assert q1["entries"][0]["claimed"] == "ROGUE-1" and q1["entries"][0]["readings"] == 4
    assert (q2["ok"], q2["new"], q2["duplicate"]) == (True, 3, 1)
    assert (q3["status"], q4["status"]) == ("rejected", "bad_request")
    assert "released already" in q3["detail"]
