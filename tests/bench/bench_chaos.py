"""The long chaos run (watershed_sim.chaos, ``make chaos``): 1,000,000 readings from 32
stations on four links through the real gateway, mosquitto, ingest and influxd while each is
killed again and again, influxd stopped, the gateway's disk filled; lost / altered /
misattributed must be 0. Figures: readings, durations, faults of each kind, extra publishes
(messages seen on the broker / the fewest that could carry the readings), resends, drain time."""

from __future__ import annotations

import tempfile
from pathlib import Path

from watershed_sim.chaos.run import run_chaos, settings


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as workdir:
        result = run_chaos(settings(Path(workdir), long=True))
    print(result.report())
    return result.figures()
