"""The forwarder against an in-memory stand-in for paho's client: what it publishes, that a
reading is marked acknowledged only when the broker's PUBACK for its message arrives, and
confirmed (out of the must-deliver set) only when an ingest's confirmation names it."""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import ConnectFlags, MQTTMessage
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from watershed.contracts.mqtt import MessageReading, decode_readings
from watershed.gateway.config import MqttConfig
from watershed.gateway.forwarder import Forwarder, group_messages
from watershed.gateway.store import Store, StoredReading

T0 = 1763676900
GW = "gw-test"


INGEST_ONLINE = json.dumps({"v": 1, "ingest": "ingest-1", "state": "online"}).encode()


class FakeClient:
    """Just enough of paho.mqtt.client.Client, driven by the forwarder's thread. Its "broker"
    holds a retained ingest status (``consumer``) unless a test says otherwise."""

    def __init__(self, consumer: bytes | None = INGEST_ONLINE) -> None:
        self.consumer = consumer  # retained payload on <prefix>/v1/ingest/ingest-1/status
        self.session_present = False
        self.subscriptions: list[str] = []
        self._subacks: list[tuple[int, str]] = []
        self._incoming: collections.deque[MQTTMessage] = collections.deque()  # any thread
        self.broker_up = True
        self.pubacks = True  # does the "broker" acknowledge publishes?
        self.published: list[tuple[str, bytes, int, bool]] = []
        self.will: tuple | None = None
        self.connected = False
        self._connack_due = False
        self._unacked: list[int] = []
        self._mid = 0
        self.on_connect: Callable | None = None
        self.on_disconnect: Callable | None = None
        self.on_publish: Callable | None = None
        self.on_subscribe: Callable | None = None
        self.on_message: Callable | None = None

    def will_set(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.will = (topic, payload, qos, retain)

    def max_inflight_messages_set(self, n: int) -> None:
        pass

    def connect(self, host: str, port: int, keepalive: int) -> None:
        self.reconnect()

    def reconnect(self) -> None:
        if not self.broker_up:
            raise ConnectionRefusedError(111, "Connection refused")
        self._connack_due = True

    def loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        time.sleep(min(timeout, 0.002))
        if not self.broker_up:
            if self.connected:
                self.connected = False
                self.on_disconnect(self, None, None,
                                   ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"), None)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if self._connack_due:
            self._connack_due = False
            self.connected = True
            self.on_connect(self, None, ConnectFlags(self.session_present),
                            ReasonCode(PacketTypes.CONNACK, "Success"), None)
        subacks, self._subacks = self._subacks, []
        for mid, topic in subacks:
            self.on_subscribe(self, None, mid, [ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")],
                              None)
            if topic.endswith("/ingest/+/status") and self.consumer is not None:
                self.deliver(topic.replace("+", "ingest-1"), self.consumer, retain=True)
        while self._incoming:
            self.on_message(self, None, self._incoming.popleft())
        if self.pubacks and self.connected:
            acked, self._unacked = self._unacked, []
            for mid in acked:
                self.on_publish(self, None, mid, ReasonCode(PacketTypes.PUBACK, "Success"), None)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> Any:
        self._mid += 1
        self.published.append((topic, payload, qos, retain))
        self._unacked.append(self._mid)
        return type("Info", (), {"mid": self._mid})()

    def subscribe(self, topic: str, qos: int = 0) -> tuple[MQTTErrorCode, int]:
        self._mid += 1
        self.subscriptions.append(topic)
        self._subacks.append((self._mid, topic))
        return MQTTErrorCode.MQTT_ERR_SUCCESS, self._mid

    def deliver(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """A message from the broker, handed to on_message at the next loop."""
        message = MQTTMessage(topic=topic.encode())
        message.payload = payload
        message.retain = retain
        self._incoming.append(message)

    def disconnect(self) -> None:
        self.connected = False

    def readings_messages(self) -> list[bytes]:
        return [p for t, p, _, _ in self.published if t.endswith("/readings")]


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


def start(store: Store, client: FakeClient, **mqtt: Any) -> Forwarder:
    config = MqttConfig(reconnect_min_s=0.01, reconnect_max_s=0.05, **mqtt)
    forwarder = Forwarder(GW, config, store, clock=lambda: T0, client_factory=lambda cid: client)
    forwarder.start()
    return forwarder


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
    client = FakeClient()
    client.pubacks = False
    fill(store, "SAN-01", range(1, 6))
    forwarder = start(store, client)
    try:
        wait_until(lambda: len(client.readings_messages()) == 1)
        time.sleep(0.05)
        assert len(store.unsent(10)) == 5  # published, not acknowledged: still owed
        client.pubacks = True
        wait_until(lambda: not store.unsent(10))
    finally:
        forwarder.stop(1)
    (payload,) = client.readings_messages()
    message = decode_readings(payload)
    assert (message.gateway, message.station, message.basin) == (GW, "SAN-01", "santiago")
    assert [r.value_text for r in message.readings] == ["1.001", "1.002", "1.003", "1.004", "1.005"]
    assert forwarder.stats()["readings_acked"] == 5


def test_topics_qos_status_and_last_will(store: Store) -> None:
    client = FakeClient()
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


def test_inflight_messages_are_bounded(store: Store) -> None:
    client = FakeClient()
    client.pubacks = False
    fill(store, "SAN-01", range(1, 1001))
    forwarder = start(store, client, max_inflight=3, max_readings_per_message=10,
                      backlog_readings_per_message=10)
    try:
        # A backlog leaves one of the three slots free for live readings.
        wait_until(lambda: len(client.readings_messages()) == 2)
        time.sleep(0.05)
        assert len(client.readings_messages()) == 2
        assert forwarder.stats()["inflight"] == 2
        client.pubacks = True
        wait_until(lambda: not store.unsent(1))
    finally:
        forwarder.stop(1)
    seqs = [r.seq for p in client.readings_messages() for r in decode_readings(p).readings]
    assert seqs == list(range(1, 1001))  # each once, oldest first


def test_broker_down_at_start_then_up(store: Store) -> None:
    client = FakeClient()
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
    client = FakeClient()
    forwarder = start(store, client)
    try:
        fill(store, "SAN-01", range(1, 3))
        forwarder.notify()
        wait_until(lambda: not store.unsent(10))
        client.broker_up = False
        wait_until(lambda: not forwarder.connected)
        fill(store, "SAN-01", range(3, 6))
        forwarder.notify()
        time.sleep(0.05)
        assert len(store.unsent(10)) == 3
        client.broker_up = True
        wait_until(lambda: not store.unsent(10))
    finally:
        forwarder.stop(1)
    assert forwarder.stats()["connects"] == 2


def test_stop_with_the_broker_down_keeps_readings_and_returns(store: Store) -> None:
    client = FakeClient()
    client.broker_up = False
    fill(store, "SAN-01", range(1, 3))
    forwarder = start(store, client)
    began = time.monotonic()
    forwarder.stop(flush_timeout_s=0.2)
    assert time.monotonic() - began < 2
    assert len(store.unsent(10)) == 2


def reconnect(client: FakeClient, forwarder: Forwarder) -> None:
    connects = forwarder.stats()["connects"]
    client.broker_up = False
    wait_until(lambda: not forwarder.connected)
    client.broker_up = True
    wait_until(lambda: forwarder.stats()["connects"] == connects + 1)


def published_seqs(client: FakeClient) -> list[int]:
    return [r.seq for p in client.readings_messages() for r in decode_readings(p).readings]


# --- end to end: a reading leaves the must-deliver set only when an ingest confirms it ------

CONFIRM = "watershed/v1/gw-test/confirm"
STATUS = "watershed/v1/ingest/ingest-1/status"


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


def start_timed(store: Store, client: FakeClient, clock: Clock, **mqtt: Any) -> Forwarder:
    config = MqttConfig(reconnect_min_s=0.01, reconnect_max_s=0.05, confirm_grace_s=10, **mqtt)
    forwarder = Forwarder(GW, config, store, clock=clock, client_factory=lambda cid: client)
    forwarder.start()
    return forwarder


def confirmation(written: dict[str, list[list[int]]], rejected: dict | None = None) -> bytes:
    return json.dumps({"v": 1, "ingest": "ingest-1", "written": written,
                       "rejected": rejected or {}}).encode()


def ingest_status(unacked: int, state: str = "online") -> bytes:
    return json.dumps({"v": 1, "ingest": "ingest-1", "state": state,
                       "messages": {"unacked": unacked}}).encode()


def publish_and_ack(client: FakeClient, forwarder: Forwarder, store: Store, station: str,
                    seqs: range) -> None:
    fill(store, station, seqs)
    forwarder.notify()
    wait_until(lambda: store.counts()["unconfirmed"] >= len(seqs) and not store.unsent(1))


def test_subscribes_to_its_confirmations_and_the_ingests_statuses(store: Store) -> None:
    client = FakeClient()
    forwarder = start(store, client)
    try:
        wait_until(lambda: len(client.subscriptions) >= 2)
        reconnect(client, forwarder)  # again on every connection: a broker may have lost them
        wait_until(lambda: len(client.subscriptions) >= 4)
    finally:
        forwarder.stop(1)
    assert client.subscriptions == [CONFIRM, "watershed/v1/ingest/+/status"] * 2


def test_a_broker_acknowledgement_leaves_the_reading_unconfirmed_until_an_ingest_confirms(
        timed_store: Store, clock: Clock) -> None:
    client = FakeClient()
    forwarder = start_timed(timed_store, client, clock)
    try:
        publish_and_ack(client, forwarder, timed_store, "SAN-01", range(1, 6))
        assert timed_store.counts()["unconfirmed"] == 5
        assert timed_store.prune_confirmed(keep=0) == 0  # nothing may go yet
        client.deliver(CONFIRM, confirmation({"SAN-01": [[1, 4]]}))
        wait_until(lambda: timed_store.counts()["unconfirmed"] == 2)
        assert forwarder.stats()["readings_confirmed"] == 3
        assert timed_store.counts()["readings_confirmed"] == 3
        assert timed_store.prune_confirmed(keep=0) == 3
    finally:
        forwarder.stop(1)
    assert published_seqs(client) == [1, 2, 3, 4, 5]  # nothing resent without evidence of loss


def test_readings_an_ingest_refused_are_counted_lost_with_their_cause(
        timed_store: Store, clock: Clock) -> None:
    client = FakeClient()
    forwarder = start_timed(timed_store, client, clock)
    try:
        publish_and_ack(client, forwarder, timed_store, "SAN-01", range(1, 4))
        client.deliver(CONFIRM, confirmation({"SAN-01": [[1, 2], [3, 4]]},
                                             {"SAN-01": [[2, 3, "ts: too old"]]}))
        wait_until(lambda: timed_store.counts()["unconfirmed"] == 0)
    finally:
        forwarder.stop(1)
    assert timed_store.loss_ledger() == {"SAN-01": {"rejected_by_ingest": 1}}
    assert timed_store.counts()["readings_rejected"] == 1
    assert timed_store.counts()["readings_confirmed"] == 2


def test_readings_overtaken_by_a_later_confirmation_are_published_again(
        timed_store: Store, clock: Clock) -> None:
    """The broker hands an ingest its messages in order: once a reading acknowledged more than
    the grace later is confirmed, an earlier unconfirmed one was dropped on the way."""
    client = FakeClient()
    forwarder = start_timed(timed_store, client, clock)
    try:
        publish_and_ack(client, forwarder, timed_store, "SAN-01", range(1, 4))  # lost later
        clock.now += 5
        publish_and_ack(client, forwarder, timed_store, "SAN-01", range(4, 6))
        client.deliver(CONFIRM, confirmation({"SAN-01": [[4, 6]]}))
        wait_until(lambda: forwarder.stats()["readings_confirmed"] == 2)
        time.sleep(0.05)
        assert published_seqs(client) == [1, 2, 3, 4, 5]  # 5 s apart: within the grace
        clock.now += 6
        publish_and_ack(client, forwarder, timed_store, "SAN-01", range(6, 7))
        client.deliver(CONFIRM, confirmation({"SAN-01": [[6, 7]]}))
        wait_until(lambda: published_seqs(client)[6:] == [1, 2, 3])
        assert forwarder.stats()["readings_resent"] == 3
        assert timed_store.counts()["readings_resent"] == 3
        wait_until(lambda: timed_store.counts()["unconfirmed"] == 3 and not timed_store.unsent(1))
        client.deliver(CONFIRM, confirmation({"SAN-01": [[1, 4]]}))
        wait_until(lambda: timed_store.counts()["unconfirmed"] == 0)
    finally:
        forwarder.stop(1)
    assert published_seqs(client) == [1, 2, 3, 4, 5, 6, 1, 2, 3]  # only what was lost, once


def test_a_live_idle_status_of_every_online_ingest_means_the_rest_was_lost(
        timed_store: Store, clock: Clock) -> None:
    client = FakeClient()
    forwarder = start_timed(timed_store, client, clock)
    try:
        publish_and_ack(client, forwarder, timed_store, "SAN-01", range(1, 4))
        clock.now += 60
        # Retained (replayed on subscribing, maybe hours old): proves nothing.
        client.deliver(STATUS, ingest_status(0), retain=True)
        # Busy: it may still hold them.
        client.deliver(STATUS, ingest_status(12))
        time.sleep(0.1)
        assert published_seqs(client) == [1, 2, 3]
        # A second ingest is online and has not said it is idle yet: wait for it too.
        client.deliver("watershed/v1/ingest/ingest-2/status", ingest_status(3))
        client.deliver(STATUS, ingest_status(0))
        time.sleep(0.1)
        assert published_seqs(client) == [1, 2, 3]
        client.deliver("watershed/v1/ingest/ingest-2/status", ingest_status(0, state="offline"))
        wait_until(lambda: published_seqs(client) == [1, 2, 3, 1, 2, 3])
    finally:
        forwarder.stop(1)
    assert forwarder.stats()["ingests"] == {"ingest-1": "online", "ingest-2": "offline"}


def test_an_ingest_that_is_slow_gets_no_copies(timed_store: Store, clock: Clock) -> None:
    """No time-out: an ingest holding messages while InfluxDB is down gets each reading once."""
    client = FakeClient()
    forwarder = start_timed(timed_store, client, clock)
    try:
        publish_and_ack(client, forwarder, timed_store, "SAN-01", range(1, 4))
        for _ in range(5):
            clock.now += 3600
            client.deliver(STATUS, ingest_status(40))
            reconnect(client, forwarder)
        time.sleep(0.1)
    finally:
        forwarder.stop(1)
    assert published_seqs(client) == [1, 2, 3]
    assert timed_store.counts()["unconfirmed"] == 3


def test_a_malformed_confirmation_is_counted_and_logged_once(
        timed_store: Store, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient()
    forwarder = start_timed(timed_store, client, clock)
    try:
        publish_and_ack(client, forwarder, timed_store, "SAN-01", range(1, 3))
        for payload in (b"not json", b'{"v":1,"ingest":"i","written":{"SAN-01":[[5,2]]}}'):
            client.deliver(CONFIRM, payload)
        wait_until(lambda: forwarder.stats()["confirmations_invalid"] == 2)
    finally:
        forwarder.stop(1)
    assert timed_store.counts()["unconfirmed"] == 2
    assert sum("malformed confirmation" in r.message for r in caplog.records) == 1


def test_a_store_that_cannot_record_delivery_states_causes_no_republish_loop(
        timed_store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A full disk: PUBACKs and confirmations cannot be recorded. Each reading is published once
    (not in a loop), the failure is logged once, and the readings stay owed."""
    client = FakeClient()

    def disk_full(*args: Any) -> int:
        raise OSError(28, "No space left on device")

    real_mark = timed_store.mark_published
    monkeypatch.setattr(timed_store, "mark_published", disk_full)
    monkeypatch.setattr(timed_store, "confirm", disk_full)
    fill(timed_store, "SAN-01", range(1, 4))
    forwarder = start_timed(timed_store, client, clock)
    try:
        wait_until(lambda: forwarder.stats()["errors"] >= 1)
        client.deliver(CONFIRM, confirmation({"SAN-01": [[1, 4]]}))
        wait_until(lambda: forwarder.stats()["errors"] >= 2)
        time.sleep(0.2)
        assert published_seqs(client) == [1, 2, 3]
        assert len(timed_store.unsent(10)) == 3  # still owed
        monkeypatch.setattr(timed_store, "mark_published", real_mark)
        reconnect(client, forwarder)  # the next connection publishes them again
        wait_until(lambda: timed_store.counts()["unconfirmed"] == 3)
    finally:
        forwarder.stop(1)
    errors = [r for r in caplog.records if "cannot" in r.message and "store" in r.message]
    assert len(errors) == 1
