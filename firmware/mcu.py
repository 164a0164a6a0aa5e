"""What the ESP32 and RP2040 boards share: their hardware through ``machine``.

``Board`` is the Board API the code above the HAL uses, with what both boards do alike;
hal_esp32.py and hal_rp2.py extend it and hal_unix.py offers the same API for the MicroPython
unix port (tests/firmware/test_hal_boards.py checks the three agree). Each board module
documents its wiring and what differs (ADC, wake pins, watchdog limit, RTC memory).
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
_LONG_WAIT_MS = const(60000)  # without a watchdog: waits are still cut into these


def _bcd(v):
    return (v >> 4) * 10 + (v & 0x0F)


def _to_bcd(v):
    return ((v // 10) << 4) | (v % 10)


def cfg_for(table, key):
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

    def waiting(self, timeout_ms):
        """True when bytes arrive within ``timeout_ms`` (they stay unread); waits awake."""
        start = time.ticks_ms()
        while not self._uart.any():
            if time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
                return False
            time.sleep_ms(1)
        return True

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
    """A station's hardware. A board module's ``Board`` sets ``name`` (config.json's
    ``board.name``, which picks the module ``hal_<name>``) and adds ``sleep_once(ms, wake_pin)``
    (one lightsleep that the link's wake pin may end), ``rtc_memory()`` and
    ``set_rtc_memory(data)`` (state kept across a reset, not power loss).

    - ``clock``: a ``Clock``; ``data_dir``: the folder for state on the flash (littlefs at
      ``/``), created if missing;
    - ``uart(port, baud)``, ``sdi12(port)``: a ``Uart`` or ``Sdi12Port`` (pins from the
      config's ``"uarts"``, ``"sdi12"``); ``adc(pin)``: ``read_u16()``; ``i2c(bus, ...)``: one
      ``machine.I2C`` per bus (pins from the call or the config's ``"i2c"``); ``pin(no)``: a
      ``Pin`` with ``irq``;
    - ``sleep_ms`` waits awake, ``lightsleep`` keeps RAM (the link's first byte ends it),
      ``deepsleep`` resets; every wait feeds the watchdog (``"watchdog_ms"``, 0: none) in
      chunks of half its timeout, and so does ``feed_watchdog()`` (counted in
      ``watchdog_feeds``).
    """

    _wdt_max_ms = 0  # the hardware's longest watchdog timeout; 0: no limit below the config's

    def __init__(self, cfg):
        self._cfg = cfg
        self.data_dir = cfg.get("data_dir", "/data")
        try:
            os.mkdir(self.data_dir)
        except OSError:
            pass  # exists
        self.watchdog_feeds = 0
        # a GPIO wired to the link's RX: the gateway's wake preamble ends a lightsleep
        self.rx_edge = False
        self._link_wake = None  # type: machine.Pin | None
        if cfg.get("link_wake") is not None:
            self._link_wake = machine.Pin(cfg["link_wake"], machine.Pin.IN)
        self._i2c = {}  # type: dict[int, machine.I2C]
        wdt_ms = cfg.get("watchdog_ms", 0)
        if self._wdt_max_ms and wdt_ms > self._wdt_max_ms:
            wdt_ms = self._wdt_max_ms
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
        pins = cfg_for(self._cfg.get("uarts"), port)
        if "tx" in pins and "rx" in pins:
            return Uart(machine.UART(port, baud, tx=pins["tx"], rx=pins["rx"]), baud)
        return Uart(machine.UART(port, baud), baud)

    def sdi12(self, port):
        return Sdi12Port(port, cfg_for(self._cfg.get("sdi12"), port))

    def adc(self, pin):
        return machine.ADC(pin)

    def i2c(self, bus=0, scl=None, sda=None, freq=100000):
        i2c = self._i2c.get(bus)
        if i2c is None:
            pins = cfg_for(self._cfg.get("i2c"), bus)
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
        """Edges are delivered by the hardware IRQ as they come."""

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

    def lightsleep(self, station_ms, link=None):
        """Sleep with RAM kept, in watchdog-sized ``sleep_once`` steps (pin IRQs, rain tips,
        run as they wake it); the clock is resynchronised after. With ``link``: True as soon as
        it has bytes waiting.

        The link wakes the CPU through ``_link_wake``, a GPIO wired to its RX line (the board
        sets ``rx_edge`` when it fires): the first start bit of the gateway's wake preamble
        (idle-fill delimiters, contracts 1.1; the gateway's ``wake_preamble``) ends the sleep,
        and the bytes lost while the CPU wakes are idle fill. Without such a pin the board
        waits awake for the link, at the power of an idle CPU."""
        woke = False
        wake_pin = self._link_wake if link is not None else None
        start = time.ticks_ms()
        while True:
            if link is not None and (link.waiting(0) or self.rx_edge):
                self.rx_edge = False
                woke = True
                break
            left = station_ms - time.ticks_diff(time.ticks_ms(), start)
            if left <= 0:
                break
            self.feed_watchdog()
            if link is not None and wake_pin is None:
                if link.waiting(min(left, self._chunk_ms)):
                    woke = True
                    break
            else:
                self.sleep_once(min(left, self._chunk_ms), wake_pin)
        self.clock.resync()
        return woke

    def sleep_once(self, ms, wake_pin):  # type: (int, machine.Pin | None) -> None
        raise NotImplementedError  # each board's own

    def deepsleep(self, station_ms):
        """Sleep with RAM lost: the board resets when it wakes (reset_cause DEEPSLEEP_RESET)."""
        self.feed_watchdog()
        machine.deepsleep(station_ms)

    def persistent_dir(self):
        """Flash: survives resets and power loss (``rtc_memory`` survives only resets)."""
        return self.data_dir

    def reset_cause(self):
        return machine.reset_cause()

    def free_heap(self):
        return gc.mem_free()
