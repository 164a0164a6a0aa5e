"""Aggregation windows for ``--every``: fixed durations (``15m``, ``1h``, ``1d``, ``1w``) or
calendar windows (``day``, ``month``, ``water-year``) in a time zone. Either way the first
window begins at ``--start``: a ``1w`` window never reaches back before it, and ``month``
windows run from ``--start`` to the same day and hour of the next month.

Also the hydrological (water) year: named for the calendar year it ends in, beginning on the
1st of the basin's ``water_year_start_month`` (October: water year 2025 is 2024-10-01 to
2025-10-01), at local midnight.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo

CALENDAR = {"day": 0, "month": 1, "water-year": 12}  # name -> months per window (0: a day)
_FIXED = re.compile(r"(-?[0-9]+)(s|m|h|d|w)")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_CALENDAR_WINDOWS = 5000  # one InfluxQL statement each


def check_every(text: str) -> str:
    """``text`` if it is a window ``--every`` takes; raises ValueError saying what is."""
    if text in CALENDAR:
        return text
    m = _FIXED.fullmatch(text)
    if not m:
        raise ValueError(f"every: expected a duration such as 15m, 1h, 1d, 1w or one of "
                         f"{', '.join(CALENDAR)}; got {text!r}")
    if int(m.group(1)) <= 0:
        raise ValueError(f"every: a window must be longer than zero, got {text!r}")
    return text


def fixed_seconds(every: str) -> int | None:
    """Seconds of a fixed window; None for a calendar one."""
    m = _FIXED.fullmatch(every)
    return int(m.group(1)) * _UNIT_S[m.group(2)] if m else None


def calendar_windows(every: str, start: int, end: int, zone: tzinfo = timezone.utc
                     ) -> list[tuple[int, int]]:
    """[(begin, end)) windows of ``every`` from ``start``, the last cut at ``end`` (Unix s)."""
    months = CALENDAR[every]
    first = datetime.fromtimestamp(start, zone)
    out: list[tuple[int, int]] = []
    begin = start
    k = 0
    while begin < end:
        k += 1
        step = add_months(first, months * k) if months else _add_days(first, k)
        stop = min(int(step.timestamp()), end)
        out.append((begin, stop))
        begin = stop
        if len(out) > MAX_CALENDAR_WINDOWS:
            raise ValueError(f"every: more than {MAX_CALENDAR_WINDOWS} {every} windows; "
                             f"take a longer window or a shorter range")
    return out


def add_months(when: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (the month's last day when it is shorter)."""
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    for day in range(when.day, 27, -1):
        try:
            return _local(when.replace(year=year, month=month, day=day))
        except ValueError:
            continue
    return _local(when.replace(year=year, month=month, day=min(when.day, 28)))


def _add_days(first: datetime, days: int) -> datetime:
    return _local(first.replace(tzinfo=None) + timedelta(days=days), first.tzinfo)


def _local(naive_or_aware: datetime, zone: tzinfo | None = None) -> datetime:
    """A wall-clock time in its zone, normalised (days and months are counted on the wall
    clock, so a day across a DST change is 23 or 25 hours)."""
    zone = zone or naive_or_aware.tzinfo
    wall = naive_or_aware.replace(tzinfo=None)
    return datetime.fromtimestamp(wall.replace(tzinfo=zone).timestamp(), zone)


def water_year(year: int, start_month: int = 10, zone: tzinfo = timezone.utc) -> tuple[int, int]:
    """[begin, end) of water year ``year`` (Unix s): it ends in calendar year ``year``."""
    first_year = year - 1 if start_month > 1 else year
    begin = datetime(first_year, start_month, 1, tzinfo=zone)
    return int(begin.timestamp()), int(add_months(begin, 12).timestamp())
