"""The sampling engine: sensors read on schedule, quality flags at the source, event mode.

One ``Slot`` per sensor entry of the config's ``channels`` list; its driver comes from
``drivers.make_driver`` (kinds analog, sdi12, serial_level, rain, bme280). An entry without
``"sensor"`` is the older analog form ``{"no", "pin", "interval_s", "scale_num", ...}``.
The config is read at boot by startup.py (dropped afterwards); this module only samples.

Entry keys used here (the driver's own keys are in its module)::

    "interval_s": 900        sampling interval, aligned to the clock (:00, :15 ...)
    "event_s": 60            interval in event mode (default: interval_s)
    "burst": 10              read N times, store the median of the first channel ...
    "spread": 2              ... and max - min on this channel (stage_spread_m)

Quality per channel, the config's ``"quality": {"<channel>": {...}}``, in the channel's units::

    "valid_min", "valid_max"  outside: OUT_OF_RANGE
    "spike"                   a jump from the previous reading beyond this: SPIKE
    "flat_n"                  the same value this many readings in a row: FLATLINE

Event mode, the config's ``"event"``: ``{"stage": 1, "rise": 0.05, "rain": 16, "rain_mm": 2,
"hold_s": 3600}``: the stage rising more than ``rise`` per its normal interval, or a rain
total above ``rain_mm``, switches every slot to ``event_s`` until ``hold_s`` after the last
trigger; readings taken meanwhile carry EVENT. A sensor that fails gives MISSING readings
and the other sensors go on. A value a reading cannot carry (a mantissa of more than 15
digits or an exponent beyond +-20: contracts 1.4) is stored MISSING | OUT_OF_RANGE with a log
line, never as another number.
"""

from micropython import const

import log
import wire
from clock import MIN_VALID_S

_MAX_BURST = const(15)


class Slot:
    """One sensor entry: its driver and schedule (built at boot by startup.py)."""

    def __init__(self, drv, normal_s, event_s, burst, spread):
        self.drv = drv
        self.chans = drv.channels
        self.normal_s = normal_s
        self.event_s = event_s
        self.iv = normal_s
        self.burst = burst if 1 < burst <= _MAX_BURST else 0
        self.spread = spread
        self.next_due = 0
        self.last_slot = 0  # the time of this slot's newest reading: slots only ascend
        self.jump = False  # flag the next readings CLOCK_JUMP

    def schedule(self, now):
        # Aligned to the clock: a 900 s slot samples at :00, :15, :30, :45. Never at or before
        # the last slot sampled (contracts 1.4): after a backward step the slot waits. An
        # impossible clock (before MIN_VALID_S) cannot collide with a real slot, so it does not
        # wait for one: a flood is sampled whatever the clock says.
        iv = self.iv
        due = (now // iv + 1) * iv
        if (now >= MIN_VALID_S) == (self.last_slot >= MIN_VALID_S) and due <= self.last_slot:
            due = (self.last_slot // iv + 1) * iv
        self.next_due = due

    def read(self, feed):
        """The driver's readings; with a burst, the median (and spread) of N reads."""
        if not self.burst:
            return self.drv.read()
        vals = []  # type: list[int]
        last = None
        exp = 0
        for _ in range(self.burst):
            feed()
            try:
                r = self.drv.read()
            except OSError:
                continue
            m, e, f = r[0][1], r[0][2], r[0][3]
            if f & wire.MISSING:
                continue
            if not vals:
                exp = e
            elif e != exp:
                continue
            vals.append(m)
            last = r
        if last is None:
            raise OSError(5)
        vals.sort()
        k = len(vals)
        if k % 2:
            med = vals[k // 2]
            e = exp
            lo, hi = vals[0], vals[-1]
        else:  # the mean of the middle two, exactly: one more decimal
            med = (vals[k // 2 - 1] + vals[k // 2]) * 5
            e = exp - 1
            lo, hi = vals[0] * 10, vals[-1] * 10
        first = last[0]
        out = [(first[0], med, e, first[3])]
        for i in range(1, len(last)):
            out.append(last[i])
        if self.spread:
            out.append((self.spread, hi - lo, e, 0))
        return out


class Sampler:
    """The slots, the quality limits per channel and the event rule (built by startup.py from
    the config: ``qc`` maps a channel to ``[min, max, spike, flat_n, None, 0]``, ``event`` is
    ``(stage channel, rise, rain channel, rain_mm, hold_s)``)."""

    def __init__(self, board, slots, qc, event):
        self.board = board
        self.slots = slots
        self.qc = qc  # channel -> [min, max, spike, flat_n, previous value, same count]
        self.ev_stage, self.ev_rise, self.ev_rain, self.ev_rain_mm, self.hold_s = event
        self.event_until = 0  # event mode while the clock is before this
        self.event = False
        self.sensor_errors = 0
        self.last = {}  # channel -> (time, mantissa, exponent, flags): the newest readings
        self._prev = {}  # stage channel -> (time, value) for the rise rate

    def schedule(self, now):
        for s in self.slots:
            s.schedule(now)

    def clock_stepped(self, now):
        for s in self.slots:
            s.jump = True
            s.schedule(now)

    def next_due(self):
        due = 0
        for s in self.slots:
            if not due or s.next_due < due:
                due = s.next_due
        return due

    def run_due(self, now, clock, store):
        """Sample every slot that is due; ``store(channel, at, mantissa, exponent, flags)``.
        Returns how many were."""
        n = 0
        for s in self.slots:
            if s.next_due <= now:
                n += 1
                # The latest slot due: slots missed while busy or skipped by a forward step
                # cannot be measured any more.
                at = now // s.iv * s.iv
                if at < s.next_due:
                    at = s.next_due
                self.sample(s, at, clock, store)
                s.last_slot = at
                s.schedule(now)
        if self.event and now >= self.event_until:
            self._mode(False, now)
        return n

    def sample(self, s, at, clock, store):
        flags = clock.flags(at)
        if s.jump:
            flags |= wire.CLOCK_JUMP
            s.jump = False
        if self.event:
            flags |= wire.EVENT
        try:
            readings = s.read(self.board.feed_watchdog)
        except Exception as err:  # OSError from the sensor, or a driver's bug: never a number
            self.sensor_errors += 1
            log.e("sensor", s.chans[0] if s.chans else 0, "read failed:", err)
            readings = [(ch, 0, 0, wire.MISSING) for ch in s.chans if ch]
            if s.spread:  # the spread of a burst not taken is missing too, never a 0
                readings.append((s.spread, 0, 0, wire.MISSING))
        for ch, m, e, f in readings:
            if not (f & wire.MISSING or (-wire.MAX_MANTISSA <= m <= wire.MAX_MANTISSA
                                         and -wire.MAX_EXPONENT <= e <= wire.MAX_EXPONENT)):
                # more than a reading carries (contracts 1.4): missing, never another number
                log.e("sensor", ch, "value out of range:", m, "e", e)
                f |= wire.MISSING | wire.OUT_OF_RANGE
            if f & wire.MISSING:
                m = e = 0
            else:
                f |= self.check(ch, m, e)
            store(ch, at, m, e, f | flags)
            self.last[ch] = (at, m, e, f | flags)
            if not f & wire.MISSING:
                self.trigger(ch, at, m, e, s)

    def check(self, ch, m, e):
        """Quality flags of a value from the channel's limits (and its history)."""
        q = self.qc.get(ch)
        if q is None:
            return 0
        v = m * 10.0 ** e
        f = 0
        if (q[0] is not None and v < q[0]) or (q[1] is not None and v > q[1]):
            f |= wire.OUT_OF_RANGE
        prev = q[4]
        if prev is not None:
            if q[2] is not None and abs(v - prev) > q[2]:
                f |= wire.SPIKE
            q[5] = q[5] + 1 if v == prev else 1
        else:
            q[5] = 1
        if q[3] and q[5] >= q[3]:
            f |= wire.FLATLINE
        q[4] = v
        return f

    def trigger(self, ch, at, m, e, s):
        hit = False
        if ch == self.ev_stage and self.ev_rise is not None:
            v = m * 10.0 ** e
            p = self._prev.get(ch)
            if p is not None and at > p[0]:
                # the rise scaled to the slot's normal interval
                if (v - p[1]) * s.normal_s / (at - p[0]) > self.ev_rise:
                    hit = True
            self._prev[ch] = (at, v)
        elif ch == self.ev_rain and self.ev_rain_mm is not None:
            if m * 10.0 ** e > self.ev_rain_mm:
                hit = True
        if hit:
            self.event_until = at + self.hold_s
            if not self.event:
                self._mode(True, at)

    def _mode(self, on, now):
        self.event = on
        print("I event mode", "on" if on else "off")
        for s in self.slots:
            s.iv = s.event_s if on else s.normal_s
            s.schedule(now)
