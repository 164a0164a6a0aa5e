"""The operator's view of a running gateway, against a real mosquitto and stations simulated on
a virtual serial bus: ``watershed gateway status`` from the store and the health file (no broker
needed), ``watershed gateway op`` over MQTT with the station's answer or a timeout, and TIME
held back while the clock is not synchronised."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from watershed.cli import main
from watershed.gateway.clock_sync import ClockSync
from watershed.gateway.config import GatewayConfig
from watershed.gateway.daemon import Gateway
from watershed_sim.py_station import PyStation, StationBus
from watershed_sim.serial_link import VirtualSerialLink

from .test_gateway_end_to_end import (  # noqa: F401 (fixtures)
    SAN,
    _toml,
    broker,
    config_dict,
    gateway_id,
    link,
    sample,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def config_file(tmp_path: Path, gateway_id: str, broker, link: VirtualSerialLink) -> Path:
    d = config_dict(tmp_path, gateway_id, broker.port, link.gateway_path)
    d["gateway"]["health_interval_s"] = 0.5
    d["link"][0].update(stations=[SAN], status_interval_s=1.0)
    path = tmp_path / "gateway.toml"
    path.write_text(_toml(d))
    return path


@pytest.fixture
def station_bus(link: VirtualSerialLink) -> Iterator[StationBus]:
    b = StationBus(link.station_path, PyStation(SAN, "SAN-01"))
    yield b
    b.close()


@pytest.fixture
def running(config_file: Path) -> Iterator[Gateway]:
    from watershed.gateway.config import load_config

    gw = Gateway(load_config(config_file))
    gw.start()
    yield gw
    gw.stop()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_shows_stations_queue_and_daemon_health(
        station_bus: StationBus, running: Gateway, config_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    sample(station_bus, SAN, ["1.25", "1.50"])
    wait_until(lambda: running.store.counts()["readings_received"] == 2, what="two readings")
    wait_until(lambda: json.loads(Path(running.config.health_file).read_text())["stations"]
               .get("SAN-01", {}).get("battery_mv") is not None, what="health with a STATUS")
    code, out, _ = cli(capsys, "gateway", "status", "--config", str(config_file), "--json")
    assert code == 0
    status = json.loads(out)
    assert status["daemon"]["fresh"] is True
    assert status["clock"] == {"synchronised": True, "source": "assume-synchronised"}
    assert status["readings"]["received"] == 2
    # Nothing confirms them here (no ingest): once the broker acknowledged, they wait unconfirmed.
    assert status["readings"]["unsent"] + status["readings"]["unconfirmed"] == 2
    [station] = status["stations"]
    assert station["station"] == "SAN-01" and station["address"] == SAN
    assert station["battery_mv"] == 12700 and station["link_quality"] > 0
    assert status["losses"]["total"] == 0 and status["quarantine"]["count"] == 0
    assert isinstance(status["alarms"], list)
    code, out, _ = cli(capsys, "gateway", "status", "--config", str(config_file))
    assert code == 0
    assert "SAN-01" in out and "synchronised [assume-synchronised]" in out and "12700" in out


def test_status_without_the_daemon_shows_the_store_alone(
        station_bus: StationBus, config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from watershed.gateway.config import load_config

    gw = Gateway(load_config(config_file))
    gw.start()
    sample(station_bus, SAN, ["3.5"])
    wait_until(lambda: gw.store.counts()["readings_received"] == 1, what="a reading")
    gw.stop()
    Path(gw.config.health_file).unlink()
    code, out, _ = cli(capsys, "gateway", "status", "--config", str(config_file))
    assert code == 0
    assert "no daemon health file" in out and "alarms      unknown" in out
    assert "SAN-01" in out


def test_operations_reach_the_station_and_print_its_answer(
        station_bus: StationBus, running: Gateway, config_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    wait_until(lambda: running.forwarder.connected and running.links[0].station_at(SAN),
               what="connected, station heard")
    code, out, _ = cli(capsys, "gateway", "op", "SAN-01", "sample-now", "--config",
                       str(config_file), "--timeout", "20")
    assert code == 0 and out.startswith("SAN-01 sample-now: ok")
    with station_bus.lock:
        assert station_bus.stations[SAN].commands == [2]  # CMD_SAMPLE_NOW

    station_config = tmp_path / "san.json"
    station_config.write_text(json.dumps({"interval_s": 600, "sensors": []}))
    code, out, _ = cli(capsys, "gateway", "op", "SAN-01", "config-set", str(station_config),
                       "--config", str(config_file), "--timeout", "20", "--json")
    assert code == 0 and json.loads(out)["status"] == "ok"
    with station_bus.lock:
        assert json.loads(station_bus.stations[SAN].configs[-1]) == {"interval_s": 600,
                                                                      "sensors": []}
    code, out, _ = cli(capsys, "gateway", "op", "SAN-01", "config-get", "--config",
                       str(config_file), "--timeout", "20", "--json")
    got = json.loads(out)
    assert code == 0 and got["config"] == {"interval_s": 600, "sensors": []}
    # The simulated station reports config hash 0 in its HELLO: not what was pushed.
    assert got["station_config_hash"] == 0 and got["matches"] is False

    code, out, _ = cli(capsys, "gateway", "op", "NOPE-1", "reboot", "--config",
                       str(config_file), "--timeout", "20")
    assert code == 1 and "unknown_station" in out


def test_an_operation_nobody_answers_times_out(config_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "gateway", "op", "SAN-01", "reboot", "--config",
                       str(config_file), "--timeout", "1")
    assert code == 1 and "timeout: no result from gateway" in err


def test_time_waits_for_a_synchronised_clock(station_bus: StationBus, config_file: Path
                                             ) -> None:
    from watershed.gateway.config import load_config

    synced = {"now": False}
    gw = Gateway(load_config(config_file), clock_sync=ClockSync(lambda: synced["now"], "test"))
    gw.start()
    try:
        sample(station_bus, SAN, ["1.0"])
        wait_until(lambda: gw.store.counts()["readings_received"] == 1, what="a reading")
        wait_until(lambda: gw.links[0].stats().get("polls", 0) >= 5
                   or gw.links[0].stats().get("acks", 0) >= 1, what="polls")
        with station_bus.lock:
            assert station_bus.stations[SAN].clock_ms is None  # not pushed: clock unsynced
        assert gw.health()["clock"]["synchronised"] is False
        synced["now"] = True
        wait_until(lambda: station_bus.stations[SAN].clock_ms is not None, what="TIME pushed")
        assert gw.health()["clock"]["synchronised"] is True
    finally:
        gw.stop()


RECORDER = """#!/bin/sh
# Records each call: its arguments, the alert kind and state, and the JSON on stdin, in one
# write (commands run concurrently).
payload=$(cat)
printf '%s|%s|%s|%s\n' "$*" "$WATERSHED_ALERT_KIND" "$WATERSHED_ALERT_STATE" "$payload" \
    >> "$0.calls"
"""


def recorder(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "record-alert"
    script.write_text(RECORDER)
    script.chmod(0o755)
    return script, tmp_path / "record-alert.calls"


def calls(path: Path) -> list[tuple[str, str, str, dict]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        args, kind, state, payload = line.split("|", 3)
        out.append((args, kind, state, json.loads(payload)))
    return out


def test_alarms_are_raised_and_cleared_as_alerts_and_commands(
        tmp_path: Path, gateway_id: str, broker, link: VirtualSerialLink,
        station_bus: StationBus) -> None:
    from watershed.contracts.mqtt import Topics
    from watershed.gateway.alerts import GATEWAY_ALERTS

    from .test_gateway_end_to_end import Subscriber

    script, recorded = recorder(tmp_path)
    d = config_dict(tmp_path, gateway_id, broker.port, link.gateway_path)
    d["gateway"]["health_interval_s"] = 0.2
    d["link"][0].update(stations=[SAN, 7], poll_interval_s=0.05)
    # Address 7 is registered and polled but nobody answers there: silent.
    d["station"].append({"id": "MUTE-07", "address": 7, "basin": "santiago"})
    d["station"][0]["alert"] = [{"channel": "stage_m", "above": 2.0,
                                 "command": [str(script), "flood-sms", "+34600000000"]}]
    d["alarms"] = {"silent_polls": 20, "disk_free_min_bytes": 1000, "command": [str(script),
                                                                                 "alarm"]}
    alerts = Subscriber(broker.port, gateway_id)
    alerts.client.subscribe(Topics().alert(gateway_id, "+"), 1)
    disk = {"free": 10**12}
    synced = {"now": True}
    gw = Gateway(GatewayConfig.from_dict(d), disk_free=lambda: disk["free"],
                 clock_sync=ClockSync(lambda: synced["now"], "test"))
    gw.start()
    try:
        def active() -> set[tuple[str, str | None]]:
            return {(a["alarm"], a["station"]) for a in gw.health()["alarms"]}

        wait_until(lambda: ("station_silent", "MUTE-07") in active(), timeout_s=30,
                   what="the silent station's alarm")
        assert not {kind for kind, station in active() if station == "SAN-01"}
        disk["free"] = 10
        synced["now"] = False
        wait_until(lambda: {("disk_free", None), ("gateway_clock", None)} <= active(),
                   timeout_s=30, what="disk and clock alarms")
        sample(station_bus, SAN, ["2.5"])  # a flood: its rule's command runs too
        disk["free"] = 10**12
        synced["now"] = True
        wait_until(lambda: not {("disk_free", None), ("gateway_clock", None)} & active(),
                   timeout_s=30, what="disk and clock alarms cleared")

        def states(kind: str) -> list[str]:
            return [c[2] for c in calls(recorded) if c[1] == kind]

        wait_until(lambda: states("disk_free") == ["raised", "cleared"]
                   and states("gateway_clock") == ["raised", "cleared"]
                   and states("flood") == ["raised"], timeout_s=30, what="the commands' calls")
        flood = [c for c in calls(recorded) if c[1] == "flood"][0]
        assert flood[0] == "flood-sms +34600000000" and flood[3]["station"] == "SAN-01"
        disk_calls = [c for c in calls(recorded) if c[1] == "disk_free"]
        assert disk_calls[0][0] == "alarm" and disk_calls[0][3]["value"] == 10

        def alarm_alerts() -> list[tuple[str, str]]:
            with alerts._lock:
                payloads = list(alerts.payloads)
            return [(p["alarm"], p["state"]) for p in map(json.loads, payloads) if "alarm" in p]

        wait_until(lambda: {("disk_free", "raised"), ("disk_free", "cleared"),
                            ("gateway_clock", "raised"), ("gateway_clock", "cleared"),
                            ("station_silent", "raised")} <= set(alarm_alerts()),
                   timeout_s=30, what="alarm alerts on MQTT")
        assert GATEWAY_ALERTS == "_gateway"
    finally:
        gw.stop()
        alerts.close()


def test_metrics_on_a_loopback_port(station_bus: StationBus, config_file: Path) -> None:
    import urllib.request
    from dataclasses import replace

    from watershed.devservers import free_port
    from watershed.gateway.config import load_config

    port = free_port()
    gw = Gateway(replace(load_config(config_file), metrics_port=port))
    gw.start()
    try:
        sample(station_bus, SAN, ["1.0", "2.0"])
        wait_until(lambda: gw.store.counts()["readings_received"] == 2, what="two readings")

        def scrape() -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10
                                          ).read().decode()

        wait_until(lambda: 'watershed_gateway_station_battery_millivolts{station="SAN-01"} 12700.0'
                   in scrape(), what="the station's battery in the metrics")
        text = scrape()
        assert "watershed_gateway_readings_received_total 2.0" in text
        assert 'watershed_gateway_alarm_active{alarm="disk_free",station=""} 0.0' in text
        assert "watershed_gateway_clock_synchronised 1.0" in text
        assert "process_resident_memory_bytes" in text
    finally:
        gw.stop()
