"""BME280 driver in the MicroPython unix port, against a register image of the chip.

The expected values come from an implementation written here from the datasheet's C code
(BST-BME280-DS002, 4.2.3), with C's 32/64-bit semantics spelled out, not from the driver; it is
itself anchored to Bosch's worked example (BMP280 datasheet 3.12, the same T and P formulas:
adc_T 519888 → t_fine 128422, 25.08 °C; adc_P 415148 → 100653.27 Pa) and cross-checked with the
datasheet's floating-point formulas.
"""

from __future__ import annotations

import random
import struct
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.firmware.drivers_harness import board_config, read_sensors
from tests.fixtures.micropython import MicroPythonRunner

pytestmark = pytest.mark.firmware

MISSING, OUT_OF_RANGE = 0x01, 0x02
ENODEV, ETIMEDOUT = 19, 110


class Calib(NamedTuple):
    T1: int
    T2: int
    T3: int
    P1: int
    P2: int
    P3: int
    P4: int
    P5: int
    P6: int
    P7: int
    P8: int
    P9: int
    H1: int
    H2: int
    H3: int
    H4: int
    H5: int
    H6: int


# T and P from Bosch's worked example; H from a production BME280
DATASHEET = Calib(27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
                  75, 362, 0, 313, 50, 30)
# another production part
PART_B = Calib(28485, 26735, 50, 39587, -10307, 3024, 7361, -80, -7, 9900, -10230, 4285,
               75, 364, 0, 318, 0, 30)


# --- the datasheet's integer compensation, C semantics made explicit -------------------------

def _int(value: int, bits: int) -> int:
    assert -(1 << (bits - 1)) <= value < (1 << (bits - 1)), "C int%d overflow" % bits
    return value


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def compensate_t(c: Calib, adc_t: int) -> tuple[int, int]:
    """BME280_compensate_T_int32: (T in 0.01 °C, t_fine)."""
    var1 = _int((((adc_t >> 3) - (c.T1 << 1)) * c.T2), 32) >> 11
    var2 = _int(((((adc_t >> 4) - c.T1) * ((adc_t >> 4) - c.T1)) >> 12) * c.T3, 32) >> 14
    t_fine = _int(var1 + var2, 32)
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_p(c: Calib, adc_p: int, t_fine: int) -> int:
    """BME280_compensate_P_int64: Pa in Q24.8."""
    var1 = t_fine - 128000
    var2 = _int(var1 * var1 * c.P6, 64)
    var2 = _int(var2 + ((var1 * c.P5) << 17), 64)
    var2 = _int(var2 + (c.P4 << 35), 64)
    var1 = _int(((var1 * var1 * c.P3) >> 8) + ((var1 * c.P2) << 12), 64)
    var1 = _int(((1 << 47) + var1) * c.P1, 64) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _c_div(_int(((p << 31) - var2) * 3125, 64), var1)
    var1 = _int(c.P9 * (p >> 13) * (p >> 13), 64) >> 25
    var2 = _int(c.P8 * p, 64) >> 19
    return _int(((p + var1 + var2) >> 8) + (c.P7 << 4), 64)


def compensate_h(c: Calib, adc_h: int, t_fine: int) -> int:
    """bme280_compensate_H_int32: %RH in Q22.10."""
    x = t_fine - 76800
    a = _int((adc_h << 14) - (c.H4 << 20) - (c.H5 * x) + 16384, 32) >> 15
    b = _int((x * c.H6) >> 10, 32) * _int(((x * c.H3) >> 11) + 32768, 32)
    b = _int(((b >> 10) + 2097152) * c.H2 + 8192, 32) >> 14
    x = _int(a * b, 32)
    x = x - (((((x >> 15) * (x >> 15)) >> 7) * c.H1) >> 4)
    x = min(max(x, 0), 419430400)
    return x >> 12


def floating(c: Calib, adc_t: int, adc_p: int, adc_h: int) -> tuple[float, float, float]:
    """The datasheet's double-precision formulas: °C, Pa, %RH."""
    v1 = (adc_t / 16384.0 - c.T1 / 1024.0) * c.T2
    v2 = ((adc_t / 131072.0 - c.T1 / 8192.0) ** 2) * c.T3
    t_fine = v1 + v2
    temp = t_fine / 5120.0
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * c.P6 / 32768.0 + v1 * c.P5 * 2.0
    v2 = v2 / 4.0 + c.P4 * 65536.0
    v1 = (c.P3 * v1 * v1 / 524288.0 + c.P2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * c.P1
    p = 1048576.0 - adc_p
    p = (p - v2 / 4096.0) * 6250.0 / v1
    p += (c.P9 * p * p / 2147483648.0 + p * c.P8 / 32768.0 + c.P7) / 16.0
    h = t_fine - 76800.0
    h = (adc_h - (c.H4 * 64.0 + c.H5 / 16384.0 * h)) * (
        c.H2 / 65536.0 * (1.0 + c.H6 / 67108864.0 * h * (1.0 + c.H3 / 67108864.0 * h)))
    h = min(max(h * (1.0 - c.H1 * h / 524288.0), 0.0), 100.0)
    return temp, p, h


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


# --- the chip's register image ------------------------------------------------------------------

def image(c: Calib, adc_t: int, adc_p: int, adc_h: int, chip_id: int = 0x60,
          status: int = 0) -> bytes:
    regs = bytearray(256)
    struct.pack_into("<HhhHhhhhhhhh", regs, 0x88, *c[:12])
    regs[0xA1] = c.H1
    struct.pack_into("<hB", regs, 0xE1, c.H2, c.H3)
    regs[0xE4] = (c.H4 >> 4) & 0xFF
    regs[0xE5] = ((c.H5 & 0x0F) << 4) | (c.H4 & 0x0F)
    regs[0xE6] = (c.H5 >> 4) & 0xFF
    struct.pack_into("<b", regs, 0xE7, c.H6)
    regs[0xD0] = chip_id
    regs[0xF3] = status
    regs[0xF7:0xFA] = bytes((adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4))
    regs[0xFA:0xFD] = bytes((adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4))
    regs[0xFD:0xFF] = bytes((adc_h >> 8, adc_h & 0xFF))
    return bytes(regs)


def raw_for(lo: int, hi: int, target: float, value, rising: bool = True) -> int:  # type: ignore[no-untyped-def]
    """The raw count in [lo, hi] whose compensated ``value(raw)`` is nearest ``target``."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (value(mid) < target) == rising:
            lo = mid
        else:
            hi = mid
    return lo


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
