"""`watershed demo` runs the embedded default scenario through the scenario runner, its own
servers included, and ends with produced / stored / lost = 0 and a `watershed query` line that
shows its data (the demo's data lies in the past, where the query's default end, now, finds it)."""

from __future__ import annotations

import os
import shlex
import signal

import pytest

from watershed.cli import main
from watershed_sim.demo import DemoSettings, run_demo

pytestmark = [pytest.mark.integration, pytest.mark.firmware]


def test_the_demo_loses_nothing_and_its_query_line_shows_the_data(tmp_path, capsys):
    code = run_demo(DemoSettings(stations=2, hours=1.5, speed=720, workdir=tmp_path / "demo",
                                 keep=True))
    out = capsys.readouterr().out
    pids = [int(p) for p in out.split("stop them with `kill ")[1].split("`")[0].split()]
    try:
        assert code == 0, out
        assert "scenario demo_storm" in out and "SAN-01, MAY-02" in out
        assert "lost: 0" in out
        produced = int(out.split("readings produced: ")[1].split()[0])
        assert produced >= 2 * 2 * 5  # two stations, 15-min channels, 1.5 h
        [line] = [ln for ln in out.splitlines() if ln.strip().startswith("watershed query")]
        assert main(shlex.split(line)[1:] + ["--format", "csv"]) == 0
        rows = capsys.readouterr().out.splitlines()[1:]
        assert len(rows) >= 6 and all(",SAN-01,santiago,stage_m," in r for r in rows)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
