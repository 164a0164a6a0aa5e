"""End to end: a 1,000,000-reading gateway backlog drained into InfluxDB and confirmed; and what a
broker restart costs in extra publishes.

The gateway daemon and the ingest each as their own process (``python -m watershed.cli``), a
private mosquitto with the deployed broker settings that matter here (saves every 5 s, a receive
window of 1000 messages) and a private influxd. The clock starts when the gateway process is
spawned and stops when its store says every reading is confirmed by the ingest (none unsent,
none unconfirmed); then InfluxDB is counted. Target (issue 11): <= 15 s on this 2-core machine.

The restart run: 100 readings/s for 120 s from 10 stations through the gateway's forwarder and
store and the ingest (in this process), the broker killed (SIGKILL: it loses what it took since
its last save, and the ingest's $share subscription) and restarted at 60 s. Extra publishes =
readings published / readings produced - 1 (the replay window of contracts 1.0 cost ~25 %).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from watershed.contracts.mqtt import MessageReading
from watershed.devservers import Influxd, Mosquitto
from watershed.gateway.config import GatewayMqttConfig
from watershed.gateway.forwarder import Forwarder
from watershed.gateway.store import Store
from watershed.ingest.config import IngestConfig
from watershed.ingest.service import Ingest
from watershed.hydro.influxql import query
from watershed_sim.serial_link import VirtualSerialLink

from tests.bench.bench_gateway import (BACKLOG_READINGS, GatewayProcess, fill_backlog,
                                      process_cpu_s,
                                       gateway_config, store_counter, wait_for)
from tests.integration.test_gateway_end_to_end import _toml

BROKER_CONFIG = "max_inflight_messages 1000"
TARGET_S = 15.0
RESTART_RATE = 100  # readings/s
RESTART_RUN_S = 120
RESTART_AT_S = 60
RESTART_STATIONS = 10


def start_ingest(work: Path, broker: Mosquitto, influx: Influxd) -> GatewayProcess:
    """``watershed ingest --config FILE`` as a child process."""
    config = work / "ingest.toml"
    config.write_text(_toml({
        "ingest": {"id": "bench-e2e", "group": "bench-e2e",
                   "deadletter_file": str(work / "deadletter.jsonl")},
        "mqtt": {"host": broker.host, "port": broker.port},
        "influx": {"url": influx.url, "database": "watershed"},
    }))
    return GatewayProcess(config, service="ingest")


def drain(work: Path, broker: Mosquitto, influx: Influxd) -> dict[str, Any]:
    gateway_id = "gw-bench-e2e"
    db = work / f"{gateway_id}.db"
    fill_s = fill_backlog(db)
    influx.query('CREATE DATABASE "watershed"')
    ingest = start_ingest(work, broker, influx)
    link = VirtualSerialLink()  # a quiet link: the backlog is all there is
    config = gateway_config(work, gateway_id, broker, [link.gateway_path], 1)
    servers = {"mosquitto": broker.pid, "influxd": influx.pid}
    try:
        time.sleep(2.0)  # the ingest connected and subscribed (its own start is not timed)
        cpu_before = {name: process_cpu_s(pid) for name, pid in servers.items()}
        cpu_before["ingest"] = ingest.cpu_s()
        t_spawn = time.monotonic()
        gateway = GatewayProcess(config)
        try:
            t_done = wait_for(lambda: store_counter(db, "readings_confirmed") >= BACKLOG_READINGS,
                              300, "the whole backlog confirmed by the ingest", interval_s=0.05)
            resent = store_counter(db, "readings_resent")
            # Where the time went: CPU seconds of each process in the drain (2 cores).
            cpu = {name: process_cpu_s(pid) - cpu_before[name] for name, pid in servers.items()}
            cpu["ingest"] = ingest.cpu_s() - cpu_before["ingest"]
            cpu["gateway"] = gateway.cpu_s()
        finally:
            gateway.stop()
    finally:
        ingest.stop()
        link.close()
    series = query(influx.url, "watershed", "SELECT count(value) FROM readings")
    in_influx = sum(int(row["count"]) for _, rows in series for row in rows)
    seconds = t_done - t_spawn
    return {
        "e2e_backlog_readings": BACKLOG_READINGS,
        "e2e_fill_s": round(fill_s, 1),
        "e2e_confirmed_s": round(seconds, 2),
        "e2e_readings_per_s": round(BACKLOG_READINGS / seconds),
        "e2e_readings_in_influx": in_influx,
        "e2e_readings_resent": resent,
        "e2e_cpu_s": {name: round(v, 1) for name, v in cpu.items()},
        "target_e2e_confirmed_s": TARGET_S,
    }


def broker_restart(work: Path, broker: Mosquitto, influx: Influxd) -> dict[str, Any]:
    influx.query('CREATE DATABASE "restart"')
    ingest = Ingest(IngestConfig.from_dict({
        "ingest": {"id": "bench-restart", "group": "bench-restart",
                   "deadletter_file": str(work / "restart-deadletter.jsonl")},
        "mqtt": {"host": broker.host, "port": broker.port},
        "influx": {"url": influx.url, "database": "restart"}}))
    store = Store(work / "restart.db")
    forwarder = Forwarder("gw-restart",
                          GatewayMqttConfig(host=broker.host, port=broker.port,
                                            reconnect_min_s=0.1, reconnect_max_s=1.0),
                          store)
    ingest.start()
    forwarder.start()
    produced = 0
    try:
        started = time.monotonic()
        restarted = False
        while (elapsed := time.monotonic() - started) < RESTART_RUN_S:
            if not restarted and elapsed >= RESTART_AT_S:
                broker.kill()
                broker.restart()
                restarted = True
            due = int(elapsed * RESTART_RATE) - produced
            for i in range(due):  # one reading per station in turn, each its own seq
                seq = produced // RESTART_STATIONS + 1
                station = f"R-{produced % RESTART_STATIONS:02d}"
                store.add(station, "b", [MessageReading(seq, "stage_m", 1763676900 + seq,
                                                        1000 + seq, -3, 0)])
                produced += 1
            forwarder.notify()
            time.sleep(0.02)
        wait_for(lambda: store.counts()["readings_confirmed"] >= produced
                 and store.counts()["unconfirmed"] == 0, 120, "every reading confirmed")
        stats = forwarder.stats()
    finally:
        forwarder.stop(2)
        ingest.stop()
        store.close()
    published = stats["live_readings_published"] + stats["backlog_readings_published"]
    return {
        "restart_readings": produced,
        "restart_readings_published": published,
        "restart_extra_publishes": round(published / produced - 1, 4),
        "restart_readings_resent": stats["readings_resent"],
        "restart_note": f"{RESTART_RATE} readings/s for {RESTART_RUN_S} s, broker SIGKILLed and "
                        f"restarted at {RESTART_AT_S} s (saves every 5 s)",
    }


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "mosquitto", config_extra=BROKER_CONFIG) as broker, \
                Influxd(work / "influxd") as influx:
            figures = drain(work, broker, influx)
        with Mosquitto(work / "mosquitto-restart", config_extra=BROKER_CONFIG) as broker, \
                Influxd(work / "influxd-restart") as influx:
            figures.update(broker_restart(work, broker, influx))
    figures["note"] = ("shared 2-core VM: gateway, broker, ingest and influxd share both cores; "
                       "the time runs from the gateway's spawn to the last confirmation")
    return figures
