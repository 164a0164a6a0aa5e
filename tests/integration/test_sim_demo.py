"""`watershed demo` runs the embedded default scenario through the scenario runner, its own
servers included, and ends with produced / stored / lost = 0 and how to query."""

from __future__ import annotations

import pytest

from watershed_sim.demo import DemoSettings, run_demo

pytestmark = [pytest.mark.integration, pytest.mark.firmware]


def test_the_demo_loses_nothing_and_says_how_to_query(tmp_path, capsys):
    code = run_demo(DemoSettings(stations=2, hours=1.5, speed=720, workdir=tmp_path / "demo"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "scenario demo_storm" in out and "SAN-01, MAY-02" in out
    assert "lost: 0" in out
    produced = int(out.split("readings produced: ")[1].split()[0])
    assert produced >= 2 * 2 * 5  # two stations, 15-min channels, 1.5 h
    assert "curl -G" in out and "SELECT value, flags FROM readings" in out
