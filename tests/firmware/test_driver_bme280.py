"""BME280 driver in the MicroPython unix port, against a register image of the chip.

The expected values come from an implementation written here from the datasheet's C code
(BST-BME280-DS002, 4.2.3), with C's 32/64-bit semantics spelled out, not from the driver; it is
itself anchored to Bosch's worked example (BMP280 datasheet 3.12, the same T and P formulas:
adc_T 519888 → t_fine 128422, 25.08 °C; adc_P 415148 → 100653.27 Pa) and cross-checked with the
datasheet's floating-point formulas.
"""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import pytest

from tests.firmware.drivers_harness import board_config, read_sensors
from watershed_sim.devices.bme280 import (DATASHEET, PART_B, Calib, compensate_h, compensate_p,
                                          compensate_t, floating, image, raw_for)
from tests.fixtures.micropython import MicroPythonRunner

pytestmark = pytest.mark.firmware

MISSING, OUT_OF_RANGE = 0x01, 0x02
ENODEV, ETIMEDOUT = 19, 110


def half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)).__floor__())


def expected(c: Calib, adc_t: int, adc_p: int, adc_h: int,
             channels: tuple[int, int, int] = (17, 18, 19)) -> list[list[int]]:
    t, t_fine = compensate_t(c, adc_t)
    pa = half_up(Fraction(compensate_p(c, adc_p, t_fine), 256))
    rh = half_up(Fraction(compensate_h(c, adc_h, t_fine) * 100, 1024))
    return [[channels[0], t, -2, 0 if -4000 <= t <= 8500 else OUT_OF_RANGE],
            [channels[1], rh, -2, 0],
            [channels[2], pa, -2, 0 if 30000 <= pa <= 110000 else OUT_OF_RANGE]]


# --- tests ---------------------------------------------------------------------------------------

def test_reference_reproduces_bosch_worked_example() -> None:
    t, t_fine = compensate_t(DATASHEET, 519888)
    assert (t, t_fine) == (2508, 128422)
    assert half_up(Fraction(compensate_p(DATASHEET, 415148, t_fine), 256)) == 100653
    temp, pa, _ = floating(DATASHEET, 519888, 415148, 30000)
    assert abs(temp - 25.08) < 0.01 and abs(pa - 100653.27) < 0.5


def test_readings_are_the_datasheet_compensation_exactly(micropython: MicroPythonRunner,
                                                         tmp_path: Path) -> None:
    board = board_config(tmp_path)
    io = Path(board["io_dir"])
    # a cold, high páramo station: about -5 °C and 620 hPa, so the formulas' negative
    # intermediates (t_fine < 76800, t_fine < 128000) are exercised
    t_of = lambda raw: compensate_t(PART_B, raw)[0]  # noqa: E731
    cold_t = raw_for(300000, 700000, -500, t_of)
    cold_fine = compensate_t(PART_B, cold_t)[1]
    cold_p = raw_for(200000, 1000000, 62000 * 256,
                     lambda raw: compensate_p(PART_B, raw, cold_fine), rising=False)
    cold_h = raw_for(20000, 50000, 95 * 1024,
                     lambda raw: compensate_h(PART_B, raw, cold_fine))
    cases = [(DATASHEET, 519888, 415148, 30000), (PART_B, cold_t, cold_p, cold_h)]
    rng = random.Random(280)
    for _ in range(4):  # production-like parts, raw counts across the range (48 KB heap)
        c = Calib(*(v + rng.randint(-abs(v) // 20, abs(v) // 20) if i not in (12, 14) else v
                    for i, v in enumerate(PART_B)))
        cases.append((c, rng.randint(380000, 620000), rng.randint(250000, 600000),
                      rng.randint(15000, 45000)))
    sensors = []
    for bus, (c, adc_t, adc_p, adc_h) in enumerate(cases):
        (io / ("i2c%d_76.bin" % bus)).write_bytes(image(c, adc_t, adc_p, adc_h))
        sensors.append({"sensor": "bme280", "bus": bus, "address": 0x76})

    results, _ = read_sensors(micropython, tmp_path, sensors, board=board)

    for result, (c, adc_t, adc_p, adc_h) in zip(results, cases):
        assert result["error"] is None
        assert result["readings"] == expected(c, adc_t, adc_p, adc_h), (c, adc_t, adc_p, adc_h)
        temp, pa, rh = floating(c, adc_t, adc_p, adc_h)
        got_t, got_rh, got_p = (m for _, m, _, _ in result["readings"])
        assert abs(got_t / 100 - temp) < 0.011
        assert abs(got_p - pa) < 1.5
        assert abs(got_rh / 100 - rh) < 0.05
    assert results[0]["readings"][0] == [17, 2508, -2, 0]  # 25.08 °C
    assert results[0]["readings"][2] == [19, 100653, -2, 0]  # 1006.53 hPa
    cold = results[1]["readings"]
    assert cold[0][1] < 0 and 60000 < cold[2][1] < 64000 and 9000 < cold[1][1] < 10000
    # forced mode, oversampling x1: ctrl_hum 0xF2 = 1, ctrl_meas 0xF4 = 001 001 01
    regs = (io / "i2c0_76.bin").read_bytes()
    assert (regs[0xF2], regs[0xF4]) == (0x01, 0x25)


def test_skipped_and_unreadable_sensors_are_missing_never_a_number(
        micropython: MicroPythonRunner, tmp_path: Path) -> None:
    board = board_config(tmp_path)
    io = Path(board["io_dir"])
    (io / "i2c0_77.bin").write_bytes(image(DATASHEET, 519888, 415148, 0x8000))  # H skipped
    (io / "i2c1_76.bin").write_bytes(image(DATASHEET, 519888, 415148, 30000, chip_id=0x58))
    (io / "i2c2_76.bin").write_bytes(image(DATASHEET, 519888, 415148, 30000, status=0x08))
    sensors = [
        {"sensor": "bme280", "bus": 0, "address": 0x77, "channels": [21, 22, 23],
         "oversampling": [2, 0, 4]},
        {"sensor": "bme280", "bus": 1},                       # a BMP280: no humidity
        {"sensor": "bme280", "bus": 2, "timeout_ms": 30},      # stays busy
        {"sensor": "bme280", "bus": 3, "channels": [17, 0, 19]},  # nothing at 0x76
    ]

    results, _ = read_sensors(micropython, tmp_path, sensors, board=board)

    t, t_fine = compensate_t(DATASHEET, 519888)
    pa = half_up(Fraction(compensate_p(DATASHEET, 415148, t_fine), 256))
    assert results[0]["readings"] == [[21, t, -2, 0], [22, 0, 0, MISSING], [23, pa, -2, 0]]
    regs = (io / "i2c0_77.bin").read_bytes()
    assert (regs[0xF2], regs[0xF4]) == (0x00, (2 << 5) | (3 << 2) | 1)
    assert results[1]["error"] == ENODEV
    assert results[1]["readings"] == [[17, 0, 0, MISSING], [18, 0, 0, MISSING],
                                      [19, 0, 0, MISSING]]
    assert results[2]["error"] == ETIMEDOUT
    assert results[2]["ms"] < 500
    assert results[3]["error"] == ENODEV
    assert results[3]["readings"] == [[17, 0, 0, MISSING], [19, 0, 0, MISSING]]


def test_sensors_share_a_bus_and_a_silent_one_does_not_stop_the_other(
        micropython: MicroPythonRunner, tmp_path: Path) -> None:
    board = board_config(tmp_path)
    io = Path(board["io_dir"])
    (io / "i2c0_77.bin").write_bytes(image(PART_B, 500000, 400000, 30000))
    sensors = [{"sensor": "bme280", "bus": 0, "address": 0x76},
               {"sensor": "bme280", "bus": 0, "address": 0x77}]

    results, _ = read_sensors(micropython, tmp_path, sensors, rounds=2, board=board)

    assert [r["error"] for r in results] == [ENODEV, None, ENODEV, None]
    assert results[1]["readings"] == results[3]["readings"] == expected(PART_B, 500000, 400000,
                                                                        30000)
