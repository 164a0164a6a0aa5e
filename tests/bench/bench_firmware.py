"""Station firmware in the MicroPython unix port: heap high-water mark, heap change per
sampling cycle after warm-up, CPU time awake per cycle, outbox append and ack cost.

30 simulated days of the analog set of tests/firmware/test_heap_station.py (stage with a
5-sample burst and spread, battery, rain gauge; a flood on day 10 switches to event rates),
polled and acknowledged every cycle, on a manual clock (no sensor or link waits are counted).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.firmware.test_heap_station import GROWTH_HEAP, run_station
from tests.fixtures.micropython import MicroPythonRunner
from watershed_sim.micropython import micropython_binary

DAYS = 30
WARM_UP_HOURS = 24


def _heap_bytes(text: str) -> int:
    return int(text[:-1]) * 1024 if text.endswith("K") else int(text)


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runner = MicroPythonRunner(micropython_binary(), Path(tmp))
        hours, done = run_station(runner, Path(tmp), days=DAYS, event_day=10,
                                  heap=GROWTH_HEAP, timeout=600)
    heap = _heap_bytes(GROWTH_HEAP)
    settled = [h for h in hours if h["hour"] >= WARM_UP_HOURS]
    cycles_after = done["cycles"] * len(settled) / max(1, len(hours))
    return {
        "heap_size_bytes": heap,
        "heap_used_at_boot_bytes": heap - done["boot_free"],
        "heap_high_water_bytes": heap - min(h["free"] for h in hours),
        "heap_change_per_cycle_bytes": round(
            (settled[0]["free"] - settled[-1]["free"]) / max(1.0, cycles_after), 3),
        "heap_change_after_warm_up_bytes": settled[0]["free"] - settled[-1]["free"],
        "cycles": done["cycles"],
        "awake_us_per_cycle": done["awake_us_per_cycle"],
        "outbox_append_us": done["append_us"],
        "outbox_ack_us": done["ack_us"],
        "simulated_days": DAYS,
    }
