"""ESP32 board: the station's hardware through ``machine`` (mcu.Board, the Board API of hal_unix).

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
- watchdog: ``machine.WDT`` (``"watchdog_ms"``, 0: none), fed from every wait (mcu.Board) in
  chunks of half its timeout and by ``feed_watchdog()``;
- sleep: ``lightsleep`` (RAM kept) and ``deepsleep`` (a reset: state goes to RTC memory,
  ``rtc_memory()`` / ``set_rtc_memory(data)``, 2 KB, kept across deepsleep and resets but not
  power loss, or to flash). Between samples the station sleeps until the gateway talks:
  ``"link_wake"`` names an RTC GPIO wired to the link's RX line (ext1 wakes on its low level,
  a start bit of the gateway's wake preamble; mcu.Board.lightsleep); without one it waits awake;

Board config (the ``board`` object of config.json)::

    {"name": "esp32", "data_dir": "/data", "watchdog_ms": 30000, "link_wake": 33,
     "uarts": {"1": {"tx": 17, "rx": 16}}, "i2c": {"0": {"scl": 22, "sda": 21}},
     "sdi12": {"2": {"tx": 25, "rx": 26, "dir": 4, "invert_tx": true, "echo": false}},
     "ds3231": {"bus": 0}}
"""

import time

import esp32
import machine
from micropython import const
from mcu import Board as McuBoard
from mcu import Pin as McuPin

_CLOSED_POLL_MS = const(50)  # a wake switch still closed: a level wake would fire at once


class Pin(McuPin):
    """The mcu pin; the first pin given an IRQ also wakes the ESP32 from lightsleep (ext0)."""

    def irq(self, handler=None, trigger=machine.Pin.IRQ_FALLING):
        McuPin.irq(self, handler, trigger)
        if handler and self._board._wake_pin is None:
            self._board._wake_pin = self


class Board(McuBoard):
    name = "esp32"
    _wake_pin = None  # type: Pin | None  # the first pin given an IRQ

    def adc(self, pin):
        adc = machine.ADC(machine.Pin(pin))
        adc.atten(machine.ADC.ATTN_11DB)
        return adc

    def pin(self, no, pull_up=True):
        return Pin(self, no, pull_up)

    def sleep_once(self, ms, wake_pin):
        """One lightsleep: the rain pin wakes it (ext0, its handler then runs once) and so does
        ``wake_pin``, the GPIO wired to the link's RX (ext1; sets ``rx_edge``)."""
        pin = self._wake_pin
        if pin is not None and not pin.value():
            time.sleep_ms(min(ms, _CLOSED_POLL_MS))  # still closed: a level wake fires at once
            return
        if pin is not None:
            esp32.wake_on_ext0(pin.pin, esp32.WAKEUP_ALL_LOW)
        if wake_pin is not None:
            esp32.wake_on_ext1((wake_pin,), esp32.WAKEUP_ALL_LOW)
        machine.lightsleep(ms)
        reason = machine.wake_reason()
        if pin is not None and reason == machine.EXT0_WAKE:
            pin._fire(pin.pin)
        elif wake_pin is not None and reason == machine.EXT1_WAKE:
            self.rx_edge = True

    def rtc_memory(self):
        """What ``set_rtc_memory`` kept across deepsleep and resets (empty after power-on)."""
        return machine.RTC().memory()

    def set_rtc_memory(self, data):
        machine.RTC().memory(data)
