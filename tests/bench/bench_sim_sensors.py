"""Station-days simulated per wall second with every sensor kind on its simulated device:
scenarios/full_set_thirty_days.toml (three stations: an SDI-12 bus of three sensors, serial
radar, 4-20 mA, BME280, rain gauges and batteries, on a bus and two radios, every device fault)
for its thirty days through the real pipeline (`make test` runs its first two days:
tests/integration/test_sim_sensor_kinds.py).

``station_days_per_wall_s`` counts the whole run (simulated time, then the drain until InfluxDB
holds every reading); ``missing`` and ``mismatched`` must be 0 (``ok``) for it to mean anything.
The issue's target for 50 stations with the full set is 2 station-days a wall second."""

from __future__ import annotations

import tempfile
from pathlib import Path

from watershed_sim.runner import run_scenario
from watershed_sim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "full_set_thirty_days.toml"


def run() -> dict:
    scenario = load_scenario(SCENARIO)
    with tempfile.TemporaryDirectory(prefix="bench-sim-sensors-") as workdir:
        result = run_scenario(scenario, Path(workdir))
    days = scenario.duration_s / 86400
    wall = result.wall_s + result.drain_wall_s
    return {
        "scenario": scenario.name, "stations": len(scenario.stations), "sim_days": days,
        "sensor_entries": sum(len(s.sensors) for s in scenario.stations),
        "speed": scenario.speed, "wall_s": round(wall, 1),
        "drain_wall_s": round(result.drain_wall_s, 1),
        "clock_held_s": {k: round(v, 1) for k, v in result.clock_held_s.items()},
        "clock_steps": result.clock_steps,
        "station_days_per_wall_s": round(days * len(scenario.stations) / wall, 3),
        "target_station_days_per_wall_s_50_stations": 2,
        "faults_done": len(result.faults_done),
        "readings": result.expected, "missing": result.missing,
        "mismatched": result.mismatched, "firmware_faults": result.firmware_faults,
        "ok": result.ok,
    }
