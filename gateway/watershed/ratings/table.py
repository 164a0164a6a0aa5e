"""The expanded rating table, printed in the USGS ``exsa`` RDB layout.

Rows every ``step`` of gage height from the lowest to the highest breakpoint, plus every
breakpoint (marked ``*`` in STOR, as USGS does) even where it is off the step grid; SHIFT is the
shift applied at that stage, DEP the discharge of the shifted stage. Rows whose shifted stage
falls outside the rating are left out: out of range is never extrapolated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from .model import Rating, Shift

_UNIT_LABELS = {"ft": ("Gage height (ft)", "Discharge (ft^3/s)"),
                "m": ("Gage height (m)", "Discharge (m^3/s)")}


@dataclass(frozen=True, slots=True)
class Row:
    stage: Decimal
    shift: float
    discharge: Decimal | float  # Decimal (exact) at a breakpoint
    breakpoint: bool


def expand(rating: Rating, step: Decimal, at: int | None = None) -> Iterator[Row]:
    if step <= 0:
        raise ValueError("step must be positive")
    shift = rating.shift_at(at)
    breakpoints = {b.stage for b in rating.breakpoints}
    grid_start = (rating.min_stage / step).to_integral_value(rounding="ROUND_CEILING") * step
    stages = set(breakpoints)
    stage = grid_start
    while stage <= rating.max_stage:
        stages.add(stage)
        stage += step
    for stage in sorted(stages):
        delta = _shift(shift, stage)
        value: Decimal | float | None = rating.lookup(float(stage) + delta)
        if value is not None:
            yield Row(stage, delta, value, stage in breakpoints and delta == 0)


def _shift(shift: Shift | None, stage: Decimal) -> float:
    return shift.at(float(stage)) if shift else 0.0


def format_exsa(rating: Rating, step: Decimal, at: int | None = None) -> str:
    """The whole table as RDB text: headers, column and type lines, rows."""
    stage_label, dep_label = _UNIT_LABELS.get(rating.stage_unit, _UNIT_LABELS["ft"])
    decimals = max(2, -int(step.normalize().as_tuple().exponent))
    lines = [
        '# //FILE TYPE="NWIS RATING"',
        f'# //RATING ID="{rating.rating_id}" TYPE="STGQ" NAME="stage-discharge"',
        f'# //RATING EXPANSION="{rating.expansion}"',
        "# //RATING " + " ".join(_offset_headers(rating)),
        f'# //RATING_INDEP PARAMETER="{stage_label}"',
        f'# //RATING_DEP PARAMETER="{dep_label}"',
    ]
    for p in rating.periods:
        end = _stamp(p.end) if p.end is not None else "--------------"
        ezone = "+00:00" if p.end is not None else "---"
        lines.append(f"# //RATING_DATETIME BEGIN={_stamp(p.begin)} BZONE=+00:00 "
                     f"END={end} EZONE={ezone}")
    shift = rating.shift_at(at)
    if shift is not None:
        end = _stamp(shift.period.end) if shift.period.end is not None else "--------------"
        lines.append(f'# //SHIFT_CURR BEGIN="{_stamp(shift.period.begin)}" BZONE="+00:00" '
                     f'END="{end}"')
        lines.append("# //SHIFT_CURR " + " ".join(
            f'STAGE{n}="{s}" SHIFT{n}="{v}"' for n, (s, v) in enumerate(shift.points, 1)))
    lines += ["INDEP\tSHIFT\tDEP\tSTOR", "16N\t16N\t16N\t1S"]
    for row in expand(rating, step, at):
        lines.append(f"{row.stage:.{decimals}f}\t{row.shift:.2f}\t{dep_text(row.discharge)}\t"
                     f"{'*' if row.breakpoint else ''}")
    return "\n".join(lines) + "\n"


def dep_text(value: Decimal | float) -> str:
    """Two decimals as USGS prints them, more when needed for 4 significant figures (a small
    stream's m³/s)."""
    if value == 0:
        return "0.00"
    decimals = max(2, 3 - math.floor(math.log10(abs(float(value)))))
    return f"{value:.{decimals}f}"


def _offset_headers(rating: Rating) -> list[str]:
    parts = []
    for n, (start, offset) in enumerate(rating.offsets, start=1):
        if n > 1:
            parts.append(f"BREAKPOINT{n - 1}={start}")
        parts.append(f"OFFSET{n}={offset}")
    return parts


def _stamp(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%d%H%M%S")
