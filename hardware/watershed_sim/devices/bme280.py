"""A simulated Bosch BME280 on a unix board's I2C bus: the chip's register image, written by the
harness (firmware/hal_unix_i2c.py reads ``<io_dir>/i2c<bus>_<addr>.bin``).

The raw counts for a wanted temperature, humidity and pressure are found by searching the
datasheet's integer compensation (BST-BME280-DS002, 4.2.3, C's 32/64-bit semantics spelled out
here; tests/firmware/test_driver_bme280.py anchors it to Bosch's worked example), so the
station computes what the harness asked for to the chip's resolution.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

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


def raw_for(lo: int, hi: int, target: float, value: Callable[[int], float], rising: bool = True,
            near: int | None = None) -> int:
    """The last raw count in [lo, hi) whose compensated ``value(raw)`` is below ``target``
    (above it when not ``rising``), by halving. ``near``: a count close to the answer (the one
    found for the previous step's conditions), from which the bracket is found by doubling
    steps first, so a small change costs a few evaluations instead of twenty. ``value`` is
    monotonic, so the answer is the same either way."""
    def below(raw: int) -> bool:
        return (value(raw) < target) == rising

    if near is not None and lo <= near < hi:
        lo, hi = _bracket(lo, hi, near, below)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if below(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _bracket(lo: int, hi: int, near: int, below: Callable[[int], bool]) -> tuple[int, int]:
    """A bracket [a, b] around the answer (``below(a)`` or a == lo; not ``below(b)`` or b == hi),
    grown from ``near`` in doubling steps."""
    step = 1
    if below(near):
        a = near
        while a + step < hi and below(a + step):
            a, step = a + step, step * 2
        return a, min(a + step, hi)
    b = near
    while b - step > lo and not below(b - step):
        b, step = b - step, step * 2
    return max(b - step, lo), b


T_RANGE = (0, (1 << 20) - 1)  # 20-bit temperature and pressure counts
H_RANGE = (0, (1 << 16) - 1)


def raws_for(c: Calib, temp_c: float, rh_pct: float, pressure_hpa: float,
             near: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """(adc_t, adc_p, adc_h) the chip reports for these conditions; ``near``: the counts for
    conditions close to these (raw_for)."""
    near_t, near_p, near_h = near or (None, None, None)
    adc_t = raw_for(*T_RANGE, temp_c * 100, lambda r: compensate_t(c, r)[0], near=near_t)
    t_fine = compensate_t(c, adc_t)[1]
    # pressure falls as the count rises
    adc_p = raw_for(*T_RANGE, pressure_hpa * 100 * 256,
                    lambda r: compensate_p(c, r, t_fine), rising=False, near=near_p)
    adc_h = raw_for(*H_RANGE, rh_pct * 1024, lambda r: compensate_h(c, r, t_fine), near=near_h)
    return adc_t, adc_p, adc_h


# Images made lately, by conditions: chips in one environment (a fleet of stations) show the
# same conditions at each step, and their counts are searched for once, not once a chip.
_IMAGES: dict[tuple[Calib, float, float, float], tuple[tuple[int, int, int], bytes]] = {}
_IMAGES_KEPT = 64
_IMAGES_LOCK = threading.Lock()


class Bme280Image:
    """The register file of one chip; ``write`` replaces it whole (a station never reads a
    half-written one), ``remove`` makes the chip not answer (ENODEV)."""

    def __init__(self, io_dir: Path, bus: int, address: int, calib: Calib = DATASHEET) -> None:
        self.path = Path(io_dir) / f"i2c{bus}_{address:02x}.bin"  # hal_unix_i2c.py
        self.calib = calib
        self._raws: tuple[int, int, int] | None = None  # the last image's counts

    def write(self, temp_c: float, rh_pct: float, pressure_hpa: float) -> None:
        key = (self.calib, temp_c, rh_pct, pressure_hpa)
        with _IMAGES_LOCK:
            known = _IMAGES.get(key)
            if known is None:
                # conditions move little from one time step to the next: the search starts
                # from the last image's counts
                raws = raws_for(self.calib, temp_c, rh_pct, pressure_hpa, near=self._raws)
                known = _IMAGES[key] = (raws, image(self.calib, *raws))
                if len(_IMAGES) > _IMAGES_KEPT:
                    del _IMAGES[next(iter(_IMAGES))]  # the oldest
        self._raws, data = known
        tmp = self.path.with_name("." + self.path.name)
        tmp.write_bytes(data)
        os.replace(tmp, self.path)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
