"""Scenario files run through the whole real pipeline (firmware, links, gateway, mosquitto,
ingest, influxd) and checked reading by reading against the truth."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from watershed.hydro.influxql import query
from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def missing_lines(result) -> list[str]:
    lines = [f"{r.station}/{r.channel}: missing seqs {r.missing[:10]}, mismatched "
             f"{r.mismatched[:3]}" for r in result.reports if r.missing or r.mismatched]
    return lines + result.explanation if lines else []


# The six-day scenario with faults runs as the README says: test_readme_simulation.py.


def stored_series(influx_url: str, database: str, station: str, channel: str,
                  until: float) -> dict[int, tuple[Decimal | None, int]]:
    """(value, flags) by time of one channel in InfluxDB, up to ``until``."""
    stored = {}
    for _, rows in query(influx_url, database,
                         f"SELECT value, flags FROM readings WHERE station = '{station}' "
                         f"AND channel = '{channel}'"):
        stored.update({row["time"]: (row["value"], row["flags"]) for row in rows
                       if row["time"] <= until})
    return stored


@pytest.fixture(scope="module")
def usgs_replayed(tmp_path_factory, mosquitto, influxd):
    """The USGS replay scenario run once on an idle machine: (scenario, result, stored)."""
    scenario = load_scenario(SCENARIOS / "usgs_agua_fria_replay.toml")
    database = f"usgs_{uuid.uuid4().hex[:8]}"
    result = run_scenario(scenario, tmp_path_factory.mktemp("usgs"), database=database,
                          mosquitto=mosquitto, influxd=influxd)
    end = scenario.start + scenario.duration_s
    return scenario, result, stored_series(influxd.url, database, "AGF-01", "ch128", end)


def test_usgs_series_replayed_through_the_firmware_is_exact_in_influxdb(usgs_replayed):
    scenario, result, stored = usgs_replayed
    series = scenario.replays["agua_fria"]
    assert not missing_lines(result), missing_lines(result)
    assert result.firmware_faults == []
    wrong = [(t, v, stored.get(t)) for t, v in zip(series.times, series.values)
             if t not in stored or stored[t] != (Decimal(v), 0)]
    assert len(series.times) == 714
    assert wrong == [], f"{len(wrong)} recorded values not exact in InfluxDB: {wrong[:5]}"
    [gap] = series.gaps()
    assert stored[gap][0] is None and stored[gap][1] & 0x01  # missing, not a number
    assert sorted(stored) == sorted([*series.times, gap])  # nothing else, nothing shifted


def test_a_busy_machine_stores_the_same_series(usgs_replayed, tmp_path, mosquitto, influxd):
    # Two busy loops on this two-core machine: the stations, the gateway and the harness run
    # slower; time waits for them (clock.HarnessClock), so the series is the same.
    scenario, _, idle = usgs_replayed
    scenario = dataclasses.replace(scenario, duration_s=2 * 86400)
    end = scenario.start + scenario.duration_s
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        database = f"usgs_{uuid.uuid4().hex[:8]}"
        result = run_scenario(scenario, tmp_path, database=database, mosquitto=mosquitto,
                              influxd=influxd)
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()
    assert not missing_lines(result), missing_lines(result)
    loaded = stored_series(influxd.url, database, "AGF-01", "ch128", end)
    assert len(loaded) == 2 * 96 + 1  # every 15 min from the start to the end, both included
    assert loaded == {t: row for t, row in idle.items() if t <= end}
