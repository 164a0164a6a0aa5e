"""The dev servers are real: messages go through mosquitto, points go into influxd and come back,
and what each promises to keep survives a restart (and, where it claims so, a crash)."""

from __future__ import annotations

import json
import queue
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.fixtures.mqtt import TIMEOUT_S, MqttClientFactory
from tests.fixtures.servers import InfluxdFactory, MosquittoFactory
from watershed.devservers import Influxd, MissingDependency, Mosquitto, ServerStartError

pytestmark = pytest.mark.integration


# -- InfluxDB helpers (raw v1 HTTP API, so the test does not depend on a client library) ---------

def influx_write(server: Influxd, db: str, line_protocol: str) -> None:
    url = f"{server.url}/write?" + urllib.parse.urlencode({"db": db, "precision": "s"})
    request = urllib.request.Request(url, data=line_protocol.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        assert response.status == 204


def influx_select(server: Influxd, db: str, q: str) -> list[list[object]]:
    """Rows of the single series an InfluxQL SELECT returns, read with GET /query."""
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "s"})
    with urllib.request.urlopen(f"{server.url}/query?{params}", timeout=TIMEOUT_S) as response:
        # Parse floats as text: the exact digits the server sent are what we want to check.
        body = json.loads(response.read(), parse_float=str)
    [result] = body["results"]
    assert "error" not in result, result
    [series] = result["series"]
    rows: list[list[object]] = series["values"]
    return rows


# -- mosquitto ---------------------------------------------------------------------------------

def test_mosquitto_routes_a_qos1_message(
        mosquitto: Mosquitto, mqtt_clients: MqttClientFactory) -> None:
    topic = f"test/{uuid.uuid4().hex}"
    subscriber = mqtt_clients(mosquitto.port).connect()
    subscriber.subscribe(topic, qos=1)
    publisher = mqtt_clients(mosquitto.port).connect()

    publisher.publish(topic, b"stage=1.234", qos=1)

    message = subscriber.next_message()
    assert (message.topic, message.payload, message.qos) == (topic, b"stage=1.234", 1)


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_mosquitto_keeps_queued_qos1_message_for_offline_session_across_restart(
        mosquitto_factory: MosquittoFactory, mqtt_clients: MqttClientFactory, outage: str) -> None:
    broker = mosquitto_factory()
    topic, payload = "test/queued", f"queued-{uuid.uuid4().hex}".encode()
    subscriber = mqtt_clients(broker.port, "ingest-1", clean_session=False).connect()
    subscriber.subscribe(topic, qos=1)
    subscriber.disconnect()  # session and subscription stay on the broker

    publisher = mqtt_clients(broker.port).connect()
    publisher.publish(topic, payload, qos=1)  # broker queues it for the offline subscriber
    publisher.disconnect()
    broker.save()  # saved every 5 s (as deployed) and at a clean stop; now for the kill
    assert payload in broker.persistence_file.read_bytes()

    port = broker.port
    getattr(broker, outage)()
    assert not broker.running
    broker.restart()
    assert broker.port == port

    # Same client id, clean_session=False, and no new SUBSCRIBE: only the restored session
    # can deliver the message.
    subscriber = mqtt_clients(broker.port, "ingest-1", clean_session=False).connect()
    assert subscriber.session_present is True
    message = subscriber.next_message()
    assert (message.topic, message.payload, message.qos) == (topic, payload, 1)


def test_mosquitto_killed_before_its_next_save_loses_what_it_acknowledged_since(
        mosquitto_factory: MosquittoFactory, mqtt_clients: MqttClientFactory) -> None:
    # The loss gateways cover by keeping each reading until an ingest confirms it (contracts.md
    # 2, end to end); here a save only when asked.
    broker = mosquitto_factory(autosave_s=3600)
    topic = "test/unsaved"
    subscriber = mqtt_clients(broker.port, "ingest-1", clean_session=False).connect()
    subscriber.subscribe(topic, qos=1)
    subscriber.disconnect()
    broker.save()  # the session is on disk
    publisher = mqtt_clients(broker.port).connect()
    publisher.publish(topic, b"acknowledged, not saved", qos=1)
    publisher.disconnect()
    broker.kill()
    broker.restart()
    subscriber = mqtt_clients(broker.port, "ingest-1", clean_session=False).connect()
    assert subscriber.session_present is True
    with pytest.raises(queue.Empty):
        subscriber.messages.get(timeout=1.0)


def test_mosquitto_config_extra_is_applied(mosquitto_factory: MosquittoFactory) -> None:
    broker = mosquitto_factory(config_extra="max_packet_size 1000\n")
    assert "max_packet_size 1000" in broker.config_path.read_text()


def test_mosquitto_bad_config_fails_fast_with_log_tail(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, config_extra="no_such_option true")
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="no_such_option"):
        broker.start()
    assert time.monotonic() - started < TIMEOUT_S
    assert not broker.running


# -- influxd -----------------------------------------------------------------------------------

def test_influxd_returns_the_exact_value_written(influxd: Influxd, fresh_influx_db: str) -> None:
    influx_write(influxd, fresh_influx_db, "stage,station=san value=1.234 1700000000")

    rows = influx_select(influxd, fresh_influx_db, 'SELECT "value" FROM "stage"')

    assert rows == [[1700000000, "1.234"]]


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_influxd_keeps_acknowledged_points_across_restart(
        influxd_factory: InfluxdFactory, outage: str) -> None:
    server = influxd_factory()
    server.query('CREATE DATABASE "keep"')
    influx_write(server, "keep", "stage,station=san value=2.5 1700000000")

    port = server.port
    getattr(server, outage)()  # kill: the 204 came after the WAL was fsynced, so it must survive
    assert not server.running
    server.restart()

    assert server.port == port
    assert influx_select(server, "keep", 'SELECT "value" FROM "stage"') == [[1700000000, "2.5"]]


def test_influxd_query_raises_on_influxql_error(influxd: Influxd) -> None:
    with pytest.raises(RuntimeError, match="failed"):
        influxd.query("SELEKT nonsense")


# -- common ------------------------------------------------------------------------------------

@pytest.mark.parametrize("server_class, package", [(Mosquitto, "mosquitto"), (Influxd, "influxdb")])
def test_missing_binary_raises_missing_dependency_with_install_hint(
        tmp_path: Path, server_class: type[Mosquitto] | type[Influxd], package: str) -> None:
    server = server_class(tmp_path, binary=str(tmp_path / "not-installed"))
    with pytest.raises(MissingDependency) as raised:
        server.start()
    assert str(raised.value).startswith(
        f"{server_class.name} not found: run `make deps` (installs Debian package {package})")
    assert not server.running
