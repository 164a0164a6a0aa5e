"""Tipping-bucket rain gauge on a pin interrupt, debounced, its tip count persisted.

The reed switch closes for ~100 ms per tip and bounces for a few ms; the interrupt handler only
counts edges that come ``debounce_ms`` after the last counted one (any debounce between ~10 ms
and ~1 s is safe: a 0.2 mm bucket tips every 7.2 s at 100 mm/h) and asks for the tip to be
saved (``micropython.schedule``). Saving appends one byte to the log ``rain<pin>.<gen>.log``
(append-only: no block rewritten per tip); ``read()`` writes ``"<total> <gen+1>"`` to
``rain<pin>`` (write then rename: that is the commit), then deletes the old log, and reports the
rain since the previous read. After a reset the count is total + the current log's length, so
no tip is lost that reached the log, and none is reported twice whenever the power goes.

Wiring: gauge switch between the pin and GND, internal pull-up, 100 nF across the switch::

    gauge = Rain(board.pin(27), board.persistent_dir(), mm_per_tip_um=200, channel=16)
    gauge.read()   # [(16, 600, -3, 0)]: 3 tips = 0.600 mm

Config (sensor kind ``"rain"``)::

    {"sensor": "rain", "pin": 27, "channel": 16,
     "mm_per_tip_um": 200,    bucket size in micrometres (0.2 mm = 200; 0.01 in = 254)
     "debounce_ms": 50}

On the unix board the harness sends edges (hal_unix: lines ``<pin>`` appended to
``<io_dir>/edges``).
"""

import os
import time

from micropython import const

try:
    from micropython import schedule
except ImportError:  # a port without it: save on the next read only
    schedule = None  # type: ignore[assignment]

_DEBOUNCE_MS = const(50)


class Rain:
    def __init__(self, pin, state_dir, mm_per_tip_um=200, channel=16, debounce_ms=_DEBOUNCE_MS):
        self.pin = pin
        self.channel = channel
        self.channels = (channel,)
        self.um_per_tip = mm_per_tip_um
        self.debounce_ms = debounce_ms
        self._path = "%s/rain%d" % (state_dir, getattr(pin, "no", 0))
        self.reported, self._gen = self._load()
        self.tips = self.reported + self._log_size()  # counted since installation
        self._saved = self.tips
        self._last_ms = time.ticks_ms()
        self._first = True
        self.bounces = 0
        pin.irq(self._isr, pin.IRQ_FALLING)

    def _load(self):
        try:
            with open(self._path) as f:
                total, gen = f.read().split()
            return int(total), int(gen)
        except (OSError, ValueError):
            return 0, 0

    def _log(self, gen):
        return "%s.%d.log" % (self._path, gen)

    def _log_size(self):
        try:
            return os.stat(self._log(self._gen))[6]
        except OSError:
            return 0

    def _isr(self, pin):
        # Interrupt context: count and ask for a save, nothing else.
        now = time.ticks_ms()
        if not self._first and time.ticks_diff(now, self._last_ms) < self.debounce_ms:
            self.bounces += 1
            return
        self._first = False
        self._last_ms = now
        self.tips += 1
        if schedule is not None:
            try:
                schedule(self._save, 0)
            except RuntimeError:  # schedule queue full: the next save catches up
                pass

    def _save(self, _arg=None):
        n = self.tips - self._saved
        if n > 0:
            with open(self._log(self._gen), "ab") as f:
                f.write(b"t" * n)
            self._saved += n

    def read(self):
        self._save()
        total = self._saved
        new = total - self.reported
        tmp = self._path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d\n" % (total, self._gen + 1))
        os.rename(tmp, self._path)  # committed: the total counts the old log's tips
        old = self._log(self._gen)
        self._gen += 1
        try:
            os.remove(old)
        except OSError:
            pass
        self.reported = total
        return [(self.channel, new * self.um_per_tip, -3, 0)]


def from_config(cfg, board):
    return Rain(board.pin(cfg["pin"]), board.persistent_dir(), cfg.get("mm_per_tip_um", 200),
                cfg.get("channel", 16), cfg.get("debounce_ms", _DEBOUNCE_MS))
