"""Station firmware in the MicroPython unix port (32-bit, like the boards): heap high-water
mark, heap change per sampling cycle after warm-up, CPU time awake per cycle, outbox append and
ack cost.

30 simulated days of the full set of tests/firmware/test_heap_station.py (stage with a
5-sample burst and spread, battery, rain gauge, an SDI-12 weather sensor simulated on a pty; a
flood on day 10 switches to event rates) in a 48 KB heap, polled and acknowledged every cycle,
on a manual clock (the awake time includes the SDI-12 exchanges with the simulator, at pty
speed, not the 1200-baud waits of a real bus). The station collects after each cycle, so the free heap after a cycle is its live
heap: the high-water mark is the heap minus the lowest of those (the harness's code counted).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.firmware.test_heap_station import HEAP, run_station
from tests.fixtures.micropython import MicroPythonRunner
from watershed_sim.devices import DevicePty, SDI12Bus, WeatherSensor
from watershed_sim.micropython import micropython_binary

DAYS = 30
WARM_UP_HOURS = 24


def _heap_bytes(text: str) -> int:
    return int(text[:-1]) * 1024 if text.endswith("K") else int(text)


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runner = MicroPythonRunner(micropython_binary(), Path(tmp))
        with DevicePty(SDI12Bus([WeatherSensor("1", measure_s=0)])) as weather:
            hours, done, _ = run_station(runner, days=DAYS, event_day=10, heap=HEAP,
                                         timeout=900, sdi12_port=weather.path)
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
