"""Run a scenario against the real gateway, broker, ingest and InfluxDB, and report truth vs stored."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from watershed.devservers import Influxd, Mosquitto

from .testbed import DEFAULT_DATABASE, Pipeline, PipelineSettings
from .report import ChannelReport
from .scenario import Scenario


@dataclass
class ScenarioResult:
    scenario: Scenario
    reports: list[ChannelReport]
    wall_s: float  # from start to the end of simulated time
    drain_wall_s: float  # from then until InfluxDB held everything (or the timeout)
    link_stats: dict[str, Any] = field(default_factory=dict)
    gateway_stats: dict[str, Any] = field(default_factory=dict)
    faults_done: list[tuple[float, str]] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)  # the trace of each missing reading
    # Firmware runs that ended by themselves and out-of-memory lines on a station's console
    # (a reading lost to one is flagged missing, not absent, so the truth check alone passes)
    firmware_faults: list[str] = field(default_factory=list)
    # wall seconds the harness held time, by reason (clock.HarnessClock.held_s)
    clock_held_s: dict[str, float] = field(default_factory=dict)
    clock_steps: int = 0  # steps in which time moved (one per wake time or event reached)
    # stations with a rating: discharge points the ingest derived against stage readings
    discharge: dict[str, dict[str, int]] = field(default_factory=dict)
    # the gateway's quarantine entries (gateway/quarantine.py), open or settled
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return sum(r.expected for r in self.reports)

    @property
    def missing(self) -> int:
        return sum(len(r.missing) for r in self.reports)

    @property
    def mismatched(self) -> int:
        return sum(len(r.mismatched) for r in self.reports)

    @property
    def ok(self) -> bool:
        return (self.expected > 0 and self.missing == 0 and self.mismatched == 0
                and not self.firmware_faults)

    @property
    def readings_resent(self) -> int:
        """Readings the gateway published again: not confirmed in time (an outage behind it)."""
        return int(self.gateway_stats.get("forwarder", {}).get("readings_resent", 0))

    @property
    def sim_days_per_wall_s(self) -> float:
        return self.scenario.duration_s / 86400 / max(self.wall_s + self.drain_wall_s, 1e-9)


    def to_json(self) -> dict[str, Any]:
        """The report for machines (``watershed sim run --json``)."""
        return {
            "scenario": self.scenario.name, "ok": self.ok, "expected": self.expected,
            "missing": self.missing, "mismatched": self.mismatched,
            "simulated_days": self.scenario.duration_s / 86400,
            "wall_s": round(self.wall_s, 1), "drain_wall_s": round(self.drain_wall_s, 1),
            "sim_days_per_wall_s": round(self.sim_days_per_wall_s, 4),
            "channels": [asdict(r) for r in self.reports],
            "links": self.link_stats,
            "faults_done": [{"at": _iso(at), "what": what} for at, what in self.faults_done],
            "firmware_faults": self.firmware_faults,
            "explanation": self.explanation,
            "discharge": self.discharge,
            "quarantine": self.quarantine,
            "readings_resent": self.readings_resent,
        }


@dataclass(frozen=True)
class Progress:
    """Where a run is, for a person watching: simulated time, readings so far, faults done."""

    phase: str  # "running" the scenario, then "draining" (waiting for InfluxDB)
    sim_time: float
    start: float
    end: float
    readings: int
    faults_done: int

    def line(self) -> str:
        done = min(1.0, max(0.0, (self.sim_time - self.start) / max(self.end - self.start, 1)))
        return (f"{self.phase}: {_iso(self.sim_time)} ({done:4.0%}), {self.readings} readings, "
                f"{self.faults_done} faults done")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _watch(pipeline: Pipeline, scenario: Scenario, phase: list[str],
           report: Callable[[Progress], None], stop: threading.Event) -> None:
    """Call ``report`` once a wall second until ``stop`` (a daemon thread's loop)."""
    while not stop.wait(1.0):
        if pipeline.clock is None:
            continue
        report(Progress(phase[0], pipeline.clock.now(), scenario.start,
                        scenario.start + scenario.duration_s,
                        sum(len(st.produced) for st in pipeline.stations),
                        len(pipeline.faults_done())))


def run_scenario(scenario: Scenario, workdir: Path, *, database: str = DEFAULT_DATABASE,
                 mosquitto: Mosquitto | None = None, influxd: Influxd | None = None,
                 drain_timeout_s: float = 120.0, keep_servers: bool = False,
                 pipeline_out: list[Pipeline] | None = None,
                 progress: Callable[[Progress], None] | None = None) -> ScenarioResult:
    """Start, run ``scenario.duration_s`` of simulated time, wait until InfluxDB holds every
    reading the stations stored by then, stop. ``pipeline_out`` receives the pipeline, for a
    caller that wants to look inside (or query the kept servers); ``progress`` is called once a
    wall second from another thread."""
    pipeline = Pipeline(PipelineSettings(workdir=workdir, database=database, scenario=scenario),
                        mosquitto=mosquitto, influxd=influxd)
    if pipeline_out is not None:
        pipeline_out.append(pipeline)
    started = time.monotonic()
    phase, stop_watching = ["running"], threading.Event()
    if progress is not None:
        threading.Thread(target=_watch, args=(pipeline, scenario, phase, progress, stop_watching),
                         name="sim-progress", daemon=True).start()
    try:
        pipeline.start()
        pipeline.run_until(scenario.start + scenario.duration_s)
        pipeline.wait_for_last_slots(scenario.start + scenario.duration_s)
        ran = time.monotonic() - started
        produced = pipeline.produced(until=scenario.start + scenario.duration_s)
        phase[0] = "draining"
        reports = pipeline.wait_until_stored(produced, timeout_s=drain_timeout_s)
        drained = time.monotonic() - started - ran
        return ScenarioResult(
            scenario, reports, ran, drained, link_stats=pipeline.link_stats(),
            gateway_stats=pipeline.gateway.stats() if pipeline.gateway else {},
            faults_done=pipeline.faults_done(),
            explanation=pipeline.explain_missing(reports),
            firmware_faults=pipeline.firmware_faults(),
            clock_held_s=dict(pipeline.clock.held_s) if pipeline.clock else {},
            clock_steps=pipeline.clock.steps if pipeline.clock else 0,
            discharge=pipeline.discharge(scenario.start + scenario.duration_s),
            quarantine=pipeline.quarantine())
    finally:
        stop_watching.set()
        pipeline.stop(keep_servers=keep_servers)
