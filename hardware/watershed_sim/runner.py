"""Run a scenario against the real gateway, broker, ingest and InfluxDB, and report truth vs stored."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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
    def sim_days_per_wall_s(self) -> float:
        return self.scenario.duration_s / 86400 / max(self.wall_s + self.drain_wall_s, 1e-9)


def run_scenario(scenario: Scenario, workdir: Path, *, database: str = DEFAULT_DATABASE,
                 mosquitto: Mosquitto | None = None, influxd: Influxd | None = None,
                 drain_timeout_s: float = 120.0, keep_servers: bool = False,
                 pipeline_out: list[Pipeline] | None = None) -> ScenarioResult:
    """Start, run ``scenario.duration_s`` of simulated time, wait until InfluxDB holds every
    reading the stations stored by then, stop. ``pipeline_out`` receives the pipeline, for a
    caller that wants to look inside (or query the kept servers)."""
    pipeline = Pipeline(PipelineSettings(workdir=workdir, database=database, scenario=scenario),
                        mosquitto=mosquitto, influxd=influxd)
    if pipeline_out is not None:
        pipeline_out.append(pipeline)
    started = time.monotonic()
    try:
        pipeline.start()
        pipeline.run_until(scenario.start + scenario.duration_s)
        pipeline.wait_for_last_slots(scenario.start + scenario.duration_s)
        ran = time.monotonic() - started
        produced = pipeline.produced()
        reports = pipeline.wait_until_stored(produced, timeout_s=drain_timeout_s)
        drained = time.monotonic() - started - ran
        return ScenarioResult(
            scenario, reports, ran, drained, link_stats=pipeline.link_stats(),
            gateway_stats=pipeline.gateway.stats() if pipeline.gateway else {},
            faults_done=list(pipeline.timeline.done) if pipeline.timeline else [],
            explanation=pipeline.explain_missing(reports),
            firmware_faults=pipeline.firmware_faults(),
            clock_held_s=dict(pipeline.clock.held_s) if pipeline.clock else {},
            clock_steps=pipeline.clock.steps if pipeline.clock else 0)
    finally:
        pipeline.stop(keep_servers=keep_servers)
