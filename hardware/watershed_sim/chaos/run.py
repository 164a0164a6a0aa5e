"""One chaos run: start everything, make readings while the faults happen, drain, judge.

    stations (fleet.py) ─pty─▶ gateway ─▶ mosquitto ─▶ ingest ─▶ influxd
         ▲ feeder              ▲ kill -9   ▲ kill -9    ▲ kill -9  ▲ SIGSTOP, kill -9
                               └ its store on a small tmpfs, filled for a while

The gateway and the ingest run under a supervisor that starts them again when they exit by
themselves, as systemd would (daemons.Supervisor).

After the last reading is made and every fault mended, the run waits until nothing moves any
more (stations' outboxes empty, gateway and ingest with nothing waiting, InfluxDB's count
steady) or ``drain_timeout_s`` passes, then stops the gateway and the ingest, reads every
counter and compares (verdict.py). No timing is judged: the bound is only how long to wait.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from watershed.devservers import Influxd, Mosquitto
from watershed.hydro.influxql import query

from .counters import (StoreTrace, gateway_accounts, gateway_waiting, ingest_accounts,
                       ingest_waiting)
from .daemons import SmallDisk, Supervisor, WatershedDaemon, gateway_toml, ingest_toml
from .faults import Action, FaultRunner, schedule
from .fleet import Feeder, Fleet, FleetLayout
from .monitor import Monitor
from .verdict import Verdict, judge

log = logging.getLogger(__name__)

GATEWAY_ID = "gw-chaos"
INGEST_ID = "ingest-chaos"
DATABASE = "chaos"
READINGS_PER_MESSAGE = 50  # the gateway's default max_readings_per_message
DRAIN_POLL_S = 1.5


@dataclass(frozen=True)
class ChaosSettings:
    workdir: Path
    readings: int = 24_000
    rate: float = 600.0  # readings a second, all stations together
    layout: FleetLayout = FleetLayout()
    seed: int = 1
    faults: dict[str, int] = field(default_factory=lambda: {
        "gateway_kill": 2, "ingest_kill": 2, "broker_kill": 2, "influxd_pause": 1,
        "disk_full": 1})
    disk_mb: int = 64  # the gateway's store's tmpfs (disk_full needs it)
    drain_timeout_s: float = 60.0
    steady_polls: int = 3  # drain checks in a row that must find nothing moving
    poll_interval_s: float = 0.05  # the gateway's, per link

    @property
    def production_s(self) -> float:
        return self.readings / self.rate


SHORT = dict(readings=24_000, rate=600.0)
LONG = dict(readings=1_000_000, rate=1500.0, layout=FleetLayout(links=4, honest_per_link=8,
                                                                 wild_after=2000),
            faults={"gateway_kill": 12, "ingest_kill": 12, "broker_kill": 10,
                    "influxd_pause": 4, "influxd_kill": 2, "disk_full": 4},
            drain_timeout_s=300.0)


def settings(workdir: Path, long: bool = False, full_disk: bool = True, **overrides: Any
             ) -> ChaosSettings:
    s = ChaosSettings(workdir=workdir, **(LONG if long else SHORT))
    if not full_disk:
        s = replace(s, faults={k: v for k, v in s.faults.items() if k != "disk_full"})
    return replace(s, **overrides)


def well_behaved(s: ChaosSettings) -> ChaosSettings:
    """The same run with honest stations only (the faults stay)."""
    return replace(s, layout=replace(s.layout, shared_address=False, forger=False, wild=False))


def calm(s: ChaosSettings) -> ChaosSettings:
    """The same run without faults or misbehaving stations: the baseline."""
    return replace(well_behaved(s), faults={})


@dataclass
class ChaosResult:
    settings: ChaosSettings
    verdict: Verdict
    kills: dict[str, int]
    fault_failures: list[str]
    notes: list[str]
    production_s: float
    drain_s: float
    drained: bool
    monitor: dict[str, int]
    station_resends: int
    exits: dict[str, int]  # daemons that exited by themselves, by status (the supervisor's)

    @property
    def passed(self) -> bool:
        return self.verdict.passed and self.drained and not self.fault_failures

    def figures(self) -> dict[str, Any]:
        v = self.verdict.figures()
        readings = v["readings"]
        minimum = max(1, math.ceil(readings / READINGS_PER_MESSAGE))
        return {
            **v, "passed": self.passed,
            "duration_s": round(self.production_s + self.drain_s, 1),
            "production_s": round(self.production_s, 1), "drain_s": round(self.drain_s, 1),
            "drained": self.drained, "faults": self.kills, "fault_failures": self.fault_failures,
            "messages_published_seen": self.monitor["messages_seen"],
            "extra_publishes": round(self.monitor["messages_seen"] / minimum, 3),
            "readings_published_seen": self.monitor["readings_seen"],
            "readings_republished": self.monitor["readings_seen"]
            - self.monitor["distinct_readings_seen"],
            "station_resends": self.station_resends, "daemon_exits": self.exits,
            "notes": self.notes,
        }

    def report(self) -> str:
        f = self.figures()
        head = (f"chaos: {f['readings']} readings in {f['duration_s']} s (drain "
                f"{f['drain_s']} s{'' if self.drained else ', NOT drained'}); faults "
                f"{f['faults']}; messages seen {f['messages_published_seen']} "
                f"({f['extra_publishes']}x the minimum), readings republished "
                f"{f['readings_republished']}, station resends {f['station_resends']}")
        notes = [f"note: {n}" for n in self.notes + self.fault_failures]
        if self.exits:
            notes.append(f"note: exited by themselves (started again): {self.exits}")
        return "\n".join([head, *notes, self.verdict.report()])


def run_chaos(s: ChaosSettings) -> ChaosResult:
    s.workdir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    faults = dict(s.faults)
    disk = SmallDisk(s.workdir / "store-disk", s.disk_mb)
    if faults.get("disk_full"):
        reason = disk.mount()
        if reason is not None:
            notes.append(f"disk_full not injected: {reason}")
            faults.pop("disk_full")
    store_dir = disk.path if disk.mounted else s.workdir / "store"
    store_dir.mkdir(parents=True, exist_ok=True)
    mosquitto = Mosquitto(s.workdir / "mosquitto")
    influxd = Influxd(s.workdir / "influxd")
    fleet: Fleet | None = None
    monitor: Monitor | None = None
    daemons: list[WatershedDaemon] = []
    supervisor = Supervisor(daemons)
    runner: FaultRunner | None = None
    feeder: Feeder | None = None
    try:
        mosquitto.start()
        influxd.start()
        influxd.query(f'CREATE DATABASE "{DATABASE}"')
        fleet = Fleet(s.layout, s.seed)
        monitor = Monitor(mosquitto.port, GATEWAY_ID, INGEST_ID)
        deadletter = s.workdir / "deadletter.jsonl"
        ingest = WatershedDaemon(s.workdir / "ingest", "ingest", ingest_toml(
            INGEST_ID, deadletter, mosquitto.port, influxd.url, DATABASE))
        store = store_dir / "gateway.db"
        gateway = WatershedDaemon(s.workdir / "gateway", "gateway", gateway_toml(
            GATEWAY_ID, store, mosquitto.port,
            [(link.gateway_path, fleet.addresses(i)) for i, link in enumerate(fleet.links)],
            [(station_id, addr) for station_id, addr, _ in fleet.registry()],
            s.poll_interval_s))
        daemons += [ingest, gateway]
        ingest.start()
        _wait(lambda: (monitor.snapshot()[1] or {}).get("connected"), 60,
              "the ingest's status (subscribed)")
        gateway.start()
        supervisor.start()
        runner = FaultRunner(schedule(s.seed, s.production_s, faults),
                             _actions(supervisor, gateway, ingest, mosquitto, influxd, disk))
        feeder = Feeder(fleet, s.readings, s.rate)
        started = time.monotonic()
        feeder.start()
        runner.start()
        feeder.done.wait()
        runner.wait()
        produced_at = time.monotonic()
        drained = _drain(s, fleet, monitor, influxd, notes)
        drain_s = time.monotonic() - produced_at
        health = monitor.snapshot()[0]
        supervisor.stop()
        for daemon in (gateway, ingest):
            daemon.stop(timeout=30)
        if disk.mounted:  # keep the store for a look after the run (the tmpfs goes)
            store = _copy_store(store, s.workdir / "gateway.db")
        accounts = gateway_accounts(store, health)
        accounts.merge(ingest_accounts(deadletter))
        verdict = judge(influxd.url, DATABASE, fleet.stations(), accounts, StoreTrace(store))
        notes += [f"{name} not started again after exit status 2 (bad config)"
                  for name in supervisor.refused]
        return ChaosResult(s, verdict, dict(runner.done), runner.failures, notes,
                           produced_at - started, drain_s, drained, monitor.figures(),
                           _station_resends(fleet), dict(supervisor.exits))
    finally:
        if feeder is not None:
            feeder.stop()
        if runner is not None:
            runner.stop()  # mends what is broken
        supervisor.stop()
        if monitor is not None:
            monitor.close()
        for daemon in daemons:
            daemon.stop()
        if influxd.running:
            _signal(influxd, signal.SIGCONT)
        for server in (mosquitto, influxd):
            server.stop()
        if fleet is not None:
            fleet.close()
        disk.unmount()


def _actions(supervisor: Supervisor, gateway: WatershedDaemon, ingest: WatershedDaemon,
             mosquitto: Mosquitto, influxd: Influxd, disk: SmallDisk) -> dict[str, Action]:
    """How each kind of fault is done and undone."""
    return {
        "gateway_kill": Action(lambda: supervisor.hold(gateway),
                               lambda: supervisor.release(gateway)),
        "ingest_kill": Action(lambda: supervisor.hold(ingest), lambda: supervisor.release(ingest)),
        "broker_kill": Action(mosquitto.kill, mosquitto.start),
        "influxd_pause": Action(lambda: _signal(influxd, signal.SIGSTOP),
                                lambda: _signal(influxd, signal.SIGCONT)),
        "influxd_kill": Action(influxd.kill, influxd.start),
        "disk_full": Action(disk.fill, disk.free),
    }


def _station_resends(fleet: Fleet) -> int:
    """Readings sent by the stations beyond once each for those they no longer hold."""
    return sum(st.readings_sent - (st.count - len(st.outbox)) for st in fleet.stations())


def _copy_store(source: Path, target: Path) -> Path:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


def _signal(server: Influxd, sig: int) -> None:
    if server.pid is not None:
        os.kill(server.pid, sig)


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"chaos: no {what} within {timeout_s:g} s")
        time.sleep(0.1)


def _points(influxd: Influxd) -> int | None:
    try:
        series = query(influxd.url, DATABASE, "SELECT COUNT(flags) FROM readings", timeout_s=60)
    except OSError:
        return None
    return sum(int(row["count"]) for _, rows in series for row in rows)


def _drain(s: ChaosSettings, fleet: Fleet, monitor: Monitor, influxd: Influxd,
           notes: list[str]) -> bool:
    """Wait until nothing moves (module docstring); False if it still moved at the bound."""
    deadline = time.monotonic() + s.drain_timeout_s
    steady = 0
    last: int | None = None
    while time.monotonic() < deadline:
        health, status = monitor.snapshot()
        points = _points(influxd)
        quiet = (fleet.outboxes_empty() and gateway_waiting(health) == 0
                 and ingest_waiting(status) == 0 and points is not None and points == last)
        steady = steady + 1 if quiet else 0
        if steady >= s.steady_polls:
            return True
        last = points
        time.sleep(DRAIN_POLL_S)
    health, status = monitor.snapshot()
    held = sum(len(st.outbox) for st in fleet.stations() if st.role == "honest")
    notes.append(f"not drained after {s.drain_timeout_s:g} s: honest stations still hold {held} "
                 f"readings, gateway waiting {gateway_waiting(health)}, ingest waiting "
                 f"{ingest_waiting(status)} (None: no fresh health/status)")
    log.warning("chaos: %s", notes[-1])
    return False
