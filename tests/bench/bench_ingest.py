"""Ingest throughput and latency against its own mosquitto and influxd (watershed.devservers).

- ``ingest_points_per_s``: a backlog of readings messages queued in the broker for the ingest's
  persistent session, drained MQTT in → InfluxDB confirmed (every message acked).
- ``raw_post_points_per_s``: the same line protocol POSTed in bulk (5000 lines, gzip) straight
  to the same influxd in the same run: the ceiling; ``ratio`` = ingest / raw (target ≥ 0.9).
- ``latency_ms``: publish one message → its points answer a query, p50/p99, at light load.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.mqtt import MessageReading, ReadingsMessage, Topics, encode_readings
from watershed.devservers import Influxd, Mosquitto
from watershed.influxql import query
from watershed.ingest.config import IngestConfig
from watershed.ingest.messages import readings_lines
from watershed.ingest.metrics import percentile
from watershed.ingest.service import Ingest
from watershed.ingest.writer import V1Writer

MESSAGES = 2000
READINGS_PER_MESSAGE = 25  # a gateway's batch: several stations' channels for a few periods
LATENCY_SAMPLES = 100
BATCH_LINES = 5000
# The broker setting deploy/mosquitto/watershed.conf recommends: the ingest acks a message only
# once written, so the broker's window of unacked messages per subscriber (mosquitto's default
# 20 for MQTT 3.1.1 clients) must hold a few write batches, or the ingest waits on the broker.
BROKER_CONFIG = "max_inflight_messages 1000"
T0 = 1763676900
CHANNELS = ("stage_m", "rain_mm", "water_temp_c", "air_temp_c", "battery_v")


def backlog(prefix: str) -> list[tuple[str, bytes]]:
    topics = Topics(prefix)
    out = []
    for m in range(MESSAGES):
        station = f"ST-{m % 50:02d}"
        readings = tuple(
            MessageReading(seq=m * READINGS_PER_MESSAGE + i, channel=CHANNELS[i % 5],
                           ts=T0 + 900 * (m // 50 * 5 + i // 5), mantissa=1000 + m + i,
                           exponent=-3, flags=0) for i in range(READINGS_PER_MESSAGE))
        msg = ReadingsMessage("gw-bench", station, "santiago", readings)
        out.append((topics.readings("gw-bench", station), encode_readings(msg)))
    return out


def raw_post_rate(influx: Influxd, lines: list[str]) -> float:
    influx.query('CREATE DATABASE "raw"')
    writer = V1Writer(influx.url, "raw")
    started = time.perf_counter()
    for at in range(0, len(lines), BATCH_LINES):
        writer.write(lines[at:at + BATCH_LINES])
    return len(lines) / (time.perf_counter() - started)


def publisher(broker: Mosquitto) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex}")
    client.max_inflight_messages_set(200)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def wait(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.005)


def ingest_rate(broker: Mosquitto, influx: Influxd, config: IngestConfig,
                messages: list[tuple[str, bytes]], points: int) -> tuple[float, dict]:
    # Create the persistent session, leave, queue the backlog in the broker, then drain it.
    first = Ingest(config)
    first.start()
    wait(lambda: first.stats()["subscribed"], 20, "subscribed")
    first.stop()
    client = publisher(broker)
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    time.sleep(0.5)  # mosquitto persists the queue (autosave_on_changes)

    ingest = Ingest(config)
    started = time.perf_counter()
    ingest.start()
    wait(lambda: ingest.stats()["acks_sent"] >= len(messages), 120, "backlog drained")
    elapsed = time.perf_counter() - started
    status = ingest.status()
    ingest.stop()
    return points / elapsed, status


def latency_ms(broker: Mosquitto, influx: Influxd, config: IngestConfig) -> list[float]:
    ingest = Ingest(config)
    ingest.start()
    wait(lambda: ingest.stats()["subscribed"], 20, "subscribed")
    client = publisher(broker)
    topics = Topics(config.mqtt.prefix)
    samples = []
    try:
        for n in range(LATENCY_SAMPLES):
            station = f"LAT-{n:03d}"
            msg = ReadingsMessage("gw-bench", station, "santiago", tuple(
                MessageReading(n, "stage_m", T0 + 900 * i, 1234, -3, 0) for i in range(4)))
            q = f"SELECT count(value) FROM readings WHERE station = '{station}'"
            started = time.perf_counter()
            client.publish(topics.readings("gw-bench", station), encode_readings(msg), qos=1)
            wait(lambda: query(influx.url, config.influx.database, q), 10, "queryable")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        client.disconnect()
        client.loop_stop()
        ingest.stop()
    return sorted(samples)


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        with Mosquitto(Path(tmp) / "mosquitto", config_extra=BROKER_CONFIG) as broker, Influxd(Path(tmp) / "influxd") as influx:
            influx.query('CREATE DATABASE "watershed"')
            config = IngestConfig.from_dict({
                "ingest": {"id": "bench-ingest", "group": "bench",
                           "deadletter_file": str(Path(tmp) / "deadletter.jsonl")},
                "mqtt": {"port": broker.port, "prefix": "bench"},
                "influx": {"url": influx.url, "database": "watershed",
                           "batch_size": BATCH_LINES},
            })
            messages = backlog("bench")
            topics = Topics("bench")
            lines = [line for topic, payload in messages
                     for line in readings_lines(topics, topic, payload)]
            raw = raw_post_rate(influx, lines)
            rate, status = ingest_rate(broker, influx, config, messages, len(lines))
            stored = query(influx.url, "watershed", "SELECT count(value) FROM readings")
            assert stored[0][1][0]["count"] == len(lines), "the ingest lost points"
            latencies = latency_ms(broker, influx, config)
    return {
        "messages": MESSAGES, "points": len(lines),
        "ingest_points_per_s": round(rate),
        "raw_post_points_per_s": round(raw),
        "ratio": round(rate / raw, 3),
        "target_ratio": 0.9,
        "ingest_batch_points_mean": status["window"]["batch_points"]["mean"],
        "ingest_write_latency_ms_p50": status["window"]["latency_ms"]["p50"],
        "ingest_write_latency_ms_p99": status["window"]["latency_ms"]["p99"],
        "latency_publish_to_queryable_ms_p50": round(percentile(latencies, 50), 1),
        "latency_publish_to_queryable_ms_p99": round(percentile(latencies, 99), 1),
        "latency_samples": len(latencies),
    }
