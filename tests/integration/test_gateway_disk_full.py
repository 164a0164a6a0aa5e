"""A gateway whose disk really fills up (a small file system of the test's own) while stations
keep sending: nothing is ACKed that is not on disk, one log line when the store becomes full and
one when it is writable again, health and alerts say so, and once space returns every reading
arrives. A SIGTERM while the disk is full stops the gateway cleanly."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watershed.contracts.mqtt import Topics
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import Gateway
from watershed_sim.py_station import PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

from tests.fixtures.filesystems import fill

from .test_gateway_end_to_end import REPO, SAN, Subscriber, _toml, config_dict, wait_until

pytestmark = pytest.mark.integration

READINGS = 15_000  # ~3 MB in the store: more than the 2 MiB left free, less than freed later


class ReadingsAndAlerts(Subscriber):
    """The readings subscriber, also keeping the gateway's alerts (same persistent session)."""

    def __init__(self, port: int, gateway_id: str) -> None:
        self.alerts: list[dict] = []
        self._alert_topic = Topics().alert(gateway_id, "+")
        super().__init__(port, gateway_id)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe([(topic, 1) for topic in [*self._topics, self._alert_topic]])

    def _on_message(self, client, userdata, message) -> None:
        if message.topic.endswith("/alert"):
            with self._lock:
                self.alerts.append(json.loads(message.payload))
        else:
            super()._on_message(client, userdata, message)


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as vl:
        yield vl


def stored_seqs(gateway: Gateway) -> set[int]:
    rows = gateway.store.database.execute_read(
        "SELECT seq FROM readings WHERE station = 'SAN-01'")
    return {seq for (seq,) in rows}


def test_a_full_disk_acks_nothing_unstored_says_so_once_and_recovers_when_space_returns(
        tmp_path: Path, tiny_fs: Path, mosquitto_factory, link: VirtualSerialLink,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
    broker = mosquitto_factory()
    subscriber = ReadingsAndAlerts(broker.port, gateway_id)  # persistent session
    broker.stop()  # the uplink is down while the disk fills: readings wait in the store
    station = PyStation(SAN, "SAN-01")
    produced = station.take(READINGS)
    bus = StationBus(link.station_path, station)
    filler = fill(tiny_fs, 2 * 1024 * 1024)
    d = config_dict(tmp_path, gateway_id, broker.port, link.gateway_path)
    d["gateway"]["store"] = str(tiny_fs / "gateway.db")
    d["link"][0].update(stations=[SAN], status_interval_s=0.5)
    d["alarms"] = {"disk_free_min_bytes": 0}  # alarms.py's disk alarm is tested on its own
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    try:
        space = gateway.store.space
        wait_until(lambda: space.full, timeout_s=120, what="the disk to fill up")
        health = gateway.health()
        assert health["store_full"] is True and health["store_full_reason"] == "disk"
        assert health["store_full_since"] is not None
        # The gateway keeps going (HELLO/STATUS polls, refusals) without a word more.
        statuses = gateway.links[0].stats().get("statuses", 0)
        wait_until(lambda: gateway.links[0].stats().get("statuses", 0) >= statuses + 3,
                   what="STATUS polls while full")
        with bus.lock:
            outbox = set(station.outbox)
        # Nothing ACKed (gone from the station's outbox) that is not in the store.
        acked = set(produced) - outbox
        assert acked and outbox
        assert acked <= stored_seqs(gateway)
        lines = [r for r in caplog.records if r.name == "watershed.gateway.space"]
        assert len(lines) == 1 and lines[0].getMessage().startswith("store full (disk)")
        assert not [r for r in caplog.records if r.exc_info]  # no traceback, ever
        # The alert is held in memory (the store cannot take it) and handed out as usual.
        (alert,) = [json.loads(p) for _, st, p in gateway.store.unsent_alerts(10)
                    if st == "_gateway"]
        assert (alert["alert"], alert["state"], alert["reason"]) == ("store_full", "raised",
                                                                      "disk")
        filler.unlink()  # space returns
        wait_until(bus.outbox_empty, timeout_s=120, what="every reading stored and ACKed")
        assert stored_seqs(gateway) == set(produced)
        assert gateway.health()["store_full"] is False
        lines = [r.getMessage() for r in caplog.records if r.name == "watershed.gateway.space"]
        assert len(lines) == 2 and lines[1].startswith("store writable again")

        broker.start()  # the uplink returns: every reading and both alerts arrive
        wait_until(lambda: {r.seq for _, _, r in subscriber.readings()} == set(produced),
                   timeout_s=120, what="every reading at the subscriber")
        # (Alarms -- alarms.py, with an "alarm" key -- may go the same way: not these.)
        def store_alerts() -> list[dict]:
            return [a for a in subscriber.alerts if "alert" in a]

        wait_until(lambda: len(store_alerts()) >= 2, what="both alerts")
        assert [(a["alert"], a["state"]) for a in store_alerts()] == [
            ("store_full", "raised"), ("store_full", "cleared")]
        assert store_alerts()[1]["full_since"] == store_alerts()[0]["full_since"]
        assert not [r for r in caplog.records if r.exc_info]
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()


def test_sigterm_while_the_disk_is_full_stops_the_gateway_cleanly(
        tmp_path: Path, tiny_fs: Path, mosquitto, link: VirtualSerialLink) -> None:
    gateway_id = f"gw-{uuid.uuid4().hex[:8]}"
    station = PyStation(SAN, "SAN-01")
    station.take(5000)
    bus = StationBus(link.station_path, station)
    fill(tiny_fs, 512 * 1024)
    d = config_dict(tmp_path, gateway_id, mosquitto.port, link.gateway_path)
    d["gateway"]["store"] = str(tiny_fs / "gateway.db")
    d["link"][0]["stations"] = [SAN]
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(_toml(d))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "gateway"), str(REPO / "hardware"), str(REPO)])}
    process = subprocess.Popen(
        [sys.executable, "-m", "watershed.cli", "gateway", "--config", str(config_file)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("store full (disk)" in line for line in lines), timeout_s=60,
                   what="the disk to fill up")
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        reader.join(10)
        output = "".join(lines)
        assert process.returncode == 0, output
        assert output.count("store full (disk)") == 1, output
        assert "Traceback" not in output and "exc=" not in output, output
        assert f"gateway {gateway_id} stopped" in output
        with bus.lock:
            assert station.outbox  # what could not be stored is still in the station
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        bus.close()
