"""Issue 13, item 2: the end-to-end behaviour in a scenario. scenarios/pipeline_outages_one_day.toml
kills the broker, restarts the ingest and kills InfluxDB for eight hours while the stations
report; the gateway holds every reading until the ingest confirms it and resends only what was
not confirmed. Servers of its own: the run kills them."""

from __future__ import annotations

from pathlib import Path

import pytest

from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

pytestmark = [pytest.mark.integration, pytest.mark.firmware]

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "pipeline_outages_one_day.toml"


def test_broker_ingest_and_influxdb_outages_lose_nothing_and_resend_only_the_unconfirmed(
        tmp_path) -> None:
    scenario = load_scenario(SCENARIO)
    result = run_scenario(scenario, tmp_path)
    assert result.missing == 0 and result.mismatched == 0, result.explanation
    assert result.ok and result.expected == 3 * 97 + 25  # every 15 min (hourly: battery)
    assert [what for _, what in result.faults_done] == [
        "broker down", "broker up", "ingest down", "ingest up", "influxdb down", "influxdb up"]
    # What the ingest had confirmed is never published again: at most the readings the
    # outages caught unconfirmed (those of the broker's three hours and InfluxDB's eight).
    assert result.readings_resent <= (3 + 8) * (3 * 4 + 1)
    assert result.to_json()["readings_resent"] == result.readings_resent
