"""Nothing lost, end to end, under chaos (the short run of watershed_sim.chaos): simulated
stations through the real gateway, mosquitto, ingest and influxd processes while each is
killed again and again, influxd is stopped, the gateway's disk fills up, and two stations share
an address, one forges another's id and one sends out-of-range numbers. Every reading a station
made must be in InfluxDB exactly, under its own station, or named by a counter with its cause."""

from __future__ import annotations

import pytest

from watershed_sim.chaos.run import run_chaos, settings

pytestmark = pytest.mark.integration


def test_no_reading_is_lost_altered_or_misattributed_under_chaos(tmp_path):
    result = run_chaos(settings(tmp_path / "chaos"))
    report = result.report()
    figures = result.figures()
    assert sum(figures["faults"].values()) >= 7, report  # the faults did happen
    assert not result.fault_failures, report
    assert result.drained, report
    assert figures["lost"] == 0, report
    assert figures["altered"] == 0, report
    assert figures["misattributed"] == 0, report
    assert result.passed, report
