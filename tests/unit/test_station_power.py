"""The power budget `watershed station check` prints for a config (issue 14, item 1): the
river-stage example on an ESP32 gives hardware/README.md's worked figure, and the budget follows
the config (a faster sampling or poll costs more, a bigger battery lasts longer)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from watershed.cli import main
from watershed.station_tools.check import pin_map
from watershed.station_tools.power import budget

EXAMPLES = Path(__file__).resolve().parents[2] / "hardware" / "examples"
RIVER = json.loads((EXAMPLES / "river_stage.json").read_text())
ESP32 = pin_map("esp32")["power"]


def test_the_river_stage_example_costs_what_the_hardware_readme_works_out():
    b = budget(RIVER, ESP32, poll_s=60)
    assert b.total_mah_per_day == pytest.approx(60, abs=2)  # hardware/README.md: ≈ 60 mAh/day
    assert b.days_without_sun(7.0) == pytest.approx(58, abs=2)  # 7 Ah to 50 % depth


def test_sampling_faster_and_polling_faster_cost_more():
    fast = copy.deepcopy(RIVER)
    fast["channels"][0]["interval_s"] = 60  # the SDI-12 transducer every minute
    base = budget(RIVER, ESP32, poll_s=60).total_mah_per_day
    assert budget(fast, ESP32, poll_s=60).total_mah_per_day > base + 10
    assert budget(RIVER, ESP32, poll_s=5).total_mah_per_day > base


def test_the_pico_without_a_usb_bridge_draws_far_less_than_the_devkit():
    pico = copy.deepcopy(RIVER)
    pico["board"]["name"] = "rp2"
    assert budget(pico, pin_map("rp2")["power"]).total_mah_per_day < 25


def test_check_prints_the_budget_for_the_battery_given(capsys):
    path = str(EXAMPLES / "river_stage.json")
    assert main(["station", "check", path, "--board", "esp32", "--battery-ah", "14"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].split()[:2] == ["total", "60.5"]
    assert "a 14 Ah battery lasts 116 days without sun" in out[-1]


def test_a_poll_interval_that_is_not_positive_is_refused_by_name(capsys):
    path = str(EXAMPLES / "river_stage.json")
    with pytest.raises(SystemExit) as e:
        main(["station", "check", path, "--board", "esp32", "--poll-s", "0"])
    assert e.value.code == 2
    assert "argument --poll-s: must be a positive number, not 0" in capsys.readouterr().err
