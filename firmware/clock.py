"""The station's clock policy over the board's RTC (docs/contracts.md 1.3 TIME, 1.4 flags).

The board's clock (``board.clock``: ``now()``, ``now_ms()``, ``set_ms()``, ``wait_ms()``) keeps
time; this module decides how far to trust it:

- **synced**: a TIME from the gateway sets it. Until the first one, readings carry
  CLOCK_UNSYNCED.
- **impossible**: a clock before MIN_VALID_S (2025-01-01, before this firmware was built) means
  a lost RTC backup battery. Readings then carry CLOCK_UNSYNCED and STATUS says "not
  synchronised" even after an earlier TIME; the next TIME corrects it.
- **jumps**: a TIME that moves the clock by more than ``jump_s``, or an RTC that moved on its
  own (it disagrees with the CPU tick counter by more than ``jump_s``), is a step. The readings
  around it carry CLOCK_JUMP: a reading already in flash is never rewritten, so it is the next
  reading of every channel, and every reading taken within ``jump_s`` of the step.

Sample slots per channel stay strictly increasing across steps and reboots; that rule lives with
the channels (sampler.py), which ask ``plausible()`` and watch ``steps``.
"""

import time

try:
    from micropython import const
except ImportError:  # CPython, for tools
    def const(x):
        return x

import log
import wire

MIN_VALID_S = const(1735689600)  # 2025-01-01T00:00:00Z
_WALL_SLACK_MS = const(100)  # scheduling noise between reading the RTC and the tick counter


class StationClock:
    def __init__(self, rtc, jump_s=5):
        self.rtc = rtc
        self.jump_s = jump_s
        self.synced = False
        self.steps = 0  # clock steps seen since boot (a channel flags its next reading)
        self.last_step_ms = 0  # size of the last step, signed
        self._step_at = -1  # clock time (s) of the last step
        self.speed = getattr(rtc, "speed", 1)  # the unix board runs faster than wall time
        # the CPU tick counter; a harness-driven unix board counts on its own time
        self._ticks = getattr(rtc, "ticks_ms", time.ticks_ms)
        self._ref_ms = 0
        self._ref_ticks = 0
        self._mark()

    def _mark(self):
        self._ref_ticks = self._ticks()
        self._ref_ms = self.rtc.now_ms()

    def now(self):
        return self.rtc.now()

    def now_ms(self):
        return self.rtc.now_ms()

    def wait_ms(self, station_ms):
        return self.rtc.wait_ms(station_ms)

    def plausible(self):
        return self.rtc.now() >= MIN_VALID_S

    def synced_now(self):
        """Synchronised and plausible: what STATUS reports."""
        return self.synced and self.plausible()

    def flags(self, at):
        """Clock flags for a reading taken at ``at`` (Unix s)."""
        f = 0
        if not self.synced_now():
            f |= wire.CLOCK_UNSYNCED
        if self._step_at >= 0 and -self.jump_s <= at - self._step_at <= self.jump_s:
            f |= wire.CLOCK_JUMP
        return f

    def set_ms(self, unix_ms):
        """A TIME from the gateway. Returns the step in ms (new minus old)."""
        step = unix_ms - self.rtc.now_ms()
        was_plausible = self.plausible()
        self.rtc.set_ms(unix_ms)
        if abs(step) > self.jump_s * 1000 or not was_plausible:
            self._stepped(step)
        self.synced = True
        self._mark()
        return step

    def check(self):
        """Catch an RTC that stepped by itself; call once per loop. True on a step."""
        ticks = self._ticks()
        now_ms = self.rtc.now_ms()
        expect = self._ref_ms + time.ticks_diff(ticks, self._ref_ticks) * self.speed
        self._ref_ticks = ticks
        self._ref_ms = now_ms
        off = now_ms - expect
        if abs(off) > self.jump_s * 1000 + _WALL_SLACK_MS * self.speed:
            self._stepped(off)
            return True
        return False

    def _stepped(self, step_ms):
        self.steps += 1
        self.last_step_ms = step_ms
        self._step_at = self.rtc.now()
        log.e("clock stepped by", step_ms // 1000, "s")
