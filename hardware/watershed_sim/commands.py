"""Simulation subcommands of ``watershed`` (``demo``, ``sim run``); the command line adds them
only when this package is installed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_MISSING, EXIT_SCENARIO, EXIT_DEPENDENCY = 0, 1, 2, 3


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add this area's subcommands to the ``watershed`` parser."""
    p = sub.add_parser("demo", help="run the whole pipeline locally on simulated stations",
                       description="Start mosquitto and influxd on loopback, simulated stations "
                                   "running the real firmware in MicroPython, the gateway and "
                                   "the ingest; run some simulated hours; print what was "
                                   "produced, stored and lost.")
    p.add_argument("--stations", type=int, default=3, help="number of stations (default 3)")
    p.add_argument("--hours", type=float, default=6.0, help="simulated hours (default 6)")
    p.add_argument("--speed", type=int, default=720,
                   help="simulated seconds per wall-clock second (default 720)")
    p.add_argument("--workdir", type=Path, default=Path(".demo"),
                   help="where servers, stores and station flash live (default .demo)")
    p.add_argument("--keep", action="store_true",
                   help="leave mosquitto and influxd running at the end, for querying")
    p.set_defaults(func=_demo)

    p = sub.add_parser("sim", help="hardware-in-the-loop simulation")
    sim = p.add_subparsers(dest="sim_command", required=True, metavar="ACTION")
    r = sim.add_parser(
        "run", help="run a scenario file through the real pipeline",
        description="Run a TOML scenario (stations, sensors, links, faults, environment or "
                    "replayed records) against the real firmware, gateway, mosquitto, ingest "
                    "and influxd; show progress on a terminal; end with a truth-vs-stored report "
                    "per station and channel. "
                    "Exit 0 when every reading is stored exactly, 1 if any is missing or "
                    "wrong or a station crashed or ran out of memory, 2 for a bad scenario "
                    "file, 3 for a missing dependency.")
    r.add_argument("scenario", type=Path, help="scenario TOML file (see scenarios/)")
    r.add_argument("--workdir", type=Path, default=Path(".sim"),
                   help="where servers, stores and station flash live (default .sim)")
    r.add_argument("--speed", type=int, help="override the scenario's speed")
    r.add_argument("--keep", action="store_true",
                   help="leave mosquitto and influxd running and say where they are")
    r.add_argument("--json", action="store_true",
                   help="the report as JSON on stdout (the rest on stderr)")
    r.add_argument("--check", action="store_true", help="only validate the scenario file")
    r.set_defaults(func=_run)


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, run_demo
    return run_demo(DemoSettings(stations=args.stations, hours=args.hours, speed=args.speed,
                                 workdir=args.workdir, keep=args.keep))


def _run(args: argparse.Namespace) -> int:
    from watershed.devservers import MissingDependency
    from watershed.firmware_build import MpyCrossMissing

    from .micropython import MicroPythonMissing
    from .runner import run_scenario
    from .scenario import ScenarioError, load_scenario
    from .testbed import Pipeline

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_SCENARIO
    if args.speed:
        scenario = dataclasses.replace(scenario, speed=args.speed)
    if args.check:
        print(f"{args.scenario}: ok ({len(scenario.stations)} stations, "
              f"{scenario.duration_s / 86400:g} days at {scenario.speed}x)")
        return EXIT_OK
    # With --json, stdout carries the report alone; what a person reads goes to stderr.
    human = sys.stderr if args.json else sys.stdout
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"sim: {scenario.name}: {len(scenario.stations)} stations, "
          f"{scenario.duration_s / 3600:g} simulated hours at {scenario.speed}x "
          f"(about {scenario.duration_s / scenario.speed:.0f} s), working in {workdir}",
          file=human, flush=True)
    pipelines: list[Pipeline] = []
    show = _ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = run_scenario(scenario, workdir, keep_servers=args.keep, pipeline_out=pipelines,
                              progress=show)
    except (MissingDependency, MicroPythonMissing, MpyCrossMissing) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DEPENDENCY
    finally:
        if show is not None:
            show.end()
    report = result.to_json()
    if args.keep and pipelines and pipelines[0].mosquitto and pipelines[0].influxd:
        p = pipelines[0]
        assert p.mosquitto is not None and p.influxd is not None
        report["kept"] = {"influxdb_url": p.influxd.url, "database": p.settings.database,
                          "mqtt_port": p.mosquitto.port,
                          "pids": [p.mosquitto.pid, p.influxd.pid]}
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        _print_report(result, scenario, report.get("kept"))
    return EXIT_OK if result.ok else EXIT_MISSING


class _ProgressLine:
    """One line on a terminal, rewritten in place once a second."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.shown = False

    def __call__(self, progress: Any) -> None:
        self.out.write("\r\x1b[K" + progress.line())
        self.out.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            self.out.write("\n")
            self.out.flush()


def _print_report(result: Any, scenario: Any, kept: dict[str, Any] | None) -> None:
    from .report import format_table

    print(format_table(result.reports))
    for name, stats in result.link_stats.items():
        print(f"link {name}: {stats}")
    for at, what in result.faults_done:
        print(f"fault at +{(at - scenario.start) / 3600:.1f} h: {what}")
    for station, counts in result.discharge.items():
        print(f"discharge at the ingest: {station} {counts['discharge_points']} points for "
              f"{counts['stage_readings']} stage readings")
    if result.readings_resent:
        print(f"gateway resent {result.readings_resent} readings not confirmed in time")
    for q in result.quarantine:
        outcome = f"released to {q['settled_to']}" if q["state"] == "released" else q["state"]
        print(f"quarantine at the gateway: {q['kind']}, address {q['address']} bound to "
              f"{q['bound']}, claimed by {q['claimed']}: {q['readings']} readings, {outcome}")
    for r in result.reports:
        for line in r.mismatched[:3]:
            print(f"  mismatch {r.station}/{r.channel}: {line}")
    if result.explanation:
        print("where the missing readings went:")
        for line in result.explanation:
            print(f"  {line}")
    for line in result.firmware_faults:
        print(f"  firmware fault {line}")
    print(f"expected {result.expected}, missing {result.missing}, mismatched "
          f"{result.mismatched}; {scenario.duration_s / 86400:g} simulated days in "
          f"{result.wall_s + result.drain_wall_s:.0f} s "
          f"({result.sim_days_per_wall_s:.3f} days per second)")
    if kept:
        print(f"servers left running: InfluxDB {kept['influxdb_url']} database "
              f"{kept['database']}, MQTT 127.0.0.1:{kept['mqtt_port']}; stop them with "
              f"`kill {' '.join(map(str, kept['pids']))}`")
