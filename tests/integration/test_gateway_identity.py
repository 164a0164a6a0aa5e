"""Who answers at a bus address, end to end: stations simulated in CPython on a virtual serial
link, a real mosquitto, the gateway in-process and the operator's CLI as typed. Nothing a
station produced may be published under another station's id, nor deleted from its flash
without being published under its own id or quarantined."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from cobs import cobs

from watershed.contracts import wire
from watershed.contracts.channels import channel_name
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import Gateway
from watershed_sim.py_station import PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

from .test_gateway_end_to_end import REPO, SAN, Subscriber, _toml, config_dict, wait_until
from .test_gateway_resilience import Watcher, gateway_id, link  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

OTHER = 4  # SAN-02's own address
BAD = 5


class SharedAddressBus(StationBus):
    """A bus on which several stations may have one address: each hears every frame to it, and
    their replies go out together, as they would on a real bus (where they also collide)."""

    def __init__(self, path: str, *stations: PyStation) -> None:
        self.all = list(stations)
        super().__init__(path, *stations)

    def _replies(self, frame: wire.Frame) -> list[wire.Frame]:
        with self.lock:
            return [r for s in self.all if s.addr == frame.addr for r in s.answer(frame)]


class AbsurdClockBus(StationBus):
    """Station ``BAD`` says, in every HELLO, a clock of 2^63 s: more than any store can hold and
    beyond the contract's range (1.2), which no codec writes; the bytes are made by hand."""

    def _encode(self, frame: wire.Frame) -> bytes:
        if frame.addr != BAD or not isinstance(frame, wire.Hello):
            return super()._encode(frame)
        body = wire.encode_body(dataclasses.replace(frame, clock=0))
        head = body[:-5]  # without the clock (uvarint 0: one byte) and the CRC
        clock = bytes([0x80] * 9 + [0x01])  # 2^63 as a uvarint
        body = head + clock + zlib.crc32(head + clock).to_bytes(4, "little")
        return cobs.encode(body) + wire.DELIMITER


def make_config(tmp_path: Path, gateway_id: str, mqtt_port: int, serial_port: str,
                addresses: list[int]) -> dict:
    d = config_dict(tmp_path, gateway_id, mqtt_port, serial_port)
    d["link"][0]["stations"] = addresses
    d["station"].append({"id": "SAN-02", "address": OTHER, "basin": "santiago"})
    return d


def content(station_id: str, r: wire.Reading) -> tuple:
    channels = {128: "stage_backup_m"} if station_id == "SAN-01" else None
    return channel_name(r.channel, channels), r.time, r.mantissa, r.exponent, r.flags


def published(subscriber: Subscriber) -> dict[tuple[str, int], tuple]:
    return {(station, r.seq): (r.channel, r.ts, r.mantissa, r.exponent, r.flags)
            for station, _, r in subscriber.readings()}


def quarantined(gateway: Gateway) -> set[tuple[int, int, int, int, int, int]]:
    assert gateway.store is not None
    return {(r.seq, r.channel, r.time, r.mantissa, r.exponent, r.flags)
            for e in gateway.store.quarantine_entries(state=None)
            for r in gateway.store.quarantined_readings(e.id)}


def assert_nothing_misattributed(stations: list[PyStation], bus: StationBus,
                                 subscriber: Subscriber, gateway: Gateway) -> None:
    """Every reading published is its station's; every reading gone from a station's flash
    is published under its own id or held in quarantine."""
    produced = {}
    with bus.lock:
        for s in stations:
            produced.update({(s.station_id, r.seq): (content(s.station_id, r), r in
                                                     s.outbox.values(), r) for r in s.produced})
    out = published(subscriber)
    held = quarantined(gateway)
    for key, value in out.items():
        assert produced[key][0] == value, f"{key} published with another station's reading"
    for key, (value, in_flash, r) in produced.items():
        if not in_flash:
            assert out.get(key) == value or (r.seq, r.channel, r.time, r.mantissa, r.exponent,
                                             r.flags) in held, f"{key} deleted and lost"


def cli(config_file: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "gateway"), str(REPO / "hardware"), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "watershed.cli", "gateway", "quarantine",
                           *args, "--config", str(config_file)],
                          env=env, capture_output=True, text=True, timeout=60)


def listed(config_file: Path) -> list[dict]:
    done = cli(config_file, "list", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_two_stations_on_one_address_misattribute_nothing_and_lose_nothing_unseen(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink) -> None:
    san, twin = PyStation(SAN, "SAN-01"), PyStation(SAN, "SAN-02")  # SAN-02 mis-set to 3
    bus = SharedAddressBus(link.station_path, san, twin)
    d = make_config(tmp_path, gateway_id, mosquitto.port, link.gateway_path, [SAN])
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(_toml(d))
    subscriber = Subscriber(mosquitto.port, gateway_id)
    watcher = Watcher(mosquitto.port, gateway_id)
    with bus.lock:
        san.take(45)
        twin.take(45, channel=2)
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    try:
        wait_until(lambda: any(a.get("case") == "shared_address" for a in watcher.on("/alert")),
                   timeout_s=20, what="the shared-address alert")
        polls = gateway.stats()["links"][link.gateway_path]["polls"]
        wait_until(lambda: gateway.stats()["links"][link.gateway_path]["polls"] > polls + 10,
                   what="more polls of the shared address")
        (alert,) = [a for a in watcher.on("/alert") if a.get("rule") == "identity"]
        assert {alert["bound"], alert["claimed"]} == {"SAN-01", "SAN-02"}
        assert_nothing_misattributed([san, twin], bus, subscriber, gateway)
        with bus.lock:
            assert len(twin.outbox) == 45  # nothing of it was ACKed: it holds every reading
        (entry,) = listed(config_file)
        assert (entry["kind"], entry["address"]) == ("shared_address", SAN)

        # The technician sets SAN-02's switch to its own address: both report as themselves.
        with bus.lock:
            twin.addr = OTHER
            twin.reboot()
        d["link"][0]["stations"] = [SAN, OTHER]
        config_file.write_text(_toml(d))
        gateway.stop()
        gateway = Gateway(GatewayConfig.from_dict(d))  # as SIGHUP does
        gateway.start()
        wait_until(lambda: len(published(subscriber)) == 90, timeout_s=30,
                   what="every reading under its own id")
        assert_nothing_misattributed([san, twin], bus, subscriber, gateway)
        # Everything it held arrived otherwise: dropping it loses nothing.
        done = cli(config_file, "drop", str(entry["id"]))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == (f"quarantine {entry['id']} dropped: {entry['readings']} "
                                       "readings, 0 counted lost (quarantined)")
        assert listed(config_file) == []
        assert gateway.store.loss_ledger() == {}
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()
        watcher.close()


class LateOnceBus(StationBus):
    """The station answers one POLL after the gateway's reply window (busy with a slow sensor):
    that reply and the one to the next POLL, which it read meanwhile, go out back to back."""

    def __init__(self, path: str, *stations: PyStation, late_s: float) -> None:
        self.late_s = late_s
        self.late_next = threading.Event()
        super().__init__(path, *stations)

    def _replies(self, frame: wire.Frame) -> list[wire.Frame]:
        if isinstance(frame, wire.Poll) and self.late_next.is_set():
            self.late_next.clear()
            time.sleep(self.late_s)  # this thread reads nothing meanwhile: the next POLL waits
        return super()._replies(frame)


@pytest.mark.parametrize("new_readings", [0, 3], ids=["same", "more-meanwhile"])
def test_a_late_reply_is_one_station_answering_twice_not_a_shared_address(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink,
        new_readings: int) -> None:
    san = PyStation(SAN, "SAN-01")
    d = make_config(tmp_path, gateway_id, mosquitto.port, link.gateway_path, [SAN])
    reply_timeout_s = d["link"][0]["reply_timeout_s"]
    bus = LateOnceBus(link.station_path, san, late_s=reply_timeout_s + 0.4)
    gateway, subscriber, watcher = started(d, mosquitto.port, gateway_id)
    try:
        with bus.lock:
            san.take(10)
        wait_until(lambda: len(published(subscriber)) == 10, what="the first readings")
        with bus.lock:
            san.take(20)
        bus.late_next.set()
        if new_readings:  # taken while the late reply was on its way: the next one has more
            time.sleep(reply_timeout_s / 2)
            with bus.lock:
                san.take(new_readings)
        wait_until(lambda: len(published(subscriber)) == 30 + new_readings,
                   what="every reading")
        stats = gateway.stats()["links"][link.gateway_path]
        assert stats["late_replies"] >= 1 and stats["timeouts"] >= 1
        assert stats.get("shared_address_polls", 0) == 0
        assert [a for a in watcher.on("/alert") if a.get("rule") == "identity"] == []
        assert listed(config_file=_written(tmp_path, d)) == []
        assert_nothing_misattributed([san], bus, subscriber, gateway)
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()
        watcher.close()


def started(d: dict, mqtt_port: int, gateway_id: str) -> tuple[Gateway, Subscriber, Watcher]:
    """The gateway of config ``d`` running, and who listens to what it publishes."""
    subscriber, watcher = Subscriber(mqtt_port, gateway_id), Watcher(mqtt_port, gateway_id)
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    return gateway, subscriber, watcher


def _written(tmp_path: Path, d: dict) -> Path:
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(_toml(d))
    return config_file


def test_a_forged_hello_re_attributes_nothing_and_the_operator_releases_it(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink) -> None:
    san, other = PyStation(SAN, "SAN-01"), PyStation(OTHER, "SAN-02")
    bus = StationBus(link.station_path, san, other)
    d = make_config(tmp_path, gateway_id, mosquitto.port, link.gateway_path, [SAN, OTHER])
    config_file = _written(tmp_path, d)
    gateway, subscriber, watcher = started(d, mosquitto.port, gateway_id)
    try:
        with bus.lock:
            san.take(10)
            other.take(5)
        wait_until(lambda: len(published(subscriber)) == 15, what="the honest readings")
        with bus.lock:  # SAN-01's board says HELLO in SAN-02's name
            san.station_id = "SAN-02"
            san.reboot()
            san.take(20)
        wait_until(lambda: any(a.get("rule") == "identity" for a in watcher.on("/alert")),
                   what="the identity alert")
        wait_until(lambda: not san.outbox, what="the readings to be held and ACKed")
        with bus.lock:
            san.station_id = "SAN-01"  # and says its own name again,
            san.oldest_seq = san.next_seq  # its flash long overwritten: the gateway's copy is all
            san.reboot()
            san.take(5)
        wait_until(lambda: ("SAN-01", 35) in published(subscriber), what="readings as SAN-01")
        (alert,) = [a for a in watcher.on("/alert") if a.get("rule") == "identity"]
        assert (alert["case"], alert["bound"], alert["claimed"], alert["address"]) == (
            "address_taken", "SAN-01", "SAN-02", SAN)
        out = published(subscriber)
        assert {seq for station, seq in out if station == "SAN-02"} == {1, 2, 3, 4, 5}
        assert_nothing_misattributed([san, other], bus, subscriber, gateway)
        (entry,) = listed(config_file)
        assert (entry["kind"], entry["bound"], entry["claimed"], entry["readings"]) == (
            "address_taken", "SAN-01", "SAN-02", 20)
        health = gateway.health()["quarantine"]
        assert (health["count"], health["readings"], health["cases"]) == (
            1, 20, {"address_taken": 20})

        done = cli(config_file, "release", str(entry["id"]), "--to", "SAN-01")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == (f"quarantine {entry['id']} released to SAN-01: 20 "
                                       "readings, 20 new, 0 stored already")
        with bus.lock:
            want = {("SAN-01", r.seq): content("SAN-01", r) for r in san.produced}
        wait_until(lambda: {k: v for k, v in published(subscriber).items()
                            if k[0] == "SAN-01"} == want, what="the released readings")
        again = cli(config_file, "release", str(entry["id"]), "--to", "SAN-01")
        assert again.returncode == 1 and "released already" in again.stderr
        assert listed(config_file) == [] and gateway.store.loss_ledger() == {}
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()
        watcher.close()


def test_a_station_sending_numbers_out_of_range_does_not_stop_its_link_mates(
        tmp_path: Path, mosquitto, gateway_id: str, link: VirtualSerialLink) -> None:
    bad, san = PyStation(BAD, "BAD-1"), PyStation(SAN, "SAN-01")
    bus = AbsurdClockBus(link.station_path, bad, san)
    d = make_config(tmp_path, gateway_id, mosquitto.port, link.gateway_path, [BAD, SAN])
    subscriber = Subscriber(mosquitto.port, gateway_id)
    gateway = Gateway(GatewayConfig.from_dict(d))
    gateway.start()
    try:
        for round_ in range(3):
            with bus.lock:
                san.take(10)
            wait_until(lambda: len(published(subscriber)) == 10 * (round_ + 1), timeout_s=20,
                       what="SAN-01's readings past the failing station")
        stats = gateway.stats()["links"][link.gateway_path]
        assert stats["frame_errors"].get("out_of_range", 0) >= 3, stats  # counted, each poll
        assert stats["station_errors"] == {}  # refused by the codec: nothing raised
        assert gateway.stale_loops() == []  # the link makes progress: the watchdog is fed
        assert gateway.store.station("BAD-1") is None  # nothing of it was taken
    finally:
        gateway.stop()
        bus.close()
        subscriber.close()
