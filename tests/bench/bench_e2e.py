"""End to end: a 1,000,000-reading gateway backlog drained into InfluxDB and confirmed.

The gateway daemon and the ingest each as their own process (``python -m watershed.cli``), a
private mosquitto with the deployed broker settings that matter here (saves every 5 s, a receive
window of 1000 messages) and a private influxd. The clock starts when the gateway process is
spawned and stops when its store says every reading is confirmed by the ingest (none unsent,
none unconfirmed); then InfluxDB is counted. Target (issue 11): <= 15 s on this 2-core machine.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from watershed.devservers import Influxd, Mosquitto
from watershed.hydro.influxql import query
from watershed_sim.serial_link import VirtualSerialLink

from tests.bench.bench_gateway import (BACKLOG_READINGS, GatewayProcess, fill_backlog,
                                       gateway_config, store_counter, wait_for)
from tests.integration.test_gateway_end_to_end import _toml

BROKER_CONFIG = "max_inflight_messages 1000"
TARGET_S = 15.0


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
    try:
        time.sleep(2.0)  # the ingest connected and subscribed (its own start is not timed)
        t_spawn = time.monotonic()
        gateway = GatewayProcess(config)
        try:
            t_acked = wait_for(lambda: store_counter(db, "readings_sent") >= BACKLOG_READINGS,
                               300, "the whole backlog acknowledged by the broker")
            t_done = wait_for(lambda: store_counter(db, "readings_confirmed") >= BACKLOG_READINGS,
                              300, "the whole backlog confirmed by the ingest", interval_s=0.05)
            resent = store_counter(db, "readings_resent")
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
        "e2e_acked_by_broker_s": round(t_acked - t_spawn, 2),
        "e2e_confirmed_s": round(seconds, 2),
        "e2e_readings_per_s": round(BACKLOG_READINGS / seconds),
        "e2e_readings_in_influx": in_influx,
        "e2e_readings_resent": resent,
        "target_e2e_confirmed_s": TARGET_S,
    }


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "mosquitto", config_extra=BROKER_CONFIG) as broker, \
                Influxd(work / "influxd") as influx:
            figures = drain(work, broker, influx)
    figures["note"] = ("shared 2-core VM: gateway, broker, ingest and influxd share both cores; "
                       "the time runs from the gateway's spawn to the last confirmation")
    return figures
