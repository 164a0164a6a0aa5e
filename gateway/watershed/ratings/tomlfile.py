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

Numbers are read as decimals, so breakpoints keep their exact text.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from ..contracts.ids import is_valid_id
from .model import Breakpoint, Period, Rating, RatingError, Shift, plain

UNITS = {"m": "m3/s", "ft": "ft3/s"}
_TOP = {"id", "station", "stage_unit", "discharge_unit", "expansion", "effective", "segments",
        "shifts", "comment"}


def parse_toml_rating(text: str, source: str = "<toml>") -> Rating:
    try:
        d = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as e:
        raise RatingError(f"{source}: not valid TOML: {e}") from e
    unknown = set(d) - _TOP
    if unknown:
        raise RatingError(f"{source}: unknown keys {sorted(unknown)} (known: {sorted(_TOP)})")
    rating_id = d.get("id")
    if not isinstance(rating_id, str) or not is_valid_id(rating_id):
        raise RatingError(f"{source}: id: expected an identifier (1-32 of A-Z a-z 0-9 _ . -), "
                          f"got {rating_id!r}")
    stage_unit = d.get("stage_unit", "m")
    if stage_unit not in UNITS:
        raise RatingError(f"{source}: stage_unit: expected m or ft, got {stage_unit!r}")
    discharge_unit = d.get("discharge_unit", UNITS[stage_unit])
    if discharge_unit not in UNITS.values():
        raise RatingError(f"{source}: discharge_unit: expected m3/s or ft3/s")

    breakpoints: list[Breakpoint] = []
    offsets: list[tuple[Decimal, Decimal]] = []
    segments = d.get("segments")
    if not isinstance(segments, list) or not segments:
        raise RatingError(f"{source}: segments: expected at least one [[segments]] table")
    for n, seg in enumerate(segments, start=1):
        where = f"{source}: segments[{n}]"
        points = [Breakpoint(_number(p[0], where), _number(p[1], where))
                  for p in _pairs(seg.get("points"), where)]
        if breakpoints and points[0] == breakpoints[-1]:
            points = points[1:]  # the shared boundary point, given in both segments
            start = breakpoints[-1].stage
        else:
            start = points[0].stage
        offsets.append((start, _number(seg.get("offset", 0), f"{where}.offset")))
        breakpoints.extend(points)

    shifts = tuple(Shift(_period(s, f"{source}: shifts[{n}]"),
                         tuple((_number(a, source), _number(b, source))
                               for a, b in _pairs(s.get("points"), f"{source}: shifts[{n}]")))
                   for n, s in enumerate(d.get("shifts", []), start=1))
    periods = tuple(_period(p, f"{source}: effective[{n}]")
                    for n, p in enumerate(d.get("effective", []), start=1))
    return Rating(rating_id, tuple(breakpoints), tuple(offsets),
                  expansion=str(d.get("expansion", "logarithmic")), periods=periods,
                  shifts=shifts, stage_unit=stage_unit, discharge_unit=discharge_unit,
                  station=str(d.get("station", "")), source=source)


def _pairs(value: Any, where: str) -> list[list[Any]]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(p, list) and len(p) == 2 for p in value)):
        raise RatingError(f"{where}.points: expected a list of [stage, value] pairs")
    return value


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise RatingError(f"{where}: expected a number, got {value!r}")
    return plain(Decimal(value))


def _period(d: Any, where: str) -> Period:
    if not isinstance(d, dict) or "begin" not in d:
        raise RatingError(f"{where}: expected a table with begin (and optionally end)")
    end = d.get("end")
    return Period(_unix(d["begin"], f"{where}.begin"),
                  None if end is None else _unix(end, f"{where}.end"))


def _unix(value: Any, where: str) -> int:
    """A TOML date-time; one without an offset, or a bare date, is taken as UTC."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp())
    raise RatingError(f"{where}: expected a TOML date-time such as 2024-01-01T00:00:00Z")
