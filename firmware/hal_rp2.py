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
- sleep: ``lightsleep`` (RAM kept) and ``deepsleep`` (a reset). Between samples the station
  sleeps until the gateway talks: ``"link_wake"`` names a GPIO wired to the link's RX line
  (an IRQ on its falling edge ends the sleep; mcu.wait_link); without one it waits awake. ``rtc_memory()`` /
  ``set_rtc_memory(data)`` keep 16 bytes across a watchdog or soft reset in the watchdog's
  scratch registers 0–3 (4–7 belong to the boot ROM); nothing survives power loss but flash;
- flash: littlefs at ``/``; ``data_dir`` is created if missing.

Board config (the ``board`` object of config.json)::

    {"name": "rp2", "data_dir": "/data", "watchdog_ms": 8000,
     "uarts": {"1": {"tx": 4, "rx": 5}},
     "sdi12": {"0": {"tx": 0, "rx": 1, "dir": 2, "invert_tx": true, "echo": false}},
     "i2c": {"0": {"scl": 21, "sda": 20}},
     "ds3231": {"bus": 0}, "link_wake": 6}
"""

import gc
import os
import time

import machine
from micropython import const
from mcu import DS3231, Clock, Sdi12Port, Uart, cfg_for, lightsleep, sleep_awake
from mcu import Pin

_DS3231 = const(0x68)
_WDT_MAX_MS = const(8388)  # the RP2040 watchdog's longest timeout
_WATCHDOG_SCRATCH = const(0x4005800C)  # WATCHDOG_BASE + SCRATCH0
_SCRATCH_WORDS = const(4)
_LONG_WAIT_MS = const(60000)  # without a watchdog: waits are still cut into these


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
        # a GPIO wired to the link's RX: its falling edge (a start bit) ends a lightsleep
        self.rx_edge = False
        self._link_wake = None  # type: machine.Pin | None
        if cfg.get("link_wake") is not None:
            self._link_wake = machine.Pin(cfg["link_wake"], machine.Pin.IN)
            self._link_wake.irq(self._rx_started, machine.Pin.IRQ_FALLING)

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
        """Edges are delivered by the hardware IRQ as they come, asleep or awake."""

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()
        self.watchdog_feeds += 1

    def sleep_ms(self, station_ms):
        """Wait awake, feeding the watchdog."""
        sleep_awake(self, station_ms)

    def lightsleep(self, station_ms, link=None):
        """Sleep with RAM kept; ``link``'s first byte ends it (mcu.lightsleep): True if so."""
        return lightsleep(self, station_ms, link)

    def sleep_once(self, ms, wake_pin):
        """One lightsleep; any GPIO IRQ, the link wake pin's included, ends it."""
        machine.lightsleep(ms)

    def _rx_started(self, _pin):
        self.rx_edge = True

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
