"""The ingest service end to end: real mosquitto in, real influxd out, read back with InfluxQL.

The broker is shared by the session, so every test gets its own topic prefix, client id and
share group: a persistent session left behind by one test never takes another test's messages.
"""

from __future__ import annotations

import dataclasses

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.mqtt import (MessageReading, ReadingsMessage, Topics, decode_readings,
                                      encode_readings)
from watershed.devservers import Influxd, Mosquitto, free_port
from watershed.hydro.influxql import query
from watershed.ingest.config import IngestConfig, StationEntry
from watershed.backoff import Backoff
from watershed.ingest.service import Ingest

pytestmark = pytest.mark.integration

VECTOR = json.loads((Path(__file__).parents[1] / "vectors" / "mqtt_v1.json").read_text()
                    )["messages"][0]
VECTOR_MESSAGE = decode_readings(VECTOR["payload"].encode())
FAST_RETRY = Backoff(initial_s=0.1, max_s=0.5)


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.02)
    return result


class Setup:
    """One test's ingest config, topics and helpers around the shared servers."""

    def __init__(self, mosquitto: Mosquitto, influx_url: str, database: str,
                 tmp_path: Path) -> None:
        tag = uuid.uuid4().hex[:10]
        self.prefix = f"t{tag}"
        self.topics = Topics(self.prefix)
        self.influx_url = influx_url
        self.database = database
        self.deadletter_file = tmp_path / "deadletter.jsonl"
        self.config = IngestConfig.from_dict({
            "ingest": {"id": f"ingest-{tag}", "group": f"g{tag}",
                       "deadletter_file": str(self.deadletter_file)},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "prefix": self.prefix},
            "influx": {"url": influx_url, "database": database, "flush_interval_s": 0.2,
                       "timeout_s": 2},
        })
        self.mosquitto = mosquitto
        self.ingests: list[Ingest] = []
        self.clients: list[mqtt.Client] = []

    def start_ingest(self, config: IngestConfig | None = None) -> Ingest:
        ingest = Ingest(config or self.config, backoff=FAST_RETRY)
        self.ingests.append(ingest)
        ingest.start()
        wait_for(lambda: ingest.stats()["subscribed"], what="ingest subscribed")
        return ingest

    def client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex}")
        client.connect(self.mosquitto.host, self.mosquitto.port)
        client.loop_start()
        self.clients.append(client)
        return client

    def publish(self, payload: bytes, topic: str | None = None) -> None:
        publisher = self.clients[0] if self.clients else self.client()
        info = publisher.publish(topic or self.topics.readings("gw-zamora", "SAN-01"), payload,
                                 qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    def subscribe_deadletters(self) -> list[dict]:
        received: list[dict] = []
        subscribed = threading.Event()
        client = self.client()
        client.on_message = lambda c, u, m: received.append(json.loads(m.payload))
        client.on_subscribe = lambda *args: subscribed.set()
        client.subscribe(self.topics.deadletter(self.config.ingest.id), qos=1)
        assert subscribed.wait(5)
        return received

    def rows(self) -> list[dict]:
        """Every point, as InfluxDB returns it (values parsed as Decimal)."""
        series = query(self.influx_url, self.database, "SELECT * FROM readings", epoch="s")
        return [row for _, rows in series for row in rows]

    def wait_for_points(self, n: int, timeout_s: float = 10.0) -> list[dict]:
        wait_for(lambda: len(self.rows()) >= n, timeout_s, f"{n} points")
        time.sleep(0.3)  # and no more arrive
        rows = self.rows()
        assert len(rows) == n
        return rows

    def close(self) -> None:
        for ingest in self.ingests:
            ingest.stop()
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


@pytest.fixture
def setup(mosquitto: Mosquitto, influxd: Influxd, fresh_influx_db: str,
          tmp_path: Path) -> Iterator[Setup]:
    s = Setup(mosquitto, influxd.url, fresh_influx_db, tmp_path)
    yield s
    s.close()


def expected_rows(msg: ReadingsMessage) -> list[dict]:
    """The points the schema (docs/contracts.md, 3) says a message becomes, as InfluxQL rows."""
    return [{"time": r.ts, "station": msg.station, "basin": msg.basin, "channel": r.channel,
             "value": r.value, "flags": r.flags, "seq": r.seq, "gateway": msg.gateway}
            for r in msg.readings]


def by_identity(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["station"], r["channel"], r["time"]): r for r in rows}


def test_vector_message_becomes_exact_points(setup: Setup) -> None:
    setup.start_ingest()
    setup.publish(VECTOR["payload"].encode(), VECTOR["topic"].replace("watershed", setup.prefix))
    rows = setup.wait_for_points(len(VECTOR_MESSAGE.readings))
    assert by_identity(rows) == by_identity(expected_rows(VECTOR_MESSAGE))
    values = {r["channel"] + str(r["time"]): r["value"] for r in rows}
    # Exact decimals, not binary floats; a missing reading has no value at all.
    assert values["stage_m1763676900"] == Decimal("1.234")
    assert values["air_temp_c1763677800"] == Decimal("-3.7")
    assert values["pressure_hpa1763677800"] == 1500
    assert values["rain_mm1763676900"] is None


def test_duplicates_stay_one_point_per_reading(setup: Setup) -> None:
    # A station heard by two gateways on purpose: the registry names both as its owners.
    both = dataclasses.replace(setup.config, stations=(
        StationEntry("SAN-01", gateways=("gw-zamora", "gw-other")),))
    ingest = setup.start_ingest(both)
    payload = VECTOR["payload"].encode()
    setup.publish(payload)
    setup.publish(payload)
    # The same readings heard by the second gateway: the same points, the gateway field updated.
    other = encode_readings(ReadingsMessage("gw-other", VECTOR_MESSAGE.station,
                                            VECTOR_MESSAGE.basin, VECTOR_MESSAGE.readings))
    setup.publish(other, setup.topics.readings("gw-other", "SAN-01"))
    wait_for(lambda: ingest.stats()["messages_written"] == 3, what="3 messages written")
    rows = setup.wait_for_points(len(VECTOR_MESSAGE.readings))
    assert {r["gateway"] for r in rows} == {"gw-other"}


def test_malformed_message_is_dead_lettered_and_the_next_is_written(setup: Setup) -> None:
    ingest = setup.start_ingest()
    deadletters = setup.subscribe_deadletters()
    bad = b'{"v":1,"gateway":"gw-zamora","station":"SAN-01"'
    forged = VECTOR["payload"].encode()  # a valid payload on another gateway's topic
    setup.publish(bad)
    setup.publish(forged, setup.topics.readings("gw-rogue", "SAN-01"))
    setup.publish(VECTOR["payload"].encode())
    setup.wait_for_points(len(VECTOR_MESSAGE.readings))
    wait_for(lambda: len(deadletters) == 2, what="2 dead letters")
    assert [d["reason"].split(":")[0] for d in deadletters] == ["not JSON", "topic"]
    assert deadletters[0]["payload"] == bad.decode()
    assert deadletters[0]["topic"] == setup.topics.readings("gw-zamora", "SAN-01")
    assert deadletters[1]["topic"] == setup.topics.readings("gw-rogue", "SAN-01")
    assert all(d["source"] == setup.config.ingest.id for d in deadletters)
    file_records = [json.loads(line) for line in setup.deadletter_file.read_text().splitlines()]
    assert file_records == deadletters
    stats = ingest.stats()
    assert (stats["invalid"], stats["messages_written"], stats["acks_sent"]) == (2, 1, 3)


def readings_message(station: str, start_ts: int, n: int) -> ReadingsMessage:
    return ReadingsMessage("gw-zamora", station, "santiago", tuple(
        MessageReading(seq=i + 1, channel="stage_m", ts=start_ts + 900 * i, mantissa=1000 + i,
                       exponent=-3, flags=0) for i in range(n)))


def test_influxd_outage_loses_nothing(mosquitto: Mosquitto,
                                      influxd_factory: Callable[..., Influxd],
                                      tmp_path: Path) -> None:
    influx = influxd_factory()
    influx.query('CREATE DATABASE "watershed"')
    setup = Setup(mosquitto, influx.url, "watershed", tmp_path)
    try:
        ingest = setup.start_ingest()
        before = readings_message("SAN-01", 1763676900, 3)
        setup.publish(encode_readings(before))
        setup.wait_for_points(3)

        influx.stop()
        during = [readings_message(f"SAN-0{i}", 1763680000, 4) for i in (2, 3)]
        for msg in during:
            setup.publish(encode_readings(msg), setup.topics.readings(msg.gateway, msg.station))
        wait_for(lambda: ingest.stats()["write_failures"] >= 3, what="failed writes")
        wait_for(lambda: ingest.stats()["received"] == 3, what="both messages received")
        time.sleep(1.5)  # down for a couple of seconds in all: time for a wrong ack to go out
        stats = ingest.stats()
        assert (stats["received"], stats["acks_sent"], stats["pending"]) == (3, 1, 2)  # held

        influx.start()
        rows = setup.wait_for_points(3 + 8)
        wait_for(lambda: ingest.stats()["acks_sent"] == 3, what="acks after the outage")
        want = [row for msg in [before, *during] for row in expected_rows(msg)]
        assert by_identity(rows) == by_identity(want)
    finally:
        setup.close()


def test_unwritten_messages_are_redelivered_after_the_ingest_dies(
        setup: Setup, tmp_path: Path) -> None:
    # First instance: InfluxDB unreachable, so nothing it receives is acked; then it goes away.
    unreachable = IngestConfig.from_dict({
        "ingest": {"id": setup.config.ingest.id, "group": setup.config.ingest.group,
                   "deadletter_file": str(tmp_path / "dl1.jsonl")},
        "mqtt": {"port": setup.mosquitto.port, "prefix": setup.prefix},
        "influx": {"url": f"http://127.0.0.1:{free_port()}", "timeout_s": 1},
    })
    first = setup.start_ingest(unreachable)
    msgs = [readings_message(f"SAN-0{i}", 1763676900, 2) for i in (1, 2)]
    for msg in msgs:
        setup.publish(encode_readings(msg), setup.topics.readings(msg.gateway, msg.station))
    wait_for(lambda: first.stats()["received"] == 2 and first.stats()["write_failures"] >= 1,
             what="first instance holding 2 messages")
    first.stop()
    assert first.stats()["acks_sent"] == 0 and first.stats()["abandoned"] == 2

    # Same client id, working InfluxDB: the broker resends the unacked messages.
    second = setup.start_ingest()
    rows = setup.wait_for_points(4)
    assert by_identity(rows) == by_identity([r for m in msgs for r in expected_rows(m)])
    wait_for(lambda: second.stats()["acks_sent"] == 2, what="acks of the redelivered messages")


def write_cli_config(path: Path, ingest_id: str, setup: Setup, deadletter_file: str | Path,
                     influx_url: str, influx_extra: str = "") -> Path:
    """A `watershed ingest --config` file for ``setup``'s broker, prefix, group and database."""
    path.write_text(f"""
[ingest]
id = "{ingest_id}"
group = "{setup.config.ingest.group}"
deadletter_file = "{deadletter_file}"
[mqtt]
port = {setup.mosquitto.port}
prefix = "{setup.prefix}"
[influx]
url = "{influx_url}"
database = "{setup.database}"
flush_interval_s = 0.2
{influx_extra}""")
    return path


def run_cli(config_path: Path) -> subprocess.Popen[str]:
    """`watershed ingest --config FILE` in its own process, as an operator runs it."""
    code = "import sys; from watershed.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "ingest", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_cli_runs_until_sigterm(setup: Setup, tmp_path: Path) -> None:
    config_path = tmp_path / "ingest.toml"
    c = setup.config
    write_cli_config(config_path, c.ingest.id, setup, c.ingest.deadletter_file, c.influx.url)
    process = run_cli(config_path)
    try:
        # Until the service has subscribed, a publish reaches nobody; resending is harmless
        # because a reading written twice is still one point.
        def written() -> bool:
            setup.publish(VECTOR["payload"].encode())
            return len(setup.rows()) == len(VECTOR_MESSAGE.readings)
        wait_for(written, what="points written by the CLI-run service")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.communicate()


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    config_path = tmp_path / "ingest.toml"
    config_path.write_text('[influx]\napi = "v3"\n')
    process = run_cli(config_path)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "influx.api" in stderr


def test_cli_refuses_an_unwritable_deadletter_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config_path = tmp_path / "ingest.toml"
    config_path.write_text(f'[ingest]\ndeadletter_file = "{blocker}/deadletter.jsonl"\n')
    process = run_cli(config_path)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "ingest.deadletter_file" in stderr


def test_broker_restart_while_holding_messages(
        mosquitto_factory: Callable[..., Mosquitto], influxd_factory: Callable[..., Influxd],
        tmp_path: Path) -> None:
    # Held (unwritten) messages survive a broker restart in its persisted session and come back
    # on the new connection; the acks of the first connection's copies must not be sent.
    broker = mosquitto_factory()
    influx = influxd_factory()
    influx.query('CREATE DATABASE "watershed"')
    setup = Setup(broker, influx.url, "watershed", tmp_path)
    try:
        ingest = setup.start_ingest()
        influx.stop()
        msgs = [readings_message(f"SAN-0{i}", 1763676900, 3) for i in (1, 2)]
        for msg in msgs:
            setup.publish(encode_readings(msg), setup.topics.readings(msg.gateway, msg.station))
        wait_for(lambda: ingest.stats()["received"] == 2, what="2 messages held")
        for client in setup.clients:
            client.disconnect()
            client.loop_stop()
        setup.clients.clear()

        broker.restart()
        wait_for(lambda: ingest.stats()["received"] == 4, what="the 2 messages redelivered")
        influx.start()
        wait_for(lambda: ingest.stats()["acks_sent"] == 2, what="acks on the new connection")
        rows = setup.wait_for_points(6)
        assert by_identity(rows) == by_identity([r for m in msgs for r in expected_rows(m)])
        stats = ingest.stats()
        assert (stats["connects"], stats["acks_dropped"]) == (2, 2)
    finally:
        setup.close()


def test_rejected_points_are_found_by_bisection_and_the_rest_written(
        setup: Setup, influxd: Influxd) -> None:
    # InfluxDB 1.x fixes a field's type per shard (a week): a float `seq` written in the week of
    # BAD makes every reading of that week unwritable, and nothing else.
    good, bad = 1763676900, 1763676900 + 14 * 86400
    from watershed.ingest.writer import V1Writer
    V1Writer(setup.influx_url, setup.database).write(
        [f"readings,basin=x,channel=x,station=X seq=1.5 {bad}"])
    ingest = setup.start_ingest()
    deadletters = setup.subscribe_deadletters()
    a = readings_message("SAN-01", good, 3)
    b = readings_message("SAN-02", bad, 2)
    mixed = ReadingsMessage("gw-zamora", "SAN-03", "santiago", (
        *readings_message("SAN-03", good, 2).readings,
        MessageReading(seq=9, channel="stage_m", ts=bad, mantissa=1, exponent=0, flags=0)))
    for msg in (a, b, mixed):
        setup.publish(encode_readings(msg), setup.topics.readings(msg.gateway, msg.station))
    wait_for(lambda: ingest.stats()["acks_sent"] == 3, what="3 acks")
    wait_for(lambda: len(deadletters) == 2, what="2 dead letters")
    rows = [r for r in setup.rows() if r["station"] != "X"]
    assert sorted((r["station"], r["time"]) for r in rows) == [
        ("SAN-01", good), ("SAN-01", good + 900), ("SAN-01", good + 1800),
        ("SAN-03", good), ("SAN-03", good + 900)]
    reasons = sorted(d["reason"] for d in deadletters)
    assert reasons[0].startswith("influx rejected 1 of 3 points (2 written): ")
    assert reasons[1].startswith("influx rejected 2 of 2 points (0 written): ")
    assert "field type conflict" in reasons[0]
    stats = ingest.stats()
    assert (stats["points_rejected"], stats["messages_written"]) == (3, 1)


def test_a_backlog_of_mixed_sizes_is_read_whole_through_the_read_ahead(setup: Setup) -> None:
    """Queued messages arrive back to back: paho's packets then straddle the chunks read ahead
    (64 KiB), and one message is larger than a chunk."""
    ingest = setup.start_ingest()
    ingest.stop()  # its persistent session queues what follows
    sizes = [1, 25, 1000, 3, 260, 25, 1, 777, 40] * 4  # readings per message; 1000: ~72 KB
    assert max(len(encode_readings(message(n, 0))) for n in sizes) > 65536
    seq = 0
    for n in sizes:
        setup.publish(encode_readings(message(n, seq)))
        seq += n
    setup.start_ingest()
    rows = setup.wait_for_points(seq, timeout_s=30)
    assert sorted(r["seq"] for r in rows) == list(range(seq))
    assert all(r["value"] == Decimal(r["seq"]) / 1000 + 1 for r in rows)


def message(readings: int, first_seq: int) -> ReadingsMessage:
    return ReadingsMessage("gw-zamora", "SAN-01", "santiago", tuple(
        MessageReading(s, "stage_m", 1763676900 + 60 * s, 1000 + s, -3, 0)
        for s in range(first_seq, first_seq + readings)))
