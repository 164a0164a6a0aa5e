"""Gateway SD wear alone: disk writes of an idle gateway with 50 stations (bench_gateway.py's
idle runs, without its serial and backlog parts): ``python -m tests.bench gateway_disk``."""

from __future__ import annotations

from tests.bench.bench_gateway import disk_writes_only

PART_OF = "gateway"  # `make bench` runs these in bench_gateway; not again


def run() -> dict:
    return disk_writes_only()
