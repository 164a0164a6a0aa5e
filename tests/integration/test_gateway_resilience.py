"""The gateway against what a field season throws at it, with a real mosquitto and stations
simulated in CPython on virtual serial links (see test_gateway_end_to_end for the pieces)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from watershed.contracts import wire
from watershed.contracts.mqtt import MessageReading, Topics
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import EXIT_CONFIG, Gateway
from watershed.gateway.store import Store
from watershed_sim.py_station import T0, PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

from .test_gateway_end_to_end import (
    REPO,
    SAN,
    Subscriber,
    _toml,
    config_dict,
    expected,
    received,
    sample,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway_id() -> str:
    return f"gw-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as vl:
        yield vl


@pytest.fixture
def station() -> PyStation:
    return PyStation(SAN, "SAN-01")


@pytest.fixture
def bus(link: VirtualSerialLink, station: PyStation) -> Iterator[StationBus]:
    b = StationBus(link.station_path, station)
    yield b
    b.close()


def make_config(tmp_path: Path, gateway_id: str, port: int, serial_port: str, **gateway: object
                ) -> dict:
    d = config_dict(tmp_path, gateway_id, port, serial_port)
    d["link"][0]["stations"] = [SAN]
    d["gateway"].update(gateway)
    return d


class Watcher:
    """Subscribes to every topic of one gateway, in arrival order."""

    def __init__(self, port: int, gateway_id: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{gateway_id}")
        topic = f"{Topics().root}/{gateway_id}/#"
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        assert ready.wait(5)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def on(self, suffix: str) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# --- the uplink -----------------------------------------------------------------------


def test_a_long_outage_drains_the_backlog_with_live_readings_first(
        tmp_path: Path, mosquitto_factory, gateway_id: str, link: VirtualSerialLink,
        bus: StationBus) -> None:
    broker = mosquitto_factory()
    d = make_config(tmp_path, gateway_id, broker.port, link.gateway_path)
    d["mqtt"].update(max_readings_per_message=20, backlog_readings_per_message=200,
                     max_inflight=8)
    # Two weeks of 48 stations at 15-min steps, stored while the uplink was down.
    backlog = 48 * 96 * 14
    with Store(d["gateway"]["store"]) as store:
        for s in range(48):
            store.add(f"OLD-{s:02d}", "santiago", [
                MessageReading(seq, "stage_m", T0 + 900 * seq, seq, -3, 0)
                for seq in range(1, 96 * 14 + 1)])
    subscriber = Subscriber(broker.port, gateway_id)
    gateway = Gateway(GatewayConfig.from_dict(d))
    try:
        gateway.start()
        wait_until(lambda: gateway.forwarder.stats()["backlog_readings_published"] > 0,
                   what="the backlog to start draining")
        sample(bus, SAN, ["2.50", "2.75"])  # live, while the backlog drains
        wait_until(lambda: ("SAN-01", 2) in received(subscriber), timeout_s=60,
                   what="the live readings")
        live_at = len(subscriber.payloads)
        wait_until(lambda: len(subscriber.readings()) >= backlog + 2, timeout_s=120,
                   what="the whole backlog")
        assert live_at < len(subscriber.payloads)  # the live readings overtook the backlog
        keys = subscriber.keys()
        assert len(set(keys)) == backlog + 2
        assert received(subscriber).items() >= expected(bus).items()
        wait_until(lambda: gateway.store.counts()["unsent"] == 0, what="every PUBACK")
    finally:
        gateway.stop()
        subscriber.close()


def test_the_gateway_process_killed_again_and_again_loses_and_mangles_nothing(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink, bus: StationBus
        ) -> None:
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(_toml(make_config(tmp_path, gateway_id, mosquitto.port,
                                             link.gateway_path)))
    subscriber = Subscriber(mosquitto.port, gateway_id)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "gateway"), str(REPO / "hardware"), str(REPO)])}
    command = [sys.executable, "-m", "watershed.cli", "gateway", "--config", str(config_file)]
    try:
        for round_ in range(8):
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            sample(bus, SAN, [f"{round_}.{i:03d}" for i in range(40)])  # a burst
            wait_until(lambda: bus.stations[SAN].outbox.__len__() < 40, timeout_s=30,
                       what="the burst to be under way")
            process.send_signal(signal.SIGKILL)  # mid-burst: stored, ACKed, published or not
            process.wait(10)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: set(received(subscriber)) >= set(expected(bus)), timeout_s=60,
                       what="every reading after the last restart")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
        # At least once on MQTT; every copy identical, so InfluxDB keeps one point per reading.
        copies: dict[tuple[str, int], set] = {}
        for station_id, _, r in subscriber.readings():
            copies.setdefault((station_id, r.seq), set()).add((r.channel, r.ts, r.mantissa,
                                                               r.exponent, r.flags))
        assert all(len(v) == 1 for v in copies.values())
        assert received(subscriber) == expected(bus)
    finally:
        subscriber.close()


# --- the serial side ------------------------------------------------------------------


def test_an_unplugged_port_is_reopened_when_it_comes_back(
        tmp_path: Path, mosquitto, gateway_id: str) -> None:
    # /dev/serial/by-id/... is a symlink; replugging points it at a new tty.
    by_id = tmp_path / "usb-FTDI-if00"
    first = VirtualSerialLink()
    by_id.symlink_to(first.gateway_path)
    station = PyStation(SAN, "SAN-01")
    bus = StationBus(first.station_path, station)
    subscriber = Subscriber(mosquitto.port, gateway_id)
    d = make_config(tmp_path, gateway_id, mosquitto.port, str(by_id))
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    second = None
    try:
        sample(bus, SAN, ["1.0", "1.1"])
        wait_until(lambda: len(received(subscriber)) == 2, what="readings before the unplug")
        bus.close()
        first.close()  # unplugged: the gateway's port fails
        with bus.lock:
            station.sample(["1.2", "1.3"])  # measured while unplugged
        wait_until(lambda: not gateway.links[0].is_open, what="the gateway to notice")
        second = VirtualSerialLink()
        by_id.unlink()
        by_id.symlink_to(second.gateway_path)
        bus = StationBus(second.station_path, station)
        sample(bus, SAN, ["1.4"])
        wait_until(lambda: len(received(subscriber)) == 5, timeout_s=30,
                   what="readings after the replug")
        assert received(subscriber) == expected(bus)
        assert gateway.stats()["links"][str(by_id)]["port_errors"] >= 1
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()
        if second is not None:
            second.close()


def test_a_station_rebooting_mid_transfer_loses_nothing(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink, bus: StationBus,
        station: PyStation) -> None:
    subscriber = Subscriber(mosquitto.port, gateway_id)
    gateway = Gateway(GatewayConfig.from_dict(make_config(tmp_path, gateway_id, mosquitto.port,
                                                          link.gateway_path)))
    gateway.start()
    try:
        sample(bus, SAN, [f"3.{i:03d}" for i in range(120)])
        wait_until(lambda: len(station.outbox) < 120, what="the transfer to start")
        with bus.lock:
            station.reboot()
            station.sample(["9.999"])
        wait_until(lambda: set(received(subscriber)) >= set(expected(bus)), timeout_s=30,
                   what="everything after the reboot")
        assert received(subscriber) == expected(bus)
        assert gateway.stats()["links"][link.gateway_path]["reboots"] >= 1
    finally:
        gateway.stop()
        subscriber.close()


def test_holes_are_backfilled_and_readings_gone_from_the_station_are_in_the_ledger(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink, bus: StationBus,
        station: PyStation) -> None:
    d = make_config(tmp_path, gateway_id, mosquitto.port, link.gateway_path)
    d["link"][0].update(status_interval_s=0.3, backfill_interval_s=0.2)
    watcher = Watcher(mosquitto.port, gateway_id)
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    try:
        sample(bus, SAN, ["1.0", "1.1"])
        wait_until(lambda: not station.outbox, what="the first readings")
        with bus.lock:
            station.sample([f"2.{i}" for i in range(10)])  # seqs 3-12
            for seq in (5, 6, 7, 10, 11):  # acknowledged elsewhere (another gateway)
                del station.outbox[seq]
            station.oldest_seq = 7  # and the flash has overwritten 1-6 since
        wait_until(lambda: gateway.store.loss_ledger() == {"SAN-01": {"gone_from_station": 2}},
                   what="5-6 to be found gone")
        wait_until(lambda: gateway.store.holes("SAN-01") == [], what="7, 10, 11 backfilled")
        wait_until(lambda: any(h["stations"].get("SAN-01", {}).get("losses", {}).get("total")
                               == 2 for h in watcher.on("/health")) or _poke(gateway),
                   what="the loss in the health message")
    finally:
        gateway.stop()
        watcher.close()


def _poke(gateway: Gateway) -> bool:
    gateway.forwarder._next_health = 0.0  # publish health again without waiting a minute
    return False


def test_a_skewed_station_clock_is_reported_and_set(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink) -> None:
    station = PyStation(SAN, "SAN-01", clock_skew_s=-7200)
    bus = StationBus(link.station_path, station)
    d = make_config(tmp_path, gateway_id, mosquitto.port, link.gateway_path)
    d["link"][0]["status_interval_s"] = 0.2
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    try:
        sample(bus, SAN, ["1.0"])
        wait_until(lambda: station.clock_ms is not None, what="TIME after HELLO")
        wait_until(lambda: (gateway.store.stations()[0].clock_offset_s is not None
                            and abs(gateway.store.stations()[0].clock_offset_s) < 5),
                   what="the offset measured from STATUS")
        with bus.lock:
            station.clock_ms -= 3_600_000  # the RTC jumps an hour back
        wait_until(lambda: abs(station.clock() - time.time()) < 5,
                   what="the gateway to set the clock again")
        assert gateway.stats()["links"][link.gateway_path]["clock_drifts"] >= 1
    finally:
        gateway.stop()
        bus.close()


# --- alerts, health and remote operations ---------------------------------------------


def test_alerts_health_and_remote_operations(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink, bus: StationBus,
        station: PyStation) -> None:
    d = make_config(tmp_path, gateway_id, mosquitto.port, link.gateway_path,
                    health_interval_s=0.5)
    d["station"][0]["alert"] = [{"channel": "stage_m", "above": 3.5}]
    watcher = Watcher(mosquitto.port, gateway_id)
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    topics = Topics()
    try:
        sample(bus, SAN, ["3.2", "3.61", "3.80"])
        wait_until(lambda: watcher.on("/alert"), what="the flood alert")
        (alert,) = watcher.on("/alert")
        assert (alert["station"], alert["seq"], alert["rule"]) == ("SAN-01", 2, "above")
        wait_until(lambda: any("SAN-01" in h["stations"] for h in watcher.on("/health")),
                   what="health naming the station")
        health = watcher.on("/health")[-1]
        assert health["gateway"] == gateway_id and health["version"]
        assert {"unsent", "oldest_unsent_age_s"} <= set(health["queue"])
        assert health["disk_free_bytes"] > 0 and "SAN-01" in health["stations"]

        def command(body: dict, topic: str | None = None) -> None:
            watcher.client.publish(topic or topics.command(gateway_id),
                                   json.dumps(body).encode(), qos=1)

        command({"id": "c1", "op": "config", "station": "SAN-01",
                 "config": {"interval_s": 900}})
        command({"id": "c2", "op": "reboot", "station": "SAN-01"})
        command({"id": "c3", "op": "backfill", "station": "SAN-01", "first_seq": 1,
                 "end_seq": 4})
        command({"id": "c4", "op": "format-sd", "station": "SAN-01"})
        command({"id": "c5", "op": "reboot", "station": "NOPE"})
        # Another gateway's command topic is not ours.
        command({"id": "x", "op": "reboot", "station": "SAN-01"},
                topics.command("gw-someone-else"))
        wait_until(lambda: len(watcher.on("/cmd/result")) == 5, timeout_s=20,
                   what="five results")
        results = {r["id"]: r for r in watcher.on("/cmd/result")}
        assert results["c1"]["ok"] and results["c2"]["ok"] and results["c3"]["ok"]
        assert results["c3"]["readings"] == 0  # all three are stored already
        assert results["c4"]["status"] == "bad_request"
        assert results["c5"]["status"] == "unknown_station"
        with bus.lock:
            assert station.configs == [b'{"interval_s":900}']
            assert station.commands == [wire.CMD_REBOOT]
    finally:
        gateway.stop()
        watcher.close()


# --- configuration --------------------------------------------------------------------


def _lines_of(process: subprocess.Popen[str]) -> list[str]:
    """The lines ``process`` prints, gathered as they come by a thread of their own."""
    lines: list[str] = []

    def gather() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    threading.Thread(target=gather, daemon=True).start()
    return lines


def _said(lines: list[str], text: str) -> bool:
    return any(text in line for line in list(lines))


def test_a_malformed_config_is_refused_naming_the_key_and_a_bad_reload_is_survived(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink, bus: StationBus
        ) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "gateway"), str(REPO / "hardware"), str(REPO)])}
    config_file = tmp_path / "gateway.toml"
    config_file.write_text("[gateway]\nid = 'gw-1'\n[[link]]\nport = '/dev/null'\nbaud = 'fast'\n"
                           "stations = [1]\n")
    command = [sys.executable, "-m", "watershed.cli", "gateway", "--config", str(config_file)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == EXIT_CONFIG
    assert "link[0].baud: expected an integer" in done.stdout
    config_file.write_text("[gateway\nid = ")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == EXIT_CONFIG and "not valid TOML" in done.stdout

    good = _toml(make_config(tmp_path, gateway_id, mosquitto.port, link.gateway_path))
    config_file.write_text(good)
    subscriber = Subscriber(mosquitto.port, gateway_id)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = _lines_of(process)
    try:
        sample(bus, SAN, ["1.0"])
        wait_until(lambda: len(received(subscriber)) == 1, timeout_s=30, what="a reading")
        config_file.write_text(good.replace("baud = 9600", "baud = -1") + "bogus = 1\n")
        process.send_signal(signal.SIGHUP)  # bad: refused, the running config stays
        # Each reload is awaited in the gateway's own output, not a fixed sleep: on a busy
        # machine the good file could be back before the first signal is handled.
        wait_until(lambda: _said(output, "reload refused, keeping the running configuration"),
                   timeout_s=30, what="the bad reload refused")
        [refused] = [line for line in list(output) if "reload refused" in line]
        assert "gateway.toml:" in refused and "station[0].bogus: unknown key" in refused
        config_file.write_text(good)
        process.send_signal(signal.SIGHUP)  # good: reloaded
        wait_until(lambda: _said(output, "configuration reloaded"), timeout_s=30,
                   what="the good reload")
        sample(bus, SAN, ["1.1"])
        wait_until(lambda: len(received(subscriber)) == 2, timeout_s=30,
                   what="a reading after the reloads")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        subscriber.close()
