"""Issue 13, item 2: a station's clock that drifts (ppm) and steps (an RTC upset) in a scenario.
The harness gives the station a time of its own (clock.StationDrift); the real gateway sees the
offset in the station's STATUS and sets its clock again with TIME; the firmware keeps its slots
in order across the backward step. Nothing is lost, nothing is doubled."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tests.integration.test_sim_scenarios import SCENARIOS, missing_lines, stored_series
from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

PPM = 500  # 43 s a day: a cheap crystal in the cold


def test_a_drifting_and_stepping_clock_is_set_again_and_costs_nothing(tmp_path, mosquitto,
                                                                       influxd):
    base = load_scenario(SCENARIOS / "usgs_agua_fria_replay.toml")
    [station] = base.stations
    station = dataclasses.replace(station, clock_ppm=PPM,
                                  clock_steps=((base.start + 86400 + 420, -25.0),))
    scenario = dataclasses.replace(base, duration_s=2 * 86400, stations=(station,),
                                   gateway=dataclasses.replace(base.gateway,
                                                               status_interval_s=3600))
    database = f"clocks_{uuid.uuid4().hex[:8]}"
    pipeline = []
    result = run_scenario(scenario, tmp_path, database=database, mosquitto=mosquitto,
                          influxd=influxd, pipeline_out=pipeline)
    assert not missing_lines(result), missing_lines(result)
    assert result.firmware_faults == []
    end = scenario.start + scenario.duration_s
    stored = stored_series(influxd.url, database, "AGF-01", "ch128", end)
    assert sorted(stored) == list(range(scenario.start, int(end) + 1, 900))  # every slot once
    [link] = result.gateway_stats["links"].values()
    assert link["clock_drifts"] >= 2  # the drift, then the step, seen in STATUS and set again
    assert link["time_syncs"] >= 3
    console = pipeline[0].stations[0].console
    assert any("clock stepped" in line for line in console), console[-5:]
    assert any("AGF-01 clock steps by -25 s" in what for _, what in result.faults_done)
