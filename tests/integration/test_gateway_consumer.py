"""The gateway holds readings until the broker knows a consumer ([mqtt] require_consumer).

A broker PUBACKs a QoS 1 message that matches no subscription and drops it. On a fresh broker
(first install, a broker that lost its persistence) a gateway that published before the ingest's
persistent session had subscribed marked those readings sent and lost them. Now it publishes
readings only while the broker holds a retained status under ``<prefix>/v1/ingest/+/status``
(any state), and the ingest publishes its status only after its SUBACK."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.mqtt import Topics
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import Gateway
from watershed.ingest.config import IngestConfig
from watershed.ingest.service import Ingest
from watershed.hydro.influxql import query
from watershed_sim.py_station import PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

from .consumer_status import announce_consumer
from .test_gateway_end_to_end import (
    SAN,
    TEXTS,
    Subscriber,
    config_dict,
    expected,
    received,
    sample,
    wait_until,
)

pytestmark = pytest.mark.integration

ACL = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "watershed.acl"


class Watch:
    """A clean-session client on one gateway's readings and health: if the gateway published a
    reading, this subscription would match it (so the broker would not drop it, and we see it)."""

    def __init__(self, port: int, gateway_id: str, user: str | None = None,
                 password: str | None = None) -> None:
        self.readings: list[bytes] = []
        self.health: list[dict] = []
        self._lock = threading.Lock()
        topics = Topics()
        self._health_topic = topics.health(gateway_id)
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"watch-{uuid.uuid4().hex[:8]}")
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, *a: c.subscribe(
            [(topics.readings(gateway_id, "+"), 1), (self._health_topic, 1)])
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert ready.wait(5)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            if message.topic == self._health_topic:
                self.health.append(json.loads(message.payload))
            else:
                self.readings.append(message.payload)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as vl:
        yield vl


@pytest.fixture
def bus(link: VirtualSerialLink) -> Iterator[StationBus]:
    b = StationBus(link.station_path, PyStation(SAN, "SAN-01"))
    yield b
    b.close()


def make_gateway(tmp_path: Path, port: int, serial: str, **mqtt_settings: object
                 ) -> tuple[str, Gateway]:
    gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
    d = config_dict(tmp_path, gateway_id, port, serial)
    d["link"][0]["stations"] = [SAN]
    d["gateway"]["health_interval_s"] = 0.5
    d["mqtt"].update(mqtt_settings)
    return gateway_id, Gateway(GatewayConfig.from_dict(d))


def test_a_fresh_broker_holds_readings_until_a_consumer_subscribes_then_all_arrive(
        tmp_path: Path, mosquitto_factory, link: VirtualSerialLink, bus: StationBus,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="watershed.gateway.forwarder")
    broker = mosquitto_factory()  # fresh: no ingest has ever subscribed here
    gateway_id, gateway = make_gateway(tmp_path, broker.port, link.gateway_path)
    watch = Watch(broker.port, gateway_id)
    subscriber = None
    gateway.start()
    try:
        sample(bus, SAN, TEXTS)
        wait_until(bus.outbox_empty, what="the readings stored and acknowledged to the station")
        wait_until(lambda: any("no ingest has subscribed on this broker yet" in r.getMessage()
                               for r in caplog.records), what="the log line saying why")
        assert f"holding {len(TEXTS)} readings" in caplog.text
        wait_until(lambda: watch.health and watch.health[-1]["queue"]["unsent"] == len(TEXTS),
                   what="health counting the held readings")
        assert watch.health[-1]["queue"]["held_for_consumer"] is True
        assert watch.readings == []  # nothing published, so nothing the broker could drop
        assert gateway.stats()["store"]["unsent"] == len(TEXTS)  # nothing marked sent
        assert gateway.forwarder.stats()["messages_published"] == 0

        subscriber = Subscriber(broker.port, gateway_id)  # subscribes, then its status
        wait_until(lambda: set(received(subscriber)) >= set(expected(bus)),
                   what="every held reading at the consumer")
        assert received(subscriber) == expected(bus)
        wait_until(lambda: gateway.stats()["store"]["unsent"] == 0, what="every PUBACK")
        wait_until(lambda: watch.health[-1]["queue"]["held_for_consumer"] is False,
                   what="health saying readings flow")
    finally:
        gateway.stop()
        watch.close()
        if subscriber is not None:
            subscriber.close()


def test_a_retained_offline_status_means_the_session_exists_and_readings_flow(
        tmp_path: Path, mosquitto_factory, link: VirtualSerialLink, bus: StationBus) -> None:
    broker = mosquitto_factory()
    gateway_id, gateway = make_gateway(tmp_path, broker.port, link.gateway_path)
    subscriber = Subscriber(broker.port, gateway_id)  # persistent session, subscribed
    subscriber.client.disconnect()  # gone: the broker queues for its session
    subscriber.client.loop_stop()
    announce_consumer(broker.port, state="offline")  # its last will, say
    gateway.start()
    try:
        sample(bus, SAN, TEXTS)
        wait_until(lambda: gateway.stats()["store"]["unsent"] == 0 and bus.outbox_empty(),
                   what="every reading published and acknowledged")
        assert gateway.forwarder.stats()["consumers"] == {"test-consumer": "offline"}
        subscriber.client.reconnect()  # back: the queued readings arrive
        subscriber.client.loop_start()
        wait_until(lambda: set(received(subscriber)) >= set(expected(bus)),
                   what="the readings queued for the offline session")
        assert received(subscriber) == expected(bus)
    finally:
        gateway.stop()
        subscriber.close()


def test_with_require_consumer_false_readings_go_without_a_status(
        tmp_path: Path, mosquitto_factory, link: VirtualSerialLink, bus: StationBus) -> None:
    broker = mosquitto_factory()
    gateway_id, gateway = make_gateway(tmp_path, broker.port, link.gateway_path,
                                       require_consumer=False)
    watch = Watch(broker.port, gateway_id)  # a consumer that announces nothing
    gateway.start()
    try:
        sample(bus, SAN, TEXTS[:3])
        wait_until(lambda: len(watch.readings) >= 1 and gateway.stats()["store"]["unsent"] == 0,
                   what="readings published at once")
    finally:
        gateway.stop()
        watch.close()


def test_the_real_ingest_releases_the_gateway_on_a_fresh_broker(
        tmp_path: Path, mosquitto_factory, influxd, fresh_influx_db: str,
        link: VirtualSerialLink, bus: StationBus) -> None:
    broker = mosquitto_factory()
    gateway_id, gateway = make_gateway(tmp_path, broker.port, link.gateway_path)
    ingest = Ingest(IngestConfig.from_dict({
        "ingest": {"id": "ingest-1", "deadletter_file": str(tmp_path / "deadletter.jsonl")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "influx": {"url": influxd.url, "database": fresh_influx_db, "flush_interval_s": 0.2,
                   "timeout_s": 2},
    }))
    gateway.start()
    try:
        sample(bus, SAN, TEXTS)
        wait_until(bus.outbox_empty, what="the readings stored")
        wait_until(lambda: gateway.forwarder.connected, what="the gateway connected")
        assert gateway.forwarder.held_for_consumer
        ingest.start()
        wait_until(lambda: not gateway.forwarder.held_for_consumer, timeout_s=20,
                   what="the ingest's retained status")
        assert ingest.stats()["subscribed"]  # its status came after its SUBACK

        def points() -> int:
            series = query(influxd.url, fresh_influx_db, "SELECT * FROM readings", epoch="s")
            return sum(len(rows) for _, rows in series)
        wait_until(lambda: points() >= len(TEXTS), timeout_s=30, what="every reading written")
        assert points() == len(TEXTS)
    finally:
        gateway.stop()
        ingest.stop()


def test_the_deployed_acl_lets_a_gateway_read_the_ingest_status(
        tmp_path: Path, mosquitto_factory, link: VirtualSerialLink, bus: StationBus) -> None:
    passwd = tmp_path / "watershed.passwd"
    passwd.touch()
    gateway_id = "gw-a"
    users = {gateway_id: "pa", "ingest": "pi", "operator": "po"}
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                       capture_output=True, timeout=30)
    broker = mosquitto_factory(allow_anonymous=False,
                               config_extra=f"password_file {passwd}\nacl_file {ACL}\n")
    d = config_dict(tmp_path, gateway_id, broker.port, link.gateway_path)
    d["link"][0]["stations"] = [SAN]
    d["mqtt"].update(username=gateway_id, password=users[gateway_id])
    gateway = Gateway(GatewayConfig.from_dict(d))
    watch = Watch(broker.port, gateway_id, "operator", users["operator"])
    ingest = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ingest-acl")
    ingest.username_pw_set("ingest", users["ingest"])
    subscribed = threading.Event()
    ingest.on_subscribe = lambda *a: subscribed.set()
    ingest.connect("127.0.0.1", broker.port)
    ingest.loop_start()
    gateway.start()
    try:
        sample(bus, SAN, TEXTS[:3])
        wait_until(lambda: gateway.stats()["store"]["unsent"] == 3, what="readings stored")
        ingest.subscribe("$share/ingest/watershed/v1/+/+/readings", qos=1)
        assert subscribed.wait(5)
        ingest.publish(Topics().ingest_status("ingest"), b'{"v":1,"state":"online"}', qos=1,
                       retain=True).wait_for_publish(5)
        wait_until(lambda: gateway.stats()["store"]["unsent"] == 0 and len(watch.readings) >= 1,
                   what="readings released by the ingest's status through the ACL")
    finally:
        gateway.stop()
        watch.close()
        ingest.loop_stop()
        ingest.disconnect()
