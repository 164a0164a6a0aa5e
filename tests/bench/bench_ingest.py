"""Ingest throughput and latency against its own mosquitto and influxd (watershed.devservers).

- ``ingest_points_per_s``: a backlog of readings messages queued in the broker for the ingest's
  persistent session, drained MQTT in → InfluxDB confirmed (every message acked).
- ``raw_post_points_per_s``: the same line protocol POSTed in bulk (5000 lines, gzip) straight
  to the same influxd in the same run, with the ingest's own client (V1Writer: one kept-alive
  connection), just before and just after the drain: the ceiling; ``ratio`` = ingest / raw
  (target ≥ 0.9). ROUNDS rounds, each on new servers; medians, and every round's ratio.
- ``drain_cpu_s`` / ``raw_cpu_s``: CPU seconds each process spent in a drain and in a raw run
  (median round), which says where a drain's time goes on this machine's cores.
- ``broker_busy_after_drain_s``: how long mosquitto stays busy once the ingest has sent its
  last ack (the broker still processing the acks), with its CPU seconds in that time.
- ``with_per_change_saves``: the same through a broker that saves its store after every change
  (``autosave_on_changes``), the setting deploy/mosquitto/watershed.conf had before: why it
  now saves every 5 s. A diagnostic, DIAGNOSTIC_ROUNDS rounds.
- ``latency_ms``: publish one message → its points answer a query, p50/p99, at light load.
- ``ingest_x2_points_per_s``: the same backlog drained by two ingest processes sharing the
  subscription (``$share/<group>/…``), into a database of its own; every point stored once.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts.mqtt import MessageReading, ReadingsMessage, Topics, encode_readings
from watershed.devservers import Influxd, Mosquitto
from watershed.hydro.influxql import query
from watershed.ingest.config import IngestConfig
from watershed.ingest.messages import readings_lines
from watershed.ingest.metrics import percentile
from watershed.ingest.service import Ingest
from watershed.ingest.writer import V1Writer

MESSAGES = 8000  # 200,000 points: a drain long enough (~1 s) to measure steadily
READINGS_PER_MESSAGE = 25  # a gateway's batch: several stations' channels for a few periods
LATENCY_SAMPLES = 100
BATCH_LINES = 5000
# The broker setting deploy/mosquitto/watershed.conf recommends: the ingest acks a message only
# once written, so the broker's window of unacked messages per subscriber (mosquitto's default
# 20 for MQTT 3.1.1 clients) must hold a few write batches, or the ingest waits on the broker.
BROKER_CONFIG = "max_inflight_messages 1000"
T0 = 1763676900
ROUNDS = 5
DIAGNOSTIC_ROUNDS = 3
DIAGNOSTIC_MESSAGES = 2000
PER_CHANGE_SAVES = "autosave_on_changes true\nautosave_interval 1"
CHANNELS = ("stage_m", "rain_mm", "water_temp_c", "air_temp_c", "battery_v")


def backlog(prefix: str, messages: int = MESSAGES) -> list[tuple[str, bytes]]:
    topics = Topics(prefix)
    out = []
    for m in range(messages):
        station = f"ST-{m % 50:02d}"
        readings = tuple(
            MessageReading(seq=m * READINGS_PER_MESSAGE + i, channel=CHANNELS[i % 5],
                           ts=T0 + 900 * (m // 50 * 5 + i // 5), mantissa=1000 + m + i,
                           exponent=-3, flags=0) for i in range(READINGS_PER_MESSAGE))
        msg = ReadingsMessage("gw-bench", station, "santiago", readings)
        out.append((topics.readings("gw-bench", station), encode_readings(msg)))
    return out


class CpuMeter:
    """CPU seconds (user + system) used by the servers and by this process since made."""

    def __init__(self, servers: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in servers.items() if pid is not None}
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        used = {}
        for name, pid in self._pids.items():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        me = resource.getrusage(resource.RUSAGE_SELF)
        used["bench_process"] = me.ru_utime + me.ru_stime
        return used

    def used(self) -> dict[str, float]:
        now = self._now()
        return {name: round(now[name] - self._start[name], 3) for name in now}


def settle(servers: dict[str, int | None], timeout_s: float = 20.0) -> None:
    """Wait until the servers are idle (influxd compacts and snapshots in the background, mosquitto
    saves its store), so that a timed run does not pay for the one before."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meter = CpuMeter(servers)
        time.sleep(0.3)
        used = meter.used()
        if max(used.get(name, 0.0) for name in servers) <= 0.01:
            return


def raw_post_rate(influx: Influxd, lines: list[str], database: str = "raw") -> float:
    """Into ``database``, made beforehand."""
    writer = V1Writer(influx.url, database)
    started = time.perf_counter()
    for at in range(0, len(lines), BATCH_LINES):
        writer.write(lines[at:at + BATCH_LINES])
    elapsed = time.perf_counter() - started
    writer.close()
    return len(lines) / elapsed


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


def queue_backlog(broker: Mosquitto, configs: list[IngestConfig],
                  messages: list[tuple[str, bytes]]) -> None:
    """Create each ingest's persistent session, leave, and queue the backlog in the broker."""
    for config in configs:
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
    settle({"mosquitto": broker.pid})  # done queueing (and saving)


def ingest_rate(config: IngestConfig, messages: list[tuple[str, bytes]],
                points: int) -> tuple[float, dict]:
    """The backlog queued for ``config``'s session drained by a new ingest."""
    ingest = Ingest(config)
    started = time.perf_counter()
    ingest.start()
    wait(lambda: ingest.stats()["acks_sent"] >= len(messages), 120, "backlog drained")
    elapsed = time.perf_counter() - started
    status = ingest.status()
    ingest.stop()
    return points / elapsed, status


class _Process:
    """An ingest in a process of its own (``_child``): loaded, it waits for the word to start,
    then reports its acks sent on stdout until told to stop."""

    def __init__(self, config: dict) -> None:
        self.acks = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.bench_ingest", "child", json.dumps(config)],
            cwd=Path(__file__).parents[2], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.acks = int(line)

    def tell(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.tell("stop")
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _child(config_json: str) -> None:
    ingest = Ingest(IngestConfig.from_dict(json.loads(config_json)))
    print("ready", flush=True)
    sys.stdin.readline()  # go
    ingest.start()
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    last = -1
    while not stop.wait(0.005):
        acks = ingest.stats()["acks_sent"]
        if acks != last:
            print(acks, flush=True)
            last = acks
    ingest.stop()


def shared_rate(broker: Mosquitto, configs: list[dict], messages: list[tuple[str, bytes]],
                points: int) -> float:
    """The backlog drained by len(configs) ingest processes of one group."""
    queue_backlog(broker, [IngestConfig.from_dict(c) for c in configs], messages)
    processes = [_Process(c) for c in configs]
    try:
        started = time.perf_counter()
        for p in processes:
            p.tell("go")
        wait(lambda: sum(p.acks for p in processes) >= len(messages), 120, "backlog drained")
        return points / (time.perf_counter() - started)
    finally:
        for p in processes:
            p.close()


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


def ingest_config(tmp: str, broker: Mosquitto, influx: Influxd, database: str) -> IngestConfig:
    influx.query(f'CREATE DATABASE "{database}"')
    return IngestConfig.from_dict({
        "ingest": {"id": "bench-ingest", "group": "bench",
                   "deadletter_file": str(Path(tmp) / "deadletter.jsonl")},
        "mqtt": {"port": broker.port, "prefix": "bench"},
        "influx": {"url": influx.url, "database": database, "batch_size": BATCH_LINES},
    })


def rounds(workdir: Path, broker_config: str, count: int = ROUNDS,
           messages_count: int = MESSAGES) -> dict:
    """ROUNDS times, each on a new mosquitto and influxd (a server that has taken earlier runs
    is slower, and unevenly so): the backlog queued, the raw POST, the ingest's drain of the
    same points, the raw POST again; the round's raw rate is the mean of the two around the
    drain (this shared machine's speed drifts). Medians, every round's ratio, and the CPU of the
    median round."""
    messages = backlog("bench", messages_count)
    topics = Topics("bench")
    lines = [line for topic, payload in messages
             for line in readings_lines(topics, topic, payload)]
    results: list[dict[str, Any]] = []
    for n in range(count):
        with Mosquitto(workdir / f"mosquitto-{n}", config_extra=broker_config) as broker, \
                Influxd(workdir / f"influxd-{n}") as influx:
            servers = {"influxd": influx.pid, "mosquitto": broker.pid}
            influx.query('CREATE DATABASE "raw"')
            influx.query('CREATE DATABASE "raw_after"')
            config = ingest_config(str(workdir), broker, influx, "watershed")
            queue_backlog(broker, [config], messages)
            settle(servers)
            meter = CpuMeter(servers)
            raw_before = raw_post_rate(influx, lines)
            raw_cpu = meter.used()
            settle(servers)
            meter = CpuMeter(servers)
            rate, status = ingest_rate(config, messages, len(lines))
            drain_cpu = meter.used()
            drain_cpu["ingest"] = drain_cpu.pop("bench_process")  # it runs in this process
            meter = CpuMeter(servers)
            began = time.monotonic()
            settle(servers, timeout_s=60)
            busy_s = time.monotonic() - began - 0.3  # settle's last look: idle
            busy_cpu = meter.used()["mosquitto"]
            raw = (raw_before + raw_post_rate(influx, lines, "raw_after")) / 2
            stored = query(influx.url, "watershed", "SELECT count(value) FROM readings")
            assert stored[0][1][0]["count"] == len(lines), "the ingest lost points"
        results.append({"raw": raw, "ingest": rate, "ratio": rate / raw, "status": status,
                        "raw_cpu": raw_cpu, "drain_cpu": drain_cpu, "busy_s": busy_s,
                        "busy_cpu": busy_cpu})
    median = sorted(results, key=lambda r: r["ratio"])[len(results) // 2]
    return {"ingest_points_per_s": round(statistics.median(r["ingest"] for r in results)),
            "raw_post_points_per_s": round(statistics.median(r["raw"] for r in results)),
            "ratio": round(median["ratio"], 3),
            "ratio_rounds": [round(r["ratio"], 3) for r in results],
            "drain_cpu_s": median["drain_cpu"], "raw_cpu_s": median["raw_cpu"],
            "broker_busy_after_drain_s": {"wall": round(median["busy_s"], 2),
                                          "mosquitto_cpu": median["busy_cpu"]},
            "status": median["status"]}


def run() -> dict:
    messages = backlog("bench")
    points = len(messages) * READINGS_PER_MESSAGE
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        durable = rounds(Path(tmp) / "durable", BROKER_CONFIG)
        # Fewer messages: queueing them costs the old setting time quadratic in their number.
        per_change = rounds(Path(tmp) / "per-change", BROKER_CONFIG + "\n" + PER_CHANGE_SAVES,
                            DIAGNOSTIC_ROUNDS, DIAGNOSTIC_MESSAGES)
        with Mosquitto(Path(tmp) / "mosquitto", config_extra=BROKER_CONFIG) as broker, \
                Influxd(Path(tmp) / "influxd") as influx:
            latencies = latency_ms(broker, influx, ingest_config(tmp, broker, influx, "latency"))
            influx.query('CREATE DATABASE "shared"')
            configs = [{"ingest": {"id": f"bench-shared-{n}", "group": "bench-shared",
                                   "deadletter_file": str(Path(tmp) / f"deadletter-{n}.jsonl")},
                        "mqtt": {"port": broker.port, "prefix": "bench"},
                        "influx": {"url": influx.url, "database": "shared",
                                   "batch_size": BATCH_LINES}} for n in (1, 2)]
            rate_x2 = shared_rate(broker, configs, messages, points)
            stored = query(influx.url, "shared", "SELECT count(value) FROM readings")
            assert stored[0][1][0]["count"] == points, "two ingests lost points"
    status = durable.pop("status")
    per_change.pop("status")
    return {
        "messages": MESSAGES, "points": points, "rounds": ROUNDS,
        "diagnostic_messages": DIAGNOSTIC_MESSAGES,
        **durable,
        "target_ratio": 0.9,
        "ingest_batch_points_mean": status["window"]["batch_points"]["mean"],
        "ingest_write_latency_ms_p50": status["window"]["latency_ms"]["p50"],
        "ingest_write_latency_ms_p99": status["window"]["latency_ms"]["p99"],
        "latency_publish_to_queryable_ms_p50": round(percentile(latencies, 50), 1),
        "latency_publish_to_queryable_ms_p99": round(percentile(latencies, 99), 1),
        "latency_samples": len(latencies),
        "ingest_x2_points_per_s": round(rate_x2),
        "ingest_x2_ratio": round(rate_x2 / durable["raw_post_points_per_s"], 3),
        "with_per_change_saves": per_change,
    }


if __name__ == "__main__" and sys.argv[1:2] == ["child"]:
    _child(sys.argv[2])
