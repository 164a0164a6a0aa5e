"""ESP32 board: the station's hardware through ``machine`` (the same Board API as hal_unix).

- clock: the internal RTC (``time.time_ns``; the ports' epoch may be 2000, handled here), set by
  the gateway's TIME; an optional DS3231 on I2C (``"ds3231"``) sets it at boot and again after
  sleeps at most every ``_RESYNC_MS`` (the ESP32's RC slow clock drifts ~20 s/h while asleep);
  ``set_ms`` writes both. A DS3231 whose oscillator stopped (OSF) is not believed;
- serial ports: ``machine.UART`` by id (``board.uart(1, 9600)``), pins from ``"uarts"``;
  ``readinto(buf, timeout_ms)`` returns what arrives within the timeout (no allocation);
- SDI-12: a UART at 1200 baud 7E1, TX through a 74LVC1G125 whose OE (``dir`` pin, low drives)
  is enabled only while the master talks, RX through an inverting level shifter
  (``invert_tx``: the UART inverts TX so the line marks low). The break is a 0x00 character at
  480 baud: start bit, 7 data bits and even parity all spacing = 18.75 ms (≥ 12 ms), then 9 ms
  of marking. An echo of our own command (RX wired to the line) is read back and dropped;
- ADC: ``machine.ADC`` with 11 dB attenuation (0–3.1 V), ``read_u16``;
- I2C: ``machine.I2C(bus)`` shared per bus; pins from the call or from ``"i2c"``;
- pins: input with pull-up; ``irq(handler, IRQ_FALLING)``. The first pin given an IRQ also wakes
  the CPU from lightsleep (ext0, an RTC GPIO: 0, 2, 4, 12–15, 25–27, 32–39) and its handler
  is called once for that wake (a rain tip while asleep); the rain driver's debounce absorbs
  the edge IRQ that may follow;
- watchdog: ``machine.WDT`` (``"watchdog_ms"``, 0: none), fed from every wait in this module in
  chunks of half its timeout and by ``feed_watchdog()``;
- sleep: ``lightsleep`` (RAM kept) and ``deepsleep`` (a reset: state goes to RTC memory,
  ``rtc_memory()`` / ``set_rtc_memory(data)``, 2 KB, kept across deepsleep and resets but not
  power loss, or to flash). Between samples the station sleeps until the gateway talks:
  ``"link_wake"`` names an RTC GPIO wired to the link's RX line (ext1 wakes on its low level,
  a start bit of the gateway's wake preamble; mcu.wait_link); without one it waits awake;
- flash: littlefs at ``/``; ``data_dir`` is created if missing.

Board config (the ``board`` object of config.json)::

    {"name": "esp32", "data_dir": "/data", "watchdog_ms": 30000,
     "uarts": {"1": {"tx": 17, "rx": 16}},
     "sdi12": {"2": {"tx": 25, "rx": 26, "dir": 4, "invert_tx": true, "echo": false}},
     "i2c": {"0": {"scl": 22, "sda": 21}},
     "ds3231": {"bus": 0}, "link_wake": 33}
"""

import gc
import os
import time

import esp32
import machine
from micropython import const
from mcu import DS3231, Clock, Sdi12Port, Uart, cfg_for, lightsleep, sleep_awake
from mcu import Pin as McuPin

_DS3231 = const(0x68)
_CLOSED_POLL_MS = const(50)  # a wake switch still closed: a level wake would fire at once
_LONG_WAIT_MS = const(60000)  # without a watchdog: waits are still cut into these


class Pin(McuPin):
    """The mcu pin; the first pin given an IRQ also wakes the ESP32 from lightsleep (ext0)."""

    def irq(self, handler=None, trigger=machine.Pin.IRQ_FALLING):
        McuPin.irq(self, handler, trigger)
        if handler and self._board._wake_pin is None:
            self._board._wake_pin = self


class Board:
    name = "esp32"

    def __init__(self, cfg):
        self._cfg = cfg
        self.data_dir = cfg.get("data_dir", "/data")
        try:
            os.mkdir(self.data_dir)
        except OSError:
            pass  # exists
        self.watchdog_feeds = 0
        self._wake_pin = None  # type: Pin | None
        # an RTC GPIO wired to the link's RX: the gateway's wake preamble ends a lightsleep
        self.rx_edge = False
        self._link_wake = None  # type: machine.Pin | None
        if cfg.get("link_wake") is not None:
            self._link_wake = machine.Pin(cfg["link_wake"], machine.Pin.IN)
        self._i2c = {}  # type: dict[int, machine.I2C]
        wdt_ms = cfg.get("watchdog_ms", 0)
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
        adc = machine.ADC(machine.Pin(pin))
        adc.atten(machine.ADC.ATTN_11DB)
        return adc

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
        """Edges are delivered by the hardware IRQ as they come (and a wake by lightsleep)."""

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

    def sleep_once(self, ms, link_wake):
        """One lightsleep: the rain pin wakes it (ext0, its handler then runs once) and so does
        ``link_wake``, the GPIO wired to the link's RX (ext1; sets ``rx_edge``)."""
        pin = self._wake_pin
        if pin is not None and not pin.value():
            time.sleep_ms(min(ms, _CLOSED_POLL_MS))  # still closed: a level wake fires at once
            return
        if pin is not None:
            esp32.wake_on_ext0(pin.pin, esp32.WAKEUP_ALL_LOW)
        if link_wake is not None:
            esp32.wake_on_ext1((link_wake,), esp32.WAKEUP_ALL_LOW)
        machine.lightsleep(ms)
        reason = machine.wake_reason()
        if pin is not None and reason == machine.EXT0_WAKE:
            pin._fire(pin.pin)
        elif link_wake is not None and reason == machine.EXT1_WAKE:
            self.rx_edge = True

    def deepsleep(self, station_ms):
        """Sleep with RAM lost: the board resets when it wakes (reset_cause DEEPSLEEP_RESET)."""
        self.feed_watchdog()
        machine.deepsleep(station_ms)

    def persistent_dir(self):
        """Flash: survives resets and power loss (RTC memory survives only resets)."""
        return self.data_dir

    def rtc_memory(self):
        """What ``set_rtc_memory`` kept across deepsleep and resets (empty after power-on)."""
        return machine.RTC().memory()

    def set_rtc_memory(self, data):
        machine.RTC().memory(data)

    def reset_cause(self):
        return machine.reset_cause()

    def free_heap(self):
        return gc.mem_free()
