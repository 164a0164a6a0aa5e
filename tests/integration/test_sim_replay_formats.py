"""Real records in their own formats (CSV, Campbell TOA5, iMHEA level and rain logs, tip lists)
replayed as truth through the whole real pipeline (firmware, links, gateway, mosquitto, ingest,
influxd): every recorded value reaches InfluxDB exactly at its time moved to the scenario start,
and every step the record lacks (not written, or excluded by its flags) arrives flagged
missing; every recorded tip is an edge on a rain gauge's pin, and the rain of each reading is
exactly its interval's tips × the bucket."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from tests.integration.test_sim_scenarios import SCENARIOS, missing_lines, stored_series
from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

MISSING = 0x01

# scenario, station, channel as stored, values recorded, steps missing (seconds from the start)
CASES = [
    # the hour 2009-05-25 05:00 UTC is not in the NOAA file
    ("noaa_valdez_air_replay", "VDZ-01", "air_temp_c", 95, [77 * 3600]),
    # the logger skipped 13:19 and 17:36 (it wrote 13:18 and 17:35 twice)
    ("cr800_halligan_stage_replay", "HAL-01", "ch128", 358, [3 * 60, 260 * 60]),
    # 16/08/2013 11:30 "I,P" and 12:00 P: excluded by the iMHEA flags, the D row kept
    ("imhea_chachapoyas_level_replay", "CHA-02", "ch128", 142, [127800, 129600]),
]


@pytest.mark.parametrize(("name", "station", "channel", "recorded", "missing"), CASES,
                         ids=[case[0] for case in CASES])
def test_a_record_in_its_own_format_reaches_influxdb_exactly(
        name, station, channel, recorded, missing, tmp_path, mosquitto, influxd):
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    [series] = scenario.replays.values()
    assert len(series.times) == recorded
    assert [t - scenario.start for t in series.gaps()] == missing
    database = f"replay_{uuid.uuid4().hex[:8]}"
    result = run_scenario(scenario, tmp_path, database=database, mosquitto=mosquitto,
                          influxd=influxd)
    stored = stored_series(influxd.url, database, station, channel,
                           scenario.start + scenario.duration_s)
    assert not missing_lines(result), missing_lines(result)
    assert result.firmware_faults == []
    wrong = [(t, v, stored.get(t)) for t, v in zip(series.times, series.values)
             if stored.get(t) != (Decimal(v), 0)]
    assert wrong == [], f"{len(wrong)} recorded values not exact in InfluxDB: {wrong[:5]}"
    for t in series.gaps():
        assert stored[t][0] is None and stored[t][1] & MISSING  # missing, not a number
    assert sorted(stored) == sorted([*series.times, *series.gaps()])  # nothing else, unshifted


@pytest.mark.parametrize("name", ["imhea_piura_rain_replay", "tips_piura_rain_replay"])
def test_recorded_tips_are_the_rain_in_influxdb_exactly(name, tmp_path, mosquitto, influxd):
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    tips = scenario.replays["piu_04_rain"]
    assert len(tips.tips) == 269  # the log's unflagged 0.2 mm rows; its I/D/X/P/V rows not rain
    database = f"rain_{uuid.uuid4().hex[:8]}"
    result = run_scenario(scenario, tmp_path, database=database, mosquitto=mosquitto,
                          influxd=influxd)
    end = scenario.start + scenario.duration_s
    stored = sorted(stored_series(influxd.url, database, "PIU-04", "rain_mm", end).items())
    assert not missing_lines(result), missing_lines(result)
    assert result.firmware_faults == []
    assert len(stored) == 73  # three-hourly, from the start to the end (217 h)
    previous = -float("inf")
    for t, (value, flags) in stored:
        in_interval = sum(1 for tip in tips.tips if previous < tip <= t)
        assert (value, flags) == (Decimal(in_interval) * Decimal("0.2"), 0), t
        previous = t
    reported = [tip for tip in tips.tips if tip <= stored[-1][0]]  # those after: the next one's
    assert sum(v for _, (v, _) in stored) == Decimal(len(reported)) * Decimal("0.2")
    assert len(reported) >= 267
