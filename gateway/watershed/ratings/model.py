"""A stage–discharge rating and its arithmetic.

A rating is a list of breakpoints (stage, discharge), split into segments that each have an
offset ``e``, the gage height of zero flow. Between two breakpoints the USGS "logarithmic"
expansion makes log(Q) linear in log(h − e) with the offset of the segment the interval lies in
(Kennedy, TWRI 3-A10); equivalently Q = Q1·((h − e)/(h1 − e))^b, so a rating that is exactly
Q = C·(h − e)^b between its breakpoints is reproduced exactly.

Shifts (scour, fill, weeds) are added to the stage before the lookup; a shift is a few
(stage, shift) points, linear between them and constant beyond them, effective over a period.

A stage outside the breakpoints is out of range: the result has no value and says so, it is
never extrapolated.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from decimal import Decimal

from ..config_reader import ConfigError

EXPANSIONS = ("logarithmic", "linear")
# Interpolated discharge keeps this many significant digits: more than any rating is good for,
# and few enough that binary floating-point noise never reaches the stored decimal.
SIGNIFICANT_DIGITS = 6


class RatingError(ConfigError):
    """A rating that cannot be used; the text says where and why (``problems``: each one)."""


@dataclass(frozen=True, slots=True)
class Breakpoint:
    stage: Decimal
    discharge: Decimal


@dataclass(frozen=True, slots=True)
class Period:
    """Unix seconds, UTC; ``end`` None means open-ended. Half-open: begin ≤ t < end."""
    begin: int
    end: int | None = None

    def contains(self, t: int) -> bool:
        return self.begin <= t and (self.end is None or t < self.end)


@dataclass(frozen=True, slots=True)
class Shift:
    """A stage shift effective over ``period``: points (stage, shift), linear between them."""
    period: Period
    points: tuple[tuple[Decimal, Decimal], ...]

    def at(self, stage: float) -> float:
        stages = [float(s) for s, _ in self.points]
        shifts = [float(v) for _, v in self.points]
        if stage <= stages[0]:
            return shifts[0]
        if stage >= stages[-1]:
            return shifts[-1]
        i = bisect.bisect_right(stages, stage) - 1
        fraction = (stage - stages[i]) / (stages[i + 1] - stages[i])
        return shifts[i] + fraction * (shifts[i + 1] - shifts[i])


@dataclass(frozen=True, slots=True)
class DischargeResult:
    """What a rating says about one stage: a discharge, or None when the (shifted) stage is
    outside the rating's breakpoints."""
    rating_id: str
    stage: float
    shift: float
    discharge: Decimal | None

    @property
    def out_of_range(self) -> bool:
        return self.discharge is None


@dataclass(frozen=True, slots=True)
class Rating:
    rating_id: str
    breakpoints: tuple[Breakpoint, ...]  # ascending stage, non-decreasing discharge
    # (lowest stage the offset applies from, offset), ascending; the first applies from -inf.
    offsets: tuple[tuple[Decimal, Decimal], ...]
    expansion: str = "logarithmic"
    periods: tuple[Period, ...] = ()  # empty: effective at any time
    shifts: tuple[Shift, ...] = ()
    stage_unit: str = "ft"
    discharge_unit: str = "ft3/s"
    station: str = ""
    source: str = ""  # where it was read from, for messages

    def __post_init__(self) -> None:
        where = self.source or self.rating_id
        if len(self.breakpoints) < 2:
            raise RatingError(f"{where}: a rating needs at least 2 breakpoints")
        for a, b in zip(self.breakpoints, self.breakpoints[1:]):
            if not b.stage > a.stage:
                raise RatingError(f"{where}: breakpoint stages must ascend ({a.stage}, {b.stage})")
            if b.discharge < a.discharge:
                raise RatingError(f"{where}: discharge must not fall as stage rises "
                                  f"({a.stage} → {a.discharge}, {b.stage} → {b.discharge})")
        if self.breakpoints[0].discharge < 0:
            raise RatingError(f"{where}: negative discharge")
        if not self.offsets:
            raise RatingError(f"{where}: no offset")
        if self.expansion not in EXPANSIONS:
            raise RatingError(f"{where}: expansion {self.expansion!r} is not one of "
                              f"{', '.join(EXPANSIONS)}")

    # -- range and lookup ----------------------------------------------------------------------

    @property
    def min_stage(self) -> Decimal:
        return self.breakpoints[0].stage

    @property
    def max_stage(self) -> Decimal:
        return self.breakpoints[-1].stage

    def effective_at(self, t: int) -> bool:
        return not self.periods or any(p.contains(t) for p in self.periods)

    def shift_at(self, t: int | None) -> Shift | None:
        """The shift in force at ``t`` (the latest to begin), None without one or without t."""
        if t is None:
            return None
        active = [s for s in self.shifts if s.period.contains(t)]
        return max(active, key=lambda s: s.period.begin) if active else None

    def offset_for(self, stage: float) -> float:
        """The offset of the segment a stage lies in (segments start at their first stage)."""
        chosen = self.offsets[0][1]
        for start, offset in self.offsets[1:]:
            if stage >= float(start):
                chosen = offset
        return float(chosen)

    def discharge(self, stage: float | Decimal, at: int | None = None) -> DischargeResult:
        """Discharge for a gage height, applying the shift in force at ``at`` (Unix s)."""
        shift = self.shift_at(at)
        delta = shift.at(float(stage)) if shift else 0.0
        return self.discharge_shifted(float(stage), delta)

    def discharge_shifted(self, stage: float, shift: float) -> DischargeResult:
        effective = stage + shift
        value = self.rated(effective)
        return DischargeResult(self.rating_id, stage, shift, value)

    def rated(self, stage: float) -> Decimal | None:
        """The base rating at a stage (shift already applied); None outside the breakpoints.
        Exactly the breakpoint's discharge at a breakpoint, else rounded to
        SIGNIFICANT_DIGITS."""
        found = self.lookup(stage)
        return found if found is None or isinstance(found, Decimal) else _round(found)

    def lookup(self, stage: float) -> Decimal | float | None:
        """The exact Decimal at a breakpoint, the interpolated float between, None outside."""
        points = self.breakpoints
        # Tolerance for stages that are breakpoints but came through float arithmetic.
        eps = 1e-9 * max(1.0, abs(stage))
        if stage < float(points[0].stage) - eps or stage > float(points[-1].stage) + eps:
            return None
        stages = [float(p.stage) for p in points]
        i = bisect.bisect_left(stages, stage - eps)
        if i < len(points) and abs(stages[i] - stage) <= eps:
            return points[i].discharge  # a breakpoint: exactly its discharge
        return self._interpolate(points[i - 1], points[i], stage)

    def _interpolate(self, low: Breakpoint, high: Breakpoint, stage: float) -> float:
        h1, q1 = float(low.stage), float(low.discharge)
        h2, q2 = float(high.stage), float(high.discharge)
        e = self.offset_for(h1)  # an interval belongs to the segment of its lower end
        if self.expansion == "logarithmic" and h1 - e > 0 and q1 > 0 and q2 > 0:
            exponent = math.log(q2 / q1) / math.log((h2 - e) / (h1 - e))
            return q1 * ((stage - e) / (h1 - e)) ** exponent
        # Linear: asked for, or at the zero-flow end of a segment where the logarithm of
        # h − e or of Q does not exist.
        return q1 + (stage - h1) / (h2 - h1) * (q2 - q1)


def plain(value: Decimal) -> Decimal:
    """The shortest plain form of a decimal: ``3.0000000E+01`` → ``30``, ``2.50`` → ``2.5``."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    return value.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else value


def significant(value: Decimal, digits: int = SIGNIFICANT_DIGITS) -> Decimal:
    """``value`` rounded to ``digits`` significant digits (for unit conversions)."""
    if value == 0:
        return Decimal(0)
    return plain(value.quantize(Decimal(1).scaleb(value.adjusted() - digits + 1)))


def _round(value: float) -> Decimal:
    if value == 0:
        return Decimal(0)
    digits = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value)))
    if digits > 0:
        return Decimal(repr(round(value, digits)))  # repr: the shortest text of that float
    return Decimal(int(round(value, digits)))
