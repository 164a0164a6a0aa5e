"""USGS RDB rating files: ``base`` (breakpoints) and ``exsa`` (expanded, shifts applied).

Layout: ``#`` header lines, a tab-separated column line, a type line (``16N 16N 1S``), rows.
Headers read here::

    # //STATION AGENCY="USGS " NUMBER="01594440       " ...
    # //RATING ID="20.0" TYPE="STGQ" ...
    # //RATING EXPANSION="logarithmic"
    # //RATING OFFSET1=2.0 OFFSET2=... and # //RATING BREAKPOINT1=...   (segment n starts at
        BREAKPOINT(n-1) and uses OFFSETn; OFFSET1 applies below BREAKPOINT1)
    # //RATING_INDEP ... PARAMETER="Gage height (ft)"
    # //RATING_DATETIME BEGIN=20151001000000 BZONE=-05:00 END=-------------- EZONE=---
    # //SHIFT_PREV BEGIN="..." BZONE="..." END="..."  then  STAGE1="2.5" SHIFT1="0.1" ...

A base file's shifts (if any) are kept and applied at lookup; an exsa table already has its
shift in every row (the SHIFT column), so its rows are used as they are.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from .model import Breakpoint, Period, Rating, RatingError, Shift, plain

_PAIR = re.compile(r'(\w+)=("([^"]*)"|\S+)')


def _pairs(text: str) -> dict[str, str]:
    return {m.group(1): (m.group(3) if m.group(3) is not None else m.group(2)).strip()
            for m in _PAIR.finditer(text)}


def _time(stamp: str, zone: str, where: str) -> int | None:
    """``20151001000000`` in zone ``-05:00`` → Unix s; dashes (open end) → None."""
    stamp = stamp.strip()
    if not stamp or set(stamp) <= {"-"}:
        return None
    try:
        local = datetime.strptime(stamp, "%Y%m%d%H%M%S")
    except ValueError as e:
        raise RatingError(f"{where}: bad date {stamp!r}") from e
    tz = timezone.utc
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)", zone.strip())
    if m:
        sign = -1 if m.group(1) == "-" else 1
        tz = timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    return int(local.replace(tzinfo=tz).timestamp())


def _decimal(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation as e:
        raise RatingError(f"{where}: not a number: {text!r}") from e
    if not value.is_finite():
        raise RatingError(f"{where}: not a finite number: {text!r}")
    return plain(value)


def parse_rdb(text: str, source: str = "<rdb>") -> Rating:
    headers: list[tuple[str, dict[str, str]]] = []  # (key such as "RATING", pairs)
    lines = text.splitlines()
    body_start = None
    for n, line in enumerate(lines):
        if line.startswith("#"):
            m = re.match(r"#\s*//(\S+)\s*(.*)", line)
            if m:
                headers.append((m.group(1), _pairs(m.group(2))))
            continue
        if line.strip():
            body_start = n
            break
    if body_start is None or body_start + 1 >= len(lines):
        raise RatingError(f"{source}: no table (expected a column line, a type line and rows)")
    columns = lines[body_start].rstrip("\r").split("\t")
    if columns[:2] == ["INDEP", "DEP"]:
        kind, dep_col = "base", 1
    elif columns[:3] == ["INDEP", "SHIFT", "DEP"]:
        kind, dep_col = "exsa", 2
    else:
        raise RatingError(f"{source}: columns {columns} are neither base (INDEP DEP STOR) "
                          "nor exsa (INDEP SHIFT DEP STOR)")

    breakpoints = []
    for n, line in enumerate(lines[body_start + 2:], start=body_start + 3):
        if not line.strip():
            continue
        cells = line.rstrip("\r").split("\t")
        where = f"{source}:{n}"
        if len(cells) <= dep_col:
            raise RatingError(f"{where}: expected {len(columns)} columns")
        breakpoints.append(Breakpoint(_decimal(cells[0], where), _decimal(cells[dep_col], where)))

    rating: dict[str, str] = {}
    station: dict[str, str] = {}
    indep: dict[str, str] = {}
    periods: list[Period] = []
    for key, pairs in headers:
        if key == "RATING":
            rating.update(pairs)
        elif key == "STATION":
            station.update(pairs)
        elif key == "RATING_INDEP":
            indep.update(pairs)
        elif key == "RATING_DATETIME" and "BEGIN" in pairs:
            begin = _time(pairs["BEGIN"], pairs.get("BZONE", ""), source)
            if begin is not None:
                periods.append(Period(begin, _time(pairs.get("END", ""),
                                                   pairs.get("EZONE", ""), source)))
    rating_id = _rating_id(station.get("NUMBER", ""), rating.get("ID", ""), source)
    offsets = _offsets(rating, breakpoints[0].stage if breakpoints else Decimal(0), source)
    shifts = _shifts(headers, source) if kind == "base" else ()
    unit = "m" if "(m)" in indep.get("PARAMETER", "") else "ft"
    return Rating(rating_id, tuple(breakpoints), offsets,
                  expansion=rating.get("EXPANSION", "logarithmic").lower(),
                  periods=tuple(periods), shifts=shifts, stage_unit=unit,
                  discharge_unit="m3/s" if unit == "m" else "ft3/s",
                  station=station.get("NUMBER", "").strip(), source=source)


def _rating_id(site: str, number: str, source: str) -> str:
    """``USGS.<site>.<rating number>``: unique across sites, and a valid identifier. Without a
    site number (a table this package printed) the ID is taken as it is."""
    site, number = site.strip(), number.strip()
    if not number:
        raise RatingError(f"{source}: no RATING ID header")
    return f"USGS.{site}.{number}" if site else number


def _offsets(rating: dict[str, str], lowest: Decimal,
             source: str) -> tuple[tuple[Decimal, Decimal], ...]:
    offsets = []
    n = 1
    while f"OFFSET{n}" in rating:
        if n == 1:
            start = lowest
        else:
            if f"BREAKPOINT{n - 1}" not in rating:
                raise RatingError(f"{source}: OFFSET{n} without BREAKPOINT{n - 1}")
            start = _decimal(rating[f"BREAKPOINT{n - 1}"], source)
        offsets.append((start, _decimal(rating[f"OFFSET{n}"], source)))
        n += 1
    return tuple(offsets) or ((lowest, Decimal(0)),)


def _shifts(headers: list[tuple[str, dict[str, str]]], source: str) -> tuple[Shift, ...]:
    """SHIFT_PREV / SHIFT_CURR / SHIFT_NEXT: a dates line then a STAGEn/SHIFTn line."""
    shifts = []
    dates: dict[str, dict[str, str]] = {}
    for key, pairs in headers:
        if not key.startswith("SHIFT_"):
            continue
        if "BEGIN" in pairs:
            dates[key] = pairs
        elif "STAGE1" in pairs and key in dates:
            d = dates.pop(key)
            begin = _time(d["BEGIN"], d.get("BZONE", ""), source)
            points = []
            n = 1
            while f"STAGE{n}" in pairs:
                stage, shift = pairs[f"STAGE{n}"], pairs.get(f"SHIFT{n}", "")
                if set(stage) <= {"-"} or set(shift) <= {"-"}:
                    break
                points.append((_decimal(stage, source), _decimal(shift, source)))
                n += 1
            if begin is not None and points:
                end = _time(d.get("END", ""), d.get("EZONE", ""), source)
                shifts.append(Shift(Period(begin, end), tuple(points)))
    return tuple(shifts)
