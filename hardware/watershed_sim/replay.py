"""Recorded real series as truth: CSV, USGS RDB, Campbell TOA5, and tipping-bucket tip logs
(iMHEA raw logs: replay_imhea.py).

Values stay decimal text → Decimal, never binary floats, so a replayed 0.82 reaches InfluxDB as
exactly 0.82. A series answers ``value_at(t)`` with the latest recorded value at or before t
(what a logger sampling at t would have seen), and ``None`` inside a gap: a missing recorded
step stays missing, it is not invented.
"""

from __future__ import annotations

import bisect
import csv
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

# USGS time-zone codes of the RDB tz_cd column (standard and daylight time), hours from UTC.
USGS_ZONES = {"UTC": 0, "GMT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7,
              "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10}


class ReplayError(ValueError):
    """A recorded file cannot be read as a series; says where."""


@dataclass(frozen=True)
class Series:
    """Recorded (Unix seconds, value) pairs, ascending; ``step_s`` is the recording interval."""

    times: tuple[int, ...]
    values: tuple[Decimal, ...]
    name: str = ""

    @property
    def step_s(self) -> int:
        steps = [b - a for a, b in zip(self.times, self.times[1:])]
        return min(steps) if steps else 0

    def value_at(self, t: float) -> Decimal | None:
        i = bisect.bisect_right(self.times, t) - 1
        if i < 0:
            return None
        if i + 1 < len(self.times) and t - self.times[i] >= self.step_s:
            return None  # t falls in a gap of the record
        if i + 1 == len(self.times) and t - self.times[i] >= self.step_s:
            return None  # after the end
        return self.values[i]

    def shifted(self, to_start: int) -> Series:
        """The same record moved in time so it begins at ``to_start``."""
        delta = to_start - self.times[0]
        return Series(tuple(t + delta for t in self.times), self.values, self.name)

    def gaps(self) -> list[int]:
        """Times where a recording step is missing."""
        step = self.step_s
        return [t for a, b in zip(self.times, self.times[1:]) for t in range(a + step, b, step)]


def _decimal(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ReplayError(f"{where}: {text!r} is not a number") from None
    if not value.is_finite():
        raise ReplayError(f"{where}: {text!r} is not a finite number")
    return value


def _build(rows: list[tuple[int, Decimal, str]], name: str, path: Path) -> Series:
    """A series from (time, value, file:line) rows. A time recorded twice with the same value
    is one sample written twice (loggers do it when their clock is set); with two values it is
    refused, naming both lines."""
    if not rows:
        raise ReplayError(f"{path}: no values")
    rows.sort(key=lambda row: row[0])
    kept = [rows[0]]
    for row in rows[1:]:
        if row[0] != kept[-1][0]:
            kept.append(row)
        elif row[1] != kept[-1][1]:
            when = datetime.fromtimestamp(row[0], timezone.utc)
            raise ReplayError(f"{row[2]}: {row[1]} at {when}, and {kept[-1][1]} at the same time "
                              f"({kept[-1][2]})")
    return Series(tuple(t for t, _, _ in kept), tuple(v for _, v, _ in kept), name)


def read_usgs_rdb(path: Path, column: str | None = None) -> Series:
    """A USGS NWIS instantaneous-values RDB file: ``datetime`` + ``tz_cd`` + a value column
    (default: the first ``NN_PPPPP`` parameter column). Rows without a value are skipped."""
    path = Path(path)
    lines = [(n, line.rstrip("\n")) for n, line in enumerate(path.read_text().splitlines(), 1)
             if line and not line.startswith("#")]
    if len(lines) < 2:
        raise ReplayError(f"{path}: no header and type lines")
    header = lines[0][1].split("\t")
    if column is None:
        column = next((h for h in header if h[:2].isdigit() and "_" in h
                       and not h.endswith("_cd")), "")
    for needed in ("datetime", "tz_cd", column):
        if needed not in header:
            raise ReplayError(f"{path}:{lines[0][0]}: no column {needed!r} in the header")
    i_time, i_tz, i_value = (header.index(h) for h in ("datetime", "tz_cd", column))
    rows = []
    for n, line in lines[2:]:  # after the header and the type line (5s 15s 20d ...)
        fields = line.split("\t")
        where = f"{path}:{n}"
        if len(fields) != len(header):
            raise ReplayError(f"{where}: {len(fields)} fields, the header has {len(header)}")
        if not fields[i_value].strip():
            continue
        zone = USGS_ZONES.get(fields[i_tz])
        if zone is None:
            raise ReplayError(f"{where}: unknown time zone {fields[i_tz]!r}")
        local = _parse_time(fields[i_time], ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"), where)
        stamp = int((local - timedelta(hours=zone)).replace(tzinfo=timezone.utc).timestamp())
        rows.append((stamp, _decimal(fields[i_value], where), where))
    return _build(rows, column, path)


def read_csv(path: Path, value_column: str, time_column: str = "time",
             utc_offset_h: float = 0.0) -> Series:
    """A CSV with a header; times as ISO 8601 (an explicit offset wins) or Unix seconds."""
    path = Path(path)
    rows = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for needed in (time_column, value_column):
            if needed not in (reader.fieldnames or []):
                raise ReplayError(f"{path}:1: no column {needed!r} in the header")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row[value_column].strip():
                continue
            rows.append((_stamp(row[time_column], utc_offset_h, where),
                         _decimal(row[value_column], where), where))
    return _build(rows, value_column, path)


def read_toa5(path: Path, column: str, utc_offset_h: float = 0.0) -> Series:
    """A Campbell Scientific TOA5 file: environment line, field names, units, processing, data.
    ``NAN`` (the logger's missing value) is skipped, never taken as a number."""
    path = Path(path)
    with path.open(newline="") as f:
        lines = list(csv.reader(f))
    if len(lines) < 4 or not lines[0] or lines[0][0] != "TOA5":
        raise ReplayError(f"{path}:1: not a TOA5 file (first field must be TOA5)")
    names = lines[1]
    if "TIMESTAMP" not in names or column not in names:
        raise ReplayError(f"{path}:2: no TIMESTAMP or {column!r} field")
    i_time, i_value = names.index("TIMESTAMP"), names.index(column)
    rows = []
    for n, fields in enumerate(lines[4:], 5):
        where = f"{path}:{n}"
        if len(fields) != len(names):
            raise ReplayError(f"{where}: {len(fields)} fields, expected {len(names)}")
        if fields[i_value].strip().upper() in ("NAN", ""):
            continue
        rows.append((_stamp(fields[i_time], utc_offset_h, where), _decimal(fields[i_value], where),
                     where))
    return _build(rows, column, path)


@dataclass(frozen=True)
class TipLog:
    """Tipping-bucket tip times (Unix seconds, ascending) and the rain each tip stands for.

    The record covers [``start``, ``end``) less its ``gaps`` ([from, to) windows where the
    logger recorded nothing); None: no start or end known (a plain list of tips), so no rain
    outside its tips. Rain over an interval the record does not cover is unknown (None),
    never 0.
    """

    tips: tuple[float, ...]
    mm_per_tip: Decimal
    name: str = ""
    start: float | None = None
    end: float | None = None
    gaps: tuple[tuple[float, float], ...] = ()

    @property
    def begins(self) -> float:
        """Where ``shifted`` puts the scenario start: the record's start, else its first tip."""
        return self.start if self.start is not None else self.tips[0]

    def covers(self, t0: float, t1: float) -> bool:
        """Whether the record says what fell in [t0, t1)."""
        if (self.start is not None and t0 < self.start) or (self.end is not None
                                                            and t1 > self.end):
            return False
        return not any(t0 < g1 and g0 < t1 for g0, g1 in self.gaps)

    def tips_between(self, t0: float, t1: float) -> int:
        """Tips in [t0, t1): what a counter read at t1 and reset at t0 would show."""
        return bisect.bisect_left(self.tips, t1) - bisect.bisect_left(self.tips, t0)

    def rain_mm(self, t0: float, t1: float) -> Decimal | None:
        """Rain in [t0, t1), or None where the record does not cover it."""
        return self.tips_between(t0, t1) * self.mm_per_tip if self.covers(t0, t1) else None

    def shifted(self, to_start: float) -> TipLog:
        """The same record moved in time so it begins at ``to_start``."""
        delta = to_start - self.begins
        return TipLog(tuple(t + delta for t in self.tips), self.mm_per_tip, self.name,
                      None if self.start is None else to_start,
                      None if self.end is None else self.end + delta,
                      tuple((g0 + delta, g1 + delta) for g0, g1 in self.gaps))


def bucket_mm(value: object) -> Decimal | None:
    """The rain one tip stands for, exact, from a number or decimal text; None unless above 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        mm = Decimal(str(value))
    except InvalidOperation:
        return None
    return mm if mm.is_finite() and mm > 0 else None


def read_tip_log(path: Path, mm_per_tip: str | Decimal = "0.2",
                 utc_offset_h: float = 0.0) -> TipLog:
    """One tip time per line (ISO 8601 or Unix seconds); ``#`` comments and blanks skipped.
    A plain list says nothing of when recording began or ended: no rain outside its tips."""
    path = Path(path)
    bucket = bucket_mm(mm_per_tip)
    if bucket is None:
        raise ReplayError(f"{path}: mm_per_tip must be a number above 0, not {mm_per_tip!r}")
    tips: list[float] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        tip = _instant(text, utc_offset_h, f"{path}:{n}")
        if tips and tip < tips[-1]:
            raise ReplayError(f"{path}:{n}: {text!r} is before the tip above it")
        tips.append(tip)
    if not tips:
        raise ReplayError(f"{path}: no tips")
    return TipLog(tuple(tips), bucket, path.stem)


def _parse_time(text: str, formats: tuple[str, ...], where: str) -> datetime:
    for fmt in formats:
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            pass
    raise ReplayError(f"{where}: {text!r} is not a time ({' or '.join(formats)})")


def _stamp(text: str, utc_offset_h: float, where: str) -> int:
    """A recorded time in whole Unix seconds (a fraction is dropped)."""
    return int(_instant(text, utc_offset_h, where))


def _instant(text: str, utc_offset_h: float, where: str) -> float:
    """A time as ISO 8601 (local at ``utc_offset_h`` when it names no zone) or Unix seconds."""
    text = text.strip()
    not_a_time = ReplayError(f"{where}: {text!r} is not a time (ISO 8601 or Unix seconds)")
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise not_a_time
        return number
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise not_a_time from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone(timedelta(hours=utc_offset_h)))
    return when.timestamp()
