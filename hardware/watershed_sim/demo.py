"""``watershed demo``: the main job, locally, on an embedded default scenario.

The scenario file shipped with the package (``data/demo_storm.toml``): a few stations on three
Andean basins run the real firmware (MicroPython unix port) through a storm; the gateway polls
them over a virtual RS-485 bus, mosquitto carries the readings, the ingest writes them to
influxd. It runs through the scenario runner (``watershed sim run`` does the same for any
file) and ends with produced / stored / lost, where lost must be 0, and how to query the data.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from watershed.devservers import MissingDependency
from watershed.firmware_build import MpyCrossMissing

from .micropython import MicroPythonMissing
from .report import format_table
from .runner import run_scenario
from .scenario import Scenario, ScenarioError, parse_scenario
from .testbed import DEFAULT_DATABASE as DATABASE
from .testbed import Pipeline

DEFAULT_SCENARIO = Path(__file__).resolve().parent / "data" / "demo_storm.toml"


@dataclass(frozen=True)
class DemoSettings:
    stations: int = 3
    hours: float = 6.0
    speed: int = 720
    workdir: Path = Path(".demo")
    keep: bool = False
    scenario: Path = DEFAULT_SCENARIO


def demo_scenario(settings: DemoSettings) -> Scenario:
    """The scenario file with the settings' hours, speed and number of stations: the first
    ``stations`` of the file, or more made like them (same sensors and link, next basin)."""
    # A scenario without a start begins at the current hour; the demo's begins ``hours``
    # earlier, so that its data lies in the past, where `watershed query` (end: now) finds it.
    try:
        text = settings.scenario.read_text()
    except OSError as e:
        raise ScenarioError(f"{settings.scenario}: {e}") from None
    scenario = parse_scenario(text, settings.scenario, now=time.time() - settings.hours * 3600)
    specs = list(scenario.stations[:settings.stations])
    basins = [st.basin for st in scenario.stations]
    for i in range(len(specs), settings.stations):
        model = scenario.stations[i % len(scenario.stations)]
        basin = basins[i % len(basins)]
        specs.append(dataclasses.replace(model, id=f"{basin[:3].upper()}-{i + 1:02d}",
                                         address=i + 1, basin=basin, power_cuts=()))
    return dataclasses.replace(scenario, stations=tuple(specs),
                               duration_s=settings.hours * 3600, speed=settings.speed)


def run_demo(settings: DemoSettings) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not 1 <= settings.stations <= 30 or settings.hours <= 0 or settings.speed < 1:
        print("error: --stations must be 1-30, --hours > 0, --speed >= 1", file=sys.stderr)
        return 2
    try:
        scenario = demo_scenario(settings)
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    workdir = settings.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    wall_s = scenario.duration_s / scenario.speed
    print(f"demo: scenario {scenario.name} ({settings.scenario}): "
          f"{', '.join(st.id for st in scenario.stations)}; {settings.hours:g} simulated hours "
          f"at {settings.speed}x (about {wall_s:.0f} s), working in {workdir}")
    pipelines: list[Pipeline] = []
    try:
        result = run_scenario(scenario, workdir, database=DATABASE, drain_timeout_s=120,
                              keep_servers=settings.keep, pipeline_out=pipelines)
    except (MissingDependency, MicroPythonMissing, MpyCrossMissing) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    pipeline = pipelines[0]
    ingest_stats = pipeline.ingest.stats() if pipeline.ingest else {}
    reports = result.reports

    expected = result.expected
    mismatched = result.mismatched
    stored = sum(r.stored for r in reports) - mismatched
    lost = expected - stored
    print()
    print(format_table(reports))
    print()
    print(f"readings produced: {expected}")
    print(f"stored in InfluxDB (exact value, flags, time): {stored}")
    print(f"lost: {lost}" + (f" (of which {mismatched} stored wrongly)" if mismatched else ""))
    print(f"gateway: {result.gateway_stats.get('store', {})}")
    print(f"ingest: { {k: v for k, v in ingest_stats.items() if not isinstance(v, dict)} }")
    print(f"{scenario.duration_s / 3600:g} simulated hours in "
          f"{result.wall_s + result.drain_wall_s:.0f} s, of which {result.drain_wall_s:.0f} s "
          f"waiting for the last readings")
    for r in reports:
        for line in r.mismatched[:3]:
            print(f"  mismatch {r.station}/{r.channel}: {line}")
    for line in result.explanation:
        print(f"  {line}")
    url = pipeline.influxd.url if pipeline.influxd else "http://127.0.0.1:PORT"
    station = scenario.stations[0].id
    print()
    print("query the data:")
    print(f"  watershed query --url {url} --db {DATABASE} --station {station} "
          f"--channel stage_m --start {_iso(scenario.start)}")
    if settings.keep and pipeline.mosquitto and pipeline.influxd:
        print(f"servers left running: stop them with `kill {pipeline.mosquitto.pid} "
              f"{pipeline.influxd.pid}`")
    else:
        print(f"(servers stopped; rerun with --keep to query them; data stays in {workdir})")
    return 0 if lost == 0 and expected > 0 else 1


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
