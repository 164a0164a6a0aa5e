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
