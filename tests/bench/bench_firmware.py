"""Station firmware in the MicroPython unix port (32-bit, like the boards): heap high-water
mark, heap change per sampling cycle after warm-up, CPU time awake per cycle, outbox append and
ack cost.

30 simulated days of the analog set of tests/firmware/test_heap_station.py (stage with a
5-sample burst and spread, battery, rain gauge; a flood on day 10 switches to event rates) in
a 48 KB heap, polled and acknowledged every cycle, on a manual clock (no sensor or link waits
are counted). The station collects after each cycle, so the free heap after a cycle is its live
heap: the high-water mark is the heap minus the lowest of those (the harness's code counted).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.firmware.test_heap_station import HEAP, run_station
from tests.fixtures.micropython import MicroPythonRunner
from watershed_sim.micropython import micropython_binary

DAYS = 30
WARM_UP_HOURS = 24


def _heap_bytes(text: str) -> int:
    return int(text[:-1]) * 1024 if text.endswith("K") else int(text)


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runner = MicroPythonRunner(micropython_binary(), Path(tmp))
        hours, done, _ = run_station(runner, Path(tmp), days=DAYS, event_day=10, heap=HEAP,
                                     timeout=600)
    heap = _heap_bytes(HEAP)
    settled = [h for h in hours if h["hour"] >= WARM_UP_HOURS]
    cycles_after = done["cycles"] * len(settled) / max(1, len(hours))
    return {
        "heap_size_bytes": heap,
        "heap_free_at_boot_bytes": done["boot_free"],
        "heap_low_water_free_bytes": done["low"],
        "heap_high_water_bytes": heap - done["low"],
        "heap_change_per_cycle_bytes": round(
            (settled[0]["free"] - settled[-1]["free"]) / max(1.0, cycles_after), 3),
        "heap_change_after_warm_up_bytes": settled[0]["free"] - settled[-1]["free"],
        "cycles": done["cycles"],
        "awake_us_per_cycle": done["awake_us_per_cycle"],
        "outbox_append_us": done["append_us"],
        "outbox_ack_us": done["ack_us"],
        "simulated_days": DAYS,
    }
