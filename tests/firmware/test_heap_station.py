"""Issue 3, item 9 (heap): the station runs a full analog set (stage with burst and spread,
battery, rain gauge) in a 48 KB heap through normal and event (flood) rates, and after warm-up
its heap does not grow from cycle to cycle. Runs the real firmware in the MicroPython unix port
(tests/firmware/heap_station_mp.py drives it cycle by cycle on a manual clock)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.drivers_harness import compile_tree
from tests.fixtures.micropython import MicroPythonRunner
from watershed_sim.micropython import mpy_cross

pytestmark = pytest.mark.firmware

HERE = Path(__file__).parent
T0 = 1763676000  # 2025-11-20T22:00:00Z


def station_config(tmp_path: Path) -> dict[str, Any]:
    data, io = tmp_path / "flash", tmp_path / "io"
    data.mkdir(exist_ok=True)
    io.mkdir(exist_ok=True)
    return {
        "station": "HEAP-01", "address": 9, "basin": "santiago",
        "board": {"name": "unix", "data_dir": str(data), "io_dir": str(io), "sim_epoch": T0,
                  "wall_epoch": T0, "speed": 1},
        "link": {"port": "unused", "baud": 9600},
        "channels": [
            {"sensor": "analog", "pin": 26, "channel": 1, "interval_s": 900, "event_s": 300,
             "burst": 5, "spread": 2, "scale_num": 5000, "scale_den": 65535, "exponent": -3,
             "samples": 1},
            {"sensor": "analog", "pin": 28, "channel": 32, "interval_s": 3600,
             "scale_num": 16500, "scale_den": 65535, "exponent": -3, "samples": 1},
            {"sensor": "rain", "pin": 27, "channel": 16, "interval_s": 300, "event_s": 60},
        ],
        "quality": {"1": {"valid_min": 0, "valid_max": 4.5, "spike": 1.0, "flat_n": 200}},
        "event": {"stage": 1, "rise": 0.05, "rain": 16, "rain_mm": 4, "hold_s": 3600},
        "outbox": {"budget_bytes": 24576, "segment_records": 64},
    }


def run_station(micropython: MicroPythonRunner, tmp_path: Path, days: float, event_day: float,
                heap: str = "48K", timeout: float = 300) -> tuple[list[dict], dict]:
    compiled = compile_tree(tmp_path / "mpy")
    # precompiled like the firmware: compiling the driver script itself would need the heap
    subprocess.run([mpy_cross(), "-o", str(compiled / "heap_station_mp.mpy"),
                    str(HERE / "heap_station_mp.py")], check=True)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(station_config(tmp_path)))
    result = micropython.run(code="import heap_station_mp",
                             args=[config, str(days), str(event_day)], path=[compiled],
                             heap=heap, timeout=timeout)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines and lines[-1].get("done"), (
        result.stdout[-3000:] + result.stderr)
    return [x for x in lines if "hour" in x], lines[-1]


# The station does not fit 48 KB yet with this sensor set (see the xfail below); the cycle to
# cycle growth is checked in a bigger heap meanwhile.
GROWTH_HEAP = "96K"


def test_station_heap_does_not_grow_at_normal_and_event_rates(micropython, tmp_path):
    hours, done = run_station(micropython, tmp_path, days=2, event_day=1, heap=GROWTH_HEAP)
    assert any(h["event"] for h in hours), "the flood switched the station to event mode"
    assert not hours[-1]["event"], "back to normal after the hold time"
    assert done["sensor_errors"] == 0
    # Warm-up: the first day (segments filling, dicts reaching their size). After it, the
    # free heap after a collection stays where it was, through the flood and after it.
    settled = [h["free"] for h in hours if h["hour"] >= 24]
    assert max(settled) - min(settled) <= 512, settled
    assert settled[-1] >= settled[0] - 256, (settled[0], settled[-1])
    assert done["low"] > 0


@pytest.mark.xfail(strict=True, reason="measured: imports alone take ~40 KB of the 48 KB "
                   "(wire 10.8, hal_unix 8.2, outbox 4.7, sampler+drivers 5, station 5, qstr "
                   "pools ~7); the analog+rain set needs ~55 KB in all. Needs cuts in wire/"
                   "hal_unix/drivers or frozen modules")
def test_station_runs_the_full_analog_set_in_48k(micropython, tmp_path):
    hours, done = run_station(micropython, tmp_path, days=1, event_day=0.5, heap="48K")
    assert done["sensor_errors"] == 0
