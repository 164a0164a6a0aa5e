"""A config that fails at boot never leaves a traceback and a dead station (issue 14, item 3):
the station runs on the last good config, or in safe mode, answering the gateway (HELLO, STATUS
with CONFIG_ERROR) and the console, and a config set from the console brings it back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.station_console import Console, Gateway
from watershed.contracts import wire as gw
from watershed.firmware_build import compile_firmware
from watershed_sim.serial_link import VirtualSerialLink

pytestmark = pytest.mark.firmware

T0 = 1763676000
ADDR = 6
STAGE = {"sensor": "analog", "pin": 26, "channel": 1, "interval_s": 5, "exponent": -3,
         "samples": 1}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_firmware(tmp_path_factory.mktemp("boot-mpy"))


@pytest.fixture
def link() -> Iterator[VirtualSerialLink]:
    with VirtualSerialLink() as link:
        yield link


def config(tmp_path: Path, link: VirtualSerialLink, **stage: Any) -> dict[str, Any]:
    for d in ("flash", "io"):
        (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / "io" / "adc26").write_text("1897\n")
    return {"station": "BOOT-01", "address": ADDR,
            "board": {"name": "unix", "data_dir": str(tmp_path / "flash"),
                      "io_dir": str(tmp_path / "io"), "sim_epoch": T0, "wall_epoch": T0,
                      "speed": 1},
            "link": {"port": link.station_path}, "channels": [dict(STAGE, **stage)]}


def canonical_hash(cfg: dict[str, Any]) -> int:
    return gw.config_hash(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode())


def hello_and_status(link: VirtualSerialLink) -> tuple[Any, Any]:
    gateway = Gateway(link.gateway_path)
    try:
        got = gateway.ask(gw.Poll(ADDR, gw.WANT_HELLO | gw.WANT_STATUS), (gw.Hello, gw.Status))
    finally:
        gateway.close()
    [hello] = [f for f in got if isinstance(f, gw.Hello)]
    [status] = [f for f in got if isinstance(f, gw.Status)]
    return hello, status


def test_a_bad_config_without_a_last_good_one_boots_in_safe_mode_and_is_repaired(
        micropython, compiled, tmp_path, link):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(tmp_path, link, interval_s="5")))
    con = Console(micropython, compiled, path)
    con.wait_for(lambda line: line.startswith("station "))
    assert "E config: channels.0.interval_s: must be a whole number 1 to 86400" in con.seen
    assert any(line.startswith("E config: safe mode") for line in con.seen), con.seen
    hello, status = hello_and_status(link)
    assert (hello.station_id, hello.config_hash) == ("BOOT-01", 0)
    assert status.state & gw.STATE_CONFIG_ERROR
    assert any(" error" in line for line in con.command("status"))

    assert con.command("set channels.0.interval_s 5") == []
    con.wait_for(lambda line: line == "C set channels.0.interval_s")
    good = config(tmp_path, link)
    line = con.wait_for(lambda line: line.startswith("I config "))
    assert line == f"I config {canonical_hash(good):08x} in force"
    assert json.loads(path.read_text()) == good
    con.wait_for(lambda line: line.startswith("R ") and line.split()[4] == "1897")
    _, status = hello_and_status(link)
    assert not status.state & gw.STATE_CONFIG_ERROR
    assert not any("Traceback" in line for line in con.seen), con.seen


def test_a_typo_at_boot_falls_back_to_the_last_good_config(micropython, compiled, tmp_path,
                                                           link):
    path = tmp_path / "config.json"
    good = config(tmp_path, link)
    (tmp_path / "config.json.bak").write_text(json.dumps(good))
    path.write_text(json.dumps(config(tmp_path, link, exponnent=-3)))
    con = Console(micropython, compiled, path)
    con.wait_for(lambda line: line.startswith("station "))
    assert any(line.startswith("E config: channels.0.exponnent: unknown key;")
               for line in con.seen), con.seen
    reading = con.wait_for(lambda line: line.startswith("R "))
    assert reading.split()[4:6] == ["1897", "-3"], "the last good config's exponent"
    hello, status = hello_and_status(link)
    assert hello.config_hash == canonical_hash(good)
    assert status.state & gw.STATE_CONFIG_ERROR, "not on the config at config.json"


def test_a_file_that_is_not_json_and_no_last_good_one_is_safe_mode_not_a_traceback(
        micropython, compiled, tmp_path, link):
    (tmp_path / "flash").mkdir()
    path = tmp_path / "config.json"
    path.write_text('station = BOOT-01')
    con = Console(micropython, compiled, path)
    con.wait_for(lambda line: line.startswith("station "))
    assert any("not valid JSON" in line for line in con.seen), con.seen
    status = con.command("status")
    assert any(line.startswith("C reset") and line.endswith(" error") for line in status)
    assert not any("Traceback" in line for line in con.seen), con.seen
