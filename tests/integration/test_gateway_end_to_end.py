"""The gateway end to end: stations simulated in CPython on a virtual serial bus, a real
mosquitto, and a paho subscriber that must receive every reading exactly as the station took it.

The simulated stations (watershed_sim.py_station) speak the contract codec and behave as the
contract asks of firmware: answer POLL, send the oldest unacknowledged readings first, delete a
reading only when an ACK covers it, resend the rest, answer TIME with RESULT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.channels import channel_name
from watershed.contracts.mqtt import MessageReading, Topics, decode_readings
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import Gateway
from watershed_sim.py_station import PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink


pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# Readings whose decimal text must survive unchanged: trailing zeros, negatives, integers.
TEXTS = ["+1.234", "1.50", "-3.7", "1013.25", "0.000", "1500", "-0.001", "12345.6789", None]


# --- the consumer ---------------------------------------------------------------------


class Subscriber:
    """A paho consumer with a persistent session, as the ingest would be, for one gateway; like
    the ingest it announces itself with a retained ingest status once subscribed."""

    def __init__(self, port: int, gateway_id: str) -> None:
        self.payloads: list[bytes] = []
        self.status: bytes | None = None
        self._lock = threading.Lock()
        self._topics = [Topics().readings(gateway_id, "+"), Topics().status(gateway_id)]
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{gateway_id}",
                                  clean_session=False)
        self.client.on_connect = self._on_connect
        self._unsubscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_unsubscribe = lambda *a: self._unsubscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert self._subscribed.wait(5), "subscriber could not subscribe"

    def _on_connect(self, client: mqtt.Client, userdata, flags, reason_code, properties) -> None:
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_message(self, client: mqtt.Client, userdata, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            if message.topic == self._topics[1]:
                self.status = message.payload
            else:
                self.payloads.append(message.payload)

    def readings(self) -> list[tuple[str, str, MessageReading]]:
        """(station, basin, reading) of every reading received, duplicates included."""
        with self._lock:
            messages = [decode_readings(p) for p in self.payloads]
        return [(m.station, m.basin, r) for m in messages for r in m.readings]

    def keys(self) -> list[tuple[str, int]]:
        return [(station, r.seq) for station, _, r in self.readings()]

    def gateway_state(self) -> str | None:
        with self._lock:
            return None if self.status is None else json.loads(self.status)["state"]

    def close(self) -> None:
        # Leave no subscription behind in the persistent session on a shared broker.
        self.client.unsubscribe(self._topics)
        self._unsubscribed.wait(2)
        self.client.loop_stop()
        self.client.disconnect()


# --- fixtures -------------------------------------------------------------------------

SAN = 3
UNREGISTERED = 9


@pytest.fixture
def broker(request: pytest.FixtureRequest, mosquitto_factory):
    """The session's shared broker, or a private one (``indirect`` param "private") for a test
    that stops it."""
    if getattr(request, "param", "shared") == "private":
        return mosquitto_factory()
    return request.getfixturevalue("mosquitto")


@pytest.fixture
def gateway_id() -> str:
    return f"gw-{uuid.uuid4().hex[:8]}"  # topics and sessions of its own on a shared broker


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as vl:
        yield vl


@pytest.fixture
def bus(link: VirtualSerialLink) -> Iterator[StationBus]:
    b = StationBus(link.station_path, PyStation(SAN, "SAN-01"),
                   PyStation(UNREGISTERED, "UNREG-9"))
    yield b
    b.close()


@pytest.fixture
def subscriber(broker, gateway_id: str) -> Iterator[Subscriber]:
    s = Subscriber(broker.port, gateway_id)
    yield s
    s.close()


def config_dict(tmp_path: Path, gateway_id: str, mqtt_port: int, serial_port: str) -> dict:
    return {
        # The test machine's clock may not be NTP-synchronised: trusted here so TIME goes out.
        "gateway": {"id": gateway_id, "store": str(tmp_path / "gateway.db"),
                    "time_source": "assume-synchronised",
                    "health_file": str(tmp_path / "gateway-health.json")},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "keepalive_s": 5,
                 "max_readings_per_message": 4, "reconnect_min_s": 0.05, "reconnect_max_s": 0.3},
        "link": [{"port": serial_port, "stations": [SAN, UNREGISTERED], "poll_interval_s": 0.05,
                  "reply_timeout_s": 0.5}],
        "station": [{"id": "SAN-01", "address": SAN, "basin": "santiago",
                     "channels": {"128": "stage_backup_m"}}],
    }


@pytest.fixture
def gateway_config(tmp_path: Path, gateway_id: str, broker, link: VirtualSerialLink
                   ) -> GatewayConfig:
    return GatewayConfig.from_dict(config_dict(tmp_path, gateway_id, broker.port,
                                               link.gateway_path))


@pytest.fixture
def gateway(gateway_config: GatewayConfig) -> Iterator[Gateway]:
    gw = Gateway(gateway_config)
    gw.start()
    yield gw
    gw.stop()


def wait_until(condition: Callable[[], bool], timeout_s: float = 10, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


REGISTERED_CHANNELS = {"SAN-01": {128: "stage_backup_m"}}


def expected(bus: StationBus) -> dict[tuple[str, int], tuple[str, int, int, int, int]]:
    """What each station produced: (channel, ts, mantissa, exponent, flags) per (station, seq)."""
    with bus.lock:
        return {(s.station_id, r.seq): (channel_name(r.channel,
                                                     REGISTERED_CHANNELS.get(s.station_id)),
                                        r.time, r.mantissa, r.exponent, r.flags)
                for s in bus.stations.values() for r in s.produced}


def received(subscriber: Subscriber) -> dict[tuple[str, int], tuple[str, int, int, int, int]]:
    return {(station, r.seq): (r.channel, r.ts, r.mantissa, r.exponent, r.flags)
            for station, _, r in subscriber.readings()}


def sample(bus: StationBus, addr: int, texts: list[str | None], channel: int = 1) -> None:
    with bus.lock:
        bus.stations[addr].sample(texts, channel)


def all_delivered(bus: StationBus, subscriber: Subscriber) -> Callable[[], bool]:
    return lambda: set(received(subscriber)) >= set(expected(bus))


# --- tests ----------------------------------------------------------------------------


def test_every_reading_reaches_the_subscriber_exactly(bus: StationBus, gateway: Gateway,
                                                      subscriber: Subscriber) -> None:
    sample(bus, SAN, TEXTS)
    sample(bus, SAN, ["2.5", "0.75"], channel=128)
    sample(bus, UNREGISTERED, ["7.25", None], channel=129)
    wait_until(all_delivered(bus, subscriber), what="every reading at the subscriber")
    assert received(subscriber) == expected(bus)
    assert sorted(subscriber.keys()) == sorted(expected(bus))  # each exactly once
    # The exact decimal text is in the JSON itself, not just an equal float.
    payloads = b"".join(subscriber.payloads).decode()
    for text in ('"value":1.234,', '"value":1.50,', '"value":-3.7,', '"value":0.000,',
                 '"value":1500,', '"value":12345.6789,', '"value":null,"flags":1'):
        assert text in payloads
    basins = {station: basin for station, basin, _ in subscriber.readings()}
    assert basins == {"SAN-01": "santiago", "UNREG-9": "unassigned"}
    wait_until(bus.outbox_empty, what="the stations' outboxes to be acknowledged")
    with bus.lock:
        assert bus.stations[SAN].clock_ms is not None  # the gateway pushed TIME after HELLO
    wait_until(lambda: subscriber.gateway_state() == "online", what="online status")
    stats = gateway.stats()
    link_stats = stats["links"][gateway.config.links[0].port]
    assert link_stats["readings_new"] == len(expected(bus))
    assert link_stats["frame_errors"] == {} and link_stats["hellos"] == 2
    wait_until(lambda: gateway.stats()["store"]["unsent"] == 0, what="every PUBACK")


@pytest.mark.parametrize("broker", ["private"], indirect=True)
def test_a_broker_outage_loses_nothing(bus: StationBus, gateway: Gateway, subscriber: Subscriber,
                                       broker) -> None:
    sample(bus, SAN, TEXTS[:4])
    wait_until(all_delivered(bus, subscriber), what="the first readings")
    broker.stop()
    wait_until(lambda: not gateway.forwarder.connected, what="the gateway to notice")
    sample(bus, SAN, TEXTS[4:])
    sample(bus, UNREGISTERED, ["1.1", "2.2", "3.3"])
    # With the broker down the gateway still stores and ACKs: the stations' flash is freed.
    wait_until(bus.outbox_empty, what="the readings to be stored and acknowledged")
    assert gateway.stats()["store"]["unsent"] == len(TEXTS[4:]) + 3
    broker.start()
    wait_until(all_delivered(bus, subscriber), what="the backlog after the outage")
    assert received(subscriber) == expected(bus)
    wait_until(lambda: gateway.stats()["store"]["unsent"] == 0, what="PUBACKs for the backlog")


def test_a_gateway_restart_on_the_same_store_loses_and_repeats_nothing(
        bus: StationBus, gateway_config: GatewayConfig, subscriber: Subscriber) -> None:
    first = Gateway(gateway_config)
    first.start()
    sample(bus, SAN, TEXTS[:5])
    wait_until(all_delivered(bus, subscriber), what="readings through the first gateway")
    first.stop()
    # While the gateway is down the stations keep measuring, and one of them reboots.
    sample(bus, SAN, TEXTS[5:])
    sample(bus, UNREGISTERED, ["4.4", "5.5"])
    with bus.lock:
        bus.stations[SAN].reboot()
    second = Gateway(gateway_config)
    second.start()
    try:
        wait_until(all_delivered(bus, subscriber), what="readings through the second gateway")
        wait_until(bus.outbox_empty, what="the outboxes to be acknowledged")
    finally:
        second.stop()
    assert received(subscriber) == expected(bus)
    assert sorted(subscriber.keys()) == sorted(expected(bus))  # a clean stop repeats nothing


def test_the_daemon_process_stops_cleanly_on_sigterm_and_its_will_says_offline(
        tmp_path: Path, bus: StationBus, link: VirtualSerialLink, broker, gateway_id: str,
        subscriber: Subscriber) -> None:
    config_file = tmp_path / "gateway.toml"
    d = config_dict(tmp_path, gateway_id, broker.port, link.gateway_path)
    config_file.write_text(_toml(d))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "gateway"), str(REPO / "hardware"), str(REPO)])}
    command = [sys.executable, "-c",
               "import sys; from watershed.gateway.daemon import run; sys.exit(run(sys.argv[1]))",
               str(config_file)]

    def start() -> subprocess.Popen:
        # Logs go to stdout (journald), in logfmt.
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    process = start()
    try:
        sample(bus, SAN, TEXTS[:3])
        wait_until(all_delivered(bus, subscriber), what="readings from the daemon")
        wait_until(lambda: subscriber.gateway_state() == "online", what="online status")
        process.kill()  # a crash: the broker publishes the last will
        process.wait(5)
        wait_until(lambda: subscriber.gateway_state() == "offline", what="the last will")
        process = start()
        sample(bus, SAN, TEXTS[3:6])
        wait_until(all_delivered(bus, subscriber), what="readings after the crash")
        wait_until(lambda: subscriber.gateway_state() == "online", what="online again")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, output
        assert 'level=info logger=watershed.gateway.daemon msg="received SIGTERM, stopping"' in (
            output)
        wait_until(lambda: subscriber.gateway_state() == "offline", what="offline on stop")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert set(subscriber.keys()) == set(expected(bus))  # a crash may repeat, never lose


def _toml(d: dict) -> str:
    """Just enough TOML for config_dict()."""
    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)
    lines = []
    for section, body in d.items():
        for table in body if isinstance(body, list) else [body]:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines += [f"{k} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
