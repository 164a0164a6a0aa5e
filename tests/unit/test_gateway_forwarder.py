"""The forwarder against an in-memory MQTT session (tests/fixtures/memory_mqtt.py): what it
publishes, that a reading is marked acknowledged only when the broker's PUBACK for its message
arrives, and confirmed (out of the must-deliver set) only when an ingest's confirmation names it.

Most tests turn the forwarder themselves (``step()``, no thread), so "nothing more happens" is
a number of turns, not a sleep; those about starting and stopping run its thread."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.memory_mqtt import MemorySession
from watershed.contracts.mqtt import MessageReading, decode_readings
from watershed.gateway.config import GatewayMqttConfig
from watershed.gateway.forwarder import Forwarder
from watershed.gateway.send_order import group_messages
from watershed.gateway.store import Store, StoredReading

T0 = 1763676900
GW = "gw-test"
CONFIRM = "watershed/v1/gw-test/confirm"
STATUS = "watershed/v1/ingest/ingest-1/status"
INGEST_ONLINE = json.dumps({"v": 1, "ingest": "ingest-1", "state": "online"}).encode()


def broker() -> MemorySession:
    """A broker holding a retained "online" status of one ingest."""
    return MemorySession(retained={STATUS: INGEST_ONLINE})


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "gw.db") as s:
        yield s


def fill(store: Store, station: str, seqs: range, basin: str = "santiago") -> None:
    store.add(station, basin, [MessageReading(s, "stage_m", T0 + s, 1000 + s, -3, 0) for s in seqs])


def config(**mqtt: Any) -> GatewayMqttConfig:
    return GatewayMqttConfig(reconnect_min_s=0.01, reconnect_max_s=0.05, **mqtt)


def start(store: Store, client: MemorySession, **mqtt: Any) -> Forwarder:
    """A forwarder on its own thread."""
    forwarder = Forwarder(GW, config(**mqtt), store, clock=lambda: T0, session=client.factory)
    forwarder.start()
    return forwarder


def stepped(store: Store, client: MemorySession, clock: Callable[[], float] = lambda: T0,
            **mqtt: Any) -> Forwarder:
    """A forwarder the test turns: nothing happens between turns."""
    return Forwarder(GW, config(confirm_grace_s=10, **mqtt), store, clock=clock,
                     session=client.factory)


def turn(forwarder: Forwarder, until: Callable[[], bool] | None = None, turns: int = 30) -> None:
    """Turn the forwarder, looking at the store each turn: ``turns`` times, or until ``until``
    holds (a reconnect waits out its backoff, a few tens of milliseconds)."""
    deadline = time.monotonic() + 5.0
    done = 0
    while (until is None and done < turns) or (until is not None and not until()):
        assert time.monotonic() < deadline, "condition not met in time"
        forwarder.notify()
        forwarder.step()
        done += 1


def readings_messages(client: MemorySession) -> list[bytes]:
    return client.messages_on("/readings")


def test_group_messages_per_station_in_order_and_bounded() -> None:
    def row(i: int, station: str, basin: str = "b") -> StoredReading:
        return StoredReading(i, station, basin, MessageReading(i, "stage_m", T0, i, 0, 0))
    rows = [row(1, "A"), row(2, "B"), row(3, "A"), row(4, "A"), row(5, "A", "other")]
    grouped = group_messages(rows, GW, 2)
    assert [(m.station, m.basin, [r.seq for r in m.readings], keys) for m, keys in grouped] == [
        ("A", "b", [1, 3], [("A", 1), ("A", 3)]),
        ("A", "b", [4], [("A", 4)]),
        ("B", "b", [2], [("B", 2)]),
        ("A", "other", [5], [("A", 5)]),
    ]


def test_readings_are_marked_sent_only_on_puback(store: Store) -> None:
    client = broker()
    client.pubacks = False
    fill(store, "SAN-01", range(1, 6))
    forwarder = stepped(store, client)
    turn(forwarder, until=lambda: len(readings_messages(client)) == 1)
    turn(forwarder, turns=30)
    assert len(store.unsent(10)) == 5  # published, not acknowledged: still owed
    client.pubacks = True
    turn(forwarder, until=lambda: not store.unsent(10))
    (payload,) = readings_messages(client)
    message = decode_readings(payload)
    assert (message.gateway, message.station, message.basin) == (GW, "SAN-01", "santiago")
    assert [r.value_text for r in message.readings] == ["1.001", "1.002", "1.003", "1.004", "1.005"]
    assert forwarder.stats()["readings_acked"] == 5


def test_topics_qos_status_and_last_will(store: Store) -> None:
    client = broker()
    fill(store, "SAN-01", range(1, 3))
    forwarder = start(store, client, prefix="basin/x")
    wait_until(lambda: not store.unsent(10))
    forwarder.stop(1)
    topics = [(t, q, r) for t, _, q, r in client.published]
    assert topics == [("basin/x/v1/gw-test/status", 1, True),
                      ("basin/x/v1/gw-test/SAN-01/readings", 1, False),
                      ("basin/x/v1/gw-test/status", 1, True)]
    states = [json.loads(p)["state"] for t, p, _, _ in client.published if t.endswith("/status")]
    assert states == ["online", "offline"]
    assert client.will is not None
    assert client.will[0] == "basin/x/v1/gw-test/status" and client.will[2:] == (1, True)
    assert json.loads(client.will[1]) == {"v": 1, "gateway": GW, "state": "offline", "since": T0}
    assert client.endpoint is not None and client.endpoint.max_inflight == 20


def test_inflight_messages_are_bounded(store: Store) -> None:
    client = broker()
    client.pubacks = False
    fill(store, "SAN-01", range(1, 1001))
    forwarder = stepped(store, client, max_inflight=3, max_readings_per_message=10,
                        backlog_readings_per_message=10)
    # A backlog leaves one of the three slots free for live readings.
    turn(forwarder, until=lambda: len(readings_messages(client)) == 2)
    turn(forwarder, turns=30)
    assert len(readings_messages(client)) == 2
    assert forwarder.stats()["inflight"] == 2
    client.pubacks = True
    turn(forwarder, until=lambda: not store.unsent(1))
    seqs = [r.seq for p in readings_messages(client) for r in decode_readings(p).readings]
    assert seqs == list(range(1, 1001))  # each once, oldest first


def test_broker_down_at_start_then_up(store: Store) -> None:
    client = broker()
    client.broker_up = False
    fill(store, "SAN-01", range(1, 4))
    forwarder = start(store, client)
    try:
        wait_until(lambda: forwarder.stats()["connect_failures"] >= 3)
        assert client.published == []
        client.broker_up = True
        wait_until(lambda: not store.unsent(10))
    finally:
        forwarder.stop(1)


def test_new_readings_are_published_after_a_lost_connection(store: Store) -> None:
    client = broker()
    forwarder = stepped(store, client)
    fill(store, "SAN-01", range(1, 3))
    turn(forwarder, until=lambda: not store.unsent(10))
    client.broker_up = False
    turn(forwarder, until=lambda: not forwarder.connected)
    fill(store, "SAN-01", range(3, 6))
    turn(forwarder, turns=30)
    assert len(store.unsent(10)) == 3
    client.broker_up = True
    turn(forwarder, until=lambda: not store.unsent(10))
    assert forwarder.stats()["connects"] == 2


def test_stop_with_the_broker_down_keeps_readings_and_returns(store: Store) -> None:
    client = broker()
    client.broker_up = False
    fill(store, "SAN-01", range(1, 3))
    forwarder = start(store, client)
    began = time.monotonic()
    forwarder.stop(flush_timeout_s=0.2)
    assert time.monotonic() - began < 2
    assert len(store.unsent(10)) == 2


def reconnect(client: MemorySession, forwarder: Forwarder) -> None:
    connects = forwarder.stats()["connects"]
    client.broker_up = False
    turn(forwarder, until=lambda: not forwarder.connected)
    client.broker_up = True
    turn(forwarder, until=lambda: forwarder.stats()["connects"] == connects + 1)


def published_seqs(client: MemorySession) -> list[int]:
    return [r.seq for p in readings_messages(client) for r in decode_readings(p).readings]


# --- end to end: a reading leaves the must-deliver set only when an ingest confirms it ------


class Clock:
    """The gateway's clock (store and forwarder), moved by the test."""

    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed_store(tmp_path: Path, clock: Clock):
    with Store(tmp_path / "gw.db", clock=clock) as s:
        yield s


def confirmation(written: dict[str, list[list[int]]], rejected: dict | None = None) -> bytes:
    return json.dumps({"v": 1, "ingest": "ingest-1", "written": written,
                       "rejected": rejected or {}}).encode()


def ingest_status(unacked: int, state: str = "online") -> bytes:
    return json.dumps({"v": 1, "ingest": "ingest-1", "state": state,
                       "messages": {"unacked": unacked}}).encode()


def publish_and_ack(forwarder: Forwarder, store: Store, station: str, seqs: range) -> None:
    fill(store, station, seqs)
    turn(forwarder, until=lambda: store.counts()["unconfirmed"] >= len(seqs)
         and not store.unsent(1))


def test_subscribes_to_its_confirmations_and_the_ingests_statuses(store: Store) -> None:
    client = broker()
    forwarder = stepped(store, client)
    turn(forwarder, until=lambda: len(client.subscriptions) >= 2)
    reconnect(client, forwarder)  # again on every connection: a broker may have lost them
    turn(forwarder, until=lambda: len(client.subscriptions) >= 4)
    assert client.subscriptions == [CONFIRM, "watershed/v1/ingest/+/status"] * 2


def test_a_broker_acknowledgement_leaves_the_reading_unconfirmed_until_an_ingest_confirms(
        timed_store: Store, clock: Clock) -> None:
    client = broker()
    forwarder = stepped(timed_store, client, clock)
    publish_and_ack(forwarder, timed_store, "SAN-01", range(1, 6))
    assert timed_store.counts()["unconfirmed"] == 5
    assert timed_store.prune_confirmed(keep=0) == 0  # nothing may go yet
    client.deliver(CONFIRM, confirmation({"SAN-01": [[1, 4]]}))
    turn(forwarder, until=lambda: timed_store.counts()["unconfirmed"] == 2)
    assert forwarder.stats()["readings_confirmed"] == 3
    assert timed_store.counts()["readings_confirmed"] == 3
    assert timed_store.prune_confirmed(keep=0) == 3
    turn(forwarder, turns=30)
    assert published_seqs(client) == [1, 2, 3, 4, 5]  # nothing resent without evidence of loss


def test_readings_an_ingest_refused_are_counted_lost_with_their_cause(
        timed_store: Store, clock: Clock) -> None:
    client = broker()
    forwarder = stepped(timed_store, client, clock)
    publish_and_ack(forwarder, timed_store, "SAN-01", range(1, 4))
    client.deliver(CONFIRM, confirmation({"SAN-01": [[1, 2], [3, 4]]},
                                         {"SAN-01": [[2, 3, "ts: too old"]]}))
    turn(forwarder, until=lambda: timed_store.counts()["unconfirmed"] == 0)
    assert timed_store.loss_ledger() == {"SAN-01": {"rejected_by_ingest": 1}}
    assert timed_store.counts()["readings_rejected"] == 1
    assert timed_store.counts()["readings_confirmed"] == 2


def test_readings_overtaken_by_a_later_confirmation_are_published_again(
        timed_store: Store, clock: Clock) -> None:
    """The broker hands an ingest its messages in order: once a reading acknowledged more than
    the grace later is confirmed, an earlier unconfirmed one was dropped on the way."""
    client = broker()
    forwarder = stepped(timed_store, client, clock)
    publish_and_ack(forwarder, timed_store, "SAN-01", range(1, 4))  # lost later
    clock.now += 5
    publish_and_ack(forwarder, timed_store, "SAN-01", range(4, 6))
    client.deliver(CONFIRM, confirmation({"SAN-01": [[4, 6]]}))
    turn(forwarder, until=lambda: forwarder.stats()["readings_confirmed"] == 2)
    turn(forwarder, turns=30)
    assert published_seqs(client) == [1, 2, 3, 4, 5]  # 5 s apart: within the grace
    clock.now += 6
    publish_and_ack(forwarder, timed_store, "SAN-01", range(6, 7))
    client.deliver(CONFIRM, confirmation({"SAN-01": [[6, 7]]}))
    turn(forwarder, until=lambda: published_seqs(client)[6:] == [1, 2, 3])
    assert forwarder.stats()["readings_resent"] == 3
    assert timed_store.counts()["readings_resent"] == 3
    turn(forwarder, until=lambda: timed_store.counts()["unconfirmed"] == 3
         and not timed_store.unsent(1))
    client.deliver(CONFIRM, confirmation({"SAN-01": [[1, 4]]}))
    turn(forwarder, until=lambda: timed_store.counts()["unconfirmed"] == 0)
    turn(forwarder, turns=30)
    assert published_seqs(client) == [1, 2, 3, 4, 5, 6, 1, 2, 3]  # only what was lost, once


def test_a_live_idle_status_of_every_online_ingest_means_the_rest_was_lost(
        timed_store: Store, clock: Clock) -> None:
    client = broker()
    forwarder = stepped(timed_store, client, clock)
    publish_and_ack(forwarder, timed_store, "SAN-01", range(1, 4))
    clock.now += 60
    # Retained (replayed on subscribing, maybe hours old): proves nothing.
    client.deliver(STATUS, ingest_status(0), retain=True)
    # Busy: it may still hold them.
    client.deliver(STATUS, ingest_status(12))
    turn(forwarder, turns=30)
    assert published_seqs(client) == [1, 2, 3]
    # A second ingest is online and has not said it is idle yet: wait for it too.
    client.deliver("watershed/v1/ingest/ingest-2/status", ingest_status(3))
    client.deliver(STATUS, ingest_status(0))
    turn(forwarder, turns=30)
    assert published_seqs(client) == [1, 2, 3]
    client.deliver("watershed/v1/ingest/ingest-2/status", ingest_status(0, state="offline"))
    turn(forwarder, until=lambda: published_seqs(client) == [1, 2, 3, 1, 2, 3])
    assert forwarder.stats()["ingests"] == {"ingest-1": "online", "ingest-2": "offline"}


def test_an_ingest_that_is_slow_gets_no_copies(timed_store: Store, clock: Clock) -> None:
    """No time-out: an ingest holding messages while InfluxDB is down gets each reading once."""
    client = broker()
    forwarder = stepped(timed_store, client, clock)
    publish_and_ack(forwarder, timed_store, "SAN-01", range(1, 4))
    for _ in range(5):
        clock.now += 3600
        client.deliver(STATUS, ingest_status(40))
        reconnect(client, forwarder)
    turn(forwarder, turns=30)
    assert published_seqs(client) == [1, 2, 3]
    assert timed_store.counts()["unconfirmed"] == 3


def test_a_malformed_confirmation_is_counted_and_logged_once(
        timed_store: Store, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    client = broker()
    forwarder = stepped(timed_store, client, clock)
    publish_and_ack(forwarder, timed_store, "SAN-01", range(1, 3))
    for payload in (b"not json", b'{"v":1,"ingest":"i","written":{"SAN-01":[[5,2]]}}'):
        client.deliver(CONFIRM, payload)
    turn(forwarder, until=lambda: forwarder.stats()["confirmations_invalid"] == 2)
    assert timed_store.counts()["unconfirmed"] == 2
    assert sum("malformed confirmation" in r.message for r in caplog.records) == 1


def test_a_store_that_cannot_record_delivery_states_causes_no_republish_loop(
        timed_store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A full disk: PUBACKs and confirmations cannot be recorded. Each reading is published once
    (not in a loop), the failure is logged once, and the readings stay owed."""
    client = broker()

    def disk_full(*args: Any) -> int:
        raise OSError(28, "No space left on device")

    real_mark = timed_store.mark_published
    monkeypatch.setattr(timed_store, "mark_published", disk_full)
    monkeypatch.setattr(timed_store, "confirm", disk_full)
    fill(timed_store, "SAN-01", range(1, 4))
    forwarder = stepped(timed_store, client, clock)
    turn(forwarder, until=lambda: forwarder.stats()["errors"] >= 1)
    client.deliver(CONFIRM, confirmation({"SAN-01": [[1, 4]]}))
    turn(forwarder, until=lambda: forwarder.stats()["errors"] >= 2)
    turn(forwarder, turns=60)
    assert published_seqs(client) == [1, 2, 3]
    assert len(timed_store.unsent(10)) == 3  # still owed
    monkeypatch.setattr(timed_store, "mark_published", real_mark)
    reconnect(client, forwarder)  # the next connection publishes them again
    turn(forwarder, until=lambda: timed_store.counts()["unconfirmed"] == 3)
    errors = [r for r in caplog.records if "cannot" in r.message and "store" in r.message]
    assert len(errors) == 1
