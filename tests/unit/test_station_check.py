"""``watershed station check``: the firmware's own validator under CPython, one clear line per
defect naming its key, then the board's pin map and the channel catalogue (issue 14, item 3)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from watershed.cli import main
from watershed.station_tools.check import board_defects, firmware_defects

EXAMPLES = Path(__file__).resolve().parents[2] / "hardware" / "examples"
RIVER = json.loads((EXAMPLES / "river_stage.json").read_text())


def mutated(change: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(RIVER)
    change(cfg)
    return cfg


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_every_example_config_passes_for_its_board(example, capsys):
    path = EXAMPLES / example
    board = json.loads(path.read_text())["board"]["name"]
    assert main(["station", "check", str(path), "--board", board]) == 0
    out = capsys.readouterr().out
    assert f"ok for {board}" in out and "battery_v" in out and "volts" in out


# What the issue saw accepted, or crash the station, and the one line each now gets.
@pytest.mark.parametrize("change, key, what", [
    (lambda c: c["channels"][2].update(interval_s="60"), "channels.2.interval_s",
     "must be a whole number 1 to 86400"),
    (lambda c: c["channels"][2].update(exponnent=-3), "channels.2.exponnent", "unknown key"),
    (lambda c: c["channels"].append(dict(c["channels"][1])), "channels.3.channel",
     "channel 16 already comes from channels.1"),
    (lambda c: c.update(channels=[]), "channels", "empty"),
    (lambda c: c["board"].update(name="esp8266"), "board.name", "unknown board 'esp8266'"),
    (lambda c: c["quality"].update({"1": 5}), "quality.1", "must be an object"),
    (lambda c: c["outbox"].update(budget_bytes="big"), "outbox.budget_bytes",
     "must be a whole number"),
    (lambda c: c["channels"][0].update(shift=[0]), "channels.0.shift", "one entry per channel"),
    (lambda c: c["link"].update(port="/dev/ttyUSB1"), "link.port", "must be a UART id 0-9"),
    (lambda c: c.update(address=0), "address", "must be a whole number 1 to 254"),
])
def test_each_defect_is_one_line_naming_its_key(change, key, what):
    defects = firmware_defects(mutated(change))
    assert len(defects) == 1, defects
    assert defects[0][0] == key and what in defects[0][1], defects


def test_an_entry_without_sensor_is_the_older_analog_form_and_says_so():
    defects = firmware_defects(mutated(lambda c: c["channels"][2].pop("sensor")))
    assert [d[0] for d in defects] == ["channels.2.channel", "channels.2.no"], defects
    assert defects[0][1].startswith("unknown key; this takes ") and " no," in defects[0][1]
    assert defects[1][1] == "missing (required)"


@pytest.mark.parametrize("change, key, what", [
    (lambda c: c["channels"][2].update(pin=12), "channels.2.pin", "must not be used"),
    (lambda c: c["channels"][2].update(pin=23), "channels.2.pin", "has no ADC"),
    (lambda c: c["channels"][1].update(pin=23), "channels.1.pin", "cannot wake"),
    (lambda c: c["channels"][1].update(pin=25), "channels.1.pin",
     "already used by board.sdi12.2.tx"),
    (lambda c: c["channels"][0].update(channels=[1, 9]), "channels.0", "not in the catalogue"),
    (lambda c: c["channels"][0].update(channels=[1, 35]), "channels.0",
     "channel 35 is the station's report of slots not sampled"),
    (lambda c: c["link"].update(port=0), "link.port", "no UART 0"),
])
def test_the_pin_map_and_the_catalogue(change, key, what):
    cfg = mutated(change)
    assert firmware_defects(cfg) == []
    defects = board_defects(cfg, "esp32")
    assert [d[0] for d in defects] == [key] and what in defects[0][1], defects


def test_rp2_pin_functions_are_checked():
    cfg = json.loads((EXAMPLES / "radar_level.json").read_text())
    cfg["board"]["uarts"]["1"]["tx"] = 6  # UART1 TX is GPIO 4 or 8 on the RP2040
    assert board_defects(cfg, "rp2") == [
        ("board.uarts.1.tx", "GPIO 6 cannot be TX of bus 1 on rp2; it can be: 4, 8")]


def test_the_cli_prints_one_line_per_defect_and_fails(tmp_path, capsys):
    path = tmp_path / "site.json"
    path.write_text(json.dumps(mutated(lambda c: c["channels"][2].update(exponnent=-3,
                                                                          interval_s="60"))))
    assert main(["station", "check", str(path), "--board", "esp32"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}: channels.2.exponnent: unknown key; this takes ")
    assert err[1] == f"{path}: channels.2.interval_s: must be a whole number 1 to 86400"
    assert err[2] == f"{path}: 2 defect(s): fix them before flashing"


def test_a_file_that_is_not_json(tmp_path, capsys):
    path = tmp_path / "site.json"
    path.write_text("station = SAN-01\n")
    assert main(["station", "check", str(path), "--board", "rp2"]) == 1
    assert "config: not valid JSON" in capsys.readouterr().err
