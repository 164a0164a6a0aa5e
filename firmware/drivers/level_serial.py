"""Serial range sensor (radar or ultrasonic, e.g. MaxBotix MB7389): level = mount height − range.

The sensor free-runs, sending ``Rnnnn<CR>`` (range in mm; 4 or 5 digits) several times a
second on a TTL/RS-232 line. ``read()`` drops what queued up since the last read, takes the
next ``samples`` good frames (a frame with a parity error — bit 7 set on the unix port — or any
other shape is skipped) and reports the median, in exact integer millimetres::

    uart = board.uart(1, 9600)         # ESP32 UART1 RX <- sensor TX (pin 5 of the MB7389)
    gauge = SerialLevel(uart, mount_mm=3500, channel=1, range_channel=7)
    gauge.read()   # [(1, 1270, -3, 0), (7, 2230, -3, 0)]: stage 1.270 m, range 2.230 m

Config (sensor kind ``"serial_level"``)::

    {"sensor": "serial_level", "port": "/dev/pts/4" or 1, "baud": 9600,
     "mount_mm": 3500,       height of the sensor face above the stage datum, mm
     "channel": 1,           stage channel (level = mount_mm - range, metres, exponent -3)
     "range_channel": 0,     optional: also report the raw range (channel 7, range_m)
     "samples": 5,           frames per reading (median)
     "timeout_ms": 2000}     no good frame within this: OSError(ETIMEDOUT)

A range above ``mount_mm`` gives a negative stage, flagged OUT_OF_RANGE.
"""

import time

from micropython import const

import wire

_CR = const(0x0D)
_R = const(0x52)
_ETIMEDOUT = const(110)
_MAX_SAMPLES = const(15)


class SerialLevel:
    def __init__(self, uart, mount_mm, channel, range_channel=0, samples=5, timeout_ms=2000):
        self.uart = uart
        self.mount_mm = mount_mm
        self.channel = channel
        self.range_channel = range_channel
        self.samples = max(1, min(samples, _MAX_SAMPLES))
        self.timeout_ms = timeout_ms
        self.channels = (channel, range_channel) if range_channel else (channel,)
        self.bad_frames = 0
        self._frame = bytearray(8)
        self._one = bytearray(1)
        self._ranges = [0] * _MAX_SAMPLES

    def _drain(self):
        while self.uart.readinto(self._one, 0):
            pass

    def _next_range(self, start):
        """The next good frame's range in mm, or -1 when the timeout passes."""
        frame = self._frame
        n = -1  # -1: waiting for "R"
        while True:
            left = self.timeout_ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0 or not self.uart.readinto(self._one, left):
                return -1
            c = self._one[0]
            if c == _R:
                n = 0
            elif n < 0:
                continue
            elif c == _CR:
                if 4 <= n <= 5:
                    value = 0
                    for i in range(n):
                        value = value * 10 + frame[i] - 0x30
                    return value
                self.bad_frames += 1
                n = -1
            elif 0x30 <= c <= 0x39 and n < 5:
                frame[n] = c
                n += 1
            else:  # parity error, a stray byte or too many digits: this frame is bad
                self.bad_frames += 1
                n = -1

    def read(self):
        self._drain()  # frames queued while we were not listening are stale
        start = time.ticks_ms()
        ranges = self._ranges
        k = self.samples
        for i in range(k):
            r = self._next_range(start)
            if r < 0:
                raise OSError(_ETIMEDOUT)
            ranges[i] = r
        # median by insertion sort of k <= 15 ints, in place
        for i in range(1, k):
            v = ranges[i]
            j = i - 1
            while j >= 0 and ranges[j] > v:
                ranges[j + 1] = ranges[j]
                j -= 1
            ranges[j + 1] = v
        if k % 2:
            range_mm = ranges[k // 2]
            level, exp, rng = self.mount_mm - range_mm, -3, range_mm
        else:  # mean of the middle two, exactly: in tenths of a millimetre
            range_x10 = (ranges[k // 2 - 1] + ranges[k // 2]) * 5
            level, exp, rng = self.mount_mm * 10 - range_x10, -4, range_x10
        out = [(self.channel, level, exp, wire.OUT_OF_RANGE if level < 0 else 0)]
        if self.range_channel:
            out.append((self.range_channel, rng, exp, 0))
        return out


def from_config(cfg, board):
    return SerialLevel(board.uart(cfg["port"], cfg.get("baud", 9600)), cfg["mount_mm"],
                       cfg["channel"], cfg.get("range_channel", 0), cfg.get("samples", 5),
                       cfg.get("timeout_ms", 2000))
