"""The ingest's metrics: a retained status message on <prefix>/v1/ingest/<id>/status with sane
numbers, "offline" when it stops, and the periodic log line."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from watershed.contracts.mqtt import encode_readings
from watershed.devservers import Influxd, Mosquitto

from .test_ingest_service import Setup, readings_message, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(mosquitto: Mosquitto, influxd: Influxd, fresh_influx_db: str,
          tmp_path: Path) -> Iterator[Setup]:
    s = Setup(mosquitto, influxd.url, fresh_influx_db, tmp_path)
    s.config = dataclasses.replace(s.config, ingest=dataclasses.replace(
        s.config.ingest, status_interval_s=0.2, log_interval_s=0.2))
    yield s
    s.close()


def watch_status(setup: Setup) -> list[tuple[dict, bool]]:
    """Every status message on the ingest's topic, with its retain flag."""
    received: list[tuple[dict, bool]] = []
    subscribed = threading.Event()
    client = setup.client()
    client.on_message = lambda c, u, m: received.append((json.loads(m.payload), m.retain))
    client.on_subscribe = lambda *args: subscribed.set()
    client.subscribe(setup.topics.ingest_status(setup.config.ingest.id), qos=1)
    assert subscribed.wait(5)
    return received


def test_status_message_reports_the_stream(setup: Setup,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="watershed.ingest.service")
    ingest = setup.start_ingest()
    msgs = [readings_message(f"SAN-0{i}", 1763676900, 5) for i in range(1, 4)]
    for msg in msgs:
        setup.publish(encode_readings(msg), setup.topics.readings(msg.gateway, msg.station))
    setup.publish(b"poison")
    wait_for(lambda: ingest.stats()["acks_sent"] == 4, what="4 acks")

    statuses = watch_status(setup)  # subscribing late: the retained one comes first
    status = wait_for(lambda: next((s for s, _ in statuses if s["messages"]["acked"] == 4),
                                   None), what="a status with 4 acks")
    assert statuses[0][1] is True  # retained
    assert status["v"] == 1 and status["ingest"] == setup.config.ingest.id
    assert status["state"] == "online" and status["connected"] is True
    assert status["messages"] == {"received": 4, "acked": 4, "written": 3,
                                       "deadlettered": 1, "invalid": 1, "unacked": 0,
                                       "queued": 0, "pending": 0}
    assert status["points"] == {"written": 15, "rejected": 0}
    window = status["window"]
    assert window["writes"] == status["batches"]["written"] >= 1
    assert 0 < window["latency_ms"]["p50"] <= window["latency_ms"]["p99"] \
        <= window["latency_ms"]["max"] < 10_000
    assert window["batch_points"]["max"] <= 15
    assert window["batch_points"]["mean"] * window["writes"] == pytest.approx(15)
    assert 0 <= status["lag_s"] < 60
    assert status["batches"]["write_failures"] == 0
    wait_for(lambda: any("acked 4, dead-lettered 1" in r.getMessage() for r in caplog.records),
             what="the periodic log line")

    ingest.stop()
    wait_for(lambda: statuses[-1][0]["state"] == "offline", what="offline on stop")
    assert statuses[-1][0]["messages"]["acked"] == 4


def test_lag_grows_while_influxdb_cannot_take_writes(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    from watershed.devservers import free_port
    setup = Setup(mosquitto, f"http://127.0.0.1:{free_port()}", "watershed", tmp_path)
    try:
        ingest = setup.start_ingest()
        setup.publish(encode_readings(readings_message("SAN-01", 1763676900, 2)))
        status = wait_for(lambda: (s := ingest.status())["lag_s"] >= 0.5 and s, what="lag")
        assert status["messages"]["unacked"] == 1 and status["messages"]["acked"] == 0
        assert status["batches"]["write_failures"] >= 1
        assert status["batches"]["last_write_error"]
    finally:
        setup.close()
