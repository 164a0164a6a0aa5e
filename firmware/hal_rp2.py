"""RP2040 board (Raspberry Pi Pico): the station's hardware through ``machine`` (mcu.Board, the
Board API of hal_unix).

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
  from every wait (mcu.Board) in chunks of half its timeout and by ``feed_watchdog()``;
- sleep: ``lightsleep`` (RAM kept) and ``deepsleep`` (a reset). Between samples the station
  sleeps until the gateway talks: ``"link_wake"`` names a GPIO wired to the link's RX line (an
  IRQ on its falling edge ends the sleep; mcu.Board.lightsleep); without one it waits awake.
  ``rtc_memory()`` / ``set_rtc_memory(data)`` keep 16 bytes across a watchdog or soft reset in
  the watchdog's scratch registers 0–3 (4–7 belong to the boot ROM); nothing survives power
  loss but flash;

Board config (the ``board`` object of config.json), wired as on a Pico with the DS3231 on
I2C0::

    {"name": "rp2", "data_dir": "/data", "watchdog_ms": 8000, "link_wake": 6,
     "sdi12": {"0": {"tx": 0, "rx": 1, "dir": 2, "invert_tx": true, "echo": false}},
     "uarts": {"1": {"tx": 4, "rx": 5}}, "ds3231": {"bus": 0},
     "i2c": {"0": {"scl": 21, "sda": 20}}}
"""

import machine
from micropython import const
from mcu import Board as McuBoard

_WDT_MAX_MS = const(8388)  # the RP2040 watchdog's longest timeout
_WATCHDOG_SCRATCH = const(0x4005800C)  # WATCHDOG_BASE + SCRATCH0
_SCRATCH_WORDS = const(4)


class Board(McuBoard):
    name = "rp2"
    _wdt_max_ms = _WDT_MAX_MS

    def __init__(self, cfg):
        McuBoard.__init__(self, cfg)
        if self._link_wake is not None:  # its falling edge (a start bit) ends a lightsleep
            self._link_wake.irq(self._rx_started, machine.Pin.IRQ_FALLING)

    def sleep_once(self, ms, wake_pin):
        """One lightsleep; any GPIO IRQ, the link wake pin's included, ends it."""
        machine.lightsleep(ms)

    def _rx_started(self, _pin):
        self.rx_edge = True

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
