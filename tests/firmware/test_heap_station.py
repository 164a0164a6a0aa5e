"""Issue 3, item 9 (heap): the station runs its full sensor set — stage with a 5-sample burst
and spread, battery, rain gauge, and an all-in-one SDI-12 weather sensor (a simulated one on a
pty) — for 30 simulated days in a 48 KB heap through normal and event (flood) rates, with at
least 4 KB free after every cycle (the harness's code counted as used), and after warm-up its
heap does not grow from cycle to cycle. Before each poll of its own it hears the gateway's POLL
and ACK to another station of its bus, after which it does not collect (station.py): their
garbage stays until its next cycle with work. In the 30 days the link is down 4 hours a day, so
the station drains a backlog every day (up to 4 DATA frames a POLL) on a heap fragmented by a day
of sampling: a reply that built a list of its readings failed there (MemoryError in
outbox.pending at hour 4). Runs the real firmware, compiled as it is deployed
(watershed.firmware_build.compile_firmware), in the MicroPython unix port built 32-bit like the
boards' MCUs (tests/firmware/heap_station_mp.py boots it and heap_loop_mp.py drives it cycle by
cycle on a manual clock)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watershed.contracts import wire as gw
from tests.fixtures.micropython import MicroPythonRunner
from watershed_sim.devices import DevicePty, SDI12Bus, WeatherSensor
from watershed.firmware_build import compile_firmware, mpy_cross

pytestmark = pytest.mark.firmware

HERE = Path(__file__).parent
T0 = 1763676000  # 2025-11-20T22:00:00Z
HEAP = "48K"
HEADROOM = 4096  # the live heap after every cycle leaves this much free
# Held through the 30-day run in small blocks (heap_station_mp.py): headroom beyond everything
# the station allocates. Measured: 1.5-2 KB ran in 12 of 13 runs, 3 KB fails a 296-byte
# allocation; 1 KB keeps a margin against run-to-run differences (SDI-12 timing on the pty).
BALLAST = 1024
WEATHER = [23, 0, 20, 21, 22, 17, 24, 19, 18]  # the CV50's M set; its rain is not kept
SDI12_INTERVAL_S = 3600  # real pty round trips: hourly keeps 30 days under a minute


def station_config(root: Path, sdi12_port: str | None = None) -> dict[str, Any]:
    """The config; flash and the harness's inputs are folders under ``root``, named relative to
    it (the process runs there) as a board names them: short paths, short strings."""
    for folder in ("flash", "io"):
        (root / folder).mkdir(exist_ok=True)
    channels: list[dict[str, Any]] = [
        {"sensor": "analog", "pin": 26, "channel": 1, "interval_s": 900, "event_s": 300,
         "burst": 5, "spread": 2, "scale_num": 5000, "scale_den": 65535, "exponent": -3,
         "samples": 1},
        {"sensor": "analog", "pin": 28, "channel": 32, "interval_s": 3600,
         "scale_num": 16500, "scale_den": 65535, "exponent": -3, "samples": 1},
        # the harness sends tips faster than real time: no debounce
        {"sensor": "rain", "pin": 27, "channel": 16, "interval_s": 300, "event_s": 60,
         "debounce_ms": 0},
    ]
    if sdi12_port:
        # kPa -> hPa: shift 1; the longest first-byte timeout the schema allows: the cores are
        # shared, and a simulator thread held up by other processes must not count as no reply
        channels.append({"sensor": "sdi12", "port": sdi12_port, "address": "1",
                         "channels": WEATHER, "shift": [0, 0, 0, 0, 0, 0, 0, 1, 0],
                         "interval_s": SDI12_INTERVAL_S, "response_ms": 1000})
    return {
        "station": "HEAP-01", "address": 9, "basin": "santiago",
        "board": {"name": "unix", "data_dir": "flash", "io_dir": "io", "sim_epoch": T0,
                  "wall_epoch": T0, "speed": 1},
        "link": {"port": "unused", "baud": 9600},
        # The harness moves the clock by hand; a pause of the process (shared cores) must not
        # look like a clock step to StationClock.check (log lines, rescheduling): no steps here.
        "clock_jump_s": 1000000000,
        "channels": channels,
        "quality": {"1": {"valid_min": 0, "valid_max": 4.5, "spike": 1.0, "flat_n": 200}},
        "event": {"stage": 1, "rise": 0.05, "rain": 16, "rain_mm": 4, "hold_s": 3600},
        "outbox": {"budget_bytes": 24576, "segment_records": 64},
    }


@pytest.fixture
def weather_pty() -> Iterator[DevicePty]:
    with DevicePty(SDI12Bus([WeatherSensor("1", measure_s=0)])) as pty:
        yield pty


def run_station(micropython: MicroPythonRunner, days: float, event_day: float,
                heap: str = HEAP, timeout: float = 300, sdi12_port: str | None = None,
                ballast: int = 0, link_down_h: float = 0) -> tuple[list[dict], dict, list[list[int]]]:
    """(hourly lines, summary, readings stored as [seq, ch, time, mantissa, exp, flags])."""
    # Laid out as on a board's flash: modules in lib/, config, frames and data beside it, named
    # relative to the process's directory. A module's file name is interned for its __file__,
    # argv too, and every file the station opens builds its path: a pytest temp path would
    # cost the heap ~1 KB, and longer strings per cycle, that a board never spends.
    root = micropython.cwd
    compiled = compile_firmware(root / "lib")
    # precompiled, as the firmware (compiling it would need the heap), but with line numbers
    for name in ("heap_station_mp", "heap_loop_mp"):
        subprocess.run([mpy_cross(), "-o", str(compiled / f"{name}.mpy"),
                        "-s", f"{name}.py", str(HERE / f"{name}.py")], check=True)
    config = root / "config.json"
    cfg = station_config(root, sdi12_port)
    config.write_text(json.dumps(cfg))
    (root / "io" / "adc26").write_text("12000\n")
    (root / "io" / "adc28").write_text("50000\n")
    # the gateway's frames, made by its codec: POLL DATA|MORE|STATUS, then an ACK of everything
    poll = gw.encode_frame(gw.Poll(cfg["address"],
                                   gw.WANT_DATA | gw.WANT_MORE | gw.WANT_STATUS))
    ack = gw.encode_frame(gw.Ack(cfg["address"], 1 << 40))
    # the gateway's exchange with another station of the bus, which this one hears
    other = cfg["address"] + 1
    heard = gw.encode_frame(gw.Poll(other, gw.WANT_DATA | gw.WANT_MORE | gw.WANT_STATUS)) + \
        gw.encode_frame(gw.Ack(other, 1 << 40))
    frames = root / "frames.bin"
    frames.write_bytes(poll + ack + heard)
    result = micropython.run(code="import heap_station_mp",
                             args=[config.name, frames.name, f"{len(poll)},{len(ack)}", days,
                                   event_day, ballast, link_down_h],
                             path=[Path("lib")], heap=heap, timeout=timeout)
    out = result.stdout.splitlines()
    lines = [json.loads(line) for line in out if line.startswith("{")]
    assert result.returncode == 0 and lines and lines[-1].get("done"), (
        result.stdout[-3000:] + result.stderr)
    assert "MemoryError" not in result.stdout and "memory allocation" not in result.stdout, (
        [line for line in out if line.startswith("E")][:5])
    readings = [[int(x) for x in line.split()[1:]] for line in out if line.startswith("R ")]
    return [x for x in lines if "hour" in x], lines[-1], readings


def test_station_heap_does_not_grow_at_normal_and_event_rates(micropython, weather_pty):
    hours, done, _ = run_station(micropython, days=2, event_day=1,
                                 sdi12_port=weather_pty.path)
    assert any(h["event"] for h in hours), "the flood switched the station to event mode"
    assert not hours[-1]["event"], "back to normal after the hold time"
    assert done["sensor_errors"] == 0
    # Warm-up: the first day (segments filling, dicts reaching their size). After it, the
    # free heap after a collection stays where it was, through the flood and after it.
    settled = [h["free"] for h in hours if h["hour"] >= 24]
    assert max(settled) - min(settled) <= 512, settled
    assert settled[-1] >= settled[0] - 256, (settled[0], settled[-1])
    assert done["low"] >= HEADROOM, done


def test_station_runs_the_full_set_for_30_days_in_48k(micropython, weather_pty):
    """30 days, a flood on day 10, the link down 4 hours a day, another station's POLL and ACK
    heard before each poll of its own; the heap after every cycle leaves at least 4 KB free
    (the harness's own code counted as used; after a cycle that only heard others, their
    garbage counted as used too: the station does not collect then)."""
    hours, done, readings = run_station(micropython, days=30, event_day=10,
                                        timeout=900, sdi12_port=weather_pty.path,
                                        ballast=BALLAST, link_down_h=4)
    assert done["ballast"] >= BALLAST
    assert done["sensor_errors"] == 0
    assert not any(r[5] & 0x01 for r in readings), "no reading is missing"
    by_channel: dict[int, int] = {}
    for r in readings:
        by_channel[r[1]] = by_channel.get(r[1], 0) + 1
    days = 30
    assert by_channel[1] >= days * 96 and by_channel[2] == by_channel[1]  # stage + spread
    assert by_channel[32] >= days * 24 and by_channel[16] >= days * 288
    for ch in (c for c in WEATHER if c):  # every weather value, every hour
        assert by_channel[ch] >= days * 24, (ch, by_channel.get(ch))
    assert any(h["event"] for h in hours) and not hours[-1]["event"]
    assert done["low"] >= HEADROOM, done
    settled = [h["free"] for h in hours if h["hour"] >= 24]
    assert settled[-1] >= settled[0] - 256, (settled[0], settled[-1])
