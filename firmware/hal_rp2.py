"""RP2040 board (Raspberry Pi Pico): the station's hardware through ``machine`` (the Board API
of hal_unix).

- clock: the RP2040 RTC (``time.time_ns``; the ports' epoch may be 2000, handled here). It does
  not survive a reset or power loss, so fit a DS3231 (``"ds3231"``): it sets the RTC at boot and
  after sleeps at most every ``_RESYNC_MS``; ``set_ms`` writes both. A DS3231 whose oscillator
  stopped (OSF) is not believed; without one the clock reads 2021 after a reset, which the
  station's clock policy flags until the gateway's TIME;
- serial ports: ``machine.UART`` 0 or 1 (``board.uart(1, 9600)``), pins from ``"uarts"``;
  ``readinto(buf, timeout_ms)`` returns what arrives within the timeout (no allocation);
- SDI-12: a UART at 1200 baud 7E1, TX through a 74LVC1G125 whose OE (``dir`` pin, low drives) is
  enabled only while the master talks, RX through an inverting level shifter (``invert_tx``:
  the UART inverts TX so the line marks low). The port's ``sendbreak`` lasts 13 bit times
  (10.8 ms at 1200 baud, short of SDI-12's 12 ms), so the break is a 0x00 character at 480
  baud: 9 spacing bits = 18.75 ms, then 9 ms of marking. An echo of our own command (RX wired
  to the line) is read back and dropped;
- ADC: ``machine.ADC`` on GPIO 26–28 (3.3 V reference), ``read_u16``;
- I2C: ``machine.I2C(bus)`` shared per bus (0 or 1); pins from the call or from ``"i2c"``;
- pins: input with pull-up; ``irq(handler, IRQ_FALLING)`` — a GPIO interrupt also ends a
  lightsleep early and its handler runs, so tips are counted while asleep;
- watchdog: ``machine.WDT`` (``"watchdog_ms"``, at most 8388 ms on the RP2040, 0: none), fed
  from every wait in this module in chunks of half its timeout and by ``feed_watchdog()``;
- sleep: ``lightsleep`` (RAM kept) and ``deepsleep`` (a reset). ``rtc_memory()`` /
  ``set_rtc_memory(data)`` keep 16 bytes across a watchdog or soft reset in the watchdog's
  scratch registers 0–3 (4–7 belong to the boot ROM); nothing survives power loss but flash;
- flash: littlefs at ``/``; ``data_dir`` is created if missing.

Board config (the ``board`` object of config.json)::

    {"name": "rp2", "data_dir": "/data", "watchdog_ms": 8000,
     "uarts": {"1": {"tx": 4, "rx": 5}},
     "sdi12": {"0": {"tx": 0, "rx": 1, "dir": 2, "invert_tx": true, "echo": false}},
     "i2c": {"0": {"scl": 21, "sda": 20}},
     "ds3231": {"bus": 0}}
"""

import gc
import os
import time

import machine
from micropython import const

_EPOCH_S = 946684800 if time.gmtime(0)[0] == 2000 else 0  # the port's epoch in Unix seconds
_SDI12_BAUD = const(1200)
_BREAK_BAUD = const(480)  # 9 spacing bits of a 0x00 in 7E1 at 480 baud = 18.75 ms
_MARK_MS = const(9)  # marking after a break before the address (>= 8.33 ms)
_ECHO_MS = const(20)  # a character at 1200 baud plus margin
_DS3231 = const(0x68)
_DS3231_STATUS = const(0x0F)
_OSF = const(0x80)
_RESYNC_MS = const(600000)
_WDT_MAX_MS = const(8388)  # the RP2040 watchdog's longest timeout
_WATCHDOG_SCRATCH = const(0x4005800C)  # WATCHDOG_BASE + SCRATCH0
_SCRATCH_WORDS = const(4)
_LONG_WAIT_MS = const(60000)  # without a watchdog: waits are still cut into these


def _bcd(v):
    return (v >> 4) * 10 + (v & 0x0F)


def _to_bcd(v):
    return ((v // 10) << 4) | (v % 10)


def _cfg_for(table, key):
    """``table[str(key)]`` or {}: JSON objects have string keys, ports are ids."""
    if not table:
        return {}
    return table.get(str(key)) or {}


class DS3231:
    """Maxim DS3231 TCXO RTC (±2 ppm) on I2C: whole seconds, UTC, 24-hour mode."""

    def __init__(self, i2c, address=_DS3231):  # type: (machine.I2C, int) -> None
        self.i2c = i2c
        self.address = address
        self._regs = bytearray(7)
        self._one = bytearray(1)

    def read_s(self):
        """Unix seconds, or -1 when the oscillator stopped (lost backup battery)."""
        one = self._one
        self.i2c.readfrom_mem_into(self.address, _DS3231_STATUS, one)
        if one[0] & _OSF:
            return -1
        r = self._regs
        self.i2c.readfrom_mem_into(self.address, 0, r)
        year = 2000 + _bcd(r[6]) + (100 if r[5] & 0x80 else 0)
        t = (year, _bcd(r[5] & 0x1F), _bcd(r[4]), _bcd(r[2] & 0x3F), _bcd(r[1]),
             _bcd(r[0] & 0x7F), 0, 0)
        return time.mktime(t) + _EPOCH_S

    def write_s(self, unix_s):
        y, mo, d, h, mi, s, wd = time.gmtime(unix_s - _EPOCH_S)[:7]
        r = self._regs
        r[0] = _to_bcd(s)
        r[1] = _to_bcd(mi)
        r[2] = _to_bcd(h)
        r[3] = wd + 1
        r[4] = _to_bcd(d)
        r[5] = _to_bcd(mo) | (0x80 if y >= 2100 else 0)
        r[6] = _to_bcd(y % 100)
        self.i2c.writeto_mem(self.address, 0, r)
        one = self._one
        self.i2c.readfrom_mem_into(self.address, _DS3231_STATUS, one)
        one[0] &= ~_OSF & 0xFF
        self.i2c.writeto_mem(self.address, _DS3231_STATUS, one)


class Clock:
    """Station clock in Unix milliseconds, UTC, on the internal RTC (+ DS3231 if fitted)."""

    speed = 1

    def __init__(self, ds3231=None):
        self._rtc = machine.RTC()
        self.ds3231 = ds3231
        self._synced_ticks = time.ticks_ms()
        if ds3231 is not None:
            self.resync(True)

    def now_ms(self):
        return time.time_ns() // 1000000 + _EPOCH_S * 1000

    def now(self):
        return self.now_ms() // 1000

    def set_ms(self, unix_ms):
        self._set_internal(unix_ms)
        if self.ds3231 is not None:
            try:
                self.ds3231.write_s(unix_ms // 1000)
            except OSError:
                pass  # the internal RTC is set; the DS3231 is tried again on the next TIME

    def _set_internal(self, unix_ms):
        s = unix_ms // 1000
        y, mo, d, h, mi, sec, wd = time.gmtime(s - _EPOCH_S)[:7]
        self._rtc.datetime((y, mo, d, wd, h, mi, sec, (unix_ms - s * 1000) * 1000))

    def wait_ms(self, station_ms):
        return station_ms

    def resync(self, force=False):
        """Set the internal RTC from the DS3231 when they disagree by a second or more."""
        if self.ds3231 is None:
            return
        if not force and time.ticks_diff(time.ticks_ms(), self._synced_ticks) < _RESYNC_MS:
            return
        self._synced_ticks = time.ticks_ms()
        try:
            s = self.ds3231.read_s()
        except OSError:
            return
        if s >= 0 and abs(s * 1000 - self.now_ms()) >= 1000:
            self._set_internal(s * 1000)


class Uart:
    """A ``machine.UART`` with the HAL's ``readinto(buf, timeout_ms)``."""

    def __init__(self, uart, baud):  # type: (machine.UART, int) -> None
        self.baud = baud
        self._uart = uart
        self._one = bytearray(1)

    def readinto(self, buf, timeout_ms):
        """Bytes that arrive within ``timeout_ms`` into ``buf`` (0 if none); after the first,
        the rest must follow within a character time or two."""
        uart = self._uart
        one = self._one
        n = 0
        start = time.ticks_ms()
        timeout = timeout_ms
        while n < len(buf):
            if uart.any():
                uart.readinto(one, 1)
                buf[n] = one[0]
                n += 1
                start = time.ticks_ms()
                timeout = 2 + 20000 // self.baud  # two character times, at least 2 ms
            elif time.ticks_diff(time.ticks_ms(), start) >= timeout:
                break
            else:
                time.sleep_ms(1)
        return n

    def write(self, data):
        self._uart.write(data)

    def close(self):
        self._uart.deinit()


class Sdi12Port(Uart):
    """An SDI-12 line on a UART (module docstring: break, direction pin, echo)."""

    def __init__(self, uart_id, cfg):
        kw = {}
        if "tx" in cfg:
            kw["tx"] = cfg["tx"]
        if "rx" in cfg:
            kw["rx"] = cfg["rx"]
        invert = (machine.UART.INV_TX if cfg.get("invert_tx", True) else 0) | (
            machine.UART.INV_RX if cfg.get("invert_rx", False) else 0)
        uart = machine.UART(uart_id, _SDI12_BAUD, 7, 0, 1, invert=invert, **kw)
        super().__init__(uart, _SDI12_BAUD)
        dir_no = cfg.get("dir", -1)
        self._dir = machine.Pin(dir_no, machine.Pin.OUT, value=1) if dir_no >= 0 else None
        self._echo = cfg.get("echo", False)
        self._scratch = bytearray(1)

    def _drive(self, on):
        if self._dir is not None:
            self._dir.value(0 if on else 1)

    def send_break(self):
        uart = self._uart
        self._drive(True)
        uart.init(baudrate=_BREAK_BAUD, bits=7, parity=0, stop=1)
        uart.write(b"\x00")
        uart.flush()
        uart.init(baudrate=_SDI12_BAUD, bits=7, parity=0, stop=1)
        time.sleep_ms(_MARK_MS)  # marking, still driven

    def write(self, data):
        uart = self._uart
        self._drive(True)
        uart.write(data)
        uart.flush()  # the last stop bit is out
        self._drive(False)  # release the line for the reply
        if self._echo:
            for _ in range(len(data)):
                if not self.readinto(self._scratch, _ECHO_MS):
                    break

    def drain(self):
        uart = self._uart
        one = self._one
        while uart.any():
            uart.readinto(one, 1)


class Pin:
    """An input pin with pull-up whose IRQ the rain gauge uses; ``no`` is the GPIO."""

    IRQ_FALLING = machine.Pin.IRQ_FALLING
    IRQ_RISING = machine.Pin.IRQ_RISING

    def __init__(self, board, no, pull_up=True):
        self.no = no
        self._board = board
        self.pin = (machine.Pin(no, machine.Pin.IN, machine.Pin.PULL_UP) if pull_up
                    else machine.Pin(no, machine.Pin.IN))
        self.handler = None

    def irq(self, handler=None, trigger=machine.Pin.IRQ_FALLING):
        self.handler = handler
        self.pin.irq(self._fire if handler else None, trigger)

    def _fire(self, _pin):
        handler = self.handler
        if handler is not None:
            handler(self)

    def value(self):
        return self.pin.value()


class Board:
    name = "rp2"

    def __init__(self, cfg):
        self._cfg = cfg
        self.data_dir = cfg.get("data_dir", "/data")
        try:
            os.mkdir(self.data_dir)
        except OSError:
            pass  # exists
        self.watchdog_feeds = 0
        self._i2c = {}  # type: dict[int, machine.I2C]
        wdt_ms = min(cfg.get("watchdog_ms", 0), _WDT_MAX_MS)
        self._wdt = machine.WDT(timeout=wdt_ms) if wdt_ms > 0 else None
        self._chunk_ms = wdt_ms // 2 if wdt_ms > 0 else _LONG_WAIT_MS
        ds = cfg.get("ds3231")
        rtc = None
        if ds is not None:
            try:
                rtc = DS3231(self.i2c(ds.get("bus", 0)), ds.get("address", _DS3231))
            except OSError:
                rtc = None  # not fitted or not answering: the internal RTC alone
        self.clock = Clock(rtc)

    def uart(self, port, baud):
        pins = _cfg_for(self._cfg.get("uarts"), port)
        if "tx" in pins and "rx" in pins:
            return Uart(machine.UART(port, baud, tx=pins["tx"], rx=pins["rx"]), baud)
        return Uart(machine.UART(port, baud), baud)

    def sdi12(self, port):
        return Sdi12Port(port, _cfg_for(self._cfg.get("sdi12"), port))

    def adc(self, pin):
        return machine.ADC(pin)

    def i2c(self, bus=0, scl=None, sda=None, freq=100000):
        i2c = self._i2c.get(bus)
        if i2c is None:
            pins = _cfg_for(self._cfg.get("i2c"), bus)
            scl = pins.get("scl", scl) if scl is None else scl
            sda = pins.get("sda", sda) if sda is None else sda
            if scl is not None and sda is not None:
                i2c = machine.I2C(bus, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)
            else:
                i2c = machine.I2C(bus, freq=freq)
            self._i2c[bus] = i2c
        return i2c

    def pin(self, no, pull_up=True):
        return Pin(self, no, pull_up)

    def run_irqs(self):
        """Edges are delivered by the hardware IRQ as they come, asleep or awake."""

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()
        self.watchdog_feeds += 1

    def sleep_ms(self, station_ms):
        """Wait awake, feeding the watchdog."""
        start = time.ticks_ms()
        while True:
            left = station_ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                return
            self.feed_watchdog()
            time.sleep_ms(min(left, self._chunk_ms))

    def lightsleep(self, station_ms):
        """Sleep with RAM kept; a pin IRQ ends a sleep early (its handler runs), so sleep on."""
        start = time.ticks_ms()
        while True:
            left = station_ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                break
            self.feed_watchdog()
            machine.lightsleep(min(left, self._chunk_ms))
        self.clock.resync()

    def deepsleep(self, station_ms):
        """Sleep with RAM lost: the board resets when it wakes (reset_cause DEEPSLEEP_RESET)."""
        self.feed_watchdog()
        machine.deepsleep(station_ms)

    def persistent_dir(self):
        """Flash: survives resets and power loss (``rtc_memory`` survives only resets)."""
        return self.data_dir

    def rtc_memory(self):
        """The 16 bytes ``set_rtc_memory`` kept across a reset (garbage after power-on: keep a
        check value in them)."""
        out = bytearray(4 * _SCRATCH_WORDS)
        for i in range(_SCRATCH_WORDS):
            word = machine.mem32[_WATCHDOG_SCRATCH + 4 * i]
            for k in range(4):
                out[4 * i + k] = (word >> (8 * k)) & 0xFF
        return bytes(out)

    def set_rtc_memory(self, data):
        if len(data) > 4 * _SCRATCH_WORDS:
            raise ValueError("rp2 keeps 16 bytes across a reset")
        for i in range(_SCRATCH_WORDS):
            word = 0
            for k in range(4):
                j = 4 * i + k
                if j < len(data):
                    word |= data[j] << (8 * k)
            machine.mem32[_WATCHDOG_SCRATCH + 4 * i] = word

    def reset_cause(self):
        return machine.reset_cause()

    def free_heap(self):
        return gc.mem_free()
