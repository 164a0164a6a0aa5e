"""Bosch BME280 air temperature, relative humidity and pressure sensor on I2C.

The sensor sleeps between readings: ``read()`` starts one measurement in forced mode (humidity
oversampling in ctrl_hum 0xF2 first — it takes effect on the write to ctrl_meas 0xF4 —, then
ctrl_meas with mode 01), waits the datasheet's maximum measurement time (9.1), polls status 0xF3
until ``measuring`` clears (``timeout_ms``, ``ticks_diff``), reads the eight data registers
0xF7–0xFE in one burst into a buffer allocated once, and compensates them with Bosch's integer
formulas (datasheet 4.2.3: ``BME280_compensate_T_int32``, ``BME280_compensate_P_int64``,
``bme280_compensate_H_int32``). Outputs are exact decimals ``(mantissa, exponent)``:

- air temperature: the formula's 0.01 °C, as is: ``(2508, -2)`` = 25.08 °C;
- pressure: the formula's Q24.8 Pa rounded half up to 1 Pa, reported in hPa: ``(100653, -2)``
  = 1006.53 hPa (resolution 0.01 hPa; the sensor's relative accuracy is ±0.12 hPa);
- relative humidity: the formula's 1/1024 %RH rounded half up to 0.01 %RH: ``(4738, -2)`` =
  47.38 % (the sensor's accuracy is ±3 %RH, so hundredths keep all it knows).

Values outside the sensor's operating range (−40…85 °C, 300…1100 hPa) are flagged
OUT_OF_RANGE; a measurement the sensor skipped (raw 0x80000 / 0x8000) is MISSING. A sensor that
does not answer, is not a BME280 (chip id 0xD0 ≠ 0x60) or stays busy raises OSError, which
``drivers.read_or_missing`` turns into MISSING readings; the calibration (0x88–0xA1, 0xE1–0xE7,
read once) is read again after such an error, so a sensor plugged in later starts working.

The pressure formula needs 64-bit intermediates: on a 32-bit board those are long ints (a few
small transient allocations per reading, once per sampling interval).

Wiring (ESP32; SDO to GND gives address 0x76, to VCC 0x77; CSB to VCC selects I2C)::

    BME280 VIN ─ 3V3   GND ─ GND   SCL ─ GPIO 22   SDA ─ GPIO 21   (4.7 kΩ pull-ups)

    i2c = board.i2c(0, scl=22, sda=21)
    air = BME280(i2c, address=0x76)
    air.read()   # [(17, 2508, -2, 0), (18, 4738, -2, 0), (19, 100653, -2, 0)]

Config (sensor kind ``"bme280"``; entries with the same ``bus`` share one I2C object)::

    {"sensor": "bme280", "bus": 0, "scl": 22, "sda": 21, "freq": 100000,
     "address": 118,               0x76 (SDO low) or 0x77 (SDO high)
     "channels": [17, 18, 19],     air_temp_c, rh_pct, pressure_hpa; 0 skips one
     "oversampling": [1, 1, 1],    temperature, humidity, pressure: 0 (skip), 1, 2, 4, 8, 16
     "timeout_ms": 100}            the measurement must end within this after the wait

On the unix board the I2C device is a register image file the harness writes (hal_unix.I2C).
"""

import time
from array import array

from micropython import const

import wire

_REG_CALIB_TP = const(0x88)  # dig_T1 … dig_P9, (0xA0 unused), dig_H1: 26 bytes
_REG_CHIP_ID = const(0xD0)
_REG_CALIB_H = const(0xE1)  # dig_H2 … dig_H6: 7 bytes
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_DATA = const(0xF7)  # press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb
_CHIP_ID = const(0x60)
_STATUS_MEASURING = const(0x08)
_MODE_FORCED = const(0x01)
_SKIPPED_TP = const(0x80000)  # raw value of a skipped temperature or pressure measurement
_SKIPPED_H = const(0x8000)
_POLL_MS = const(2)
_TIMEOUT_MS = const(100)
_ENODEV = const(19)
_ETIMEDOUT = const(110)
_EIO = const(5)
# operating range (datasheet 1): 0.01 °C and Pa
_T_MIN = const(-4000)
_T_MAX = const(8500)
_P_MIN = const(30000)
_P_MAX = const(110000)

_OSRS = (0, 1, 2, 4, 8, 16)  # register code = index
# trimming parameters: their index in the calibration array
_T1 = const(0)
_T2 = const(1)
_T3 = const(2)
_P1 = const(3)
_P2 = const(4)
_P3 = const(5)
_P4 = const(6)
_P5 = const(7)
_P6 = const(8)
_P7 = const(9)
_P8 = const(10)
_P9 = const(11)
_H1 = const(12)
_H2 = const(13)
_H3 = const(14)
_H4 = const(15)
_H5 = const(16)
_H6 = const(17)


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _s16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


def _s12(v):
    return v - 0x1000 if v & 0x800 else v


class BME280:
    def __init__(self, i2c, address=0x76, channels=(17, 18, 19), oversampling=(1, 1, 1),
                 timeout_ms=_TIMEOUT_MS):
        if len(channels) != 3 or len(oversampling) != 3:
            raise ValueError("bme280: channels and oversampling are (temperature, humidity, "
                             "pressure)")
        codes = []
        for n in oversampling:
            if n not in _OSRS:
                raise ValueError("bme280 oversampling must be 0, 1, 2, 4, 8 or 16")
            codes.append(_OSRS.index(n))
        self.i2c = i2c
        self.address = address
        self.channels = tuple(channels)
        self.timeout_ms = timeout_ms
        os_t, os_h, os_p = oversampling
        self._ctrl_hum = bytearray((codes[1],))
        self._ctrl_meas = bytearray(((codes[0] << 5) | (codes[2] << 2) | _MODE_FORCED,))
        # datasheet 9.1, maximum measurement time, in µs
        us = 1250 + 2300 * os_t
        if os_p:
            us += 2300 * os_p + 575
        if os_h:
            us += 2300 * os_h + 575
        self.measure_ms = (us + 999) // 1000
        self._raw = bytearray(8)
        self._one = bytearray(1)
        self._cal = array("i", bytes(4 * 18))  # dig_T1 … dig_H6, in the order of _T1 … _H6
        self._calibrated = False
        self.errors = 0  # failed reads (for the technician)
        self.t_fine = 0

    # --- registers ---------------------------------------------------------------------------

    def _calibrate(self):
        """Check the chip id and read the trimming parameters (once; again after an error)."""
        one = self._one
        self.i2c.readfrom_mem_into(self.address, _REG_CHIP_ID, one)
        if one[0] != _CHIP_ID:
            raise OSError(_ENODEV)
        c = self._cal
        b = bytearray(26)
        self.i2c.readfrom_mem_into(self.address, _REG_CALIB_TP, b)
        c[_T1] = _u16(b, 0)
        c[_P1] = _u16(b, 6)
        for i in range(2, 24, 2):  # dig_T2, dig_T3, dig_P2 … dig_P9: signed
            if i != 6:
                c[i // 2] = _s16(b, i)
        c[_H1] = b[25]
        h = b  # 7 more bytes into the same buffer
        self.i2c.readfrom_mem_into(self.address, _REG_CALIB_H, h)
        c[_H2] = _s16(h, 0)
        c[_H3] = h[2]
        c[_H4] = _s12((h[3] << 4) | (h[4] & 0x0F))
        c[_H5] = _s12((h[5] << 4) | (h[4] >> 4))
        c[_H6] = h[6] - 0x100 if h[6] & 0x80 else h[6]
        if c[_P1] == 0 or c[_T1] == 0:
            raise OSError(_EIO)  # erased or unreadable trimming: no number would be right
        self._calibrated = True

    def measure(self):
        """One forced-mode measurement into the raw buffer."""
        if not self._calibrated:
            self._calibrate()
        i2c = self.i2c
        i2c.writeto_mem(self.address, _REG_CTRL_HUM, self._ctrl_hum)
        i2c.writeto_mem(self.address, _REG_CTRL_MEAS, self._ctrl_meas)
        time.sleep_ms(self.measure_ms)
        start = time.ticks_ms()
        one = self._one
        while True:
            i2c.readfrom_mem_into(self.address, _REG_STATUS, one)
            if not one[0] & _STATUS_MEASURING:
                break
            if time.ticks_diff(time.ticks_ms(), start) >= self.timeout_ms:
                raise OSError(_ETIMEDOUT)
            time.sleep_ms(_POLL_MS)
        i2c.readfrom_mem_into(self.address, _REG_DATA, self._raw)

    # --- compensation (datasheet 4.2.3, integer versions) -------------------------------------

    def temperature(self, adc_t):
        """0.01 °C; sets ``t_fine`` for the other two."""
        c = self._cal
        var1 = (((adc_t >> 3) - (c[_T1] << 1)) * c[_T2]) >> 11
        d = (adc_t >> 4) - c[_T1]
        var2 = (((d * d) >> 12) * c[_T3]) >> 14
        self.t_fine = var1 + var2
        return (self.t_fine * 5 + 128) >> 8

    def pressure_q24_8(self, adc_p):
        """Pa × 256 (Q24.8); 0 when the calibration makes it undefined."""
        c = self._cal
        var1 = self.t_fine - 128000
        var2 = var1 * var1 * c[_P6]
        var2 += (var1 * c[_P5]) << 17
        var2 += c[_P4] << 35
        var1 = ((var1 * var1 * c[_P3]) >> 8) + ((var1 * c[_P2]) << 12)
        var1 = (((1 << 47) + var1) * c[_P1]) >> 33
        if var1 == 0:
            return 0
        p = 1048576 - adc_p
        num = ((p << 31) - var2) * 3125
        # C's int64 division truncates toward zero
        p = num // var1 if (num >= 0) == (var1 > 0) else -(-num // var1)
        var1 = (c[_P9] * (p >> 13) * (p >> 13)) >> 25
        var2 = (c[_P8] * p) >> 19
        return ((p + var1 + var2) >> 8) + (c[_P7] << 4)

    def humidity_q22_10(self, adc_h):
        """%RH × 1024 (Q22.10), 0 … 102400."""
        c = self._cal
        v = self.t_fine - 76800
        v = ((((adc_h << 14) - (c[_H4] << 20) - (c[_H5] * v)) + 16384) >> 15) * (
            ((((((v * c[_H6]) >> 10) * (((v * c[_H3]) >> 11) + 32768)) >> 10) + 2097152)
             * c[_H2] + 8192) >> 14)
        v -= ((((v >> 15) * (v >> 15)) >> 7) * c[_H1]) >> 4
        if v < 0:
            v = 0
        elif v > 419430400:
            v = 419430400
        return v >> 12

    # --- the driver contract -----------------------------------------------------------------

    def read(self):
        try:
            self.measure()
        except OSError:
            self.errors += 1
            self._calibrated = False  # a reset or replaced sensor: read the trimming again
            raise
        r = self._raw
        adc_p = (r[0] << 12) | (r[1] << 4) | (r[2] >> 4)
        adc_t = (r[3] << 12) | (r[4] << 4) | (r[5] >> 4)
        adc_h = (r[6] << 8) | r[7]
        ch_t, ch_h, ch_p = self.channels
        out = []
        if adc_t == _SKIPPED_TP:  # no temperature: no t_fine for the others either
            for ch in self.channels:
                if ch:
                    out.append((ch, 0, 0, wire.MISSING))
            return out
        t = self.temperature(adc_t)
        if ch_t:
            flags = wire.OUT_OF_RANGE if t < _T_MIN or t > _T_MAX else 0
            out.append((ch_t, t, -2, flags))
        if ch_h:
            if adc_h == _SKIPPED_H:
                out.append((ch_h, 0, 0, wire.MISSING))
            else:
                out.append((ch_h, (self.humidity_q22_10(adc_h) * 100 + 512) >> 10, -2, 0))
        if ch_p:
            q = 0 if adc_p == _SKIPPED_TP else self.pressure_q24_8(adc_p)
            if q <= 0:
                out.append((ch_p, 0, 0, wire.MISSING))
            else:
                pa = (q + 128) >> 8
                flags = wire.OUT_OF_RANGE if pa < _P_MIN or pa > _P_MAX else 0
                out.append((ch_p, pa, -2, flags))
        return out


def from_config(cfg, board, shared):
    """The driver for one ``"bme280"`` config entry; ``shared`` holds one I2C per bus."""
    bus = cfg.get("bus", 0)
    key = "i2c%d" % bus
    i2c = shared.get(key)
    if i2c is None:
        i2c = board.i2c(bus, cfg.get("scl"), cfg.get("sda"), cfg.get("freq", 100000))
        shared[key] = i2c
    return BME280(i2c, cfg.get("address", 0x76), cfg.get("channels", (17, 18, 19)),
                  cfg.get("oversampling", (1, 1, 1)), cfg.get("timeout_ms", _TIMEOUT_MS))
