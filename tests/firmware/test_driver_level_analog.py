"""Serial range sensor and analog (4–20 mA, battery) drivers in the MicroPython unix port."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.firmware.drivers_harness import board_config, read_sensors
from tests.fixtures.micropython import MicroPythonRunner
from watershed_sim.devices import DevicePty, Faults, RangeSensor

pytestmark = pytest.mark.firmware

MISSING, OUT_OF_RANGE = 0x01, 0x02


def test_level_is_mount_height_minus_range_exactly(micropython: MicroPythonRunner,
                                                   tmp_path: Path) -> None:
    sensor = RangeSensor(2231, period_s=0.05, faults=Faults(garble=0.3), seed=4)
    with DevicePty(sensor) as pty:
        cfg = {"sensor": "serial_level", "port": pty.path, "mount_mm": 3500, "channel": 1,
               "range_channel": 7, "samples": 3}
        results, _ = read_sensors(micropython, tmp_path, [cfg, dict(cfg, samples=2)])
    assert results[0]["readings"] == [[1, 1269, -3, 0], [7, 2231, -3, 0]]
    assert results[1]["readings"] == [[1, 12690, -4, 0], [7, 22310, -4, 0]]
    assert any(fault == "garble" for _, _, fault in sensor.sent)  # skipped, not misread


def test_silent_range_sensor_is_missing(micropython: MicroPythonRunner, tmp_path: Path) -> None:
    sensor = RangeSensor(1000, period_s=0.05, faults=Faults(no_reply=1.0))
    with DevicePty(sensor) as pty:
        cfg = {"sensor": "serial_level", "port": pty.path, "mount_mm": 3500, "channel": 1,
               "samples": 1, "timeout_ms": 300}
        results, _ = read_sensors(micropython, tmp_path, [cfg])
    assert results[0]["error"] == 110
    assert results[0]["readings"] == [[1, 0, 0, MISSING]]


def test_analog_calibration_is_exact_and_flags_faults(micropython: MicroPythonRunner,
                                                      tmp_path: Path) -> None:
    board = board_config(tmp_path)
    io = Path(board["io_dir"])
    (io / "adc34").write_text("35747\n")  # 12 mA: mid-span of a 0-5 m transducer
    (io / "adc35").write_text("5000\n")   # below 3.6 mA: broken loop
    (io / "adc36").write_text("60000\n")  # battery through 1:4
    loop = {"sensor": "analog", "channel": 1, "offset": -1250, "scale_num": 5000,
            "scale_den": 47662, "exponent": -3, "raw_min": 10725, "raw_max": 62556,
            "valid_min": 11916, "valid_max": 59578}
    sensors = [dict(loop, pin=34), dict(loop, pin=35),
               {"sensor": "analog", "pin": 36, "channel": 32, "scale_num": 13200,
                "scale_den": 65535, "exponent": -3}]
    results, _ = read_sensors(micropython, tmp_path, sensors, board=board)
    assert results[0]["readings"] == [[1, -1250 + 35747 * 5000 // 47662, -3, 0]]
    assert results[1]["readings"] == [[1, 0, 0, MISSING]]
    assert results[2]["readings"] == [[32, 60000 * 13200 // 65535, -3, 0]]
