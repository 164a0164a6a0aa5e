"""Scenario files: what they build, and bad files rejected with file, line and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from watershed_sim.scenario import ScenarioError, load_scenario, parse_scenario
from watershed.toml_lines import key_lines

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

GOOD = """\
[scenario]
name = "small"
start = 2026-03-01T00:00:00Z
duration = "2d"
speed = 3600

[[link]]
name = "bus-1"
kind = "bus"

[[link.outage]]
at = "1d"
duration = "2h"

[[station]]
id = "SAN-01"
address = 1
basin = "santiago"
link = "bus-1"

[[station.sensor]]
channel = "stage_m"
pin = 26
interval_s = 900
exponent = -3
scale_num = 5000
scale_den = 65535
source = "stage_m"

[[station.sensor]]
channel = 3
pin = 27
interval_s = 900
exponent = -2
scale_num = 4000
scale_den = 65535
source = "water_temp_c"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as e:
        parse_scenario(text, Path("s.toml"))
    return e.value.problems


def test_a_good_scenario_builds_what_it_says() -> None:
    s = parse_scenario(GOOD, Path("s.toml"))
    assert s.start == 1772323200 and s.duration_s == 2 * 86400 and s.speed == 3600
    assert s.links[0].noise.outages[0].start == s.start + 86400
    assert s.links[0].noise.outages[0].end == s.start + 86400 + 7200
    assert [x.channels for x in s.stations[0].sensors] == [(1,), (3,)]
    assert s.stations[0].sensors[0].entry == {
        "sensor": "analog", "channel": 1, "pin": 26, "interval_s": 900, "exponent": -3,
        "scale_num": 5000, "scale_den": 65535}
    assert s.stations[0].sensors[1].sources == ("water_temp_c",)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_scenario_loads(path: Path) -> None:
    assert load_scenario(path).stations


def test_a_syntax_error_names_file_and_line() -> None:
    [problem] = problems(GOOD.replace('kind = "bus"', 'kind = "bus'))
    assert problem.startswith("s.toml:9: not valid TOML")


@pytest.mark.parametrize("change,expected", [
    (('pin = 27', 'pin = 300'), "s.toml:32: station[0].sensor[1].pin: must be a whole number 0 to 48"),
    (('source = "water_temp_c"', 'source = "wind"'), "s.toml:37: station[0].sensor[1].source:"),
    (('link = "bus-1"', 'link = "bus-2"'), "s.toml:19: station[0].link: no [[link]] is named 'bus-2'"),
    (('duration = "2h"', 'duration = "2 hours"'), "s.toml:13: link[0].outage[0].duration: expected a duration such as "
     "\"90s\", \"15m\", \"6h\", \"30d\" or seconds, got '2 hours'"),
    (('kind = "bus"', 'kind = "carrier pigeon"'), "s.toml:9: link[0].kind: expected one of bus, radio, got 'carrier pigeon'"),
    (('channel = 3', 'channel = "depth_ft"'), "s.toml:31: station[0].sensor[1].channel: 'depth_ft' is not in"),
    (('speed = 3600', 'sped = 3600'), "s.toml:5: scenario.sped: unknown key"),
    (('address = 1', 'address = 0'), "s.toml:17: station[0].address: expected an integer from 1 to 254, got 0"),
])
def test_a_semantic_error_names_file_line_and_key(change: tuple[str, str], expected: str) -> None:
    found = problems(GOOD.replace(*change))
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems(GOOD.replace("pin = 27", "pin = 26").replace('basin = "santiago"', 'basin = "a b"'))
    assert len(found) == 2
    assert any("pin 26 is used by an earlier sensor" in p for p in found)


def test_key_lines_number_arrays_of_tables_like_tomllib() -> None:
    lines = key_lines(GOOD)
    assert lines[("station", 0, "sensor", 1, "pin")] == 32
    assert lines[("link", 0, "outage", 0, "at")] == 12
    assert lines[("scenario", "speed")] == 5


def test_a_file_reports_every_problem_with_its_line() -> None:
    found = problems(GOOD.replace("pin = 27", "pin = 300").replace('kind = "bus"', 'kind = "can"')
                     .replace("speed = 3600", "sped = 3600"))
    assert found == [
        "s.toml:5: scenario.sped: unknown key (known here: description, duration, name, seed, "
        "speed, start)",
        "s.toml:9: link[0].kind: expected one of bus, radio, got 'can'",
        "s.toml:32: station[0].sensor[1].pin: must be a whole number 0 to 48"]
