"""Scenario files run through the whole real pipeline (firmware, links, gateway, mosquitto,
ingest, influxd) and checked reading by reading against the truth."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from watershed.hydro.influxql import query
from watershed_sim.testbed import Pipeline
from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def missing_lines(result) -> list[str]:
    lines = [f"{r.station}/{r.channel}: missing seqs {r.missing[:10]}, mismatched "
             f"{r.mismatched[:3]}" for r in result.reports if r.missing or r.mismatched]
    return lines + result.explanation if lines else []


def test_thirty_days_of_five_stations_with_faults_lose_nothing(tmp_path, mosquitto, influxd):
    scenario = load_scenario(SCENARIOS / "thirty_days_five_stations.toml")
    database = f"sim_{uuid.uuid4().hex[:8]}"
    result = run_scenario(scenario, tmp_path, database=database,
                          mosquitto=mosquitto, influxd=influxd, drain_timeout_s=120)
    assert result.expected > 20_000
    assert not missing_lines(result), missing_lines(result)
    assert result.firmware_faults == []  # five stations, 30 days, 48 KB heaps
    assert [what for _, what in result.faults_done] == ["SAN-02 power off", "SAN-02 power on"]
    bus = result.link_stats["bus-zamora"]
    assert bus["lost_outage"] > 0  # the outage really cut the bus
    # the day without power left its trace: SAN-02 reported the gap at boot (firmware/gap.py)
    cut_at, cut_end = scenario.start + 20 * 86400, scenario.start + 21 * 86400
    [(_, rows)] = query(influxd.url, database, "SELECT value FROM readings WHERE "
                        "station = 'SAN-02' AND channel = 'not_sampled_s'")
    [row] = rows
    back, seconds = int(row["time"]), int(row["value"])  # epoch s; the gap's length, s
    # (at 28800x a wall second is 8 simulated hours: the kill and the boot land near, not on)
    assert abs(back - seconds - cut_at) <= 3600 and cut_end <= back <= cut_end + 6 * 3600, row


def test_usgs_series_replayed_through_the_firmware_is_exact_in_influxdb(
        tmp_path, mosquitto, influxd):
    scenario = load_scenario(SCENARIOS / "usgs_agua_fria_replay.toml")
    series = scenario.replays["agua_fria"]
    database = f"usgs_{uuid.uuid4().hex[:8]}"
    pipelines: list[Pipeline] = []
    result = run_scenario(scenario, tmp_path, database=database, mosquitto=mosquitto,
                          influxd=influxd, pipeline_out=pipelines)
    assert not missing_lines(result), missing_lines(result)
    assert result.firmware_faults == []
    stored = {}
    for _, rows in query(influxd.url, database,
                         "SELECT value, flags FROM readings WHERE station = 'AGF-01' "
                         "AND channel = 'ch128'"):
        stored.update({row["time"]: row for row in rows})
    wrong = [(t, v, stored.get(t)) for t, v in zip(series.times, series.values)
             if t not in stored or stored[t]["value"] != Decimal(v)]
    assert len(series.times) == 714
    assert wrong == [], f"{len(wrong)} recorded values not exact in InfluxDB: {wrong[:5]}"
    [gap] = series.gaps()
    assert stored[gap]["value"] is None and stored[gap]["flags"] & 0x01  # missing, not a number
