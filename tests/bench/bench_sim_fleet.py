"""Station-days simulated per wall second for a fleet of stations with the full sensor set
(issue 13's target: 2 for 50 stations), for 50 stations and, beside it, for 5.

Every station carries the full set: an SDI-12 bus with a level transducer, an all-in-one
weather sensor and a radar surface-velocity sensor, a tipping-bucket rain gauge and the battery
(ZAM-01 of scenarios/full_set_thirty_days.toml, its device faults, event mode, quality limits
and alert included) plus a BME280 in the enclosure (CAT-01's, its temperature kept as the
logger's). Five stations share each RS-485 bus at the scenario's 9600 baud, noise and outage; the environment, speed and poll interval are the
scenario's. The run is the real pipeline: each station's firmware in its own MicroPython
process, the gateway in its own process, mosquitto, the ingest and influxd.

Figures per fleet: ``station_days_per_wall_s`` (simulated days × stations / wall seconds of
the whole run, start and drain included), ``missing`` and ``mismatched`` (must be 0: ``ok``),
``line_busy_fraction`` (the share of the buses' simulated time their bytes took at 9600
baud: the protocol's load on a real bus; in wall time a bus passes bytes ``speed`` times
faster, so the line never bounds the pace here), ``cpu_s_per_station_day`` (the bench's own
process: harness and ingest; and its children: the stations' MicroPython processes, the
gateway's process (watershed_sim/gateway_host.py), mosquitto, influxd; on this 2-core machine
2 station-days a second leaves 1 CPU-second per station-day for all of them together),
``cpu_busy_fraction`` (their CPU time over the machine's, wall seconds × cores: how near the
run is to the CPU's bound), ``files_on``
(``tmpfs``, or ``disk`` on a machine without /dev/shm: see TMPFS) and ``clock_held_s`` (wall
seconds the harness held time while stations were awake sampling, links carried bytes,
timeline events ran).

``WATERSHED_BENCH_FLEET_DAYS`` shortens the run (default 30 simulated days). The device
faults all fall in the first two days and cost wall seconds (a sensor that does not answer is
waited for by its station, its reply window in wall time; a station the bus outage hides
costs the gateway no reply timeout: the harness tells it no reply is coming), so a short
run's figure is lower than the thirty days'.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import tempfile
import time
from pathlib import Path

from watershed.contracts.channels import NUMBERS
from watershed_sim.airtime import BITS_PER_BYTE
from watershed_sim.runner import run_scenario
from watershed_sim.scenario import LinkSpec, Scenario, StationSpec, load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "full_set_thirty_days.toml"
FLEETS = (5, 50)
STATIONS_PER_BUS = 5
HEAP_KB = 80  # the full set with a BME280 too: more than ZAM-01's 64 KB
LOGGER_TEMP = NUMBERS["logger_temp_c"]
TARGET = 2  # station-days a wall second, 50 stations (issue 13)
# The run's files (the stations' flash, the gateway's store, InfluxDB's data) go on tmpfs: the
# figure is the simulation's pace, not the disk's. On this machine's disk every flash write a
# station syncs and every commit of the store waits on it: 3 days of 10 stations took 61 s
# there, 52 s on tmpfs.
TMPFS = Path("/dev/shm")


def fleet(base: Scenario, stations: int, days: float) -> Scenario:
    """``stations`` copies of the full-set station, five to a bus like the scenario's."""
    zam = next(s for s in base.stations if s.id == "ZAM-01")
    bme = next(sensor for s in base.stations for sensor in s.sensors if sensor.kind == "bme280")
    # in the enclosure, beside a weather sensor that has the air's: the logger's temperature
    # kept, its humidity and pressure read and not kept (channel 0)
    bme = dataclasses.replace(bme, entry={**bme.entry, "channels": [LOGGER_TEMP, 0, 0]})
    bus = next(link for link in base.links if link.name == zam.link)
    buses = [dataclasses.replace(bus, name=f"bus-{n + 1:02d}")
             for n in range(-(-stations // STATIONS_PER_BUS))]
    specs = [_station(zam, bme, n, buses) for n in range(stations)]
    return dataclasses.replace(base, name=f"fleet_{stations}_full_set", duration_s=days * 86400,
                               links=tuple(buses), stations=tuple(specs))


def _station(zam: StationSpec, bme, n: int, buses: list[LinkSpec]) -> StationSpec:
    return dataclasses.replace(
        zam, id=f"FLT-{n + 1:02d}", address=n % STATIONS_PER_BUS + 1,
        link=buses[n // STATIONS_PER_BUS].name, sensors=(*zam.sensors, bme), heap_kb=HEAP_KB,
        ratings=(), misnamed=())


def _cpu_s() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _scratch() -> str | None:
    """tmpfs for the run's files when the machine has one, else the default temporary folder."""
    usable = TMPFS.is_dir() and os.access(TMPFS, os.W_OK)
    return str(TMPFS) if usable else None


def run_fleet(stations: int, days: float) -> dict:
    scenario = fleet(load_scenario(SCENARIO), stations, days)
    own0, children0 = _cpu_s()
    started = time.monotonic()
    scratch = _scratch()
    prefix = f"bench-fleet-{stations}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=scratch) as workdir:
        result = run_scenario(scenario, Path(workdir), drain_timeout_s=600)
    wall = time.monotonic() - started
    own1, children1 = _cpu_s()
    station_days = days * stations
    line_bytes = sum(stats.get("bytes_sent", 0) for stats in result.link_stats.values())
    capacity = sum(link.baud / BITS_PER_BYTE for link in scenario.links)  # bytes a simulated second
    return {
        "stations": stations, "links": len(scenario.links), "sim_days": days,
        "sensor_entries_per_station": len(scenario.stations[0].sensors),
        "files_on": "tmpfs" if scratch else "disk",
        "wall_s": round(wall, 1), "drain_wall_s": round(result.drain_wall_s, 1),
        "station_days_per_wall_s": round(station_days / wall, 3),
        "cpu_s_per_station_day": {"harness_ingest": round((own1 - own0) / station_days, 2),
                                  "stations_gateway_servers": round((children1 - children0)
                                                                / station_days, 2)},
        # the share of the machine's CPU time the run used: near 1, the pace is the CPU's
        "cpu_busy_fraction": round((own1 - own0 + children1 - children0)
                                   / (wall * (os.cpu_count() or 1)), 2),
        # every byte the buses carried (polls, replies, ACKs) as a share of the simulated time
        "line_busy_fraction": round(line_bytes / (capacity * days * 86400), 4),
        "line_bytes_per_station_day": round(line_bytes / station_days),
        "clock_held_s": {k: round(v, 1) for k, v in result.clock_held_s.items()},
        "readings": result.expected, "missing": result.missing,
        "mismatched": result.mismatched, "firmware_faults": len(result.firmware_faults),
        # what went wrong, should anything: a figure alone cannot be chased down afterwards
        "first_problems": _first_problems(result),
        "ok": result.ok,
    }


def _first_problems(result, limit: int = 10) -> list[str]:
    """The first mismatched and missing readings and firmware faults, as the report says them."""
    problems = [f"{r.station} {r.channel}: {m}" for r in result.reports for m in r.mismatched]
    problems += [f"{r.station} {r.channel}: seq {seq} missing" for r in result.reports
                 for seq in r.missing]
    return (problems + list(result.firmware_faults))[:limit]


def run() -> dict:
    days = float(os.environ.get("WATERSHED_BENCH_FLEET_DAYS", 30))
    figures = {f"stations_{n}": run_fleet(n, days) for n in FLEETS}
    figures["target_station_days_per_wall_s_50_stations"] = TARGET
    return figures
