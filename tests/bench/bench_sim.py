"""Simulated days per wall-clock second: the standard scenario (five stations, a bus and two
radios, faults) for five simulated days through the real pipeline, servers included.

``sim_days_per_wall_s`` counts the whole run: simulated time at the scenario's speed, then the
drain until InfluxDB holds every reading (so a pipeline that falls behind scores lower). The
speed itself caps it (``speed_days_per_wall_s``); ``missing`` and ``mismatched`` must be 0 for
the figure to mean anything (``ok``)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "thirty_days_five_stations.toml"
DAYS = 5


def run() -> dict:
    scenario = dataclasses.replace(load_scenario(SCENARIO), duration_s=DAYS * 86400)
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as workdir:
        result = run_scenario(scenario, Path(workdir))
    return {
        "scenario": scenario.name, "stations": len(scenario.stations), "sim_days": DAYS,
        "speed": scenario.speed, "speed_days_per_wall_s": round(scenario.speed / 86400, 3),
        "wall_s": round(result.wall_s + result.drain_wall_s, 1),
        "drain_wall_s": round(result.drain_wall_s, 1),
        # wall seconds the harness held time (a station awake, a link busy, settling)
        "clock_held_s": {k: round(v, 1) for k, v in result.clock_held_s.items()},
        "sim_days_per_wall_s": round(result.sim_days_per_wall_s, 3),
        "readings": result.expected, "missing": result.missing,
        "mismatched": result.mismatched, "ok": result.ok,
    }
