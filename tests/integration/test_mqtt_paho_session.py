"""The paho adapter (watershed/mqtt/paho_session.py) against real mosquitto: the private parts
of paho it relies on are there, read-ahead hands over every message whole and in order, batched
acks settle exactly the messages named, and the events reach the handlers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt

from tests.fixtures.mqtt import MqttClientFactory
from tests.fixtures.servers import Mosquitto
from watershed.mqtt import Endpoint, Handlers
from watershed.mqtt.paho_session import READ_AHEAD, PahoSession


class Heard:
    """What the handlers were told."""

    def __init__(self) -> None:
        self.connects: list[tuple[bool, str | None]] = []
        self.subscribes: list[list[str]] = []
        self.published: list[int] = []
        self.messages: list[tuple[str, bytes, int, bool, int]] = []

    def handlers(self) -> Handlers:
        return Handlers(on_connect=lambda *connect: self.connects.append(connect),
                        on_subscribe=self.subscribes.append, on_publish=self.published.append,
                        on_message=lambda *message: self.messages.append(message))


def drive(session: PahoSession, until: Callable[[], object], timeout_s: float = 10.0,
          what: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, f"condition not met in time {what()}"
        assert session.loop(0.05, read_burst=100) is None


def test_paho_still_has_the_private_parts_the_adapter_uses() -> None:
    """paho-mqtt is pinned below 3; this says which of its insides a new 2.x would have to keep."""
    assert callable(getattr(mqtt.Client, "_sock_recv", None))
    assert callable(getattr(mqtt.Client, "_packet_queue", None))
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    assert hasattr(client, "_sockpairW")


def session_on(mosquitto: Mosquitto, heard: Heard, client_id: str) -> PahoSession:
    endpoint = Endpoint(mosquitto.host, mosquitto.port, client_id, clean_session=False,
                        manual_ack=True, read_ahead=True)
    session = PahoSession(endpoint, heard.handlers())
    session.connect()
    drive(session, lambda: heard.connects)
    return session


def test_read_ahead_and_batched_acks(mosquitto: Mosquitto, mqtt_clients: MqttClientFactory
                                     ) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}/x"
    client_id = f"paho-session-{uuid.uuid4().hex[:8]}"
    heard = Heard()
    session = session_on(mosquitto, heard, client_id)
    assert heard.connects == [(False, None)]
    session.subscribe(topic, 1)
    drive(session, lambda: heard.subscribes)
    assert heard.subscribes == [[]]
    publisher = mqtt_clients(mosquitto.port).connect()
    # Sizes around the read-ahead chunk: messages split across reads arrive whole.
    payloads = [bytes([i % 251]) * size for i, size in
                enumerate([1, 300, READ_AHEAD - 3, 5, READ_AHEAD + 17, 2, *[40] * 200])]
    for payload in payloads:
        publisher.publish(topic, payload)
    # Acks go out in batches as messages arrive (the broker sends 20 unacked at most),
    # all but the last ten's; after a reconnect only those ten come again.
    acked = 0

    def all_arrived_acking() -> bool:
        nonlocal acked
        batch = [m[4] for m in heard.messages[acked:len(payloads) - 10]]
        session.ack(batch)
        acked += len(batch)
        return len(heard.messages) == len(payloads)

    drive(session, all_arrived_acking)
    assert [m[1] for m in heard.messages] == payloads
    assert {(m[0], m[2], m[3]) for m in heard.messages} == {(topic, 1, False)}
    mine = session.publish(topic + "/own", b"p", 1)
    drive(session, lambda: mine in heard.published)
    session.disconnect()
    drive(session, lambda: not session.is_open())

    again = Heard()
    session = session_on(mosquitto, again, client_id)
    assert again.connects == [(True, None)]
    drive(session, lambda: len(again.messages) == 10)
    for _ in range(20):  # and nothing more
        assert session.loop(0.02, read_burst=100) is None
    assert [m[1] for m in again.messages] == payloads[-10:]  # the ten unacked, only
    session.ack([m[4] for m in again.messages])
    session.disconnect()
    drive(session, lambda: not session.is_open())
