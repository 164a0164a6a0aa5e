"""``watershed demo``: the main job, locally, on an embedded default scenario.

A few stations on three Andean basins run the real firmware (MicroPython unix port) through a
storm; the gateway polls them over virtual serial links, mosquitto carries the readings, the
ingest writes them to influxd. At the end it prints produced / stored / lost, where lost must be
0, and how to query the data.
"""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoSettings:
    stations: int = 3
    hours: float = 6.0
    speed: int = 720
    workdir: Path = Path(".demo")
    keep: bool = False


def run_demo(settings: DemoSettings) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from watershed_sim.micropython import MicroPythonMissing
    from watershed_sim.pipeline import DEFAULT_DATABASE as DATABASE
    from watershed_sim.pipeline import Pipeline, PipelineSettings
    from watershed_sim.report import format_table

    from .devservers import MissingDependency

    if not 1 <= settings.stations <= 30 or settings.hours <= 0 or settings.speed < 1:
        print("error: --stations must be 1-30, --hours > 0, --speed >= 1", file=sys.stderr)
        return 2
    workdir = settings.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    pipeline = Pipeline(PipelineSettings(workdir=workdir, stations=settings.stations,
                                         speed=settings.speed))
    wall_s = settings.hours * 3600 / settings.speed
    print(f"demo: {settings.stations} stations, {settings.hours:g} simulated hours at "
          f"{settings.speed}x (about {wall_s:.0f} s), working in {workdir}")
    try:
        pipeline.start()
        assert pipeline.influxd is not None and pipeline.mosquitto is not None
        print(f"demo: mosquitto on 127.0.0.1:{pipeline.mosquitto.port}, "
              f"influxd on {pipeline.influxd.url}, stations running")
        pipeline.run_for(settings.hours * 3600)
        produced = pipeline.produced()
        print("demo: simulated time is up; waiting for every reading to reach InfluxDB")
        reports = pipeline.wait_until_stored(produced, timeout_s=120)
    except (MissingDependency, MicroPythonMissing) as e:
        print(f"error: {e}", file=sys.stderr)
        pipeline.stop()
        return 3
    except BaseException:
        pipeline.stop()
        raise
    gateway_stats = pipeline.gateway.stats() if pipeline.gateway else {}
    ingest_stats = pipeline.ingest.stats() if pipeline.ingest else {}
    pipeline.stop(keep_servers=settings.keep)

    expected = sum(r.expected for r in reports)
    stored = sum(r.stored - len(r.mismatched) for r in reports)
    mismatched = sum(len(r.mismatched) for r in reports)
    lost = expected - stored
    print()
    print(format_table(reports))
    print()
    print(f"readings produced: {expected}")
    print(f"stored in InfluxDB (exact value, flags, time): {stored}")
    print(f"lost: {lost}" + (f" (of which {mismatched} stored wrongly)" if mismatched else ""))
    print(f"gateway: {gateway_stats.get('store', {})}")
    print(f"ingest: { {k: v for k, v in ingest_stats.items() if not isinstance(v, dict)} }")
    for r in reports:
        for line in r.mismatched[:3]:
            print(f"  mismatch {r.station}/{r.channel}: {line}")
    url = pipeline.influxd.url if pipeline.influxd else "http://127.0.0.1:PORT"
    station = pipeline.stations[0].station_id if pipeline.stations else "SAN-01"
    print()
    print("query the data (InfluxQL over HTTP):")
    print(f"  curl -G '{url}/query' --data-urlencode 'db={DATABASE}' --data-urlencode "
          f"\"q=SELECT value, flags FROM readings WHERE station='{station}' AND "
          f"channel='stage_m'\"")
    if settings.keep and pipeline.mosquitto and pipeline.influxd:
        print(f"servers left running: stop them with `kill {pipeline.mosquitto.pid} "
              f"{pipeline.influxd.pid}`")
    else:
        print(f"(servers stopped; rerun with --keep to query them; data stays in {workdir})")
    return 0 if lost == 0 and expected > 0 else 1
