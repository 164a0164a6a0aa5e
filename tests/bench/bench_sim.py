"""Simulated days per wall-clock second: the standard scenario (five stations, a bus and two
radios, faults) for its thirty simulated days through the real pipeline, servers included
(`make test` runs the same faults in six days: six_days_five_stations.toml).

``sim_days_per_wall_s`` counts the whole run: simulated time at the scenario's speed, then the
drain until InfluxDB holds every reading (so a pipeline that falls behind scores lower). Time
moves only at the gateway's poll cycles (watershed_sim.clock.HarnessClock), by up to ``speed`` ×
the poll interval a cycle, and a cycle waits for no wall time (``speed_days_per_wall_s``: the
pace were each cycle to take its poll interval of wall time, as a real gateway's does);
``missing`` and ``mismatched`` must be 0 for the figure to mean anything (``ok``)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "thirty_days_five_stations.toml"
DAYS = 30


def run() -> dict:
    scenario = dataclasses.replace(load_scenario(SCENARIO), duration_s=DAYS * 86400)
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as workdir:
        result = run_scenario(scenario, Path(workdir))
    return {
        "scenario": scenario.name, "stations": len(scenario.stations), "sim_days": DAYS,
        "speed": scenario.speed, "speed_days_per_wall_s": round(scenario.speed / 86400, 3),
        "wall_s": round(result.wall_s + result.drain_wall_s, 1),
        "drain_wall_s": round(result.drain_wall_s, 1),
        # wall seconds the harness held time (a station awake, a link busy, a timeline event
        # due, the links not all between poll cycles yet), and the steps time moved in
        "clock_held_s": {k: round(v, 1) for k, v in result.clock_held_s.items()},
        "clock_steps": result.clock_steps,
        "sim_days_per_wall_s": round(result.sim_days_per_wall_s, 3),
        "readings": result.expected, "missing": result.missing,
        "mismatched": result.mismatched, "ok": result.ok,
    }
