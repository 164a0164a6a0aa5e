"""The forwarder against an in-memory stand-in for paho's client: what it publishes, and that a
reading is marked sent only when the broker's PUBACK for its message arrives."""

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


def test_a_puback_the_store_cannot_record_means_publishing_again(store: Store, monkeypatch) -> None:
    client = FakeClient()
    real_mark_sent = store.mark_sent_ids
    failures = []

    def mark_sent_failing_once(ids: Any) -> int:
        if not failures:
            failures.append(1)
            raise OSError(28, "No space left on device")
        return real_mark_sent(ids)

    monkeypatch.setattr(store, "mark_sent_ids", mark_sent_failing_once)
    fill(store, "SAN-01", range(1, 4))
    forwarder = start(store, client)
    try:
        wait_until(lambda: not store.unsent(10))
    finally:
        forwarder.stop(1)
    seqs = [r.seq for p in client.readings_messages() for r in decode_readings(p).readings]
    assert seqs == [1, 2, 3, 1, 2, 3]  # at least once: repeated, never lost


# --- the consumer interlock: no readings until the broker knows an ingest -----------------

STATUS_FILTER = "watershed/v1/ingest/+/status"


def test_without_a_known_ingest_readings_are_held_and_alerts_still_go(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="watershed.gateway.forwarder")
    client = FakeClient(consumer=None)  # a fresh broker: no ingest has ever subscribed
    fill(store, "SAN-01", range(1, 6))
    store.add_alert("SAN-01", '{"v":1,"rule":"above"}')
    forwarder = start(store, client)
    try:
        wait_until(lambda: any("no ingest has subscribed on this broker yet" in r.getMessage()
                               for r in caplog.records))
        assert STATUS_FILTER in client.subscriptions
        assert client.readings_messages() == []  # nothing the broker could drop
        assert len(store.unsent(10)) == 5
        assert [t for t, *_ in client.published if t.endswith("/alert")] == [
            "watershed/v1/gw-test/SAN-01/alert"]
        wait_until(lambda: store.counts()["alerts_unsent"] == 0)
        assert forwarder.held_for_consumer and forwarder.stats()["held_for_consumer"]
        assert "holding 5 readings" in caplog.text

        # The ingest subscribes and publishes its status (not retained as delivered: live).
        client.deliver("watershed/v1/ingest/ingest-1/status", INGEST_ONLINE)
        wait_until(lambda: not store.unsent(10))
        assert forwarder.stats()["consumers"] == {"ingest-1": "online"}
        assert not forwarder.held_for_consumer
    finally:
        forwarder.stop(1)
    seqs = [r.seq for p in client.readings_messages() for r in decode_readings(p).readings]
    assert seqs == [1, 2, 3, 4, 5]
    assert "ingest ingest-1 is known to the broker" in caplog.text


def test_a_retained_offline_status_means_a_session_exists_and_readings_flow(
        store: Store) -> None:
    client = FakeClient(consumer=json.dumps({"v": 1, "state": "offline"}).encode())
    fill(store, "SAN-01", range(1, 4))
    forwarder = start(store, client)
    try:
        wait_until(lambda: not store.unsent(10))
        assert forwarder.stats()["consumers"] == {"ingest-1": "offline"}
    finally:
        forwarder.stop(1)


def test_any_retained_payload_counts_as_a_consumer(store: Store) -> None:
    client = FakeClient(consumer=b"telegraf is here")  # another consumer's own status
    fill(store, "SAN-01", range(1, 4))
    forwarder = start(store, client)
    try:
        wait_until(lambda: not store.unsent(10))
    finally:
        forwarder.stop(1)


def test_a_cleared_status_holds_readings_again(store: Store) -> None:
    client = FakeClient()
    forwarder = start(store, client)
    try:
        fill(store, "SAN-01", range(1, 3))
        forwarder.notify()
        wait_until(lambda: not store.unsent(10))
        client.deliver("watershed/v1/ingest/ingest-1/status", b"")  # retained status deleted
        wait_until(lambda: forwarder.held_for_consumer)
        fill(store, "SAN-01", range(3, 6))
        forwarder.notify()
        time.sleep(0.1)
        assert len(store.unsent(10)) == 3
        client.deliver("watershed/v1/ingest/ingest-2/status", INGEST_ONLINE)
        wait_until(lambda: not store.unsent(10))
    finally:
        forwarder.stop(1)


def test_with_require_consumer_false_readings_go_at_once(store: Store) -> None:
    client = FakeClient(consumer=None)
    fill(store, "SAN-01", range(1, 4))
    forwarder = start(store, client, require_consumer=False)
    try:
        wait_until(lambda: not store.unsent(10))
        assert STATUS_FILTER not in client.subscriptions
        assert not forwarder.held_for_consumer
    finally:
        forwarder.stop(1)


def test_health_shows_readings_held_for_a_consumer(store: Store) -> None:
    client = FakeClient(consumer=None)
    fill(store, "SAN-01", range(1, 3))
    config = MqttConfig(reconnect_min_s=0.01, reconnect_max_s=0.05)
    forwarder = Forwarder(GW, config, store, clock=lambda: T0, client_factory=lambda cid: client,
                          health=lambda: {"queue": {
                              "held_for_consumer": forwarder.held_for_consumer}})
    forwarder.start()

    def healths() -> list[dict]:
        return [json.loads(p) for t, p, _, _ in client.published if t.endswith("/health")]
    try:
        wait_until(lambda: healths())
        assert healths()[-1]["queue"]["held_for_consumer"] is True
        assert healths()[-1]["forwarder"]["held_for_consumer"] is True
        client.deliver("watershed/v1/ingest/ingest-1/status", INGEST_ONLINE)
        wait_until(lambda: not store.unsent(10))
        wait_until(lambda: healths()[-1]["queue"]["held_for_consumer"] is False)  # at once
    finally:
        forwarder.stop(1)


def test_stop_while_held_does_not_wait_for_the_flush_timeout(store: Store) -> None:
    client = FakeClient(consumer=None)
    fill(store, "SAN-01", range(1, 3))
    forwarder = start(store, client)
    wait_until(lambda: forwarder.connected)
    time.sleep(1.1)  # past the grace for retained statuses
    began = time.monotonic()
    forwarder.stop(flush_timeout_s=10)
    assert time.monotonic() - began < 3
    assert len(store.unsent(10)) == 2


def test_in_flight_readings_are_not_trusted_to_a_broker_that_lost_our_session(
        store: Store) -> None:
    """A broker restarted without its persistence PUBACKs what paho resends and drops it: the
    readings in flight then are published again, after an ingest is known."""
    client = FakeClient()
    client.pubacks = False
    fill(store, "SAN-01", range(1, 4))
    forwarder = start(store, client)
    try:
        wait_until(lambda: len(client.readings_messages()) == 1)
        client.broker_up = False
        wait_until(lambda: not forwarder.connected)
        client.consumer = None  # the broker came back empty
        client.pubacks = True
        client.broker_up = True
        wait_until(lambda: forwarder.stats()["connects"] == 2)
        time.sleep(0.1)
        # The resent copy was acknowledged, but it marks nothing: still owed, and held.
        assert len(store.unsent(10)) == 3
        assert forwarder.stats()["readings_republished_after_session_loss"] == 3
        client.deliver("watershed/v1/ingest/ingest-1/status", INGEST_ONLINE)
        wait_until(lambda: not store.unsent(10))
    finally:
        forwarder.stop(1)
    seqs = [r.seq for p in client.readings_messages() for r in decode_readings(p).readings]
    assert seqs == [1, 2, 3, 1, 2, 3]


def reconnect(client: FakeClient, forwarder: Forwarder) -> None:
    connects = forwarder.stats()["connects"]
    client.broker_up = False
    wait_until(lambda: not forwarder.connected)
    client.broker_up = True
    wait_until(lambda: forwarder.stats()["connects"] == connects + 1)


def published_seqs(client: FakeClient) -> list[int]:
    return [r.seq for p in client.readings_messages() for r in decode_readings(p).readings]


def test_a_reconnect_replays_what_the_broker_acknowledged_within_the_window(
        store: Store) -> None:
    """A broker that crashed comes back from its last save, without what it acknowledged since:
    after a reconnect, what was acknowledged within replay_window_s before the last PUBACK goes
    again (the window reaches back from the last PUBACK, not from the reconnect)."""
    client = FakeClient()
    fill(store, "SAN-01", range(1, 4))
    forwarder = start(store, client, replay_window_s=0.5)
    try:
        wait_until(lambda: forwarder.stats()["readings_acked"] == 3)
        time.sleep(0.7)  # 1-3 fall out of the window once a later PUBACK comes
        fill(store, "SAN-01", range(4, 6))
        forwarder.notify()
        wait_until(lambda: forwarder.stats()["readings_acked"] == 5)
        time.sleep(0.7)  # the outage may be long: the window is not measured from now
        reconnect(client, forwarder)
        wait_until(lambda: forwarder.stats()["readings_acked"] == 7)
        assert forwarder.stats()["readings_replayed_after_reconnect"] == 2
        assert published_seqs(client) == [1, 2, 3, 4, 5, 4, 5]
        assert not store.unsent(10)
        assert store.counts()["readings_sent"] == 5  # each reading counted once
        reconnect(client, forwarder)  # the replay's own PUBACKs are the window now
        wait_until(lambda: forwarder.stats()["readings_acked"] == 9)
        assert published_seqs(client)[7:] == [4, 5]
    finally:
        forwarder.stop(1)


def test_no_replay_with_a_window_of_zero(store: Store) -> None:
    client = FakeClient()
    fill(store, "SAN-01", range(1, 4))
    forwarder = start(store, client, replay_window_s=0)
    try:
        wait_until(lambda: forwarder.stats()["readings_acked"] == 3)
        reconnect(client, forwarder)
        time.sleep(0.1)
        assert published_seqs(client) == [1, 2, 3]
        assert forwarder.stats()["readings_replayed_after_reconnect"] == 0
    finally:
        forwarder.stop(1)
