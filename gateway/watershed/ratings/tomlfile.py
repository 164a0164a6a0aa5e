"""Ratings written by hand as TOML segments (e.g. fitted from a station's gaugings).

    id = "SAN-01.3"                     # rating id, stored with every discharge it produces
    station = "SAN-01"                  # optional, informative
    stage_unit = "m"                    # m or ft
    discharge_unit = "m3/s"             # m3/s or ft3/s
    expansion = "logarithmic"           # or linear

    [[effective]]                       # none: effective at any time
    begin = 2024-01-01T00:00:00Z
    end = 2025-03-01T00:00:00Z          # optional

    [[segments]]                        # ascending; each has its own offset (gage height of
    offset = 0.12                       # zero flow) and its breakpoints [stage, discharge]
    points = [[0.20, 0.05], [0.50, 1.2], [1.00, 6.0]]
    [[segments]]
    offset = 0.35
    points = [[1.00, 6.0], [2.50, 48.0]]  # may repeat the previous segment's last point

    [[shifts]]                          # added to the stage before the lookup
    begin = 2024-06-01T00:00:00Z
    points = [[0.30, 0.02], [1.00, 0.0]]  # [stage, shift], linear between

Numbers are read as decimals, so breakpoints keep their exact text. Every problem is reported
at once with file, line and key, and unknown keys are refused: a misspelt ``ofset`` must not
quietly become offset 0.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from ..config_reader import REQUIRED, Table, parse_toml
from .model import EXPANSIONS, Breakpoint, Period, Rating, RatingError, Shift, plain

UNITS = {"m": "m3/s", "ft": "ft3/s"}


def parse_toml_rating(text: str, source: str = "<toml>") -> Rating:
    """The rating a TOML text describes; raises RatingError listing every problem as
    ``file:line: key: message`` (unknown keys included: a misspelt ``ofset`` is refused, not
    read as offset 0)."""
    root = parse_toml(text, source, parse_float=Decimal, error=RatingError)
    rating_id = root.ident("id")
    station = root.ident("station", "")
    root.text("comment", "", allow_empty=True)
    stage_unit = root.choice("stage_unit", tuple(UNITS), "m")
    discharge_unit = root.choice("discharge_unit", tuple(UNITS.values()),
                                 UNITS.get(stage_unit, "m3/s"))
    expansion = root.choice("expansion", EXPANSIONS, "logarithmic")
    periods = tuple(_period(t) for t in root.tables("effective"))
    breakpoints, offsets = _segments(root.tables("segments", required=True))
    shifts = tuple(_shift(t) for t in root.tables("shifts"))
    root.reject_unknown()
    root.check()
    return Rating(rating_id, tuple(breakpoints), tuple(offsets), expansion=expansion,
                  periods=periods, shifts=shifts, stage_unit=stage_unit,
                  discharge_unit=discharge_unit, station=station, source=source)


def _segments(tables: list[Table]) -> tuple[list[Breakpoint], list[tuple[Decimal, Decimal]]]:
    """The breakpoints of all segments, and (lowest stage, offset) of each."""
    breakpoints: list[Breakpoint] = []
    offsets: list[tuple[Decimal, Decimal]] = []
    for t in tables:
        points = [Breakpoint(stage, q) for stage, q in _pairs(t, "points")]
        offset = _decimal(t, "offset", Decimal(0))
        t.reject_unknown()
        if not points:
            continue
        if breakpoints and points[0] == breakpoints[-1]:
            points = points[1:]  # the shared boundary point, given in both segments
            start = breakpoints[-1].stage
        else:
            start = points[0].stage
        offsets.append((start, offset))
        breakpoints.extend(points)
    return breakpoints, offsets


def _shift(t: Table) -> Shift:
    shift = Shift(_period(t), tuple(_pairs(t, "points")))
    t.reject_unknown()
    return shift


def _period(t: Table) -> Period:
    """``begin`` and optionally ``end``; the caller rejects the table's unknown keys."""
    return Period(_unix(t, "begin") or 0, _unix(t, "end", None))


def _pairs(t: Table, key: str) -> list[tuple[Decimal, Decimal]]:
    value = t.value(key)
    if value is None:
        return []
    if not isinstance(value, list) or not value:
        t.problem(key, "expected a non-empty list of [stage, value] pairs")
        return []
    pairs = []
    for n, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(map(_is_number, pair))):
            t.problem(key, f"item {n}: expected a [stage, value] pair of numbers")
            return []
        pairs.append((plain(Decimal(pair[0])), plain(Decimal(pair[1]))))
    return pairs


def _decimal(t: Table, key: str, default: Any = REQUIRED) -> Decimal:
    value = t.value(key, default)
    if not _is_number(value):
        if t.given(key):
            t.problem(key, f"expected a number, got {value!r}")
        return Decimal(0)
    return plain(Decimal(value))


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, Decimal)) and not isinstance(value, bool)
            and Decimal(value).is_finite())


def _unix(t: Table, key: str, default: Any = REQUIRED) -> int | None:
    """A TOML date-time; one without an offset, or a bare date, is taken as UTC."""
    value = t.value(key, default)
    if not t.given(key):
        return None
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp())
    t.problem(key, f"expected a TOML date-time such as 2024-01-01T00:00:00Z, got {value!r}")
    return None
